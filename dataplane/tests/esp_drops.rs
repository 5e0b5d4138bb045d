//! Every drop reason of the ESP engine, counted per SA and in total, plus
//! demultiplexing of IKE, keepalives and non-ESP traffic.

mod esp_common;

use std::sync::Arc;

use dataplane::crypto::{Backend, SealJob};
use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{
    DropCounters, Lifetime, LifetimeKind, Mode, Sa, SaEvent, SaParams, Sad, TrafficSelector,
};
use dataplane::wire::checksum;
use esp_common::*;

struct Pair {
    out: Sa,
    inb: Arc<Sa>,
    sad: Sad,
    drops: DropCounters,
}

fn pair_with(f: impl FnOnce(&mut SaParams, &mut SaParams)) -> Pair {
    let (mut op, mut ip) = sa_pair(
        suites()[0],
        Mode::Tunnel,
        "192.0.2.1",
        "192.0.2.2",
        false,
        false,
    );
    f(&mut op, &mut ip);
    let out = Sa::new(op, Backend::Auto).unwrap();
    let inb = Arc::new(Sa::new(ip, Backend::Auto).unwrap());
    let sad = Sad::with_capacity(8);
    sad.insert(inb.clone());
    Pair {
        out,
        inb,
        sad,
        drops: DropCounters::default(),
    }
}

fn pair() -> Pair {
    pair_with(|_, _| {})
}

fn inner() -> Vec<u8> {
    udp4([10, 1, 0, 1], [10, 2, 0, 1], 0, false, b"hello")
}

impl Pair {
    fn encap(&self, pkts: &[Vec<u8>]) -> (Vec<HeapBuf>, Vec<Verdict>) {
        let mut b: Vec<HeapBuf> = pkts.iter().map(|p| HeapBuf::from_slice(p)).collect();
        let mut v = vec![Verdict::Pass; b.len()];
        encap_burst(&self.out, &mut b, &mut v, &self.drops);
        (b, v)
    }
    fn decap_bytes(&self, pkts: &[Vec<u8>]) -> (Vec<HeapBuf>, Vec<DecapResult>) {
        let mut b: Vec<HeapBuf> = pkts.iter().map(|p| HeapBuf::from_slice(p)).collect();
        let mut r = vec![DecapResult::default(); b.len()];
        decap_burst(&self.sad.load(), &mut b, &mut r, &self.drops);
        (b, r)
    }
    /// An ESP packet sealed with the real cipher but with a plaintext (payload
    /// + trailer) of our choosing.
    fn craft(&self, seq: u64, plaintext: &[u8]) -> Vec<u8> {
        let iv = self.out.cipher().iv_len();
        let icv = self.out.cipher().icv_len();
        let esp_len = 8 + iv + plaintext.len() + icv;
        let mut esp = Vec::with_capacity(esp_len);
        esp.extend_from_slice(&self.out.spi().to_be_bytes());
        esp.extend_from_slice(&(seq as u32).to_be_bytes());
        esp.extend(std::iter::repeat_n(0, iv));
        esp.extend_from_slice(plaintext);
        esp.extend(std::iter::repeat_n(0, icv));
        let mut p = outer4(&esp);
        self.out.cipher().seal(&mut [SealJob {
            esp: &mut p[20..],
            seq,
        }]);
        p
    }
    fn expect_drop(&self, r: &DecapResult, reason: DropReason) {
        assert_eq!(r.verdict, Verdict::Drop(reason));
    }
}

fn trailer(payload: &[u8], pad: &[u8], nh: u8) -> Vec<u8> {
    let mut v = payload.to_vec();
    v.extend_from_slice(pad);
    v.push(pad.len() as u8);
    v.push(nh);
    v
}

#[test]
fn unknown_spi_replay_outside_window_icv() {
    let p = pair_with(|_, ip| ip.replay_window = 64);
    let (b, _) = p.encap(&vec![inner(); 100]);
    let wire: Vec<Vec<u8>> = b.iter().map(|b| b.data().to_vec()).collect();
    // Deliver 100 (last), then a replay of it, then 1 (outside: 100 - 64 >= 1), then 50.
    let (_, r) = p.decap_bytes(&[
        wire[99].clone(),
        wire[99].clone(),
        wire[0].clone(),
        wire[49].clone(),
    ]);
    assert_eq!(r[0].verdict, Verdict::Pass);
    p.expect_drop(&r[1], DropReason::Replayed);
    p.expect_drop(&r[2], DropReason::OutsideWindow);
    assert_eq!(r[3].verdict, Verdict::Pass);
    // A flipped ciphertext bit: ICV mismatch, and the window is not updated.
    let mut bad = wire[98].clone();
    bad[40] ^= 1;
    let (_, r) = p.decap_bytes(&[bad, wire[98].clone()]);
    p.expect_drop(&r[0], DropReason::IcvMismatch);
    assert_eq!(r[1].verdict, Verdict::Pass);
    // Unknown SPI.
    let mut unk = wire[97].clone();
    unk[20] ^= 0x40;
    let (_, r) = p.decap_bytes(&[unk]);
    p.expect_drop(&r[0], DropReason::UnknownSpi);
    assert_eq!(r[0].kind, PacketKind::Esp);
    let c = p.inb.counters();
    assert_eq!(c.drops(DropReason::Replayed), 1);
    assert_eq!(c.drops(DropReason::OutsideWindow), 1);
    assert_eq!(c.drops(DropReason::IcvMismatch), 1);
    assert_eq!(c.packets.load(std::sync::atomic::Ordering::Relaxed), 3);
    assert_eq!(p.drops.get(DropReason::UnknownSpi), 1);
    assert_eq!(p.drops.total(), 4);
}

#[test]
fn bad_padding_dummy_and_unsupported_next_header() {
    let p = pair();
    let inner = inner();
    let good = p.craft(1, &trailer(&inner, &[1], 4));
    let bad_bytes = p.craft(2, &trailer(&inner, &[1, 2, 3, 4, 6], 4));
    let mut too_long = inner.clone();
    too_long.extend_from_slice(&[0, 200, 4]); // pad length 200 > payload
    let bad_len = p.craft(3, &too_long);
    let dummy = p.craft(4, &trailer(&[0xde, 0xad], &[], 59));
    let tcp_in_tunnel = p.craft(5, &trailer(&inner, &[1], 6));
    let (b, r) = p.decap_bytes(&[good, bad_bytes, bad_len, dummy, tcp_in_tunnel]);
    assert_eq!(r[0].verdict, Verdict::Pass);
    assert_eq!(b[0].data(), &inner[..]);
    p.expect_drop(&r[1], DropReason::BadPadding);
    p.expect_drop(&r[2], DropReason::BadPadding);
    p.expect_drop(&r[3], DropReason::DummyPacket);
    p.expect_drop(&r[4], DropReason::UnsupportedPayload);
    assert_eq!(p.inb.counters().drops(DropReason::BadPadding), 2);
}

#[test]
fn truncated_and_misaligned() {
    let p = pair();
    let (b, _) = p.encap(&[inner()]);
    let w = b[0].data().to_vec();
    let fix = |p: &mut Vec<u8>| {
        let tl = p.len() as u16;
        p[2..4].copy_from_slice(&tl.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    };
    let mut short = w[..20 + 8 + 8 + 4 + 2].to_vec();
    fix(&mut short);
    // IPv4 total length larger than the buffer.
    let cut = w[..w.len() - 1].to_vec();
    // Ciphertext not a multiple of 4 (one byte too many, lengths fixed up).
    let mut mis = w.clone();
    mis.push(0);
    fix(&mut mis);
    let (_, r) = p.decap_bytes(&[short, cut, mis]);
    p.expect_drop(&r[0], DropReason::Truncated);
    p.expect_drop(&r[1], DropReason::Truncated);
    p.expect_drop(&r[2], DropReason::Malformed);
}

#[test]
fn link_padding_after_the_ip_packet_is_ignored() {
    let p = pair();
    let (b, _) = p.encap(&[inner()]);
    let mut w = b[0].data().to_vec();
    w.extend_from_slice(&[0u8; 12]);
    let (b, r) = p.decap_bytes(&[w]);
    assert_eq!(r[0].verdict, Verdict::Pass);
    assert_eq!(b[0].data(), &inner()[..]);
}

#[test]
fn inbound_policy_check() {
    let p = pair_with(|_, ip| {
        ip.selectors = vec![TrafficSelector {
            local: "10.2.0.0/16".parse().unwrap(),
            remote: "10.1.0.0/24".parse().unwrap(),
            proto: 17,
            local_ports: Default::default(),
            remote_ports: Default::default(),
        }]
    });
    let ok = udp4([10, 1, 0, 1], [10, 2, 0, 1], 0, false, b"a");
    let wrong_src = udp4([10, 9, 0, 1], [10, 2, 0, 1], 0, false, b"b");
    let mut wrong_proto = udp4([10, 1, 0, 1], [10, 2, 0, 1], 0, false, b"c");
    wrong_proto[9] = 6;
    let v6 = udp6("2001:db8::1", "2001:db8::2", 0, b"d");
    let (b, _) = p.encap(&[ok, wrong_src, wrong_proto, v6]);
    let w: Vec<Vec<u8>> = b.iter().map(|b| b.data().to_vec()).collect();
    let (_, r) = p.decap_bytes(&w);
    assert_eq!(r[0].verdict, Verdict::Pass);
    for r in &r[1..] {
        p.expect_drop(r, DropReason::PolicyMismatch);
    }
    assert_eq!(p.inb.counters().drops(DropReason::PolicyMismatch), 3);
}

/// With ESN only the low half travels; the receiver infers the high half
/// from its window (RFC 4303 A2.2). A packet more than W behind the top (a
/// worker descheduled while the others moved the window) is given the next
/// subspace: the ICV covers the high half, so it fails authentication and the
/// window does not move. Packets inside the window, across the 2^32 boundary
/// too, are accepted once.
#[test]
fn esn_packets_later_than_the_window_fail_their_icv_and_leave_the_window() {
    let p = pair_with(|op, ip| {
        op.esn = true;
        ip.esn = true;
        ip.replay_window = 64;
        op.initial_seq = (1 << 32) - 100;
    });
    let (b, v) = p.encap(&vec![inner(); 200]);
    assert!(v.iter().all(|v| *v == Verdict::Pass));
    let wire: Vec<Vec<u8>> = b.iter().map(|b| b.data().to_vec()).collect();
    let seq = |i: usize| (1u64 << 32) - 100 + i as u64;
    let one = |i: usize| p.decap_bytes(&[wire[i].clone()]).1[0];
    let top = || p.inb.replay().top();
    // The receiver has seen everything before the sender's first number,
    // follows it up to the boundary, then past it.
    p.inb.replay().set_top(seq(0) - 1);
    assert_eq!(one(60).verdict, Verdict::Pass);
    assert_eq!(one(150).verdict, Verdict::Pass);
    assert_eq!(top(), seq(150));
    // 150 behind, from the previous subspace (case B): refused by the ICV.
    p.expect_drop(&one(0), DropReason::IcvMismatch);
    assert_eq!(
        top(),
        seq(150),
        "an unauthenticated high half never moves the window"
    );
    // 55 behind, previous subspace: inside the window.
    assert_eq!(one(95).verdict, Verdict::Pass);
    assert_eq!(one(199).verdict, Verdict::Pass);
    assert_eq!(top(), seq(199));
    // 89 behind in the same subspace (case A): the next subspace is inferred.
    p.expect_drop(&one(110), DropReason::IcvMismatch);
    assert_eq!(top(), seq(199));
    p.expect_drop(&one(150), DropReason::Replayed);
    assert_eq!(one(140).verdict, Verdict::Pass);
    let c = p.inb.counters();
    assert_eq!(c.drops(DropReason::IcvMismatch), 2);
    assert_eq!(c.drops(DropReason::Replayed), 1);
    assert_eq!(c.packets.load(std::sync::atomic::Ordering::Relaxed), 5);
}

#[test]
fn sequence_exhaustion_stops_the_sa_without_wrapping() {
    for esn in [false, true] {
        let start = if esn {
            u64::MAX - 1
        } else {
            u64::from(u32::MAX) - 1
        };
        let p = pair_with(|op, ip| {
            op.esn = esn;
            ip.esn = esn;
            op.initial_seq = start;
        });
        let (b, v) = p.encap(&vec![inner(); 4]);
        assert_eq!(v[..2], [Verdict::Pass, Verdict::Pass]);
        assert_eq!(v[2..], [Verdict::Drop(DropReason::SeqExhausted); 2]);
        // The last two numbers were used: start and start + 1 (= the maximum).
        let seq_lo = |b: &HeapBuf| u32::from_be_bytes(b.data()[24..28].try_into().unwrap());
        assert_eq!(seq_lo(&b[0]), start as u32);
        assert_eq!(seq_lo(&b[1]), (start + 1) as u32);
        assert!(p.out.is_dead());
        let (_, v) = p.encap(&[inner()]);
        assert_eq!(v[0], Verdict::Drop(DropReason::SeqExhausted));
        let mut ev = Vec::new();
        p.out.take_events(&mut ev);
        assert_eq!(ev, vec![SaEvent::SeqExhausted { spi: p.out.spi() }]);
        p.out.take_events(&mut ev);
        assert_eq!(ev.len(), 1, "raised once");
        assert_eq!(p.out.counters().drops(DropReason::SeqExhausted), 3);
    }
}

#[test]
fn lifetimes_raise_soft_then_hard_and_stop() {
    let p = pair_with(|op, ip| {
        op.lifetime = Lifetime {
            soft_packets: 3,
            hard_packets: 5,
            soft_bytes: 0,
            hard_bytes: 0,
        };
        ip.lifetime = Lifetime {
            soft_bytes: 100,
            hard_bytes: 0,
            soft_packets: 0,
            hard_packets: 0,
        };
    });
    let (b, v) = p.encap(&vec![inner(); 2]);
    assert!(v.iter().all(|v| *v == Verdict::Pass));
    let mut ev = Vec::new();
    p.out.take_events(&mut ev);
    assert!(ev.is_empty());
    let (_, v) = p.encap(&vec![inner(); 2]);
    assert!(v.iter().all(|v| *v == Verdict::Pass));
    p.out.take_events(&mut ev);
    let spi = p.out.spi();
    let dir = dataplane::sa::Direction::Outbound;
    assert_eq!(
        ev,
        vec![SaEvent::SoftExpire {
            spi,
            direction: dir,
            kind: LifetimeKind::Packets
        }]
    );
    ev.clear();
    let (_, v) = p.encap(&vec![inner(); 1]);
    assert_eq!(v[0], Verdict::Pass);
    p.out.take_events(&mut ev);
    assert_eq!(
        ev,
        vec![SaEvent::HardExpire {
            spi,
            direction: dir,
            kind: LifetimeKind::Packets
        }]
    );
    let (_, v) = p.encap(&[inner()]);
    assert_eq!(v[0], Verdict::Drop(DropReason::HardLifetime));
    // Inbound byte lifetime via the SAD's collector.
    let w: Vec<Vec<u8>> = b.iter().map(|b| b.data().to_vec()).collect();
    let (_, r) = p.decap_bytes(&w);
    assert!(r.iter().all(|r| r.verdict == Verdict::Pass));
    let mut ev = Vec::new();
    p.sad.collect_events(&mut ev);
    assert!(ev.is_empty(), "{ev:?}"); // 2 x 33 bytes < 100
    let (b, _) = p.encap(&[]);
    drop(b);
    let p2 = pair_with(|_, ip| ip.lifetime.soft_bytes = 60);
    let (b, _) = p2.encap(&vec![inner(); 2]);
    let w: Vec<Vec<u8>> = b.iter().map(|b| b.data().to_vec()).collect();
    p2.decap_bytes(&w);
    p2.sad.collect_events(&mut ev);
    assert_eq!(
        ev,
        vec![SaEvent::SoftExpire {
            spi: p2.inb.spi(),
            direction: dataplane::sa::Direction::Inbound,
            kind: LifetimeKind::Bytes
        }]
    );
}

fn udp_to(dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = udp4([192, 0, 2, 1], [192, 0, 2, 2], 0, false, payload);
    p[22..24].copy_from_slice(&dport.to_be_bytes());
    p
}

#[test]
fn natt_demux_ike_keepalive_and_not_esp() {
    let p = pair();
    let ike = udp_to(4500, &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let keepalive = udp_to(4500, &[0xff]);
    let other_udp = udp_to(53, b"dns");
    let mut tcp = inner();
    tcp[9] = 6;
    let short_esp = udp_to(4500, &[1, 2, 3, 4, 5]);
    let (b, r) = p.decap_bytes(&[
        ike.clone(),
        keepalive.clone(),
        other_udp.clone(),
        tcp.clone(),
        short_esp,
    ]);
    assert_eq!((r[0].verdict, r[0].kind), (Verdict::Pass, PacketKind::Ike));
    assert_eq!(b[0].data(), &ike[..]);
    assert_eq!(
        (r[1].verdict, r[1].kind),
        (Verdict::Pass, PacketKind::Keepalive)
    );
    assert_eq!(
        (r[2].verdict, r[2].kind),
        (Verdict::Pass, PacketKind::NotEsp)
    );
    assert_eq!(b[2].data(), &other_udp[..]);
    assert_eq!(
        (r[3].verdict, r[3].kind),
        (Verdict::Pass, PacketKind::NotEsp)
    );
    p.expect_drop(&r[4], DropReason::Truncated);
}

#[test]
fn wrong_direction_no_room_and_wrong_destination() {
    let p = pair();
    // An inbound SA given to encap.
    let mut b = vec![HeapBuf::from_slice(&inner())];
    let mut v = [Verdict::Pass];
    encap_burst(&p.inb, &mut b, &mut v, &p.drops);
    assert_eq!(v[0], Verdict::Drop(DropReason::WrongDirection));
    // Too little headroom.
    let mut small = HeapBuf::new(8, 64, 64);
    assert!(small.reset_to(8, &inner()));
    let mut b = vec![small];
    encap_burst(&p.out, &mut b, &mut v, &p.drops);
    assert_eq!(v[0], Verdict::Drop(DropReason::NoRoom));
    assert_eq!(
        b[0].data(),
        &inner()[..],
        "dropped packets are left unchanged"
    );
    // Right SPI, wrong outer destination: not our SA.
    let (b, _) = p.encap(&[inner()]);
    let mut w = b[0].data().to_vec();
    w[19] = 99;
    w[10] = 0;
    w[11] = 0;
    let c = checksum::checksum(&w[..20]);
    w[10..12].copy_from_slice(&c.to_be_bytes());
    let (_, r) = p.decap_bytes(&[w]);
    p.expect_drop(&r[0], DropReason::UnknownSpi);
}

#[test]
fn mixed_sas_in_one_decap_burst() {
    let a = pair();
    let (mut op2, mut ip2) = sa_pair(
        suites()[5],
        Mode::Tunnel,
        "192.0.2.1",
        "192.0.2.2",
        false,
        false,
    );
    op2.spi = 0x2222;
    ip2.spi = 0x2222;
    ip2.tunnel_id = 9;
    let out2 = Sa::new(op2, Backend::Auto).unwrap();
    a.sad.insert(Arc::new(Sa::new(ip2, Backend::Auto).unwrap()));
    let (b1, _) = a.encap(&vec![inner(); 3]);
    let mut b2: Vec<HeapBuf> = (0..3).map(|_| HeapBuf::from_slice(&inner())).collect();
    let mut v = vec![Verdict::Pass; 3];
    encap_burst(&out2, &mut b2, &mut v, &a.drops);
    // Interleave A, B, A, B, A, B.
    let w: Vec<Vec<u8>> = b1
        .iter()
        .zip(&b2)
        .flat_map(|(x, y)| [x.data().to_vec(), y.data().to_vec()])
        .collect();
    let (b, r) = a.decap_bytes(&w);
    for (i, (b, r)) in b.iter().zip(&r).enumerate() {
        assert_eq!(r.verdict, Verdict::Pass);
        assert_eq!(r.tunnel_id, if i % 2 == 0 { 3 } else { 9 });
        assert_eq!(b.data(), &inner()[..]);
    }
}

/// Runs of one SPI (looked up once per run), an unknown SPI and a packet
/// that is not ESP inside them, and a burst longer than one chunk: every
/// packet gets its own verdict, in place.
#[test]
fn runs_of_one_spi_with_strangers_between() {
    let a = pair();
    let (b1, v) = a.encap(&vec![inner(); 70]);
    assert!(v.iter().all(|v| *v == Verdict::Pass));
    let mut w: Vec<Vec<u8>> = b1.iter().map(|b| b.data().to_vec()).collect();
    // Packet 2: another SPI (0x7777, installed nowhere).
    w[2][20..24].copy_from_slice(&0x7777u32.to_be_bytes());
    // Packet 3: cleartext. Packet 66 (second chunk): a replay of packet 65.
    w[3] = inner();
    w[66] = w[65].clone();
    let (b, r) = a.decap_bytes(&w);
    for (i, (b, r)) in b.iter().zip(&r).enumerate() {
        match i {
            2 => {
                a.expect_drop(r, DropReason::UnknownSpi);
                assert_eq!((r.kind, r.spi, r.tunnel_id), (PacketKind::Esp, 0x7777, 0));
            }
            3 => assert_eq!((r.verdict, r.kind), (Verdict::Pass, PacketKind::NotEsp)),
            66 => a.expect_drop(r, DropReason::Replayed),
            _ => {
                assert_eq!(
                    (r.verdict, r.kind),
                    (Verdict::Pass, PacketKind::Inner4),
                    "packet {i}"
                );
                assert_eq!(r.tunnel_id, 3);
                assert_eq!(b.data(), &inner()[..]);
            }
        }
    }
    assert_eq!(a.drops.get(DropReason::UnknownSpi), 1);
    assert_eq!(a.drops.get(DropReason::Replayed), 1);
    assert_eq!(a.drops.total(), 2);
}
