//! Phase 1 with pre-shared keys (RFC 2409 §5.4) or RSA signatures (§5.1:
//! SKEYID from the nonces and g^xy, SIG payloads over HASH_I/HASH_R, CERT
//! and CERTREQ payloads): main mode (identity protection, six messages) and
//! aggressive mode (three), both roles, with NAT-T (RFC 3947: vendor IDs,
//! NAT-D, the float to port 4500) and the DPD vendor ID (RFC 3706).

use super::*;
use crate::ike::proposal::DhGroup;
use crate::ike::sigauth::PeerAuth;
use crate::ikev1::proposal::{describe_p1, effective_lifetime, AuthMethod};
use crate::ikev1::sigauth;
use crate::ikev1::wire::{notify, payload, proto, vid, Payloads};

mod aggressive;
mod auth;
mod main_mode;
mod natt;

const NONCE_LEN: usize = 32;

/// A candidate connection and the transform it accepts: (our suite with
/// the peer's lifetime, the peer's transform number).
type Picked = (Arc<Connection>, (Phase1Suite, u8));

impl IsakmpSa {
    /// Our phase 1 transforms: every combination of every proposal.
    fn offers(conn: &Connection) -> Vec<Phase1Suite> {
        let mut v = Vec::new();
        for p in &conn.phase1_proposals {
            for (encr, hash, dh) in p.combos() {
                let s = Phase1Suite {
                    encr,
                    hash,
                    dh,
                    auth: Self::auth_method(conn),
                    lifetime: Some(conn.ike_lifetime.as_secs()),
                };
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        v
    }

    /// The phase 1 authentication method of a connection.
    fn auth_method(conn: &Connection) -> AuthMethod {
        if conn.uses_psk() {
            AuthMethod::Psk
        } else {
            AuthMethod::RsaSig
        }
    }

    fn local_id(&self) -> Identity {
        sigauth::local_identity(&self.conn, self.local.ip())
    }

    fn sa_payload_initiator(&self) -> Vec<u8> {
        let xs: Vec<(u8, Vec<u8>)> = Self::offers(&self.conn)
            .iter()
            .map(|s| (wire::KEY_IKE, s.attrs()))
            .collect();
        wire::sa_body(&[(1, proto::ISAKMP, vec![], xs)])
    }

    fn start_rtx(&mut self, ctx: &Ctx, packet: Vec<u8>, now: Instant) {
        self.p1_rtx = Some(Rtx {
            packet,
            retries: 0,
            next: now + ctx.settings.retransmit_timeout,
        });
    }

    /// A new phase 1 as initiator: sends MM1 (or AM1).
    #[allow(clippy::too_many_arguments)]
    pub fn initiate(
        ctx: &mut Ctx,
        conn: Arc<Connection>,
        local: SocketAddr,
        remote: SocketAddr,
        first_qm: Option<(Vec<TsEntry>, Vec<TsEntry>)>,
        reauth_of: Option<u64>,
        first_contact: bool,
        now: Instant,
    ) -> IsakmpSa {
        let ic = ctx.new_cookie();
        let mode = conn.exchange;
        let mut sa = IsakmpSa::blank(conn, true, mode, ic, ic, 0, local, remote, now);
        sa.first_qm = first_qm;
        sa.reauth_of = reauth_of;
        sa.first_contact = first_contact && sa.conn.initial_contact;
        sa.sai_b = sa.sa_payload_initiator();
        let mut pw = PayloadWriter::new();
        pw.push(payload::SA, &sa.sai_b);
        if mode == ExchangeMode::Aggressive {
            let g = sa.conn.first_group().unwrap_or(DhGroup::Modp2048);
            let dh = DhPrivate::generate(g, &mut ctx.rng);
            pw.push(payload::KE, dh.public());
            sa.dh = Some(dh);
            sa.ni = ctx.random_bytes(NONCE_LEN);
            pw.push(payload::NONCE, &sa.ni);
            pw.push(payload::ID, &wire::identity_body(&sa.local_id()));
            sa.push_certreqs(&mut pw);
            sa.state = P1State::AmI1;
        } else {
            sa.state = P1State::MmI1;
        }
        Self::vendor_ids(ctx, &mut pw);
        let exch = sa.mode_exchange();
        let m = wire::build_plain(ic, 0, exch, 0, 0, &pw);
        sa.send(ctx, &m);
        sa.start_rtx(ctx, m, now);
        sa
    }

    /// Chooses a transform of the peer's SA payload: (our suite with the
    /// peer's lifetime, transform number) or the "offered" list.
    fn choose_p1(
        conn: &Connection,
        sa: &wire::SaView<'_>,
        group: Option<u16>,
    ) -> Result<(Phase1Suite, u8), Vec<String>> {
        let Ok(props) = sa.proposals() else {
            return Err(vec!["malformed SA payload".into()]);
        };
        let mut offered = Vec::new();
        let theirs: Vec<(u8, Result<Phase1Suite, String>)> = props
            .iter()
            .filter(|p| p.protocol == proto::ISAKMP)
            .flat_map(|p| p.transforms.iter())
            .map(|t| {
                offered.push(describe_p1(t));
                (t.num, Phase1Suite::from_transform(t))
            })
            .collect();
        for ours in Self::offers(conn) {
            for (num, t) in &theirs {
                let Ok(t) = t else { continue };
                if t.encr == ours.encr
                    && t.hash == ours.hash
                    && t.dh == ours.dh
                    && t.auth == ours.auth
                    && group.is_none_or(|g| g == t.dh.number())
                {
                    return Ok((*t, *num));
                }
            }
        }
        Err(offered)
    }

    fn mismatch(
        ctx: &mut Ctx,
        conn: &Connection,
        peer: SocketAddr,
        offered: Vec<String>,
        responder: bool,
    ) {
        ctx.event(Event::ProposalMismatch {
            conn: conn.name.clone(),
            kind: "IKE",
            peer,
            offered,
            configured: conn
                .phase1_proposals
                .iter()
                .map(|p| p.to_string())
                .collect(),
            local_responder: responder,
        });
    }

    /// A first phase 1 message from a peer (MM1 or AM1): a new responder SA.
    pub fn respond(
        ctx: &mut Ctx,
        cands: Vec<Arc<Connection>>,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) -> Option<IsakmpSa> {
        let Ok(p) = Payloads::parse(&msg[HEADER_LEN..], hdr.next_payload()) else {
            ctx.drop(V1Drop::Malformed);
            return None;
        };
        let Some(sa_view) = p.sa else {
            ctx.drop(V1Drop::Invalid);
            return None;
        };
        let aggressive = hdr.exchange() == wire::exchange::AGGRESSIVE;
        let peer_id = p.ids.first().and_then(|i| i.identity());
        if aggressive && (p.ke.is_none() || p.nonce.is_none() || p.ids.len() != 1) {
            ctx.drop(V1Drop::Invalid);
            return None;
        }
        let (conn, (suite, num)) = match Self::pick_connection(
            &cands,
            &sa_view,
            aggressive.then_some(p.ke).flatten(),
            aggressive.then_some(peer_id.as_ref()),
        ) {
            Ok(x) => x,
            Err(last_offered) => {
                if let Some(c) = cands.first() {
                    Self::mismatch(ctx, c, from, last_offered, true);
                }
                ctx.drop(V1Drop::NoConnection);
                Self::refuse_in_clear(ctx, hdr.icookie(), to, from, notify::NO_PROPOSAL_CHOSEN);
                return None;
            }
        };
        let rc = ctx.new_cookie();
        let mode = if aggressive {
            ExchangeMode::Aggressive
        } else {
            ExchangeMode::Main
        };
        let mut sa = IsakmpSa::blank(
            conn.clone(),
            false,
            mode,
            rc,
            hdr.icookie(),
            rc,
            to,
            from,
            now,
        );
        sa.candidates = cands;
        sa.half_open_deadline = Some(now + ctx.settings.half_open_timeout);
        sa.sai_b = sa_view.body.to_vec();
        sa.suite = Some(suite);
        sa.learn_vids(ctx, &p);
        let answer = wire::sa_body(&[(
            1,
            proto::ISAKMP,
            vec![],
            vec![(wire::KEY_IKE, suite.attrs())],
        )]);
        // transform number: echo the peer's
        let answer = renumber_transform(answer, num);
        let mut pw = PayloadWriter::new();
        pw.push(payload::SA, &answer);
        if aggressive {
            sa.am1(ctx, &p, peer_id, from, to, &mut pw)?;
        } else {
            Self::vendor_ids(ctx, &mut pw);
            sa.state = P1State::MmR2;
        }
        let m = wire::build_plain(sa.ic, sa.rc, hdr.exchange(), 0, 0, &pw);
        sa.send(ctx, &m);
        sa.p1_last_rx = Some(digest(msg));
        sa.p1_reply = Some((sa.local, sa.remote, m.clone()));
        if aggressive {
            // AM3 must come: repeat AM2 until it does
            sa.start_rtx(ctx, m, now);
        }
        Some(sa)
    }

    /// The first candidate connection that accepts a transform of the
    /// peer's SA payload, with the transform; Err: what the peer offered
    /// (to the last candidate). In aggressive mode AM1's KE (`ke`) fixes
    /// the group and its identity (`peer_id`: Some) picks the connection.
    fn pick_connection(
        cands: &[Arc<Connection>],
        sa_view: &wire::SaView<'_>,
        ke: Option<&[u8]>,
        peer_id: Option<Option<&Identity>>,
    ) -> Result<Picked, Vec<String>> {
        let mut last_offered = Vec::new();
        for c in cands {
            if let Some(peer_id) = peer_id {
                // the identity is known: it picks the connection (and the key)
                if let Some(want) = &c.remote_id {
                    if !peer_id.is_some_and(|g| want.matches(g)) {
                        continue;
                    }
                }
            }
            // AM1's KE fixes the group: a transform with another one is moot
            let group = ke.and_then(|k| {
                Self::offers(c)
                    .iter()
                    .find(|o| o.dh.public_len() == k.len())
                    .map(|o| o.dh.number())
            });
            match Self::choose_p1(c, sa_view, group) {
                Ok(x) => return Ok((c.clone(), x)),
                Err(o) => last_offered = o,
            }
        }
        Err(last_offered)
    }

    /// A notification in the clear to a peer we have no SA with (the
    /// responder cookie zero).
    fn refuse_in_clear(ctx: &mut Ctx, ic: u64, local: SocketAddr, remote: SocketAddr, code: u16) {
        let mut pw = PayloadWriter::new();
        pw.notify(proto::ISAKMP, &[], code, &[]);
        let m = wire::build_plain(ic, 0, wire::exchange::INFORMATIONAL, 0, 0, &pw);
        ctx.transmit(local, remote, &m);
    }

    /// g^xy, SKEYID and the phase 1 keys from our DH, the peer's KE and the nonces.
    fn derive(&mut self, _ctx: &mut Ctx) -> Result<(), IkeError> {
        let suite = self.suite.ok_or(IkeError::State {
            op: "derive",
            state: "no suite",
        })?;
        let dh = self.dh.as_ref().ok_or(IkeError::State {
            op: "derive",
            state: "no DH",
        })?;
        let gxy = dh.shared(&self.g_peer)?;
        let skeyid = if suite.auth == AuthMethod::Psk {
            crypto::skeyid_psk(suite.hash, self.conn.psk.bytes(), &self.ni, &self.nr)
        } else {
            // RFC 2409 §5.1: SKEYID = prf(Ni_b | Nr_b, g^xy)
            crypto::skeyid_sig(suite.hash, &self.ni, &self.nr, &gxy)
        };
        let (gxi, gxr) = if self.initiator {
            (dh.public().to_vec(), self.g_peer.clone())
        } else {
            (self.g_peer.clone(), dh.public().to_vec())
        };
        let k = crypto::derive_phase1(
            suite.hash, suite.encr, skeyid, &gxy, self.ic, self.rc, &gxi, &gxr,
        );
        self.cipher = Some(CbcKey::new(suite.encr, &k.ka)?);
        self.p1_iv = k.iv.clone();
        self.keys = Some(k);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn phase1(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
    ) {
        let Some((plain, last_block)) = self.p1_plain(ctx, msg, hdr) else {
            return;
        };
        let p = match Payloads::parse(&plain, hdr.next_payload()) {
            Ok(p) => p,
            Err(_) => {
                self.p1_unparsable(ctx, hdr, from, to);
                return;
            }
        };
        let rc_ok = self.rc == 0 || hdr.rcookie() == self.rc;
        if !rc_ok {
            ctx.drop(V1Drop::UnknownSa);
            return;
        }
        match (self.state, self.initiator) {
            (P1State::MmI1, true) => self.mm2(ctx, &p, hdr, now),
            (P1State::MmI3, true) => self.mm4(ctx, &p, from, to, now),
            (P1State::MmI5, true) if hdr.encrypted() => {
                self.mm6(ctx, &p, from, to, now, d, last_block)
            }
            (P1State::MmR2, false) => self.mm3(ctx, &p, msg, from, to, now, d),
            (P1State::MmR4, false) if hdr.encrypted() => {
                self.mm5(ctx, &p, from, to, now, d, last_block)
            }
            (P1State::AmI1, true) => self.am2(ctx, &p, hdr, from, to, now, d),
            (P1State::AmR2, false) => self.am3(ctx, &p, from, to, now, d, last_block),
            _ => ctx.drop(V1Drop::Unexpected),
        }
    }

    /// A phase 1 message's payloads in the clear: decrypted when encrypted,
    /// chaining the phase 1 IV (with the last cipher block, for the next IV).
    fn p1_plain(
        &self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        if hdr.encrypted() {
            if self.cipher.is_none() {
                ctx.drop(V1Drop::Unexpected);
                return None;
            }
            match self.decrypt(msg, &self.p1_iv) {
                Ok(x) => Some((x.0, Some(x.1))),
                Err(r) => {
                    ctx.drop(r);
                    None
                }
            }
        } else {
            Some((msg[HEADER_LEN..].to_vec(), None))
        }
    }

    /// A phase 1 message whose payloads do not parse: dropped; when it was
    /// MM5 or MM6, the keys differ: the SA fails and the peer is told.
    fn p1_unparsable(&mut self, ctx: &mut Ctx, hdr: Header<'_>, from: SocketAddr, to: SocketAddr) {
        if !hdr.encrypted() {
            ctx.drop(V1Drop::Malformed);
            return;
        }
        ctx.drop(V1Drop::Decrypt);
        if matches!(self.state, P1State::MmR4 | P1State::MmI5) {
            // the keys differ: say so in the clear (RFC 2408 §5.7)
            let mut pw = PayloadWriter::new();
            pw.notify(proto::ISAKMP, &[], notify::AUTHENTICATION_FAILED, &[]);
            let m = wire::build_plain(self.ic, self.rc, wire::exchange::INFORMATIONAL, 0, 0, &pw);
            ctx.transmit(to, from, &m);
            self.auth_failed(
                ctx,
                "encrypted phase 1 message does not decrypt (pre-shared keys differ?)".into(),
            );
        }
    }

    /// The suite the responder chose in its first answer (MM2/AM2), or
    /// `None` after the peer's error notify or an answer we did not offer
    /// (counted, logged as a mismatch, the SA failed).
    pub(super) fn answered_suite(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
    ) -> Option<Phase1Suite> {
        if let Some(code) = p.error_notify() {
            self.peer_error(ctx, code);
            return None;
        }
        match self.check_answer(p) {
            Ok(s) => Some(s),
            Err(o) => {
                ctx.drop(V1Drop::Invalid);
                Self::mismatch(ctx, &self.conn.clone(), self.remote, o, false);
                self.fail(
                    ctx,
                    IkeError::NoProposalChosen {
                        offered: "peer answered with a transform we did not offer".into(),
                        configured: self
                            .conn
                            .phase1_proposals
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    },
                );
                None
            }
        }
    }

    fn check_answer(&self, p: &Payloads<'_>) -> Result<Phase1Suite, Vec<String>> {
        let Some(sa) = p.sa else {
            return Err(vec!["no SA payload".into()]);
        };
        let props = sa.proposals().map_err(|e| vec![e.to_string()])?;
        let [pr] = props.as_slice() else {
            return Err(vec!["answer is not one proposal".into()]);
        };
        let [t] = pr.transforms.as_slice() else {
            return Err(vec!["answer is not one transform".into()]);
        };
        let s = Phase1Suite::from_transform(t).map_err(|e| vec![e])?;
        if Self::offers(&self.conn)
            .iter()
            .any(|o| o.encr == s.encr && o.hash == s.hash && o.dh == s.dh && s.auth == o.auth)
        {
            Ok(s)
        } else {
            Err(vec![s.to_string()])
        }
    }

    fn peer_error(&mut self, ctx: &mut Ctx, code: u16) {
        if code == notify::NO_PROPOSAL_CHOSEN {
            Self::mismatch(
                ctx,
                &self.conn.clone(),
                self.remote,
                vec!["?".into()],
                false,
            );
        }
        self.fail(
            ctx,
            IkeError::PeerError {
                code,
                name: notify::name(code),
            },
        );
    }

    /// Phase 1 is complete (both roles).
    fn established(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        self.state = P1State::Established;
        self.p1_rtx = None;
        self.half_open_deadline = None;
        self.dh = None;
        if let Some(ip) = self.half_open_from.take() {
            ctx.half_open.remove(ip);
        }
        self.last_heard = now;
        let _ = (from, to);
        let suite = self.suite;
        let life = effective_lifetime(self.conn.ike_lifetime, suite.and_then(|s| s.lifetime));
        self.expire_at = Some(now + life);
        // Re-authentication before the ISAKMP SA expires (its expiry takes
        // the IPsec SAs under it along). The responder does it too when it
        // can reach the peer, later (half the margin) so that an initiator
        // with the same settings goes first: otherwise a peer that
        // re-authenticates later than our lifetime (strongSwan: 4 h against
        // `ikelifetime`) would see its tunnel torn down at our expiry.
        let can_initiate = matches!(self.conn.remote_addr, crate::ike::RemoteAddr::Addr(_));
        if self.conn.rekey && (self.initiator || can_initiate) {
            let margin = if self.initiator {
                self.conn.margin
            } else {
                self.conn.margin / 2
            };
            self.rekey_at = Some(now + ctx.rekey_time(life, margin, self.conn.fuzz_percent));
        }
        if self.nat_local {
            self.keepalive_at = Some(now + ctx.settings.keepalive);
        }
        ctx.stats.isakmp_established += 1;
        ctx.event(Event::IkeEstablished {
            sa: self.id,
            conn: self.conn.name.clone(),
            local: self.local,
            remote: self.remote,
            remote_id: self
                .remote_id
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_default(),
            proposal: suite.map(|s| s.to_string()).unwrap_or_default(),
            initiator: self.initiator,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
        });
        let initial_contact = p.notify(notify::INITIAL_CONTACT).is_some();
        if let Some(old) = self.reauth_of {
            ctx.deferred.push(Deferred::MoveChildren {
                from: old,
                to: self.id,
            });
            ctx.deferred.push(Deferred::Task {
                sa: old,
                task: Task::DeleteIsakmp,
            });
            ctx.event(Event::IkeRekeyed {
                conn: self.conn.name.clone(),
                old_sa: old,
                new_sa: self.id,
            });
        } else {
            if !self.initiator {
                // the peer re-authenticates: its IPsec SAs move here (first:
                // strongSwan's re-authentication may carry INITIAL-CONTACT,
                // and it keeps the IPsec SAs, as it adopts them itself)
                ctx.deferred.push(Deferred::Adopt { keep: self.id });
            }
            if initial_contact {
                ctx.deferred
                    .push(Deferred::InitialContact { keep: self.id });
            }
        }
        if let Some((l, r)) = self.first_qm.take() {
            self.tasks.push_back(Task::QuickMode {
                local: l,
                remote: r,
            });
        }
        self.kick(ctx, now);
    }
}

/// Sets the transform number of a one-transform SA body.
fn renumber_transform(mut body: Vec<u8>, num: u8) -> Vec<u8> {
    // DOI(4) SIT(4) | proposal header(8) SPI(0) | transform header(4) num
    if body.len() > 8 + 8 + 4 {
        body[8 + 8 + 4] = num;
    }
    body
}
