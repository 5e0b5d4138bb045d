//! Anti-replay window (RFC 4303 §3.4.3, Appendix A) without bit shifting
//! (RFC 6479), safe for several workers receiving one SA at once.
//!
//! The window is a ring of slots, each one `AtomicU64` packing a 32-bit block
//! tag (the block number `seq >> 5`, truncated) with a 32-bit bitmap of the
//! block's sequence numbers. The ring has a power-of-two number of slots, at
//! least `W/32 + 2`, so every sequence number inside the window has its own
//! slot (RFC 6479's redundant block). Nothing is ever shifted: a slot holding
//! an older block is simply re-tagged when a newer block claims it.
//!
//! Two phases, as DPDK `lib/ipsec`:
//! 1. [`ReplayWindow::check`] before decryption: read-only.
//! 2. [`ReplayWindow::commit`] after the ICV verified: advances `top` with
//!    `fetch_max`, then sets the packet's bit with a CAS on its slot.
//!
//! Why no replay is ever accepted twice, whatever the interleaving: a packet
//! is accepted only by the commit whose CAS turns its bit from 0 to 1 in a slot
//! tagged with its block (or re-tags an older slot with its block and bit).
//! A slot's tag only moves forward, so once a slot holds `(block, bit)` no later
//! CAS can see the bit clear under the same tag again.
//!
//! Why no in-window packet is wrongly dropped: a slot can hold a newer block
//! than the packet's only after a commit of a sequence number at least
//! `W + 1` above it, and that commit raised `top` first, so the packet was
//! already outside the window.

use std::sync::atomic::{AtomicU64, Ordering};

use super::params::{DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
use crate::drop::DropReason;

const BLOCK_SHIFT: u32 = 5;
const BLOCK_BITS: u64 = 1 << BLOCK_SHIFT;

/// Why a sequence number was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Already received (inside the window).
    #[error("sequence number already received")]
    Replayed,
    /// Older than the window (or 0, or not representable with ESN).
    #[error("sequence number outside the replay window")]
    OutsideWindow,
}

impl ReplayError {
    /// The drop reason for this error.
    pub const fn drop_reason(self) -> DropReason {
        match self {
            ReplayError::Replayed => DropReason::Replayed,
            ReplayError::OutsideWindow => DropReason::OutsideWindow,
        }
    }
}

/// Invalid window size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replay window {0} out of range: 0 (off) or {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW}")]
pub struct WindowSizeError(pub u32);

/// An anti-replay window for one inbound SA.
#[derive(Debug)]
pub struct ReplayWindow {
    /// Window size W in packets (0: anti-replay off, only ESN tracking).
    size: u64,
    /// Window used for ESN high-bit inference (W, or the default when off).
    infer_w: u32,
    /// Highest authenticated sequence number (full 64 bits); 0 before any.
    top: AtomicU64,
    slots: Box<[AtomicU64]>,
    mask: u64,
}

#[inline(always)]
fn pack(tag: u32, bits: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(bits)
}

impl ReplayWindow {
    /// A window of `size` packets: 0 (off) or 64..=65536.
    pub fn new(size: u32) -> Result<Self, WindowSizeError> {
        if size != 0 && !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&size) {
            return Err(WindowSizeError(size));
        }
        let nslots = if size == 0 {
            1
        } else {
            (size as usize / BLOCK_BITS as usize + 2).next_power_of_two()
        };
        let slots = (0..nslots)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Ok(ReplayWindow {
            size: u64::from(size),
            infer_w: if size == 0 {
                DEFAULT_REPLAY_WINDOW
            } else {
                size
            },
            top: AtomicU64::new(0),
            slots,
            mask: nslots as u64 - 1,
        })
    }

    /// Window size (0 = anti-replay off).
    pub fn size(&self) -> u32 {
        self.size as u32
    }

    /// Highest authenticated sequence number so far (0 before any).
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Acquire)
    }

    /// Forgets every received number (tests and benchmarks that replay the
    /// same packets). Not for use while workers receive on the SA.
    pub fn reset(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.top.store(0, Ordering::Release);
    }

    /// Starts the window at `top` (e.g. after a dataplane restart).
    pub fn set_top(&self, top: u64) {
        self.top.store(top, Ordering::Release);
    }

    /// Starts the window as if every number up to `floor` had been received
    /// (an inbound SA installed again under the same key, e.g. into a
    /// restarted dataplane: its packets from before must not be accepted
    /// again). Numbers above `floor` are new. Not for use while workers
    /// receive on the SA.
    pub fn set_floor(&self, floor: u64) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.top.store(floor, Ordering::Release);
        if floor == 0 || self.size == 0 {
            return;
        }
        let lo = floor.saturating_sub(self.size - 1).max(1);
        let (b_lo, b_hi) = (lo >> BLOCK_SHIFT, floor >> BLOCK_SHIFT);
        for b in b_lo..=b_hi {
            let bits = if b == b_hi {
                let n = (floor & (BLOCK_BITS - 1)) as u32;
                if n == 31 {
                    u32::MAX
                } else {
                    (1u32 << (n + 1)) - 1
                }
            } else {
                u32::MAX
            };
            self.slots[(b & self.mask) as usize].store(pack(b as u32, bits), Ordering::Release);
        }
    }

    /// Full 64-bit sequence number of a received low half (RFC 4303 App. A2.2).
    /// Without ESN the number is `seql`. `None` if the inferred number would
    /// lie before 0 (a packet from before the SA started).
    ///
    /// Inferred from one load of `top` (one atomic word: no torn snapshot),
    /// the number is exact for every packet in `[top - W + 1, top + 2^32 - W]`,
    /// i.e. every packet still inside the window or ahead of it. A packet more
    /// than W behind, e.g. one whose worker was descheduled while the others
    /// moved the window, is given the next subspace as the RFC says; the ICV
    /// covers the high half, so it fails authentication and is dropped
    /// (`IcvMismatch`) before [`ReplayWindow::commit`] could see it: commit
    /// only ever records authenticated numbers and needs no re-inference.
    #[inline]
    pub fn infer_seq(&self, seql: u32, esn: bool) -> Option<u64> {
        if !esn {
            return Some(u64::from(seql));
        }
        let t = self.top.load(Ordering::Acquire);
        let tl = t as u32;
        let th = (t >> 32) as u32;
        let w = self.infer_w;
        let seqh = if tl >= w - 1 {
            // Case A: the window lies within one subspace.
            if seql >= tl - (w - 1) {
                th
            } else {
                th.checked_add(1)?
            }
        } else if seql >= tl.wrapping_sub(w - 1) {
            // Case B: the window spans two subspaces; seql is in the lower one.
            th.checked_sub(1)?
        } else {
            th
        };
        Some((u64::from(seqh) << 32) | u64::from(seql))
    }

    /// Phase 1, before decryption: is `seq` new and inside the window? Read-only.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::OutsideWindow);
        }
        if self.size == 0 {
            return Ok(());
        }
        let top = self.top.load(Ordering::Acquire);
        if seq > top {
            return Ok(());
        }
        if top - seq >= self.size {
            return Err(ReplayError::OutsideWindow);
        }
        let block = seq >> BLOCK_SHIFT;
        let v = self.slots[(block & self.mask) as usize].load(Ordering::Acquire);
        let bit = 1u32 << (seq & (BLOCK_BITS - 1));
        if (v >> 32) as u32 == block as u32 && (v as u32) & bit != 0 {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Phase 2, after the ICV verified: records `seq`. Returns an error if a
    /// concurrent commit got there first (the packet must then be dropped) or
    /// the window moved past it meanwhile.
    #[inline]
    pub fn commit(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::OutsideWindow);
        }
        let prev_top = self.top.fetch_max(seq, Ordering::AcqRel);
        if self.size == 0 {
            return Ok(());
        }
        if prev_top > seq && prev_top - seq >= self.size {
            return Err(ReplayError::OutsideWindow);
        }
        let block = seq >> BLOCK_SHIFT;
        let tag = block as u32;
        let bit = 1u32 << (seq & (BLOCK_BITS - 1));
        let slot = &self.slots[(block & self.mask) as usize];
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let ctag = (cur >> 32) as u32;
            let new = if ctag == tag {
                if (cur as u32) & bit != 0 {
                    return Err(ReplayError::Replayed);
                }
                cur | u64::from(bit)
            } else if cur != 0 && (ctag.wrapping_sub(tag) as i32) > 0 {
                // The slot already holds a newer block: we are outside the window.
                // (An empty slot, never written since the window started, e.g.
                // after `set_top`, holds no block at all, whatever its tag 0
                // compares as.)
                return Err(ReplayError::OutsideWindow);
            } else {
                pack(tag, bit)
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Phase 2 for a burst: records every `seqs[i]` (ICV verified), setting
    /// `out[i]` as [`ReplayWindow::commit`] would. One `fetch_max` for the
    /// whole burst and one CAS per run of consecutive packets that share a
    /// slot (in-order traffic: one or two per burst), so the cost per packet
    /// is a few plain instructions. A sequence number present twice in the
    /// burst is accepted once. `out` must be at least as long as `seqs`.
    pub fn commit_burst(&self, seqs: &[u64], out: &mut [Result<(), ReplayError>]) {
        let n = seqs.len().min(out.len());
        let max = seqs[..n].iter().copied().max().unwrap_or(0);
        let mut prev_top = self.top.load(Ordering::Acquire);
        if max > prev_top {
            prev_top = self.top.fetch_max(max, Ordering::AcqRel);
        }
        if self.size == 0 {
            for (s, o) in seqs[..n].iter().zip(out[..n].iter_mut()) {
                *o = if *s == 0 {
                    Err(ReplayError::OutsideWindow)
                } else {
                    Ok(())
                };
            }
            return;
        }
        let mut i = 0;
        while i < n {
            let si = (seqs[i] >> BLOCK_SHIFT) & self.mask;
            let mut j = i + 1;
            while j < n && (seqs[j] >> BLOCK_SHIFT) & self.mask == si {
                j += 1;
            }
            self.commit_run(
                &self.slots[si as usize],
                prev_top,
                &seqs[i..j],
                &mut out[i..j],
            );
            // Later packets are judged against the numbers before them, as if
            // committed one by one in order.
            prev_top = seqs[i..j].iter().copied().fold(prev_top, u64::max);
            i = j;
        }
    }

    #[inline]
    fn commit_run(
        &self,
        slot: &AtomicU64,
        prev_top: u64,
        seqs: &[u64],
        out: &mut [Result<(), ReplayError>],
    ) {
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let mut new = cur;
            let mut prev_top = prev_top;
            for (&seq, o) in seqs.iter().zip(out.iter_mut()) {
                let top = prev_top;
                prev_top = prev_top.max(seq);
                *o = if seq == 0 || (top > seq && top - seq >= self.size) {
                    Err(ReplayError::OutsideWindow)
                } else {
                    let tag = (seq >> BLOCK_SHIFT) as u32;
                    let bit = 1u32 << (seq & (BLOCK_BITS - 1));
                    let ctag = (new >> 32) as u32;
                    if ctag == tag {
                        if (new as u32) & bit != 0 {
                            Err(ReplayError::Replayed)
                        } else {
                            new |= u64::from(bit);
                            Ok(())
                        }
                    } else if new != 0 && (ctag.wrapping_sub(tag) as i32) > 0 {
                        // A newer block holds the slot (an empty slot holds
                        // none, whatever its tag 0 compares as: see `commit`).
                        Err(ReplayError::OutsideWindow)
                    } else {
                        new = pack(tag, bit);
                        Ok(())
                    }
                };
            }
            if new == cur {
                return;
            }
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Check and commit in one step (for callers that authenticated already).
    pub fn check_and_commit(&self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        self.commit(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_refuses_everything_up_to_it() {
        for size in [64u32, 100, 4096] {
            for floor in [1u64, 30, 31, 32, 33, 63, 64, 65, 1000, 5000, (1 << 32) + 7] {
                let w = ReplayWindow::new(size).unwrap();
                w.set_floor(floor);
                assert_eq!(w.top(), floor);
                for back in 0..u64::from(size).min(floor) {
                    let s = floor - back;
                    assert_eq!(
                        w.check(s),
                        Err(ReplayError::Replayed),
                        "size {size} floor {floor} seq {s}"
                    );
                    assert!(w.commit(s).is_err(), "size {size} floor {floor} seq {s}");
                }
                if floor > u64::from(size) {
                    assert_eq!(
                        w.check(floor - u64::from(size)),
                        Err(ReplayError::OutsideWindow)
                    );
                }
                for s in floor + 1..floor + 40 {
                    assert_eq!(w.check(s), Ok(()), "size {size} floor {floor} seq {s}");
                    assert_eq!(w.commit(s), Ok(()), "size {size} floor {floor} seq {s}");
                    assert_eq!(w.check(s), Err(ReplayError::Replayed));
                }
            }
        }
        // Zero: nothing seen.
        let w = ReplayWindow::new(64).unwrap();
        w.commit(5).unwrap();
        w.set_floor(0);
        assert_eq!(w.check(5), Ok(()));
    }

    #[test]
    fn sizes() {
        assert!(ReplayWindow::new(63).is_err());
        assert!(ReplayWindow::new(65537).is_err());
        assert_eq!(ReplayWindow::new(64).unwrap().slots.len(), 4);
        assert_eq!(ReplayWindow::new(4096).unwrap().slots.len(), 256);
        assert_eq!(ReplayWindow::new(65536).unwrap().slots.len(), 4096);
        assert_eq!(ReplayWindow::new(100).unwrap().size(), 100);
    }

    #[test]
    fn basic_window_semantics() {
        let w = ReplayWindow::new(64).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::OutsideWindow));
        w.check_and_commit(1).unwrap();
        assert_eq!(w.check(1), Err(ReplayError::Replayed));
        w.check_and_commit(100).unwrap();
        // 100 - 64 = 36 is just outside, 37 just inside.
        assert_eq!(w.check(36), Err(ReplayError::OutsideWindow));
        w.check_and_commit(37).unwrap();
        assert_eq!(w.commit(37), Err(ReplayError::Replayed));
        w.check_and_commit(99).unwrap();
        assert_eq!(w.check(99), Err(ReplayError::Replayed));
        // A big jump invalidates everything old.
        w.check_and_commit(1_000_000).unwrap();
        assert_eq!(w.check(100), Err(ReplayError::OutsideWindow));
        assert_eq!(w.check(999_999), Ok(()));
        assert_eq!(w.check(1_000_000 - 63), Ok(()));
        assert_eq!(w.check(1_000_000 - 64), Err(ReplayError::OutsideWindow));
    }

    #[test]
    fn every_in_window_number_accepted_once_after_reuse_of_slots() {
        for size in [64u32, 100, 4096] {
            let w = ReplayWindow::new(size).unwrap();
            // Walk far enough that every slot is re-tagged several times.
            let n = u64::from(size) * 20;
            for s in (1..=n).step_by(2) {
                w.check_and_commit(s).unwrap();
            }
            // Even numbers in the window were never seen: all accepted once.
            let lo = n - u64::from(size) + 1;
            for s in lo..=n {
                if s % 2 == 0 {
                    assert_eq!(w.check_and_commit(s), Ok(()), "size {size} seq {s}");
                }
                assert_eq!(
                    w.check(s),
                    Err(ReplayError::Replayed),
                    "size {size} seq {s}"
                );
            }
            assert_eq!(w.check(lo - 1), Err(ReplayError::OutsideWindow));
        }
    }

    #[test]
    fn burst_commit_accepts_each_number_once_and_drops_nothing_in_window() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for size in [64u32, 100, 4096] {
            let w = ReplayWindow::new(size).unwrap();
            let mut accepted = std::collections::HashSet::new();
            let mut base = 1u64;
            for _ in 0..3000 {
                let seqs: Vec<u64> = (0..32)
                    .map(|_| base + rng.random_range(0..(u64::from(size) * 2)))
                    .collect();
                base += rng.random_range(0..u64::from(size) / 2);
                let mut out = vec![Ok(()); 32];
                w.commit_burst(&seqs, &mut out);
                let top = w.top();
                assert_eq!(top, *seqs.iter().max().unwrap().max(&top));
                let mut first_copy = std::collections::HashSet::new();
                for (s, r) in seqs.iter().zip(&out) {
                    let fresh = !accepted.contains(s);
                    if r.is_ok() {
                        assert!(fresh, "size {size}: {s} accepted twice");
                        accepted.insert(*s);
                    } else if fresh && top - s < u64::from(size) && first_copy.insert(*s) {
                        panic!("size {size}: {s} dropped ({r:?}) although new and inside the window (top {top})");
                    }
                }
            }
        }
    }

    #[test]
    fn window_off_accepts_duplicates_but_tracks_top() {
        let w = ReplayWindow::new(0).unwrap();
        w.check_and_commit(5).unwrap();
        w.check_and_commit(5).unwrap();
        assert_eq!(w.top(), 5);
        assert_eq!(w.check(0), Err(ReplayError::OutsideWindow));
    }

    /// Inference is exact for every number from the bottom of the window to
    /// 2^32 - W above its top, whatever the top (across subspace boundaries
    /// too); a number further behind gets the next subspace (RFC 4303 A2.2),
    /// which the ICV then refuses.
    #[test]
    fn esn_inference_exact_from_the_window_bottom_and_late_packets_get_the_next_subspace() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for size in [64u32, 4096] {
            let w = ReplayWindow::new(size).unwrap();
            let wl = u64::from(size);
            let mut tops = vec![
                wl,
                wl + 1,
                (1 << 32) - 1,
                1 << 32,
                (1 << 32) + 5,
                (1 << 32) + wl,
                (5 << 32) + 3,
            ];
            tops.extend((0..200).map(|_| rng.random_range(wl..1u64 << 40)));
            for top in tops {
                w.set_top(top);
                let mut probes: Vec<u64> = vec![top - wl + 1, top, top + 1, top + (1 << 32) - wl];
                probes
                    .extend((0..50).map(|_| rng.random_range(top - wl + 1..=top + (1 << 32) - wl)));
                for s in probes {
                    assert_eq!(
                        w.infer_seq(s as u32, true),
                        Some(s),
                        "W {size} top {top} seq {s}"
                    );
                }
                // A packet more than W behind the top: next subspace (or none
                // when that would need a high half past 2^32 - 1).
                for late in [
                    top - wl,
                    top.saturating_sub(wl + 1),
                    top.saturating_sub(wl + 1000),
                ] {
                    if late == 0 {
                        continue;
                    }
                    let got = w.infer_seq(late as u32, true);
                    assert_ne!(got, Some(late), "W {size} top {top} late {late}");
                    if let Some(g) = got {
                        assert_eq!(g, late + (1 << 32), "W {size} top {top} late {late}");
                        assert!(
                            g > top,
                            "the wrong number lies ahead: only the ICV can refuse it"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn esn_inference_rfc4303_a2() {
        let w = ReplayWindow::new(64).unwrap();
        // Before anything: small numbers are in subspace 0.
        assert_eq!(w.infer_seq(1, true), Some(1));
        // Numbers just below 2^32 would be in subspace -1: impossible.
        assert_eq!(w.infer_seq(u32::MAX, true), None);
        // Case A: top in the middle of subspace 0.
        w.set_top(1000);
        assert_eq!(w.infer_seq(1000 - 63, true), Some(937));
        assert_eq!(w.infer_seq(936, true), Some((1 << 32) | 936));
        assert_eq!(w.infer_seq(5000, true), Some(5000));
        // Top near the end of subspace 0: a small number wrapped into subspace 1.
        w.set_top(u64::from(u32::MAX) - 5);
        assert_eq!(w.infer_seq(3, true), Some((1 << 32) | 3));
        assert_eq!(
            w.infer_seq(u32::MAX - 10, true),
            Some(u64::from(u32::MAX) - 10)
        );
        // Case B: top just after the boundary; late packets from subspace 0.
        w.set_top((1 << 32) | 10);
        assert_eq!(
            w.infer_seq(u32::MAX - 20, true),
            Some(u64::from(u32::MAX) - 20)
        );
        assert_eq!(w.infer_seq(5, true), Some((1 << 32) | 5));
        assert_eq!(w.infer_seq(100, true), Some((1 << 32) | 100));
        // Without ESN the number is the low half.
        assert_eq!(w.infer_seq(7, false), Some(7));
    }
}
