//! IKE connections as configured: espresso-core's typed [`Connection`]
//! (`espresso_core::config::ike`), which the configuration loader builds and
//! the engine runs. Re-exported so that `ike::config::{Connection, Identity,
//! ...}` keep working.

pub use espresso_core::config::ike::*;
