//! The dataplane process of one gateway (`espresso-dataplane`), as library
//! code: [`run`] takes resolved [`Options`] and runs until SIGTERM/SIGINT.
//! `main.rs` only parses the command line.
//!
//! Threads: one pinned worker per core given (each with its own queues on
//! the inside and outside ports: AF_PACKET sockets spread by fanout, or DPDK
//! RSS queues), a netlink thread following the kernel's routes and
//! neighbours, and the calling (management) thread, which installs SAs and
//! policies from shared memory and publishes counters.
//!
//! - [`options`]: the options, from the command line and `[dataplane]`.
//! - [`kernel`]: nftables, sysctls and the TUN routing table.
//! - [`static_sa`]: SAs and policies from a JSON file (no control process).
//! - [`stats`]: the counters file.

#![forbid(unsafe_code)]

pub mod kernel;
pub mod options;
pub mod static_sa;
pub mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use options::{Options, OptionsError};

use crate::io::afpacket::{self, AfPacket, AfPacketConfig, RxVersion, TxMode};
use crate::io::PacketIo;
use crate::sa::{Direction, Sad, Spd};
use crate::shm::{ShmError, TapWriter};
use crate::worker::mgmt::{Manager, Tables};
use crate::worker::netlink::{FibSync, Resolver};
use crate::worker::{IdlePolicy, PortConf, PortRole, Shared, Worker, WorkerConf, WorkerCounters};
use options::{IdleMode, IoBackendKind, RxRing, TxMethod};

/// Why the dataplane stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The signal handlers could not be installed.
    #[error("signal: {0}")]
    Signal(std::io::Error),
    /// The kernel could not be set up.
    #[error(transparent)]
    Kernel(#[from] kernel::KernelError),
    /// DPDK (EAL, pool, ports) could not be set up.
    #[cfg(feature = "dpdk")]
    #[error("DPDK: {0}")]
    Dpdk(#[from] crate::io::dpdk::DpdkIoError),
    /// A DPDK port is missing after initialisation.
    #[error("DPDK: no {0} port")]
    DpdkPort(&'static str),
    /// `--backend dpdk` in a build without DPDK.
    #[error("--backend dpdk: built without the dpdk feature")]
    DpdkNotBuilt,
    /// An interface or the TUN device could not be opened.
    #[error(transparent)]
    Io(#[from] afpacket::IoError),
    /// The static SA file was refused.
    #[error(transparent)]
    StaticSa(#[from] static_sa::StaticSaError),
    /// The netlink socket could not be opened.
    #[error("netlink: {0}")]
    Netlink(std::io::Error),
    /// A thread could not be started.
    #[error("thread {name}: {source}")]
    Thread {
        /// Thread name.
        name: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The shared-memory region could not be attached.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// A worker could not open its queues.
    #[error("worker {worker}: {why}")]
    Worker {
        /// Worker index.
        worker: usize,
        /// What failed.
        why: String,
    },
    /// A worker thread ended before reporting.
    #[error("a worker died during start-up")]
    WorkerDied,
}

/// Runs the dataplane until SIGTERM or SIGINT. Whatever the kernel was
/// changed for is undone when it returns.
pub fn run(opts: &Options) -> Result<(), ProcessError> {
    // Before any worker starts: each allocates its key caches of this size.
    crate::crypto::key_cache::set_entries(opts.key_cache_entries);
    // Signals only set the stop flag, from the start.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(ProcessError::Signal)?;
    }
    let _nft = if opts.configure_kernel {
        // AF_PACKET ports are kernel interfaces: their transit frames'
        // kernel copies are dropped at ingress.
        let ingress: Vec<&str> = match opts.backend {
            IoBackendKind::Afpacket => vec![opts.inside.as_str(), opts.outside.as_str()],
            IoBackendKind::Dpdk => Vec::new(),
        };
        Some(kernel::configure(&ingress)?)
    } else {
        kernel::warn_if_forwarding();
        None
    };
    // DPDK: EAL, pool and ports (with their TAP interfaces) before anything
    // looks up interfaces or follows the kernel's tables.
    let ports = Ports::open(opts)?;
    let (spd, sad_in, sad_out) = tables(opts)?;

    let sync = FibSync::new().map_err(ProcessError::Netlink)?;
    let fib = sync.handle();
    let (req_tx, req_rx) = sync_channel(1024);
    let nl_stop = stop.clone();
    let nl = spawn("netlink", move || sync.run(req_rx, nl_stop))?;

    let tun = match &opts.tun {
        Some(name) => {
            let t = crate::io::tun::Tun::open(name)?;
            kernel::tun_setup(name)?;
            Some(Arc::new(t))
        }
        None => None,
    };
    let shared = Shared {
        tun,
        fib: fib.clone(),
        spd: spd.clone(),
        sad_out: sad_out.clone(),
        sad_in: sad_in.clone(),
        resolver: Resolver::new(req_tx),
        stop: stop.clone(),
        expected_spis: Arc::default(),
    };
    let mut mgr = match &opts.shm {
        Some(path) => {
            let tables = Tables {
                spd: spd.clone(),
                sad_in: sad_in.clone(),
                sad_out: sad_out.clone(),
                crypto: opts.crypto,
            };
            let mut m = Manager::attach(path, tables, opts.cores.len() as u32)?;
            m.set_expected_spis(shared.expected_spis.clone());
            tracing::info!(
                "shared memory {} attached (dataplane generation {})",
                path.display(),
                m.end().generation()
            );
            Some(m)
        }
        None => None,
    };
    let workers = match start_workers(opts, &ports, &shared, mgr.as_ref()) {
        Ok(w) => w,
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    tracing::info!(
        "forwarding: inside {} (if {}), outside {} (if {}), cores {:?}, {}",
        opts.inside,
        ports.inside,
        opts.outside,
        ports.outside,
        opts.cores,
        match opts.backend {
            IoBackendKind::Afpacket => {
                let c = afpacket_config(opts);
                format!("AF_PACKET {:?} rx, {:?} tx", c.rx_version, c.tx_mode)
            }
            IoBackendKind::Dpdk => "DPDK".to_string(),
        }
    );
    if let Some(p) = &opts.stats_file {
        // A marker the scripts wait for.
        stats::write(p, &stats::collect(&workers.stats, &sad_in, &sad_out));
    }
    let mut tun_routes = opts
        .tun
        .as_ref()
        .map(|name| kernel::TunRoutes::new(name, ports.inside));
    let tables = (spd.as_ref(), sad_in.as_ref(), sad_out.as_ref());
    manage(opts, &stop, mgr.as_mut(), &workers.stats, tables, |spd| {
        if let Some(r) = tun_routes.as_mut() {
            r.sync(spd, &fib.load());
        }
    });
    for h in workers.handles {
        let _ = h.join();
    }
    let _ = nl.join();
    if let Some(p) = &opts.stats_file {
        stats::write(p, &stats::collect(&workers.stats, &sad_in, &sad_out));
    }
    Ok(())
}

fn spawn<F>(name: &str, f: F) -> Result<JoinHandle<()>, ProcessError>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|source| ProcessError::Thread {
            name: name.into(),
            source,
        })
}

/// The two ports: their interface indexes, and the DPDK instance with DPDK.
struct Ports {
    inside: u32,
    outside: u32,
    #[cfg(feature = "dpdk")]
    dpdk: Option<Arc<crate::io::dpdk::Dpdk>>,
}

impl Ports {
    fn open(opts: &Options) -> Result<Ports, ProcessError> {
        match opts.backend {
            #[cfg(feature = "dpdk")]
            IoBackendKind::Dpdk => {
                let d = init_dpdk(opts)?;
                tracing::info!("DPDK: {}", d.describe());
                Ok(Ports {
                    inside: d.ifindex(0).ok_or(ProcessError::DpdkPort("inside"))?,
                    outside: d.ifindex(1).ok_or(ProcessError::DpdkPort("outside"))?,
                    dpdk: Some(Arc::new(d)),
                })
            }
            #[cfg(not(feature = "dpdk"))]
            IoBackendKind::Dpdk => Err(ProcessError::DpdkNotBuilt),
            IoBackendKind::Afpacket => Ok(Ports {
                inside: afpacket::ifindex(&opts.inside)?,
                outside: afpacket::ifindex(&opts.outside)?,
                #[cfg(feature = "dpdk")]
                dpdk: None,
            }),
        }
    }

    fn conf(&self) -> Vec<PortConf> {
        vec![
            PortConf {
                ifindex: self.inside,
                role: PortRole::Inside,
            },
            PortConf {
                ifindex: self.outside,
                role: PortRole::Outside,
            },
        ]
    }
}

/// Sets up the DPDK backend from the options.
#[cfg(feature = "dpdk")]
fn init_dpdk(opts: &Options) -> Result<crate::io::dpdk::Dpdk, ProcessError> {
    use crate::io::dpdk::{Dpdk, DpdkConfig, DpdkPortSpec, KernelPath};
    use options::ExceptionPath;
    let kernel = |i: usize, tap: &str| {
        // One mode for both ports, or inside then outside (checked by Options).
        let mode = opts.exception[i.min(opts.exception.len() - 1)];
        match mode {
            ExceptionPath::Tap => KernelPath::Tap {
                ifname: tap.to_string(),
            },
            ExceptionPath::Kernel => KernelPath::Kernel { ifname: None },
        }
    };
    let cfg = DpdkConfig {
        eal_args: opts.eal.split_whitespace().map(str::to_string).collect(),
        ports: vec![
            DpdkPortSpec {
                name: opts.inside.clone(),
                kernel: kernel(0, &opts.inside_tap),
            },
            DpdkPortSpec {
                name: opts.outside.clone(),
                kernel: kernel(1, &opts.outside_tap),
            },
        ],
        workers: opts.cores.len(),
        mbufs: opts.mbufs,
        ..DpdkConfig::default()
    };
    Ok(Dpdk::init(&cfg)?)
}

/// The SPD, the inbound SAD and the outbound SAD.
type SaTables = (Arc<Spd>, Arc<Sad>, Arc<Sad>);

/// The SPD and SADs, with the static SAs and policies when given.
fn tables(opts: &Options) -> Result<SaTables, ProcessError> {
    let spd = Arc::new(Spd::new());
    let sad_in = Arc::new(Sad::default());
    let sad_out = Arc::new(Sad::default());
    if let Some(p) = &opts.static_sa {
        let (sas, pols) = static_sa::load(p, opts.crypto)?;
        for sa in sas {
            let sa = Arc::new(sa);
            match sa.direction() {
                Direction::Inbound => sad_in.insert(sa),
                Direction::Outbound => sad_out.insert(sa),
            };
        }
        spd.insert(pols);
        tracing::info!(
            "static SAs: {} inbound, {} outbound, {} policies",
            sad_in.len(),
            sad_out.len(),
            spd.load().len()
        );
    }
    Ok((spd, sad_in, sad_out))
}

fn afpacket_config(opts: &Options) -> AfPacketConfig {
    let mut cfg = AfPacketConfig {
        rx_version: match opts.rx_ring {
            RxRing::V2 => RxVersion::V2,
            RxRing::V3 => RxVersion::V3,
        },
        tx_mode: match opts.tx {
            TxMethod::Sendmmsg => TxMode::Sendmmsg,
            TxMethod::Ring => TxMode::Ring,
        },
        frame_nr: opts.frames,
        block_timeout_ms: opts.v3_block_timeout_ms,
        ..Default::default()
    };
    if opts.cores.len() > 1 {
        cfg.fanout_group = Some((std::process::id() & 0x7fff) as u16);
    }
    cfg
}

/// The running workers: their threads and counters (`(core, counters)`).
struct Workers {
    handles: Vec<JoinHandle<()>>,
    stats: Vec<(usize, Arc<WorkerCounters>)>,
}

/// How a worker gets its queues.
enum Queues {
    /// Opened on the worker's own thread (rings are worker-local, not Send).
    AfPacket {
        ifaces: Vec<String>,
        cfg: AfPacketConfig,
    },
    /// Taken here and moved to the worker thread.
    #[cfg(feature = "dpdk")]
    Dpdk(
        Arc<crate::io::dpdk::Dpdk>,
        Box<crate::io::dpdk::DpdkBackend>,
    ),
}

/// Starts one worker per core and waits until each has its queues.
fn start_workers(
    opts: &Options,
    ports: &Ports,
    shared: &Shared,
    mgr: Option<&Manager>,
) -> Result<Workers, ProcessError> {
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut w = Workers {
        handles: Vec::new(),
        stats: Vec::new(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), (usize, String)>>();
    for (i, core) in opts.cores.iter().copied().enumerate() {
        let stats = Arc::new(WorkerCounters::default());
        w.stats.push((core, stats.clone()));
        let conf = WorkerConf {
            index: i,
            burst: opts.burst,
            idle: match opts.idle {
                IdleMode::Busy => IdlePolicy::BusyPoll,
                IdleMode::Backoff => IdlePolicy::Backoff {
                    after: 64,
                    sleep_us: opts.idle_sleep_us,
                },
            },
            ports: ports.conf(),
        };
        let queues = match () {
            #[cfg(feature = "dpdk")]
            () if ports.dpdk.is_some() => {
                let d = ports.dpdk.clone().ok_or(ProcessError::DpdkPort("inside"))?;
                let b = d.backend(i).map_err(|e| ProcessError::Worker {
                    worker: i,
                    why: e.to_string(),
                })?;
                Queues::Dpdk(d, Box::new(b))
            }
            () => Queues::AfPacket {
                ifaces: vec![opts.inside.clone(), opts.outside.clone()],
                cfg: afpacket_config(opts),
            },
        };
        let tap = match mgr.map(|m| m.end().tap_writer(i as u32)) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                tracing::warn!("worker{i}: no decrypted-traffic tap: {e}");
                None
            }
            None => None,
        };
        let start = WorkerStart {
            index: i,
            core: core_ids.iter().find(|c| c.id == core).copied(),
            sched_fifo: opts.sched_fifo,
            conf,
            queues,
            shared: shared.clone(),
            stats,
            tap,
            ready: ready_tx.clone(),
        };
        w.handles
            .push(spawn(&format!("worker{i}"), move || start.run())?);
    }
    drop(ready_tx);
    for _ in 0..w.handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err((worker, why))) => return Err(ProcessError::Worker { worker, why }),
            Err(_) => return Err(ProcessError::WorkerDied),
        }
    }
    Ok(w)
}

/// What a worker thread starts from.
struct WorkerStart {
    index: usize,
    core: Option<core_affinity::CoreId>,
    sched_fifo: i32,
    conf: WorkerConf,
    queues: Queues,
    shared: Shared,
    stats: Arc<WorkerCounters>,
    tap: Option<TapWriter>,
    ready: Sender<Result<(), (usize, String)>>,
}

impl WorkerStart {
    /// The worker thread: pins itself, opens its queues, reports, runs.
    fn run(self) {
        let i = self.index;
        if let Some(c) = self.core {
            core_affinity::set_for_current(c);
        }
        let cache = crate::crypto::warm_thread();
        tracing::info!(
            "worker{i}: key caches {} KiB (one set each; {} entries once a third SA of their kind needs one)",
            cache / 1024,
            crate::crypto::key_cache::entries(),
        );
        if self.sched_fifo > 0 {
            if let Err(e) = crate::io::set_fifo_priority(self.sched_fifo) {
                tracing::warn!("worker{i}: SCHED_FIFO {}: {e}", self.sched_fifo);
            }
        }
        match self.queues {
            #[cfg(feature = "dpdk")]
            Queues::Dpdk(d, backend) => {
                // An lcore id for this thread: per-lcore mempool caches.
                let _reg = match d.register_worker_thread() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = self.ready.send(Err((i, e.to_string())));
                        return;
                    }
                };
                let _ = self.ready.send(Ok(()));
                run_worker(
                    i,
                    Worker::new(self.conf, *backend, self.shared, self.stats),
                    self.tap,
                );
            }
            Queues::AfPacket { ifaces, cfg } => {
                let backend = match AfPacket::open(&ifaces, &cfg) {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = self.ready.send(Err((i, e.to_string())));
                        return;
                    }
                };
                let _ = self.ready.send(Ok(()));
                run_worker(
                    i,
                    Worker::new(self.conf, backend, self.shared, self.stats),
                    self.tap,
                );
            }
        }
    }
}

/// Runs one worker until stop, then logs its queues' counters.
fn run_worker<B: PacketIo>(i: usize, mut w: Worker<B>, tap: Option<TapWriter>) {
    if let Some(t) = tap {
        w.set_tap(t);
    }
    w.run();
    let b = w.backend_mut();
    for p in 0..b.num_ports() {
        let s = b.port_stats(p);
        tracing::info!("worker{i} port {p}: {s:?}");
    }
}

/// The management loop until stop: shared-memory commands every
/// millisecond and counters every 2 ms (with a control process), the TUN
/// routes every 100 ms (`tun_sync`); the SAs' 32-bit drop slots that
/// reached 2^31 folded into their totals: a look for fold requests every
/// `sa::FOLD_PERIOD` (100 ms), then one chunk of `sa::FOLD_CHUNK` SAs per
/// 1 ms tick until the walk is done (a slot must be folded before 2^31
/// more drops of one reason reach it, see `sa/drops.rs`); the stats file
/// every `--stats-interval-ms` from a thread of its own.
fn manage(
    opts: &Options,
    stop: &AtomicBool,
    mut mgr: Option<&mut Manager>,
    workers: &[(usize, Arc<WorkerCounters>)],
    (spd, sad_in, sad_out): (&Spd, &Sad, &Sad),
    mut tun_sync: impl FnMut(&Spd),
) {
    let worker_stats: Vec<Arc<WorkerCounters>> = workers.iter().map(|(_, s)| s.clone()).collect();
    let file_every = Duration::from_millis(opts.stats_interval_ms.max(10));
    let tick = if mgr.is_some() {
        Duration::from_millis(1)
    } else {
        file_every.min(crate::sa::FOLD_PERIOD)
    };
    let mut last_tun_sync = Instant::now() - Duration::from_secs(1);
    let mut last_publish = Instant::now();
    let mut last_fold = Instant::now();
    // A fold walk under way: one chunk per tick, ticks of 1 ms at most.
    let mut folding = false;
    std::thread::scope(|scope| {
        // The stats file from a thread of its own: a write or rename can
        // block for seconds on a busy disk (seen: 2.5 s with parallel
        // builds), and the SA commands must not wait behind it (a new
        // inbound SA applied late loses the peer's first packets on it).
        if let Some(p) = &opts.stats_file {
            let spawned = std::thread::Builder::new()
                .name("stats-file".into())
                .spawn_scoped(scope, move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(file_every);
                        stats::write(p, &stats::collect(workers, sad_in, sad_out));
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("stats file thread: {e}; no stats file");
            }
        }
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(if folding {
                tick.min(Duration::from_millis(1))
            } else {
                tick
            });
            if let Some(m) = mgr.as_deref_mut() {
                if let Err(e) = m.apply_commands() {
                    tracing::warn!("shared memory: {e}");
                }
                if last_publish.elapsed() >= Duration::from_millis(2) {
                    m.publish(&worker_stats);
                    last_publish = Instant::now();
                }
            }
            if folding || last_fold.elapsed() >= crate::sa::FOLD_PERIOD {
                let a = sad_in.fold_drops_step(crate::sa::FOLD_CHUNK);
                let b = sad_out.fold_drops_step(crate::sa::FOLD_CHUNK);
                folding = !(a.done && b.done);
                last_fold = Instant::now();
            }
            if opts.tun.is_some() && last_tun_sync.elapsed() >= Duration::from_millis(100) {
                tun_sync(spd);
                last_tun_sync = Instant::now();
            }
        }
    });
    if let Some(m) = mgr {
        m.publish_all(&worker_stats);
    }
}
