//! The CREATE_CHILD_SA exchange (RFC 7296 §1.3): answering a request (new
//! child, child rekey), starting one, and its response (success, refusal,
//! failure) with the make-before-break switch of a rekeyed child. The child
//! SAs themselves (keys, proposals, selectors, installation) are `child`'s.

use super::*;

impl IkeSa {
    pub(super) fn create_child_request(
        &mut self,
        ctx: &mut Ctx,
        msg_id: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let mut pw = PayloadWriter::new();
        let is_ike =
            p.sa.and_then(|s| s.proposals().ok())
                .and_then(|v| v.first().map(|p| p.protocol))
                == Some(proto::IKE);
        if is_ike {
            self.ike_rekey_request(ctx, msg_id, p, now);
            return;
        }
        let Some(ni) = p.nonce else {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
            return;
        };
        if self.rekeyed_to.is_some() {
            pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
            self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
            return;
        }
        let mut rekey_idx = None;
        if let Some(n) = p.notify(notify::REKEY_SA) {
            let spi = n.spi32().unwrap_or(0);
            match self.children.iter().position(|c| c.outbound_spi == spi) {
                None => {
                    pw.notify(
                        proto::ESP,
                        &spi.to_be_bytes(),
                        notify::CHILD_SA_NOT_FOUND,
                        &[],
                    );
                    self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
                    return;
                }
                Some(i)
                    if self.children[i].state != ChildState::Installed
                        || self.children[i].rekeyed_by_peer.is_some() =>
                {
                    pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
                    self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
                    return;
                }
                Some(i) => rekey_idx = Some(i),
            }
        }
        let ni = ni.to_vec();
        self.responder_child(ctx, p, &ni, None, false, rekey_idx, &mut pw, now);
        self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_create_child(
        &mut self,
        ctx: &mut Ctx,
        rekey_of: Option<u32>,
        tsi: Vec<TsEntry>,
        tsr: Vec<TsEntry>,
        group: Option<DhGroup>,
        ke_retries: u32,
        now: Instant,
    ) {
        let offered = self.child_offers(true);
        let group = group.or_else(|| {
            offered
                .first()
                .and_then(|x| x.iter().find(|t| t.ttype == ttype::DH && t.id != 0))
                .and_then(|t| DhGroup::from_number(t.id))
        });
        let dh = group.map(|g| DhPrivate::generate(g, &mut ctx.rng));
        let pc = PendingChild {
            inbound_spi: ctx.new_child_spi(),
            ni: ctx.random_bytes(32),
            dh,
            tsi,
            tsr,
            rekey_of,
            offered,
            ke_retries,
        };
        let mut pw = PayloadWriter::new();
        if let Some(old) = rekey_of {
            pw.notify(proto::ESP, &old.to_be_bytes(), notify::REKEY_SA, &[]);
        }
        sa_payload(
            &mut pw,
            proto::ESP,
            &pc.inbound_spi.to_be_bytes(),
            &pc.offered,
        );
        pw.nonce(&pc.ni);
        if let Some(d) = &pc.dh {
            pw.ke(d.group().number(), d.public());
        }
        pw.ts(payload::TSI, &pc.tsi);
        pw.ts(payload::TSR, &pc.tsr);
        if self.conn.mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
        self.send_request(
            ctx,
            now,
            exchange::CREATE_CHILD_SA,
            pw,
            ActiveKind::CreateChild(pc),
        );
    }

    pub(super) fn create_child_response(
        &mut self,
        ctx: &mut Ctx,
        pc: PendingChild,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let old_idx = pc
            .rekey_of
            .and_then(|o| self.children.iter().position(|c| c.inbound_spi == o));
        if let Some(code) = p.error_notify() {
            self.create_child_refused(ctx, &pc, old_idx, code, p, now);
            return;
        }
        let Some(nr) = p.nonce else {
            let e = IkeError::Missing {
                exchange: "CREATE_CHILD_SA",
                payload: "Nr",
            };
            self.create_child_failed(ctx, &pc, old_idx, e);
            return;
        };
        let nr = nr.to_vec();
        let ni = pc.ni.clone();
        let mut parts = match self.finish_child_initiator(ctx, &pc, p, &ni, &nr, false, now) {
            Ok(x) => Some(x),
            Err(e) => {
                self.create_child_failed(ctx, &pc, old_idx, e);
                return;
            }
        };
        if self.refuse_taken_spi(ctx, &mut parts, old_idx, now) {
            return;
        }
        let Some(parts) = parts else { return };
        let Some(oi) = old_idx else {
            self.install_new_child(ctx, parts);
            return;
        };
        self.finish_child_rekey(ctx, oi, parts, now);
    }

    /// Our CREATE_CHILD_SA's answer is unusable: free the SPI we offered,
    /// let the old child be rekeyed again, report the error.
    fn create_child_failed(
        &mut self,
        ctx: &mut Ctx,
        pc: &PendingChild,
        old_idx: Option<usize>,
        error: IkeError,
    ) {
        ctx.free_child_spi(pc.inbound_spi);
        if let Some(i) = old_idx {
            self.children[i].rekey_busy = false;
        }
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error,
        });
    }

    /// The peer answered our CREATE_CHILD_SA with an error notify: retry with
    /// the DH group it asks for (INVALID_KE_PAYLOAD, twice at most), retry a
    /// rekey later (TEMPORARY_FAILURE), give a vanished child up
    /// (CHILD_SA_NOT_FOUND), or report the refusal.
    fn create_child_refused(
        &mut self,
        ctx: &mut Ctx,
        pc: &PendingChild,
        old_idx: Option<usize>,
        code: u16,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        ctx.free_child_spi(pc.inbound_spi);
        if code == notify::INVALID_KE_PAYLOAD && pc.ke_retries < 2 {
            let g = p
                .notify(notify::INVALID_KE_PAYLOAD)
                .and_then(|n| be16(n.data))
                .and_then(DhGroup::from_number);
            if let Some(g) = g {
                let (tsi, tsr) = (pc.tsi.clone(), pc.tsr.clone());
                self.start_create_child(
                    ctx,
                    pc.rekey_of,
                    tsi,
                    tsr,
                    Some(g),
                    pc.ke_retries + 1,
                    now,
                );
                return;
            }
        }
        if let Some(i) = old_idx {
            self.children[i].rekey_busy = false;
            if code == notify::NO_PROPOSAL_CHOSEN {
                self.own_rekey_refused(ctx, i);
                return;
            }
            let c = &mut self.children[i];
            if code == notify::TEMPORARY_FAILURE || code == notify::CHILD_SA_NOT_FOUND {
                // §2.25: retry a little later (the peer may be rekeying it),
                // well before the child expires
                c.rekey_at = Some(now + retry_wait(ctx, Some(c.expire_at), now));
                if code == notify::CHILD_SA_NOT_FOUND {
                    c.rekey_at = None;
                }
                return;
            }
        }
        if old_idx.is_none() && self.peer_deleted_at.is_some() && !self.retire_when_empty {
            // the child replacing one the peer deleted was refused (a peer
            // that wants no PFS in CREATE_CHILD_SA): a fresh IKE SA brings
            // the connection back (its child comes with IKE_AUTH)
            self.child_refused(ctx, code);
            self.reestablish(ctx);
            return;
        }
        self.child_refused(ctx, code);
    }

    /// Our rekey of child `oi` was answered: resolve a collision with the
    /// peer's own rekey (§2.8.1: the exchange holding the lowest nonce
    /// loses), else install the new child make-before-break and delete the
    /// old one.
    fn finish_child_rekey(
        &mut self,
        ctx: &mut Ctx,
        oi: usize,
        parts: (ChildSa, Box<SaParams>, Box<SaParams>),
        now: Instant,
    ) {
        let (mut child, inb, out) = parts;
        if let Some(peer_new) = self.children[oi].rekeyed_by_peer {
            let peer_min = self
                .children
                .iter()
                .find(|c| c.inbound_spi == peer_new)
                .map(|c| c.nonce_min.clone());
            if let Some(pm) = peer_min {
                if child.nonce_min < pm {
                    // ours lost: never installed; delete it at the peer
                    child.state = ChildState::Deleting;
                    let spi = child.inbound_spi;
                    self.children.push(child);
                    self.children[oi].rekey_busy = false;
                    self.tasks.push_front(Task::DeleteChild {
                        spis: vec![spi],
                        rekey: false,
                    });
                    return;
                }
                // ours won: the peer deletes its new SA; forget the link
                self.children[oi].rekeyed_by_peer = None;
            }
        }
        ctx.dp(DataplaneOp::InstallSa(inb));
        child.in_installed = true;
        child.pending_out = Some(out);
        child.state = ChildState::InboundOnly;
        self.children.push(child);
        let ni_idx = self.children.len() - 1;
        self.switch_child(ctx, oi, ni_idx, now);
        let old_in = self.children[oi].inbound_spi;
        self.children[oi].state = ChildState::Rekeyed;
        // Our outbound SA is the new one already; the DELETE of the old
        // pair waits a little (as IKEv1's switch delay): the peer drops its
        // old inbound SA when the DELETE arrives, and ESP we sent on it just
        // before the switch may still be queued on the way (a loaded
        // strongSwan with kernel-libipsec lost such datagrams).
        if ctx.settings.rekey_switch_delay.is_zero() {
            self.tasks.push_front(Task::DeleteChild {
                spis: vec![old_in],
                rekey: true,
            });
        } else {
            self.children[oi].delete_at = Some(now + ctx.settings.rekey_switch_delay);
        }
    }
}
