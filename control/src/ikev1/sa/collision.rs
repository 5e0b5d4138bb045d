//! Rekey collisions (both ends rekeyed one IPsec SA at once; RFC 2409 has
//! no rule for it): which of the two new pairs carries the traffic, and the
//! hand-over when the peer deletes the pair we use.
//!
//! Peers do not agree on a rule. Ours (and the first guess) is RFC 7296
//! §2.8.1's: the exchange with the lowest nonce made the redundant pair.
//! strongSwan (charon, IKEv1, default `delete_rekeyed = no`) has none: it
//! sends on the pair it installed last (quick_mode.c `install`: the pair
//! its later exchange replaced loses its outbound SA, and the kernel or
//! libipsec picks the newest outbound SA of the reqid) and deletes
//! neither. So neither pair is deleted until the peer's choice is visible
//! in the dataplane's counters: the pair whose inbound SA receives packets
//! while the other's receives none is the one the peer sends on. We then
//! send on it too (a swap if it was the redundant one) and delete the
//! other. With no traffic from the peer nothing is decided: the redundant
//! pair is not rekeyed and goes at its end (or with the peer's delete).

use super::quick::QM_KEEP;
use super::*;

/// How often a watched collision's counters are looked at.
pub(super) const WATCH_TICK: Duration = Duration::from_millis(250);
/// The counters are compared over at least this long.
const WATCH_WINDOW: Duration = Duration::from_secs(1);

impl IsakmpSa {
    /// Both ends rekeyed the same IPsec SA at once (RFC 2409 has no
    /// collision handling): child `new` just finished, `sib` (made for the
    /// same old SA by the other exchange) carries the traffic. The traffic
    /// moves to the winner of the nonce rule (the peer's pick if it uses
    /// the rule too), the loser is neither used nor rekeyed, and both pairs
    /// stay until the peer's choice is visible ([`Self::collision_timers`]).
    pub(super) fn resolve_collision(
        &mut self,
        ctx: &mut Ctx,
        new: usize,
        sib: usize,
        now: Instant,
    ) {
        ctx.stats.rekey_collisions += 1;
        let new_wins = self.children[new].low_nonce > self.children[sib].low_nonce;
        let loser = if new_wins {
            if let Some(out) = self.children[new].pending_out.take() {
                ctx.dp(DataplaneOp::InstallSa(out));
                self.children[new].out_installed = true;
            }
            self.children[new].state = ChildState::Installed;
            self.move_policies(ctx, sib, new, true);
            sib
        } else {
            new
        };
        let winner = if new_wins { new } else { sib };
        let partner = self.children[winner].inbound_spi;
        // the peer switches when its own second exchange ends (up to a
        // switch delay after ours): its choice shows after that
        let settle = now + ctx.settings.rekey_switch_delay * 2 + WATCH_TICK;
        let (l_in, l_out) = {
            let l = &mut self.children[loser];
            l.state = ChildState::Rekeyed;
            l.redundant = true;
            l.rekey_at = None;
            l.rekey_busy = false;
            l.delete_at = None;
            l.watch = Some(CollisionWatch {
                partner,
                next: now + WATCH_TICK,
                settle_until: settle,
                base: None,
                swapped: false,
            });
            (l.inbound_spi, l.outbound_spi)
        };
        let w = &self.children[winner];
        ctx.event(Event::ChildRekeyCollision {
            sa: self.id,
            conn: self.conn.name.clone(),
            kept_inbound: w.inbound_spi,
            kept_outbound: w.outbound_spi,
            redundant_inbound: l_in,
            redundant_outbound: l_out,
        });
    }

    /// The next look at a watched collision's counters.
    pub(super) fn collision_due(&self) -> Option<Instant> {
        self.children
            .iter()
            .filter_map(|c| c.watch.map(|w| w.next))
            .min()
    }

    /// Inbound SPIs whose packet counts a watched collision, or a rekey of
    /// ours waiting for the peer to take the new pair ([`SwitchWatch`]),
    /// needs.
    pub(crate) fn watched_inbound(&self, out: &mut Vec<u32>) {
        for c in &self.children {
            if let Some(w) = c.watch {
                out.push(c.inbound_spi);
                out.push(w.partner);
            }
        }
        for q in self.qms.iter().filter(|q| q.switch.is_some()) {
            if q.state == QmState::WaitConnected {
                out.push(q.inbound_spi);
                out.extend(q.rekey_of);
            }
        }
    }

    /// The dataplane's packet count of inbound SA `spi` (false: not ours).
    pub(crate) fn set_inbound_packets(&mut self, spi: u32, packets: u64) -> bool {
        match self.children.iter_mut().find(|c| c.inbound_spi == spi) {
            Some(c) => {
                c.in_packets = Some(packets);
                true
            }
            None => false,
        }
    }

    /// Watched collisions: once the peer sends on one pair only (over
    /// [`WATCH_WINDOW`], after the settle time), that pair carries our
    /// traffic too and the other is deleted (its inbound SA drains).
    pub(super) fn collision_timers(&mut self, ctx: &mut Ctx, now: Instant) {
        let due: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.watch.is_some_and(|w| now >= w.next))
            .map(|c| c.inbound_spi)
            .collect();
        for spi in due {
            self.look_at_collision(ctx, spi, now);
        }
    }

    fn look_at_collision(&mut self, ctx: &mut Ctx, spi: u32, now: Instant) {
        let Some(li) = self.children.iter().position(|c| c.inbound_spi == spi) else {
            return;
        };
        let Some(mut w) = self.children[li].watch else {
            return;
        };
        w.next = now + WATCH_TICK;
        let partner = self
            .children
            .iter()
            .position(|c| c.inbound_spi == w.partner && c.state == ChildState::Installed);
        let Some(wi) = partner else {
            // the pair we send on was rekeyed or deleted: the redundant one
            // stays until its end or the peer's delete
            self.children[li].watch = None;
            return;
        };
        let counts = self.children[li]
            .in_packets
            .zip(self.children[wi].in_packets);
        let Some((l, p)) = counts.filter(|_| now >= w.settle_until) else {
            self.children[li].watch = Some(w);
            return;
        };
        let Some((since, l0, p0)) = w.base else {
            w.base = Some((now, l, p));
            self.children[li].watch = Some(w);
            return;
        };
        if now.duration_since(since) < WATCH_WINDOW {
            self.children[li].watch = Some(w);
            return;
        }
        let (dl, dp) = (l.saturating_sub(l0), p.saturating_sub(p0));
        if dp > 0 && dl == 0 {
            // the peer sends on our pair: the redundant one goes
            self.children[li].watch = None;
            let (k_in, k_out) = {
                let k = &self.children[wi];
                (k.inbound_spi, k.outbound_spi)
            };
            let gone_out = self.children[li].outbound_spi;
            self.delete_child_local_reason(ctx, spi, DeleteReason::Rekeyed, now);
            ctx.event(Event::ChildCollisionSettled {
                sa: self.id,
                conn: self.conn.name.clone(),
                kept_inbound: k_in,
                kept_outbound: k_out,
                deleted_inbound: spi,
                deleted_outbound: gone_out,
                followed_peer: w.swapped,
            });
        } else if dl > 0 && dp == 0 {
            // the peer sends on the redundant pair only (it installed that
            // one last): our traffic moves to it and the other pair waits
            // to be seen idle in turn before it goes
            ctx.stats.collision_swaps += 1;
            self.children[li].watch = None;
            self.promote_redundant(ctx, wi, li, true, now);
            let settle = now + ctx.settings.rekey_switch_delay + WATCH_TICK;
            let x = &mut self.children[wi];
            x.state = ChildState::Rekeyed;
            x.redundant = true;
            x.rekey_at = None;
            x.rekey_busy = false;
            x.watch = Some(CollisionWatch {
                partner: spi,
                next: now + WATCH_TICK,
                settle_until: settle,
                base: None,
                swapped: true,
            });
        } else {
            // both (the peer is switching) or neither (no traffic): look again
            w.base = Some((now, l, p));
            self.children[li].watch = Some(w);
        }
    }

    /// The redundant pair `j` carries the traffic of child `from` from now:
    /// its outbound SA goes in (if it waited), the policies move to it
    /// (`from`'s outbound SA stays if `keep_out`), and it is rekeyed by its
    /// lifetime.
    fn promote_redundant(
        &mut self,
        ctx: &mut Ctx,
        from: usize,
        j: usize,
        keep_out: bool,
        now: Instant,
    ) {
        if let Some(out) = self.children[j].pending_out.take() {
            ctx.dp(DataplaneOp::InstallSa(out));
            self.children[j].out_installed = true;
        }
        self.move_policies(ctx, from, j, keep_out);
        let margin = self.conn.margin;
        let rekey = self.conn.rekey;
        let c = &mut self.children[j];
        c.state = ChildState::Installed;
        c.redundant = false;
        c.delete_at = None;
        c.watch = None;
        c.rekey_at = (rekey && c.expire_at > now + margin).then(|| c.expire_at - margin);
    }

    /// The peer deletes child `idx` while our traffic still uses it: the
    /// traffic moves to another pair for the same selectors if there is
    /// one (the pair of a rekey still waiting for its switch, or the
    /// redundant pair of a collision the peer resolved the other way).
    pub(super) fn handover_policies(&mut self, ctx: &mut Ctx, idx: usize, now: Instant) {
        if self.children[idx].policies.is_empty() {
            return;
        }
        let (gone, lt, rt) = {
            let c = &self.children[idx];
            (c.inbound_spi, c.local_ts, c.remote_ts)
        };
        let other = |c: &ChildSa| {
            c.inbound_spi != gone
                && c.local_ts == lt
                && c.remote_ts == rt
                && c.in_installed
                && (c.out_installed || c.pending_out.is_some())
        };
        // a rekey of this very child waiting for its switch: switch now
        if let Some(next) = self
            .children
            .iter()
            .find(|c| other(c) && c.state == ChildState::InboundOnly && c.replaces == Some(gone))
            .map(|c| c.inbound_spi)
        {
            if let Some(q) = self.qms.iter_mut().find(|q| q.inbound_spi == next) {
                q.state = QmState::Done;
                q.until = Some(now + QM_KEEP);
            }
            self.finish_outbound(ctx, next, now);
            return;
        }
        let Some(j) = self.children.iter().position(|c| other(c) && c.redundant) else {
            return;
        };
        self.promote_redundant(ctx, idx, j, false, now);
    }
}
