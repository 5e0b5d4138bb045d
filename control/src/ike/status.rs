//! What the engine reports about its IKE SAs and child SAs (`espresso status`).

use std::net::SocketAddr;
use std::time::Instant;

/// Per-IKE-SA status, for the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaStatus {
    /// IKE SA id.
    pub id: u64,
    /// Connection.
    pub conn: String,
    /// State name.
    pub state: &'static str,
    /// SPIs (initiator, responder).
    pub spis: (u64, u64),
    /// Our address.
    pub local: SocketAddr,
    /// Peer.
    pub remote: SocketAddr,
    /// Algorithms.
    pub proposal: String,
    /// We initiated it.
    pub initiator: bool,
    /// The peer's authenticated identity.
    pub remote_id: Option<String>,
    /// We are behind a NAT.
    pub nat_local: bool,
    /// The peer is behind a NAT.
    pub nat_remote: bool,
    /// MOBIKE negotiated (RFC 4555).
    pub mobike: bool,
    /// The peer's additional addresses (RFC 4555 §3.6).
    pub peer_addresses: Vec<std::net::IpAddr>,
    /// When it is rekeyed (None: no rekey).
    pub rekey_at: Option<Instant>,
    /// When it expires.
    pub expire_at: Option<Instant>,
    /// Child SAs.
    pub children: Vec<ChildSaStatus>,
}

/// Per-child status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSaStatus {
    /// Inbound SPI.
    pub inbound_spi: u32,
    /// Outbound SPI.
    pub outbound_spi: u32,
    /// State name.
    pub state: &'static str,
    /// Algorithms.
    pub proposal: String,
    /// Local selectors.
    pub local_ts: Vec<String>,
    /// Remote selectors.
    pub remote_ts: Vec<String>,
    /// ESP in UDP (NAT-T).
    pub encap: bool,
    /// When it was created.
    pub created: Instant,
    /// When it is rekeyed (None: no rekey).
    pub rekey_at: Option<Instant>,
    /// When it expires.
    pub expire_at: Instant,
}
