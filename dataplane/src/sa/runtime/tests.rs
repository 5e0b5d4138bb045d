use super::*;
use crate::crypto::{EncrAlg, IntegAlg, Key};
use crate::sa::{DfMode, Lifetime};

fn params(local: &str, remote: &str, encap: Option<UdpEncap>) -> SaParams {
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    SaParams {
        spi: 0x1234,
        direction: Direction::Inbound,
        mode: Mode::Tunnel,
        suite,
        enc_key: Key::new(vec![7; suite.encr.key_len()]),
        auth_key: Key::new(vec![]),
        esn: false,
        replay_window: 64,
        local_addr: local.parse().unwrap(),
        remote_addr: remote.parse().unwrap(),
        encap,
        selectors: vec![],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: false,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 1,
    }
}

/// Soft and hard limits come back out of their ordered pairs.
#[test]
fn limits_order() {
    for (sb, hb, sp, hp) in [
        (10u64, 20u64, 5u64, 7u64),
        (20, 10, 7, 5),
        (u64::MAX, 100, 3, u64::MAX),
        (8, 8, 9, 9),
    ] {
        let (l, bits) = Limits::new(sb, hb, sp, hp);
        assert_eq!(l.soft_hard(bits), ((sb, hb), (sp, hp)));
        assert_eq!((l.first_bytes, l.first_packets), (sb.min(hb), sp.min(hp)));
    }
}

/// Every reason that has a slot in a direction has its own there, and
/// the six direction-specific ones have none in the other direction.
#[test]
fn drop_slots_per_direction() {
    for dir in [Direction::Inbound, Direction::Outbound] {
        let mut seen = [None; SA_DROP_SLOTS];
        let mut n = 0;
        for r in DropReason::ALL {
            if let Some(i) = sa_drop_slot(*r, dir) {
                assert!(seen[i].is_none(), "{r:?} and {:?} share slot {i}", seen[i]);
                seen[i] = Some(*r);
                n += 1;
            }
        }
        assert_eq!(n, SA_DROP_SLOTS, "{dir:?}");
    }
    use DropReason as D;
    for r in [D::Replayed, D::OutsideWindow, D::IcvMismatch] {
        assert!(sa_drop_slot(r, Direction::Outbound).is_none());
    }
    for r in [D::NoRoom, D::TooBig, D::SeqExhausted] {
        assert!(sa_drop_slot(r, Direction::Inbound).is_none());
    }
    // Counted on an SA and read back per direction.
    let mut p = params("192.0.2.1", "198.51.100.7", None);
    let inb = Sa::new(p.clone(), crate::crypto::Backend::Auto).unwrap();
    p.direction = Direction::Outbound;
    let out = Sa::new(p, crate::crypto::Backend::Auto).unwrap();
    inb.count_drop(D::Replayed);
    out.count_drop(D::NoRoom);
    out.count_drop(D::NoRoom);
    assert_eq!(inb.counters().drops(D::Replayed), 1);
    assert_eq!(inb.counters().drops(D::NoRoom), 0);
    assert_eq!(out.counters().drops(D::NoRoom), 2);
    assert_eq!(out.counters().drops(D::Replayed), 0);
    assert_eq!(out.counters().total_drops(), 2);
}

/// The addresses and ports status shows are read back from the outer
/// template; the destination check compares with its source.
#[test]
fn addresses_from_the_template() {
    let nat = Some(UdpEncap {
        local_port: 4500,
        remote_port: 31234,
    });
    for (l, r, e) in [
        ("192.0.2.1", "198.51.100.7", None),
        ("192.0.2.1", "198.51.100.7", nat),
        ("2001:db8::1", "2001:db8:ffff::2", None),
        ("2001:db8::1", "2001:db8:ffff::2", nat),
        ("0.0.0.0", "198.51.100.7", None),
        ("::", "2001:db8:ffff::2", nat),
    ] {
        let sa = Sa::new(params(l, r, e), crate::crypto::Backend::Auto).unwrap();
        assert_eq!(sa.local_addr().to_string(), l);
        assert_eq!(sa.remote_addr().to_string(), r);
        assert_eq!(sa.encap(), e);
        let v6 = sa.remote_addr().is_ipv6();
        // An outer header addressed to the local address, to another, and
        // of the other family.
        let mut pkt = [0u8; 40];
        let mut other = [0u8; 40];
        match sa.local_addr() {
            IpAddr::V4(a) => {
                pkt[16..20].copy_from_slice(&a.octets());
                other[16..20].copy_from_slice(&[203, 0, 113, 9]);
            }
            IpAddr::V6(a) => {
                pkt[24..40].copy_from_slice(&a.octets());
                other[24..40].copy_from_slice(&[0x20; 16]);
            }
        }
        let any = sa.local_addr().is_unspecified();
        assert!(sa.to_local(&pkt, v6));
        assert_eq!(sa.to_local(&other, v6), any);
        assert_eq!(sa.to_local(&pkt, !v6), any);
        assert_eq!(sa.to_local(&pkt[..10], v6), any);
    }
}

/// The IPv4 template's checksum base is folded to 16 bits: the header
/// encap writes must still carry a valid checksum (checked by summing
/// the finished header, for lengths and fields that carry).
#[test]
fn folded_checksum_base() {
    let sa = Sa::new(
        params("255.255.255.254", "255.255.255.253", None),
        crate::crypto::Backend::Auto,
    )
    .unwrap();
    let t = &sa.outer;
    for (len, ident, flags, tos) in [
        (20u64, 0u64, 0u64, 0u64),
        (1500, 0xffff, 0x4000, 0xff),
        (65535, 0x1234, 0, 3),
    ] {
        let mut h = [0u8; 20];
        h.copy_from_slice(&t.bytes[..20]);
        let mut ip = Ipv4Packet::new_unchecked(&mut h[..]);
        ip.set_total_len(len as u16);
        ip.set_ident(ident as u16);
        ip.set_flags_frag(flags as u16);
        ip.set_tos(tos as u8);
        let s = u64::from(t.csum_base()) + len + ident + flags + tos;
        ip.set_checksum(!checksum::fold(s));
        assert_eq!(checksum::checksum(&h), 0, "len {len} ident {ident}");
    }
}

/// The struct stays within four cache lines (it was seven, then five).
#[test]
fn struct_size() {
    assert!(
        std::mem::size_of::<Sa>() <= 256,
        "{}",
        std::mem::size_of::<Sa>()
    );
    let parts: usize = sa_struct_parts().iter().map(|(_, n)| n).sum();
    assert_eq!(parts, std::mem::size_of::<Sa>());
}
