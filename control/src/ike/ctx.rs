//! What the IKE engine and its SAs share: settings, what they produce
//! ([`Output`]: datagrams, [`DataplaneOp`]s, [`Event`]s), their counters
//! ([`Stats`], [`IkeDrop`]) and the context every IKE SA runs in (`Ctx`).
//! The engine ([`super::engine`]) and the SA state machine (`super::sa`)
//! both use this module; neither is used by it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use espresso_core::sa::{Direction, Policy, SaParams, TrafficSelector};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use super::config::{Connection, DpdAction, Identity};
use super::error::IkeError;

/// Inbound SPIs kept for the driver between two calls of
/// `Engine::take_new_inbound_spis` (a driver that never asks loses the rest).
const MAX_NEW_SPIS: usize = 256;

/// Engine-wide settings (timers, ports, thresholds).
#[derive(Clone, Debug)]
pub struct Settings {
    /// IKE port (500).
    pub ike_port: u16,
    /// NAT-T port (4500): IKE with the non-ESP marker and UDP-encapsulated ESP.
    pub natt_port: u16,
    /// First retransmission timeout.
    pub retransmit_timeout: Duration,
    /// Backoff base: the n-th retransmission waits timeout * base^n.
    pub retransmit_base: f64,
    /// Retransmissions before the peer is declared dead.
    pub retransmit_tries: u32,
    /// Half-open IKE SAs above which cookies are demanded (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// Hard limits on half-open IKE SAs (in total and per source address):
    /// above them an IKE_SA_INIT request is dropped even with a valid cookie.
    pub half_open_limits: super::halfopen::Limits,
    /// Longest IKE_SA_INIT request accepted (after the non-ESP marker):
    /// the largest KE (MODP 8192, 1024 bytes), a long proposal list, nonce,
    /// notifies and a cookie fit well within it.
    pub max_init_message: usize,
    /// Longest other message accepted (certificate chains come in fragments,
    /// RFC 7383, each far smaller).
    pub max_message: usize,
    /// A half-open SA is dropped after this long.
    pub half_open_timeout: Duration,
    /// NAT keepalive interval (RFC 3948 §4) when we are behind a NAT.
    pub keepalive: Duration,
    /// How long a replaced inbound SA is kept after a rekey, for packets in flight.
    pub drain: Duration,
    /// How long the SAs of an IKE SA replaced by a fresh one (a degraded
    /// child's fallback) keep carrying traffic after the fresh child is up,
    /// before they are switched away from and drained (as IKEv1's
    /// `rekey_switch_delay`).
    pub rekey_switch_delay: Duration,
    /// A rekey responder installs the new outbound SA at the latest this long
    /// after the exchange, if the initiator's delete never comes.
    pub outbound_install_timeout: Duration,
    /// Cookie secret lifetime (rotated; the previous secret stays valid once).
    pub cookie_secret_lifetime: Duration,
    /// Wall clock for certificate validity (tests inject a fixed one).
    pub clock: super::auth_config::WallClock,
    /// IKE fragmentation (RFC 7383): announce it and use it when the peer does.
    pub fragmentation: bool,
    /// Largest IP datagram a sent fragment may make (IP + UDP headers
    /// included): 1280 fits every IPv6 path and IPv4 behind tunnels.
    pub fragment_size: usize,
    /// Reassembly limits: fragments per message, total bytes, and how long
    /// an incomplete message is kept.
    pub max_fragments: u16,
    /// See `max_fragments`.
    pub max_reassembly: usize,
    /// See `max_fragments`.
    pub reassembly_timeout: Duration,
    /// Announce SIGNATURE_HASH_ALGORITHMS (RFC 7427) and use AUTH method 14;
    /// false behaves like a peer without RFC 7427 (methods 1, 9, 10), as
    /// strongSwan's `signature_authentication = no`.
    pub rfc7427: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ike_port: 500,
            natt_port: 4500,
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            cookie_threshold: 10,
            half_open_limits: super::halfopen::Limits::DEFAULT,
            max_init_message: 3072,
            max_message: 16384,
            half_open_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
            drain: Duration::from_secs(2),
            rekey_switch_delay: Duration::from_secs(1),
            outbound_install_timeout: Duration::from_secs(30),
            cookie_secret_lifetime: Duration::from_secs(600),
            clock: Default::default(),
            fragmentation: true,
            fragment_size: 1280,
            max_fragments: 64,
            max_reassembly: 65536,
            reassembly_timeout: Duration::from_secs(30),
            rfc7427: true,
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port (which socket to send from).
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// UDP payload (with the non-ESP marker when sent on the NAT-T port).
    pub data: Vec<u8>,
}

/// SPIs held in the dataplane by anyone (the daemon's installer knows them
/// all), so that the engine neither picks an inbound SPI nor accepts a
/// peer's outbound SPI that another SA uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReservedSpis {
    /// Inbound SPIs in use.
    pub inbound: HashSet<u32>,
    /// Outbound SPIs in use.
    pub outbound: HashSet<u32>,
}

/// What the dataplane must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataplaneOp {
    /// Install (or replace) an SA.
    InstallSa(Box<SaParams>),
    /// Remove an SA.
    RemoveSa {
        /// SPI.
        spi: u32,
        /// Direction.
        direction: Direction,
    },
    /// Moves an installed SA to new outer addresses (MOBIKE, RFC 4555): same
    /// SPI, keys and sequence numbers; the outer header and UDP encapsulation
    /// change.
    MoveSa {
        /// SPI.
        spi: u32,
        /// Direction.
        direction: Direction,
        /// Our new address.
        local_addr: std::net::IpAddr,
        /// The peer's new address.
        remote_addr: std::net::IpAddr,
        /// UDP encapsulation at the new addresses (NAT-T), if any.
        encap: Option<espresso_core::sa::UdpEncap>,
    },
    /// Install or replace (same id) a policy.
    InstallPolicy(Policy),
    /// Remove a policy.
    RemovePolicy {
        /// Policy id.
        id: u32,
    },
}

/// Why an SA went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// Deleted on request of the local operator.
    Local,
    /// The peer deleted it.
    Peer,
    /// Lifetime over (no rekey).
    Expired,
    /// Replaced by a rekeyed SA.
    Rekeyed,
    /// The peer stopped answering.
    Dead,
    /// A new IKE SA with INITIAL_CONTACT replaced it.
    InitialContact,
    /// Half-open SA never completed.
    HalfOpenTimeout,
    /// Negotiation failed.
    Failed(IkeError),
}

/// What espresso does about a child SA whose rekey was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DegradedNext {
    /// It starts its own rekey (with PFS) now.
    OwnRekey,
    /// Its own rekey was refused too: a fresh IKE SA and child SA are being
    /// negotiated (`start` connections).
    FreshChild,
    /// Its own rekey was refused too and the connection does not initiate
    /// (`add`): traffic stops when the child expires.
    TrafficStops,
}

/// Something the operator (log, status) should know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An IKE SA is up.
    IkeEstablished {
        /// IKE SA id (our SPI).
        sa: u64,
        /// Connection name.
        conn: String,
        /// Our address.
        local: SocketAddr,
        /// Peer address.
        remote: SocketAddr,
        /// Peer identity.
        remote_id: String,
        /// Negotiated algorithms, strongSwan notation.
        proposal: String,
        /// We initiated.
        initiator: bool,
        /// We are behind a NAT.
        nat_local: bool,
        /// The peer is behind a NAT.
        nat_remote: bool,
    },
    /// A child SA pair is installed.
    ChildEstablished {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Inbound SPI.
        inbound_spi: u32,
        /// Outbound SPI.
        outbound_spi: u32,
        /// Algorithms.
        proposal: String,
        /// Local selectors.
        local_ts: Vec<String>,
        /// Remote selectors.
        remote_ts: Vec<String>,
        /// ESP in UDP.
        encap: bool,
    },
    /// A child SA was replaced by a new one.
    ChildRekeyed {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Old inbound SPI.
        old_inbound: u32,
        /// Old outbound SPI.
        old_outbound: u32,
        /// New inbound SPI.
        new_inbound: u32,
        /// New outbound SPI.
        new_outbound: u32,
    },
    /// Both ends rekeyed the same child SA at once (IKEv1): one new pair
    /// carries our traffic, the other is redundant; both stay until the
    /// peer's choice is seen ([`Event::ChildCollisionSettled`]).
    ChildRekeyCollision {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Inbound SPI of the pair kept.
        kept_inbound: u32,
        /// Outbound SPI of the pair kept.
        kept_outbound: u32,
        /// Inbound SPI of the redundant pair.
        redundant_inbound: u32,
        /// Outbound SPI of the redundant pair.
        redundant_outbound: u32,
    },
    /// A rekey collision settled (IKEv1): the peer was seen sending on one
    /// pair only; that pair carries the traffic, the other was deleted.
    ChildCollisionSettled {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Inbound SPI of the pair kept.
        kept_inbound: u32,
        /// Outbound SPI of the pair kept.
        kept_outbound: u32,
        /// Inbound SPI of the pair deleted.
        deleted_inbound: u32,
        /// Outbound SPI of the pair deleted.
        deleted_outbound: u32,
        /// The pair kept is the one our rule had made redundant (the
        /// peer picked the other, and we followed).
        followed_peer: bool,
    },
    /// A child SA is gone.
    ChildDeleted {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Inbound SPI.
        inbound_spi: u32,
        /// Outbound SPI.
        outbound_spi: u32,
        /// Why.
        reason: DeleteReason,
    },
    /// A child SA could not be rekeyed (the peer's rekey or ours was
    /// refused): it carries traffic until it expires; `next` says what
    /// espresso does about it.
    ChildDegraded {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Inbound SPI of the child that could not be rekeyed.
        inbound_spi: u32,
        /// Why, in words.
        reason: String,
        /// When the child's hard lifetime ends (its SAs are removed then).
        expires: Instant,
        /// What happens next.
        next: DegradedNext,
    },
    /// A new child SA replaced one the peer deleted (`start` connections,
    /// DPD action restart): how long the connection had no child SA.
    ChildReplaced {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// From the peer's delete to the new child's installation.
        gap: Duration,
    },
    /// An IKE SA was replaced by a rekeyed one.
    IkeRekeyed {
        /// Connection name.
        conn: String,
        /// Old id.
        old_sa: u64,
        /// New id.
        new_sa: u64,
    },
    /// An IKE SA is gone.
    IkeDeleted {
        /// IKE SA id.
        sa: u64,
        /// Connection name (empty for half-open SAs that matched none).
        conn: String,
        /// Why.
        reason: DeleteReason,
    },
    /// The peer stopped answering; the DPD action was applied.
    DpdDead {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// The action taken.
        action: DpdAction,
    },
    /// No proposal matched: both sides' proposals, for the log and `status`.
    ProposalMismatch {
        /// Connection name (if one was found).
        conn: String,
        /// "IKE" or "ESP".
        kind: &'static str,
        /// Peer address.
        peer: SocketAddr,
        /// What the peer offered (responder side), or "?" when we initiated
        /// and the peer only said NO_PROPOSAL_CHOSEN.
        offered: Vec<String>,
        /// What we have configured.
        configured: Vec<String>,
        /// We were the responder.
        local_responder: bool,
    },
    /// Authentication failed.
    AuthFailed {
        /// Connection name (if known).
        conn: String,
        /// Peer address.
        peer: SocketAddr,
        /// Explanation.
        reason: String,
    },
    /// The IKE SA and its child SAs moved to new addresses (MOBIKE).
    AddressesUpdated {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Our address now.
        local: SocketAddr,
        /// The peer's address now.
        remote: SocketAddr,
        /// We are behind a NAT.
        nat_local: bool,
        /// The peer is behind a NAT.
        nat_remote: bool,
        /// Child SAs moved in the dataplane.
        children: usize,
    },
    /// A MOBIKE address update failed (the SA stays where it was).
    AddressUpdateFailed {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Why.
        reason: String,
    },
    /// Creating a child SA failed (the IKE SA may stay up).
    ChildFailed {
        /// IKE SA id.
        sa: u64,
        /// Connection name.
        conn: String,
        /// Why.
        error: IkeError,
    },
}

/// Why an incoming datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IkeDrop {
    /// Not a well-formed IKE message.
    Malformed,
    /// On the NAT-T port without the non-ESP marker (ESP, not ours).
    NotIke,
    /// No IKE SA with that SPI.
    UnknownSpi,
    /// Message ID outside the window.
    MessageId,
    /// Integrity check of the encrypted payload failed.
    Integrity,
    /// Response to nothing we asked, or exchange not allowed in this state.
    Unexpected,
    /// Half-open limit reached and no valid cookie.
    CookieRequired,
    /// Longer than `Settings::max_init_message` (IKE_SA_INIT) or `max_message`.
    TooBig,
    /// The hard limit on half-open SAs in total is reached.
    HalfOpenLimit,
    /// The source address has its limit of half-open SAs.
    HalfOpenPerSource,
    /// No connection for the addresses.
    NoConnection,
    /// Required payload missing or invalid content.
    Invalid,
}

impl IkeDrop {
    /// Every reason, for counters.
    pub const ALL: [IkeDrop; 12] = [
        Self::Malformed,
        Self::NotIke,
        Self::UnknownSpi,
        Self::MessageId,
        Self::Integrity,
        Self::Unexpected,
        Self::CookieRequired,
        Self::TooBig,
        Self::HalfOpenLimit,
        Self::HalfOpenPerSource,
        Self::NoConnection,
        Self::Invalid,
    ];
    /// Counter name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotIke => "not_ike",
            Self::UnknownSpi => "unknown_spi",
            Self::MessageId => "message_id",
            Self::Integrity => "integrity",
            Self::Unexpected => "unexpected",
            Self::CookieRequired => "cookie_required",
            Self::TooBig => "too_big",
            Self::HalfOpenLimit => "half_open_limit",
            Self::HalfOpenPerSource => "half_open_per_source",
            Self::NoConnection => "no_connection",
            Self::Invalid => "invalid",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Engine counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Datagrams received.
    pub rx: u64,
    /// Datagrams sent.
    pub tx: u64,
    /// Retransmitted requests.
    pub retransmits: u64,
    /// NAT keepalives received.
    pub keepalives_rx: u64,
    /// NAT keepalives sent.
    pub keepalives_tx: u64,
    /// COOKIE replies sent.
    pub cookies_sent: u64,
    /// IKE SAs established.
    pub ike_established: u64,
    /// Child SAs established (including rekeys).
    pub child_established: u64,
    /// Child SAs refused because the peer chose as our outbound SPI one that
    /// another SA already uses (its SA would replace that tunnel's).
    pub child_spi_in_use: u64,
    /// Drops by reason (index = [`IkeDrop`] order).
    pub drops: [u64; IkeDrop::ALL.len()],
}

impl Stats {
    /// Count of one drop reason.
    pub fn drop_count(&self, r: IkeDrop) -> u64 {
        self.drops[r.index()]
    }
    /// Total drops.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Everything the engine produces, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A datagram.
    Transmit(Transmit),
    /// A dataplane operation (apply in order: make-before-break depends on it).
    Dataplane(DataplaneOp),
    /// An event.
    Event(Event),
}

/// State shared by all IKE SAs of an engine. `D` is the work an IKE SA
/// hands back to the engine (`sa::Deferred`): generic so that this module
/// needs nothing of the SA's.
pub(crate) struct Ctx<D> {
    pub settings: Settings,
    pub conns: Vec<Arc<Connection>>,
    pub out: VecDeque<Output>,
    pub rng: StdRng,
    pub stats: Stats,
    pub cookie_secret: [u8; 32],
    pub cookie_prev: [u8; 32],
    pub cookie_rotate_at: Option<Instant>,
    pub default_route: Option<IpAddr>,
    pub next_policy_id: u32,
    pub trap_policies: HashMap<String, Vec<(u32, TrafficSelector)>>,
    pub child_spis: HashSet<u32>,
    /// Inbound SPIs handed out since the driver last asked
    /// ([`super::engine::Engine::take_new_inbound_spis`]; at most
    /// `MAX_NEW_SPIS`).
    pub new_spis: Vec<u32>,
    /// SPIs other owners (manual tunnels, other keying engines, and this
    /// engine's installed children) hold in the dataplane, by direction, as
    /// the daemon last told us ([`super::engine::Engine::set_reserved_spis`]).
    pub reserved: ReservedSpis,
    pub half_open: super::halfopen::HalfOpen,
    pub deferred: Vec<D>,
}

impl<D> Ctx<D> {
    pub fn drop(&mut self, r: IkeDrop) {
        self.stats.drops[r.index()] += 1;
    }
    pub fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }
    pub fn dp(&mut self, op: DataplaneOp) {
        self.out.push_back(Output::Dataplane(op));
    }
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
    pub fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }
    pub fn new_ike_spi(&mut self) -> u64 {
        loop {
            let s = self.rng.next_u64();
            if s != 0 {
                return s;
            }
        }
    }
    pub fn new_child_spi(&mut self) -> u32 {
        loop {
            let s = self.rng.next_u32();
            if s > 255 && !self.reserved.inbound.contains(&s) && self.child_spis.insert(s) {
                if self.new_spis.len() < MAX_NEW_SPIS {
                    self.new_spis.push(s);
                }
                return s;
            }
        }
    }
    pub fn free_child_spi(&mut self, s: u32) {
        self.child_spis.remove(&s);
    }
    /// True if a peer's SPI (our outbound SPI) is already used by an
    /// outbound SA in the dataplane: a child with it must be refused (the
    /// dataplane finds outbound SAs by SPI; see `daemon::installer`).
    pub fn outbound_spi_taken(&self, spi: u32) -> bool {
        self.reserved.outbound.contains(&spi)
    }
    pub fn new_policy_id(&mut self) -> u32 {
        self.next_policy_id = self.next_policy_id.wrapping_add(1).max(1);
        self.next_policy_id
    }
    /// A duration from `base` minus a random part of up to `fuzz` percent of `margin`.
    pub fn rekey_time(
        &mut self,
        lifetime: Duration,
        margin: Duration,
        fuzz_percent: u32,
    ) -> Duration {
        let fuzz = margin.as_secs_f64() * f64::from(fuzz_percent) / 100.0;
        let r = if fuzz > 0.0 {
            self.rng.random_range(0.0..=fuzz)
        } else {
            0.0
        };
        let t = lifetime.as_secs_f64() - margin.as_secs_f64() - r;
        Duration::from_secs_f64(t.max(1.0))
    }
    pub fn cookie(&self, secret: &[u8; 32], ni: &[u8], from: SocketAddr, spi_i: u64) -> Vec<u8> {
        let ip = match from.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mut c = vec![1u8];
        c.extend_from_slice(&super::crypto::sha256(&[
            ni,
            &ip,
            &from.port().to_be_bytes(),
            &spi_i.to_be_bytes(),
            secret,
        ]));
        c
    }
}

/// Matches a peer identity against a connection's expected remote identity.
pub(crate) fn id_matches(expected: &Option<Identity>, got: &Option<Identity>) -> bool {
    match (expected, got) {
        (None, _) => true,
        (Some(e), Some(g)) => e.matches(g),
        (Some(_), None) => false,
    }
}
