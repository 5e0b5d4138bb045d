//! ESP encap on DPDK `net_null` ports with 1 and 2 workers: the dataplane's
//! own worker loop (`dataplane::worker::Worker`: Ethernet demux, SPD lookup,
//! grouping by SA, `esp::encap_burst` in the mbufs, routing, Ethernet
//! rewrite, TX) on `net_null0` (inside, receives) and `net_null1` (outside,
//! `no-rx=1`, discards what it is sent), one RX/TX queue pair per worker.
//!
//! `net_null` hands out mbufs of `--size` bytes whose contents are whatever
//! the pool held; the only "generator" is a wrapper around the worker's
//! backend that writes 42 bytes of Ethernet/IPv4/UDP header into each
//! received mbuf (the payload bytes are left as they are: the engine
//! encrypts whatever is there). Flows: `--sas` SAs (AES-128-GCM tunnels,
//! one policy each), worker *w* receives only the flows of SAs *k* with
//! *k mod workers = w* (as RSS would spread them), 4 flows per burst of 32.
//! So no SA is shared between workers.
//!
//! Usage (root, inside a network namespace: the ports get TAP interfaces
//! `lan`/`wan` for the exception path, as in production):
//!   dpdk_scale --workers 1|2 [--secs 4] [--sas 64] [--size 64] [--cores 0,1]
//! Prints one line:
//!   `scale workers=W: packets P wall S s cpu C0,C1 s -> M Mpps wall, K Mpps per worker CPU-second each`
//! `bench/e2e/dpdk_scale.sh` runs both counts alternately and prints the
//! ratio. Time: per worker thread CPU time (`CLOCK_THREAD_CPUTIME_ID`,
//! read by the worker itself around its loop) and wall clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::crypto::{Backend as CryptoBackend, EncrAlg, IntegAlg, Key, Suite};
use dataplane::io::dpdk::{Dpdk, DpdkConfig, DpdkPortSpec, KernelPath};
use dataplane::io::{Burst, PacketIo, PortStats, TxResult};
use dataplane::pkt::PacketBuf;
use dataplane::sa::{
    DfMode, Direction, Lifetime, Mode, Policy, PolicyAction, PortRange, Sa, SaParams, Sad, Spd,
    TrafficSelector,
};
use dataplane::worker::fib::{Fib, FibHandle, Link, Neighbour, Route, RouteKind};
use dataplane::worker::netlink::Resolver;
use dataplane::worker::{
    IdlePolicy, PortConf, PortRole, Shared, Worker, WorkerConf, WorkerCounters,
};

const PEER: Ipv4Addr = Ipv4Addr::new(172, 16, 2, 5);
const LOCAL: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 5);
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

struct Args {
    workers: usize,
    secs: f64,
    sas: u32,
    size: usize,
    cores: Vec<usize>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        workers: 1,
        secs: 4.0,
        sas: 64,
        size: 64,
        cores: vec![0, 1],
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
        let bad = |e: String| format!("{f} {v}: {e}");
        match f.as_str() {
            "--workers" => a.workers = v.parse().map_err(|e| bad(format!("{e}")))?,
            "--secs" => a.secs = v.parse().map_err(|e| bad(format!("{e}")))?,
            "--sas" => a.sas = v.parse().map_err(|e| bad(format!("{e}")))?,
            "--size" => a.size = v.parse().map_err(|e| bad(format!("{e}")))?,
            "--cores" => {
                a.cores = v
                    .split(',')
                    .map(|c| c.parse().map_err(|e| bad(format!("{e}"))))
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown option {f}")),
        }
    }
    if !(1..=2).contains(&a.workers) || a.cores.len() < a.workers {
        return Err("--workers 1 or 2, with as many --cores".into());
    }
    if !(64..=1500).contains(&a.size) || a.sas < a.workers as u32 {
        return Err("--size 64..=1500, --sas at least --workers".into());
    }
    Ok(a)
}

/// Inner flow `k`: 10.1.k.1 -> 10.2.k.1 (k < 256), UDP.
fn flow_addrs(k: u32) -> (Ipv4Addr, Ipv4Addr) {
    let (hi, lo) = ((k >> 8) as u8, k as u8);
    (
        Ipv4Addr::new(10, 1 + hi, lo, 1),
        Ipv4Addr::new(10, 2 + hi, lo, 1),
    )
}

fn sa_params(k: u32) -> SaParams {
    let (src, dst) = flow_addrs(k);
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    SaParams {
        spi: 0x1000 + k,
        direction: Direction::Outbound,
        mode: Mode::Tunnel,
        suite,
        enc_key: Key::new((0..20).map(|i| (i as u8) ^ k as u8).collect()),
        auth_key: Key::default(),
        esn: false,
        replay_window: 0,
        local_addr: IpAddr::V4(LOCAL),
        remote_addr: IpAddr::V4(PEER),
        encap: None,
        selectors: vec![selector(src, dst)],
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: true,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: k + 1,
    }
}

fn selector(src: Ipv4Addr, dst: Ipv4Addr) -> TrafficSelector {
    let any = PortRange {
        start: 0,
        end: 65535,
    };
    TrafficSelector {
        local: ipnet::IpNet::new(IpAddr::V4(src), 32).unwrap(),
        remote: ipnet::IpNet::new(IpAddr::V4(dst), 32).unwrap(),
        proto: 0,
        local_ports: any,
        remote_ports: any,
    }
}

/// Ethernet + IPv4 + UDP header of flow `k` for a frame of `size` bytes.
fn header(k: u32, size: usize, dst_mac: [u8; 6]) -> [u8; 42] {
    let (src, dst) = flow_addrs(k);
    let mut h = [0u8; 42];
    h[..6].copy_from_slice(&dst_mac);
    h[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (size - 14) as u16;
    let ip = &mut h[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = dataplane::wire::checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut h[34..42];
    udp[0..2].copy_from_slice(&1000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&2000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    h
}

/// The worker's backend with the header writer on port 0's receive path.
struct Gen<B: PacketIo> {
    inner: B,
    headers: Vec<[u8; 42]>,
    size: usize,
    burst_no: usize,
}

impl<B: PacketIo> PacketIo for Gen<B> {
    type Pkt = B::Pkt;

    fn num_ports(&self) -> usize {
        self.inner.num_ports()
    }

    #[inline]
    fn rx_burst(&mut self, port: usize, out: &mut Burst<Self::Pkt>, max: usize) -> usize {
        let first = out.len();
        let n = self.inner.rx_burst(port, out, max);
        if port == 0 && n > 0 {
            // 4 flows per burst, 8 packets each, rotating over this worker's SAs.
            let nf = self.headers.len();
            let b = self.burst_no;
            self.burst_no = self.burst_no.wrapping_add(1);
            for (i, p) in out[first..].iter_mut().enumerate() {
                let len = p.len();
                if len > self.size {
                    p.trim_back(len - self.size);
                } else if len < self.size && !p.append(self.size - len) {
                    continue;
                }
                let h = &self.headers[(b * 4 + i / 8) % nf];
                if let Some(d) = p.data_mut().first_chunk_mut::<42>() {
                    *d = *h;
                }
            }
        }
        n
    }

    fn tx_burst(&mut self, port: usize, pkts: &mut Burst<Self::Pkt>) -> TxResult {
        self.inner.tx_burst(port, pkts)
    }
    fn free(&mut self, pkt: Self::Pkt) {
        self.inner.free(pkt)
    }
    fn to_kernel(&mut self, port: usize, pkt: Self::Pkt) {
        self.inner.to_kernel(port, pkt)
    }
    fn alloc(&mut self) -> Option<Self::Pkt> {
        self.inner.alloc()
    }
    fn wait_rx(&mut self, timeout_us: u32) {
        self.inner.wait_rx(timeout_us)
    }
    fn port_stats(&mut self, port: usize) -> PortStats {
        self.inner.port_stats(port)
    }
}

/// This thread's CPU time in seconds.
fn cpu_now() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn run(a: &Args) -> Result<(), String> {
    let eal = format!(
        "-l {} --no-huge -m 1024 --no-pci --no-shconf --log-level=warning \
         --vdev net_null0,size={} --vdev net_null1,no-rx=1",
        a.cores[0], a.size
    );
    let dpdk = Arc::new(
        Dpdk::init(&DpdkConfig {
            eal_args: eal.split_whitespace().map(String::from).collect(),
            ports: vec![
                DpdkPortSpec {
                    name: "net_null0".into(),
                    kernel: KernelPath::Tap {
                        ifname: "lan".into(),
                    },
                },
                DpdkPortSpec {
                    name: "net_null1".into(),
                    kernel: KernelPath::Tap {
                        ifname: "wan".into(),
                    },
                },
            ],
            workers: a.workers,
            ..DpdkConfig::default()
        })
        .map_err(|e| format!("DPDK: {e}"))?,
    );
    let (lan, wan) = (
        dpdk.ifindex(0).ok_or("no lan ifindex")?,
        dpdk.ifindex(1).ok_or("no wan ifindex")?,
    );
    let (lan_mac, wan_mac) = (
        dpdk.mac(0).ok_or("no lan MAC")?,
        dpdk.mac(1).ok_or("no wan MAC")?,
    );

    // Forwarding state by hand (no netlink thread): the two links, a route
    // to the peer on wan and its neighbour entry.
    let mut fib = Fib::default();
    for (ifindex, name, mac, addr) in [
        (lan, "lan", lan_mac, Ipv4Addr::new(10, 0, 0, 254)),
        (wan, "wan", wan_mac, LOCAL),
    ] {
        fib.links.insert(
            ifindex,
            Link {
                ifindex,
                name: name.into(),
                mac,
                mtu: 1500,
                addrs4: vec![addr],
                addrs6: vec![],
            },
        );
        fib.local.insert(IpAddr::V4(addr));
    }
    fib.v4.insert(
        u32::from(Ipv4Addr::new(172, 16, 2, 0)),
        24,
        Route {
            kind: RouteKind::Unicast,
            oif: wan,
            gateway: None,
            mtu: 0,
        },
    );
    // The inner destinations route toward wan too (the tunnel's remote subnets).
    fib.v4.insert(
        u32::from(Ipv4Addr::new(10, 2, 0, 0)),
        15,
        Route {
            kind: RouteKind::Unicast,
            oif: wan,
            gateway: Some(IpAddr::V4(PEER)),
            mtu: 0,
        },
    );
    fib.neigh.insert(
        (wan, IpAddr::V4(PEER)),
        Neighbour {
            mac: PEER_MAC,
            stale: false,
        },
    );
    fib.generation = 1;

    let spd = Arc::new(Spd::new());
    let sad_out = Arc::new(Sad::with_capacity(a.sas as usize));
    let mut pols = Vec::new();
    for k in 0..a.sas {
        let sa = Sa::new(sa_params(k), CryptoBackend::Auto).map_err(|e| format!("SA {k}: {e}"))?;
        let (src, dst) = flow_addrs(k);
        pols.push(Policy {
            id: k + 1,
            tunnel_id: k + 1,
            selector: selector(src, dst),
            action: PolicyAction::Protect { spi: 0x1000 + k },
            priority: 10,
        });
        sad_out.insert(Arc::new(sa));
    }
    spd.insert(pols);
    let backend_name = sad_out.get(0x1000).map(|s| s.backend()).unwrap_or("?");

    let (req_tx, _req_rx) = sync_channel(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Shared {
        fib: FibHandle::new(fib),
        spd,
        sad_out,
        sad_in: Arc::new(Sad::default()),
        resolver: Resolver::new(req_tx),
        stop: stop.clone(),
        tun: None,
        expected_spis: Arc::default(),
    };
    let ports = vec![
        PortConf {
            ifindex: lan,
            role: PortRole::Inside,
        },
        PortConf {
            ifindex: wan,
            role: PortRole::Outside,
        },
    ];
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let mut stats = Vec::new();
    let start = Arc::new(std::sync::Barrier::new(a.workers + 1));
    for w in 0..a.workers {
        let st = Arc::new(WorkerCounters::default());
        stats.push(st.clone());
        let backend = dpdk.backend(w).map_err(|e| format!("worker {w}: {e}"))?;
        let headers: Vec<[u8; 42]> = (0..a.sas)
            .filter(|k| *k as usize % a.workers == w)
            .map(|k| header(k, a.size, lan_mac))
            .collect();
        let conf = WorkerConf {
            index: w,
            burst: 32,
            idle: IdlePolicy::BusyPoll,
            ports: ports.clone(),
        };
        let (shared, d, start) = (shared.clone(), dpdk.clone(), start.clone());
        let core = core_ids.iter().find(|c| c.id == a.cores[w]).copied();
        let size = a.size;
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker{w}"))
                .spawn(move || -> Result<f64, String> {
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    let _reg = d.register_worker_thread().map_err(|e| e.to_string())?;
                    dataplane::crypto::warm_thread();
                    let gen = Gen {
                        inner: backend,
                        headers,
                        size,
                        burst_no: 0,
                    };
                    let mut worker = Worker::new(conf, gen, shared, st);
                    start.wait();
                    let c0 = cpu_now();
                    worker.run();
                    Ok(cpu_now() - c0)
                })
                .map_err(|e| e.to_string())?,
        );
    }
    start.wait();
    // Let the loops reach steady state, then measure a window.
    std::thread::sleep(Duration::from_millis(500));
    let count = |s: &[Arc<WorkerCounters>]| -> Vec<u64> {
        s.iter()
            .map(|x| x.encrypted.load(Ordering::Relaxed))
            .collect()
    };
    let e0 = count(&stats);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(a.secs));
    let e1 = count(&stats);
    let wall = t0.elapsed().as_secs_f64();
    // CPU time of the window: the workers' total minus the warm-up share is
    // not separable, so run the window to the end and count the total too.
    let total_before_stop = count(&stats);
    stop.store(true, Ordering::Relaxed);
    let mut cpus = Vec::new();
    for h in handles {
        cpus.push(h.join().map_err(|_| "worker panicked")??);
    }
    let drops: u64 = stats.iter().map(|s| s.drops.total()).sum();
    let window: Vec<u64> = e1.iter().zip(&e0).map(|(b, a)| b - a).collect();
    let pkts: u64 = window.iter().sum();
    // Per worker: packets over its whole run / its CPU time (steady state
    // dominates: the run is 0.5 s longer than the window).
    let per_cpu: Vec<f64> = total_before_stop
        .iter()
        .zip(&cpus)
        .map(|(n, c)| *n as f64 / c.max(1e-9) / 1e6)
        .collect();
    println!(
        "scale workers={} size={} sas={} backend={backend_name}: window packets {:?} in {wall:.2} s -> {:.3} Mpps wall; per worker {:?} Mpps per CPU-second (cpu {:?} s), sum {:.3}; drops {drops}",
        a.workers,
        a.size,
        a.sas,
        window,
        pkts as f64 / wall / 1e6,
        per_cpu.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>(),
        cpus.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>(),
        per_cpu.iter().sum::<f64>()
    );
    Ok(())
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("dpdk_scale: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("dpdk_scale: {e}");
        std::process::exit(1);
    }
}
