//! Ethernet ports: configuration (queues, RSS), start/stop, MAC address, link,
//! statistics, and per-queue rx/tx burst handles.
//!
//! A [`Port`] is configured once with a [`PortConfig`]; after
//! [`Port::start`], each rx and tx queue can be taken as one handle
//! ([`RxQueue`], [`TxQueue`]) and moved to the thread that polls it (DPDK
//! queues are single-threaded). The port cannot be stopped or closed while
//! queue handles exist; if the `Port` is dropped first, the port is stopped
//! and closed when the last queue handle goes.

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::eal::{cstring, Eal};
use crate::error::{DpdkError, Errno, Result};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::sys;

/// RSS hash types (`RTE_ETH_RSS_*`) for [`PortConfig::rss_hash`].
pub mod rss {
    use crate::sys;
    /// IPv4/IPv6 addresses.
    pub const IP: u64 = sys::ESPRESSO_ETH_RSS_IP;
    /// UDP ports.
    pub const UDP: u64 = sys::ESPRESSO_ETH_RSS_UDP;
    /// TCP ports.
    pub const TCP: u64 = sys::ESPRESSO_ETH_RSS_TCP;
    /// Every protocol hash type DPDK knows.
    pub const PROTO_MASK: u64 = sys::ESPRESSO_ETH_RSS_PROTO_MASK;
}

/// How to set a port up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Number of rx queues (one per worker); more than one enables RSS.
    pub rx_queues: u16,
    /// Number of tx queues (one per worker).
    pub tx_queues: u16,
    /// Rx descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Tx descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// RSS hash types ([`rss`]) used when `rx_queues > 1`; those the device
    /// does not support are dropped, and none left is an error.
    pub rss_hash: u64,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss_hash: rss::IP | rss::UDP | rss::TCP,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbps (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

/// Number of per-queue counters DPDK keeps (`RTE_ETHDEV_QUEUE_STAT_CNTRS`).
pub const QUEUE_STAT_COUNTERS: usize = 16;

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the NIC because no rx descriptor was free.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Packets received per queue (first 16 queues).
    pub q_ipackets: [u64; QUEUE_STAT_COUNTERS],
    /// Packets sent per queue (first 16 queues).
    pub q_opackets: [u64; QUEUE_STAT_COUNTERS],
}

/// What a device supports (a summary of `rte_eth_dev_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// Driver name, e.g. `net_null`.
    pub driver: String,
    /// Kernel interface index (0 if none).
    pub if_index: u32,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// RSS hash types supported.
    pub rss_hash_types: u64,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// Rx offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// Tx offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// Smallest and largest MTU.
    pub mtu_range: (u16, u16),
}

/// One claim per port id per process: only one `Port` configures a port.
static CLAIMED: [AtomicBool; sys::ESPRESSO_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::ESPRESSO_MAX_ETHPORTS as usize];

struct PortShared {
    id: u16,
    started: AtomicBool,
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        if self.started.load(Ordering::Acquire) {
            // SAFETY: no queue handle is left (they hold this Arc), so nothing
            // polls the port; stopping a valid port id.
            unsafe { sys::rte_eth_dev_stop(self.id) };
        }
        // SAFETY: as above; the port is stopped and no handle refers to it.
        unsafe { sys::rte_eth_dev_close(self.id) };
        CLAIMED[self.id as usize].store(false, Ordering::Release);
    }
}

/// A configured Ethernet port.
pub struct Port {
    shared: Arc<PortShared>,
    name: String,
    info: DevInfo,
    rss_hash: u64,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.shared.id)
            .field("name", &self.name)
            .field("driver", &self.info.driver)
            .field("rx_queues", &self.shared.rx_taken.len())
            .field("tx_queues", &self.shared.tx_taken.len())
            .finish()
    }
}

fn port_err(port: u16, op: &'static str, ret: i32) -> DpdkError {
    DpdkError::Port {
        port,
        op,
        errno: Errno::new(ret),
    }
}

/// Counters of port `id`.
fn port_stats(id: u16) -> Result<PortStats> {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: out-pointer valid; DPDK checks the port id.
    let ret = unsafe { sys::rte_eth_stats_get(id, &mut s) };
    if ret != 0 {
        return Err(port_err(id, "rte_eth_stats_get", ret));
    }
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        q_ipackets: s.q_ipackets,
        q_opackets: s.q_opackets,
    })
}

/// The id of the port named `name` (e.g. `net_null0`, a PCI address).
pub fn port_by_name(_eal: &Eal, name: &str) -> Result<u16> {
    let c_name = cstring("port name", name)?;
    let mut id = 0u16;
    // SAFETY: valid name and out-pointer.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
    if ret != 0 {
        return Err(DpdkError::NoSuchPort(name.to_owned()));
    }
    Ok(id)
}

/// The name of port `id`.
pub fn port_name(_eal: &Eal, id: u16) -> Result<String> {
    let mut buf = [0 as std::ffi::c_char; 64]; // RTE_ETH_NAME_MAX_LEN
                                               // SAFETY: the buffer is RTE_ETH_NAME_MAX_LEN bytes, as DPDK requires.
    let ret = unsafe { sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    if ret != 0 {
        return Err(DpdkError::InvalidPort(id));
    }
    // SAFETY: DPDK wrote a NUL-terminated name into buf.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// Ids of all probed ports.
pub fn port_ids(_eal: &Eal) -> Vec<u16> {
    let mut ids = Vec::new();
    // SAFETY: rte_eth_find_next accepts any id and returns RTE_MAX_ETHPORTS
    // when there is no further port.
    let mut p = unsafe { sys::rte_eth_find_next(0) };
    while (p as u32) < sys::ESPRESSO_MAX_ETHPORTS {
        ids.push(p);
        // SAFETY: as above.
        p = unsafe { sys::rte_eth_find_next(p + 1) };
    }
    ids
}

/// Device capabilities of port `id`.
pub fn dev_info(_eal: &Eal, id: u16) -> Result<DevInfo> {
    let mut raw = sys::rte_eth_dev_info::default();
    // SAFETY: valid out-pointer; DPDK checks the port id.
    let ret = unsafe { sys::rte_eth_dev_info_get(id, &mut raw) };
    if ret != 0 {
        return Err(port_err(id, "rte_eth_dev_info_get", ret));
    }
    let driver = if raw.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name points to the driver's static NUL-terminated name.
        unsafe { CStr::from_ptr(raw.driver_name) }
            .to_string_lossy()
            .into_owned()
    };
    Ok(DevInfo {
        driver,
        if_index: raw.if_index,
        max_rx_queues: raw.max_rx_queues,
        max_tx_queues: raw.max_tx_queues,
        rss_hash_types: raw.flow_type_rss_offloads,
        reta_size: raw.reta_size,
        rx_offload_capa: raw.rx_offload_capa,
        tx_offload_capa: raw.tx_offload_capa,
        mtu_range: (raw.min_mtu, raw.max_mtu),
    })
}

impl Port {
    /// Configures port `id`: rx/tx queue counts, RSS over the rx queues when
    /// there are several, descriptor rings (rx buffers from `pool`), MTU and
    /// promiscuous mode. The port is not started.
    pub fn configure(eal: &Eal, id: u16, cfg: &PortConfig, pool: Mempool) -> Result<Port> {
        // SAFETY: plain validity query.
        if unsafe { sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::InvalidPort(id));
        }
        let invalid = |what, value: u16, why| DpdkError::InvalidArgument {
            what,
            value: value.to_string(),
            why,
        };
        if cfg.rx_queues == 0 {
            return Err(invalid(
                "rx queue count",
                0,
                "at least one rx queue is needed",
            ));
        }
        if cfg.tx_queues == 0 {
            return Err(invalid(
                "tx queue count",
                0,
                "at least one tx queue is needed",
            ));
        }
        let info = dev_info(eal, id)?;
        let name = port_name(eal, id)?;
        for (kind, requested, max) in [
            ("rx", cfg.rx_queues, info.max_rx_queues),
            ("tx", cfg.tx_queues, info.max_tx_queues),
        ] {
            if requested > max {
                return Err(DpdkError::TooManyQueues {
                    port: id,
                    driver: info.driver.clone(),
                    kind,
                    requested,
                    max,
                });
            }
        }
        let mut conf = sys::rte_eth_conf::default();
        let mut rss_hash = 0;
        if cfg.rx_queues > 1 && cfg.rss_hash != 0 {
            rss_hash = cfg.rss_hash & info.rss_hash_types;
            if rss_hash == 0 {
                return Err(DpdkError::RssUnsupported {
                    port: id,
                    driver: info.driver.clone(),
                    queues: cfg.rx_queues,
                    requested: cfg.rss_hash,
                    supported: info.rss_hash_types,
                });
            }
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hash;
            if info.rx_offload_capa & sys::ESPRESSO_ETH_RX_OFFLOAD_RSS_HASH != 0 {
                conf.rxmode.offloads |= sys::ESPRESSO_ETH_RX_OFFLOAD_RSS_HASH;
            }
        }

        if CLAIMED[id as usize]
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(DpdkError::Port {
                port: id,
                op: "configure (port already held by another Port in this process)",
                errno: Errno::new(libc::EBUSY),
            });
        }
        let release = || CLAIMED[id as usize].store(false, Ordering::Release);

        // SAFETY: valid port id we hold exclusively; conf is fully initialised.
        let ret = unsafe { sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        if ret != 0 {
            release();
            return Err(port_err(id, "rte_eth_dev_configure", ret));
        }
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port id and out-pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            release();
            return Err(port_err(id, "rte_eth_dev_adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 {
            sys::SOCKET_ID_ANY
        } else {
            socket
        };
        let socket = socket as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: configured port, queue index below the configured count,
            // default rxconf (NULL), a valid pktmbuf pool that is never freed.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, nb_rx, socket, std::ptr::null(), pool.as_ptr())
            };
            if ret != 0 {
                release();
                return Err(port_err(id, "rte_eth_rx_queue_setup", ret));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured port, queue index below the configured count,
            // default txconf (NULL).
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, std::ptr::null()) };
            if ret != 0 {
                release();
                return Err(port_err(id, "rte_eth_tx_queue_setup", ret));
            }
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: valid port id.
            let ret = unsafe { sys::rte_eth_dev_set_mtu(id, mtu) };
            if ret != 0 {
                release();
                return Err(port_err(id, "rte_eth_dev_set_mtu", ret));
            }
        }
        let shared = Arc::new(PortShared {
            id,
            started: AtomicBool::new(false),
            rx_taken: (0..cfg.rx_queues).map(|_| AtomicBool::new(false)).collect(),
            tx_taken: (0..cfg.tx_queues).map(|_| AtomicBool::new(false)).collect(),
        });
        let port = Port {
            shared,
            name,
            info,
            rss_hash,
        };
        if cfg.promiscuous {
            // SAFETY: valid port id. Some vdevs do not support it (ENOTSUP):
            // they receive everything anyway, so that is not an error.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(id) };
            if ret != 0 && ret != -libc::ENOTSUP {
                return Err(port_err(id, "rte_eth_promiscuous_enable", ret));
            }
        }
        Ok(port)
    }

    /// Configures the port named `name`.
    pub fn configure_by_name(
        eal: &Eal,
        name: &str,
        cfg: &PortConfig,
        pool: Mempool,
    ) -> Result<Port> {
        Port::configure(eal, port_by_name(eal, name)?, cfg, pool)
    }

    /// Port id.
    pub fn id(&self) -> u16 {
        self.shared.id
    }

    /// Port name (e.g. `net_null0`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Device capabilities, as read at configuration.
    pub fn info(&self) -> &DevInfo {
        &self.info
    }

    /// Number of rx queues.
    pub fn rx_queue_count(&self) -> u16 {
        self.shared.rx_taken.len() as u16
    }

    /// Number of tx queues.
    pub fn tx_queue_count(&self) -> u16 {
        self.shared.tx_taken.len() as u16
    }

    /// RSS hash types in use (0: no RSS).
    pub fn rss_hash(&self) -> u64 {
        self.rss_hash
    }

    /// RSS hash types the device reports as configured
    /// (`rte_eth_dev_rss_hash_conf_get`).
    pub fn rss_hash_configured(&self) -> Result<u64> {
        let mut conf = sys::rte_eth_rss_conf::default();
        // SAFETY: valid port; rss_key NULL means "do not return the key".
        let ret = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.id(), &mut conf) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_dev_rss_hash_conf_get", ret));
        }
        Ok(conf.rss_hf)
    }

    /// True once started.
    pub fn is_started(&self) -> bool {
        self.shared.started.load(Ordering::Acquire)
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        if self.is_started() {
            return Ok(());
        }
        // SAFETY: configured port we hold exclusively.
        let ret = unsafe { sys::rte_eth_dev_start(self.id()) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_dev_start", ret));
        }
        self.shared.started.store(true, Ordering::Release);
        Ok(())
    }

    fn held_queues(&self) -> usize {
        Arc::strong_count(&self.shared) - 1
    }

    /// Stops the port. Refused while queue handles exist.
    pub fn stop(&mut self) -> Result<()> {
        let held = self.held_queues();
        if held != 0 {
            return Err(DpdkError::QueuesHeld {
                port: self.id(),
                op: "stop",
                held,
            });
        }
        if !self.is_started() {
            return Ok(());
        }
        // SAFETY: no queue handle exists (and &mut self prevents new ones), so
        // no thread polls the port while it stops.
        let ret = unsafe { sys::rte_eth_dev_stop(self.id()) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_dev_stop", ret));
        }
        self.shared.started.store(false, Ordering::Release);
        Ok(())
    }

    /// Stops and closes the port now (dropping does the same, or later if
    /// queue handles are still held). Refused while queue handles exist.
    pub fn close(mut self) -> Result<()> {
        self.stop()?;
        drop(self); // last Arc: PortShared::drop closes the port
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<MacAddr> {
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        let ret = unsafe { sys::rte_eth_macaddr_get(self.id(), &mut addr) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_macaddr_get", ret));
        }
        Ok(MacAddr(addr.addr_bytes))
    }

    /// Current link state (without waiting).
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port and out-pointer.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.id(), &mut link) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_link_get_nowait", ret));
        }
        Ok(LinkStatus {
            up: link.link_status() == sys::RTE_ETH_LINK_UP as u16,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
            autoneg: link.link_autoneg() != 0,
        })
    }

    /// Port counters.
    pub fn stats(&self) -> Result<PortStats> {
        port_stats(self.id())
    }

    /// Resets the port counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port.
        let ret = unsafe { sys::rte_eth_stats_reset(self.id()) };
        if ret != 0 {
            return Err(port_err(self.id(), "rte_eth_stats_reset", ret));
        }
        Ok(())
    }

    fn take(&self, kind: &'static str, queue: u16) -> Result<()> {
        let slots = if kind == "rx" {
            &self.shared.rx_taken
        } else {
            &self.shared.tx_taken
        };
        let unavailable = DpdkError::QueueUnavailable {
            port: self.id(),
            kind,
            queue,
        };
        if !self.is_started() {
            return Err(DpdkError::Port {
                port: self.id(),
                op: "taking a queue (port not started)",
                errno: Errno::new(libc::EINVAL),
            });
        }
        let slot = slots.get(queue as usize).ok_or(unavailable.clone())?;
        slot.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| unavailable)
    }

    /// The handle of rx queue `queue` (one handle per queue at a time; the port
    /// must be started).
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue> {
        self.take("rx", queue)?;
        Ok(RxQueue {
            shared: Arc::clone(&self.shared),
            port: self.id(),
            queue,
        })
    }

    /// The handle of tx queue `queue` (one handle per queue at a time; the port
    /// must be started).
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue> {
        self.take("tx", queue)?;
        Ok(TxQueue {
            shared: Arc::clone(&self.shared),
            port: self.id(),
            queue,
        })
    }
}

/// The single handle of one rx queue of a started port.
pub struct RxQueue {
    shared: Arc<PortShared>,
    port: u16,
    queue: u16,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxQueue(port {}, queue {})", self.port, self.queue)
    }
}

impl RxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Counters of the whole port (all queues).
    pub fn port_stats(&self) -> Result<PortStats> {
        port_stats(self.port)
    }

    /// Receives up to `burst.spare()` packets, appended to `burst`. Returns
    /// how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        self.rx_burst_up_to(burst, N)
    }

    /// Receives up to `max` packets (and at most `burst.spare()`), appended to
    /// `burst`. Returns how many arrived.
    #[inline]
    pub fn rx_burst_up_to<const N: usize>(
        &mut self,
        burst: &mut MbufBurst<N>,
        max: usize,
    ) -> usize {
        let spare = burst.spare().min(max) as u16; // N <= u16::MAX
        if spare == 0 {
            return 0;
        }
        // SAFETY: the port is started and stays so while this handle lives
        // (stop is refused while handles exist); this handle is the only one
        // for the queue and &mut self serialises calls; the spare area has
        // room for `spare` pointers.
        let n = unsafe { rx_burst_raw(self.port, self.queue, burst.spare_ptr(), spare) } as usize;
        // SAFETY: the PMD wrote n <= spare owned mbufs after len.
        unsafe { burst.grow(n) };
        n
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.shared.rx_taken[self.queue as usize].store(false, Ordering::Release);
    }
}

/// The single handle of one tx queue of a started port.
pub struct TxQueue {
    shared: Arc<PortShared>,
    port: u16,
    queue: u16,
}

impl std::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TxQueue(port {}, queue {})", self.port, self.queue)
    }
}

impl TxQueue {
    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends the packets of `burst` from the front; those the queue took leave
    /// the burst, those it did not (queue full) stay, in order. Returns how
    /// many were sent.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let len = burst.len() as u16;
        if len == 0 {
            return 0;
        }
        // SAFETY: as for rx_burst; the first len slots are owned mbufs, of
        // which the PMD takes ownership of the first n it returns.
        let n = unsafe { tx_burst_raw(self.port, self.queue, burst.as_raw_mut(), len) } as usize;
        burst.consume_front(n);
        n
    }

    /// Sends the burst and frees what the queue did not take. Returns how many
    /// were sent; the burst is empty afterwards.
    #[inline]
    pub fn tx_burst_or_free<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let n = self.tx_burst(burst);
        burst.clear();
        n
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.shared.tx_taken[self.queue as usize].store(false, Ordering::Release);
    }
}

// The two functions below are DPDK 22.11's `rte_eth_rx_burst` and
// `rte_eth_tx_burst` (static inline in rte_ethdev.h, built without
// RTE_ETHDEV_DEBUG_RX/TX and without fast-path tracing, with
// RTE_ETHDEV_RXTX_CALLBACKS) written in Rust so that the dispatch is inlined
// into the caller's loop instead of costing a call into the C shim per burst.
// The shim's `espresso_rte_eth_rx_burst`/`tx_burst` remain as the reference
// (the ffi tests run the same traffic through both).

/// The fast-path ops of `port`.
///
/// # Safety
/// `port` < RTE_MAX_ETHPORTS.
#[inline(always)]
unsafe fn fp_ops(port: u16) -> *const sys::rte_eth_fp_ops {
    // SAFETY: the array has RTE_MAX_ETHPORTS entries and port is below that
    // (caller); we only form a raw pointer, never a reference to the static.
    unsafe {
        (&raw const sys::rte_eth_fp_ops)
            .cast::<sys::rte_eth_fp_ops>()
            .add(port as usize)
    }
}

/// Loads a callback slot the way DPDK does (`__atomic_load_n`, relaxed).
///
/// # Safety
/// `slot` points to a valid, aligned pointer-sized slot.
#[inline(always)]
unsafe fn load_cb(slot: *mut *mut std::ffi::c_void) -> *mut std::ffi::c_void {
    // SAFETY: AtomicPtr has the layout of a raw pointer; the slot is valid
    // and aligned (caller), and DPDK writes it atomically (release store).
    unsafe { std::sync::atomic::AtomicPtr::from_ptr(slot).load(Ordering::Relaxed) }
}

/// `rte_eth_rx_burst`.
///
/// # Safety
/// The port is started, `queue` is one of its configured rx queues polled by
/// no other thread, and `pkts` has room for `n` pointers.
#[inline(always)]
pub(crate) unsafe fn rx_burst_raw(
    port: u16,
    queue: u16,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    // SAFETY: the caller's contract is rte_eth_rx_burst's; the fp ops of a
    // started port hold the PMD's burst function and per-queue data arrays
    // with an entry for every configured queue.
    unsafe {
        let p = fp_ops(port);
        let qd = *(*p).rxq.data.add(queue as usize);
        let Some(rx) = (*p).rx_pkt_burst else {
            return 0;
        };
        let mut nb = rx(qd, pkts, n);
        let cb = load_cb((*p).rxq.clbk.add(queue as usize));
        if !cb.is_null() {
            nb = sys::rte_eth_call_rx_callbacks(port, queue, pkts, nb, n, cb);
        }
        nb
    }
}

/// `rte_eth_tx_burst`.
///
/// # Safety
/// The port is started, `queue` is one of its configured tx queues used by
/// no other thread, and `pkts` holds `n` owned mbufs; the PMD takes ownership
/// of the first (returned count) of them.
#[inline(always)]
pub(crate) unsafe fn tx_burst_raw(
    port: u16,
    queue: u16,
    pkts: *mut *mut sys::rte_mbuf,
    n: u16,
) -> u16 {
    // SAFETY: as for rx_burst_raw.
    unsafe {
        let p = fp_ops(port);
        let qd = *(*p).txq.data.add(queue as usize);
        let mut nb = n;
        let cb = load_cb((*p).txq.clbk.add(queue as usize));
        if !cb.is_null() {
            nb = sys::rte_eth_call_tx_callbacks(port, queue, pkts, nb, cb);
        }
        let Some(tx) = (*p).tx_pkt_burst else {
            return 0;
        };
        tx(qd, pkts, nb)
    }
}
