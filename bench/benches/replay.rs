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
//! Run: `cargo bench -p espresso-bench --bench replay`. `REPLAY_BENCH_MD=path`
//! writes the markdown table to a file.

mod esp_util;

use std::hint::black_box;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
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

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(SAMPLES)
        .configure_from_args();
    for reorder in [false, true] {
        let pat = if reorder { "reordered" } else { "in-order" };
        let seqs = traffic(reorder);
        for w in WINDOWS {
            let mut g = c.benchmark_group(format!("replay/{pat}/{w}"));
            let ours = ReplayWindow::new(w).unwrap();
            let mut atomic = DpdkWindow::new(w, true);
            let mut single = DpdkWindow::new(w, false);
            let ids = [
                format!("replay/{pat}/{w}/ours"),
                format!("replay/{pat}/{w}/dpdk-atomic"),
                format!("replay/{pat}/{w}/dpdk-single"),
            ];
            let mut accepted = [0usize; 3];
            // The three alternate inside every iteration (same machine load).
            g.bench_function("ours+dpdk", |b| {
                b.iter_custom(|iters| {
                    let mut t3 = [Duration::ZERO; 3];
                    let mut burst = [0u64; 32];
                    let mut res = [Ok(()); 32];
                    let mut ok = [false; 32];
                    let mut shifted = [0u64; 32];
                    accepted = [0; 3];
                    for _ in 0..iters {
                        // Ours as decap uses it: check each packet of a burst
                        // of 32, then commit the burst.
                        let base = ours.top();
                        let t = Instant::now();
                        for chunk in seqs.chunks(32) {
                            let mut n = 0;
                            for &s in chunk {
                                let s = s + base;
                                if ours.check(s).is_ok() {
                                    burst[n] = s;
                                    n += 1;
                                }
                            }
                            ours.commit_burst(&burst[..n], &mut res[..n]);
                            accepted[0] += res[..n].iter().filter(|r| r.is_ok()).count();
                            black_box(&res);
                        }
                        t3[0] += t.elapsed();
                        for (k, win) in [(1, &mut atomic), (2, &mut single)] {
                            let base = win.top();
                            let t = Instant::now();
                            for chunk in seqs.chunks(32) {
                                for (d, s) in shifted.iter_mut().zip(chunk) {
                                    *d = s + base;
                                }
                                accepted[k] += win.burst(&shifted[..chunk.len()], &mut ok);
                                black_box(&ok);
                            }
                            t3[k] += t.elapsed();
                        }
                    }
                    for (id, t) in ids.iter().zip(t3) {
                        record(id, iters * N as u64, t);
                    }
                    t3.iter().sum()
                })
            });
            g.finish();
            // The three windows accept exactly the same packets.
            assert_eq!(accepted[0], accepted[1], "{pat}/{w}: ours vs dpdk-atomic");
            assert_eq!(accepted[0], accepted[2], "{pat}/{w}: ours vs dpdk-single");
        }
    }
    c.final_summary();
    let mut md = String::from(
        "| traffic | window | ours ns/pkt | DPDK rte_ipsec SQN_ATOM ns/pkt | ratio | DPDK single-lcore ns/pkt | ratio |\n|---|---|---|---|---|---|---|\n",
    );
    for pat in ["in-order", "reordered"] {
        for w in WINDOWS {
            let id = |k: &str| format!("replay/{pat}/{w}/{k}");
            let (Some(o), Some(a), Some(s)) = (
                median_ns(&id("ours")),
                median_ns(&id("dpdk-atomic")),
                median_ns(&id("dpdk-single")),
            ) else {
                continue;
            };
            let ra = median_ratio(&id("ours"), &id("dpdk-atomic")).unwrap_or(o / a);
            let rs = median_ratio(&id("ours"), &id("dpdk-single")).unwrap_or(o / s);
            println!("replay/{pat}/{w}: ours {o:.2} ns/pkt, reference {a:.2} ns/pkt (DPDK rte_ipsec window, SQN_ATOM multi-lcore mode), ratio {ra:.2}");
            println!("replay/{pat}/{w}/single-lcore: ours {o:.2} ns/pkt, reference {s:.2} ns/pkt (DPDK rte_ipsec window, one lcore per SA), ratio {rs:.2}");
            md += &format!("| {pat} | {w} | {o:.2} | {a:.2} | {ra:.2} | {s:.2} | {rs:.2} |\n");
        }
    }
    println!("\n{md}");
    write_md("REPLAY_BENCH_MD", &md);
}
