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
use espresso_core::sa::{Direction, Mode, Policy, PolicyAction, SaEvent};
use tracing::{info, warn};

use super::api::{self, exit, Response};
use super::engine_sas::{EngineSas, KeyingEngine};
use super::events::{failure, log_progress};
use super::ikeio::{Datagram, IkeIo};
use super::installer::{policy_id, Installer};
use crate::ike::{self, RemoteAddr, StartAction};
use crate::ikev1::{self, DataplaneOp, Event, Output};

/// Priority of hold policies (as IKEv2's): after every protect and trap policy.
const HOLD_PRIORITY: u32 = 200;

/// Recent explanations kept for `status`.
const MAX_NOTES: usize = 16;

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
}

/// Hold (discard) policies of a tunnel-mode connection with configured
/// remote subnets while it has no IPsec SA (as for IKEv2 connections).
fn hold_policies(tunnel_id: u32, cfg: &IkeConn, c: &ikev1::Connection) -> Vec<Policy> {
    if c.remote_ts.is_empty() || c.mode != Mode::Tunnel || c.start_action == StartAction::Trap {
        return Vec::new();
    }
    let (l, r) = ike::ts::conn_ts(&cfg.conn, None, None);
    ike::ts::to_selectors(&l, &r)
        .into_iter()
        .take(256)
        .enumerate()
        .map(|(n, selector)| Policy {
            id: policy_id::hold(policy_id::NEXT_ENGINE_HOLD, tunnel_id, n as u32),
            tunnel_id,
            selector,
            action: PolicyAction::Discard,
            priority: HOLD_PRIORITY,
        })
        .collect()
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
        if self.notes.len() == MAX_NOTES {
            self.notes.pop_front();
        }
        self.notes.push_back(if conn.is_empty() {
            text
        } else {
            format!("{conn}: {text}")
        });
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
        let hold = hold_policies(id, &c, &conn);
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

    fn sa_ids(&self, name: &str) -> Vec<u64> {
        self.engine
            .status()
            .iter()
            .filter(|s| s.sa.conn == name)
            .map(|s| s.sa.id)
            .collect()
    }

    /// Deletes every ISAKMP SA of a connection (and its IPsec SAs; deletes
    /// are sent to the peer).
    fn terminate(&mut self, inst: &mut Installer, name: &str) -> usize {
        let now = Instant::now();
        let ids = self.sa_ids(name);
        for id in &ids {
            if let Err(e) = self.engine.terminate_ike(*id, now) {
                warn!("{name}: {e}");
            }
        }
        self.drain(inst);
        ids.len()
    }

    fn remove(&mut self, inst: &mut Installer, name: &str) {
        self.terminate(inst, name);
        let _ = self.engine.remove_connection(name);
        if let Some(i) = self.conns.iter().position(|c| c.cfg.name == name) {
            let it = self.conns.remove(i);
            let holds = self.sas.policy_ids(|pid| {
                policy_id::is_in(pid, policy_id::NEXT_ENGINE_HOLD)
                    && policy_id::hold_owner(pid) == it.id
            });
            for pid in holds {
                self.sas.remove_policy(inst, pid);
            }
            inst.free_tunnel_id(it.id);
        }
        self.drain(inst);
    }

    /// The keys of the installed IPsec SAs of connection `name` (all:
    /// `None`), for `espresso keys`. Nothing is logged here.
    pub fn keys(&self, name: Option<&str>, out: &mut Vec<api::SaKeys>) {
        for s in self.sas.sorted() {
            let p = &s.params;
            let Some(c) = self.conns.iter().find(|c| c.id == p.tunnel_id) else {
                continue;
            };
            if name.is_some_and(|n| n != c.cfg.name) {
                continue;
            }
            out.push(api::SaKeys::of(&c.cfg.name, p));
        }
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
        let new = Self::select(new);
        let mut changed = Vec::new();
        let old: Vec<(String, u64)> = self
            .conns
            .iter()
            .map(|c| (c.cfg.name.clone(), c.cfg.hash))
            .collect();
        for (name, _) in &old {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if !new.iter().any(|c| &c.name == name) {
                self.remove(inst, name);
                changed.push(format!("{name}: removed (IKEv1)"));
            }
        }
        for c in new {
            if only.is_some_and(|o| o != c.name) {
                continue;
            }
            let name = c.name.clone();
            match old.iter().find(|(n, _)| *n == c.name) {
                Some((_, h)) if *h == c.hash => {}
                Some(_) => {
                    self.remove(inst, &name);
                    self.add(inst, c);
                    changed.push(format!("{name}: changed (IKEv1)"));
                }
                None => {
                    self.add(inst, c);
                    changed.push(format!("{name}: added (IKEv1)"));
                }
            }
        }
        changed
    }

    /// A datagram of major version 1 from the sockets.
    pub fn datagram(&mut self, inst: &mut Installer, d: Datagram) {
        self.engine
            .handle_datagram(&d.data, d.from, d.to, Instant::now());
        self.drain(inst);
    }

    /// When the engine's timer fires next.
    pub fn timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// Runs the engine's timers when they are due (the daemon logs late ones).
    pub fn timers(&mut self, inst: &mut Installer) {
        let now = Instant::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain(inst);
    }

    /// A dataplane event for an SA or policy of this engine; false if not ours.
    pub fn event(&mut self, inst: &mut Installer, ev: &SaEvent) -> bool {
        let ours = match ev {
            SaEvent::SoftExpire { spi, direction, .. }
            | SaEvent::HardExpire { spi, direction, .. } => {
                self.sas.get(*spi, *direction).is_some()
            }
            SaEvent::SeqExhausted { spi } => self.sas.get(*spi, Direction::Outbound).is_some(),
            SaEvent::Acquire { policy_id, .. } => {
                policy_id::is_in(*policy_id, policy_id::NEXT_ENGINE)
            }
        };
        if !ours {
            return false;
        }
        let ev = match ev {
            SaEvent::Acquire {
                policy_id,
                src,
                dst,
                proto,
            } => {
                info!("acquire: {src} -> {dst} proto {proto} matches an IKEv1 trap policy: negotiating");
                SaEvent::Acquire {
                    policy_id: policy_id & policy_id::ENGINE_ID_MASK,
                    src: *src,
                    dst: *dst,
                    proto: *proto,
                }
            }
            other => {
                info!("dataplane (IKEv1 SA): {other:?}");
                other.clone()
            }
        };
        self.engine.handle_dataplane_event(&ev, Instant::now());
        self.drain(inst);
        true
    }

    /// Applies everything the engine produced, in order; an inbound SA is
    /// live in the dataplane before the message that lets the peer use it.
    fn drain(&mut self, inst: &mut Installer) {
        if !self.attached {
            return;
        }
        let mut inbound_pending = false;
        while let Some(o) = self.engine.poll_output() {
            if inbound_pending && matches!(o, Output::Transmit(_)) {
                inbound_pending = false;
                if inst.dp_live() && !inst.wait_applied() {
                    warn!("the dataplane did not apply a new inbound SA in time");
                }
            }
            if let Output::Dataplane(DataplaneOp::InstallSa(p)) = &o {
                inbound_pending |= p.direction == Direction::Inbound;
            }
            match o {
                Output::Transmit(t) => match &self.io {
                    Some(io) => {
                        if let Err(e) = io.send(&t) {
                            warn!("IKEv1 send {} -> {}: {e}", t.local, t.remote);
                        }
                    }
                    None => warn!(
                        "IKEv1 send {} -> {}: no sockets ({})",
                        t.local,
                        t.remote,
                        self.io_error.clone().unwrap_or_default()
                    ),
                },
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

impl KeyingEngine for ikev1::Engine {
    type Error = ike::IkeError;

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
