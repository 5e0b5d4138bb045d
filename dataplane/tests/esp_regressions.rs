//! Regression tests for engine bugs found by the verification tooling: the
//! fuzz targets in `dataplane/fuzz/` and the published-vector tests
//! (`esp_vectors_engine.rs`). One test per finding, saying who found it.

use std::sync::Arc;

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{
    DfMode, Direction, DropCounters, Lifetime, Mode, PortRange, ReplayWindow, Sa, SaParams, Sad,
    TrafficSelector, UdpEncap,
};

fn params(dir: Direction, v6: bool, natt: bool) -> SaParams {
    let any = |n: &str| TrafficSelector {
        local: n.parse().unwrap(),
        remote: n.parse().unwrap(),
        proto: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    };
    let (l, r) = if v6 {
        ("2001:db8::1", "2001:db8::2")
    } else {
        ("192.0.2.1", "192.0.2.2")
    };
    SaParams {
        spi: 0x100d,
        direction: dir,
        mode: Mode::Transport,
        suite: Suite {
            encr: EncrAlg::AesGcm256,
            integ: IntegAlg::None,
        },
        enc_key: Key::new((0..36).collect()),
        auth_key: Key::default(),
        esn: false,
        replay_window: 64,
        local_addr: if dir == Direction::Outbound {
            l.parse().unwrap()
        } else {
            r.parse().unwrap()
        },
        remote_addr: if dir == Direction::Outbound {
            r.parse().unwrap()
        } else {
            l.parse().unwrap()
        },
        encap: natt.then_some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        }),
        selectors: vec![any("0.0.0.0/0"), any("::/0")],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: false,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 1,
    }
}

/// IPv6 packet 2001:db8::1 -> 2001:db8::2 with a Fragment header
/// (offset `off` in 8-byte units, M flag `more`) carrying UDP.
fn v6_fragment(off: u16, more: bool) -> Vec<u8> {
    let udp = [
        0x13, 0x88, 0x00, 0x50, 0x00, 0x0c, 0x00, 0x00, b'f', b'r', b'a', b'g',
    ];
    let frag_field = (off << 3) | u16::from(more);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((8 + udp.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[44, 64]);
    p.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(
        &"2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    p.extend_from_slice(&[17, 0]);
    p.extend_from_slice(&frag_field.to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

fn v4_fragment() -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 32, 0x12, 0x34, 0x20, 0x00, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p.extend_from_slice(&[
        0x13, 0x88, 0x00, 0x50, 0x00, 0x0c, 0x00, 0x00, b'f', b'r', b'a', b'g',
    ]);
    let c = dataplane::wire::checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// Found by fuzz target `encap`: transport mode encapsulated IPv6
/// fragments (IPv4 fragments were refused), so the receiver saw an ESP
/// packet behind a Fragment header and passed it on as "not ESP" (a
/// later fragment) or refused it. RFC 4303 §3.1.1: transport mode is
/// applied to whole IP datagrams only. IPv6 fragments must be refused
/// exactly as IPv4 ones are: `UnsupportedPayload`.
#[test]
fn encap_transport_refuses_ipv6_fragments_like_ipv4() {
    for natt in [false, true] {
        let sa = Sa::new(params(Direction::Outbound, false, natt), Backend::Auto).unwrap();
        let mut b = [HeapBuf::from_slice(&v4_fragment())];
        let mut v = [Verdict::Pass];
        encap_burst(&sa, &mut b, &mut v, &DropCounters::default());
        assert_eq!(v[0], Verdict::Drop(DropReason::UnsupportedPayload), "IPv4");

        let sa = Sa::new(params(Direction::Outbound, true, natt), Backend::Auto).unwrap();
        for (off, more) in [(0, true), (0x0f4f, false), (1, true)] {
            let mut b = [HeapBuf::from_slice(&v6_fragment(off, more))];
            let mut v = [Verdict::Pass];
            let drops = DropCounters::default();
            encap_burst(&sa, &mut b, &mut v, &drops);
            assert_eq!(
                v[0],
                Verdict::Drop(DropReason::UnsupportedPayload),
                "IPv6 fragment offset {off} M={more} natt={natt}"
            );
            assert_eq!(drops.get(DropReason::UnsupportedPayload), 1);
        }
    }
}

/// The same SA still carries whole IPv6 datagrams (with an extension
/// header that is not a Fragment header) both ways.
#[test]
fn encap_transport_ipv6_whole_datagram_round_trips() {
    let out = Sa::new(params(Direction::Outbound, true, true), Backend::Auto).unwrap();
    let mut inp = params(Direction::Inbound, true, true);
    inp.local_addr = "2001:db8::2".parse().unwrap();
    let sad = Sad::default();
    sad.insert(Arc::new(Sa::new(inp, Backend::Auto).unwrap()));
    // Destination options header (nh 60) then UDP.
    let mut p = v6_fragment(0, false);
    p[6] = 60;
    p[40] = 17;
    p[41] = 0;
    p[42..48].copy_from_slice(&[1, 4, 0, 0, 0, 0]);
    let mut b = [HeapBuf::from_slice(&p)];
    let mut v = [Verdict::Pass];
    encap_burst(&out, &mut b, &mut v, &DropCounters::default());
    assert_eq!(v[0], Verdict::Pass);
    let mut r = [DecapResult::default()];
    decap_burst(&sad.load(), &mut b, &mut r, &DropCounters::default());
    assert_eq!(
        (r[0].verdict, r[0].kind),
        (Verdict::Pass, PacketKind::Inner6)
    );
    assert_eq!(b[0].data(), &p[..]);
}

/// Found by `esp_vectors_engine.rs` (draft-mcgrew packets with ESN
/// 0x10101010:10101010 and 0xffffffff:ffffffff): a window started at a high
/// sequence number with `set_top` (as after a dataplane restart) refused the
/// next packet as `OutsideWindow`. Its slots were still empty (tag 0) and the
/// wrapping 32-bit tag comparison took tag 0 for a block newer than the
/// packet's once the packet's block number (seq >> 5, truncated to 32 bits)
/// was 2^31 or more.
#[test]
fn replay_window_accepts_high_sequence_numbers_after_set_top() {
    for size in [64u32, 4096, 65536] {
        for seq in [
            0x1010_1010_1010_1010u64,
            0xffff_ffff_ffff_ffff,
            0x8765_4321_0000_0000,
            (1u64 << 36) + 32,
            (1u64 << 36) - 1,
        ] {
            let w = ReplayWindow::new(size).unwrap();
            w.set_top(seq - 1);
            assert_eq!(w.check(seq), Ok(()), "size {size} seq {seq:#x}");
            assert_eq!(w.commit(seq), Ok(()), "size {size} seq {seq:#x}");
            assert_eq!(
                w.check(seq),
                Err(dataplane::sa::ReplayError::Replayed),
                "size {size} seq {seq:#x}"
            );
            // Older numbers inside the window are still accepted once.
            let older = seq - 5;
            assert_eq!(w.check_and_commit(older), Ok(()), "size {size} {older:#x}");
            assert_eq!(
                w.check_and_commit(older),
                Err(dataplane::sa::ReplayError::Replayed)
            );
        }
    }
}
