//! Multi-buffer AES-GCM (`crypto::mb`) against the raw per-packet calls of
//! RustCrypto `aes-gcm` and `aws-lc-rs`, on the same ESP bytes, in one run.
//!
//! For each payload size (64, 512, 1420 B) a burst of 32 ESP packets
//! (`SPI | Seq | IV | payload | ICV`) is sealed (or opened) per iteration:
//! ours through `EspCipher::seal/open` on the whole burst, the references
//! one call per packet with the same nonce (salt || seq) and AAD (SPI ||
//! seq). After criterion's own report the bench prints, per case,
//! `gcm_mb <op> <size>B: ours X Mops, <ref> Y Mops, ratio Z` from the median
//! time per burst that criterion sampled.
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: the machine is shared by many builds, and CPU time leaves out the
//! time the scheduler gave to others, equally for ours and the references.
//!
//! `cargo bench -p espresso-bench --bench gcm_mb`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes128Gcm;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use criterion::{criterion_group, Criterion, Throughput};
use dataplane::crypto::mb::build_gcm;
use dataplane::crypto::{EspCipher, Key, OpenJob, SealJob};

const BURST: usize = 32;
const SIZES: [usize; 3] = [64, 512, 1420];
const KEY: [u8; 20] = [
    0x4c, 0x80, 0xcd, 0xef, 0xbb, 0x5d, 0x10, 0xda, 0x90, 0x6a, 0xc7, 0x3c, 0x36, 0x13, 0xa6, 0x34,
    0x2e, 0x44, 0x3b, 0x68,
];
const SPI: u32 = 0x1001;

/// Nanoseconds per burst, every sample, by case name.
static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

/// A point on this thread's CPU-time clock.
#[derive(Clone, Copy)]
struct Cpu(Duration);

impl Cpu {
    fn now() -> Self {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Cpu(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
    }
    fn elapsed(self) -> Duration {
        Cpu::now().0.saturating_sub(self.0)
    }
}

fn record(name: &str, iters: u64, d: Duration) -> Duration {
    SAMPLES
        .lock()
        .unwrap()
        .entry(name.to_string())
        .or_default()
        .push(d.as_nanos() as f64 / iters as f64);
    d
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn seq(i: usize) -> u64 {
    0x100 + i as u64
}

fn nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(&KEY[16..]);
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

fn aad(p: &[u8]) -> [u8; 8] {
    p[..8].try_into().unwrap()
}

/// A burst of unsealed ESP packets of `size` payload bytes.
fn packets(size: usize) -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let mut p = vec![0u8; 16 + size + 16];
            p[..4].copy_from_slice(&SPI.to_be_bytes());
            p[4..8].copy_from_slice(&(seq(i) as u32).to_be_bytes());
            for (j, b) in p[16..16 + size].iter_mut().enumerate() {
                *b = (i * 7 + j) as u8;
            }
            p
        })
        .collect()
}

fn seal_ours(c: &dyn EspCipher, pkts: &mut [Vec<u8>]) {
    let mut it = pkts.iter_mut().enumerate();
    let mut jobs: [SealJob<'_>; BURST] = std::array::from_fn(|_| {
        let (i, p) = it.next().unwrap();
        SealJob {
            esp: p,
            seq: seq(i),
        }
    });
    c.seal(&mut jobs);
}

fn open_ours(c: &dyn EspCipher, pkts: &mut [Vec<u8>]) -> bool {
    let mut it = pkts.iter_mut().enumerate();
    let mut jobs: [OpenJob<'_>; BURST] = std::array::from_fn(|_| {
        let (i, p) = it.next().unwrap();
        OpenJob {
            esp: p,
            seq: seq(i),
            ok: false,
        }
    });
    c.open(&mut jobs);
    jobs.iter().all(|j| j.ok)
}

fn bench(c: &mut Criterion) {
    let Some(ours) = build_gcm(&Key::from_slice(&KEY), false) else {
        eprintln!("gcm_mb: CPU lacks VAES/VPCLMULQDQ/AVX-512, nothing to measure");
        return;
    };
    let rc = Aes128Gcm::new_from_slice(&KEY[..16]).unwrap();
    let lc = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &KEY[..16]).unwrap());

    for size in SIZES {
        let mut g = c.benchmark_group(format!("gcm_mb_seal_{size}B"));
        g.throughput(Throughput::Elements(BURST as u64));
        let mut pkts = packets(size);
        let name = format!("seal {size}B");
        g.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                let t = Cpu::now();
                for _ in 0..iters {
                    seal_ours(&*ours, black_box(&mut pkts));
                }
                record(&format!("{name}|ours"), iters, t.elapsed())
            })
        });
        g.bench_function("aes-gcm", |b| {
            b.iter_custom(|iters| {
                let t = Cpu::now();
                for _ in 0..iters {
                    for (i, p) in black_box(&mut pkts).iter_mut().enumerate() {
                        let s = seq(i);
                        p[8..16].copy_from_slice(&s.to_be_bytes());
                        let a = aad(p);
                        let (body, icv) = p[16..].split_at_mut(size);
                        let tag = rc
                            .encrypt_in_place_detached(&nonce(s).into(), &a, body)
                            .unwrap();
                        icv.copy_from_slice(&tag);
                    }
                }
                record(&format!("{name}|aes-gcm"), iters, t.elapsed())
            })
        });
        g.bench_function("aws-lc-rs", |b| {
            b.iter_custom(|iters| {
                let t = Cpu::now();
                for _ in 0..iters {
                    for (i, p) in black_box(&mut pkts).iter_mut().enumerate() {
                        let s = seq(i);
                        p[8..16].copy_from_slice(&s.to_be_bytes());
                        let a = aad(p);
                        let (body, icv) = p[16..].split_at_mut(size);
                        let tag = lc
                            .seal_in_place_separate_tag(
                                Nonce::assume_unique_for_key(nonce(s)),
                                Aad::from(a),
                                body,
                            )
                            .unwrap();
                        icv.copy_from_slice(tag.as_ref());
                    }
                }
                record(&format!("{name}|aws-lc-rs"), iters, t.elapsed())
            })
        });
        g.finish();

        // Open: every iteration opens freshly sealed copies, so every open
        // succeeds. The copies are made outside the timed region, COPIES
        // bursts at a time (few clock reads; the working set stays in L2).
        const COPIES: usize = 16;
        let mut sealed = packets(size);
        seal_ours(&*ours, &mut sealed);
        let mut g = c.benchmark_group(format!("gcm_mb_open_{size}B"));
        g.throughput(Throughput::Elements(BURST as u64));
        let name = format!("open {size}B");
        let mut work: Vec<Vec<Vec<u8>>> = vec![sealed.clone(); COPIES];
        let mut timed = |iters: u64, f: &mut dyn FnMut(&mut [Vec<u8>]) -> bool| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(COPIES);
                for burst in &mut work[..n] {
                    for (w, s) in burst.iter_mut().zip(&sealed) {
                        w.copy_from_slice(s);
                    }
                }
                let t = Cpu::now();
                let mut ok = true;
                for burst in &mut work[..n] {
                    ok &= f(black_box(burst));
                }
                total += t.elapsed();
                assert!(ok, "open failed");
                left -= n;
            }
            total
        };
        g.bench_function("ours", |b| {
            b.iter_custom(|iters| {
                let d = timed(iters, &mut |w| open_ours(&*ours, w));
                record(&format!("{name}|ours"), iters, d)
            })
        });
        g.bench_function("aes-gcm", |b| {
            b.iter_custom(|iters| {
                let d = timed(iters, &mut |w| {
                    let mut ok = true;
                    for (i, p) in w.iter_mut().enumerate() {
                        let a = aad(p);
                        let n: [u8; 12] = nonce(u64::from_be_bytes(p[8..16].try_into().unwrap()));
                        let (body, icv) = p[16..].split_at_mut(size);
                        let tag = aes_gcm::Tag::clone_from_slice(icv);
                        ok &= rc
                            .decrypt_in_place_detached(&n.into(), &a, body, &tag)
                            .is_ok();
                        let _ = i;
                    }
                    ok
                });
                record(&format!("{name}|aes-gcm"), iters, d)
            })
        });
        g.bench_function("aws-lc-rs", |b| {
            b.iter_custom(|iters| {
                let d = timed(iters, &mut |w| {
                    let mut ok = true;
                    for p in w.iter_mut() {
                        let a = aad(p);
                        let n = nonce(u64::from_be_bytes(p[8..16].try_into().unwrap()));
                        ok &= lc
                            .open_in_place(
                                Nonce::assume_unique_for_key(n),
                                Aad::from(a),
                                &mut p[16..],
                            )
                            .is_ok();
                    }
                    ok
                });
                record(&format!("{name}|aws-lc-rs"), iters, d)
            })
        });
        g.finish();
    }
}

fn report() {
    let s = SAMPLES.lock().unwrap();
    let mops = |k: &str| s.get(k).map(|v| BURST as f64 * 1e3 / median(v));
    println!();
    for op in ["seal", "open"] {
        for size in SIZES {
            let name = format!("{op} {size}B");
            let Some(ours) = mops(&format!("{name}|ours")) else {
                continue;
            };
            for r in ["aes-gcm", "aws-lc-rs"] {
                if let Some(refm) = mops(&format!("{name}|{r}")) {
                    println!(
                        "gcm_mb {name}: ours {ours:.2} Mops, {r} {refm:.2} Mops, ratio {:.2}",
                        ours / refm
                    );
                }
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    report();
}
