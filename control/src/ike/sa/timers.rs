//! Queued work (tasks) and timers: retransmission, rekeys, expiry, DPD,
//! NAT keepalives, draining replaced SAs.

use super::*;
use std::ops::ControlFlow;

impl IkeSa {
    // ------------------------------------------------------------- tasks

    pub fn queue(&mut self, ctx: &mut Ctx, task: Task, now: Instant) {
        if let Task::RekeyChild(spi) = task {
            match self.children.iter_mut().find(|c| c.inbound_spi == spi) {
                Some(c)
                    if c.state == ChildState::Installed
                        && !c.rekey_busy
                        && c.rekeyed_by_peer.is_none() =>
                {
                    c.rekey_busy = true
                }
                _ => return,
            }
        }
        if matches!(task, Task::RekeyIke) {
            if self.rekey_busy || self.rekeyed_to.is_some() {
                return;
            }
            self.rekey_busy = true;
        }
        if matches!(task, Task::DeleteIke) && self.state != State::Established {
            if self.state != State::Deleting {
                self.fail(
                    ctx,
                    IkeError::State {
                        op: "delete",
                        state: "not established",
                    },
                );
            }
            return;
        }
        self.tasks.push_back(task);
        self.kick(ctx, now);
    }

    pub(super) fn kick(&mut self, ctx: &mut Ctx, now: Instant) {
        while self.active.is_none() && matches!(self.state, State::Established | State::Deleting) {
            let Some(t) = self.tasks.pop_front() else {
                return;
            };
            if self.state == State::Deleting
                && !matches!(t, Task::DeleteIke | Task::DeleteChild { .. })
            {
                continue;
            }
            match t {
                Task::CreateChild { tsi, tsr } => {
                    if self.rekeyed_to.is_none() {
                        self.start_create_child(ctx, None, tsi, tsr, None, 0, now);
                    }
                }
                Task::RekeyChild(spi) => {
                    let ok = self.rekeyed_to.is_none()
                        && self.children.iter().any(|c| {
                            c.inbound_spi == spi
                                && c.state == ChildState::Installed
                                && c.rekeyed_by_peer.is_none()
                        });
                    if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == spi) {
                        if !ok {
                            c.rekey_busy = false;
                            continue;
                        }
                        let (l, r) = (c.local_ts.clone(), c.remote_ts.clone());
                        self.start_create_child(ctx, Some(spi), l, r, None, 0, now);
                    }
                }
                Task::RekeyIke => {
                    if self.rekeyed_to.is_none() && self.state == State::Established {
                        self.start_ike_rekey(ctx, None, 0, now);
                    } else {
                        self.rekey_busy = false;
                    }
                }
                Task::DeleteChild { spis, rekey } => {
                    let mut pw = PayloadWriter::new();
                    pw.delete(proto::ESP, &spis);
                    self.send_request(
                        ctx,
                        now,
                        exchange::INFORMATIONAL,
                        pw,
                        ActiveKind::Delete { spis, rekey },
                    );
                }
                Task::DeleteIke => {
                    self.state = State::Deleting;
                    let mut pw = PayloadWriter::new();
                    pw.delete(proto::IKE, &[]);
                    self.send_request(ctx, now, exchange::INFORMATIONAL, pw, ActiveKind::DeleteIke);
                }
                Task::CheckRoutability => {
                    if self.state == State::Established {
                        self.start_routability_check(ctx, now);
                    }
                }
                Task::UpdateAddresses { local } => {
                    if self.state == State::Established {
                        self.start_update_addresses(ctx, local, now);
                    }
                }
                Task::Dpd => {
                    if self.state == State::Established {
                        self.send_request(
                            ctx,
                            now,
                            exchange::INFORMATIONAL,
                            PayloadWriter::new(),
                            ActiveKind::Dpd,
                        );
                    }
                }
            }
        }
    }

    // ------------------------------------------------------------ timers

    pub(super) fn dpd_due(&self) -> Option<Instant> {
        let d = self.conn.dpd.delay;
        (d > Duration::ZERO
            && self.state == State::Established
            && self.active.is_none()
            && self.tasks.is_empty()
            && self.rekeyed_to.is_none())
        .then(|| self.last_rx + d)
    }

    pub fn next_timeout(&self, ctx: &Ctx) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut m = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        m(self.half_open_deadline);
        if let Some(a) = &self.active {
            m(Some(a.next_rtx));
            m(a.deadline);
        }
        for (at, _) in &self.drains {
            m(Some(*at));
        }
        if self.state == State::Established {
            for c in &self.children {
                match c.state {
                    ChildState::Installed => {
                        m(Some(c.expire_at));
                        if !c.rekey_busy && c.rekeyed_by_peer.is_none() && self.rekeyed_to.is_none()
                        {
                            m(c.rekey_at);
                        }
                    }
                    ChildState::InboundOnly => {
                        m(Some(c.created + ctx.settings.outbound_install_timeout))
                    }
                    ChildState::Rekeyed if self.rekeyed_to.is_none() => m(c.delete_at),
                    _ => {}
                }
            }
            if self.rekeyed_to.is_none() {
                m(self.expire_at);
                if !self.rekey_busy {
                    m(self.rekey_at);
                }
            }
            m(self.retire_at);
            m(self.dpd_due());
            if self.nat_local {
                m(self.keepalive_at);
            }
        }
        t
    }

    pub fn on_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.half_open_deadline.is_some_and(|d| now >= d) && self.state == State::InitReplied {
            self.half_open_deadline = None;
            ctx.event(Event::IkeDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason: DeleteReason::HalfOpenTimeout,
            });
            self.state = State::Deleting;
            ctx.deferred.push(Deferred::Remove(self.id));
            return;
        }
        if self.retransmit_due(ctx, now).is_break() {
            return;
        }
        self.remove_drained(ctx, now);
        if self.state == State::Established {
            self.switch_late_children(ctx, now);
            self.child_timers(ctx, now);
            self.ike_timers(ctx, now);
        }
        self.kick(ctx, now);
    }

    /// Retransmits the outstanding request when its time has come; breaks
    /// when the peer is declared dead (tries exhausted or deadline passed).
    fn retransmit_due(&mut self, ctx: &mut Ctx, now: Instant) -> ControlFlow<()> {
        if let Some(a) = &mut self.active {
            let expired = a.deadline.is_some_and(|d| now >= d);
            if now >= a.next_rtx || expired {
                if a.retries >= ctx.settings.retransmit_tries || expired {
                    let tries = a.retries + 1;
                    self.peer_dead(ctx, tries);
                    return ControlFlow::Break(());
                }
                a.retries += 1;
                let wait = ctx.settings.retransmit_timeout.as_secs_f64()
                    * ctx.settings.retransmit_base.powi(a.retries as i32);
                a.next_rtx = now + Duration::from_secs_f64(wait);
                ctx.stats.retransmits += 1;
                let pkts = a.packets.clone();
                self.transmit_all(ctx, &pkts);
            }
        }
        ControlFlow::Continue(())
    }

    /// Removes the replaced inbound SAs whose drain time has passed.
    fn remove_drained(&mut self, ctx: &mut Ctx, now: Instant) {
        let mut i = 0;
        while i < self.drains.len() {
            if self.drains[i].0 <= now {
                let (_, spi) = self.drains.swap_remove(i);
                ctx.dp(DataplaneOp::RemoveSa {
                    spi,
                    direction: Direction::Inbound,
                });
                ctx.free_child_spi(spi);
            } else {
                i += 1;
            }
        }
    }

    /// Children the peer rekeyed whose old SA's delete never came: switch to
    /// them anyway once the outbound install timeout has passed.
    fn switch_late_children(&mut self, ctx: &mut Ctx, now: Instant) {
        let late: Vec<u32> = self
            .children
            .iter()
            .filter(|c| {
                c.state == ChildState::InboundOnly
                    && now >= c.created + ctx.settings.outbound_install_timeout
            })
            .map(|c| c.inbound_spi)
            .collect();
        for n in late {
            let old = self
                .children
                .iter()
                .position(|c| c.rekeyed_by_peer == Some(n));
            let new = self.children.iter().position(|c| c.inbound_spi == n);
            match (old, new) {
                (Some(o), Some(ni)) => {
                    self.switch_child(ctx, o, ni, now);
                    self.children[o].rekeyed_by_peer = None;
                    self.children[o].state = ChildState::Rekeyed;
                    let old_in = self.children[o].inbound_spi;
                    self.tasks.push_back(Task::DeleteChild {
                        spis: vec![old_in],
                        rekey: true,
                    });
                }
                (None, Some(ni)) => {
                    if let Some(out) = self.children[ni].pending_out.take() {
                        ctx.dp(DataplaneOp::InstallSa(out));
                        self.children[ni].out_installed = true;
                    }
                    self.children[ni].state = ChildState::Installed;
                }
                _ => {}
            }
        }
    }

    /// Installed children past their hard lifetime are deleted, those past
    /// their rekey time are queued for a rekey.
    fn child_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        // replaced children whose switch delay is over: DELETE them (not on
        // an IKE SA that is being replaced: they move to the new one first,
        // see take_children)
        let replaced = self.rekeyed_to.is_some();
        for c in self.children.iter_mut() {
            if !replaced && c.state == ChildState::Rekeyed && c.delete_at.is_some_and(|d| now >= d)
            {
                c.delete_at = None;
                self.tasks.push_back(Task::DeleteChild {
                    spis: vec![c.inbound_spi],
                    rekey: true,
                });
            }
        }
        let mut expired = Vec::new();
        let mut rekey = Vec::new();
        for c in &self.children {
            if c.state != ChildState::Installed {
                continue;
            }
            if now >= c.expire_at {
                expired.push(c.inbound_spi);
            } else if !c.rekey_busy
                && c.rekeyed_by_peer.is_none()
                && self.rekeyed_to.is_none()
                && c.rekey_at.is_some_and(|r| now >= r)
            {
                rekey.push(c.inbound_spi);
            }
        }
        for s in expired {
            let unrekeyed = self
                .children
                .iter()
                .find(|c| c.inbound_spi == s)
                .is_some_and(|c| !c.rekey_busy && c.rekeyed_by_peer.is_none());
            self.delete_child_local(ctx, s, now);
            if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == s) {
                c.rekey_at = None;
            }
            if unrekeyed {
                self.replace_expired_child();
            }
        }
        for s in rekey {
            if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == s) {
                c.rekey_at = None;
            }
            self.queue(ctx, Task::RekeyChild(s), now);
        }
        // replaced by a fresh IKE SA (a degraded child's fallback): gone
        // with its last child
        if self.retire_when_empty
            && self
                .children
                .iter()
                .all(|c| c.state == ChildState::Deleting)
            && !self.tasks.iter().any(|t| matches!(t, Task::DeleteIke))
        {
            self.queue(ctx, Task::DeleteIke, now);
        }
    }

    /// The IKE SA's own timers: expiry (delete) or rekey, DPD, NAT keepalive.
    fn ike_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.retire_at.is_some_and(|r| now >= r) {
            self.retire_at = None;
            self.hand_over_outbound(ctx);
            self.queue(ctx, Task::DeleteIke, now);
        }
        if self.rekeyed_to.is_none() {
            if self.expire_at.is_some_and(|e| now >= e) {
                self.expire_at = None;
                self.queue(ctx, Task::DeleteIke, now);
            } else if !self.rekey_busy && self.rekey_at.is_some_and(|r| now >= r) {
                self.rekey_at = None;
                self.queue(ctx, Task::RekeyIke, now);
            }
        }
        if self.dpd_due().is_some_and(|d| now >= d) {
            self.queue(ctx, Task::Dpd, now);
        }
        if self.nat_local && self.keepalive_at.is_some_and(|k| now >= k) {
            ctx.stats.keepalives_tx += 1;
            ctx.stats.tx += 1;
            ctx.out.push_back(crate::ike::ctx::Output::Transmit(
                crate::ike::ctx::Transmit {
                    local: self.local,
                    remote: self.remote,
                    data: vec![0xff],
                },
            ));
            self.keepalive_at = Some(now + ctx.settings.keepalive);
        }
    }

    pub(super) fn peer_dead(&mut self, ctx: &mut Ctx, tries: u32) {
        let kind = self.active.take().map(|a| a.kind);
        if let Some(ActiveKind::Auth(pc) | ActiveKind::CreateChild(pc)) = &kind {
            ctx.free_child_spi(pc.inbound_spi);
        }
        if matches!(self.state, State::InitSent | State::AuthSent) {
            self.fail(ctx, IkeError::Timeout(tries));
            return;
        }
        if matches!(kind, Some(ActiveKind::DeleteIke)) {
            self.finish_delete(ctx, DeleteReason::Local);
            return;
        }
        let action = self.conn.dpd.action;
        ctx.event(Event::DpdDead {
            sa: self.id,
            conn: self.conn.name.clone(),
            action,
        });
        self.purge(ctx, DeleteReason::Dead);
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Dead,
        });
        self.state = State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
        if action == DpdAction::Restart
            && self.conn.remote_addr != crate::ike::config::RemoteAddr::Any
        {
            ctx.deferred.push(Deferred::Restart {
                conn: self.conn.clone(),
            });
        }
    }
}
