//! The bridge between the IKEv1 engine ([`crate::ikev1::Engine`]) and the
//! dataplane, next to the IKEv2 one ([`super::ike`]) and built the same way:
//! datagrams of the shared IKE sockets (dispatched here by their ISAKMP major
//! version, see [`super::ikeio::Datagram::major_version`]) and the engine's
//! timer go in; datagrams, SAs and policies come out, in the engine's order
//! (make-before-break). The SAs and policies go through the same
//! [`Installer`], recorded in an [`EngineSas`] of this bridge's own; the
//! engine's policy ids are mapped into [`policy_id::NEXT_ENGINE`] and the
//! hold policies into [`policy_id::NEXT_ENGINE_HOLD`], so the two engines
//! never collide.
//!
//! A connection belongs here when its version policy accepts IKEv1
//! (`ikev2 = never | permit | propose`); with `propose` the IKEv2 engine
//! initiates and this one only responds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use espresso_core::config::connection::IkeConn;
use espresso_core::sa::{Direction, SaEvent};
use tracing::{info, warn};

use super::api::{self, exit, Response};
use super::barrier::ApplyBarrier;
use super::bridge::{self, ConnSet};
use super::engine_sas::{EngineSas, KeyingEngine};
use super::events::{failure, log_progress};
use super::ikeio::{Datagram, IkeIo};
use super::installer::{policy_id, Installer};
use crate::ike::{self, RemoteAddr, StartAction};
use crate::ikev1::{self, DataplaneOp, Event, Output};

/// One configured IKEv1 connection.
pub struct Ikev1ConnItem {
    /// Its configuration (core's form).
    pub cfg: IkeConn,
    /// The engine's form (proposals parsed by `ikev1::proposal`).
    pub conn: ikev1::Connection,
    /// Dataplane tunnel id (counters, tap).
    pub id: u32,
    /// The last failure, until an IPsec SA comes up.
    pub error: Option<String>,
}

/// Everything IKEv1 in the daemon.
pub struct Ikev1Bridge {
    /// The protocol engine.
    pub engine: ikev1::Engine,
    /// Connections in configuration order.
    pub conns: Vec<Ikev1ConnItem>,
    /// The SAs and policies the engine (and the hold policies) installed.
    pub sas: EngineSas,
    io: Option<Arc<IkeIo>>,
    /// Why the sockets could not be opened.
    pub io_error: Option<String>,
    attached: bool,
    /// Recent explanations for `status`.
    pub notes: VecDeque<String>,
    /// IPsec SAs refused because their outbound SPI was another SA's.
    pub refused_spi_in_use: u64,
    /// Outputs held until the dataplane applied a new inbound SA.
    barrier: ApplyBarrier,
}

impl Default for Ikev1Bridge {
    fn default() -> Self {
        Self::new()
    }
}

impl Ikev1Bridge {
    /// An engine with default settings and no connections.
    pub fn new() -> Ikev1Bridge {
        Self::with_settings(&crate::config::DaemonSettings::default())
    }

    /// An engine with the flood limits of `[daemon]` and no connections.
    pub fn with_settings(d: &crate::config::DaemonSettings) -> Ikev1Bridge {
        let l = d.ike_limits;
        let settings = ikev1::Settings {
            half_open_limits: crate::ike::halfopen::Limits {
                global: l.half_open,
                per_source: l.half_open_per_source,
            },
            max_first_message: l.max_init_message,
            max_message: l.max_message,
            ..ikev1::Settings::default()
        };
        Ikev1Bridge {
            engine: ikev1::Engine::new(settings),
            conns: Vec::new(),
            sas: EngineSas::default(),
            io: None,
            io_error: None,
            attached: false,
            notes: VecDeque::new(),
            refused_spi_in_use: 0,
            barrier: ApplyBarrier::default(),
        }
    }

    /// The connections of `all` that speak IKEv1.
    pub fn select(all: &[IkeConn]) -> Vec<IkeConn> {
        all.iter()
            .filter(|c| c.version.accepts(1))
            .cloned()
            .collect()
    }

    fn conn_mut(&mut self, name: &str) -> Option<&mut Ikev1ConnItem> {
        self.conns.iter_mut().find(|c| c.cfg.name == name)
    }

    fn note(&mut self, conn: &str, text: String) {
        if let Some(c) = self.conn_mut(conn) {
            c.error = Some(text.clone());
        }
        bridge::push_note(&mut self.notes, conn, text);
    }

    /// Whether `name` is an IKEv1 connection.
    pub fn is_ikev1(&self, name: &str) -> bool {
        self.conns.iter().any(|c| c.cfg.name == name)
    }

    /// Whether `name` is an IKEv1 connection that initiates with IKEv1
    /// (`never`, `permit`): `up` goes here rather than to IKEv2.
    pub fn initiates(&self, name: &str) -> bool {
        self.conns
            .iter()
            .any(|c| c.cfg.name == name && c.cfg.version.initiate_with() == 1)
    }

    /// Names of the connections.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.conns.iter().map(|c| c.cfg.name.as_str())
    }

    /// Checks the IKEv1 connections of a configuration (the proposals in
    /// the IKEv1 forms); the errors, or the warnings to show.
    pub fn check(conns: &[IkeConn]) -> Result<Vec<String>, Vec<String>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for c in conns.iter().filter(|c| c.version.accepts(1)) {
            match ikev1::Connection::from_config(c) {
                Ok((_, w)) => warnings.extend(w),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(errors)
        }
    }

    /// Loads the configuration's IKEv1 connections into the engine (at start).
    pub fn init(&mut self, inst: &mut Installer, conns: &[IkeConn]) {
        self.engine
            .set_default_route(super::ikeio::default_route_addr());
        for c in Self::select(conns) {
            self.add(inst, c);
        }
    }

    /// Shares the IKEv2 bridge's sockets (`io_error`: why there are none).
    pub fn attach_io(
        &mut self,
        inst: &mut Installer,
        io: Option<Arc<IkeIo>>,
        io_error: Option<String>,
    ) {
        self.io = io;
        self.io_error = io_error;
        self.attached = true;
        self.drain(inst);
    }

    fn add(&mut self, inst: &mut Installer, c: IkeConn) {
        let name = c.name.clone();
        let mut conn = match ikev1::Connection::from_config(&c) {
            Ok((conn, warnings)) => {
                for w in warnings {
                    warn!("{w}");
                }
                conn
            }
            Err(e) => {
                // `espresso check` and reload refuse this; at start the
                // connection is shown with its error.
                tracing::error!("{name}: {e}");
                if let Some(id) = inst.alloc_tunnel_id() {
                    let conn = ikev1::Connection::new(
                        &name,
                        c.conn.local_addr,
                        c.conn.remote_addr,
                        c.conn.psk.bytes(),
                    );
                    self.conns.push(Ikev1ConnItem {
                        cfg: c,
                        conn,
                        id,
                        error: Some(e.to_string()),
                    });
                }
                return;
            }
        };
        // `propose`: IKEv2 initiates; the IKEv1 engine answers.
        if c.version.initiate_with() != 1
            && matches!(conn.start_action, StartAction::Start | StartAction::Trap)
        {
            conn.start_action = StartAction::Add;
        }
        let Some(id) = inst.alloc_tunnel_id() else {
            tracing::error!("{name}: out of tunnel ids");
            return;
        };
        conn.tunnel_id = id;
        let hold = bridge::hold_policies(policy_id::NEXT_ENGINE_HOLD, id, &conn);
        self.conns.push(Ikev1ConnItem {
            cfg: c,
            conn: conn.clone(),
            id,
            error: None,
        });
        if let Err(e) = self.engine.add_connection(conn, Instant::now()) {
            tracing::error!("{name}: {e}");
            self.note(&name, e.to_string());
        } else {
            info!("{name}: IKEv1 connection loaded");
            for p in hold {
                self.sas.add_policy(inst, p);
            }
        }
        self.drain(inst);
    }

    /// Deletes every ISAKMP SA of a connection (and its IPsec SAs; deletes
    /// are sent to the peer).
    fn terminate(&mut self, inst: &mut Installer, name: &str) -> usize {
        let n = self.engine.terminate_conn(name);
        self.drain(inst);
        n
    }

    /// The keys of the installed IPsec SAs of connection `name` (all:
    /// `None`), for `espresso keys`. Nothing is logged here.
    pub fn keys(&self, name: Option<&str>, out: &mut Vec<api::SaKeys>) {
        let conn_of = |id| {
            self.conns
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.cfg.name.as_str())
        };
        bridge::keys(&self.sas, conn_of, name, out);
    }

    /// `espresso up NAME`: main or aggressive mode, then quick mode.
    pub fn up(&mut self, inst: &mut Installer, name: &str) -> Response {
        let Some(c) = self.conns.iter().find(|c| c.cfg.name == name) else {
            return Response::err(exit::NOT_FOUND, format!("no connection {name:?}"));
        };
        if c.conn.remote_addr == RemoteAddr::Any {
            return Response::err(
                exit::STATE,
                format!("{name}: remote is %any: it can only respond"),
            );
        }
        if let Some(e) = c
            .error
            .clone()
            .filter(|_| !self.engine.connections().any(|k| k.name == name))
        {
            return Response::err(exit::CONFIG, format!("{name}: {e}"));
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
        match self.engine.initiate(name, Instant::now()) {
            Ok(id) => {
                self.drain(inst);
                info!("{name}: initiating ISAKMP SA {id:#018x} (IKEv1)");
                Response::ok(format!("{name}: initiating (IKEv1)"))
            }
            Err(e) => Response::err(exit::FAILED, format!("{name}: {e}")),
        }
    }

    /// `espresso down NAME`: delete its ISAKMP and IPsec SAs.
    pub fn down(&mut self, inst: &mut Installer, name: &str) -> Response {
        let n = self.terminate(inst, name);
        info!("{name}: down ({n} ISAKMP SA(s) deleted)");
        Response::ok(format!("{name}: down ({n} ISAKMP SA(s) deleted)"))
    }

    /// Reload: `new` is the whole new set of connections (`only`: just that one).
    pub fn reload(
        &mut self,
        inst: &mut Installer,
        new: &[IkeConn],
        only: Option<&str>,
    ) -> Vec<String> {
        self.engine
            .set_default_route(super::ikeio::default_route_addr());
        bridge::reload(self, inst, Self::select(new), only, " (IKEv1)")
    }

    /// A datagram of major version 1 from the sockets.
    pub fn datagram(&mut self, inst: &mut Installer, d: Datagram) {
        self.engine
            .handle_datagram(&d.data, d.from, d.to, Instant::now());
        self.drain(inst);
    }

    /// When the engine's timer fires next.
    pub fn timeout(&self) -> Option<Instant> {
        self.engine
            .poll_timeout()
            .into_iter()
            .chain(self.barrier.timeout())
            .min()
    }

    /// Runs the engine's timers when they are due (the daemon logs late ones).
    pub fn timers(&mut self, inst: &mut Installer) {
        let now = Instant::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            // a rekey collision waits for the peer's choice: what the
            // dataplane counted on the two inbound SAs
            for spi in self.engine.watched_inbound() {
                let view = self
                    .sas
                    .get(spi, Direction::Inbound)
                    .and_then(|sa| inst.read_view(sa.slot));
                if let Some(v) = view {
                    self.engine.inbound_packets(spi, v.stats.packets);
                }
            }
            self.engine.handle_timeout(now);
        }
        self.drain(inst);
    }

    /// A dataplane event for an SA or policy of this engine; false if not ours.
    pub fn event(&mut self, inst: &mut Installer, ev: &SaEvent) -> bool {
        let (range, trap) = (policy_id::NEXT_ENGINE, "an IKEv1 trap policy");
        let Some(ev) = bridge::own_event(&self.sas, ev, range, trap, "dataplane (IKEv1 SA)") else {
            return false;
        };
        self.engine.handle_dataplane_event(&ev, Instant::now());
        self.drain(inst);
        true
    }

    /// Applies everything the engine produced, in order; an inbound SA is
    /// live in the dataplane before the message that lets the peer use it
    /// (QM2 as responder, QM3 as initiator): that message and what follows
    /// wait, without blocking the daemon, behind a dataplane barrier
    /// (`barrier`, as IKEv2's).
    fn drain(&mut self, inst: &mut Installer) {
        if !self.attached {
            return;
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
                Output::Transmit(t) => bridge::send(&self.io, &self.io_error, &t, "IKEv1"),
                Output::Dataplane(op) => self.apply(inst, op),
                Output::Event(e) => self.log(e),
            }
        }
        if self.sas.delete_refused(&mut self.engine, "IKEv1 IPsec SA") {
            self.drain(inst);
        }
    }

    fn apply(&mut self, inst: &mut Installer, op: DataplaneOp) {
        if self.sas.apply(inst, op, policy_id::NEXT_ENGINE).is_err() {
            self.refused_spi_in_use += 1;
        }
    }

    /// After a dataplane (re)attached and was flushed: installs every IKEv1
    /// SA and policy again; IPsec SAs whose sequence numbers had to jump
    /// are rekeyed.
    pub fn resync(&mut self, inst: &mut Installer) {
        let (sas, pols) = self.sas.resync_engine(inst, &mut self.engine);
        if pols > 0 || sas > 0 {
            info!("IKEv1: {sas} SA(s) and {pols} policy(ies) installed again in the new dataplane");
        }
        self.drain(inst);
    }

    fn log(&mut self, e: Event) {
        if let Some((conn, t)) = failure(&e) {
            let prefix = if conn.is_empty() {
                String::new()
            } else {
                format!("{conn}: ")
            };
            warn!("{prefix}IKEv1: {t}");
            let note = if matches!(e, Event::DpdDead { .. }) {
                t.to_lowercase()
            } else {
                t
            };
            let conn = conn.to_string();
            self.note(&conn, format!("IKEv1: {note}"));
            return;
        }
        if let Event::ChildEstablished { conn, .. } = &e {
            if let Some(c) = self.conn_mut(conn) {
                c.error = None;
            }
        }
        log_progress(&e);
    }
}

impl ConnSet for Ikev1Bridge {
    fn loaded(&self) -> Vec<(String, u64)> {
        self.conns
            .iter()
            .map(|c| (c.cfg.name.clone(), c.cfg.hash))
            .collect()
    }

    fn add(&mut self, inst: &mut Installer, c: IkeConn) {
        Ikev1Bridge::add(self, inst, c)
    }

    fn remove(&mut self, inst: &mut Installer, name: &str) {
        self.terminate(inst, name);
        let _ = self.engine.remove_connection(name);
        if let Some(i) = self.conns.iter().position(|c| c.cfg.name == name) {
            let it = self.conns.remove(i);
            bridge::remove_holds(&mut self.sas, inst, policy_id::NEXT_ENGINE_HOLD, it.id);
            inst.free_tunnel_id(it.id);
        }
        self.drain(inst);
    }
}

impl KeyingEngine for ikev1::Engine {
    type Error = ike::IkeError;

    fn sa_ids(&self, conn: &str) -> Vec<u64> {
        self.status()
            .iter()
            .filter(|s| s.sa.conn == conn)
            .map(|s| s.sa.id)
            .collect()
    }

    fn terminate_ike(&mut self, id: u64, now: Instant) -> Result<(), Self::Error> {
        ikev1::Engine::terminate_ike(self, id, now)
    }

    fn child_spis(&self) -> Vec<(u32, u32)> {
        self.status()
            .iter()
            .flat_map(|s| s.sa.children.iter())
            .map(|c| (c.inbound_spi, c.outbound_spi))
            .collect()
    }

    fn terminate_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error> {
        ikev1::Engine::terminate_child(self, inbound_spi, now)
    }

    fn rekey_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), Self::Error> {
        ikev1::Engine::rekey_child(self, inbound_spi, now)
    }
}

#[cfg(test)]
mod tests {
    //! The bridge against a real shared-memory region whose dataplane end
    //! (a thread here) can be stalled, and a peer engine over UDP on
    //! loopback.

    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use espresso_core::shm::{Command, DataplaneEnd};

    use super::*;
    use crate::ike::LocalAddr;
    use crate::ikev1::proposal::{parse_phase1, parse_phase2};
    use crate::ikev1::{Connection, Engine, Settings};

    /// A dataplane end in a thread: applies (logs) commands unless paused.
    struct FakeDp {
        paused: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
        /// When each inbound SA was applied, by SPI.
        inbound: Arc<Mutex<Vec<(u32, Instant)>>>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl FakeDp {
        fn start(path: &std::path::Path) -> FakeDp {
            let mut dp = DataplaneEnd::attach(path).expect("dataplane end");
            let paused = Arc::new(AtomicBool::new(false));
            let stop = Arc::new(AtomicBool::new(false));
            let inbound = Arc::new(Mutex::new(Vec::new()));
            let (p, s, i) = (paused.clone(), stop.clone(), inbound.clone());
            let thread = std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    while !p.load(Ordering::Relaxed) {
                        match dp.next_command() {
                            Ok(Some(Command::AddSa { params, .. }))
                                if params.direction == Direction::Inbound =>
                            {
                                i.lock().unwrap().push((params.spi, Instant::now()));
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            FakeDp {
                paused,
                stop,
                inbound,
                thread: Some(thread),
            }
        }
    }

    impl Drop for FakeDp {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn free_port() -> u16 {
        UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn conn(name: &str, local: IpAddr, remote: IpAddr) -> Connection {
        let mut c = Connection::new(
            name,
            LocalAddr::Addr(local),
            RemoteAddr::Addr(remote),
            b"barrier-test-psk-0123456789abcdef",
        );
        c.phase1_proposals = parse_phase1("aes128-sha256-ecp256").unwrap();
        c.esp_proposals = parse_phase2("aes128gcm16").unwrap();
        c
    }

    /// QM2 (the answer that lets the peer send on our new inbound SA) waits
    /// for the dataplane without blocking the daemon: while the dataplane
    /// is stalled, every call into the bridge returns at once (the old
    /// `wait_applied` blocked each for up to 2 s) and the loop keeps
    /// serving the peer's DPD; QM2 leaves only after the dataplane applied
    /// the inbound SA, and the IPsec SA comes up at both ends.
    #[test]
    fn quick_mode_answer_waits_for_the_dataplane_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("region.shm");
        let (mut inst, _) = Installer::attach(&path).unwrap();
        let dp = FakeDp::start(&path);
        assert!(matches!(
            inst.watch(&[]),
            super::super::installer::Watch::NewDataplane
        ));
        let generation = inst.begin_full_sync().expect("flush applied");
        inst.end_full_sync(generation);
        assert!(inst.dp_live());

        let ours: IpAddr = "127.0.0.1".parse().unwrap();
        let theirs: IpAddr = "127.0.0.2".parse().unwrap();
        let (p, p_natt) = (free_port(), free_port());
        let peer_sock = UdpSocket::bind((theirs, 0)).unwrap();
        peer_sock
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let peer_at = peer_sock.local_addr().unwrap();
        let bridge_at = SocketAddr::new(ours, p);

        let mut b = Ikev1Bridge::new();
        b.engine = Engine::new(Settings {
            ike_port: p,
            natt_port: p_natt,
            nat_traversal: false,
            ..Settings::default()
        });
        let mut c = conn("to-peer", ours, theirs);
        c.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
        c.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
        b.engine.add_connection(c, Instant::now()).unwrap();
        let io = IkeIo::open([p, p_natt]).expect("UDP sockets on free ports");
        b.attach_io(&mut inst, Some(Arc::new(io)), None);

        let mut peer = Engine::with_seed(
            Settings {
                nat_traversal: false,
                ..Settings::default()
            },
            7,
        );
        let mut pc = conn("to-bridge", theirs, ours);
        pc.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
        pc.remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
        peer.add_connection(pc, Instant::now()).unwrap();
        peer.initiate("to-bridge", Instant::now()).unwrap();

        // Datagrams of the peer to the bridge; the bridge's answers (over
        // its real socket) back to the peer. `slowest`: the longest call.
        let slowest = std::cell::Cell::new(Duration::ZERO);
        let pump = |b: &mut Ikev1Bridge,
                    inst: &mut Installer,
                    peer: &mut Engine,
                    for_ms: u64|
         -> Vec<(Instant, Vec<u8>)> {
            let mut got = Vec::new();
            let until = Instant::now() + Duration::from_millis(for_ms);
            while Instant::now() < until {
                while let Some(o) = peer.poll_output() {
                    if let Output::Transmit(t) = o {
                        let t0 = Instant::now();
                        b.datagram(
                            inst,
                            Datagram {
                                data: t.data,
                                from: peer_at,
                                to: bridge_at,
                            },
                        );
                        slowest.set(slowest.get().max(t0.elapsed()));
                    }
                }
                // as the daemon's loop: sleep until the bridge's timeout
                if let Some(t) = b.timeout().filter(|t| *t < until) {
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                }
                let t0 = Instant::now();
                if b.timeout()
                    .is_some_and(|t| t <= Instant::now() + Duration::from_millis(1))
                {
                    b.timers(inst);
                }
                slowest.set(slowest.get().max(t0.elapsed()));
                let mut buf = [0u8; 4096];
                if let Ok((n, from)) = peer_sock.recv_from(&mut buf) {
                    assert_eq!(from.port(), p);
                    got.push((Instant::now(), buf[..n].to_vec()));
                    peer.handle_datagram(&buf[..n], bridge_at, peer_at, Instant::now());
                }
                if peer.poll_timeout().is_some_and(|t| t <= Instant::now()) {
                    peer.handle_timeout(Instant::now());
                }
            }
            got
        };

        // Main mode completes; stall the dataplane before quick mode's
        // QM1 reaches the bridge. The peer sends QM1 right after MM6, so
        // pause as soon as the ISAKMP SA is up at the peer.
        let until = Instant::now() + Duration::from_secs(10);
        while peer.status().first().map(|s| s.sa.state) != Some("ESTABLISHED") {
            assert!(Instant::now() < until, "main mode did not complete");
            // one message at a time: stop before QM1 leaves the peer
            let mut buf = [0u8; 4096];
            while let Some(o) = peer.poll_output() {
                if let Output::Transmit(t) = o {
                    b.datagram(
                        &mut inst,
                        Datagram {
                            data: t.data,
                            from: peer_at,
                            to: bridge_at,
                        },
                    );
                }
            }
            if let Ok((n, _)) = peer_sock.recv_from(&mut buf) {
                peer.handle_datagram(&buf[..n], bridge_at, peer_at, Instant::now());
            }
        }
        dp.paused.store(true, Ordering::Relaxed);
        // QM1 now; the bridge installs the SAs and holds QM2
        let got = pump(&mut b, &mut inst, &mut peer, 400);
        assert!(
            got.is_empty(),
            "QM2 left before the dataplane applied the SA"
        );
        assert!(b.barrier.holding() >= 1, "QM2 held");
        assert!(dp.inbound.lock().unwrap().is_empty());
        // the loop keeps running: no call into the bridge blocked (the
        // daemon serves the CLI, the other engine and the manual tunnels
        // between them)
        let got = pump(&mut b, &mut inst, &mut peer, 600);
        assert!(got.is_empty());
        assert!(
            slowest.get() < Duration::from_millis(300),
            "a bridge call blocked for {:?} while the dataplane stalled",
            slowest.get()
        );
        // the dataplane resumes: QM2 leaves after it applied the inbound SA
        dp.paused.store(false, Ordering::Relaxed);
        let got = pump(&mut b, &mut inst, &mut peer, 1500);
        assert!(!got.is_empty(), "QM2 never left");
        let applied = dp.inbound.lock().unwrap().clone();
        assert!(!applied.is_empty(), "inbound SA never applied");
        assert!(
            applied[0].1 <= got[0].0,
            "QM2 left before the inbound SA was applied"
        );
        assert_eq!(b.barrier.holding(), 0);
        let up = |e: &Engine| {
            e.status()
                .iter()
                .flat_map(|s| s.sa.children.iter())
                .filter(|c| c.state == "INSTALLED")
                .count()
        };
        assert_eq!(up(&peer), 1, "peer's IPsec SA");
        assert_eq!(up(&b.engine), 1, "our IPsec SA");
    }
}
