//! The drop-counter fold of the SAD (`Sad::fold_drops_step`, `sa/drops.rs`)
//! at 100k and 1M SAs: how long it holds the writer lock, and what it does
//! to installs/removals (blocked behind that lock) and to lookups.
//!
//! Folder modes, each what the management thread would do every
//! `FOLD_PERIOD` (100 ms):
//! - `none`: no fold at all (the reference);
//! - `full`: the fold as it was before fold14: every SA looked at, the
//!   whole table under one hold of the writer lock (reproduced with
//!   `request_fold_walk` + `fold_drops_step(usize::MAX)`: the same loop
//!   over the same SAs, each `Sa::fold_drops` finding nothing to fold);
//! - `gated`: the fold now, when no slot reached 2^31 (every period but the
//!   rare one after a crossing): one `fold_drops_step(FOLD_CHUNK)` that
//!   finds no request;
//! - `chunked`: the fold now when a walk is requested every period (the
//!   worst case: a slot of some SA reaching 2^31 every 100 ms): chunks of
//!   `FOLD_CHUNK` SAs, one per 1 ms tick as `process::manage` does.
//!
//! Parts, per N (one table, `Sad::with_capacity(N)`: 2 MB pages at both N):
//! 1. wall time of one fold call, main thread pinned to CPU 0: `full` (5
//!    times), `gated` (10,000 calls), `chunked` (3 walks: total, steps,
//!    the longest step = the longest lock hold);
//! 2. churn: an updater on CPU 1 applies 100 installs and 100 removals
//!    every 10 ms (10,000 of each per second, as the `sad` bench) while a
//!    folder on CPU 0 runs one mode; the wall time of every `Sad::apply`
//!    (p50, p99, max, and how many took over 1 ms), modes in rounds of
//!    rotating order;
//! 3. lookups: a reader on CPU 0 (bursts of 32 random installed SPIs, as
//!    the `sad` bench) while the folder runs one mode on CPU 1; ns per
//!    lookup (median of passes), per-round ratio to `none`.
//!
//! Wall-clock times on a shared 2-vCPU machine: the load average is
//! printed with each part.
//!
//! Run: `cargo bench -p espresso-bench --bench sad_fold [-- --quick]`
//! (`--quick`: 100k only, 2 rounds; default 3 rounds).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{
    DfMode, Direction, Lifetime, Mode, Sa, SaParams, Sad, SadOp, FOLD_CHUNK, FOLD_PERIOD,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BURST: usize = 32;
const LOOKUPS: usize = 1_000_000;

fn sa(spi: u32) -> Arc<Sa> {
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    let (l, r): (IpAddr, IpAddr) = ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap());
    let p = SaParams {
        spi,
        direction: Direction::Inbound,
        mode: Mode::Tunnel,
        suite,
        enc_key: Key::new(vec![7; suite.encr.key_len()]),
        auth_key: Key::new(vec![]),
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
    };
    Arc::new(Sa::new(p, Backend::Auto).unwrap())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn pin(cpu: usize) {
    if let Some(id) = core_affinity::get_core_ids().and_then(|v| v.into_iter().nth(cpu)) {
        core_affinity::set_for_current(id);
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s
}

fn median(v: &[f64]) -> f64 {
    sorted(v)[v.len() / 2]
}

fn pct(v: &[f64], p: f64) -> f64 {
    let s = sorted(v);
    s[((s.len() as f64 * p) as usize).min(s.len() - 1)]
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode2 {
    None,
    Full,
    Gated,
    Chunked,
}

const MODES: [Mode2; 4] = [Mode2::None, Mode2::Full, Mode2::Gated, Mode2::Chunked];

impl Mode2 {
    fn name(self) -> &'static str {
        match self {
            Mode2::None => "none",
            Mode2::Full => "full",
            Mode2::Gated => "gated",
            Mode2::Chunked => "chunked",
        }
    }
}

/// One period's fold in `mode`; the longest single lock hold (step), s.
fn fold_once(sad: &Sad, mode: Mode2, stop: &AtomicBool) -> f64 {
    let timed = |f: &mut dyn FnMut() -> bool| -> f64 {
        let mut worst = 0.0f64;
        loop {
            let t = Instant::now();
            let done = f();
            worst = worst.max(t.elapsed().as_secs_f64());
            if done || stop.load(Ordering::Relaxed) {
                return worst;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    match mode {
        Mode2::None => 0.0,
        Mode2::Full => {
            sad.request_fold_walk();
            timed(&mut || sad.fold_drops_step(usize::MAX).done)
        }
        Mode2::Gated => timed(&mut || sad.fold_drops_step(FOLD_CHUNK).done),
        Mode2::Chunked => {
            sad.request_fold_walk();
            timed(&mut || sad.fold_drops_step(FOLD_CHUNK).done)
        }
    }
}

/// A folder thread on `cpu` running `mode` every `FOLD_PERIOD` until stop.
fn folder(
    sad: Arc<Sad>,
    mode: Mode2,
    stop: Arc<AtomicBool>,
    cpu: usize,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        pin(cpu);
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            fold_once(&sad, mode, &stop);
            if let Some(d) = FOLD_PERIOD.checked_sub(t.elapsed()) {
                std::thread::sleep(d);
            }
        }
    })
}

fn run_lookups(sad: &Sad, order: &[u32]) -> f64 {
    let mut found = 0usize;
    let t = Instant::now();
    for spis in order.chunks_exact(BURST) {
        let tab = sad.load();
        let mut out = [None; BURST];
        tab.get_burst(black_box(spis), &mut out);
        found += out.iter().filter(|o| o.is_some()).count();
    }
    assert_eq!(found, order.len(), "lookup missed an installed SA");
    t.elapsed().as_secs_f64() * 1e9 / order.len() as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 2 } else { 3 };
    let sizes: &[usize] = if quick {
        &[100_000]
    } else {
        &[100_000, 1_000_000]
    };
    pin(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    println!("# CPU: {cpu}; FOLD_CHUNK {FOLD_CHUNK}, FOLD_PERIOD {FOLD_PERIOD:?}; {rounds} rounds");
    for &n in sizes {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut spis: Vec<u32> = Vec::with_capacity(n);
        while spis.len() < n {
            let s: u32 = rng.random_range(256..0x8000_0000);
            if seen.insert(s) {
                spis.push(s);
            }
        }
        drop(seen);
        let sad = Arc::new(Sad::with_capacity(n));
        for chunk in spis.chunks(100_000) {
            sad.apply(chunk.iter().map(|&s| SadOp::Insert(sa(s))));
        }
        // Whatever was requested before: walked now.
        sad.fold_drops();

        // 1. One fold call.
        let never = AtomicBool::new(false);
        let full: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                fold_once(&sad, Mode2::Full, &never);
                t.elapsed().as_secs_f64()
            })
            .collect();
        let gated: Vec<f64> = (0..10_000)
            .map(|_| {
                let t = Instant::now();
                let s = sad.fold_drops_step(FOLD_CHUNK);
                let e = t.elapsed().as_secs_f64();
                assert_eq!(s.visited, 0);
                e
            })
            .collect();
        let mut chunked = vec![];
        for _ in 0..3 {
            sad.request_fold_walk();
            let (mut steps, mut busy, mut worst) = (0, 0.0f64, 0.0f64);
            let t0 = Instant::now();
            loop {
                let t = Instant::now();
                let s = sad.fold_drops_step(FOLD_CHUNK);
                let e = t.elapsed().as_secs_f64();
                steps += 1;
                busy += e;
                worst = worst.max(e);
                if s.done {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            chunked.push((t0.elapsed().as_secs_f64(), steps, busy, worst));
        }
        println!(
            "sad-fold/{n}/full: one lock hold of {:.2} ms median [{:.2}-{:.2}] (every SA looked at; {:.1} % of the management thread at one per {FOLD_PERIOD:?}); load {}",
            1e3 * median(&full),
            1e3 * sorted(&full)[0],
            1e3 * sorted(&full)[full.len() - 1],
            100.0 * median(&full) / FOLD_PERIOD.as_secs_f64(),
            loadavg()
        );
        println!(
            "sad-fold/{n}/gated: {:.0} ns median, p99 {:.0} ns, max {:.1} us per call (no request: no SA looked at)",
            1e9 * median(&gated),
            1e9 * pct(&gated, 0.99),
            1e6 * sorted(&gated)[gated.len() - 1]
        );
        for (i, (wall, steps, busy, worst)) in chunked.iter().enumerate() {
            println!(
                "sad-fold/{n}/chunked walk {i}: {steps} steps over {:.1} ms wall (1 ms sleep between steps), {:.2} ms under the lock in all, longest step {:.3} ms",
                1e3 * wall,
                1e3 * busy,
                1e3 * worst
            );
        }

        // 2. Churn: apply latency per folder mode.
        let pool: Vec<Arc<Sa>> = (0..2000u32).map(|i| sa(0x8000_0000 + i)).collect();
        let mut lat: Vec<Vec<f64>> = vec![vec![]; MODES.len()];
        for round in 0..rounds {
            for k in 0..MODES.len() {
                let mi = (k + round) % MODES.len();
                let stop = Arc::new(AtomicBool::new(false));
                let f = folder(sad.clone(), MODES[mi], stop.clone(), 0);
                let got = Arc::new(Mutex::new(Vec::new()));
                let u = {
                    let (sad, pool, stop, got) =
                        (sad.clone(), pool.clone(), stop.clone(), got.clone());
                    std::thread::spawn(move || {
                        pin(1);
                        let mut live = std::collections::VecDeque::new();
                        let mut next = 0usize;
                        let start = Instant::now();
                        let mut tick = 0u64;
                        let mut mine = Vec::with_capacity(400);
                        while !stop.load(Ordering::Relaxed) {
                            let mut ops = Vec::with_capacity(200);
                            for _ in 0..100 {
                                let s: Arc<Sa> = pool[next % pool.len()].clone();
                                next += 1;
                                live.push_back(s.spi());
                                ops.push(SadOp::Insert(s));
                            }
                            while live.len() > 1000 {
                                if let Some(s) = live.pop_front() {
                                    ops.push(SadOp::Remove(s));
                                }
                            }
                            let t = Instant::now();
                            sad.apply(ops);
                            // The first second warms up (removals start at
                            // tick 10).
                            if tick >= 20 {
                                mine.push(t.elapsed().as_secs_f64());
                            }
                            tick += 1;
                            let due = start + Duration::from_millis(10 * tick);
                            if let Some(d) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(d);
                            }
                        }
                        sad.apply(live.into_iter().map(SadOp::Remove));
                        got.lock().unwrap().extend(mine);
                    })
                };
                std::thread::sleep(Duration::from_millis(2200));
                stop.store(true, Ordering::Relaxed);
                u.join().unwrap();
                f.join().unwrap();
                lat[mi].extend(got.lock().unwrap().iter().copied());
            }
        }
        for (m, v) in MODES.iter().zip(&lat) {
            let over = v.iter().filter(|&&x| x > 1e-3).count();
            println!(
                "sad-fold/{n}/churn/{}: {} applies (100 installs + 100 removals each), wall per apply p50 {:.0} us, p99 {:.0} us, max {:.2} ms, {over} over 1 ms",
                m.name(),
                v.len(),
                1e6 * median(v),
                1e6 * pct(v, 0.99),
                1e3 * sorted(v)[v.len() - 1],
            );
        }
        println!("# sad-fold/{n}/churn: load {}", loadavg());

        // 3. Lookups per folder mode.
        let order: Vec<u32> = (0..LOOKUPS).map(|_| spis[rng.random_range(0..n)]).collect();
        run_lookups(&sad, &order);
        let mut ns: Vec<Vec<f64>> = vec![vec![]; MODES.len()];
        let mut ratio: Vec<Vec<f64>> = vec![vec![]; MODES.len()];
        for round in 0..rounds {
            let mut got = [0.0f64; 4];
            for k in 0..MODES.len() {
                let mi = (k + round) % MODES.len();
                let stop = Arc::new(AtomicBool::new(false));
                let f = folder(sad.clone(), MODES[mi], stop.clone(), 1);
                let t = Instant::now();
                let mut v = vec![];
                while v.len() < 5 || t.elapsed() < Duration::from_millis(1500) {
                    v.push(run_lookups(&sad, &order));
                }
                stop.store(true, Ordering::Relaxed);
                f.join().unwrap();
                got[mi] = median(&v);
            }
            for (mi, g) in got.iter().enumerate() {
                ns[mi].push(*g);
                ratio[mi].push(g / got[0]);
            }
        }
        for (mi, m) in MODES.iter().enumerate().skip(1) {
            println!(
                "sad-fold/{n}/lookup-while-{}: ours {:.1} ns, reference {:.1} ns (no fold, same rounds), ratio {:.3} [{:.3}-{:.3}]",
                m.name(),
                median(&ns[mi]),
                median(&ns[0]),
                median(&ratio[mi]),
                sorted(&ratio[mi])[0],
                sorted(&ratio[mi])[rounds - 1]
            );
        }
        println!("# sad-fold/{n}/lookups: load {}", loadavg());
    }
}
