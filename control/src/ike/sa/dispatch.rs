//! Incoming messages of an IKE SA: message IDs, retransmitted requests,
//! decryption, and the hand-off to the exchange handlers.

use super::fragments::frag_number;
use super::*;

impl IkeSa {
    // ------------------------------------------------------------ dispatch

    pub fn handle(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if hdr.spi_i() != self.spi_i {
            ctx.drop(IkeDrop::UnknownSpi);
            return;
        }
        if hdr.is_response() {
            if hdr.exchange() == exchange::IKE_SA_INIT {
                self.handle_init_response(ctx, msg, hdr, from, to, now);
            } else {
                self.handle_response(ctx, msg, hdr, now);
            }
        } else {
            self.handle_request(ctx, msg, hdr, from, to, now);
        }
    }

    /// A response (after IKE_SA_INIT) to our outstanding request: SPIs,
    /// message ID and exchange must match it; decrypted, it completes the
    /// request.
    fn handle_response(&mut self, ctx: &mut Ctx, msg: &[u8], hdr: Header<'_>, now: Instant) {
        if hdr.spi_r() != self.spi_r || hdr.is_initiator() == self.initiator {
            ctx.drop(IkeDrop::UnknownSpi);
            return;
        }
        let ok = self
            .active
            .as_ref()
            .is_some_and(|a| a.msg_id == hdr.message_id() && a.exchange == hdr.exchange());
        if !ok {
            ctx.drop(IkeDrop::MessageId);
            return;
        }
        let Some((first, plain)) = self.decrypt(ctx, msg, hdr, now) else {
            return;
        };
        let p = match Payloads::parse(&plain, first, 0) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        self.last_rx = now;
        let Some(active) = self.active.take() else {
            return;
        };
        self.on_response(ctx, active, &p, now);
        self.kick(ctx, now);
    }

    /// A request from the peer: a retransmission gets our last response
    /// again, the next message ID is decrypted and handed to its exchange.
    fn handle_request(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if hdr.spi_r() != self.spi_r || hdr.is_initiator() == self.initiator {
            ctx.drop(IkeDrop::UnknownSpi);
            return;
        }
        let id = hdr.message_id();
        if let Some((last, pkts)) = &self.last_response {
            if *last == id {
                // a retransmitted request: answer again, once per
                // retransmission (on its first fragment, RFC 7383 §2.6.1)
                if frag_number(msg, hdr).is_none_or(|n| n == 1) {
                    let pkts = pkts.clone();
                    self.transmit_all(ctx, &pkts);
                } else {
                    ctx.drop(IkeDrop::Unexpected);
                }
                return;
            }
        }
        if id != self.peer_next_id {
            ctx.drop(IkeDrop::MessageId);
            return;
        }
        let Some((first, plain)) = self.decrypt(ctx, msg, hdr, now) else {
            return;
        };
        let p = match Payloads::parse(&plain, first, 0) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                let mut pw = PayloadWriter::new();
                pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                self.peer_next_id = self.peer_next_id.wrapping_add(1);
                self.respond(ctx, hdr.exchange(), id, &pw);
                return;
            }
        };
        self.last_rx = now;
        // after NAT-T the peer's mapping may change: answer where it came from
        if to.port() == ctx.settings.natt_port || self.nat_remote {
            self.local = to;
            self.remote = from;
        }
        self.peer_next_id = self.peer_next_id.wrapping_add(1);
        match (hdr.exchange(), self.state) {
            (exchange::IKE_AUTH, State::InitReplied) => self.auth_request(ctx, id, &p, now),
            (exchange::CREATE_CHILD_SA, State::Established) => {
                self.create_child_request(ctx, id, &p, now)
            }
            (exchange::CREATE_CHILD_SA, _) => {
                let mut pw = PayloadWriter::new();
                pw.notify(0, &[], notify::TEMPORARY_FAILURE, &[]);
                self.respond(ctx, exchange::CREATE_CHILD_SA, id, &pw);
            }
            (exchange::INFORMATIONAL, State::Established | State::Deleting) => {
                self.informational_request(ctx, id, &p, from, to, now)
            }
            (e, _) => {
                ctx.drop(IkeDrop::Unexpected);
                let mut pw = PayloadWriter::new();
                pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                self.respond(ctx, e, id, &pw);
            }
        }
        self.kick(ctx, now);
    }

    /// The plaintext of a protected message; for an Encrypted Fragment
    /// (RFC 7383) the whole message once its last fragment is in, else None.
    pub(super) fn decrypt(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        now: Instant,
    ) -> Option<(u8, crypto::Secret)> {
        let Some(rx) = &self.rx else {
            ctx.drop(IkeDrop::Unexpected);
            return None;
        };
        let p = match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        };
        if let Some(skf) = p.skf {
            return self.fragment(ctx, msg, hdr, skf, now);
        }
        let Some((first, at, _)) = p.sk else {
            ctx.drop(IkeDrop::Invalid);
            return None;
        };
        match rx.open(msg, at) {
            Ok(pt) => Some((first, pt)),
            Err(IkeError::Integrity) => {
                ctx.drop(IkeDrop::Integrity);
                None
            }
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                None
            }
        }
    }

    pub(super) fn on_response(
        &mut self,
        ctx: &mut Ctx,
        active: Active,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        match active.kind {
            ActiveKind::Init => {}
            ActiveKind::Auth(pc) => self.auth_response(ctx, pc, p, now),
            ActiveKind::CreateChild(pc) => self.create_child_response(ctx, pc, p, now),
            ActiveKind::RekeyIke {
                new_spi,
                ni,
                dh,
                offered,
                ke_retries,
            } => self.ike_rekey_response(ctx, new_spi, ni, dh, offered, ke_retries, p, now),
            ActiveKind::Delete { spis, rekey } => {
                for spi in spis {
                    if let Some(i) = self.children.iter().position(|c| c.inbound_spi == spi) {
                        let c = self.children.remove(i);
                        if rekey {
                            self.drains.push((now + ctx.settings.drain, c.inbound_spi));
                        } else {
                            if c.in_installed {
                                ctx.dp(DataplaneOp::RemoveSa {
                                    spi: c.inbound_spi,
                                    direction: Direction::Inbound,
                                });
                            }
                            ctx.free_child_spi(c.inbound_spi);
                        }
                    }
                }
            }
            ActiveKind::DeleteIke => self.finish_delete(ctx, DeleteReason::Local),
            ActiveKind::Dpd => {}
            ActiveKind::Routability {
                cookie,
                local,
                remote,
            } => self.routability_response(ctx, &cookie, (local, remote), p),
            ActiveKind::UpdateAddresses { old } => self.update_addresses_response(ctx, old, p, now),
        }
    }

    /// Our delete of this IKE SA completed, or the peer deleted it.
    pub(super) fn finish_delete(&mut self, ctx: &mut Ctx, reason: DeleteReason) {
        self.state = State::Deleting;
        if let Some(to) = self.rekeyed_to {
            ctx.deferred
                .push(Deferred::MoveChildren { from: self.id, to });
            ctx.event(Event::IkeRekeyed {
                conn: self.conn.name.clone(),
                old_sa: self.id,
                new_sa: to,
            });
        } else {
            self.purge(ctx, reason.clone());
            ctx.event(Event::IkeDeleted {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason,
            });
        }
        ctx.deferred.push(Deferred::Remove(self.id));
    }
}
