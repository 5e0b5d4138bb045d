//! The way in for ESP: inbound ESP and NAT-T packets of a burst through
//! [`esp::decap_burst`], and ESP for an SPI the control plane announced but
//! has not installed yet, held briefly ([`super::spihold`]) and decrypted
//! once its SA is there. The poll loop is the parent's
//! ([`super::Worker::process`]); the way out is [`super::egress`].

use super::*;

impl<B: PacketIo> Worker<B> {
    /// Inbound ESP (at the IP header) received on `in_port`: decapsulated
    /// packets join `items`; IKE and the like go to the kernel (bit `i`
    /// of `copies` set: entry `i` is a reassembled copy the kernel got too).
    pub(super) fn inbound_esp(
        &mut self,
        in_port: usize,
        fib: &Fib,
        esp_in: &mut Burst<B::Pkt>,
        copies: u64,
        items: &mut ArrayVec<Item<B::Pkt>, MAX_BURST>,
    ) {
        let sad = self.shared.sad_in.load();
        let mut res = [DecapResult::default(); MAX_BURST];
        esp::decap_burst(&sad, esp_in, &mut res, &self.stats.drops);
        if let Some(tap) = self.tap.as_mut().filter(|t| t.active()) {
            for (p, r) in esp_in.iter().zip(res.iter()) {
                if r.verdict == Verdict::Pass
                    && matches!(r.kind, PacketKind::Inner4 | PacketKind::Inner6)
                    && tap.wants(r.tunnel_id)
                {
                    tap.capture(r.tunnel_id, crate::shm::TapDirection::In, p.data());
                }
            }
        }
        for (i, (p, r)) in esp_in.drain(..).zip(res.iter()).enumerate() {
            match (r.verdict, r.kind) {
                (Verdict::Pass, PacketKind::Inner4 | PacketKind::Inner6) => {
                    self.dec += 1;
                    if inner_is_local(fib, p.data()) {
                        // For the gateway itself: hand it to the kernel.
                        self.give_to_host(p);
                        continue;
                    }
                    if items.is_full() {
                        self.backend.free(p);
                        self.stats.drops.add(DropReason::TxFull);
                        continue;
                    }
                    items.push(Item {
                        pkt: p,
                        from_tunnel: true,
                        from_host: false,
                        in_port: in_port as u8,
                    });
                }
                (Verdict::Drop(DropReason::UnknownSpi), _) if copies & (1 << i) == 0 => {
                    // Counted by the engine; held if the SPI was announced.
                    self.hold_unknown_spi(p, r.spi, in_port);
                }
                (Verdict::Drop(_), _) => {
                    // Counted by the engine.
                    self.backend.free(p);
                }
                _ if copies & (1 << i) != 0 => {
                    // Reassembled from UDP fragments the kernel got too.
                    self.backend.free(p);
                }
                _ => {
                    // IKE, keepalives, not ESP (returned unchanged by
                    // the engine): the kernel's business.
                    self.frame_to_kernel(in_port, p);
                }
            }
        }
    }

    /// ESP with an SPI the SAD does not have: held (in a buffer of the
    /// backend's own, as [`Self::hold`]) if the control process announced
    /// the SPI and the hold queue has room, else dropped. A held packet is
    /// taken out of the `unknown_spi` count the engine made: it is counted
    /// again when it is decapsulated or expires.
    pub(super) fn hold_unknown_spi(&mut self, p: B::Pkt, spi: u32, in_port: usize) {
        let now = espresso_core::shm::monotonic_ns();
        if self.spi_hold.is_full() || !self.shared.expected_spis.contains(spi, now) {
            self.backend.free(p);
            return;
        }
        let Some(mut q) = self.backend.alloc() else {
            self.backend.free(p);
            return;
        };
        if !q.append(p.len()) {
            self.backend.free(q);
            self.backend.free(p);
            return;
        }
        q.data_mut().copy_from_slice(p.data());
        self.backend.free(p);
        let h = spihold::HeldEsp {
            pkt: q,
            spi,
            in_port: in_port as u8,
            since_ns: now,
        };
        match self.spi_hold.hold(h) {
            Ok(()) => {
                self.stats.drops.0[DropReason::UnknownSpi.index()].fetch_sub(1, Ordering::Relaxed);
                self.stats.esp_held.fetch_add(1, Ordering::Relaxed);
            }
            Err(h) => self.backend.free(h.pkt),
        }
    }

    /// Held ESP whose SA is installed now goes through decap (counted as
    /// released); what waited too long is dropped (`unknown_spi_held_expired`).
    pub(super) fn service_spi_hold(&mut self) {
        let now = espresso_core::shm::monotonic_ns();
        let mut ready: ArrayVec<spihold::HeldEsp<B::Pkt>, { spihold::HOLD_MAX }> = ArrayVec::new();
        let mut expired: ArrayVec<spihold::HeldEsp<B::Pkt>, { spihold::HOLD_MAX }> =
            ArrayVec::new();
        {
            let sad = self.shared.sad_in.load();
            self.spi_hold
                .take(now, |spi| sad.get(spi).is_some(), &mut ready, &mut expired);
        }
        for h in expired {
            self.drop_pkt(h.pkt, DropReason::UnknownSpiHeldExpired);
        }
        if ready.is_empty() {
            return;
        }
        self.stats
            .esp_held_released
            .fetch_add(ready.len() as u64, Ordering::Relaxed);
        let fib_guard = self.shared.fib.load();
        let fib: &Fib = &fib_guard;
        for port in 0..self.ports.len() {
            let mut esp_in: Burst<B::Pkt> = Burst::new();
            let mut rest: ArrayVec<spihold::HeldEsp<B::Pkt>, { spihold::HOLD_MAX }> =
                ArrayVec::new();
            for h in ready.drain(..) {
                if usize::from(h.in_port) == port {
                    esp_in.push(h.pkt);
                } else {
                    rest.push(h);
                }
            }
            ready = rest;
            if esp_in.is_empty() {
                continue;
            }
            let mut items: ArrayVec<Item<B::Pkt>, MAX_BURST> = ArrayVec::new();
            self.inbound_esp(port, fib, &mut esp_in, 0, &mut items);
            if !items.is_empty() {
                self.classify(fib, &mut items);
            }
        }
        for h in ready {
            self.backend.free(h.pkt);
        }
    }
}
