//! Quick mode (RFC 2409 §5.5): IPsec SAs with and without PFS, several per
//! ISAKMP SA, the responder-lifetime notify (RFC 2407 §4.6.3.1) both ways,
//! UDP-encapsulated modes (RFC 3947 §5.1), the commit bit (RFC 2408 §3.1:
//! CONNECTED), and make-before-break rekeys: the responder installs the new
//! inbound SA before it answers, the initiator switches after QM2, the old
//! inbound SA drains.

use super::*;
use crate::ikev1::proposal::{p2_from_transform, p2_suites, p2_transform, Phase2Attrs};
use crate::ikev1::wire::{notify, p2attr, payload, proto, Payloads};

pub(super) const NONCE_LEN: usize = 32;
/// How long a finished quick mode is kept to answer retransmissions.
pub(super) const QM_KEEP: Duration = Duration::from_secs(60);

/// A new IPsec SA pair as quick mode keys it (both roles).
pub(super) struct NewPair<'a> {
    pub suite: ChildSuite,
    /// (local, remote) selectors.
    pub ts: (TsEntry, TsEntry),
    /// UDP encapsulation.
    pub encap: bool,
    /// (inbound, outbound).
    pub spis: (u32, u32),
    /// The PFS exchange's g^xy.
    pub shared: Option<&'a [u8]>,
    /// (Ni, Nr).
    pub nonces: (&'a [u8], &'a [u8]),
    pub life: Duration,
    /// We started the quick mode.
    pub initiated: bool,
    /// The inbound SPI of the child it replaces.
    pub rekey_of: Option<u32>,
}

impl IsakmpSa {
    // ------------------------------------------------------------- tasks

    pub fn queue(&mut self, ctx: &mut Ctx, task: Task, now: Instant) {
        match &task {
            Task::RekeyChild(spi) => {
                match self.children.iter_mut().find(|c| c.inbound_spi == *spi) {
                    Some(c) if c.state == ChildState::Installed && !c.rekey_busy => {
                        c.rekey_busy = true
                    }
                    _ => return,
                }
            }
            Task::Reauth => {
                if self.reauth_busy || self.replaced || self.state != P1State::Established {
                    return;
                }
                self.reauth_busy = true;
                ctx.deferred.push(Deferred::Task {
                    sa: self.id,
                    task: Task::Reauth,
                });
                return;
            }
            _ => {}
        }
        self.tasks.push_back(task);
        self.kick(ctx, now);
    }

    pub(super) fn kick(&mut self, ctx: &mut Ctx, now: Instant) {
        if self.state != P1State::Established {
            return;
        }
        while let Some(t) = self.tasks.pop_front() {
            match t {
                Task::QuickMode { local, remote } => {
                    if self.replaced {
                        continue;
                    }
                    for l in &local {
                        for r in &remote {
                            if l.start.is_ipv4() == r.start.is_ipv4() {
                                self.start_qm(ctx, *l, *r, None, now);
                            }
                        }
                    }
                }
                Task::RekeyChild(spi) => {
                    let Some(c) = self.children.iter().find(|c| c.inbound_spi == spi) else {
                        continue;
                    };
                    let (l, r) = (c.local_ts, c.remote_ts);
                    if self.replaced {
                        continue;
                    }
                    self.start_qm(ctx, l, r, Some(spi), now);
                }
                Task::Dpd => self.send_dpd(ctx, now),
                Task::DeleteIsakmp => self.retire(RETIRE_AFTER_REAUTH, now),
                Task::Reauth => {}
            }
        }
    }

    // ---------------------------------------------------------- offers

    pub(super) fn encap_mode(&self) -> u16 {
        let transport = self.conn.mode == Mode::Transport;
        match (self.natted() || self.conn.force_encap, self.natt, transport) {
            (true, Natt::Rfc, false) => p2attr::MODE_UDP_TUNNEL,
            (true, Natt::Rfc, true) => p2attr::MODE_UDP_TRANSPORT,
            (true, Natt::Draft, false) => p2attr::MODE_UDP_TUNNEL_DRAFT,
            (true, Natt::Draft, true) => p2attr::MODE_UDP_TRANSPORT_DRAFT,
            (_, _, false) => p2attr::MODE_TUNNEL,
            (_, _, true) => p2attr::MODE_TRANSPORT,
        }
    }

    fn p2_attrs(&self) -> Phase2Attrs {
        Phase2Attrs {
            encap_mode: self.encap_mode(),
            life_seconds: Some(self.child_lifetime().as_secs()),
            life_kb: (self.conn.life_bytes > 0).then(|| self.conn.life_bytes.div_ceil(1024)),
        }
    }

    /// Our phase 2 suites, preferred first (one PFS group: one KE).
    fn p2_offers(&self) -> Vec<ChildSuite> {
        let pfs = if self.conn.pfs {
            self.suite.map(|s| s.dh)
        } else {
            None
        };
        let mut v: Vec<ChildSuite> = Vec::new();
        for p in &self.conn.esp_proposals {
            for s in p2_suites(p, pfs) {
                let legacy = s.suite().validate(self.conn.allow_legacy).is_err()
                    || (s.dh.is_some_and(|g| g.is_legacy()) && !self.conn.allow_legacy);
                if !legacy && p2_transform(&s, &self.p2_attrs()).is_ok() && !v.contains(&s) {
                    v.push(s);
                }
            }
        }
        let g = v.first().and_then(|s| s.dh);
        v.retain(|s| s.dh == g);
        v
    }

    pub(super) fn configured_esp(&self) -> Vec<String> {
        self.conn
            .esp_proposals
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    // ------------------------------------------------------- initiator

    pub(super) fn start_qm(
        &mut self,
        ctx: &mut Ctx,
        local_ts: TsEntry,
        remote_ts: TsEntry,
        rekey_of: Option<u32>,
        now: Instant,
    ) {
        let offered = self.p2_offers();
        if offered.is_empty() {
            ctx.event(Event::ChildFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                error: IkeError::Config("no usable ESP proposal".into()),
            });
            return;
        }
        let mid = ctx.new_mid();
        self.remember_mid(mid);
        let inbound_spi = ctx.new_child_spi();
        let ni = ctx.random_bytes(NONCE_LEN);
        let dh = offered[0].dh.map(|g| DhPrivate::generate(g, &mut ctx.rng));
        let attrs = self.p2_attrs();
        let xs: Vec<(u8, Vec<u8>)> = offered
            .iter()
            .filter_map(|s| p2_transform(s, &attrs).ok())
            .collect();
        let mut rest = PayloadWriter::new();
        rest.push(
            payload::SA,
            &wire::sa_body(&[(1, proto::ESP, inbound_spi.to_be_bytes().to_vec(), xs)]),
        );
        rest.push(payload::NONCE, &ni);
        if let Some(d) = &dh {
            rest.push(payload::KE, d.public());
        }
        rest.push(payload::ID, &wire::ts_body(&local_ts));
        rest.push(payload::ID, &wire::ts_body(&remote_ts));
        let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
        let pw = self.with_hash(&rest, |b| crypto::hash1(h, &a, mid, b));
        let iv = crypto::phase2_iv(h, &self.p1_iv, mid, self.block());
        let fl = if ctx.settings.commit_bit {
            wire::flags::COMMIT
        } else {
            0
        };
        let (m, last) = match self.encrypt(wire::exchange::QUICK, fl, mid, &pw, &iv) {
            Ok(x) => x,
            Err(e) => {
                ctx.free_child_spi(inbound_spi);
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
                return;
            }
        };
        self.send(ctx, &m);
        self.qms.push(QuickMode {
            mid,
            initiator: true,
            state: QmState::I1Sent,
            iv: last,
            ni,
            nr: Vec::new(),
            dh,
            inbound_spi,
            local_ts,
            remote_ts,
            offered,
            rekey_of,
            commit: ctx.settings.commit_bit,
            last_rx: [0; 32],
            rx_seen: Vec::new(),
            reply: None,
            rtx: Some(Rtx {
                packet: m,
                retries: 0,
                next: now + ctx.settings.retransmit_timeout,
            }),
            until: None,
            switch: None,
        });
    }

    pub(super) fn quick(
        &mut self,
        ctx: &mut Ctx,
        msg: &[u8],
        hdr: Header<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if self.state != P1State::Established || !hdr.encrypted() || hdr.message_id() == 0 {
            ctx.drop(V1Drop::Unexpected);
            return;
        }
        let mid = hdr.message_id();
        let d = digest(msg);
        let Some(qi) = self.qms.iter().position(|q| q.mid == mid) else {
            if self.seen_mids.contains(&mid) {
                // an exchange we finished and forgot: a replay
                ctx.drop(V1Drop::Unexpected);
                return;
            }
            self.qm1(ctx, msg, hdr, from, to, now, d);
            return;
        };
        if self.qms[qi].rx_seen.contains(&d) {
            ctx.drop(V1Drop::Duplicate);
            if self.qms[qi].last_rx == d {
                if let Some(r) = self.qms[qi].reply.clone() {
                    ctx.stats.replies_repeated += 1;
                    self.send(ctx, &r);
                }
            }
            return;
        }
        let iv = self.qms[qi].iv.clone();
        let Some((plain, last)) = self.open(ctx, msg, &iv) else {
            return;
        };
        let Some((p, hash)) = hash_first(ctx, &plain, hdr.next_payload()) else {
            return;
        };
        let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
        let q = &self.qms[qi];
        match (q.state, q.initiator) {
            (QmState::I1Sent, true) => {
                let want = crypto::hash2(h, &a, mid, &q.ni, &plain[p.after_hash..p.end]);
                if !crate::ike::crypto::ct_eq(&want, hash) {
                    ctx.drop(V1Drop::Hash);
                    return;
                }
                self.qms[qi].iv = last;
                self.qms[qi].last_rx = d;
                self.qms[qi].rx_seen.push(d);
                self.heard(from, to, now);
                self.qm2(ctx, qi, &p, hdr.commit(), now);
            }
            (QmState::R2Sent, false) => {
                let want = crypto::hash3(h, &a, mid, &q.ni, &q.nr);
                if !crate::ike::crypto::ct_eq(&want, hash) || p.end != p.after_hash {
                    ctx.drop(V1Drop::Hash);
                    return;
                }
                self.qms[qi].iv = last;
                self.qms[qi].last_rx = d;
                self.qms[qi].rx_seen.push(d);
                self.heard(from, to, now);
                self.qm3(ctx, qi, now);
            }
            (QmState::WaitConnected, true) => {
                let want = crypto::hash1(h, &a, mid, &plain[p.after_hash..p.end]);
                if !crate::ike::crypto::ct_eq(&want, hash) {
                    ctx.drop(V1Drop::Hash);
                    return;
                }
                if p.notify(notify::CONNECTED).is_none() {
                    ctx.drop(V1Drop::Invalid);
                    return;
                }
                self.qms[qi].iv = last;
                self.qms[qi].last_rx = d;
                self.qms[qi].rx_seen.push(d);
                self.heard(from, to, now);
                let inb = self.qms[qi].inbound_spi;
                self.qms[qi].state = QmState::Done;
                self.qms[qi].until = Some(now + QM_KEEP);
                self.finish_outbound(ctx, inb, now);
            }
            _ => ctx.drop(V1Drop::Unexpected),
        }
    }

    pub(super) fn child_failed(&mut self, ctx: &mut Ctx, qi: usize, e: IkeError) {
        let q = &mut self.qms[qi];
        q.state = QmState::Done;
        q.rtx = None;
        ctx.free_child_spi(q.inbound_spi);
        let rk = q.rekey_of;
        let now = ctx.now;
        let retry = Duration::from_secs_f64(ctx.rng.random_range(10.0..30.0));
        if let Some(c) = rk.and_then(|o| self.children.iter_mut().find(|c| c.inbound_spi == o)) {
            // try again a little later while the SA still lives
            c.rekey_busy = false;
            c.rekey_at = (now + retry < c.expire_at).then_some(now + retry);
        }
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: e,
        });
    }

    /// Initiator: QM2 arrived (hash checked).
    fn qm2(&mut self, ctx: &mut Ctx, qi: usize, p: &Payloads<'_>, commit: bool, now: Instant) {
        let (Some(sa), Some(nr)) = (p.sa, p.nonce) else {
            ctx.drop(V1Drop::Invalid);
            self.child_failed(
                ctx,
                qi,
                IkeError::Missing {
                    exchange: "QUICK_MODE",
                    payload: "SA or Nonce",
                },
            );
            return;
        };
        let (suite, attrs, outbound) = match self.qm2_choice(qi, &sa, p) {
            Ok(x) => x,
            Err(e) => {
                self.child_failed(ctx, qi, e);
                return;
            }
        };
        let shared = match (suite.dh, &self.qms[qi].dh, p.ke) {
            (Some(g), Some(d), Some(ke)) if d.group() == g => match d.shared(ke) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.child_failed(ctx, qi, e);
                    return;
                }
            },
            (None, _, None) => None,
            _ => {
                self.child_failed(
                    ctx,
                    qi,
                    IkeError::KeyExchange("PFS KE missing or of another group"),
                );
                return;
            }
        };
        let life = self.qm2_lifetime(&attrs, p);
        let (ni, nr) = (self.qms[qi].ni.clone(), nr.to_vec());
        if let Err(e) = self.send_qm3(ctx, qi, &ni, &nr) {
            self.child_failed(ctx, qi, e);
            return;
        }
        let inbound = self.qms[qi].inbound_spi;
        let encap = is_udp(attrs.encap_mode) || self.natted();
        let (lt, rt) = (self.qms[qi].local_ts, self.qms[qi].remote_ts);
        let rekey_of = self.qms[qi].rekey_of;
        let idx = self.install_inbound_first(
            ctx,
            NewPair {
                suite,
                ts: (lt, rt),
                encap,
                spis: (inbound, outbound),
                shared: shared.as_deref().map(|s| &s[..]),
                nonces: (&ni, &nr),
                life,
                initiated: true,
                rekey_of,
            },
            now,
        );
        self.qms[qi].dh = None;
        self.qm2_switch(ctx, qi, idx, commit, now);
    }

    /// QM2's answer: the one ESP transform we offered (with the peer's
    /// outbound SPI) and our client IDs, if the responder sends IDs.
    fn qm2_choice(
        &self,
        qi: usize,
        sa: &wire::SaView<'_>,
        p: &Payloads<'_>,
    ) -> Result<(ChildSuite, Phase2Attrs, u32), IkeError> {
        let chosen = sa
            .proposals()
            .ok()
            .and_then(|props| match props.as_slice() {
                [pr] if pr.protocol == proto::ESP && pr.spi.len() == 4 => {
                    match pr.transforms.as_slice() {
                        [t] => p2_from_transform(t).ok().map(|(s, a)| {
                            (
                                s,
                                a,
                                u32::from_be_bytes([pr.spi[0], pr.spi[1], pr.spi[2], pr.spi[3]]),
                            )
                        }),
                        _ => None,
                    }
                }
                _ => None,
            });
        let Some((suite, attrs, outbound)) = chosen else {
            return Err(IkeError::NoProposalChosen {
                offered: "answer is not one ESP transform".into(),
                configured: self.configured_esp().join(", "),
            });
        };
        if !self.qms[qi].offered.contains(&suite) || outbound < 256 {
            return Err(IkeError::NoProposalChosen {
                offered: format!("peer chose {suite}, not offered"),
                configured: self.configured_esp().join(", "),
            });
        }
        // IDs, when the responder sends them, must be ours
        if !p.ids.is_empty() {
            let ok = p.ids.len() == 2
                && p.ids[0].ts().ok() == Some(self.qms[qi].local_ts)
                && p.ids[1].ts().ok() == Some(self.qms[qi].remote_ts);
            if !ok {
                return Err(IkeError::TsUnacceptable(
                    "responder changed the client IDs".into(),
                ));
            }
        }
        Ok((suite, attrs, outbound))
    }

    /// The IPsec SA lifetime after QM2: ours, or the responder's when
    /// shorter (in the transform or a RESPONDER-LIFETIME notify).
    fn qm2_lifetime(&self, attrs: &Phase2Attrs, p: &Payloads<'_>) -> Duration {
        let mut life = self.child_lifetime();
        if let Some(s) = attrs.life_seconds {
            life = life.min(Duration::from_secs(s.max(1)));
        }
        for n in p
            .notifies
            .iter()
            .filter(|n| n.ntype == notify::RESPONDER_LIFETIME)
        {
            if let Some(s) = responder_lifetime_seconds(n.data) {
                life = life.min(Duration::from_secs(s.max(1)));
            }
        }
        life
    }

    /// Sends QM3 (HASH(3)) and keeps it to answer QM2's retransmissions.
    fn send_qm3(&mut self, ctx: &mut Ctx, qi: usize, ni: &[u8], nr: &[u8]) -> Result<(), IkeError> {
        let mid = self.qms[qi].mid;
        let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
        let mut pw = PayloadWriter::new();
        pw.push(payload::HASH, &crypto::hash3(h, &a, mid, ni, nr));
        let iv = self.qms[qi].iv.clone();
        let (m, last) = self.encrypt(wire::exchange::QUICK, 0, mid, &pw, &iv)?;
        self.send(ctx, &m);
        let q = &mut self.qms[qi];
        q.iv = last;
        q.reply = Some(m);
        q.rtx = None;
        q.nr = nr.to_vec();
        Ok(())
    }

    /// After QM2 installed the new inbound SA: wait for CONNECTED (commit
    /// bit) or a moment (a rekey), or switch the outbound SA now.
    fn qm2_switch(&mut self, ctx: &mut Ctx, qi: usize, idx: usize, commit: bool, now: Instant) {
        if commit || self.qms[qi].commit {
            // commit bit (ours in QM1 or the responder's in QM2): wait for
            // CONNECTED before sending on the new SA
            self.qms[qi].state = QmState::WaitConnected;
            self.qms[qi].until = Some(now + ctx.settings.connected_timeout);
            self.children[idx].state = ChildState::InboundOnly;
            return;
        }
        if self.qms[qi].rekey_of.is_some() && !ctx.settings.rekey_switch_delay.is_zero() {
            // A rekey: the responder installs its inbound SA only when QM3
            // arrives; the old SA pair carries the traffic meanwhile, so the
            // switch waits for the peer to send on the new pair (QM3 is not
            // acknowledged and may be lost): `SwitchWatch`.
            self.qms[qi].state = QmState::WaitConnected;
            self.qms[qi].until = Some(now + SWITCH_TICK);
            self.qms[qi].switch = Some(SwitchWatch { since: now });
            self.children[idx].state = ChildState::InboundOnly;
            return;
        }
        self.qms[qi].state = QmState::Done;
        self.qms[qi].until = Some(now + QM_KEEP);
        let inbound = self.qms[qi].inbound_spi;
        self.finish_outbound(ctx, inbound, now);
    }

    /// Keys a new IPsec SA pair (KEYMAT from SKEYID_d, the PFS secret, the
    /// SPIs and nonces), installs its inbound SA at once and keeps the
    /// outbound one for the switch (make-before-break); returns the new
    /// child's index.
    pub(super) fn install_inbound_first(
        &mut self,
        ctx: &mut Ctx,
        n: NewPair<'_>,
        now: Instant,
    ) -> usize {
        let (inbound, outbound) = n.spis;
        let (ni, nr) = n.nonces;
        let (lt, rt) = n.ts;
        let h = self.hash_alg();
        let d = self.skeyid_d().to_vec();
        let len = n.suite.encr.key_len() + n.suite.integ.key_len();
        let km_in = crypto::keymat(h, &d, n.shared, proto::ESP, inbound, ni, nr, len);
        let km_out = crypto::keymat(h, &d, n.shared, proto::ESP, outbound, ni, nr, len);
        let inb = self.sa_params(
            ctx,
            &n.suite,
            &lt,
            &rt,
            n.encap,
            inbound,
            Direction::Inbound,
            &km_in,
        );
        let out = self.sa_params(
            ctx,
            &n.suite,
            &lt,
            &rt,
            n.encap,
            outbound,
            Direction::Outbound,
            &km_out,
        );
        let child = self.new_child(
            ctx,
            inbound,
            outbound,
            n.suite,
            (lt, rt),
            n.encap,
            n.life,
            n.initiated,
            n.rekey_of,
            (ni, nr),
            now,
        );
        self.children.push(child);
        let idx = self.children.len() - 1;
        ctx.dp(DataplaneOp::InstallSa(inb));
        self.children[idx].in_installed = true;
        self.children[idx].pending_out = Some(out);
        idx
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_child(
        &self,
        ctx: &mut Ctx,
        inbound: u32,
        outbound: u32,
        suite: ChildSuite,
        (local_ts, remote_ts): (TsEntry, TsEntry),
        encap: bool,
        life: Duration,
        initiated: bool,
        replaces: Option<u32>,
        (ni, nr): (&[u8], &[u8]),
        now: Instant,
    ) -> ChildSa {
        let c = &self.conn;
        // the quick-mode initiator rekeys first; the responder only if it does not
        let margin = if initiated { c.margin } else { c.margin / 2 };
        let rekey_at =
            (c.rekey && life > margin).then(|| now + ctx.rekey_time(life, margin, c.fuzz_percent));
        ChildSa {
            inbound_spi: inbound,
            outbound_spi: outbound,
            suite,
            local_ts,
            remote_ts,
            policies: Vec::new(),
            state: ChildState::InboundOnly,
            in_installed: false,
            out_installed: false,
            pending_out: None,
            created: now,
            rekey_at,
            expire_at: now + life,
            encap,
            rekey_busy: false,
            replaces,
            delete_at: None,
            initiated,
            rekeyed_from: replaces,
            low_nonce: ni.min(nr).to_vec(),
            redundant: false,
            in_packets: None,
            watch: None,
        }
    }

    /// Installs the pending outbound SA of a child and points the policies
    /// at it; for a rekey, the old child's outbound SA goes, its inbound SA
    /// drains, and (quick-mode initiator) the peer is told to delete it. A
    /// second child made for the same old one (both ends rekeyed it at once)
    /// is a collision: [`Self::resolve_collision`].
    pub(super) fn finish_outbound(&mut self, ctx: &mut Ctx, inbound: u32, now: Instant) {
        let Some(idx) = self.children.iter().position(|c| c.inbound_spi == inbound) else {
            return;
        };
        let replaces = self.children[idx].replaces.take();
        let sibling = replaces.and_then(|o| {
            self.children.iter().position(|c| {
                c.inbound_spi != inbound
                    && c.rekeyed_from == Some(o)
                    && c.state == ChildState::Installed
                    && !c.redundant
            })
        });
        if let Some(si) = sibling {
            ctx.stats.ipsec_established += 1;
            self.resolve_collision(ctx, idx, si, now);
            if let Some(o) = replaces {
                self.delete_replaced(ctx, inbound, o, now);
            }
            return;
        }
        if let Some(out) = self.children[idx].pending_out.take() {
            ctx.dp(DataplaneOp::InstallSa(out));
            self.children[idx].out_installed = true;
        }
        self.children[idx].state = ChildState::Installed;
        ctx.stats.ipsec_established += 1;
        let old = replaces.and_then(|o| self.children.iter().position(|c| c.inbound_spi == o));
        match old {
            Some(oi) => {
                self.move_policies(ctx, oi, idx, false);
                let o = &mut self.children[oi];
                o.state = ChildState::Rekeyed;
                o.rekey_busy = false;
                let old_in = o.inbound_spi;
                self.delete_replaced(ctx, inbound, old_in, now);
            }
            None => {
                self.install_policies(ctx, idx);
                let c = &self.children[idx];
                ctx.event(Event::ChildEstablished {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                    proposal: c.suite.to_string(),
                    local_ts: vec![ts::display(&c.local_ts)],
                    remote_ts: vec![ts::display(&c.remote_ts)],
                    encap: c.encap,
                });
            }
        }
    }

    /// Moves the policies of child `from` to the outbound SA of child `to`
    /// (same ids: no gap) and removes `from`'s outbound SA (unless
    /// `keep_out`: a collision's redundant pair, which may carry the
    /// traffic again if the peer picks it).
    pub(super) fn move_policies(&mut self, ctx: &mut Ctx, from: usize, to: usize, keep_out: bool) {
        let pols = std::mem::take(&mut self.children[from].policies);
        let new_out = self.children[to].outbound_spi;
        for (id, s) in &pols {
            ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id: *id,
                tunnel_id: self.conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Protect { spi: new_out },
                priority: 100,
            }));
        }
        self.children[to].policies.extend(pols);
        let o = &mut self.children[from];
        if o.out_installed && !keep_out {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: o.outbound_spi,
                direction: Direction::Outbound,
            });
            o.out_installed = false;
        }
        ctx.event(Event::ChildRekeyed {
            sa: self.id,
            conn: self.conn.name.clone(),
            old_inbound: o.inbound_spi,
            old_outbound: o.outbound_spi,
            new_inbound: self.children[to].inbound_spi,
            new_outbound: new_out,
        });
    }

    /// The rekey initiator deletes the SA its new one (`inbound`) replaced,
    /// once (a collision brings two new SAs for one old one).
    fn delete_replaced(&mut self, ctx: &mut Ctx, inbound: u32, old_in: u32, now: Instant) {
        let initiated = self
            .children
            .iter()
            .any(|c| c.inbound_spi == inbound && c.initiated);
        let Some(oi) = self.children.iter().position(|c| c.inbound_spi == old_in) else {
            return;
        };
        if !initiated || self.children[oi].delete_at.is_some() {
            return;
        }
        if ctx.settings.rekey_switch_delay.is_zero() {
            self.delete_child_local_reason(ctx, old_in, DeleteReason::Rekeyed, now);
        } else {
            // strongSwan removes an IKEv1 SA as soon as the delete arrives:
            // packets we sent on it just before the switch must get there
            // first
            self.children[oi].delete_at = Some(now + ctx.settings.rekey_switch_delay);
        }
    }

    /// Responder: QM3 arrived (hash checked): the outbound SA goes in.
    fn qm3(&mut self, ctx: &mut Ctx, qi: usize, now: Instant) {
        let q = &mut self.qms[qi];
        q.state = QmState::Done;
        q.rtx = None;
        q.reply = None;
        q.until = Some(now + QM_KEEP);
        let (inbound, commit, mid) = (q.inbound_spi, q.commit, q.mid);
        self.finish_outbound(ctx, inbound, now);
        if commit {
            // RFC 2408 §3.1 / RFC 2409 §5.5: CONNECTED once the SA is ready
            let mut rest = PayloadWriter::new();
            rest.notify(proto::ESP, &inbound.to_be_bytes(), notify::CONNECTED, &[]);
            let (h, a) = (self.hash_alg(), self.skeyid_a().to_vec());
            let pw = self.with_hash(&rest, |b| crypto::hash1(h, &a, mid, b));
            let iv = self.qms[qi].iv.clone();
            if let Ok((m, last)) =
                self.encrypt(wire::exchange::QUICK, wire::flags::COMMIT, mid, &pw, &iv)
            {
                self.send(ctx, &m);
                self.qms[qi].iv = last;
                self.qms[qi].reply = Some(m);
            }
        }
    }
}

pub(super) fn is_udp(mode: u16) -> bool {
    matches!(
        mode,
        p2attr::MODE_UDP_TUNNEL
            | p2attr::MODE_UDP_TRANSPORT
            | p2attr::MODE_UDP_TUNNEL_DRAFT
            | p2attr::MODE_UDP_TRANSPORT_DRAFT
    )
}

/// The seconds of a RESPONDER-LIFETIME notify's attributes.
fn responder_lifetime_seconds(data: &[u8]) -> Option<u64> {
    let attrs = wire::parse_attrs(data).ok()?;
    let mut secs = false;
    for a in attrs {
        match a.atype {
            p2attr::LIFE_TYPE => secs = a.value.as_u64() == Some(1),
            p2attr::LIFE_DURATION if secs => return a.value.as_u64(),
            _ => {}
        }
    }
    None
}
