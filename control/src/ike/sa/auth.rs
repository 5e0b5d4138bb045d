//! IKE_AUTH: AUTH payloads (pre-shared key or signatures, see `sigauth`),
//! identities, certificates, the first child SA.

use super::*;

impl IkeSa {
    // ---------------------------------------------------------- IKE_AUTH

    pub(super) fn established(&mut self, ctx: &mut Ctx, now: Instant) {
        self.state = State::Established;
        self.half_open_deadline = None;
        let c = self.conn.clone();
        if c.rekey {
            self.rekey_at = Some(now + ctx.rekey_time(c.ike_lifetime, c.margin, c.fuzz_percent));
        }
        self.expire_at = Some(now + c.ike_lifetime);
        if self.nat_local {
            self.keepalive_at = Some(now + ctx.settings.keepalive);
        }
        ctx.stats.ike_established += 1;
        ctx.event(Event::IkeEstablished {
            sa: self.id,
            conn: c.name.clone(),
            local: self.local,
            remote: self.remote,
            remote_id: self
                .remote_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            proposal: self.suite.map(|s| s.to_string()).unwrap_or_default(),
            initiator: self.initiator,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
        });
    }

    pub(super) fn auth_response(
        &mut self,
        ctx: &mut Ctx,
        pc: PendingChild,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let rid = match self.verify_responder(ctx, p, keys, suite) {
            Ok((rid, pa)) => {
                self.peer_auth = Some(pa);
                rid
            }
            Err(e) => {
                ctx.free_child_spi(pc.inbound_spi);
                self.fail(ctx, e);
                return;
            }
        };
        self.remote_id = rid;
        self.mobike = self.conn.mobike && p.notify(notify::MOBIKE_SUPPORTED).is_some();
        self.established(ctx, now);
        self.dh = None;
        if let Some(code) = p.error_notify() {
            ctx.free_child_spi(pc.inbound_spi);
            self.child_refused(ctx, code);
            return;
        }
        let (ni, nr) = (self.ni.clone(), self.nr.clone());
        match self.finish_child_initiator(ctx, &pc, p, &ni, &nr, true, now) {
            Ok(child) => {
                let mut parts = Some(child);
                if !self.refuse_taken_spi(ctx, &mut parts, None, now) {
                    if let Some(child) = parts {
                        self.install_new_child(ctx, child);
                    }
                }
            }
            Err(e) => {
                ctx.free_child_spi(pc.inbound_spi);
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
            }
        }
    }

    /// Checks the responder's IKE_AUTH answer: an AUTH payload (else the
    /// peer's error notify), IDr, the configured remote identity, and the
    /// AUTH value for our PSK. Failed authentication is reported as an
    /// event; the error ends the attempt.
    fn verify_responder(
        &self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        keys: &IkeKeys,
        suite: IkeSuite,
    ) -> Result<(Option<Identity>, sigauth::PeerAuth), IkeError> {
        let Some(auth) = p.auth else {
            let code = p.error_notify().unwrap_or(notify::INVALID_SYNTAX);
            if code == notify::AUTHENTICATION_FAILED {
                let why = match self.conn.local_auth {
                    crate::ike::LocalAuth::Psk => "PSK or IDs differ",
                    _ => "it does not accept our certificate, key, signature or identity (see its log)",
                };
                ctx.event(Event::AuthFailed {
                    conn: self.conn.name.clone(),
                    peer: self.remote,
                    reason: format!(
                        "peer rejected our authentication (AUTHENTICATION_FAILED): {why}"
                    ),
                });
            }
            return Err(IkeError::PeerError {
                code,
                name: notify::name(code),
            });
        };
        let Some(idr) = p.idr else {
            return Err(IkeError::Missing {
                exchange: "IKE_AUTH",
                payload: "IDr",
            });
        };
        let rid = Identity::from_payload(idr.id_type, idr.data);
        if !id_matches(&self.conn.remote_id, &rid) {
            let reason = format!(
                "peer identity {} is not the configured {}",
                rid.as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| format!("(type {})", idr.id_type)),
                self.conn
                    .remote_id
                    .as_ref()
                    .map(|i| i.to_string())
                    .unwrap_or_default()
            );
            return Err(self.auth_failed(ctx, reason));
        }
        let input = sigauth::PeerAuthInput {
            prf: suite.prf,
            real_message: &self.init_resp,
            nonce: &self.ni,
            sk_p: keys.sk_pr.bytes(),
            id_body: idr.body,
            peer_id: rid.as_ref(),
            auth,
            certs: &p.certs,
            now: ctx.settings.clock.now(),
        };
        match sigauth::verify_peer(&self.conn, &input) {
            Ok(pa) => Ok((rid, pa)),
            Err(reason) => Err(self.auth_failed(ctx, reason)),
        }
    }

    /// Reports failed authentication; the error to end the attempt with.
    fn auth_failed(&self, ctx: &mut Ctx, reason: String) -> IkeError {
        ctx.event(Event::AuthFailed {
            conn: self.conn.name.clone(),
            peer: self.remote,
            reason: reason.clone(),
        });
        IkeError::AuthFailed(reason)
    }

    pub(super) fn child_refused(&mut self, ctx: &mut Ctx, code: u16) {
        if code == notify::NO_PROPOSAL_CHOSEN {
            ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "ESP",
                peer: self.remote,
                offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                configured: self.configured_esp(),
                local_responder: false,
            });
        }
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: IkeError::PeerError {
                code,
                name: notify::name(code),
            },
        });
    }

    pub(super) fn auth_request(
        &mut self,
        ctx: &mut Ctx,
        msg_id: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let (Some(keys), Some(suite)) = (&self.keys, self.suite) else {
            return;
        };
        let (Some(idi), Some(auth)) = (p.idi, p.auth) else {
            ctx.drop(IkeDrop::Invalid);
            let mut pw = PayloadWriter::new();
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
            self.state = State::Deleting;
            ctx.deferred.push(Deferred::Remove(self.id));
            return;
        };
        let peer_id = Identity::from_payload(idi.id_type, idi.data);
        let idr_req = p
            .idr
            .and_then(|r| Identity::from_payload(r.id_type, r.data));
        self.peer_certreq
            .extend(sigauth::certreq_hashes(&p.certreqs));
        let now_wall = ctx.settings.clock.now();
        let chosen = self.choose_auth_connection(
            keys, suite, idi, auth, &p.certs, now_wall, &peer_id, &idr_req,
        );
        let (conn, peer_auth) = match chosen {
            Ok(x) => x,
            Err(reason) => {
                ctx.event(Event::AuthFailed {
                    conn: self.conn.name.clone(),
                    peer: self.remote,
                    reason: reason.clone(),
                });
                let mut pw = PayloadWriter::new();
                pw.notify(0, &[], notify::AUTHENTICATION_FAILED, &[]);
                self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
                self.fail(ctx, IkeError::AuthFailed(reason));
                return;
            }
        };
        if let Some(ip) = self.half_open_from.take() {
            ctx.half_open.remove(ip);
        }
        self.conn = conn;
        self.candidates.clear();
        self.remote_id = peer_id;
        self.peer_auth = peer_auth;
        let idr = self.local_identity().to_body();
        let signed = sigauth::local_auth(
            &self.conn,
            suite.prf,
            &self.init_resp,
            &self.ni,
            keys.sk_pr.bytes(),
            &idr,
            self.peer_hashes.as_deref(),
        );
        let (method, my_auth) = match signed {
            Ok(x) => x,
            Err(reason) => {
                let reason = format!("cannot authenticate ourselves: {reason}");
                ctx.event(Event::AuthFailed {
                    conn: self.conn.name.clone(),
                    peer: self.remote,
                    reason: reason.clone(),
                });
                let mut pw = PayloadWriter::new();
                pw.notify(0, &[], notify::AUTHENTICATION_FAILED, &[]);
                self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
                self.fail(ctx, IkeError::AuthFailed(reason));
                return;
            }
        };
        let mut pw = PayloadWriter::new();
        pw.id(payload::IDR, &idr);
        for c in sigauth::certs_to_send(&self.conn.local_auth, &self.peer_certreq) {
            pw.cert(payload::CERT, sigauth::CERT_X509_SIGNATURE, &c);
        }
        pw.auth(method, &my_auth);
        if self.conn.mobike && p.notify(notify::MOBIKE_SUPPORTED).is_some() {
            // RFC 4555 §3.3: the responder answers MOBIKE_SUPPORTED in kind
            self.mobike = true;
            pw.notify(0, &[], notify::MOBIKE_SUPPORTED, &[]);
        }
        self.established(ctx, now);
        if p.notify(notify::INITIAL_CONTACT).is_some() {
            ctx.deferred
                .push(Deferred::InitialContact { keep: self.id });
        }
        if p.sa.is_some() && p.tsi.is_some() && p.tsr.is_some() {
            let (ni, nr) = (self.ni.clone(), self.nr.clone());
            self.responder_child(ctx, p, &ni, Some(&nr), true, None, &mut pw, now);
        }
        self.respond(ctx, exchange::IKE_AUTH, msg_id, &pw);
    }

    /// The responder's connection choice in IKE_AUTH: the first candidate
    /// whose remote identity, requested local identity (IDr), IKE suite and
    /// PSK (the AUTH value verifies) fit; else why the last one did not.
    #[allow(clippy::too_many_arguments)]
    fn choose_auth_connection(
        &self,
        keys: &IkeKeys,
        suite: IkeSuite,
        idi: wire::IdView<'_>,
        auth: wire::AuthView<'_>,
        certs: &[(u8, &[u8])],
        now_wall: std::time::SystemTime,
        peer_id: &Option<Identity>,
        idr_req: &Option<Identity>,
    ) -> Result<(Arc<Connection>, Option<sigauth::PeerAuth>), String> {
        let mut reason = format!(
            "no connection for peer identity {}",
            peer_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("(type {})", idi.id_type))
        );
        for c in self.candidates.iter() {
            if !id_matches(&c.remote_id, peer_id) {
                continue;
            }
            let ours = c.local_id.clone().or_else(|| {
                c.local_auth
                    .cert()
                    .map(|x| Identity::Dn(x.subject().to_vec()))
            });
            if let (Some(want), Some(l)) = (idr_req, &ours) {
                let in_cert = c.local_auth.cert().is_some_and(|x| x.has_identity(want));
                if want != l && !in_cert {
                    reason = format!("peer asks for identity {want}, we are {l}");
                    continue;
                }
            }
            if !c
                .ike_proposals
                .iter()
                .any(|pr| match_xforms(&pr.xforms(), &suite.xforms(), false).is_some())
            {
                reason = format!("connection {:?} does not allow {suite}", c.name);
                continue;
            }
            let input = sigauth::PeerAuthInput {
                prf: suite.prf,
                real_message: &self.init_req,
                nonce: &self.nr,
                sk_p: keys.sk_pi.bytes(),
                id_body: idi.body,
                peer_id: peer_id.as_ref(),
                auth,
                certs,
                now: now_wall,
            };
            match sigauth::verify_peer(c, &input) {
                Ok(pa) => return Ok((c.clone(), Some(pa))),
                Err(e) => {
                    reason = format!(
                        "peer {}: {e}",
                        peer_id.as_ref().map(|i| i.to_string()).unwrap_or_default()
                    )
                }
            }
        }
        Err(reason)
    }
}
