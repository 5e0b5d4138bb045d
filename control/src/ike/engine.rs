//! The sans-IO IKEv2 engine: fed datagrams (with their addresses), time and
//! dataplane events; returns datagrams to send, dataplane operations (SAs and
//! policies to install or remove) and events. No sockets, no clock, no threads:
//! whole exchanges run in memory in the tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::sa::{Direction, Policy, PolicyAction, SaEvent, SaParams, TrafficSelector};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::config::{Connection, DpdAction, Identity, LocalAddr, RemoteAddr, StartAction};
use super::error::IkeError;
use super::sa::{IkeSa, Task};
use super::ts;
use super::wire::{self, exchange, notify, Header, Payloads, HEADER_LEN};

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
    /// A half-open SA is dropped after this long.
    pub half_open_timeout: Duration,
    /// NAT keepalive interval (RFC 3948 §4) when we are behind a NAT.
    pub keepalive: Duration,
    /// How long a replaced inbound SA is kept after a rekey, for packets in flight.
    pub drain: Duration,
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
            half_open_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(20),
            drain: Duration::from_secs(2),
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
    /// No connection for the addresses.
    NoConnection,
    /// Required payload missing or invalid content.
    Invalid,
}

impl IkeDrop {
    /// Every reason, for counters.
    pub const ALL: [IkeDrop; 9] = [
        Self::Malformed,
        Self::NotIke,
        Self::UnknownSpi,
        Self::MessageId,
        Self::Integrity,
        Self::Unexpected,
        Self::CookieRequired,
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
    /// Drops by reason (index = [`IkeDrop`] order).
    pub drops: [u64; 9],
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

/// Work an IKE SA hands back to the engine (it touches other SAs).
pub(crate) enum Deferred {
    Insert(Box<IkeSa>),
    Remove(u64),
    MoveChildren { from: u64, to: u64 },
    InitialContact { keep: u64 },
    Restart { conn: Arc<Connection> },
    Task { sa: u64, task: Task },
}

/// State shared by all IKE SAs of an engine.
pub(crate) struct Ctx {
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
    pub half_open: usize,
    pub deferred: Vec<Deferred>,
}

impl Ctx {
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

/// The IKEv2 engine.
pub struct Engine {
    pub(crate) ctx: Ctx,
    pub(crate) sas: HashMap<u64, IkeSa>,
    half_open_index: HashMap<(SocketAddr, u64), u64>,
}

impl Engine {
    /// An engine seeded from the operating system.
    pub fn new(settings: Settings) -> Self {
        Self::with_rng(settings, StdRng::from_os_rng())
    }

    /// A deterministic engine (tests).
    pub fn with_seed(settings: Settings, seed: u64) -> Self {
        Self::with_rng(settings, StdRng::seed_from_u64(seed))
    }

    fn with_rng(settings: Settings, mut rng: StdRng) -> Self {
        let mut cookie_secret = [0u8; 32];
        rng.fill_bytes(&mut cookie_secret);
        Engine {
            ctx: Ctx {
                settings,
                conns: Vec::new(),
                out: VecDeque::new(),
                rng,
                stats: Stats::default(),
                cookie_secret,
                cookie_prev: cookie_secret,
                cookie_rotate_at: None,
                default_route: None,
                next_policy_id: 0,
                trap_policies: HashMap::new(),
                child_spis: HashSet::new(),
                half_open: 0,
                deferred: Vec::new(),
            },
            sas: HashMap::new(),
            half_open_index: HashMap::new(),
        }
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.ctx.settings
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Half-open (responder, IKE_SA_INIT answered, IKE_AUTH not yet) SAs.
    pub fn half_open(&self) -> usize {
        self.ctx.half_open
    }

    /// The address `%defaultroute` stands for (the driver resolves it).
    pub fn set_default_route(&mut self, addr: Option<IpAddr>) {
        self.ctx.default_route = addr;
    }

    /// Configured connections.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.ctx.conns.iter().map(|c| c.as_ref())
    }

    /// Adds a connection and applies its start action (`start` initiates,
    /// `trap` installs trap policies).
    pub fn add_connection(&mut self, conn: Connection, now: Instant) -> Result<(), IkeError> {
        conn.validate()?;
        if self.ctx.conns.iter().any(|c| c.name == conn.name) {
            return Err(IkeError::Config(format!(
                "duplicate connection name {:?}",
                conn.name
            )));
        }
        let conn = Arc::new(conn);
        self.ctx.conns.push(conn.clone());
        match conn.start_action {
            StartAction::Trap => self.install_traps(&conn),
            StartAction::Start => {
                self.initiate(&conn.name, now)?;
            }
            StartAction::Add | StartAction::None => {}
        }
        Ok(())
    }

    /// Removes a connection: its trap policies go; established SAs stay until deleted.
    pub fn remove_connection(&mut self, name: &str) -> Result<(), IkeError> {
        let before = self.ctx.conns.len();
        self.ctx.conns.retain(|c| c.name != name);
        if self.ctx.conns.len() == before {
            return Err(IkeError::UnknownConnection(name.into()));
        }
        if let Some(traps) = self.ctx.trap_policies.remove(name) {
            for (id, _) in traps {
                self.ctx.dp(DataplaneOp::RemovePolicy { id });
            }
        }
        Ok(())
    }

    fn install_traps(&mut self, conn: &Connection) {
        let (l, r) = conn_ts(conn, self.ctx.default_route, None);
        let sels = ts::to_selectors(&l, &r);
        let mut v = Vec::new();
        for s in sels {
            let id = self.ctx.new_policy_id();
            self.ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id,
                tunnel_id: conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Trap,
                priority: 100,
            }));
            v.push((id, s));
        }
        self.ctx.trap_policies.insert(conn.name.clone(), v);
    }

    fn conn(&self, name: &str) -> Result<Arc<Connection>, IkeError> {
        self.ctx
            .conns
            .iter()
            .find(|c| c.name == name)
            .cloned()
            .ok_or_else(|| IkeError::UnknownConnection(name.into()))
    }

    /// Starts an IKE SA (and its first child SA) for a connection; returns the IKE SA id.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<u64, IkeError> {
        let conn = self.conn(name)?;
        self.initiate_conn(conn, None, now)
    }

    fn initiate_conn(
        &mut self,
        conn: Arc<Connection>,
        packet_ts: Option<(wire::TsEntry, wire::TsEntry)>,
        now: Instant,
    ) -> Result<u64, IkeError> {
        let local_ip = match conn.local_addr {
            LocalAddr::Addr(a) => a,
            LocalAddr::DefaultRoute | LocalAddr::Any => {
                self.ctx.default_route.ok_or_else(|| {
                    IkeError::Config(format!(
                        "connection {:?}: %defaultroute is not resolved (no default route address)",
                        conn.name
                    ))
                })?
            }
        };
        let remote_ip = match conn.remote_addr {
            RemoteAddr::Addr(a) => a,
            RemoteAddr::Any => {
                return Err(IkeError::Config(format!(
                    "connection {:?}: cannot initiate to %any",
                    conn.name
                )))
            }
        };
        let local = SocketAddr::new(local_ip, self.ctx.settings.ike_port);
        let remote = SocketAddr::new(remote_ip, self.ctx.settings.ike_port);
        let (mut tsi, mut tsr) = conn_ts(&conn, Some(local_ip), Some(remote_ip));
        if let Some((pi, pr)) = packet_ts {
            tsi.insert(0, pi);
            tsr.insert(0, pr);
        }
        let sa = IkeSa::initiate(&mut self.ctx, conn, local, remote, tsi, tsr, now);
        let id = sa.id;
        self.sas.insert(id, sa);
        self.process_deferred(now);
        Ok(id)
    }

    /// Deletes an IKE SA and its children (INFORMATIONAL delete).
    pub fn terminate_ike(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        sa.queue(&mut self.ctx, Task::DeleteIke, now);
        self.process_deferred(now);
        Ok(())
    }

    /// Deletes a child SA (by its inbound SPI).
    pub fn terminate_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), IkeError> {
        let id = self
            .sa_of_child(inbound_spi)
            .ok_or(IkeError::UnknownChild(inbound_spi))?;
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.delete_child_local(&mut self.ctx, inbound_spi, now);
        }
        self.process_deferred(now);
        Ok(())
    }

    /// Rekeys a child SA now (by its inbound SPI).
    pub fn rekey_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), IkeError> {
        let id = self
            .sa_of_child(inbound_spi)
            .ok_or(IkeError::UnknownChild(inbound_spi))?;
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.queue(&mut self.ctx, Task::RekeyChild(inbound_spi), now);
        }
        self.process_deferred(now);
        Ok(())
    }

    /// Rekeys an IKE SA now.
    pub fn rekey_ike(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        sa.queue(&mut self.ctx, Task::RekeyIke, now);
        self.process_deferred(now);
        Ok(())
    }

    /// Sends a liveness check now.
    pub fn dpd(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        sa.queue(&mut self.ctx, Task::Dpd, now);
        self.process_deferred(now);
        Ok(())
    }

    fn sa_of_child(&self, spi: u32) -> Option<u64> {
        self.sas
            .iter()
            .find(|(_, s)| s.has_child(spi))
            .map(|(id, _)| *id)
    }

    /// The keys of an IKE SA: for key-log export (Wireshark's IKEv2 decryption
    /// table) and the known-answer tests. Never logged by the engine.
    pub fn ike_keys(&self, id: u64) -> Option<&super::crypto::IkeKeys> {
        self.sas.get(&id).and_then(|s| s.keys())
    }

    /// How the peer of an IKE SA authenticated (method or signature scheme,
    /// certificate subject).
    pub fn peer_auth(&self, id: u64) -> Option<&super::sigauth::PeerAuth> {
        self.sas.get(&id).and_then(|s| s.peer_auth.as_ref())
    }

    /// IKE SA ids.
    pub fn ike_sas(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.sas.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Status of every IKE SA.
    pub fn status(&self) -> Vec<IkeSaStatus> {
        let mut v: Vec<IkeSaStatus> = self.sas.values().map(|s| s.status()).collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.ctx.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.ctx.cookie_rotate_at;
        for sa in self.sas.values() {
            if let Some(x) = sa.next_timeout(&self.ctx) {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        t
    }

    /// Runs timers: retransmissions, rekeys, expiries, DPD, keepalives, drains.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ctx.cookie_rotate_at.is_some_and(|t| now >= t) {
            self.ctx.cookie_prev = self.ctx.cookie_secret;
            self.ctx.rng.fill_bytes(&mut self.ctx.cookie_secret);
            self.ctx.cookie_rotate_at = Some(now + self.ctx.settings.cookie_secret_lifetime);
        }
        let ids: Vec<u64> = self.sas.keys().copied().collect();
        for id in ids {
            if let Some(sa) = self.sas.get_mut(&id) {
                if sa.next_timeout(&self.ctx).is_some_and(|t| t <= now) {
                    sa.on_timeout(&mut self.ctx, now);
                }
            }
        }
        self.process_deferred(now);
    }

    /// A dataplane event: soft/hard byte or packet lifetimes, sequence
    /// exhaustion, or an acquire from a trap policy.
    pub fn handle_dataplane_event(&mut self, ev: &SaEvent, now: Instant) {
        match ev {
            SaEvent::SoftExpire { spi, direction, .. }
            | SaEvent::HardExpire { spi, direction, .. } => {
                let hard = matches!(ev, SaEvent::HardExpire { .. });
                let found = self
                    .sas
                    .iter()
                    .find_map(|(id, s)| s.child_by_spi(*spi, *direction).map(|inb| (*id, inb)));
                if let Some((id, inbound)) = found {
                    if let Some(sa) = self.sas.get_mut(&id) {
                        if hard && sa.child_rekey_pending(inbound) {
                            // the dataplane has stopped the SA; the rekey under
                            // way replaces it (policies move to the new SA)
                        } else if hard {
                            sa.delete_child_local(&mut self.ctx, inbound, now);
                        } else if sa.conn.rekey {
                            sa.queue(&mut self.ctx, Task::RekeyChild(inbound), now);
                        }
                    }
                }
            }
            SaEvent::SeqExhausted { spi } => {
                let found = self.sas.iter().find_map(|(id, s)| {
                    s.child_by_spi(*spi, Direction::Outbound)
                        .map(|inb| (*id, inb))
                });
                if let Some((id, inbound)) = found {
                    if let Some(sa) = self.sas.get_mut(&id) {
                        sa.queue(&mut self.ctx, Task::RekeyChild(inbound), now);
                    }
                }
            }
            SaEvent::Acquire {
                policy_id,
                src,
                dst,
                proto,
            } => {
                let conn_name = self
                    .ctx
                    .trap_policies
                    .iter()
                    .find(|(_, v)| v.iter().any(|(id, _)| id == policy_id))
                    .map(|(n, _)| n.clone());
                let Some(name) = conn_name else { return };
                let Ok(conn) = self.conn(&name) else { return };
                let host = |a: IpAddr| wire::TsEntry {
                    proto: *proto,
                    start_port: 0,
                    end_port: 65535,
                    start: a,
                    end: a,
                };
                // an SA of this connection that is up or on its way
                let existing = self
                    .sas
                    .iter()
                    .filter(|(_, s)| s.conn.name == name && s.is_usable())
                    .map(|(id, s)| (*id, s.is_established(), s.has_children_or_pending()))
                    .next();
                match existing {
                    None => {
                        let _ = self.initiate_conn(conn, Some((host(*src), host(*dst))), now);
                    }
                    Some((id, true, false)) => {
                        let (mut l, mut r) = conn_ts(&conn, self.ctx.default_route, None);
                        l.insert(0, host(*src));
                        r.insert(0, host(*dst));
                        if let Some(sa) = self.sas.get_mut(&id) {
                            sa.queue(&mut self.ctx, Task::CreateChild { tsi: l, tsr: r }, now);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        self.process_deferred(now);
    }

    /// One received UDP datagram: `from` the peer, `to` our address and port.
    pub fn handle_datagram(&mut self, data: &[u8], from: SocketAddr, to: SocketAddr, now: Instant) {
        self.ctx.stats.rx += 1;
        let msg = if to.port() == self.ctx.settings.natt_port {
            if data == [0xff] {
                self.ctx.stats.keepalives_rx += 1;
                return;
            }
            if data.len() < 4 || data[..4] != [0, 0, 0, 0] {
                self.ctx.drop(IkeDrop::NotIke);
                return;
            }
            &data[4..]
        } else {
            data
        };
        let hdr = match Header::parse(msg) {
            Ok(h) => h,
            Err(_) => {
                self.ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        if hdr.exchange() == exchange::IKE_SA_INIT && !hdr.is_response() {
            if hdr.spi_r() != 0 || hdr.message_id() != 0 || !hdr.is_initiator() {
                self.ctx.drop(IkeDrop::Malformed);
                return;
            }
            self.responder_init(msg, hdr, from, to, now);
            self.process_deferred(now);
            return;
        }
        let ours = if hdr.is_initiator() {
            hdr.spi_r()
        } else {
            hdr.spi_i()
        };
        let Some(sa) = self.sas.get_mut(&ours) else {
            self.ctx.drop(IkeDrop::UnknownSpi);
            return;
        };
        sa.handle(&mut self.ctx, msg, hdr, from, to, now);
        self.process_deferred(now);
    }

    fn candidates(&self, from: SocketAddr, to: SocketAddr) -> Vec<Arc<Connection>> {
        self.ctx
            .conns
            .iter()
            .filter(|c| match c.local_addr {
                LocalAddr::Addr(a) => a == to.ip(),
                LocalAddr::DefaultRoute => self.ctx.default_route.is_none_or(|a| a == to.ip()),
                LocalAddr::Any => true,
            })
            .filter(|c| match c.remote_addr {
                RemoteAddr::Addr(a) => a == from.ip(),
                RemoteAddr::Any => true,
            })
            .filter(|c| c.start_action != StartAction::None || c.remote_addr != RemoteAddr::Any)
            .cloned()
            .collect()
    }

    fn responder_init(
        &mut self,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if let Some(&id) = self.half_open_index.get(&(from, hdr.spi_i())) {
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.retransmit_init_response(&mut self.ctx, msg);
                return;
            }
        }
        let p = match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN) {
            Ok(p) => p,
            Err(_) => {
                self.ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        let (Some(_), Some(_), Some(ni)) = (p.sa, p.ke, p.nonce) else {
            self.ctx.drop(IkeDrop::Invalid);
            return;
        };
        // cookies (§2.6) once the half-open count reaches the threshold
        if self.ctx.half_open >= self.ctx.settings.cookie_threshold {
            if self.ctx.cookie_rotate_at.is_none() {
                self.ctx.cookie_rotate_at = Some(now + self.ctx.settings.cookie_secret_lifetime);
            }
            let want = self
                .ctx
                .cookie(&self.ctx.cookie_secret, ni, from, hdr.spi_i());
            let want_prev = self
                .ctx
                .cookie(&self.ctx.cookie_prev, ni, from, hdr.spi_i());
            let ok = p.notifies.first().is_some_and(|n| {
                n.ntype == notify::COOKIE
                    && (super::crypto::ct_eq(n.data, &want)
                        || super::crypto::ct_eq(n.data, &want_prev))
            });
            if !ok {
                let mut pw = wire::PayloadWriter::new();
                pw.notify(0, &[], notify::COOKIE, &want);
                let resp = wire::build_plain(
                    hdr.spi_i(),
                    0,
                    exchange::IKE_SA_INIT,
                    wire::flags::RESPONSE,
                    0,
                    &pw,
                );
                self.ctx.stats.cookies_sent += 1;
                self.ctx.drop(IkeDrop::CookieRequired);
                self.ctx.transmit(to, from, &resp);
                return;
            }
        }
        let cands = self.candidates(from, to);
        if cands.is_empty() {
            self.ctx.drop(IkeDrop::NoConnection);
            let mut pw = wire::PayloadWriter::new();
            pw.notify(0, &[], notify::NO_PROPOSAL_CHOSEN, &[]);
            let resp = wire::build_plain(
                hdr.spi_i(),
                0,
                exchange::IKE_SA_INIT,
                wire::flags::RESPONSE,
                0,
                &pw,
            );
            self.ctx.transmit(to, from, &resp);
            return;
        }
        if let Some(sa) = IkeSa::respond_init(&mut self.ctx, cands, msg, hdr, &p, from, to, now) {
            let id = sa.id;
            self.half_open_index.insert((from, hdr.spi_i()), id);
            self.ctx.half_open += 1;
            let mut sa = sa;
            sa.half_open_counted = true;
            self.sas.insert(id, sa);
        }
    }

    fn process_deferred(&mut self, now: Instant) {
        // keep the half-open index in step with SAs that left the half-open state
        while !self.ctx.deferred.is_empty() {
            let d = std::mem::take(&mut self.ctx.deferred);
            for item in d {
                match item {
                    Deferred::Insert(sa) => {
                        let id = sa.id;
                        self.sas.insert(id, *sa);
                    }
                    Deferred::Remove(id) => {
                        if let Some(sa) = self.sas.remove(&id) {
                            sa.release(&mut self.ctx);
                        }
                    }
                    Deferred::MoveChildren { from, to } => {
                        let moved = self.sas.get_mut(&from).map(|s| s.take_children());
                        if let (Some(m), Some(t)) = (moved, self.sas.get_mut(&to)) {
                            t.adopt_children(m);
                        }
                    }
                    Deferred::InitialContact { keep } => {
                        let Some(k) = self.sas.get(&keep) else {
                            continue;
                        };
                        let (conn, rid, rip) =
                            (k.conn.name.clone(), k.remote_id.clone(), k.remote.ip());
                        let victims: Vec<u64> = self
                            .sas
                            .iter()
                            .filter(|(id, s)| {
                                **id != keep
                                    && s.conn.name == conn
                                    && s.remote_id == rid
                                    && (rid.is_some() || s.remote.ip() == rip)
                                    && s.is_established()
                            })
                            .map(|(id, _)| *id)
                            .collect();
                        for v in victims {
                            if let Some(mut s) = self.sas.remove(&v) {
                                s.purge(&mut self.ctx, DeleteReason::InitialContact);
                                self.ctx.event(Event::IkeDeleted {
                                    sa: v,
                                    conn: s.conn.name.clone(),
                                    reason: DeleteReason::InitialContact,
                                });
                                s.release(&mut self.ctx);
                            }
                        }
                    }
                    Deferred::Restart { conn } => {
                        let _ = self.initiate_conn(conn, None, now);
                    }
                    Deferred::Task { sa, task } => {
                        if let Some(s) = self.sas.get_mut(&sa) {
                            s.queue(&mut self.ctx, task, now);
                        }
                    }
                }
            }
        }
        let sas = &self.sas;
        self.half_open_index.retain(|_, id| sas.contains_key(id));
    }
}

/// The configured selectors of a connection (subnets, or the hosts themselves).
pub(crate) fn conn_ts(
    conn: &Connection,
    local_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
) -> (Vec<wire::TsEntry>, Vec<wire::TsEntry>) {
    let host = |a: IpAddr| ts::from_net(&ipnet::IpNet::from(a));
    let l = if conn.local_ts.is_empty() {
        match (conn.local_addr, local_ip) {
            (LocalAddr::Addr(a), _) | (_, Some(a)) => vec![host(a)],
            _ => vec![],
        }
    } else {
        conn.local_ts.iter().map(ts::from_net).collect()
    };
    let r = if conn.remote_ts.is_empty() {
        match (conn.remote_addr, remote_ip) {
            (RemoteAddr::Addr(a), _) | (_, Some(a)) => vec![host(a)],
            (RemoteAddr::Any, None) => vec![],
        }
    } else {
        conn.remote_ts.iter().map(ts::from_net).collect()
    };
    (l, r)
}

/// Matches a peer identity against a connection's expected remote identity.
pub(crate) fn id_matches(expected: &Option<Identity>, got: &Option<Identity>) -> bool {
    match (expected, got) {
        (None, _) => true,
        (Some(e), Some(g)) => e.matches(g),
        (Some(_), None) => false,
    }
}
