//! The multi-buffer AES-GCM kernel (`crypto::mb`) against RustCrypto
//! `aes-gcm`: raw AEAD for every length around the chunk boundaries, ESP
//! bursts of mixed lengths (proptest), ESN, bit flips, short input.
//!
//! On a CPU without VAES/VPCLMULQDQ/AVX-512 `build_gcm` must return `None`;
//! the tests then run the same checks on the AES-GCM transform that
//! `Backend::Auto` picks instead (the portable path that replaces the
//! kernel: AES-128/256 only, AES-192 is not an ESP suite), and record the
//! kernel skip where `scripts/test.sh` prints it (`skip_note`).

mod skip_note;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use dataplane::crypto::mb::{self, build_gcm, Gcm};
use dataplane::crypto::raw::{self, RawAead};
use dataplane::crypto::{
    build_with, Backend, BuildOptions, EncrAlg, EspCipher, IntegAlg, Key, OpenJob, SealJob, Suite,
};
use proptest::prelude::*;

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// Reference: RustCrypto AES-GCM, detached tag.
fn reference(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let n = aes_gcm::Nonce::from_slice(nonce);
    let t = match key.len() {
        16 => Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(n, aad, data),
        24 => Aes192Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(n, aad, data),
        _ => Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(n, aad, data),
    };
    t.unwrap().into()
}

/// True if the tests run on the kernel: the CPU has its instructions and
/// `ESPRESSO_TEST_PORTABLE` is not set (`scripts/test.sh` runs this file a
/// second time with it set, so the portable path is checked on every CPU).
fn kernel() -> bool {
    mb::supported() && std::env::var_os("ESPRESSO_TEST_PORTABLE").is_none()
}

/// True (and the kernel skip recorded) when the kernel is not under test;
/// on a CPU without its instructions, checks first that `build_gcm` refuses.
fn skip(test: &str) -> bool {
    if !mb::supported() {
        assert!(build_gcm(&Key::from_slice(&[7u8; 20]), false).is_none());
        skip_note::note(
            test,
            "multi-buffer AES-GCM kernel (checked on the portable Backend::Auto path instead)",
            "CPU lacks VAES/VPCLMULQDQ/AVX-512",
        );
        return true;
    }
    !kernel()
}

/// Key lengths the transform under test takes: every AES size for the
/// kernel, 128 and 256 bits on the portable path (the ESP suites).
fn aes_key_lens() -> &'static [usize] {
    if kernel() {
        &[16, 24, 32]
    } else {
        &[16, 32]
    }
}

/// The raw AEAD under test: the kernel, or the portable AES-GCM.
fn raw_gcm(key: &[u8]) -> Box<dyn RawAead> {
    if kernel() {
        Box::new(Gcm::new(key).expect("kernel"))
    } else {
        let encr = if key.len() == 16 {
            EncrAlg::AesGcm128
        } else {
            EncrAlg::AesGcm256
        };
        raw::aead(encr, Backend::Auto, key).expect("portable AES-GCM")
    }
}

/// The ESP transform under test (`key` = AES key || salt): the kernel, or
/// what `Backend::Auto` builds without it.
fn esp_gcm(key: &[u8], esn: bool) -> Box<dyn EspCipher> {
    if kernel() {
        return build_gcm(&Key::from_slice(key), esn).expect("kernel");
    }
    let encr = if key.len() == 20 {
        EncrAlg::AesGcm128
    } else {
        EncrAlg::AesGcm256
    };
    build_with(
        Suite {
            encr,
            integ: IntegAlg::None,
        },
        &Key::from_slice(key),
        &Key::default(),
        &BuildOptions {
            esn,
            backend: Backend::Auto,
            ..BuildOptions::default()
        },
    )
    .expect("portable AES-GCM")
}

fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn raw_matches_rustcrypto_every_length() {
    skip("raw_matches_rustcrypto_every_length");
    for &klen in aes_key_lens() {
        let key = bytes(klen as u64, klen);
        let gcm = raw_gcm(&key);
        for len in (0..=600).chain([1000, 1420, 1500, 2047, 2048, 4096 + 7, 9000]) {
            for aad_len in [0usize, 1, 8, 12, 16, 17, 33, 255, 256, 300] {
                let nonce: [u8; 12] = bytes(len as u64 * 31 + aad_len as u64, 12)
                    .try_into()
                    .unwrap();
                let aad = bytes(aad_len as u64 + 7, aad_len);
                let pt = bytes(len as u64 + 1000, len);
                let mut want = pt.clone();
                let want_tag = reference(&key, &nonce, &aad, &mut want);
                let mut got = pt.clone();
                let tag = gcm.seal(&nonce, &aad, &mut got);
                assert_eq!(got, want, "ciphertext klen={klen} len={len} aad={aad_len}");
                assert_eq!(tag, want_tag, "tag klen={klen} len={len} aad={aad_len}");
                got.extend_from_slice(&tag);
                assert!(
                    gcm.open(&nonce, &aad, &mut got),
                    "open len={len} aad={aad_len}"
                );
                assert_eq!(&got[..len], &pt[..], "plaintext len={len}");
            }
        }
    }
}

/// The expected ESP packet for `pt`, built with the reference.
fn esp_reference(key: &[u8], spi: u32, seq: u64, esn: bool, pt: &[u8]) -> Vec<u8> {
    let (k, salt) = key.split_at(key.len() - 4);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    let mut aad = spi.to_be_bytes().to_vec();
    if esn {
        aad.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
    }
    aad.extend_from_slice(&(seq as u32).to_be_bytes());
    let mut out = Vec::new();
    out.extend_from_slice(&spi.to_be_bytes());
    out.extend_from_slice(&(seq as u32).to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    let mut ct = pt.to_vec();
    let tag = reference(k, &nonce, &aad, &mut ct);
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    out
}

/// An ESP packet as the engine hands it to `seal`: SPI and SeqLo written,
/// IV and ICV space unwritten (filled with junk to prove they are written).
fn esp_unsealed(spi: u32, seq: u64, pt: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(pt.len() + 32);
    v.extend_from_slice(&spi.to_be_bytes());
    v.extend_from_slice(&(seq as u32).to_be_bytes());
    v.extend_from_slice(&[0xEE; 8]);
    v.extend_from_slice(pt);
    v.extend_from_slice(&[0xDD; 16]);
    v
}

fn seal_burst(c: &dyn EspCipher, pkts: &mut [Vec<u8>], seqs: &[u64]) {
    let mut jobs: Vec<SealJob<'_>> = pkts
        .iter_mut()
        .zip(seqs)
        .map(|(p, &seq)| SealJob { esp: p, seq })
        .collect();
    c.seal(&mut jobs);
}

fn open_burst(c: &dyn EspCipher, pkts: &mut [Vec<u8>], seqs: &[u64]) -> Vec<bool> {
    let mut jobs: Vec<OpenJob<'_>> = pkts
        .iter_mut()
        .zip(seqs)
        .map(|(p, &seq)| OpenJob {
            esp: p,
            seq,
            ok: false,
        })
        .collect();
    c.open(&mut jobs);
    jobs.iter().map(|j| j.ok).collect()
}

prop_compose! {
    fn burst()(n in 1usize..=64)
        (lens in proptest::collection::vec(prop_oneof![0usize..=2048, 0usize..=80, Just(1420usize)], n),
         seqs in proptest::collection::vec(any::<u64>(), n),
         seed in any::<u64>())
        -> (Vec<Vec<u8>>, Vec<u64>) {
        let pts = lens.iter().enumerate().map(|(i, &l)| bytes(seed ^ i as u64, l)).collect();
        (pts, seqs)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A burst of mixed lengths seals to exactly what RustCrypto produces per
    /// packet, opens back, and a flipped bit anywhere fails only its packet.
    #[test]
    fn esp_burst_matches_rustcrypto(
        key256 in any::<bool>(),
        key in proptest::collection::vec(any::<u8>(), 36),
        spi in any::<u32>(),
        esn in any::<bool>(),
        (pts, seqs) in burst(),
        flip in any::<prop::sample::Index>(),
        victim in any::<prop::sample::Index>(),
    ) {
        if !mb::supported() {
            prop_assert!(build_gcm(&Key::from_slice(&key[..20]), esn).is_none());
        }
        let key = if key256 { &key[..36] } else { &key[..20] };
        let c = esp_gcm(key, esn);
        if kernel() {
            prop_assert_eq!(c.backend(), mb::BACKEND_NAME);
        }
        prop_assert_eq!((c.iv_len(), c.icv_len(), c.pad_align()), (8, 16, 4));
        let mut pkts: Vec<Vec<u8>> = pts.iter().zip(&seqs).map(|(p, &s)| esp_unsealed(spi, s, p)).collect();
        seal_burst(&*c, &mut pkts, &seqs);
        for (i, p) in pkts.iter().enumerate() {
            prop_assert_eq!(p, &esp_reference(key, spi, seqs[i], esn, &pts[i]), "packet {}", i);
        }
        // Flip one bit of one packet.
        let v = victim.index(pkts.len());
        let bit = flip.index(pkts[v].len() * 8);
        pkts[v][bit / 8] ^= 1 << (bit % 8);
        let ok = open_burst(&*c, &mut pkts, &seqs);
        for (i, p) in pkts.iter().enumerate() {
            if i == v {
                prop_assert!(!ok[i], "flipped bit {} of packet {} accepted", bit, i);
            } else {
                prop_assert!(ok[i], "packet {} rejected", i);
                prop_assert_eq!(&p[16..p.len() - 16], &pts[i][..]);
            }
        }
    }

    /// With ESN, a wrong high half of the sequence number fails the ICV.
    #[test]
    fn esn_high_bits_are_authenticated(len in 0usize..300, seq in any::<u64>(), delta in 1u64..u32::MAX as u64) {
        let key = bytes(len as u64, 20);
        let c = esp_gcm(&key, true);
        let pt = bytes(seq, len);
        let mut pkts = vec![esp_unsealed(9, seq, &pt)];
        seal_burst(&*c, &mut pkts, &[seq]);
        let wrong = seq ^ (delta << 32);
        let mut copy = pkts.clone();
        prop_assert_eq!(open_burst(&*c, &mut copy, &[wrong]), vec![false]);
        prop_assert_eq!(open_burst(&*c, &mut pkts, &[seq]), vec![true]);
        prop_assert_eq!(&pkts[0][16..16 + len], &pt[..]);
    }
}

#[test]
fn every_bit_flip_of_small_packets_fails() {
    skip("every_bit_flip_of_small_packets_fails");
    for (klen, esn) in [(20, false), (36, true)] {
        let key = bytes(klen as u64, klen);
        let c = esp_gcm(&key, esn);
        for len in [0usize, 1, 15, 16, 17, 47, 48, 64, 100] {
            let pt = bytes(len as u64, len);
            let seq = 0x0000_0001_0000_0005u64;
            let mut pkts = vec![esp_unsealed(0x1234, seq, &pt)];
            seal_burst(&*c, &mut pkts, &[seq]);
            let good = pkts[0].clone();
            for bit in 0..good.len() * 8 {
                let mut p = vec![good.clone()];
                p[0][bit / 8] ^= 1 << (bit % 8);
                assert_eq!(
                    open_burst(&*c, &mut p, &[seq]),
                    vec![false],
                    "len {len} bit {bit}"
                );
            }
            let mut p = vec![good];
            assert_eq!(open_burst(&*c, &mut p, &[seq]), vec![true]);
        }
    }
}

#[test]
fn short_input_never_panics() {
    skip("short_input_never_panics");
    let c = esp_gcm(&[3u8; 20], false);
    for len in 0..32 {
        let mut pkts = vec![vec![0xAB; len]];
        seal_burst(&*c, &mut pkts, &[1]);
        assert!(
            pkts[0].iter().all(|&b| b == 0),
            "short seal must not leave data"
        );
        let mut pkts = vec![vec![0xAB; len]];
        assert_eq!(open_burst(&*c, &mut pkts, &[1]), vec![false]);
    }
    // Empty burst.
    seal_burst(&*c, &mut [], &[]);
    assert!(open_burst(&*c, &mut [], &[]).is_empty());
}

#[test]
fn build_refuses_bad_key_lengths() {
    if skip("build_refuses_bad_key_lengths") {
        // The portable path's key-length errors: crypto_api.rs.
        return;
    }
    for len in [0usize, 3, 4, 16, 19, 21, 32, 35, 37, 40] {
        assert!(
            build_gcm(&Key::from_slice(&vec![1; len]), false).is_none(),
            "{len}"
        );
    }
    for len in [20usize, 28, 36] {
        assert!(
            build_gcm(&Key::from_slice(&vec![1; len]), false).is_some(),
            "{len}"
        );
    }
    for len in [0usize, 8, 15, 17, 20, 31, 33] {
        assert!(Gcm::new(&vec![1; len]).is_none(), "{len}");
    }
}

#[test]
fn raw_open_rejects_bad_tags_and_short_input() {
    skip("raw_open_rejects_bad_tags_and_short_input");
    let gcm = raw_gcm(&[9u8; 16]);
    let gcm = &*gcm;
    let nonce = [1u8; 12];
    for len in [0usize, 5, 64, 300] {
        let mut buf = bytes(len as u64, len);
        let tag = RawAead::seal(gcm, &nonce, b"aad", &mut buf);
        buf.extend_from_slice(&tag);
        for byte in 0..buf.len() {
            let mut b = buf.clone();
            b[byte] ^= 0x80;
            assert!(
                !RawAead::open(gcm, &nonce, b"aad", &mut b),
                "len {len} byte {byte}"
            );
        }
        assert!(!RawAead::open(gcm, &nonce, b"aaD", &mut buf.clone()));
        assert!(RawAead::open(gcm, &nonce, b"aad", &mut buf));
    }
    for len in 0..16 {
        assert!(!RawAead::open(gcm, &nonce, b"", &mut vec![0; len]));
    }
}

/// Bursts of same-size short packets take the four-at-a-time path (and its
/// tail of one to three singles): every length below the 240-byte limit, in
/// bursts of 1..=9 packets, against the reference, then opened back.
#[test]
fn uniform_short_bursts_match_rustcrypto() {
    skip("uniform_short_bursts_match_rustcrypto");
    for (klen, esn) in [(20usize, false), (28, true), (36, false)] {
        if klen == 28 && !kernel() {
            continue; // AES-192: kernel only
        }
        let key = bytes(klen as u64 + 99, klen);
        let c = esp_gcm(&key, esn);
        for len in (0..=260).chain([64, 512, 1420]) {
            for burst in [1usize, 3, 4, 5, 8, 9] {
                let seqs: Vec<u64> = (0..burst as u64)
                    .map(|i| 0x1_0000_0000 * i + len as u64 + 7)
                    .collect();
                let pts: Vec<Vec<u8>> = (0..burst)
                    .map(|i| bytes((len * 10 + i) as u64, len))
                    .collect();
                let mut pkts: Vec<Vec<u8>> = pts
                    .iter()
                    .zip(&seqs)
                    .map(|(p, &s)| esp_unsealed(77, s, p))
                    .collect();
                seal_burst(&*c, &mut pkts, &seqs);
                for i in 0..burst {
                    assert_eq!(
                        pkts[i],
                        esp_reference(&key, 77, seqs[i], esn, &pts[i]),
                        "len {len} burst {burst} #{i}"
                    );
                }
                // Corrupt one packet of each group of four: only it fails.
                let bad: Vec<usize> = (0..burst).filter(|i| i % 4 == (len % 4)).collect();
                for &i in &bad {
                    let l = pkts[i].len();
                    pkts[i][(len * 7 + 3) % l] ^= 0x10;
                }
                let ok = open_burst(&*c, &mut pkts, &seqs);
                for i in 0..burst {
                    assert_eq!(ok[i], !bad.contains(&i), "len {len} burst {burst} #{i}");
                    if ok[i] {
                        assert_eq!(&pkts[i][16..16 + len], &pts[i][..]);
                    }
                }
            }
        }
    }
}
