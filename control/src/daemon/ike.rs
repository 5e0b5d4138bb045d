//! The bridge between the IKE engine and the dataplane: runs the sans-IO
//! [`crate::ike::Engine`] (IKEv2) for the `[[connection]]`s of the
//! configuration. Datagrams from the UDP sockets ([`super::ikeio`]) and the
//! engine's timer go in; datagrams, SAs and policies come out. SAs and
//! policies go to the dataplane through the [`Installer`], as manual
//! tunnels' do, in the engine's order (the new inbound SA of a rekey before
//! the outbound switch: make-before-break). Dataplane events (byte/packet
//! lifetimes, sequence exhaustion, acquires of trap policies) go back to the
//! engine.
//!
//! A second keying engine (IKEv1) gets a bridge of its own next to this one:
//! its own [`EngineSas`] and policy-id ranges ([`policy_id::NEXT_ENGINE`]),
//! the same [`Installer`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use espresso_core::drop::DropReason;
use espresso_core::sa::{Direction, SaEvent};
use tracing::{error, info, warn};

use super::api::{self, exit, Response};
use super::barrier::ApplyBarrier;
use super::bridge::{self, ConnSet};
use super::engine_sas::{EngineSas, KeyingEngine};
use super::events::{degraded_next, failure, log_progress, wall_clock};
use super::ikeio::{Datagram, IkeIo, Queues, RxDrops};
use super::installer::{policy_id, Installer};
use crate::config::connection::IkeConn;
use crate::ike::{self, DataplaneOp, Event, Output, RemoteAddr};

/// How long after a new child replaced one the peer deleted its gap is
/// reported: the dataplane applies the new policies and publishes its
/// counters within milliseconds, so the count includes the gap's last
/// packets.
const GAP_SETTLE: Duration = Duration::from_millis(100);

/// One configured connection.
pub struct IkeConnItem {
    /// Its configuration.
    pub cfg: IkeConn,
    /// Dataplane tunnel id (counters, tap).
    pub id: u32,
    /// A child SA whose rekey was refused (PFS mismatch) and runs until it
    /// expires, until a rekey or a fresh child SA succeeds.
    pub degraded: Option<Degraded>,
    /// The last failure (proposal mismatch, authentication, dead peer), until
    /// a child SA comes up.
    pub error: Option<String>,
    /// The dataplane's `policy_discard` count when the peer deleted the
    /// connection's child SA (the hold policies took over its traffic).
    held_from: Option<u64>,
}

/// A gap (peer delete to new child) to report once the counters settled.
struct GapReport {
    conn: String,
    gap: Duration,
    held_from: Option<u64>,
    due: Instant,
}

/// Why a connection runs degraded and when its SAs expire.
pub struct Degraded {
    /// The refusal in words.
    pub why: String,
    /// When the child SA's hard lifetime ends.
    pub expires: Instant,
    /// The same as a UTC time of day.
    pub expires_at: String,
}

/// Everything IKE in the daemon.
pub struct IkeBridge {
    /// The protocol engine.
    pub engine: ike::Engine,
    /// Connections in configuration order.
    pub conns: Vec<IkeConnItem>,
    /// The SAs and policies the engine (and the hold policies) installed.
    pub sas: EngineSas,
    io: Option<Arc<IkeIo>>,
    /// Why the sockets could not be opened.
    pub io_error: Option<String>,
    /// Recent explanations for `status`.
    pub notes: VecDeque<String>,
    /// `ikev2 = propose` connections whose IKEv2 attempt failed the way
    /// Openswan falls back on (no answer, INVALID_MAJOR_VERSION; and
    /// NO_PROPOSAL_CHOSEN, which an IKEv1-only strongSwan answers): the daemon
    /// initiates them with IKEv1 ([`take_fallbacks`](Self::take_fallbacks)).
    fallback: Vec<String>,
    /// The installer's SPI generation the engine last saw.
    spi_seen: Option<u64>,
    /// Datagrams the socket threads queued or dropped (both engines').
    pub rx_drops: Arc<RxDrops>,
    /// The flood limits of `[daemon]` (queue sizes for the sockets).
    pub limits: crate::config::IkeLimits,
    /// Gaps after a peer's delete waiting for their report.
    gaps: Vec<GapReport>,
    /// Outputs held until the dataplane applied a new inbound SA.
    barrier: ApplyBarrier,
}

/// Packets the dataplane's workers discarded by policy so far (the hold
/// policies of every connection count here).
fn policy_discards(inst: &Installer) -> u64 {
    let shm = inst.shm();
    (0..shm.geometry().max_workers)
        .filter_map(|w| shm.read_worker(w).ok().flatten())
        .map(|v| v.stats.drops[DropReason::PolicyDiscard.index()])
        .sum()
}

impl Default for IkeBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl IkeBridge {
    /// An engine with default settings and no connections.
    pub fn new() -> IkeBridge {
        Self::with_settings(&crate::config::DaemonSettings::default())
    }

    /// An engine with the IKE settings of `[daemon]` (fragmentation, fragment
    /// size, RFC 7427, flood limits) and no connections.
    pub fn with_settings(d: &crate::config::DaemonSettings) -> IkeBridge {
        let l = d.ike_limits;
        let settings = ike::Settings {
            fragmentation: d.fragmentation,
            fragment_size: d.fragment_size,
            rfc7427: d.rfc7427,
            cookie_threshold: l.cookie_threshold,
            half_open_limits: ike::halfopen::Limits {
                global: l.half_open,
                per_source: l.half_open_per_source,
            },
            max_init_message: l.max_init_message,
            max_message: l.max_message,
            ..ike::Settings::default()
        };
        IkeBridge {
            engine: ike::Engine::new(settings),
            conns: Vec::new(),
            sas: EngineSas::default(),
            io: None,
            io_error: None,
            notes: VecDeque::new(),
            fallback: Vec::new(),
            spi_seen: None,
            rx_drops: Arc::default(),
            limits: l,
            gaps: Vec::new(),
            barrier: ApplyBarrier::default(),
        }
    }

    /// The connections to initiate with IKEv1 now (see `fallback`).
    pub fn take_fallbacks(&mut self) -> Vec<String> {
        std::mem::take(&mut self.fallback)
    }

    /// Tells the engine which SPIs the dataplane holds (when they changed),
    /// before it decides on a peer's child SA.
    fn sync_spis(&mut self, inst: &Installer) {
        let g = inst.spi_generation();
        if self.spi_seen == Some(g) {
            return;
        }
        self.spi_seen = Some(g);
        self.engine.set_reserved_spis(ike::ReservedSpis {
            inbound: inst.held_spis(Direction::Inbound).collect(),
            outbound: inst.held_spis(Direction::Outbound).collect(),
        });
    }

    fn conn_mut(&mut self, name: &str) -> Option<&mut IkeConnItem> {
        self.conns.iter_mut().find(|c| c.cfg.name == name)
    }

    fn note(&mut self, conn: &str, text: String) {
        if let Some(c) = self.conn_mut(conn) {
            c.error = Some(text.clone());
        }
        bridge::push_note(&mut self.notes, conn, text);
    }

    /// Whether `name` is an IKE connection.
    pub fn is_ike(&self, name: &str) -> bool {
        self.conns.iter().any(|c| c.cfg.name == name)
    }

    /// Names of the connections.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.conns.iter().map(|c| c.cfg.name.as_str())
    }

    /// The sockets, shared with the IKEv1 bridge (`None` before
    /// [`attach_io`](Self::attach_io) or when they could not be opened).
    pub fn io(&self) -> Option<Arc<IkeIo>> {
        self.io.clone()
    }

    /// Loads the configuration's connections into the engine (at start).
    pub fn init(&mut self, inst: &mut Installer, conns: Vec<IkeConn>) {
        self.engine
            .set_default_route(super::ikeio::default_route_addr());
        for c in conns {
            self.add(inst, c);
        }
    }

    /// Gives the engine its sockets (`espresso daemon` does this; tests of
    /// the daemon alone run without).
    pub fn attach_io(&mut self, inst: &mut Installer, tx: Queues) {
        let s = self.engine.settings();
        match IkeIo::open([s.ike_port, s.natt_port]) {
            Ok(io) => {
                if let Err(e) = io.spawn(tx, self.rx_drops.clone()) {
                    error!("IKE socket threads: {e}");
                    self.io_error = Some(e.to_string());
                    return;
                }
                info!(
                    "IKE listening on UDP {} and {}",
                    self.engine.settings().ike_port,
                    self.engine.settings().natt_port
                );
                self.io = Some(Arc::new(io));
                self.io_error = None;
            }
            Err(e) => {
                if self.conns.is_empty() {
                    warn!("IKE sockets unavailable ({e}); only manual tunnels can run");
                } else {
                    error!("IKE sockets unavailable: {e}: IKE connections cannot run");
                }
                self.io_error = Some(e);
            }
        }
        self.drain(inst);
    }

    fn add(&mut self, inst: &mut Installer, mut c: IkeConn) {
        let Some(id) = inst.alloc_tunnel_id() else {
            error!("{}: out of tunnel ids", c.name);
            return;
        };
        c.conn.tunnel_id = id;
        let name = c.name.clone();
        let engine_conn = match ike::Connection::load(c.conn.clone()) {
            Ok(x) => x,
            Err(errs) => {
                // checked when the configuration was loaded: only a file
                // changed since then gets here
                let why = errs
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                error!("{name}: {why}");
                self.conns.push(IkeConnItem {
                    cfg: c,
                    id,
                    degraded: None,
                    error: None,
                    held_from: None,
                });
                self.note(&name, why);
                return;
            }
        };
        self.conns.push(IkeConnItem {
            cfg: c,
            id,
            degraded: None,
            error: None,
            held_from: None,
        });
        let hold = bridge::hold_policies(policy_id::IKEV2_HOLD, id, &engine_conn);
        if let Err(e) = self.engine.add_connection(engine_conn, Instant::now()) {
            error!("{name}: {e}");
            self.note(&name, e.to_string());
        } else {
            info!("{name}: IKE connection loaded");
            for p in hold {
                self.sas.add_policy(inst, p);
            }
        }
        self.drain(inst);
    }

    /// Deletes every IKE SA of a connection (INFORMATIONAL delete to the peer).
    fn terminate(&mut self, inst: &mut Installer, name: &str) -> usize {
        let n = self.engine.terminate_conn(name);
        self.drain(inst);
        n
    }

    /// MOBIKE without the operator: an established IKE SA we initiated with
    /// MOBIKE whose local address is gone from this host (it can no longer be
    /// bound) moves to the source address the routing table now picks towards
    /// its peer. Called about once a second; an SA with no route to its peer
    /// yet is tried again next time.
    pub fn check_addresses(&mut self, inst: &mut Installer) {
        let now = Instant::now();
        let mut present: std::collections::HashMap<std::net::IpAddr, bool> =
            std::collections::HashMap::new();
        let mut moves = Vec::new();
        for s in self.engine.status() {
            if !s.mobike || !s.initiator || s.state != "ESTABLISHED" {
                continue;
            }
            let old = s.local.ip();
            if *present
                .entry(old)
                .or_insert_with(|| super::ikeio::address_present(old))
            {
                continue;
            }
            if let Some(new) = super::ikeio::source_towards(s.remote.ip()) {
                if new != old {
                    moves.push((s.id, s.conn, old, new));
                }
            }
        }
        for (id, conn, old, new) in &moves {
            info!("{conn}: our address {old} is gone; moving IKE SA {id:#018x} to {new} (MOBIKE)");
            if let Err(e) = self.engine.move_sa(*id, *new, now) {
                warn!("{conn}: moving IKE SA {id:#018x} to {new}: {e}");
            }
        }
        if !moves.is_empty() {
            self.drain(inst);
        }
    }

    /// `espresso move NAME ADDRESS`: our address for connection `name` is now
    /// `addr` (MOBIKE, RFC 4555): each of its IKE SAs with MOBIKE sends
    /// UPDATE_SA_ADDRESSES from it; the child SAs follow when the peer answers.
    pub fn move_local(
        &mut self,
        inst: &mut Installer,
        name: &str,
        addr: std::net::IpAddr,
    ) -> Response {
        let now = Instant::now();
        let ids = self.engine.sa_ids(name);
        let mut moved = 0;
        let mut why = Vec::new();
        for id in &ids {
            match self.engine.move_sa(*id, addr, now) {
                Ok(()) => moved += 1,
                Err(e) => why.push(format!("IKE SA {id:#018x}: {e}")),
            }
        }
        self.drain(inst);
        if moved == 0 {
            let mut r = Response::ok(format!(
                "{name}: nothing to move to {addr}{}{}",
                if ids.is_empty() { " (no IKE SA)" } else { ": " },
                why.join("; ")
            ));
            r.code = exit::FAILED;
            return r;
        }
        info!("{name}: moving {moved} IKE SA(s) to {addr} (MOBIKE)");
        Response::ok(format!(
            "{name}: moving {moved} IKE SA(s) to {addr} (UPDATE_SA_ADDRESSES sent)"
        ))
    }

    /// The keys of the installed child SAs of connection `name` (all
    /// connections: `None`), for `espresso keys` (the caller checks that key
    /// export is allowed). Nothing is logged here.
    pub fn keys(&self, name: Option<&str>, out: &mut Vec<api::SaKeys>) {
        let conn_of = |id| {
            self.conns
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.cfg.name.as_str())
        };
        bridge::keys(&self.sas, conn_of, name, out);
    }

    /// `espresso up NAME` for a connection: initiate.
    pub fn up(&mut self, inst: &mut Installer, name: &str) -> Response {
        let Some(c) = self.conns.iter().find(|c| c.cfg.name == name) else {
            return Response::err(exit::NOT_FOUND, format!("no connection {name:?}"));
        };
        if c.cfg.conn.remote_addr == RemoteAddr::Any {
            return Response::err(
                exit::STATE,
                format!("{name}: remote is %any: it can only respond"),
            );
        }
        if let Some(e) = &self.io_error {
            return Response::err(
                exit::FAILED,
                format!("{name}: IKE sockets unavailable: {e}"),
            );
        }
        if let Some(c) = self.conn_mut(name) {
            c.error = None;
        }
        self.sync_spis(inst);
        match self.engine.initiate(name, Instant::now()) {
            Ok(id) => {
                self.drain(inst);
                info!("{name}: initiating IKE SA {id:#018x}");
                Response::ok(format!("{name}: initiating"))
            }
            Err(e) => Response::err(exit::FAILED, format!("{name}: {e}")),
        }
    }

    /// `espresso down NAME` for a connection: delete its SAs.
    pub fn down(&mut self, inst: &mut Installer, name: &str) -> Response {
        let n = self.terminate(inst, name);
        info!("{name}: down ({n} IKE SA(s) deleted)");
        Response::ok(format!("{name}: down ({n} IKE SA(s) deleted)"))
    }

    /// Reload of connections: `new` is the whole new set (`only`: just that one).
    pub fn reload(
        &mut self,
        inst: &mut Installer,
        new: Vec<IkeConn>,
        only: Option<&str>,
    ) -> Vec<String> {
        self.engine
            .set_default_route(super::ikeio::default_route_addr());
        bridge::reload(self, inst, new, only, "")
    }

    /// A datagram from the sockets.
    pub fn datagram(&mut self, inst: &mut Installer, d: Datagram) {
        self.sync_spis(inst);
        self.engine
            .handle_datagram(&d.data, d.from, d.to, Instant::now());
        self.drain(inst);
    }

    /// When the engine's timer fires next.
    pub fn timeout(&self) -> Option<Instant> {
        let gap = self.gaps.iter().map(|g| g.due).min();
        let held = self.barrier.timeout();
        self.engine
            .poll_timeout()
            .into_iter()
            .chain(gap)
            .chain(held)
            .min()
    }

    /// Runs the engine's timers when they are due.
    pub fn timers(&mut self, inst: &mut Installer) {
        self.sync_spis(inst);
        let now = Instant::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain(inst);
        self.report_gaps(inst, now);
    }

    /// Logs the gaps whose counters settled: the time without a child SA
    /// and the packets the hold policies discarded meanwhile.
    fn report_gaps(&mut self, inst: &Installer, now: Instant) {
        if !self.gaps.iter().any(|g| g.due <= now) {
            return;
        }
        let total = inst.dp_live().then(|| policy_discards(inst));
        let (due, wait): (Vec<GapReport>, Vec<GapReport>) = std::mem::take(&mut self.gaps)
            .into_iter()
            .partition(|g| g.due <= now);
        self.gaps = wait;
        for g in due {
            let held = match (g.held_from, total) {
                (Some(a), Some(b)) => format!("{} packets", b.saturating_sub(a)),
                _ => "an unknown number of packets (no dataplane counters)".to_string(),
            };
            info!(
                "{}: new child SA {:.3} s after the peer deleted the previous one; {held} held in between (discarded by the hold policies, policy_discard; counted over all tunnels)",
                g.conn,
                g.gap.as_secs_f64()
            );
        }
    }

    /// A dataplane event for an SA or policy of IKE; false if not ours.
    pub fn event(&mut self, inst: &mut Installer, ev: &SaEvent) -> bool {
        let range = policy_id::IKEV2;
        let Some(ev) = bridge::own_event(&self.sas, ev, range, "a trap policy", "dataplane") else {
            return false;
        };
        self.sync_spis(inst);
        self.engine.handle_dataplane_event(&ev, Instant::now());
        self.drain(inst);
        true
    }

    /// Applies everything the engine produced, in order.
    fn drain(&mut self, inst: &mut Installer) {
        if self.io.is_none() && self.io_error.is_none() {
            // sockets not attached yet (daemon start): keep the outputs queued
            return;
        }
        // An inbound SA is live in the dataplane before the peer hears of it
        // (our CREATE_CHILD_SA/IKE_AUTH answer, or the DELETE after a rekey
        // we started, which leaves a second later in another call): see
        // `barrier`.
        // Inbound SPIs offered to peers: the dataplane holds ESP for them
        // that arrives before the SA (see `Engine::take_new_inbound_spis`).
        for spi in self.engine.take_new_inbound_spis() {
            if inst.dp_live() {
                if let Err(e) = inst.shm_mut().expect_spi(spi) {
                    warn!("announcing inbound SPI {spi:#010x} to the dataplane: {e}");
                }
            }
        }
        let mut queue = self.barrier.released(inst);
        loop {
            let Some(o) = queue.pop_front().or_else(|| self.engine.poll_output()) else {
                break;
            };
            let Some(o) = self.barrier.pass(inst, o, &mut queue) else {
                continue;
            };
            match o {
                Output::Transmit(t) => bridge::send(&self.io, &self.io_error, &t, "IKE"),
                Output::Dataplane(op) => self.apply(inst, op),
                Output::Event(e) => {
                    self.count_gap(inst, &e);
                    self.log(e)
                }
            }
        }
        self.sync_spis(inst);
        if self.sas.delete_refused(&mut self.engine, "child SA") {
            self.drain(inst);
        }
    }

    fn apply(&mut self, inst: &mut Installer, op: DataplaneOp) {
        // A refused SA is counted by the installer (its policies discard).
        let _ = self.sas.apply(inst, op, policy_id::IKEV2);
    }

    /// After a dataplane (re)attached and was flushed: installs every IKE SA
    /// and policy again. Outbound SAs continue above the highest sequence
    /// number the old dataplane may have used, and their children are rekeyed.
    pub fn resync(&mut self, inst: &mut Installer) {
        // Fresh keys for SAs whose sequence numbers had to jump.
        let (sas, pols) = self.sas.resync_engine(inst, &mut self.engine);
        if pols > 0 || sas > 0 {
            info!("IKE: {sas} SA(s) and {pols} policy(ies) installed again in the new dataplane");
        }
        self.drain(inst);
    }

    /// Logs an engine event; a failure also becomes the connection's error
    /// and a note in `status`.
    /// The counters of a gap: taken when the peer deletes a child SA (its
    /// traffic goes to the hold policies), reported a little after a new
    /// child replaced it ([`report_gaps`](Self::report_gaps)).
    fn count_gap(&mut self, inst: &Installer, e: &Event) {
        match e {
            Event::ChildDeleted {
                conn,
                reason: ike::DeleteReason::Peer,
                ..
            } => {
                let n = inst.dp_live().then(|| policy_discards(inst));
                if let Some(c) = self.conn_mut(conn) {
                    c.held_from = n;
                }
            }
            Event::ChildReplaced { conn, gap, .. } => {
                let held_from = self.conn_mut(conn).and_then(|c| c.held_from.take());
                self.gaps.push(GapReport {
                    conn: conn.clone(),
                    gap: *gap,
                    held_from,
                    due: Instant::now() + GAP_SETTLE,
                });
            }
            _ => {}
        }
    }

    fn log(&mut self, e: Event) {
        if let Event::IkeDeleted {
            conn,
            reason: ike::DeleteReason::Failed(err),
            ..
        } = &e
        {
            let falls_back = matches!(
                err,
                ike::IkeError::Timeout(_)
                    | ike::IkeError::PeerError {
                        code: ike::wire::notify::INVALID_MAJOR_VERSION
                            | ike::wire::notify::NO_PROPOSAL_CHOSEN,
                        ..
                    }
            );
            let propose = self
                .conns
                .iter()
                .any(|c| c.cfg.name == *conn && c.cfg.version.fallback() == Some(1));
            if falls_back && propose && !self.fallback.contains(conn) {
                info!("{conn}: IKEv2 failed ({err}); ikev2 = propose: falling back to IKEv1");
                self.fallback.push(conn.clone());
            }
        }
        let fell_back = match &e {
            Event::IkeDeleted { conn, .. } => self.fallback.contains(conn),
            _ => false,
        };
        if let Event::ChildDegraded {
            conn,
            reason,
            expires,
            next,
            ..
        } = &e
        {
            let at = wall_clock(*expires);
            let left = expires.saturating_duration_since(Instant::now()).as_secs();
            let what = degraded_next(*next, &at);
            warn!("{conn}: degraded: {reason}; its SAs expire at {at} (in {left} s); {what}");
            if let Some(c) = self.conn_mut(conn) {
                c.degraded = Some(Degraded {
                    why: format!("{reason}; {what}"),
                    expires: *expires,
                    expires_at: at,
                });
            }
            return;
        }
        if let Event::ChildReplaced { .. } = &e {
            // logged with the held count by report_gaps
            return;
        }
        if let Some((conn, t)) = failure(&e) {
            let prefix = if conn.is_empty() {
                String::new()
            } else {
                format!("{conn}: ")
            };
            warn!("{prefix}{t}");
            let note = if matches!(e, Event::DpdDead { .. }) {
                t.to_lowercase()
            } else {
                t
            };
            let conn = conn.to_string();
            self.note(&conn, note);
            if fell_back {
                // the IKEv1 attempt is the connection's state now (the note stays)
                if let Some(c) = self.conn_mut(&conn) {
                    c.error = None;
                }
            }
            return;
        }
        if let Event::ChildEstablished { conn, .. } = &e {
            if let Some(c) = self.conn_mut(conn) {
                c.error = None;
                c.degraded = None;
            }
        }
        if let Event::ChildRekeyed { conn, .. } = &e {
            if let Some(c) = self.conn_mut(conn) {
                c.degraded = None;
            }
        }
        log_progress(&e);
    }
}

impl ConnSet for IkeBridge {
    fn loaded(&self) -> Vec<(String, u64)> {
        self.conns
            .iter()
            .map(|c| (c.cfg.name.clone(), c.cfg.hash))
            .collect()
    }

    fn add(&mut self, inst: &mut Installer, c: IkeConn) {
        IkeBridge::add(self, inst, c)
    }

    fn remove(&mut self, inst: &mut Installer, name: &str) {
        self.terminate(inst, name);
        let _ = self.engine.remove_connection(name);
        if let Some(i) = self.conns.iter().position(|c| c.cfg.name == name) {
            let it = self.conns.remove(i);
            bridge::remove_holds(&mut self.sas, inst, policy_id::IKEV2_HOLD, it.id);
            inst.free_tunnel_id(it.id);
        }
        self.drain(inst);
    }
}

impl KeyingEngine for ike::Engine {
    type Error = ike::IkeError;

    fn sa_ids(&self, conn: &str) -> Vec<u64> {
        self.status()
            .iter()
            .filter(|s| s.conn == conn)
            .map(|s| s.id)
            .collect()
    }

    fn terminate_ike(&mut self, id: u64, now: Instant) -> Result<(), Self::Error> {
        ike::Engine::terminate_ike(self, id, now)
    }

    fn child_spis(&self) -> Vec<(u32, u32)> {
        self.status()
            .iter()
            .flat_map(|s| s.children.iter())
            .map(|c| (c.inbound_spi, c.outbound_spi))
            .collect()
    }

    fn terminate_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error> {
        ike::Engine::terminate_child(self, inbound_spi, now)
    }

    fn rekey_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error> {
        ike::Engine::rekey_child(self, inbound_spi, now)
    }
}
