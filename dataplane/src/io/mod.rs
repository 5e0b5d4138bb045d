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

/// Keeps a real-time (SCHED_FIFO/RR) polling thread under the kernel's RT
/// bandwidth limit (`sched_rt_runtime_us` of every `sched_rt_period_us`,
/// 950 ms of 1 s by default) by resting in short, spread-out pauses.
///
/// A busy-polling worker that never sleeps uses its whole runtime and the
/// kernel then stops it for the rest of the period: a 50 ms stall each
/// second, during which the receive rings overflow (at 200 kpps, 10k packets
/// arrive in 50 ms against a 2048-frame ring) and every queued packet waits
/// up to 50 ms. The pacer takes the same off-time in small pieces instead:
/// after every [`RtPacer::SLICE_CPU_NS`] of CPU time it makes sure the thread
/// has been off its CPU for the share the kernel demands (plus
/// [`RtPacer::MARGIN_PCT`]), sleeping the rest, preferably when a poll found
/// nothing (the rings are then empty). Time the thread already slept (idle
/// back-off) counts, so a worker that rests anyway never pauses.
///
/// Cost at full load (bench/e2e/fwd_mpps.sh `PACER_AB=1`, 2026-12-07, load
/// 11-16, 3 rounds each, alternating): the paced worker was on its CPU
/// 93.6-94.5 % of the time, the same worker without the pacer (the kernel
/// throttling it) 94.3-95.5 %: the pacer costs about 1 % of a fully loaded
/// worker's CPU time over what the kernel takes anyway, and removes the
/// 50 ms stalls. Less rest is not cheaper: a 10 % margin, or carrying a
/// pause's overshoot to the next slice, left the worker on its CPU only
/// 91-93.6 % (the kernel throttled it again). Where the limit is lifted
/// (`sched_rt_runtime_us` = -1) there is no pacer; `ESPRESSO_RT_PACER=off`
/// in the dataplane's environment turns it off (for that measurement).
///
/// The budget is the core's, not the thread's: time another real-time task
/// takes on the worker's core counts here as rest although the kernel charges
/// it to the same budget, so such tasks belong on other cores
/// (bench/e2e/latency.sh lost 5 % of its probes to a 50 ms stall each second
/// while its SCHED_FIFO probe sender, using a few per cent of the worker's
/// core, ran there).
#[derive(Debug)]
pub struct RtPacer {
    /// Off-time needed per nanosecond of CPU time, in parts per 2^16.
    off_per_cpu_q16: u64,
    /// Wall clock and thread CPU time at the start of the current slice.
    wall0: u64,
    cpu0: u64,
    /// Loop iterations since the clocks were last read.
    polls: u32,
    /// Pauses taken (for the statistics).
    pub pauses: u64,
    /// Wall time spent in pauses, nanoseconds.
    pub rested_ns: u64,
    /// CPU time of the slices checked, nanoseconds.
    pub cpu_ns: u64,
}

impl RtPacer {
    /// CPU time between two checks of the off-time owed (0.5 ms: a pause
    /// is then about 33 us plus the wake-up, which a 2048-frame ring absorbs
    /// at any rate a worker forwards, and which bounds the latency it adds).
    pub const SLICE_CPU_NS: u64 = 500_000;
    /// Off-time taken beyond the kernel's share, per cent of that share
    /// (measured: 10 % is too little, see above).
    pub const MARGIN_PCT: u64 = 25;
    /// The clocks are read once every this many loop iterations.
    const CHECK_EVERY: u32 = 16;

    /// A pacer for the calling thread if it runs under a real-time policy
    /// and the kernel limits RT runtime; None otherwise (nothing to do), or
    /// when the environment says `ESPRESSO_RT_PACER=off`.
    pub fn for_current_thread() -> Option<RtPacer> {
        // SAFETY: sched_getscheduler(0) only reads the calling thread's policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        if policy != libc::SCHED_FIFO && policy != libc::SCHED_RR {
            return None;
        }
        if std::env::var_os("ESPRESSO_RT_PACER").is_some_and(|v| v == "off") {
            tracing::warn!(
                "ESPRESSO_RT_PACER=off: no RT pacing, the kernel's RT throttling will stop \
                 a busy worker for whole blocks"
            );
            return None;
        }
        let read =
            |p: &str| -> Option<i64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let runtime = read("/proc/sys/kernel/sched_rt_runtime_us")?;
        let period = read("/proc/sys/kernel/sched_rt_period_us")?;
        Self::with_limits(runtime, period)
    }

    /// A pacer for an RT runtime limit of `runtime_us` per `period_us`
    /// (None when there is no limit: runtime -1 or >= period).
    pub fn with_limits(runtime_us: i64, period_us: i64) -> Option<RtPacer> {
        if runtime_us <= 0 || period_us <= 0 || runtime_us >= period_us {
            return None;
        }
        // off / cpu = (period - runtime) / runtime, plus the margin.
        let off_per_cpu_q16 = ((period_us - runtime_us) as u64 * 65536 * (100 + Self::MARGIN_PCT))
            .div_ceil(runtime_us as u64 * 100);
        Some(RtPacer {
            off_per_cpu_q16,
            wall0: mono_ns(),
            cpu0: thread_cpu_ns(),
            polls: 0,
            pauses: 0,
            rested_ns: 0,
            cpu_ns: 0,
        })
    }

    /// Off-time owed after `cpu_ns` of CPU time within `wall_ns` of wall
    /// time (0 if the thread was off long enough already).
    pub fn owed_ns(&self, wall_ns: u64, cpu_ns: u64) -> u64 {
        let need = ((cpu_ns as u128 * self.off_per_cpu_q16 as u128) >> 16) as u64;
        need.saturating_sub(wall_ns.saturating_sub(cpu_ns))
    }

    /// The share of its time the thread rested in pauses so far.
    pub fn rested_share(&self) -> f64 {
        let t = self.rested_ns + self.cpu_ns;
        if t == 0 {
            0.0
        } else {
            self.rested_ns as f64 / t as f64
        }
    }

    /// Called once per poll loop iteration; `idle` when the poll found
    /// nothing. Sleeps when a slice's off-time is owed: at an idle poll, or
    /// after two slices without one (overload).
    #[inline]
    pub fn poll(&mut self, idle: bool) {
        self.polls += 1;
        if self.polls < Self::CHECK_EVERY {
            return;
        }
        self.polls = 0;
        self.check(idle);
    }

    #[cold]
    fn check(&mut self, idle: bool) {
        let cpu_now = thread_cpu_ns();
        let cpu = cpu_now.saturating_sub(self.cpu0);
        if cpu < Self::SLICE_CPU_NS || (!idle && cpu < 2 * Self::SLICE_CPU_NS) {
            return;
        }
        let now = mono_ns();
        let wall = now.saturating_sub(self.wall0);
        self.cpu_ns += cpu;
        let owed = self.owed_ns(wall, cpu);
        if owed == 0 {
            self.wall0 = now;
            self.cpu0 = cpu_now;
            return;
        }
        std::thread::sleep(std::time::Duration::from_nanos(owed));
        let after = mono_ns();
        self.pauses += 1;
        self.rested_ns += after.saturating_sub(now);
        self.wall0 = after;
        self.cpu0 = thread_cpu_ns();
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

#[cfg(test)]
mod tests {
    use super::RtPacer;

    #[test]
    fn no_pacer_without_an_rt_limit() {
        assert!(RtPacer::with_limits(-1, 1_000_000).is_none());
        assert!(RtPacer::with_limits(1_000_000, 1_000_000).is_none());
        assert!(RtPacer::with_limits(0, 1_000_000).is_none());
    }

    #[test]
    fn owes_the_kernels_share_plus_a_margin() {
        let p = RtPacer::with_limits(950_000, 1_000_000).unwrap();
        // 0.5 ms of CPU in 0.5 ms of wall time: 0.5 ms * 50/950 * 1.25 = 32.9 us.
        let owed = p.owed_ns(500_000, 500_000);
        assert!((32_800..=33_000).contains(&owed), "{owed}");
        // Time already spent off the CPU counts.
        assert_eq!(p.owed_ns(540_000, 500_000), 0);
        assert_eq!(p.owed_ns(510_000, 500_000), owed - 10_000);
        // The pacer's own duty cycle stays under the kernel's limit.
        let cpu = 500_000u64;
        let share = cpu as f64 / (cpu + owed) as f64;
        assert!(share < 0.95, "{share}");
    }

    #[test]
    fn a_non_rt_thread_gets_no_pacer() {
        // Test threads run SCHED_OTHER.
        assert!(RtPacer::for_current_thread().is_none());
    }
}
