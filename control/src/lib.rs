//! espresso control process: configuration, manual keys, IKE (sans-IO engines),
//! the shared-memory SA writer side, the daemon and the CLI.
//!
//! - [`config`]: the TOML configuration (tunnels, policies, includes, secrets).
//! - `ike`: the IKEv2 engine (added by the IKE work; the daemon will drive it).
//! - [`ikev1`]: the IKEv1 engine (same interface; the daemon bridge comes with issue 12 phase B).
//! - [`daemon`]: the control daemon (SA push, lifetimes, CLI socket, metrics, tap).
//! - [`cli`]: the `espresso` command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod ike;
pub mod ikev1;
