//! SHA-1 / SHA-256 compressions per block: espresso's SHA-NI kernel with 1,
//! 2 and 4 messages interleaved (`crypto::mb::sha_ni`, used by the HMAC of
//! short CBC+HMAC packets) against RustCrypto's `sha1::compress` /
//! `sha2::compress256` (SHA-NI too) called once per message, same blocks,
//! same thread, rounds interleaved. Time = thread CPU time, best of
//! `--rounds` (default 7); each figure is ns per 64-byte block over 32
//! messages x `--reps` (default 20000). Before timing, every kernel's
//! output is checked against RustCrypto's.
//!
//! `sha_lanes [--reps N] [--rounds K]` prints
//! `sha_lanes <hash> x<N>: ours X ns/block, reference RustCrypto Y ns/block, ratio Z`
//! (ratio = reference / ours: > 1 means ours is faster).

use std::hint::black_box;

use dataplane::crypto::mb::sha_ni::ShaNi;
use sha1::digest::generic_array::GenericArray;

fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const MSGS: usize = 32;

fn main() {
    let Some(ni) = ShaNi::detect() else {
        eprintln!("sha_lanes: this CPU has no SHA extensions; nothing to measure");
        std::process::exit(1);
    };
    let reps = arg("--reps", 20_000);
    let rounds = arg("--rounds", 7);
    let data: Vec<u8> = (0..64 * MSGS).map(|i| (i * 131 + 7) as u8).collect();
    let blocks: Vec<&[u8; 64]> = data
        .chunks_exact(64)
        .map(|c| c.try_into().expect("64-byte chunk"))
        .collect();

    // Correctness first: every lane count against RustCrypto.
    fn check<const N: usize>(ni: ShaNi, blocks: &[&[u8; 64]]) {
        for k in (0..MSGS).step_by(N) {
            let bl: [&[u8; 64]; N] = std::array::from_fn(|l| blocks[k + l]);
            let mut s1: [[u32; 5]; N] = std::array::from_fn(|l| [l as u32 + 1; 5]);
            let mut w1 = s1;
            ni.sha1::<N>(&mut s1, &bl);
            for (s, b) in w1.iter_mut().zip(bl) {
                sha1::compress(s, std::slice::from_ref(GenericArray::from_slice(b)));
            }
            assert_eq!(s1, w1, "SHA-1 x{N} differs from RustCrypto");
            let mut s2: [[u32; 8]; N] = std::array::from_fn(|l| [l as u32 + 1; 8]);
            let mut w2 = s2;
            ni.sha256::<N>(&mut s2, &bl);
            for (s, b) in w2.iter_mut().zip(bl) {
                sha2::compress256(s, std::slice::from_ref(GenericArray::from_slice(b)));
            }
            assert_eq!(s2, w2, "SHA-256 x{N} differs from RustCrypto");
        }
    }
    check::<1>(ni, &blocks);
    check::<2>(ni, &blocks);
    check::<4>(ni, &blocks);

    let per_block = |t: f64| t * 1e9 / (reps * MSGS) as f64;
    let mut st1 = [[1u32; 5]; MSGS];
    let mut st2 = [[1u32; 8]; MSGS];
    let mut reference = |sha256: bool| {
        let t = cpu_now();
        for _ in 0..reps {
            for (k, b) in blocks.iter().enumerate() {
                let b = std::slice::from_ref(GenericArray::from_slice(*b));
                if sha256 {
                    sha2::compress256(&mut st2[k], b);
                } else {
                    sha1::compress(&mut st1[k], b);
                }
            }
        }
        black_box((&st1, &st2));
        cpu_now() - t
    };
    fn ours<const N: usize>(ni: ShaNi, blocks: &[&[u8; 64]], reps: usize, sha256: bool) -> f64 {
        let mut st1 = [[1u32; 5]; MSGS];
        let mut st2 = [[1u32; 8]; MSGS];
        let t = cpu_now();
        for _ in 0..reps {
            for k in (0..MSGS).step_by(N) {
                let bl: [&[u8; 64]; N] = std::array::from_fn(|l| blocks[k + l]);
                if sha256 {
                    let s: &mut [[u32; 8]; N] = (&mut st2[k..k + N]).try_into().expect("N lanes");
                    ni.sha256::<N>(s, &bl);
                } else {
                    let s: &mut [[u32; 5]; N] = (&mut st1[k..k + N]).try_into().expect("N lanes");
                    ni.sha1::<N>(s, &bl);
                }
            }
        }
        black_box((&st1, &st2));
        cpu_now() - t
    }
    println!(
        "# CPUs this process may use: {}, load average: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for sha256 in [false, true] {
        // best[0] = reference, best[1..] = ours x1, x2, x4; rounds interleaved.
        let mut best = [f64::MAX; 4];
        for _ in 0..rounds {
            best[0] = best[0].min(reference(sha256));
            best[1] = best[1].min(ours::<1>(ni, &blocks, reps, sha256));
            best[2] = best[2].min(ours::<2>(ni, &blocks, reps, sha256));
            best[3] = best[3].min(ours::<4>(ni, &blocks, reps, sha256));
        }
        let name = if sha256 { "sha256" } else { "sha1" };
        for (i, n) in [1, 2, 4].into_iter().enumerate() {
            let (o, r) = (per_block(best[i + 1]), per_block(best[0]));
            println!(
                "sha_lanes {name} x{n}: ours {o:.2} ns/block, reference RustCrypto {r:.2} ns/block, ratio {:.2}",
                r / o
            );
        }
    }
}
