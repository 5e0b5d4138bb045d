//! ESP decapsulation (`esp::decap_burst`) of fuzzer-made packets against a
//! SAD holding SAs of every suite (AES-GCM-128/256, AES-CBC + HMAC-SHA-1/
//! 256/384/512, ChaCha20-Poly1305, NULL + HMAC), tunnel and transport,
//! IPv4 and IPv6, with and without ESN and NAT-T, on every crypto backend.
//!
//! Input byte 0 selects the mode:
//! - even: **raw**. Byte 1 picks the backends; the rest is a burst of
//!   packets, each with a 2-byte length prefix, decapsulated as they are.
//!   Seeds come from real captures (the oracle samples decrypt for real).
//! - odd: **crafted**. Byte 1 picks the SA, byte 2 the backends, byte 3 the
//!   outer TOS, byte 4 the packet count, byte 5 where sequence numbers start
//!   (ESN: high half byte * 0x01010101; else byte << 24); then per packet: flags, sequence
//!   step, next header, a 2-byte position and a length-prefixed body. Each
//!   packet is sealed correctly with the SA's keys, so the fuzzer reaches
//!   everything past the ICV (trailer, tunnel/transport exit, ECN, policy),
//!   then optionally bit-flipped, truncated or replayed.
//!
//! Checked beyond "no panic": every verdict is counted once; a correctly
//! sealed fresh packet never fails the ICV; a flipped or truncated one
//! never passes (a flip after the sequence number is exactly an ICV drop);
//! a replay of a committed sequence number is exactly `Replayed`; a bad
//! trailer (by an independent RFC 4303 check) is exactly `BadPadding`; a
//! tunnel-mode packet that passes is the inner packet sent, with ECN per
//! RFC 6040 and DSCP per the SA; a transport-mode one carries the body
//! after an IP header whose protocol is the trailer's next header.
#![no_main]

use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{Direction, DropCounters, Mode, Sad};
use dataplane::wire::checksum;
use espresso_fuzz::{
    backend, configs, craft, natt_transport_expected_at, rfc6040_exit, trailer_ok, write_outer,
    Input,
};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

const MAX_PKTS: usize = 80;

fn count_check(res: &[DecapResult], drops: &DropCounters) {
    let n = res
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Drop(_)))
        .count() as u64;
    assert_eq!(drops.total(), n, "every drop counted exactly once");
    for r in DropReason::ALL {
        let k = res
            .iter()
            .filter(|x| x.verdict == Verdict::Drop(*r))
            .count() as u64;
        assert_eq!(drops.get(*r), k, "{r:?} counted");
    }
}

fn raw(inp: &mut Input<'_>) {
    let sad = espresso_fuzz::inbound_sad(inp.u8());
    let mut pkts = Vec::new();
    while !inp.is_empty() && pkts.len() < MAX_PKTS {
        pkts.push(HeapBuf::from_slice(inp.chunk()));
    }
    let before: Vec<Vec<u8>> = pkts.iter().map(|p| p.data().to_vec()).collect();
    let mut res = vec![DecapResult::default(); pkts.len()];
    let drops = DropCounters::default();
    decap_burst(&sad.load(), &mut pkts, &mut res, &drops);
    count_check(&res, &drops);
    for ((p, r), b) in pkts.iter().zip(&res).zip(&before) {
        match (r.verdict, r.kind) {
            (Verdict::Pass, PacketKind::Inner4 | PacketKind::Inner6) => {
                assert!(sad.get(r.spi).is_some(), "decrypted with a known SA");
                dataplane::sa::FlowKey::from_ip(p.data()).expect("inner parses");
            }
            (Verdict::Pass, PacketKind::Esp) => panic!("ESP passed without decap"),
            (Verdict::Pass, _) => assert_eq!(p.data(), &b[..], "non-ESP left alone"),
            (Verdict::Drop(_), k) => assert_eq!(k, PacketKind::Esp, "only ESP is dropped"),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mutation {
    None,
    Flip(usize),
    Truncate(usize),
}

struct Sent {
    seq: u64,
    /// Plaintext given to the cipher (body + trailer).
    plain: Vec<u8>,
    mutation: Mutation,
}

fn crafted(inp: &mut Input<'_>) {
    let cfgs = configs();
    let cfg = cfgs[usize::from(inp.u8()) % cfgs.len()];
    let bsel = inp.u8();
    let outer_tos = inp.u8();
    let count = 1 + usize::from(inp.u8()) % 12;
    // Where the sequence numbers start: ESN high half hi * 0x01010101 just
    // before a 2^32 boundary, or (without ESN) hi << 24; the window is
    // placed just below (as after earlier traffic or a restart).
    let hi = u64::from(inp.u8());
    let out_sa = cfg.sa(Direction::Outbound, backend(bsel), 1);
    let in_sa = Arc::new(cfg.sa(Direction::Inbound, backend(bsel >> 4), 1));
    let start: u64 = if cfg.esn {
        ((hi * 0x0101_0101) << 32) | 0xffff_fffa
    } else {
        (hi << 24) + 1
    };
    let seq_max: u64 = if cfg.esn {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    if start > 2 {
        // The peer has sent up to just before our first packet (a fresh
        // window cannot place a number below 2^32 in the previous subspace).
        in_sa.replay().set_top(start - 2);
    }
    let sad = Sad::with_capacity(16);
    sad.insert(in_sa.clone());
    let align = out_sa.cipher().pad_align();

    let mut seq: u64 = start;
    let mut sent: Vec<Sent> = Vec::new();
    let mut pkts = Vec::new();
    for i in 0..count {
        let flags = inp.u8();
        let step = u64::from(inp.u8() % 8);
        let nh = inp.u8();
        let pos = usize::from(inp.u16());
        let body = inp.chunk();
        let replay_of = if flags & 8 != 0 && i > 0 {
            Some(sent[usize::from(nh) % sent.len()].seq)
        } else {
            None
        };
        let this_seq = match replay_of {
            Some(s) => s,
            None => match seq.checked_add(step) {
                Some(s) if s <= seq_max => {
                    seq = s;
                    s
                }
                // The sender would have run out of sequence numbers.
                _ => break,
            },
        };
        let mut plain = body.to_vec();
        if flags & 1 != 0 {
            // Engine-style trailer: padding 1, 2, 3, ... to the alignment.
            let pad = (align - (plain.len() + 2) % align) % align;
            plain.extend((1..=pad).map(|x| x as u8));
            plain.push(pad as u8);
            plain.push(nh);
        } else {
            // The body ends with its own trailer; zero-fill to the block size.
            while !plain.len().is_multiple_of(align) {
                plain.push(0);
            }
        }
        let (mut p, l) = craft(&cfg, &out_sa, this_seq, &plain, outer_tos);
        let mutation = match flags >> 4 & 3 {
            1 => {
                // A bit anywhere from the sequence number to the end.
                let bits = (p.len() - l.esp_off - 4) * 8;
                let bit = pos % bits;
                p[l.esp_off + 4 + bit / 8] ^= 1 << (bit % 8);
                Mutation::Flip(l.esp_off + 4 + bit / 8)
            }
            2 => {
                let cut = 1 + pos % (p.len() - l.esp_off - 8);
                p.truncate(p.len() - cut);
                write_outer(&cfg, &mut p, outer_tos, l);
                Mutation::Truncate(cut)
            }
            _ => Mutation::None,
        };
        sent.push(Sent {
            seq: this_seq,
            plain,
            mutation,
        });
        pkts.push(HeapBuf::from_slice(&p));
    }

    let mut res = vec![DecapResult::default(); pkts.len()];
    let drops = DropCounters::default();
    decap_burst(&sad.load(), &mut pkts, &mut res, &drops);
    count_check(&res, &drops);

    let mut passed_icv: Vec<u64> = Vec::new();
    for ((p, r), s) in pkts.iter().zip(&res).zip(&sent) {
        let v = r.verdict;
        match v {
            Verdict::Pass => assert!(
                matches!(r.kind, PacketKind::Inner4 | PacketKind::Inner6),
                "passed as {:?}",
                r.kind
            ),
            Verdict::Drop(_) => assert_eq!(r.kind, PacketKind::Esp),
        }
        if v == Verdict::Pass {
            assert_eq!(r.spi, cfg.spi);
        }
        let short = s.plain.len() < out_sa.cipher().pad_align();
        let replayed = cfg.window != 0 && passed_icv.contains(&s.seq);
        match s.mutation {
            Mutation::Flip(off) => {
                assert!(matches!(v, Verdict::Drop(_)), "flipped packet passed");
                let seq_field = off < pkts_esp_off(&cfg) + 8;
                if !seq_field && !replayed && !short {
                    assert_eq!(v, Verdict::Drop(DropReason::IcvMismatch), "flip at {off}");
                }
                continue;
            }
            Mutation::Truncate(_) => {
                assert!(matches!(v, Verdict::Drop(_)), "truncated packet passed");
                continue;
            }
            Mutation::None => {}
        }
        if short {
            // Shorter than one block of ciphertext: refused before the ICV.
            assert_eq!(
                v,
                Verdict::Drop(DropReason::Truncated),
                "short packet {:02x?}",
                p.data()
            );
            continue;
        }
        if replayed {
            assert_eq!(
                v,
                Verdict::Drop(DropReason::Replayed),
                "replay of {}",
                s.seq
            );
            continue;
        }
        assert!(
            !matches!(
                v,
                Verdict::Drop(
                    DropReason::IcvMismatch
                        | DropReason::UnknownSpi
                        | DropReason::OutsideWindow
                        | DropReason::Replayed
                )
            ),
            "correctly sealed fresh packet dropped before or at the ICV: {v:?}, {:?} {:02x?}",
            cfg,
            p.data()
        );
        passed_icv.push(s.seq);
        let Some((plen, nh)) = trailer_ok(&s.plain) else {
            assert_eq!(v, Verdict::Drop(DropReason::BadPadding));
            continue;
        };
        assert_ne!(
            v,
            Verdict::Drop(DropReason::BadPadding),
            "valid trailer refused"
        );
        if nh == 59 {
            assert_eq!(v, Verdict::Drop(DropReason::DummyPacket));
            continue;
        }
        let payload = &s.plain[..plen];
        match cfg.mode {
            Mode::Tunnel => check_tunnel(&cfg, v, p.data(), payload, nh, outer_tos),
            Mode::Transport => {
                if v == Verdict::Pass {
                    let d = p.data();
                    let (hl, proto) = if cfg.v6 { (40, d[6]) } else { (20, d[9]) };
                    assert_eq!(proto, nh, "transport next header");
                    if cfg.natt {
                        // RFC 3948 §3.1.2: the TCP/UDP checksum is recomputed.
                        let mut sent = d[..hl].to_vec();
                        sent.extend_from_slice(payload);
                        let want = natt_transport_expected_at(&sent, hl, nh);
                        assert_eq!(&d[hl..], &want[hl..], "transport payload (NAT-T)");
                    } else {
                        assert_eq!(&d[hl..], payload, "transport payload");
                    }
                    if !cfg.v6 {
                        assert_eq!(checksum::fold(checksum::sum(&d[..20])), 0xffff);
                        assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])), d.len());
                    } else {
                        assert_eq!(usize::from(u16::from_be_bytes([d[4], d[5]])) + 40, d.len());
                    }
                } else {
                    assert!(
                        matches!(
                            v,
                            Verdict::Drop(DropReason::Malformed | DropReason::Truncated)
                        ),
                        "transport drop {v:?}"
                    );
                }
            }
        }
    }
}

fn pkts_esp_off(cfg: &espresso_fuzz::Cfg) -> usize {
    (if cfg.v6 { 40 } else { 20 }) + if cfg.natt { 8 } else { 0 }
}

fn check_tunnel(
    cfg: &espresso_fuzz::Cfg,
    v: Verdict,
    out: &[u8],
    payload: &[u8],
    nh: u8,
    outer_tos: u8,
) {
    let v4 = match nh {
        4 => true,
        41 => false,
        _ => {
            assert_eq!(v, Verdict::Drop(DropReason::UnsupportedPayload), "nh {nh}");
            return;
        }
    };
    // What the inner packet claims: version and length.
    let parsed = if v4 {
        dataplane::wire::Ipv4Packet::new_checked(payload)
            .ok()
            .map(|ip| (usize::from(ip.total_len()), ip.tos()))
    } else {
        dataplane::wire::Ipv6Packet::new_checked(payload)
            .ok()
            .map(|ip| (ip.total_len(), ip.traffic_class()))
    };
    let Some((total, tos)) = parsed else {
        assert!(
            matches!(
                v,
                Verdict::Drop(DropReason::Malformed | DropReason::Truncated)
            ),
            "unparsable inner: {v:?}"
        );
        return;
    };
    let outer = outer_tos;
    let Some(ecn) = rfc6040_exit(tos & 3, outer & 3) else {
        assert_eq!(v, Verdict::Drop(DropReason::EcnCeNotEct));
        return;
    };
    let dscp = if cfg.copy_dscp { outer & !3 } else { tos & !3 };
    match v {
        Verdict::Pass => {}
        Verdict::Drop(DropReason::Malformed | DropReason::Truncated) => {
            // Only if the flow key cannot be read (e.g. a broken IPv6
            // extension-header chain).
            assert!(dataplane::sa::FlowKey::from_ip(&payload[..total]).is_err());
            return;
        }
        other => panic!("tunnel packet dropped: {other:?}"),
    }
    assert_eq!(out.len(), total, "inner trimmed to its length");
    let mut want = payload[..total].to_vec();
    if v4 {
        want[1] = dscp | ecn;
        // Header checksum: valid stays valid (RFC 1624 update).
        let hl = usize::from(want[0] & 15) * 4;
        let was_valid = checksum::fold(checksum::sum(&payload[..hl])) == 0xffff;
        let is_valid = checksum::fold(checksum::sum(&out[..hl])) == 0xffff;
        assert_eq!(was_valid, is_valid, "IPv4 checksum validity kept");
        want[10..12].copy_from_slice(&out[10..12]);
    } else {
        let tc = dscp | ecn;
        want[0] = (want[0] & 0xf0) | (tc >> 4);
        want[1] = (want[1] & 0x0f) | (tc << 4);
    }
    assert_eq!(out, &want[..], "tunnel inner packet");
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    if inp.u8() & 1 == 0 {
        raw(&mut inp)
    } else {
        crafted(&mut inp)
    }
});
