//! The WAN fragment reassembler (`dataplane::reasm`): sequences of
//! fragments, whole packets, arbitrary bytes and time steps against a small
//! table (so that the per-source and global limits and the timeout are hit).
//!
//! Input: byte 0 sets the table (slots 1..=8, per source 1..=4, timeout
//! 1..=64 ms); byte 1 seeds the datagrams' contents. Then ops, each led by
//! one byte (low 2 bits the kind):
//! - 0: **crafted fragment** of one of 8 datagrams (bits 2..5: IPv6, UDP,
//!   source, identification), then 2 bytes of offset (8-byte units), 1 of
//!   length, 1 of flags (M, ECN, an IPv6 hop-by-hop header, a bad IPv4
//!   checksum that parse ignores, a length not a multiple of 8). Its bytes
//!   are the datagram's own, so a completed datagram can be checked.
//! - 1: **raw packet**: 1 length byte, that many bytes, parsed and pushed.
//! - 2: time passes by (next byte) ms.
//! - 3: `expire`.
//!
//! Checked beyond "no panic": a completed datagram is a valid IPv4 packet
//! (checksum, total length, no fragment bits) or IPv6 packet (payload
//! length, no fragment header left) whose payload is the crafted datagram's
//! bytes (unless raw packets were pushed as fragments) and whose protocol
//! is ESP/UDP; the table never holds more than its
//! slots; every fragment pushed is in a reassembled datagram, counted as a
//! drop, or held (the books balance after every op).
#![no_main]

use dataplane::drop::DropReason;
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::reasm::{parse, strip_atomic, Push, ReasmConfig, Reassembler};
use dataplane::sa::DropCounters;
use dataplane::wire::{checksum, proto, Ipv4Packet, Ipv6Packet};
use libfuzzer_sys::fuzz_target;

/// Payload bytes of crafted datagram `which` at offset `i`.
fn body(seed: u8, which: u8, i: usize) -> u8 {
    (i as u8)
        .wrapping_mul(151)
        .wrapping_add(seed)
        .wrapping_add(which.wrapping_mul(29))
        ^ ((i >> 8) as u8)
}

/// A crafted fragment: `which` picks family, protocol, source and id.
fn craft(seed: u8, which: u8, off8: u16, len: usize, flags: u8) -> Vec<u8> {
    let v6 = which & 1 != 0;
    let udp = which & 2 != 0;
    let src = (which >> 2) & 1;
    let id = (which >> 3) & 1;
    let more = flags & 1 != 0;
    let ecn = (flags >> 1) & 3;
    let hbh = flags & 8 != 0;
    let p = if udp { proto::UDP } else { proto::ESP };
    let off = usize::from(off8) * 8;
    let data: Vec<u8> = (off..off + len)
        .map(|i| body(seed, which & 15, i))
        .collect();
    if v6 {
        let mut d = vec![0u8; 40];
        d[0] = 0x60 | (ecn >> 2);
        d[1] = ecn << 4;
        d[7] = 64;
        d[8..24].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src + 1]);
        d[24..40].copy_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        if hbh {
            d[6] = proto::HOPOPT;
            d.extend_from_slice(&[proto::IPV6_FRAG, 0, 1, 4, 0, 0, 0, 0]);
        } else {
            d[6] = proto::IPV6_FRAG;
        }
        let fo = ((off as u16) & 0xfff8) | u16::from(more);
        d.extend_from_slice(&[p, 0]);
        d.extend_from_slice(&fo.to_be_bytes());
        d.extend_from_slice(&(0x1000 + u32::from(id)).to_be_bytes());
        d.extend_from_slice(&data);
        let pl = (d.len() - 40) as u16;
        d[4..6].copy_from_slice(&pl.to_be_bytes());
        d
    } else {
        let mut d = vec![0u8; 20];
        d[0] = 0x45;
        d[1] = ecn;
        let tl = (20 + len) as u16;
        d[2..4].copy_from_slice(&tl.to_be_bytes());
        d[4..6].copy_from_slice(&(0x77 + u16::from(id)).to_be_bytes());
        let ff = (off8 & 0x1fff) | if more { 0x2000 } else { 0 };
        d[6..8].copy_from_slice(&ff.to_be_bytes());
        d[8] = 64;
        d[9] = p;
        d[12..16].copy_from_slice(&[192, 0, 2, src + 1]);
        d[16..20].copy_from_slice(&[198, 51, 100, 1]);
        let c = checksum::checksum(&d[..20]);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        d.extend_from_slice(&data);
        d
    }
}

/// Checks a reassembled datagram against what was crafted.
fn check_done(out: &[u8], seed: u8) {
    match out[0] >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(out).expect("reassembled IPv4 parses");
            assert!(ip.verify_checksum(), "checksum");
            assert_eq!(usize::from(ip.total_len()), out.len());
            assert!(!ip.is_fragment());
            let p = ip.protocol();
            assert!(p == proto::ESP || p == proto::UDP);
            let which = u8::from(p == proto::UDP) << 1
                | u8::from(out[15] == 2) << 2
                | u8::from(out[5] == 0x78) << 3;
            for (i, b) in out[20..].iter().enumerate() {
                assert_eq!(*b, body(seed, which, i), "IPv4 payload byte {i}");
            }
        }
        6 => {
            let ip = Ipv6Packet::new_checked(out).expect("reassembled IPv6 parses");
            assert_eq!(ip.total_len(), out.len());
            assert_eq!(ip.fragment_header(), Ok(None), "fragment header left");
            let u = ip.upper_layer().expect("header chain");
            assert!(u.proto == proto::ESP || u.proto == proto::UDP);
            // The id is not in the reassembled packet: either may match.
            let base = 1 | u8::from(u.proto == proto::UDP) << 1 | u8::from(out[23] == 2) << 2;
            let ok = [base, base | 8].iter().any(|&w| {
                out[u.offset..]
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == body(seed, w, i))
            });
            assert!(ok, "IPv6 payload is neither datagram's");
        }
        v => panic!("reassembled version {v}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cfg = ReasmConfig {
        slots: 1 + usize::from(data[0] & 7),
        per_source: 1 + usize::from((data[0] >> 3) & 3),
        max_datagram: 2048,
        timeout_ms: 1 + u64::from(data[0] >> 2),
    };
    let seed = data[1];
    let mut r = Reassembler::new(cfg);
    let drops = DropCounters::default();
    let (mut pushed, mut done, mut now) = (0u64, 0u64, 0u64);
    // Raw packets may hit a crafted datagram's key with other bytes: then
    // completed payloads are not checked against the crafted ones.
    let mut raw_fragments = false;
    let mut i = 2;
    while i < data.len() {
        let op = data[i];
        i += 1;
        let pkt = match op & 3 {
            0 => {
                let Some(b) = data.get(i..i + 4) else { break };
                i += 4;
                let off8 = u16::from_be_bytes([b[0], b[1]]) & 0x1fff;
                let flags = b[3];
                let mut len = usize::from(b[2]) * 8 + usize::from(flags >> 5 & 1);
                if off8 == 0 && len < 16 {
                    len = 16 + usize::from(flags >> 6);
                }
                let mut d = craft(seed, op >> 2, off8, len, flags);
                if flags & 0x80 != 0 && d[0] >> 4 == 4 {
                    // A bad checksum: the worker's demux refuses these;
                    // the reassembler must simply not care.
                    d[10] ^= 0x55;
                }
                d
            }
            1 => {
                let n = usize::from(*data.get(i).unwrap_or(&0));
                i = (i + 1).min(data.len());
                let end = (i + n).min(data.len());
                let d = data[i..end].to_vec();
                i = end;
                d
            }
            2 => {
                now += u64::from(*data.get(i).unwrap_or(&1));
                i += 1;
                continue;
            }
            _ => {
                r.expire(now, &drops);
                assert_eq!(pushed, done + drops.total() + r.held_fragments());
                continue;
            }
        };
        let f = match parse(&pkt) {
            Ok(Some(f)) => f,
            Ok(None) => continue,
            Err(e) => {
                assert!(matches!(e, DropReason::Truncated | DropReason::Malformed));
                continue;
            }
        };
        if f.is_atomic() {
            let mut b = HeapBuf::from_slice(&pkt);
            assert!(strip_atomic(&mut b, &f));
            assert_eq!(b.len() + 8, pkt.len());
            continue;
        }
        pushed += 1;
        raw_fragments |= op & 3 == 1;
        if let Push::Complete { slot, len } = r.push(&pkt, &f, now, &drops) {
            let before = r.held_fragments();
            let mut out = vec![0u8; len];
            assert_eq!(r.emit(slot, &mut out), len);
            done += before - r.held_fragments();
            if !raw_fragments {
                check_done(&out, seed);
            }
        }
        assert!(r.in_use() <= cfg.slots);
        assert_eq!(pushed, done + drops.total() + r.held_fragments());
    }
});
