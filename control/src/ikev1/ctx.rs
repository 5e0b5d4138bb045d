//! What the IKEv1 engine and its ISAKMP SAs share: settings, counters
//! ([`Stats`], [`V1Drop`]), the status of an SA ([`Ikev1SaStatus`]), the
//! context every SA runs in (`Ctx`), the work SAs queue (`Task`) and hand
//! back to the engine (`Deferred`), and a connection's configured selectors.
//! The engine ([`super::engine`]) and the SA state machine (`super::sa`)
//! both use this module; neither is used by it (as `ike::ctx` for IKEv2).

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use crate::ike::auth_config::WallClock;
use crate::ike::conns::{ConnTable, TrapPolicies};
use crate::ike::engine::{DataplaneOp, Event, IkeSaStatus, Output, Transmit};
use crate::ike::halfopen::{HalfOpen, Limits};
use crate::ike::wire::TsEntry;

use super::config::{Connection, ExchangeMode};
/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// IKE port (500).
    pub ike_port: u16,
    /// NAT-T port (4500).
    pub natt_port: u16,
    /// First retransmission timeout.
    pub retransmit_timeout: Duration,
    /// Backoff base: the n-th retransmission waits timeout * base^n.
    pub retransmit_base: f64,
    /// Retransmissions before giving up.
    pub retransmit_tries: u32,
    /// Responder phase 1 exchanges in progress (in total and per source
    /// address) above which new ones are dropped: IKEv2's limits.
    pub half_open_limits: Limits,
    /// A phase 1 exchange that does not complete is dropped after this long.
    pub half_open_timeout: Duration,
    /// NAT keepalive interval (RFC 3948 §4) when we are behind a NAT.
    pub keepalive: Duration,
    /// How long a replaced inbound SA stays installed after a rekey.
    pub drain: Duration,
    /// Longest datagram accepted (bigger ones are dropped unparsed).
    pub max_message: usize,
    /// Longest first message of a main or aggressive mode exchange accepted
    /// (after the non-ESP marker): far smaller than `max_message`, as
    /// IKEv2's IKE_SA_INIT.
    pub max_first_message: usize,
    /// Announce and use NAT traversal (RFC 3947 and its drafts).
    pub nat_traversal: bool,
    /// Set the commit bit in QM1 (RFC 2408 §3.1): the responder answers
    /// QM3 with CONNECTED and we send on the new SA only after it. Off by
    /// default (strongSwan ignores it); as responder we always honour it.
    pub commit_bit: bool,
    /// A commit-bit initiator installs its outbound SA at the latest this
    /// long after QM3 if the responder's CONNECTED never comes.
    pub connected_timeout: Duration,
    /// A quick-mode initiator's rekey switches to the new outbound SA this
    /// long after QM3 (the responder installs its inbound SA when QM3
    /// arrives: sending on it at once races that); zero: at once.
    pub rekey_switch_delay: Duration,
    /// Wall clock for certificate validity (tests inject a fixed one).
    pub clock: WallClock,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ike_port: 500,
            natt_port: 4500,
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            half_open_limits: Limits::DEFAULT,
            half_open_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
            drain: Duration::from_secs(2),
            max_message: 16384,
            max_first_message: 3072,
            nat_traversal: true,
            commit_bit: false,
            connected_timeout: Duration::from_secs(10),
            rekey_switch_delay: Duration::from_secs(1),
            clock: WallClock::System,
        }
    }
}

/// Why an incoming datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum V1Drop {
    /// Not a well-formed ISAKMP message (header or payload chain).
    Malformed,
    /// On the NAT-T port without the non-ESP marker.
    NotIke,
    /// Larger than `Settings::max_message`.
    TooBig,
    /// No ISAKMP SA with those cookies.
    UnknownSa,
    /// Decryption gave no valid payload chain (wrong key, tampered).
    Decrypt,
    /// A HASH payload did not verify (tampered, replayed into another exchange).
    Hash,
    /// A retransmission of a message already processed (the reply was repeated).
    Duplicate,
    /// Not expected in the SA's state (or an old message ID replayed).
    Unexpected,
    /// Responder half-open limit reached (in total).
    HalfOpenLimit,
    /// The source address has its limit of half-open exchanges.
    HalfOpenPerSource,
    /// No connection for the addresses, or the connection's version policy refuses IKEv1.
    NoConnection,
    /// Required payload missing or content invalid.
    Invalid,
    /// The peer's signature authentication failed: its certificate (untrusted,
    /// revoked, expired, another identity) or its SIG payload.
    Auth,
}

impl V1Drop {
    /// Every reason, for counters.
    pub const ALL: [V1Drop; 13] = [
        Self::Malformed,
        Self::NotIke,
        Self::TooBig,
        Self::UnknownSa,
        Self::Decrypt,
        Self::Hash,
        Self::Duplicate,
        Self::Unexpected,
        Self::HalfOpenLimit,
        Self::HalfOpenPerSource,
        Self::NoConnection,
        Self::Invalid,
        Self::Auth,
    ];
    /// Counter name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotIke => "not_ike",
            Self::TooBig => "too_big",
            Self::UnknownSa => "unknown_sa",
            Self::Decrypt => "decrypt",
            Self::Hash => "hash",
            Self::Duplicate => "duplicate",
            Self::Unexpected => "unexpected",
            Self::HalfOpenLimit => "half_open_limit",
            Self::HalfOpenPerSource => "half_open_per_source",
            Self::NoConnection => "no_connection",
            Self::Invalid => "invalid",
            Self::Auth => "auth",
        }
    }
}

/// Engine counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub rx: u64,
    /// Datagrams sent.
    pub tx: u64,
    /// Requests retransmitted on timeout.
    pub retransmits: u64,
    /// Replies repeated for a retransmitted request.
    pub replies_repeated: u64,
    /// NAT keepalives received.
    pub keepalives_rx: u64,
    /// NAT keepalives sent.
    pub keepalives_tx: u64,
    /// DPD R-U-THERE sent.
    pub dpd_sent: u64,
    /// ISAKMP SAs established.
    pub isakmp_established: u64,
    /// IPsec SA pairs established (including rekeys).
    pub ipsec_established: u64,
    /// Rekey collisions (both ends rekeyed one IPsec SA at once).
    pub rekey_collisions: u64,
    /// Of those, the ones where the peer sent on the pair our rule made
    /// redundant, and we moved our traffic to it.
    pub collision_swaps: u64,
    /// Drops by reason (index = [`V1Drop`] order).
    pub drops: [u64; V1Drop::ALL.len()],
}

impl Stats {
    /// Count of one reason.
    pub fn drop_count(&self, r: V1Drop) -> u64 {
        self.drops[r as usize]
    }
    /// Total drops.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Status of one ISAKMP SA: the fields IKEv2 SAs have, plus the mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ikev1SaStatus {
    /// Common status (spis = the cookies; proposal = phase 1 algorithms;
    /// children with their phase 2 algorithms).
    pub sa: IkeSaStatus,
    /// Main or aggressive mode.
    pub mode: ExchangeMode,
    /// NAT-T variant in use ("rfc3947", "draft", or "" when none).
    pub nat_t: &'static str,
    /// The peer announced DPD (RFC 3706).
    pub peer_dpd: bool,
    /// How the peer authenticated: `psk`, `pubkey` (certificate) or
    /// `rsasig` (raw RSA key); None before phase 1 completes.
    pub peer_auth: Option<String>,
    /// Subject DN of the peer's certificate, if it used one.
    pub peer_cert: Option<String>,
}

/// Work an SA hands back to the engine.
pub(crate) enum Deferred {
    Remove(u64),
    /// Children move from an old ISAKMP SA to its replacement (reauth).
    MoveChildren {
        from: u64,
        to: u64,
    },
    /// The peer sent INITIAL-CONTACT: drop other SAs with it.
    InitialContact {
        keep: u64,
    },
    /// A new SA of the peer's (re-authentication): older SAs of the same
    /// connection and peer hand over their IPsec SAs.
    Adopt {
        keep: u64,
    },
    /// The peer deleted this ISAKMP SA: its IPsec SAs go to another ISAKMP
    /// SA with the peer, if any, then it goes.
    PeerDeleted(u64),
    Restart {
        conn: Arc<Connection>,
    },
    Task {
        sa: u64,
        task: Task,
    },
}

/// State shared by all SAs.
pub(crate) struct Ctx {
    /// The time of the call being processed.
    pub now: Instant,
    pub settings: Settings,
    pub conns: Vec<Arc<Connection>>,
    pub out: VecDeque<Output>,
    pub rng: StdRng,
    pub stats: Stats,
    pub default_route: Option<IpAddr>,
    pub next_policy_id: u32,
    pub trap_policies: TrapPolicies,
    pub child_spis: HashSet<u32>,
    pub half_open: HalfOpen,
    pub deferred: Vec<Deferred>,
}

impl ConnTable for Ctx {
    type Conn = Connection;
    fn conns(&self) -> &Vec<Arc<Connection>> {
        &self.conns
    }
    fn conns_mut(&mut self) -> &mut Vec<Arc<Connection>> {
        &mut self.conns
    }
    fn traps_mut(&mut self) -> &mut TrapPolicies {
        &mut self.trap_policies
    }
    fn default_route(&self) -> Option<IpAddr> {
        self.default_route
    }
    fn new_policy_id(&mut self) -> u32 {
        Ctx::new_policy_id(self)
    }
    fn dp(&mut self, op: DataplaneOp) {
        Ctx::dp(self, op)
    }
}

impl Ctx {
    pub fn drop(&mut self, r: V1Drop) {
        self.stats.drops[r as usize] += 1;
    }
    pub fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }
    pub fn dp(&mut self, op: DataplaneOp) {
        self.out.push_back(Output::Dataplane(op));
    }
    /// Sends a message (with the non-ESP marker on the NAT-T port).
    pub fn transmit(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        let data = if local.port() == self.settings.natt_port {
            let mut d = Vec::with_capacity(msg.len() + 4);
            d.extend_from_slice(&[0, 0, 0, 0]);
            d.extend_from_slice(msg);
            d
        } else {
            msg.to_vec()
        };
        self.stats.tx += 1;
        self.out.push_back(Output::Transmit(Transmit {
            local,
            remote,
            data,
        }));
    }
    pub fn keepalive(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.stats.keepalives_tx += 1;
        self.stats.tx += 1;
        self.out.push_back(Output::Transmit(Transmit {
            local,
            remote,
            data: vec![0xff],
        }));
    }
    pub fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }
    pub fn new_cookie(&mut self) -> u64 {
        loop {
            let s = self.rng.next_u64();
            if s != 0 {
                return s;
            }
        }
    }
    pub fn new_mid(&mut self) -> u32 {
        loop {
            let s = self.rng.next_u32();
            if s != 0 {
                return s;
            }
        }
    }
    pub fn new_child_spi(&mut self) -> u32 {
        loop {
            let s = self.rng.next_u32();
            if s > 255 && self.child_spis.insert(s) {
                return s;
            }
        }
    }
    pub fn free_child_spi(&mut self, s: u32) {
        self.child_spis.remove(&s);
    }
    pub fn new_policy_id(&mut self) -> u32 {
        self.next_policy_id = self.next_policy_id.wrapping_add(1).max(1);
        self.next_policy_id
    }
    /// lifetime - margin - random(0..fuzz% of margin), at least 1 s.
    pub fn rekey_time(&mut self, lifetime: Duration, margin: Duration, fuzz: u32) -> Duration {
        let f = margin.as_secs_f64() * f64::from(fuzz) / 100.0;
        let r = if f > 0.0 {
            self.rng.random_range(0.0..=f)
        } else {
            0.0
        };
        Duration::from_secs_f64((lifetime.as_secs_f64() - margin.as_secs_f64() - r).max(1.0))
    }
}

/// Work queued on an ISAKMP SA.
#[derive(Clone, Debug)]
pub(crate) enum Task {
    /// New IPsec SAs for these selectors (one quick mode per same-family pair).
    QuickMode {
        local: Vec<TsEntry>,
        remote: Vec<TsEntry>,
    },
    /// Rekey the IPsec SA with this inbound SPI.
    RekeyChild(u32),
    /// Re-authenticate: a new phase 1 replaces this one (handled by the engine).
    Reauth,
    /// Send DPD R-U-THERE.
    Dpd,
    /// Delete only the ISAKMP SA (its IPsec SAs moved to a replacement).
    DeleteIsakmp,
}
