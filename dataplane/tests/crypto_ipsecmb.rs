//! The intel-ipsec-mb backend (`Backend::IpsecMb`, cargo feature `ipsec-mb`):
//! published vectors on its primitives (RFC 3602 AES-CBC, NIST SP 800-38A
//! AES-256-CBC, RFC 2202 / RFC 4231 / RFC 4868 HMAC), whole bursts of random
//! packets against RustCrypto sealing one packet at a time (identical bytes,
//! every suite of the backend, ESN on and off, mixed sizes), corrupted
//! packets inside a burst failing alone, and no allocation on a packet
//! thread after `warm_thread`. Wycheproof runs over this backend too
//! (`crypto_wycheproof.rs` iterates `Backend::compiled()`).
//!
//! Built without the feature, the test prints that it was skipped: the
//! portable path (RustCrypto) is what `Backend::Auto` then uses, and it is
//! covered by every other crypto test.

#[cfg(not(feature = "ipsec-mb"))]
mod skip_note;

#[cfg(not(feature = "ipsec-mb"))]
#[test]
fn ipsec_mb_backend_not_compiled() {
    skip_note::note(
        "crypto_ipsecmb",
        "intel-ipsec-mb backend (Backend::Auto uses the portable backends: crypto_props, crypto_api)",
        "built without cargo feature ipsec-mb",
    );
    assert!(!dataplane::crypto::Backend::compiled().contains(&dataplane::crypto::Backend::IpsecMb));
}

#[cfg(feature = "ipsec-mb")]
mod crypto_common;

#[cfg(feature = "ipsec-mb")]
mod with_ipsec_mb {
    use super::crypto_common::{all_suites, keys, open_jobs, opts, packet, padded, seal_jobs};
    use dataplane::crypto::raw;
    use dataplane::crypto::{
        build_with, Backend, BuildOptions, EncrAlg, EspCipher, IntegAlg, Key, OpenJob, SealJob,
        Suite,
    };
    use proptest::prelude::*;

    /// Every suite this backend implements (all but 3DES and HMAC-MD5).
    fn suites() -> Vec<Suite> {
        all_suites()
            .into_iter()
            .filter(|s| s.encr != EncrAlg::TripleDesCbc && s.integ != IntegAlg::HmacMd5_96)
            .collect()
    }

    #[test]
    fn library_code_path_is_reported() {
        let arch = ffi::ipsecmb::warm_thread().expect("intel-ipsec-mb manager");
        eprintln!(
            "intel-ipsec-mb {} code path on this CPU: {}",
            ffi::ipsecmb::version(),
            arch.name()
        );
        let (ek, ak) = keys(suites()[3], 1);
        let c = build_with(suites()[3], &ek, &ak, &opts(Backend::IpsecMb, false)).unwrap();
        assert_eq!(c.backend(), format!("ipsec-mb-{}", arch.name()));
    }

    /// RFC 3602 §4 cases 1-4 (AES-128-CBC) and NIST SP 800-38A F.2.5
    /// (AES-256-CBC), encrypt and decrypt.
    #[test]
    fn aes_cbc_published_vectors() {
        let cases = [
            (
                EncrAlg::AesCbc128,
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                b"Single block msg".to_vec(),
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                EncrAlg::AesCbc128,
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                (0u8..32).collect(),
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
            (
                EncrAlg::AesCbc128,
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                b"This is a 48-byte message (exactly 3 AES blocks)".to_vec(),
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
                 021c19216bad525c8579695d83ba2684",
            ),
            (
                EncrAlg::AesCbc128,
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                (0xa0u8..0xe0).collect(),
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
                 35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
            ),
            (
                EncrAlg::AesCbc256,
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "000102030405060708090a0b0c0d0e0f",
                hex::decode(
                    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                   30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
                )
                .unwrap(),
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                 39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
            ),
        ];
        for (i, (encr, key, iv, pt, ct)) in cases.iter().enumerate() {
            let c = raw::cbc(*encr, Backend::IpsecMb, &hex::decode(key).unwrap()).unwrap();
            let ct = hex::decode(ct.replace(' ', "")).unwrap();
            let mut d = pt.clone();
            assert!(c.encrypt(&hex::decode(iv).unwrap(), &mut d));
            assert_eq!(d, ct, "case {i} encrypt");
            assert!(c.decrypt(&hex::decode(iv).unwrap(), &mut d));
            assert_eq!(&d, pt, "case {i} decrypt");
        }
    }

    /// RFC 2202 (HMAC-SHA1) cases 1-2, RFC 4231 cases 1, 2 and 6 (key
    /// longer than the block), RFC 4868 §2.7.2 AUTH256-1 / AUTH384-1 /
    /// AUTH512-1 (the ESP key lengths), full length and truncated to the
    /// ESP ICV.
    #[test]
    fn hmac_published_vectors() {
        use IntegAlg::*;
        let hi = b"Hi There".to_vec();
        let jefe = (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec());
        let big = (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
        );
        let cases: Vec<(IntegAlg, Vec<u8>, Vec<u8>, &str)> = vec![
            (
                HmacSha1_96,
                vec![0x0b; 20],
                hi.clone(),
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                HmacSha1_96,
                jefe.0.clone(),
                jefe.1.clone(),
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                HmacSha512_256,
                jefe.0.clone(),
                jefe.1.clone(),
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
            (
                HmacSha256_128,
                big.0.clone(),
                big.1.clone(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                HmacSha384_192,
                big.0.clone(),
                big.1.clone(),
                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                 0c2ef6ab4030fe8296248df163f44952",
            ),
            (
                HmacSha512_256,
                big.0.clone(),
                big.1.clone(),
                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            ),
            (
                HmacSha256_128,
                vec![0x0b; 32],
                hi.clone(),
                "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
            ),
            (
                HmacSha384_192,
                vec![0x0b; 48],
                hi.clone(),
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc\
                 4c5df61d5b3297b4fb68dab9f1b582c2",
            ),
            (
                HmacSha512_256,
                vec![0x0b; 64],
                hi,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8\
                 ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
            ),
        ];
        for (i, (integ, key, msg, want)) in cases.iter().enumerate() {
            let want = hex::decode(want.replace(' ', "")).unwrap();
            let m = raw::mac(*integ, Backend::IpsecMb, key).unwrap();
            assert_eq!(m.full_len(), want.len(), "case {i}");
            let mut full = vec![0u8; want.len()];
            m.mac2(msg, &[], &mut full);
            assert_eq!(full, want, "case {i} full");
            let mut icv = vec![0u8; integ.icv_len()];
            m.mac2(msg, &[], &mut icv);
            assert_eq!(icv, want[..integ.icv_len()], "case {i} truncated");
        }
    }

    fn iv_key(seed: &[u8]) -> Key {
        Key::new((0..32).map(|i| seed[i % seed.len()] ^ 0x5a).collect())
    }

    fn key_from(seed: &[u8], n: usize, salt: u8) -> Key {
        Key::new(
            (0..n)
                .map(|i| seed[i % seed.len()] ^ (i as u8).wrapping_mul(salt))
                .collect(),
        )
    }

    fn build(suite: Suite, b: Backend, seed: &[u8], esn: bool) -> Box<dyn EspCipher> {
        build_with(
            suite,
            &key_from(seed, suite.encr.key_len(), 31),
            &key_from(seed, suite.integ.key_len(), 77),
            &BuildOptions {
                esn,
                backend: b,
                allow_legacy: false,
                iv_key: Some(iv_key(seed)),
                direction: None,
            },
        )
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// A burst sealed by intel-ipsec-mb in one call is byte for byte
        /// what RustCrypto writes packet by packet; opening the burst
        /// fails exactly the corrupted packets and gives back the others'
        /// plaintext.
        #[test]
        fn bursts_match_rustcrypto_per_packet(
            suite_idx in 0usize..15,
            esn in any::<bool>(),
            seed in proptest::collection::vec(any::<u8>(), 8..48),
            sizes in proptest::collection::vec(0usize..1500, 1..80),
            seq_hi in 0u32..4,
            seq_lo in any::<u32>(),
            corrupt in proptest::collection::vec((any::<u16>(), any::<u16>(), 0u8..8), 0..6),
        ) {
            let suite = suites()[suite_idx];
            let imb = build(suite, Backend::IpsecMb, &seed, esn);
            let rc = build(suite, Backend::RustCrypto, &seed, esn);
            // ChaCha20-Poly1305 names our kernel where it runs
            // ("espresso-avx512-ifma", "espresso-avx512+ipsec-mb-...").
            prop_assert!(
                imb.backend().starts_with("ipsec-mb")
                    || imb.backend().starts_with("espresso-avx512"),
                "{}",
                imb.backend()
            );
            prop_assert_eq!(
                (imb.iv_len(), imb.icv_len(), imb.pad_align()),
                (rc.iv_len(), rc.icv_len(), rc.pad_align())
            );
            let seq_of = |i: usize| {
                let lo = seq_lo.wrapping_add(i as u32).max(1);
                if esn { (u64::from(seq_hi) << 32) | u64::from(lo) } else { u64::from(lo) }
            };
            let pts: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let payload: Vec<u8> =
                        (0..n).map(|j| seed[(i + j) % seed.len()] ^ j as u8).collect();
                    padded(&*imb, &payload)
                })
                .collect();
            let mut burst: Vec<Vec<u8>> = pts
                .iter()
                .enumerate()
                .map(|(i, pt)| packet(&*imb, 0x1000 + i as u32, seq_of(i), pt))
                .collect();
            let mut one_by_one = burst.clone();
            {
                let mut jobs: Vec<SealJob> = burst
                    .iter_mut()
                    .enumerate()
                    .map(|(i, p)| SealJob { esp: p, seq: seq_of(i) })
                    .collect();
                imb.seal(&mut jobs);
            }
            for (i, p) in one_by_one.iter_mut().enumerate() {
                rc.seal(&mut [SealJob { esp: p, seq: seq_of(i) }]);
            }
            for (i, (a, b)) in burst.iter().zip(&one_by_one).enumerate() {
                prop_assert_eq!(a, b, "{:?} esn={} packet {} of {}", suite, esn, i, burst.len());
            }
            let sealed = burst.clone();
            for &(which, at, bit) in &corrupt {
                let i = which as usize % burst.len();
                let at = at as usize % burst[i].len();
                burst[i][at] ^= 1 << bit;
            }
            // Bad = changed: two flips of the same bit give the packet back
            // (it must then verify).
            let bad: Vec<bool> = burst.iter().zip(&sealed).map(|(a, b)| a != b).collect();
            let forged = burst.clone();
            let mut jobs: Vec<OpenJob> = burst
                .iter_mut()
                .enumerate()
                .map(|(i, p)| OpenJob { esp: p, seq: seq_of(i), ok: bad[i] })
                .collect();
            imb.open(&mut jobs);
            for (i, j) in jobs.iter().enumerate() {
                prop_assert_eq!(j.ok, !bad[i], "{:?} esn={} packet {}", suite, esn, i);
            }
            drop(jobs);
            // CBC + HMAC verifies before it decrypts: a forged packet is
            // left exactly as it came (SeqHi written for ESN put back).
            if matches!(suite.encr, EncrAlg::AesCbc128 | EncrAlg::AesCbc256) {
                for (i, (p, f)) in burst.iter().zip(&forged).enumerate() {
                    if bad[i] {
                        prop_assert_eq!(p, f, "{:?} esn={} forged packet {} modified", suite, esn, i);
                    }
                }
            }
            let off = 8 + imb.iv_len();
            for (i, (p, pt)) in burst.iter().zip(&pts).enumerate() {
                if !bad[i] {
                    prop_assert_eq!(&p[off..off + pt.len()], &pt[..], "packet {}", i);
                }
            }
        }
    }

    /// Every burst size from 1 to 33 (the small groups a burst spread over
    /// many SAs gives, where the CBC/NULL transforms take their one-packet
    /// and small-group paths, and a full chunk plus one), every AES-CBC and
    /// NULL suite, ESN on and off, transforms built both ways and for one
    /// direction (outbound seals, inbound opens, as `Sa::new` builds them):
    /// sealed bytes identical to RustCrypto's packet by packet, the burst
    /// opens to the plaintext, and a corrupted packet fails alone.
    #[test]
    fn every_small_burst_size_matches_rustcrypto() {
        use dataplane::crypto::Direction;
        let seed: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        let one_way = |suite: Suite, esn: bool, d: Direction| {
            build_with(
                suite,
                &key_from(&seed, suite.encr.key_len(), 31),
                &key_from(&seed, suite.integ.key_len(), 77),
                &BuildOptions {
                    esn,
                    backend: Backend::IpsecMb,
                    allow_legacy: false,
                    iv_key: Some(iv_key(&seed)),
                    direction: Some(d),
                },
            )
            .unwrap()
        };
        let cbc_or_null = |s: &Suite| {
            matches!(
                s.encr,
                EncrAlg::AesCbc128 | EncrAlg::AesCbc256 | EncrAlg::Null
            )
        };
        for suite in suites().into_iter().filter(cbc_or_null) {
            for esn in [false, true] {
                let both = build(suite, Backend::IpsecMb, &seed, esn);
                let out = one_way(suite, esn, Direction::Outbound);
                let inb = one_way(suite, esn, Direction::Inbound);
                let rc = build(suite, Backend::RustCrypto, &seed, esn);
                for n in 1..=33usize {
                    let seq_of = |i: usize| {
                        let lo = 0xffff_fff0u32.wrapping_add((n * 40 + i) as u32).max(1);
                        if esn {
                            (3u64 << 32) | u64::from(lo)
                        } else {
                            u64::from(lo)
                        }
                    };
                    // Mostly short packets, a long one now and then.
                    let len = |i: usize| {
                        if (n + i) % 7 == 3 {
                            1400 + i
                        } else {
                            (n * 13 + i * 29) % 200
                        }
                    };
                    let pts: Vec<Vec<u8>> = (0..n)
                        .map(|i| {
                            let p: Vec<u8> = (0..len(i)).map(|j| (i * 7 + j + n) as u8).collect();
                            padded(&*both, &p)
                        })
                        .collect();
                    let fresh = || -> Vec<Vec<u8>> {
                        pts.iter()
                            .enumerate()
                            .map(|(i, pt)| packet(&*both, 0x2000 + i as u32, seq_of(i), pt))
                            .collect()
                    };
                    let mut want = fresh();
                    for (i, p) in want.iter_mut().enumerate() {
                        rc.seal(&mut [SealJob {
                            esp: p,
                            seq: seq_of(i),
                        }]);
                    }
                    for c in [&both, &out] {
                        let mut got = fresh();
                        let mut jobs: Vec<SealJob> = got
                            .iter_mut()
                            .enumerate()
                            .map(|(i, p)| SealJob {
                                esp: p,
                                seq: seq_of(i),
                            })
                            .collect();
                        c.seal(&mut jobs);
                        drop(jobs);
                        assert_eq!(got, want, "{suite:?} esn {esn} burst of {n}");
                    }
                    for c in [&both, &inb] {
                        let mut got = want.clone();
                        let bad = n / 2;
                        let at = got[bad].len() - 1;
                        got[bad][at] ^= 0x10;
                        let mut jobs: Vec<OpenJob> = got
                            .iter_mut()
                            .enumerate()
                            .map(|(i, p)| OpenJob {
                                esp: p,
                                seq: seq_of(i),
                                ok: i == bad,
                            })
                            .collect();
                        c.open(&mut jobs);
                        for (i, j) in jobs.iter().enumerate() {
                            assert_eq!(
                                j.ok,
                                i != bad,
                                "{suite:?} esn {esn} burst of {n} packet {i}"
                            );
                        }
                        drop(jobs);
                        let off = 8 + both.iv_len();
                        for (i, (p, pt)) in got.iter().zip(&pts).enumerate() {
                            if i != bad {
                                assert_eq!(
                                    &p[off..off + pt.len()],
                                    &pt[..],
                                    "{suite:?} esn {esn} burst of {n} packet {i}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A transform built for one direction (`BuildOptions::direction`, as
    /// `Sa::new` does) keeps one AES-CBC schedule (and the IV key only
    /// outbound): the outbound one seals the very bytes a both-ways
    /// transform seals, the inbound one opens them, and each refuses the
    /// other operation (no packet verifies, no packet is sealed: all zero).
    #[test]
    fn one_direction_transforms_seal_and_open_as_both_ways_and_refuse_the_other() {
        use dataplane::crypto::Direction;
        for suite in suites() {
            for esn in [false, true] {
                let seed = [3u8, 1, 4, 1, 5, 9, 2, 6];
                let with_dir = |direction| {
                    build_with(
                        suite,
                        &key_from(&seed, suite.encr.key_len(), 31),
                        &key_from(&seed, suite.integ.key_len(), 77),
                        &BuildOptions {
                            esn,
                            backend: Backend::IpsecMb,
                            allow_legacy: false,
                            iv_key: Some(iv_key(&seed)),
                            direction,
                        },
                    )
                    .unwrap()
                };
                let both = with_dir(None);
                let out = with_dir(Some(Direction::Outbound));
                let inb = with_dir(Some(Direction::Inbound));
                let pts: Vec<Vec<u8>> = [0usize, 1, 60, 200, 1400]
                    .iter()
                    .map(|&n| padded(&*both, &vec![0xa5; n]))
                    .collect();
                let seq = |i: usize| (7u64 << 32 | 1000) + i as u64;
                let fresh = || -> Vec<Vec<u8>> {
                    pts.iter()
                        .enumerate()
                        .map(|(i, pt)| packet(&*both, 0x4242, seq(i), pt))
                        .collect()
                };
                let seal = |c: &dyn EspCipher, b: &mut Vec<Vec<u8>>| {
                    let mut jobs: Vec<SealJob> = b
                        .iter_mut()
                        .enumerate()
                        .map(|(i, p)| SealJob {
                            esp: p,
                            seq: seq(i),
                        })
                        .collect();
                    c.seal(&mut jobs);
                };
                let open = |c: &dyn EspCipher, b: &mut Vec<Vec<u8>>| -> Vec<bool> {
                    let mut jobs: Vec<OpenJob> = b
                        .iter_mut()
                        .enumerate()
                        .map(|(i, p)| OpenJob {
                            esp: p,
                            seq: seq(i),
                            ok: false,
                        })
                        .collect();
                    c.open(&mut jobs);
                    jobs.iter().map(|j| j.ok).collect()
                };
                let (mut a, mut b) = (fresh(), fresh());
                seal(&*both, &mut a);
                seal(&*out, &mut b);
                assert_eq!(
                    a, b,
                    "{suite:?} esn={esn}: outbound-only seals as both-ways"
                );
                let sealed = a.clone();
                assert!(open(&*inb, &mut a).iter().all(|&ok| ok), "{suite:?}");
                let off = 8 + both.iv_len();
                for (p, pt) in a.iter().zip(&pts) {
                    assert_eq!(&p[off..off + pt.len()], &pt[..], "{suite:?}");
                }
                let mut c = sealed.clone();
                let refused = open(&*out, &mut c);
                let mut d = fresh();
                seal(&*inb, &mut d);
                if matches!(suite.encr, EncrAlg::AesCbc128 | EncrAlg::AesCbc256) {
                    assert!(refused.iter().all(|&ok| !ok), "{suite:?}: outbound opened");
                    assert!(
                        d.iter().all(|p| p.iter().all(|&x| x == 0)),
                        "{suite:?}: inbound sealed"
                    );
                } else {
                    // AEAD and NULL+HMAC keep no per-direction schedule.
                    assert!(refused.iter().all(|&ok| ok), "{suite:?}");
                    assert_eq!(d, sealed, "{suite:?}");
                }
            }
        }
    }

    /// A packet thread that called `warm_thread` seals and opens bursts of
    /// every suite of the backend without allocating (Rust allocator, on
    /// that thread; the library's C code works on the manager it allocated
    /// at warm-up and on the callers' buffers; key-cache misses expand into
    /// the cache `crypto::warm_thread` allocated).
    #[test]
    fn packet_thread_does_not_allocate_after_warm_up() {
        let ciphers: Vec<(Suite, Box<dyn EspCipher>)> = suites()
            .into_iter()
            .flat_map(|s| {
                [false, true].map(|esn| {
                    let (ek, ak) = keys(s, 9);
                    (
                        s,
                        build_with(s, &ek, &ak, &opts(Backend::IpsecMb, esn)).unwrap(),
                    )
                })
            })
            .collect();
        std::thread::spawn(move || {
            ffi::ipsecmb::warm_thread().unwrap();
            // What a packet thread calls when it starts: the library's
            // manager and the key caches (the CBC/NULL + HMAC transforms'
            // expanded keys).
            assert!(dataplane::crypto::warm_thread() > 0);
            // 40 B: ChaCha20-Poly1305's 16-lane kernel path; 700 B: the
            // library's, or the kernel with the IFMA Poly1305.
            for ((s, c), len) in ciphers
                .iter()
                .flat_map(|sc| [40usize, 700].map(|len| (sc, len)))
            {
                let pt = padded(&**c, &vec![0x33; len]);
                let mut pkts: Vec<Vec<u8>> =
                    (0..32).map(|i| packet(&**c, 0x77, i + 1, &pt)).collect();
                let mut seal = seal_jobs(&mut pkts);
                let n = allocation_counter::measure(|| c.seal(&mut seal)).count_total;
                assert_eq!(n, 0, "{s:?} seal allocated");
                drop(seal);
                let mut open = open_jobs(&mut pkts);
                let n = allocation_counter::measure(|| c.open(&mut open)).count_total;
                assert_eq!(n, 0, "{s:?} open allocated");
                assert!(open.iter().all(|j| j.ok), "{s:?}");
            }
        })
        .join()
        .unwrap();
    }

    /// Packets the library would refuse (CBC ciphertext not whole blocks,
    /// too short) never reach it: seal zeroes them, open fails them, and
    /// the well-formed packets of the same burst are unaffected.
    #[test]
    fn malformed_jobs_in_a_burst_do_not_spoil_the_others() {
        for suite in suites() {
            let (ek, ak) = keys(suite, 4);
            let c = build_with(suite, &ek, &ak, &opts(Backend::IpsecMb, false)).unwrap();
            let pt = padded(&*c, &[0x44; 100]);
            let mut good: Vec<Vec<u8>> = (0..4).map(|i| packet(&*c, 9, i + 1, &pt)).collect();
            let mut short = vec![0x99u8; 8 + c.iv_len() + c.icv_len() - 1];
            let mut odd = packet(&*c, 9, 9, &[0x55; 21]);
            {
                let mut jobs: Vec<SealJob> = Vec::new();
                let (a, b) = good.split_at_mut(2);
                for (i, p) in a.iter_mut().enumerate() {
                    jobs.push(SealJob {
                        esp: p,
                        seq: i as u64 + 1,
                    });
                }
                jobs.push(SealJob {
                    esp: &mut short,
                    seq: 7,
                });
                if suite.encr == EncrAlg::AesCbc128 || suite.encr == EncrAlg::AesCbc256 {
                    jobs.push(SealJob {
                        esp: &mut odd,
                        seq: 8,
                    });
                }
                for (i, p) in b.iter_mut().enumerate() {
                    jobs.push(SealJob {
                        esp: p,
                        seq: i as u64 + 3,
                    });
                }
                c.seal(&mut jobs);
            }
            assert!(short.iter().all(|&x| x == 0), "{suite:?}: short job zeroed");
            if suite.encr == EncrAlg::AesCbc128 || suite.encr == EncrAlg::AesCbc256 {
                assert!(
                    odd.iter().all(|&x| x == 0),
                    "{suite:?}: partial-block job zeroed"
                );
            }
            let mut jobs = open_jobs(&mut good);
            let mut s2 = vec![1u8; 5];
            jobs.insert(
                1,
                OpenJob {
                    esp: &mut s2,
                    seq: 1,
                    ok: true,
                },
            );
            c.open(&mut jobs);
            let oks: Vec<bool> = jobs.iter().map(|j| j.ok).collect();
            assert_eq!(oks, [true, false, true, true, true], "{suite:?}");
        }
    }

    /// The AEAD jobs are submitted unchecked (`IMB_SUBMIT_JOB_NOCHECK`, as
    /// DPDK does): every message length from 0 to 300 bytes and a few long
    /// ones, every AAD length ESP uses (8, 12) and a few others, must give
    /// RustCrypto's ciphertext and tag, open again, and refuse a flipped
    /// tag bit.
    #[test]
    fn unchecked_aead_jobs_match_rustcrypto_at_every_length() {
        for encr in [
            EncrAlg::AesGcm128,
            EncrAlg::AesGcm256,
            EncrAlg::ChaCha20Poly1305,
        ] {
            let klen = encr.key_len() - 4;
            let key: Vec<u8> = (0..klen)
                .map(|i| (i as u8).wrapping_mul(29) ^ 0xa5)
                .collect();
            let imb = raw::aead(encr, Backend::IpsecMb, &key).unwrap();
            let rc = raw::aead(encr, Backend::RustCrypto, &key).unwrap();
            let lens = (0..=300usize).chain([1420, 1500, 4096, 9000]);
            for len in lens {
                let aad_len = [8usize, 12, 0, 1, 17][len % 5];
                let aad: Vec<u8> = (0..aad_len).map(|i| (i * 7 + len) as u8).collect();
                let mut nonce = [0u8; 12];
                for (i, b) in nonce.iter_mut().enumerate() {
                    *b = (i * 13 + len * 3) as u8;
                }
                let pt: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                let (mut a, mut b) = (pt.clone(), pt.clone());
                let ta = imb.seal(&nonce, &aad, &mut a);
                let tb = rc.seal(&nonce, &aad, &mut b);
                assert_eq!(a, b, "{encr:?} len {len}: ciphertext");
                assert_eq!(ta, tb, "{encr:?} len {len}: tag");
                let mut ct_tag = [a, ta.to_vec()].concat();
                let mut bad = ct_tag.clone();
                assert!(
                    imb.open(&nonce, &aad, &mut ct_tag),
                    "{encr:?} len {len}: open"
                );
                assert_eq!(&ct_tag[..len], &pt[..], "{encr:?} len {len}: plaintext");
                let last = bad.len() - 1;
                bad[last] ^= 0x01;
                assert!(
                    !imb.open(&nonce, &aad, &mut bad),
                    "{encr:?} len {len}: bad tag"
                );
            }
        }
    }

    /// RFC 8439 §2.8.2 (the AEAD_CHACHA20_POLY1305 example) through the
    /// unchecked job path.
    #[test]
    fn chacha20_poly1305_rfc8439_2_8_2() {
        let key = hex::decode("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            .unwrap();
        let nonce: [u8; 12] = hex::decode("070000004041424344454647")
            .unwrap()
            .try_into()
            .unwrap();
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap();
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = hex::decode(concat!(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6",
            "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36",
            "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc",
            "3ff4def08e4b7a9de576d26586cec64b6116"
        ))
        .unwrap();
        let tag = hex::decode("1ae10b594f09e26a7e902ecbd0600691").unwrap();
        let c = raw::aead(EncrAlg::ChaCha20Poly1305, Backend::IpsecMb, &key).unwrap();
        let mut data = pt.to_vec();
        let t = c.seal(&nonce, &aad, &mut data);
        assert_eq!(data, ct);
        assert_eq!(t.to_vec(), tag);
        let mut ct_tag = [ct, tag].concat();
        assert!(c.open(&nonce, &aad, &mut ct_tag));
        assert_eq!(&ct_tag[..pt.len()], &pt[..]);
    }
}
