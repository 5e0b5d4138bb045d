//! Aggressive mode (RFC 2409 §5): the responder's AM1 (AM2 out) and AM3
//! handlers, the initiator's AM2 (AM3 out).

use super::*;

impl IsakmpSa {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn am2(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
    ) {
        let Some(suite) = self.answered_suite(ctx, p) else {
            return;
        };
        let (Some(ke), Some(nr)) = (p.ke, p.nonce) else {
            ctx.drop(V1Drop::Invalid);
            return;
        };
        if self.dh.as_ref().map(|d| d.group()) != Some(suite.dh) {
            ctx.drop(V1Drop::Invalid);
            self.fail(
                ctx,
                IkeError::KeyExchange("responder chose another DH group"),
            );
            return;
        }
        self.rc = hdr.rcookie();
        self.suite = Some(suite);
        self.learn_vids(ctx, p);
        self.g_peer = ke.to_vec();
        self.nr = nr.to_vec();
        if let Err(e) = self.derive(ctx) {
            ctx.drop(V1Drop::Invalid);
            self.fail(ctx, e);
            return;
        }
        self.note_certreqs(p);
        let id_b = p.ids.first().map(|i| i.body).unwrap_or(&[]);
        if let Err((r, why)) = self.verify_peer(ctx, p, id_b, false) {
            ctx.drop(r);
            self.auth_failed(ctx, why);
            return;
        }
        self.detect_nat(p, from, to);
        self.float(ctx);
        let idi = wire::identity_body(&self.local_id());
        let mut pw = PayloadWriter::new();
        if let Err(e) = self.push_auth(&mut pw, true, &idi) {
            self.fail(ctx, e);
            return;
        }
        let (l, r) = (self.local, self.remote);
        self.push_nat_d(ctx, &mut pw, l, r);
        if self.first_contact {
            let mut spi = self.ic.to_be_bytes().to_vec();
            spi.extend_from_slice(&self.rc.to_be_bytes());
            pw.notify(proto::ISAKMP, &spi, notify::INITIAL_CONTACT, &[]);
        }
        // AM3 encrypted, as strongSwan sends it
        match self.encrypt(wire::exchange::AGGRESSIVE, 0, 0, &pw, &self.p1_iv) {
            Ok((m, last)) => {
                self.p1_iv = last;
                self.send(ctx, &m);
                self.p1_last_rx = Some(d);
                self.p1_reply = Some((self.local, self.remote, m));
                self.p1_rtx = None;
            }
            Err(e) => {
                self.fail(ctx, e);
                return;
            }
        }
        self.established(ctx, p, from, to, now);
    }

    /// Responder: AM1's KE, nonce and identity taken, AM2's KE, nonce, ID,
    /// CERTREQ, authentication, vendor IDs and NAT-D added to `pw` (after
    /// the SA payload). None: refused.
    pub(super) fn am1(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        peer_id: Option<Identity>,
        from: SocketAddr,
        to: SocketAddr,
        pw: &mut PayloadWriter,
    ) -> Option<()> {
        let suite = self.suite?;
        let (Some(ke), Some(ni)) = (p.ke, p.nonce) else {
            return None;
        };
        if ke.len() != suite.dh.public_len() {
            ctx.drop(V1Drop::Invalid);
            Self::refuse_in_clear(ctx, self.ic, to, from, notify::INVALID_KEY_INFORMATION);
            return None;
        }
        self.ni = ni.to_vec();
        self.g_peer = ke.to_vec();
        self.remote_id = peer_id;
        self.peer_id_b = p.ids[0].body.to_vec();
        if let Some(want) = &self.conn.remote_id {
            if !self.remote_id.as_ref().is_some_and(|g| want.matches(g)) {
                ctx.drop(V1Drop::NoConnection);
                return None;
            }
        }
        self.note_certreqs(p);
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        pw.push(payload::KE, dh.public());
        self.nr = ctx.random_bytes(NONCE_LEN);
        pw.push(payload::NONCE, &self.nr);
        self.dh = Some(dh);
        if let Err(e) = self.derive(ctx) {
            ctx.drop(V1Drop::Invalid);
            ctx.event(Event::AuthFailed {
                conn: self.conn.name.clone(),
                peer: from,
                reason: e.to_string(),
            });
            return None;
        }
        let idr = wire::identity_body(&self.local_id());
        pw.push(payload::ID, &idr);
        self.push_certreqs(pw);
        if let Err(e) = self.push_auth(pw, false, &idr) {
            ctx.event(Event::AuthFailed {
                conn: self.conn.name.clone(),
                peer: from,
                reason: e.to_string(),
            });
            return None;
        }
        Self::vendor_ids(ctx, pw);
        let (l, r) = (self.local, self.remote);
        self.push_nat_d(ctx, pw, l, r);
        self.state = P1State::AmR2;
        Some(())
    }

    /// Responder: AM3 (the initiator's authentication, NAT-D).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn am3(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
        last_block: Option<Vec<u8>>,
    ) {
        if !p.nat_d.is_empty() {
            self.detect_nat(p, from, to);
        }
        let idi = self.peer_id_b.clone();
        if let Err((r, why)) = self.verify_peer(ctx, p, &idi, false) {
            ctx.drop(r);
            self.auth_failed(ctx, why);
            return;
        }
        if let Some(b) = last_block {
            self.p1_iv = b;
        }
        self.local = to;
        self.remote = from;
        self.p1_last_rx = Some(d);
        self.p1_reply = None;
        self.p1_rtx = None;
        self.established(ctx, p, from, to, now);
    }
}
