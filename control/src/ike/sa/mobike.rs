//! MOBIKE (RFC 4555): the IKE SA and its child SAs move to new addresses
//! without a new key exchange. As responder: UPDATE_SA_ADDRESSES from the
//! peer's new address (with NAT detection), a return routability check
//! (COOKIE2, §3.5 and §5.2), then the child SAs follow in the dataplane (same
//! SPIs and keys; the outer addresses and UDP encapsulation change). As
//! initiator: our own address changed, we send UPDATE_SA_ADDRESSES from it.

use std::net::IpAddr;

use super::init::nat_detect;
use super::*;

/// Length of our COOKIE2 (RFC 4555 §3.8 allows 8..=64 bytes).
const COOKIE2_LEN: usize = 16;

impl IkeSa {
    /// Both ends announced MOBIKE_SUPPORTED.
    pub fn mobike(&self) -> bool {
        self.mobike
    }

    /// Notifies of MOBIKE in an INFORMATIONAL request of the peer: the
    /// address list is stored, UPDATE_SA_ADDRESSES moves the IKE SA to the
    /// addresses the request came `from` and went `to` and starts a return
    /// routability check; a COOKIE2 is echoed. Writes the answer's notifies.
    pub(super) fn mobike_request(
        &mut self,
        ctx: &mut Ctx,
        p: &Payloads<'_>,
        pw: &mut PayloadWriter,
        from: SocketAddr,
        to: SocketAddr,
        now: Instant,
    ) {
        if let Some(c) = p.notify(notify::COOKIE2) {
            // §3.8: echoed in the response, whether or not we use MOBIKE
            pw.notify(0, &[], notify::COOKIE2, c.data);
        }
        if !self.mobike {
            // not negotiated: MOBIKE notifies are ignored (§3.3)
            return;
        }
        self.store_peer_addresses(p);
        if p.notify(notify::UPDATE_SA_ADDRESSES).is_none() || self.initiator {
            // only the initiator of the IKE SA moves it (§3.5): from the
            // responder the notify is ignored
            return;
        }
        let nat = nat_detect(p, self.spi_i, self.spi_r, from, to);
        if let Some((nat_local, nat_remote)) = nat {
            if (nat_local || nat_remote) && p.notify(notify::NO_NATS_ALLOWED).is_some() {
                // §3.9: the peer forbids NATs between its addresses and ours
                pw.notify(0, &[], notify::UNEXPECTED_NAT_DETECTED, &[]);
                ctx.event(Event::AddressUpdateFailed {
                    sa: self.id,
                    conn: self.conn.name.clone(),
                    reason: format!("UPDATE_SA_ADDRESSES from {from}: a NAT is in the path but the peer sent NO_NATS_ALLOWED"),
                });
                return;
            }
            self.nat_remote = nat_remote;
            self.nat_local = nat_local || self.conn.force_encap;
            self.write_nat_detection(ctx, pw, from, to);
        }
        self.local = to;
        self.remote = from;
        self.keepalive_at = self.nat_local.then(|| now + ctx.settings.keepalive);
        // §5.2: the child SAs follow once the peer answered at the new
        // address (a queued check for an older address is replaced)
        self.tasks
            .retain(|t| !matches!(t, Task::CheckRoutability | Task::UpdateAddresses { .. }));
        self.tasks.push_back(Task::CheckRoutability);
    }

    fn store_peer_addresses(&mut self, p: &Payloads<'_>) {
        let mut list: Vec<IpAddr> = Vec::new();
        let mut any = false;
        for n in &p.notifies {
            match n.ntype {
                notify::ADDITIONAL_IP4_ADDRESS => {
                    any = true;
                    if let Ok(b) = <[u8; 4]>::try_from(n.data) {
                        list.push(IpAddr::from(b));
                    }
                }
                notify::ADDITIONAL_IP6_ADDRESS => {
                    any = true;
                    if let Ok(b) = <[u8; 16]>::try_from(n.data) {
                        list.push(IpAddr::from(b));
                    }
                }
                notify::NO_ADDITIONAL_ADDRESSES => any = true,
                _ => {}
            }
        }
        if any {
            self.peer_addresses = list;
        }
    }

    /// Starts the return routability check (an INFORMATIONAL with COOKIE2
    /// to the peer's current address).
    pub(super) fn start_routability_check(&mut self, ctx: &mut Ctx, now: Instant) {
        let cookie = ctx.random_bytes(COOKIE2_LEN);
        let mut pw = PayloadWriter::new();
        pw.notify(0, &[], notify::COOKIE2, &cookie);
        let (local, remote) = (self.local, self.remote);
        self.send_request(
            ctx,
            now,
            exchange::INFORMATIONAL,
            pw,
            ActiveKind::Routability {
                cookie,
                local,
                remote,
            },
        );
    }

    /// The answer to our return routability check: with our COOKIE2 echoed
    /// and the addresses unchanged since, the child SAs move.
    pub(super) fn routability_response(
        &mut self,
        ctx: &mut Ctx,
        cookie: &[u8],
        checked: (SocketAddr, SocketAddr),
        p: &Payloads<'_>,
    ) {
        if p.notify(notify::COOKIE2).map(|n| n.data) != Some(cookie) {
            ctx.drop(IkeDrop::Invalid);
            ctx.event(Event::AddressUpdateFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason: format!(
                    "the return routability check to {} was answered without our COOKIE2",
                    checked.1
                ),
            });
            return;
        }
        if (self.local, self.remote) != checked {
            // the peer moved again: the check of the newer address is queued
            return;
        }
        self.move_children(ctx);
    }

    /// Moves every installed child SA to the IKE SA's addresses, with UDP
    /// encapsulation when a NAT is in the path.
    pub(super) fn move_children(&mut self, ctx: &mut Ctx) {
        let encap = self.nat_local || self.nat_remote;
        let (local, remote) = (self.local, self.remote);
        let udp = encap.then_some(UdpEncap {
            local_port: local.port(),
            remote_port: remote.port(),
        });
        let mut moved = 0;
        for c in self.children.iter_mut() {
            c.encap = encap;
            if let Some(p) = c.pending_out.as_mut() {
                p.local_addr = local.ip();
                p.remote_addr = remote.ip();
                p.encap = udp;
            }
            for (spi, dir, on) in [
                (c.inbound_spi, Direction::Inbound, c.in_installed),
                (c.outbound_spi, Direction::Outbound, c.out_installed),
            ] {
                if on {
                    ctx.dp(DataplaneOp::MoveSa {
                        spi,
                        direction: dir,
                        local_addr: local.ip(),
                        remote_addr: remote.ip(),
                        encap: udp,
                    });
                }
            }
            moved += 1;
        }
        // replaced SAs still draining receive at the new addresses too
        for (_, spi) in &self.drains {
            ctx.dp(DataplaneOp::MoveSa {
                spi: *spi,
                direction: Direction::Inbound,
                local_addr: local.ip(),
                remote_addr: remote.ip(),
                encap: udp,
            });
        }
        ctx.event(Event::AddressesUpdated {
            sa: self.id,
            conn: self.conn.name.clone(),
            local,
            remote,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
            children: moved,
        });
    }

    /// Our address changed (initiator of the update, §3.5): queues an
    /// UPDATE_SA_ADDRESSES from `local` (the port stays ours).
    pub fn update_local_address(
        &mut self,
        ctx: &mut Ctx,
        local: IpAddr,
        now: Instant,
    ) -> Result<(), IkeError> {
        if !self.mobike {
            return Err(IkeError::State {
                op: "MOBIKE address update",
                state: "MOBIKE not negotiated",
            });
        }
        if self.state != State::Established {
            return Err(IkeError::State {
                op: "MOBIKE address update",
                state: "not established",
            });
        }
        if !self.initiator {
            return Err(IkeError::State {
                op: "MOBIKE address update",
                state: "we are the responder: only the initiator of the IKE SA moves it (RFC 4555 §3.5)",
            });
        }
        if local.is_ipv4() != self.remote.ip().is_ipv4() {
            return Err(IkeError::State {
                op: "MOBIKE address update",
                state: "new address of another family than the peer's",
            });
        }
        self.tasks
            .retain(|t| !matches!(t, Task::UpdateAddresses { .. }));
        self.queue(
            ctx,
            Task::UpdateAddresses {
                local: SocketAddr::new(local, self.local.port()),
            },
            now,
        );
        Ok(())
    }

    /// Sends UPDATE_SA_ADDRESSES (with NAT detection) from `local`.
    pub(super) fn start_update_addresses(
        &mut self,
        ctx: &mut Ctx,
        local: SocketAddr,
        now: Instant,
    ) {
        let old = self.local;
        self.local = local;
        let mut pw = PayloadWriter::new();
        pw.notify(0, &[], notify::UPDATE_SA_ADDRESSES, &[]);
        let src = if self.conn.force_encap {
            ctx.random_bytes(20)
        } else {
            crypto::nat_hash(self.spi_i, self.spi_r, local).to_vec()
        };
        pw.notify(0, &[], notify::NAT_DETECTION_SOURCE_IP, &src);
        pw.notify(
            0,
            &[],
            notify::NAT_DETECTION_DESTINATION_IP,
            &crypto::nat_hash(self.spi_i, self.spi_r, self.remote),
        );
        pw.notify(0, &[], notify::NO_ADDITIONAL_ADDRESSES, &[]);
        self.send_request(
            ctx,
            now,
            exchange::INFORMATIONAL,
            pw,
            ActiveKind::UpdateAddresses { old },
        );
    }

    /// The peer's answer to our UPDATE_SA_ADDRESSES: NAT detection at the new
    /// addresses, then the child SAs follow. An error answer moves back.
    pub(super) fn update_addresses_response(
        &mut self,
        ctx: &mut Ctx,
        old: SocketAddr,
        p: &Payloads<'_>,
        now: Instant,
    ) {
        if let Some(code) = p.error_notify() {
            let to = self.local;
            self.local = old;
            ctx.event(Event::AddressUpdateFailed {
                sa: self.id,
                conn: self.conn.name.clone(),
                reason: format!(
                    "the peer refused UPDATE_SA_ADDRESSES from {to}: {}",
                    notify::name(code)
                ),
            });
            return;
        }
        if let Some((nat_local, nat_remote)) =
            nat_detect(p, self.spi_i, self.spi_r, self.remote, self.local)
        {
            self.nat_remote = nat_remote;
            self.nat_local = nat_local || self.conn.force_encap;
        }
        self.keepalive_at = self.nat_local.then(|| now + ctx.settings.keepalive);
        self.store_peer_addresses(p);
        self.move_children(ctx);
    }
}
