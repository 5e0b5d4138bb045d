//! Per-worker caches of expanded keys (issue 11: memory per SA).
//!
//! A transform that uses a cache keeps only compact key material per SA
//! (the raw key and salt, tens of bytes) plus a transform id drawn once from
//! a global counter ([`new_id`], never reused: an SA freed and another
//! allocated never share an id, so there is no ABA). The expanded form the
//! kernels read (AES round keys, GHASH key powers: 832 bytes for the VAES
//! AES-GCM kernel; AES schedules, HMAC states and the IV key's schedule:
//! 832 bytes for the ipsec-mb CBC/NULL + HMAC transforms) lives in a
//! [`KeyCache`] per entry type that each packet thread owns:
//! two-way set-associative on the id (sequential ids fill it without
//! collisions), a power-of-two number of 64-byte aligned entries, plus one
//! spare entry for the misses a set does not take (the replacement is
//! described at `KeyCache::place`: two SAs of a set that carry traffic keep
//! their entries, and traffic spread over more SAs than entries degrades
//! gradually instead of missing on every burst).
//!
//! Allocation: a thread's first cache of each kind has one set (two
//! entries and the spare, about 2.5 KiB; `crypto::warm_thread` creates
//! both, so no burst allocates). The first poll loop after a third SA of
//! that kind needed an entry on this thread ([`KeyCache::poll`], through
//! `crypto::poll_key_caches`) replaces it by the full cache (`entries()`,
//! 3.25 MiB at the default 4096), so a worker that never carries an
//! AES-GCM (or a CBC/NULL) SA, or at most two, never allocates that cache.
//! The allocation is in the poll loop, between bursts, never in a burst
//! (why there and not when an SA is installed: SAs are installed by the
//! management thread into the SAD all workers share, and which worker an
//! SA's traffic reaches is the NIC's choice; the poll loop is the worker's
//! own, and it already sweeps the cache there).
//!
//! Per burst (one SA's group of packets), the transform compares the tags
//! of the two ways of the id's set (one when the SA is in way 0) and marks
//! the entry used (a store into the line it reads); on a miss it expands
//! its key in place into the entry `KeyCache::place` picks (no
//! allocation), inside the burst's stack wipe (`mb::wipe`).
//!
//! Key hygiene:
//! - an entry (the spare too) is overwritten whole (every field, unused
//!   round keys zeroed) when another SA's keys are expanded into it, and
//!   every entry is zeroized when the cache drops (thread exit, and a
//!   one-set cache replaced by the full one);
//! - a dropped transform announces its id ([`retire`]) in a bounded ring;
//!   each worker calls [`KeyCache::sweep`] (through `crypto::poll_key_caches`)
//!   once per poll loop, and wipes the entries of retired ids: a removed SA's
//!   expanded keys stay in an idle worker's cache for at most one poll loop
//!   (if more SAs were retired than the ring holds since the last sweep, the
//!   whole cache is wiped).
//!
//! Why a thread-local and not a cache passed to `EspCipher::seal`: the cache
//! is the packet thread's, like intel-ipsec-mb's per-thread manager that
//! `warm_thread` already creates; the `EspCipher` interface stays the same for
//! every backend (the library backends have nothing to cache: their key
//! objects are opaque) and for every caller. The cost is one thread-local
//! access and one `RefCell` flag per burst.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use zeroize::Zeroize;

/// Default entries per cache and worker: 4096 (3.25 MiB per worker for
/// each of the two caches: AES-GCM on the VAES kernel, ipsec-mb AES-CBC /
/// NULL + HMAC; each allocated only once a worker needs it, see the module
/// docs). Up to this many SAs the old layout's expanded keys (832 B per SA
/// inside the SA) no longer fit a core's L2 either, so hits cost what the old
/// layout's reads did; the cache saves memory per SA only past that count. A
/// worker serving more SAs than this at once, with traffic spread over all of
/// them, pays a key expansion per burst on a miss (0.28-0.62x the old layout
/// for AES-GCM when every packet of a burst is on another SA, less for
/// CBC: `bench/results/sad.md`, kc13 and kc14): raise `key_cache_entries`
/// there.
pub const DEFAULT_ENTRIES: usize = 4096;
/// Fewest entries a cache has.
pub const MIN_ENTRIES: usize = 16;
/// Most entries a cache has.
pub const MAX_ENTRIES: usize = 1 << 20;

/// Entries of caches created from now on (set by the process from
/// `[dataplane] key_cache_entries` before its workers start).
static ENTRIES: AtomicUsize = AtomicUsize::new(DEFAULT_ENTRIES);

/// The next transform id (0 marks an empty entry).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Retired ids remembered for the sweeps.
const RING: usize = 1024;
/// Retired ids, `RETIRED[i % RING]` the `i`-th.
static RETIRED: [AtomicU64; RING] = [const { AtomicU64::new(0) }; RING];
/// Number of ids ever retired (written under `RETIRE_LOCK`).
static RETIRED_HEAD: AtomicU64 = AtomicU64::new(0);
/// Serialises the writers of `RETIRED` (SA removal, never the packet path).
static RETIRE_LOCK: Mutex<()> = Mutex::new(());

/// A fresh transform id, never returned before in this process.
pub(crate) fn new_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Announces that the transform with `id` is gone: every cache wipes its
/// entry at its next sweep.
pub(crate) fn retire(id: u64) {
    let _g = RETIRE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let h = RETIRED_HEAD.load(Ordering::Relaxed);
    RETIRED[(h % RING as u64) as usize].store(id, Ordering::Relaxed);
    RETIRED_HEAD.store(h + 1, Ordering::Release);
}

/// `n` rounded up to a power of two within [`MIN_ENTRIES`]..=[`MAX_ENTRIES`].
pub fn round_entries(n: usize) -> usize {
    n.clamp(MIN_ENTRIES, MAX_ENTRIES).next_power_of_two()
}

/// Sets the entries of the caches threads create from now on (rounded by
/// [`round_entries`]); call before the workers start.
pub fn set_entries(n: usize) {
    ENTRIES.store(round_entries(n), Ordering::Relaxed);
}

/// Entries of the caches threads create now.
pub fn entries() -> usize {
    ENTRIES.load(Ordering::Relaxed)
}

/// An entry of a cache: expanded keys with the tag the cache gives them
/// (the id of the transform they belong to, and the cache's reference bit;
/// 0: empty). `zeroize` must set the tag to 0.
pub(crate) trait CacheSlot: Zeroize {
    /// An empty (all-zero) entry.
    fn blank() -> Self;
    /// The entry's tag.
    fn tag(&self) -> u64;
    /// Sets the entry's tag.
    fn set_tag(&mut self, tag: u64);
    /// True if every byte is zero.
    #[cfg(test)]
    fn is_zero(&self) -> bool;
}

/// The tag bit that marks an entry used since its set's last bypass (ids
/// stay far below it: one per SA ever built).
const REF: u64 = 1 << 63;

/// Hits, misses and wipes of one cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bursts whose SA's keys were in the cache.
    pub hits: u64,
    /// Bursts that expanded their SA's keys (into the cache or its spare).
    pub misses: u64,
    /// Entries wiped because their SA was removed.
    pub wiped: u64,
    /// Misses that overwrote another SA's entry.
    pub evicted: u64,
    /// Misses whose set kept both its entries (both used since the set's
    /// last bypass): the keys went to the spare entry.
    pub bypassed: u64,
}

/// A two-way set-associative cache of expanded keys (see the module docs).
pub(crate) struct KeyCache<E: CacheSlot> {
    /// `ways[w][s]` is way `w` of set `s`; `id`'s keys are in one of the
    /// ways of set `id & set_mask`. Way 0 of consecutive sets is contiguous:
    /// up to `entries / 2` sequential ids use it as densely as a
    /// direct-mapped cache.
    ways: [Box<[E]>; 2],
    set_mask: u64,
    /// The entry a bypassing miss expands into.
    spare: Box<E>,
    /// `RETIRED_HEAD` at the last sweep.
    seen: u64,
    stats: CacheStats,
    /// False for a thread's first, one-set cache ([`KeyCache::small`]).
    full: bool,
    /// A miss found no empty way (the one-set cache is too small).
    outgrown: bool,
}

impl<E: CacheSlot> KeyCache<E> {
    /// A cache of `round_entries(n)` empty entries (`n / 2` sets).
    pub(crate) fn new(n: usize) -> Self {
        Self::with_sets(round_entries(n) / 2, true)
    }

    /// A thread's first cache: one set (two entries) and the spare,
    /// replaced by a full cache at the first [`KeyCache::poll`] after a
    /// third SA needed it.
    pub(crate) fn small() -> Self {
        Self::with_sets(1, false)
    }

    fn with_sets(sets: usize, full: bool) -> Self {
        KeyCache {
            ways: [0, 1].map(|_| (0..sets).map(|_| E::blank()).collect()),
            set_mask: sets as u64 - 1,
            spare: Box::new(E::blank()),
            seen: RETIRED_HEAD.load(Ordering::Acquire),
            stats: CacheStats::default(),
            full,
            outgrown: false,
        }
    }

    /// Number of entries (the spare not counted).
    pub(crate) fn len(&self) -> usize {
        2 * self.ways[0].len()
    }

    /// Bytes of the entries, the spare included.
    pub(crate) fn bytes(&self) -> usize {
        2 * std::mem::size_of_val(&*self.ways[0]) + std::mem::size_of::<E>()
    }

    /// Hits, misses and sweeps so far.
    pub(crate) fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The way of set `s` that holds `id`'s keys.
    #[inline(always)]
    fn way_of(&self, s: usize, id: u64) -> Option<usize> {
        if self.ways[0][s].tag() & !REF == id {
            Some(0)
        } else if self.ways[1][s].tag() & !REF == id {
            Some(1)
        } else {
            None
        }
    }

    /// The entry of transform `id`: on a miss, `fill` expands the keys into
    /// it. `fill` must overwrite every field but the tag (unused round keys
    /// with zeros): that is what wipes the previous SA's keys from the entry
    /// (a `zeroize` first would add 832 volatile byte stores to every miss
    /// for no byte that survives the fill).
    #[inline(always)]
    pub(crate) fn get(&mut self, id: u64, fill: impl FnOnce(&mut E)) -> &E {
        let s = (id & self.set_mask) as usize;
        if let Some(w) = self.way_of(s, id) {
            self.stats.hits += 1;
            let e = &mut self.ways[w][s];
            // A store only when the mark was cleared (by a bypass).
            if e.tag() & REF == 0 {
                e.set_tag(id | REF);
            }
            return e;
        }
        let (e, tag) = self.place(s, id);
        if tag != 0 {
            fill(e);
            e.set_tag(tag);
        }
        e
    }

    /// [`KeyCache::get`] for a `fill` that can fail (false: the keys could
    /// not be expanded): the entry is then wiped, left untagged, and `None`
    /// returned, so no burst ever runs on a half-filled entry.
    #[inline(always)]
    pub(crate) fn try_get(&mut self, id: u64, fill: impl FnOnce(&mut E) -> bool) -> Option<&E> {
        let s = (id & self.set_mask) as usize;
        if let Some(w) = self.way_of(s, id) {
            self.stats.hits += 1;
            let e = &mut self.ways[w][s];
            if e.tag() & REF == 0 {
                e.set_tag(id | REF);
            }
            return Some(e);
        }
        let (e, tag) = self.place(s, id);
        if tag != 0 {
            if !fill(e) {
                e.zeroize();
                return None;
            }
            e.set_tag(tag);
        }
        Some(e)
    }

    /// Where `id`, not in its set `s`, goes: the entry and the tag to give
    /// it once filled, or (tag 0) the spare that already holds `id`'s keys.
    ///
    /// The victim is an empty way, else a way not used since the set's
    /// last bypass (way 1 first); a new entry counts as used. If both
    /// were used, the set keeps them, forgets that they were, and the
    /// burst runs on the spare entry: two SAs that share a set and carry
    /// traffic keep their entries while a third passes through, and a
    /// round-robin over three SAs of a set hits on two of them (a
    /// direct-mapped cache or LRU would miss on every one).
    #[cold]
    #[inline(never)]
    fn place(&mut self, s: usize, id: u64) -> (&mut E, u64) {
        let [way0, way1] = &mut self.ways;
        let set = [&mut way0[s], &mut way1[s]];
        let (t0, t1) = (set[0].tag(), set[1].tag());
        let w = if t0 == 0 {
            0
        } else if t1 == 0 || t1 & REF == 0 {
            1
        } else if t0 & REF == 0 {
            0
        } else {
            set[0].set_tag(t0 & !REF);
            set[1].set_tag(t1 & !REF);
            self.outgrown = true;
            if self.spare.tag() == id {
                self.stats.hits += 1;
                return (&mut self.spare, 0);
            }
            self.stats.misses += 1;
            self.stats.bypassed += 1;
            return (&mut self.spare, id);
        };
        self.stats.misses += 1;
        if set[w].tag() != 0 {
            self.stats.evicted += 1;
            self.outgrown = true;
        }
        let [e0, e1] = set;
        (if w == 0 { e0 } else { e1 }, id | REF)
    }

    /// Once per poll loop: [`KeyCache::sweep`], then, if this is a thread's
    /// one-set cache and a third SA needed it, replaces it by a full cache
    /// of [`entries`] entries (the one-set cache zeroized as it drops).
    /// Returns the bytes allocated (0 but once per thread and cache).
    #[inline]
    pub(crate) fn poll(&mut self) -> usize {
        self.sweep();
        if self.outgrown && !self.full {
            *self = KeyCache::new(entries());
            return self.bytes();
        }
        0
    }

    /// True if the cache holds `id`'s keys (in a way or the spare).
    #[cfg(test)]
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.entry(id).is_some()
    }

    /// The entry holding `id`'s keys.
    #[cfg(test)]
    pub(crate) fn entry(&self, id: u64) -> Option<&E> {
        if id == 0 {
            return None;
        }
        let s = (id & self.set_mask) as usize;
        match self.way_of(s, id) {
            Some(w) => Some(&self.ways[w][s]),
            None => (self.spare.tag() == id).then_some(&*self.spare),
        }
    }

    /// Where `id`'s keys are: `(set, way)`, way 2 for the spare.
    #[cfg(test)]
    pub(crate) fn position(&self, id: u64) -> Option<(usize, usize)> {
        let s = (id & self.set_mask) as usize;
        match self.way_of(s, id) {
            Some(w) => Some((s, w)),
            None => (id != 0 && self.spare.tag() == id).then_some((s, 2)),
        }
    }

    /// Entries (the spare included) with a non-zero byte.
    #[cfg(test)]
    pub(crate) fn nonzero_entries(&self) -> usize {
        self.ways
            .iter()
            .flat_map(|w| w.iter())
            .chain(std::iter::once(&*self.spare))
            .filter(|e| !e.is_zero())
            .count()
    }

    /// True if this is the full cache (not a thread's first, one-set one).
    #[cfg(test)]
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// Wipes the entries of the transforms retired since the last sweep
    /// (every entry if the ring was overrun). One atomic load when none was.
    #[inline]
    pub(crate) fn sweep(&mut self) {
        let head = RETIRED_HEAD.load(Ordering::Acquire);
        if head == self.seen {
            return;
        }
        let mut wipe_all = head - self.seen > RING as u64;
        if !wipe_all {
            for i in self.seen..head {
                let id = RETIRED[(i % RING as u64) as usize].load(Ordering::Relaxed);
                self.wipe(id);
            }
            // Writers lapped the ring while we read: some slot may have held
            // a newer id than the one we wanted.
            wipe_all = RETIRED_HEAD.load(Ordering::Acquire) - self.seen > RING as u64;
        }
        if wipe_all {
            let all = self
                .ways
                .iter_mut()
                .flat_map(|w| w.iter_mut())
                .chain(std::iter::once(&mut *self.spare));
            for e in all {
                if e.tag() != 0 {
                    e.zeroize();
                    self.stats.wiped += 1;
                }
            }
        }
        self.seen = head;
    }

    fn wipe(&mut self, id: u64) {
        if id == 0 {
            return;
        }
        let s = (id & self.set_mask) as usize;
        let [way0, way1] = &mut self.ways;
        for e in [&mut way0[s], &mut way1[s], &mut *self.spare] {
            if e.tag() & !REF == id {
                e.zeroize();
                self.stats.wiped += 1;
            }
        }
    }
}

impl<E: CacheSlot> Drop for KeyCache<E> {
    fn drop(&mut self) {
        self.ways
            .iter_mut()
            .flat_map(|w| w.iter_mut())
            .for_each(Zeroize::zeroize);
        self.spare.zeroize();
    }
}

/// Held by the tests that retire ids and check what a sweep left, so that
/// a test overrunning the ring does not wipe another test's entries.
#[cfg(test)]
pub(crate) static TEST_RING: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_lock() -> std::sync::MutexGuard<'static, ()> {
        TEST_RING.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[derive(Zeroize)]
    struct Slot {
        tag: u64,
        key: u64,
    }

    impl CacheSlot for Slot {
        fn blank() -> Self {
            Slot { tag: 0, key: 0 }
        }
        fn tag(&self) -> u64 {
            self.tag
        }
        fn set_tag(&mut self, id: u64) {
            self.tag = id;
        }
        fn is_zero(&self) -> bool {
            self.tag == 0 && self.key == 0
        }
    }

    #[test]
    fn ids_are_never_reused() {
        let a = new_id();
        let b = new_id();
        retire(a);
        let c = new_id();
        assert!(a < b && b < c);
    }

    #[test]
    fn rounds_entries_to_a_power_of_two() {
        assert_eq!(round_entries(0), MIN_ENTRIES);
        assert_eq!(round_entries(1000), 1024);
        assert_eq!(round_entries(1024), 1024);
        assert_eq!(round_entries(usize::MAX), MAX_ENTRIES);
    }

    /// `n` fresh ids that share a set of a cache of `entries` entries.
    fn colliding(entries: usize, n: usize) -> Vec<u64> {
        let sets = (entries / 2) as u64;
        let first = new_id();
        let mut v = vec![first];
        while v.len() < n {
            let id = new_id();
            if id % sets == first % sets {
                v.push(id);
            }
        }
        v
    }

    /// Looks `id` up, filling its entry with `id * 3`; true if it had to.
    fn fills(c: &mut KeyCache<Slot>, id: u64) -> bool {
        let mut filled = false;
        let e = c.get(id, |e| {
            e.key = id * 3;
            filled = true;
        });
        assert_eq!(e.key, id * 3, "the keys of another id");
        filled
    }

    #[test]
    fn misses_fill_hits_do_not_and_sequential_ids_fill_every_way() {
        let mut c = KeyCache::<Slot>::new(16);
        assert_eq!(c.len(), 16);
        let ids: Vec<u64> = (0..16).map(|_| new_id()).collect();
        for &id in &ids {
            assert!(fills(&mut c, id));
        }
        for &id in &ids {
            assert!(!fills(&mut c, id), "hit expected");
        }
        let st = c.stats();
        assert_eq!(
            (st.hits, st.misses, st.evicted, st.bypassed),
            (16, 16, 0, 0)
        );
        // Two ids per set, one in each way.
        let mut ways: Vec<_> = ids.iter().map(|&id| c.position(id).unwrap()).collect();
        ways.sort();
        ways.dedup();
        assert_eq!(ways.len(), 16);
    }

    #[test]
    fn two_sas_of_a_set_keep_their_entries_while_a_third_passes() {
        let mut c = KeyCache::<Slot>::new(16);
        let v = colliding(16, 4);
        let (a, b, x, y) = (v[0], v[1], v[2], v[3]);
        assert!(fills(&mut c, a) && fills(&mut c, b));
        // Both ways used: the third goes to the spare, the set keeps both.
        assert!(fills(&mut c, x));
        assert_eq!(c.position(x).map(|p| p.1), Some(2));
        assert!(c.holds(a) && c.holds(b));
        assert_eq!((c.stats().bypassed, c.stats().evicted), (1, 0));
        // A round-robin over the three: the set's two hit, the third hits
        // in the spare; nothing is expanded again.
        for _ in 0..10 {
            for id in [a, b, x] {
                assert!(!fills(&mut c, id), "round-robin over 3 of a set refilled");
            }
        }
        // The last bypass (the third's) left both unused since: a fourth
        // takes way 1, the third stays in the spare.
        assert!(fills(&mut c, y));
        assert!(c.holds(a) && !c.holds(b) && c.holds(y));
        assert_eq!(c.position(y).map(|p| p.1), Some(1));
        assert!(!fills(&mut c, a) && !fills(&mut c, x));
        assert_eq!((c.stats().bypassed, c.stats().evicted), (1, 1));
    }

    #[test]
    fn an_idle_entry_gives_way_after_one_bypass() {
        let mut c = KeyCache::<Slot>::new(16);
        let v = colliding(16, 4);
        let (a, b, x, y) = (v[0], v[1], v[2], v[3]);
        fills(&mut c, a);
        fills(&mut c, b);
        // Traffic moves to x and y: the first miss bypasses, the next ones
        // take the ways (way 1 first), then both hit.
        assert!(fills(&mut c, x));
        assert!(fills(&mut c, y));
        assert!(fills(&mut c, x));
        assert!(!c.holds(a) && !c.holds(b));
        for _ in 0..3 {
            assert!(!fills(&mut c, x) && !fills(&mut c, y));
        }
        assert_eq!((c.stats().bypassed, c.stats().evicted), (1, 2));
    }

    #[test]
    fn a_small_cache_grows_at_the_poll_after_a_third_sa() {
        let _g = ring_lock();
        let mut c = KeyCache::<Slot>::small();
        assert_eq!((c.len(), c.is_full()), (2, false));
        let small = c.bytes();
        assert_eq!(small, 3 * std::mem::size_of::<Slot>());
        let v = colliding(2, 3);
        fills(&mut c, v[0]);
        fills(&mut c, v[1]);
        // Two SAs fit: the poll keeps the one-set cache.
        assert_eq!(c.poll(), 0);
        assert!(!fills(&mut c, v[0]) && !fills(&mut c, v[1]));
        assert_eq!(c.poll(), 0);
        assert_eq!((c.len(), c.bytes()), (2, small));
        // A third SA runs on the spare, then the next poll allocates.
        assert!(fills(&mut c, v[2]));
        assert_eq!(c.len(), 2);
        let grown = c.poll();
        assert_eq!(c.len(), entries());
        assert_eq!(grown, c.bytes());
        assert_eq!(grown, (entries() + 1) * std::mem::size_of::<Slot>());
        assert!(c.is_full() && c.nonzero_entries() == 0);
        // Once.
        for id in colliding(16, 40) {
            fills(&mut c, id);
        }
        assert_eq!(c.poll(), 0);
    }

    #[test]
    fn sweep_wipes_retired_ids_only() {
        let _g = ring_lock();
        let mut c = KeyCache::<Slot>::new(64);
        let a = new_id();
        let b = new_id();
        c.get(a, |e| e.key = 1);
        c.get(b, |e| e.key = 2);
        // A third of b's set, bypassing into the spare.
        let v = colliding(64, 3);
        for &id in &v {
            c.get(id, |e| e.key = 3);
        }
        assert_eq!(c.position(v[2]).map(|p| p.1), Some(2));
        assert_eq!(c.nonzero_entries(), 5);
        retire(a);
        retire(v[2]);
        c.sweep();
        assert!(!c.holds(a) && !c.holds(v[2]));
        assert!(c.holds(b) && c.holds(v[0]) && c.holds(v[1]));
        // Wiped: tag and key zero.
        assert_eq!(c.nonzero_entries(), 3);
        assert_eq!(c.stats().wiped, 2);
    }

    #[test]
    fn an_overrun_ring_wipes_everything() {
        let _g = ring_lock();
        let mut c = KeyCache::<Slot>::new(64);
        let a = new_id();
        c.get(a, |e| e.key = 1);
        for _ in 0..=RING {
            retire(u64::MAX);
        }
        c.sweep();
        assert!(!c.holds(a));
    }
}
