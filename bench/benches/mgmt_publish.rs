//! The management thread's publication at 4k, 100k and 1M SAs
//! (`Manager::publish`, called every 2 ms by `process::manage`): SA
//! counters to the shm, worker counters, SA events, heartbeat.
//!
//! Before pub14, one call published every SA of both SADs (a `HashMap`
//! lookup of its shm slot, then its counters) and walked every SA again
//! for pending events. Both are reproduced here with the same public
//! calls (`old`: `sa_stats` + `DataplaneEnd::publish_sa` per SA, slots
//! looked up in a `HashMap<(spi, direction), slot>`; `old events`: every SA's
//! `has_events`), next to the calls as they are now (`publish`: one slice
//! of SAs, events only after a raise; `publish_all`: every SA from the
//! side list; `collect_events` of both SADs with nothing raised).
//!
//! SAs are installed through the shm command ring (half inbound, half
//! outbound), so every SA has a slot and a record, as in the process. The
//! region is in /dev/shm. Wall-clock times, main thread pinned to CPU 0,
//! on a shared machine: the load average is printed.
//!
//! Run: `cargo bench -p espresso-bench --bench mgmt_publish [-- --quick]`
//! (`--quick`: 4k and 100k only).

use std::collections::HashMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::sa::{DfMode, Direction, Lifetime, Mode, SaParams, Sad, Spd};
use dataplane::shm::{ControlEnd, Geometry};
use dataplane::worker::mgmt::{sa_stats, Manager, Tables, PUBLISH_ROUNDS};
use dataplane::worker::WorkerCounters;

fn params(spi: u32, direction: Direction) -> SaParams {
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    let (l, r): (IpAddr, IpAddr) = ("192.0.2.2".parse().unwrap(), "192.0.2.1".parse().unwrap());
    SaParams {
        spi,
        direction,
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
    }
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

/// "median [min-max]" of `f`'s wall times, in ms: at least `min_reps`
/// calls and until `min_time` has passed (at most 100,000 calls).
fn time_ms(min_reps: usize, min_time: Duration, mut f: impl FnMut()) -> String {
    let mut v = vec![];
    let t0 = Instant::now();
    while v.len() < min_reps || (t0.elapsed() < min_time && v.len() < 100_000) {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let s = sorted(&v);
    format!(
        "{:.4} ms median [{:.4}-{:.4}], {} calls",
        s[s.len() / 2],
        s[0],
        s[s.len() - 1],
        s.len()
    )
}

fn dir_of(i: u32) -> Direction {
    if i.is_multiple_of(2) {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[u32] = if quick {
        &[4096, 100_000]
    } else {
        &[4096, 100_000, 1_000_000]
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
    println!(
        "# CPU: {cpu}; slice {} SAs per call at 4k, 1/{PUBLISH_ROUNDS} of them from {} on",
        dataplane::worker::mgmt::PUBLISH_SLICE,
        dataplane::worker::mgmt::PUBLISH_SLICE * PUBLISH_ROUNDS
    );
    let shm_dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    for &n in sizes {
        let path = shm_dir.join(format!(
            "espresso-bench-mgmt-{}-{n}.shm",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let geo = Geometry {
            max_sas: n,
            ..Geometry::default()
        };
        let mut ctl = ControlEnd::attach(&path, &geo).unwrap();
        let tables = Tables {
            spd: Arc::new(Spd::new()),
            sad_in: Arc::new(Sad::with_capacity(n as usize / 2)),
            sad_out: Arc::new(Sad::with_capacity(n as usize / 2)),
            crypto: Backend::Auto,
        };
        let mut m = Manager::attach(&path, tables.clone(), 1).unwrap();
        let t = Instant::now();
        // The old publish's map: (spi, direction) -> slot.
        let mut slots: HashMap<(u32, Direction), u32> = HashMap::new();
        for i in 0..n {
            let (spi, d) = (0x1000 + i, dir_of(i));
            ctl.add_sa(i, u64::from(i), &params(spi, d)).unwrap();
            slots.insert((spi, d), i);
            if i % 1000 == 999 {
                m.apply_commands().unwrap();
            }
        }
        m.apply_commands().unwrap();
        assert_eq!(tables.sad_in.len() + tables.sad_out.len(), n as usize);
        println!(
            "# {n} SAs installed through the ring in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let ws = vec![Arc::new(WorkerCounters::default())];
        let reps = if n >= 1_000_000 { 5 } else { 20 };
        let long = Duration::from_millis(1500);

        let old = time_ms(reps, long, || {
            for d in [Direction::Inbound, Direction::Outbound] {
                let sad = match d {
                    Direction::Inbound => &tables.sad_in,
                    Direction::Outbound => &tables.sad_out,
                };
                let t = sad.load();
                for sa in t.iter() {
                    if let Some(slot) = slots.get(&(sa.spi(), d)) {
                        let _ = m.end().publish_sa(*slot, &sa_stats(sa));
                    }
                }
            }
        });
        let old_events = time_ms(reps, long, || {
            let mut k = 0usize;
            for sad in [&tables.sad_in, &tables.sad_out] {
                for sa in sad.load().iter() {
                    k += usize::from(sa.has_events());
                }
            }
            black_box(k);
        });
        let all = time_ms(reps, long, || m.publish_all(&ws));
        let now = time_ms(200, long, || m.publish(&ws));
        let mut evs = vec![];
        let events = time_ms(1000, Duration::from_millis(200), || {
            evs.clear();
            let a = tables.sad_in.collect_events(&mut evs);
            let b = tables.sad_out.collect_events(&mut evs);
            black_box(a + b);
        });
        let slice = m.publish_slice();
        println!(
            "mgmt-publish/{n}/old (every SA, HashMap slot lookup): {old}; load {}",
            loadavg()
        );
        println!("mgmt-publish/{n}/old events walk (every SA's has_events): {old_events}");
        println!("mgmt-publish/{n}/publish_all (every SA, side list): {all}");
        println!(
            "mgmt-publish/{n}/publish (one call: {slice} SAs, workers, events, heartbeat): {now}; every SA within {} calls",
            (n as usize).div_ceil(slice)
        );
        println!(
            "mgmt-publish/{n}/collect_events both SADs, nothing raised: {events}; load {}",
            loadavg()
        );
        drop(m);
        drop(ctl);
        let _ = std::fs::remove_file(&path);
    }
}
