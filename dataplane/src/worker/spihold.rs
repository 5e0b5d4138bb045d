//! ESP for an inbound SA that is being set up, held briefly rather than
//! dropped as `unknown_spi`.
//!
//! A peer may send ESP on a new SA before our end installed it: strongSwan
//! sends on the IKE_AUTH child as soon as it sent its answer, and we
//! install the SA only after reading (and authenticating) that answer. The
//! control process announces the inbound SPIs it offers a peer
//! ([`ExpectedSpis`], filled by the management thread from the
//! shared-memory `ExpectSpi` command); a worker holds ESP for such an SPI
//! ([`SpiHold`]: at most [`HOLD_MAX`] packets per worker, each at most
//! [`HOLD_NS`]) and decapsulates it once the SA is in the SAD. Nothing is
//! decrypted before the SA is installed.
//!
//! Unknown SPIs that were not announced stay a cheap counted drop
//! (`unknown_spi`): one atomic load says whether any announcement is live.
//! Both structures are fixed arrays made with the worker or the process:
//! nothing here allocates or locks.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use arrayvec::ArrayVec;

/// Announced SPIs kept at once (the oldest is replaced when full).
pub const EXPECTED_MAX: usize = 64;
/// How long an announcement lasts (ns): an IKE exchange with the peer's
/// retransmissions fits.
pub const EXPECT_NS: u64 = 30_000_000_000;
/// Packets a worker holds at once, over all SPIs.
pub const HOLD_MAX: usize = 32;
/// How long a packet waits for its SA (ns).
pub const HOLD_NS: u64 = 200_000_000;

/// The SPIs the control process announced, written by the management
/// thread, read by every worker.
pub struct ExpectedSpis {
    spis: [AtomicU32; EXPECTED_MAX],
    until_ns: [AtomicU64; EXPECTED_MAX],
    /// The latest end of any announcement: workers look no further when
    /// it has passed (the usual case).
    live_until_ns: AtomicU64,
}

impl Default for ExpectedSpis {
    fn default() -> Self {
        ExpectedSpis {
            spis: std::array::from_fn(|_| AtomicU32::new(0)),
            until_ns: std::array::from_fn(|_| AtomicU64::new(0)),
            live_until_ns: AtomicU64::new(0),
        }
    }
}

impl ExpectedSpis {
    /// Announces `spi` until `now_ns + EXPECT_NS` (management thread only:
    /// one writer).
    pub fn announce(&self, spi: u32, now_ns: u64) {
        if spi == 0 {
            return;
        }
        let until = now_ns + EXPECT_NS;
        // the same SPI again, else a free or expired entry, else the one
        // that ends first
        let mut pick = 0;
        let mut pick_until = u64::MAX;
        for i in 0..EXPECTED_MAX {
            let s = self.spis[i].load(Ordering::Relaxed);
            let u = self.until_ns[i].load(Ordering::Relaxed);
            if s == spi {
                pick = i;
                break;
            }
            let end = if s == 0 || u <= now_ns { 0 } else { u };
            if end < pick_until {
                pick = i;
                pick_until = end;
            }
        }
        // a reader that sees the new SPI with the old time treats it as
        // expired: harmless (the packet is a plain drop)
        self.until_ns[pick].store(0, Ordering::Relaxed);
        self.spis[pick].store(spi, Ordering::Relaxed);
        self.until_ns[pick].store(until, Ordering::Release);
        self.live_until_ns.fetch_max(until, Ordering::Release);
    }

    /// Forgets `spi` (its SA was installed or removed).
    pub fn forget(&self, spi: u32) {
        for i in 0..EXPECTED_MAX {
            if self.spis[i].load(Ordering::Relaxed) == spi {
                self.until_ns[i].store(0, Ordering::Relaxed);
            }
        }
    }

    /// True if `spi` is announced at `now_ns`.
    #[inline]
    pub fn contains(&self, spi: u32, now_ns: u64) -> bool {
        if self.live_until_ns.load(Ordering::Acquire) <= now_ns {
            return false;
        }
        (0..EXPECTED_MAX).any(|i| {
            self.until_ns[i].load(Ordering::Acquire) > now_ns
                && self.spis[i].load(Ordering::Relaxed) == spi
        })
    }
}

/// A held packet.
pub struct HeldEsp<P> {
    /// The packet (at its IP header), in a buffer of the backend's own.
    pub pkt: P,
    /// Its SPI.
    pub spi: u32,
    /// Receiving port.
    pub in_port: u8,
    /// When it was held (ns).
    pub since_ns: u64,
}

/// One worker's held packets, oldest first.
pub struct SpiHold<P> {
    held: ArrayVec<HeldEsp<P>, HOLD_MAX>,
}

impl<P> Default for SpiHold<P> {
    fn default() -> Self {
        SpiHold {
            held: ArrayVec::new(),
        }
    }
}

impl<P> SpiHold<P> {
    /// True if nothing is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True if no packet more can be held.
    pub fn is_full(&self) -> bool {
        self.held.is_full()
    }

    /// Holds `h`; gives it back when [`HOLD_MAX`] packets are held.
    pub fn hold(&mut self, h: HeldEsp<P>) -> Result<(), HeldEsp<P>> {
        self.held.try_push(h).map_err(|e| e.element())
    }

    /// Takes out, in arrival order, the packets whose SA `installed` says
    /// is there now (into `ready`) and those that waited [`HOLD_NS`]
    /// (into `expired`).
    pub fn take(
        &mut self,
        now_ns: u64,
        installed: impl Fn(u32) -> bool,
        ready: &mut impl Extend<HeldEsp<P>>,
        expired: &mut impl Extend<HeldEsp<P>>,
    ) {
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            if installed(h.spi) {
                ready.extend(std::iter::once(self.held.remove(i)));
            } else if now_ns.saturating_sub(h.since_ns) >= HOLD_NS {
                expired.extend(std::iter::once(self.held.remove(i)));
            } else {
                i += 1;
            }
        }
    }

    /// Every held packet (the worker stops).
    pub fn drain(&mut self) -> impl Iterator<Item = HeldEsp<P>> + '_ {
        self.held.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn only_announced_live_spis_are_expected() {
        let e = ExpectedSpis::default();
        assert!(!e.contains(0x1234, 10 * S));
        e.announce(0x1234, 10 * S);
        assert!(e.contains(0x1234, 10 * S));
        assert!(!e.contains(0x1235, 10 * S));
        assert!(e.contains(0x1234, 10 * S + EXPECT_NS - 1));
        assert!(!e.contains(0x1234, 10 * S + EXPECT_NS));
        e.forget(0x1234);
        assert!(!e.contains(0x1234, 11 * S));
        e.announce(0, 10 * S);
        assert!(!e.contains(0, 10 * S));
    }

    #[test]
    fn a_full_table_replaces_the_announcement_that_ends_first() {
        let e = ExpectedSpis::default();
        for n in 0..EXPECTED_MAX as u32 {
            e.announce(0x1000 + n, S + u64::from(n));
        }
        for n in 0..EXPECTED_MAX as u32 {
            assert!(e.contains(0x1000 + n, 2 * S));
        }
        e.announce(0x9999, 3 * S);
        assert!(e.contains(0x9999, 3 * S));
        assert!(!e.contains(0x1000, 3 * S), "the oldest went");
        assert!(e.contains(0x1001, 3 * S));
        // announcing again renews, without taking a second entry
        e.announce(0x1001, 4 * S);
        assert!(e.contains(0x1001, 4 * S + EXPECT_NS - 1));
        assert!(e.contains(0x1002, 4 * S));
    }

    #[test]
    fn held_packets_go_when_their_sa_comes_or_their_time_is_up() {
        let mut h: SpiHold<u32> = SpiHold::default();
        for n in 0..HOLD_MAX as u32 {
            let spi = if n % 2 == 0 { 0xa } else { 0xb };
            let r = h.hold(HeldEsp {
                pkt: n,
                spi,
                in_port: 0,
                since_ns: S + u64::from(n),
            });
            assert!(r.is_ok());
        }
        assert!(h.is_full());
        let over = h.hold(HeldEsp {
            pkt: 99,
            spi: 0xa,
            in_port: 0,
            since_ns: S,
        });
        assert!(
            matches!(over, Err(HeldEsp { pkt: 99, .. })),
            "a full queue gives the packet back"
        );
        let (mut ready, mut expired) = (Vec::new(), Vec::new());
        h.take(S + 1000, |_| false, &mut ready, &mut expired);
        assert!(ready.is_empty() && expired.is_empty());
        // SA 0xa installed: its packets, in order
        h.take(S + 1000, |s| s == 0xa, &mut ready, &mut expired);
        let got: Vec<u32> = ready.iter().map(|r| r.pkt).collect();
        assert_eq!(got, (0..HOLD_MAX as u32).step_by(2).collect::<Vec<_>>());
        assert_eq!(h.len(), HOLD_MAX / 2);
        // 0xb never comes
        h.take(
            S + HOLD_NS + HOLD_MAX as u64,
            |_| false,
            &mut ready,
            &mut expired,
        );
        assert_eq!(expired.len(), HOLD_MAX / 2);
        assert!(h.is_empty());
    }
}
