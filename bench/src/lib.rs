//! Shared helpers for the espresso benchmarks.

#![forbid(unsafe_code)]

pub mod hugetlb;

/// The SA and packets the ESP benchmarks share (`benches/esp.rs`,
/// `bin/esp_mops.rs`): one tunnel-mode SA pair 192.0.2.1 <-> 192.0.2.2 and
/// IPv4/UDP inner packets.
pub mod esp_fixture {
    use std::net::IpAddr;

    use dataplane::crypto::{Key, Suite};
    use dataplane::sa::{DfMode, Direction, Lifetime, Mode, SaParams};

    /// A deterministic key of `n` bytes.
    pub fn key(n: usize, x: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(29) ^ x).collect()
    }

    /// One direction of the benchmark SA (SPI 0x1000, window 4096).
    pub fn params(suite: Suite, direction: Direction) -> SaParams {
        let (l, r) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        let (local_addr, remote_addr) = if direction == Direction::Outbound {
            (l, r)
        } else {
            (r, l)
        };
        SaParams {
            spi: 0x1000,
            direction,
            mode: Mode::Tunnel,
            suite,
            enc_key: Key::new(key(suite.encr.key_len(), 1)),
            auth_key: Key::new(key(suite.integ.key_len(), 2)),
            esn: false,
            replay_window: 4096,
            local_addr,
            remote_addr,
            encap: None,
            selectors: vec![],
            lifetime: Lifetime::default(),
            df: DfMode::Copy,
            copy_dscp: true,
            initial_seq: 1,
            allow_legacy: false,
            tunnel_id: 1,
        }
    }

    /// An IPv4/UDP inner packet of `size` bytes (10.1.0.1 -> 10.2.0.1).
    pub fn inner(size: usize) -> Vec<u8> {
        let mut p = vec![0u8; size];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[10, 1, 0, 1]);
        p[16..20].copy_from_slice(&[10, 2, 0, 1]);
        let c = dataplane::wire::checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&5678u16.to_be_bytes());
        p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
        for (i, b) in p[28..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }
}
