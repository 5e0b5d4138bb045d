//! The ipsec-mb AES-CBC + HMAC and NULL + HMAC transforms on the per-thread
//! key cache (`CBC_KEYS`): the same bytes as RustCrypto for every suite
//! (seal with one, open with the other) with more SAs than cache entries
//! (evictions), both directions' transforms; and the steps of
//! `crypto::key_cache_steps` on this cache: an evicted entry that keeps
//! nothing of the previous SA's keys, a removed SA's entry wiped by the
//! next poll, the cache growing when a third SA needs it.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use super::super::key_cache::KeyCache;
use super::super::key_cache_steps::{self as steps, Sa};
use super::super::test_jobs::{open, seal};
use super::super::{build_with, Backend, BuildOptions, Key};
use super::*;

/// Gives this thread a cache of `n` entries (the default is larger than
/// what the tests want to overflow).
fn small_cache(n: usize) {
    CBC_KEYS.with(|c| *c.borrow_mut() = KeyCache::new(n));
}

/// True (and the skip recorded where scripts/test.sh prints it) if the
/// library cannot run on this CPU.
fn skip() -> bool {
    if imb::warm_thread().is_ok() {
        return false;
    }
    crate::crypto::mb::sha_ni::skip_note::note(
        "ipsecmb::cache_tests",
        "CBC/NULL + HMAC key-cache tests not run",
        "intel-ipsec-mb has no manager for this CPU",
    );
    true
}

/// An entry's key bytes (every field but the tag).
fn entry_bytes(e: &CbcKeys) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(e.enc.0.iter().flatten());
    v.extend(e.dec.0.iter().flatten());
    v.extend(&e.ipad);
    v.extend(&e.opad);
    v.extend(e.iv.iter().flatten());
    v
}

const SUITES: [(EncrAlg, IntegAlg); 12] = [
    (EncrAlg::AesCbc128, IntegAlg::HmacSha1_96),
    (EncrAlg::AesCbc128, IntegAlg::HmacSha256_128),
    (EncrAlg::AesCbc128, IntegAlg::HmacSha384_192),
    (EncrAlg::AesCbc128, IntegAlg::HmacSha512_256),
    (EncrAlg::AesCbc256, IntegAlg::HmacSha1_96),
    (EncrAlg::AesCbc256, IntegAlg::HmacSha256_128),
    (EncrAlg::AesCbc256, IntegAlg::HmacSha384_192),
    (EncrAlg::AesCbc256, IntegAlg::HmacSha512_256),
    (EncrAlg::Null, IntegAlg::HmacSha1_96),
    (EncrAlg::Null, IntegAlg::HmacSha256_128),
    (EncrAlg::Null, IntegAlg::HmacSha384_192),
    (EncrAlg::Null, IntegAlg::HmacSha512_256),
];

struct TestSa {
    suite: Suite,
    enc: Vec<u8>,
    auth: Vec<u8>,
    iv_key: [u8; 32],
    esn: bool,
}

fn random_sa(rng: &mut StdRng, i: usize) -> TestSa {
    let (encr, integ) = SUITES[i % SUITES.len()];
    let mut enc = vec![0u8; encr.key_len()];
    rng.fill_bytes(&mut enc);
    let mut auth = vec![0u8; integ.key_len()];
    rng.fill_bytes(&mut auth);
    TestSa {
        suite: Suite { encr, integ },
        enc,
        auth,
        iv_key: rng.random(),
        esn: i.is_multiple_of(3),
    }
}

fn ours(sa: &TestSa, dir: Option<Direction>) -> Sa {
    build_id(sa.suite, &sa.enc, &sa.auth, sa.esn, &sa.iv_key, dir).expect("ipsec-mb")
}

fn rustcrypto(sa: &TestSa) -> Box<dyn EspCipher> {
    build_with(
        sa.suite,
        &Key::from_slice(&sa.enc),
        &Key::from_slice(&sa.auth),
        &BuildOptions {
            esn: sa.esn,
            backend: Backend::RustCrypto,
            iv_key: Some(Key::from_slice(&sa.iv_key)),
            ..BuildOptions::default()
        },
    )
    .expect("rustcrypto")
}

/// A burst of ESP packets for `c` (random header and payload, room for IV
/// and ICV) of random lengths, some over the SHA-NI path's limit.
fn packets(rng: &mut StdRng, c: &dyn EspCipher, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let pt = 16 * rng.random_range(1..100usize);
            let mut p = vec![0u8; 8 + c.iv_len() + pt + c.icv_len()];
            rng.fill_bytes(&mut p[..]);
            p
        })
        .collect()
}

#[test]
fn cached_transforms_match_rustcrypto_with_evictions() {
    if skip() {
        return;
    }
    small_cache(16);
    let mut rng = StdRng::seed_from_u64(0x6362_6331);
    // 48 SAs (every suite four times) on 16 entries, used in an order
    // that evicts; each as one both-ways transform and as the outbound /
    // inbound pair an SA database installs.
    let sas: Vec<TestSa> = (0..48).map(|i| random_sa(&mut rng, i)).collect();
    let both: Vec<_> = sas.iter().map(|s| ours(s, None).0).collect();
    let out: Vec<_> = sas
        .iter()
        .map(|s| ours(s, Some(Direction::Outbound)).0)
        .collect();
    let inb: Vec<_> = sas
        .iter()
        .map(|s| ours(s, Some(Direction::Inbound)).0)
        .collect();
    let theirs: Vec<_> = sas.iter().map(rustcrypto).collect();
    let before = cbc_cache_stats().0;
    for round in 0..2u64 {
        for i in (0..sas.len()).rev() {
            let seq0 = (round << 33) | (round * 1000 + 1);
            let n = rng.random_range(1..=40usize);
            let plain = packets(&mut rng, &*theirs[i], n);
            let mut a = plain.clone();
            let mut b = plain.clone();
            let mut o = plain.clone();
            seal(&*both[i], &mut a, seq0);
            seal(&*theirs[i], &mut b, seq0);
            seal(&*out[i], &mut o, seq0);
            let what = format!("SA {i} {:?} round {round}", sas[i].suite);
            assert_eq!(a, b, "{what}: sealed bytes differ");
            assert_eq!(o, b, "{what}: outbound sealed bytes differ");
            // Open each side's packets with the other transforms.
            let mut a2 = b.clone();
            let mut a3 = b.clone();
            assert!(
                open(&*both[i], &mut a2, seq0).iter().all(|&ok| ok),
                "{what}"
            );
            assert!(open(&*inb[i], &mut a3, seq0).iter().all(|&ok| ok), "{what}");
            assert!(
                open(&*theirs[i], &mut a, seq0).iter().all(|&ok| ok),
                "{what}"
            );
            assert_eq!(a2, a, "{what}: opened bytes differ");
            assert_eq!(a3, a, "{what}: inbound opened bytes differ");
            let icv = theirs[i].icv_len();
            let iv = theirs[i].iv_len();
            for (x, p) in a.iter().zip(&plain) {
                let end = x.len() - icv;
                assert_eq!(&x[8 + iv..end], &p[8 + iv..end], "{what}");
            }
            // A flipped ICV bit fails on the cached transforms; each
            // direction's transform refuses the other operation.
            let mut c = b.clone();
            let last = c[0].len() - 1;
            c[0][last] ^= 1;
            assert!(!open(&*both[i], &mut c.clone(), seq0)[0], "{what}");
            assert!(!open(&*inb[i], &mut c, seq0)[0], "{what}");
            if sas[i].suite.encr != EncrAlg::Null {
                assert!(!open(&*out[i], &mut b.clone(), seq0).iter().any(|&ok| ok));
                let mut s = plain.clone();
                seal(&*inb[i], &mut s, seq0);
                assert_ne!(s, b, "{what}: an inbound SA sealed");
            }
        }
    }
    let after = cbc_cache_stats().0;
    assert!(after.misses - before.misses >= 2 * 48, "evictions expected");
    assert!(after.hits > before.hits);
}

#[test]
fn ids_are_fresh_after_a_drop() {
    let mut rng = StdRng::seed_from_u64(3);
    let sa = random_sa(&mut rng, 1);
    let Ok((a, id_a)) = build_id(sa.suite, &sa.enc, &sa.auth, false, &sa.iv_key, None) else {
        return;
    };
    drop(a);
    let (_b, id_b) = ours(&sa, None);
    assert!(id_a != 0 && id_b > id_a);
}

/// One burst (one cache lookup) through `c`.
fn one_burst(c: &dyn EspCipher) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut p = packets(&mut rng, c, 2);
    seal(c, &mut p, 1);
}

/// SA `i` of the suites' cycle (every field's own random bytes).
fn sa_of(i: usize) -> Sa {
    let mut rng = StdRng::seed_from_u64(i as u64);
    ours(&random_sa(&mut rng, i), None)
}

#[test]
fn a_removed_sa_is_wiped_at_the_next_poll() {
    if skip() {
        return;
    }
    steps::a_removed_sa_is_wiped_at_the_next_poll(&CBC_KEYS, |i| sa_of(5 + 2 * i), one_burst);
}

#[test]
fn an_evicted_entry_keeps_nothing_of_the_previous_key() {
    if skip() {
        return;
    }
    // AES-256 + HMAC-SHA-512 both ways (every field in use), then NULL +
    // HMAC-SHA-1 on the same entry (the fewest bytes in use).
    steps::an_overwritten_entry_keeps_nothing(
        &CBC_KEYS,
        || sa_of(7),
        || sa_of(8),
        one_burst,
        entry_bytes,
        |e, old| {
            let new = entry_bytes(e);
            // Only the SHA-1 states remain (20 bytes each); nothing else is
            // set, and no 16 bytes of the old entry survive anywhere in it.
            let (aes, rest) = new.split_at(2 * 240);
            assert!(aes.iter().all(|&b| b == 0), "AES schedules left");
            let (pads, iv) = rest.split_at(128);
            assert!(pads[20..64].iter().all(|&b| b == 0));
            assert!(pads[84..].iter().all(|&b| b == 0));
            assert!(iv.iter().all(|&b| b == 0), "IV schedule left");
            for w in old.chunks(16).filter(|w| w.iter().any(|&b| b != 0)) {
                assert!(!new.windows(16).any(|x| x == w), "old key bytes left");
            }
        },
    );
}

#[test]
fn the_cache_grows_when_a_third_sa_needs_it() {
    if skip() {
        return;
    }
    steps::grows_when_a_third_sa_needs_it(&CBC_KEYS, sa_of, one_burst, |(_, cbc)| cbc);
}

/// Every CBC/NULL suite, with and without ESN, as the outbound / inbound
/// pair an SA database installs and as one both-ways transform, against
/// RustCrypto (seal with one, open with the other), at random lengths on
/// every burst path (SHA-NI, wide, library).
#[test]
fn every_suite_both_esn_modes_and_directions_match_rustcrypto() {
    if skip() {
        return;
    }
    let mut rng = StdRng::seed_from_u64(0x6d65_6d31_3400);
    for (i, &(encr, integ)) in SUITES.iter().enumerate() {
        for esn in [false, true] {
            let mut sa = random_sa(&mut rng, i);
            sa.esn = esn;
            let what = format!("{encr:?} + {integ:?}, ESN {esn}");
            let both = ours(&sa, None).0;
            let out = ours(&sa, Some(Direction::Outbound)).0;
            let inb = ours(&sa, Some(Direction::Inbound)).0;
            let theirs = rustcrypto(&sa);
            // Sequence numbers past 2^32 with ESN (SeqHi in the ICV input).
            let seq0 = if esn { (7 << 32) | 0xffff_fff0 } else { 0x10 };
            for n in [1usize, 4, 5, 16, 17, 32, 40] {
                let plain = packets(&mut rng, &*theirs, n);
                let mut o = plain.clone();
                let mut b = plain.clone();
                let mut t = plain.clone();
                seal(&*out, &mut o, seq0);
                seal(&*both, &mut b, seq0);
                seal(&*theirs, &mut t, seq0);
                assert_eq!(o, t, "{what}: outbound sealed bytes differ");
                assert_eq!(b, t, "{what}: both-ways sealed bytes differ");
                let mut x = t.clone();
                let mut y = t.clone();
                let mut z = o.clone();
                assert!(open(&*inb, &mut x, seq0).iter().all(|&ok| ok), "{what}");
                assert!(open(&*both, &mut y, seq0).iter().all(|&ok| ok), "{what}");
                assert!(open(&*theirs, &mut z, seq0).iter().all(|&ok| ok), "{what}");
                assert_eq!(x, z, "{what}: inbound opened bytes differ");
                assert_eq!(y, z, "{what}: both-ways opened bytes differ");
                // The wrong SeqHi (ESN) or a flipped ICV bit fails.
                let mut f = t.clone();
                if esn {
                    assert!(!open(&*inb, &mut f, seq0 + (1 << 32))[0], "{what}");
                } else {
                    let last = f[0].len() - 1;
                    f[0][last] ^= 1;
                    assert!(!open(&*inb, &mut f, seq0)[0], "{what}");
                }
            }
        }
    }
}

/// The transforms hold their raw keys inline, in one allocation with no
/// padding to speak of (bench/results/sad.md, cbcmem14).
#[test]
fn transform_sizes() {
    use std::mem::size_of;
    assert_eq!(size_of::<SaKeys<Sha1>>(), 48 + 20 + 8 + 4);
    assert_eq!(size_of::<SaKeys<NoSmall>>(), 48 + 64 + 8 + 4);
    assert_eq!(std::mem::align_of::<CbcHmacEsp<true, NoSmall>>(), 1);
    for (what, n) in [
        ("cbc sha1", size_of::<CbcHmacEsp<false, Sha1>>()),
        ("cbc sha256", size_of::<CbcHmacEsp<false, Sha256>>()),
        (
            "cbc sha256 one-pass",
            size_of::<CbcHmacOnePass<false, Sha256>>(),
        ),
        ("cbc sha384/512", size_of::<CbcHmacEsp<false, NoSmall>>()),
        ("null sha384/512", size_of::<NullHmacEsp<false, NoSmall>>()),
    ] {
        eprintln!("{what}: {n} B");
        assert!(n <= 130, "{what}: {n} B");
    }
}

/// An HMAC key longer than the family's room (the RFC 4868 length) is
/// refused with a typed error, not truncated or a panic; a shorter one
/// (SHA-384's 48 bytes in the SHA-384/512 room) is used as given.
#[test]
fn hmac_key_longer_than_its_room_is_refused() {
    if skip() {
        return;
    }
    let iv = [3u8; 32];
    let sha1 = Suite {
        encr: EncrAlg::AesCbc128,
        integ: IntegAlg::HmacSha1_96,
    };
    let r = build_id(sha1, &[1; 16], &[2; 21], false, &iv, None);
    assert!(
        matches!(
            r,
            Err(CryptoError::KeyLength {
                expected: 20,
                got: 21,
                ..
            })
        ),
        "{:?}",
        r.err()
    );
    let sha512 = Suite {
        encr: EncrAlg::Null,
        integ: IntegAlg::HmacSha512_256,
    };
    assert!(build_id(sha512, &[], &[2; 65], false, &iv, None).is_err());
    assert!(build_id(sha512, &[], &[2; 64], false, &iv, None).is_ok());
}
