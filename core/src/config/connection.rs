//! `[[connection]]`: IKEv2 connections (automatic keying with a pre-shared
//! key), in the operators' vocabulary (FreeS/WAN `left`/`right`, Openswan's
//! start modes, strongSwan and router-CLI proposal strings). Each block becomes a
//! checked [`super::ike::Connection`] (the loader: `loader::connection`);
//! errors name file:line field = value like the rest of the configuration,
//! and the pre-shared key is never shown.

use std::path::PathBuf;

use super::ike::{Connection, ExchangeMode, VersionPolicy};

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
    /// IKE versions it speaks (`ikev2`, `version`, `keyexchange`); the
    /// IKEv2 engine gets it unless `never`, the IKEv1 engine unless `insist`.
    pub version: VersionPolicy,
    /// IKEv1 phase 1 exchange (`aggressive`).
    pub exchange: ExchangeMode,
    /// The `ike` and `esp` proposal strings as written, for the IKEv1
    /// engine's parsers (`control::ikev1::proposal`: the seeds' forms such as
    /// `AES SHA 2`); `None`: not written (the IKEv1 defaults).
    pub v1_proposals: (Option<String>, Option<String>),
}
