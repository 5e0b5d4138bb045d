//! DPDK backend: ethdev ports through espresso's own bindings (`ffi/`).
//!
//! [`Dpdk::init`] starts the EAL once (on the main thread), creates the mbuf
//! pool and configures every port with one rx queue and one tx queue per
//! worker (the rx queues spread by RSS where the device hashes; devices
//! without RSS, such as net_af_packet or net_memif, spread by their own
//! means). [`Dpdk::backend`] then hands worker `w` its queues `w` on every
//! port as a [`DpdkBackend`], which the
//! worker moves to its pinned thread (registered with DPDK by
//! [`Dpdk::register_worker_thread`] so that it gets an lcore id and mempool
//! caches).
//!
//! Packets are `ffi::Mbuf`s, which implement [`PacketBuf`]: the worker and the
//! ESP engine work in the mbuf's data room, in place (encap prepends into the
//! 128-byte headroom and appends the trailer into the tailroom), with no copy.
//!
//! # Exception path
//! Each port has a [`KernelPath`]:
//! - [`KernelPath::Kernel`]: the kernel already receives every frame itself
//!   (DPDK's `net_af_packet` on a Linux interface); the interface's index is
//!   what routes and neighbours refer to, and [`PacketIo::to_kernel`] frees.
//! - [`KernelPath::Tap`]: the port is invisible to the kernel (a NIC bound to
//!   vfio-pci, `net_memif`, `net_af_xdp`): a TAP interface (DPDK's `net_tap`)
//!   with the port's MAC address stands for it in the kernel, which holds the
//!   gateway's addresses on it. Frames for the kernel (ARP/ND, broadcasts,
//!   IKE, ICMP to the gateway...) are written to the TAP; what the kernel
//!   sends on the TAP (ARP replies and requests, IKE, ICMP replies) is read
//!   back by the worker and transmitted on the port. Worker `w` owns TAP queue
//!   `w` in both directions.

use std::fmt::Write as _;

use ffi::{DpdkError, Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, RxQueue, TxQueue};

use crate::io::{Burst, PacketIo, PortStats, TxResult, MAX_BURST};
use crate::pkt::PacketBuf;

pub use ffi;

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }
    #[inline]
    fn headroom(&self) -> usize {
        Mbuf::headroom(self)
    }
    #[inline]
    fn tailroom(&self) -> usize {
        Mbuf::tailroom(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n)
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        Mbuf::append(self, n)
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        Mbuf::trim(self, n)
    }
    #[inline]
    fn len(&self) -> usize {
        Mbuf::len(self)
    }
}

/// How the gateway's kernel sees a port (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// The kernel receives every frame itself (e.g. `net_af_packet`). `ifname`
    /// names the kernel interface; None: the one the driver reports.
    Kernel {
        /// Kernel interface name, if the driver does not report one.
        ifname: Option<String>,
    },
    /// A TAP interface of this name carries the exception traffic.
    Tap {
        /// Name of the TAP interface to create.
        ifname: String,
    },
}

/// One port of the dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkPortSpec {
    /// DPDK port name: a vdev name given in the EAL arguments
    /// (`net_af_packet0`, `net_memif0`) or a PCI address (`0000:03:00.0`).
    pub name: String,
    /// Exception path.
    pub kernel: KernelPath,
}

/// DPDK backend settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkConfig {
    /// EAL arguments (without the program name), e.g. `-l 0 --no-huge -m 512
    /// --no-pci --no-shconf --vdev net_af_packet0,iface=lan`.
    pub eal_args: Vec<String>,
    /// Ports, in the workers' port order.
    pub ports: Vec<DpdkPortSpec>,
    /// Number of workers (rx/tx queue pairs per port).
    pub workers: usize,
    /// Rx descriptors per queue.
    pub rx_desc: u16,
    /// Tx descriptors per queue.
    pub tx_desc: u16,
    /// Mbufs in the pool (0: enough for every queue's ring plus bursts).
    pub mbufs: u32,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            eal_args: Vec::new(),
            ports: Vec::new(),
            workers: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 0,
        }
    }
}

/// Why the DPDK backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DpdkIoError {
    /// A DPDK call failed.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    /// A setting is out of range.
    #[error("invalid DPDK setting {field} = {value}: {why}")]
    Config {
        /// Setting name.
        field: &'static str,
        /// Its value.
        value: String,
        /// Explanation.
        why: &'static str,
    },
    /// The kernel interface of a port could not be found.
    #[error("port {port}: kernel interface {ifname:?} not found ({why})")]
    NoKernelInterface {
        /// DPDK port name.
        port: String,
        /// Interface name ("" if none was known).
        ifname: String,
        /// Explanation.
        why: &'static str,
    },
}

/// Most queues a TAP interface gets (DPDK's net_tap limit).
pub const MAX_TAP_QUEUES: usize = 16;
/// Mbuf cache per lcore.
const POOL_CACHE: u32 = 256;
/// Rx polls between two looks at a port's TAP (kernel -> wire): reading an
/// empty TAP costs a system call, so a busy or idle poll loop looks at it
/// only every 64th time (a few microseconds apart).
const TAP_POLL_EVERY: u32 = 64;

struct PortSet {
    spec: DpdkPortSpec,
    phys: Port,
    tap: Option<Port>,
    ifindex: u32,
}

/// The DPDK side of the dataplane: EAL, pool and configured ports.
pub struct Dpdk {
    eal: Eal,
    pool: Mempool,
    ports: Vec<PortSet>,
    workers: usize,
}

impl std::fmt::Debug for Dpdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpdk")
            .field("ports", &self.describe())
            .field("workers", &self.workers)
            .finish()
    }
}

/// Rounds up to 2^k - 1 (the mempool's optimum size).
fn pool_size(n: u64) -> u32 {
    let n = n.clamp(4095, u32::MAX as u64 / 2);
    ((n + 1).next_power_of_two() - 1) as u32
}

impl Dpdk {
    /// Starts the EAL and sets up every port (started, queues ready).
    pub fn init(cfg: &DpdkConfig) -> Result<Dpdk, DpdkIoError> {
        let invalid = |field, value: String, why| DpdkIoError::Config { field, value, why };
        if cfg.ports.is_empty() {
            return Err(invalid("ports", "[]".into(), "at least one port is needed"));
        }
        if cfg.workers == 0 || cfg.workers > u16::MAX as usize {
            return Err(invalid(
                "workers",
                cfg.workers.to_string(),
                "1 to 65535 workers",
            ));
        }
        let taps = cfg
            .ports
            .iter()
            .filter(|p| matches!(p.kernel, KernelPath::Tap { .. }))
            .count();
        if taps > 0 && cfg.workers > MAX_TAP_QUEUES {
            return Err(invalid(
                "workers",
                cfg.workers.to_string(),
                "a TAP exception path serves at most 16 workers",
            ));
        }
        let eal = Eal::init(&cfg.eal_args)?;
        let per_queue = u64::from(cfg.rx_desc) + u64::from(cfg.tx_desc) + 4 * MAX_BURST as u64;
        let queues = (cfg.ports.len() + taps) as u64 * cfg.workers as u64;
        let count = if cfg.mbufs != 0 {
            cfg.mbufs
        } else {
            pool_size(queues * per_queue + u64::from(POOL_CACHE) * (cfg.workers as u64 + 1) + 2048)
        };
        let pool = Mempool::create(
            &eal,
            "espresso_pkts",
            count,
            POOL_CACHE,
            ffi::DEFAULT_DATA_ROOM,
            None,
        )?;
        let workers = cfg.workers as u16;
        let mut ports = Vec::new();
        for (i, spec) in cfg.ports.iter().enumerate() {
            let id = ffi::port_by_name(&eal, &spec.name)?;
            // RSS where the device hashes; devices without it (net_af_packet
            // spreads by kernel fanout, memif by its peer) get plain queues.
            let info = ffi::dev_info(&eal, id)?;
            let pc = PortConfig {
                rx_queues: workers,
                tx_queues: workers,
                rx_desc: cfg.rx_desc,
                tx_desc: cfg.tx_desc,
                rss_hash: if info.rss_hash_types != 0 {
                    PortConfig::default().rss_hash
                } else {
                    0
                },
                ..PortConfig::default()
            };
            let mut phys = Port::configure(&eal, id, &pc, pool)?;
            phys.start()?;
            let mac = phys.mac()?;
            let (tap, ifindex) = match &spec.kernel {
                KernelPath::Kernel { ifname } => {
                    let idx = match ifname {
                        Some(n) => kernel_ifindex(&spec.name, n)?,
                        None if phys.info().if_index != 0 => phys.info().if_index,
                        None => {
                            return Err(DpdkIoError::NoKernelInterface {
                                port: spec.name.clone(),
                                ifname: String::new(),
                                why:
                                    "the driver reports no kernel interface: name one, or use a TAP",
                            })
                        }
                    };
                    (None, idx)
                }
                KernelPath::Tap { ifname } => {
                    if ifname.is_empty() || ifname.len() > 15 || ifname.contains([',', '=', ' ']) {
                        return Err(invalid(
                            "tap interface name",
                            ifname.clone(),
                            "1 to 15 characters without ',', '=' or spaces",
                        ));
                    }
                    let vdev = format!("net_tap_espresso{i}");
                    eal.create_vdev(&vdev, &format!("iface={ifname},mac={mac}"))?;
                    let tc = PortConfig {
                        rx_queues: workers,
                        tx_queues: workers,
                        rx_desc: 512,
                        tx_desc: 512,
                        rss_hash: 0,
                        promiscuous: false,
                        mtu: None,
                    };
                    let mut tap = Port::configure_by_name(&eal, &vdev, &tc, pool)?;
                    tap.start()?;
                    let idx = kernel_ifindex(&spec.name, ifname)?;
                    (Some(tap), idx)
                }
            };
            ports.push(PortSet {
                spec: spec.clone(),
                phys,
                tap,
                ifindex,
            });
        }
        Ok(Dpdk {
            eal,
            pool,
            ports,
            workers: cfg.workers,
        })
    }

    /// The running EAL.
    pub fn eal(&self) -> Eal {
        self.eal
    }

    /// The mbuf pool.
    pub fn pool(&self) -> Mempool {
        self.pool
    }

    /// Kernel interface index of port `i` (the TAP's, or the interface the
    /// kernel receives the port's frames on): what routes refer to.
    pub fn ifindex(&self, i: usize) -> Option<u32> {
        self.ports.get(i).map(|p| p.ifindex)
    }

    /// The wire MAC address of port `i`.
    pub fn mac(&self, i: usize) -> Option<[u8; 6]> {
        self.ports
            .get(i)
            .and_then(|p| p.phys.mac().ok())
            .map(|m| m.0)
    }

    /// One line per port, for the log.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.ports.iter().enumerate() {
            let kernel = match &p.spec.kernel {
                KernelPath::Kernel { .. } => "kernel sees frames".to_string(),
                KernelPath::Tap { ifname } => format!("TAP {ifname}"),
            };
            let mac = p.phys.mac().map(|m| m.to_string()).unwrap_or_default();
            let _ = write!(
                s,
                "{}port {i} {} ({}, {mac}, {} queues, RSS {:#x}, if {}, {kernel})",
                if i > 0 { "; " } else { "" },
                p.spec.name,
                p.phys.info().driver,
                p.phys.rx_queue_count(),
                p.phys.rss_hash(),
                p.ifindex,
            );
        }
        s
    }

    /// Makes the calling thread a DPDK thread (lcore id, mempool caches): each
    /// worker thread calls this before polling and keeps the guard.
    pub fn register_worker_thread(&self) -> Result<ffi::ThreadRegistration, DpdkIoError> {
        Ok(self.eal.register_thread()?)
    }

    /// Worker `w`'s queues on every port.
    pub fn backend(&self, w: usize) -> Result<DpdkBackend, DpdkIoError> {
        if w >= self.workers {
            return Err(DpdkIoError::Config {
                field: "worker",
                value: w.to_string(),
                why: "beyond the configured number of workers",
            });
        }
        let q = w as u16;
        let mut ports = Vec::new();
        for p in &self.ports {
            let tap = match &p.tap {
                Some(t) => Some(TapQueues {
                    rx: t.rx_queue(q)?,
                    tx: t.tx_queue(q)?,
                    pending: MbufBurst::new(),
                    countdown: 1,
                }),
                None => None,
            };
            ports.push(WorkerPort {
                rx: p.phys.rx_queue(q)?,
                tx: p.phys.tx_queue(q)?,
                tap,
                stats: PortStats::default(),
            });
        }
        Ok(DpdkBackend {
            pool: self.pool,
            queue: w,
            ports,
            rx_buf: MbufBurst::new(),
            tx_buf: MbufBurst::new(),
        })
    }
}

fn kernel_ifindex(port: &str, ifname: &str) -> Result<u32, DpdkIoError> {
    crate::io::afpacket::ifindex(ifname).map_err(|_| DpdkIoError::NoKernelInterface {
        port: port.to_owned(),
        ifname: ifname.to_owned(),
        why: "no such interface in this namespace",
    })
}

struct TapQueues {
    rx: RxQueue,
    tx: TxQueue,
    /// Frames waiting to be written to the kernel.
    pending: MbufBurst<MAX_BURST>,
    /// Rx polls left before the next look at the TAP.
    countdown: u32,
}

struct WorkerPort {
    rx: RxQueue,
    tx: TxQueue,
    tap: Option<TapQueues>,
    stats: PortStats,
}

/// One worker's queues on every port (see the module documentation).
pub struct DpdkBackend {
    pool: Mempool,
    queue: usize,
    ports: Vec<WorkerPort>,
    rx_buf: MbufBurst<MAX_BURST>,
    tx_buf: MbufBurst<MAX_BURST>,
}

impl std::fmt::Debug for DpdkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkBackend")
            .field("queue", &self.queue)
            .field("ports", &self.ports.len())
            .finish()
    }
}

/// Sends `b` on `tx`, retrying a few times while the queue makes progress;
/// frees what is left. Returns (sent, dropped).
#[inline]
fn send_all(tx: &mut TxQueue, b: &mut MbufBurst<MAX_BURST>) -> (usize, usize) {
    let mut sent = 0;
    for _ in 0..4 {
        if b.is_empty() {
            break;
        }
        let n = tx.tx_burst(b);
        if n == 0 {
            break;
        }
        sent += n;
    }
    let dropped = b.len();
    b.clear();
    (sent, dropped)
}

impl DpdkBackend {
    /// Exception path housekeeping of port `port`: writes pending frames to
    /// the TAP and, every [`TAP_POLL_EVERY`] polls, transmits what the kernel
    /// wrote to the TAP.
    #[inline]
    fn service_tap(&mut self, port: usize) {
        let wp = &mut self.ports[port];
        let Some(tap) = wp.tap.as_mut() else {
            return;
        };
        if !tap.pending.is_empty() {
            let (_, dropped) = send_all(&mut tap.tx, &mut tap.pending);
            wp.stats.tx_errors += dropped as u64;
        }
        tap.countdown -= 1;
        if tap.countdown != 0 {
            return;
        }
        tap.countdown = TAP_POLL_EVERY;
        if tap.rx.rx_burst(&mut self.tx_buf) == 0 {
            return;
        }
        let (sent, dropped) = send_all(&mut wp.tx, &mut self.tx_buf);
        wp.stats.tx_packets += sent as u64;
        wp.stats.tx_errors += dropped as u64;
    }
}

impl PacketIo for DpdkBackend {
    type Pkt = Mbuf;

    fn num_ports(&self) -> usize {
        self.ports.len()
    }

    #[inline]
    fn rx_burst(&mut self, port: usize, out: &mut Burst<Mbuf>, max: usize) -> usize {
        if port >= self.ports.len() {
            return 0;
        }
        let want = max.min(out.remaining_capacity());
        let got = self.ports[port].rx.rx_burst_up_to(&mut self.rx_buf, want);
        if self.ports[port].tap.is_some() {
            self.service_tap(port);
        }
        if got == 0 {
            return 0;
        }
        let before = out.len();
        let wp = &mut self.ports[port];
        for m in self.rx_buf.drain() {
            if m.is_contiguous() {
                out.push(m);
            } else {
                // A frame larger than one mbuf (scattered rx is off): drop.
                wp.stats.rx_truncated += 1;
            }
        }
        let n = out.len() - before;
        wp.stats.rx_packets += n as u64;
        n
    }

    #[inline]
    fn tx_burst(&mut self, port: usize, pkts: &mut Burst<Mbuf>) -> TxResult {
        let n = pkts.len();
        if n == 0 {
            return TxResult::default();
        }
        for m in pkts.drain(..) {
            // Both hold MAX_BURST packets: push cannot fail.
            let _ = self.tx_buf.push(m);
        }
        let Some(wp) = self.ports.get_mut(port) else {
            let dropped = self.tx_buf.len();
            self.tx_buf.clear();
            return TxResult { sent: 0, dropped };
        };
        let (sent, dropped) = send_all(&mut wp.tx, &mut self.tx_buf);
        wp.stats.tx_packets += sent as u64;
        wp.stats.tx_errors += dropped as u64;
        TxResult { sent, dropped }
    }

    #[inline]
    fn free(&mut self, pkt: Mbuf) {
        drop(pkt);
    }

    fn to_kernel(&mut self, port: usize, pkt: Mbuf) {
        let Some(tap) = self.ports.get_mut(port).and_then(|p| p.tap.as_mut()) else {
            // No TAP: the kernel receives its own copy of every frame.
            drop(pkt);
            return;
        };
        if let Err(pkt) = tap.pending.push(pkt) {
            drop(pkt);
            self.ports[port].stats.tx_errors += 1;
        }
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    fn wait_rx(&mut self, timeout_us: u32) {
        // Poll-mode ports have no descriptor to sleep on: nap briefly.
        std::thread::sleep(std::time::Duration::from_micros(u64::from(
            timeout_us.min(1000),
        )));
    }

    fn port_stats(&mut self, port: usize) -> PortStats {
        let Some(wp) = self.ports.get(port) else {
            return PortStats::default();
        };
        let mut s = wp.stats;
        if let Ok(ps) = wp.rx.port_stats() {
            // NIC-level drops of the whole port (no descriptor free).
            s.rx_dropped = ps.imissed + ps.rx_nombuf;
        }
        s
    }
}
