//! The `crypto::build` API: validation errors, the ESP layout each suite
//! writes (checked by recomputing it with the primitive crates directly),
//! ESN handling, and defensive behaviour on malformed jobs.

mod crypto_common;

use aes::cipher::{BlockDecryptMut, BlockEncrypt, KeyInit, KeyIvInit};
use aes_gcm::aead::AeadInPlace;
use crypto_common::*;
use dataplane::crypto::{
    build, build_with, Backend, BuildOptions, CryptoError, EncrAlg, IntegAlg, Key, Suite,
};
use hmac::Mac;

const GCM128: Suite = Suite {
    encr: EncrAlg::AesGcm128,
    integ: IntegAlg::None,
};
const CBC128_SHA256: Suite = Suite {
    encr: EncrAlg::AesCbc128,
    integ: IntegAlg::HmacSha256_128,
};

#[test]
fn key_length_errors_name_algorithm_and_lengths() {
    let e = build(
        GCM128,
        &Key::new(vec![0; 16]),
        &Key::default(),
        false,
        Backend::RustCrypto,
    )
    .err()
    .expect("16-byte GCM key (no salt) must be refused");
    assert_eq!(
        e,
        CryptoError::KeyLength {
            alg: "aes-gcm-128",
            expected: 20,
            got: 16
        }
    );
    assert_eq!(
        e.to_string(),
        "aes-gcm-128 needs a 20-byte key, got 16 bytes"
    );

    let e = build(
        CBC128_SHA256,
        &Key::new(vec![1; 16]),
        &Key::new(vec![2; 20]),
        false,
        Backend::Auto,
    )
    .err()
    .expect("20-byte HMAC-SHA-256 key must be refused");
    assert_eq!(
        e,
        CryptoError::KeyLength {
            alg: "hmac-sha256-128",
            expected: 32,
            got: 20
        }
    );

    let e = build(
        GCM128,
        &Key::new(vec![0; 20]),
        &Key::new(vec![1; 32]),
        false,
        Backend::Auto,
    )
    .err()
    .expect("an integrity key with an AEAD suite must be refused");
    assert!(
        matches!(
            e,
            CryptoError::KeyLength {
                expected: 0,
                got: 32,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn suite_combinations_are_validated() {
    let bad = Suite {
        encr: EncrAlg::AesGcm256,
        integ: IntegAlg::HmacSha256_128,
    };
    assert!(matches!(
        build(
            bad,
            &Key::new(vec![0; 36]),
            &Key::new(vec![0; 32]),
            false,
            Backend::Auto
        ),
        Err(CryptoError::Combination { .. })
    ));
    let none = Suite {
        encr: EncrAlg::AesCbc128,
        integ: IntegAlg::None,
    };
    assert!(matches!(
        build(
            none,
            &Key::new(vec![0; 16]),
            &Key::default(),
            false,
            Backend::Auto
        ),
        Err(CryptoError::Combination { .. })
    ));
}

#[test]
fn legacy_suites_need_the_opt_in() {
    let tdes = Suite {
        encr: EncrAlg::TripleDesCbc,
        integ: IntegAlg::HmacSha1_96,
    };
    let (ek, ak) = keys(tdes, 1);
    assert_eq!(
        build(tdes, &ek, &ak, false, Backend::Auto).err(),
        Some(CryptoError::LegacyNotAllowed { alg: "3des-cbc" })
    );
    let md5 = Suite {
        encr: EncrAlg::AesCbc128,
        integ: IntegAlg::HmacMd5_96,
    };
    let (ek2, ak2) = keys(md5, 1);
    assert_eq!(
        build(md5, &ek2, &ak2, false, Backend::Auto).err(),
        Some(CryptoError::LegacyNotAllowed { alg: "hmac-md5-96" })
    );
    let o = BuildOptions {
        allow_legacy: true,
        ..Default::default()
    };
    let c = build_with(tdes, &ek, &ak, &o).expect("3DES with the opt-in");
    assert_eq!((c.iv_len(), c.pad_align(), c.icv_len()), (8, 8, 12));
    assert_eq!(c.backend(), "rustcrypto");
    let c = build_with(md5, &ek2, &ak2, &o).expect("HMAC-MD5 with the opt-in");
    assert_eq!(c.icv_len(), 12);
}

#[test]
fn weak_3des_keys_are_refused() {
    let tdes = Suite {
        encr: EncrAlg::TripleDesCbc,
        integ: IntegAlg::HmacSha256_128,
    };
    let mut k = vec![0u8; 24];
    k[..8].copy_from_slice(b"ABCDEFGH");
    k[8..16].copy_from_slice(b"ABCDEFGH");
    k[16..].copy_from_slice(b"12345678");
    let o = BuildOptions {
        allow_legacy: true,
        ..Default::default()
    };
    assert!(matches!(
        build_with(tdes, &Key::new(k), &Key::new(vec![3; 32]), &o),
        Err(CryptoError::WeakKey {
            alg: "3des-cbc",
            ..
        })
    ));
}

#[test]
fn explicit_backends_report_unsupported_suites() {
    let tdes = Suite {
        encr: EncrAlg::TripleDesCbc,
        integ: IntegAlg::HmacSha1_96,
    };
    let (ek, ak) = keys(tdes, 1);
    for &b in Backend::compiled() {
        let r = build_with(tdes, &ek, &ak, &opts(b, false));
        if b == Backend::RustCrypto {
            assert!(r.is_ok());
        } else {
            assert!(
                matches!(
                    r,
                    Err(CryptoError::Unsupported {
                        alg: "3des-cbc",
                        ..
                    })
                ),
                "{b}: 3DES must be unsupported"
            );
        }
    }
    #[cfg(not(feature = "aws-lc"))]
    assert!(matches!(
        build(
            GCM128,
            &Key::new(vec![0; 20]),
            &Key::default(),
            false,
            Backend::AwsLc
        ),
        Err(CryptoError::BackendNotCompiled {
            backend: "aws-lc",
            feature: "aws-lc"
        })
    ));
    #[cfg(not(feature = "ring"))]
    assert!(matches!(
        build(
            GCM128,
            &Key::new(vec![0; 20]),
            &Key::default(),
            false,
            Backend::Ring
        ),
        Err(CryptoError::BackendNotCompiled {
            backend: "ring",
            feature: "ring"
        })
    ));
}

#[test]
fn every_suite_builds_with_auto_and_reports_its_geometry() {
    for suite in all_suites() {
        let (ek, ak) = keys(suite, 3);
        let c = build_with(
            suite,
            &ek,
            &ak,
            &BuildOptions {
                allow_legacy: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{suite:?}: {e}"));
        assert_eq!(c.iv_len(), suite.encr.iv_len(), "{suite:?}");
        assert_eq!(c.pad_align(), suite.encr.pad_align(), "{suite:?}");
        assert_eq!(c.icv_len(), suite.icv_len(), "{suite:?}");
    }
}

/// Recomputes an AES-GCM ESP packet with the aes-gcm crate directly:
/// nonce = salt || seq(8, big-endian), AAD = SPI || Seq or SPI || SeqHi || SeqLo.
#[test]
fn gcm_layout_matches_rfc4106() {
    for esn in [false, true] {
        for (suite, keylen) in [
            (GCM128, 16),
            (
                Suite {
                    encr: EncrAlg::AesGcm256,
                    integ: IntegAlg::None,
                },
                32,
            ),
        ] {
            let (ek, ak) = keys(suite, 7);
            for (b, c) in backends_for(suite, esn) {
                let seq: u64 = 0x0000_0007_8000_0001;
                let pt = padded(&*c, b"hello, gateway");
                let mut p = packet(&*c, 0x1234_5678, seq, &pt);
                seal_one(&*c, &mut p, seq);
                assert_eq!(
                    &p[8..16],
                    &seq.to_be_bytes(),
                    "{b}: IV must be the sequence number"
                );
                let salt = &ek.bytes()[keylen..];
                let mut nonce = salt.to_vec();
                nonce.extend_from_slice(&seq.to_be_bytes());
                let aad: Vec<u8> = if esn {
                    [&p[0..4], &((seq >> 32) as u32).to_be_bytes()[..], &p[4..8]].concat()
                } else {
                    p[0..8].to_vec()
                };
                let n = p.len();
                let mut ct = p[16..n - 16].to_vec();
                let tag = aes_gcm::Tag::clone_from_slice(&p[n - 16..]);
                let nonce = aes_gcm::Nonce::from_slice(&nonce);
                let r = if keylen == 16 {
                    aes_gcm::Aes128Gcm::new_from_slice(&ek.bytes()[..16])
                        .unwrap()
                        .decrypt_in_place_detached(nonce, &aad, &mut ct, &tag)
                } else {
                    aes_gcm::Aes256Gcm::new_from_slice(&ek.bytes()[..32])
                        .unwrap()
                        .decrypt_in_place_detached(nonce, &aad, &mut ct, &tag)
                };
                assert!(r.is_ok(), "{b} esn={esn}: independent GCM check failed");
                assert_eq!(ct, pt);
                let _ = &ak;
            }
        }
    }
}

#[test]
fn chacha_layout_matches_rfc7634() {
    let suite = Suite {
        encr: EncrAlg::ChaCha20Poly1305,
        integ: IntegAlg::None,
    };
    let (ek, _) = keys(suite, 7);
    for esn in [false, true] {
        for (b, c) in backends_for(suite, esn) {
            let seq: u64 = (5 << 32) | 99;
            let pt = padded(&*c, &[0xab; 61]);
            let mut p = packet(&*c, 0x0101_0202, seq, &pt);
            seal_one(&*c, &mut p, seq);
            let mut nonce = ek.bytes()[32..].to_vec();
            nonce.extend_from_slice(&p[8..16]);
            let aad: Vec<u8> = if esn {
                [&p[0..4], &5u32.to_be_bytes()[..], &p[4..8]].concat()
            } else {
                p[0..8].to_vec()
            };
            let n = p.len();
            let mut ct = p[16..n - 16].to_vec();
            chacha20poly1305::ChaCha20Poly1305::new_from_slice(&ek.bytes()[..32])
                .unwrap()
                .decrypt_in_place_detached(
                    chacha20poly1305::Nonce::from_slice(&nonce),
                    &aad,
                    &mut ct,
                    chacha20poly1305::Tag::from_slice(&p[n - 16..]),
                )
                .unwrap_or_else(|_| panic!("{b} esn={esn}: independent ChaCha check failed"));
            assert_eq!(ct, pt);
        }
    }
}

/// AES-CBC + HMAC-SHA-256-128: IV = AES-128_k'(0^64 || seq) with the IV key
/// given in the options, CBC over the plaintext, ICV = HMAC over SPI..ciphertext
/// (|| SeqHi with ESN) truncated to 16 bytes.
#[test]
fn cbc_hmac_layout_matches_rfc3602_4868() {
    let iv_key: Vec<u8> = (0..32).map(|i| 0xa0 ^ i as u8).collect();
    for esn in [false, true] {
        let (ek, ak) = keys(CBC128_SHA256, 7);
        for (b, c) in backends_for(CBC128_SHA256, esn) {
            let seq: u64 = (3 << 32) | 0xffff_fff0;
            let pt = padded(&*c, &[0x5a; 100]);
            assert_eq!(pt.len() % 16, 0);
            let mut p = packet(&*c, 0xcafe_f00d, seq, &pt);
            seal_one(&*c, &mut p, seq);
            let n = p.len();
            // IV
            let mut blk = aes::Block::default();
            blk[8..].copy_from_slice(&seq.to_be_bytes());
            aes::Aes128::new_from_slice(&iv_key[..16])
                .unwrap()
                .encrypt_block(&mut blk);
            assert_eq!(&p[8..24], &blk[..], "{b}: IV derivation");
            // ICV
            let mut m = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(ak.bytes()).unwrap();
            m.update(&p[..n - 16]);
            if esn {
                m.update(&3u32.to_be_bytes());
            }
            let full = m.finalize().into_bytes();
            assert_eq!(&p[n - 16..], &full[..16], "{b} esn={esn}: ICV");
            // ciphertext
            let mut ct = p[24..n - 16].to_vec();
            cbc::Decryptor::<aes::Aes128>::new_from_slices(ek.bytes(), &p[8..24])
                .unwrap()
                .decrypt_padded_mut::<cbc::cipher::block_padding::NoPadding>(&mut ct)
                .unwrap();
            assert_eq!(ct, pt, "{b}: CBC ciphertext");
            // and our own open
            assert!(open_one(&*c, &mut p, seq));
            assert_eq!(&p[24..n - 16], &pt[..]);
        }
    }
}

#[test]
fn null_hmac_authenticates_clear_payload() {
    let suite = Suite {
        encr: EncrAlg::Null,
        integ: IntegAlg::HmacSha512_256,
    };
    let (_, ak) = keys(suite, 7);
    for (b, c) in backends_for(suite, false) {
        assert_eq!((c.iv_len(), c.icv_len()), (0, 32));
        let pt = padded(&*c, b"clear but authenticated");
        let mut p = packet(&*c, 0x2000, 42, &pt);
        seal_one(&*c, &mut p, 42);
        let n = p.len();
        assert_eq!(
            &p[8..n - 32],
            &pt[..],
            "{b}: NULL leaves the payload in clear"
        );
        let mut m = <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(ak.bytes()).unwrap();
        m.update(&p[..n - 32]);
        assert_eq!(&p[n - 32..], &m.finalize().into_bytes()[..32], "{b}");
        assert!(open_one(&*c, &mut p, 42));
        p[9] ^= 1;
        assert!(!open_one(&*c, &mut p, 42));
    }
}

#[test]
fn esn_high_half_is_authenticated() {
    for suite in all_suites() {
        for (b, c) in backends_for(suite, true) {
            let seq = (1u64 << 32) | 17;
            let pt = padded(&*c, &[1, 2, 3, 4, 5]);
            let mut p = packet(&*c, 0x4444, seq, &pt);
            seal_one(&*c, &mut p, seq);
            let sealed = p.clone();
            assert!(
                !open_one(&*c, &mut p, 17),
                "{suite:?}/{b}: wrong SeqHi must fail"
            );
            let mut p = sealed.clone();
            assert!(!open_one(&*c, &mut p, (2u64 << 32) | 17), "{suite:?}/{b}");
            let mut p = sealed;
            assert!(open_one(&*c, &mut p, seq), "{suite:?}/{b}");
        }
    }
}

#[test]
fn without_esn_the_high_half_is_ignored() {
    // Without ESN only the 32-bit wire sequence number is authenticated.
    for suite in all_suites() {
        for (b, c) in backends_for(suite, false) {
            let pt = padded(&*c, &[9; 30]);
            let mut p = packet(&*c, 0x5555, 8, &pt);
            seal_one(&*c, &mut p, 8);
            assert!(open_one(&*c, &mut p, 8), "{suite:?}/{b}");
        }
    }
}

#[test]
fn short_and_misaligned_input_never_panics() {
    for suite in all_suites() {
        for esn in [false, true] {
            for (b, c) in backends_for(suite, esn) {
                for len in 0..80 {
                    let mut p: Vec<u8> = (0..len as u8).collect();
                    assert!(
                        !open_one(&*c, &mut p, 1),
                        "{suite:?}/{b}: len {len} must fail"
                    );
                    let mut s: Vec<u8> = (0..len as u8).map(|x| x | 0x80).collect();
                    seal_one(&*c, &mut s, 1);
                    let min = 8 + c.iv_len() + c.icv_len();
                    if len < min {
                        assert!(
                            s.iter().all(|&x| x == 0),
                            "{suite:?}/{b}: short seal job must be zeroed"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn misaligned_cbc_seal_job_is_zeroed_not_sent_in_clear() {
    let (ek, ak) = keys(CBC128_SHA256, 2);
    let c = build(CBC128_SHA256, &ek, &ak, false, Backend::Auto).unwrap();
    let mut p = vec![0x77u8; 8 + 16 + 20 + 16]; // 20-byte ciphertext: not whole blocks
    seal_one(&*c, &mut p, 1);
    assert!(p.iter().all(|&x| x == 0));
}

#[test]
fn bursts_process_every_job() {
    let (ek, _) = keys(GCM128, 8);
    let c = build(GCM128, &ek, &Key::default(), false, Backend::Auto).unwrap();
    let pts: Vec<Vec<u8>> = (0..32)
        .map(|i| padded(&*c, &vec![i as u8; 10 + i * 3]))
        .collect();
    let mut pkts: Vec<Vec<u8>> = pts
        .iter()
        .enumerate()
        .map(|(i, pt)| packet(&*c, 0x100, i as u64 + 1, pt))
        .collect();
    let mut jobs = seal_jobs(&mut pkts);
    c.seal(&mut jobs);
    drop(jobs);
    let mut jobs = open_jobs(&mut pkts);
    // Corrupt one packet in the middle of the burst.
    jobs[13].esp[20] ^= 0x40;
    c.open(&mut jobs);
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j.ok, i != 13, "job {i}");
    }
    drop(jobs);
    for (i, (p, pt)) in pkts.iter().zip(&pts).enumerate() {
        if i != 13 {
            assert_eq!(&p[16..16 + pt.len()], &pt[..]);
        }
    }
}

#[test]
fn random_iv_keys_differ_between_sas() {
    let (ek, ak) = keys(CBC128_SHA256, 2);
    let a = build(CBC128_SHA256, &ek, &ak, false, Backend::RustCrypto).unwrap();
    let b = build(CBC128_SHA256, &ek, &ak, false, Backend::RustCrypto).unwrap();
    let pt = padded(&*a, &[0; 14]);
    let mut pa = packet(&*a, 1, 1, &pt);
    let mut pb = pa.clone();
    seal_one(&*a, &mut pa, 1);
    seal_one(&*b, &mut pb, 1);
    assert_ne!(
        &pa[8..24],
        &pb[8..24],
        "two SAs with the same keys must not share IVs"
    );
    // each opens the other's packets: the IV travels in the packet
    assert!(open_one(&*b, &mut pa, 1));
    // and IVs of consecutive packets of one SA differ
    let mut p1 = packet(&*a, 1, 2, &pt);
    seal_one(&*a, &mut p1, 2);
    assert_ne!(&p1[8..24], &pb[8..24]);
}

#[test]
fn backend_serde_names() {
    for (b, s) in [
        (Backend::Auto, "\"auto\""),
        (Backend::RustCrypto, "\"rustcrypto\""),
        (Backend::AwsLc, "\"aws-lc\""),
        (Backend::Ring, "\"ring\""),
    ] {
        assert_eq!(serde_json::to_string(&b).unwrap(), s);
        assert_eq!(serde_json::from_str::<Backend>(s).unwrap(), b);
        assert_eq!(format!("\"{b}\""), s);
    }
}

#[test]
fn auto_follows_the_measured_table() {
    for suite in all_suites() {
        let (ek, ak) = keys(suite, 3);
        let c = build_with(
            suite,
            &ek,
            &ak,
            &BuildOptions {
                allow_legacy: true,
                ..Default::default()
            },
        )
        .unwrap();
        // The first backend of the table that is compiled in and has the suite.
        let want = dataplane::crypto::auto_order(suite)
            .iter()
            .chain(&[Backend::RustCrypto])
            .find_map(|&b| build_with(suite, &ek, &ak, &opts(b, false)).ok())
            .unwrap();
        assert_eq!(c.backend(), want.backend(), "{suite:?}");
        assert!(!dataplane::crypto::auto_order(suite).contains(&Backend::Auto));
    }
}

#[test]
fn auto_picks_the_measured_winners_in_this_build() {
    let pick = |encr, integ| {
        let suite = Suite { encr, integ };
        let (ek, ak) = keys(suite, 1);
        build(suite, &ek, &ak, false, Backend::Auto)
            .unwrap()
            .backend()
    };
    let gcm = pick(EncrAlg::AesGcm128, IntegAlg::None);
    let chacha = pick(EncrAlg::ChaCha20Poly1305, IntegAlg::None);
    let cbc_sha256 = pick(EncrAlg::AesCbc128, IntegAlg::HmacSha256_128);
    let cbc_sha512 = pick(EncrAlg::AesCbc256, IntegAlg::HmacSha512_256);
    // intel-ipsec-mb (feature ipsec-mb) leads every suite but AES-GCM.
    let imb = cfg!(feature = "ipsec-mb");
    if imb {
        let arch = ffi_arch();
        for got in [&cbc_sha256, &cbc_sha512] {
            assert_eq!(*got, format!("ipsec-mb-{arch}"));
        }
        // ChaCha20-Poly1305: our 16-lane kernel where the CPU has AVX-512
        // (every packet with IFMA, else short ones and the library for
        // the rest), else the library alone.
        use dataplane::crypto::mb::{chacha_x16::ChachaX16, poly1305_x8::PolyX8};
        match (ChachaX16::detect(), PolyX8::detect()) {
            (Some(_), Some(_)) => assert_eq!(chacha, "espresso-avx512-ifma"),
            (Some(_), None) => assert!(chacha.starts_with("espresso-avx512+ipsec-mb"), "{chacha}"),
            _ => assert_eq!(chacha, format!("ipsec-mb-{arch}")),
        }
    } else {
        assert_eq!(cbc_sha256, "rustcrypto");
    }
    if dataplane::crypto::mb::supported() {
        assert_eq!(gcm, dataplane::crypto::mb::BACKEND_NAME);
    } else if cfg!(feature = "aws-lc") {
        assert_eq!(gcm, "aws-lc-rs");
    } else if cfg!(feature = "ring") {
        assert_eq!(gcm, "ring");
    } else {
        assert_eq!(gcm, "rustcrypto");
    }
    if imb {
        // checked above
    } else if cfg!(feature = "ring") {
        assert_eq!(chacha, "ring");
        assert_eq!(cbc_sha512, "ring+rustcrypto-cbc");
    } else if cfg!(feature = "aws-lc") {
        assert_eq!(chacha, "aws-lc-rs");
        assert_eq!(cbc_sha512, "aws-lc-rs");
    } else {
        assert_eq!(chacha, "rustcrypto");
        assert_eq!(cbc_sha512, "rustcrypto");
    }
}

/// The intel-ipsec-mb code path name on this CPU ("avx512", ...).
#[cfg(feature = "ipsec-mb")]
fn ffi_arch() -> &'static str {
    ffi::ipsecmb::arch().expect("intel-ipsec-mb manager").name()
}

#[cfg(not(feature = "ipsec-mb"))]
fn ffi_arch() -> &'static str {
    unreachable!("only called with feature ipsec-mb")
}
