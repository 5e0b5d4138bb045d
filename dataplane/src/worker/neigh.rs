//! Neighbour resolution as one worker sees it, without dropping: packets to
//! a next hop with no link-layer address yet wait in a small fixed queue per
//! destination (Linux's `unres_qlen`) until the netlink thread publishes the
//! address, and requests to resolve a stale entry again are thinned out so
//! that a busy flow does not send one per packet.
//!
//! Both live in fixed arrays made with the worker: nothing here allocates
//! or locks. A queue that is full (per destination: [`UNRES_QLEN`]; all
//! [`UNRES_DESTS`] destinations in use; [`UNRES_MAX_HELD`] packets held in
//! all) refuses the packet, which the worker
//! counts as `neighbour_queue_full`; packets still waiting after
//! [`UNRES_TIMEOUT_NS`] (the kernel's three probes of one second) are
//! counted as `no_neighbour`.

#![forbid(unsafe_code)]

use std::net::IpAddr;

use arrayvec::ArrayVec;

/// Packets held per unresolved next hop: one whole receive burst, so that a
/// burst to a host not resolved yet (a TCP flight, or the ESP a worker held
/// for an SA being installed and releases at once) waits whole. With 16, a
/// released hold of 20 packets lost 4 as `neighbour_queue_full` (test 45).
pub const UNRES_QLEN: usize = crate::pkt::MAX_BURST;
/// Unresolved next hops a worker holds packets for at once (a gateway that
/// starts with many hosts behind it meets many at once).
pub const UNRES_DESTS: usize = 32;
/// Packets a worker holds in all (in buffers of the backend's pool, which
/// fragmentation and the exception path need too).
pub const UNRES_MAX_HELD: usize = 128;
// A burst the announced-SPI hold releases fits one next hop's queue.
const _: () = assert!(super::spihold::HOLD_MAX <= UNRES_QLEN && UNRES_QLEN <= UNRES_MAX_HELD);

/// How long packets wait for a next hop to be resolved (ns).
pub const UNRES_TIMEOUT_NS: u64 = 3_000_000_000;
/// Interval between two resolution requests for one waiting next hop (ns).
pub const UNRES_REASK_NS: u64 = 1_000_000_000;
/// Interval between two resolution requests for one stale next hop (ns).
pub const STALE_REASK_NS: u64 = 100_000_000;

/// A packet waiting for its next hop (at its IP header).
pub struct Held<P> {
    /// The packet.
    pub pkt: P,
    /// IPv6 (the Ethernet type to write).
    pub v6: bool,
    /// Fragment to this MTU before sending (0: send as it is).
    pub frag_mtu: u16,
}

/// Packets waiting for one next hop.
pub struct Waiting<P> {
    /// Output interface index.
    pub oif: u32,
    /// Next hop.
    pub nh: IpAddr,
    /// Output port (worker's port index).
    pub out: u8,
    /// When the first packet started waiting (ns).
    pub since_ns: u64,
    /// When resolution was last requested (ns).
    pub asked_ns: u64,
    /// The packets, oldest first.
    pub pkts: ArrayVec<Held<P>, UNRES_QLEN>,
}

/// The worker's queues of packets waiting for neighbours.
pub struct Pending<P> {
    dests: ArrayVec<Waiting<P>, UNRES_DESTS>,
}

impl<P> Default for Pending<P> {
    fn default() -> Self {
        Pending {
            dests: ArrayVec::new(),
        }
    }
}

/// What [`Pending::hold`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldResult {
    /// Queued behind other packets for the same next hop.
    Queued,
    /// Queued as the first packet for this next hop: ask for resolution.
    QueuedFirst,
}

impl<P> Pending<P> {
    /// True if no packet waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// Next hops with waiting packets.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// Packets waiting, over all next hops.
    pub fn packets(&self) -> usize {
        self.dests.iter().map(|w| w.pkts.len()).sum()
    }

    /// Index of the queue for `(oif, nh)`.
    #[inline]
    pub fn position(&self, oif: u32, nh: IpAddr) -> Option<usize> {
        self.dests.iter().position(|w| w.oif == oif && w.nh == nh)
    }

    /// The queue at `i`.
    pub fn get(&self, i: usize) -> &Waiting<P> {
        &self.dests[i]
    }

    /// Notes a resolution request for the queue at `i`.
    pub fn asked(&mut self, i: usize, now_ns: u64) {
        self.dests[i].asked_ns = now_ns;
    }

    /// Holds `held` for `(oif, nh)` on port `out`; gives it back when the
    /// queue for that next hop is full or every queue is in use.
    pub fn hold(
        &mut self,
        oif: u32,
        nh: IpAddr,
        out: u8,
        held: Held<P>,
        now_ns: u64,
    ) -> Result<HoldResult, Held<P>> {
        if self.packets() >= UNRES_MAX_HELD {
            return Err(held);
        }
        if let Some(i) = self.position(oif, nh) {
            return match self.dests[i].pkts.try_push(held) {
                Ok(()) => Ok(HoldResult::Queued),
                Err(e) => Err(e.element()),
            };
        }
        if self.dests.is_full() {
            return Err(held);
        }
        let mut pkts = ArrayVec::new();
        pkts.push(held);
        self.dests.push(Waiting {
            oif,
            nh,
            out,
            since_ns: now_ns,
            asked_ns: now_ns,
            pkts,
        });
        Ok(HoldResult::QueuedFirst)
    }

    /// Takes the queue at `i` out (order of the others may change).
    pub fn take(&mut self, i: usize) -> Waiting<P> {
        self.dests.swap_remove(i)
    }
}

/// Remembers the last few stale next hops a worker asked about, so that a
/// flow through a stale entry asks once per [`STALE_REASK_NS`], not per
/// packet.
#[derive(Default)]
pub struct AskFilter {
    recent: [Option<(u32, IpAddr, u64)>; 8],
    next: usize,
}

impl AskFilter {
    /// True if `(oif, nh)` should be asked about now (and notes it).
    #[inline]
    pub fn should_ask(&mut self, oif: u32, nh: IpAddr, now_ns: u64) -> bool {
        for e in self.recent.iter_mut().flatten() {
            if e.0 == oif && e.1 == nh {
                if now_ns.saturating_sub(e.2) < STALE_REASK_NS {
                    return false;
                }
                e.2 = now_ns;
                return true;
            }
        }
        self.recent[self.next] = Some((oif, nh, now_ns));
        self.next = (self.next + 1) % self.recent.len();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u32) -> Held<u32> {
        Held {
            pkt: n,
            v6: false,
            frag_mtu: 0,
        }
    }

    #[test]
    fn holds_per_destination_up_to_the_limits() {
        let mut p = Pending::<u32>::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(p.is_empty());
        assert_eq!(p.hold(2, a, 0, h(0), 5).ok(), Some(HoldResult::QueuedFirst));
        for n in 1..UNRES_QLEN as u32 {
            assert_eq!(p.hold(2, a, 0, h(n), 6).ok(), Some(HoldResult::Queued));
        }
        // Full for this next hop: the packet comes back.
        assert_eq!(p.hold(2, a, 0, h(99), 7).unwrap_err().pkt, 99);
        assert_eq!(p.packets(), UNRES_QLEN);
        // Other next hops until every queue is in use.
        for d in 1..UNRES_DESTS as u8 {
            let b = IpAddr::from([10, 0, 1, d]);
            assert_eq!(
                p.hold(2, b, 0, h(100), 8).ok(),
                Some(HoldResult::QueuedFirst)
            );
        }
        let c: IpAddr = "10.0.9.9".parse().unwrap();
        assert!(p.hold(2, c, 0, h(101), 9).is_err());
        // Same address on another interface is another next hop.
        assert!(p.position(3, a).is_none());
        // Taken out in order, the queue keeps its start time.
        let i = p.position(2, a).unwrap();
        let w = p.take(i);
        assert_eq!(w.since_ns, 5);
        let order: Vec<u32> = w.pkts.into_iter().map(|h| h.pkt).collect();
        assert_eq!(order, (0..UNRES_QLEN as u32).collect::<Vec<_>>());
        assert_eq!(p.len(), UNRES_DESTS - 1);
        assert_eq!(
            p.hold(2, c, 0, h(102), 10).ok(),
            Some(HoldResult::QueuedFirst)
        );
    }

    #[test]
    fn holds_no_more_than_the_total_limit() {
        let mut p = Pending::<u32>::default();
        let mut n = 0;
        'fill: for d in 0..UNRES_DESTS as u8 {
            for _ in 0..UNRES_QLEN {
                if n == UNRES_MAX_HELD {
                    break 'fill;
                }
                assert!(p
                    .hold(2, IpAddr::from([10, 0, 0, d]), 0, h(n as u32), 1)
                    .is_ok());
                n += 1;
            }
        }
        assert_eq!(p.packets(), UNRES_MAX_HELD);
        // Room in a queue, none in all.
        let last = IpAddr::from([10, 0, 0, (UNRES_MAX_HELD / UNRES_QLEN) as u8]);
        assert!(p.hold(2, last, 0, h(0), 2).is_err());
        assert!(p.hold(2, IpAddr::from([10, 9, 9, 9]), 0, h(0), 2).is_err());
    }

    #[test]
    fn ask_filter_thins_requests_per_next_hop() {
        let mut f = AskFilter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(f.should_ask(2, a, 1_000));
        assert!(!f.should_ask(2, a, 2_000));
        assert!(f.should_ask(2, b, 2_000));
        assert!(f.should_ask(3, a, 2_000));
        assert!(!f.should_ask(2, a, 1_000 + STALE_REASK_NS - 1));
        assert!(f.should_ask(2, a, 1_000 + STALE_REASK_NS));
        // Many next hops: the oldest are forgotten, never a false "no".
        for i in 0..20u8 {
            assert!(f.should_ask(4, IpAddr::from([10, 1, 0, i]), 5_000));
        }
        assert!(f.should_ask(2, b, 5_000));
    }
}
