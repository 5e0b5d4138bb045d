//! What defines an SA: everything the control process decides and the
//! dataplane needs to process its packets. Built by the control process (manual
//! keys or IKE), carried over shared memory, turned into a runtime SA on install.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alg::Suite;
use crate::key::Key;

/// Direction of an SA, seen from this gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We decrypt packets the peer sent with this SPI.
    Inbound,
    /// We encrypt packets to the peer with this SPI.
    Outbound,
}

/// ESP mode (RFC 4303 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole inner IP packet is protected behind a new outer header.
    Tunnel,
    /// Only the payload of the IP packet is protected (gateway-to-gateway traffic).
    Transport,
}

/// Handling of the DF bit on tunnel entry (outer IPv4 header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DfMode {
    /// Copy DF from the inner IPv4 header (clear for IPv6 inner).
    #[default]
    Copy,
    /// Always set DF.
    Set,
    /// Always clear DF.
    Clear,
}

/// UDP encapsulation of ESP (NAT-T, RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UdpEncap {
    /// Our UDP port (normally 4500).
    pub local_port: u16,
    /// The peer's UDP port (4500, or what the NAT mapped it to).
    pub remote_port: u16,
}

/// Inclusive port range; `0..=65535` is any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (inclusive).
    pub end: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange {
        start: 0,
        end: u16::MAX,
    };
    /// True if `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }
}

impl Default for PortRange {
    fn default() -> Self {
        Self::ANY
    }
}

/// A traffic selector pair (RFC 4301 §4.4.1): which inner packets the SA carries.
/// `local` is on our LAN side, `remote` behind the peer, whatever the direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrafficSelector {
    /// Local prefix (e.g. 10.1.0.0/24; 0.0.0.0/0 for any).
    pub local: IpNet,
    /// Remote prefix.
    pub remote: IpNet,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Local ports (TCP/UDP/SCTP), any by default.
    pub local_ports: PortRange,
    /// Remote ports, any by default.
    pub remote_ports: PortRange,
}

/// Soft and hard lifetimes in bytes and packets; 0 means unlimited. Time
/// lifetimes are enforced by the control process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lifetime {
    /// Soft byte limit: raises an event (rekey), traffic continues.
    pub soft_bytes: u64,
    /// Hard byte limit: the SA stops processing.
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
}

/// Replay window default (RFC 4303 allows any size). Larger than strongSwan's
/// 32, Libreswan's 128 or VPP's 64: a peer that sends one SA from several
/// workers, each through its own transmit ring (as ours does), reorders its
/// packets by up to about (workers - 1) x ring size (3 x 1024 for four
/// workers on 1024-descriptor rings); see bench/results/sad.md (mem12).
pub const DEFAULT_REPLAY_WINDOW: u32 = 4096;
/// Smallest replay window accepted when anti-replay is on.
pub const MIN_REPLAY_WINDOW: u32 = 64;
/// Largest replay window accepted.
pub const MAX_REPLAY_WINDOW: u32 = 65536;

/// Everything that defines one SA (one direction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaParams {
    /// Security Parameter Index (network order on the wire; never 0..=255, RFC 4303 §2.1).
    pub spi: u32,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Encryption + integrity.
    pub suite: Suite,
    /// Encryption key (AEAD: key followed by the 4-byte salt).
    #[serde(skip)]
    pub enc_key: Key,
    /// Integrity key (empty for AEAD).
    #[serde(skip)]
    pub auth_key: Key,
    /// 64-bit extended sequence numbers (RFC 4304).
    pub esn: bool,
    /// Anti-replay window size in packets (inbound; 0 disables anti-replay).
    pub replay_window: u32,
    /// Our gateway address (outer source when sending, outer destination when receiving).
    pub local_addr: IpAddr,
    /// The peer gateway address.
    pub remote_addr: IpAddr,
    /// UDP encapsulation (NAT-T), if any.
    pub encap: Option<UdpEncap>,
    /// Traffic selectors: inbound packets must match one after decap (RFC 4301).
    pub selectors: Vec<TrafficSelector>,
    /// Byte/packet lifetimes.
    pub lifetime: Lifetime,
    /// DF handling on tunnel entry (IPv4 outer).
    pub df: DfMode,
    /// Copy DSCP between inner and outer header (tunnel mode).
    pub copy_dscp: bool,
    /// Outbound: next sequence number to send (1 for a new SA; higher after a
    /// dataplane restart so that no number is sent twice under one key).
    /// Inbound: the lowest sequence number that may still be accepted (0 or 1
    /// for a new SA); every number below it counts as received already, so
    /// packets from before a dataplane restart are not accepted again.
    pub initial_seq: u64,
    /// Legacy algorithms (3DES, HMAC-MD5) were explicitly allowed for this SA.
    pub allow_legacy: bool,
    /// Tunnel this SA belongs to (index assigned by the control process; used for
    /// per-tunnel counters, metrics and the decrypted-traffic tap).
    pub tunnel_id: u32,
}
