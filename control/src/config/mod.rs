//! The configuration file. The loader and its typed structs are
//! espresso-core's (`espresso_core::config`), shared with the dataplane
//! (which reads `[dataplane]` of the same file); re-exported here so that
//! `control::config::Config::load` keeps working. Key generation for
//! operators (`espresso genkey`) is the control process's own.

pub mod genkey;

pub use espresso_core::config::*;
