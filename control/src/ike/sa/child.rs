//! Child SAs: proposal and traffic-selector choice, key material,
//! make-before-break installation, the responder's answer to a child
//! request. The CREATE_CHILD_SA exchange around them is `create_child`'s.

use super::*;

impl IkeSa {
    // ------------------------------------------------------- child SAs

    #[allow(clippy::too_many_arguments)]
    pub(super) fn sa_params(
        &self,
        child: &ChildSa,
        spi: u32,
        dir: Direction,
        enc: Key,
        auth: Key,
        mode: Mode,
        ctx: &mut Ctx,
    ) -> SaParams {
        let c = &self.conn;
        let life = |hard: u64, ctx: &mut Ctx| {
            if hard == 0 {
                (0, 0)
            } else {
                let pct: u64 = ctx.rng.random_range(85..=90);
                (hard / 100 * pct, hard)
            }
        };
        let (sb, hb) = life(c.life_bytes, ctx);
        let (sp, hp) = life(c.life_packets, ctx);
        let (local_sel, remote_sel) = (&child.local_ts, &child.remote_ts);
        SaParams {
            spi,
            direction: dir,
            mode,
            suite: child.suite.suite(),
            enc_key: enc,
            auth_key: auth,
            esn: child.suite.esn,
            replay_window: if dir == Direction::Inbound {
                c.replay_window
            } else {
                0
            },
            local_addr: self.local.ip(),
            remote_addr: self.remote.ip(),
            encap: child.encap.then_some(UdpEncap {
                local_port: self.local.port(),
                remote_port: self.remote.port(),
            }),
            selectors: ts::to_selectors(local_sel, remote_sel),
            lifetime: Lifetime {
                soft_bytes: sb,
                hard_bytes: hb,
                soft_packets: sp,
                hard_packets: hp,
            },
            df: DfMode::Copy,
            copy_dscp: false,
            initial_seq: 1,
            allow_legacy: c.allow_legacy,
            tunnel_id: c.tunnel_id,
        }
    }

    /// Builds the child of an exchange we initiated from the response.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_child_initiator(
        &mut self,
        ctx: &mut Ctx,
        pc: &PendingChild,
        p: &Payloads<'_>,
        ni: &[u8],
        nr: &[u8],
        in_auth: bool,
        now: Instant,
    ) -> Result<(ChildSa, Box<SaParams>, Box<SaParams>), IkeError> {
        let exch = if in_auth {
            "IKE_AUTH"
        } else {
            "CREATE_CHILD_SA"
        };
        let (outbound, suite) = self.initiator_chosen(pc, p, in_auth, exch)?;
        let shared = initiator_pfs(pc, p, suite, in_auth, exch)?;
        let (tsi, tsr) = answered_ts(pc, p, exch)?;
        let mode = self.child_mode(p);
        let keys_ = self.keys.as_ref().ok_or(IkeError::State {
            op: "child",
            state: "no keys",
        })?;
        let k = crypto::derive_child_keys(
            self.prf(),
            keys_.sk_d.bytes(),
            shared.as_deref().map(|s| &s[..]),
            ni,
            nr,
            suite.encr.key_len(),
            suite.integ.key_len(),
        );
        let mut nonce_min = ni.min(nr).to_vec();
        if nonce_min.is_empty() {
            nonce_min = ni.to_vec();
        }
        let child = self.new_child(
            ctx,
            pc.inbound_spi,
            outbound,
            suite,
            tsi,
            tsr,
            nonce_min,
            now,
        );
        let inb = Box::new(self.sa_params(
            &child,
            child.inbound_spi,
            Direction::Inbound,
            k.er,
            k.ar,
            mode,
            ctx,
        ));
        let out =
            Box::new(self.sa_params(&child, outbound, Direction::Outbound, k.ei, k.ai, mode, ctx));
        Ok((child, inb, out))
    }

    /// The ESP proposal the peer chose from our offer (one proposal, one of
    /// ours, a suite we know) and the peer's (outbound) SPI.
    fn initiator_chosen(
        &self,
        pc: &PendingChild,
        p: &Payloads<'_>,
        in_auth: bool,
        exch: &'static str,
    ) -> Result<(u32, ChildSuite), IkeError> {
        let sa = p.sa.ok_or(IkeError::Missing {
            exchange: exch,
            payload: "SA",
        })?;
        let props = peer_proposals(&sa)?;
        let [(num, proto::ESP, spi, x)] = props.as_slice() else {
            return Err(IkeError::NoProposalChosen {
                offered: "answer is not one ESP proposal".into(),
                configured: self.configured_esp().join(", "),
            });
        };
        if spi.len() != 4 || !check_chosen(&pc.offered, *num, x, in_auth) {
            return Err(IkeError::NoProposalChosen {
                offered: xforms_to_string(x, false),
                configured: self.configured_esp().join(", "),
            });
        }
        let suite = ChildSuite::from_xforms(x).ok_or_else(|| IkeError::NoProposalChosen {
            offered: xforms_to_string(x, false),
            configured: self.configured_esp().join(", "),
        })?;
        let outbound = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
        if outbound < 256 {
            return Err(IkeError::Parse(wire_err("ESP SPI", outbound as u64)));
        }
        Ok((outbound, suite))
    }

    /// Counts and reports a child refused because the peer's SPI (our
    /// outbound SPI) is held by another SA.
    pub(super) fn spi_in_use(&mut self, ctx: &mut Ctx, outbound: u32) {
        ctx.stats.child_spi_in_use += 1;
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: IkeError::SpiInUse(outbound),
        });
    }

    /// A child we initiated whose answer carries an SPI (our outbound SPI)
    /// that another SA holds: nothing is installed, and the peer is asked to
    /// delete its half (with our inbound SPI). True if `parts` was refused.
    pub(super) fn refuse_taken_spi(
        &mut self,
        ctx: &mut Ctx,
        parts: &mut Option<(ChildSa, Box<SaParams>, Box<SaParams>)>,
        old_idx: Option<usize>,
        now: Instant,
    ) -> bool {
        let Some(out) = parts.as_ref().map(|p| p.0.outbound_spi) else {
            return false;
        };
        if !ctx.outbound_spi_taken(out) {
            return false;
        }
        let Some((mut child, _, _)) = parts.take() else {
            return false;
        };
        self.spi_in_use(ctx, out);
        if let Some(i) = old_idx {
            self.children[i].rekey_busy = false;
        }
        child.state = ChildState::Deleting;
        let spi = child.inbound_spi;
        self.children.push(child);
        self.tasks.push_back(Task::DeleteChild {
            spis: vec![spi],
            rekey: false,
        });
        self.kick(ctx, now);
        true
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_child(
        &self,
        ctx: &mut Ctx,
        inbound: u32,
        outbound: u32,
        suite: ChildSuite,
        local_ts: Vec<TsEntry>,
        remote_ts: Vec<TsEntry>,
        nonce_min: Vec<u8>,
        now: Instant,
    ) -> ChildSa {
        let c = &self.conn;
        let rekey_at = c
            .rekey
            .then(|| now + ctx.rekey_time(c.child_lifetime, c.margin, c.fuzz_percent));
        ChildSa {
            inbound_spi: inbound,
            outbound_spi: outbound,
            suite,
            local_ts,
            remote_ts,
            policies: Vec::new(),
            state: ChildState::Installed,
            in_installed: false,
            out_installed: false,
            pending_out: None,
            nonce_min,
            created: now,
            rekey_at,
            expire_at: now + c.child_lifetime,
            rekeyed_by_peer: None,
            rekey_busy: false,
            encap: self.nat_local || self.nat_remote,
            degraded: false,
            delete_at: None,
        }
    }

    /// Installs both directions and the policies of a new (not rekeyed) child.
    pub(super) fn install_new_child(
        &mut self,
        ctx: &mut Ctx,
        parts: (ChildSa, Box<SaParams>, Box<SaParams>),
    ) {
        let (mut child, inb, out) = parts;
        ctx.dp(DataplaneOp::InstallSa(inb));
        ctx.dp(DataplaneOp::InstallSa(out));
        child.in_installed = true;
        child.out_installed = true;
        let sels = ts::to_selectors(&child.local_ts, &child.remote_ts);
        let traps = ctx
            .trap_policies
            .get(&self.conn.name)
            .cloned()
            .unwrap_or_default();
        for s in sels {
            let id = traps
                .iter()
                .find(|(_, t)| *t == s)
                .map(|(id, _)| *id)
                .unwrap_or_else(|| ctx.new_policy_id());
            ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id,
                tunnel_id: self.conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Protect {
                    spi: child.outbound_spi,
                },
                priority: 100,
            }));
            child.policies.push((id, s));
        }
        ctx.stats.child_established += 1;
        ctx.event(self.child_event(&child));
        if let Some(old) = self.replaces.take() {
            ctx.deferred.push(Deferred::Retire { sa: old });
        }
        if let Some(t) = self.peer_deleted_at.take() {
            ctx.event(Event::ChildReplaced {
                sa: self.id,
                conn: self.conn.name.clone(),
                gap: child.created.saturating_duration_since(t),
            });
        }
        self.children.push(child);
    }

    pub(super) fn child_event(&self, c: &ChildSa) -> Event {
        Event::ChildEstablished {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            proposal: c.suite.to_string(),
            local_ts: c.local_ts.iter().map(ts::display).collect(),
            remote_ts: c.remote_ts.iter().map(ts::display).collect(),
            encap: c.encap,
        }
    }

    /// Switches from `old` to `new` after a rekey: new outbound in, policies
    /// to the new SPI, old outbound out, old inbound drained later.
    pub(super) fn switch_child(
        &mut self,
        ctx: &mut Ctx,
        old_idx: usize,
        new_idx: usize,
        now: Instant,
    ) {
        if let Some(out) = self.children[new_idx].pending_out.take() {
            ctx.dp(DataplaneOp::InstallSa(out));
            self.children[new_idx].out_installed = true;
        }
        let new_out = self.children[new_idx].outbound_spi;
        let pols = std::mem::take(&mut self.children[old_idx].policies);
        for (id, s) in &pols {
            ctx.dp(DataplaneOp::InstallPolicy(Policy {
                id: *id,
                tunnel_id: self.conn.tunnel_id,
                selector: s.clone(),
                action: PolicyAction::Protect { spi: new_out },
                priority: 100,
            }));
        }
        self.children[new_idx].policies = pols;
        self.children[new_idx].state = ChildState::Installed;
        let old = &mut self.children[old_idx];
        if old.out_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: old.outbound_spi,
                direction: Direction::Outbound,
            });
            old.out_installed = false;
        }
        ctx.stats.child_established += 1;
        ctx.event(Event::ChildRekeyed {
            sa: self.id,
            conn: self.conn.name.clone(),
            old_inbound: old.inbound_spi,
            old_outbound: old.outbound_spi,
            new_inbound: self.children[new_idx].inbound_spi,
            new_outbound: new_out,
        });
        let _ = now;
    }

    /// Chooses and installs a child SA for a request; writes the answer's
    /// payloads (or an error notify) to `pw`. `nr_auth` is the IKE_SA_INIT
    /// nonce when called from IKE_AUTH.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn responder_child(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        ni: &[u8],
        nr_auth: Option<&[u8]>,
        in_auth: bool,
        rekey_of: Option<usize>,
        pw: &mut PayloadWriter,
        now: Instant,
    ) -> bool {
        let (Some(sa), Some(tsi), Some(tsr)) = (p.sa, p.tsi.as_ref(), p.tsr.as_ref()) else {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            return false;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                return false;
            }
        };
        let chosen = self.choose_child_proposal(&props, in_auth, self.conn.pfs);
        let Some((num, outbound, suite, m)) = chosen else {
            // Only PFS stands between the proposals: the peer's carry no DH
            // group (no KE) and ours require one. Say so in words.
            let no_pfs = !in_auth
                && self.conn.pfs
                && self
                    .choose_child_proposal(&props, in_auth, false)
                    .is_some_and(|(_, _, s, _)| s.dh.is_none());
            if no_pfs {
                self.pfs_refused(ctx, rekey_of, now);
            } else {
                self.esp_mismatch(ctx, &props);
            }
            pw.notify(0, &[], notify::NO_PROPOSAL_CHOSEN, &[]);
            return false;
        };
        if outbound < 256 {
            pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
            return false;
        }
        if ctx.outbound_spi_taken(outbound) {
            // Installing it would replace another tunnel's outbound SA (the
            // dataplane finds those by SPI): refuse the proposal that
            // carries the SPI, as for any proposal we cannot accept.
            self.spi_in_use(ctx, outbound);
            pw.notify(0, &[], notify::NO_PROPOSAL_CHOSEN, &[]);
            return false;
        }
        let Some((dh_priv, shared)) = responder_dh(ctx, p, suite, in_auth, pw) else {
            return false;
        };
        let Some((n_tsi, n_tsr)) = self.responder_ts(ctx, tsi, tsr, rekey_of, pw) else {
            return false;
        };
        let nr: Vec<u8> = match nr_auth {
            Some(n) => n.to_vec(),
            None => ctx.random_bytes(32),
        };
        let Some(keys) = &self.keys else { return false };
        let k = crypto::derive_child_keys(
            self.prf(),
            keys.sk_d.bytes(),
            shared.as_deref().map(|s| &s[..]),
            ni,
            &nr,
            suite.encr.key_len(),
            suite.integ.key_len(),
        );
        let mode = self.child_mode(p);
        let inbound = ctx.new_child_spi();
        let nonce_min = ni.min(&nr[..]).to_vec();
        // our local selectors are the narrowed TSr, remote the narrowed TSi
        let mut child = self.new_child(
            ctx,
            inbound,
            outbound,
            suite,
            n_tsr.clone(),
            n_tsi.clone(),
            nonce_min,
            now,
        );
        let inb =
            Box::new(self.sa_params(&child, inbound, Direction::Inbound, k.ei, k.ai, mode, ctx));
        let out =
            Box::new(self.sa_params(&child, outbound, Direction::Outbound, k.er, k.ar, mode, ctx));
        let answer = ChildAnswer {
            num,
            inbound,
            xforms: &m,
            nr: (!in_auth).then_some(&nr[..]),
            dh: dh_priv.as_ref(),
            tsi: &n_tsi,
            tsr: &n_tsr,
            mode,
        };
        answer.write(pw);
        match rekey_of {
            Some(i) => {
                ctx.dp(DataplaneOp::InstallSa(inb));
                child.in_installed = true;
                child.pending_out = Some(out);
                child.state = ChildState::InboundOnly;
                self.children[i].rekeyed_by_peer = Some(inbound);
                self.children.push(child);
            }
            None => self.install_new_child(ctx, (child, inb, out)),
        }
        true
    }

    /// The peer's CREATE_CHILD_SA (a rekey of child `rekey_of`, or a new
    /// child) carries no KE and this connection requires PFS: the refusal
    /// is reported in words and, for a rekey, espresso rekeys the child
    /// itself with PFS at once (the peer may accept that).
    fn pfs_refused(&mut self, ctx: &mut Ctx, rekey_of: Option<usize>, now: Instant) {
        ctx.event(Event::ChildFailed {
            sa: self.id,
            conn: self.conn.name.clone(),
            error: IkeError::PfsRequired,
        });
        let Some(i) = rekey_of else { return };
        let fallback = self.degraded_fallback_next();
        let retiring = self.retire_when_empty;
        let c = &mut self.children[i];
        let next = if retiring {
            // a fresh IKE SA is being (or was) negotiated already
            DegradedNext::FreshChild
        } else if c.rekey_busy {
            // ours is under way already: its answer decides
            DegradedNext::OwnRekey
        } else if self.conn.rekey && !c.degraded {
            c.rekey_at = Some(now);
            DegradedNext::OwnRekey
        } else {
            fallback
        };
        c.degraded = true;
        let (inbound, expires) = (c.inbound_spi, c.expire_at);
        ctx.event(Event::ChildDegraded {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: inbound,
            reason: IkeError::PfsRequired.to_string(),
            expires,
            next,
        });
        if next == DegradedNext::FreshChild {
            self.reestablish(ctx);
        }
    }

    /// What a degraded child's connection does when no rekey is possible:
    /// a `start` connection (or one whose DPD action is restart) negotiates
    /// a fresh IKE SA and child; others let the child expire.
    fn degraded_fallback_next(&self) -> DegradedNext {
        let initiates = self.conn.start_action == StartAction::Start
            || self.conn.dpd.action == DpdAction::Restart;
        if initiates && self.conn.remote_addr != crate::ike::config::RemoteAddr::Any {
            DegradedNext::FreshChild
        } else {
            DegradedNext::TrafficStops
        }
    }

    /// A fresh IKE SA and child for this connection, next to this one
    /// (which is deleted once its last child has expired).
    pub(super) fn reestablish(&mut self, ctx: &mut Ctx) {
        if self.retire_when_empty {
            return;
        }
        self.retire_when_empty = true;
        ctx.deferred.push(Deferred::Reestablish {
            conn: self.conn.clone(),
            since: self.peer_deleted_at.take(),
            old: self.id,
        });
    }

    /// Our rekey of child `i` was refused with NO_PROPOSAL_CHOSEN: with
    /// PFS required, the peer wants none; the child runs until it expires
    /// and the connection's fallback (fresh child or expiry) is reported.
    pub(super) fn own_rekey_refused(&mut self, ctx: &mut Ctx, i: usize) {
        let next = self.degraded_fallback_next();
        let c = &mut self.children[i];
        c.degraded = true;
        c.rekey_at = None;
        let (inbound, expires) = (c.inbound_spi, c.expire_at);
        let error = if self.conn.pfs {
            IkeError::PfsRefusedByPeer
        } else {
            IkeError::PeerError {
                code: notify::NO_PROPOSAL_CHOSEN,
                name: notify::name(notify::NO_PROPOSAL_CHOSEN),
            }
        };
        ctx.event(Event::ChildDegraded {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: inbound,
            reason: error.to_string(),
            expires,
            next,
        });
        if next == DegradedNext::FreshChild {
            self.reestablish(ctx);
        }
    }

    /// Transport mode when configured and the peer asked for it too
    /// (USE_TRANSPORT_MODE), else tunnel mode.
    fn child_mode(&self, p: &Payloads<'_>) -> Mode {
        if self.conn.mode == Mode::Transport && p.notify(notify::USE_TRANSPORT_MODE).is_some() {
            Mode::Transport
        } else {
            Mode::Tunnel
        }
    }

    /// Reports that none of the peer's ESP proposals matches ours.
    fn esp_mismatch(&self, ctx: &mut Ctx, props: &[PeerProposal]) {
        ctx.event(Event::ProposalMismatch {
            conn: self.conn.name.clone(),
            kind: "ESP",
            peer: self.remote,
            offered: props
                .iter()
                .map(|(_, _, _, x)| xforms_to_string(x, false))
                .collect(),
            configured: self.configured_esp(),
            local_responder: true,
        });
    }

    /// The peer's traffic selectors narrowed to ours (the rekeyed child's
    /// when `rekey_of`); `None`: nothing is left, TS_UNACCEPTABLE is written.
    fn responder_ts(
        &self,
        ctx: &mut Ctx,
        tsi: &[TsEntry],
        tsr: &[TsEntry],
        rekey_of: Option<usize>,
        pw: &mut PayloadWriter,
    ) -> Option<(Vec<TsEntry>, Vec<TsEntry>)> {
        let (cfg_local, cfg_remote) = match rekey_of {
            Some(i) => (
                self.children[i].local_ts.clone(),
                self.children[i].remote_ts.clone(),
            ),
            None => conn_ts(&self.conn, Some(self.local.ip()), Some(self.remote.ip())),
        };
        let n_tsi = ts::narrow(tsi, &cfg_remote);
        let n_tsr = ts::narrow(tsr, &cfg_local);
        if n_tsi.is_empty() || n_tsr.is_empty() {
            ctx.event(Event::ChildFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                error: IkeError::TsUnacceptable(format!(
                    "peer proposed TSi {:?} TSr {:?}; configured remote {:?} local {:?}",
                    tsi.iter().map(ts::display).collect::<Vec<_>>(),
                    tsr.iter().map(ts::display).collect::<Vec<_>>(),
                    cfg_remote.iter().map(ts::display).collect::<Vec<_>>(),
                    cfg_local.iter().map(ts::display).collect::<Vec<_>>()
                )),
            });
            pw.notify(0, &[], notify::TS_UNACCEPTABLE, &[]);
            return None;
        }
        Some((n_tsi, n_tsr))
    }

    /// The first of our ESP proposals (in our order) that one of the peer's
    /// offers matches: its proposal number, the peer's SPI, the suite and
    /// the chosen transforms. With PFS configured our proposals carry the
    /// IKE SA's group when they name none; without, PFS is accepted anyway
    /// when the peer asks for it (as Openswan does: there is no reason to
    /// refuse PFS). `in_auth`: IKE_AUTH, where DH is not negotiated.
    fn choose_child_proposal(
        &self,
        props: &[PeerProposal],
        in_auth: bool,
        pfs: bool,
    ) -> Option<(u8, u32, ChildSuite, Vec<Xform>)> {
        let ike_dh = self.suite.map(|s| s.dh);
        // A peer's PFS group where our ESP proposal names none: the IKE SA's
        // group first, then every other group IKEv2 proposals may name
        // (strongSwan's `esp_proposals = aes128-sha256-modp3072` under an
        // ecp256 IKE SA); MODP-1024 as before, the other legacy ones not.
        let any_group = || {
            ike_dh.into_iter().chain(
                espresso_core::alg::ike::DH_TABLE
                    .iter()
                    .filter(|r| r.ikev2 && (!r.legacy || r.group == DhGroup::Modp1024))
                    .map(|r| r.group)
                    .filter(move |g| Some(*g) != ike_dh),
            )
        };
        for ours in &self.conn.esp_proposals {
            let mut o = ours.clone();
            if o.dh.is_empty() && pfs {
                o.dh.extend(any_group());
            }
            let mut ox = o.xforms(true);
            if !pfs {
                ox.push(Xform {
                    ttype: ttype::DH,
                    id: 0,
                    key_len: None,
                });
                for g in any_group().filter(|g| !o.dh.contains(g)) {
                    ox.push(Xform {
                        ttype: ttype::DH,
                        id: g.number(),
                        key_len: None,
                    });
                }
            }
            for (num, prot, spi, x) in props {
                if *prot != proto::ESP || spi.len() != 4 {
                    continue;
                }
                let Some(m) = match_xforms(&ox, x, in_auth) else {
                    continue;
                };
                let Some(s) = ChildSuite::from_xforms(&m) else {
                    continue;
                };
                if s.suite().validate(self.conn.allow_legacy).is_ok() {
                    let spi = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
                    return Some((*num, spi, s, m));
                }
            }
        }
        None
    }
}

/// The responder's side of a child SA's PFS exchange: with a DH group chosen
/// (and not in IKE_AUTH), the peer's KE must be of that group; our private
/// value and the shared secret come back. `None`: an error notify was
/// written to `pw` (INVALID_KE_PAYLOAD names the group we want).
#[allow(clippy::type_complexity)]
fn responder_dh(
    ctx: &mut Ctx,
    p: &Payloads<'_>,
    suite: ChildSuite,
    in_auth: bool,
    pw: &mut PayloadWriter,
) -> Option<(Option<DhPrivate>, Option<crypto::Secret>)> {
    let (Some(g), false) = (suite.dh, in_auth) else {
        return Some((None, None));
    };
    match p.ke {
        Some(ke) if ke.group == g.number() => {
            let d = DhPrivate::generate(g, &mut ctx.rng);
            match d.shared(ke.data) {
                Ok(s) => Some((Some(d), Some(s))),
                Err(_) => {
                    pw.notify(0, &[], notify::INVALID_SYNTAX, &[]);
                    None
                }
            }
        }
        _ => {
            pw.notify(
                0,
                &[],
                notify::INVALID_KE_PAYLOAD,
                &g.number().to_be_bytes(),
            );
            None
        }
    }
}

/// The initiator's side of a child SA's PFS exchange: the shared secret when
/// the peer chose the DH group we offered (outside IKE_AUTH).
fn initiator_pfs(
    pc: &PendingChild,
    p: &Payloads<'_>,
    suite: ChildSuite,
    in_auth: bool,
    exch: &'static str,
) -> Result<Option<crypto::Secret>, IkeError> {
    Ok(match (suite.dh, &pc.dh) {
        (Some(g), Some(dh)) if !in_auth => {
            let ke = p.ke.ok_or(IkeError::Missing {
                exchange: exch,
                payload: "KE",
            })?;
            if ke.group != g.number() || dh.group() != g {
                return Err(IkeError::KeyExchange(
                    "KE group differs from the chosen proposal",
                ));
            }
            Some(dh.shared(ke.data)?)
        }
        (Some(_), _) if !in_auth => {
            return Err(IkeError::KeyExchange("peer chose PFS we did not offer"))
        }
        _ => None,
    })
}

/// The traffic selectors of the peer's answer, each within what we proposed.
fn answered_ts(
    pc: &PendingChild,
    p: &Payloads<'_>,
    exch: &'static str,
) -> Result<(Vec<TsEntry>, Vec<TsEntry>), IkeError> {
    let tsi = p.tsi.clone().ok_or(IkeError::Missing {
        exchange: exch,
        payload: "TSi",
    })?;
    let tsr = p.tsr.clone().ok_or(IkeError::Missing {
        exchange: exch,
        payload: "TSr",
    })?;
    if !ts::all_within(&tsi, &pc.tsi) || !ts::all_within(&tsr, &pc.tsr) {
        return Err(IkeError::TsUnacceptable(format!(
            "peer answered TSi {:?} TSr {:?}, wider than proposed",
            tsi.iter().map(ts::display).collect::<Vec<_>>(),
            tsr.iter().map(ts::display).collect::<Vec<_>>()
        )));
    }
    Ok((tsi, tsr))
}

/// The payloads of a responder's child SA answer: the chosen proposal with
/// our inbound SPI, Nr (not in IKE_AUTH), KE with PFS, the narrowed
/// selectors, USE_TRANSPORT_MODE when agreed.
struct ChildAnswer<'a> {
    num: u8,
    inbound: u32,
    xforms: &'a [Xform],
    nr: Option<&'a [u8]>,
    dh: Option<&'a DhPrivate>,
    tsi: &'a [TsEntry],
    tsr: &'a [TsEntry],
    mode: Mode,
}

impl ChildAnswer<'_> {
    fn write(&self, pw: &mut PayloadWriter) {
        sa_payload_one(
            pw,
            self.num,
            proto::ESP,
            &self.inbound.to_be_bytes(),
            self.xforms,
        );
        if let Some(nr) = self.nr {
            pw.nonce(nr);
        }
        if let Some(d) = self.dh {
            pw.ke(d.group().number(), d.public());
        }
        pw.ts(payload::TSI, self.tsi);
        pw.ts(payload::TSR, self.tsr);
        if self.mode == Mode::Transport {
            pw.notify(0, &[], notify::USE_TRANSPORT_MODE, &[]);
        }
    }
}
