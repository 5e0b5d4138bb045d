//! Main mode (RFC 2409 §5, identity protection): the initiator's MM2,
//! MM4 and MM6 handlers, the responder's MM3 and MM5.

use super::*;

impl IsakmpSa {
    pub(super) fn mm2(&mut self, ctx: &mut Ctx, p: &Payloads<'_>, hdr: Header<'_>, now: Instant) {
        let Some(suite) = self.answered_suite(ctx, p) else {
            return;
        };
        self.rc = hdr.rcookie();
        if self.rc == 0 {
            ctx.drop(V1Drop::Invalid);
            return;
        }
        self.suite = Some(suite);
        self.learn_vids(ctx, p);
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        self.ni = ctx.random_bytes(NONCE_LEN);
        let mut pw = PayloadWriter::new();
        pw.push(payload::KE, dh.public());
        pw.push(payload::NONCE, &self.ni);
        self.dh = Some(dh);
        self.push_certreqs(&mut pw);
        let (l, r) = (self.local, self.remote);
        self.push_nat_d(ctx, &mut pw, l, r);
        let m = wire::build_plain(self.ic, self.rc, wire::exchange::MAIN, 0, 0, &pw);
        self.send(ctx, &m);
        self.start_rtx(ctx, m, now);
        self.state = P1State::MmI3;
    }

    pub(super) fn mm4(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if let Some(code) = p.error_notify() {
            self.peer_error(ctx, code);
            return;
        }
        let (Some(ke), Some(nr)) = (p.ke, p.nonce) else {
            ctx.drop(V1Drop::Invalid);
            return;
        };
        self.g_peer = ke.to_vec();
        self.nr = nr.to_vec();
        if let Err(e) = self.derive(ctx) {
            ctx.drop(V1Drop::Invalid);
            self.fail(ctx, e);
            return;
        }
        self.detect_nat(p, from, to);
        self.float(ctx);
        self.note_certreqs(p);
        let idi = wire::identity_body(&self.local_id());
        let mut pw = PayloadWriter::new();
        pw.push(payload::ID, &idi);
        if let Err(e) = self.push_auth(&mut pw, true, &idi) {
            self.fail(ctx, e);
            return;
        }
        if self.first_contact {
            let mut spi = self.ic.to_be_bytes().to_vec();
            spi.extend_from_slice(&self.rc.to_be_bytes());
            pw.notify(proto::ISAKMP, &spi, notify::INITIAL_CONTACT, &[]);
        }
        match self.encrypt(wire::exchange::MAIN, 0, 0, &pw, &self.p1_iv) {
            Ok((m, last)) => {
                self.p1_iv = last;
                self.send(ctx, &m);
                self.start_rtx(ctx, m, now);
                self.state = P1State::MmI5;
            }
            Err(e) => self.fail(ctx, e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mm3(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        _msg: &[u8],
        from: SocketAddr,
        to: SocketAddr,
        _now: Instant,
        d: [u8; 32],
    ) {
        let (Some(ke), Some(ni), Some(suite)) = (p.ke, p.nonce, self.suite) else {
            ctx.drop(V1Drop::Invalid);
            return;
        };
        if ke.len() != suite.dh.public_len() {
            ctx.drop(V1Drop::Invalid);
            return;
        }
        self.g_peer = ke.to_vec();
        self.ni = ni.to_vec();
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        self.nr = ctx.random_bytes(NONCE_LEN);
        let mut pw = PayloadWriter::new();
        pw.push(payload::KE, dh.public());
        pw.push(payload::NONCE, &self.nr);
        self.dh = Some(dh);
        if let Err(e) = self.derive(ctx) {
            ctx.drop(V1Drop::Invalid);
            self.fail(ctx, e);
            return;
        }
        self.detect_nat(p, from, to);
        self.note_certreqs(p);
        self.push_certreqs(&mut pw);
        let (l, r) = (self.local, self.remote);
        self.push_nat_d(ctx, &mut pw, l, r);
        let m = wire::build_plain(self.ic, self.rc, wire::exchange::MAIN, 0, 0, &pw);
        self.send(ctx, &m);
        self.p1_last_rx = Some(d);
        self.p1_reply = Some((self.local, self.remote, m));
        self.state = P1State::MmR4;
    }

    /// Initiator: MM6 (the responder's identity and authentication).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mm6(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
        last_block: Option<Vec<u8>>,
    ) {
        let id_b = p.ids.first().map(|i| i.body).unwrap_or(&[]);
        if let Err((r, why)) = self.verify_peer(ctx, p, id_b, false) {
            ctx.drop(r);
            self.auth_failed(ctx, why);
            return;
        }
        if let Some(b) = last_block {
            self.p1_iv = b;
        }
        self.p1_last_rx = Some(d);
        self.p1_reply = None;
        self.established(ctx, p, from, to, now);
    }

    /// Responder: MM5 (the initiator's identity and authentication), MM6 out.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mm5(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
        last_block: Option<Vec<u8>>,
    ) {
        let id_b = p.ids.first().map(|i| i.body).unwrap_or(&[]);
        if let Err((r, why)) = self.verify_peer(ctx, p, id_b, true) {
            ctx.drop(r);
            self.auth_failed(ctx, why);
            return;
        }
        // the initiator floated: answer where it now speaks from
        self.local = to;
        self.remote = from;
        if let Some(b) = last_block {
            self.p1_iv = b;
        }
        let idr = wire::identity_body(&self.local_id());
        let mut pw = PayloadWriter::new();
        pw.push(payload::ID, &idr);
        if let Err(e) = self.push_auth(&mut pw, false, &idr) {
            self.fail(ctx, e);
            return;
        }
        match self.encrypt(wire::exchange::MAIN, 0, 0, &pw, &self.p1_iv) {
            Ok((m, last)) => {
                self.p1_iv = last;
                self.send(ctx, &m);
                self.p1_last_rx = Some(d);
                self.p1_reply = Some((self.local, self.remote, m));
            }
            Err(e) => {
                self.fail(ctx, e);
                return;
            }
        }
        self.established(ctx, p, from, to, now);
    }
}
