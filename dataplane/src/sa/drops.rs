//! Per-SA drop counters: which reasons an SA of each direction counts, and
//! the counters themselves, 32 bits each in the SA, folded into 64-bit
//! totals by the management thread.
//!
//! Why 32 bits: the [`super::Sa`] struct is four cache lines (256 B), and
//! 13 64-bit drop counters would take 104 of them. A worker counts a drop
//! with one `fetch_add` on a 32-bit slot (the drop path only; a packet
//! that passes touches none of this). The management thread folds
//! ([`fold`], from `Sad::fold_drops`, every [`FOLD_PERIOD`]): a slot that
//! reached [`FOLD_AT`] (2^31) moves what it holds into a 64-bit total in
//! a block allocated by the management thread the first time an SA needs
//! one ([`Folded`]; most SAs never do). Readers ([`read`]) add the slot
//! and its total.
//!
//! Why no count is lost: a slot wraps only after 2^32 drops; it is folded
//! as soon as a fold finds it at 2^31 or more, so it wraps only if 2^31
//! drops of one reason on one SA arrive between two folds. At the 100 ms
//! fold period that is 21 billion drops per second; 400 GbE carries at
//! most 595 million packets per second (64-byte frames), so a fold may
//! also come up to 3.6 s late (the management thread busy applying
//! commands) at that rate before a count could be lost. The fold
//! subtracts exactly what it read (`fetch_sub`), so drops counted while
//! it runs stay in the slot.
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

/// How often the management thread folds (`process::manage`).
pub const FOLD_PERIOD: Duration = Duration::from_millis(100);

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
    /// Counts one drop in slot `i` (the drop path).
    #[inline]
    pub(crate) fn add(&self, i: usize) {
        if let Some(s) = self.0.get(i) {
            s.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Counts `n` drops in slot `i` at once, wrapping as `n` calls of
    /// [`DropSlots::add`] would (tests of the fold: billions of drops
    /// without counting them one by one).
    #[cfg(test)]
    pub(crate) fn add_n(&self, i: usize, n: u32) {
        self.0[i].fetch_add(n, Ordering::Relaxed);
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

/// Folds every slot at or above [`FOLD_AT`] into its total. One caller at
/// a time per SA (`Sad::fold_drops` holds the table's writer lock); never
/// on the packet path (it may allocate the SA's `Folded` block).
pub(crate) fn fold(slots: &DropSlots, folded: &FoldedTotals) {
    for (i, slot) in slots.0.iter().enumerate() {
        let v = slot.load(Ordering::Relaxed);
        if v < FOLD_AT {
            continue;
        }
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
}
