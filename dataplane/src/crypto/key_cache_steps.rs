//! The key-cache test steps that both cached transforms' tests run, on
//! their own cache (`mb::cache_tests`: AES-GCM on the VAES kernel,
//! `ipsecmb::cache_tests`: ipsec-mb CBC/NULL + HMAC): a removed SA's entry
//! wiped at the next poll, an overwritten entry that keeps nothing of the
//! previous SA's keys, and a thread's cache that stays one set until a
//! third SA needs it.

use std::cell::RefCell;
use std::thread::LocalKey;

use super::key_cache::{self, CacheSlot, KeyCache};
use super::EspCipher;

/// A thread's cache of one entry type.
pub(crate) type Cache<E> = &'static LocalKey<RefCell<KeyCache<E>>>;

/// A fresh transform of the suite under test and its cache id.
pub(crate) type Sa = (Box<dyn EspCipher>, u64);

fn holds<E: CacheSlot>(cache: Cache<E>, id: u64) -> bool {
    cache.with(|c| c.borrow().holds(id))
}

fn poll<E: CacheSlot>(cache: Cache<E>) {
    cache.with(|c| c.borrow_mut().poll());
}

/// Two SAs used (`use_sa`: a burst through the transform), one dropped:
/// its entry stays until the next poll, which wipes it (tag and keys
/// zero) and nothing else.
pub(crate) fn a_removed_sa_is_wiped_at_the_next_poll<E: CacheSlot>(
    cache: Cache<E>,
    make: impl Fn(usize) -> Sa,
    use_sa: impl Fn(&dyn EspCipher),
) {
    let _g = key_cache::TEST_RING
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache.with(|c| *c.borrow_mut() = KeyCache::new(64));
    let (keep, id_keep) = make(0);
    let (gone, id_gone) = make(1);
    use_sa(&*keep);
    use_sa(&*gone);
    assert!(holds(cache, id_keep) && holds(cache, id_gone));
    poll(cache);
    assert!(
        holds(cache, id_keep) && holds(cache, id_gone),
        "nothing removed yet"
    );
    drop(gone);
    // Still there until the worker's next poll (one poll loop) ...
    assert!(holds(cache, id_gone));
    poll(cache);
    // ... then wiped: tag and keys zero, the other SA's entry kept.
    assert!(!holds(cache, id_gone));
    assert!(holds(cache, id_keep));
    cache.with(|c| assert_eq!(c.borrow().nonzero_entries(), 1));
}

/// `make_big`'s SA in a set's way 0, then (same set) two others and
/// `make_small`'s in that order, so that the small SA's keys are expanded
/// into the very entry the big one's were in (the first other is used
/// again after the bypass of the second, so way 0 is the one not used
/// since). `snap` reads what the test wants of the big SA's entry;
/// `check(new entry, snapshot)` that nothing of it is left.
pub(crate) fn an_overwritten_entry_keeps_nothing<E: CacheSlot, T>(
    cache: Cache<E>,
    make_big: impl Fn() -> Sa,
    make_small: impl Fn() -> Sa,
    use_sa: impl Fn(&dyn EspCipher),
    snap: impl Fn(&E) -> T,
    check: impl Fn(&E, &T),
) {
    const ENTRIES: usize = 16;
    const SETS: u64 = ENTRIES as u64 / 2;
    cache.with(|c| *c.borrow_mut() = KeyCache::new(ENTRIES));
    let (big, id_big) = make_big();
    let same_set = || loop {
        let (c, id) = make_small();
        if id % SETS == id_big % SETS {
            break (c, id);
        }
    };
    let (filler, passing, (small, id_small)) = (same_set(), same_set(), same_set());
    use_sa(&*big);
    let at = cache.with(|c| c.borrow().position(id_big));
    assert_eq!(at.map(|p| p.1), Some(0), "an empty set fills way 0");
    let old = cache.with(|c| snap(c.borrow().entry(id_big).expect("filled")));
    use_sa(&*filler.0);
    use_sa(&*passing.0);
    assert!(holds(cache, id_big), "a bypass keeps both ways");
    use_sa(&*filler.0);
    use_sa(&*small);
    assert!(!holds(cache, id_big) && holds(cache, id_small));
    assert_eq!(cache.with(|c| c.borrow().position(id_small)), at);
    cache.with(|c| check(c.borrow().entry(id_small).expect("filled"), &old));
}

/// On a fresh thread after `crypto::warm_thread`: both caches one set;
/// two SAs of this kind leave this cache so at the polls, a third makes
/// the next poll give it [`key_cache::entries`] entries (the other kind's
/// cache untouched), and the three SAs then run from it. `this` picks this
/// cache's bytes from `crypto::key_cache_bytes`.
pub(crate) fn grows_when_a_third_sa_needs_it<E: CacheSlot>(
    cache: Cache<E>,
    make: fn(usize) -> Sa,
    use_sa: fn(&dyn EspCipher),
    this: fn((usize, usize)) -> usize,
) {
    std::thread::spawn(move || {
        let _g = key_cache::TEST_RING
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = std::mem::size_of::<E>();
        let warm = super::warm_thread();
        let first = super::key_cache_bytes();
        assert_eq!(warm, first.0 + first.1);
        assert_eq!(this(first), 3 * entry, "one set and the spare");
        let other = warm - this(first);
        let sas: Vec<Sa> = (0..3).map(make).collect();
        use_sa(&*sas[0].0);
        use_sa(&*sas[1].0);
        assert_eq!(super::poll_key_caches(), 0, "two SAs fit one set");
        assert_eq!(super::key_cache_bytes(), first);
        use_sa(&*sas[2].0);
        assert_eq!(super::key_cache_bytes(), first, "no allocation in a burst");
        let grown = super::poll_key_caches();
        assert_eq!(grown, (key_cache::entries() + 1) * entry);
        let now = super::key_cache_bytes();
        assert_eq!(this(now), grown);
        assert_eq!(now.0 + now.1 - this(now), other, "the other cache grew");
        for (sa, _) in &sas {
            use_sa(&**sa);
        }
        assert!(sas.iter().all(|&(_, id)| holds(cache, id)));
        assert_eq!(cache.with(|c| c.borrow().len()), key_cache::entries());
        assert_eq!(super::poll_key_caches(), 0, "once");
    })
    .join()
    .expect("test thread");
}
