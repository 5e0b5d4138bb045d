//! Property tests over every suite and backend: identical bytes from every
//! backend, round trips, and every single-bit flip of a sealed packet is an
//! ICV failure (never a panic).

mod crypto_common;

use crypto_common::{all_suites, open_one, packet, padded, seal_one};
use dataplane::crypto::{build_with, Backend, BuildOptions, EspCipher, Key, Suite};
use proptest::prelude::*;

fn build_all(suite: Suite, ek: &Key, ak: &Key, iv_key: &Key, esn: bool) -> Vec<Box<dyn EspCipher>> {
    Backend::compiled()
        .iter()
        .filter_map(|&backend| {
            build_with(
                suite,
                ek,
                ak,
                &BuildOptions {
                    esn,
                    backend,
                    allow_legacy: true,
                    iv_key: Some(iv_key.clone()),
                    direction: None,
                },
            )
            .ok()
        })
        .collect()
}

fn key_from(seed: &[u8], n: usize, salt: u8) -> Key {
    Key::new(
        (0..n)
            .map(|i| seed[i % seed.len()] ^ (i as u8).wrapping_mul(salt))
            .collect(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn backends_agree_and_round_trip(
        suite_idx in 0usize..23,
        esn in any::<bool>(),
        seed in proptest::collection::vec(any::<u8>(), 8..64),
        spi in 256u32..,
        seq in any::<u64>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let suite = all_suites()[suite_idx];
        // Without ESN the sequence number is 32 bits.
        let seq = if esn { seq.max(1) } else { u64::from(seq as u32).max(1) };
        let ek = key_from(&seed, suite.encr.key_len(), 31);
        let ak = key_from(&seed, suite.integ.key_len(), 77);
        let ivk = key_from(&seed, 32, 13);
        let ciphers = build_all(suite, &ek, &ak, &ivk, esn);
        prop_assert!(!ciphers.is_empty());
        let pt = padded(&*ciphers[0], &payload);
        let mut reference: Option<Vec<u8>> = None;
        for c in &ciphers {
            let mut p = packet(&**c, spi, seq, &pt);
            seal_one(&**c, &mut p, seq);
            match &reference {
                None => reference = Some(p.clone()),
                Some(r) => prop_assert_eq!(r, &p, "{:?}: {} differs", suite, c.backend()),
            }
        }
        let sealed = reference.unwrap();
        if suite.encr != dataplane::crypto::EncrAlg::Null {
            let body = &sealed[8 + ciphers[0].iv_len()..sealed.len() - ciphers[0].icv_len()];
            prop_assert_ne!(body, &pt[..], "encrypted body must differ from plaintext");
        }
        // Every backend opens what any backend sealed.
        for c in &ciphers {
            let mut p = sealed.clone();
            prop_assert!(open_one(&**c, &mut p, seq), "{:?} {}", suite, c.backend());
            let start = 8 + c.iv_len();
            prop_assert_eq!(&p[start..start + pt.len()], &pt[..]);
        }
    }

    #[test]
    fn random_bit_flips_fail(
        suite_idx in 0usize..23,
        esn in any::<bool>(),
        seq in 1u64..u64::from(u32::MAX),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        flip in any::<prop::sample::Index>(),
    ) {
        let suite = all_suites()[suite_idx];
        let (ek, ak) = crypto_common::keys(suite, 42);
        let ivk = Key::new(vec![5; 32]);
        for c in build_all(suite, &ek, &ak, &ivk, esn) {
            let pt = padded(&*c, &payload);
            let mut p = packet(&*c, 0x1000, seq, &pt);
            seal_one(&*c, &mut p, seq);
            let bit = flip.index(p.len() * 8);
            p[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!open_one(&*c, &mut p, seq), "{:?} {} bit {}", suite, c.backend(), bit);
        }
    }

    #[test]
    fn garbage_never_panics(
        suite_idx in 0usize..23,
        esn in any::<bool>(),
        seq in any::<u64>(),
        data in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let suite = all_suites()[suite_idx];
        let (ek, ak) = crypto_common::keys(suite, 1);
        for c in build_all(suite, &ek, &ak, &Key::new(vec![9; 32]), esn) {
            let mut p = data.clone();
            // Random bytes are (with overwhelming probability) not a valid packet.
            prop_assert!(!open_one(&*c, &mut p, seq));
            let mut s = data.clone();
            seal_one(&*c, &mut s, seq);
        }
    }
}

/// Exhaustive: every bit of one sealed packet per suite, ESN setting and
/// backend.
#[test]
fn every_single_bit_flip_fails() {
    let mut checked = 0usize;
    for suite in all_suites() {
        for esn in [false, true] {
            let (ek, ak) = crypto_common::keys(suite, 3);
            for c in build_all(suite, &ek, &ak, &Key::new(vec![1; 32]), esn) {
                let seq = if esn { (9 << 32) | 77 } else { 77 };
                let pt = padded(&*c, &[0x42; 37]);
                let mut sealed = packet(&*c, 0xdead_beef, seq, &pt);
                seal_one(&*c, &mut sealed, seq);
                let mut p = sealed.clone();
                assert!(open_one(&*c, &mut p, seq));
                for bit in 0..sealed.len() * 8 {
                    let mut p = sealed.clone();
                    p[bit / 8] ^= 1 << (bit % 8);
                    assert!(
                        !open_one(&*c, &mut p, seq),
                        "{suite:?} {} esn={esn} bit {bit}",
                        c.backend()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 20_000, "{checked}");
}
