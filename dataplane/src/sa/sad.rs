//! Security Association Database: SAs by SPI, read lock-free by workers while
//! a management thread adds, replaces and removes entries.
//!
//! Read-copy-update over a three-level table:
//! - a root (`ArcSwap`) pointing to an array of pages;
//! - shard pointers grouped in pages of 128 (an update copies one page and
//!   the page array);
//! - each shard one allocation of cache-line buckets of `(spi, Arc<Sa>)`,
//!   open addressing with linear probing.
//!
//! A worker loads the root once per burst ([`Sad::load`], one `arc-swap`
//! guard, no lock, no reference-count traffic) and then looks up any number
//! of SPIs through plain references. A writer (serialised by a mutex that
//! readers never touch) copies only the shards it changes, their pages and
//! the page array, then publishes the new root; old shards are freed when the last
//! reader drops its guard. A batch ([`Sad::apply`]) publishes many changes
//! with one copy, so 1,000,000 SAs install in seconds.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use super::policy::SaEvent;
use super::runtime::Sa;

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

/// Entries per bucket: one 64-byte cache line of `(spi, Arc<Sa>)` pairs.
const BUCKET: usize = 4;

/// One cache line of a shard. Aligned so that a shard's `Arc` header (the
/// reference count an updater touches) sits alone in the line before the
/// first bucket, never in a line that readers load.
#[derive(Clone, Default)]
#[repr(align(64))]
struct Bucket([(u32, Option<Arc<Sa>>); BUCKET]);

/// A shard: open addressing over buckets (linear probing bucket by bucket),
/// in one allocation so that a lookup costs one dependent cache miss after
/// the root array. SPI 0 marks an empty slot (SPIs 0..=255 are reserved).
/// The bucket count is a power of two and at least one slot stays empty.
type Shard = Arc<[Bucket]>;

fn empty_shard() -> Shard {
    Arc::from(vec![Bucket::default()])
}

fn build_shard(items: impl Iterator<Item = (u32, Arc<Sa>)>, n: usize, shard_bits: u32) -> Shard {
    let nb = (n * 2).div_ceil(BUCKET).next_power_of_two().max(1);
    let mut buckets = vec![Bucket::default(); nb];
    let mask = nb - 1;
    for (spi, sa) in items {
        let mut b = (hash(spi) >> shard_bits) as usize & mask;
        'place: loop {
            for e in buckets[b].0.iter_mut() {
                if e.0 == 0 {
                    *e = (spi, Some(sa));
                    break 'place;
                }
            }
            b = (b + 1) & mask;
        }
    }
    Arc::from(buckets)
}

#[inline(always)]
fn shard_get(shard: &[Bucket], spi: u32, h: u64, shard_bits: u32) -> Option<&Arc<Sa>> {
    let mask = shard.len().wrapping_sub(1);
    shard_probe(shard, spi, (h >> shard_bits) as usize & mask)
}

/// Linear probing from bucket `b`.
#[inline(always)]
///
/// The four slots of a bucket are compared at once into bit masks (no
/// branch on which slot matched, which a random SPI would mispredict half
/// the time). Slots fill from the front and shards are rebuilt rather than
/// edited in place, so a bucket with an empty slot ends the probe.
fn shard_probe(shard: &[Bucket], spi: u32, mut b: usize) -> Option<&Arc<Sa>> {
    let mask = shard.len().wrapping_sub(1);
    for _ in 0..shard.len() {
        let e = &shard.get(b)?.0;
        let hit = (e[0].0 == spi) as u32
            | ((e[1].0 == spi) as u32) << 1
            | ((e[2].0 == spi) as u32) << 2
            | ((e[3].0 == spi) as u32) << 3;
        // SPI 0 marks empty slots and is never installed.
        if hit != 0 && spi != 0 {
            return e[hit.trailing_zeros() as usize & (BUCKET - 1)].1.as_ref();
        }
        if e[BUCKET - 1].0 == 0 {
            return None;
        }
        b = (b + 1) & mask;
    }
    None
}

fn shard_iter(shard: &[Bucket]) -> impl Iterator<Item = (u32, &Arc<Sa>)> {
    shard
        .iter()
        .flat_map(|b| b.0.iter())
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
}

#[inline(always)]
fn hash(spi: u32) -> u64 {
    (u64::from(spi).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 16
}

/// A published version of the SAD: what a worker reads during one burst.
pub struct SadTable {
    /// Shards in pages of up to [`PAGE`] (an update copies one page and the
    /// page array, not every shard pointer).
    pages: Box<[Arc<[Shard]>]>,
    page_bits: u32,
    page_mask: usize,
    shard_mask: usize,
    shard_bits: u32,
    len: usize,
}

impl SadTable {
    /// The SA with this SPI.
    #[inline]
    pub fn get(&self, spi: u32) -> Option<&Arc<Sa>> {
        let h = hash(spi);
        let si = h as usize & self.shard_mask;
        let page = &self.pages[si >> self.page_bits];
        shard_get(&page[si & self.page_mask], spi, h, self.shard_bits)
    }
    /// Looks up a burst of SPIs (up to `min(spis.len(), out.len())`), in
    /// two passes over groups of [`BURST_LOOKUP`]:
    ///
    /// 1. hash every SPI, find its shard and first bucket, and load the
    ///    bucket's first word: no data-dependent branch in this pass, so
    ///    the cache misses of the whole group are in flight together (a
    ///    software prefetch: `_mm_prefetch` would need `unsafe`, which
    ///    `sa/` does not contain; plain loads whose results feed one XOR
    ///    do the same job, bounded by the reorder window);
    /// 2. probe each bucket, now in cache, with the hash computed in pass 1.
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
            let mut touch = 0u32;
            for (&spi, a) in spis.iter().zip(at.iter_mut()) {
                let h = hash(spi);
                let si = h as usize & self.shard_mask;
                let shard: &'a [Bucket] = &self.pages[si >> self.page_bits][si & self.page_mask];
                let b = (h >> self.shard_bits) as usize & shard.len().wrapping_sub(1);
                if let Some(bucket) = shard.get(b) {
                    touch ^= bucket.0[0].0;
                }
                *a = (shard, b);
            }
            std::hint::black_box(touch);
            for ((&spi, &(shard, b)), o) in spis.iter().zip(at.iter()).zip(out.iter_mut()) {
                *o = shard_probe(shard, spi, b);
            }
        }
    }
    /// Number of SAs.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if there is no SA.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
                    // The header sits in its own line before the buckets.
                    bytes += std::mem::size_of::<Bucket>() + std::mem::size_of_val(&**sh);
                }
            }
        }
        bytes
    }
    /// Every SA (management use).
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Sa>> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .flat_map(|s| shard_iter(s).map(|(_, v)| v))
    }
}

/// The SAD.
pub struct Sad {
    root: ArcSwap<SadTable>,
    /// Serialises writers; holds the table retired by the previous update
    /// (see [`Sad::apply`]).
    writer: Mutex<Option<Arc<SadTable>>>,
}

impl Default for Sad {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl std::fmt::Debug for Sad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sad")
            .field("len", &self.root.load().len)
            .finish()
    }
}

impl Sad {
    /// An empty SAD sized for about `n` SAs (it still grows past that; the
    /// shard count only sets how much a single update copies).
    pub fn with_capacity(n: usize) -> Sad {
        let nshards = (n / 64).next_power_of_two().clamp(16, 1 << 16);
        let shard_bits = nshards.trailing_zeros();
        let empty = empty_shard();
        let page_len = nshards.min(PAGE);
        let page: Arc<[Shard]> = (0..page_len).map(|_| empty.clone()).collect();
        let table = SadTable {
            pages: (0..nshards / page_len).map(|_| page.clone()).collect(),
            page_bits: page_len.trailing_zeros(),
            page_mask: page_len - 1,
            shard_mask: nshards - 1,
            shard_bits,
            len: 0,
        };
        Sad {
            root: ArcSwap::from_pointee(table),
            writer: Mutex::new(None),
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
        self.root.load().len
    }

    /// True if there is no SA.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Applies a batch of changes and publishes them at once: each touched
    /// shard is rebuilt once, the root is swapped once.
    pub fn apply(&self, ops: impl IntoIterator<Item = SadOp>) {
        let mut retired = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let cur = self.root.load_full();
        // (shard index, op), grouped by shard in input order (later ones win).
        let mut todo: Vec<(usize, SadOp)> = ops
            .into_iter()
            .filter_map(|op| {
                let spi = match &op {
                    SadOp::Insert(sa) => sa.spi(),
                    SadOp::Remove(spi) => *spi,
                };
                (spi != 0).then(|| (hash(spi) as usize & cur.shard_mask, op))
            })
            .collect();
        if todo.is_empty() {
            return;
        }
        todo.sort_by_key(|(si, _)| *si);
        let mut pages: Box<[Arc<[Shard]>]> = cur.pages.clone();
        let mut len = cur.len;
        let mut page_copy: Option<(usize, Vec<Shard>)> = None;
        let mut entries: Vec<(u32, Arc<Sa>)> = Vec::new();
        let mut it = todo.into_iter().peekable();
        while let Some((si, op)) = it.next() {
            let (pi, off) = (si >> cur.page_bits, si & cur.page_mask);
            if page_copy.as_ref().is_some_and(|(p, _)| *p != pi) {
                if let Some((p, v)) = page_copy.take() {
                    pages[p] = Arc::from(v);
                }
            }
            let page = &mut page_copy.get_or_insert_with(|| (pi, pages[pi].to_vec())).1;
            // A shard holds a few dozen SAs: a vector searched linearly
            // (reused across shards) costs the writer less than a map.
            entries.clear();
            entries.extend(shard_iter(&page[off]).map(|(k, v)| (k, v.clone())));
            len -= entries.len();
            let mut apply_one = |op: SadOp| match op {
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
            };
            apply_one(op);
            while let Some((_, op)) = it.next_if(|(s, _)| *s == si) {
                apply_one(op);
            }
            len += entries.len();
            let n = entries.len();
            page[off] = build_shard(entries.drain(..), n, cur.shard_bits);
        }
        if let Some((p, v)) = page_copy.take() {
            pages[p] = Arc::from(v);
        }
        // The table replaced now is kept until the next update and dropped
        // by the writer then: a worker still holding it for its burst would
        // otherwise be the last owner and free its shards, pages and the
        // removed SAs on the packet path (measured: lookups 1.5-1.8x
        // slower at 1M SAs under 10k updates/s).
        let old = self.root.swap(Arc::new(SadTable {
            pages,
            page_bits: cur.page_bits,
            page_mask: cur.page_mask,
            shard_mask: cur.shard_mask,
            shard_bits: cur.shard_bits,
            len,
        }));
        drop(cur);
        // Drops the table retired by the previous update (long unused).
        *retired = Some(old);
    }

    /// Collects the events of every SA (lifetimes, sequence exhaustion).
    /// Management thread only.
    pub fn collect_events(&self, out: &mut Vec<SaEvent>) {
        let t = self.root.load();
        for sa in t.iter() {
            if sa.has_events() {
                sa.take_events(out);
            }
        }
    }
}
