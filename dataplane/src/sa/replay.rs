//! Anti-replay window (RFC 4303 §3.4.3, Appendix A) without bit shifting
//! (RFC 6479), safe for several workers receiving one SA at once.
//!
//! The window is a ring of slots, each one `AtomicU64` packing a 16-bit lap
//! tag with a 48-bit bitmap of one block of 48 sequence numbers: block
//! `b = seq / 48` lives in slot `b % N`, tagged with its lap `b / N`
//! (truncated to 16 bits). The ring has `N = (W - 1) / 48 + 2` slots, so
//! every sequence number inside the window has its own slot (RFC 6479's
//! redundant block) and the window takes `W + 96` bits at most (W = 4096:
//! 87 slots, 696 bytes). Nothing is ever shifted: a slot holding an older
//! lap is simply re-tagged when a newer block claims it. The slot and lap
//! of a block (`block % N`, `block / N`) take a multiplication by a
//! reciprocal, not a division.
//!
//! Two phases, as DPDK `lib/ipsec`:
//! 1. [`ReplayWindow::check`] before decryption: read-only.
//! 2. [`ReplayWindow::commit`] after the ICV verified: advances `top` with
//!    `fetch_max`, then sets the packet's bit with a CAS on its slot.
//!
//! Why no replay is ever accepted twice, whatever the interleaving: a packet
//! is accepted only by the commit whose CAS turns its bit from 0 to 1 in a
//! slot tagged with its lap (or re-tags a slot holding another lap with its
//! lap and bit), and only if `top`, read after that CAS, has not reached
//! the first later lap of the packet's block with the same 16-bit tag
//! (65,536 laps on). A slot moves to a newer lap only by a
//! commit of a number in that next lap or later (at least
//! `(N - 1) * 48 + 1 >= W` above the slot's old numbers), and that commit
//! raised `top` first; so once a slot holds `(lap, bit)`, a later CAS that
//! finds a newer lap with another tag refuses the packet (the window passed
//! it), and one that finds the bit clear under the same tag does so only
//! after the slot moved on by a multiple of 65,536 laps, when the `top`
//! read after it refuses the packet. A window that moved past a packet
//! after its CAS does not take it back: it was inside the window when its
//! bit was set, and a duplicate then finds the bit (`Replayed`) or a newer
//! lap (`OutsideWindow`).
//!
//! Why no in-window packet is wrongly dropped: a slot can hold a newer lap
//! than the packet's only after a commit of a sequence number at least `W`
//! above it, which raised `top` first, so the packet was already outside the
//! window. A slot left untouched for a multiple of 65,536 laps (more than
//! 270 million sequence numbers at W = 4096 with none of its numbers
//! received) shows its old bits under the new lap's tag: numbers in it may
//! be dropped as replayed (never accepted twice).

use std::sync::atomic::{AtomicU64, Ordering};

use super::params::{DEFAULT_REPLAY_WINDOW, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
use crate::drop::DropReason;

/// Sequence numbers per slot (the bits below the tag).
const BLOCK_BITS: u64 = 48;
/// The lap tag sits above the bitmap.
const TAG_SHIFT: u32 = 48;
const BITS_MASK: u64 = (1 << TAG_SHIFT) - 1;
/// Laps apart that share a tag (the tag keeps 16 bits of the lap).
const TAG_LAPS: u64 = 1 << (64 - TAG_SHIFT);

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
    size: u32,
    /// Highest authenticated sequence number (full 64 bits); 0 before any.
    top: AtomicU64,
    /// N slots (none when the window is off).
    slots: Box<[AtomicU64]>,
    /// `2^64 / N` rounded up: the lap of a block without a division.
    recip: u64,
    /// Window used for ESN high-bit inference (W, or the default when off).
    infer_w: u32,
}

/// Where one block of 48 sequence numbers lives.
#[derive(Clone, Copy)]
struct Place {
    /// Slot index (`block % N`).
    slot: usize,
    /// Lap tag, in place (`(block / N) << 48`, truncated to 16 bits).
    tag: u64,
    /// First sequence number of the block.
    base: u64,
}

/// The top each packet of a chunk is judged against (the highest number
/// before it in the burst, or the window's top before the burst).
#[derive(Clone, Copy)]
enum Before<'a> {
    /// Computed per packet.
    Each(&'a [u64; 64]),
    /// A strictly increasing chunk above this top: the packet before.
    Ascending(u64),
    /// No packet is W or more below the top before it.
    InWindow,
}

impl Before<'_> {
    /// True if packet `j` (not 0) is W or more below the top before it.
    #[inline(always)]
    fn too_old(self, seqs: &[u64], j: usize, w: u64) -> bool {
        let top = match self {
            Before::Each(b) => b[j],
            Before::Ascending(top) => j.checked_sub(1).map_or(top, |i| seqs[i]),
            Before::InWindow => return false,
        };
        top.saturating_sub(seqs[j]) >= w
    }
}

#[inline(always)]
fn tag_of(v: u64) -> u64 {
    v & !BITS_MASK
}

/// What one pass over a burst found ([`span`]).
#[derive(Clone, Copy)]
struct Span {
    min: u64,
    max: u64,
    /// Strictly increasing (in-order traffic).
    increasing: bool,
    /// Not increasing, and every number less than 64 away from the first:
    /// `map` holds bit `s - first + 64` of every number `s`.
    near: bool,
    map: u128,
}

/// The lowest and highest numbers of a burst, whether it is strictly
/// increasing (in-order traffic), and, for a burst that is not, the map of
/// its numbers around the first one.
///
/// The increasing test: three compares of the first four packets without
/// a branch, and only if those are in order (always for in-order traffic;
/// one reordered burst in 24), all pairs (a count of descents, which LLVM
/// unrolls); an increasing burst's extremes are its ends. Otherwise
/// one scalar, branch-free pass builds the 128-bit map of the numbers
/// less than 64 from the first (what [`ReplayWindow::commit_in_window`]
/// would otherwise build in a second pass); when every number is in it
/// (reordered traffic), its lowest and highest bits are the extremes.
/// Else a pass of selects, not branches (whether a packet is a new low or
/// high is a coin toss), two accumulators of each so that the
/// compare-select chains run side by side. Scalar because the baseline
/// x86-64 target has no 64-bit vector compare or per-lane shift: the
/// vectorized min/max reductions and bit loop this replaces emulated them
/// and took about half of a reordered burst's commit. An empty burst: min
/// `u64::MAX`, max 0, increasing.
#[inline(always)]
fn span(seqs: &[u64]) -> Span {
    use std::hint::select_unpredictable as sel;
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return Span {
            min: u64::MAX,
            max: 0,
            increasing: true,
            near: false,
            map: 0,
        };
    };
    let head = match seqs {
        [a, b, c, d, ..] => (a < b) & (b < c) & (c < d),
        _ => true,
    };
    let descents = || {
        seqs.iter()
            .zip(&seqs[1..])
            .fold(0u32, |a, (x, y)| a + u32::from(x >= y))
    };
    if head && descents() == 0 {
        return Span {
            min: first,
            max: last,
            increasing: true,
            near: false,
            map: 0,
        };
    }
    let origin = first.wrapping_sub(64);
    let (mut map, mut far) = (0u128, 0u64);
    for &s in seqs {
        let d = s.wrapping_sub(origin);
        far |= d >> 7;
        map |= 1u128 << (d & 127);
    }
    if far == 0 {
        // The first number's bit is set: the map is not empty.
        return Span {
            min: origin.wrapping_add(u64::from(map.trailing_zeros())),
            max: origin.wrapping_add(127 - u64::from(map.leading_zeros())),
            increasing: false,
            near: true,
            map,
        };
    }
    let (mut lo, mut hi, mut lo2, mut hi2) = (first, first, last, last);
    let mut pairs = seqs.chunks_exact(2);
    for p in &mut pairs {
        let (a, b) = (p[0], p[1]);
        lo = sel(a < lo, a, lo);
        hi = sel(a > hi, a, hi);
        lo2 = sel(b < lo2, b, lo2);
        hi2 = sel(b > hi2, b, hi2);
    }
    Span {
        min: lo.min(lo2),
        max: hi.max(hi2),
        increasing: false,
        near: false,
        map: 0,
    }
}

impl ReplayWindow {
    /// A window of `size` packets: 0 (off) or 64..=65536.
    pub fn new(size: u32) -> Result<Self, WindowSizeError> {
        if size != 0 && !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&size) {
            return Err(WindowSizeError(size));
        }
        let nslots = if size == 0 {
            0
        } else {
            (u64::from(size) - 1) / BLOCK_BITS + 2
        };
        let slots = (0..nslots)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Ok(ReplayWindow {
            size,
            infer_w: if size == 0 {
                DEFAULT_REPLAY_WINDOW
            } else {
                size
            },
            top: AtomicU64::new(0),
            recip: if nslots > 1 { u64::MAX / nslots + 1 } else { 0 },
            slots,
        })
    }

    /// Window size (0 = anti-replay off).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// W as a sequence-number distance.
    #[inline(always)]
    fn w(&self) -> u64 {
        u64::from(self.size)
    }

    /// Bytes of the window's slots (heap).
    pub fn slot_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Highest authenticated sequence number so far (0 before any).
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Acquire)
    }

    /// The block of `seq`: its slot, lap tag and first number. Only called
    /// with the window on (N >= 3). `block / N` by multiplying with
    /// `ceil(2^64 / N)`: the estimate is the quotient or one more (the
    /// error `block * (M * N - 2^64) / 2^64` is below N since
    /// `block < 2^64`), corrected with one compare.
    #[inline(always)]
    fn place(&self, seq: u64) -> Place {
        let block = seq / BLOCK_BITS;
        let n = self.slots.len() as u64;
        let est = ((u128::from(block) * u128::from(self.recip)) >> 64) as u64;
        // est <= block / N + 1, so est * N <= block + N: no overflow.
        let lap = est - u64::from(est * n > block);
        Place {
            slot: (block - lap * n) as usize,
            tag: lap << TAG_SHIFT,
            base: block * BLOCK_BITS,
        }
    }

    /// Forgets every received number (tests and benchmarks that replay the
    /// same packets). Not for use while workers receive on the SA.
    pub fn reset(&self) {
        for s in self.slots.iter() {
            s.store(0, Ordering::Relaxed);
        }
        self.top.store(0, Ordering::Release);
    }

    /// The `top` counter itself: an outbound SA, whose window is off, keeps
    /// the last sequence number it handed out here (`Sa::reserve_seq`).
    #[inline(always)]
    pub(crate) fn top_cell(&self) -> &AtomicU64 {
        &self.top
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
        // At most (W - 1) / 48 + 1 blocks: each has its own slot.
        let lo = floor.saturating_sub(self.w() - 1).max(1);
        let (b_lo, b_hi) = (lo / BLOCK_BITS, floor / BLOCK_BITS);
        for b in b_lo..=b_hi {
            let p = self.place(b * BLOCK_BITS);
            let bits = if b == b_hi {
                // Positions 0..=floor % 48 (at most 48 bits: no overflow).
                (1u64 << (floor - p.base + 1)) - 1
            } else {
                BITS_MASK
            };
            self.slots[p.slot].store(p.tag | bits, Ordering::Release);
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
        if top - seq >= self.w() {
            return Err(ReplayError::OutsideWindow);
        }
        let p = self.place(seq);
        let v = self.slots[p.slot].load(Ordering::Acquire);
        if tag_of(v) == p.tag && v & (1 << (seq - p.base)) != 0 {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// True if `seq` is W or more below the current top (read now, after
    /// the caller's CAS: see the module documentation).
    #[inline(always)]
    fn passed(&self, seq: u64) -> bool {
        self.top.load(Ordering::Acquire).saturating_sub(seq) >= self.w()
    }

    /// `N * 48 * 65,536 - 47` (below 2^33: N <= 1367): no number `s` is
    /// lapped (see [`ReplayWindow::lapped`]) while `top - s` is below it.
    /// Computed, not stored: the `Sa` holds the window inline and one more
    /// word would take it to another cache line.
    #[inline(always)]
    fn lap_reach(&self) -> u64 {
        (self.slots.len() as u64 * BLOCK_BITS * TAG_LAPS).saturating_sub(BLOCK_BITS - 1)
    }

    /// True if `top` reached the first later lap of `seq`'s block that shares
    /// its 16-bit tag (65,536 laps on): only then can a CAS have seen a newer
    /// lap under an equal (wrapped) tag. A window that merely moved past
    /// `seq`, even by whole laps, leaves the packet accepted: its CAS set the
    /// bit under its own lap, while the packet was inside the window at its
    /// `fetch_max`; a slot on a newer lap shows a different tag and a CAS
    /// that sees it refuses the packet (`passed`).
    #[inline(always)]
    fn lapped(&self, seq: u64, top: u64) -> bool {
        // No such lap below 2^64: never lapped.
        (self.slots.len() as u64)
            .checked_mul(TAG_LAPS)
            .and_then(|d| (seq / BLOCK_BITS).checked_add(d))
            .and_then(|b| b.checked_mul(BLOCK_BITS))
            .is_some_and(|same_tag_lap| top >= same_tag_lap)
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
        if prev_top > seq && prev_top - seq >= self.w() {
            return Err(ReplayError::OutsideWindow);
        }
        let p = self.place(seq);
        let bit = 1u64 << (seq - p.base);
        let slot = &self.slots[p.slot];
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let new = if tag_of(cur) == p.tag {
                if cur & bit != 0 {
                    return Err(ReplayError::Replayed);
                }
                cur | bit
            } else if self.passed(seq) {
                // The slot holds a newer lap: the window moved past us.
                return Err(ReplayError::OutsideWindow);
            } else {
                // An older lap, all of it outside the window: re-tag.
                p.tag | bit
            };
            match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if self.lapped(seq, self.top.load(Ordering::Acquire)) {
            return Err(ReplayError::OutsideWindow);
        }
        Ok(())
    }

    /// Phase 2 for a burst: records every `seqs[i]` (ICV verified), setting
    /// `out[i]` as [`ReplayWindow::commit`] would. One `fetch_max` for the
    /// whole burst and one CAS per block of 48 numbers the burst touches
    /// (whatever the order of its packets: in-order or reordered traffic,
    /// one to three per burst of 32), so the cost per packet is a few plain
    /// instructions. Each packet is judged against the numbers before it in
    /// the burst, as if committed one by one in order; a sequence number
    /// present twice is accepted once. `out` must be at least as long as
    /// `seqs`.
    pub fn commit_burst(&self, seqs: &[u64], out: &mut [Result<(), ReplayError>]) {
        let n = seqs.len().min(out.len());
        let sp = span(&seqs[..n]);
        let (min, max, increasing) = (sp.min, sp.max, sp.increasing);
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
        if increasing && min > prev_top {
            // Every packet above the top before it: all new, all inside
            // the window, and the packets of a block are consecutive.
            out[..n].fill(Ok(()));
            for (s, o) in seqs[..n].chunks(64).zip(out[..n].chunks_mut(64)) {
                self.commit_ascending(s, o, prev_top);
                prev_top = s[s.len() - 1];
            }
        } else if min > 0 && prev_top.max(max) - min < self.w() {
            // No packet can be W below the top before it: all inside the
            // window (reordered traffic, duplicates).
            out[..n].fill(Ok(()));
            // The pass's map serves a burst of one chunk.
            let map = (n <= 64 && sp.near).then_some(sp.map);
            for (s, o) in seqs[..n].chunks(64).zip(out[..n].chunks_mut(64)) {
                self.commit_in_window(s, o, min, max, map);
            }
        } else {
            for (s, o) in seqs[..n].chunks(64).zip(out[..n].chunks_mut(64)) {
                self.commit_chunk(s, o, &mut prev_top);
            }
        }
        // A CAS that saw a newer lap under an equal (wrapped) tag: `top`
        // moved past its packets first (see the module documentation).
        // `lapped(s, top)` needs `top >= s - 47 + N * 48 * 65,536`, so when
        // `top` is less than that above the burst's lowest number no packet
        // of it is lapped: one comparison per burst instead of one test per
        // packet.
        let top = self.top.load(Ordering::Acquire);
        if top.saturating_sub(min) < self.lap_reach() {
            return;
        }
        for (&s, o) in seqs[..n].iter().zip(out[..n].iter_mut()) {
            if o.is_ok() && self.lapped(s, top) {
                *o = Err(ReplayError::OutsideWindow);
            }
        }
    }

    /// Up to 64 packets of a burst, strictly increasing and all above `top`
    /// (`out` already `Ok`): one CAS per block, the packets of a block found
    /// as a run.
    #[inline]
    fn commit_ascending(&self, seqs: &[u64], out: &mut [Result<(), ReplayError>], top: u64) {
        let n = seqs.len().min(64);
        let mut j = 0;
        while j < n {
            let p = self.place(seqs[j]);
            let start = j;
            let mut bits = 0u64;
            // Increasing from `seqs[start] >= p.base`: no underflow.
            while j < n && seqs[j] - p.base < BLOCK_BITS {
                bits |= 1 << (seqs[j] - p.base);
                j += 1;
            }
            let members = (u64::MAX >> (64 - (j - start))) << start;
            let count = members.count_ones();
            self.commit_block(
                p,
                Before::Ascending(top),
                seqs,
                out,
                count,
                || members,
                bits,
            );
        }
    }

    /// Up to 64 packets of a burst, all between `min` and `max` and none W
    /// below the top before it (`out` already `Ok`). When they fall in two
    /// blocks at most (bursts of up to 48 numbers, reordered or not), their
    /// bits in one 96-bit map sort them into the two: `pre`, the map
    /// [`span`] made around the first packet, when it has one, else one
    /// scalar pass here (a form with a 64-bit variable shift per packet was
    /// vectorized for the baseline x86-64 target, which has no such vector
    /// shift, and cost more than the rest of the commit). Which packets are
    /// in which block is only worked out when a number repeats or a block
    /// needs judging packet by packet. Otherwise as
    /// [`ReplayWindow::commit_chunk`].
    #[inline]
    fn commit_in_window(
        &self,
        seqs: &[u64],
        out: &mut [Result<(), ReplayError>],
        min: u64,
        max: u64,
        pre: Option<u128>,
    ) {
        let n = seqs.len().min(64);
        let p0 = self.place(min);
        let all = u64::MAX >> (64 - n);
        if max - p0.base >= 2 * BLOCK_BITS {
            self.commit_groups(seqs, out, all, Before::InWindow);
            return;
        }
        // 0 <= s - p0.base < 96 for every packet: block 0 or 1.
        let second = || {
            let mut m1 = 0u64;
            for (j, &s) in seqs[..n].iter().enumerate() {
                m1 |= u64::from(s - p0.base >= BLOCK_BITS) << j;
            }
            m1
        };
        let map = match pre {
            // Bit `s - first + 64` to bit `s - p0.base`: `first - p0.base`
            // is below 96, and no bit is below `p0.base`.
            Some(m) => {
                let off = (seqs[0] - p0.base) as i64 - 64;
                if off >= 0 {
                    m << off
                } else {
                    m >> -off
                }
            }
            None => {
                let mut m = 0u128;
                for &s in &seqs[..n] {
                    m |= 1u128 << (s - p0.base);
                }
                m
            }
        };
        let (b0, b1) = (map as u64 & BITS_MASK, (map >> BLOCK_BITS) as u64);
        let (c0, c1, m1) = if map.count_ones() as usize == n {
            // No number twice: as many packets in each block as bits.
            (b0.count_ones(), b1.count_ones(), None)
        } else {
            let m1 = second();
            ((all & !m1).count_ones(), m1.count_ones(), Some(m1))
        };
        let m1 = || m1.unwrap_or_else(second);
        if c0 != 0 {
            self.commit_block(p0, Before::InWindow, seqs, out, c0, || all & !m1(), b0);
        }
        if c1 != 0 {
            let p1 = self.place(p0.base + BLOCK_BITS);
            self.commit_block(p1, Before::InWindow, seqs, out, c1, m1, b1);
        }
    }

    /// Up to 64 packets of a burst: the top each packet is judged against
    /// (packets already outside the window are refused here), then one CAS
    /// per block. Branch-free per packet: with reordered traffic whether a
    /// packet is above the running top is a coin toss, and a mispredicted
    /// branch per packet cost more than the whole commit.
    #[inline]
    fn commit_chunk(&self, seqs: &[u64], out: &mut [Result<(), ReplayError>], top: &mut u64) {
        let n = seqs.len().min(64);
        let w = self.w();
        let mut before = [0u64; 64];
        let mut valid = 0u64;
        for (j, ((b, &s), o)) in before
            .iter_mut()
            .zip(&seqs[..n])
            .zip(out.iter_mut())
            .enumerate()
        {
            let t = *top;
            *b = t;
            *top = std::hint::select_unpredictable(s > t, s, t);
            let ok = (s != 0) & (t.saturating_sub(s) < w);
            valid |= u64::from(ok) << j;
            *o = if ok {
                Ok(())
            } else {
                Err(ReplayError::OutsideWindow)
            };
        }
        self.commit_groups(seqs, out, valid, Before::Each(&before));
    }

    /// Commits the packets `valid` of a chunk of up to 64, block by block
    /// (one CAS each).
    #[inline]
    fn commit_groups(
        &self,
        seqs: &[u64],
        out: &mut [Result<(), ReplayError>],
        valid: u64,
        before: Before<'_>,
    ) {
        let n = seqs.len().min(64);
        let mut left = valid;
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            let p = self.place(seqs[i]);
            // The packets of this block and their bits (at most 48 apart:
            // shifting by `d & 63` is only kept when `d < 48`).
            let (mut members, mut bits) = (0u64, 0u64);
            for (j, &s) in seqs[..n].iter().enumerate() {
                let d = s.wrapping_sub(p.base);
                let m = u64::from(d < BLOCK_BITS) & (valid >> j) & 1;
                members |= m << j;
                bits |= m << (d & 63);
            }
            left &= !members;
            self.commit_block(p, before, seqs, out, members.count_ones(), || members, bits);
        }
    }

    /// Commits the packets `members()` of `seqs` (`count` of them, inside
    /// the window as judged against `before`, `out` already `Ok` for them),
    /// all in the block at `p`, whose bits are `bits`, with one CAS;
    /// `before` gives the top packet `j` is judged against. `members` is
    /// only called on the slow path.
    ///
    /// Fast path, when no number is twice among the members: one CAS for
    /// all, if none of their bits is set under their lap, or the slot holds
    /// an older lap (nothing of it inside the window: re-tag with `bits`).
    /// `top` is read after `cur`, once for the lowest member: a newer lap
    /// in the slot was written by a commit that raised `top` first, so if
    /// the lowest member has not been passed, no member has and the slot's
    /// lap is older (as [`ReplayWindow::commit`] reasons per packet).
    /// Otherwise packet by packet, in burst order.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn commit_block(
        &self,
        p: Place,
        before: Before<'_>,
        seqs: &[u64],
        out: &mut [Result<(), ReplayError>],
        count: u32,
        members: impl FnOnce() -> u64,
        bits: u64,
    ) {
        let slot = &self.slots[p.slot];
        let mut cur = slot.load(Ordering::Acquire);
        if bits.count_ones() == count {
            let lowest = p.base + u64::from(bits.trailing_zeros());
            loop {
                let new = if tag_of(cur) == p.tag {
                    if cur & bits != 0 {
                        break;
                    }
                    cur | bits
                } else if self.passed(lowest) {
                    break;
                } else {
                    p.tag | bits
                };
                match slot.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return,
                    Err(actual) => cur = actual,
                }
            }
        }
        let members = members();
        loop {
            let mut new = cur;
            let mut m = members;
            while m != 0 {
                let j = m.trailing_zeros() as usize;
                m &= m - 1;
                let seq = seqs[j];
                out[j] = if seq == 0 || before.too_old(seqs, j, self.w()) {
                    Err(ReplayError::OutsideWindow)
                } else {
                    let bit = 1u64 << (seq - p.base);
                    if tag_of(new) == p.tag {
                        if new & bit != 0 {
                            Err(ReplayError::Replayed)
                        } else {
                            new |= bit;
                            Ok(())
                        }
                    } else if self.passed(seq) {
                        // A newer lap holds the slot.
                        Err(ReplayError::OutsideWindow)
                    } else {
                        new = p.tag | bit;
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
mod tests;
