//! Every wire view parser through its public constructor and accessors.
//!
//! Input: one selector byte, then the bytes to parse. Selector (mod 10):
//! 0 Ethernet frame dissected down to ESP/ICMP, 1 IP packet dissected,
//! 2 IPv4, 3 IPv6 (+ extension-header walk), 4 UDP, 5 ESP header + trailer,
//! 6 ICMP/ICMPv6, 7 NAT-T demux, 8 flow key, 9 checksum helpers.
//! Besides "never panics", each view checks properties: lengths agree,
//! setters round-trip through getters, filled checksums verify.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::sa::FlowKey;
use dataplane::wire::{
    checksum, classify_natt, ip_version, proto, EspPacket, EspTrailer, EthernetFrame, IcmpPacket,
    Ipv4Packet, Ipv6Packet, NattKind, UdpPacket, WireError, ESP_HEADER_LEN, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ICMP_HEADER_LEN, IPV6_HEADER_LEN, NATT_PORT, UDP_HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const A4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn a6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
}
fn b6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x20)
}

/// An error names a field with the value it had, or a length shortfall.
fn check_err(e: WireError) {
    match e {
        WireError::Truncated { need, have, .. } => assert!(need > have, "{e}"),
        WireError::Malformed { what, field, .. } => {
            assert!(!what.is_empty() && !field.is_empty())
        }
    }
    let _ = e.to_string();
    let _ = e.drop_reason();
}

fn ethernet(d: &[u8]) {
    match EthernetFrame::new_checked(d) {
        Ok(f) => {
            let _ = (f.dst(), f.src());
            assert_eq!(f.payload().len(), d.len() - 14);
            match f.ethertype() {
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => dissect_ip(f.payload()),
                _ => {}
            }
            let mut v = d.to_vec();
            let mut m = EthernetFrame::new_checked(&mut v[..]).unwrap();
            m.set_dst([1, 2, 3, 4, 5, 6]);
            m.set_src([7, 8, 9, 10, 11, 12]);
            m.set_ethertype(0x1234);
            m.payload_mut().fill(0);
            let f = EthernetFrame::new_checked(&v[..]).unwrap();
            assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
            assert_eq!(f.src(), [7, 8, 9, 10, 11, 12]);
            assert_eq!(f.ethertype(), 0x1234);
        }
        Err(e) => {
            assert!(d.len() < 14);
            check_err(e)
        }
    }
}

/// IP packet down to its upper layer, as a receiver would walk it.
fn dissect_ip(d: &[u8]) {
    let (l4_proto, l4, v6) = match ip_version(d) {
        Some(4) => match Ipv4Packet::new_checked(d) {
            Ok(ip) => (
                ip.protocol(),
                &d[ip.header_len()..usize::from(ip.total_len())],
                None,
            ),
            Err(e) => return check_err(e),
        },
        Some(6) => match Ipv6Packet::new_checked(d) {
            Ok(ip) => match ip.upper_layer() {
                Ok(ul) => {
                    assert!(ul.offset <= ip.total_len());
                    (
                        ul.proto,
                        &d[ul.offset..ip.total_len()],
                        Some((ip.src(), ip.dst())),
                    )
                }
                Err(e) => return check_err(e),
            },
            Err(e) => return check_err(e),
        },
        _ => return,
    };
    match l4_proto {
        proto::UDP => {
            if let Ok(u) = UdpPacket::new_checked(l4) {
                if u.dst_port() == NATT_PORT {
                    if let Ok(NattKind::Esp) = classify_natt(u.payload()) {
                        esp(u.payload());
                    }
                }
            }
        }
        proto::ESP => esp(l4),
        proto::ICMP | proto::ICMPV6 => {
            if let Ok(i) = IcmpPacket::new_checked(l4) {
                let _ = (i.msg_type(), i.code(), i.echo_ident(), i.echo_seq());
                match v6 {
                    Some((s, t)) => {
                        let _ = i.verify_checksum_v6(s, t);
                    }
                    None => {
                        let _ = i.verify_checksum_v4();
                    }
                }
            }
        }
        _ => {}
    }
    flow_key(d);
}

fn ipv4(d: &[u8]) {
    let ip = match Ipv4Packet::new_checked(d) {
        Ok(ip) => ip,
        Err(e) => return check_err(e),
    };
    let hl = ip.header_len();
    let tl = usize::from(ip.total_len());
    assert!(hl >= 20 && hl <= tl && tl <= d.len());
    assert_eq!(ip.payload().len(), tl - hl);
    assert_eq!(ip.dscp(), ip.tos() >> 2);
    assert_eq!(ip.ecn(), ip.tos() & 3);
    assert_eq!(ip.is_fragment(), ip.mf() || ip.frag_offset() != 0);
    let _ = (
        ip.ident(),
        ip.df(),
        ip.ttl(),
        ip.checksum(),
        ip.src(),
        ip.dst(),
    );
    let _ = ip.verify_checksum();

    let mut v = d.to_vec();
    let mut m = Ipv4Packet::new_checked(&mut v[..]).unwrap();
    let frag = (m.mf(), m.frag_offset());
    m.set_dscp(0x2e);
    m.set_ecn(1);
    m.set_ident(0xbeef);
    m.set_df(true);
    m.set_ttl(7);
    m.set_protocol(proto::ESP);
    m.set_src(A4);
    m.set_dst(B4);
    m.fill_checksum();
    assert_eq!((m.dscp(), m.ecn(), m.tos()), (0x2e, 1, 0xb9));
    assert_eq!((m.ident(), m.df(), m.ttl()), (0xbeef, true, 7));
    assert_eq!((m.protocol(), m.src(), m.dst()), (proto::ESP, A4, B4));
    assert_eq!((m.mf(), m.frag_offset()), frag, "set_df kept MF/offset");
    assert!(m.verify_checksum());
    assert_eq!(m.header_len(), hl);
    m.set_df(false);
    assert!(!m.df());
    m.payload_mut().fill(0xa5);
    m.set_tos(0xff);
    assert_eq!((m.dscp(), m.ecn()), (0x3f, 3));
    let tl2 = hl as u16;
    m.set_total_len(tl2);
    assert_eq!(m.payload().len(), 0);
}

fn ipv6(d: &[u8]) {
    let ip = match Ipv6Packet::new_checked(d) {
        Ok(ip) => ip,
        Err(e) => return check_err(e),
    };
    assert_eq!(ip.total_len(), 40 + usize::from(ip.payload_len()));
    assert!(ip.total_len() <= d.len());
    assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
    assert_eq!(ip.dscp(), ip.traffic_class() >> 2);
    assert_eq!(ip.ecn(), ip.traffic_class() & 3);
    let _ = (ip.flow_label(), ip.next_header(), ip.hop_limit());
    match ip.upper_layer() {
        Ok(ul) => {
            assert!(ul.offset >= IPV6_HEADER_LEN && ul.offset <= ip.total_len());
            assert!(ul.nh_field < ul.offset);
            assert_eq!(d[ul.nh_field], ul.proto);
        }
        Err(e) => check_err(e),
    }

    let mut v = d.to_vec();
    let mut m = Ipv6Packet::new_checked(&mut v[..]).unwrap();
    let flow = m.flow_label();
    m.set_traffic_class(0xb9);
    assert_eq!((m.traffic_class(), m.flow_label()), (0xb9, flow));
    m.set_dscp(0x0a);
    m.set_ecn(3);
    assert_eq!(m.traffic_class(), (0x0a << 2) | 3);
    m.set_version_tc_flow(0x12, 0xabcde);
    assert_eq!((m.traffic_class(), m.flow_label()), (0x12, 0xabcde));
    m.set_next_header(proto::UDP);
    m.set_hop_limit(1);
    m.set_src(a6());
    m.set_dst(b6());
    assert_eq!(
        (m.next_header(), m.hop_limit(), m.src(), m.dst()),
        (proto::UDP, 1, a6(), b6())
    );
    assert_eq!(v[0] >> 4, 6);
    let mut m = Ipv6Packet::new_checked(&mut v[..]).unwrap();
    m.payload_mut().fill(0);
    m.set_payload_len(0);
    assert_eq!(m.payload().len(), 0);
}

fn udp(d: &[u8]) {
    let u = match UdpPacket::new_checked(d) {
        Ok(u) => u,
        Err(e) => return check_err(e),
    };
    let ul = usize::from(u.len());
    assert!(ul >= UDP_HEADER_LEN && ul <= d.len());
    assert_eq!(u.payload().len(), ul - UDP_HEADER_LEN);
    assert_eq!(u.is_empty(), u.payload().is_empty());
    let _ = (u.src_port(), u.dst_port(), u.checksum());
    let _ = u.verify_checksum_v4(A4, B4);
    let _ = u.verify_checksum_v6(a6(), b6());
    let mut v = d.to_vec();
    let mut m = UdpPacket::new_checked(&mut v[..ul]).unwrap();
    m.set_src_port(4500);
    m.set_dst_port(500);
    m.fill_checksum_v4(A4, B4);
    assert!(m.verify_checksum_v4(A4, B4), "filled v4 checksum verifies");
    m.fill_checksum_v6(a6(), b6());
    assert!(
        m.verify_checksum_v6(a6(), b6()),
        "filled v6 checksum verifies"
    );
    assert_ne!(m.checksum(), 0, "IPv6 UDP checksum 0 is sent as 0xffff");
    assert_eq!((m.src_port(), m.dst_port()), (4500, 500));
    m.payload_mut().fill(1);
    m.set_checksum(0x1234);
    assert_eq!(m.checksum(), 0x1234);
    m.set_len(8);
    assert_eq!(m.len(), 8);
}

fn esp(d: &[u8]) {
    match EspPacket::new_checked(d) {
        Ok(e) => {
            let _ = (e.spi(), e.seq());
            assert_eq!(e.payload().len(), d.len() - ESP_HEADER_LEN);
            let mut v = d.to_vec();
            let mut m = EspPacket::new_checked(&mut v[..]).unwrap();
            m.set_spi(0x1001);
            m.set_seq(u32::MAX);
            m.payload_mut().fill(0);
            assert_eq!((m.spi(), m.seq()), (0x1001, u32::MAX));
        }
        Err(e) => {
            assert!(d.len() < ESP_HEADER_LEN);
            check_err(e)
        }
    }
    trailer(d);
}

fn trailer(d: &[u8]) {
    let independent = espresso_fuzz::trailer_ok(d);
    match EspTrailer::parse(d) {
        Ok(t) => {
            assert_eq!(t.payload_len + usize::from(t.pad_len) + 2, d.len());
            assert_eq!(t.next_header, d[d.len() - 1]);
            assert_eq!(
                independent,
                Some((t.payload_len, t.next_header)),
                "engine and RFC 4303 check agree"
            );
        }
        Err(e) => {
            assert_eq!(independent, None, "engine rejected a valid trailer: {e}");
            check_err(e)
        }
    }
    // write() then parse() round-trips for every length it accepts.
    let mut v = d.to_vec();
    let nh = d.first().copied().unwrap_or(4);
    match EspTrailer::write(&mut v, nh) {
        Ok(()) => {
            let t = EspTrailer::parse(&v).expect("written trailer parses");
            assert_eq!((t.payload_len, t.next_header), (0, nh));
            assert_eq!(usize::from(t.pad_len), d.len() - 2);
        }
        Err(e) => {
            assert!(d.len() < 2 || d.len() > 257);
            check_err(e)
        }
    }
    for align in [4usize, 8, 16] {
        let pl = EspTrailer::pad_len_for(d.len(), align);
        assert!(pl < align && (d.len() + pl + 2).is_multiple_of(align));
    }
}

fn icmp(d: &[u8]) {
    let i = match IcmpPacket::new_checked(d) {
        Ok(i) => i,
        Err(e) => return check_err(e),
    };
    assert_eq!(i.data().len(), d.len() - ICMP_HEADER_LEN);
    assert_eq!(
        i.rest_of_header(),
        (u32::from(i.echo_ident()) << 16) | u32::from(i.echo_seq())
    );
    let _ = (i.msg_type(), i.code(), i.checksum());
    let mut v = d.to_vec();
    let mut m = IcmpPacket::new_checked(&mut v[..]).unwrap();
    m.set_msg_type(8);
    m.set_code(0);
    m.set_rest_of_header(0x4242_0001);
    m.fill_checksum_v4();
    assert!(m.verify_checksum_v4(), "filled ICMP checksum verifies");
    m.fill_checksum_v6(a6(), b6());
    assert!(
        m.verify_checksum_v6(a6(), b6()),
        "filled ICMPv6 checksum verifies"
    );
    assert_eq!((m.msg_type(), m.echo_ident(), m.echo_seq()), (8, 0x4242, 1));
    m.data_mut().fill(0);
    m.set_checksum(7);
    assert_eq!(m.checksum(), 7);
}

fn natt(d: &[u8]) {
    match classify_natt(d) {
        Ok(NattKind::Keepalive) => assert_eq!(d, [0xff]),
        Ok(NattKind::Ike) => assert!(d.len() >= 4 && d[..4] == [0, 0, 0, 0]),
        Ok(NattKind::Esp) => {
            assert!(d.len() >= ESP_HEADER_LEN && d[..4] != [0, 0, 0, 0]);
            esp(d);
        }
        Err(e) => check_err(e),
    }
}

fn flow_key(d: &[u8]) {
    match FlowKey::from_ip(d) {
        Ok(k) => {
            let _ = (k.src_addr(), k.dst_addr());
            assert_eq!(k.src_addr().is_ipv6(), d[0] >> 4 == 6);
            if !k.has_ports {
                assert_eq!((k.sport, k.dport), (0, 0));
            }
        }
        Err(e) => check_err(e),
    }
}

fn checksums(d: &[u8]) {
    // The one's-complement sum does not depend on how the data is split at
    // even offsets, and a buffer carrying its own checksum sums to 0xffff.
    let whole = checksum::fold(checksum::sum(d));
    let mid = (d.len() / 2) & !1;
    let split = checksum::fold(checksum::sum(&d[..mid]) + checksum::sum(&d[mid..]));
    assert_eq!(whole, split);
    let mut v = d.to_vec();
    if v.len() >= 2 {
        v[0] = 0;
        v[1] = 0;
        let c = checksum::checksum(&v);
        v[..2].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum::fold(checksum::sum(&v)), 0xffff);
        // RFC 1624 incremental update agrees with a recomputation.
        if v.len() >= 4 {
            let old = u16::from_be_bytes([v[2], v[3]]);
            let new = old.rotate_left(3) ^ 0x5a5a;
            let upd = checksum::update16(c, old, new);
            v[2..4].copy_from_slice(&new.to_be_bytes());
            v[0] = 0;
            v[1] = 0;
            let full = checksum::checksum(&v);
            // 0x0000 and 0xffff are the same one's-complement value.
            assert!(
                upd == full || (upd | full == 0xffff && upd & full == 0),
                "update16 {upd:#x} vs recomputed {full:#x}"
            );
        }
    }
    let _ = checksum::pseudo_v4(A4, B4, proto::UDP, d.len() as u32);
    let _ = checksum::pseudo_v6(a6(), b6(), proto::UDP, d.len() as u32);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, d)) = data.split_first() else {
        return;
    };
    match sel % 10 {
        0 => ethernet(d),
        1 => dissect_ip(d),
        2 => ipv4(d),
        3 => ipv6(d),
        4 => udp(d),
        5 => esp(d),
        6 => icmp(d),
        7 => natt(d),
        8 => flow_key(d),
        _ => checksums(d),
    }
});
