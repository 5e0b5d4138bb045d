//! Packet I/O backends. The only place (with `shm/` and `ffi/`) where `unsafe`
//! is allowed; every block carries a `// SAFETY:` comment.
//!
//! A [`PacketIo`] is what one worker owns: one receive queue and one transmit
//! queue on each port (interface) the dataplane drives. Workers never share a
//! backend: spreading traffic over workers is the backend's business
//! (AF_PACKET fanout, NIC RSS queues for DPDK).
//!
//! Packets are handed out as [`PacketIo::Pkt`], a [`PacketBuf`] over the
//! backend's own memory (an AF_PACKET ring frame, a DPDK mbuf), so the worker
//! and the ESP engine process them in place. A received packet starts at its
//! Ethernet header, with headroom in front (encap prepends in place) and
//! tailroom behind. A packet is given back exactly once, by [`PacketIo::tx_burst`]
//! (sent or counted as a transmit drop) or [`PacketIo::free`].
//!
//! Backends:
//! - [`afpacket`]: Linux AF_PACKET with mmap rings (TPACKET_V2 or V3 receive,
//!   PACKET_FANOUT, PACKET_QDISC_BYPASS, batched transmit by `sendmmsg` or a TX
//!   ring).
//! - [`dpdk`] (feature `dpdk`): DPDK ethdev ports through our own bindings
//!   (`ffi/`); `ffi::Mbuf` implements [`PacketBuf`], so packets are processed
//!   in the mbufs, in place; one RSS rx queue and one tx queue per worker on
//!   every port; an exception path through TAP interfaces.

pub mod afpacket;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod tun;

use arrayvec::ArrayVec;

use crate::pkt::PacketBuf;

pub use crate::pkt::MAX_BURST;

/// A burst of packets (no allocation: a fixed-capacity array).
pub type Burst<P> = ArrayVec<P, MAX_BURST>;

/// Result of one transmit call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxResult {
    /// Packets handed to the link.
    pub sent: usize,
    /// Packets that could not be sent (queue full, link error): given back,
    /// counted by the caller as `tx_full`.
    pub dropped: usize,
}

/// Per-port receive statistics kept by the backend or the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received by this queue.
    pub rx_packets: u64,
    /// Packets the kernel (or NIC) dropped because this queue was full.
    pub rx_dropped: u64,
    /// Packets sent on this queue.
    pub tx_packets: u64,
    /// Packets this queue failed to send.
    pub tx_errors: u64,
    /// Received frames cut short (larger than a ring frame): dropped.
    pub rx_truncated: u64,
}

/// One worker's queues on every port.
pub trait PacketIo {
    /// A packet in the backend's memory.
    type Pkt: PacketBuf;

    /// Number of ports (indices `0..num_ports()`).
    fn num_ports(&self) -> usize;

    /// Receives up to `max` packets from `port` (at most the free capacity of
    /// `out`), appending them to `out`. Returns how many were added. Never blocks.
    fn rx_burst(&mut self, port: usize, out: &mut Burst<Self::Pkt>, max: usize) -> usize;

    /// Sends every packet of `pkts` (each a full Ethernet frame) on `port` and
    /// gives them back to the backend; `pkts` is empty afterwards.
    fn tx_burst(&mut self, port: usize, pkts: &mut Burst<Self::Pkt>) -> TxResult;

    /// Gives a packet back without sending it.
    fn free(&mut self, pkt: Self::Pkt);

    /// Exception path: a frame received on `port` that the gateway's kernel
    /// must see (ARP/ND, broadcasts, IKE, ICMP and anything else addressed to
    /// the gateway itself), given as received, from its Ethernet header.
    /// Backends whose kernel already gets a copy of every frame (AF_PACKET,
    /// DPDK's net_af_packet) just free it (the default); a DPDK backend on
    /// ports the kernel does not see writes it to the port's TAP interface.
    fn to_kernel(&mut self, port: usize, pkt: Self::Pkt) {
        let _ = port;
        self.free(pkt);
    }

    /// A fresh empty packet buffer (headroom reserved), for packets the
    /// dataplane creates itself (exception path). None if the pool is empty.
    fn alloc(&mut self) -> Option<Self::Pkt>;

    /// Blocks until a port may have packets or `timeout_us` passes (idle back-off).
    fn wait_rx(&mut self, timeout_us: u32);

    /// Statistics of this worker's queue on `port`.
    fn port_stats(&mut self, port: usize) -> PortStats;
}

/// Waits up to `ms` milliseconds for `pfd` to become ready (poll(2) on one
/// descriptor). Returns poll's result (negative on error).
pub fn poll_fd(pfd: &mut libc::pollfd, ms: i32) -> i32 {
    // SAFETY: `pfd` is one valid, exclusively borrowed pollfd for the call.
    unsafe { libc::poll(pfd, 1, ms) }
}

/// Gives the calling thread real-time FIFO priority `prio` (1..=99), as the
/// kernel's own packet processing (softirq) effectively has: a poll-mode
/// worker on a shared core is then not descheduled for milliseconds by
/// ordinary processes. The kernel's RT throttling (sched_rt_runtime_us,
/// 95 % by default) still leaves the core to others some of the time.
pub fn set_fifo_priority(prio: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: prio.clamp(1, 99),
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
