//! Published ESP packet vectors (draft-mcgrew-gcm-test-01 / RFC 4106 and
//! RFC 7634 packets, as carried by Linux crypto/testmgr.h; see
//! tests/vectors/PROVENANCE.md) through the `EspCipher` API on every backend.

mod crypto_common;

use crypto_common::{open_one, opts, seal_one};
use dataplane::crypto::{build_with, Backend, EncrAlg, IntegAlg, Key, Suite};
use serde_json::Value;

struct Vector {
    name: String,
    key: Vec<u8>,
    iv: Vec<u8>,
    aad: Vec<u8>,
    pt: Vec<u8>,
    ct: Vec<u8>,
    esn: bool,
    expect_fail: bool,
}

fn field(v: &Value, name: &str, len: Option<&str>) -> Vec<u8> {
    let b = hex::decode(v[name].as_str().unwrap_or("")).expect("hex");
    match len.and_then(|l| v[l].as_str()) {
        Some(l) => b[..l.parse::<usize>().unwrap()].to_vec(),
        None => b,
    }
}

fn load(template: &str) -> Vec<Vector> {
    let text = include_str!("vectors/linux_testmgr_esp_aead.json");
    let doc: Value = serde_json::from_str(text).unwrap();
    doc["templates"][template]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let assoc = field(v, "assoc", Some("alen"));
            let iv = field(v, "iv", None)[..8].to_vec();
            assert_eq!(
                &assoc[assoc.len() - 8..],
                &iv[..],
                "{template} #{i}: assoc ends with IV"
            );
            Vector {
                name: format!("{template} #{i} {}", v["comment"].as_str().unwrap_or("")),
                key: field(v, "key", Some("klen")),
                aad: assoc[..assoc.len() - 8].to_vec(),
                iv,
                pt: field(v, "ptext", Some("plen")),
                ct: field(v, "ctext", Some("clen")),
                esn: v["esn"].as_bool().unwrap(),
                expect_fail: v["expect_fail"].as_bool().unwrap(),
            }
        })
        .collect()
}

/// Runs one vector; returns true if the seal path was compared too.
fn run(v: &Vector, encr: EncrAlg) -> bool {
    assert_eq!(v.aad.len(), if v.esn { 12 } else { 8 }, "{}", v.name);
    let suite = Suite {
        encr,
        integ: IntegAlg::None,
    };
    let spi = &v.aad[..4];
    let (hi, lo) = if v.esn {
        (&v.aad[4..8], &v.aad[8..12])
    } else {
        (&[0u8; 4][..], &v.aad[4..8])
    };
    let seq = (u64::from(u32::from_be_bytes(hi.try_into().unwrap())) << 32)
        | u64::from(u32::from_be_bytes(lo.try_into().unwrap()));
    let packet: Vec<u8> = [spi, lo, &v.iv[..], &v.ct[..]].concat();
    let sealable = v.iv == seq.to_be_bytes();
    let mut backends = 0;
    for &b in Backend::compiled() {
        let Ok(c) = build_with(
            suite,
            &Key::from_slice(&v.key),
            &Key::default(),
            &opts(b, v.esn),
        ) else {
            // The multi-buffer kernel implements AES-GCM only.
            if b == Backend::MultiBuffer && suite.encr == EncrAlg::ChaCha20Poly1305 {
                continue;
            }
            panic!("{}: {b} cannot build {suite:?}", v.name)
        };
        backends += 1;
        let mut p = packet.clone();
        let ok = open_one(&*c, &mut p, seq);
        assert_eq!(ok, !v.expect_fail, "{} on {b}", v.name);
        if ok {
            assert_eq!(
                &p[16..16 + v.pt.len()],
                &v.pt[..],
                "{} on {b}: plaintext",
                v.name
            );
        }
        // The wrong ESN high half must fail.
        if v.esn {
            let mut p = packet.clone();
            assert!(!open_one(&*c, &mut p, seq ^ (1 << 40)), "{} on {b}", v.name);
        }
        if sealable && !v.expect_fail {
            let mut p: Vec<u8> = [spi, lo, &[0u8; 8][..], &v.pt[..], &[0u8; 16][..]].concat();
            seal_one(&*c, &mut p, seq);
            assert_eq!(p, packet, "{} on {b}: sealed packet", v.name);
        }
    }
    assert!(backends >= 1);
    sealable
}

#[test]
fn rfc4106_gcm_esp_packets() {
    let vs = load("aes_gcm_rfc4106_tv_template");
    assert_eq!(vs.len(), 23);
    let (mut opened, mut sealed, mut esn, mut draft) = (0, 0, 0, 0);
    for v in &vs {
        let encr = match v.key.len() {
            20 => EncrAlg::AesGcm128,
            36 => EncrAlg::AesGcm256,
            28 => continue, // AES-192-GCM: not one of our suites
            n => panic!("{}: key length {n}", v.name),
        };
        sealed += run(v, encr) as usize;
        opened += 1;
        esn += v.esn as usize;
        draft += v.name.contains("draft-mcgrew") as usize;
    }
    assert_eq!(opened, 22);
    assert_eq!(sealed, 2);
    assert!(esn >= 10 && draft >= 1, "esn {esn}, draft {draft}");
}

#[test]
fn rfc7634_chacha_esp_packet() {
    let vs = load("rfc7539esp_tv_template");
    assert_eq!(vs.len(), 1);
    for v in &vs {
        assert_eq!(v.key.len(), 36);
        assert!(v.esn);
        run(v, EncrAlg::ChaCha20Poly1305);
    }
}

#[test]
fn tampered_vectors_fail() {
    for v in load("aes_gcm_rfc4106_tv_template")
        .iter()
        .filter(|v| v.key.len() == 20)
        .take(4)
    {
        let suite = Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        };
        let lo = if v.esn { &v.aad[8..12] } else { &v.aad[4..8] };
        let packet: Vec<u8> = [&v.aad[..4], lo, &v.iv[..], &v.ct[..]].concat();
        let c = build_with(
            suite,
            &Key::from_slice(&v.key),
            &Key::default(),
            &opts(Backend::Auto, v.esn),
        )
        .unwrap();
        let hi = if v.esn {
            u64::from(u32::from_be_bytes(v.aad[4..8].try_into().unwrap())) << 32
        } else {
            0
        };
        let seq = hi | u64::from(u32::from_be_bytes(lo.try_into().unwrap()));
        for i in [0, 5, 9, packet.len() - 1] {
            let mut p = packet.clone();
            p[i] ^= 0x10;
            assert!(!open_one(&*c, &mut p, seq), "{} byte {i}", v.name);
        }
    }
}
