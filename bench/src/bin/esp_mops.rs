//! ESP encap/decap throughput on one core through the real ESP path
//! (`esp::encap_burst` / `esp::decap_burst`, `Backend::Auto`), measured the
//! way `dpdk-test-crypto-perf --ptest throughput` measures: a fixed number of
//! operations in bursts of 32, Mops = operations / time. Used by
//! `bench/e2e/esp_vs_dpdk.sh`, which runs DPDK's crypto_aesni_mb on the same
//! crypto work in the same run.
//!
//! `esp_mops --suite NAME --op encap|decap|open [--sizes 64,512,1420] [--ops N] [--trials K]
//! [--backend auto|multibuffer|ipsec-mb|aws-lc|ring|rustcrypto]`
//! prints one line per size:
//! `esp <op> <suite> <size>B: <wall> Mops (by CPU time <cpu> Mops; buffer reset included <cpu_incl> Mops) backend <b>`
//! (the wall-clock figure includes the buffer reset: on a loaded machine a
//! difference of two wall-clock times is meaningless).
//!
//! `--op open` times the inbound SA's cipher alone (`EspCipher::open`) on
//! the packets decap gets: decap's cost around the crypto per packet is
//! `1 / decap - 1 / open`.
//!
//! `esp_mops --suite NAME --layout [--sizes ...]` prints, per inner size, the
//! ESP layout our encap produces: `layout <size> iv <iv> payload <p> icv <icv>`
//! (payload = encrypted bytes: inner packet + padding + pad length + next
//! header), from which the script sizes DPDK's buffers.
//!
//! What is timed: per burst, putting the 32 packets back into their buffers
//! (inner packets for encap, the sealed ESP packets plus a replay-window
//! reset for decap; the engine works in place), then one `encap_burst`, or
//! one SAD load (`Sad::load`, as a worker does per burst) and one
//! `decap_burst` (SPI lookup, replay check and commit, ICV, padding, inner
//! header and policy checks). The putting-back is a benchmark artefact (a
//! NIC delivers fresh packets), so it is timed alone over the same number of
//! bursts right after, and subtracted: the CPU-time figure is
//! ops / (CPU(reset + op) - CPU(reset)). The figure with the reset included
//! is printed too. Every trial checks that every packet passed (no drop
//! counted). Inner packets: IPv4/UDP of `size` bytes, tunnel mode, IPv4
//! outer, 32-bit sequence numbers, replay window 4096.
//!
//! `esp_mops --suite NAME --op encap --sas K [--spread packet|burst]`: K
//! outbound SAs (same suite, each its own transform), the packets of the
//! run spread over them round-robin, per packet (burst `b`, packet `j` on SA
//! `(32 b + j) mod K`: 32 one-packet `encap_burst` calls per burst) or per
//! burst (burst `b` on SA `b mod K`). Prints the line above with `sas K
//! spread S` and, when the build has per-worker key caches, this thread's
//! cache hits and misses over the timed trials (`cache hits H misses M`).
//! Many SAs cost cache misses in the CPU caches (the old layout: 13 lines
//! of expanded keys per AES-GCM SA) and, past the key cache's entries, key
//! expansions (the new layout). `--cache-entries N` sets the key caches'
//! entries (`[dataplane] key_cache_entries`; default 4096). `--ids
//! scattered`: between two of the K SAs, 0-7 others (a fixed pseudo-random
//! sequence) are built and dropped, so the K transform ids are spread as
//! after SAs came and went (rekeys), not consecutive.
//!
//! Time is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`; the machine is
//! shared) and wall clock; each figure is the best of `--trials` runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, OpenJob, Suite};
use dataplane::drop::Verdict;
use dataplane::esp::{decap_burst, encap_burst, DecapResult};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{Direction, DropCounters, Sa, Sad};
use espresso_bench::esp_fixture::{inner, params};

const BURST: usize = 32;
const HEADROOM: usize = 128;

/// The suites both we and DPDK's crypto_aesni_mb implement (names as in
/// `cargo bench --bench esp`).
fn suite_by_name(name: &str) -> Option<Suite> {
    use EncrAlg::*;
    use IntegAlg::*;
    let (encr, integ) = match name {
        "aes-gcm-128" => (AesGcm128, None),
        "aes-gcm-256" => (AesGcm256, None),
        "chacha20-poly1305" => (ChaCha20Poly1305, None),
        "aes-cbc-128+sha1-96" => (AesCbc128, HmacSha1_96),
        "aes-cbc-256+sha1-96" => (AesCbc256, HmacSha1_96),
        "aes-cbc-128+sha256-128" => (AesCbc128, HmacSha256_128),
        "aes-cbc-256+sha256-128" => (AesCbc256, HmacSha256_128),
        "aes-cbc-128+sha384-192" => (AesCbc128, HmacSha384_192),
        "aes-cbc-256+sha384-192" => (AesCbc256, HmacSha384_192),
        "aes-cbc-128+sha512-256" => (AesCbc128, HmacSha512_256),
        "aes-cbc-256+sha512-256" => (AesCbc256, HmacSha512_256),
        "null+sha1-96" => (Null, HmacSha1_96),
        "null+sha256-128" => (Null, HmacSha256_128),
        "null+sha384-192" => (Null, HmacSha384_192),
        "null+sha512-256" => (Null, HmacSha512_256),
        _ => return Option::None,
    };
    Some(Suite { encr, integ })
}

struct Args {
    suite: String,
    op: String,
    sizes: Vec<usize>,
    ops: u64,
    trials: usize,
    layout: bool,
    backend: Backend,
    sas: usize,
    per_packet: bool,
    scatter: bool,
    cache_entries: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        suite: String::new(),
        op: "encap".into(),
        sizes: vec![64, 512, 1420],
        ops: 2_000_000,
        trials: 1,
        layout: false,
        backend: Backend::Auto,
        sas: 1,
        per_packet: false,
        scatter: false,
        cache_entries: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--layout" {
            a.layout = true;
            continue;
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--suite" => a.suite = val,
            "--op" if ["encap", "decap", "open"].contains(&val.as_str()) => a.op = val,
            "--sizes" => {
                a.sizes = val
                    .split(',')
                    .map(|s| num(s).map(|n| n as usize))
                    .collect::<Result<_, _>>()?
            }
            "--ops" => a.ops = num(&val)?.max(BURST as u64),
            "--trials" => a.trials = num(&val)?.max(1) as usize,
            "--sas" => a.sas = num(&val)?.clamp(1, 1 << 20) as usize,
            "--spread" if val == "packet" || val == "burst" => a.per_packet = val == "packet",
            "--ids" if val == "scattered" || val == "sequential" => a.scatter = val == "scattered",
            "--cache-entries" => a.cache_entries = Some(num(&val)? as usize),
            "--backend" => {
                a.backend = serde_json::from_str(&format!("\"{val}\""))
                    .map_err(|_| format!("--backend {val}: unknown backend"))?
            }
            _ => return Err(format!("unknown option or value: {flag} {val}")),
        }
    }
    if a.sas > 1 && a.op != "encap" {
        return Err("--sas: only with --op encap".into());
    }
    if a.suite.is_empty() {
        return Err("--suite is required".into());
    }
    if let Some(&s) = a.sizes.iter().find(|&&s| !(28..=1500).contains(&s)) {
        return Err(format!("--sizes {s}: inner packets are 28..=1500 bytes"));
    }
    Ok(a)
}

/// This thread's CPU time (excludes time the scheduler gave to others).
fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Seconds of (wall, CPU) spent in `f`.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (Instant::now(), cpu_now());
    f();
    (t.elapsed().as_secs_f64(), cpu_now() - c)
}

/// One measurement: Mops by wall clock (reset included), by CPU time (reset
/// subtracted) and by CPU time with the reset included.
struct Trial {
    wall: f64,
    cpu: f64,
    cpu_incl: f64,
}

struct Bench {
    out: Sa,
    inb: Arc<Sa>,
    sad: Sad,
    pkt: Vec<u8>,
    sealed: Vec<Vec<u8>>,
    bufs: Vec<HeapBuf>,
}

impl Bench {
    fn new(suite: Suite, size: usize, backend: Backend) -> Result<Bench, String> {
        let out = Sa::new(params(suite, Direction::Outbound), backend)
            .map_err(|e| format!("outbound SA: {e}"))?;
        let inb = Arc::new(
            Sa::new(params(suite, Direction::Inbound), backend)
                .map_err(|e| format!("inbound SA: {e}"))?,
        );
        let sad = Sad::with_capacity(16);
        sad.insert(inb.clone());
        let pkt = inner(size);
        let mut bufs: Vec<HeapBuf> = (0..BURST)
            .map(|_| HeapBuf::new(HEADROOM, 2048, 128))
            .collect();
        // Sealed packets for decap, from a throw-away outbound SA with the
        // same keys (so `out` starts at sequence number 1).
        let pre = Sa::new(params(suite, Direction::Outbound), backend)
            .map_err(|e| format!("outbound SA: {e}"))?;
        let mut v = [Verdict::Pass; BURST];
        for b in bufs.iter_mut() {
            b.reset_to(HEADROOM, &pkt);
        }
        let drops = DropCounters::default();
        encap_burst(&pre, &mut bufs, &mut v, &drops);
        if drops.total() != 0 || v.iter().any(|v| *v != Verdict::Pass) {
            return Err(format!("encap failed while preparing: {v:?}"));
        }
        let sealed = bufs.iter().map(|b| b.data().to_vec()).collect();
        Ok(Bench {
            out,
            inb,
            sad,
            pkt,
            sealed,
            bufs,
        })
    }

    fn encap(&mut self, bursts: u64) -> Result<Trial, String> {
        let drops = DropCounters::default();
        let mut v = [Verdict::Pass; BURST];
        let (bufs, pkt, sa) = (&mut self.bufs, &self.pkt, &self.out);
        let (w_full, c_full) = timed(|| {
            for _ in 0..bursts {
                for b in bufs.iter_mut() {
                    b.reset_to(HEADROOM, pkt);
                }
                encap_burst(sa, black_box(&mut bufs[..]), &mut v, &drops);
            }
        });
        if drops.total() != 0 || v.iter().any(|v| *v != Verdict::Pass) {
            return Err(format!("encap dropped packets: {} drops", drops.total()));
        }
        let (_, c_reset) = timed(|| {
            for _ in 0..bursts {
                for b in bufs.iter_mut() {
                    b.reset_to(HEADROOM, pkt);
                }
                black_box(&mut bufs[..]);
            }
        });
        Ok(trial(bursts, (w_full, c_full), c_reset))
    }

    fn decap(&mut self, bursts: u64) -> Result<Trial, String> {
        let drops = DropCounters::default();
        let mut res = [DecapResult::default(); BURST];
        let (bufs, sealed, sad, inb) = (&mut self.bufs, &self.sealed, &self.sad, &self.inb);
        let (w_full, c_full) = timed(|| {
            for _ in 0..bursts {
                for (b, s) in bufs.iter_mut().zip(sealed) {
                    b.reset_to(HEADROOM, s);
                }
                inb.replay().reset();
                let tab = sad.load();
                decap_burst(&tab, black_box(&mut bufs[..]), &mut res, &drops);
            }
        });
        if drops.total() != 0 || res.iter().any(|r| r.verdict != Verdict::Pass) {
            return Err(format!("decap dropped packets: {} drops", drops.total()));
        }
        if bufs[0].data() != &self.pkt[..] {
            return Err("decap did not give back the inner packet".into());
        }
        let (_, c_reset) = timed(|| {
            for _ in 0..bursts {
                for (b, s) in bufs.iter_mut().zip(sealed) {
                    b.reset_to(HEADROOM, s);
                }
                inb.replay().reset();
                black_box(&mut bufs[..]);
            }
        });
        Ok(trial(bursts, (w_full, c_full), c_reset))
    }

    /// The inbound SA's cipher alone (`EspCipher::open`) on the same
    /// packets as `decap`: what decap costs around the crypto is the
    /// difference of the two times per packet.
    fn open(&mut self, bursts: u64) -> Result<Trial, String> {
        const OUTER: usize = 20;
        let (bufs, sealed, inb) = (&mut self.bufs, &self.sealed, &self.inb);
        let mut all_ok = true;
        let (w_full, c_full) = timed(|| {
            for _ in 0..bursts {
                for (b, s) in bufs.iter_mut().zip(sealed) {
                    b.reset_to(HEADROOM, s);
                }
                let mut jobs: Vec<OpenJob<'_>> = Vec::with_capacity(BURST);
                for (i, b) in black_box(&mut bufs[..]).iter_mut().enumerate() {
                    jobs.push(OpenJob {
                        esp: &mut b.data_mut()[OUTER..],
                        seq: i as u64 + 1,
                        ok: false,
                    });
                }
                inb.cipher().open(&mut jobs);
                all_ok &= jobs.iter().all(|j| j.ok);
            }
        });
        if !all_ok {
            return Err("open refused a packet".into());
        }
        let (_, c_reset) = timed(|| {
            for _ in 0..bursts {
                for (b, s) in bufs.iter_mut().zip(sealed) {
                    b.reset_to(HEADROOM, s);
                }
                black_box(&mut bufs[..]);
            }
        });
        Ok(trial(bursts, (w_full, c_full), c_reset))
    }
}

/// This thread's key-cache (hits, misses) so far, over both caches (AES-GCM
/// on the VAES kernel, ipsec-mb AES-CBC / NULL + HMAC).
fn cache_stats() -> Option<(u64, u64)> {
    let (g, _) = dataplane::crypto::mb::gcm_cache_stats();
    let (c, _) = dataplane::crypto::ipsecmb::cbc_cache_stats();
    Some((g.hits + c.hits, g.misses + c.misses))
}

/// `--sas K`: K outbound SAs, packets spread over them.
struct Many {
    sas: Vec<Sa>,
    pkt: Vec<u8>,
    bufs: Vec<HeapBuf>,
    per_packet: bool,
    next: usize,
}

impl Many {
    fn new(
        suite: Suite,
        size: usize,
        k: usize,
        per_packet: bool,
        scatter: bool,
        backend: Backend,
    ) -> Result<Many, String> {
        let new_sa = || {
            Sa::new(params(suite, Direction::Outbound), backend)
                .map_err(|e| format!("outbound SA: {e}"))
        };
        // xorshift64: the same gaps in every build and run.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut sas = Vec::with_capacity(k);
        for _ in 0..k {
            if scatter {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                for _ in 0..x % 8 {
                    drop(new_sa()?);
                }
            }
            sas.push(new_sa()?);
        }
        Ok(Many {
            sas,
            pkt: inner(size),
            bufs: (0..BURST)
                .map(|_| HeapBuf::new(HEADROOM, 2048, 128))
                .collect(),
            per_packet,
            next: 0,
        })
    }

    fn encap(&mut self, bursts: u64) -> Result<Trial, String> {
        let drops = DropCounters::default();
        let mut v = [Verdict::Pass; BURST];
        let (bufs, pkt, sas) = (&mut self.bufs, &self.pkt, &self.sas);
        let k = sas.len();
        let mut next = self.next;
        let per_packet = self.per_packet;
        let (w_full, c_full) = timed(|| {
            for _ in 0..bursts {
                for b in bufs.iter_mut() {
                    b.reset_to(HEADROOM, pkt);
                }
                if per_packet {
                    for j in 0..BURST {
                        encap_burst(
                            &sas[next],
                            black_box(&mut bufs[j..j + 1]),
                            &mut v[j..j + 1],
                            &drops,
                        );
                        next = if next + 1 == k { 0 } else { next + 1 };
                    }
                } else {
                    encap_burst(&sas[next], black_box(&mut bufs[..]), &mut v, &drops);
                    next = if next + 1 == k { 0 } else { next + 1 };
                }
            }
        });
        self.next = next;
        if drops.total() != 0 || v.iter().any(|v| *v != Verdict::Pass) {
            return Err(format!("encap dropped packets: {} drops", drops.total()));
        }
        let (_, c_reset) = timed(|| {
            for _ in 0..bursts {
                for b in bufs.iter_mut() {
                    b.reset_to(HEADROOM, pkt);
                }
                black_box(&mut bufs[..]);
            }
        });
        Ok(trial(bursts, (w_full, c_full), c_reset))
    }
}

fn run_many(args: &Args, suite: Suite) -> Result<(), String> {
    for &size in &args.sizes {
        let mut m = Many::new(
            suite,
            size,
            args.sas,
            args.per_packet,
            args.scatter,
            args.backend,
        )?;
        // The SAs dropped by `--ids scattered` leave the cache at the sweep.
        dataplane::crypto::poll_key_caches();
        let bursts = args.ops.div_ceil(BURST as u64);
        // Warm-up: every SA used at least once.
        let warm = (bursts / 20).max(args.sas as u64 / if args.per_packet { 32 } else { 1 } + 1);
        // What a worker does once per poll loop (the second time through,
        // the key cache has its full size if the SAs need it).
        for _ in 0..2 {
            m.encap(warm)?;
            dataplane::crypto::poll_key_caches();
        }
        let before = cache_stats();
        let mut best = Trial {
            wall: 0.0,
            cpu: 0.0,
            cpu_incl: 0.0,
        };
        for _ in 0..args.trials {
            let t = m.encap(bursts)?;
            best.wall = best.wall.max(t.wall);
            best.cpu = best.cpu.max(t.cpu);
            best.cpu_incl = best.cpu_incl.max(t.cpu_incl);
        }
        let cache = match (before, cache_stats()) {
            (Some(a), Some(b)) => format!(" cache hits {} misses {}", b.0 - a.0, b.1 - a.1),
            _ => String::new(),
        };
        println!(
            "esp encap {} {size}B: {:.3} Mops (by CPU time {:.3} Mops; buffer reset included {:.3} Mops) backend {} sas {} spread {}{}{cache}",
            args.suite,
            best.wall,
            best.cpu,
            best.cpu_incl,
            m.sas[0].backend(),
            args.sas,
            if args.per_packet { "packet" } else { "burst" },
            if args.scatter { " ids scattered" } else { "" },
        );
    }
    Ok(())
}

fn trial(bursts: u64, full: (f64, f64), reset_cpu: f64) -> Trial {
    let n = (bursts * BURST as u64) as f64 / 1e6;
    Trial {
        wall: n / full.0.max(1e-9),
        cpu: n / (full.1 - reset_cpu).max(1e-9),
        cpu_incl: n / full.1.max(1e-9),
    }
}

fn run(args: &Args) -> Result<(), String> {
    if let Some(n) = args.cache_entries {
        dataplane::crypto::key_cache::set_entries(n);
    }
    let suite =
        suite_by_name(&args.suite).ok_or_else(|| format!("unknown suite {}", args.suite))?;
    if args.sas > 1 {
        return run_many(args, suite);
    }
    for &size in &args.sizes {
        let mut b = Bench::new(suite, size, args.backend)?;
        if args.layout {
            let (iv, icv) = (b.out.cipher().iv_len(), b.out.cipher().icv_len());
            // Sealed packet: outer IPv4 (20) | SPI, Seq (8) | IV | payload | ICV.
            let payload = b.sealed[0].len() - 20 - 8 - iv - icv;
            println!("layout {size} iv {iv} payload {payload} icv {icv}");
            continue;
        }
        let bursts = args.ops.div_ceil(BURST as u64);
        // Warm-up (caches, branch predictors, CPU frequency).
        let warm = (bursts / 20).max(1);
        let _ = match args.op.as_str() {
            "encap" => b.encap(warm)?,
            "open" => b.open(warm)?,
            _ => b.decap(warm)?,
        };
        // What a worker does once per poll loop (the key caches get their
        // full size as a worker's would with this many SAs).
        dataplane::crypto::poll_key_caches();
        let mut best = Trial {
            wall: 0.0,
            cpu: 0.0,
            cpu_incl: 0.0,
        };
        for _ in 0..args.trials {
            if args.op == "encap" {
                // A fresh SA per trial: sequence numbers start at 1 again.
                b.out = Sa::new(params(suite, Direction::Outbound), args.backend)
                    .map_err(|e| format!("outbound SA: {e}"))?;
            }
            dataplane::crypto::poll_key_caches();
            let t = match args.op.as_str() {
                "encap" => b.encap(bursts)?,
                "open" => b.open(bursts)?,
                _ => b.decap(bursts)?,
            };
            best.wall = best.wall.max(t.wall);
            best.cpu = best.cpu.max(t.cpu);
            best.cpu_incl = best.cpu_incl.max(t.cpu_incl);
        }
        println!(
            "esp {} {} {size}B: {:.3} Mops (by CPU time {:.3} Mops; buffer reset included {:.3} Mops) backend {}",
            args.op,
            args.suite,
            best.wall,
            best.cpu,
            best.cpu_incl,
            b.out.backend()
        );
    }
    Ok(())
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("esp_mops: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("esp_mops: {e}");
        std::process::exit(1);
    }
}
