//! `fn(&[u8])` entry points over fixed SAs for the property tests: decap of
//! arbitrary bytes, and encap + decap round trips. They never panic on any
//! input. (The cargo-fuzz targets have their own, in dataplane/fuzz/src.)

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::drop::Verdict;
use dataplane::esp::{decap_burst, encap_burst, DecapResult};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{
    DfMode, Direction, DropCounters, Lifetime, Mode, PortRange, Sa, SaParams, Sad, TrafficSelector,
};

/// SPIs of the fixed SAs the fuzz entry points use: AES-GCM-128 tunnel,
/// AES-CBC-128/HMAC-SHA-256 transport with ESN, ChaCha20-Poly1305 tunnel IPv6.
pub const FUZZ_SPIS: [u32; 3] = [0x1000_1001, 0x1000_1002, 0x1000_1003];

struct Env {
    inbound: Sad,
    outbound: Vec<Sa>,
}

fn params(spi: u32, dir: Direction, mode: Mode, suite: Suite, esn: bool, v6: bool) -> SaParams {
    let (a, b): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap_or(IpAddr::from([0u16; 8])),
            "2001:db8::2".parse().unwrap_or(IpAddr::from([0u16; 8])),
        )
    } else {
        (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]))
    };
    let (local_addr, remote_addr) = if dir == Direction::Outbound {
        (a, b)
    } else {
        (b, a)
    };
    let any = |v6: bool| {
        if v6 {
            ipnet::IpNet::new(IpAddr::from([0u16; 8]), 0)
        } else {
            ipnet::IpNet::new(IpAddr::from([0u8; 4]), 0)
        }
        .unwrap_or_default()
    };
    let sel = |n| TrafficSelector {
        local: n,
        remote: n,
        proto: 0,
        local_ports: PortRange::ANY,
        remote_ports: PortRange::ANY,
    };
    SaParams {
        spi,
        direction: dir,
        mode,
        suite,
        enc_key: Key::new((0..suite.encr.key_len() as u8).collect()),
        auth_key: Key::new((0..suite.integ.key_len() as u8).map(|x| x ^ 0x5a).collect()),
        esn,
        replay_window: 64,
        local_addr,
        remote_addr,
        encap: None,
        selectors: vec![sel(any(false)), sel(any(true))],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: true,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: spi,
    }
}

fn env() -> &'static Option<Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let gcm = Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        };
        let cbc = Suite {
            encr: EncrAlg::AesCbc128,
            integ: IntegAlg::HmacSha256_128,
        };
        let chacha = Suite {
            encr: EncrAlg::ChaCha20Poly1305,
            integ: IntegAlg::None,
        };
        let specs = [
            (FUZZ_SPIS[0], Mode::Tunnel, gcm, false, false),
            (FUZZ_SPIS[1], Mode::Transport, cbc, true, false),
            (FUZZ_SPIS[2], Mode::Tunnel, chacha, false, true),
        ];
        let inbound = Sad::with_capacity(8);
        let mut outbound = Vec::new();
        for (spi, mode, suite, esn, v6) in specs {
            let i = Sa::new(
                params(spi, Direction::Inbound, mode, suite, esn, v6),
                Backend::Auto,
            )
            .ok()?;
            inbound.insert(Arc::new(i));
            outbound.push(
                Sa::new(
                    params(spi, Direction::Outbound, mode, suite, esn, v6),
                    Backend::Auto,
                )
                .ok()?,
            );
        }
        Some(Env { inbound, outbound })
    })
}

/// Decapsulates `data` as a received packet (starting at the IP header)
/// against the fixed inbound SAs ([`FUZZ_SPIS`]). Returns the result.
pub fn decap_bytes(data: &[u8]) -> DecapResult {
    let mut r = [DecapResult::default()];
    if let Some(e) = env() {
        let mut b = [HeapBuf::from_slice(data)];
        decap_burst(&e.inbound.load(), &mut b, &mut r, &DropCounters::default());
    }
    r[0]
}

/// Encapsulates `data` (an inner packet) with each fixed outbound SA, then
/// decapsulates the result; a packet that encap accepts must come back
/// unchanged. Returns false if that round trip fails (a bug).
pub fn encap_round_trip(data: &[u8]) -> bool {
    let Some(e) = env() else { return true };
    for sa in &e.outbound {
        let mut b = [HeapBuf::from_slice(data)];
        let mut v = [Verdict::Pass];
        encap_burst(sa, &mut b, &mut v, &DropCounters::default());
        if v[0] != Verdict::Pass {
            continue;
        }
        let inbound = e.inbound.load();
        let Some(inb) = inbound.get(sa.spi()) else {
            return false;
        };
        inb.replay().reset();
        let mut r = [DecapResult::default()];
        decap_burst(&inbound, &mut b, &mut r, &DropCounters::default());
        let trimmed = trimmed_len(data);
        // Decap may drop on the inbound policy or RFC 6040 only if the packet
        // itself is odd; a Pass must give back the bytes.
        if r[0].verdict == Verdict::Pass {
            let want = &data[..trimmed.min(data.len())];
            let got = b[0].data();
            // Transport mode rewrites the IPv4 header checksum on the way out.
            let same = if sa.mode() == Mode::Transport && want.first().map(|b| b >> 4) == Some(4) {
                got.len() == want.len()
                    && got.len() >= 12
                    && got[..10] == want[..10]
                    && got[12..] == want[12..]
            } else {
                got == want
            };
            if !same {
                return false;
            }
        }
    }
    true
}

fn trimmed_len(data: &[u8]) -> usize {
    match data.first().map(|b| b >> 4) {
        Some(4) if data.len() >= 4 => usize::from(u16::from_be_bytes([data[2], data[3]])),
        Some(6) if data.len() >= 6 => 40 + usize::from(u16::from_be_bytes([data[4], data[5]])),
        _ => data.len(),
    }
}
