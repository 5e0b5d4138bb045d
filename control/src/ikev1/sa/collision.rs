//! Rekey collisions (both ends rekeyed one IPsec SA at once; RFC 2409 has
//! no rule for it): which of the two new pairs carries the traffic, and the
//! hand-over when the peer deletes the pair we use.

use super::quick::QM_KEEP;
use super::*;

/// How long after a rekey collision we wait for the peer to delete the
/// redundant pair its exchange made before we delete it.
const REDUNDANT_GRACE: Duration = Duration::from_secs(5);

impl IsakmpSa {
    /// Both ends rekeyed the same IPsec SA at once (RFC 2409 has no
    /// collision handling): child `new` just finished, `sib` (made for the
    /// same old SA by the other exchange) carries the traffic. One pair goes
    /// on, chosen the same way at both ends (RFC 7296 §2.8.1's rule: the
    /// exchange with the lowest nonce made the redundant pair): the traffic
    /// moves to the winner, the loser is neither used nor rekeyed, its
    /// inbound SA stays while the peer may still send on it, and the end
    /// that initiated the losing exchange deletes it once the peer has
    /// switched too (the other end [`REDUNDANT_GRACE`] later, for peers
    /// without this rule; a peer that picks the other pair deletes ours,
    /// and the traffic then moves over: [`Self::handover_policies`]).
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
            self.move_policies(ctx, sib, new);
            sib
        } else {
            new
        };
        let (l_in, l_out, initiated) = {
            let l = &mut self.children[loser];
            l.state = ChildState::Rekeyed;
            l.redundant = true;
            l.rekey_at = None;
            l.rekey_busy = false;
            (l.inbound_spi, l.outbound_spi, l.initiated)
        };
        // the peer switches when its own second exchange ends (up to a
        // switch delay after ours), then its last packets drain; a peer
        // that does not resolve collisions (strongSwan, IKEv1) never
        // deletes the loser it made: we do, a while later (it then sends on
        // the pair it has left, the winner)
        let mut wait = ctx.settings.rekey_switch_delay * 2 + ctx.settings.drain;
        if !initiated {
            wait += REDUNDANT_GRACE;
        }
        self.children[loser].delete_at = Some(now + wait);
        let w = &self.children[if new_wins { new } else { sib }];
        ctx.event(Event::ChildRekeyCollision {
            sa: self.id,
            conn: self.conn.name.clone(),
            kept_inbound: w.inbound_spi,
            kept_outbound: w.outbound_spi,
            redundant_inbound: l_in,
            redundant_outbound: l_out,
            we_delete: initiated,
        });
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
        if let Some(out) = self.children[j].pending_out.take() {
            ctx.dp(DataplaneOp::InstallSa(out));
            self.children[j].out_installed = true;
        }
        self.move_policies(ctx, idx, j);
        let margin = self.conn.margin;
        let rekey = self.conn.rekey;
        let c = &mut self.children[j];
        c.state = ChildState::Installed;
        c.redundant = false;
        c.delete_at = None;
        c.rekey_at = (rekey && c.expire_at > now + margin).then(|| c.expire_at - margin);
    }
}
