//! Security Association Database: SAs by SPI, read lock-free by workers while
//! a management thread adds, replaces and removes entries.
//!
//! A three-level table:
//! - a root (`ArcSwap`) pointing to an array of pages;
//! - shard pointers grouped in pages of 128;
//! - each shard one block of cache-line buckets of five slots, open
//!   addressing with linear probing. A slot is a key (`AtomicU32`, the SPI)
//!   and an `Arc<Sa>` written once (`espresso_core::shm::keyed::KeyedSlots`:
//!   five keys and five pointers in 64 bytes; `OnceLock<Arc<Sa>>` took 16
//!   bytes a slot and left room for three). Two slots per SA: 25.6 bytes
//!   of index per SA, and about one SA in 30 outside its home bucket.
//!
//! Pages: a table of many SAs is tens of megabytes read at random (26-32
//! MB at 1,000,000 SAs); on 4 KB pages nearly every lookup would also miss the
//! TLB and walk the page tables. So a table made for [`HUGE_TABLE`] SAs or
//! more has few, large shards (about [`HUGE_SHARD_SAS`] SAs each), and every
//! shard block of 2 MB or more, whatever the table, is its own mapping
//! advised `MADV_HUGEPAGE` (`espresso_core::shm::huge`: transparent huge
//! pages, nothing to reserve; 4 KB pages where the kernel has no 2 MB page
//! or refuses the mapping). Such a shard's bucket count is rounded up to
//! fill its last 2 MB page when that adds at most half (1,000,000 SAs:
//! 8 shards of 3.2 MB rounded to 4 MB, 32 MB of index).
//!
//! A slot goes through three states and never back: empty (key `EMPTY`, no
//! value), live (value set, then key = its SPI, both by the writer) and
//! dead (key `DEAD`, value kept). So most updates happen in place, in
//! the one cache line of the slot:
//! - an insert fills the first empty slot of the SPI's probe sequence;
//! - a removal stores `DEAD` in the key (the SA it holds stays allocated,
//!   probes go past it);
//! - a replacement (same SPI) fills a new slot, then kills the old one.
//!
//! A shard is rebuilt (read-copy-update: a new shard with only its live SAs
//! and room for as many again, a new page, a new page array, a new root)
//! only when an insert would use more than 3/4 of its slots, or when a
//! removal leaves more dead slots than live ones; at 10,000 installs and
//! removals per second on shards of ~50 SAs that is a few shards per 100
//! updates, instead of one per update. Dead slots hold their removed SAs
//! until then (bounded: never more than 3/4 of a shard's slots; a shard
//! emptied by removals is rebuilt, and its SAs freed, at once).
//!
//! What a reader may see, and why it is safe (`sa/` has no `unsafe`; the
//! guarantees come from the types):
//! - A worker loads the root once per burst ([`Sad::load`]: one `arc-swap`
//!   guard, no lock, no reference-count write in the common case) and then
//!   looks up SPIs through plain references that live as long as the guard.
//!   Every shard and SA it can reach stays allocated while it holds the
//!   guard: shards are reference-counted blocks owned by the tables, a
//!   slot's value is never taken out or overwritten (`KeyedSlots` writes
//!   it once), and values are dropped only with their whole shard.
//! - Lookups only load: keys with `Acquire`, then the value of a slot
//!   whose key matched. The writer sets the value before it stores the
//!   key (`Release`), so a key that matches always has its value; a
//!   slot's key is only ever `EMPTY`, `DEAD` (reserved SPIs 0 and 1; 2
//!   while being written) or the SPI of its value, so a hit can never
//!   return another SPI's SA (no torn entry).
//! - A lookup that runs while an SA is installed, replaced or removed finds
//!   the old state or the new one (a replacement: the old SA or the new).
//!   An SA removed before the burst's `load` is not found.
//! - Tables retired by a rebuild are kept by the writer until no reader
//!   holds them (`Arc::strong_count` back to 1; `arc-swap` turns a reader's
//!   borrowed guard into a counted reference before `swap` returns), then
//!   dropped by the writer: a worker is never the last owner of a shard or
//!   an SA, so nothing is freed on the packet path.
//! - Writers are serialised by a mutex that readers never touch. A batch
//!   ([`Sad::apply`]) rebuilds each shard it must rebuild once and
//!   publishes once, so 1,000,000 SAs install in seconds.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
/// Where shard blocks go ([`Sad::with_capacity_placed`]).
pub use espresso_core::shm::huge::Placement;
use espresso_core::shm::huge::{HugeArc, HEADER, HUGE_PAGE};
use espresso_core::shm::keyed::{KeyedSlots, Lookup, EMPTY};

use super::drops::{fold_requests, FOLD_CHUNK};
use super::policy::SaEvent;
use super::runtime::Sa;
use crate::crypto::mb::prefetch::prefetch;

/// One change to the SAD.
#[derive(Debug)]
pub enum SadOp {
    /// Add or replace the SA with this SA's SPI.
    Insert(Arc<Sa>),
    /// Remove the SA with this SPI.
    Remove(u32),
}

/// Shards per page.
const PAGE: usize = 128;

/// SPIs looked up together by [`SadTable::get_burst`] (a burst of packets).
pub const BURST_LOOKUP: usize = 32;

/// Slots per bucket: five keys (20 B, padded to 24) and five `Arc`
/// pointers (40 B) fill one cache line.
const BUCKET: usize = 5;

/// One cache line of a shard: keys first (a probe compares all five at
/// once), then the values (`espresso_core::shm::keyed`: write-once slots
/// published under their key; a dead slot's key is `DEAD`, an unused
/// one's `EMPTY`). Aligned so that a shard's header (the reference count a
/// rebuild touches) sits alone in the line before the first bucket, never
/// in a line that readers load.
#[derive(Default)]
#[repr(C, align(64))]
struct Bucket(KeyedSlots<Arc<Sa>, BUCKET>);

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// A shard: open addressing over buckets (linear probing bucket by bucket,
/// wrapping), in one block (reference count, then the buckets: a lookup
/// costs one dependent cache miss after the page; on 2 MB pages when the
/// block is that large). Keys `EMPTY` (0) and `DEAD` (1) mark empty and
/// dead slots (SPIs 0..=255 are reserved and never installed). Slots of a
/// bucket fill from the front and never become empty again, so a bucket
/// whose last slot is empty ends a probe; at least a quarter of the slots
/// stay empty.
type Shard = HugeArc<Bucket>;

/// Tables made for at least this many SAs ([`Sad::with_capacity`]) get
/// shards of about [`HUGE_SHARD_SAS`] SAs: blocks of several 2 MB pages.
/// Below, the index (26 B per SA) stays within what the TLB covers with
/// 4 KB pages (Zen 4: 3,072 entries, 12 MB) and shards stay small (a few
/// dozen SAs: a rebuild copies little).
pub const HUGE_TABLE: usize = 1 << 18;

/// SAs per shard of a table made for [`HUGE_TABLE`] SAs or more: a shard
/// built for 131,072 SAs has 52,429 buckets (3.2 MB), rounded up to two
/// 2 MB pages (65,535 buckets). Its rebuild (once per ~115,000 installs
/// into it, or as many removals) copies that much at once.
pub const HUGE_SHARD_SAS: usize = 1 << 17;

/// Buckets for a shard rebuilt with `n` SAs: two slots per SA (more when a
/// block on 2 MB pages is rounded up, see [`shard_buckets`]).
fn buckets_for(n: usize) -> usize {
    shard_buckets((2 * n).div_ceil(BUCKET).max(1))
}

/// The bucket count of a shard that needs `nb`: a block of 2 MB or more
/// (the header line and the buckets) is rounded up to whole 2 MB pages when
/// that adds at most half (the kernel backs a 2 MB page whole anyway, and
/// lookups that land in a tail on 4 KB pages miss the TLB); otherwise its
/// tail stays on 4 KB pages.
fn shard_buckets(nb: usize) -> usize {
    let line = std::mem::size_of::<Bucket>();
    let bytes = HEADER + nb * line;
    if bytes < HUGE_PAGE {
        return nb;
    }
    let full = bytes.next_multiple_of(HUGE_PAGE);
    if (full - bytes) * 2 <= bytes {
        (full - HEADER) / line
    } else {
        nb
    }
}

/// Slots a shard of `nb` buckets may use (live + dead) before a rebuild.
fn slot_limit(nb: usize) -> usize {
    nb * BUCKET * 3 / 4
}

fn new_shard(nb: usize, placement: Placement) -> Shard {
    HugeArc::new_default(nb, placement)
}

/// The first bucket of `spi`'s probe in a shard of `nb` buckets (the hash
/// bits above the shard index, scaled to `nb`: no power of two needed).
#[inline(always)]
fn home(h: u64, shard_bits: u32, nb: usize) -> usize {
    ((u64::from((h >> shard_bits) as u32) * nb as u64) >> 32) as usize
}

/// What one bucket says about an SPI.
enum Probe<'a> {
    /// Found, or known absent (`None`).
    Done(Option<&'a Arc<Sa>>),
    /// Not decided here: go on with the next bucket.
    Next,
}

/// One bucket of a probe.
///
/// The five keys of a bucket are compared at once into a bit mask (no
/// branch on which slot matched, which a random SPI would mispredict);
/// an empty last slot ends the probe.
#[inline(always)]
fn bucket_probe(bk: &Bucket, spi: u32) -> Probe<'_> {
    match bk.0.lookup(spi) {
        Lookup::Found(sa) => Probe::Done(Some(sa)),
        Lookup::Absent => Probe::Done(None),
        Lookup::Next => Probe::Next,
    }
}

/// Linear probing from bucket `b`.
#[inline(always)]
fn shard_probe(shard: &[Bucket], spi: u32, mut b: usize) -> Option<&Arc<Sa>> {
    let nb = shard.len();
    for _ in 0..nb {
        if let Probe::Done(r) = bucket_probe(shard.get(b)?, spi) {
            return r;
        }
        b += 1;
        if b == nb {
            b = 0;
        }
    }
    None
}

/// Live entries of a shard.
fn shard_iter(shard: &[Bucket]) -> impl Iterator<Item = (u32, &Arc<Sa>)> {
    shard
        .iter()
        .flat_map(|bk| (0..BUCKET).filter_map(move |i| bk.0.live(i)))
}

/// Where `spi` is in a shard (the writer's probe): its live slot, and the
/// first empty slot of its probe sequence.
type Slot = (usize, usize);
fn shard_find(shard: &[Bucket], spi: u32, mut b: usize) -> (Option<Slot>, Option<Slot>) {
    let nb = shard.len();
    let (mut live, mut empty) = (None, None);
    for _ in 0..nb {
        let Some(bk) = shard.get(b) else { break };
        for i in 0..BUCKET {
            let k = bk.0.key(i);
            if k == spi && live.is_none() {
                live = Some((b, i));
            } else if k == EMPTY && empty.is_none() {
                empty = Some((b, i));
            }
        }
        if empty.is_some() {
            break;
        }
        b += 1;
        if b == nb {
            b = 0;
        }
    }
    (live, empty)
}

/// Builds a shard holding `items` (distinct SPIs).
fn build_shard(items: &[(u32, Arc<Sa>)], shard_bits: u32, placement: Placement) -> Shard {
    let shard = new_shard(buckets_for(items.len()), placement);
    for (spi, sa) in items {
        let (_, empty) = shard_find(&shard, *spi, home(hash(*spi), shard_bits, shard.len()));
        // A new shard has twice as many slots as items: always room.
        if let Some((b, i)) = empty {
            let _ = shard[b].0.publish(i, *spi, sa.clone());
        }
    }
    shard
}

#[inline(always)]
fn hash(spi: u32) -> u64 {
    (u64::from(spi).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 16
}

/// A published version of the SAD: what a worker reads during one burst.
pub struct SadTable {
    /// Shards in pages of up to [`PAGE`] (a rebuild copies one page and the
    /// page array, not every shard pointer).
    pages: Box<[Arc<[Shard]>]>,
    page_bits: u32,
    page_mask: usize,
    shard_mask: usize,
    shard_bits: u32,
    /// Where shard blocks go (2 MB pages for large ones, or the heap).
    placement: Placement,
    /// Live SAs (updated in place by the writer).
    len: AtomicUsize,
}

impl SadTable {
    #[inline(always)]
    fn shard(&self, si: usize) -> &[Bucket] {
        &self.pages[si >> self.page_bits][si & self.page_mask]
    }
    /// The SA with this SPI.
    #[inline]
    pub fn get(&self, spi: u32) -> Option<&Arc<Sa>> {
        let h = hash(spi);
        let shard = self.shard(h as usize & self.shard_mask);
        shard_probe(shard, spi, home(h, self.shard_bits, shard.len()))
    }
    /// Looks up a burst of SPIs (up to `min(spis.len(), out.len())`), in
    /// two passes over groups of [`BURST_LOOKUP`]:
    ///
    /// 1. hash every SPI once and find its shard and home bucket (the shard
    ///    pointers of the whole group first), then prefetch every home
    ///    bucket (`crypto::mb::prefetch`, a cache hint: unlike a load it
    ///    retires without waiting for its line, so the misses of the whole
    ///    group are in flight together, not only as many as the reorder
    ///    window holds);
    /// 2. probe each home bucket, now in cache or on its way; an SPI that
    ///    its home bucket does not decide gets its next bucket prefetched;
    /// 3. probe those SPIs on from their next bucket.
    ///
    /// Same results as [`SadTable::get`] per SPI.
    #[inline]
    pub fn get_burst<'a>(&'a self, spis: &[u32], out: &mut [Option<&'a Arc<Sa>>]) {
        let n = spis.len().min(out.len());
        for (spis, out) in spis[..n]
            .chunks(BURST_LOOKUP)
            .zip(out[..n].chunks_mut(BURST_LOOKUP))
        {
            let mut at: [(&'a [Bucket], usize); BURST_LOOKUP] = [(&[], 0); BURST_LOOKUP];
            // Shard pointers of the whole burst first, then the prefetches:
            // the bucket addresses of the burst are independent and the
            // prefetches close together.
            for (&spi, a) in spis.iter().zip(at.iter_mut()) {
                let h = hash(spi);
                let shard: &'a [Bucket] = self.shard(h as usize & self.shard_mask);
                *a = (shard, home(h, self.shard_bits, shard.len()));
            }
            for &(shard, b) in at[..spis.len()].iter() {
                if let Some(bucket) = shard.get(b) {
                    prefetch(bucket);
                }
            }
            // Home buckets; an SPI not decided there (about 6 % of them in a
            // freshly built shard, more after churn) gets its next bucket
            // prefetched and waits for pass 3, so that these second misses
            // overlap one another and the rest of this pass instead of each
            // stalling the pass in turn.
            let mut later = [0u8; BURST_LOOKUP];
            let mut nl = 0;
            for (i, ((&spi, &(shard, b)), o)) in
                spis.iter().zip(at.iter()).zip(out.iter_mut()).enumerate()
            {
                *o = None;
                let Some(bucket) = shard.get(b) else { continue };
                match bucket_probe(bucket, spi) {
                    Probe::Done(r) => *o = r,
                    Probe::Next => {
                        let next = if b + 1 == shard.len() { 0 } else { b + 1 };
                        if let Some(nbk) = shard.get(next) {
                            prefetch(nbk);
                        }
                        later[nl] = i as u8;
                        nl += 1;
                    }
                }
            }
            for &i in &later[..nl] {
                let i = i as usize;
                let (shard, b) = at[i];
                let next = if b + 1 == shard.len() { 0 } else { b + 1 };
                out[i] = shard_probe(shard, spis[i], next);
            }
        }
    }
    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
    /// True if there is no SA.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of the index itself (page array, pages of shard pointers,
    /// shards of buckets with their reference-count headers), not counting
    /// the SAs it points to. Shared pages and shards are counted once.
    pub fn index_bytes(&self) -> usize {
        use std::collections::HashSet;
        let arc_hdr = 2 * std::mem::size_of::<usize>();
        let mut seen_pages = HashSet::new();
        let mut seen_shards = HashSet::new();
        let mut bytes = std::mem::size_of::<SadTable>()
            + self.pages.len() * std::mem::size_of::<Arc<[Shard]>>();
        for p in self.pages.iter() {
            if !seen_pages.insert(p.as_ptr() as usize) {
                continue;
            }
            bytes += arc_hdr + p.len() * std::mem::size_of::<Shard>();
            for sh in p.iter() {
                if seen_shards.insert(sh.as_ptr() as usize) {
                    // The header line and the buckets; a whole mapping
                    // when the shard has its own.
                    bytes += sh.block_bytes();
                }
            }
        }
        bytes
    }
    /// Bytes of the shard blocks that have a mapping of their own advised
    /// for 2 MB pages (the rest of [`SadTable::index_bytes`] is heap).
    pub fn index_mapped_bytes(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .filter(|sh| sh.is_mapped() && seen.insert(sh.as_ptr() as usize))
            .map(|sh| sh.block_bytes())
            .sum()
    }
    /// Shards of this table (the count never changes).
    pub fn shards(&self) -> usize {
        self.shard_mask + 1
    }
    /// Every SA (management use).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Sa>> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .flat_map(|s| shard_iter(s).map(|(_, v)| v))
    }
}

/// The writer's bookkeeping for one shard of the current table.
#[derive(Clone, Copy, Default)]
struct ShardUse {
    /// Live slots.
    live: u32,
    /// Live and dead slots.
    used: u32,
    /// To be rebuilt by the current `apply`.
    rebuild: bool,
    /// Rebuilds of this shard so far (wrapping): a fold walk inside the
    /// shard starts it again when this moved (its slots were rearranged).
    generation: u32,
}

/// What only the writer touches (behind the mutex).
struct Writer {
    /// Per shard index (the shard count never changes).
    shards: Vec<ShardUse>,
    /// Tables replaced by a rebuild that a reader may still hold: dropped
    /// by the writer once it is their only owner.
    retired: Vec<Arc<SadTable>>,
    /// Shard rebuilds so far (tests and benchmarks).
    rebuilds: u64,
    /// The drop-counter fold's progress.
    fold: FoldState,
}

/// Where the fold of the drop counters is (`sa/drops.rs`).
#[derive(Default)]
struct FoldState {
    /// The fold-request count when the last walk began.
    seen: u64,
    /// The next walk goes ahead without a new request
    /// ([`Sad::request_fold_walk`]).
    forced: bool,
    /// The walk under way, if any.
    walk: Option<FoldCursor>,
}

/// The next SA a walk looks at: bucket `bucket` of shard `shard`, as of
/// that shard's `generation`.
#[derive(Clone, Copy, Default)]
struct FoldCursor {
    shard: usize,
    bucket: usize,
    generation: u32,
}

/// What one [`Sad::fold_drops_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldStep {
    /// SAs looked at.
    pub visited: usize,
    /// SAs with at least one slot folded.
    pub folded: usize,
    /// No walk left under way (the step finished one, or had none to do).
    pub done: bool,
}

impl Writer {
    fn drop_retired(&mut self) {
        self.retired.retain(|t| Arc::strong_count(t) > 1);
    }
}

/// The SAD.
pub struct Sad {
    root: ArcSwap<SadTable>,
    /// Serialises writers; their bookkeeping.
    writer: Mutex<Writer>,
    /// The count of raised events (`runtime::ev::raised`) when the last
    /// [`Sad::collect_events`] walk began (management thread only).
    events_seen: AtomicU64,
}

impl Default for Sad {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl std::fmt::Debug for Sad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sad").field("len", &self.len()).finish()
    }
}

impl Sad {
    /// An empty SAD sized for about `n` SAs (it still grows past that: a
    /// shard grows when it is rebuilt; the shard count only sets how much
    /// a rebuild copies). From [`HUGE_TABLE`] SAs on, shards are large and
    /// on 2 MB pages (see the module documentation).
    pub fn with_capacity(n: usize) -> Sad {
        Self::with_capacity_placed(n, Placement::Huge)
    }

    /// [`Sad::with_capacity`] with shard blocks placed as `placement` says:
    /// [`Placement::Huge`] (the default) puts blocks of 2 MB or more on
    /// transparent huge pages, [`Placement::Heap`] keeps every block on the
    /// heap (4 KB pages; benchmarks compare the two).
    pub fn with_capacity_placed(n: usize, placement: Placement) -> Sad {
        let nshards = if n >= HUGE_TABLE {
            (n / HUGE_SHARD_SAS).next_power_of_two()
        } else {
            (n / 64).next_power_of_two().clamp(16, 1 << 16)
        };
        let shard_bits = nshards.trailing_zeros();
        let nb = buckets_for(n.div_ceil(nshards));
        let page_len = nshards.min(PAGE);
        let table = SadTable {
            pages: (0..nshards / page_len)
                .map(|_| (0..page_len).map(|_| new_shard(nb, placement)).collect())
                .collect(),
            page_bits: page_len.trailing_zeros(),
            page_mask: page_len - 1,
            shard_mask: nshards - 1,
            shard_bits,
            placement,
            len: AtomicUsize::new(0),
        };
        Sad {
            root: ArcSwap::from_pointee(table),
            writer: Mutex::new(Writer {
                shards: vec![ShardUse::default(); nshards],
                retired: Vec::new(),
                rebuilds: 0,
                fold: FoldState::default(),
            }),
            events_seen: AtomicU64::new(0),
        }
    }

    /// The current table, for one burst of lookups. Lock-free; hold it only
    /// briefly (it keeps the SAs it references alive).
    #[inline]
    pub fn load(&self) -> Guard<Arc<SadTable>> {
        self.root.load()
    }

    /// The SA with this SPI (management use: clones the `Arc`).
    pub fn get(&self, spi: u32) -> Option<Arc<Sa>> {
        self.root.load().get(spi).cloned()
    }

    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.root.load().len()
    }

    /// True if there is no SA.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shards rebuilt so far (the rest of the updates were made in place).
    pub fn rebuilds(&self) -> u64 {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rebuilds
    }

    /// Adds or replaces the SA with `sa`'s SPI; returns the one replaced.
    pub fn insert(&self, sa: Arc<Sa>) -> Option<Arc<Sa>> {
        let spi = sa.spi();
        let old = self.root.load().get(spi).cloned();
        self.apply([SadOp::Insert(sa)]);
        old
    }

    /// Removes the SA with this SPI; returns it.
    pub fn remove(&self, spi: u32) -> Option<Arc<Sa>> {
        let old = self.root.load().get(spi).cloned();
        if old.is_some() {
            self.apply([SadOp::Remove(spi)]);
        }
        old
    }

    /// Applies a batch of changes in order: in place where the shard has
    /// room (see the module documentation), the rest by rebuilding each
    /// shard concerned once and publishing one new root.
    pub fn apply(&self, ops: impl IntoIterator<Item = SadOp>) {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let w = &mut *guard;
        w.drop_retired();
        let cur = self.root.load_full();
        // Ops on shards marked for rebuild, with their shard, in order.
        let mut later: Vec<(usize, SadOp)> = Vec::new();
        let mut marked: Vec<usize> = Vec::new();
        let mut len = cur.len();
        for op in ops {
            let spi = match &op {
                SadOp::Insert(sa) => sa.spi(),
                SadOp::Remove(spi) => *spi,
            };
            // Reserved SPIs (0..=255: never an SA; 0, 1 and 2 are the
            // slots' empty, dead and busy keys).
            if spi <= 255 {
                continue;
            }
            let h = hash(spi);
            let si = h as usize & cur.shard_mask;
            let u = &mut w.shards[si];
            if u.rebuild {
                later.push((si, op));
                continue;
            }
            let shard = cur.shard(si);
            let (live, empty) = shard_find(shard, spi, home(h, cur.shard_bits, shard.len()));
            match op {
                SadOp::Insert(sa) => match empty {
                    Some((b, i)) if (u.used as usize) < slot_limit(shard.len()) => {
                        // Value first, then the key that publishes it (the
                        // writer is alone: the slot is empty).
                        let _ = shard[b].0.publish(i, spi, sa);
                        u.used += 1;
                        match live {
                            Some((ob, oi)) => {
                                shard[ob].0.kill(oi, spi);
                            }
                            None => {
                                u.live += 1;
                                len += 1;
                            }
                        }
                    }
                    _ => {
                        u.rebuild = true;
                        marked.push(si);
                        later.push((si, SadOp::Insert(sa)));
                    }
                },
                SadOp::Remove(_) => {
                    if let Some((ob, oi)) = live {
                        shard[ob].0.kill(oi, spi);
                        u.live -= 1;
                        len -= 1;
                        if u.used - u.live > u.live {
                            u.rebuild = true;
                            marked.push(si);
                        }
                    }
                }
            }
        }
        if marked.is_empty() {
            cur.len.store(len, Ordering::Relaxed);
            return;
        }
        // Rebuild the marked shards: their live SAs, then their later ops.
        marked.sort_unstable();
        later.sort_by_key(|(si, _)| *si); // stable: keeps each shard's order
        let mut later = later.into_iter().peekable();
        let mut pages: Box<[Arc<[Shard]>]> = cur.pages.clone();
        let mut page_copy: Option<(usize, Vec<Shard>)> = None;
        let mut entries: Vec<(u32, Arc<Sa>)> = Vec::new();
        for si in marked {
            let (pi, off) = (si >> cur.page_bits, si & cur.page_mask);
            if page_copy.as_ref().is_some_and(|(p, _)| *p != pi) {
                if let Some((p, v)) = page_copy.take() {
                    pages[p] = Arc::from(v);
                }
            }
            let page = &mut page_copy.get_or_insert_with(|| (pi, pages[pi].to_vec())).1;
            // A shard holds a few dozen SAs: a vector searched linearly
            // costs the writer less than a map.
            entries.clear();
            entries.extend(shard_iter(&page[off]).map(|(k, v)| (k, v.clone())));
            len -= entries.len();
            while let Some((_, op)) = later.next_if(|(s, _)| *s == si) {
                match op {
                    SadOp::Insert(sa) => {
                        let spi = sa.spi();
                        match entries.iter_mut().find(|(k, _)| *k == spi) {
                            Some(e) => e.1 = sa,
                            None => entries.push((spi, sa)),
                        }
                    }
                    SadOp::Remove(spi) => {
                        if let Some(i) = entries.iter().position(|(k, _)| *k == spi) {
                            entries.swap_remove(i);
                        }
                    }
                }
            }
            len += entries.len();
            page[off] = build_shard(&entries, cur.shard_bits, cur.placement);
            let n = entries.len() as u32;
            w.shards[si] = ShardUse {
                live: n,
                used: n,
                rebuild: false,
                generation: w.shards[si].generation.wrapping_add(1),
            };
            w.rebuilds += 1;
        }
        if let Some((p, v)) = page_copy.take() {
            pages[p] = Arc::from(v);
        }
        entries.clear();
        // The replaced table is kept until no reader holds it and dropped
        // here, by the writer: a worker that was the last owner would free
        // its shards and the removed SAs on the packet path (measured
        // before: lookups 1.5-1.8x slower at 1M SAs under 10k updates/s).
        let old = self.root.swap(Arc::new(SadTable {
            pages,
            page_bits: cur.page_bits,
            page_mask: cur.page_mask,
            shard_mask: cur.shard_mask,
            shard_bits: cur.shard_bits,
            placement: cur.placement,
            len: AtomicUsize::new(len),
        }));
        drop(cur);
        w.retired.push(old);
        w.drop_retired();
    }

    /// Collects the events of every SA (lifetimes, sequence exhaustion).
    /// Management thread only. Walks the table only if some SA (of any
    /// table: the count is process-wide) raised an event since the last
    /// walk began; otherwise one atomic load. No event is lost: a raise
    /// sets its SA's pending bit, then bumps the count; a walk loads the
    /// count first, so it sees every bit behind a count it loaded, and a
    /// bump it did not see makes the next call walk. Returns the SAs
    /// looked at (0: no walk).
    pub fn collect_events(&self, out: &mut Vec<SaEvent>) -> usize {
        let raised = super::runtime::ev::raised();
        if self.events_seen.load(Ordering::Relaxed) == raised {
            return 0;
        }
        self.events_seen.store(raised, Ordering::Relaxed);
        let t = self.root.load();
        let mut seen = 0;
        for sa in t.iter() {
            seen += 1;
            if sa.has_events() {
                sa.take_events(out);
            }
        }
        seen
    }

    /// One step of the drop-counter fold (`sa/drops.rs`): the management
    /// thread, every tick while a walk is under way ([`FoldStep::done`]
    /// false), every [`super::FOLD_PERIOD`] otherwise. With no walk under
    /// way, a walk begins only if some slot reached 2^31 since the last one
    /// began (or [`Sad::request_fold_walk`] asked); else the step costs one
    /// atomic load under the writer lock. A step looks at up to `chunk` SAs
    /// (management: [`FOLD_CHUNK`]; at least 1) and folds those with a slot at
    /// 2^31 or more, under the writer lock (one fold at a time; installs and
    /// removals wait for one chunk at most, and go on between chunks).
    ///
    /// A walk goes through the shards in index order, each bucket by bucket
    /// (shard indices never change; an SA stays in its shard). An SA
    /// installed or removed between two chunks may be looked at or not (a
    /// new SA's slots are below 2^31 when its install finishes; the walk
    /// its own crossing requests will see it); a shard rebuilt while the
    /// walk is inside it is walked again from its first bucket, whole in
    /// one step, so an SA live all along is never passed over and the walk
    /// ends whatever the churn.
    pub fn fold_drops_step(&self, chunk: usize) -> FoldStep {
        let mut guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let w = &mut *guard;
        let mut cur = match w.fold.walk.take() {
            Some(c) => c,
            None => {
                let req = fold_requests();
                if req == w.fold.seen && !w.fold.forced {
                    return FoldStep {
                        done: true,
                        ..FoldStep::default()
                    };
                }
                w.fold.seen = req;
                w.fold.forced = false;
                FoldCursor::default()
            }
        };
        let chunk = chunk.max(1);
        let t = self.root.load();
        let mut step = FoldStep::default();
        let nshards = t.shards();
        while cur.shard < nshards && step.visited < chunk {
            let generation = w.shards[cur.shard].generation;
            // Rebuilt since the last chunk: its SAs moved. Walked again
            // from its start, whole, in this step (so that a shard rebuilt
            // more often than chunks cross it still gets walked: this
            // costs the writer lock about what the rebuild that moved the
            // SAs did, which copied every one of them).
            let whole = cur.bucket != 0 && cur.generation != generation;
            if whole {
                cur.bucket = 0;
            }
            cur.generation = generation;
            let shard = t.shard(cur.shard);
            while whole || step.visited < chunk {
                let Some(bk) = shard.get(cur.bucket) else {
                    break;
                };
                for (_, sa) in (0..BUCKET).filter_map(|i| bk.0.live(i)) {
                    step.visited += 1;
                    step.folded += usize::from(sa.fold_drops());
                }
                cur.bucket += 1;
            }
            if cur.bucket >= shard.len() {
                cur = FoldCursor {
                    shard: cur.shard + 1,
                    ..FoldCursor::default()
                };
            }
        }
        step.done = cur.shard >= nshards;
        if !step.done {
            w.fold.walk = Some(cur);
        }
        step
    }

    /// Makes the next [`Sad::fold_drops_step`] that has no walk under way
    /// begin one, requested or not (tests, benchmarks: the cost of a walk).
    pub fn request_fold_walk(&self) {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.fold.forced = true;
    }

    /// [`Sad::fold_drops_step`] until no walk is under way, in chunks of
    /// [`FOLD_CHUNK`] (the writer lock released between them); the
    /// steps' sums.
    pub fn fold_drops(&self) -> FoldStep {
        let mut all = FoldStep::default();
        loop {
            let s = self.fold_drops_step(FOLD_CHUNK);
            all.visited += s.visited;
            all.folded += s.folded;
            if s.done {
                all.done = true;
                return all;
            }
        }
    }
}

#[cfg(test)]
mod event_tests;
#[cfg(test)]
mod fold_tests;
