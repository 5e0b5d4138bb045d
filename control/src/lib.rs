//! espresso control process: configuration, manual keys, IKE (sans-IO engines),
//! the shared-memory SA writer side, the daemon and the CLI.
//!
//! - [`config`]: the TOML configuration (tunnels, policies, includes, secrets).
//! - `ike`: the IKEv2 engine (added by the IKE work; the daemon will drive it).
//! - [`pki`]: certificates, trust store, CRLs, private keys, signatures.
//! - [`daemon`]: the control daemon (SA push, lifetimes, CLI socket, metrics, tap).
//! - [`cli`]: the `espresso` command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod ike;
pub mod pki;
