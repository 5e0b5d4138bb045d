//! ESP encap -> decap round trips through the burst API for every suite,
//! mode, address family, NAT-T and ESN, and the header details on the wire.

mod esp_common;

use std::sync::Arc;

use dataplane::crypto::Backend;
use dataplane::drop::{DropReason, Verdict};
use dataplane::esp::{decap_burst, encap_burst, DecapResult, PacketKind};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{DfMode, DropCounters, Mode, Sa, Sad};
use dataplane::wire::{EspPacket, Ipv4Packet, Ipv6Packet, UdpPacket};
use esp_common::*;

fn run(
    suite: dataplane::crypto::Suite,
    mode: Mode,
    outer: (&str, &str),
    inner: Vec<Vec<u8>>,
    esn: bool,
    natt: bool,
) {
    let (op, ip) = sa_pair(suite, mode, outer.0, outer.1, esn, natt);
    let out = Sa::new(op, Backend::Auto).unwrap();
    let sad = Sad::with_capacity(16);
    sad.insert(Arc::new(Sa::new(ip, Backend::Auto).unwrap()));
    let drops = DropCounters::default();
    let mut bufs: Vec<HeapBuf> = inner.iter().map(|p| HeapBuf::from_slice(p)).collect();
    let mut v = vec![Verdict::Drop(DropReason::Malformed); bufs.len()];
    encap_burst(&out, &mut bufs, &mut v, &drops);
    assert!(
        v.iter().all(|v| *v == Verdict::Pass),
        "{suite:?} {mode:?} {v:?}"
    );
    for (b, orig) in bufs.iter().zip(&inner) {
        let d = b.data();
        // Outer header checks.
        let esp_off = if d[0] >> 4 == 4 {
            let ip4 = Ipv4Packet::new_checked(d).unwrap();
            assert!(ip4.verify_checksum());
            assert_eq!(usize::from(ip4.total_len()), d.len());
            if mode == Mode::Tunnel {
                assert_eq!(ip4.ttl(), 64);
                assert_eq!(ip4.src().to_string(), outer.0);
            }
            ip4.header_len()
        } else {
            let ip6 = Ipv6Packet::new_checked(d).unwrap();
            assert_eq!(ip6.total_len(), d.len());
            40
        };
        let esp_off = if natt {
            let u = UdpPacket::new_checked(&d[esp_off..]).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (4500, 4500));
            if d[0] >> 4 == 4 {
                assert_eq!(u.checksum(), 0);
            } else {
                let ip6 = Ipv6Packet::new_checked(d).unwrap();
                assert!(u.verify_checksum_v6(ip6.src(), ip6.dst()));
            }
            esp_off + 8
        } else {
            esp_off
        };
        let e = EspPacket::new_checked(&d[esp_off..]).unwrap();
        assert_eq!(e.spi(), 0x1000_1001);
        assert_ne!(d.len(), orig.len());
    }
    let t = sad.load();
    let mut res = vec![DecapResult::default(); bufs.len()];
    decap_burst(&t, &mut bufs, &mut res, &drops);
    for ((b, r), orig) in bufs.iter().zip(&res).zip(&inner) {
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{suite:?} {mode:?} esn={esn} natt={natt}"
        );
        assert_eq!(r.tunnel_id, 3);
        assert_eq!(b.data(), &orig[..], "{suite:?} {mode:?}");
        assert_eq!(
            r.kind,
            if orig[0] >> 4 == 4 {
                PacketKind::Inner4
            } else {
                PacketKind::Inner6
            }
        );
    }
    assert_eq!(drops.total(), 0);
    // Replaying the same packets is refused.
}

fn inner_set(v6: bool) -> Vec<Vec<u8>> {
    (0..5)
        .map(|i| {
            let payload: Vec<u8> = (0..(i * 37 + 1)).map(|x| x as u8).collect();
            if v6 {
                udp6("2001:db8:1::10", "2001:db8:2::10", (i as u8) << 2, &payload)
            } else {
                udp4(
                    [10, 1, 0, 10],
                    [10, 2, 0, 10],
                    (i as u8) << 2,
                    i % 2 == 0,
                    &payload,
                )
            }
        })
        .collect()
}

#[test]
fn every_suite_tunnel_all_four_families() {
    for suite in suites() {
        for outer in [("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")] {
            for v6 in [false, true] {
                run(suite, Mode::Tunnel, outer, inner_set(v6), false, false);
            }
        }
    }
}

#[test]
fn every_suite_transport_both_families() {
    for suite in suites() {
        run(
            suite,
            Mode::Transport,
            ("10.1.0.10", "10.2.0.10"),
            inner_set(false),
            false,
            false,
        );
        run(
            suite,
            Mode::Transport,
            ("2001:db8:1::10", "2001:db8:2::10"),
            inner_set(true),
            false,
            false,
        );
    }
}

#[test]
fn natt_and_esn_combinations() {
    for suite in suites() {
        for (esn, natt) in [(true, false), (false, true), (true, true)] {
            run(
                suite,
                Mode::Tunnel,
                ("192.0.2.1", "192.0.2.2"),
                inner_set(false),
                esn,
                natt,
            );
            run(
                suite,
                Mode::Tunnel,
                ("2001:db8::1", "2001:db8::2"),
                inner_set(true),
                esn,
                natt,
            );
            run(
                suite,
                Mode::Transport,
                ("10.1.0.10", "10.2.0.10"),
                inner_set(false),
                esn,
                natt,
            );
            run(
                suite,
                Mode::Transport,
                ("2001:db8:1::10", "2001:db8:2::10"),
                inner_set(true),
                esn,
                natt,
            );
        }
    }
}

#[test]
fn dscp_ecn_df_on_entry_and_exit() {
    let suite = suites()[0];
    for (df_mode, inner_df, want_df) in [
        (DfMode::Copy, true, true),
        (DfMode::Copy, false, false),
        (DfMode::Set, false, true),
        (DfMode::Clear, true, false),
    ] {
        let (mut op, _) = sa_pair(suite, Mode::Tunnel, "192.0.2.1", "192.0.2.2", false, false);
        op.df = df_mode;
        let sa = Sa::new(op, Backend::Auto).unwrap();
        // DSCP 46 (EF), ECN CE: the outer gets EF and CE (RFC 6040 normal mode copies CE).
        let mut b = vec![HeapBuf::from_slice(&udp4(
            [10, 1, 0, 1],
            [10, 2, 0, 1],
            (46 << 2) | 3,
            inner_df,
            b"x",
        ))];
        let mut v = [Verdict::Pass];
        encap_burst(&sa, &mut b, &mut v, &DropCounters::default());
        let ip = Ipv4Packet::new_checked(b[0].data()).unwrap();
        assert_eq!(ip.df(), want_df, "{df_mode:?}");
        assert_eq!(ip.dscp(), 46);
        assert_eq!(ip.ecn(), 3);
    }
}

#[test]
fn ecn_exit_marks_ce_and_drops_ce_on_not_ect() {
    let suite = suites()[0];
    let (op, ip) = sa_pair(suite, Mode::Tunnel, "192.0.2.1", "192.0.2.2", false, false);
    let out = Sa::new(op, Backend::Auto).unwrap();
    let sad = Sad::with_capacity(4);
    sad.insert(Arc::new(Sa::new(ip, Backend::Auto).unwrap()));
    let drops = DropCounters::default();
    // inner ECT(0) and inner not-ECT; then a router marks both outer headers CE.
    let mut b = vec![
        HeapBuf::from_slice(&udp4([10, 1, 0, 1], [10, 2, 0, 1], 2, false, b"a")),
        HeapBuf::from_slice(&udp4([10, 1, 0, 1], [10, 2, 0, 1], 0, false, b"b")),
    ];
    let mut v = [Verdict::Pass; 2];
    encap_burst(&out, &mut b, &mut v, &drops);
    for p in b.iter_mut() {
        let mut ip = Ipv4Packet::new_checked(p.data_mut()).unwrap();
        ip.set_ecn(3);
        ip.fill_checksum();
    }
    let mut r = [DecapResult::default(); 2];
    decap_burst(&sad.load(), &mut b, &mut r, &drops);
    assert_eq!(r[0].verdict, Verdict::Pass);
    let inner = Ipv4Packet::new_checked(b[0].data()).unwrap();
    assert_eq!(inner.ecn(), 3);
    assert!(inner.verify_checksum());
    assert_eq!(r[1].verdict, Verdict::Drop(DropReason::EcnCeNotEct));
    assert_eq!(drops.get(DropReason::EcnCeNotEct), 1);
}

/// Transport mode behind a NAT (RFC 3948 §3.1.2): the peer made the UDP
/// checksum over its private address, a NAT rewrote the outer source, and
/// after decap the checksum must verify over the address the packet carries.
#[test]
fn natt_transport_checksum_fixed_after_nat() {
    use std::net::Ipv4Addr;
    let private = Ipv4Addr::new(10, 1, 0, 10);
    let public = Ipv4Addr::new(203, 0, 113, 7);
    let dst = Ipv4Addr::new(10, 2, 0, 10);
    for suite in suites() {
        let (op, ip) = sa_pair(
            suite,
            Mode::Transport,
            "10.1.0.10",
            "10.2.0.10",
            false,
            true,
        );
        let out = Sa::new(op, Backend::Auto).unwrap();
        let sad = Sad::with_capacity(4);
        sad.insert(Arc::new(Sa::new(ip, Backend::Auto).unwrap()));
        let drops = DropCounters::default();
        let mut pkt = udp4(
            private.octets(),
            dst.octets(),
            0,
            false,
            b"hello through a NAT",
        );
        UdpPacket::new_checked(&mut pkt[20..])
            .unwrap()
            .fill_checksum_v4(private, dst);
        let mut b = vec![HeapBuf::from_slice(&pkt)];
        let mut v = [Verdict::Pass];
        encap_burst(&out, &mut b, &mut v, &drops);
        assert_eq!(v[0], Verdict::Pass);
        // The NAT: outer source rewritten (UDP 4500 checksum is 0 over IPv4).
        {
            let d = b[0].data_mut();
            d[12..16].copy_from_slice(&public.octets());
            let mut ip4 = Ipv4Packet::new_checked(&mut d[..]).unwrap();
            ip4.fill_checksum();
        }
        let mut r = [DecapResult::default()];
        decap_burst(&sad.load(), &mut b, &mut r, &drops);
        assert_eq!(r[0].verdict, Verdict::Pass, "{suite:?}");
        let d = b[0].data();
        let ip4 = Ipv4Packet::new_checked(d).unwrap();
        assert_eq!(ip4.src(), public);
        assert!(ip4.verify_checksum());
        let udp = UdpPacket::new_checked(&d[20..]).unwrap();
        assert!(
            udp.verify_checksum_v4(public, dst),
            "{suite:?}: UDP checksum not fixed up after NAT-T transport decap"
        );
        assert_eq!(&d[28..], b"hello through a NAT");
    }
}
