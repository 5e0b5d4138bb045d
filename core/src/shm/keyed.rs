//! [`KeyedSlots`]: a small array of write-once values, each published under
//! a `u32` key, read without locks while one writer adds and kills slots.
//!
//! Not shared memory: it lives in `shm/` because that is where `core`
//! allows `unsafe` (HACKING.md). It is the slot line of the dataplane's SAD
//! (`dataplane::sa::sad`): five keys and five `Arc` pointers in one 64-byte
//! cache line, where `OnceLock<Arc<_>>` (16 bytes) left room for three.
//!
//! A slot goes through three states and never back:
//! - **empty**: key [`EMPTY`], no value;
//! - **live**: the value is written, then the key (>= [`MIN_KEY`]) is stored
//!   with `Release` ([`KeyedSlots::publish`]; the slot is claimed first, so
//!   two writers cannot both fill it);
//! - **dead**: key [`DEAD`], the value kept until the slots are dropped
//!   ([`KeyedSlots::kill`]).
//!
//! A reader reads a value only after loading its slot's key with `Acquire`
//! and finding a live key: the value was written before that key was
//! stored and is never written again, so the read cannot race a write. Keys
//! 0, 1 and 2 are reserved (empty, dead, being written).

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};

/// The key of a slot never used.
pub const EMPTY: u32 = 0;
/// The key of a killed slot (its value is kept).
pub const DEAD: u32 = 1;
/// The key of a slot being written (claimed by [`KeyedSlots::publish`]).
const BUSY: u32 = 2;
/// The smallest key a value can be published under.
pub const MIN_KEY: u32 = 3;

/// What [`KeyedSlots::lookup`] found.
#[derive(Debug)]
pub enum Lookup<'a, T> {
    /// A live slot with the key.
    Found(&'a T),
    /// No live slot with the key, and the last slot is empty (in a table
    /// filling slots from the front, the key is not further on either).
    Absent,
    /// No live slot with the key; the last slot is used.
    Next,
}

/// `N` keyed write-once slots; see the module documentation.
#[repr(C)]
pub struct KeyedSlots<T, const N: usize> {
    keys: [AtomicU32; N],
    vals: [UnsafeCell<MaybeUninit<T>>; N],
}

// SAFETY: values are written once, before their key is published, and then
// only shared (`&T`) with any thread, and dropped with the slots: the same
// requirements as sharing and sending an `Arc<T>` (`T: Send + Sync`).
unsafe impl<T: Send + Sync, const N: usize> Sync for KeyedSlots<T, N> {}
// SAFETY: as above: moving the slots moves their values.
unsafe impl<T: Send + Sync, const N: usize> Send for KeyedSlots<T, N> {}

impl<T, const N: usize> Default for KeyedSlots<T, N> {
    fn default() -> Self {
        KeyedSlots {
            keys: std::array::from_fn(|_| AtomicU32::new(EMPTY)),
            vals: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
        }
    }
}

impl<T, const N: usize> KeyedSlots<T, N> {
    /// The value of slot `i`, whose key was just loaded with `Acquire` and
    /// found live. Private: callers go through the checks below.
    #[inline(always)]
    fn value(&self, i: usize) -> &T {
        // SAFETY: the caller loaded key `i` with `Acquire` and saw a live
        // key (>= MIN_KEY), stored with `Release` by `publish` after it wrote
        // this value; values are never written again and are dropped only
        // with `&mut self`, so the value is initialised and unaliased by
        // any writer for the life of `&self`.
        unsafe { (*self.vals[i].get()).assume_init_ref() }
    }

    /// Looks `key` up among the slots: the keys are loaded once and
    /// compared at once into a bit mask (no branch on which slot matched).
    #[inline(always)]
    pub fn lookup(&self, key: u32) -> Lookup<'_, T> {
        let k: [u32; N] = std::array::from_fn(|i| self.keys[i].load(Ordering::Acquire));
        let mut hit = 0u32;
        for (i, &ki) in k.iter().enumerate() {
            hit |= u32::from(ki == key) << i;
        }
        if hit != 0 && key >= MIN_KEY {
            return Lookup::Found(self.value(hit.trailing_zeros() as usize));
        }
        if k[N - 1] == EMPTY {
            Lookup::Absent
        } else {
            Lookup::Next
        }
    }

    /// The key of slot `i` ([`EMPTY`], [`DEAD`], a live key, or 2 while
    /// being written).
    #[inline]
    pub fn key(&self, i: usize) -> u32 {
        self.keys[i].load(Ordering::Acquire)
    }

    /// Slot `i`'s key and value if it is live.
    #[inline]
    pub fn live(&self, i: usize) -> Option<(u32, &T)> {
        let k = self.keys[i].load(Ordering::Acquire);
        (k >= MIN_KEY).then(|| (k, self.value(i)))
    }

    /// Writes `val` into slot `i` if it is empty and publishes it under
    /// `key`; gives `val` back if the slot is not empty or `key` is
    /// reserved (below [`MIN_KEY`]).
    pub fn publish(&self, i: usize, key: u32, val: T) -> Result<(), T> {
        if key < MIN_KEY
            || self.keys[i]
                .compare_exchange(EMPTY, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return Err(val);
        }
        // SAFETY: this call moved the slot from EMPTY to BUSY, so it is the
        // only writer the slot will ever have, and no reader reads a value
        // whose key is not live; the value is uninitialised (never written).
        unsafe { (*self.vals[i].get()).write(val) };
        self.keys[i].store(key, Ordering::Release);
        Ok(())
    }

    /// Kills slot `i` if it is live under `key` (its value stays until the
    /// slots are dropped); true if it did.
    pub fn kill(&self, i: usize, key: u32) -> bool {
        key >= MIN_KEY
            && self.keys[i]
                .compare_exchange(key, DEAD, Ordering::Release, Ordering::Relaxed)
                .is_ok()
    }
}

impl<T, const N: usize> Drop for KeyedSlots<T, N> {
    fn drop(&mut self) {
        for i in 0..N {
            let k = *self.keys[i].get_mut();
            // Live and dead slots hold a value; empty ones never did, and a
            // BUSY slot cannot outlive `publish` (it writes without panicking).
            if k == DEAD || k >= MIN_KEY {
                // SAFETY: the slot's value was written by `publish` and not
                // dropped before; `&mut self` excludes every reader.
                unsafe { self.vals[i].get_mut().assume_init_drop() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn publish_lookup_kill_and_drop() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct D(u32, Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        {
            let s: KeyedSlots<D, 5> = KeyedSlots::default();
            assert!(matches!(s.lookup(7), Lookup::Absent));
            assert!(s.publish(0, 7, D(70, drops.clone())).is_ok());
            assert!(s.publish(0, 8, D(80, drops.clone())).is_err()); // not empty
            assert!(s.publish(1, DEAD, D(0, drops.clone())).is_err()); // reserved
            assert!(s.publish(1, 9, D(90, drops.clone())).is_ok());
            assert_eq!(drops.load(Ordering::Relaxed), 2); // the two refused
            match s.lookup(9) {
                Lookup::Found(d) => assert_eq!(d.0, 90),
                _ => panic!("9 not found"),
            }
            assert!(matches!(s.lookup(EMPTY), Lookup::Absent));
            assert!(!s.kill(1, 8));
            assert!(s.kill(1, 9));
            assert!(matches!(s.lookup(9), Lookup::Absent));
            assert!(matches!(s.lookup(DEAD), Lookup::Absent));
            assert_eq!(s.key(1), DEAD);
            assert!(s.live(1).is_none());
            assert_eq!(s.live(0).map(|(k, d)| (k, d.0)), Some((7, 70)));
            for i in 2..5 {
                assert!(s.publish(i, 10 + i as u32, D(0, drops.clone())).is_ok());
            }
            // Full: a missing key goes on to the next line.
            assert!(matches!(s.lookup(99), Lookup::Next));
            assert_eq!(drops.load(Ordering::Relaxed), 2);
        }
        // Live and dead values dropped with the slots: 2 + 5.
        assert_eq!(drops.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn readers_see_whole_values_while_a_writer_publishes_and_kills() {
        let s: Arc<Vec<KeyedSlots<Arc<u32>, 5>>> =
            Arc::new((0..64).map(|_| KeyedSlots::default()).collect());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for (j, line) in s.iter().enumerate() {
                            for i in 0..5u32 {
                                let key = MIN_KEY + j as u32 * 5 + i;
                                if let Lookup::Found(v) = line.lookup(key) {
                                    assert_eq!(**v, key * 3);
                                    seen += 1;
                                }
                            }
                        }
                    }
                    seen
                })
            })
            .collect();
        for (j, line) in s.iter().enumerate() {
            for i in 0..5usize {
                let key = MIN_KEY + (j * 5 + i) as u32;
                line.publish(i, key, Arc::new(key * 3)).unwrap();
                if i % 2 == 1 {
                    assert!(line.kill(i, key));
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    }
}
