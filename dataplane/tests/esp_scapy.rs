//! Interop with an implementation we did not write: scapy (through the
//! oracle in tests/oracles/, which works around scapy's known bugs) decrypts
//! what we encrypt, and we decrypt what scapy encrypts, for every suite,
//! tunnel (all four address-family combinations) and transport mode, with
//! and without NAT-T and ESN (across the 2^32 boundary).
//!
//! Needs python3 with scapy and cryptography (scripts/setup.sh installs them).

mod esp_common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use dataplane::crypto::{Backend, Suite};
use dataplane::drop::Verdict;
use dataplane::esp::{decap_burst, encap_burst, DecapResult};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{DropCounters, Mode, Sa, SaParams, Sad};
use esp_common::*;
use serde_json::{json, Value};

struct Case {
    id: String,
    out: SaParams,
    inb: SaParams,
    inner: Vec<Vec<u8>>,
    /// Sequence numbers scapy uses.
    seqs: Vec<u64>,
    /// Our encrypted packets.
    ours: Vec<Vec<u8>>,
}

fn inner_packets(mode: Mode, outer: (&str, &str), inner_v6: bool) -> Vec<Vec<u8>> {
    let (s4, d4, s6, d6) = if mode == Mode::Transport {
        (outer.0, outer.1, outer.0, outer.1)
    } else {
        ("10.1.0.10", "10.2.0.20", "2001:db8:1::10", "2001:db8:2::20")
    };
    (0..4)
        .map(|i| {
            let payload: Vec<u8> = (0..[1usize, 20, 333, 1200][i])
                .map(|x| (x * 7 + i) as u8)
                .collect();
            if inner_v6 {
                udp6(s6, d6, 0, &payload)
            } else {
                let a: std::net::Ipv4Addr = s4.parse().unwrap();
                let b: std::net::Ipv4Addr = d4.parse().unwrap();
                udp4(a.octets(), b.octets(), 0, i % 2 == 0, &payload)
            }
        })
        .collect()
}

fn build_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut n = 0u32;
    for suite in suites() {
        let mut layouts: Vec<(Mode, (&str, &str), bool)> = Vec::new();
        for outer in [("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")] {
            for inner_v6 in [false, true] {
                layouts.push((Mode::Tunnel, outer, inner_v6));
            }
            layouts.push((Mode::Transport, outer, outer.0.contains(':')));
        }
        for (mode, outer, inner_v6) in layouts {
            for esn in [false, true] {
                for natt in [false, true] {
                    n += 1;
                    let (mut out, mut inb) = sa_pair(suite, mode, outer.0, outer.1, esn, natt);
                    out.spi = 0x2000_0000 + n;
                    inb.spi = out.spi;
                    let start = if esn { (1u64 << 32) - 2 } else { 1 };
                    out.initial_seq = start;
                    let inner = inner_packets(mode, outer, inner_v6);
                    let seqs = (start..start + inner.len() as u64).collect();
                    cases.push(Case {
                        id: format!(
                            "{}/{}/{mode:?}/{}>{} inner6={inner_v6} esn={esn} natt={natt}",
                            suite.encr.name(),
                            suite.integ.name(),
                            outer.0,
                            outer.1
                        ),
                        out,
                        inb,
                        inner,
                        seqs,
                        ours: Vec::new(),
                    });
                }
            }
        }
    }
    cases
}

fn job(c: &Case) -> Value {
    let s: Suite = c.out.suite;
    json!({
        "id": c.id,
        "spi": c.out.spi,
        "enc": s.encr.name(),
        "key": hex::encode(c.out.enc_key.bytes()),
        "auth": s.integ.name(),
        "auth_key": hex::encode(c.out.auth_key.bytes()),
        "esn": c.out.esn,
        "esn_hi": 0,
        "window": 64,
        "mode": if c.out.mode == Mode::Tunnel { "tunnel" } else { "transport" },
        "natt": c.out.encap.is_some(),
        "outer_src": c.out.local_addr.to_string(),
        "outer_dst": c.out.remote_addr.to_string(),
        "decrypt": c.ours.iter().map(hex::encode).collect::<Vec<_>>(),
        "encrypt": c.inner.iter().zip(&c.seqs).map(|(p, s)| json!({"inner": hex::encode(p), "seq": s})).collect::<Vec<_>>(),
    })
}

fn oracle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oracles")
}

#[test]
fn scapy_decrypts_ours_and_we_decrypt_scapys() {
    let mut cases = build_cases();
    let drops = DropCounters::default();
    // Our side encrypts.
    for c in cases.iter_mut() {
        let sa = Sa::new(c.out.clone(), Backend::Auto).unwrap();
        let mut bufs: Vec<HeapBuf> = c.inner.iter().map(|p| HeapBuf::from_slice(p)).collect();
        let mut v = vec![Verdict::Pass; bufs.len()];
        encap_burst(&sa, &mut bufs, &mut v, &drops);
        assert!(v.iter().all(|v| *v == Verdict::Pass), "{}: {v:?}", c.id);
        c.ours = bufs.iter().map(|b| b.data().to_vec()).collect();
    }
    let jobs: Vec<Value> = cases.iter().map(job).collect();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(serde_json::to_string(&jobs).unwrap().as_bytes())
        .unwrap();
    let out = std::process::Command::new("python3")
        .arg(oracle_dir().join("esp_interop.py"))
        .arg(f.path())
        .output()
        .expect("python3 (scripts/setup.sh installs it with scapy)");
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());

    let mut checked_ours = 0;
    let mut checked_theirs = 0;
    for (c, r) in cases.iter().zip(&results) {
        assert!(
            r.get("error").is_none(),
            "{}: oracle error {}",
            c.id,
            r["error"]
        );
        // 1. scapy decrypted ours: ICV, padding, ESN, inner bytes.
        let dec = r["decrypt"].as_array().unwrap();
        assert_eq!(dec.len(), c.inner.len(), "{}", c.id);
        for (i, (d, orig)) in dec.iter().zip(&c.inner).enumerate() {
            assert_eq!(
                d["ok"], true,
                "{} packet {i}: scapy says {}",
                c.id, d["err"]
            );
            assert_eq!(
                d["seq64"].as_u64().unwrap(),
                c.seqs[i],
                "{} packet {i}",
                c.id
            );
            let data = hex::decode(d["data"].as_str().unwrap()).unwrap();
            let nh = d["nh"].as_u64().unwrap();
            if c.out.mode == Mode::Tunnel {
                assert_eq!(nh, if orig[0] >> 4 == 4 { 4 } else { 41 }, "{}", c.id);
                assert_eq!(data, *orig, "{} packet {i}", c.id);
            } else {
                let hl = if orig[0] >> 4 == 4 { 20 } else { 40 };
                assert_eq!(nh, 17, "{}", c.id);
                assert_eq!(data, orig[hl..], "{} packet {i}", c.id);
            }
            assert_eq!(d["udp"], c.out.encap.is_some(), "{}", c.id);
            checked_ours += 1;
        }
        // 2. we decrypt scapy's.
        let enc = r["encrypt"].as_array().unwrap();
        assert_eq!(enc.len(), c.inner.len());
        let sa = Arc::new(Sa::new(c.inb.clone(), Backend::Auto).unwrap());
        if c.inb.esn {
            sa.replay().set_top(c.seqs[0] - 8);
        }
        let sad = Sad::with_capacity(4);
        sad.insert(sa.clone());
        let mut bufs: Vec<HeapBuf> = enc
            .iter()
            .map(|h| HeapBuf::from_slice(&hex::decode(h.as_str().unwrap()).unwrap()))
            .collect();
        let mut res = vec![DecapResult::default(); bufs.len()];
        decap_burst(&sad.load(), &mut bufs, &mut res, &drops);
        for (i, ((b, r), orig)) in bufs.iter().zip(&res).zip(&c.inner).enumerate() {
            assert_eq!(r.verdict, Verdict::Pass, "{} packet {i}", c.id);
            assert_eq!(b.data(), &orig[..], "{} packet {i}", c.id);
            checked_theirs += 1;
        }
        assert_eq!(sa.replay().top(), *c.seqs.last().unwrap(), "{}", c.id);
    }
    assert_eq!(drops.total(), 0);
    eprintln!("scapy interop: {} cases, {checked_ours} of our packets decrypted by scapy, {checked_theirs} of scapy's by us", cases.len());
}
