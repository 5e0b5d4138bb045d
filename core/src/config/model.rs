//! The typed configuration: what the loader ([`super::loader`]) produces from
//! the files and both processes use.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use super::connection::IkeConn;
use super::dataplane::{DataplaneSettings, ShmSetting};
use crate::alg::Suite;
use crate::key::Key;
use crate::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, PortRange, SaParams, TrafficSelector,
    UdpEncap,
};

/// Default path of the shared-memory region.
pub const DEFAULT_SHM: &str = "/dev/shm/espresso";
/// Default path of the CLI socket.
pub const DEFAULT_SOCKET: &str = "/run/espresso/espresso.sock";
/// Default address of the Prometheus endpoint.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9715";
/// Deepest include nesting accepted.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// What the daemon does with a tunnel or policy when it starts or reloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartMode {
    /// Installed at once (FreeS/WAN `auto=start`, ClearOS "automatic").
    Start,
    /// Loaded and checked, installed only by `espresso up NAME` (`auto=add`).
    Add,
    /// Checked, otherwise ignored (`auto=ignore`).
    Ignore,
}

/// Byte, packet and time lifetimes of a tunnel's SAs (0 / `None`: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetimes {
    /// Soft byte limit (a warning; IKE would rekey).
    pub soft_bytes: u64,
    /// Hard byte limit (the SA stops).
    pub hard_bytes: u64,
    /// Soft packet limit.
    pub soft_packets: u64,
    /// Hard packet limit.
    pub hard_packets: u64,
    /// Soft time limit since installation.
    pub soft_time: Option<Duration>,
    /// Hard time limit since installation.
    pub hard_time: Option<Duration>,
}

/// The four keys of a manual tunnel (`_in`: the peer's outbound SA, which we decrypt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelKeys {
    /// Encryption key of the inbound SA (AEAD: key + 4-byte salt).
    pub enc_in: Key,
    /// Encryption key of the outbound SA.
    pub enc_out: Key,
    /// Integrity key of the inbound SA (empty for AEAD).
    pub auth_in: Key,
    /// Integrity key of the outbound SA.
    pub auth_out: Key,
}

/// A manually keyed tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// Name (`up`/`down`/`reload NAME`).
    pub name: String,
    /// File it was defined in.
    pub file: PathBuf,
    /// Line of its `[[tunnel]]` table.
    pub line: usize,
    /// Our gateway address (FreeS/WAN `left`).
    pub local: IpAddr,
    /// The peer gateway (`right`).
    pub remote: IpAddr,
    /// Prefixes behind us.
    pub local_subnets: Vec<IpNet>,
    /// Prefixes behind the peer.
    pub remote_subnets: Vec<IpNet>,
    /// Tunnel or transport.
    pub mode: Mode,
    /// Encryption and integrity.
    pub suite: Suite,
    /// SPI of the inbound SA (the peer's `spi_out`).
    pub spi_in: u32,
    /// SPI of the outbound SA (the peer's `spi_in`).
    pub spi_out: u32,
    /// Keys.
    pub keys: TunnelKeys,
    /// Anti-replay window (0: off).
    pub replay_window: u32,
    /// Extended sequence numbers.
    pub esn: bool,
    /// UDP encapsulation (NAT-T).
    pub encap: Option<UdpEncap>,
    /// DF bit on tunnel entry.
    pub df: DfMode,
    /// Copy DSCP inner <-> outer.
    pub copy_dscp: bool,
    /// Lifetimes.
    pub lifetime: Lifetimes,
    /// Start mode.
    pub start: StartMode,
    /// 3DES / HMAC-MD5 explicitly allowed.
    pub allow_legacy: bool,
    /// Policy priority (lower wins).
    pub priority: u32,
}

/// A cleartext or discard rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Name.
    pub name: String,
    /// File.
    pub file: PathBuf,
    /// Line.
    pub line: usize,
    /// Prefixes on our side.
    pub local_subnets: Vec<IpNet>,
    /// Prefixes on the far side.
    pub remote_subnets: Vec<IpNet>,
    /// Bypass or discard.
    pub action: PolicyAction,
    /// Priority (lower wins).
    pub priority: u32,
    /// Start mode.
    pub start: StartMode,
}

/// Daemon settings (`[daemon]`, main file only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Shared-memory region of the dataplane.
    pub shm: PathBuf,
    /// CLI socket.
    pub socket: PathBuf,
    /// Prometheus endpoint (None: off).
    pub metrics: Option<SocketAddr>,
    /// Log lines kept for `espresso log`.
    pub log_lines: usize,
    /// `espresso keys` may print the SA keys (for Wireshark/scapy).
    pub allow_key_export: bool,
    /// IKE fragmentation (RFC 7383): announce it and fragment large IKE
    /// messages when the peer does too.
    pub fragmentation: bool,
    /// Largest IP datagram an IKE fragment may make (IP and UDP headers
    /// included).
    pub fragment_size: usize,
    /// RFC 7427 signature authentication (AUTH method 14, SIGNATURE_HASH_ALGORITHMS);
    /// false signs like a peer without it (methods 1, 9, 10).
    pub rfc7427: bool,
    /// Limits that bound the IKE engines under a flood of first messages.
    pub ike_limits: IkeLimits,
}

/// What bounds the IKE daemon under a flood (`[daemon]` fields of the same
/// names), for IKEv2 and IKEv1 alike unless said otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IkeLimits {
    /// Half-open IKE SAs (responder, not yet authenticated) in total above
    /// which new first messages are dropped.
    pub half_open: usize,
    /// Half-open IKE SAs from one source address above which its new first
    /// messages are dropped.
    pub half_open_per_source: usize,
    /// Half-open IKE SAs above which IKE_SA_INIT requests must carry a
    /// cookie (RFC 7296 §2.6; IKEv2 only, IKEv1 has no such exchange).
    pub cookie_threshold: usize,
    /// Longest first message accepted (IKE_SA_INIT, IKEv1 main/aggressive
    /// mode message 1), after the non-ESP marker.
    pub max_init_message: usize,
    /// Longest other IKE message accepted.
    pub max_message: usize,
    /// Datagrams each of the two queues between the IKE sockets and the
    /// daemon's loop holds (first messages; the rest); a full queue drops.
    pub queue: usize,
}

impl Default for IkeLimits {
    fn default() -> Self {
        IkeLimits {
            half_open: 1024,
            half_open_per_source: 32,
            cookie_threshold: 10,
            max_init_message: 3072,
            max_message: 16384,
            queue: 1024,
        }
    }
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            shm: DEFAULT_SHM.into(),
            socket: DEFAULT_SOCKET.into(),
            metrics: DEFAULT_METRICS.parse().ok(),
            log_lines: 1000,
            allow_key_export: false,
            fragmentation: true,
            fragment_size: 1280,
            rfc7427: true,
            ike_limits: IkeLimits::default(),
        }
    }
}

/// A loaded, checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Daemon settings.
    pub daemon: DaemonSettings,
    /// The dataplane's options (`[dataplane]`; the daemon does not use them).
    pub dataplane: DataplaneSettings,
    /// Manual tunnels, in file order.
    pub tunnels: Vec<Tunnel>,
    /// Bypass/discard rules.
    pub policies: Vec<PolicyRule>,
    /// IKE connections (`[[connection]]`), in file order.
    pub connections: Vec<IkeConn>,
    /// Every file read.
    pub files: Vec<PathBuf>,
    /// Things that work but deserve a word (legacy algorithms, replay off...).
    pub warnings: Vec<String>,
}

impl Config {
    /// The tunnel called `name`.
    pub fn tunnel(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.name == name)
    }

    /// The policy rule called `name`.
    pub fn policy(&self, name: &str) -> Option<&PolicyRule> {
        self.policies.iter().find(|t| t.name == name)
    }

    /// The region the dataplane attaches to per `[dataplane] shm` (`true`:
    /// the daemon's); `None` when the file does not give one.
    pub fn dataplane_shm(&self) -> Option<PathBuf> {
        match self.dataplane.shm.as_ref()? {
            ShmSetting::Daemon => Some(self.daemon.shm.clone()),
            ShmSetting::Path(p) => Some(p.clone()),
            ShmSetting::Off => None,
        }
    }
}

/// Stable 64-bit digest (first 8 bytes of SHA-256) with a domain label.
pub(super) fn digest(label: &str, parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

impl Tunnel {
    /// Traffic selectors: every same-family pair of local and remote prefixes.
    pub fn selectors(&self) -> Vec<TrafficSelector> {
        let mut out = Vec::new();
        for l in &self.local_subnets {
            for r in &self.remote_subnets {
                if l.addr().is_ipv4() == r.addr().is_ipv4() {
                    out.push(TrafficSelector {
                        local: *l,
                        remote: *r,
                        proto: 0,
                        local_ports: PortRange::ANY,
                        remote_ports: PortRange::ANY,
                    });
                }
            }
        }
        out
    }

    /// The SA for one direction. `initial_seq`: outbound, the next sequence
    /// number to send; inbound, the lowest sequence number still acceptable
    /// (the dataplane's replay window refuses everything below it).
    pub fn sa_params(&self, direction: Direction, tunnel_id: u32, initial_seq: u64) -> SaParams {
        let (spi, enc, auth) = match direction {
            Direction::Inbound => (self.spi_in, &self.keys.enc_in, &self.keys.auth_in),
            Direction::Outbound => (self.spi_out, &self.keys.enc_out, &self.keys.auth_out),
        };
        let l = &self.lifetime;
        SaParams {
            spi,
            direction,
            mode: self.mode,
            suite: self.suite,
            enc_key: enc.clone(),
            auth_key: auth.clone(),
            esn: self.esn,
            replay_window: self.replay_window,
            local_addr: self.local,
            remote_addr: self.remote,
            encap: self.encap,
            selectors: self.selectors(),
            lifetime: Lifetime {
                soft_bytes: l.soft_bytes,
                hard_bytes: l.hard_bytes,
                soft_packets: l.soft_packets,
                hard_packets: l.hard_packets,
            },
            df: self.df,
            copy_dscp: self.copy_dscp,
            initial_seq,
            allow_legacy: self.allow_legacy,
            tunnel_id,
        }
    }

    /// Outbound policies: protect every selector with the outbound SA.
    /// Policy ids are `tunnel_id << 16 | index`.
    pub fn policies(&self, tunnel_id: u32) -> Vec<Policy> {
        self.selectors()
            .into_iter()
            .enumerate()
            .map(|(i, selector)| Policy {
                id: tunnel_id << 16 | i as u32,
                tunnel_id,
                selector,
                action: PolicyAction::Protect { spi: self.spi_out },
                priority: self.priority,
            })
            .collect()
    }

    /// Identifies the keys of one direction (sequence numbers are unique per key).
    pub fn key_id(&self, direction: Direction) -> u64 {
        let (enc, auth) = match direction {
            Direction::Inbound => (&self.keys.enc_in, &self.keys.auth_in),
            Direction::Outbound => (&self.keys.enc_out, &self.keys.auth_out),
        };
        digest("espresso key id", &[enc.bytes(), auth.bytes()])
    }

    /// Digest of everything that defines the SA of one direction.
    pub fn params_hash(&self, direction: Direction) -> u64 {
        let p = self.sa_params(direction, 0, 0);
        let text = format!("{p:?}|{}", self.key_id(direction));
        digest("espresso sa params", &[text.as_bytes()])
    }

    /// Digest of the whole tunnel definition (reload compares it).
    pub fn config_hash(&self) -> u64 {
        let text = format!(
            "{}|{:?}|{:?}|{:?}|{}|{}|{}",
            self.name,
            self.lifetime,
            self.start,
            self.priority,
            self.params_hash(Direction::Inbound),
            self.params_hash(Direction::Outbound),
            self.policies(0).len()
        );
        digest("espresso tunnel", &[text.as_bytes()])
    }
}

impl PolicyRule {
    /// The rule as SPD entries (ids `tunnel_id << 16 | index`).
    pub fn to_policies(&self, tunnel_id: u32) -> Vec<Policy> {
        let mut out = Vec::new();
        for l in &self.local_subnets {
            for r in &self.remote_subnets {
                if l.addr().is_ipv4() != r.addr().is_ipv4() {
                    continue;
                }
                out.push(Policy {
                    id: tunnel_id << 16 | out.len() as u32,
                    tunnel_id,
                    selector: TrafficSelector {
                        local: *l,
                        remote: *r,
                        proto: 0,
                        local_ports: PortRange::ANY,
                        remote_ports: PortRange::ANY,
                    },
                    action: self.action,
                    priority: self.priority,
                });
            }
        }
        out
    }

    /// Digest of the rule (reload compares it).
    pub fn config_hash(&self) -> u64 {
        let text = format!("{:?}", self.to_policies(0));
        digest("espresso policy", &[text.as_bytes(), &[self.start as u8]])
    }
}

// ---------------------------------------------------------------------------
// Loading
