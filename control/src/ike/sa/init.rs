//! IKE_SA_INIT: the initiator's request and the answers to it (cookies,
//! INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN), and the responder's side.

use super::*;

impl IkeSa {
    // ----------------------------------------------------- IKE_SA_INIT (I)

    pub fn initiate(
        ctx: &mut Ctx,
        conn: Arc<Connection>,
        local: SocketAddr,
        remote: SocketAddr,
        tsi: Vec<TsEntry>,
        tsr: Vec<TsEntry>,
        now: Instant,
    ) -> IkeSa {
        let spi_i = ctx.new_ike_spi();
        let group = conn
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
            .unwrap_or(DhGroup::Ecp256);
        let mut sa = IkeSa::blank(conn, true, spi_i, spi_i, 0, local, remote, now);
        sa.ni = ctx.random_bytes(32);
        sa.dh = Some(DhPrivate::generate(group, &mut ctx.rng));
        sa.first_child = Some((tsi, tsr));
        sa.send_init(ctx, now);
        sa
    }

    pub(super) fn send_init(&mut self, ctx: &mut Ctx, now: Instant) {
        let Some(dh) = &self.dh else { return };
        let mut pw = PayloadWriter::new();
        if let Some(c) = &self.cookie {
            pw.notify(0, &[], notify::COOKIE, c);
        }
        let props: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        sa_payload(&mut pw, proto::IKE, &[], &props);
        pw.ke(dh.group().number(), dh.public());
        pw.nonce(&self.ni);
        let src = if self.conn.force_encap {
            ctx.random_bytes(20)
        } else {
            crypto::nat_hash(self.spi_i, 0, self.local).to_vec()
        };
        pw.notify(0, &[], notify::NAT_DETECTION_SOURCE_IP, &src);
        pw.notify(
            0,
            &[],
            notify::NAT_DETECTION_DESTINATION_IP,
            &crypto::nat_hash(self.spi_i, 0, self.remote),
        );
        if ctx.settings.fragmentation {
            pw.notify(0, &[], notify::IKEV2_FRAGMENTATION_SUPPORTED, &[]);
        }
        if ctx.settings.rfc7427 {
            pw.notify(
                0,
                &[],
                notify::SIGNATURE_HASH_ALGORITHMS,
                &sigauth::hash_notify_data(),
            );
        }
        let msg = wire::build_plain(
            self.spi_i,
            0,
            exchange::IKE_SA_INIT,
            flags::INITIATOR,
            0,
            &pw,
        );
        ctx.transmit(self.local, self.remote, &msg);
        self.init_req = msg.clone();
        self.next_msg_id = 1;
        self.active = Some(Active {
            msg_id: 0,
            exchange: exchange::IKE_SA_INIT,
            packets: vec![msg],
            retries: 0,
            next_rtx: now + ctx.settings.retransmit_timeout,
            deadline: None,
            kind: ActiveKind::Init,
        });
    }

    pub(super) fn configured_ike(&self) -> Vec<String> {
        self.conn
            .ike_proposals
            .iter()
            .map(|p| p.to_string())
            .collect()
    }
    pub(super) fn configured_esp(&self) -> Vec<String> {
        self.conn
            .esp_proposals
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    pub(super) fn fail(&mut self, ctx: &mut Ctx, err: IkeError) {
        ctx.event(Event::IkeDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            reason: DeleteReason::Failed(err),
        });
        self.purge(
            ctx,
            DeleteReason::Failed(IkeError::State {
                op: "negotiation",
                state: "failed",
            }),
        );
        self.active = None;
        self.state = State::Deleting;
        ctx.deferred.push(Deferred::Remove(self.id));
    }

    pub(super) fn handle_init_response(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if self.state != State::InitSent
            || !matches!(
                self.active.as_ref().map(|a| &a.kind),
                Some(ActiveKind::Init)
            )
            || hdr.message_id() != 0
        {
            ctx.drop(IkeDrop::Unexpected);
            return;
        }
        let p = match Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload(), HEADER_LEN) {
            Ok(p) => p,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        if p.sa.is_none() {
            self.init_answered_without_sa(ctx, &p, now);
            return;
        }
        let (Some(sa), Some(ke), Some(nr)) = (p.sa, p.ke, p.nonce) else {
            ctx.drop(IkeDrop::Invalid);
            return;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return;
            }
        };
        let Some(suite) = self.init_chosen_suite(&props) else {
            self.fail(
                ctx,
                IkeError::NoProposalChosen {
                    offered: "invalid proposal in IKE_SA_INIT response".into(),
                    configured: self.configured_ike().join(", "),
                },
            );
            return;
        };
        let Some(dh) = self.dh.take() else { return };
        if ke.group != suite.dh.number() || dh.group() != suite.dh {
            self.fail(
                ctx,
                IkeError::KeyExchange("KE group differs from the chosen proposal"),
            );
            return;
        }
        let shared = match dh.shared(ke.data) {
            Ok(s) => s,
            Err(e) => {
                self.fail(ctx, e);
                return;
            }
        };
        if hdr.spi_r() == 0 {
            ctx.drop(IkeDrop::Invalid);
            return;
        }
        self.spi_r = hdr.spi_r();
        self.nr = nr.to_vec();
        let keys = crypto::derive_ike_keys(
            &suite, None, &shared, &self.ni, &self.nr, self.spi_i, self.spi_r,
        );
        if let Err(e) = self.set_keys(&suite, keys) {
            self.fail(ctx, e);
            return;
        }
        self.init_resp = msg.to_vec();
        self.note_init_notifies(ctx, &p);
        self.apply_nat_detection(ctx, &p, from, to);
        self.last_rx = now;
        self.active = None;
        self.state = State::AuthSent;
        self.send_auth(ctx, now);
    }

    /// An IKE_SA_INIT answer without an SA payload: a cookie to retry with
    /// (§2.6), the DH group the peer wants (INVALID_KE_PAYLOAD, if we offer
    /// it), or an error notify that ends the attempt.
    fn init_answered_without_sa(&mut self, ctx: &mut Ctx, p: &Payloads<'_>, now: Instant) {
        if let Some(c) = p.notify(notify::COOKIE) {
            if self.init_retries < 4 && !c.data.is_empty() && c.data.len() <= 64 {
                self.init_retries += 1;
                self.cookie = Some(c.data.to_vec());
                self.send_init(ctx, now);
            } else {
                ctx.drop(IkeDrop::Invalid);
            }
            return;
        }
        if let Some(n) = p.notify(notify::INVALID_KE_PAYLOAD) {
            let g = be16(n.data).and_then(DhGroup::from_number);
            let allowed =
                g.is_some_and(|g| self.conn.ike_proposals.iter().any(|p| p.dh.contains(&g)));
            match g {
                Some(g) if allowed && self.init_retries < 4 => {
                    self.init_retries += 1;
                    self.dh = Some(DhPrivate::generate(g, &mut ctx.rng));
                    self.send_init(ctx, now);
                }
                _ => {
                    let code = be16(n.data).unwrap_or(0);
                    self.fail(
                        ctx,
                        IkeError::KeyExchange(if code == 0 {
                            "INVALID_KE_PAYLOAD without group"
                        } else {
                            "peer wants a DH group we do not offer"
                        }),
                    );
                }
            }
            return;
        }
        if let Some(code) = p.error_notify() {
            if code == notify::NO_PROPOSAL_CHOSEN {
                ctx.event(Event::ProposalMismatch {
                    conn: self.conn.name.clone(),
                    kind: "IKE",
                    peer: self.remote,
                    offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                    configured: self.configured_ike(),
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
            return;
        }
        ctx.drop(IkeDrop::Invalid);
    }

    /// The IKE suite of the peer's IKE_SA_INIT answer: one IKE proposal,
    /// without SPI, one we offered.
    fn init_chosen_suite(&self, props: &[PeerProposal]) -> Option<IkeSuite> {
        let offered: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        match props {
            [(num, proto::IKE, spi, x)]
                if spi.is_empty() && check_chosen(&offered, *num, x, false) =>
            {
                IkeSuite::from_xforms(x)
            }
            _ => None,
        }
    }

    pub(super) fn set_keys(&mut self, suite: &IkeSuite, keys: IkeKeys) -> Result<(), IkeError> {
        let (tx, rx) = if self.initiator {
            (
                SkCipher::new(suite, &keys.sk_ei, &keys.sk_ai)?,
                SkCipher::new(suite, &keys.sk_er, &keys.sk_ar)?,
            )
        } else {
            (
                SkCipher::new(suite, &keys.sk_er, &keys.sk_ar)?,
                SkCipher::new(suite, &keys.sk_ei, &keys.sk_ai)?,
            )
        };
        self.suite = Some(*suite);
        self.keys = Some(keys);
        self.tx = Some(tx);
        self.rx = Some(rx);
        Ok(())
    }

    /// Our NAT_DETECTION_SOURCE_IP / _DESTINATION_IP notifies for a
    /// message from `to` (us) to `from` (the peer), with both SPIs; a random
    /// source hash forces encapsulation (`force_encap`).
    pub(super) fn write_nat_detection(
        &self,
        ctx: &mut Ctx,
        pw: &mut PayloadWriter,
        from: SocketAddr,
        to: SocketAddr,
    ) {
        let src = if self.conn.force_encap {
            ctx.random_bytes(20)
        } else {
            crypto::nat_hash(self.spi_i, self.spi_r, to).to_vec()
        };
        pw.notify(0, &[], notify::NAT_DETECTION_SOURCE_IP, &src);
        pw.notify(
            0,
            &[],
            notify::NAT_DETECTION_DESTINATION_IP,
            &crypto::nat_hash(self.spi_i, self.spi_r, from),
        );
    }

    pub(super) fn local_identity(&self) -> Identity {
        self.conn
            .local_id
            .clone()
            .or_else(|| {
                self.conn
                    .local_auth
                    .cert()
                    .map(|c| Identity::Dn(c.subject().to_vec()))
            })
            .unwrap_or_else(|| Identity::from_ip(self.local.ip()))
    }

    /// What the peer's IKE_SA_INIT message announced: RFC 7427 hash
    /// algorithms, RFC 7383 fragmentation, CERTREQ.
    pub(super) fn note_init_notifies(&mut self, ctx: &Ctx, p: &Payloads<'_>) {
        self.peer_hashes = p
            .notify(notify::SIGNATURE_HASH_ALGORITHMS)
            .filter(|_| ctx.settings.rfc7427)
            .map(|n| sigauth::parse_hash_notify(n.data));
        self.frag =
            ctx.settings.fragmentation && p.notify(notify::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        self.peer_certreq
            .extend(sigauth::certreq_hashes(&p.certreqs));
    }

    pub(super) fn child_offers(&self, with_dh: bool) -> Vec<Vec<Xform>> {
        let ike_dh = self.suite.map(|s| s.dh);
        self.conn
            .esp_proposals
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if !with_dh || !self.conn.pfs {
                    p.dh.clear();
                } else if p.dh.is_empty() {
                    p.dh.extend(ike_dh);
                }
                p.xforms(with_dh && self.conn.pfs)
            })
            .collect()
    }

    pub(super) fn send_auth(&mut self, ctx: &mut Ctx, now: Instant) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let idi = self.local_identity().to_body();
        let signed = sigauth::local_auth(
            &self.conn,
            suite.prf,
            &self.init_req,
            &self.nr,
            keys.sk_pi.bytes(),
            &idi,
            self.peer_hashes.as_deref(),
        );
        let (method, auth) = match signed {
            Ok(x) => x,
            Err(reason) => {
                ctx.event(Event::AuthFailed {
                    conn: self.conn.name.clone(),
                    peer: self.remote,
                    reason: format!("cannot authenticate ourselves: {reason}"),
                });
                self.fail(ctx, IkeError::AuthFailed(reason));
                return;
            }
        };
        let mut pw = PayloadWriter::new();
        pw.id(payload::IDI, &idi);
        for c in sigauth::certs_to_send(&self.conn.local_auth, &self.peer_certreq) {
            pw.cert(payload::CERT, sigauth::CERT_X509_SIGNATURE, &c);
        }
        if let Some(d) = sigauth::certreq_data(&self.conn.remote_auth) {
            pw.cert(payload::CERTREQ, d[0], &d[1..]);
        }
        if let Some(r) = &self.conn.remote_id {
            // a pattern (CN=*) is no identity to ask for
            if !matches!(r, Identity::Dn(d) if crate::pki::dn::has_wildcard(d)) {
                pw.id(payload::IDR, &r.to_body());
            }
        }
        pw.auth(method, &auth);
        if self.initial_contact {
            pw.notify(0, &[], notify::INITIAL_CONTACT, &[]);
        }
        if self.conn.mobike {
            pw.notify(0, &[], notify::MOBIKE_SUPPORTED, &[]);
            // RFC 4555 §3.3: with MOBIKE the initiator moves to the NAT-T
            // port in IKE_AUTH, NAT or not, so that a later move behind a
            // NAT needs no port change
            if self.local.port() != ctx.settings.natt_port {
                self.local.set_port(ctx.settings.natt_port);
                self.remote.set_port(ctx.settings.natt_port);
            }
        }
        let (tsi, tsr) = self.first_child.take().unwrap_or_default();
        let offered = self.child_offers(false);
        let spi = ctx.new_child_spi();
        sa_payload(&mut pw, proto::ESP, &spi.to_be_bytes(), &offered);
        pw.ts(payload::TSI, &tsi);
        pw.ts(payload::TSR, &tsr);
        if self.conn.mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
        let pc = PendingChild {
            inbound_spi: spi,
            ni: self.ni.clone(),
            dh: None,
            tsi,
            tsr,
            rekey_of: None,
            offered,
            ke_retries: 0,
        };
        self.send_request(ctx, now, exchange::IKE_AUTH, pw, ActiveKind::Auth(pc));
    }

    /// The initiator's NAT detection from the IKE_SA_INIT answer (§2.23):
    /// with a NAT on either side (or encapsulation forced) both ends move to
    /// the NAT-T port.
    fn apply_nat_detection(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
    ) {
        if let Some((nat_local, nat_remote)) = nat_detect(p, self.spi_i, self.spi_r, from, to) {
            self.nat_remote = nat_remote;
            self.nat_local = nat_local || self.conn.force_encap;
            if self.nat_local || self.nat_remote {
                self.local.set_port(ctx.settings.natt_port);
                self.remote.set_port(ctx.settings.natt_port);
            }
        }
    }

    /// The responder's NAT detection (§2.23): when the request carried the
    /// notifies, record who is behind a NAT and answer with ours (a random
    /// source hash when encapsulation is forced, so the peer sees a NAT).
    fn answer_nat_detection(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        pw: &mut PayloadWriter,
        from: SocketAddr,
        to: SocketAddr,
    ) {
        // The request's hashes were made with SPIr = 0 (RFC 7296 §2.23).
        if let Some((nat_local, nat_remote)) = nat_detect(p, self.spi_i, 0, from, to) {
            self.nat_remote = nat_remote;
            self.nat_local = nat_local || self.conn.force_encap;
            self.write_nat_detection(ctx, pw, from, to);
        }
    }

    /// The responder's IKE_SA_INIT notifies about authentication: CERTREQ
    /// with the CA hashes of the candidates that want certificates,
    /// IKEV2_FRAGMENTATION_SUPPORTED and SIGNATURE_HASH_ALGORITHMS.
    fn answer_init_auth_notifies(&self, ctx: &mut Ctx, pw: &mut PayloadWriter) {
        let mut cas: Vec<u8> = Vec::new();
        for c in &self.candidates {
            if let Some(d) = sigauth::certreq_data(&c.remote_auth) {
                for h in d[1..].chunks(20) {
                    if !cas.chunks(20).any(|x| x == h) {
                        cas.extend_from_slice(h);
                    }
                }
            }
        }
        if !cas.is_empty() {
            pw.cert(payload::CERTREQ, sigauth::CERT_X509_SIGNATURE, &cas);
        }
        if self.frag {
            pw.notify(0, &[], notify::IKEV2_FRAGMENTATION_SUPPORTED, &[]);
        }
        if ctx.settings.rfc7427 {
            pw.notify(
                0,
                &[],
                notify::SIGNATURE_HASH_ALGORITHMS,
                &sigauth::hash_notify_data(),
            );
        }
    }

    // ----------------------------------------------------- IKE_SA_INIT (R)

    #[allow(clippy::too_many_arguments)]
    pub fn respond_init(
        ctx: &mut Ctx,
        cands: Vec<Arc<Connection>>,
        msg: &[u8],
        hdr: Header<'_>,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) -> Option<IkeSa> {
        let (sa, ke, ni) = (p.sa?, p.ke?, p.nonce?);
        let conn = cands.first()?.clone();
        let plain_reply = |ctx: &mut Ctx, ntype: u16, data: &[u8]| {
            refuse_init(ctx, hdr.spi_i(), from, to, ntype, data)
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                ctx.drop(IkeDrop::Malformed);
                return None;
            }
        };
        let chosen = choose_ike_proposal(&cands, &props);
        let Some((num, suite, conn)) = chosen else {
            ike_mismatch(ctx, &conn, from, &props);
            plain_reply(ctx, notify::NO_PROPOSAL_CHOSEN, &[]);
            return None;
        };
        if ke.group != suite.dh.number() {
            plain_reply(
                ctx,
                notify::INVALID_KE_PAYLOAD,
                &suite.dh.number().to_be_bytes(),
            );
            return None;
        }
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        let shared = match dh.shared(ke.data) {
            Ok(s) => s,
            Err(_) => {
                ctx.drop(IkeDrop::Invalid);
                plain_reply(ctx, notify::INVALID_SYNTAX, &[]);
                return None;
            }
        };
        let spi_r = ctx.new_ike_spi();
        let mut sa = IkeSa::blank(
            conn.clone(),
            false,
            spi_r,
            hdr.spi_i(),
            spi_r,
            to,
            from,
            now,
        );
        sa.state = State::InitReplied;
        sa.candidates = cands;
        sa.ni = ni.to_vec();
        sa.nr = ctx.random_bytes(32);
        let keys =
            crypto::derive_ike_keys(&suite, None, &shared, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r);
        sa.set_keys(&suite, keys).ok()?;
        let mut pw = PayloadWriter::new();
        sa_payload_one(&mut pw, num, proto::IKE, &[], &suite.xforms());
        pw.ke(suite.dh.number(), dh.public());
        pw.nonce(&sa.nr);
        sa.note_init_notifies(ctx, p);
        sa.answer_nat_detection(ctx, p, &mut pw, from, to);
        sa.answer_init_auth_notifies(ctx, &mut pw);
        let resp = wire::build_plain(
            sa.spi_i,
            sa.spi_r,
            exchange::IKE_SA_INIT,
            flags::RESPONSE,
            0,
            &pw,
        );
        ctx.transmit(to, from, &resp);
        sa.init_req = msg.to_vec();
        sa.init_resp = resp;
        sa.peer_next_id = 1;
        sa.half_open_deadline = Some(now + ctx.settings.half_open_timeout);
        Some(sa)
    }
}

/// The responder's IKE proposal choice: the first of the candidate
/// connections' proposals (in their order) that one of the peer's IKE
/// proposals (without SPI) matches, with its number, suite and connection.
fn choose_ike_proposal(
    cands: &[Arc<Connection>],
    props: &[PeerProposal],
) -> Option<(u8, IkeSuite, Arc<Connection>)> {
    for c in cands {
        for ours in &c.ike_proposals {
            let ox = ours.xforms();
            for (num, prot, spi, x) in props {
                if *prot != proto::IKE || !spi.is_empty() {
                    continue;
                }
                if let Some(m) = match_xforms(&ox, x, false) {
                    if let Some(s) = IkeSuite::from_xforms(&m) {
                        return Some((*num, s, c.clone()));
                    }
                }
            }
        }
    }
    None
}

/// Refuses an IKE_SA_INIT request with one notify in an unencrypted answer
/// (no SA is kept, SPIr stays zero).
fn refuse_init(
    ctx: &mut Ctx,
    spi_i: u64,
    from: SocketAddr,
    to: SocketAddr,
    ntype: u16,
    data: &[u8],
) {
    let mut pw = PayloadWriter::new();
    pw.notify(0, &[], ntype, data);
    let r = wire::build_plain(spi_i, 0, exchange::IKE_SA_INIT, flags::RESPONSE, 0, &pw);
    ctx.transmit(to, from, &r);
}

/// Reports that none of the peer's IKE proposals matches `conn`'s.
pub(super) fn ike_mismatch(
    ctx: &mut Ctx,
    conn: &Connection,
    from: SocketAddr,
    props: &[PeerProposal],
) {
    ctx.event(Event::ProposalMismatch {
        conn: conn.name.clone(),
        kind: "IKE",
        peer: from,
        offered: props
            .iter()
            .map(|(_, _, _, x)| xforms_to_string(x, true))
            .collect(),
        configured: conn.ike_proposals.iter().map(|p| p.to_string()).collect(),
        local_responder: true,
    });
}

/// NAT detection (RFC 7296 §2.23) from the NAT_DETECTION_*_IP notifies of a
/// message that came `from` the peer `to` us, hashed with these SPIs:
/// `Some((we are behind a NAT, the peer is))`, `None` if the peer sent none.
pub(super) fn nat_detect(
    p: &Payloads<'_>,
    spi_i: u64,
    spi_r: u64,
    from: SocketAddr,
    to: SocketAddr,
) -> Option<(bool, bool)> {
    let of = |t| {
        p.notifies
            .iter()
            .filter(move |n| n.ntype == t)
            .map(|n| n.data)
    };
    let mut srcs = of(notify::NAT_DETECTION_SOURCE_IP).peekable();
    let mut dsts = of(notify::NAT_DETECTION_DESTINATION_IP).peekable();
    srcs.peek()?;
    dsts.peek()?;
    let hs = crypto::nat_hash(spi_i, spi_r, from);
    let hd = crypto::nat_hash(spi_i, spi_r, to);
    let nat_remote = !srcs.any(|s| s == hs);
    let nat_local = !dsts.any(|d| d == hd);
    Some((nat_local, nat_remote))
}
