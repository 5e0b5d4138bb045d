//! The sans-IO IKEv2 engine: fed datagrams (with their addresses), time and
//! dataplane events; returns datagrams to send, dataplane operations (SAs and
//! policies to install or remove) and events. No sockets, no clock, no threads:
//! whole exchanges run in memory in the tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use espresso_core::sa::{Direction, SaEvent};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::config::{Connection, LocalAddr, RemoteAddr, StartAction};
use super::conns::{trap_owner, ConnTable};
pub use super::ctx::{
    DataplaneOp, DegradedNext, DeleteReason, Event, IkeDrop, Output, ReservedSpis, Settings, Stats,
    Transmit,
};
use super::error::IkeError;
use super::halfopen::Refusal;
use super::sa::{Ctx, Deferred, IkeSa, Task};
pub use super::status::{ChildSaStatus, IkeSaStatus};
use super::ts::conn_ts;
use super::wire::{self, exchange, notify, Header, Payloads, HEADER_LEN};

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
                new_spis: Vec::new(),
                reserved: ReservedSpis::default(),
                half_open: Default::default(),
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
        self.ctx.half_open.total()
    }

    /// The SPIs held in the dataplane (by anyone, this engine's children
    /// included), as the daemon's installer knows them: a peer choosing one
    /// of the outbound ones for a new child is refused with
    /// NO_PROPOSAL_CHOSEN, and our inbound SPIs avoid the inbound ones.
    /// The driver calls this before feeding the engine whenever they changed.
    pub fn set_reserved_spis(&mut self, spis: ReservedSpis) {
        self.ctx.reserved = spis;
    }

    /// The inbound SPIs of child SAs offered to peers (or accepted from
    /// them) since the last call. The driver announces them to the
    /// dataplane before the messages that carry them leave, so that ESP a
    /// peer sends before our SA is installed (strongSwan sends on the
    /// IKE_AUTH child before we read its answer) is held, not dropped.
    pub fn take_new_inbound_spis(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.ctx.new_spis)
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
        let conn = self.ctx.add_conn(conn)?;
        if conn.start_action == StartAction::Start {
            self.initiate(&conn.name, now)?;
        }
        Ok(())
    }

    /// Removes a connection: its trap policies go; established SAs stay until deleted.
    pub fn remove_connection(&mut self, name: &str) -> Result<(), IkeError> {
        self.ctx.remove_conn(name)
    }

    /// Starts an IKE SA (and its first child SA) for a connection; returns the IKE SA id.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<u64, IkeError> {
        let conn = self.ctx.conn(name)?;
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

    /// MOBIKE (RFC 4555): our address changed from `old` to `new`. Every
    /// established IKE SA with MOBIKE that runs from `old` (all of them with
    /// `old` None) tells its peer with UPDATE_SA_ADDRESSES, and its child SAs
    /// follow once the peer answered. Returns the SAs that will move.
    pub fn local_address_changed(
        &mut self,
        old: Option<std::net::IpAddr>,
        new: std::net::IpAddr,
        now: Instant,
    ) -> Vec<u64> {
        let mut moved = Vec::new();
        for (id, sa) in self.sas.iter_mut() {
            if !sa.mobike() || !sa.is_established() || !sa.is_usable() {
                continue;
            }
            if old.is_some_and(|o| o != sa.local.ip()) || sa.local.ip() == new {
                continue;
            }
            if sa.update_local_address(&mut self.ctx, new, now).is_ok() {
                moved.push(*id);
            }
        }
        self.process_deferred(now);
        moved
    }

    /// MOBIKE: moves one IKE SA (and its children) to our address `new`.
    pub fn move_sa(
        &mut self,
        id: u64,
        new: std::net::IpAddr,
        now: Instant,
    ) -> Result<(), IkeError> {
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        sa.update_local_address(&mut self.ctx, new, now)?;
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
                let Some(name) = trap_owner(&self.ctx.trap_policies, *policy_id) else {
                    return;
                };
                let Ok(conn) = self.ctx.conn(&name) else {
                    return;
                };
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
        if data.len() > self.ctx.settings.max_message + 4 {
            self.ctx.drop(IkeDrop::TooBig);
            return;
        }
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
        if msg.len() > self.ctx.settings.max_message {
            self.ctx.drop(IkeDrop::TooBig);
            return;
        }
        if hdr.exchange() == exchange::IKE_SA_INIT && !hdr.is_response() {
            if msg.len() > self.ctx.settings.max_init_message {
                self.ctx.drop(IkeDrop::TooBig);
                return;
            }
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
        let mut v = self.ctx.addressed(from, to);
        v.retain(|c| c.start_action != StartAction::None || c.remote_addr != RemoteAddr::Any);
        v
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
        if self.ctx.half_open.total() >= self.ctx.settings.cookie_threshold {
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
        // the hard limits, even for a peer that returned our cookie
        match self
            .ctx
            .half_open
            .admit(from.ip(), self.ctx.settings.half_open_limits)
        {
            Ok(()) => {}
            Err(Refusal::Global) => {
                self.ctx.drop(IkeDrop::HalfOpenLimit);
                return;
            }
            Err(Refusal::PerSource) => {
                self.ctx.drop(IkeDrop::HalfOpenPerSource);
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
            self.ctx.half_open.add(from.ip());
            let mut sa = sa;
            sa.half_open_from = Some(from.ip());
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
                        let moved = self.sas.get_mut(&from).map(|s| s.take_children(now));
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
                    Deferred::Reestablish { conn, since, old } => {
                        if let Ok(id) = self.initiate_conn(conn, None, now) {
                            if let Some(s) = self.sas.get_mut(&id) {
                                s.initial_contact = false;
                                s.replaces = Some(old);
                                s.set_peer_deleted_at(since);
                            }
                        }
                    }
                    Deferred::Retire { sa } => {
                        if let Some(s) = self.sas.get_mut(&sa) {
                            s.retire(&mut self.ctx, now);
                        }
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
