//! Crypto-only throughput of the multi-buffer AES-GCM ESP transform
//! (`crypto::mb`), measured the way `dpdk-test-crypto-perf --ptest
//! throughput` measures: a fixed number of operations in bursts of 32 on
//! one core, Mops = operations / wall time. Best of `--trials` runs (the
//! machine is shared; the fastest run is the least disturbed one).
//!
//! `gcm_mb_mops [--op seal|open] [--sizes 64,512,1420] [--ops N] [--trials K] [--key-bits 128|256]`
//! prints one line per size: `gcm_mb <op> <size>B: <Mops> Mops (by CPU time <Mops> Mops)`;
//! the first figure is the one comparable with DPDK's, the second discounts
//! time the scheduler gave to other processes.

use std::time::Instant;

use dataplane::crypto::mb::build_gcm;
use dataplane::crypto::{EspCipher, Key, OpenJob, SealJob};

const BURST: usize = 32;

struct Args {
    op: String,
    sizes: Vec<usize>,
    ops: u64,
    trials: usize,
    key_bits: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        op: "seal".into(),
        sizes: vec![64, 512, 1420],
        ops: 10_000_000,
        trials: 3,
        key_bits: 128,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--op" if val == "seal" || val == "open" => a.op = val,
            "--sizes" => {
                a.sizes = val
                    .split(',')
                    .map(|s| num(s).map(|n| n as usize))
                    .collect::<Result<_, _>>()?
            }
            "--ops" => a.ops = num(&val)?,
            "--trials" => a.trials = num(&val)?.max(1) as usize,
            "--key-bits" if val == "128" || val == "256" => a.key_bits = num(&val)? as usize,
            _ => return Err(format!("unknown option or value: {flag} {val}")),
        }
    }
    Ok(a)
}

fn packets(size: usize) -> Vec<Vec<u8>> {
    (0..BURST)
        .map(|i| {
            let mut p = vec![0u8; 16 + size + 16];
            p[..4].copy_from_slice(&0x1001u32.to_be_bytes());
            p[4..8].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            for (j, b) in p[16..16 + size].iter_mut().enumerate() {
                *b = (i + j) as u8;
            }
            p
        })
        .collect()
}

/// This thread's CPU time (excludes time the scheduler gave to others).
fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// (Mops by wall time, Mops by this thread's CPU time).
fn run(c: &dyn EspCipher, op: &str, size: usize, ops: u64) -> (f64, f64) {
    let mut pkts = packets(size);
    let bursts = ops.div_ceil(BURST as u64);
    {
        let mut it = pkts.iter_mut().enumerate();
        let mut jobs: [SealJob<'_>; BURST] = std::array::from_fn(|_| {
            let (i, p) = it.next().unwrap();
            SealJob {
                esp: p,
                seq: i as u64 + 1,
            }
        });
        c.seal(&mut jobs);
    }
    let t = Instant::now();
    let cpu = cpu_now();
    let mut seq = 0u64;
    for _ in 0..bursts {
        let mut it = pkts.iter_mut();
        if op == "seal" {
            let mut jobs: [SealJob<'_>; BURST] = std::array::from_fn(|_| {
                seq += 1;
                SealJob {
                    esp: it.next().unwrap(),
                    seq,
                }
            });
            c.seal(std::hint::black_box(&mut jobs));
        } else {
            // Opens the same packets again and again: after the first
            // round the ICV no longer matches (the bytes were decrypted in
            // place), which costs the kernel exactly the same work.
            let mut jobs: [OpenJob<'_>; BURST] = std::array::from_fn(|i| OpenJob {
                esp: it.next().unwrap(),
                seq: i as u64 + 1,
                ok: false,
            });
            c.open(std::hint::black_box(&mut jobs));
        }
    }
    let n = (bursts * BURST as u64) as f64;
    (
        n / t.elapsed().as_secs_f64() / 1e6,
        n / (cpu_now() - cpu) / 1e6,
    )
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gcm_mb_mops: {e}");
            std::process::exit(2);
        }
    };
    let key: Vec<u8> = (0..args.key_bits / 8 + 4)
        .map(|i| i as u8 * 17 + 3)
        .collect();
    let Some(c) = build_gcm(&Key::new(key), false) else {
        eprintln!("gcm_mb_mops: this CPU lacks VAES/VPCLMULQDQ/AVX-512");
        std::process::exit(1);
    };
    for &size in &args.sizes {
        let (wall, cpu) = (0..args.trials)
            .map(|_| run(&*c, &args.op, size, args.ops))
            .fold((0.0f64, 0.0f64), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        println!(
            "gcm_mb {} {size}B: {wall:.3} Mops (by CPU time {cpu:.3} Mops)",
            args.op
        );
    }
}
