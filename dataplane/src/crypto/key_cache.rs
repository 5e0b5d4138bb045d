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
//! direct-mapped on the id (sequential ids fill it without collisions),
//! a power-of-two number of 64-byte aligned entries, allocated once when the
//! thread starts (`crypto::warm_thread`), never per packet.
//!
//! Per burst (one SA's group of packets), the transform makes one tag
//! compare; on a miss it wipes the entry and expands its key into it in
//! place (no allocation), inside the burst's stack wipe (`mb::wipe`).
//!
//! Key hygiene:
//! - an entry is overwritten whole (every field, unused round keys zeroed)
//!   when another SA's keys are expanded into it, and every entry is
//!   zeroized when the cache drops (thread exit);
//! - a dropped transform announces its id ([`retire`]) in a bounded ring;
//!   each worker calls [`KeyCache::sweep`] (through `crypto::sweep_key_caches`)
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
/// NULL + HMAC). Up to this many SAs the old layout's expanded keys (832 B per SA
/// inside the SA) no longer fit a core's L2 either, so hits cost what the old
/// layout's reads did; the cache saves memory per SA only past that count. A
/// worker serving more SAs than this at once, with traffic spread over all of
/// them, pays a key expansion per burst on a miss (0.28-0.62x the old layout
/// when every packet of a burst is on another SA: `bench/results/sad.md`,
/// kc13): raise `key_cache_entries` there.
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

/// An entry of a cache: expanded keys with the id of the transform they
/// belong to (0: empty). `zeroize` must set the tag to 0.
pub(crate) trait CacheSlot: Zeroize {
    /// An empty (all-zero) entry.
    fn blank() -> Self;
    /// The id of the transform whose keys the entry holds.
    fn tag(&self) -> u64;
    /// Marks the entry as holding `id`'s keys.
    fn set_tag(&mut self, id: u64);
    /// True if every byte is zero.
    #[cfg(test)]
    fn is_zero(&self) -> bool;
}

/// Hits and misses of one cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bursts whose SA's keys were in the cache.
    pub hits: u64,
    /// Bursts that expanded their SA's keys into the cache.
    pub misses: u64,
    /// Entries wiped because their SA was removed.
    pub wiped: u64,
}

/// A direct-mapped cache of expanded keys (see the module docs).
pub(crate) struct KeyCache<E: CacheSlot> {
    slots: Box<[E]>,
    mask: u64,
    /// `RETIRED_HEAD` at the last sweep.
    seen: u64,
    stats: CacheStats,
}

impl<E: CacheSlot> KeyCache<E> {
    /// A cache of `round_entries(n)` empty entries.
    pub(crate) fn new(n: usize) -> Self {
        let n = round_entries(n);
        let slots: Box<[E]> = (0..n).map(|_| E::blank()).collect();
        KeyCache {
            slots,
            mask: n as u64 - 1,
            seen: RETIRED_HEAD.load(Ordering::Acquire),
            stats: CacheStats::default(),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of the entries.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// Hits, misses and sweeps so far.
    pub(crate) fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The entry of transform `id`: on a miss, `fill` expands the keys into
    /// it. `fill` must overwrite every field but the tag (unused round keys
    /// with zeros): that is what wipes the previous SA's keys from the entry
    /// (a `zeroize` first would add 832 volatile byte stores to every miss
    /// for no byte that survives the fill).
    #[inline(always)]
    pub(crate) fn get(&mut self, id: u64, fill: impl FnOnce(&mut E)) -> &E {
        let e = &mut self.slots[(id & self.mask) as usize];
        if e.tag() == id {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            fill(e);
            e.set_tag(id);
        }
        e
    }

    /// [`KeyCache::get`] for a `fill` that can fail (false: the keys could
    /// not be expanded): the entry is then wiped, left untagged, and `None`
    /// returned, so no burst ever runs on a half-filled entry.
    #[inline(always)]
    pub(crate) fn try_get(&mut self, id: u64, fill: impl FnOnce(&mut E) -> bool) -> Option<&E> {
        let e = &mut self.slots[(id & self.mask) as usize];
        if e.tag() == id {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
            if !fill(e) {
                e.zeroize();
                return None;
            }
            e.set_tag(id);
        }
        Some(e)
    }

    /// True if the cache holds `id`'s keys.
    #[cfg(test)]
    pub(crate) fn holds(&self, id: u64) -> bool {
        id != 0 && self.slots[(id & self.mask) as usize].tag() == id
    }

    /// The entry `id` maps to.
    #[cfg(test)]
    pub(crate) fn slot(&self, id: u64) -> &E {
        &self.slots[(id & self.mask) as usize]
    }

    /// True if the entry `id` maps to is all zero.
    #[cfg(test)]
    pub(crate) fn slot_is_zero(&self, id: u64) -> bool {
        self.slots[(id & self.mask) as usize].is_zero()
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
            for e in self.slots.iter_mut() {
                if e.tag() != 0 {
                    e.zeroize();
                    self.stats.wiped += 1;
                }
            }
        }
        self.seen = head;
    }

    fn wipe(&mut self, id: u64) {
        let e = &mut self.slots[(id & self.mask) as usize];
        if id != 0 && e.tag() == id {
            e.zeroize();
            self.stats.wiped += 1;
        }
    }
}

impl<E: CacheSlot> Drop for KeyCache<E> {
    fn drop(&mut self) {
        self.slots.iter_mut().for_each(Zeroize::zeroize);
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

    #[test]
    fn misses_fill_hits_do_not_and_collisions_evict() {
        let mut c = KeyCache::<Slot>::new(16);
        let ids: Vec<u64> = (0..16).map(|_| new_id()).collect();
        for &id in &ids {
            assert_eq!(c.get(id, |e| e.key = id * 3).key, id * 3);
        }
        for &id in &ids {
            assert_eq!(c.get(id, |_| panic!("hit expected")).key, id * 3);
        }
        assert_eq!(c.stats().hits, 16);
        assert_eq!(c.stats().misses, 16);
        // Same slot, other id: evicted, refilled with the new keys.
        let other = ids[0] + 16;
        assert_eq!(c.get(other, |e| e.key = 7).key, 7);
        assert!(!c.holds(ids[0]));
        assert!(c.holds(other));
    }

    #[test]
    fn sweep_wipes_retired_ids_only() {
        let _g = ring_lock();
        let mut c = KeyCache::<Slot>::new(64);
        let a = new_id();
        let b = new_id();
        c.get(a, |e| e.key = 1);
        c.get(b, |e| e.key = 2);
        retire(a);
        c.sweep();
        assert!(!c.holds(a));
        assert!(c.holds(b));
        let e = &c.slots[(a & c.mask) as usize];
        assert_eq!((e.tag, e.key), (0, 0));
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
