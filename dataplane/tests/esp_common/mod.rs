//! Helpers shared by the ESP integration tests: SA parameters for every
//! suite, inner packet builders.
#![allow(dead_code)]

use std::net::IpAddr;

use dataplane::crypto::{EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{
    DfMode, Direction, Lifetime, Mode, PortRange, SaParams, TrafficSelector, UdpEncap,
    DEFAULT_REPLAY_WINDOW,
};
use dataplane::wire::checksum;

/// Every non-legacy suite.
pub fn suites() -> Vec<Suite> {
    let mut v = vec![
        Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        },
        Suite {
            encr: EncrAlg::AesGcm256,
            integ: IntegAlg::None,
        },
        Suite {
            encr: EncrAlg::ChaCha20Poly1305,
            integ: IntegAlg::None,
        },
    ];
    for encr in [EncrAlg::AesCbc128, EncrAlg::AesCbc256, EncrAlg::Null] {
        for integ in [
            IntegAlg::HmacSha1_96,
            IntegAlg::HmacSha256_128,
            IntegAlg::HmacSha384_192,
            IntegAlg::HmacSha512_256,
        ] {
            v.push(Suite { encr, integ });
        }
    }
    v
}

pub fn key(len: usize, seed: u8) -> Key {
    Key::new(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect(),
    )
}

/// Outbound and inbound parameters of one SA (same keys, SPI).
pub fn sa_pair(
    suite: Suite,
    mode: Mode,
    local: &str,
    remote: &str,
    esn: bool,
    natt: bool,
) -> (SaParams, SaParams) {
    let la: IpAddr = local.parse().unwrap();
    let ra: IpAddr = remote.parse().unwrap();
    let any: ipnet::IpNet = if la.is_ipv4() {
        "0.0.0.0/0".parse().unwrap()
    } else {
        "::/0".parse().unwrap()
    };
    let any_other: ipnet::IpNet = if la.is_ipv4() {
        "::/0".parse().unwrap()
    } else {
        "0.0.0.0/0".parse().unwrap()
    };
    let sel = |l: ipnet::IpNet| TrafficSelector {
        local: l,
        remote: l,
        proto: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    };
    let out = SaParams {
        spi: 0x1000_1001,
        direction: Direction::Outbound,
        mode,
        suite,
        enc_key: key(suite.encr.key_len(), 7),
        auth_key: key(suite.integ.key_len(), 99),
        esn,
        replay_window: DEFAULT_REPLAY_WINDOW,
        local_addr: la,
        remote_addr: ra,
        encap: natt.then_some(UdpEncap {
            local_port: 4500,
            remote_port: 4500,
        }),
        selectors: vec![sel(any), sel(any_other)],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: true,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 3,
    };
    let mut inb = out.clone();
    inb.direction = Direction::Inbound;
    inb.local_addr = ra;
    inb.remote_addr = la;
    (out, inb)
}

/// An IPv4 UDP packet with a valid checksum.
pub fn udp4(src: [u8; 4], dst: [u8; 4], tos: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let tl = 28 + payload.len();
    let mut b = vec![
        0x45,
        tos,
        (tl >> 8) as u8,
        tl as u8,
        0x12,
        0x34,
        if df { 0x40 } else { 0 },
        0,
        64,
        17,
        0,
        0,
    ];
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    let c = checksum::checksum(&b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let ul = 8 + payload.len();
    b.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, (ul >> 8) as u8, ul as u8, 0, 0]);
    b.extend_from_slice(payload);
    b
}

/// An IPv6 UDP packet.
pub fn udp6(src: &str, dst: &str, tc: u8, payload: &[u8]) -> Vec<u8> {
    let s: std::net::Ipv6Addr = src.parse().unwrap();
    let d: std::net::Ipv6Addr = dst.parse().unwrap();
    let pl = 8 + payload.len();
    let mut b = vec![
        0x60 | (tc >> 4),
        tc << 4,
        0,
        0,
        (pl >> 8) as u8,
        pl as u8,
        17,
        64,
    ];
    b.extend_from_slice(&s.octets());
    b.extend_from_slice(&d.octets());
    b.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, (pl >> 8) as u8, pl as u8, 0, 0]);
    b.extend_from_slice(payload);
    b
}

/// IPv4 192.0.2.1 -> 192.0.2.2, protocol ESP, around `esp`.
pub fn outer4(esp: &[u8]) -> Vec<u8> {
    let tl = 20 + esp.len();
    let mut p = vec![
        0x45,
        0,
        (tl >> 8) as u8,
        tl as u8,
        0,
        1,
        0,
        0,
        64,
        50,
        0,
        0,
        192,
        0,
        2,
        1,
        192,
        0,
        2,
        2,
    ];
    let c = checksum::checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(esp);
    p
}
