//! ESP encapsulation (`esp::encap_burst`) of arbitrary inner packets with
//! every SA configuration, followed by decapsulation with the peer's SA.
//!
//! Input: byte 0 picks the SA, byte 1 the backends (encap and decap may use
//! different ones: a cross-backend check), byte 2 the headroom/tailroom
//! class; then a burst of inner packets, each with a 2-byte length prefix.
//!
//! Checked beyond "no panic": every verdict is counted once; an
//! encapsulated packet has a valid outer header for the SA (addresses,
//! protocol, lengths, UDP 4500, IPv4 header checksum), the SA's SPI and
//! consecutive sequence numbers, and an ESP length aligned for the cipher;
//! and decapsulating it gives back exactly the inner packet (up to its IP
//! length; transport mode: with the IPv4 header checksum recomputed)
//! whenever the outbound SPD could classify it (its flow key parses).
#![no_main]

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{Direction, DropCounters, FlowKey, Mode, Sad};
use dataplane::wire::{checksum, Ipv4Packet, Ipv6Packet, UdpPacket};
use espresso_fuzz::{backend, configs, natt_transport_expected, Input};
use libfuzzer_sys::fuzz_target;

const MAX_PKTS: usize = 80;

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let cfgs = configs();
    let cfg = cfgs[usize::from(inp.u8()) % cfgs.len()];
    let bsel = inp.u8();
    let room = inp.u8();
    // The peer's view: our outbound SA is its inbound one. Build the pair
    // from the peer's configuration with directions swapped: encap here
    // sends from "us" to "peer"; the receiving SA expects exactly that.
    let out_sa = cfg.sa(Direction::Outbound, backend(bsel), 1);
    let mut in_params = cfg.params(Direction::Inbound);
    // Receiver side of our packets: local = the peer address we send to.
    in_params.local_addr = if cfg.mode == Mode::Transport {
        if cfg.v6 { "::" } else { "0.0.0.0" }.parse().unwrap()
    } else {
        cfg.peer()
    };
    in_params.remote_addr = cfg.us();
    let in_sa = {
        let b = backend(bsel >> 4);
        let opts = dataplane::crypto::BuildOptions {
            esn: cfg.esn,
            backend: b,
            allow_legacy: false,
            iv_key: None,
            direction: None,
        };
        let c = dataplane::crypto::build_with(
            in_params.suite,
            &in_params.enc_key,
            &in_params.auth_key,
            &opts,
        )
        .or_else(|_| {
            dataplane::crypto::build_with(
                in_params.suite,
                &in_params.enc_key,
                &in_params.auth_key,
                &dataplane::crypto::BuildOptions {
                    backend: dataplane::crypto::Backend::RustCrypto,
                    ..opts
                },
            )
        })
        .unwrap();
        Arc::new(dataplane::sa::Sa::with_cipher(in_params, c).unwrap())
    };

    // Headroom/tailroom: usually enough, sometimes too little (NoRoom).
    let (head, tail) = match room % 8 {
        0 => (usize::from(room >> 3), usize::from(room >> 3)),
        _ => (128, 128),
    };
    let mut inner: Vec<Vec<u8>> = Vec::new();
    let mut pkts: Vec<HeapBuf> = Vec::new();
    while !inp.is_empty() && pkts.len() < MAX_PKTS {
        let c = inp.chunk();
        let mut b = HeapBuf::new(head, c.len(), tail);
        assert!(b.reset_to(head, c));
        pkts.push(b);
        inner.push(c.to_vec());
    }
    let mut verdicts = vec![Verdict::Pass; pkts.len()];
    let drops = DropCounters::default();
    encap_burst(&out_sa, &mut pkts, &mut verdicts, &drops);
    let ndrop = verdicts.iter().filter(|v| **v != Verdict::Pass).count() as u64;
    assert_eq!(drops.total(), ndrop, "every encap drop counted once");
    assert_eq!(out_sa.counters().total_drops(), ndrop);

    // Structure of what was sent.
    let mut seq_expect = 1u64;
    for (p, v) in pkts.iter().zip(&verdicts) {
        if *v != Verdict::Pass {
            continue;
        }
        let d = p.data();
        let (esp_off, next) = outer(&cfg, d);
        let esp = &d[esp_off..];
        assert_eq!(&esp[..4], &cfg.spi.to_be_bytes(), "SPI");
        assert_eq!(
            &esp[4..8],
            &(seq_expect as u32).to_be_bytes(),
            "consecutive sequence numbers"
        );
        seq_expect += 1;
        let c = out_sa.cipher();
        let ct = esp.len() - 8 - c.iv_len() - c.icv_len();
        assert_eq!(ct % c.pad_align(), 0, "ciphertext aligned");
        if cfg.natt {
            assert_eq!(next, 17);
        } else {
            assert_eq!(next, 50);
        }
    }
    assert_eq!(
        out_sa.next_seq(),
        seq_expect,
        "one sequence number per packet"
    );

    // Back through the receiving SA.
    let sad = Sad::with_capacity(16);
    sad.insert(in_sa.clone());
    let mut res = vec![DecapResult::default(); pkts.len()];
    let drops2 = DropCounters::default();
    decap_burst(&sad.load(), &mut pkts, &mut res, &drops2);
    for (((p, v), r), orig) in pkts.iter().zip(&verdicts).zip(&res).zip(&inner) {
        match v {
            Verdict::Drop(reason) => {
                assert!(
                    matches!(
                        reason,
                        DropReason::Malformed
                            | DropReason::Truncated
                            | DropReason::UnsupportedPayload
                            | DropReason::NoRoom
                            | DropReason::TooBig
                    ),
                    "encap drop {reason:?}"
                );
                if *reason == DropReason::NoRoom {
                    assert!(head < 128 && tail < 128, "NoRoom with room to spare");
                }
                continue;
            }
            Verdict::Pass => {}
        }
        let Ok(key) = FlowKey::from_ip(orig) else {
            // The SPD would not have classified it; nothing to compare.
            continue;
        };
        if cfg.mode == Mode::Transport && key.proto == 59 {
            // Transport mode: the trailer's next header is the datagram's
            // upper layer; 59 (no next header) marks a dummy packet, which
            // the receiver discards (RFC 4303 2.6). Nothing is lost: such
            // a datagram has no payload.
            assert_eq!(r.verdict, Verdict::Drop(DropReason::DummyPacket));
            continue;
        }
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "decap of our own packet: {:?} ({:?})",
            r.verdict,
            cfg
        );
        assert!(
            matches!(r.kind, PacketKind::Inner4 | PacketKind::Inner6),
            "kind {:?} for {:?}, sent {:02x?}",
            r.kind,
            cfg,
            orig
        );
        let total = ip_total(orig);
        // RFC 3948 §3.1.2: NAT-T transport decap recomputes the TCP/UDP checksum.
        let want_v = if cfg.natt && cfg.mode == Mode::Transport {
            natt_transport_expected(&orig[..total])
        } else {
            orig[..total].to_vec()
        };
        let want = &want_v[..];
        let got = p.data();
        if cfg.mode == Mode::Transport && orig[0] >> 4 == 4 {
            let hl = usize::from(orig[0] & 15) * 4;
            assert_eq!(got.len(), want.len());
            assert_eq!(&got[..10], &want[..10]);
            assert_eq!(&got[12..], &want[12..]);
            assert_eq!(checksum::fold(checksum::sum(&got[..hl])), 0xffff);
        } else {
            assert_eq!(got, want, "round trip");
        }
    }
});

fn ip_total(p: &[u8]) -> usize {
    if p[0] >> 4 == 4 {
        usize::from(u16::from_be_bytes([p[2], p[3]]))
    } else {
        40 + usize::from(u16::from_be_bytes([p[4], p[5]]))
    }
}

/// Checks the outer header of an encapsulated packet; returns the ESP
/// offset and the IP protocol / next header.
fn outer(cfg: &espresso_fuzz::Cfg, d: &[u8]) -> (usize, u8) {
    let (hl, next, src, dst) = if d[0] >> 4 == 4 {
        let ip = Ipv4Packet::new_checked(d).expect("outer IPv4");
        assert_eq!(usize::from(ip.total_len()), d.len(), "IPv4 total length");
        assert!(ip.verify_checksum(), "outer IPv4 checksum");
        (
            ip.header_len(),
            ip.protocol(),
            IpAddr::V4(ip.src()),
            IpAddr::V4(ip.dst()),
        )
    } else {
        let ip = Ipv6Packet::new_checked(d).expect("outer IPv6");
        assert_eq!(ip.total_len(), d.len(), "IPv6 payload length");
        let ul = ip.upper_layer().expect("outer IPv6 chain");
        (
            ul.offset,
            ul.proto,
            IpAddr::V6(ip.src()),
            IpAddr::V6(ip.dst()),
        )
    };
    assert_eq!(d[0] >> 4 == 6, cfg.v6, "outer family");
    if cfg.mode == Mode::Tunnel {
        assert_eq!((src, dst), (cfg.us(), cfg.peer()), "tunnel endpoints");
    }
    if next == 17 {
        let u = UdpPacket::new_checked(&d[hl..]).expect("outer UDP");
        assert_eq!((u.src_port(), u.dst_port()), (4500, 4500));
        assert_eq!(usize::from(u.len()), d.len() - hl);
        if let (IpAddr::V6(s), IpAddr::V6(t)) = (src, dst) {
            assert!(u.verify_checksum_v6(s, t), "IPv6 UDP checksum (RFC 6936)");
        }
        (hl + 8, next)
    } else {
        (hl, next)
    }
}
