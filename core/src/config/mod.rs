//! The configuration file: TOML with manually keyed tunnels (`[[tunnel]]`),
//! cleartext/discard rules (`[[policy]]`), templates (`[template.NAME]`,
//! FreeS/WAN's `also=`), `include` of further files (globs), secrets files
//! (mode 0600), IKE connections (`[[connection]]`, [`ike::Connection`]), the
//! daemon's settings (`[daemon]`) and the dataplane's (`[dataplane]`). The
//! format is documented with examples in `docs/config.md`.
//!
//! Loading checks everything before anything is used: every bad input gives
//! a [`ConfigError`] naming the file, line, field and value (never a key's
//! value), and all errors of a file are reported at once. A config that fails
//! to load changes nothing that runs.
//!
//! - `model`: the typed configuration ([`Config`], [`Tunnel`], ...), re-exported here.
//! - [`connection`], [`ike`], [`auth`], [`dataplane`]: the types of `[[connection]]`
//!   and `[dataplane]`; [`values`]: parsers of single values; [`dn`]:
//!   distinguished names (`leftid = "C=CH, O=.., CN=.."`, `rightca`).
//! - `loader`: [`Config::load`], one part per table; imports run loader ->
//!   types, never back.

#![forbid(unsafe_code)]

pub mod auth;
pub mod connection;
pub mod dataplane;
pub mod dn;
mod error;
#[cfg(any(fuzzing, test))]
pub mod fuzz;
pub mod ike;
mod loader;
mod model;
pub mod values;

pub use error::{ConfigError, ConfigErrors};
pub use model::*;

#[cfg(test)]
mod tests;
