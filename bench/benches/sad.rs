//! SAD lookup by SPI at 100k and 1M SAs, bursts of 32 random SPIs of
//! installed SAs, idle and while another thread replaces SAs continuously,
//! against `dpdk-test-sad` (librte_ipsec SAD, SPI-only rules `-d 100/0/0`,
//! burst 32) run by this benchmark in the same sitting. DPDK reports cycles
//! per lookup and lookups/s; its TSC frequency is their product, which we use
//! to express our nanoseconds in the same cycles.
//!
//! Run: `cargo bench -p espresso-bench --bench sad`. `SAD_BENCH_MD=path`
//! writes the markdown table to a file. Without dpdk-test-sad installed only
//! our figures are printed.

mod esp_util;

use std::hint::black_box;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{DfMode, Direction, Lifetime, Mode, Sa, SaParams, Sad, SadOp};
use esp_util::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BURST: usize = 32;

fn params(spi: u32) -> SaParams {
    let (l, r): (IpAddr, IpAddr) = ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap());
    SaParams {
        spi,
        direction: Direction::Inbound,
        mode: Mode::Tunnel,
        suite: Suite {
            encr: EncrAlg::AesGcm128,
            integ: IntegAlg::None,
        },
        enc_key: Key::new(vec![7; 20]),
        auth_key: Key::default(),
        esn: false,
        replay_window: 64,
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

/// dpdk-test-sad: (cycles per lookup, lookups per second).
fn dpdk_sad(n: usize) -> Option<(f64, f64)> {
    let out = Command::new("dpdk-test-sad")
        .args([
            "--no-huge",
            "-m",
            "2048",
            "--no-pci",
            "--no-shconf",
            "-l",
            "0",
            "--",
        ])
        .args([
            "-n",
            &n.to_string(),
            "-l",
            "1000000",
            "-b",
            "32",
            "-d",
            "100/0/0",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Average lookup cycles"))?;
    // "Average lookup cycles 138.69, lookups/sec: 16583528.39"
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && *s != ".")
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(2000))
        .sample_size(SAMPLES)
        .configure_from_args();
    let mut rows = Vec::new();
    for n in [100_000usize, 1_000_000] {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let mut spis: Vec<u32> = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::with_capacity(n);
        while spis.len() < n {
            let s: u32 = rng.random_range(256..u32::MAX);
            if seen.insert(s) {
                spis.push(s);
            }
        }
        drop(seen);
        let sad = Arc::new(Sad::with_capacity(n));
        for chunk in spis.chunks(100_000) {
            sad.apply(chunk.iter().map(|&s| {
                SadOp::Insert(Arc::new(Sa::new(params(s), Backend::RustCrypto).unwrap()))
            }));
        }
        // 1M lookups in random order, taken in bursts of 32.
        let order: Vec<u32> = (0..1_000_000)
            .map(|_| spis[rng.random_range(0..n)])
            .collect();
        let mut g = c.benchmark_group(format!("sad/{n}"));
        for updating in [false, true] {
            let stop = Arc::new(AtomicBool::new(false));
            let updates = Arc::new(AtomicU64::new(0));
            let updater = updating.then(|| {
                let (sad, stop, updates) = (sad.clone(), stop.clone(), updates.clone());
                let pool: Vec<Arc<Sa>> = spis
                    .iter()
                    .take(1000)
                    .map(|&s| Arc::new(Sa::new(params(s), Backend::RustCrypto).unwrap()))
                    .collect();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        // Rekey-style replace of an installed SPI.
                        sad.insert(pool[i % pool.len()].clone());
                        updates.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            });
            let name = if updating {
                "lookup-while-updating"
            } else {
                "lookup"
            };
            let id = format!("sad/{n}/{name}");
            let t0 = Instant::now();
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut pos = 0usize;
                    let mut found = 0usize;
                    let t = Instant::now();
                    for _ in 0..iters {
                        let tab = sad.load();
                        if pos + BURST > order.len() {
                            pos = 0;
                        }
                        for &s in &order[pos..pos + BURST] {
                            found += tab.get(black_box(s)).is_some() as usize;
                        }
                        pos += BURST;
                    }
                    let e = t.elapsed();
                    assert_eq!(
                        found,
                        iters as usize * BURST,
                        "lookup missed an installed SA"
                    );
                    record(&id, iters * BURST as u64, e);
                    e
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(u) = updater {
                u.join().unwrap();
                let rate = updates.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
                println!("sad/{n}: updater replaced {rate:.0} SAs/s during the measurement");
            }
        }
        g.finish();
        let dpdk = dpdk_sad(n);
        rows.push((n, dpdk));
    }
    c.final_summary();
    let mut md = String::from(
        "| SAs | ours ns/lookup | ours cycles | while updating ns | slowdown | dpdk-test-sad cycles | ratio (cycles) |\n|---|---|---|---|---|---|---|\n",
    );
    for (n, dpdk) in rows {
        let (Some(idle), Some(upd)) = (
            median_ns(&format!("sad/{n}/lookup")),
            median_ns(&format!("sad/{n}/lookup-while-updating")),
        ) else {
            continue;
        };
        let slow = upd / idle - 1.0;
        match dpdk {
            Some((cyc, lps)) => {
                let hz = cyc * lps;
                let ours_c = idle * hz / 1e9;
                let upd_c = upd * hz / 1e9;
                println!("sad/{n}/lookup: ours {ours_c:.1} cycles ({idle:.2} ns), reference {cyc:.1} cycles (dpdk-test-sad), ratio {:.2}", ours_c / cyc);
                println!("sad/{n}/lookup-while-updating: ours {upd_c:.1} cycles ({upd:.2} ns), reference {cyc:.1} cycles (dpdk-test-sad, idle), ratio {:.2}; slowdown vs idle {:.1} %", upd_c / cyc, slow * 100.0);
                md += &format!(
                    "| {n} | {idle:.2} | {ours_c:.1} | {upd:.2} | {:.1} % | {cyc:.1} | {:.2} |\n",
                    slow * 100.0,
                    ours_c / cyc
                );
            }
            None => {
                println!("sad/{n}/lookup: ours {idle:.2} ns, reference unavailable (dpdk-test-sad not installed)");
                md += &format!(
                    "| {n} | {idle:.2} | - | {upd:.2} | {:.1} % | - | - |\n",
                    slow * 100.0
                );
            }
        }
    }
    println!("\n{md}");
    write_md("SAD_BENCH_MD", &md);
}
