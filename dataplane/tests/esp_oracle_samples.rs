//! The oracle's sample captures (tests/oracles/samples, made with scapy and
//! checked with tshark; keys in sa_table.txt) through our decap: every
//! positive sample decrypts to its inner packet, every negative one is
//! dropped with the right reason (bad padding, ICV, replay).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{DfMode, Direction, DropCounters, FlowKey, Lifetime, Mode, Sa, SaParams, Sad};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/oracles/samples")
}

/// Packets of a pcap with raw IPv4/IPv6 link types (228, 229, 101).
fn read_pcap(path: &PathBuf) -> Vec<Vec<u8>> {
    let d = std::fs::read(path).unwrap();
    assert_eq!(&d[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let lt = u32::from_le_bytes(d[20..24].try_into().unwrap());
    assert!([228, 229, 101].contains(&lt), "link type {lt}");
    let mut off = 24;
    let mut v = Vec::new();
    while off + 16 <= d.len() {
        let incl = u32::from_le_bytes(d[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        v.push(d[off..off + incl].to_vec());
        off += incl;
    }
    v
}

fn encr(name: &str) -> EncrAlg {
    match name {
        "aes-gcm-128" => EncrAlg::AesGcm128,
        "aes-gcm-256" => EncrAlg::AesGcm256,
        "chacha20-poly1305" => EncrAlg::ChaCha20Poly1305,
        "aes-cbc-128" => EncrAlg::AesCbc128,
        "aes-cbc-256" => EncrAlg::AesCbc256,
        "null" => EncrAlg::Null,
        o => panic!("unknown enc {o}"),
    }
}

fn integ(name: &str) -> IntegAlg {
    match name {
        "hmac-sha1-96" => IntegAlg::HmacSha1_96,
        "hmac-sha256-128" => IntegAlg::HmacSha256_128,
        "hmac-sha384-192" => IntegAlg::HmacSha384_192,
        "hmac-sha512-256" => IntegAlg::HmacSha512_256,
        o => panic!("unknown auth {o}"),
    }
}

/// One SA per line of sa_table.txt: `SPI:ENC:KEY[:AUTH:AUTHKEY][,esn]`.
fn sa_table() -> Vec<(u32, Suite, Key, Key, bool)> {
    let t = std::fs::read_to_string(dir().join("sa_table.txt")).unwrap();
    t.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut opts = l.split(',');
            let parts: Vec<&str> = opts.next().unwrap().split(':').collect();
            let esn = opts.any(|o| o == "esn");
            let spi = u32::from_str_radix(parts[0].trim_start_matches("0x"), 16).unwrap();
            let e = encr(parts[1]);
            let (i, ak) = if parts.len() > 3 {
                (integ(parts[3]), hex::decode(parts[4]).unwrap())
            } else {
                (IntegAlg::None, vec![])
            };
            (
                spi,
                Suite { encr: e, integ: i },
                Key::new(hex::decode(parts[2]).unwrap()),
                Key::new(ak),
                esn,
            )
        })
        .collect()
}

fn decap_file(name: &str) -> (Vec<HeapBuf>, Vec<DecapResult>) {
    let pkts = read_pcap(&dir().join(name));
    let v6 = pkts[0][0] >> 4 == 6;
    let any: IpAddr = if v6 {
        "::".parse().unwrap()
    } else {
        "0.0.0.0".parse().unwrap()
    };
    let mode = if name.contains("transport") {
        Mode::Transport
    } else {
        Mode::Tunnel
    };
    let sad = Sad::with_capacity(16);
    // The first packet's sequence number, for ESN (the oracle assumes high half 0 at start).
    let esp_off = |p: &[u8]| {
        if p[0] >> 4 == 6 {
            40
        } else if p[9] == 17 {
            28
        } else {
            20
        }
    };
    let first_seq = u32::from_be_bytes(pkts[0][esp_off(&pkts[0]) + 4..][..4].try_into().unwrap());
    for (spi, suite, ek, ak, esn) in sa_table() {
        let p = SaParams {
            spi,
            direction: Direction::Inbound,
            mode,
            suite,
            enc_key: ek,
            auth_key: ak,
            esn,
            replay_window: 64,
            local_addr: any,
            remote_addr: any,
            encap: None,
            selectors: vec![],
            lifetime: Lifetime::default(),
            df: DfMode::Copy,
            copy_dscp: false,
            initial_seq: 1,
            allow_legacy: false,
            tunnel_id: spi,
        };
        let sa = Sa::new(p, Backend::Auto).unwrap();
        if esn {
            sa.replay().set_top(u64::from(first_seq) - 1);
        }
        sad.insert(Arc::new(sa));
    }
    let mut b: Vec<HeapBuf> = pkts.iter().map(|p| HeapBuf::from_slice(p)).collect();
    let mut r = vec![DecapResult::default(); b.len()];
    decap_burst(&sad.load(), &mut b, &mut r, &DropCounters::default());
    (b, r)
}

#[test]
fn positive_samples_decrypt() {
    let files = [
        "cbc128_sha256_esn_wrap.pcap",
        "cbc128_sha256_tunnel.pcap",
        "cbc256_sha1_tunnel.pcap",
        "cbc256_sha512_v6_tunnel.pcap",
        "chacha_tunnel.pcap",
        "gcm128_esn_wrap.pcap",
        "gcm128_tunnel.pcap",
        "gcm256_transport_natt.pcap",
    ];
    for f in files {
        let (b, r) = decap_file(f);
        assert!(!r.is_empty());
        for (b, r) in b.iter().zip(&r) {
            assert_eq!(r.verdict, Verdict::Pass, "{f}");
            assert!(
                matches!(r.kind, PacketKind::Inner4 | PacketKind::Inner6),
                "{f}"
            );
            let k = FlowKey::from_ip(b.data()).unwrap();
            if !f.contains("transport") {
                // The oracle's inner packets: ICMP echo requests 10.0.0.1 -> 10.0.0.2 (or v6).
                assert!(k.proto == 1 || k.proto == 58, "{f}: {k:?}");
            }
        }
    }
}

#[test]
fn negative_samples_are_dropped_for_the_right_reason() {
    let (_, r) = decap_file("neg_cbc_badpad.pcap");
    assert!(
        r.iter()
            .all(|r| r.verdict == Verdict::Drop(DropReason::BadPadding)),
        "{r:?}"
    );
    let (_, r) = decap_file("neg_gcm_bitflip.pcap");
    assert!(
        r.iter()
            .all(|r| r.verdict == Verdict::Drop(DropReason::IcvMismatch)),
        "{r:?}"
    );
    let (_, r) = decap_file("neg_gcm_replay.pcap");
    let v: Vec<Verdict> = r.iter().map(|r| r.verdict).collect();
    assert_eq!(
        v,
        vec![
            Verdict::Pass,
            Verdict::Pass,
            Verdict::Drop(DropReason::Replayed),
            Verdict::Pass
        ]
    );
}
