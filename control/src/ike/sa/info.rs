//! INFORMATIONAL exchanges: deletes of child and IKE SAs, liveness checks.

use super::*;

impl IkeSa {
    // ------------------------------------------------------- INFORMATIONAL

    pub(super) fn informational_request(
        &mut self,
        ctx: &mut Ctx,
        msg_id: u32,
        p: &Payloads<'_>,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        let mut ike_deleted = false;
        let mut resp_spis = Vec::new();
        for d in &p.deletes {
            if d.protocol == proto::IKE {
                ike_deleted = true;
                continue;
            }
            if d.protocol != proto::ESP {
                continue;
            }
            for spi in d.spis32() {
                let Some(i) = self.children.iter().position(|c| c.outbound_spi == spi) else {
                    continue;
                };
                resp_spis.push(self.children[i].inbound_spi);
                self.peer_deleted_child(ctx, i, now);
            }
        }
        let mut pw = PayloadWriter::new();
        if ike_deleted {
            self.respond(ctx, exchange::INFORMATIONAL, msg_id, &pw);
            self.active = None;
            self.finish_delete(ctx, DeleteReason::Peer);
            return;
        }
        if !resp_spis.is_empty() {
            pw.delete(proto::ESP, &resp_spis);
        }
        if self.state == State::Established {
            self.mobike_request(ctx, p, &mut pw, from, to, now);
        }
        self.respond(ctx, exchange::INFORMATIONAL, msg_id, &pw);
    }

    /// The peer deleted child `i` (by its outbound SPI): finish the peer's
    /// rekey if this was the old SA, drain a replaced SA, drop a collision
    /// loser, or remove a live child (reported as deleted by the peer).
    fn peer_deleted_child(&mut self, ctx: &mut Ctx, i: usize, now: Instant) {
        let st = self.children[i].state;
        match (st, self.children[i].rekeyed_by_peer) {
            (ChildState::Installed, Some(new_in)) => {
                // the peer finished its rekey: switch to the new SA now
                if let Some(ni) = self.children.iter().position(|c| c.inbound_spi == new_in) {
                    self.switch_child(ctx, i, ni, now);
                }
                let c = self.children.remove(i);
                if c.out_installed {
                    ctx.dp(DataplaneOp::RemoveSa {
                        spi: c.outbound_spi,
                        direction: Direction::Outbound,
                    });
                }
                self.drains.push((now + ctx.settings.drain, c.inbound_spi));
            }
            (ChildState::Rekeyed, _) => {
                let c = self.children.remove(i);
                self.drains.push((now + ctx.settings.drain, c.inbound_spi));
            }
            (ChildState::InboundOnly, _) => {
                // a collision loser the peer created with us: gone without ever carrying traffic
                let c = self.children.remove(i);
                if c.in_installed {
                    ctx.dp(DataplaneOp::RemoveSa {
                        spi: c.inbound_spi,
                        direction: Direction::Inbound,
                    });
                }
                ctx.free_child_spi(c.inbound_spi);
                for o in self.children.iter_mut() {
                    if o.rekeyed_by_peer == Some(c.inbound_spi) {
                        o.rekeyed_by_peer = None;
                    }
                }
            }
            (ChildState::Deleting, _) | (ChildState::Installed, None) => {
                let c = self.children.remove(i);
                let was_live = st == ChildState::Installed;
                if was_live && c.in_installed {
                    // ESP the peer sent before its DELETE may still be on
                    // its way (or queued in the dataplane): the inbound SA
                    // drains like a rekeyed one
                    self.release_policies(ctx, &c.policies, false);
                    if c.out_installed {
                        ctx.dp(DataplaneOp::RemoveSa {
                            spi: c.outbound_spi,
                            direction: Direction::Outbound,
                        });
                    }
                    self.drains.push((now + ctx.settings.drain, c.inbound_spi));
                } else {
                    self.remove_child_sas(ctx, &c, false);
                }
                if was_live {
                    ctx.event(Event::ChildDeleted {
                        sa: self.id,
                        conn: self.conn.name.clone(),
                        inbound_spi: c.inbound_spi,
                        outbound_spi: c.outbound_spi,
                        reason: DeleteReason::Peer,
                    });
                    self.replace_deleted_child(now);
                }
            }
        }
    }

    /// A fresh IKE SA of this connection has its child up: this SA (and
    /// its children) is deleted a little later.
    pub fn retire(&mut self, ctx: &mut Ctx, now: Instant) {
        // Its children's policies stay until the delete (they sort before
        // the fresh child's): switching earlier, while the peer holds both
        // children, lost datagrams against strongSwan; just before the
        // delete they go (hand_over_outbound) and both sides drop the old
        // SAs together.
        self.retire_when_empty = true;
        self.retire_at = Some(now + ctx.settings.rekey_switch_delay + ctx.settings.drain);
    }

    /// A retiring IKE SA, just before its DELETE leaves: its children's
    /// policies and outbound SAs go, so our traffic takes the fresh child's
    /// policies (installed, and the peer's inbound SA with them, since its
    /// IKE_AUTH). Sent after this, the DELETE reaches the peer behind the
    /// last ESP on the old SA; left until the DELETE's answer, the old SA
    /// carried a datagram or two the peer, which drops its old SAs when the
    /// DELETE arrives, could no longer read. The inbound SAs go with the
    /// IKE SA. (Trap connections keep theirs: their policy ids are shared.)
    pub(super) fn hand_over_outbound(&mut self, ctx: &mut Ctx) {
        if self.conn.start_action == StartAction::Trap {
            return;
        }
        for i in 0..self.children.len() {
            let pols = std::mem::take(&mut self.children[i].policies);
            for (id, _) in &pols {
                ctx.dp(DataplaneOp::RemovePolicy { id: *id });
            }
            let c = &mut self.children[i];
            if c.out_installed {
                c.out_installed = false;
                ctx.dp(DataplaneOp::RemoveSa {
                    spi: c.outbound_spi,
                    direction: Direction::Outbound,
                });
            }
        }
    }

    /// The peer deleted a live child: a connection that keeps itself up
    /// (`start`, DPD action restart) asks for a new one at once when no
    /// other child of this IKE SA carries its traffic; the hold policies
    /// keep (and count) the traffic meanwhile.
    fn replace_deleted_child(&mut self, now: Instant) {
        let keeps_up = self.conn.start_action == StartAction::Start
            || self.conn.dpd.action == DpdAction::Restart;
        if keeps_up && self.replace_child() {
            self.peer_deleted_at = Some(now);
        }
    }

    /// A child expired before its rekey started (the control loop stalled
    /// past the rekey time and the expiry): a connection that rekeys asks
    /// for a new child at once instead of leaving its traffic on hold.
    pub(super) fn replace_expired_child(&mut self) {
        if self.conn.rekey {
            self.replace_child();
        }
    }

    /// Queues a new child for the connection's selectors unless another
    /// child carries its traffic or one is being negotiated. True if queued.
    fn replace_child(&mut self) -> bool {
        let live = self
            .children
            .iter()
            .any(|c| matches!(c.state, ChildState::Installed | ChildState::InboundOnly));
        if live
            || self.retire_when_empty
            || self.state != State::Established
            || self.rekeyed_to.is_some()
            || self
                .tasks
                .iter()
                .any(|t| matches!(t, Task::CreateChild { .. }))
        {
            return false;
        }
        let (tsi, tsr) = conn_ts(&self.conn, Some(self.local.ip()), Some(self.remote.ip()));
        self.tasks.push_back(Task::CreateChild { tsi, tsr });
        true
    }

    /// Removes a child's SAs from the dataplane and releases its policies
    /// (back to trap when the connection or DPD hold wants that).
    pub(super) fn remove_child_sas(&mut self, ctx: &mut Ctx, c: &ChildSa, hold: bool) {
        // policies first: no policy may point at a removed SA
        self.release_policies(ctx, &c.policies, hold);
        if c.in_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: c.inbound_spi,
                direction: Direction::Inbound,
            });
        }
        if c.out_installed {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: c.outbound_spi,
                direction: Direction::Outbound,
            });
        }
        ctx.free_child_spi(c.inbound_spi);
    }

    pub(super) fn release_policies(
        &mut self,
        ctx: &mut Ctx,
        policies: &[(u32, TrafficSelector)],
        hold: bool,
    ) {
        let trap = hold || self.conn.start_action == StartAction::Trap;
        for (id, sel) in policies {
            if trap {
                ctx.dp(DataplaneOp::InstallPolicy(Policy {
                    id: *id,
                    tunnel_id: self.conn.tunnel_id,
                    selector: sel.clone(),
                    action: PolicyAction::Trap,
                    priority: 100,
                }));
                let e = ctx.trap_policies.entry(self.conn.name.clone()).or_default();
                if !e.iter().any(|(i, _)| i == id) {
                    e.push((*id, sel.clone()));
                }
            } else {
                ctx.dp(DataplaneOp::RemovePolicy { id: *id });
            }
        }
    }

    /// Removes every child without telling the peer (SA gone, dead, replaced).
    pub fn purge(&mut self, ctx: &mut Ctx, reason: DeleteReason) {
        let hold = matches!(reason, DeleteReason::Dead) && self.conn.dpd.action != DpdAction::Clear;
        let children = std::mem::take(&mut self.children);
        for c in children {
            self.remove_child_sas(ctx, &c, hold);
            if c.state == ChildState::Installed {
                ctx.event(Event::ChildDeleted {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    inbound_spi: c.inbound_spi,
                    outbound_spi: c.outbound_spi,
                    reason: reason.clone(),
                });
            }
        }
        for (_, spi) in std::mem::take(&mut self.drains) {
            ctx.dp(DataplaneOp::RemoveSa {
                spi,
                direction: Direction::Inbound,
            });
            ctx.free_child_spi(spi);
        }
    }

    /// Called when the SA leaves the engine.
    pub fn release(mut self, ctx: &mut Ctx) {
        if let Some(ip) = self.half_open_from.take() {
            ctx.half_open.remove(ip);
        }
        if !self.children.is_empty() || !self.drains.is_empty() {
            self.purge(ctx, DeleteReason::Local);
        }
    }

    /// The children and drains, for the IKE SA that replaces this one. A
    /// replaced child whose DELETE was queued or sent here (its answer will
    /// not come) has it sent again by the new SA at once; one still in its
    /// switch delay keeps its time.
    pub fn take_children(&mut self, now: Instant) -> (Vec<ChildSa>, Vec<(Instant, u32)>) {
        let mut children = std::mem::take(&mut self.children);
        for c in &mut children {
            if c.state == ChildState::Rekeyed && c.delete_at.is_none() {
                c.delete_at = Some(now);
            }
        }
        (children, std::mem::take(&mut self.drains))
    }

    pub fn adopt_children(&mut self, m: (Vec<ChildSa>, Vec<(Instant, u32)>)) {
        self.children.extend(m.0);
        self.drains.extend(m.1);
    }

    /// Deletes one child at the operator's request or on expiry.
    pub fn delete_child_local(&mut self, ctx: &mut Ctx, inbound: u32, now: Instant) {
        let Some(i) = self.children.iter().position(|c| c.inbound_spi == inbound) else {
            return;
        };
        if self.children[i].state == ChildState::Deleting {
            return;
        }
        let c = &mut self.children[i];
        c.state = ChildState::Deleting;
        let out = c.outbound_spi;
        let out_inst = c.out_installed;
        c.out_installed = false;
        let pols = std::mem::take(&mut c.policies);
        self.release_policies(ctx, &pols, false);
        if out_inst {
            ctx.dp(DataplaneOp::RemoveSa {
                spi: out,
                direction: Direction::Outbound,
            });
        }
        ctx.event(Event::ChildDeleted {
            sa: self.id,
            conn: self.conn.name.clone(),
            inbound_spi: inbound,
            outbound_spi: out,
            reason: DeleteReason::Local,
        });
        self.tasks.push_back(Task::DeleteChild {
            spis: vec![inbound],
            rekey: false,
        });
        self.kick(ctx, now);
    }
}
