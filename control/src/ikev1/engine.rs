//! The sans-IO IKEv1 engine, shaped like the IKEv2 one (`crate::ike::Engine`):
//! fed datagrams with their addresses, time and dataplane events; returns
//! the same [`Output`]s (datagrams, SA/policy installs and removals in
//! make-before-break order, [`Event`]s) and the next deadline. No sockets,
//! no clock: whole exchanges run in memory in the tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use espresso_core::sa::{Direction, SaEvent};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::ike::conns::{trap_owner, ConnTable};
use crate::ike::engine::{Event, Output};
use crate::ike::error::IkeError;
use crate::ike::halfopen::Refusal;
use crate::ike::ts::conn_ts;
use crate::ike::wire::TsEntry;
use crate::ike::{LocalAddr, RemoteAddr, StartAction};

use super::config::{Connection, ExchangeMode};
use super::crypto::Phase1Keys;
use super::ctx::{Ctx, Deferred, Task};
pub use super::ctx::{Ikev1SaStatus, Settings, Stats, V1Drop};
use super::sa::IsakmpSa;
use super::wire::{self, exchange, Header, HEADER_LEN};

/// The IKEv1 engine.
pub struct Engine {
    pub(crate) ctx: Ctx,
    pub(crate) sas: HashMap<u64, IsakmpSa>,
    /// Responder SAs by (peer, initiator cookie), for retransmitted first messages.
    by_icookie: HashMap<(IpAddr, u64), u64>,
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
    fn with_rng(settings: Settings, rng: StdRng) -> Self {
        Engine {
            ctx: Ctx {
                now: Instant::now(),
                settings,
                conns: Vec::new(),
                out: VecDeque::new(),
                rng,
                stats: Stats::default(),
                default_route: None,
                next_policy_id: 0,
                trap_policies: HashMap::new(),
                child_spis: HashSet::new(),
                half_open: Default::default(),
                deferred: Vec::new(),
            },
            sas: HashMap::new(),
            by_icookie: HashMap::new(),
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
    /// Responder phase 1 exchanges in progress.
    pub fn half_open(&self) -> usize {
        self.ctx.half_open.total()
    }
    /// The address `%defaultroute` stands for.
    pub fn set_default_route(&mut self, addr: Option<IpAddr>) {
        self.ctx.default_route = addr;
    }
    /// Configured connections.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.ctx.conns.iter().map(|c| c.as_ref())
    }

    /// Adds a connection and applies its start action.
    pub fn add_connection(&mut self, conn: Connection, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
        conn.validate()?;
        let conn = self.ctx.add_conn(conn)?;
        if conn.start_action == StartAction::Start {
            self.initiate(&conn.name, now)?;
        }
        Ok(())
    }

    /// Removes a connection (its trap policies go; SAs stay until deleted).
    pub fn remove_connection(&mut self, name: &str) -> Result<(), IkeError> {
        self.ctx.remove_conn(name)
    }

    /// Starts phase 1 (and the first quick mode) for a connection; returns the SA id.
    pub fn initiate(&mut self, name: &str, now: Instant) -> Result<u64, IkeError> {
        self.ctx.now = now;
        let conn = self.ctx.conn(name)?;
        self.initiate_conn(conn, None, None, now)
    }

    pub(crate) fn initiate_conn(
        &mut self,
        conn: Arc<Connection>,
        packet_ts: Option<(TsEntry, TsEntry)>,
        reauth_of: Option<u64>,
        now: Instant,
    ) -> Result<u64, IkeError> {
        let local_ip = match conn.local_addr {
            LocalAddr::Addr(a) => a,
            LocalAddr::DefaultRoute | LocalAddr::Any => {
                self.ctx.default_route.ok_or_else(|| {
                    IkeError::Config(format!(
                        "connection {:?}: %defaultroute is not resolved",
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
        let (mut l, mut r) = conn_ts(&conn, Some(local_ip), Some(remote_ip));
        if let Some((pl, pr)) = packet_ts {
            l.insert(0, pl);
            r.insert(0, pr);
        }
        // INITIAL-CONTACT only when we hold no SA with this peer
        let first_contact = !self
            .sas
            .values()
            .any(|s| s.conn.name == conn.name && s.remote.ip() == remote_ip);
        let local = SocketAddr::new(local_ip, self.ctx.settings.ike_port);
        let remote = SocketAddr::new(remote_ip, self.ctx.settings.ike_port);
        let first_qm = if reauth_of.is_some() {
            None
        } else {
            Some((l, r))
        };
        let sa = IsakmpSa::initiate(
            &mut self.ctx,
            conn,
            local,
            remote,
            first_qm,
            reauth_of,
            first_contact,
            now,
        );
        let id = sa.id;
        self.sas.insert(id, sa);
        self.process_deferred(now);
        Ok(id)
    }

    /// Deletes an ISAKMP SA and its IPsec SAs (the peer is told).
    pub fn terminate_ike(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        sa.terminate(&mut self.ctx, now);
        self.process_deferred(now);
        Ok(())
    }

    /// Deletes an IPsec SA pair (by its inbound SPI).
    pub fn terminate_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
        let id = self
            .sa_of_child(inbound_spi)
            .ok_or(IkeError::UnknownChild(inbound_spi))?;
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.delete_child_local(&mut self.ctx, inbound_spi, now);
        }
        self.process_deferred(now);
        Ok(())
    }

    /// Rekeys an IPsec SA now (new quick mode, make-before-break).
    pub fn rekey_child(&mut self, inbound_spi: u32, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
        let id = self
            .sa_of_child(inbound_spi)
            .ok_or(IkeError::UnknownChild(inbound_spi))?;
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.queue(&mut self.ctx, Task::RekeyChild(inbound_spi), now);
        }
        self.process_deferred(now);
        Ok(())
    }

    /// Re-authenticates an ISAKMP SA now: a new phase 1 takes over its IPsec SAs.
    pub fn rekey_ike(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
        let sa = self.sas.get_mut(&id).ok_or(IkeError::UnknownSa(id))?;
        if !sa.is_established() {
            return Err(IkeError::State {
                op: "reauthenticate",
                state: "not established",
            });
        }
        sa.queue(&mut self.ctx, Task::Reauth, now);
        self.process_deferred(now);
        Ok(())
    }

    /// Sends a DPD R-U-THERE now.
    pub fn dpd(&mut self, id: u64, now: Instant) -> Result<(), IkeError> {
        self.ctx.now = now;
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

    /// The phase 1 keys of an SA (tests and key export; never logged).
    pub fn phase1_keys(&self, id: u64) -> Option<&Phase1Keys> {
        self.sas.get(&id).and_then(|s| s.keys.as_ref())
    }

    /// ISAKMP SA ids.
    pub fn ike_sas(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.sas.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Status of every ISAKMP SA.
    pub fn status(&self) -> Vec<Ikev1SaStatus> {
        let mut v: Vec<Ikev1SaStatus> = self.sas.values().map(|s| s.status()).collect();
        v.sort_by_key(|s| s.sa.id);
        v
    }

    /// Inbound SPIs whose packet counts the engine needs now (the two
    /// pairs of each rekey collision waiting for the peer's choice): the
    /// caller reports them with [`Self::inbound_packets`] before
    /// [`Self::handle_timeout`].
    pub fn watched_inbound(&self) -> Vec<u32> {
        let mut v = Vec::new();
        for s in self.sas.values() {
            s.watched_inbound(&mut v);
        }
        v
    }

    /// The dataplane's count of packets received on inbound SA `spi` so far.
    pub fn inbound_packets(&mut self, spi: u32, packets: u64) {
        for s in self.sas.values_mut() {
            if s.set_inbound_packets(spi, packets) {
                return;
            }
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.ctx.out.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas
            .values()
            .filter_map(|s| s.next_timeout(&self.ctx))
            .min()
    }

    /// Runs timers: retransmissions, rekeys, expiries, DPD, keepalives, drains.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ctx.now = now;
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

    /// A dataplane event: byte/packet lifetimes, sequence exhaustion, acquires.
    pub fn handle_dataplane_event(&mut self, ev: &SaEvent, now: Instant) {
        self.ctx.now = now;
        match ev {
            SaEvent::SoftExpire { spi, direction, .. }
            | SaEvent::HardExpire { spi, direction, .. } => {
                let hard = matches!(ev, SaEvent::HardExpire { .. });
                let found = self
                    .sas
                    .iter()
                    .find_map(|(id, s)| s.child_by_spi(*spi, *direction).map(|i| (*id, i)));
                if let Some((id, inbound)) = found {
                    if let Some(sa) = self.sas.get_mut(&id) {
                        if hard && !sa.child_rekey_pending(inbound) {
                            sa.delete_child_local(&mut self.ctx, inbound, now);
                        } else if !hard && sa.conn.rekey {
                            sa.queue(&mut self.ctx, Task::RekeyChild(inbound), now);
                        }
                    }
                }
            }
            SaEvent::SeqExhausted { spi } => {
                let found = self.sas.iter().find_map(|(id, s)| {
                    s.child_by_spi(*spi, Direction::Outbound).map(|i| (*id, i))
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
                let host = |a: IpAddr| TsEntry {
                    proto: *proto,
                    start_port: 0,
                    end_port: 65535,
                    start: a,
                    end: a,
                };
                let existing = self
                    .sas
                    .iter()
                    .filter(|(_, s)| s.conn.name == name && s.is_usable())
                    .map(|(id, s)| (*id, s.is_established(), s.has_children_or_pending()))
                    .next();
                match existing {
                    None => {
                        let _ = self.initiate_conn(conn, Some((host(*src), host(*dst))), None, now);
                    }
                    Some((id, true, false)) => {
                        let (mut l, mut r) = conn_ts(&conn, self.ctx.default_route, None);
                        l.insert(0, host(*src));
                        r.insert(0, host(*dst));
                        if let Some(sa) = self.sas.get_mut(&id) {
                            sa.queue(
                                &mut self.ctx,
                                Task::QuickMode {
                                    local: l,
                                    remote: r,
                                },
                                now,
                            );
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
        self.ctx.now = now;
        self.ctx.stats.rx += 1;
        if data.len() > self.ctx.settings.max_message {
            self.ctx.drop(V1Drop::TooBig);
            return;
        }
        let msg = if to.port() == self.ctx.settings.natt_port {
            if data == [0xff] {
                self.ctx.stats.keepalives_rx += 1;
                return;
            }
            if data.len() < 4 || data[..4] != [0, 0, 0, 0] {
                self.ctx.drop(V1Drop::NotIke);
                return;
            }
            &data[4..]
        } else {
            data
        };
        let hdr = match Header::parse(msg) {
            Ok(h) => h,
            Err(_) => {
                self.ctx.drop(V1Drop::Malformed);
                return;
            }
        };
        let (ic, rc) = (hdr.icookie(), hdr.rcookie());
        // an SA we initiated (our cookie is the initiator's), or one we answer
        let ours = match self.sas.get(&ic) {
            Some(s) if s.initiator && (s.rc == rc || s.rc == 0) => Some(ic),
            _ => match self.sas.get(&rc) {
                Some(s) if !s.initiator && s.ic == ic => Some(rc),
                _ => None,
            },
        };
        if let Some(id) = ours {
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.handle(&mut self.ctx, msg, hdr, from, to, now);
            }
            self.process_deferred(now);
            return;
        }
        if rc == 0 && matches!(hdr.exchange(), exchange::MAIN | exchange::AGGRESSIVE) {
            if let Some(&id) = self.by_icookie.get(&(from.ip(), ic)) {
                if let Some(sa) = self.sas.get_mut(&id) {
                    sa.handle(&mut self.ctx, msg, hdr, from, to, now);
                    self.process_deferred(now);
                    return;
                }
            }
            self.respond_phase1(msg, hdr, from, to, now);
            self.process_deferred(now);
            return;
        }
        self.ctx.drop(V1Drop::UnknownSa);
    }

    fn respond_phase1(
        &mut self,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if hdr.encrypted() || hdr.message_id() != 0 || msg.len() <= HEADER_LEN {
            self.ctx.drop(V1Drop::Malformed);
            return;
        }
        if msg.len() > self.ctx.settings.max_first_message {
            self.ctx.drop(V1Drop::TooBig);
            return;
        }
        match self
            .ctx
            .half_open
            .admit(from.ip(), self.ctx.settings.half_open_limits)
        {
            Ok(()) => {}
            Err(Refusal::Global) => {
                self.ctx.drop(V1Drop::HalfOpenLimit);
                return;
            }
            Err(Refusal::PerSource) => {
                self.ctx.drop(V1Drop::HalfOpenPerSource);
                return;
            }
        }
        let mode = if hdr.exchange() == exchange::AGGRESSIVE {
            ExchangeMode::Aggressive
        } else {
            ExchangeMode::Main
        };
        let mut cands = self.ctx.addressed(from, to);
        cands.retain(|c| c.version.accepts(1) && c.exchange == mode);
        if cands.is_empty() {
            self.ctx.drop(V1Drop::NoConnection);
            let mut pw = wire::PayloadWriter::new();
            pw.notify(
                wire::proto::ISAKMP,
                &[],
                wire::notify::NO_PROPOSAL_CHOSEN,
                &[],
            );
            let m = wire::build_plain(hdr.icookie(), 0, exchange::INFORMATIONAL, 0, 0, &pw);
            self.ctx.transmit(to, from, &m);
            return;
        }
        if let Some(mut sa) = IsakmpSa::respond(&mut self.ctx, cands, msg, hdr, from, to, now) {
            sa.half_open_from = Some(from.ip());
            self.ctx.half_open.add(from.ip());
            self.by_icookie.insert((from.ip(), hdr.icookie()), sa.id);
            self.sas.insert(sa.id, sa);
        }
    }

    fn process_deferred(&mut self, now: Instant) {
        while !self.ctx.deferred.is_empty() {
            for item in std::mem::take(&mut self.ctx.deferred) {
                match item {
                    Deferred::Remove(id) => {
                        if let Some(sa) = self.sas.remove(&id) {
                            sa.release(&mut self.ctx);
                        }
                    }
                    Deferred::MoveChildren { from, to } => {
                        self.deferred_move_children(from, to, now)
                    }
                    Deferred::InitialContact { keep } => self.deferred_initial_contact(keep),
                    Deferred::Adopt { keep } => self.deferred_adopt(keep, now),
                    Deferred::PeerDeleted(id) => self.deferred_peer_deleted(id, now),
                    Deferred::Restart { conn } => {
                        let _ = self.initiate_conn(conn, None, None, now);
                    }
                    Deferred::Task { sa, task } => self.deferred_task(sa, task, now),
                }
            }
        }
        let sas = &self.sas;
        self.by_icookie.retain(|_, id| sas.contains_key(id));
    }

    /// Our re-authentication finished: the IPsec SAs move from `from` to `to`;
    /// if the peer's re-authentication crossed ours, ours is retired later.
    fn deferred_move_children(&mut self, from: u64, to: u64, now: Instant) {
        // the peer's re-authentication crossed ours and
        // already took the IPsec SAs: ours is redundant
        let crossed = self.sas.get(&from).is_some_and(|s| s.is_replaced());
        let moved = self.sas.get_mut(&from).map(|s| {
            s.finish_pending_switches(&mut self.ctx, now);
            s.mark_replaced();
            s.take_children(&mut self.ctx, now)
        });
        if let (Some(m), Some(t)) = (moved, self.sas.get_mut(&to)) {
            t.adopt_children(m);
        }
        let theirs = self.sas.get(&to).filter(|_| crossed).and_then(|t| {
            self.sas
                .values()
                .filter(|s| s.can_inherit_from(t) && s.is_usable())
                .max_by_key(|s| s.id)
                .map(|s| s.ic)
        });
        if let (Some(ic), Some(t)) = (theirs, self.sas.get_mut(&to)) {
            t.retire_crossed(ic, now);
        }
    }

    /// The other established ISAKMP SAs (usable ones only if `usable`) of
    /// `keep`'s connection with the same peer (identity and address); none
    /// if `keep` is gone.
    fn same_peer_established(&self, keep: u64, usable: bool) -> Vec<u64> {
        let Some(k) = self.sas.get(&keep) else {
            return Vec::new();
        };
        self.sas
            .iter()
            .filter(|(id, s)| {
                **id != keep
                    && s.conn.name == k.conn.name
                    && s.remote_id == k.remote_id
                    && s.remote.ip() == k.remote.ip()
                    && s.is_established()
                    && (!usable || s.is_usable())
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// INITIAL-CONTACT on `keep`: the other ISAKMP SAs with the same peer and
    /// connection are deleted with their IPsec SAs.
    fn deferred_initial_contact(&mut self, keep: u64) {
        for v in self.same_peer_established(keep, false) {
            if let Some(mut s) = self.sas.remove(&v) {
                s.purge(&mut self.ctx, crate::ike::DeleteReason::InitialContact);
                self.ctx.event(Event::IkeDeleted {
                    sa: v,
                    conn: s.conn.name.clone(),
                    reason: crate::ike::DeleteReason::InitialContact,
                });
                s.release(&mut self.ctx);
            }
        }
    }

    /// The peer re-authenticated into `keep`: it adopts the IPsec SAs of the
    /// older ISAKMP SAs with the same peer, which are retired.
    fn deferred_adopt(&mut self, keep: u64, now: Instant) {
        let Some(keep_ic) = self.sas.get(&keep).map(|k| k.ic) else {
            return;
        };
        for o in self.same_peer_established(keep, true) {
            let moved = self.sas.get_mut(&o).map(|s| {
                s.finish_pending_switches(&mut self.ctx, now);
                s.mark_replaced();
                s.take_children(&mut self.ctx, now)
            });
            if let (Some(m), Some(t)) = (moved, self.sas.get_mut(&keep)) {
                t.adopt_children(m);
            }
            // The replaced ISAKMP SA goes, as after a
            // re-authentication of ours: the peer is told
            // (strongSwan keeps its old IKEv1 SA REKEYING,
            // without IPsec SAs, until it expires; deleting
            // an ISAKMP SA never deletes IPsec SAs, RFC 2408
            // §4.6.3) and `status` lists only the new one.
            if let Some(s) = self.sas.get_mut(&o) {
                s.retire_after_peer_reauth(keep_ic, now);
            }
        }
    }

    /// The peer deleted ISAKMP SA `id`: its IPsec SAs go to the ISAKMP SA the
    /// peer kept, if any.
    fn deferred_peer_deleted(&mut self, id: u64, now: Instant) {
        // its IPsec SAs go to the ISAKMP SA the peer kept:
        // one in use first, else the newest (a replaced one
        // waiting for its DELETE is in use again)
        let heir = self
            .sas
            .get(&id)
            .filter(|g| g.holds_ipsec_sas())
            .and_then(|g| {
                self.sas
                    .values()
                    .filter(|s| s.can_inherit_from(g))
                    .max_by_key(|s| (s.is_usable(), s.id))
                    .map(|s| s.id)
            });
        if let Some(h) = heir {
            let moved = self.sas.get_mut(&id).map(|g| {
                g.finish_pending_switches(&mut self.ctx, now);
                g.take_children(&mut self.ctx, now)
            });
            if let (Some(m), Some(t)) = (moved, self.sas.get_mut(&h)) {
                t.revive();
                t.adopt_children(m);
            }
        }
        if let Some(g) = self.sas.get_mut(&id) {
            g.finish_peer_delete(&mut self.ctx);
        }
    }

    /// A task for ISAKMP SA `sa` (a re-authentication starts a new phase 1).
    fn deferred_task(&mut self, sa: u64, task: Task, now: Instant) {
        if let Task::Reauth = task {
            // a new phase 1 replaces `sa`
            if let Some(s) = self.sas.get(&sa) {
                let conn = s.conn.clone();
                let _ = self.initiate_conn(conn, None, Some(sa), now);
            }
        } else if let Some(s) = self.sas.get_mut(&sa) {
            s.queue(&mut self.ctx, task, now);
        }
    }
}
