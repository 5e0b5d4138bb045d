//! Quick mode's responder (RFC 2409 §5.5): the first message of a peer's
//! quick mode answered (proposal and selector choice, PFS, the responder
//! lifetime, UDP encapsulation), the new inbound SA installed before the
//! answer leaves (make-before-break). The initiator's side and the common
//! parts are `quick`'s.

use super::quick::{is_udp, NewPair, NONCE_LEN};
use super::*;
use crate::ike::crypto::Secret;
use crate::ike::proposal::{DhGroup, EspProposal};
use crate::ikev1::proposal::{describe_p2, p2_from_transform, Phase2Attrs};
use crate::ikev1::wire::{notify, p2attr, payload, proto, IdView, Payloads};

impl IsakmpSa {
    // ------------------------------------------------------- responder

    #[allow(clippy::too_many_arguments)]
    pub(super) fn qm1(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
        d: [u8; 32],
    ) {
        let mid = hdr.message_id();
        let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
        let iv = crypto::phase2_iv(h, &self.p1_iv, mid, self.block());
        let Some((plain, last)) = self.open(ctx, msg, &iv) else {
            return;
        };
        let Some((p, hash)) = hash_first(ctx, &plain, hdr.next_payload()) else {
            return;
        };
        let want = crypto::hash1(h, &a, mid, &plain[p.after_hash..p.end]);
        if !crate::ike::crypto::ct_eq(&want, hash) {
            ctx.drop(V1Drop::Hash);
            return;
        }
        self.remember_mid(mid);
        self.heard(from, to, now);
        if self.replaced {
            ctx.drop(V1Drop::Unexpected);
            return;
        }
        let (Some(sa), Some(ni)) = (p.sa, p.nonce) else {
            ctx.drop(V1Drop::Invalid);
            let missing = if p.sa.is_none() { "SA" } else { "nonce" };
            self.qm1_refuse(
                ctx,
                notify::PAYLOAD_MALFORMED,
                format!("its first message has no {missing} payload"),
            );
            return;
        };
        let Some((remote_ts, local_ts, with_ids)) = self.qm1_selectors(ctx, &p) else {
            return;
        };
        let Some(c) = self.qm1_choose(ctx, &sa) else {
            return;
        };
        let Ok(shared) = self.qm1_pfs(ctx, c.suite.dh, p.ke) else {
            return;
        };
        let (life, responder_life) = self.qm1_lifetime(&c.attrs);
        let inbound = ctx.new_child_spi();
        let nr = ctx.random_bytes(NONCE_LEN);
        let rest = qm2_body(
            &c,
            inbound,
            &nr,
            shared.as_ref().map(|(dh, _)| dh.public()),
            with_ids.then(|| (p.ids[0].body, p.ids[1].body)),
            responder_life,
        );
        let pw = self.with_hash(&rest, |b| crypto::hash2(h, &a, mid, ni, b));
        let (m, last2) = match self.encrypt(wire::exchange::QUICK, 0, mid, &pw, &last) {
            Ok(x) => x,
            Err(e) => {
                ctx.free_child_spi(inbound);
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
                return;
            }
        };
        // keys, and the new inbound SA before the answer leaves
        let encap = is_udp(c.attrs.encap_mode) || self.natted();
        let rekey_of = self.installed_child_for(&local_ts, &remote_ts);
        self.install_inbound_first(
            ctx,
            NewPair {
                suite: c.suite,
                ts: (local_ts, remote_ts),
                encap,
                spis: (inbound, c.outbound),
                shared: shared.as_ref().map(|(_, s)| &s[..]),
                nonces: (ni, &nr),
                life,
                initiated: false,
                rekey_of,
            },
            now,
        );
        self.send(ctx, &m);
        self.qms.push(QuickMode {
            mid,
            initiator: false,
            state: QmState::R2Sent,
            iv: last2,
            ni: ni.to_vec(),
            nr,
            dh: None,
            inbound_spi: inbound,
            local_ts,
            remote_ts,
            offered: Vec::new(),
            rekey_of,
            commit: hdr.commit(),
            last_rx: d,
            rx_seen: vec![d],
            reply: Some(m.clone()),
            rtx: Some(Rtx {
                packet: m,
                retries: 0,
                next: now + ctx.settings.retransmit_timeout,
            }),
            until: None,
            switch: None,
        });
    }

    /// The installed child with these selectors (a quick mode for them
    /// rekeys it): its inbound SPI.
    fn installed_child_for(&self, local_ts: &TsEntry, remote_ts: &TsEntry) -> Option<u32> {
        self.children
            .iter()
            .find(|c| {
                c.state == ChildState::Installed
                    && c.local_ts == *local_ts
                    && c.remote_ts == *remote_ts
            })
            .map(|c| c.inbound_spi)
    }

    /// The IPsec SA lifetime: the shorter of ours and the initiator's;
    /// with ours when it is the shorter (the RESPONDER-LIFETIME notify).
    fn qm1_lifetime(&self, attrs: &Phase2Attrs) -> (Duration, Option<Duration>) {
        // lifetimes: the shorter wins; tell the initiator when ours is shorter
        let ours = self.child_lifetime();
        let mut life = ours;
        let mut notify_life = false;
        if let Some(s) = attrs.life_seconds {
            if Duration::from_secs(s) > ours {
                notify_life = true;
            } else {
                life = Duration::from_secs(s.max(1));
            }
        }
        (life, notify_life.then_some(ours))
    }

    /// QM1's client IDs (none: the peers' addresses), checked against the
    /// connection's selectors: (remote, local, IDs given). None: refused
    /// (notified).
    fn qm1_selectors(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
    ) -> Option<(TsEntry, TsEntry, bool)> {
        // client IDs: the initiator's side is our remote side
        let (remote_ts, local_ts, with_ids) = match p.ids.as_slice() {
            [] => (
                crate::ike::ts::from_net(&ipnet::IpNet::from(self.remote.ip())),
                crate::ike::ts::from_net(&ipnet::IpNet::from(self.local.ip())),
                false,
            ),
            [i, r] => match (IdView::ts(i), IdView::ts(r)) {
                (Ok(i), Ok(r)) => (i, r, true),
                (Err(e), _) | (_, Err(e)) => {
                    ctx.drop(V1Drop::Invalid);
                    self.qm1_refuse(
                        ctx,
                        notify::INVALID_ID_INFORMATION,
                        format!("client ID not a selector: {e}"),
                    );
                    return None;
                }
            },
            ids => {
                ctx.drop(V1Drop::Invalid);
                let n = ids.len();
                self.qm1_refuse(
                    ctx,
                    notify::INVALID_ID_INFORMATION,
                    format!("{n} client ID payloads (none or two expected)"),
                );
                return None;
            }
        };
        let (cl, cr) =
            crate::ike::ts::conn_ts(&self.conn, Some(self.local.ip()), Some(self.remote.ip()));
        let ts_ok = cl.iter().any(|c| crate::ike::ts::contains(c, &local_ts))
            && cr.iter().any(|c| crate::ike::ts::contains(c, &remote_ts));
        if !ts_ok {
            ctx.event(Event::ChildFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                error: IkeError::TsUnacceptable(format!(
                    "peer proposed {} === {}; configured local {:?} remote {:?}",
                    ts::display(&remote_ts),
                    ts::display(&local_ts),
                    cl.iter().map(ts::display).collect::<Vec<_>>(),
                    cr.iter().map(ts::display).collect::<Vec<_>>()
                )),
            });
            self.send_notify(ctx, proto::ESP, &[], notify::INVALID_ID_INFORMATION, &[]);
            return None;
        }
        Some((remote_ts, local_ts, with_ids))
    }

    /// Chooses among QM1's ESP transforms: our preference order, the peer's
    /// transforms. None: refused (notified, the mismatch an event).
    fn qm1_choose<'a>(&mut self, ctx: &mut Ctx, sa: &wire::SaView<'a>) -> Option<Qm1Choice<'a>> {
        let props = match sa.proposals() {
            Ok(p) => p,
            Err(e) => {
                ctx.drop(V1Drop::Invalid);
                self.qm1_refuse(
                    ctx,
                    notify::BAD_PROPOSAL_SYNTAX,
                    format!("its SA payload is malformed: {e}"),
                );
                return None;
            }
        };
        let mut theirs = Vec::new();
        for pr in &props {
            let Some(spi) = esp_spi(pr) else { continue };
            for t in &pr.transforms {
                if let Ok((s, at)) = p2_from_transform(t) {
                    theirs.push((pr.num, spi, s, at, t));
                }
            }
        }
        let chosen = self.conn.esp_proposals.iter().find_map(|p| {
            theirs
                .iter()
                .find(|(_, spi, s, at, _)| self.qm1_acceptable(p, s, at) && *spi >= 256)
        });
        let Some((proposal, outbound, suite, attrs, t)) = chosen else {
            // every proposal and transform of the peer, with why it was refused
            let offered = props.iter().flat_map(|pr| self.qm1_refusals(pr)).collect();
            ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "ESP",
                peer: self.remote,
                offered,
                configured: self.configured_esp(),
                local_responder: true,
            });
            self.send_notify(ctx, proto::ESP, &[], notify::NO_PROPOSAL_CHOSEN, &[]);
            return None;
        };
        Some(Qm1Choice {
            proposal: *proposal,
            outbound: *outbound,
            suite: *suite,
            attrs: *attrs,
            transform: (*t).clone(),
        })
    }

    /// Refuses the peer's quick mode: `t` notified to the peer, the reason
    /// an event (the daemon logs it with the connection).
    fn qm1_refuse(&mut self, ctx: &mut Ctx, t: u16, reason: String) {
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: IkeError::QuickModeRefused {
                peer: self.remote,
                notify: notify::name(t),
                reason,
            },
        });
        self.send_notify(ctx, proto::ESP, &[], t, &[]);
    }

    /// Why none of proposal `pr`'s transforms was chosen, one line each.
    fn qm1_refusals(&self, pr: &wire::ProposalView<'_>) -> Vec<String> {
        let n = pr.num;
        if pr.protocol != proto::ESP {
            return vec![format!("proposal {n}: protocol {} (only ESP)", pr.protocol)];
        }
        let Some(spi) = esp_spi(pr) else {
            return vec![format!(
                "proposal {n}: {}-byte SPI (4 expected)",
                pr.spi.len()
            )];
        };
        if pr.transforms.is_empty() {
            return vec![format!(
                "proposal {n}: no transform (what a peer sends for an algorithm it cannot write in IKEv1: strongSwan for chacha20poly1305, which has no IKEv1 ESP transform ID)"
            )];
        }
        pr.transforms
            .iter()
            .map(|t| match p2_from_transform(t) {
                Err(_) => format!("proposal {n} transform {}: {}", t.num, describe_p2(t)),
                Ok((s, at)) => {
                    format!(
                        "proposal {n} transform {}: {s}: {}",
                        t.num,
                        self.qm1_why_not(&s, &at, spi)
                    )
                }
            })
            .collect()
    }

    /// Why a transform we can read fits none of our proposals.
    fn qm1_why_not(&self, s: &ChildSuite, at: &Phase2Attrs, spi: u32) -> String {
        let ps = &self.conn.esp_proposals;
        if spi < 256 {
            format!("SPI {spi} (values below 256 are reserved)")
        } else if !self.qm1_mode_ok(at) {
            format!(
                "encapsulation mode {}, the connection is {}",
                at.encap_mode,
                if self.conn.mode == Mode::Transport {
                    "transport"
                } else {
                    "tunnel"
                }
            )
        } else if !ps.iter().any(|p| qm1_algs_ok(p, s)) {
            "algorithms not configured".into()
        } else if !ps.iter().any(|p| qm1_algs_ok(p, s) && self.qm1_dh_ok(p, s)) {
            match s.dh {
                Some(g) => format!("PFS group {} not configured", g.name()),
                None => "no PFS, the connection requires it (pfs = true)".into(),
            }
        } else if !self.qm1_legacy_ok(s) {
            "legacy algorithm, not allowed (allow_legacy = false)".into()
        } else {
            "not acceptable".into()
        }
    }

    /// One of the peer's transforms fits our proposal `p`: the mode, the
    /// algorithms, PFS and the legacy rule.
    fn qm1_acceptable(&self, p: &EspProposal, s: &ChildSuite, at: &Phase2Attrs) -> bool {
        self.qm1_mode_ok(at) && qm1_algs_ok(p, s) && self.qm1_dh_ok(p, s) && self.qm1_legacy_ok(s)
    }

    fn qm1_mode_ok(&self, at: &Phase2Attrs) -> bool {
        let transport = self.conn.mode == Mode::Transport;
        matches!(
            (at.encap_mode, transport),
            (
                p2attr::MODE_TUNNEL | p2attr::MODE_UDP_TUNNEL | p2attr::MODE_UDP_TUNNEL_DRAFT,
                false
            ) | (
                p2attr::MODE_TRANSPORT
                    | p2attr::MODE_UDP_TRANSPORT
                    | p2attr::MODE_UDP_TRANSPORT_DRAFT,
                true
            )
        )
    }

    /// PFS: a group of the proposal; without one, ours (pfs = yes) or any
    /// (pfs = no still accepts PFS, seed 000).
    fn qm1_dh_ok(&self, p: &EspProposal, s: &ChildSuite) -> bool {
        match s.dh {
            Some(g) => {
                p.dh.contains(&g)
                    || (p.dh.is_empty() && (!self.conn.pfs || Some(g) == self.suite.map(|x| x.dh)))
            }
            None => p.dh.is_empty() && !self.conn.pfs,
        }
    }

    fn qm1_legacy_ok(&self, s: &ChildSuite) -> bool {
        s.suite().validate(self.conn.allow_legacy).is_ok()
            && (self.conn.allow_legacy || !s.dh.is_some_and(|g: DhGroup| g.is_legacy()))
    }

    /// QM1's PFS: our DH and the shared secret when the chosen transform
    /// has a group and the peer sent KE; Err: refused (notified).
    fn qm1_pfs(
        &mut self,
        ctx: &mut Ctx,
        group: Option<DhGroup>,
        ke: Option<&[u8]>,
    ) -> Result<Option<(DhPrivate, Secret)>, ()> {
        let why = match (group, ke) {
            (Some(g), Some(ke)) => {
                let dh = DhPrivate::generate(g, &mut ctx.rng);
                match dh.shared(ke) {
                    Ok(s) => return Ok(Some((dh, s))),
                    Err(e) => format!("its KE payload is not a {} public value: {e}", g.name()),
                }
            }
            (None, None) => return Ok(None),
            (Some(g), None) => format!(
                "the chosen transform has PFS group {} but no KE payload came",
                g.name()
            ),
            (None, Some(_)) => "a KE payload came but the chosen transform has no PFS group".into(),
        };
        ctx.drop(V1Drop::Invalid);
        self.qm1_refuse(ctx, notify::INVALID_KEY_INFORMATION, why);
        Err(())
    }
}

/// An ESP proposal's SPI (None: not ESP or not 4 bytes).
fn esp_spi(pr: &wire::ProposalView<'_>) -> Option<u32> {
    match pr.spi {
        [a, b, c, d] if pr.protocol == proto::ESP => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// The algorithms of one of the peer's transforms are those of our proposal `p`.
fn qm1_algs_ok(p: &EspProposal, s: &ChildSuite) -> bool {
    p.encr.contains(&s.encr)
        && (p.integ.contains(&s.integ)
            || (p.integ.is_empty() && s.integ == espresso_core::alg::IntegAlg::None))
        && (p.esn.is_empty() && !s.esn || p.esn.contains(&s.esn))
}

/// The ESP transform QM1's responder chose.
struct Qm1Choice<'a> {
    /// The proposal's number.
    proposal: u8,
    /// The peer's SPI (our outbound SA).
    outbound: u32,
    suite: ChildSuite,
    attrs: Phase2Attrs,
    /// The transform as received (echoed in QM2).
    transform: wire::TransformView<'a>,
}

/// QM2 after its HASH(2): the chosen transform with our SPI, Nr, our KE
/// (PFS), the client IDs as received, the RESPONDER-LIFETIME notify.
fn qm2_body(
    c: &Qm1Choice<'_>,
    inbound: u32,
    nr: &[u8],
    ke: Option<&[u8]>,
    ids: Option<(&[u8], &[u8])>,
    responder_life: Option<Duration>,
) -> PayloadWriter {
    let mut rest = PayloadWriter::new();
    let answer = wire::sa_body(&[(
        c.proposal,
        proto::ESP,
        inbound.to_be_bytes().to_vec(),
        vec![(c.transform.id, raw_attrs(&c.transform))],
    )]);
    rest.push(payload::SA, &renumber(answer, c.transform.num));
    rest.push(payload::NONCE, nr);
    if let Some(ke) = ke {
        rest.push(payload::KE, ke);
    }
    if let Some((i, r)) = ids {
        rest.push(payload::ID, i);
        rest.push(payload::ID, r);
    }
    if let Some(ours) = responder_life {
        let mut la = Vec::new();
        wire::attr_basic(&mut la, p2attr::LIFE_TYPE, 1);
        wire::attr_int(&mut la, p2attr::LIFE_DURATION, ours.as_secs());
        rest.notify(
            proto::ESP,
            &inbound.to_be_bytes(),
            notify::RESPONDER_LIFETIME,
            &la,
        );
    }
    rest
}

/// A transform's attributes re-encoded as received (the responder echoes the chosen transform).
fn raw_attrs(t: &wire::TransformView<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    for a in &t.attrs {
        match a.value {
            wire::AttrValue::Basic(x) => wire::attr_basic(&mut v, a.atype, x),
            wire::AttrValue::Variable(b) => {
                v.extend_from_slice(&a.atype.to_be_bytes());
                v.extend_from_slice(&(b.len() as u16).to_be_bytes());
                v.extend_from_slice(b);
            }
        }
    }
    v
}

/// Sets the transform number of a one-proposal, one-transform SA body with a 4-byte SPI.
fn renumber(mut body: Vec<u8>, num: u8) -> Vec<u8> {
    let at = 8 + 8 + 4 + 4;
    if body.len() > at {
        body[at] = num;
    }
    body
}
