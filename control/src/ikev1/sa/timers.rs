//! Timers: retransmission with backoff and a limit (phase 1, quick mode,
//! DPD), half-open timeout, IPsec SA rekey and expiry, ISAKMP SA
//! re-authentication and expiry, DPD (RFC 3706), NAT keepalives (RFC 3948),
//! drains of replaced inbound SAs, commit-bit CONNECTED timeout.

use std::ops::ControlFlow;

use super::*;

impl IsakmpSa {
    fn dpd_due(&self) -> Option<Instant> {
        let d = self.conn.dpd.delay;
        (d > Duration::ZERO
            && self.state == P1State::Established
            && self.peer_dpd
            && !self.replaced
            && self.dpd.is_none())
        .then(|| self.last_heard + d)
    }

    pub fn next_timeout(&self, _ctx: &Ctx) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut m = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        m(self.half_open_deadline);
        m(self.p1_rtx.as_ref().map(|r| r.next));
        for q in &self.qms {
            m(q.rtx.as_ref().map(|r| r.next));
            m(q.until);
        }
        for (at, _) in &self.drains {
            m(Some(*at));
        }
        if self.state == P1State::Established {
            m(self.retire_at);
            m(self.collision_due());
            for c in &self.children {
                if c.state != ChildState::InboundOnly {
                    m(Some(c.expire_at));
                }
                m(c.delete_at);
                if c.state == ChildState::Installed && !c.rekey_busy && !self.replaced {
                    m(c.rekey_at);
                }
            }
            if !self.replaced {
                m(self.expire_at);
                if !self.reauth_busy {
                    m(self.rekey_at);
                }
            }
            m(self.dpd_due());
            if let Some(d) = &self.dpd {
                m(Some(d.next.min(d.deadline)));
            }
            if self.nat_local {
                m(self.keepalive_at);
            }
        }
        t
    }

    fn backoff(ctx: &Ctx, retries: u32) -> Duration {
        Duration::from_secs_f64(
            ctx.settings.retransmit_timeout.as_secs_f64()
                * ctx.settings.retransmit_base.powi(retries as i32),
        )
    }

    pub fn on_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.state == P1State::Established && self.retire_at.is_some_and(|r| now >= r) {
            self.retire_now(ctx);
            return;
        }
        if self.half_open_timers(ctx, now).is_break() || self.p1_timers(ctx, now).is_break() {
            return;
        }
        self.qm_timers(ctx, now);
        self.drain_timers(ctx, now);
        if self.state != P1State::Established {
            return;
        }
        self.collision_timers(ctx, now);
        self.child_lifetimes(ctx, now);
        if self.isakmp_lifetime(ctx, now).is_break() || self.dpd_timers(ctx, now).is_break() {
            return;
        }
        if self.nat_local && self.keepalive_at.is_some_and(|k| now >= k) {
            ctx.keepalive(self.local, self.remote);
            self.keepalive_at = Some(now + ctx.settings.keepalive);
        }
    }

    /// A phase 1 that did not finish in time goes (Break: the SA is gone).
    fn half_open_timers(&mut self, ctx: &mut Ctx, now: Instant) -> ControlFlow<()> {
        if self.half_open_deadline.is_some_and(|d| now >= d) && self.state != P1State::Established {
            self.half_open_deadline = None;
            self.purge(ctx, DeleteReason::HalfOpenTimeout);
            ctx.event(Event::IkeDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason: DeleteReason::HalfOpenTimeout,
            });
            self.state = P1State::Deleting;
            ctx.deferred.push(Deferred::Remove(self.id));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Phase 1 retransmission (Break: out of tries, the SA failed).
    fn p1_timers(&mut self, ctx: &mut Ctx, now: Instant) -> ControlFlow<()> {
        if let Some(r) = &mut self.p1_rtx {
            if now >= r.next {
                if r.retries >= ctx.settings.retransmit_tries {
                    let tries = r.retries + 1;
                    self.p1_rtx = None;
                    if self.state == P1State::AmR2 {
                        // AM3 never came: the half-open timeout cleans up
                    } else {
                        self.fail(ctx, IkeError::Timeout(tries));
                        return ControlFlow::Break(());
                    }
                } else {
                    r.retries += 1;
                    r.next = now + Self::backoff(ctx, r.retries);
                    ctx.stats.retransmits += 1;
                    let pkt = r.packet.clone();
                    self.send(ctx, &pkt);
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Quick modes: retransmissions, CONNECTED timeouts, forgetting.
    fn qm_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        let mut i = 0;
        while i < self.qms.len() {
            let q = &mut self.qms[i];
            if let Some(r) = &mut q.rtx {
                if now >= r.next {
                    if r.retries >= ctx.settings.retransmit_tries {
                        let tries = r.retries + 1;
                        let initiator = q.initiator;
                        let inbound = q.inbound_spi;
                        if initiator {
                            self.child_failed(ctx, i, IkeError::Timeout(tries));
                            if self.conn.dpd.delay > Duration::ZERO {
                                self.send_dpd(ctx, now);
                            }
                        } else {
                            // QM3 never came: the inbound SA we installed goes
                            q.rtx = None;
                            q.state = QmState::Done;
                            q.until = Some(now);
                            if let Some(ci) =
                                self.children.iter().position(|c| c.inbound_spi == inbound)
                            {
                                self.remove_child_sas(ctx, ci, false, now);
                                self.children.remove(ci);
                            }
                        }
                    } else {
                        r.retries += 1;
                        r.next = now + Self::backoff(ctx, r.retries);
                        ctx.stats.retransmits += 1;
                        let pkt = r.packet.clone();
                        ctx.transmit(self.local, self.remote, &pkt);
                    }
                }
            }
            let (due, state) = (
                self.qms[i].until.is_some_and(|u| now >= u),
                self.qms[i].state,
            );
            if due {
                if state == QmState::WaitConnected && !self.peer_switched(ctx, i, now) {
                    self.qms[i].until = Some(now + SWITCH_TICK);
                } else if state == QmState::WaitConnected {
                    // CONNECTED never came (or the peer took our rekey's
                    // new pair): use the SA
                    let inbound = self.qms[i].inbound_spi;
                    self.qms[i].state = QmState::Done;
                    self.qms[i].until = Some(now + Duration::from_secs(60));
                    self.finish_outbound(ctx, inbound, now);
                } else if state == QmState::Done {
                    self.qms.remove(i);
                    continue;
                }
            }
            i += 1;
        }
    }

    /// A rekey we started may move our traffic to the new pair (see
    /// [`SwitchWatch`]): the peer sends on it, or it rekeyed the same pair
    /// at once (a collision), or [`SWITCH_WAIT_MAX`] passed, or the old
    /// pair is about to expire. True also for a quick
    /// mode that does not watch (commit bit: CONNECTED's deadline), and
    /// after the switch delay where the dataplane reports no counts.
    /// Silence on the old pair proves nothing: a peer starved of CPU sends
    /// nothing for seconds (test 36 at load 27: charon, its QM3 lost, got
    /// our DELETE of the pair it was rekeying and was left with none).
    fn peer_switched(&self, ctx: &Ctx, qi: usize, now: Instant) -> bool {
        let q = &self.qms[qi];
        let Some(w) = q.switch else {
            return true;
        };
        let child = |spi: Option<u32>| self.children.iter().find(|c| Some(c.inbound_spi) == spi);
        let (new, old) = (child(Some(q.inbound_spi)), child(q.rekey_of));
        let old_end = old.map(|c| {
            c.expire_at
                .checked_sub(SWITCH_TICK * 4)
                .unwrap_or(c.expire_at)
        });
        // the peer rekeyed the same pair too (a collision): the counters
        // decide there (`resolve_collision`)
        let crossed = self.children.iter().any(|c| {
            c.inbound_spi != q.inbound_spi
                && c.rekeyed_from == q.rekey_of
                && c.state == ChildState::Installed
        });
        if crossed || now >= w.since + SWITCH_WAIT_MAX || old_end.is_some_and(|e| now >= e) {
            return true;
        }
        match new.and_then(|c| c.in_packets) {
            Some(n) => n > 0,
            // no counts (no dataplane to ask): the switch delay alone
            None => now >= w.since + ctx.settings.rekey_switch_delay,
        }
    }

    /// Replaced IPsec SAs whose delete is due, and drained inbound SAs.
    fn drain_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        let due: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.delete_at.is_some_and(|t| t <= now))
            .map(|c| c.inbound_spi)
            .collect();
        for inbound in due {
            self.delete_child_local_reason(ctx, inbound, DeleteReason::Rekeyed, now);
        }
        let mut k = 0;
        while k < self.drains.len() {
            if self.drains[k].0 <= now {
                let (_, spi) = self.drains.swap_remove(k);
                ctx.dp(DataplaneOp::RemoveSa {
                    spi,
                    direction: Direction::Inbound,
                });
                ctx.free_child_spi(spi);
            } else {
                k += 1;
            }
        }
    }

    /// IPsec SAs: expiry, rekey.
    fn child_lifetimes(&mut self, ctx: &mut Ctx, now: Instant) {
        let mut expired = Vec::new();
        let mut rekey = Vec::new();
        for c in &self.children {
            if c.state != ChildState::InboundOnly && now >= c.expire_at {
                expired.push(c.inbound_spi);
            } else if c.state == ChildState::Installed
                && !c.rekey_busy
                && !self.replaced
                && c.rekey_at.is_some_and(|r| now >= r)
            {
                rekey.push(c.inbound_spi);
            }
        }
        for s in expired {
            // An IPsec SA in use whose rekey never started (the timers ran
            // late: the process was stalled past the rekey time) or failed
            // for good: new IPsec SAs for its selectors at once, rather than
            // none until the next acquire (the hold policy discards
            // meanwhile). A rekey still in flight brings its own successor.
            let again = self
                .children
                .iter()
                .find(|c| c.inbound_spi == s)
                .filter(|c| c.state == ChildState::Installed && !c.rekey_busy)
                .filter(|_| self.conn.rekey && !self.replaced)
                .map(|c| (c.local_ts, c.remote_ts));
            self.delete_child_local_reason(ctx, s, DeleteReason::Expired, now);
            if let Some((local, remote)) = again {
                self.queue(
                    ctx,
                    Task::QuickMode {
                        local: vec![local],
                        remote: vec![remote],
                    },
                    now,
                );
            }
        }
        for s in rekey {
            if let Some(c) = self.children.iter_mut().find(|c| c.inbound_spi == s) {
                c.rekey_at = None;
            }
            self.queue(ctx, Task::RekeyChild(s), now);
        }
    }

    /// The ISAKMP SA's expiry (Break: terminated) and re-authentication.
    fn isakmp_lifetime(&mut self, ctx: &mut Ctx, now: Instant) -> ControlFlow<()> {
        if !self.replaced {
            if self.expire_at.is_some_and(|e| now >= e) {
                self.expire_at = None;
                self.terminate(ctx, now);
                return ControlFlow::Break(());
            }
            if !self.reauth_busy && self.rekey_at.is_some_and(|r| now >= r) {
                self.rekey_at = None;
                self.queue(ctx, Task::Reauth, now);
            }
        }
        ControlFlow::Continue(())
    }

    /// DPD: R-U-THERE when due, its retransmissions, the peer declared
    /// dead at the deadline (Break).
    fn dpd_timers(&mut self, ctx: &mut Ctx, now: Instant) -> ControlFlow<()> {
        if self.dpd_due().is_some_and(|d| now >= d) {
            self.send_dpd(ctx, now);
        }
        if let Some(d) = &mut self.dpd {
            if now >= d.deadline {
                self.dpd = None;
                self.peer_dead(ctx);
                return ControlFlow::Break(());
            }
            if now >= d.next {
                d.retries += 1;
                d.next = now + Self::backoff(ctx, d.retries);
                let seq = d.seq;
                ctx.stats.retransmits += 1;
                self.send_r_u_there(ctx, seq);
            }
        }
        ControlFlow::Continue(())
    }
}
