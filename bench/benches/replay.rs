//! Anti-replay check + commit, nanoseconds per packet, at windows 64, 4096
//! and 65536: our lock-free RFC 6479 window (atomics, safe for several
//! workers) against DPDK `rte_ipsec`'s window (lib/ipsec/ipsec_sqn.h,
//! DPDK 22.11: RFC 6479 buckets of 64 bits, `esn_inb_check_sqn` before
//! decryption and `esn_inb_update_sqn` after, ported line by line to Rust
//! below) in its two modes, measured in the same run:
//! - `dpdk-atomic` (`RTE_IPSEC_SATP_SQN_ATOM`, what an SA shared by several
//!   lcores needs, so the reference for ours): per burst a reader lock for
//!   the checks, then a writer copies the window to the second replay state
//!   (`rsn_copy`), updates it under the write lock and publishes it;
//! - `dpdk-single` (one lcore per SA): plain updates in place.
//!
//! Both traffic patterns are quoted: in order, and reordered within 32
//! packets with 1 % duplicates. Bursts of 32 for everyone: check every
//! packet, then commit (ours: `commit_burst`; DPDK: update per packet).
//!
//! Time is the CPU time of this thread (`CLOCK_THREAD_CPUTIME_ID`), not
//! the wall clock: on a shared machine time spent descheduled is not
//! charged. Rounds are interleaved: in every round each case (traffic,
//! window) runs once and within a case the three windows run one after the
//! other in an order rotated from round to round, each over the same
//! 65,536-packet trace `PASSES` times (about a millisecond). A figure is the
//! median over the rounds; the ratio is the median of the per-round ratios
//! ours / reference (same round, same thread). The three windows must
//! accept exactly the same packets in every pass (checked).
//!
//! Run: `taskset -c 1 cargo bench -p espresso-bench --bench replay [-- --rounds N]`
//! (default 21 rounds; `--quick`: 5; `--only in-order/4096`: that case
//! alone, for profiling). `REPLAY_BENCH_MD=path` writes the markdown table
//! to a file.

mod esp_util;

use std::hint::black_box;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use dataplane::sa::ReplayWindow;
use esp_util::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const WINDOWS: [u32; 3] = [64, 4096, 65536];
const N: usize = 1 << 16;

const WINDOW_BUCKET_BITS: u32 = 6;
const WINDOW_BIT_LOC_MASK: u64 = 63;
const WINDOW_BUCKET_MIN: u64 = 2;

/// DPDK's `struct replay_sqn`: last sequence number and the buckets.
struct ReplaySqn {
    rwl: AtomicI32,
    sqn: u64,
    window: Vec<u64>,
}

/// DPDK's replay parameters of an SA (`sa->replay`).
#[derive(Clone, Copy)]
struct Replay {
    win_sz: u64,
    nb_bucket: u64,
    bucket_index_mask: u64,
}

impl Replay {
    /// `replay_num_bucket` (lib/ipsec/sa.c).
    fn new(wsz: u32) -> Replay {
        let b = u64::from(wsz)
            .div_ceil(64)
            .next_power_of_two()
            .max(WINDOW_BUCKET_MIN);
        Replay {
            win_sz: u64::from(wsz),
            nb_bucket: b,
            bucket_index_mask: b - 1,
        }
    }
}

impl ReplaySqn {
    fn new(r: Replay) -> ReplaySqn {
        ReplaySqn {
            rwl: AtomicI32::new(0),
            sqn: 0,
            window: vec![0; r.nb_bucket as usize],
        }
    }

    /// `esn_inb_check_sqn`.
    #[inline]
    fn check(&self, r: &Replay, sqn: u64) -> bool {
        if r.win_sz == 0 || sqn > self.sqn {
            return true;
        }
        if sqn == 0 || sqn + r.win_sz < self.sqn {
            return false;
        }
        let bit = sqn & WINDOW_BIT_LOC_MASK;
        let bucket = (sqn >> WINDOW_BUCKET_BITS) & r.bucket_index_mask;
        self.window[bucket as usize] & (1 << bit) == 0
    }

    /// `esn_inb_update_sqn` (no ESN).
    #[inline]
    fn update(&mut self, r: &Replay, sqn: u64) -> bool {
        if sqn == 0 || sqn + r.win_sz < self.sqn {
            return false;
        }
        let bucket = sqn >> WINDOW_BUCKET_BITS;
        if sqn > self.sqn {
            let last_bucket = self.sqn >> WINDOW_BUCKET_BITS;
            let diff = (bucket - last_bucket).min(r.nb_bucket);
            for i in 0..diff {
                let nb = (i + last_bucket + 1) & r.bucket_index_mask;
                self.window[nb as usize] = 0;
            }
            self.sqn = sqn;
        }
        let b = (bucket & r.bucket_index_mask) as usize;
        let bit = 1u64 << (sqn & WINDOW_BIT_LOC_MASK);
        if self.window[b] & bit != 0 {
            return false;
        }
        self.window[b] |= bit;
        true
    }
}

/// `rte_rwlock_read_trylock` / `read_unlock` / `write_lock` / `write_unlock`.
fn read_trylock(l: &AtomicI32) -> bool {
    let x = l.load(Ordering::Relaxed);
    x >= 0
        && l.compare_exchange(x, x + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
}
fn read_unlock(l: &AtomicI32) {
    l.fetch_sub(1, Ordering::Release);
}
fn write_lock(l: &AtomicI32) {
    while l
        .compare_exchange(0, -1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
}
fn write_unlock(l: &AtomicI32) {
    l.store(0, Ordering::Release);
}

/// DPDK's inbound replay state of one SA: two `replay_sqn` copies, as
/// `rte_ipsec_sa` keeps them (`sqn.inb.rsn[2]`, `rdidx`, `wridx`).
struct DpdkWindow {
    r: Replay,
    rsn: [ReplaySqn; 2],
    rdidx: AtomicUsize,
    wridx: usize,
    atomic: bool,
}

impl DpdkWindow {
    fn new(wsz: u32, atomic: bool) -> DpdkWindow {
        let r = Replay::new(wsz);
        DpdkWindow {
            r,
            rsn: [ReplaySqn::new(r), ReplaySqn::new(r)],
            rdidx: AtomicUsize::new(0),
            wridx: 0,
            atomic,
        }
    }

    fn top(&self) -> u64 {
        self.rsn[self.rdidx.load(Ordering::Relaxed)].sqn
    }

    /// One burst as `esp_inb_tun_pkt_prepare` + `esp_inb_rsn_update` do it:
    /// check every packet (under `rsn_acquire`), then update the window
    /// with the packets that passed (between `rsn_update_start` and
    /// `rsn_update_finish`). Returns how many were accepted.
    #[inline]
    fn burst(&mut self, seqs: &[u64], ok: &mut [bool]) -> usize {
        let n = self.rdidx.load(Ordering::Acquire);
        if self.atomic {
            while !read_trylock(&self.rsn[n].rwl) {
                std::hint::spin_loop();
            }
        }
        for (s, o) in seqs.iter().zip(ok.iter_mut()) {
            *o = self.rsn[n].check(&self.r, *s);
        }
        if self.atomic {
            read_unlock(&self.rsn[n].rwl);
        }
        // rsn_update_start
        let w = if self.atomic {
            let k = (self.wridx + 1) & 1;
            self.wridx = k;
            write_lock(&self.rsn[k].rwl);
            // rsn_copy
            let (a, b) = self.rsn.split_at_mut(1);
            let (src, dst) = if k == 1 {
                (&a[0], &mut b[0])
            } else {
                (&b[0], &mut a[0])
            };
            dst.sqn = src.sqn;
            dst.window.copy_from_slice(&src.window);
            k
        } else {
            self.wridx
        };
        let mut acc = 0;
        let r = self.r;
        for (s, o) in seqs.iter().zip(ok.iter_mut()) {
            if *o {
                *o = self.rsn[w].update(&r, *s);
                acc += *o as usize;
            }
        }
        // rsn_update_finish
        if self.atomic {
            write_unlock(&self.rsn[w].rwl);
            self.rdidx.store(w, Ordering::Release);
        }
        acc
    }
}

fn traffic(reorder: bool) -> Vec<u64> {
    let mut v: Vec<u64> = (1..=N as u64).collect();
    if reorder {
        let mut rng = StdRng::seed_from_u64(7);
        for c in v.chunks_mut(32) {
            c.shuffle(&mut rng);
        }
        for i in 0..N / 100 {
            let j = rng.random_range(1..N);
            v[i * 100] = v[j.min(i * 100 + 1).max(1) - 1];
        }
    }
    v
}

/// Passes over the trace per timed run.
const PASSES: usize = 4;

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// One case: a traffic pattern and a window size, the three windows.
struct Case {
    pat: &'static str,
    w: u32,
    seqs: Vec<u64>,
    ours: ReplayWindow,
    atomic: DpdkWindow,
    single: DpdkWindow,
    /// Per round, CPU ns of ours, dpdk-atomic, dpdk-single.
    ns: Vec<[u64; 3]>,
}

impl Case {
    /// Ours as decap uses it: check each packet of a burst of 32, then
    /// commit the burst. Returns how many were accepted.
    fn ours_pass(&self) -> usize {
        let mut burst = [0u64; 32];
        let mut res = [Ok(()); 32];
        let mut acc = 0;
        let base = self.ours.top();
        for chunk in self.seqs.chunks(32) {
            let mut n = 0;
            for &s in chunk {
                let s = s + base;
                if self.ours.check(s).is_ok() {
                    burst[n] = s;
                    n += 1;
                }
            }
            self.ours.commit_burst(&burst[..n], &mut res[..n]);
            acc += res[..n].iter().filter(|r| r.is_ok()).count();
            black_box(&res);
        }
        acc
    }

    fn dpdk_pass(seqs: &[u64], win: &mut DpdkWindow) -> usize {
        let mut ok = [false; 32];
        let mut shifted = [0u64; 32];
        let mut acc = 0;
        let base = win.top();
        for chunk in seqs.chunks(32) {
            for (d, s) in shifted.iter_mut().zip(chunk) {
                *d = s + base;
            }
            acc += win.burst(&shifted[..chunk.len()], &mut ok);
            black_box(&ok);
        }
        acc
    }

    /// Runs window `k` (0 ours, 1 dpdk-atomic, 2 dpdk-single) `PASSES`
    /// times: CPU ns and the packets accepted per pass.
    fn run(&mut self, k: usize) -> (u64, [usize; PASSES]) {
        let mut acc = [0; PASSES];
        let t0 = thread_cpu_ns();
        for a in acc.iter_mut() {
            *a = match k {
                0 => self.ours_pass(),
                1 => Self::dpdk_pass(&self.seqs, &mut self.atomic),
                _ => Self::dpdk_pass(&self.seqs, &mut self.single),
            };
        }
        (thread_cpu_ns() - t0, acc)
    }

    /// One round: the three windows in an order rotated by `round`.
    fn round(&mut self, round: usize, keep: bool) {
        let mut t = [0u64; 3];
        let mut acc = [[0usize; PASSES]; 3];
        for i in 0..3 {
            let k = (i + round) % 3;
            (t[k], acc[k]) = self.run(k);
        }
        let (pat, w) = (self.pat, self.w);
        assert_eq!(acc[0], acc[1], "{pat}/{w}: ours vs dpdk-atomic accepted");
        assert_eq!(acc[0], acc[2], "{pat}/{w}: ours vs dpdk-single accepted");
        if keep {
            self.ns.push(t);
        }
    }

    fn per_pkt(&self, k: usize) -> f64 {
        median(self.ns.iter().map(|t| t[k] as f64).collect()) / (PASSES * self.seqs.len()) as f64
    }

    fn ratio(&self, k: usize) -> f64 {
        median(
            self.ns
                .iter()
                .map(|t| t[0] as f64 / t[k].max(1) as f64)
                .collect(),
        )
    }

    /// Lowest and highest per-round ratio.
    fn ratio_range(&self, k: usize) -> (f64, f64) {
        self.ns
            .iter()
            .map(|t| t[0] as f64 / t[k].max(1) as f64)
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r), hi.max(r)))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut rounds = if args.iter().any(|a| a == "--quick") {
        5
    } else {
        21
    };
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&r: &usize| r > 0)
            .expect("--rounds N (N > 0)");
    }
    // `--only PATTERN/W` (e.g. in-order/4096): one case (profiling).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let mut cases = Vec::new();
    for reorder in [false, true] {
        let pat = if reorder { "reordered" } else { "in-order" };
        let seqs = traffic(reorder);
        for w in WINDOWS {
            if only.as_ref().is_some_and(|o| *o != format!("{pat}/{w}")) {
                continue;
            }
            cases.push(Case {
                pat,
                w,
                seqs: seqs.clone(),
                ours: ReplayWindow::new(w).unwrap(),
                atomic: DpdkWindow::new(w, true),
                single: DpdkWindow::new(w, false),
                ns: Vec::new(),
            });
        }
    }
    let load_before = loadavg();
    eprintln!(
        "replay: {rounds} rounds x {} cases x 3 windows, {PASSES} passes of {N} packets each; load {load_before}",
        cases.len()
    );
    // One round not kept: warm caches and branch predictors.
    for r in 0..=rounds {
        for c in cases.iter_mut() {
            c.round(r, r > 0);
        }
    }
    let load_after = loadavg();
    let cpu = cpu_model();
    let mut md = format!(
        "CPU: {cpu}; thread CPU time, median of {rounds} interleaved rounds ({PASSES} x {N} packets per window per round); load average {load_before} before, {load_after} after.\n\n\
         | traffic | window | ours ns/pkt | DPDK rte_ipsec SQN_ATOM ns/pkt | ratio (min-max) | DPDK single-lcore ns/pkt | ratio (min-max) |\n|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let (pat, w) = (c.pat, c.w);
        let (o, a, s) = (c.per_pkt(0), c.per_pkt(1), c.per_pkt(2));
        let (ra, rs) = (c.ratio(1), c.ratio(2));
        let ((al, ah), (sl, sh)) = (c.ratio_range(1), c.ratio_range(2));
        println!("replay/{pat}/{w}: ours {o:.2} ns/pkt, reference {a:.2} ns/pkt (DPDK rte_ipsec window, SQN_ATOM multi-lcore mode), ratio {ra:.2} (thread CPU time, median of {rounds} interleaved rounds, per-round {al:.2}-{ah:.2}; load {load_after})");
        println!("replay/{pat}/{w}/single-lcore: ours {o:.2} ns/pkt, reference {s:.2} ns/pkt (DPDK rte_ipsec window, one lcore per SA), ratio {rs:.2} (per-round {sl:.2}-{sh:.2})");
        md += &format!(
            "| {pat} | {w} | {o:.2} | {a:.2} | {ra:.2} ({al:.2}-{ah:.2}) | {s:.2} | {rs:.2} ({sl:.2}-{sh:.2}) |\n"
        );
    }
    println!("\n{md}");
    write_md("REPLAY_BENCH_MD", &md);
}
