//! `[[connection]]`: IKEv2 connections (automatic keying with a pre-shared
//! key), in the operators' vocabulary (FreeS/WAN `left`/`right`, Openswan's
//! start modes, strongSwan and router-CLI proposal strings). Each block becomes a
//! checked [`super::ike::Connection`] (the loader: `loader::connection`);
//! errors name file:line field = value like the rest of the configuration,
//! and the pre-shared key is never shown.

use std::path::PathBuf;

use super::ike::Connection;

/// A checked IKE connection from the configuration.
#[derive(Clone, Debug)]
pub struct IkeConn {
    /// Name.
    pub name: String,
    /// File it was defined in.
    pub file: PathBuf,
    /// Line of its `[[connection]]` table.
    pub line: usize,
    /// The engine's form (tunnel id 0: the daemon assigns one).
    pub conn: Connection,
    /// Digest of the whole definition, key included (reload compares it).
    pub hash: u64,
}
