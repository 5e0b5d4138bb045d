//! The poll loop: each worker owns one [`PacketIo`] (its queues on every
//! port), is pinned to a core, and busy-polls its receive queues in bursts.
//!
//! Per burst: Ethernet demux (ARP/ND, broadcasts and packets for the gateway
//! itself go to the kernel through [`PacketIo::to_kernel`], which just frees
//! them when the kernel receives its own copy, as with AF_PACKET),
//! inbound ESP and UDP/4500 to a local address -> [`esp::decap_burst`];
//! transit packets -> TTL/hop limit (ICMP time exceeded) -> SPD lookup ->
//! protected packets grouped by SA -> path MTU check with the SA's overhead
//! (ICMP fragmentation needed / packet too big; IPv4 with DF clear is
//! fragmented instead, [`frag`]) -> [`esp::encap_burst`] ->
//! route on the outer destination; cleartext packets are routed as they are.
//! Routing: longest-prefix match in the kernel's main table, neighbour from
//! the kernel's cache (stale: used while the netlink thread has the kernel
//! resolve it again; unresolved: held in a small queue per next hop,
//! [`neigh`], until resolved, `neighbour_queue_full` when the queue
//! overflows, `no_neighbour` when resolution fails), link MTU check (IPv4 with DF clear
//! is fragmented, in buffers from [`PacketIo::alloc`]), Ethernet rewrite,
//! batched transmit. Every dropped packet is counted under one
//! [`DropReason`] in the worker's [`WorkerCounters`].

#![forbid(unsafe_code)]

mod egress;
pub mod fib;
pub mod frag;
pub mod icmp;
mod ingress;
pub mod mgmt;
pub mod neigh;
pub mod netlink;
pub mod spihold;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::drop::{DropReason, Verdict};
use crate::esp::{self, DecapResult, PacketKind};
use crate::io::{Burst, PacketIo, MAX_BURST};
use crate::pkt::PacketBuf;
use crate::reasm::{self, Fragment, Push, ReasmConfig, Reassembler};
use crate::sa::{DropCounters, FlowKey, PolicyAction, Sa, Sad, Spd};
use crate::wire::{
    ip_version, proto, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv6Packet, UdpPacket,
    ETHERNET_HEADER_LEN as ETH_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN,
};

use self::fib::{Fib, FibHandle, RouteKind};
use self::icmp::*;
use self::netlink::Resolver;

/// Which side of the gateway a port faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// The protected LAN.
    Inside,
    /// The WAN, toward the peer gateway.
    Outside,
}

/// A port as the worker sees it.
#[derive(Clone, Debug)]
pub struct PortConf {
    /// Interface index in the gateway's namespace.
    pub ifindex: u32,
    /// Inside or outside.
    pub role: PortRole,
}

/// What a worker does when its queues are empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Spin (lowest latency, one core at 100 %).
    BusyPoll,
    /// After `after` empty polls in a row, wait in poll(2) up to `sleep_us`.
    Backoff {
        /// Empty polls before sleeping.
        after: u32,
        /// Longest sleep in microseconds.
        sleep_us: u32,
    },
}

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerConf {
    /// Worker index (0-based).
    pub index: usize,
    /// Packets taken per receive call (at most [`MAX_BURST`]).
    pub burst: usize,
    /// Idle behaviour.
    pub idle: IdlePolicy,
    /// Ports, in the backend's port order.
    pub ports: Vec<PortConf>,
}

/// Counters of one worker (single writer: the worker; any reader). Aligned
/// to a cache line so that two workers' counters never share one.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerCounters {
    /// Packets received on all ports.
    pub rx: AtomicU64,
    /// Bytes received (Ethernet frames).
    pub rx_bytes: AtomicU64,
    /// Packets sent on all ports.
    pub tx: AtomicU64,
    /// Bytes sent (Ethernet frames).
    pub tx_bytes: AtomicU64,
    /// Non-empty receive bursts.
    pub bursts: AtomicU64,
    /// Polls that found nothing.
    pub idle_polls: AtomicU64,
    /// Packets forwarded in the clear.
    pub forwarded: AtomicU64,
    /// Packets encapsulated (ESP out).
    pub encrypted: AtomicU64,
    /// Packets decapsulated (ESP in).
    pub decrypted: AtomicU64,
    /// ICMP errors sent.
    pub icmp_errors: AtomicU64,
    /// ICMP errors not sent: over the worker's rate limit (RFC 4443 §2.4(f)).
    pub icmp_rate_limited: AtomicU64,
    /// Frames and packets left to the kernel (ARP/ND, packets for us).
    pub to_kernel: AtomicU64,
    /// Neighbour resolutions requested.
    pub resolve_requests: AtomicU64,
    /// Packets held while their next hop was being resolved ([`neigh`]).
    pub neighbour_held: AtomicU64,
    /// Packets sent through a stale neighbour entry while it was being
    /// resolved again.
    pub neighbour_stale: AtomicU64,
    /// IPv4 packets (DF clear) split into fragments to fit the link MTU or,
    /// before encapsulation, the path MTU of their SA.
    pub fragmented: AtomicU64,
    /// Datagrams reassembled from fragments of ESP or ESP-in-UDP received
    /// on the WAN ([`reasm`]).
    pub reassembled: AtomicU64,
    /// ESP packets held for an announced SPI before its SA ([`spihold`]).
    pub esp_held: AtomicU64,
    /// Held ESP packets decapsulated once their SA was installed.
    pub esp_held_released: AtomicU64,
    /// Drops by reason.
    pub drops: DropCounters,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        // Single writer: a plain load/store avoids a locked instruction.
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

/// What workers share with the rest of the process.
#[derive(Clone)]
pub struct Shared {
    /// Routes/neighbours snapshot.
    pub fib: FibHandle,
    /// Outbound policies.
    pub spd: Arc<Spd>,
    /// Outbound SAs by SPI.
    pub sad_out: Arc<Sad>,
    /// Inbound SAs by SPI.
    pub sad_in: Arc<Sad>,
    /// Neighbour resolution requests to the netlink thread.
    pub resolver: Resolver,
    /// Set to stop the workers.
    pub stop: Arc<AtomicBool>,
    /// Exception path to the gateway's kernel (decapsulated packets for the
    /// gateway itself; the kernel's own packets into the tunnel).
    pub tun: Option<Arc<crate::io::tun::Tun>>,
    /// Inbound SPIs the control process announced (ESP for them is held
    /// briefly until their SA is installed).
    pub expected_spis: Arc<spihold::ExpectedSpis>,
}

const MAX_GROUPS: usize = 4;

/// A packet on its way through the worker (at its IP header).
struct Item<P> {
    pkt: P,
    /// Came out of an ESP tunnel (skip the cleartext-from-WAN check).
    from_tunnel: bool,
    /// Sent by the gateway's own kernel (exception path): no TTL handling.
    from_host: bool,
    /// Receiving port.
    in_port: u8,
}

/// Per-port facts cached for one burst.
#[derive(Clone, Copy, Default)]
struct PortState {
    ifindex: u32,
    mac: [u8; 6],
    outside: bool,
}

/// One worker.
pub struct Worker<B: PacketIo> {
    conf: WorkerConf,
    backend: B,
    shared: Shared,
    stats: Arc<WorkerCounters>,
    ports: Vec<PortState>,
    tx: Vec<Burst<B::Pkt>>,
    local_tx: u64,
    local_tx_bytes: u64,
    local_rx_bytes: u64,
    fwd_clear: u64,
    enc: u64,
    dec: u64,
    icmp_sent: u64,
    icmp_limit: icmp::IcmpLimiter,
    icmp_limited: u64,
    kernel: u64,
    frag: u64,
    reasm_done: u64,
    neigh_held: u64,
    neigh_stale: u64,
    /// Packets waiting for their next hop's link-layer address.
    pending: neigh::Pending<B::Pkt>,
    /// Recent requests to resolve stale next hops again.
    ask: neigh::AskFilter,
    /// ESP for announced SPIs whose SA is not installed yet.
    spi_hold: spihold::SpiHold<B::Pkt>,
    /// Fragments of ESP / ESP-in-UDP to the gateway under reassembly.
    reasm: Reassembler,
    /// Time base of the reassembly timeouts.
    epoch: std::time::Instant,
    tap: Option<crate::shm::TapWriter>,
}

impl<B: PacketIo> Worker<B> {
    /// A worker over `backend` (whose ports match `conf.ports`).
    pub fn new(conf: WorkerConf, backend: B, shared: Shared, stats: Arc<WorkerCounters>) -> Self {
        let n = backend.num_ports();
        let ports = conf
            .ports
            .iter()
            .map(|p| PortState {
                ifindex: p.ifindex,
                mac: [0; 6],
                outside: p.role == PortRole::Outside,
            })
            .collect();
        let reasm = Reassembler::new(ReasmConfig::default());
        let c = reasm.config();
        tracing::info!(
            "worker {}: fragment reassembly: {} datagrams of up to {} bytes, {} per source, {} ms; bound {} KiB",
            conf.index,
            c.slots,
            c.max_datagram,
            c.per_source,
            c.timeout_ms,
            c.memory_bound() / 1024
        );
        Worker {
            conf,
            backend,
            shared,
            stats,
            ports,
            tx: (0..n).map(|_| Burst::new()).collect(),
            local_tx: 0,
            local_tx_bytes: 0,
            local_rx_bytes: 0,
            fwd_clear: 0,
            enc: 0,
            dec: 0,
            icmp_sent: 0,
            icmp_limit: icmp::IcmpLimiter::new(
                icmp::ICMP_PER_SEC,
                icmp::ICMP_BURST,
                espresso_core::shm::monotonic_ns(),
            ),
            icmp_limited: 0,
            kernel: 0,
            frag: 0,
            reasm_done: 0,
            neigh_held: 0,
            neigh_stale: 0,
            pending: neigh::Pending::default(),
            ask: neigh::AskFilter::default(),
            spi_hold: spihold::SpiHold::default(),
            reasm,
            epoch: std::time::Instant::now(),
            tap: None,
        }
    }

    /// Gives the worker its decrypted-traffic tap (shared memory): inner
    /// packets of tunnels the control process taps are copied there.
    pub fn set_tap(&mut self, tap: crate::shm::TapWriter) {
        self.tap = Some(tap);
    }

    /// Replaces the reassembly table with one of `cfg`'s size (allocated
    /// now, before the worker runs).
    pub fn set_reassembly(&mut self, cfg: ReasmConfig) {
        self.reasm = Reassembler::new(cfg);
    }

    /// The backend (for statistics).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Runs until `shared.stop` is set.
    pub fn run(&mut self) {
        let mut empty_polls = 0u32;
        let burst = self.conf.burst.clamp(1, MAX_BURST);
        let mut rx: Burst<B::Pkt> = Burst::new();
        let mut tun_tick = 0u32;
        let mut idle = 0u64;
        // Under SCHED_FIFO: small spread-out rests instead of the kernel's
        // RT throttling (a 50 ms stall each second).
        let mut pacer = crate::io::RtPacer::for_current_thread();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut got = 0;
            let grown = crate::crypto::poll_key_caches();
            if grown != 0 {
                tracing::info!(
                    "worker{}: key cache grown to {} entries ({} KiB more)",
                    self.conf.index,
                    crate::crypto::key_cache::entries(),
                    grown / 1024
                );
            }
            if !self.pending.is_empty() {
                self.service_pending();
            }
            if !self.spi_hold.is_empty() {
                self.service_spi_hold();
            }
            for port in 0..self.ports.len() {
                let n = self.backend.rx_burst(port, &mut rx, burst);
                if n > 0 {
                    got += n;
                    self.process(port, &mut rx);
                }
            }
            self.flush_all();
            if self.conf.index == 0 && self.shared.tun.is_some() {
                tun_tick = tun_tick.wrapping_add(1);
                if got == 0 || tun_tick.is_multiple_of(16) {
                    got += self.poll_host();
                }
            }
            if got == 0 {
                idle += 1;
                if idle.is_multiple_of(1024) && self.reasm.in_use() > 0 {
                    let now = self.now_ms();
                    self.reasm.expire(now, &self.stats.drops);
                }
                empty_polls = empty_polls.saturating_add(1);
                if let IdlePolicy::Backoff { after, sleep_us } = self.conf.idle {
                    if empty_polls >= after {
                        self.backend.wait_rx(sleep_us);
                    }
                } else {
                    std::hint::spin_loop();
                }
            } else {
                empty_polls = 0;
                bump(&self.stats.rx, got as u64);
                bump(&self.stats.bursts, 1);
                bump(&self.stats.idle_polls, std::mem::take(&mut idle));
                self.publish();
            }
            if let Some(p) = pacer.as_mut() {
                p.poll(got == 0);
            }
        }
        if let Some(p) = pacer {
            tracing::info!(
                "worker {}: {} RT pacing pauses, {:.1} ms rested over {:.1} ms of CPU ({:.2} % of the time)",
                self.conf.index,
                p.pauses,
                p.rested_ns as f64 / 1e6,
                p.cpu_ns as f64 / 1e6,
                100.0 * p.rested_share()
            );
        }
        while !self.pending.is_empty() {
            let w = self.pending.take(0);
            for h in w.pkts {
                self.backend.free(h.pkt);
            }
        }
        let held: ArrayVec<_, { spihold::HOLD_MAX }> = self.spi_hold.drain().collect();
        for h in held {
            self.backend.free(h.pkt);
        }
    }

    fn publish(&mut self) {
        let s = &self.stats;
        bump(&s.tx, std::mem::take(&mut self.local_tx));
        bump(&s.tx_bytes, std::mem::take(&mut self.local_tx_bytes));
        bump(&s.rx_bytes, std::mem::take(&mut self.local_rx_bytes));
        bump(&s.forwarded, std::mem::take(&mut self.fwd_clear));
        bump(&s.encrypted, std::mem::take(&mut self.enc));
        bump(&s.decrypted, std::mem::take(&mut self.dec));
        bump(&s.icmp_errors, std::mem::take(&mut self.icmp_sent));
        bump(&s.icmp_rate_limited, std::mem::take(&mut self.icmp_limited));
        bump(&s.to_kernel, std::mem::take(&mut self.kernel));
        bump(&s.fragmented, std::mem::take(&mut self.frag));
        bump(&s.reassembled, std::mem::take(&mut self.reasm_done));
        bump(&s.neighbour_held, std::mem::take(&mut self.neigh_held));
        bump(&s.neighbour_stale, std::mem::take(&mut self.neigh_stale));
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Takes a fragment of ESP or UDP to the gateway from the WAN: an IPv6
    /// atomic fragment loses its fragment header and goes to decap as it
    /// is; others go into the reassembly table, and a datagram they
    /// complete goes to decap in a new buffer (`esp_in`; bit `i` of
    /// `copies` set when entry `i` is a reassembled UDP datagram). UDP
    /// fragments also go to the kernel as before (IKE and other UDP to the
    /// gateway, which the kernel reassembles itself).
    fn reassemble(
        &mut self,
        in_port: usize,
        mut p: B::Pkt,
        f: &Fragment,
        esp_in: &mut Burst<B::Pkt>,
        copies: &mut u64,
    ) {
        if f.is_atomic() {
            if reasm::strip_atomic(&mut p, f) {
                esp_in.push(p);
            } else {
                self.drop_pkt(p, DropReason::Malformed);
            }
            return;
        }
        let now = self.now_ms();
        let res = self.reasm.push(p.data(), f, now, &self.stats.drops);
        if f.proto == proto::UDP {
            self.frame_to_kernel(in_port, p);
        } else {
            self.backend.free(p);
        }
        let Push::Complete { slot, len } = res else {
            return;
        };
        let Some(mut q) = self.backend.alloc() else {
            self.reasm
                .discard(slot, DropReason::NoBuffer, &self.stats.drops);
            return;
        };
        if !q.append(len) || self.reasm.emit(slot, q.data_mut()) != len {
            self.backend.free(q);
            self.reasm
                .discard(slot, DropReason::NoRoom, &self.stats.drops);
            return;
        }
        self.reasm_done += 1;
        if f.proto == proto::UDP {
            *copies |= 1 << esp_in.len();
        }
        esp_in.push(q);
    }

    #[inline]
    fn drop_pkt(&mut self, p: B::Pkt, r: DropReason) {
        self.stats.drops.add(r);
        self.backend.free(p);
    }

    fn flush_all(&mut self) {
        for port in 0..self.tx.len() {
            self.flush(port);
        }
    }

    fn flush(&mut self, port: usize) {
        if self.tx[port].is_empty() {
            return;
        }
        let mut q = std::mem::take(&mut self.tx[port]);
        let bytes: usize = q.iter().map(|p| p.len()).sum();
        let r = self.backend.tx_burst(port, &mut q);
        if r.dropped == 0 {
            self.local_tx_bytes += bytes as u64;
        }
        self.tx[port] = q;
        self.local_tx += r.sent as u64;
        for _ in 0..r.dropped {
            self.stats.drops.add(DropReason::TxFull);
        }
    }

    /// Processes one received burst from `in_port`.
    pub fn process(&mut self, in_port: usize, rx: &mut Burst<B::Pkt>) {
        let fib_guard = self.shared.fib.load();
        let fib: &Fib = &fib_guard;
        for p in self.ports.iter_mut() {
            if let Some(l) = fib.links.get(&p.ifindex) {
                p.mac = l.mac;
            }
        }
        let port = self.ports[in_port];
        let mut items: ArrayVec<Item<B::Pkt>, MAX_BURST> = ArrayVec::new();
        let mut esp_in: Burst<B::Pkt> = Burst::new();
        // Entries of esp_in that are reassembled copies of UDP fragments
        // the kernel also got (bit per index).
        let mut copies = 0u64;

        // 1. Demux.
        self.local_rx_bytes += rx.iter().map(|p| p.len() as u64).sum::<u64>();
        for mut p in rx.drain(..) {
            if p.len() < ETH_LEN {
                self.drop_pkt(p, DropReason::Truncated);
                continue;
            }
            let eth = EthernetFrame::new_unchecked(p.data());
            if eth.dst() != port.mac {
                // Broadcast, multicast, or another host's frame: the kernel's business.
                self.kernel += 1;
                if eth.dst_is_group() {
                    self.backend.to_kernel(in_port, p);
                } else {
                    // Unicast to another MAC: no kernel would take it.
                    self.backend.free(p);
                }
                continue;
            }
            let et = eth.ethertype();
            if et != ETHERTYPE_IPV4 && et != ETHERTYPE_IPV6 {
                // ARP and the like: the kernel's business.
                self.kernel += 1;
                self.backend.to_kernel(in_port, p);
                continue;
            }
            p.trim_front(ETH_LEN);
            let (dst, l4proto, ok_len) = match ip_dst_proto_len(p.data(), et == ETHERTYPE_IPV6) {
                Ok(v) => v,
                Err(r) => {
                    self.drop_pkt(p, r);
                    continue;
                }
            };
            // Drop link-layer padding.
            let extra = p.len() - ok_len;
            p.trim_back(extra);
            if fib.is_local(dst) {
                if port.outside && maybe_fragment(p.data(), et == ETHERTYPE_IPV6, l4proto) {
                    match reasm::parse(p.data()) {
                        Ok(Some(f)) => {
                            self.reassemble(in_port, p, &f, &mut esp_in, &mut copies);
                            continue;
                        }
                        Ok(None) => {}
                        Err(r) => {
                            self.drop_pkt(p, r);
                            continue;
                        }
                    }
                }
                if port.outside && is_esp_or_natt(p.data(), et == ETHERTYPE_IPV6, l4proto) {
                    esp_in.push(p);
                } else {
                    // For the gateway itself (IKE, ping, SSH...).
                    self.frame_to_kernel(in_port, p);
                }
                continue;
            }
            if !forwardable(dst) {
                self.frame_to_kernel(in_port, p);
                continue;
            }
            items.push(Item {
                pkt: p,
                from_tunnel: false,
                from_host: false,
                in_port: in_port as u8,
            });
        }

        // 2. Inbound ESP.
        if !esp_in.is_empty() {
            self.inbound_esp(in_port, fib, &mut esp_in, copies, &mut items);
        }
        if !items.is_empty() {
            self.classify(fib, &mut items);
        }
    }

    /// Writes a packet for the gateway itself to the kernel (TUN).
    fn give_to_host(&mut self, p: B::Pkt) {
        match &self.shared.tun {
            Some(t) if t.write(p.data()).is_ok() => {
                self.kernel += 1;
                self.backend.free(p);
            }
            _ => self.drop_pkt(p, DropReason::ExceptionFull),
        }
    }

    /// Reads packets the kernel routed into the TUN device (its own traffic
    /// toward protected subnets) and sends them on. Returns how many.
    pub fn poll_host(&mut self) -> usize {
        let Some(tun) = self.shared.tun.clone() else {
            return 0;
        };
        let fib_guard = self.shared.fib.load();
        let fib: &Fib = &fib_guard;
        let mut items: ArrayVec<Item<B::Pkt>, MAX_BURST> = ArrayVec::new();
        let inside = self
            .conf
            .ports
            .iter()
            .position(|p| p.role == PortRole::Inside)
            .unwrap_or(0) as u8;
        while items.len() < 32 {
            let Some(mut p) = self.backend.alloc() else {
                break;
            };
            let room = p
                .tailroom()
                .saturating_sub(crate::io::afpacket::MIN_TAILROOM);
            if !p.append(room) {
                self.backend.free(p);
                break;
            }
            match tun.read(p.data_mut()) {
                Ok(Some(n)) if n > 0 => {
                    let extra = p.len() - n;
                    p.trim_back(extra);
                    items.push(Item {
                        pkt: p,
                        from_tunnel: false,
                        from_host: true,
                        in_port: inside,
                    });
                }
                _ => {
                    self.backend.free(p);
                    break;
                }
            }
        }
        let n = items.len();
        if n > 0 {
            for p in self.ports.iter_mut() {
                if let Some(l) = fib.links.get(&p.ifindex) {
                    p.mac = l.mac;
                }
            }
            self.classify(fib, &mut items);
            self.flush_all();
            self.publish();
        }
        n
    }

    /// TTL, policy, grouping by SA, encap, routing.
    fn classify(&mut self, fib: &Fib, items: &mut ArrayVec<Item<B::Pkt>, MAX_BURST>) {
        // 3. TTL, policy, grouping by SA.
        let spd = self.shared.spd.load();
        let sad_out = self.shared.sad_out.load();
        let mut groups: ArrayVec<(u32, Burst<B::Pkt>), MAX_GROUPS> = ArrayVec::new();
        for it in items.drain(..) {
            let mut p = it.pkt;
            let v6 = ip_version(p.data()) == Some(6);
            let ttl = if v6 {
                Ipv6Packet::new_unchecked(p.data()).hop_limit()
            } else {
                Ipv4Packet::new_unchecked(p.data()).ttl()
            };
            if ttl <= 1 && !it.from_host {
                self.stats.drops.add(DropReason::TtlExceeded);
                self.icmp_error(
                    fib,
                    p,
                    ICMP4_TIME_EXCEEDED,
                    ICMP6_TIME_EXCEEDED,
                    0,
                    it.in_port,
                );
                continue;
            }
            let key = match FlowKey::from_ip(p.data()) {
                Ok(k) => k,
                Err(e) => {
                    self.drop_pkt(p, e.drop_reason());
                    continue;
                }
            };
            if !it.from_tunnel && self.ports[it.in_port as usize].outside {
                // Cleartext from the WAN that a policy says must be protected:
                // refuse it (RFC 4301 §5.2 inbound check).
                let rev = FlowKey {
                    src: key.dst,
                    dst: key.src,
                    sport: key.dport,
                    dport: key.sport,
                    ..key
                };
                if let Some(pol) = spd.lookup(&rev) {
                    if matches!(pol.action, PolicyAction::Protect { .. }) {
                        self.drop_pkt(p, DropReason::PolicyMismatch);
                        continue;
                    }
                }
            }
            if !it.from_host {
                dec_ttl(p.data_mut(), v6);
            }
            let action = spd.lookup(&key).map(|pol| pol.action);
            match action {
                None | Some(PolicyAction::Bypass) => {
                    self.fwd_clear += 1;
                    self.route(fib, p, it.in_port, true);
                }
                Some(PolicyAction::Discard) => self.drop_pkt(p, DropReason::PolicyDiscard),
                Some(PolicyAction::Trap) => {
                    spd.note_acquire(&key);
                    self.drop_pkt(p, DropReason::NoSa)
                }
                Some(PolicyAction::Protect { spi }) => {
                    let gi = match groups.iter().position(|(s, _)| *s == spi) {
                        Some(i) => i,
                        None => {
                            if groups.is_full() {
                                for (s, g) in groups.drain(..) {
                                    self.encap_group(fib, &sad_out, s, g);
                                }
                            }
                            groups.push((spi, Burst::new()));
                            groups.len() - 1
                        }
                    };
                    groups[gi].1.push(p);
                }
            }
        }
        for (s, g) in groups.drain(..) {
            self.encap_group(fib, &sad_out, s, g);
        }
    }

    /// Hands a packet that was received on `port` and trimmed to its IP header
    /// back to the kernel as the frame it arrived as (its Ethernet header is
    /// still in front of it): [`PacketIo::to_kernel`].
    fn frame_to_kernel(&mut self, port: usize, mut p: B::Pkt) {
        self.kernel += 1;
        if p.prepend(ETH_LEN) {
            self.backend.to_kernel(port, p);
        } else {
            self.backend.free(p);
        }
    }
}

fn ip_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Largest inner packet that fits the path MTU toward the SA's peer once
/// encapsulated: the outer MTU minus outer headers, ESP header, IV and ICV,
/// rounded down to the cipher's alignment, minus the 2-byte trailer.
pub fn max_inner_len(fib: &Fib, sa: &Sa) -> usize {
    let peer = sa.remote_addr();
    let mtu = fib.route(peer).map(|r| fib.mtu(r) as usize).unwrap_or(1500);
    let front = sa.encap_overhead_front();
    let icv = sa.cipher().icv_len();
    let align = sa.cipher().pad_align().max(4);
    let room = mtu.saturating_sub(front + icv);
    (room / align * align).saturating_sub(2)
}

/// Destination, upper protocol (IPv4 protocol / IPv6 next header) and total
/// length of an IP packet, validated (IPv4: header checksum too).
fn ip_dst_proto_len(d: &[u8], v6: bool) -> Result<(IpAddr, u8, usize), DropReason> {
    if v6 {
        let ip = Ipv6Packet::new_checked(d).map_err(|e| e.drop_reason())?;
        Ok((IpAddr::V6(ip.dst()), ip.next_header(), ip.total_len()))
    } else {
        let ip = Ipv4Packet::new_checked(d).map_err(|e| e.drop_reason())?;
        if !ip.verify_checksum() {
            return Err(DropReason::Malformed);
        }
        Ok((
            IpAddr::V4(ip.dst()),
            ip.protocol(),
            usize::from(ip.total_len()),
        ))
    }
}

/// True if the (decapsulated) IP packet is addressed to the gateway itself.
fn inner_is_local(fib: &Fib, d: &[u8]) -> bool {
    match ip_version(d) {
        Some(4) if d.len() >= IPV4_HEADER_LEN => {
            fib.is_local(IpAddr::V4(Ipv4Packet::new_unchecked(d).dst()))
        }
        Some(6) if d.len() >= IPV6_HEADER_LEN => {
            fib.is_local(IpAddr::V6(Ipv6Packet::new_unchecked(d).dst()))
        }
        _ => false,
    }
}

/// Could be a fragment [`reasm::parse`] takes: an IPv4 fragment of ESP or
/// UDP, or IPv6 with a fragment header or headers before one (the cheap
/// test on every packet to the gateway; `parse` decides).
#[inline]
fn maybe_fragment(d: &[u8], v6: bool, l4proto: u8) -> bool {
    if v6 {
        matches!(
            l4proto,
            proto::IPV6_FRAG | proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS
        )
    } else {
        (l4proto == proto::ESP || l4proto == proto::UDP)
            && Ipv4Packet::new_unchecked(d).is_fragment()
    }
}

/// ESP (protocol 50) or UDP to port 4500 (NAT-T / IKE on 4500).
fn is_esp_or_natt(d: &[u8], v6: bool, l4proto: u8) -> bool {
    if l4proto == proto::ESP {
        return true;
    }
    if l4proto != proto::UDP {
        return false;
    }
    let off = if v6 {
        IPV6_HEADER_LEN
    } else {
        Ipv4Packet::new_unchecked(d).header_len()
    };
    d.len() >= off + 4 && UdpPacket::new_unchecked(&d[off..]).dst_port() == crate::wire::NATT_PORT
}

/// Unicast destinations a router forwards (not multicast, link-local,
/// broadcast or unspecified).
fn forwardable(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => {
            !(a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.is_link_local())
        }
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            !(a.is_multicast() || a.is_unspecified() || s & 0xffc0 == 0xfe80)
        }
    }
}

/// Decrements the TTL (with an incremental header checksum update, RFC 1624)
/// or the hop limit.
#[inline]
fn dec_ttl(d: &mut [u8], v6: bool) {
    if v6 {
        Ipv6Packet::new_unchecked(d).decrement_hop_limit();
    } else {
        Ipv4Packet::new_unchecked(d).decrement_ttl();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::checksum;

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&20u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 1, 1]);
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        for ttl in (2..=64).rev() {
            assert_eq!(p[8], ttl);
            dec_ttl(&mut p, false);
            assert_eq!(checksum::checksum(&p), 0, "ttl {}", ttl - 1);
        }
    }

    #[test]
    fn ip_header_validation_names_reason() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            ip_dst_proto_len(&p, false).unwrap_err(),
            DropReason::Truncated
        );
        p[0] = 0x43;
        assert_eq!(
            ip_dst_proto_len(&p, false).unwrap_err(),
            DropReason::Malformed
        );
        assert!(!forwardable("224.0.0.5".parse().unwrap()));
        assert!(!forwardable("fe80::1".parse().unwrap()));
        assert!(forwardable("10.2.0.2".parse().unwrap()));
    }
}
