//! SAD lookup by SPI at 100k and 1M SAs against `dpdk-test-sad` (librte_ipsec
//! SAD, SPI-only rules `-d 100/0/0`, burst 32), both in the same run, plus
//! the slowdown while another thread installs and removes SAs, and the
//! memory per SA (`cargo bench -p espresso-bench --bench sad -- --memory-only`
//! runs only that part: bytes per SA and where they go).
//!
//! Ours, per N:
//! - `lookup-burst`: bursts of 32 random installed SPIs, one `Sad::load` and
//!   one `SadTable::get_burst` per burst (hash and bucket loads of the whole
//!   burst first, then the probes) — what `esp::decap_burst` does;
//! - `lookup-single`: the same bursts with `SadTable::get` per SPI (for
//!   comparison);
//! - `lookup-burst-while-updating`: `lookup-burst` while a second thread
//!   installs and removes SAs at 10,000 of each per second (every 10 ms one
//!   `Sad::apply` of 100 installs and 100 removals, SAs from a pool built
//!   beforehand); and, as a control, while the same updater churns a second
//!   table of the same SAs (so the machine sees the same second thread
//!   while the reader's table stays still).
//!
//! Rounds: each round measures idle, updating and control phases (each the
//! median of passes of 1,000,000 lookups over 0.6 s, at least 3; updating
//! phases start once the updater removes as well as installs and is on
//! schedule), in an order that rotates from round to round; the slowdown is the median over rounds of the per-round
//! ratio updating/idle (and updating/control), printed with its spread.
//! The reader is pinned to CPU 0 and the updater to CPU 1; the updater's
//! reached rate (installs and removals per second against the 10,000
//! target), its CPU share and CPU time per `apply` are printed, with the
//! load average.
//!
//! Time against dpdk-test-sad (`lookup-burst`, `lookup-single`): wall
//! clock, as dpdk-test-sad counts. It times each `rte_ipsec_sad_lookup`
//! call of a burst of 32 with `rte_rdtsc_precise` (TSC: wall clock) and
//! prints TSC cycles per lookup; ours is the wall time of 1,000,000 lookups
//! of random installed SPIs in bursts of 32 (`sad.load()` per burst
//! included, so ours carries a little more than the lookup calls), turned
//! into TSC cycles with dpdk-test-sad's TSC rate (its cycles per lookup
//! times its lookups per second), after one untimed pass (its table is
//! warm from its build when it times). Both run on CPU 0 (dpdk-test-sad with
//! EAL `-l 0`), back to back in every round, in an order that alternates
//! from round to round (dpdk first in even rounds); the figure is the
//! median over rounds, the ratio the median of the per-round ratios,
//! printed with their spread, the load average, our CPU/wall share while
//! timing and dpdk-test-sad's whole-process CPU/wall share (utime + stime
//! from /proc/<pid>/stat at exit, over its wall time: EAL init, table build
//! and deletes included), so a run where either side was preempted shows.
//!
//! Time for the update phases (idle, updating, control): the reader
//! thread's CPU time (ours against ours; the thread CPU clock keeps other
//! processes' time slices out of the updating/idle ratio), in TSC cycles.
//!
//! Memory: bytes allocated (Rust allocator, `allocation-counter`) to build
//! and install N SAs, divided by N, per suite and replay window, the
//! allocations per SA, and the bytes of the index alone
//! (`SadTable::index_bytes`); and the resident set's growth per SA when a
//! fresh process (this binary, `--memory-rss`) builds 20,000 of each kind:
//! every byte the process holds for them, the allocator's per-block
//! headers, rounding and alignment slack included.
//!
//! Run: `cargo bench -p espresso-bench --bench sad [-- --quick]`
//! (`--quick`: 3 rounds instead of 7; `--lookups-only`: no memory part). `SAD_BENCH_MD=path` writes the
//! markdown table. The reader runs on CPU 0, the updater on CPU 1.
//!
//! Pages: two configurations, each a full set of rows, both sides alike:
//! - **2 MB** (the headline, first): ours as the dataplane makes it
//!   (`Sad::with_capacity`: the shards of a table this large are mappings
//!   advised `MADV_HUGEPAGE`, transparent huge pages), dpdk-test-sad on
//!   2 MB hugetlbfs pages (`--huge-dir <dir> --huge-unlink -m 512`). The
//!   pages for DPDK: `SAD_DPDK_HUGE_DIR=<hugetlbfs mount>` with pages
//!   reserved beforehand, or else, as root, the bench reserves 300 pages
//!   (`nr_hugepages`), uses or mounts hugetlbfs, and gives them back after
//!   the run (`espresso_bench::hugetlb`); it says which.
//! - **4 KB**: ours `Sad::with_capacity_placed(n, Placement::Heap)` (the
//!   same shards on the heap), dpdk-test-sad `--no-huge -m 2048`.
//!
//! `--pages 2m` or `--pages 4k` runs one of them. Each N's header line
//! says the pages each side ran on, the bytes of our index on mappings
//! advised for 2 MB pages and the process's `AnonHugePages` (what the
//! kernel actually backed with 2 MB pages).

use std::hint::black_box;
use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::sad::Placement;
use dataplane::sa::{DfMode, Direction, Lifetime, Mode, Sa, SaParams, Sad, SadOp};
use espresso_bench::hugetlb::HugePages;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BURST: usize = 32;
const LOOKUPS: usize = 1_000_000;
/// Installs and removals per second the updater aims at (issue 11).
const RATE: usize = 10_000;
/// Wall time of one phase (passes of `LOOKUPS`, their median is the
/// phase's figure).
const PHASE: Duration = Duration::from_millis(600);

fn params(spi: u32, suite: Suite, window: u32) -> SaParams {
    params_dir(spi, suite, window, Direction::Inbound)
}

fn params_dir(spi: u32, suite: Suite, window: u32, direction: Direction) -> SaParams {
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

const GCM128: Suite = Suite {
    encr: EncrAlg::AesGcm128,
    integ: IntegAlg::None,
};

fn sa(spi: u32) -> Arc<Sa> {
    Arc::new(Sa::new(params(spi, GCM128, 64), Backend::Auto).unwrap())
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// This thread's CPU time in seconds.
fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// One run of dpdk-test-sad on CPU 0 (`-l 0`).
struct DpdkRun {
    /// Its "Average lookup cycles": TSC cycles per lookup, each
    /// `rte_ipsec_sad_lookup` call timed with `rte_rdtsc_precise`.
    cycles: f64,
    /// Its TSC rate (cycles per lookup times lookups per second).
    hz: f64,
    /// The whole process's CPU time (user + system, all threads: EAL
    /// init, table build, lookups, deletes) over its wall time from spawn
    /// to exit: 1.0 when it had its CPU to itself.
    cpu_share: f64,
}

/// utime + stime of a process in seconds, from /proc/<pid>/stat, once it
/// is a zombie (exited, not yet reaped): its final CPU time.
fn zombie_cpu(pid: u32) -> Option<f64> {
    let tick = 100.0; // USER_HZ on Linux
    for _ in 0..2000 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in ")".
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.first() == Some(&"Z") {
            // rest[0] is field 3 (state): utime is field 14, stime 15.
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            return Some((ut + st) / tick);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// One run of dpdk-test-sad with `n` SPI-only rules, `LOOKUPS` lookups in
/// bursts of `BURST`. `None` only when dpdk-test-sad is not installed; an
/// installed one that fails or prints no figure panics (the bench fails
/// instead of dropping its reference).
fn dpdk_sad(n: usize, huge_dir: Option<&std::path::Path>) -> Option<DpdkRun> {
    use std::io::Read;
    let t0 = Instant::now();
    // Its memory: anonymous 4 KB pages (`--no-huge`), or 2 MB pages from a
    // hugetlbfs mount (pages reserved beforehand), to compare with ours on
    // huge pages.
    let mem: Vec<String> = match huge_dir {
        Some(dir) => vec![
            "--huge-dir".into(),
            dir.display().to_string(),
            "--huge-unlink".into(),
            "-m".into(),
            "512".into(),
        ],
        None => vec!["--no-huge".into(), "-m".into(), "2048".into()],
    };
    let child = Command::new("dpdk-test-sad")
        .args(&mem)
        .args(["--no-pci", "--no-shconf", "-l", "0", "--"])
        .args([
            "-n",
            &n.to_string(),
            "-l",
            &LOOKUPS.to_string(),
            "-b",
            &BURST.to_string(),
        ])
        .args(["-d", "100/0/0"])
        // DPDK's pages are set by its own flags above, not by a glibc
        // tunable it might inherit.
        .env_remove("GLIBC_TUNABLES")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("dpdk-test-sad: cannot run it: {e}"),
    };
    let mut text = String::new();
    let mut err = String::new();
    let mut out = child.stdout.take().unwrap();
    let mut serr = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let _ = serr.read_to_string(&mut err);
        err
    });
    let _ = out.read_to_string(&mut text);
    let err = errs.join().unwrap_or_default();
    // Both pipes closed: it has exited; read its CPU time before reaping.
    let cpu = zombie_cpu(child.id());
    let wall = t0.elapsed().as_secs_f64();
    let status = child.wait().expect("wait for dpdk-test-sad");
    let fail = |why: &str| -> ! { panic!("dpdk-test-sad -n {n} ({status}): {why}; stderr: {err}") };
    if !status.success() {
        fail("failed");
    }
    let Some(line) = text
        .lines()
        .find(|l| l.starts_with("Average lookup cycles"))
    else {
        fail("no 'Average lookup cycles' line")
    };
    // "Average lookup cycles 138.69, lookups/sec: 16583528.39"
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && *s != ".")
        .filter_map(|s| s.parse().ok())
        .collect();
    let (c, lps) = match nums[..] {
        [c, lps, ..] if c > 0.0 && lps > 0.0 => (c, lps),
        _ => fail(&format!("no positive figures in {line:?}")),
    };
    Some(DpdkRun {
        cycles: c,
        hz: c * lps,
        cpu_share: cpu.map_or(f64::NAN, |c| c / wall),
    })
}

/// This process's anonymous memory on transparent huge pages, in kB
/// (`AnonHugePages` of /proc/self/smaps_rollup; 0 when unreadable).
fn anon_huge_kb() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[s.len() / 2]
}

/// Wall-clock ns and CPU ns per lookup over `order`, in bursts:
/// `(wall, cpu)`. Wall time times TSC Hz is TSC cycles (constant-rate
/// TSC), what dpdk-test-sad counts.
fn run_lookups(sad: &Sad, order: &[u32], burst_api: bool) -> (f64, f64) {
    let mut found = 0usize;
    let w0 = Instant::now();
    let c0 = cpu_now();
    for spis in order.chunks_exact(BURST) {
        let tab = sad.load();
        let mut out = [None; BURST];
        if burst_api {
            tab.get_burst(black_box(spis), &mut out);
            found += out.iter().filter(|o| o.is_some()).count();
        } else {
            for &s in spis {
                found += tab.get(black_box(s)).is_some() as usize;
            }
        }
    }
    let cpu = (cpu_now() - c0) * 1e9 / order.len() as f64;
    let wall = w0.elapsed().as_secs_f64() * 1e9 / order.len() as f64;
    assert_eq!(found, order.len(), "lookup missed an installed SA");
    (wall, cpu)
}

/// What the updater did so far (read by the reader at the start and end
/// of its measured window): SAs installed and removed, `Sad::apply` calls
/// and the updater thread's CPU time in ns.
#[derive(Default)]
struct Progress {
    installs: AtomicU64,
    removals: AtomicU64,
    applies: AtomicU64,
    cpu_ns: AtomicU64,
    /// The last tick was on time (the updater slept after it).
    on_time: AtomicBool,
}

/// The difference of two `Progress` snapshots over `wall` seconds.
#[derive(Default, Clone, Copy)]
struct Churn {
    installs: u64,
    removals: u64,
    applies: u64,
    cpu: f64,
    wall: f64,
}

impl Progress {
    fn snap(&self) -> [u64; 4] {
        [
            self.installs.load(Ordering::Relaxed),
            self.removals.load(Ordering::Relaxed),
            self.applies.load(Ordering::Relaxed),
            self.cpu_ns.load(Ordering::Relaxed),
        ]
    }
}

/// Churns the SAD at `rate` installs and `rate` removals per second until
/// `stop` (every 10 ms one `Sad::apply` of `rate / 100` installs and as many
/// removals of SAs installed 100 ms earlier). The SAs come from a pool
/// built beforehand (building ciphers is the control path's cost, not the
/// table's), cycled through. A tick that falls behind is not skipped: the
/// next one follows at once, so the rate reached says whether the writer
/// keeps up.
fn updater(sad: Arc<Sad>, stop: Arc<AtomicBool>, pool: Vec<Arc<Sa>>, rate: usize, p: &Progress) {
    let per_tick = rate / 100;
    let mut next = 0usize;
    let mut live: std::collections::VecDeque<u32> = Default::default();
    let start = Instant::now();
    let mut cpu = cpu_now();
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut ops: Vec<SadOp> = Vec::with_capacity(2 * per_tick);
        for _ in 0..per_tick {
            let sa = pool[next % pool.len()].clone();
            next += 1;
            live.push_back(sa.spi());
            ops.push(SadOp::Insert(sa));
        }
        let mut removed = 0;
        while live.len() > per_tick * 10 {
            if let Some(s) = live.pop_front() {
                ops.push(SadOp::Remove(s));
                removed += 1;
            }
        }
        sad.apply(ops);
        let now = cpu_now();
        p.cpu_ns
            .fetch_add(((now - cpu) * 1e9) as u64, Ordering::Relaxed);
        cpu = now;
        p.installs.fetch_add(per_tick as u64, Ordering::Relaxed);
        p.removals.fetch_add(removed, Ordering::Relaxed);
        p.applies.fetch_add(1, Ordering::Relaxed);
        tick += 1;
        let due = start + Duration::from_millis(10 * tick);
        let late = due.checked_duration_since(Instant::now());
        p.on_time.store(late.is_some(), Ordering::Relaxed);
        if let Some(d) = late {
            std::thread::sleep(d);
        }
    }
    sad.apply(live.into_iter().map(SadOp::Remove));
}

fn pin(cpu: usize) {
    if let Some(id) = core_affinity::get_core_ids().and_then(|v| v.into_iter().nth(cpu)) {
        core_affinity::set_for_current(id);
    }
}

/// The suites of the memory part.
fn memory_suites() -> [(&'static str, Suite); 8] {
    [
        ("aes-gcm-128", GCM128),
        (
            "aes-cbc-128+sha1-96",
            Suite {
                encr: EncrAlg::AesCbc128,
                integ: IntegAlg::HmacSha1_96,
            },
        ),
        // The one-pass open (SHA-NI + VAES CBC decryption) keeps a
        // decryption schedule of its own on CPUs that have both.
        (
            "aes-cbc-128+sha256-128",
            Suite {
                encr: EncrAlg::AesCbc128,
                integ: IntegAlg::HmacSha256_128,
            },
        ),
        (
            "aes-cbc-256+sha512-256",
            Suite {
                encr: EncrAlg::AesCbc256,
                integ: IntegAlg::HmacSha512_256,
            },
        ),
        (
            "aes-cbc-256+sha384-192",
            Suite {
                encr: EncrAlg::AesCbc256,
                integ: IntegAlg::HmacSha384_192,
            },
        ),
        (
            "null+sha256-128",
            Suite {
                encr: EncrAlg::Null,
                integ: IntegAlg::HmacSha256_128,
            },
        ),
        // The largest NULL transform (the HMAC-SHA-512 key).
        (
            "null+sha512-256",
            Suite {
                encr: EncrAlg::Null,
                integ: IntegAlg::HmacSha512_256,
            },
        ),
        (
            "chacha20-poly1305",
            Suite {
                encr: EncrAlg::ChaCha20Poly1305,
                integ: IntegAlg::None,
            },
        ),
    ]
}

/// The SA kinds of the memory part: name, direction, replay window.
const MEMORY_KINDS: [(&str, Direction, u32); 3] = [
    ("inbound/window-64", Direction::Inbound, 64),
    ("inbound/window-4096", Direction::Inbound, 4096),
    ("outbound", Direction::Outbound, 0),
];

/// SAs built per kind by the resident-memory count (enough that a few
/// pages of slack are under 1 B per SA).
const RSS_SAS: u32 = 20_000;

/// Resident bytes of this process (`VmRSS` in /proc/self/status).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

/// `--memory-rss SUITE KIND` (indices into [`memory_suites`] and
/// [`MEMORY_KINDS`]), run in a fresh process by [`memory_per_sa`]: builds
/// and installs [`RSS_SAS`] SAs and prints the growth of the resident set
/// per SA. Unlike the allocation count this includes what the allocator
/// adds to every allocation (glibc: an 8-byte size header, rounding to 16
/// bytes, the slack of 64-byte-aligned blocks) and the index's pages.
fn memory_rss_child(suite: usize, kind: usize) {
    let (_, suite) = memory_suites()[suite];
    let (_, dir, window) = MEMORY_KINDS[kind];
    // Warm up the library state (intel-ipsec-mb manager, CPU detection)
    // and the allocator outside the count.
    drop(Sa::new(params_dir(0x100, suite, window, dir), Backend::Auto).unwrap());
    let before = rss_bytes();
    let table = Sad::with_capacity(RSS_SAS as usize);
    // The parameters are made (and freed) one at a time inside the count:
    // made beforehand, their freed keys would leave room in the heap that
    // the SAs then fill without growing it (and freeing a vector of them,
    // a mapping of its own, would shrink the resident set).
    for i in 0..RSS_SAS {
        let p = params_dir(0x1000 + i, suite, window, dir);
        table.apply([SadOp::Insert(Arc::new(Sa::new(p, Backend::Auto).unwrap()))]);
    }
    let after = rss_bytes();
    println!(
        "rss-per-sa {:.1}",
        after.saturating_sub(before) as f64 / f64::from(RSS_SAS)
    );
    black_box(&table);
}

/// Runs [`memory_rss_child`] in a fresh process (its heap holds nothing
/// else): resident bytes per SA, `None` if it could not run.
fn memory_rss(suite: usize, kind: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .args(["--memory-rss", &suite.to_string(), &kind.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("rss-per-sa ")?.trim().parse().ok())
}

/// Memory per SA: builds and installs 10,000 SAs of each kind (inbound
/// with replay windows of 64 and 4096, outbound) and counts the bytes
/// allocated (and allocations) per SA; a fresh process per kind builds
/// 20,000 more and counts the resident set's growth per SA (allocator
/// overhead included). Prints one line per kind and where the bytes go,
/// returns the markdown table.
fn memory_per_sa() -> String {
    let mut md = String::from("\n| suite (backend) | SA | bytes per SA (SA + index) | allocations per SA | resident B/SA (allocator overhead incl.) | transform (heap) | replay window (heap) | Sa struct |\n|---|---|---|---|---|---|---|---|\n");
    let suites = memory_suites();
    for (si, (name, suite)) in suites.into_iter().enumerate() {
        for (ki, (kind, dir, window)) in MEMORY_KINDS.into_iter().enumerate() {
            let k = 10_000u32;
            let mut backend = "";
            let mut sad = None;
            let info = allocation_counter::measure(|| {
                // The table inside the measurement: `with_capacity` sizes
                // its shards up front.
                let table = Sad::with_capacity(k as usize);
                let sas: Vec<Arc<Sa>> = (0..k)
                    .map(|i| {
                        Arc::new(
                            Sa::new(params_dir(0x1000 + i, suite, window, dir), Backend::Auto)
                                .unwrap(),
                        )
                    })
                    .collect();
                backend = sas[0].backend();
                table.apply(sas.into_iter().map(SadOp::Insert));
                sad = Some(table);
            });
            let per = info.bytes_current as f64 / k as f64;
            let allocs = info.count_current as f64 / k as f64;
            let rss = memory_rss(si, ki);
            println!(
                "sad/memory-per-sa/{name}/{kind}: ours {per:.0} B (backend {backend}; Rust heap incl. index), reference 512 B (issue 11 goal), ratio {:.2}",
                per / 512.0
            );
            let rss_txt = rss.map_or("-".to_string(), |r| format!("{r:.0}"));
            println!(
                "sad/memory-per-sa/{name}/{kind} resident: ours {rss_txt} B (resident set growth per SA over {RSS_SAS} SAs in a fresh process: allocator overhead included; {allocs:.1} allocations per SA), reference 512 B (issue 11 goal), ratio {:.2}",
                rss.unwrap_or(f64::NAN) / 512.0
            );
            // Where it goes: the transform (key schedules, HMAC states) as
            // `Sa::new` builds it for this direction, the replay window's
            // slots, the `Sa` struct itself (counters, outer header
            // template, limits, addresses); the rest is the Arc, the
            // selectors and the SAD's index.
            let p = params_dir(0x1000, suite, window, dir);
            let cipher = allocation_counter::measure(|| {
                black_box(
                    dataplane::crypto::build_with(
                        suite,
                        &p.enc_key,
                        &p.auth_key,
                        &dataplane::crypto::BuildOptions {
                            direction: Some(dir),
                            ..Default::default()
                        },
                    )
                    .unwrap(),
                );
            });
            let replay = allocation_counter::measure(|| {
                black_box(dataplane::sa::ReplayWindow::new(window).unwrap());
            });
            let sa_struct = std::mem::size_of::<Sa>();
            println!(
                "sad/memory-per-sa/{name}/{kind} breakdown: transform {} B (heap), replay window {} B (heap), Sa struct {sa_struct} B (of which per-SA counters {} B), rest {:.0} B",
                cipher.bytes_max,
                replay.bytes_max,
                // Packets, bytes, the 32-bit drop slots and the pointer to
                // their folded totals.
                dataplane::sa::sa_struct_parts()
                    .iter()
                    .filter(|(what, _)| what.contains("counters") || what.contains("drop"))
                    .map(|(_, n)| n)
                    .sum::<usize>(),
                per - (cipher.bytes_max + replay.bytes_max + sa_struct as u64) as f64
            );
            md += &format!(
                "| {name} ({backend}) | {kind} | {per:.0} | {allocs:.1} | {rss_txt} | {} | {} | {sa_struct} |\n",
                cipher.bytes_max, replay.bytes_max
            );
            if name == "aes-gcm-128" && kind == "outbound" {
                // The Sa struct's parts (the same for every suite).
                let parts: Vec<String> = dataplane::sa::sa_struct_parts()
                    .iter()
                    .map(|(what, n)| format!("{what} {n}"))
                    .collect();
                println!(
                    "sad/memory-per-sa Sa struct {sa_struct} B: {}",
                    parts.join(", ")
                );
            }
            drop(sad);
        }
    }
    // Per worker, not per SA: the caches of expanded keys a packet thread
    // has, on fresh threads: when it starts (`crypto::warm_thread`: one set
    // each), and after it carried AES-GCM only, or AES-GCM and AES-CBC
    // (three SAs of each, then one poll loop, which gives a cache its full
    // size once a third SA needed it).
    let cbc = memory_suites()[1].1;
    let (bytes, heap) = std::thread::spawn(|| {
        let mut bytes = 0;
        let info = allocation_counter::measure(|| bytes = dataplane::crypto::warm_thread());
        (bytes, info.bytes_current)
    })
    .join()
    .unwrap();
    let gcm_only = worker_key_cache_bytes(vec![GCM128]);
    let mixed = worker_key_cache_bytes(vec![GCM128, cbc]);
    let entries = dataplane::crypto::key_cache::entries();
    println!(
        "sad/memory-per-worker key caches ({entries} entries each once grown; AES-GCM on the VAES kernel 832 B an entry, ipsec-mb AES-CBC/NULL + HMAC 832 B): at start {bytes} B ({heap} B heap allocated by warm_thread); AES-GCM-only worker {} B (GCM {} + CBC {}); AES-GCM and AES-CBC worker {} B (GCM {} + CBC {})",
        gcm_only.0 + gcm_only.1,
        gcm_only.0,
        gcm_only.1,
        mixed.0 + mixed.1,
        mixed.0,
        mixed.1,
    );
    md += &format!(
        "\nPer worker (not per SA): key caches of expanded keys (AES-GCM VAES, ipsec-mb CBC/NULL + HMAC), one set each at start = {bytes} B; grown to {entries} entries when a third SA of their kind needs one: AES-GCM-only worker {} B, AES-GCM and AES-CBC worker {} B.\n",
        gcm_only.0 + gcm_only.1,
        mixed.0 + mixed.1,
    );
    md
}

/// A fresh worker thread's key-cache bytes (AES-GCM, CBC) after three SAs
/// of each of `suites` sealed one packet each and one poll loop ran.
fn worker_key_cache_bytes(suites: Vec<Suite>) -> (usize, usize) {
    std::thread::spawn(move || {
        dataplane::crypto::warm_thread();
        let sas: Vec<Sa> = suites
            .iter()
            .flat_map(|&s| (0..3).map(move |i| (s, i)))
            .map(|(s, i)| {
                Sa::new(
                    params_dir(0x7000 + i, s, 64, Direction::Outbound),
                    Backend::Auto,
                )
            })
            .collect::<Result<_, _>>()
            .expect("SA");
        for sa in &sas {
            let c = sa.cipher();
            let mut p = vec![0u8; 8 + c.iv_len() + 64 + c.icv_len()];
            c.seal(&mut [dataplane::crypto::SealJob {
                esp: &mut p,
                seq: 1,
            }]);
        }
        dataplane::crypto::poll_key_caches();
        dataplane::crypto::key_cache_bytes()
    })
    .join()
    .unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-rss") {
        let idx = |j: usize| -> usize {
            args.get(i + j)
                .and_then(|v| v.parse().ok())
                .expect("--memory-rss SUITE KIND")
        };
        memory_rss_child(idx(1), idx(2));
        return;
    }
    if std::env::args().any(|a| a == "--memory-only") {
        println!("{}", memory_per_sa());
        return;
    }
    let trials = if std::env::args().any(|a| a == "--quick") {
        3
    } else {
        7
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
    println!("# CPU: {cpu}; trials {trials}; {LOOKUPS} lookups per trial, bursts of {BURST}");
    // Page configurations: 2 MB on both sides first (when DPDK can have
    // them), then 4 KB on both sides.
    let which = args
        .iter()
        .position(|a| a == "--pages")
        .and_then(|i| args.get(i + 1))
        .map_or("both", String::as_str);
    let mut huge: Option<HugePages> = None;
    let mut configs: Vec<(&str, Placement)> = vec![];
    if which != "4k" {
        huge = match std::env::var("SAD_DPDK_HUGE_DIR") {
            Ok(d) => Some(HugePages::given(d)),
            Err(_) => HugePages::reserve(300)
                .map_err(|e| println!("# no 2 MB pages for dpdk-test-sad ({e}): no 2 MB rows"))
                .ok(),
        };
        if let Some(h) = &huge {
            println!("# dpdk-test-sad 2 MB rows: {}", h.note);
            configs.push(("2m", Placement::Huge));
        }
    }
    if which != "2m" {
        configs.push(("4k", Placement::Heap));
    }
    let mut md = String::from(
        "| pages | SAs | ours burst TSC cycles, median (ns) | ours single TSC cycles | dpdk-test-sad TSC cycles, median [min-max] | ratio burst/dpdk per round, median [min-max] | CPU/wall ours / dpdk process | idle CPU cycles (median) | updating CPU cycles (median) | updating/idle per round, median [min-max] | updating/control per round | updater installs/s, CPU share | index B/SA | load average |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (tag, placement, n) in configs
        .iter()
        .flat_map(|&(t, p)| [100_000usize, 1_000_000].map(|n| (t, p, n)))
    {
        let dpdk_dir = match placement {
            Placement::Huge => huge.as_ref().map(|h| h.dir.as_path()),
            Placement::Heap => None,
        };
        let mut rng = StdRng::seed_from_u64(n as u64);
        let mut spis: Vec<u32> = Vec::with_capacity(n);
        let mut seen = std::collections::HashSet::with_capacity(n);
        while spis.len() < n {
            let s: u32 = rng.random_range(256..0x8000_0000);
            if seen.insert(s) {
                spis.push(s);
            }
        }
        drop(seen);
        let sad = Arc::new(Sad::with_capacity_placed(n, placement));
        for chunk in spis.chunks(100_000) {
            sad.apply(chunk.iter().map(|&s| SadOp::Insert(sa(s))));
        }
        let (index, index_mapped, shards) = {
            let t = sad.load();
            (t.index_bytes(), t.index_mapped_bytes(), t.shards())
        };
        println!(
            "# sad/{n}/{tag}: pages: ours {placement:?} ({shards} shards, index {:.1} MB of which {:.1} MB in mappings advised MADV_HUGEPAGE; process AnonHugePages {} kB after the build{}), dpdk-test-sad {}",
            index as f64 / 1e6,
            index_mapped as f64 / 1e6,
            anon_huge_kb(),
            match std::env::var("GLIBC_TUNABLES") {
                Ok(t) => format!(", GLIBC_TUNABLES={t}"),
                Err(_) => String::new(),
            },
            match dpdk_dir {
                Some(d) => format!("2 MB hugetlbfs pages ({})", d.display()),
                None => "--no-huge (4 KB pages)".into(),
            }
        );
        let index = index as f64 / n as f64;
        // The control: a second table of the same SAs (shared objects, own
        // index) that the updater churns in control rounds, so that the
        // machine sees the same updater work while the reader's table stays
        // still. The difference between the two isolates what updates do to
        // lookups in the same table from what a busy second thread does to
        // a shared 2-vCPU machine.
        let control = Arc::new(Sad::with_capacity_placed(n, placement));
        {
            let t = sad.load();
            let all: Vec<Arc<Sa>> = t.iter().cloned().collect();
            for chunk in all.chunks(100_000) {
                control.apply(chunk.iter().cloned().map(SadOp::Insert));
            }
        }
        // SAs the updater installs and removes (SPIs outside the installed set).
        let pool: Vec<Arc<Sa>> = (0..2000u32).map(|i| sa(0x8000_0000 + i)).collect();
        let order: Vec<u32> = (0..LOOKUPS).map(|_| spis[rng.random_range(0..n)]).collect();
        // Warm-up.
        run_lookups(&sad, &order, true);
        // Ours (wall, cpu) per round, and dpdk-test-sad's run of the same
        // round, the two back to back on CPU 0 in an order that alternates.
        let (mut burst, mut single) = (vec![], vec![]);
        let mut dpdk: Vec<DpdkRun> = vec![];
        let mut have_dpdk = true;
        // Per round: idle, updating (same table) and control (another
        // table), in an order that rotates from round to round; the
        // per-round ratios pair phases measured seconds apart.
        let (mut idle, mut busy, mut ctrl) = (vec![], vec![], vec![]);
        let (mut r_idle, mut r_ctrl) = (vec![], vec![]);
        let (mut ch_same, mut ch_ctrl) = (Churn::default(), Churn::default());
        let loads = |sad: &Sad| -> f64 {
            // Passes of LOOKUPS until PHASE has passed (at least 3), so that
            // a phase spans many update ticks (10 ms each).
            let t = Instant::now();
            let mut v = vec![];
            while v.len() < 3 || t.elapsed() < PHASE {
                v.push(run_lookups(sad, &order, true).1);
            }
            median(&v)
        };
        for round in 0..trials {
            // Ours: one untimed pass first, as dpdk-test-sad's table is
            // warm from its build when it times its lookups.
            let ours = || {
                run_lookups(&sad, &order, true);
                (
                    run_lookups(&sad, &order, true),
                    run_lookups(&sad, &order, false),
                )
            };
            if round % 2 == 1 {
                let (b, s) = ours();
                burst.push(b);
                single.push(s);
            }
            if have_dpdk {
                match dpdk_sad(n, dpdk_dir) {
                    Some(d) => dpdk.push(d),
                    None => have_dpdk = false,
                }
            }
            if round % 2 == 0 {
                let (b, s) = ours();
                burst.push(b);
                single.push(s);
            }
            let mut got = [0.0f64; 3];
            for k in 0..3 {
                let phase = (k + round) % 3;
                if phase == 0 {
                    got[0] = loads(&sad);
                    continue;
                }
                let target = if phase == 1 {
                    sad.clone()
                } else {
                    control.clone()
                };
                let stop = Arc::new(AtomicBool::new(false));
                let prog = Arc::new(Progress::default());
                let u = {
                    let (stop, pool, prog) = (stop.clone(), pool.clone(), prog.clone());
                    std::thread::spawn(move || {
                        pin(1);
                        updater(target, stop, pool, RATE, &prog)
                    })
                };
                // Measure once removals run too (after 10 ticks) and the
                // updater is on schedule (not catching up on ticks missed
                // while it waited for a CPU, which would count a burst of
                // catching up in the window's rate).
                while prog.removals.load(Ordering::Relaxed) == 0
                    || !prog.on_time.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let (s0, t0) = (prog.snap(), Instant::now());
                got[phase] = loads(&sad);
                let (s1, wall) = (prog.snap(), t0.elapsed().as_secs_f64());
                stop.store(true, Ordering::Relaxed);
                u.join().unwrap();
                let acc = if phase == 1 {
                    &mut ch_same
                } else {
                    &mut ch_ctrl
                };
                acc.installs += s1[0] - s0[0];
                acc.removals += s1[1] - s0[1];
                acc.applies += s1[2] - s0[2];
                acc.cpu += (s1[3] - s0[3]) as f64 * 1e-9;
                acc.wall += wall;
            }
            idle.push(got[0]);
            busy.push(got[1]);
            ctrl.push(got[2]);
            r_idle.push(got[1] / got[0]);
            r_ctrl.push(got[1] / got[2]);
        }
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let worst = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        let spread = |v: &[f64]| format!("{:.2} [{:.2}-{:.2}]", median(v), best(v), worst(v));
        let churn = |c: &Churn| {
            format!(
                "{:.0} installs/s and {:.0} removals/s (target {RATE} each), {:.1} % of a core, {:.0} us CPU per apply",
                c.installs as f64 / c.wall.max(1e-9),
                c.removals as f64 / c.wall.max(1e-9),
                100.0 * c.cpu / c.wall.max(1e-9),
                1e6 * c.cpu / (c.applies.max(1) as f64)
            )
        };
        let slow = median(&r_idle) - 1.0;
        let slow_ctrl = median(&r_ctrl) - 1.0;
        let col = |v: &[(f64, f64)], k: usize| -> Vec<f64> {
            v.iter().map(|p| if k == 0 { p.0 } else { p.1 }).collect()
        };
        let (bw, bc, sw, sc) = (
            col(&burst, 0),
            col(&burst, 1),
            col(&single, 0),
            col(&single, 1),
        );
        // Our CPU share while timing: CPU time over wall time of the pass.
        let b_share: Vec<f64> = burst.iter().map(|p| p.1 / p.0).collect();
        println!(
            "# sad/{n}/{tag}: reader ns per lookup, median [min-max] of {trials} rounds: burst wall {} (CPU {}, CPU/wall {}); single wall {} (CPU {}); idle CPU {}; while updating CPU {}; control (the updater churns another table) CPU {}; per-round ratio updating/idle {}, updating/control {}",
            spread(&bw),
            spread(&bc),
            spread(&b_share),
            spread(&sw),
            spread(&sc),
            spread(&idle),
            spread(&busy),
            spread(&ctrl),
            spread(&r_idle),
            spread(&r_ctrl),
        );
        println!(
            "# sad/{n}/{tag}: updater on the same table: {}; on the control table: {}; index {index:.1} B/SA; load average {}",
            churn(&ch_same),
            churn(&ch_ctrl),
            loadavg()
        );
        let rate = |c: &Churn| c.installs as f64 / c.wall.max(1e-9);
        let share = |c: &Churn| 100.0 * c.cpu / c.wall.max(1e-9);
        if !dpdk.is_empty() && dpdk.len() == burst.len() {
            let hz = median(&dpdk.iter().map(|d| d.hz).collect::<Vec<_>>());
            let c = |ns: f64| ns * hz / 1e9;
            let dc: Vec<f64> = dpdk.iter().map(|d| d.cycles).collect();
            let d_share: Vec<f64> = dpdk.iter().map(|d| d.cpu_share).collect();
            // Per round: ours (wall clock in TSC cycles) over dpdk-test-sad
            // (TSC cycles) of the same round, measured back to back.
            let rb: Vec<f64> = bw.iter().zip(&dc).map(|(w, d)| c(*w) / d).collect();
            let rs: Vec<f64> = sw.iter().zip(&dc).map(|(w, d)| c(*w) / d).collect();
            let rb_cpu: Vec<f64> = bc.iter().zip(&dc).map(|(w, d)| c(*w) / d).collect();
            let cyc = median(&dc);
            println!(
                "# dpdk-test-sad {n}/{tag}: TSC cycles per lookup per round {dc:.1?}, TSC {:.3} GHz; process CPU/wall per round {d_share:.2?} (whole process: EAL init, table build, lookups); ours burst TSC cycles per round {:.1?}, CPU/wall {b_share:.2?}; per-round ratio burst {}, single {}, burst on CPU time (not like for like) {}; load average {}",
                hz / 1e9,
                bw.iter().map(|w| c(*w)).collect::<Vec<_>>(),
                spread(&rb),
                spread(&rs),
                spread(&rb_cpu),
                loadavg()
            );
            println!(
                "sad/{n}/{tag}/lookup-burst: ours {:.1} cycles, reference {cyc:.1} cycles (dpdk-test-sad), ratio {:.2}",
                c(median(&bw)),
                median(&rb)
            );
            println!(
                "sad/{n}/{tag}/lookup-single: ours {:.1} cycles, reference {cyc:.1} cycles (dpdk-test-sad), ratio {:.2}",
                c(median(&sw)),
                median(&rs)
            );
            println!(
                "sad/{n}/{tag}/lookup-burst-while-updating: ours {:.1} cycles, reference {:.1} cycles (ours idle, alternating rounds), ratio {:.2}",
                c(median(&busy)),
                c(median(&idle)),
                1.0 + slow
            );
            println!(
                "sad/{n}/{tag}/lookup-burst-while-updating-vs-control: ours {:.1} cycles, reference {:.1} cycles (ours while the same updater churns another table), ratio {:.2}",
                c(median(&busy)),
                c(median(&ctrl)),
                1.0 + slow_ctrl
            );
            md += &format!(
                "| {tag} | {n} | {:.1} ({:.2}) | {:.1} | {cyc:.1} [{:.1}-{:.1}] | {} | {:.2} / {:.2} | {:.1} | {:.1} | {} | {} | {:.0}/s, {:.1} % | {index:.1} | {} |\n",
                c(median(&bw)),
                median(&bw),
                c(median(&sw)),
                best(&dc),
                worst(&dc),
                spread(&rb),
                median(&b_share),
                median(&d_share),
                c(median(&idle)),
                c(median(&busy)),
                spread(&r_idle),
                spread(&r_ctrl),
                rate(&ch_same),
                share(&ch_same),
                loadavg()
            );
        } else {
            println!(
                "sad/{n}/{tag}/lookup-burst: ours {:.2} ns, reference unavailable (dpdk-test-sad not installed)",
                median(&bw)
            );
            md += &format!(
                "| {tag} | {n} | - ({:.2}) | - | - | - | - | {:.2} ns | {:.2} ns | {} | {} | {:.0}/s, {:.1} % | {index:.1} | {} |\n",
                median(&bw),
                median(&idle),
                median(&busy),
                spread(&r_idle),
                spread(&r_ctrl),
                rate(&ch_same),
                share(&ch_same),
                loadavg()
            );
        }
    }
    // `--lookups-only`: skip the memory part (before/after comparisons).
    if !std::env::args().any(|a| a == "--lookups-only") {
        md += &memory_per_sa();
    }
    println!("\n{md}");
    if let Ok(path) = std::env::var("SAD_BENCH_MD") {
        std::fs::write(&path, &md).unwrap_or_else(|e| eprintln!("cannot write {path}: {e}"));
    }
}
