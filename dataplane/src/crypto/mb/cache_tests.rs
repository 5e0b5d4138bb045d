//! The AES-GCM transform on the per-thread key cache (`GCM_KEYS`): the
//! same bytes as RustCrypto's AES-GCM (seal with one, open with the other)
//! with more SAs than cache entries (evictions), fresh ids after a drop;
//! and the steps of `crypto::key_cache_steps` on this cache: a removed
//! SA's expanded keys wiped by the next poll, an overwritten entry, the
//! cache growing when a third SA needs it.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::super::key_cache::KeyCache;
use super::super::key_cache_steps::{self as steps, Sa};
use super::super::test_jobs::{open, seal};
use super::super::{build, Backend, EncrAlg, EspCipher, IntegAlg, Key, Suite};
use super::{build_gcm, build_gcm_id, supported, GCM_KEYS};

/// Gives this thread a cache of `n` entries (the default is larger than
/// what the tests want to overflow).
fn small_cache(n: usize) {
    GCM_KEYS.with(|c| *c.borrow_mut() = KeyCache::new(n));
}

/// True (and the skip recorded where scripts/test.sh prints it) on a CPU
/// without the VAES kernel.
fn skip() -> bool {
    if supported() {
        return false;
    }
    super::sha_ni::skip_note::note(
        "mb::cache_tests",
        "AES-GCM key-cache tests not run",
        "no AVX-512/VAES on this CPU: the GCM transform is not the cached one",
    );
    true
}

fn suite(encr: EncrAlg) -> Suite {
    Suite {
        encr,
        integ: IntegAlg::None,
    }
}

/// A burst of ESP packets (header written, random plaintext, room for IV
/// and ICV) of random lengths.
fn packets(rng: &mut StdRng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let pt = 4 * rng.random_range(0..400usize);
            let mut p = vec![0u8; 16 + pt + 16];
            rng.fill_bytes(&mut p[..]);
            p
        })
        .collect()
}

#[test]
fn cached_transform_matches_rustcrypto_with_evictions() {
    if skip() {
        return;
    }
    small_cache(16);
    let mut rng = StdRng::seed_from_u64(0x6b63_3133);
    // 40 SAs on 16 entries, used in an order that evicts: every burst of
    // every round misses except where two consecutive ids share no slot.
    let sas: Vec<(EncrAlg, Vec<u8>, bool)> = (0..40)
        .map(|i| {
            let encr = if i % 2 == 0 {
                EncrAlg::AesGcm128
            } else {
                EncrAlg::AesGcm256
            };
            let mut k = vec![0u8; encr.key_len()];
            rng.fill_bytes(&mut k);
            (encr, k, i % 3 == 0)
        })
        .collect();
    let ours: Vec<Box<dyn EspCipher>> = sas
        .iter()
        .map(|(_, k, esn)| build_gcm(&Key::from_slice(k), *esn).expect("kernel"))
        .collect();
    let theirs: Vec<Box<dyn EspCipher>> = sas
        .iter()
        .map(|(e, k, esn)| {
            build(
                suite(*e),
                &Key::from_slice(k),
                &Key::from_slice(&[]),
                *esn,
                Backend::RustCrypto,
            )
            .expect("rustcrypto")
        })
        .collect();
    let before = super::gcm_cache_stats().0;
    for round in 0..3u64 {
        for i in (0..sas.len()).rev() {
            let seq0 = (round << 33) | (round * 1000 + 1);
            let n = rng.random_range(1..=32usize);
            let plain = packets(&mut rng, n);
            let mut a = plain.clone();
            let mut b = plain.clone();
            seal(&*ours[i], &mut a, seq0);
            seal(&*theirs[i], &mut b, seq0);
            assert_eq!(a, b, "SA {i} round {round}: sealed bytes differ");
            // Open each side's packets with the other transform.
            let mut a2 = b.clone();
            assert!(open(&*ours[i], &mut a2, seq0).iter().all(|&ok| ok));
            assert!(open(&*theirs[i], &mut a, seq0).iter().all(|&ok| ok));
            for ((x, y), p) in a.iter().zip(&a2).zip(&plain) {
                let end = x.len() - 16;
                assert_eq!(&x[16..end], &p[16..end]);
                assert_eq!(&y[16..end], &p[16..end]);
            }
            // A flipped ICV bit fails on the cached transform.
            let mut c = b.clone();
            let last = c[0].len() - 1;
            c[0][last] ^= 1;
            assert!(!open(&*ours[i], &mut c, seq0)[0]);
        }
    }
    let after = super::gcm_cache_stats().0;
    assert!(after.misses - before.misses >= 3 * 24, "evictions expected");
    assert!(after.hits > before.hits);
}

#[test]
fn ids_are_fresh_after_a_drop() {
    if skip() {
        return;
    }
    let (a, id_a) = build_gcm_id(&Key::from_slice(&[1u8; 20]), false).expect("kernel");
    drop(a);
    let (_b, id_b) = build_gcm_id(&Key::from_slice(&[1u8; 20]), false).expect("kernel");
    assert!(id_b > id_a);
}

fn gcm_sa(key: &[u8]) -> Sa {
    build_gcm_id(&Key::from_slice(key), false).expect("kernel")
}

/// One burst (one cache lookup) through `c`.
fn one_burst(c: &dyn EspCipher) {
    let mut rng = StdRng::seed_from_u64(7);
    seal(c, &mut packets(&mut rng, 2), 1);
}

#[test]
fn a_removed_sa_is_wiped_at_the_next_poll() {
    if skip() {
        return;
    }
    steps::a_removed_sa_is_wiped_at_the_next_poll(
        &GCM_KEYS,
        |i| gcm_sa(if i == 0 { &[2u8; 36] } else { &[3u8; 20] }),
        one_burst,
    );
}

#[test]
fn an_evicted_entry_keeps_nothing_of_the_previous_key() {
    if skip() {
        return;
    }
    // An AES-256 SA, then an AES-128 SA on the same entry: AES-256's round
    // keys 11..=14 are gone, not left past AES-128's.
    steps::an_overwritten_entry_keeps_nothing(
        &GCM_KEYS,
        || gcm_sa(&[4u8; 36]),
        || gcm_sa(&[5u8; 20]),
        one_burst,
        |e| e.rounds_and_clean_tail(),
        |e, old| {
            assert_eq!(*old, (14, true));
            assert_eq!(e.rounds_and_clean_tail(), (10, true));
        },
    );
}

#[test]
fn the_cache_grows_when_a_third_sa_needs_it() {
    if skip() {
        return;
    }
    steps::grows_when_a_third_sa_needs_it(
        &GCM_KEYS,
        |i| gcm_sa(&[i as u8 + 1; 20]),
        one_burst,
        |(gcm, _)| gcm,
    );
}
