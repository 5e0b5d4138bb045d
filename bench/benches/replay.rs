//! Anti-replay check + commit, nanoseconds per packet, at windows 64, 4096
//! and 65536: our lock-free RFC 6479 window (atomics, safe for several
//! workers) against a classic single-threaded shifting bitmap window
//! (RFC 4303 Appendix A3 style, plain `u64` words, shifted on advance)
//! measured in the same run. Two traffic patterns: in order, and reordered
//! within 32 packets with 1 % duplicates.
//!
//! Run: `cargo bench -p espresso-bench --bench replay`. `REPLAY_BENCH_MD=path`
//! writes the markdown table to a file.

mod esp_util;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dataplane::sa::ReplayWindow;
use esp_util::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const WINDOWS: [u32; 3] = [64, 4096, 65536];
const N: usize = 1 << 16;

/// Reference: the textbook window. `bits[0]` bit 0 is `top`, bit i is top - i.
struct ShiftWindow {
    size: u64,
    top: u64,
    bits: Vec<u64>,
}

impl ShiftWindow {
    fn new(size: u32) -> Self {
        ShiftWindow {
            size: u64::from(size),
            top: 0,
            bits: vec![0; size as usize / 64],
        }
    }
    #[inline]
    fn check_and_commit(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.shift_left(shift);
            self.top = seq;
            self.bits[0] |= 1;
            return true;
        }
        let off = self.top - seq;
        if off >= self.size {
            return false;
        }
        let (w, b) = ((off / 64) as usize, off % 64);
        if self.bits[w] >> b & 1 == 1 {
            return false;
        }
        self.bits[w] |= 1 << b;
        true
    }
    fn shift_left(&mut self, n: u64) {
        let words = self.bits.len();
        if n >= self.size {
            self.bits.iter_mut().for_each(|w| *w = 0);
            return;
        }
        let (ws, bs) = ((n / 64) as usize, n % 64);
        for i in (0..words).rev() {
            let hi = if i >= ws { self.bits[i - ws] << bs } else { 0 };
            let lo = if bs > 0 && i > ws {
                self.bits[i - ws - 1] >> (64 - bs)
            } else {
                0
            };
            self.bits[i] = hi | lo;
        }
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
            let single = ReplayWindow::new(w).unwrap();
            let mut reference = ShiftWindow::new(w);
            let ids = [
                format!("replay/{pat}/{w}/ours"),
                format!("replay/{pat}/{w}/ours-single"),
                format!("replay/{pat}/{w}/ref"),
            ];
            // The three alternate inside every iteration (same machine load).
            g.bench_function("ours+single+ref", |b| {
                b.iter_custom(|iters| {
                    let mut t3 = [Duration::ZERO; 3];
                    let mut burst = [0u64; 32];
                    let mut res = [Ok(()); 32];
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
                            black_box(&res);
                        }
                        t3[0] += t.elapsed();
                        // Ours one packet at a time.
                        let base = single.top();
                        let t = Instant::now();
                        for &s in &seqs {
                            let s = s + base;
                            if single.check(s).is_ok() {
                                black_box(single.commit(s).is_ok());
                            }
                        }
                        t3[1] += t.elapsed();
                        // Reference.
                        let base = reference.top;
                        let t = Instant::now();
                        for &s in &seqs {
                            black_box(reference.check_and_commit(s + base));
                        }
                        t3[2] += t.elapsed();
                    }
                    for (id, t) in ids.iter().zip(t3) {
                        record(id, iters * N as u64, t);
                    }
                    t3.iter().sum()
                })
            });
            g.finish();
        }
    }
    c.final_summary();
    let mut md = String::from(
        "| traffic | window | ours ns/pkt (burst commit) | ours ns/pkt (per packet) | reference ns/pkt | ratio |\n|---|---|---|---|---|---|\n",
    );
    for pat in ["in-order", "reordered"] {
        for w in WINDOWS {
            let (Some(o), Some(r)) = (
                median_ns(&format!("replay/{pat}/{w}/ours")),
                median_ns(&format!("replay/{pat}/{w}/ref")),
            ) else {
                continue;
            };
            let s = median_ns(&format!("replay/{pat}/{w}/ours-single")).unwrap_or(f64::NAN);
            let ratio = median_ratio(
                &format!("replay/{pat}/{w}/ours"),
                &format!("replay/{pat}/{w}/ref"),
            )
            .unwrap_or(o / r);
            println!("replay/{pat}/{w}: ours {o:.2} ns/pkt, reference {r:.2} ns/pkt, ratio {ratio:.2} (per-packet commit: {s:.2} ns/pkt)");
            md += &format!("| {pat} | {w} | {o:.2} | {s:.2} | {r:.2} | {ratio:.2} |\n");
        }
    }
    println!("\n{md}");
    write_md("REPLAY_BENCH_MD", &md);
}
