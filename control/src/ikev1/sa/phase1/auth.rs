//! Phase 1 authentication (RFC 2409 §5.1, §5.4): HASH_I/HASH_R with
//! pre-shared keys, or CERT, CERTREQ and SIG payloads with RSA signatures;
//! checking the peer's.

use super::*;

impl IsakmpSa {
    /// This SA authenticates with signatures.
    pub(super) fn sig_auth(&self) -> bool {
        self.suite
            .map(|s| s.auth != AuthMethod::Psk)
            .unwrap_or(!self.conn.uses_psk())
    }

    /// Our CERTREQ payloads (signatures with certificates: the CAs we accept).
    pub(super) fn push_certreqs(&self, pw: &mut PayloadWriter) {
        if self.sig_auth() {
            for b in sigauth::certreq_bodies(&self.conn.remote_auth) {
                pw.push(payload::CERTREQ, &b);
            }
        }
    }

    /// Remembers the CAs the peer's CERTREQ payloads name.
    pub(super) fn note_certreqs(&mut self, p: &Payloads<'_>) {
        if !p.certreqs.is_empty() {
            self.peer_certreqs = sigauth::requested_cas(&p.certreqs)
                .into_iter()
                .map(|d| d.to_vec())
                .collect();
        }
    }

    /// Our authentication after our ID payload: HASH_I/HASH_R, or our
    /// certificates and SIG_I/SIG_R.
    pub(super) fn push_auth(
        &self,
        pw: &mut PayloadWriter,
        initiator: bool,
        id_b: &[u8],
    ) -> Result<(), IkeError> {
        let h = self.auth_hash(initiator, id_b);
        if !self.sig_auth() {
            pw.push(payload::HASH, &h);
            return Ok(());
        }
        let req: Vec<&[u8]> = self.peer_certreqs.iter().map(|v| v.as_slice()).collect();
        for c in sigauth::cert_bodies(&self.conn.local_auth, &req) {
            pw.push(payload::CERT, &c);
        }
        let sig = sigauth::sign(&self.conn.local_auth, &h).map_err(IkeError::AuthFailed)?;
        pw.push(payload::SIG, &sig);
        Ok(())
    }

    /// HASH_I (`initiator`) or HASH_R over `id_b`.
    pub(super) fn auth_hash(&self, initiator: bool, id_b: &[u8]) -> Vec<u8> {
        let (Some(k), Some(dh)) = (&self.keys, &self.dh) else {
            return Vec::new();
        };
        let mine = dh.public();
        let (gxi, gxr) = if self.initiator {
            (mine, &self.g_peer[..])
        } else {
            (&self.g_peer[..], mine)
        };
        if initiator {
            crypto::phase1_hash(
                self.hash_alg(),
                &k.skeyid,
                gxi,
                gxr,
                self.ic,
                self.rc,
                &self.sai_b,
                id_b,
            )
        } else {
            crypto::phase1_hash(
                self.hash_alg(),
                &k.skeyid,
                gxr,
                gxi,
                self.rc,
                self.ic,
                &self.sai_b,
                id_b,
            )
        }
    }

    /// Checks the peer's identity and its HASH or SIG over the ID payload
    /// body `id_b`; Err gives the drop reason and explains. A main-mode
    /// responder (`switch`) authenticated by signature moves to another
    /// candidate connection when the peer's identity fits that one instead.
    pub(super) fn verify_peer(
        &mut self,
        ctx: &Ctx,
        p: &Payloads<'_>,
        id_b: &[u8],
        switch: bool,
    ) -> Result<(), (V1Drop, String)> {
        if id_b.len() < 4 {
            return Err((V1Drop::Invalid, "ID payload missing".into()));
        }
        let got = Identity::from_payload(id_b[0], &id_b[4..]);
        let want = self.auth_hash(!self.initiator, id_b);
        if !self.sig_auth() {
            let Some(h) = p.hash else {
                return Err((V1Drop::Invalid, "HASH payload missing".into()));
            };
            if !crate::ike::crypto::ct_eq(&want, h) {
                return Err((
                    V1Drop::Hash,
                    "HASH does not verify (pre-shared keys differ?)".into(),
                ));
            }
            if let Some(expected) = &self.conn.remote_id {
                if !got.as_ref().is_some_and(|g| expected.matches(g)) {
                    return Err((
                        V1Drop::Hash,
                        format!(
                            "peer identity {} is not the configured {expected}",
                            got.map(|g| g.to_string())
                                .unwrap_or_else(|| "(unsupported type)".into())
                        ),
                    ));
                }
            }
            self.remote_id = got;
            self.peer_auth = Some(PeerAuth {
                method: "psk".into(),
                cert_subject: None,
            });
            return Ok(());
        }
        let Some(sig) = p.sig else {
            return Err((
                V1Drop::Invalid,
                "SIG payload missing (the peer authenticates with signatures)".into(),
            ));
        };
        let input = sigauth::PeerSig {
            peer_id: got.as_ref(),
            id_type: id_b[0],
            certs: &p.certs,
            sig,
            hash: &want,
            now: ctx.settings.clock.now(),
        };
        let first = sigauth::verify_peer(&self.conn, &input);
        let (conn, auth) = match first {
            Ok(a) => (None, a),
            Err(why) => {
                let suite = self.suite;
                let other = switch
                    .then(|| {
                        self.candidates.iter().find_map(|c| {
                            if Arc::ptr_eq(c, &self.conn)
                                || c.uses_psk()
                                || !suite.is_some_and(|s| {
                                    Self::offers(c).iter().any(|o| {
                                        o.encr == s.encr
                                            && o.hash == s.hash
                                            && o.dh == s.dh
                                            && o.auth == s.auth
                                    })
                                })
                            {
                                return None;
                            }
                            sigauth::verify_peer(c, &input)
                                .ok()
                                .map(|a| (Some(c.clone()), a))
                        })
                    })
                    .flatten();
                match other {
                    Some(x) => x,
                    None => return Err((V1Drop::Auth, why)),
                }
            }
        };
        if let Some(c) = conn {
            self.conn = c;
        }
        self.remote_id = got;
        self.peer_auth = Some(auth);
        Ok(())
    }

    pub(super) fn auth_failed(&mut self, ctx: &mut Ctx, why: String) {
        ctx.event(Event::AuthFailed {
            conn: self.conn.name.clone(),
            peer: self.remote,
            reason: why.clone(),
        });
        self.fail(ctx, IkeError::AuthFailed(why));
    }
}
