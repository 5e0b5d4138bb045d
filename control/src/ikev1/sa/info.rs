//! Informational exchanges (RFC 2409 §5.7): notifies and deletes protected
//! by HASH(1) and their own IV, DPD R-U-THERE / R-U-THERE-ACK with sequence
//! numbers (RFC 3706), INITIAL-CONTACT, error notifies; local deletes.

use super::*;
use crate::ikev1::wire::{notify, payload, proto, DeleteView, NotifyView, Payloads};

impl IsakmpSa {
    /// Sends one informational message holding `rest`.
    fn send_info(&mut self, ctx: &mut Ctx, rest: &PayloadWriter) {
        if self.cipher.is_none() || self.keys.is_none() {
            return;
        }
        let mid = ctx.new_mid();
        self.remember_mid(mid);
        let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
        let pw = self.with_hash(rest, |b| crypto::hash1(h, &a, mid, b));
        let iv = crypto::phase2_iv(h, &self.p1_iv, mid, self.block());
        if let Ok((m, _)) = self.encrypt(wire::exchange::INFORMATIONAL, 0, mid, &pw, &iv) {
            self.send(ctx, &m);
        }
    }

    /// A notify in an informational exchange (errors during quick mode).
    pub(super) fn send_notify(
        &mut self,
        ctx: &mut Ctx,
        protocol: u8,
        spi: &[u8],
        t: u16,
        data: &[u8],
    ) {
        let mut rest = PayloadWriter::new();
        rest.notify(protocol, spi, t, data);
        self.send_info(ctx, &rest);
    }

    fn cookies(&self) -> Vec<u8> {
        let mut c = self.ic.to_be_bytes().to_vec();
        c.extend_from_slice(&self.rc.to_be_bytes());
        c
    }

    pub(super) fn send_dpd(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.state != P1State::Established || self.dpd.is_some() {
            return;
        }
        self.dpd_seq = self.dpd_seq.wrapping_add(1).max(1);
        let seq = self.dpd_seq;
        self.send_r_u_there(ctx, seq);
        self.dpd = Some(DpdPending {
            seq,
            deadline: now + self.conn.dpd.timeout,
            next: now + ctx.settings.retransmit_timeout,
            retries: 0,
        });
    }

    pub(super) fn send_r_u_there(&mut self, ctx: &mut Ctx, seq: u32) {
        ctx.stats.dpd_sent += 1;
        let c = self.cookies();
        self.send_notify(
            ctx,
            proto::ISAKMP,
            &c,
            notify::R_U_THERE,
            &seq.to_be_bytes(),
        );
    }

    pub(super) fn send_isakmp_delete(&mut self, ctx: &mut Ctx) {
        let mut rest = PayloadWriter::new();
        rest.delete_isakmp(self.ic, self.rc);
        self.send_info(ctx, &rest);
    }

    pub fn mark_replaced(&mut self) {
        self.replaced = true;
        self.dpd = None;
    }

    /// A replaced ISAKMP SA goes after `after` (the earliest if asked twice).
    pub(super) fn retire(&mut self, after: Duration, now: Instant) {
        let at = now + after;
        self.replaced = true;
        self.retire_at = Some(self.retire_at.map_or(at, |r| r.min(at)));
    }

    /// The peer re-authenticated and its new ISAKMP SA (cookie `theirs_ic`)
    /// took this one's IPsec SAs: this one goes, later if it is itself a
    /// re-authentication of ours (the two crossed).
    pub fn retire_after_peer_reauth(&mut self, theirs_ic: u64, now: Instant) {
        if self.reauth_of.is_some() {
            self.retire_crossed(theirs_ic, now);
        } else {
            self.retire(RETIRE_AFTER_REAUTH, now);
        }
    }

    /// Our re-authentication crossed the peer's (`theirs_ic`), which holds
    /// the IPsec SAs: this one goes, unless the peer deletes the other one
    /// first (the IPsec SAs then come back here, [`Self::revive`]). Two
    /// espressos agree without a word: the SA with the higher initiator
    /// cookie goes first (15 s), the other waits longer (60 s) and is
    /// revived by that DELETE; strongSwan settles it itself within 10 s.
    pub fn retire_crossed(&mut self, theirs_ic: u64, now: Instant) {
        self.mark_replaced();
        let after = if self.ic > theirs_ic {
            RETIRE_AFTER_CROSSING
        } else {
            RETIRE_AFTER_CROSSING_YIELD
        };
        self.retire(after, now);
    }

    pub fn is_replaced(&self) -> bool {
        self.replaced
    }

    /// Its time came: the DELETE of a replaced ISAKMP SA.
    pub(super) fn retire_now(&mut self, ctx: &mut Ctx) {
        self.retire_at = None;
        self.send_isakmp_delete(ctx);
        self.replaced = true;
        self.state = P1State::Deleting;
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Rekeyed,
        });
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    /// A replaced ISAKMP SA takes IPsec SAs back (the peer deleted the one
    /// they had moved to): in use again, its DELETE cancelled.
    pub fn revive(&mut self) {
        self.replaced = false;
        self.retire_at = None;
    }

    /// IPsec SAs (or draining inbound ones) are under this ISAKMP SA.
    pub fn holds_ipsec_sas(&self) -> bool {
        !self.children.is_empty() || !self.drains.is_empty()
    }

    /// Whether a peer's DELETE of `other` should hand its IPsec SAs to this
    /// one: established, not going, same connection and peer.
    pub fn can_inherit_from(&self, other: &IsakmpSa) -> bool {
        self.id != other.id
            && self.state == P1State::Established
            && self.conn.name == other.conn.name
            && self.remote_id == other.remote_id
            && self.remote.ip() == other.remote.ip()
    }

    /// Local delete of everything: a delete per IPsec SA, then the ISAKMP SA.
    pub fn terminate(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.state == P1State::Established {
            let spis: Vec<u32> = self.children.iter().map(|c| c.inbound_spi).collect();
            for s in spis {
                let mut rest = PayloadWriter::new();
                rest.delete_esp(&[s]);
                self.send_info(ctx, &rest);
            }
            self.send_isakmp_delete(ctx);
        }
        self.purge(ctx, DeleteReason::Local);
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Local,
        });
        self.state = P1State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
        let _ = now;
    }

    /// Local delete of one IPsec SA pair (operator, expiry).
    pub fn delete_child_local(&mut self, ctx: &mut Ctx, inbound: u32, now: Instant) {
        self.delete_child_local_reason(ctx, inbound, DeleteReason::Local, now);
    }

    pub(super) fn delete_child_local_reason(
        &mut self,
        ctx: &mut Ctx,
        inbound: u32,
        reason: DeleteReason,
        now: Instant,
    ) {
        let Some(i) = self.children.iter().position(|c| c.inbound_spi == inbound) else {
            return;
        };
        if self.state == P1State::Established {
            let mut rest = PayloadWriter::new();
            rest.delete_esp(&[inbound]);
            self.send_info(ctx, &rest);
        }
        // a replaced pair (a rekey's old one, a collision's redundant one)
        // may still carry the peer's last packets, whatever ends it: a
        // peer that never deleted it (strongSwan does not, for IKEv1) may
        // still send on it when it expires here
        let drain =
            reason == DeleteReason::Rekeyed || self.children[i].state == ChildState::Rekeyed;
        self.remove_child_sas(ctx, i, drain, now);
        let c = self.children.remove(i);
        ctx.event(Event::ChildDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            reason,
        });
    }

    pub(super) fn info(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if !hdr.encrypted() {
            self.info_plain(ctx, msg, hdr, from);
            return;
        }
        let mid = hdr.message_id();
        if self.keys.is_none() || mid == 0 {
            ctx.drop(V1Drop::Unexpected);
            return;
        }
        if self.seen_mids.contains(&mid) {
            ctx.drop(V1Drop::Unexpected);
            return;
        }
        let iv = crypto::phase2_iv(self.hash_alg(), &self.p1_iv, mid, self.block());
        let Some((plain, _)) = self.open(ctx, msg, &iv) else {
            return;
        };
        let Some((p, hash)) = hash_first(ctx, &plain, hdr.next_payload()) else {
            return;
        };
        let want = crypto::hash1(
            self.hash_alg(),
            self.skeyid_a(),
            mid,
            &plain[p.after_hash..p.end],
        );
        if !crate::ike::crypto::ct_eq(&want, hash) {
            ctx.drop(V1Drop::Hash);
            return;
        }
        self.remember_mid(mid);
        self.heard(from, to, now);
        for n in &p.notifies {
            self.info_notify(ctx, n);
        }
        for d in &p.deletes {
            match d.protocol {
                proto::ESP | proto::AH => self.peer_deleted_children(ctx, d, now),
                proto::ISAKMP if d.cookies().any(|(i, r)| i == self.ic && r == self.rc) => {
                    self.peer_deleted_isakmp(ctx);
                    return;
                }
                _ => {}
            }
        }
        let _ = payload::NONE;
    }

    /// An unencrypted informational: only before phase 1 completes, the
    /// peer refusing our proposal or authentication.
    fn info_plain(&mut self, ctx: &mut Ctx, msg: &[u8], hdr: Header<'_>, from: SocketAddr) {
        // only before phase 1 completes: the peer refuses (NO-PROPOSAL-CHOSEN,
        // AUTHENTICATION-FAILED when our MM5 did not decrypt, ...)
        if self.state == P1State::Established || self.state == P1State::Deleting {
            ctx.drop(V1Drop::Unexpected);
            return;
        }
        match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload()) {
            Ok(p) => match p.error_notify() {
                Some(code) if from.ip() == self.remote.ip() => {
                    if code == notify::NO_PROPOSAL_CHOSEN {
                        ctx.event(Event::ProposalMismatch {
                            conn: self.conn.name.clone(),
                            kind: "IKE",
                            peer: self.remote,
                            offered: vec!["?".into()],
                            configured: self
                                .conn
                                .phase1_proposals
                                .iter()
                                .map(|p| p.to_string())
                                .collect(),
                            local_responder: false,
                        });
                    }
                    self.fail(
                        ctx,
                        IkeError::PeerError {
                            code,
                            name: notify::name(code),
                        },
                    );
                }
                _ => ctx.drop(V1Drop::Unexpected),
            },
            Err(_) => ctx.drop(V1Drop::Malformed),
        }
    }

    /// One notify of an authenticated informational: DPD, INITIAL-CONTACT,
    /// or an error refusing one of our quick modes.
    fn info_notify(&mut self, ctx: &mut Ctx, n: &NotifyView<'_>) {
        match n.ntype {
            notify::R_U_THERE => {
                let c = self.cookies();
                self.send_notify(ctx, proto::ISAKMP, &c, notify::R_U_THERE_ACK, n.data);
            }
            notify::R_U_THERE_ACK => {
                let seq = (n.data.len() == 4)
                    .then(|| u32::from_be_bytes([n.data[0], n.data[1], n.data[2], n.data[3]]));
                if self.dpd.as_ref().is_some_and(|d| Some(d.seq) == seq) {
                    self.dpd = None;
                }
            }
            notify::INITIAL_CONTACT => {
                if !self.initiator {
                    // IPsec SAs of a re-authenticating peer move here first
                    ctx.deferred.push(Deferred::Adopt { keep: self.id });
                }
                ctx.deferred
                    .push(Deferred::InitialContact { keep: self.id });
            }
            t if notify::is_error(t) => self.quick_refused(ctx, t, n.spi32()),
            _ => {}
        }
    }

    /// The peer refused a quick mode we started (`t`: the error notify,
    /// `spi`: its SPI, ours when given): those exchanges fail.
    fn quick_refused(&mut self, ctx: &mut Ctx, t: u16, spi: Option<u32>) {
        // a refused quick mode: the notify's SPI is ours when given
        let failed: Vec<usize> = self
            .qms
            .iter()
            .enumerate()
            .filter(|(_, q)| q.initiator && q.state == QmState::I1Sent)
            .filter(|(_, q)| spi.is_none_or(|s| s == q.inbound_spi) || spi.is_none())
            .map(|(i, _)| i)
            .collect();
        let failed = if failed.is_empty() {
            self.qms
                .iter()
                .enumerate()
                .filter(|(_, q)| q.initiator && q.state == QmState::I1Sent)
                .map(|(i, _)| i)
                .collect()
        } else {
            failed
        };
        for qi in failed {
            if t == notify::NO_PROPOSAL_CHOSEN {
                ctx.event(Event::ProposalMismatch {
                    conn: self.conn.name.clone(),
                    kind: "ESP",
                    peer: self.remote,
                    offered: vec!["?".into()],
                    configured: self
                        .conn
                        .esp_proposals
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    local_responder: false,
                });
            }
            self.child_failed(
                ctx,
                qi,
                IkeError::PeerError {
                    code: t,
                    name: notify::name(t),
                },
            );
        }
    }

    /// A peer's DELETE of IPsec SAs: each named SA (by either SPI) goes,
    /// its policies handed over to a replacement first.
    fn peer_deleted_children(&mut self, ctx: &mut Ctx, d: &DeleteView<'_>, now: Instant) {
        for spi in d.spis32().collect::<Vec<_>>() {
            let i = self
                .children
                .iter()
                .position(|c| c.outbound_spi == spi)
                .or_else(|| self.children.iter().position(|c| c.inbound_spi == spi));
            if let Some(i) = i {
                let gone = self.children[i].inbound_spi;
                self.handover_policies(ctx, i, now);
                // (the handover may have removed it already)
                let Some(i) = self.children.iter().position(|c| c.inbound_spi == gone) else {
                    continue;
                };
                let drain = self.children[i].state == ChildState::Rekeyed;
                self.remove_child_sas(ctx, i, true, now);
                let c = self.children.remove(i);
                ctx.event(Event::ChildDeleted {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                    reason: if drain {
                        DeleteReason::Rekeyed
                    } else {
                        DeleteReason::Peer
                    },
                });
            }
        }
    }

    /// A peer's DELETE of this ISAKMP SA: IPsec SAs still under it go to
    /// another ISAKMP SA with the peer if there is one (the engine, then
    /// [`Self::finish_peer_delete`]), as strongSwan moves them to the ISAKMP
    /// SA it keeps (two re-authentications crossed: the peer kept the other
    /// one); deleting an ISAKMP SA does not delete IPsec SAs (RFC 2408
    /// §4.6.3).
    fn peer_deleted_isakmp(&mut self, ctx: &mut Ctx) {
        self.state = P1State::Deleting;
        ctx.deferred.push(Deferred::PeerDeleted(self.id));
    }

    /// The rest of a peer's DELETE of this ISAKMP SA, after the engine moved
    /// its IPsec SAs or found no SA to take them.
    pub fn finish_peer_delete(&mut self, ctx: &mut Ctx) {
        // IPsec SAs that moved to a replacement stay there
        self.purge(ctx, DeleteReason::Peer);
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Peer,
        });
        self.state = P1State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    /// The peer stopped answering: the DPD action.
    pub(super) fn peer_dead(&mut self, ctx: &mut Ctx) {
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
        self.state = P1State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
        if action == crate::ike::DpdAction::Restart
            && self.conn.remote_addr != crate::ike::RemoteAddr::Any
        {
            ctx.deferred.push(Deferred::Restart {
                conn: self.conn.clone(),
            });
        }
    }
}
