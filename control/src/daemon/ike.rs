//! The daemon side of IKE: runs the sans-IO [`crate::ike::Engine`] for the
//! `[[connection]]`s of the configuration. Datagrams from the UDP sockets
//! ([`super::ikeio`]) and the engine's timer go in; datagrams, SAs and
//! policies come out. SAs and policies go to the dataplane through the same
//! shared-memory channel as manual tunnels, in the engine's order (the new
//! inbound SA of a rekey before the outbound switch: make-before-break).
//! Dataplane events (byte/packet lifetimes, sequence exhaustion, acquires of
//! trap policies) go back to the engine.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use espresso_core::sa::{Direction, Mode, Policy, PolicyAction, SaEvent, SaParams};
use espresso_core::shm::{monotonic_ns, RecordState, SaRecord, SlotState, SEQ_MARGIN};
use tracing::{error, info, warn};

use super::api::{self, exit, ChildStatus, IkeStatus, Response, SaStatus, TunnelStatus};
use super::engine::Engine;
use super::ikeio::{Datagram, IkeIo};
use crate::config::connection::IkeConn;
use crate::ike::{self, DataplaneOp, Event, Output, RemoteAddr, StartAction};

/// Dataplane policy ids of IKE policies: the engine's id with the top bit set
/// (manual tunnels use `tunnel_id << 16 | n`, far below).
pub const IKE_POLICY_BASE: u32 = 0x8000_0000;

/// Hold policies of IKE connections: `IKE_HOLD_BASE | tunnel id << 8 | n`.
pub const IKE_HOLD_BASE: u32 = 0xC000_0000;

/// Priority of hold policies: after every protect and trap policy (100), so
/// they only catch a connection's traffic while it has no child SA.
const HOLD_PRIORITY: u32 = 200;

/// Recent explanations (NO_PROPOSAL_CHOSEN, authentication failures) kept for `status`.
const MAX_NOTES: usize = 16;

/// One configured connection.
pub struct IkeConnItem {
    /// Its configuration.
    pub cfg: IkeConn,
    /// Dataplane tunnel id (counters, tap).
    pub id: u32,
    /// The last failure (proposal mismatch, authentication, dead peer), until
    /// a child SA comes up.
    pub error: Option<String>,
}

struct InstalledSa {
    slot: u32,
    key_id: u64,
    params: Box<SaParams>,
}

/// Everything IKE in the daemon.
pub struct IkeState {
    /// The protocol engine.
    pub engine: ike::Engine,
    /// Connections in configuration order.
    pub conns: Vec<IkeConnItem>,
    sas: HashMap<(u32, Direction), InstalledSa>,
    policies: BTreeMap<u32, Policy>,
    io: Option<IkeIo>,
    io_error: Option<String>,
    notes: VecDeque<String>,
}

impl IkeState {
    /// An engine with default settings and no connections.
    pub fn new() -> IkeState {
        IkeState {
            engine: ike::Engine::new(ike::Settings::default()),
            conns: Vec::new(),
            sas: HashMap::new(),
            policies: BTreeMap::new(),
            io: None,
            io_error: None,
            notes: VecDeque::new(),
        }
    }

    fn conn_mut(&mut self, name: &str) -> Option<&mut IkeConnItem> {
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
}

impl Default for IkeState {
    fn default() -> Self {
        Self::new()
    }
}

/// Discard policies that hold a tunnel-mode connection's traffic while it has
/// no child SA (before the first exchange, after `down`, a DPD `clear`, a
/// delete by the peer): what is meant for the tunnel never leaves in the
/// clear, as with manual tunnels. Only for connections with configured
/// remote subnets: a road-warrior responder (`%any`) or a host-to-host
/// connection has no fixed traffic to hold (and holding gateway addresses
/// would catch IKE itself on the DPDK exception path).
fn hold_policies(tunnel_id: u32, c: &ike::Connection) -> Vec<Policy> {
    if c.remote_ts.is_empty() || c.mode != Mode::Tunnel || c.start_action == ike::StartAction::Trap
    {
        return Vec::new();
    }
    let (l, r) = ike::engine::conn_ts(c, None, None);
    ike::ts::to_selectors(&l, &r)
        .into_iter()
        .take(256)
        .enumerate()
        .map(|(n, selector)| Policy {
            id: IKE_HOLD_BASE | (tunnel_id << 8) | n as u32,
            tunnel_id,
            selector,
            action: PolicyAction::Discard,
            priority: HOLD_PRIORITY,
        })
        .collect()
}

fn key_id(p: &SaParams) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"espresso ike key id");
    h.update(p.spi.to_be_bytes());
    h.update(p.enc_key.bytes());
    h.update(p.auth_key.bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

fn secs_until(t: Option<Instant>, now: Instant) -> Option<u64> {
    t.map(|t| t.saturating_duration_since(now).as_secs())
}

impl Engine {
    /// Loads the configuration's connections into a fresh engine (at start).
    pub(super) fn ike_init(&mut self, conns: Vec<IkeConn>) {
        self.ike
            .engine
            .set_default_route(super::ikeio::default_route_addr());
        for c in conns {
            self.ike_add(c);
        }
    }

    /// Gives the engine its sockets (`espresso daemon` does this; tests of
    /// the engine alone run without).
    pub fn ike_attach_io<M: Send + 'static>(
        &mut self,
        tx: std::sync::mpsc::Sender<M>,
        wrap: fn(Datagram) -> M,
    ) {
        let s = self.ike.engine.settings();
        match IkeIo::open([s.ike_port, s.natt_port]) {
            Ok(io) => {
                if let Err(e) = io.spawn(tx, wrap) {
                    error!("IKE socket threads: {e}");
                    self.ike.io_error = Some(e.to_string());
                    return;
                }
                info!(
                    "IKE listening on UDP {} and {}",
                    self.ike.engine.settings().ike_port,
                    self.ike.engine.settings().natt_port
                );
                self.ike.io = Some(io);
                self.ike.io_error = None;
            }
            Err(e) => {
                if self.ike.conns.is_empty() {
                    warn!("IKE sockets unavailable ({e}); only manual tunnels can run");
                } else {
                    error!("IKE sockets unavailable: {e}: IKE connections cannot run");
                }
                self.ike.io_error = Some(e);
            }
        }
        self.ike_drain();
    }

    fn ike_add(&mut self, mut c: IkeConn) {
        let Some(id) = self.alloc_tunnel_id() else {
            error!("{}: out of tunnel ids", c.name);
            return;
        };
        c.conn.tunnel_id = id;
        let name = c.name.clone();
        let engine_conn = c.conn.clone();
        self.ike.conns.push(IkeConnItem {
            cfg: c,
            id,
            error: None,
        });
        let hold = hold_policies(id, &engine_conn);
        if let Err(e) = self.ike.engine.add_connection(engine_conn, Instant::now()) {
            error!("{name}: {e}");
            self.ike.note(&name, e.to_string());
        } else {
            info!("{name}: IKE connection loaded");
            for p in hold {
                self.add_policy(&p);
                self.ike.policies.insert(p.id, p);
            }
        }
        self.ike_drain();
    }

    fn ike_sa_ids(&self, name: &str) -> Vec<u64> {
        self.ike
            .engine
            .status()
            .iter()
            .filter(|s| s.conn == name)
            .map(|s| s.id)
            .collect()
    }

    /// Deletes every IKE SA of a connection (INFORMATIONAL delete to the peer).
    fn ike_terminate(&mut self, name: &str) -> usize {
        let now = Instant::now();
        let ids = self.ike_sa_ids(name);
        for id in &ids {
            if let Err(e) = self.ike.engine.terminate_ike(*id, now) {
                warn!("{name}: {e}");
            }
        }
        self.ike_drain();
        ids.len()
    }

    fn ike_remove(&mut self, name: &str) {
        self.ike_terminate(name);
        let _ = self.ike.engine.remove_connection(name);
        if let Some(i) = self.ike.conns.iter().position(|c| c.cfg.name == name) {
            let it = self.ike.conns.remove(i);
            let holds: Vec<u32> = self
                .ike
                .policies
                .keys()
                .copied()
                .filter(|pid| {
                    pid & IKE_HOLD_BASE == IKE_HOLD_BASE && (pid & !IKE_HOLD_BASE) >> 8 == it.id
                })
                .collect();
            for pid in holds {
                self.ike.policies.remove(&pid);
                self.remove_policy(pid);
            }
            self.free_tunnel_id(it.id);
        }
        self.ike_drain();
    }

    /// The keys of the installed child SAs of connection `name` (all
    /// connections: `None`), for `espresso keys` (the caller checks that key
    /// export is allowed). Nothing is logged here.
    pub(super) fn ike_keys(&self, name: Option<&str>, out: &mut Vec<api::SaKeys>) {
        let mut sas: Vec<&InstalledSa> = self.ike.sas.values().collect();
        sas.sort_by_key(|s| (s.params.tunnel_id, s.params.spi));
        for s in sas {
            let p = &s.params;
            let Some(c) = self.ike.conns.iter().find(|c| c.id == p.tunnel_id) else {
                continue;
            };
            if name.is_some_and(|n| n != c.cfg.name) {
                continue;
            }
            let inbound = p.direction == Direction::Inbound;
            let (src, dst) = if inbound {
                (p.remote_addr, p.local_addr)
            } else {
                (p.local_addr, p.remote_addr)
            };
            out.push(api::SaKeys {
                tunnel: c.cfg.name.clone(),
                direction: if inbound { "in" } else { "out" }.into(),
                src: src.to_string(),
                dst: dst.to_string(),
                spi: p.spi,
                mode: format!("{:?}", p.mode).to_lowercase(),
                encr: p.suite.encr.name().into(),
                enc_key: super::engine::hex_lower(p.enc_key.bytes()),
                integ: p.suite.integ.name().into(),
                auth_key: super::engine::hex_lower(p.auth_key.bytes()),
                esn: p.esn,
                udp_ports: p.encap.map(|e| {
                    if inbound {
                        (e.remote_port, e.local_port)
                    } else {
                        (e.local_port, e.remote_port)
                    }
                }),
            });
        }
    }

    /// Whether `name` is an IKE connection.
    pub fn is_ike(&self, name: &str) -> bool {
        self.ike.conns.iter().any(|c| c.cfg.name == name)
    }

    /// `espresso up NAME` for a connection: initiate.
    pub(super) fn ike_up(&mut self, name: &str) -> Response {
        let Some(c) = self.ike.conns.iter().find(|c| c.cfg.name == name) else {
            return Response::err(exit::NOT_FOUND, format!("no connection {name:?}"));
        };
        if c.cfg.conn.remote_addr == RemoteAddr::Any {
            return Response::err(
                exit::STATE,
                format!("{name}: remote is %any: it can only respond"),
            );
        }
        if let Some(e) = &self.ike.io_error {
            return Response::err(
                exit::FAILED,
                format!("{name}: IKE sockets unavailable: {e}"),
            );
        }
        if let Some(c) = self.ike.conn_mut(name) {
            c.error = None;
        }
        match self.ike.engine.initiate(name, Instant::now()) {
            Ok(id) => {
                self.ike_drain();
                info!("{name}: initiating IKE SA {id:#018x}");
                Response::ok(format!("{name}: initiating"))
            }
            Err(e) => Response::err(exit::FAILED, format!("{name}: {e}")),
        }
    }

    /// `espresso down NAME` for a connection: delete its SAs.
    pub(super) fn ike_down(&mut self, name: &str) -> Response {
        let n = self.ike_terminate(name);
        info!("{name}: down ({n} IKE SA(s) deleted)");
        Response::ok(format!("{name}: down ({n} IKE SA(s) deleted)"))
    }

    /// Reload of connections: `new` is the whole new set (`only`: just that one).
    pub(super) fn ike_reload(&mut self, new: Vec<IkeConn>, only: Option<&str>) -> Vec<String> {
        self.ike
            .engine
            .set_default_route(super::ikeio::default_route_addr());
        let mut changed = Vec::new();
        let old: Vec<(String, u64)> = self
            .ike
            .conns
            .iter()
            .map(|c| (c.cfg.name.clone(), c.cfg.hash))
            .collect();
        for (name, _) in &old {
            if only.is_some_and(|o| o != name) {
                continue;
            }
            if !new.iter().any(|c| &c.name == name) {
                self.ike_remove(name);
                changed.push(format!("{name}: removed"));
            }
        }
        for c in new {
            if only.is_some_and(|o| o != c.name) {
                continue;
            }
            match old.iter().find(|(n, _)| *n == c.name) {
                Some((_, h)) if *h == c.hash => {}
                Some(_) => {
                    let name = c.name.clone();
                    self.ike_remove(&name);
                    self.ike_add(c);
                    changed.push(format!("{name}: changed"));
                }
                None => {
                    let name = c.name.clone();
                    self.ike_add(c);
                    changed.push(format!("{name}: added"));
                }
            }
        }
        changed
    }

    /// A datagram from the sockets.
    pub fn ike_datagram(&mut self, d: Datagram) {
        self.ike
            .engine
            .handle_datagram(&d.data, d.from, d.to, Instant::now());
        self.ike_drain();
    }

    /// When the engine's timer fires next.
    pub fn ike_timeout(&self) -> Option<Instant> {
        self.ike.engine.poll_timeout()
    }

    /// Runs the engine's timers when they are due (between ticks).
    pub fn ike_timers(&mut self) {
        self.ike_tick();
    }

    /// Runs the engine's timers (called from `tick`).
    pub(super) fn ike_tick(&mut self) {
        let now = Instant::now();
        if self.ike.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.ike.engine.handle_timeout(now);
        }
        self.ike_drain();
    }

    /// A dataplane event for an SA or policy of IKE; false if not ours.
    pub(super) fn ike_event(&mut self, ev: &SaEvent) -> bool {
        let ours = match ev {
            SaEvent::SoftExpire { spi, direction, .. }
            | SaEvent::HardExpire { spi, direction, .. } => {
                self.ike.sas.contains_key(&(*spi, *direction))
            }
            SaEvent::SeqExhausted { spi } => {
                self.ike.sas.contains_key(&(*spi, Direction::Outbound))
            }
            SaEvent::Acquire { policy_id, .. } => *policy_id & IKE_POLICY_BASE != 0,
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
                info!("acquire: {src} -> {dst} proto {proto} matches a trap policy: negotiating");
                SaEvent::Acquire {
                    policy_id: policy_id & !IKE_POLICY_BASE,
                    src: *src,
                    dst: *dst,
                    proto: *proto,
                }
            }
            other => {
                info!("dataplane: {other:?}");
                other.clone()
            }
        };
        self.ike.engine.handle_dataplane_event(&ev, Instant::now());
        self.ike_drain();
        true
    }

    /// Applies everything the engine produced, in order.
    pub(super) fn ike_drain(&mut self) {
        if self.ike.io.is_none() && self.ike.io_error.is_none() {
            // sockets not attached yet (daemon start): keep the outputs queued
            return;
        }
        // An inbound SA must be live in the dataplane before the peer hears
        // of it (our CREATE_CHILD_SA/IKE_AUTH answer, or the DELETE after a
        // rekey we started, lets it switch): wait for the dataplane to apply.
        let mut inbound_pending = false;
        while let Some(o) = self.ike.engine.poll_output() {
            if inbound_pending && matches!(o, Output::Transmit(_)) {
                inbound_pending = false;
                if self.dp_live() && !self.wait_applied() {
                    warn!("the dataplane did not apply a new inbound SA in time");
                }
            }
            if let Output::Dataplane(DataplaneOp::InstallSa(p)) = &o {
                inbound_pending |= p.direction == Direction::Inbound;
            }
            match o {
                Output::Transmit(t) => match &self.ike.io {
                    Some(io) => {
                        if let Err(e) = io.send(&t) {
                            warn!("IKE send {} -> {}: {e}", t.local, t.remote);
                        }
                    }
                    None => warn!(
                        "IKE send {} -> {}: no sockets ({})",
                        t.local,
                        t.remote,
                        self.ike.io_error.clone().unwrap_or_default()
                    ),
                },
                Output::Dataplane(op) => self.ike_apply(op),
                Output::Event(e) => self.ike_log(e),
            }
        }
    }

    fn ike_apply(&mut self, op: DataplaneOp) {
        match op {
            DataplaneOp::InstallSa(p) => {
                let k = (p.spi, p.direction);
                let slot = match self.ike.sas.get(&k) {
                    Some(s) => Some(s.slot),
                    None => self.alloc_sa_slot(),
                };
                let Some(slot) = slot else {
                    error!(
                        "out of SA slots in the shared-memory region: SA spi {:#010x} not installed",
                        p.spi
                    );
                    return;
                };
                let kid = key_id(&p);
                let rec = SaRecord {
                    state: RecordState::Installed,
                    direction: p.direction,
                    tunnel_id: p.tunnel_id,
                    spi: p.spi,
                    key_id: kid,
                    params_hash: 0,
                    initial_seq: p.initial_seq,
                    sent_ns: monotonic_ns(),
                    cmd_pos: self.shm_command_head(),
                };
                self.write_sa_record(slot, &rec);
                if self.dp_live() {
                    self.send_sa(slot, kid, &p);
                }
                self.ike.sas.insert(
                    k,
                    InstalledSa {
                        slot,
                        key_id: kid,
                        params: p,
                    },
                );
            }
            DataplaneOp::RemoveSa { spi, direction } => {
                if let Some(s) = self.ike.sas.remove(&(spi, direction)) {
                    self.remove_sa_slot(s.slot);
                    self.release_sa_slot(s.slot);
                }
            }
            DataplaneOp::InstallPolicy(mut p) => {
                p.id |= IKE_POLICY_BASE;
                self.add_policy(&p);
                self.ike.policies.insert(p.id, p);
            }
            DataplaneOp::RemovePolicy { id } => {
                let id = id | IKE_POLICY_BASE;
                self.ike.policies.remove(&id);
                self.remove_policy(id);
            }
        }
    }

    /// After a dataplane (re)attached and was flushed: installs every IKE SA
    /// and policy again. Outbound SAs continue above the highest sequence
    /// number the old dataplane may have used, and their children are rekeyed.
    pub(super) fn ike_resync(&mut self) {
        let now = monotonic_ns();
        let mut keys: Vec<(u32, Direction)> = self.ike.sas.keys().copied().collect();
        // inbound first
        keys.sort_by_key(|(spi, d)| (*d == Direction::Outbound, *spi));
        let mut rekey = Vec::new();
        for k in keys {
            let (slot, kid, mut p) = {
                let s = &self.ike.sas[&k];
                (s.slot, s.key_id, s.params.clone())
            };
            if k.1 == Direction::Outbound {
                if let Some(b) = self.slot_seq_bound(slot, kid, now) {
                    p.initial_seq = b.saturating_add(SEQ_MARGIN).max(p.initial_seq);
                    rekey.push(k.0);
                }
            }
            let rec = SaRecord {
                state: RecordState::Installed,
                direction: p.direction,
                tunnel_id: p.tunnel_id,
                spi: p.spi,
                key_id: kid,
                params_hash: 0,
                initial_seq: p.initial_seq,
                sent_ns: now,
                cmd_pos: self.shm_command_head(),
            };
            self.write_sa_record(slot, &rec);
            self.send_sa(slot, kid, &p);
        }
        let pols: Vec<Policy> = self.ike.policies.values().cloned().collect();
        for p in &pols {
            self.add_policy(p);
        }
        // Fresh keys for SAs whose sequence numbers had to jump.
        let t = Instant::now();
        for out_spi in rekey {
            let inbound = self
                .ike
                .engine
                .status()
                .iter()
                .flat_map(|s| s.children.iter())
                .find(|c| c.outbound_spi == out_spi)
                .map(|c| c.inbound_spi);
            if let Some(i) = inbound {
                let _ = self.ike.engine.rekey_child(i, t);
            }
        }
        if !pols.is_empty() || !self.ike.sas.is_empty() {
            info!(
                "IKE: {} SA(s) and {} policy(ies) installed again in the new dataplane",
                self.ike.sas.len(),
                pols.len()
            );
        }
        self.ike_drain();
    }

    fn ike_log(&mut self, e: Event) {
        match e {
            Event::IkeEstablished {
                sa,
                conn,
                local,
                remote,
                remote_id,
                proposal,
                initiator,
                nat_local,
                nat_remote,
            } => {
                info!(
                    "{conn}: IKE SA {sa:#018x} established {local} <-> {remote} ({}), peer {remote_id}, {proposal}{}{}",
                    if initiator { "initiator" } else { "responder" },
                    if nat_local { ", we are behind a NAT" } else { "" },
                    if nat_remote { ", the peer is behind a NAT" } else { "" },
                );
            }
            Event::ChildEstablished {
                conn,
                inbound_spi,
                outbound_spi,
                proposal,
                local_ts,
                remote_ts,
                encap,
                ..
            } => {
                if let Some(c) = self.ike.conn_mut(&conn) {
                    c.error = None;
                }
                info!(
                    "{conn}: child SA installed, SPIs in {inbound_spi:#010x} out {outbound_spi:#010x}, {proposal}, {} === {}{}",
                    local_ts.join(","),
                    remote_ts.join(","),
                    if encap { ", ESP in UDP" } else { "" }
                );
            }
            Event::ChildRekeyed {
                conn,
                old_inbound,
                old_outbound,
                new_inbound,
                new_outbound,
                ..
            } => info!(
                "{conn}: child SA rekeyed: in {old_inbound:#010x} -> {new_inbound:#010x}, out {old_outbound:#010x} -> {new_outbound:#010x}"
            ),
            Event::ChildDeleted {
                conn,
                inbound_spi,
                outbound_spi,
                reason,
                ..
            } => info!(
                "{conn}: child SA in {inbound_spi:#010x} out {outbound_spi:#010x} deleted ({reason:?})"
            ),
            Event::IkeRekeyed {
                conn,
                old_sa,
                new_sa,
            } => info!("{conn}: IKE SA rekeyed {old_sa:#018x} -> {new_sa:#018x}"),
            Event::IkeDeleted { sa, conn, reason } => {
                if let ike::DeleteReason::Failed(e) = &reason {
                    let t = format!("IKE SA failed: {e}");
                    warn!("{conn}: {t}");
                    self.ike.note(&conn, t);
                } else {
                    info!("{conn}: IKE SA {sa:#018x} deleted ({reason:?})");
                }
            }
            Event::DpdDead { sa, conn, action } => {
                let t = format!(
                    "peer of IKE SA {sa:#018x} is dead (no answer to liveness checks): dpd action {action:?}",
                );
                warn!("{conn}: {t}");
                self.ike.note(&conn, t.to_lowercase());
            }
            Event::ProposalMismatch {
                conn,
                kind,
                peer,
                offered,
                configured,
                local_responder,
            } => {
                let t = if local_responder {
                    format!(
                        "NO_PROPOSAL_CHOSEN: no {kind} proposal of {peer} is acceptable: peer offered [{}], configured [{}]",
                        offered.join(", "),
                        configured.join(", ")
                    )
                } else {
                    format!(
                        "NO_PROPOSAL_CHOSEN from {peer}: it accepts none of our {kind} proposals: configured [{}]; the peer's own proposals are not sent to an initiator (its log shows them)",
                        configured.join(", ")
                    )
                };
                warn!("{}{t}", if conn.is_empty() { String::new() } else { format!("{conn}: ") });
                self.ike.note(&conn, t);
            }
            Event::AuthFailed { conn, peer, reason } => {
                let t = format!("authentication with {peer} failed: {reason}");
                warn!("{conn}: {t}");
                self.ike.note(&conn, t);
            }
            Event::ChildFailed { conn, error, .. } => {
                let t = format!("child SA failed: {error}");
                warn!("{conn}: {t}");
                self.ike.note(&conn, t);
            }
        }
    }

    fn ike_sa_status(&self, spi: u32, dir: Direction, gen: u64, alive: bool) -> SaStatus {
        let mut st = SaStatus {
            spi,
            spi_hex: format!("{spi:#x}"),
            ..Default::default()
        };
        if let Some(s) = self.ike.sas.get(&(spi, dir)) {
            if let Some(v) = self
                .read_slot_view(s.slot)
                .filter(|v| v.spi == spi && v.generation == gen && v.key_id == s.key_id)
            {
                st.packets = v.stats.packets;
                st.bytes = v.stats.bytes;
                st.drops = v.stats.drops.iter().sum();
                st.drops_by_reason = super::engine::drops_map(&v.stats.drops);
                st.seq = v.stats.seq;
                st.active = v.state == SlotState::Active && alive;
            }
        }
        st
    }

    /// Rows of `status` for the connections, and the IKE SA details.
    pub(super) fn ike_status(&self, st: &mut api::Status, alive: bool, gen: u64) {
        let now = Instant::now();
        let sas = self.ike.engine.status();
        for c in &self.ike.conns {
            let conn = &c.cfg.conn;
            let mine: Vec<&ike::IkeSaStatus> =
                sas.iter().filter(|s| s.conn == c.cfg.name).collect();
            let child = mine
                .iter()
                .filter(|s| s.state == "ESTABLISHED")
                .flat_map(|s| s.children.iter())
                .filter(|ch| ch.state == "INSTALLED")
                .max_by_key(|ch| ch.created);
            let (state, reason) = if let Some(e) = &self.ike.io_error {
                ("error", Some(format!("IKE sockets unavailable: {e}")))
            } else if child.is_some() {
                ("up", None)
            } else if !mine.is_empty() {
                ("connecting", c.error.clone())
            } else if let Some(e) = &c.error {
                ("error", Some(e.clone()))
            } else {
                (
                    "down",
                    Some(
                        match conn.start_action {
                            StartAction::Add => "listening",
                            StartAction::Trap => "trap installed",
                            StartAction::None => "start = none",
                            StartAction::Start => "not connected",
                        }
                        .to_string(),
                    ),
                )
            };
            let mut ts = TunnelStatus {
                name: c.cfg.name.clone(),
                kind: "ike".into(),
                id: c.id,
                state: state.into(),
                reason,
                start: format!("{:?}", conn.start_action).to_lowercase(),
                local: match conn.local_addr {
                    ike::LocalAddr::Addr(a) => a.to_string(),
                    ike::LocalAddr::DefaultRoute => "%defaultroute".into(),
                    ike::LocalAddr::Any => "%any".into(),
                },
                remote: match conn.remote_addr {
                    RemoteAddr::Addr(a) => a.to_string(),
                    RemoteAddr::Any => "%any".into(),
                },
                local_subnets: conn.local_ts.iter().map(|n| n.to_string()).collect(),
                remote_subnets: conn.remote_ts.iter().map(|n| n.to_string()).collect(),
                mode: format!("{:?}", conn.mode).to_lowercase(),
                ..Default::default()
            };
            if let Some(ch) = child {
                ts.suite = ch.proposal.clone();
                ts.age_s = Some(now.saturating_duration_since(ch.created).as_secs());
                ts.inbound =
                    Some(self.ike_sa_status(ch.inbound_spi, Direction::Inbound, gen, alive));
                ts.outbound =
                    Some(self.ike_sa_status(ch.outbound_spi, Direction::Outbound, gen, alive));
            }
            st.tunnels.push(ts);
        }
        for s in &sas {
            st.ike_sas.push(IkeStatus {
                id: format!("{:#018x}", s.id),
                conn: s.conn.clone(),
                state: s.state.to_string(),
                initiator: s.initiator,
                spi_i: format!("{:016x}", s.spis.0),
                spi_r: format!("{:016x}", s.spis.1),
                local: s.local.to_string(),
                remote: s.remote.to_string(),
                remote_id: s.remote_id.clone().unwrap_or_default(),
                proposal: s.proposal.clone(),
                nat_local: s.nat_local,
                nat_remote: s.nat_remote,
                rekey_in_s: secs_until(s.rekey_at, now),
                expire_in_s: secs_until(s.expire_at, now),
                children: s
                    .children
                    .iter()
                    .map(|ch| ChildStatus {
                        state: ch.state.to_string(),
                        proposal: ch.proposal.clone(),
                        local_ts: ch.local_ts.clone(),
                        remote_ts: ch.remote_ts.clone(),
                        encap: ch.encap,
                        inbound: self.ike_sa_status(ch.inbound_spi, Direction::Inbound, gen, alive),
                        outbound: self.ike_sa_status(
                            ch.outbound_spi,
                            Direction::Outbound,
                            gen,
                            alive,
                        ),
                        age_s: now.saturating_duration_since(ch.created).as_secs(),
                        rekey_in_s: secs_until(ch.rekey_at, now),
                        expire_in_s: secs_until(Some(ch.expire_at), now),
                    })
                    .collect(),
            });
        }
        let stats = self.ike.engine.stats();
        st.ike = Some(api::IkeCounters {
            rx: stats.rx,
            tx: stats.tx,
            retransmits: stats.retransmits,
            ike_established: stats.ike_established,
            child_established: stats.child_established,
            half_open: self.ike.engine.half_open() as u64,
            drops_by_reason: ike::IkeDrop::ALL
                .iter()
                .filter(|r| stats.drop_count(**r) > 0)
                .map(|r| (r.name().to_string(), stats.drop_count(*r)))
                .collect(),
            notes: self.ike.notes.iter().cloned().collect(),
        });
    }
}
