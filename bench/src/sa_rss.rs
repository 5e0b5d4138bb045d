//! Resident memory per SA under the process's allocator (bins `sa_rss`,
//! `sa_rss_mimalloc`): builds and installs
//! 20,000 SAs of one kind in a `Sad` and prints the growth of `VmRSS` per SA,
//! as the sad bench's `--memory-rss` does (that binary counts allocations
//! and so runs on glibc's malloc only). `sa_rss` runs on glibc's malloc;
//! `sa_rss_mimalloc` is the same program with mimalloc as the global
//! allocator (what a size-class allocator changes for the 64-byte-aligned
//! `Arc<Sa>` block).
//!
//!   sa_rss SUITE KIND     SUITE: aes-gcm-128 | aes-cbc-128+sha256-128 |
//!                         chacha20-poly1305; KIND: in64 | in4096 | out

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{DfMode, Direction, Lifetime, Mode, Sa, SaParams, Sad, SadOp};

/// SAs built.
const SAS: u32 = 20_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn params(spi: u32, suite: Suite, window: u32, direction: Direction) -> SaParams {
    let (l, r): (IpAddr, IpAddr) = ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap());
    SaParams {
        spi,
        direction,
        mode: Mode::Tunnel,
        suite,
        enc_key: Key::new(vec![7; suite.encr.key_len()]),
        auth_key: Key::new(vec![9; suite.integ.key_len()]),
        esn: false,
        replay_window: window,
        local_addr: l,
        remote_addr: r,
        encap: None,
        selectors: vec![],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: false,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 1,
    }
}

/// Runs the measurement named by the command line (see the module docs).
pub fn run() {
    let start = rss_bytes();
    let args: Vec<String> = std::env::args().collect();
    let suite = match args.get(1).map(String::as_str) {
        Some("aes-gcm-128") => Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        },
        Some("aes-cbc-128+sha256-128") => Suite {
            encr: EncrAlg::AesCbc128,
            integ: IntegAlg::HmacSha256_128,
        },
        Some("chacha20-poly1305") => Suite {
            encr: EncrAlg::ChaCha20Poly1305,
            integ: IntegAlg::None,
        },
        _ => {
            eprintln!("usage: sa_rss aes-gcm-128|aes-cbc-128+sha256-128|chacha20-poly1305 in64|in4096|out");
            std::process::exit(2);
        }
    };
    let (dir, window) = match args.get(2).map(String::as_str) {
        Some("in64") => (Direction::Inbound, 64),
        Some("in4096") => (Direction::Inbound, 4096),
        Some("out") => (Direction::Outbound, 0),
        _ => {
            eprintln!("kind: in64|in4096|out");
            std::process::exit(2);
        }
    };
    // Warm up the library state and the allocator outside the count.
    drop(Sa::new(params(0x100, suite, window, dir), Backend::Auto).unwrap());
    let before = rss_bytes();
    let table = Sad::with_capacity(SAS as usize);
    for i in 0..SAS {
        let p = params(0x1000 + i, suite, window, dir);
        table.apply([SadOp::Insert(Arc::new(Sa::new(p, Backend::Auto).unwrap()))]);
    }
    let after = rss_bytes();
    println!(
        "sa_rss: resident {:.1} B per SA over {SAS} SAs; process resident at start {} kB, before the SAs {} kB",
        after.saturating_sub(before) as f64 / f64::from(SAS),
        start / 1024,
        before / 1024
    );
    std::hint::black_box(&table);
}
