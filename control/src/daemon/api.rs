//! What the CLI and the daemon say to each other over the Unix socket: one
//! JSON request line, one JSON response line (for `tap`, pcap bytes follow).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Exit codes of `espresso` (also carried in responses).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The operation failed (the message says why).
    pub const FAILED: u8 = 1;
    /// Bad command line (clap's code).
    pub const USAGE: u8 = 2;
    /// The configuration is invalid; nothing was changed.
    pub const CONFIG: u8 = 3;
    /// No tunnel or policy of that name.
    pub const NOT_FOUND: u8 = 4;
    /// The daemon cannot be reached.
    pub const NO_DAEMON: u8 = 5;
    /// Refused in the tunnel's current state (e.g. expired keys).
    pub const STATE: u8 = 6;
}

/// A CLI request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Tunnels, SAs, counters, dataplane health.
    Status,
    /// Install a tunnel or policy.
    Up {
        /// Name.
        name: String,
    },
    /// Remove a tunnel or policy.
    Down {
        /// Name.
        name: String,
    },
    /// Our address for an IKEv2 connection changed (MOBIKE): its IKE SAs
    /// move to `address`.
    Move {
        /// Connection.
        name: String,
        /// Our new address.
        address: std::net::IpAddr,
    },
    /// Re-read the configuration; apply all changes, or only `name`'s.
    Reload {
        /// Only this tunnel or policy.
        name: Option<String>,
    },
    /// Recent log lines.
    Log {
        /// How many.
        lines: usize,
    },
    /// Stream a tunnel's decrypted traffic as pcap.
    Tap {
        /// Tunnel.
        name: String,
    },
    /// Prometheus text (the HTTP endpoint serves the same).
    Metrics,
    /// The keys of the SAs of running tunnels (only with
    /// `[daemon] allow_key_export = true`).
    Keys {
        /// Only this tunnel.
        name: Option<String>,
    },
}

impl Request {
    /// Parses one request line as the daemon reads it from the CLI socket
    /// (surrounding whitespace ignored). The error names what is wrong.
    pub fn parse(line: &str) -> Result<Request, serde_json::Error> {
        serde_json::from_str(line.trim())
    }
}

/// The daemon's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Exit code for the CLI ([`exit`]).
    pub code: u8,
    /// Human-readable result or error.
    pub message: String,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// For `log`, and warnings of `reload`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// For `metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For `keys`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SaKeys>,
}

impl Response {
    /// A success.
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            code: exit::OK,
            message: message.into(),
            ..Default::default()
        }
    }
    /// A failure with an exit code.
    pub fn err(code: u8, message: impl Into<String>) -> Response {
        Response {
            code,
            message: message.into(),
            ..Default::default()
        }
    }
}

/// Everything `espresso status` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The control daemon.
    pub control: ControlStatus,
    /// The dataplane.
    pub dataplane: DataplaneStatus,
    /// Tunnels and policies, in configuration order.
    pub tunnels: Vec<TunnelStatus>,
    /// Per-worker totals.
    pub workers: Vec<WorkerStatus>,
    /// IKE SAs with their child SAs (connections also have a row in `tunnels`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ike_sas: Vec<IkeStatus>,
    /// IKE engine counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike: Option<IkeCounters>,
    /// IKEv1 engine counters (its SAs are in `ike_sas` with `version` 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ikev1: Option<IkeCounters>,
    /// The IKE sockets' queue to the engines (both versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ike_socket: Option<IkeSocketCounters>,
}

/// What the IKE sockets' receiving threads queued for the engines and
/// dropped before them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSocketCounters {
    /// Datagrams queued.
    pub queued: u64,
    /// Datagrams the queue holds at most.
    pub queue_capacity: u64,
    /// Dropped before the queues, by reason (`queue_full`, `queue_full_other`, `too_big`).
    pub drops_by_reason: BTreeMap<String, u64>,
}

/// One IKE SA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeStatus {
    /// Id (our SPI; IKEv1: our cookie).
    pub id: String,
    /// IKE version: 2, or 1 for an ISAKMP SA (spi_i/spi_r are its cookies,
    /// `proposal` its phase 1 algorithms, children its IPsec SAs).
    #[serde(default = "ikev2")]
    pub version: u8,
    /// IKEv1 phase 1 exchange: "main" or "aggressive" (empty for IKEv2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// IKEv1 NAT traversal in use: "rfc3947", "draft" (empty: none, or IKEv2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub nat_t: String,
    /// Connection.
    pub conn: String,
    /// CONNECTING, AUTHENTICATING, HALF_OPEN, ESTABLISHED, DELETING.
    pub state: String,
    /// We initiated it.
    pub initiator: bool,
    /// Initiator's SPI (hex).
    pub spi_i: String,
    /// Responder's SPI (hex).
    pub spi_r: String,
    /// Our address and port.
    pub local: String,
    /// The peer's.
    pub remote: String,
    /// The peer's identity.
    pub remote_id: String,
    /// How the peer authenticated: `psk`, or the signature scheme of its
    /// AUTH payload (`sha256WithRSAEncryption`, `ecdsa-with-SHA384`, ...);
    /// empty until it has.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_auth: String,
    /// Subject DN of the certificate the peer authenticated with (empty:
    /// none, e.g. a pre-shared key or a raw RSA key).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_cert: String,
    /// Algorithms (strongSwan notation).
    pub proposal: String,
    /// We are behind a NAT.
    pub nat_local: bool,
    /// The peer is behind a NAT.
    pub nat_remote: bool,
    /// MOBIKE (RFC 4555) negotiated: the SA follows address changes.
    #[serde(default)]
    pub mobike: bool,
    /// The peer's additional addresses (MOBIKE ADDITIONAL_*_ADDRESS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peer_addresses: Vec<String>,
    /// Seconds to the rekey.
    pub rekey_in_s: Option<u64>,
    /// Seconds to expiry.
    pub expire_in_s: Option<u64>,
    /// Child SAs.
    pub children: Vec<ChildStatus>,
}

fn ikev2() -> u8 {
    2
}

/// One child SA of an IKE SA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildStatus {
    /// INSTALLED, REKEYING, REKEYED, DELETING.
    pub state: String,
    /// Algorithms.
    pub proposal: String,
    /// Local selectors.
    pub local_ts: Vec<String>,
    /// Remote selectors.
    pub remote_ts: Vec<String>,
    /// ESP in UDP.
    pub encap: bool,
    /// Inbound SA.
    pub inbound: SaStatus,
    /// Outbound SA.
    pub outbound: SaStatus,
    /// Seconds since it was created.
    pub age_s: u64,
    /// Seconds to the rekey.
    pub rekey_in_s: Option<u64>,
    /// Seconds to expiry.
    pub expire_in_s: Option<u64>,
}

/// Counters of the IKE engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeCounters {
    /// Datagrams received.
    pub rx: u64,
    /// Datagrams sent.
    pub tx: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// IKE SAs established.
    pub ike_established: u64,
    /// Child SAs established (rekeys included).
    pub child_established: u64,
    /// Half-open SAs now.
    pub half_open: u64,
    /// Child SAs refused because the peer chose an outbound SPI another SA
    /// holds (a manual tunnel's `spi_out`, another child's).
    #[serde(default)]
    pub child_refused_spi_in_use: u64,
    /// Dropped datagrams by reason.
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Recent failures explained (proposal mismatches, authentication, dead peers).
    pub notes: Vec<String>,
}

/// The control daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlStatus {
    /// Pid.
    pub pid: u32,
    /// Generation (restarts of control processes on this region).
    pub generation: u64,
    /// Configuration file.
    pub config: String,
    /// Shared-memory region.
    pub shm: String,
    /// Seconds since start.
    pub uptime_s: u64,
}

/// The dataplane as seen through shared memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneStatus {
    /// Attached (holds its lock).
    pub alive: bool,
    /// Generation (dataplane starts on this region).
    pub generation: u64,
    /// Pid it recorded.
    pub pid: u64,
    /// Workers.
    pub workers: u64,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: u64,
    /// Events it could not queue.
    pub events_lost: u64,
    /// Tapped packets it could not queue.
    pub tap_lost: u64,
    /// Damaged commands it found.
    pub cmd_corrupt: u64,
    /// Commands sent and not yet taken (bytes).
    pub cmd_pending: u64,
}

/// One tunnel or policy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// Name.
    pub name: String,
    /// "tunnel" or "policy".
    pub kind: String,
    /// Tunnel id (in metrics and the dataplane).
    pub id: u32,
    /// up, down, pending (waiting for the dataplane), expired, error.
    pub state: String,
    /// Why it is in that state, where there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Start mode from the configuration.
    pub start: String,
    /// Our gateway (tunnels).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub local: String,
    /// The peer (tunnels).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote: String,
    /// Prefixes on our side.
    pub local_subnets: Vec<String>,
    /// Prefixes on the far side.
    pub remote_subnets: Vec<String>,
    /// Tunnel or transport; bypass or discard for policies.
    pub mode: String,
    /// Suite (tunnels).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suite: String,
    /// Soft lifetime passed (a warning).
    pub soft_expired: bool,
    /// Seconds since the SAs were installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<u64>,
    /// Inbound SA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<SaStatus>,
    /// Outbound SA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<SaStatus>,
}

/// One SA's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaStatus {
    /// SPI.
    pub spi: u32,
    /// SPI in hex, as written in configs.
    pub spi_hex: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Drops, all reasons.
    pub drops: u64,
    /// Drops by reason (non-zero ones).
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Outbound: next sequence number; inbound: highest received.
    pub seq: u64,
    /// Installed in the current dataplane and in use.
    pub active: bool,
}

/// One worker's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Index.
    pub worker: u32,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// ICMP errors sent.
    #[serde(default)]
    pub icmp_errors: u64,
    /// ICMP errors not sent: over the rate limit (RFC 4443 §2.4(f)).
    #[serde(default)]
    pub icmp_rate_limited: u64,
    /// Neighbour resolutions requested.
    #[serde(default)]
    pub resolve_requests: u64,
    /// Packets held while their next hop was being resolved.
    #[serde(default)]
    pub neighbour_held: u64,
    /// Packets sent through a stale neighbour entry being resolved again.
    #[serde(default)]
    pub neighbour_stale: u64,
    /// ESP packets held for an announced SPI before its SA was installed.
    #[serde(default)]
    pub esp_held: u64,
    /// Of those, the ones decapsulated once the SA was installed.
    #[serde(default)]
    pub esp_held_released: u64,
    /// Drops by reason (non-zero ones).
    pub drops_by_reason: BTreeMap<String, u64>,
}

/// One SA with its keys, for `espresso keys` (decrypting captures with
/// Wireshark or scapy). Debug output redacts the keys; the hex strings are
/// wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaKeys {
    /// Tunnel name.
    pub tunnel: String,
    /// "in" or "out" (as seen by this gateway).
    pub direction: String,
    /// Outer source address of the SA's packets.
    pub src: String,
    /// Outer destination address.
    pub dst: String,
    /// SPI.
    pub spi: u32,
    /// "tunnel" or "transport".
    pub mode: String,
    /// Encryption algorithm (espresso name, e.g. aes-gcm-128).
    pub encr: String,
    /// Encryption key in hex (AEAD: key followed by the 4-byte salt).
    pub enc_key: String,
    /// Integrity algorithm (espresso name; "none" for AEAD).
    pub integ: String,
    /// Integrity key in hex (empty for AEAD).
    pub auth_key: String,
    /// Extended sequence numbers.
    pub esn: bool,
    /// UDP encapsulation (NAT-T): source and destination UDP ports of the
    /// SA's packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_ports: Option<(u16, u16)>,
}

impl SaKeys {
    /// The export of one installed SA of tunnel `tunnel` (keys in lower-case hex).
    pub fn of(tunnel: &str, p: &espresso_core::sa::SaParams) -> SaKeys {
        use espresso_core::sa::Direction;
        let inbound = p.direction == Direction::Inbound;
        let (src, dst) = if inbound {
            (p.remote_addr, p.local_addr)
        } else {
            (p.local_addr, p.remote_addr)
        };
        SaKeys {
            tunnel: tunnel.to_string(),
            direction: if inbound { "in" } else { "out" }.into(),
            src: src.to_string(),
            dst: dst.to_string(),
            spi: p.spi,
            mode: format!("{:?}", p.mode).to_lowercase(),
            encr: p.suite.encr.name().into(),
            enc_key: hex::encode(p.enc_key.bytes()),
            integ: p.suite.integ.name().into(),
            auth_key: hex::encode(p.auth_key.bytes()),
            esn: p.esn,
            udp_ports: p.encap.map(|e| {
                if inbound {
                    (e.remote_port, e.local_port)
                } else {
                    (e.local_port, e.remote_port)
                }
            }),
        }
    }
}

impl std::fmt::Debug for SaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaKeys")
            .field("tunnel", &self.tunnel)
            .field("direction", &self.direction)
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

impl Drop for SaKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.enc_key.zeroize();
        self.auth_key.zeroize();
    }
}
