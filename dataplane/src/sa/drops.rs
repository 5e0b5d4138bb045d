//! Per-SA drop counters: which reasons an SA of each direction counts, and
//! the counters themselves, 32 bits each in the SA, folded into 64-bit
//! totals by the management thread.
//!
//! Why 32 bits: the [`super::Sa`] struct is four cache lines (256 B), and
//! 13 64-bit drop counters would take 104 of them. A worker counts a drop
//! with one `fetch_add` on a 32-bit slot (the drop path only; a packet
//! that passes touches none of this). A slot that reaches [`FOLD_AT`]
//! (2^31) must have what it holds moved into a 64-bit total ([`fold`]), in
//! a block allocated by the management thread the first time an SA needs
//! one ([`Folded`]; most SAs never do). Readers ([`read`]) add the slot
//! and its total.
//!
//! Which SAs are folded, and when: the worker whose `fetch_add` takes a
//! slot from `FOLD_AT - 1` to `FOLD_AT` (exactly one per crossing) also
//! bumps a process-wide count of fold requests ([`fold_requests`]; a cold
//! branch of the drop path, once per 2^31 drops of one reason on one SA).
//! `Sad::fold_drops_step`, from the management thread every tick while a
//! walk is under way and every [`FOLD_PERIOD`] otherwise, walks its table
//! only when that count moved since its last walk began, and then in
//! chunks of [`FOLD_CHUNK`] SAs, taking the table's writer lock
//! for one chunk at a time (installs and removals go on between chunks).
//! Walking every SA every period to find none at 2^31, as the fold did
//! before, held the lock 7-12 ms at 100,000 SAs and 130-365 ms at
//! 1,000,000 (more than the period: the management thread did little
//! else; `bench/results/sad.md`, fold14); with no request a step now costs
//! one atomic load under the lock (30 ns).
//!
//! Why no count is lost: a slot wraps only after 2^32 drops, 2^31 after
//! its crossing. The crossing's request is seen by the next fold step that
//! starts a walk (the worker's `fetch_add` on the slot comes before its
//! `Release` bump, the walk's `Acquire` load of the count before it reads
//! the slot), at most [`FOLD_PERIOD`] after it, plus the walk itself (one
//! chunk per 1 ms tick: 489 ticks at 1,000,000 SAs). A walk that began
//! before the bump may pass the SA first; the bump then starts another
//! walk. An SA whose shard is rebuilt while a walk is inside it is not
//! skipped: the walk starts that shard again. So a slot is folded within
//! about a second of its crossing; 2^31 drops of one reason on one SA in a
//! second is 2.1 billion per second, and 400 GbE carries at most 595
//! million packets per second (64-byte frames): the fold may come 3.6 s
//! late (the management thread busy applying commands) before a count
//! could be lost. The fold subtracts exactly what it read (`fetch_sub`),
//! so drops counted while it runs stay in the slot.
//!
//! Why a reader sees exact totals while a fold runs (the stats-file thread
//! reads while the management thread folds): the fold is bracketed by a
//! sequence count (odd while it runs); a reader that saw the count odd or
//! changed reads again. A reader that finds no `Folded` block read its
//! slot before any fold of it (the fold publishes the block before it
//! subtracts, and the slot's `fetch_sub` releases it to a reader whose
//! acquire load of the slot sees the subtraction).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::params::Direction;
use crate::drop::DropReason;

/// Per-SA drop counter slots: one per reason that can concern an SA of
/// one direction (see [`sa_drop_slot`]).
pub const SA_DROP_SLOTS: usize = 13;

/// A slot at or above this is folded into its 64-bit total.
pub const FOLD_AT: u32 = 1 << 31;

/// How often the management thread looks for fold requests
/// (`process::manage`; every 1 ms tick while a walk is under way).
pub const FOLD_PERIOD: Duration = Duration::from_millis(100);

/// SAs a fold step looks at under one hold of the table's writer lock
/// (`Sad::fold_drops_step`): SAs of a 1,000,000-SA table are a cache and
/// TLB miss each, 4096 of them held the lock 0.68 ms on average and up to
/// 1.75 ms (`bench/results/sad.md`, fold14); half as many keeps a hold
/// under about a millisecond.
pub const FOLD_CHUNK: usize = 2048;

/// Slots that reached [`FOLD_AT`], counted once per crossing by the worker
/// that took the slot there (all SAs of the process: a request makes every
/// table walk once, which costs a walk, never a count).
static FOLD_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// The count of fold requests so far (`Sad::fold_drops_step` walks when it
/// moved). `Acquire`: pairs with the bump, so a walk that began after
/// loading a count sees the slots that made it.
pub(crate) fn fold_requests() -> u64 {
    FOLD_REQUESTS.load(Ordering::Acquire)
}

/// A slot just reached [`FOLD_AT`]: ask the management thread to fold.
#[cold]
#[inline(never)]
fn request_fold() {
    FOLD_REQUESTS.fetch_add(1, Ordering::Release);
}

/// Tests that make slots cross [`FOLD_AT`] or assert that a fold step
/// walked nothing hold this, so that the process-wide count moves only
/// when the test itself moves it.
#[cfg(test)]
pub(crate) static FOLD_REQUEST_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The per-SA counter slot of a drop reason on an SA of direction `dir`, or
/// `None` for the reasons that never concern such an SA: those are counted
/// per worker only (`DropCounters`). Exhaustive on purpose: a new reason
/// must be placed.
///
/// Slots 0, 1 and 2 depend on the direction: `Replayed` and `OutsideWindow`
/// come from the replay window and `IcvMismatch` from the ICV check, which
/// only decap reaches, after its direction check (an outbound SA found
/// there is dropped as `WrongDirection` first); `NoRoom` and `TooBig` come
/// from encap, after its direction check, and from the egress path's
/// pre-fragmentation, which only sees SAs of the outbound table;
/// `SeqExhausted` from encap's sequence reservation (after its direction
/// check) or an outbound SA that ran out of numbers (an inbound SA never
/// reserves numbers). The other ten reasons have a slot in both directions.
pub const fn sa_drop_slot(r: DropReason, dir: Direction) -> Option<usize> {
    use DropReason as D;
    let inbound = matches!(dir, Direction::Inbound);
    match r {
        D::Replayed | D::OutsideWindow | D::IcvMismatch if !inbound => None,
        D::NoRoom | D::TooBig | D::SeqExhausted if inbound => None,
        D::Replayed | D::NoRoom => Some(0),
        D::OutsideWindow | D::TooBig => Some(1),
        D::IcvMismatch | D::SeqExhausted => Some(2),
        D::BadPadding => Some(3),
        D::Truncated => Some(4),
        D::Malformed => Some(5),
        D::PolicyMismatch => Some(6),
        D::HardLifetime => Some(7),
        D::UnsupportedPayload => Some(8),
        D::DummyPacket => Some(9),
        D::EcnCeNotEct => Some(10),
        D::WrongDirection => Some(11),
        D::NoBuffer => Some(12),
        D::UnknownSpi
        | D::PolicyDiscard
        | D::NoSa
        | D::TtlExceeded
        | D::NoRoute
        | D::NoNeighbour
        | D::TxFull
        | D::ExceptionFull
        | D::FragInvalid
        | D::FragTooBig
        | D::FragOverlap
        | D::FragDuplicate
        | D::FragTimeout
        | D::FragEvicted
        | D::FragSourceLimit
        | D::NeighbourQueueFull
        | D::UnknownSpiHeldExpired => None,
    }
}

/// The 32-bit slots kept in the SA (52 B).
#[derive(Debug)]
pub(crate) struct DropSlots([AtomicU32; SA_DROP_SLOTS]);

impl DropSlots {
    pub(crate) fn new() -> Self {
        DropSlots(std::array::from_fn(|_| AtomicU32::new(0)))
    }
    /// Counts one drop in slot `i` (the drop path); the drop that takes
    /// the slot to [`FOLD_AT`] requests a fold.
    #[inline]
    pub(crate) fn add(&self, i: usize) {
        if let Some(s) = self.0.get(i) {
            if s.fetch_add(1, Ordering::Relaxed) == FOLD_AT - 1 {
                request_fold();
            }
        }
    }
    /// Counts `n` drops in slot `i` at once, wrapping as `n` calls of
    /// [`DropSlots::add`] would (tests of the fold: billions of drops
    /// without counting them one by one).
    #[cfg(test)]
    pub(crate) fn add_n(&self, i: usize, n: u32) {
        let before = self.0[i].fetch_add(n, Ordering::Relaxed);
        if before < FOLD_AT && u64::from(before) + u64::from(n) >= u64::from(FOLD_AT) {
            request_fold();
        }
    }
}

/// What the folds moved out of an SA's slots: 64-bit totals and the
/// sequence count that brackets each fold (odd while one runs).
#[derive(Debug, Default)]
pub(crate) struct Folded {
    seq: AtomicU64,
    total: [AtomicU64; SA_DROP_SLOTS],
}

/// The folded totals of an SA: none until its first fold (8 B in the SA).
pub(crate) type FoldedTotals = ArcSwapOption<Folded>;

const _: () = assert!(std::mem::size_of::<FoldedTotals>() == 8);

/// The count in slot `i`: the slot plus what the folds moved out of it.
pub(crate) fn read(slots: &DropSlots, folded: &FoldedTotals, i: usize) -> u64 {
    let Some(slot) = slots.0.get(i) else {
        return 0;
    };
    let first = slot.load(Ordering::Acquire);
    let guard = folded.load();
    let Some(f) = guard.as_deref() else {
        // No fold of this SA had subtracted anything when `first` was read.
        return u64::from(first);
    };
    loop {
        let s1 = f.seq.load(Ordering::SeqCst);
        if s1 & 1 == 0 {
            let lo = slot.load(Ordering::SeqCst);
            let hi = f.total[i].load(Ordering::SeqCst);
            if f.seq.load(Ordering::SeqCst) == s1 {
                return hi + u64::from(lo);
            }
        }
        std::hint::spin_loop();
    }
}

/// Folds every slot at or above [`FOLD_AT`] into its total; true if it
/// folded any. One caller at a time per SA (`Sad::fold_drops_step` holds
/// the table's writer lock; an SA is in one table); never on the packet
/// path (it may allocate the SA's `Folded` block).
pub(crate) fn fold(slots: &DropSlots, folded: &FoldedTotals) -> bool {
    let mut any = false;
    for (i, slot) in slots.0.iter().enumerate() {
        let v = slot.load(Ordering::Relaxed);
        if v < FOLD_AT {
            continue;
        }
        any = true;
        let f = match folded.load_full() {
            Some(f) => f,
            None => {
                let f = Arc::new(Folded::default());
                folded.store(Some(f.clone()));
                f
            }
        };
        f.seq.fetch_add(1, Ordering::SeqCst);
        slot.fetch_sub(v, Ordering::SeqCst);
        f.total[i].fetch_add(u64::from(v), Ordering::SeqCst);
        f.seq.fetch_add(1, Ordering::SeqCst);
    }
    any
}
