//! The way out of a worker: protected packets grouped by SA through
//! [`esp::encap_burst`], ICMP errors (time exceeded, fragmentation needed /
//! packet too big), packets for the gateway itself, routing (longest-prefix
//! match, neighbour, link MTU, fragmentation) and the Ethernet rewrite
//! before the batched transmit. The poll loop and the way in are the
//! parent's ([`super::Worker::process`]).

use super::*;

impl<B: PacketIo> Worker<B> {
    /// Path MTU check, encap and routing of one SA's packets.
    pub(super) fn encap_group(
        &mut self,
        fib: &Fib,
        sad: &crate::sa::SadTable,
        spi: u32,
        mut g: Burst<B::Pkt>,
    ) {
        let Some(sa) = sad.get(spi) else {
            for p in g.drain(..) {
                self.drop_pkt(p, DropReason::NoSa);
            }
            return;
        };
        let sa: &Sa = sa;
        let max_inner = max_inner_len(fib, sa);
        let mut ok: Burst<B::Pkt> = Burst::new();
        for p in g.drain(..) {
            if p.len() > max_inner {
                let v6 = ip_version(p.data()) == Some(6);
                let df = v6 || Ipv4Packet::new_unchecked(p.data()).df();
                if !df {
                    // Pre-fragmentation (RFC 4459 §5.2): each fragment is
                    // encapsulated on its own and fits the path MTU.
                    let mut frags: Burst<B::Pkt> = Burst::new();
                    let backend = &mut self.backend;
                    match frag::fragment(p, max_inner, || backend.alloc(), &mut frags) {
                        Ok(()) => {
                            self.frag += 1;
                            if ok.len() + frags.len() > ok.capacity() {
                                self.encap_and_route(fib, sa, &mut ok);
                            }
                            for f in frags.drain(..) {
                                if ok.is_full() {
                                    self.encap_and_route(fib, sa, &mut ok);
                                }
                                ok.push(f);
                            }
                        }
                        Err((p, e)) => {
                            for f in frags.drain(..) {
                                self.backend.free(f);
                            }
                            let r = e.drop_reason();
                            sa.count_drop(r);
                            self.drop_pkt(p, r);
                        }
                    }
                    continue;
                }
                sa.count_drop(DropReason::TooBig);
                self.stats.drops.add(DropReason::TooBig);
                let mtu = max_inner as u32;
                let v4rest = mtu & 0xffff;
                if v6 {
                    self.icmp_error(fib, p, ICMP4_FRAG_NEEDED, ICMP6_PACKET_TOO_BIG, mtu, 0);
                } else {
                    self.icmp_error(fib, p, ICMP4_FRAG_NEEDED, ICMP6_PACKET_TOO_BIG, v4rest, 0);
                }
                continue;
            }
            if ok.is_full() {
                self.encap_and_route(fib, sa, &mut ok);
            }
            ok.push(p);
        }
        self.encap_and_route(fib, sa, &mut ok);
    }

    /// Taps, encapsulates with `sa` and routes the packets of `ok`, which is
    /// empty afterwards.
    fn encap_and_route(&mut self, fib: &Fib, sa: &Sa, ok: &mut Burst<B::Pkt>) {
        if ok.is_empty() {
            return;
        }
        if let Some(tap) = self.tap.as_mut().filter(|t| t.active()) {
            let tid = sa.tunnel_id();
            if tap.wants(tid) {
                for p in ok.iter() {
                    tap.capture(tid, crate::shm::TapDirection::Out, p.data());
                }
            }
        }
        let mut verdicts = [Verdict::Pass; MAX_BURST];
        esp::encap_burst(sa, ok, &mut verdicts, &self.stats.drops);
        for (p, v) in ok.drain(..).zip(verdicts.iter()) {
            match v {
                Verdict::Pass => {
                    self.enc += 1;
                    self.route(fib, p, u8::MAX, false);
                }
                Verdict::Drop(_) => self.backend.free(p),
            }
        }
    }

    /// Turns `p` into an ICMP error to its source and routes it; frees it
    /// when no error may or can be sent.
    pub(super) fn icmp_error(
        &mut self,
        fib: &Fib,
        mut p: B::Pkt,
        v4: (u8, u8),
        v6: (u8, u8),
        rest: u32,
        in_port: u8,
    ) {
        let d = p.data();
        let is6 = ip_version(d) == Some(6);
        let allowed = if is6 {
            may_answer_v6(d, v6 == ICMP6_PACKET_TOO_BIG)
        } else {
            may_answer_v4(d)
        };
        let src_addr = if is6 {
            IpAddr::V6(Ipv6Packet::new_unchecked(d).src())
        } else {
            IpAddr::V4(Ipv4Packet::new_unchecked(d).src())
        };
        let fallback_if = self
            .ports
            .get(in_port as usize)
            .map(|p| p.ifindex)
            .unwrap_or(0);
        let spd = self.shared.spd.load();
        let ty = if is6 { v6 } else { v4 };
        let me = self.icmp_source(fib, &spd, src_addr, fallback_if, ty);
        match me {
            Some(me) if allowed && me.is_ipv6() == is6 => {
                if !self.icmp_limit.allow(espresso_core::shm::monotonic_ns()) {
                    self.icmp_limited += 1;
                    self.backend.free(p);
                } else if to_icmp_error(&mut p, v4, v6, rest, me) {
                    self.icmp_sent += 1;
                    self.send_local(fib, &spd, p, in_port);
                } else {
                    self.backend.free(p);
                }
            }
            _ => self.backend.free(p),
        }
    }

    /// Source address of an ICMP error to `dst`: the address of the
    /// interface toward `dst`, unless a policy protects traffic to `dst`
    /// only from another address of this gateway (its inside address, as
    /// when the error answers a packet that came out of a tunnel): then that
    /// one, so that the error goes back through the tunnel (RFC 4301 §6.2)
    /// rather than in the clear or to a policy that refuses it.
    fn icmp_source(
        &self,
        fib: &Fib,
        spd: &crate::sa::SpdTable,
        dst: IpAddr,
        fallback_if: u32,
        (ty, code): (u8, u8),
    ) -> Option<IpAddr> {
        let primary = fib.source_for(dst, fallback_if)?;
        let v6 = dst.is_ipv6();
        let key = |src: IpAddr| FlowKey {
            v6,
            src: ip_u128(src),
            dst: ip_u128(dst),
            proto: if v6 { proto::ICMPV6 } else { proto::ICMP },
            sport: u16::from(ty),
            dport: u16::from(code),
            has_ports: true,
        };
        if spd.lookup(&key(primary)).is_some() {
            return Some(primary);
        }
        for port in self
            .conf
            .ports
            .iter()
            .filter(|p| p.role == PortRole::Inside)
        {
            let Some(l) = fib.links.get(&port.ifindex) else {
                continue;
            };
            let protects = |a: &IpAddr| {
                matches!(
                    spd.lookup(&key(*a)).map(|p| p.action),
                    Some(PolicyAction::Protect { .. })
                )
            };
            let found = if v6 {
                l.addrs6.iter().map(|a| IpAddr::V6(*a)).find(protects)
            } else {
                l.addrs4.iter().map(|a| IpAddr::V4(*a)).find(protects)
            };
            if found.is_some() {
                return found;
            }
        }
        Some(primary)
    }

    /// Sends a packet this dataplane made (an ICMP error) through the SPD as
    /// the gateway's own traffic: protected with its policy's SA, discarded,
    /// or routed in the clear.
    fn send_local(&mut self, fib: &Fib, spd: &crate::sa::SpdTable, p: B::Pkt, in_port: u8) {
        let action = match FlowKey::from_ip(p.data()) {
            Ok(k) => spd.lookup(&k).map(|pol| pol.action),
            Err(e) => {
                self.drop_pkt(p, e.drop_reason());
                return;
            }
        };
        match action {
            None | Some(PolicyAction::Bypass) => self.route(fib, p, in_port, false),
            Some(PolicyAction::Discard) => self.drop_pkt(p, DropReason::PolicyDiscard),
            Some(PolicyAction::Trap) => self.drop_pkt(p, DropReason::NoSa),
            Some(PolicyAction::Protect { spi }) => {
                let sad_out = self.shared.sad_out.load();
                let mut g: Burst<B::Pkt> = Burst::new();
                g.push(p);
                self.encap_group(fib, &sad_out, spi, g);
            }
        }
    }

    /// Routes `p` (at its IP header): route lookup, MTU check, neighbour,
    /// Ethernet header, transmit queue.
    pub(super) fn route(&mut self, fib: &Fib, p: B::Pkt, in_port: u8, may_icmp: bool) {
        let d = p.data();
        let v6 = ip_version(d) == Some(6);
        let dst = if v6 {
            IpAddr::V6(Ipv6Packet::new_unchecked(d).dst())
        } else {
            IpAddr::V4(Ipv4Packet::new_unchecked(d).dst())
        };
        let Some(r) = fib.route(dst).copied() else {
            self.drop_pkt(p, DropReason::NoRoute);
            return;
        };
        if r.kind != RouteKind::Unicast {
            self.drop_pkt(p, DropReason::NoRoute);
            return;
        }
        let Some(out) = self.ports.iter().position(|s| s.ifindex == r.oif) else {
            // A route through an interface this dataplane does not drive.
            self.drop_pkt(p, DropReason::NoRoute);
            return;
        };
        let mtu = fib.mtu(&r) as usize;
        if p.len() > mtu {
            let df = v6 || Ipv4Packet::new_unchecked(d).df();
            if !df {
                self.fragment_out(fib, p, mtu, out, r.oif, r.gateway.unwrap_or(dst));
                return;
            }
            self.stats.drops.add(DropReason::TooBig);
            if may_icmp {
                self.icmp_error(
                    fib,
                    p,
                    ICMP4_FRAG_NEEDED,
                    ICMP6_PACKET_TOO_BIG,
                    mtu as u32,
                    in_port,
                );
            } else {
                self.backend.free(p);
            }
            return;
        }
        let nh = r.gateway.unwrap_or(dst);
        match self.next_hop_mac(fib, r.oif, nh) {
            Some(mac) => self.push_l2(p, out, mac, v6),
            None => self.hold(p, out, r.oif, nh, v6, 0),
        }
    }

    /// The link-layer address of next hop `nh` on `oif` if known (a stale
    /// one too: resolution is asked for again, at most once per
    /// [`neigh::STALE_REASK_NS`]), after sending what waited for it.
    #[inline]
    fn next_hop_mac(&mut self, fib: &Fib, oif: u32, nh: IpAddr) -> Option<[u8; 6]> {
        let n = fib.neighbour(oif, nh)?;
        if n.stale {
            self.neigh_stale += 1;
            if self
                .ask
                .should_ask(oif, nh, espresso_core::shm::monotonic_ns())
            {
                self.shared.resolver.request(oif, nh);
                bump(&self.stats.resolve_requests, 1);
            }
        }
        if !self.pending.is_empty() {
            // Packets that waited for this next hop go first (order).
            if let Some(i) = self.pending.position(oif, nh) {
                self.release(i, n.mac);
            }
        }
        Some(n.mac)
    }

    /// Holds `p` (at its IP header; to be fragmented to `frag_mtu` if not
    /// 0) until next hop `nh` on `oif` is resolved, in a buffer of the
    /// backend's own (a received packet may sit in a receive ring that must
    /// move on), and asks for resolution.
    fn hold(&mut self, p: B::Pkt, out: usize, oif: u32, nh: IpAddr, v6: bool, frag_mtu: usize) {
        let Some(mut q) = self.backend.alloc() else {
            self.drop_pkt(p, DropReason::NoBuffer);
            return;
        };
        let len = p.len();
        if !q.append(len) {
            self.backend.free(q);
            self.drop_pkt(p, DropReason::NoBuffer);
            return;
        }
        q.data_mut().copy_from_slice(p.data());
        self.backend.free(p);
        let now = espresso_core::shm::monotonic_ns();
        let held = neigh::Held {
            pkt: q,
            v6,
            frag_mtu: frag_mtu.min(usize::from(u16::MAX)) as u16,
        };
        match self.pending.hold(oif, nh, out as u8, held, now) {
            Ok(first) => {
                self.neigh_held += 1;
                if first == neigh::HoldResult::QueuedFirst {
                    self.shared.resolver.request(oif, nh);
                    bump(&self.stats.resolve_requests, 1);
                }
            }
            Err(h) => self.drop_pkt(h.pkt, DropReason::NeighbourQueueFull),
        }
    }

    /// Sends the packets waiting in queue `i` to `mac`.
    fn release(&mut self, i: usize, mac: [u8; 6]) {
        let w = self.pending.take(i);
        let out = usize::from(w.out);
        for h in w.pkts {
            if h.frag_mtu == 0 {
                self.push_l2(h.pkt, out, mac, h.v6);
            } else {
                self.fragment_to(h.pkt, usize::from(h.frag_mtu), out, mac);
            }
        }
    }

    /// Sends what waits for next hops the current snapshot resolves, drops
    /// (`no_neighbour`) what waited longer than [`neigh::UNRES_TIMEOUT_NS`],
    /// and asks again for the others once per [`neigh::UNRES_REASK_NS`].
    pub(super) fn service_pending(&mut self) {
        let fib_guard = self.shared.fib.load();
        let fib: &Fib = &fib_guard;
        let now = espresso_core::shm::monotonic_ns();
        let mut i = self.pending.len();
        while i > 0 {
            i -= 1;
            let w = self.pending.get(i);
            let (oif, nh, since, asked) = (w.oif, w.nh, w.since_ns, w.asked_ns);
            if let Some(n) = fib.neighbour(oif, nh) {
                self.release(i, n.mac);
            } else if now.saturating_sub(since) >= neigh::UNRES_TIMEOUT_NS {
                let w = self.pending.take(i);
                for h in w.pkts {
                    self.drop_pkt(h.pkt, DropReason::NoNeighbour);
                }
            } else if now.saturating_sub(asked) >= neigh::UNRES_REASK_NS {
                self.pending.asked(i, now);
                self.shared.resolver.request(oif, nh);
                bump(&self.stats.resolve_requests, 1);
            }
        }
    }

    /// Splits the IPv4 packet `p` (DF clear, larger than `mtu`) into
    /// fragments and queues them on port `out` toward next hop `nh` on
    /// interface `oif`.
    fn fragment_out(&mut self, fib: &Fib, p: B::Pkt, mtu: usize, out: usize, oif: u32, nh: IpAddr) {
        match self.next_hop_mac(fib, oif, nh) {
            Some(mac) => self.fragment_to(p, mtu, out, mac),
            None => self.hold(p, out, oif, nh, false, mtu),
        }
    }

    /// Splits `p` into fragments of at most `mtu` bytes and queues them on
    /// port `out` to `mac`.
    fn fragment_to(&mut self, p: B::Pkt, mtu: usize, out: usize, mac: [u8; 6]) {
        let mut frags: Burst<B::Pkt> = Burst::new();
        let backend = &mut self.backend;
        match frag::fragment(p, mtu, || backend.alloc(), &mut frags) {
            Ok(()) => {
                self.frag += 1;
                for f in frags.drain(..) {
                    self.push_l2(f, out, mac, false);
                }
            }
            Err((p, e)) => {
                for f in frags.drain(..) {
                    self.backend.free(f);
                }
                self.drop_pkt(p, e.drop_reason());
            }
        }
    }

    /// Adds the Ethernet header (to `mac`, from port `out`) and queues `p`
    /// for transmission on `out`.
    fn push_l2(&mut self, mut p: B::Pkt, out: usize, mac: [u8; 6], v6: bool) {
        if !p.prepend(ETH_LEN) {
            self.drop_pkt(p, DropReason::NoRoom);
            return;
        }
        EthernetRepr {
            dst: mac,
            src: self.ports[out].mac,
            ethertype: if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 },
        }
        .emit(p.data_mut());
        if self.tx[out].is_full() {
            self.flush(out);
        }
        self.tx[out].push(p);
    }
}
