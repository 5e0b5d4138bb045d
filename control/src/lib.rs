//! espresso control process: configuration, manual keys, IKE (sans-IO engines),
//! the shared-memory SA writer side, the daemon and the CLI.
//!
//! - [`config`]: the TOML configuration (tunnels, policies, includes, secrets).
//! - [`ike`]: the IKEv2 engine (sans-IO; the daemon drives it through `daemon::ike`).
//! - [`ikev1`]: the IKEv1 engine (sans-IO, same interface as IKEv2's).
//! - [`pki`]: certificates, trust store, CRLs, private keys, signatures.
//! - [`daemon`]: the control daemon (SA push, lifetimes, CLI socket, metrics, tap).
//! - [`cli`]: the `espresso` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod ike;
pub mod ikev1;
pub mod import;
pub mod pki;
