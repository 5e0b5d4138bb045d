//! The configuration file. The loader and its typed structs are
//! espresso-core's (`espresso_core::config`), shared with the dataplane
//! (which reads `[dataplane]` of the same file); re-exported here so that
//! `control::config::Config::load` keeps working. Key generation for
//! operators (`espresso genkey`) is the control process's own.

pub mod genkey;

pub use espresso_core::config::*;

/// Loads the configuration ([`Config::load`]) and the credentials its
/// connections name (private keys, certificates, CA certificates, CRLs, raw
/// public keys: `crate::ike::Connection::load`), so that a key file that does
/// not parse or a certificate of another key is a configuration error at
/// load, naming file:line field = value like the others.
pub fn load(path: &std::path::Path) -> Result<Config, ConfigErrors> {
    let cfg = Config::load(path)?;
    let mut errs = Vec::new();
    for c in &cfg.connections {
        if let Err(e) = crate::ike::Connection::load(c.conn.clone()) {
            errs.extend(e);
        }
    }
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(errs))
    }
}
