//! IKE SA rekeying (CREATE_CHILD_SA with an IKE proposal), both roles and collisions.

use super::*;

impl IkeSa {
    // ---------------------------------------------------------- IKE rekey

    pub(super) fn start_ike_rekey(
        &mut self,
        ctx: &mut Ctx,
        group: Option<DhGroup>,
        ke_retries: u32,
        now: Instant,
    ) {
        let Some(suite) = self.suite else { return };
        let g = group.unwrap_or(suite.dh);
        let dh = DhPrivate::generate(g, &mut ctx.rng);
        let new_spi = ctx.new_ike_spi();
        let ni = ctx.random_bytes(32);
        let offered: Vec<Vec<Xform>> = self.conn.ike_proposals.iter().map(|p| p.xforms()).collect();
        let mut pw = PayloadWriter::new();
        sa_payload(&mut pw, proto::IKE, &new_spi.to_be_bytes(), &offered);
        pw.nonce(&ni);
        pw.ke(dh.group().number(), dh.public());
        self.send_request(
            ctx,
            now,
            exchange::CREATE_CHILD_SA,
            pw,
            ActiveKind::RekeyIke {
                new_spi,
                ni,
                dh,
                offered,
                ke_retries,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn rekeyed_sa(
        &self,
        ctx: &mut Ctx,
        initiator: bool,
        spi_i: u64,
        spi_r: u64,
        suite: IkeSuite,
        keys: IkeKeys,
        now: Instant,
    ) -> Result<IkeSa, IkeError> {
        let id = if initiator { spi_i } else { spi_r };
        let mut n = IkeSa::blank(
            self.conn.clone(),
            initiator,
            id,
            spi_i,
            spi_r,
            self.local,
            self.remote,
            now,
        );
        n.nat_local = self.nat_local;
        n.nat_remote = self.nat_remote;
        n.remote_id = self.remote_id.clone();
        // what IKE_SA_INIT negotiated carries over to the rekeyed SA (RFC 7383 §2.5.3)
        n.frag = self.frag;
        n.mobike = self.mobike;
        n.peer_hashes = self.peer_hashes.clone();
        n.peer_auth = self.peer_auth.clone();
        n.set_keys(&suite, keys)?;
        n.state = State::Established;
        let c = self.conn.clone();
        if c.rekey {
            n.rekey_at = Some(now + ctx.rekey_time(c.ike_lifetime, c.margin, c.fuzz_percent));
        }
        n.expire_at = Some(now + c.ike_lifetime);
        n.keepalive_at = self.keepalive_at;
        Ok(n)
    }

    pub(super) fn ike_rekey_request(
        &mut self,
        ctx: &mut Ctx,
        msg_id: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        let mut pw = PayloadWriter::new();
        let reply_err =
            |s: &mut Self, ctx: &mut Ctx, pw: &mut PayloadWriter, code: u16, data: &[u8]| {
                pw.notify(0, &[], code, data);
                s.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, pw);
            };
        // RFC 7296 §2.25.2: refuse (TEMPORARY_FAILURE) while a child is
        // being rekeyed by the peer or closed. A child we replaced whose
        // DELETE still waits for the switch delay is not being closed yet:
        // it moves to the new IKE SA with its timer, which sends the DELETE
        // there (refusing it made every peer IKE rekey in the second after
        // a child rekey fail).
        if self.rekeyed_to.is_some()
            || self.state != State::Established
            || self.children.iter().any(|c| match c.state {
                ChildState::Installed => false,
                ChildState::Rekeyed => c.delete_at.is_none(),
                ChildState::InboundOnly | ChildState::Deleting => true,
            })
        {
            reply_err(self, ctx, &mut pw, notify::TEMPORARY_FAILURE, &[]);
            return;
        }
        let (Some(sa), Some(ke), Some(ni)) = (p.sa, p.ke, p.nonce) else {
            reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
            return;
        };
        let props = match peer_proposals(&sa) {
            Ok(v) => v,
            Err(_) => {
                reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
                return;
            }
        };
        let chosen = self.choose_rekey_proposal(&props);
        let Some((num, peer_spi, suite)) = chosen else {
            super::init::ike_mismatch(ctx, &self.conn, self.remote, &props);
            reply_err(self, ctx, &mut pw, notify::NO_PROPOSAL_CHOSEN, &[]);
            return;
        };
        if ke.group != suite.dh.number() {
            reply_err(
                self,
                ctx,
                &mut pw,
                notify::INVALID_KE_PAYLOAD,
                &suite.dh.number().to_be_bytes(),
            );
            return;
        }
        let dh = DhPrivate::generate(suite.dh, &mut ctx.rng);
        let Ok(shared) = dh.shared(ke.data) else {
            reply_err(self, ctx, &mut pw, notify::INVALID_SYNTAX, &[]);
            return;
        };
        let Some(old) = &self.keys else { return };
        let nr = ctx.random_bytes(32);
        let my_spi = ctx.new_ike_spi();
        let keys = crypto::derive_ike_keys(
            &suite,
            Some((self.prf(), old.sk_d.bytes())),
            &shared,
            ni,
            &nr,
            peer_spi,
            my_spi,
        );
        let Ok(new_sa) = self.rekeyed_sa(ctx, false, peer_spi, my_spi, suite, keys, now) else {
            return;
        };
        sa_payload_one(
            &mut pw,
            num,
            proto::IKE,
            &my_spi.to_be_bytes(),
            &suite.xforms(),
        );
        pw.nonce(&nr);
        pw.ke(suite.dh.number(), dh.public());
        self.respond(ctx, exchange::CREATE_CHILD_SA, msg_id, &pw);
        ctx.deferred.push(Deferred::Insert(Box::new(new_sa)));
        self.peer_ike_rekey = Some((my_spi, ni.min(&nr[..]).to_vec()));
        if !matches!(
            self.active.as_ref().map(|a| &a.kind),
            Some(ActiveKind::RekeyIke { .. })
        ) {
            self.rekeyed_to = Some(my_spi);
        }
    }

    /// The peer answered our IKE SA rekey with an error notify: retry with
    /// the DH group it asks for (twice at most), retry later
    /// (TEMPORARY_FAILURE), or give the rekey up.
    fn ike_rekey_refused(
        &mut self,
        ctx: &mut Ctx,
        code: u16,
        p: &Payloads<'_>,
        ke_retries: u32,
        now: Instant,
    ) {
        match code {
            notify::INVALID_KE_PAYLOAD if ke_retries < 2 => {
                let g = p
                    .notify(code)
                    .and_then(|n| be16(n.data))
                    .and_then(DhGroup::from_number);
                if let Some(g) = g {
                    self.rekey_busy = true;
                    self.start_ike_rekey(ctx, Some(g), ke_retries + 1, now);
                    return;
                }
            }
            notify::TEMPORARY_FAILURE => {
                // well before the IKE SA expires (with a short lifetime a
                // wait of up to 10 s let it expire: the connection died)
                self.rekey_at = Some(now + retry_wait(ctx, self.expire_at, now));
                return;
            }
            notify::NO_PROPOSAL_CHOSEN => ctx.event(Event::ProposalMismatch {
                conn: self.conn.name.clone(),
                kind: "IKE",
                peer: self.remote,
                offered: vec!["? (peer answered NO_PROPOSAL_CHOSEN)".into()],
                configured: self.configured_ike(),
                local_responder: false,
            }),
            _ => {}
        }
        self.rekey_at = None;
    }

    /// The first of our IKE proposals (in our order) one of the peer's
    /// rekey proposals (with an 8-byte SPI) matches: its number, the peer's
    /// new SPI and the suite.
    fn choose_rekey_proposal(&self, props: &[PeerProposal]) -> Option<(u8, u64, IkeSuite)> {
        for ours in &self.conn.ike_proposals {
            for (num, prot, spi, x) in props {
                if *prot != proto::IKE || spi.len() != 8 {
                    continue;
                }
                if let Some(m) = match_xforms(&ours.xforms(), x, false) {
                    if let Some(s) = IkeSuite::from_xforms(&m) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(spi);
                        return Some((*num, u64::from_be_bytes(b), s));
                    }
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn ike_rekey_response(
        &mut self,
        ctx: &mut Ctx,
        new_spi: u64,
        ni: Vec<u8>,
        dh: DhPrivate,
        offered: Vec<Vec<Xform>>,
        ke_retries: u32,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        self.rekey_busy = false;
        if let Some(code) = p.error_notify() {
            self.ike_rekey_refused(ctx, code, p, ke_retries, now);
            return;
        }
        let parsed = rekey_answer(p, &offered, &dh);
        let (peer_spi, suite, nr, shared) = match parsed {
            Ok(v) => v,
            Err(e) => {
                ctx.event(Event::ChildFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    error: e,
                });
                self.rekey_at = None;
                return;
            }
        };
        let Some(old) = &self.keys else { return };
        let keys = crypto::derive_ike_keys(
            &suite,
            Some((self.prf(), old.sk_d.bytes())),
            &shared,
            &ni,
            &nr,
            new_spi,
            peer_spi,
        );
        let Ok(new_sa) = self.rekeyed_sa(ctx, true, new_spi, peer_spi, suite, keys, now) else {
            return;
        };
        ctx.deferred.push(Deferred::Insert(Box::new(new_sa)));
        let our_min = ni.min(nr).to_vec();
        match self.peer_ike_rekey.take() {
            Some((peer_new, peer_min)) if our_min < peer_min => {
                // collision, ours lost: delete our new SA, the peer deletes the old one
                ctx.deferred.push(Deferred::Task {
                    sa: new_spi,
                    task: Task::DeleteIke,
                });
                self.rekeyed_to = Some(peer_new);
            }
            _ => {
                self.rekeyed_to = Some(new_spi);
                self.tasks.push_front(Task::DeleteIke);
            }
        }
    }
}

/// The peer's answer to our IKE SA rekey: its new SPI, the suite it chose
/// from our offer, Nr and the shared DH secret.
fn rekey_answer(
    p: &Payloads<'_>,
    offered: &[Vec<Xform>],
    dh: &DhPrivate,
) -> Result<(u64, IkeSuite, Vec<u8>, crypto::Secret), IkeError> {
    let sa = p.sa.ok_or(IkeError::Missing {
        exchange: "CREATE_CHILD_SA",
        payload: "SA",
    })?;
    let ke = p.ke.ok_or(IkeError::Missing {
        exchange: "CREATE_CHILD_SA",
        payload: "KE",
    })?;
    let nr = p.nonce.ok_or(IkeError::Missing {
        exchange: "CREATE_CHILD_SA",
        payload: "Nr",
    })?;
    let props = peer_proposals(&sa)?;
    let [(num, proto::IKE, spi, x)] = props.as_slice() else {
        return Err(IkeError::NoProposalChosen {
            offered: "not one IKE proposal".into(),
            configured: String::new(),
        });
    };
    if spi.len() != 8 || !check_chosen(offered, *num, x, false) {
        return Err(IkeError::NoProposalChosen {
            offered: xforms_to_string(x, true),
            configured: String::new(),
        });
    }
    let suite = IkeSuite::from_xforms(x).ok_or(IkeError::KeyExchange("bad suite"))?;
    if ke.group != suite.dh.number() || dh.group() != suite.dh {
        return Err(IkeError::KeyExchange(
            "KE group differs from the chosen proposal",
        ));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(spi);
    Ok((
        u64::from_be_bytes(b),
        suite,
        nr.to_vec(),
        dh.shared(ke.data)?,
    ))
}
