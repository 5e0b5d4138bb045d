//! AF_PACKET backend: mmap receive rings (TPACKET_V2 or TPACKET_V3), fanout
//! by flow hash over workers, qdisc bypass, batched transmit.
//!
//! Per worker and port there are two sockets:
//! - a receive socket with an mmap RX ring, bound to the interface for every
//!   protocol, member of the port's fanout group (`PACKET_FANOUT_HASH` with
//!   `PACKET_FANOUT_FLAG_IGNORE_OUTGOING`), `PACKET_IGNORE_OUTGOING`, and
//!   `PACKET_RESERVE` bytes of headroom in front of each frame so that ESP
//!   encap prepends its headers in place;
//! - a transmit socket bound with protocol 0 (it receives nothing), with
//!   `PACKET_QDISC_BYPASS`, sending bursts either with one `sendmmsg` whose
//!   iovecs point straight into the receive frames ([`TxMode::Sendmmsg`]), or by
//!   copying into an mmap TX ring and kicking it with one `sendto`
//!   ([`TxMode::Ring`]).
//!
//! TPACKET_V2 hands out one fixed-size frame per packet, released one by one.
//! TPACKET_V3 fills variable-size packets into blocks released whole; a block
//! is handed to user space when full or when its timeout (`block_timeout_ms`)
//! expires, which adds up to that timeout of latency at low rates. Packets in a
//! V3 block sit next to each other, so each packet's tailroom runs into the
//! next packet's header area: the ring reads each header ahead (before the
//! previous packet can be written) and splits the gap between packets into
//! [`V3_TAIL_SHARE`] bytes of tailroom for one and headroom for the next.
//!
//! # Measured here (bench/e2e/fwd_mpps.sh, latency.sh; 64-byte frames, one
//! worker, veth, same run, kernel forwarding with offloads off as reference)
//! | variant | Mpps | vs kernel | p50 / p99 at half load |
//! |---|---|---|---|
//! | V2 rx + sendmmsg (default) | 0.79 | 0.91x | 5.8 us / 79 us (busy, RT-paced); 20 us / 57 us (backoff) |
//! | V3 rx + sendmmsg | 0.87 | 1.00x | 0.69 ms / 0.97 ms (block timeout 1 ms) |
//! | V2 rx + TX ring | 0.82 | 0.94x | - |
//! | kernel forwarding | 0.87 | 1.00x | 3.7 us / 7.5 us |
//!
//! The Mpps rows predate fwd_mpps.sh's same-CPU set-up (RPS puts the
//! gateway's receive softirq on the worker's core): there the generator's
//! 0.7 Mpps is more than one worker forwards, the softirq work for every
//! arriving frame (ring copy or ring-full drop, the kernel's own copy) runs
//! ahead of the worker on its core, and the worker forwards with what is
//! left. Dropping the kernel's copies at ingress (`process::kernel`) raised
//! that 1.3-2.8x (V2, 8 rounds against main's; bench/results/gateway.md).
//!
//! (Latency: latency.sh on 2026-12-07, load average 10, no probe lost; the
//! busy worker paced by [`super::RtPacer`]. Before the pacer, busy polling
//! met RT throttling: p99 44-53 ms and 5 % of the probes lost.)
//!
//! V2 is the default: V3 forwards ~10 % more but holds packets until a block
//! fills or its timeout (1 ms minimum) expires, which alone breaks the 50 us
//! latency goal at moderate rates. `sendmmsg` is the default transmit (no
//! user-space copy; the TX ring needs one copy per packet and was not
//! faster). The p99 figures are dominated by scheduling on a shared 2-core
//! machine (load ~10 from parallel builds): a SCHED_FIFO busy-poll thread
//! rests ~33 us every 0.5 ms of CPU (or the kernel's RT throttling stops it
//! 50 ms each second), a sleeping one pays its wake-up; the kernel forwards
//! in softirq context, which neither affects.

use std::cell::Cell;
use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::ptr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Burst, PacketIo, PortStats, TxResult, MAX_BURST};
use crate::pkt::PacketBuf;

mod rx;

/// Receive ring format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxVersion {
    /// TPACKET_V2: fixed frames, released one by one (lowest latency).
    #[default]
    V2,
    /// TPACKET_V3: packets packed into blocks with a retire timeout.
    V3,
}

/// How bursts are transmitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TxMode {
    /// One `sendmmsg` per burst, iovecs pointing into the packets (no copy in
    /// user space; the kernel copies into its socket buffers).
    #[default]
    Sendmmsg,
    /// Copy into an mmap TX ring, one `sendto` kick per burst.
    Ring,
}

/// AF_PACKET settings (the same for every worker and port).
#[derive(Clone, Debug)]
pub struct AfPacketConfig {
    /// Receive ring format.
    pub rx_version: RxVersion,
    /// Transmit method.
    pub tx_mode: TxMode,
    /// Headroom reserved in front of each received frame (`PACKET_RESERVE`).
    pub reserve: u32,
    /// V2 frame size and TX ring frame size (power of two).
    pub frame_size: u32,
    /// Frames in a V2 receive ring (and in a TX ring).
    pub frame_nr: u32,
    /// V3 block size (power of two, multiple of the page size).
    pub block_size: u32,
    /// V3 blocks per ring.
    pub block_nr: u32,
    /// V3 block retire timeout in milliseconds.
    pub block_timeout_ms: u32,
    /// Fanout group id base; the port's ifindex is added. None: no fanout (one worker).
    pub fanout_group: Option<u16>,
    /// Bypass the qdisc layer on transmit.
    pub qdisc_bypass: bool,
    /// Buffers in the per-worker pool used by [`PacketIo::alloc`].
    pub pool_frames: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            rx_version: RxVersion::V2,
            tx_mode: TxMode::Sendmmsg,
            reserve: 128,
            frame_size: 2048,
            frame_nr: 2048,
            block_size: 1 << 17,
            block_nr: 32,
            block_timeout_ms: 1,
            fanout_group: None,
            qdisc_bypass: true,
            pool_frames: 256,
        }
    }
}

/// Bytes of the gap after a V3 packet given to it as tailroom (the rest of the
/// gap is the next packet's headroom).
pub const V3_TAIL_SHARE: usize = 64;
/// Tailroom a received packet is guaranteed (copied to a pool buffer otherwise).
pub const MIN_TAILROOM: usize = 64;
/// Headroom of buffers from the pool.
pub const POOL_HEADROOM: usize = 192;

/// Why the backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A system call failed.
    #[error("{iface}: {op} failed: {source}")]
    Sys {
        /// Interface name.
        iface: String,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The interface does not exist.
    #[error("interface {0:?} not found")]
    NoSuchInterface(String),
    /// A setting is out of range.
    #[error("invalid AF_PACKET setting {field} = {value}: {why}")]
    Config {
        /// Setting name.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Explanation.
        why: &'static str,
    },
}

/// Resolves an interface name to its index.
pub fn ifindex(name: &str) -> Result<u32, IoError> {
    let c = CString::new(name).map_err(|_| IoError::NoSuchInterface(name.to_string()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(IoError::NoSuchInterface(name.to_string()));
    }
    Ok(idx)
}

/// An mmap'ed memory region, unmapped when the last reference goes.
struct Region {
    ptr: *mut u8,
    len: usize,
}

impl Region {
    fn anonymous(len: usize) -> io::Result<Region> {
        // SAFETY: anonymous private mapping, no file descriptor; the result is checked.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region { ptr: p.cast(), len })
    }

    fn socket_ring(fd: i32, len: usize, offset: usize) -> io::Result<Region> {
        // SAFETY: maps the rings the kernel allocated for `fd` (RX ring at 0,
        // TX ring right behind it); the length matches what was requested.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_LOCKED | libc::MAP_POPULATE,
                fd,
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            // MAP_LOCKED may fail on RLIMIT_MEMLOCK; retry without it.
            // SAFETY: as above.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    fd,
                    offset as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            return Ok(Region { ptr: p.cast(), len });
        }
        Ok(Region { ptr: p.cast(), len })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by this Region; every
        // packet pointing into it holds an `Rc<Region>`, so none is left.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Where a packet's memory comes from, i.e. how it is given back.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// A V2 frame: release by writing TP_STATUS_KERNEL to its status word.
    V2 { port: u16, status: *const AtomicU32 },
    /// A packet inside a V3 block: release by counting the block down.
    V3 { port: u16, block: u32 },
    /// A pool buffer.
    Pool { idx: u32 },
}

/// A packet in AF_PACKET memory (ring frame or pool buffer). Not `Send`: it
/// belongs to the worker whose backend handed it out.
pub struct Pkt {
    base: *mut u8,
    cap: u32,
    start: u32,
    end: u32,
    origin: Origin,
    _mem: Rc<Region>,
}

impl std::fmt::Debug for Pkt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkt")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("cap", &self.cap)
            .finish()
    }
}

impl PacketBuf for Pkt {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: `base..base+cap` lies inside the mapping kept alive by
        // `_mem`; the frame is owned by user space (status USER, or a pool
        // buffer) and handed to this one `Pkt` only, so no one else writes it;
        // `start <= end <= cap` is kept by every method.
        unsafe {
            std::slice::from_raw_parts(
                self.base.add(self.start as usize),
                (self.end - self.start) as usize,
            )
        }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` makes the borrow unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.base.add(self.start as usize),
                (self.end - self.start) as usize,
            )
        }
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        (self.cap - self.end) as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u32;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n as u32;
        true
    }
    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > (self.end - self.start) as usize {
            return false;
        }
        self.start += n as u32;
        true
    }
    #[inline]
    fn trim_back(&mut self, n: usize) -> bool {
        if n > (self.end - self.start) as usize {
            return false;
        }
        self.end -= n as u32;
        true
    }
}

fn sys_err(iface: &str, op: &'static str) -> IoError {
    IoError::Sys {
        iface: iface.to_string(),
        op,
        source: io::Error::last_os_error(),
    }
}

fn setsockopt<T>(fd: i32, level: i32, opt: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the given size for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An owned file descriptor closed on drop.
struct Fd(i32);
impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn packet_socket(iface: &str) -> Result<Fd, IoError> {
    // Protocol 0: the socket receives nothing until bound with a protocol, so
    // no packet lands before the ring and fanout are set up.
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(sys_err(iface, "socket(AF_PACKET)"));
    }
    Ok(Fd(fd))
}

fn bind(fd: i32, ifindex: u32, proto: u16, iface: &str) -> Result<(), IoError> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd,
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(sys_err(iface, "bind"));
    }
    Ok(())
}

const ETH_P_ALL: u16 = 0x0003;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;

/// A V2 receive ring.
struct RxV2 {
    mem: Rc<Region>,
    frame_size: usize,
    frame_nr: usize,
    head: usize,
    /// Frames handed out and not yet given back.
    outstanding: Rc<Cell<usize>>,
}

/// A V3 receive ring.
struct RxV3 {
    mem: Rc<Region>,
    block_size: usize,
    block_nr: usize,
    /// Block being read.
    cur: usize,
    /// True once `cur` was seen owned by user space.
    open: bool,
    /// Packets of `cur` not yet read.
    remaining: u32,
    /// Offset (inside the block) of the next packet's header.
    next_off: usize,
    /// Header of the next packet, read ahead: (next_offset, snaplen, len, mac).
    ahead: Option<(u32, u32, u32, u16)>,
    /// Per block: packets handed out and not given back, plus one while the
    /// reader is inside the block.
    held: Box<[u32]>,
}

enum Rx {
    V2(RxV2),
    V3(RxV3),
}

struct TxRing {
    mem: Rc<Region>,
    frame_size: usize,
    frame_nr: usize,
    head: usize,
}

struct Port {
    name: String,
    rx_fd: Fd,
    tx_fd: Fd,
    rx: Rx,
    tx_ring: Option<TxRing>,
    stats: PortStats,
}

struct Pool {
    mem: Rc<Region>,
    size: usize,
    free: Vec<u32>,
}

/// One worker's AF_PACKET queues on every port.
pub struct AfPacket {
    ports: Vec<Port>,
    pool: Pool,
    cfg: AfPacketConfig,
    msgs: Box<[libc::mmsghdr; MAX_BURST]>,
    iovs: Box<[libc::iovec; MAX_BURST]>,
    pollfds: Vec<libc::pollfd>,
}

fn check_cfg(cfg: &AfPacketConfig) -> Result<(), IoError> {
    let pow2 = |field, v: u32| {
        if v.is_power_of_two() && v >= 2048 {
            Ok(())
        } else {
            Err(IoError::Config {
                field,
                value: v as u64,
                why: "must be a power of two, at least 2048",
            })
        }
    };
    pow2("frame_size", cfg.frame_size)?;
    pow2("block_size", cfg.block_size)?;
    if (cfg.reserve as usize) < V3_TAIL_SHARE + 64 {
        return Err(IoError::Config {
            field: "reserve",
            value: cfg.reserve as u64,
            why: "must be at least 128 bytes (encap headroom)",
        });
    }
    if cfg.reserve as usize + 1600 > cfg.frame_size as usize {
        return Err(IoError::Config {
            field: "reserve",
            value: cfg.reserve as u64,
            why: "leaves no room for a 1514-byte frame",
        });
    }
    if cfg.frame_nr == 0 || cfg.block_nr == 0 {
        return Err(IoError::Config {
            field: "frame_nr/block_nr",
            value: 0,
            why: "must be positive",
        });
    }
    Ok(())
}

impl AfPacket {
    /// Opens this worker's queues on `ifaces` (names). With
    /// `cfg.fanout_group`, each receive socket joins the fanout group of its
    /// interface, so that every worker opening the same interfaces gets a
    /// share of the flows.
    pub fn open(ifaces: &[String], cfg: &AfPacketConfig) -> Result<AfPacket, IoError> {
        check_cfg(cfg)?;
        let mut ports = Vec::with_capacity(ifaces.len());
        for name in ifaces {
            ports.push(open_port(name, cfg)?);
        }
        let pool_size = cfg.frame_size as usize;
        let pool_n = cfg.pool_frames.max(1) as usize;
        let mem = Region::anonymous(pool_size * pool_n).map_err(|e| IoError::Sys {
            iface: "pool".into(),
            op: "mmap",
            source: e,
        })?;
        let pollfds = ports
            .iter()
            .map(|p| libc::pollfd {
                fd: p.rx_fd.0,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        Ok(AfPacket {
            ports,
            pool: Pool {
                mem: Rc::new(mem),
                size: pool_size,
                free: (0..pool_n as u32).rev().collect(),
            },
            cfg: cfg.clone(),
            // SAFETY: mmsghdr/iovec are plain C structs; all-zero is valid
            // (null pointers, zero lengths) and every use fills them first.
            msgs: Box::new(unsafe { zeroed() }),
            // SAFETY: as above.
            iovs: Box::new(unsafe { zeroed() }),
            pollfds,
        })
    }

    /// The configuration this backend was opened with.
    pub fn config(&self) -> &AfPacketConfig {
        &self.cfg
    }

    fn release(&mut self, p: Pkt) {
        match p.origin {
            Origin::V2 { port, status } => {
                // SAFETY: `status` points at the tp_status word of a frame of
                // this port's ring, kept mapped by `p._mem`; writing KERNEL
                // hands the frame back (release order: our writes first).
                unsafe { (*status).store(libc::TP_STATUS_KERNEL, Ordering::Release) };
                if let Some(Port { rx: Rx::V2(r), .. }) = self.ports.get(port as usize) {
                    r.outstanding.set(r.outstanding.get().saturating_sub(1));
                }
            }
            Origin::V3 { port, block } => {
                if let Some(Port { rx: Rx::V3(r), .. }) = self.ports.get_mut(port as usize) {
                    r.put(block as usize);
                }
            }
            Origin::Pool { idx } => self.pool.free.push(idx),
        }
    }

    fn pool_pkt(&mut self) -> Option<Pkt> {
        let idx = self.pool.free.pop()?;
        let size = self.pool.size;
        // SAFETY: idx < pool_frames, so the buffer lies inside the pool mapping.
        let base = unsafe { self.pool.mem.ptr.add(idx as usize * size) };
        Some(Pkt {
            base,
            cap: size as u32,
            start: POOL_HEADROOM as u32,
            end: POOL_HEADROOM as u32,
            origin: Origin::Pool { idx },
            _mem: self.pool.mem.clone(),
        })
    }

    /// Copies a ring packet with too little tailroom into a pool buffer.
    fn copy_to_pool(&mut self, p: Pkt) -> Option<Pkt> {
        let Some(mut q) = self.pool_pkt() else {
            self.release(p);
            return None;
        };
        let n = p.len();
        if !q.append(n) {
            self.release(q);
            self.release(p);
            return None;
        }
        q.data_mut().copy_from_slice(p.data());
        self.release(p);
        Some(q)
    }
}

fn open_port(name: &str, cfg: &AfPacketConfig) -> Result<Port, IoError> {
    let idx = ifindex(name)?;
    let rx_fd = packet_socket(name)?;
    let fd = rx_fd.0;
    let ver: i32 = match cfg.rx_version {
        RxVersion::V2 => TPACKET_V2,
        RxVersion::V3 => TPACKET_V3,
    };
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &ver)
        .map_err(|e| sys(name, "PACKET_VERSION", e))?;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RESERVE, &cfg.reserve)
        .map_err(|e| sys(name, "PACKET_RESERVE", e))?;
    let one: i32 = 1;
    setsockopt(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one)
        .map_err(|e| sys(name, "PACKET_IGNORE_OUTGOING", e))?;
    let rx = match cfg.rx_version {
        RxVersion::V2 => {
            let frames_per_block = 16u32;
            let req = libc::tpacket_req {
                tp_block_size: cfg.frame_size * frames_per_block,
                tp_block_nr: cfg.frame_nr.div_ceil(frames_per_block),
                tp_frame_size: cfg.frame_size,
                tp_frame_nr: cfg.frame_nr.div_ceil(frames_per_block) * frames_per_block,
            };
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
                .map_err(|e| sys(name, "PACKET_RX_RING (V2)", e))?;
            let len = (req.tp_block_size * req.tp_block_nr) as usize;
            let mem = Region::socket_ring(fd, len, 0).map_err(|e| sys(name, "mmap RX ring", e))?;
            Rx::V2(RxV2 {
                mem: Rc::new(mem),
                frame_size: cfg.frame_size as usize,
                frame_nr: req.tp_frame_nr as usize,
                head: 0,
                outstanding: Rc::new(Cell::new(0)),
            })
        }
        RxVersion::V3 => {
            let req = libc::tpacket_req3 {
                tp_block_size: cfg.block_size,
                tp_block_nr: cfg.block_nr,
                tp_frame_size: cfg.frame_size,
                tp_frame_nr: cfg.block_size / cfg.frame_size * cfg.block_nr,
                tp_retire_blk_tov: cfg.block_timeout_ms,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            setsockopt(fd, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
                .map_err(|e| sys(name, "PACKET_RX_RING (V3)", e))?;
            let len = (cfg.block_size * cfg.block_nr) as usize;
            let mem = Region::socket_ring(fd, len, 0).map_err(|e| sys(name, "mmap RX ring", e))?;
            Rx::V3(RxV3 {
                mem: Rc::new(mem),
                block_size: cfg.block_size as usize,
                block_nr: cfg.block_nr as usize,
                cur: 0,
                open: false,
                remaining: 0,
                next_off: 0,
                ahead: None,
                held: vec![0; cfg.block_nr as usize].into_boxed_slice(),
            })
        }
    };
    bind(fd, idx, ETH_P_ALL, name)?;
    if let Some(g) = cfg.fanout_group {
        let group = (g as u32).wrapping_add(idx) & 0xffff;
        let arg: u32 =
            group | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
        setsockopt(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
            .map_err(|e| sys(name, "PACKET_FANOUT", e))?;
    }

    let tx_fd = packet_socket(name)?;
    let tfd = tx_fd.0;
    if cfg.qdisc_bypass {
        setsockopt(tfd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, &one)
            .map_err(|e| sys(name, "PACKET_QDISC_BYPASS", e))?;
    }
    let tx_ring = if cfg.tx_mode == TxMode::Ring {
        let v2 = TPACKET_V2;
        setsockopt(tfd, libc::SOL_PACKET, libc::PACKET_VERSION, &v2)
            .map_err(|e| sys(name, "PACKET_VERSION (tx)", e))?;
        let frames_per_block = 16u32;
        let nr = cfg.frame_nr.div_ceil(frames_per_block);
        let req = libc::tpacket_req {
            tp_block_size: cfg.frame_size * frames_per_block,
            tp_block_nr: nr,
            tp_frame_size: cfg.frame_size,
            tp_frame_nr: nr * frames_per_block,
        };
        setsockopt(tfd, libc::SOL_PACKET, libc::PACKET_TX_RING, &req)
            .map_err(|e| sys(name, "PACKET_TX_RING", e))?;
        let len = (req.tp_block_size * req.tp_block_nr) as usize;
        let mem = Region::socket_ring(tfd, len, 0).map_err(|e| sys(name, "mmap TX ring", e))?;
        Some(TxRing {
            mem: Rc::new(mem),
            frame_size: cfg.frame_size as usize,
            frame_nr: req.tp_frame_nr as usize,
            head: 0,
        })
    } else {
        None
    };
    // Protocol 0: this socket only sends.
    bind(tfd, idx, 0, name)?;
    Ok(Port {
        name: name.to_string(),
        rx_fd,
        tx_fd,
        rx,
        tx_ring,
        stats: PortStats::default(),
    })
}

fn sys(iface: &str, op: &'static str, source: io::Error) -> IoError {
    IoError::Sys {
        iface: iface.to_string(),
        op,
        source,
    }
}

impl PacketIo for AfPacket {
    type Pkt = Pkt;

    fn num_ports(&self) -> usize {
        self.ports.len()
    }

    fn rx_burst(&mut self, port: usize, out: &mut Burst<Pkt>, max: usize) -> usize {
        let before = out.len();
        let max = max.min(out.capacity() - out.len());
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        let mut stats = p.stats;
        match &mut p.rx {
            Rx::V2(r) => r.burst(port as u16, out, max, &mut stats),
            Rx::V3(r) => r.burst(port as u16, out, max, &mut stats),
        }
        let got = out.len() - before;
        stats.rx_packets += got as u64;
        self.ports[port].stats = stats;
        // V3 packets at a block end may lack tailroom: copy those (rare).
        for i in before..out.len() {
            if out[i].tailroom() < MIN_TAILROOM {
                let p = out.remove(i);
                match self.copy_to_pool(p) {
                    Some(q) => out.insert(i, q),
                    None => {
                        self.ports[port].stats.rx_truncated += 1;
                        // keep indices consistent: nothing inserted
                        return self.rx_fixup_tail(port, out, before, i);
                    }
                }
            }
        }
        got
    }

    fn tx_burst(&mut self, port: usize, pkts: &mut Burst<Pkt>) -> TxResult {
        let n = pkts.len();
        if n == 0 {
            return TxResult::default();
        }
        let Some(p) = self.ports.get_mut(port) else {
            let dropped = pkts.len();
            for pk in pkts.drain(..) {
                self.release(pk);
            }
            return TxResult { sent: 0, dropped };
        };
        let sent = match &mut p.tx_ring {
            None => {
                for (i, pk) in pkts.iter_mut().enumerate() {
                    let d = pk.data_mut();
                    self.iovs[i] = libc::iovec {
                        iov_base: d.as_mut_ptr().cast(),
                        iov_len: d.len(),
                    };
                    let m = &mut self.msgs[i];
                    m.msg_hdr.msg_name = ptr::null_mut();
                    m.msg_hdr.msg_namelen = 0;
                    m.msg_hdr.msg_iov = &mut self.iovs[i];
                    m.msg_hdr.msg_iovlen = 1;
                    m.msg_hdr.msg_control = ptr::null_mut();
                    m.msg_hdr.msg_controllen = 0;
                    m.msg_hdr.msg_flags = 0;
                    m.msg_len = 0;
                }
                let mut done = 0usize;
                let mut tries = 0;
                while done < n && tries < 4 {
                    // SAFETY: msgs[done..n] were filled above; their iovecs
                    // point into packets borrowed from `pkts`, alive until
                    // after the call (the kernel copies the data).
                    let r = unsafe {
                        libc::sendmmsg(
                            p.tx_fd.0,
                            self.msgs.as_mut_ptr().add(done),
                            (n - done) as u32,
                            libc::MSG_DONTWAIT,
                        )
                    };
                    if r > 0 {
                        done += r as usize;
                    } else {
                        let e = io::Error::last_os_error().raw_os_error();
                        if e == Some(libc::EINTR) {
                            continue;
                        }
                        tries += 1;
                        if e != Some(libc::EAGAIN) && e != Some(libc::ENOBUFS) {
                            // The packet at `done` is refused (e.g. too long): skip it.
                            done += 1;
                            p.stats.tx_errors += 1;
                            tries = 0;
                        }
                    }
                }
                done.min(n)
            }
            Some(ring) => {
                let data_off = libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>();
                let mut queued = 0;
                for pk in pkts.iter() {
                    // SAFETY: head < frame_nr: inside the TX ring mapping.
                    let frame = unsafe { ring.mem.ptr.add(ring.head * ring.frame_size) };
                    let hdr = frame.cast::<libc::tpacket2_hdr>();
                    // SAFETY: status word of a TX frame, shared with the kernel: atomic.
                    let st = unsafe { &*hdr.cast::<AtomicU32>() };
                    let s = st.load(Ordering::Acquire);
                    if s != libc::TP_STATUS_AVAILABLE && s != libc::TP_STATUS_WRONG_FORMAT {
                        break;
                    }
                    let d = pk.data();
                    if data_off + d.len() > ring.frame_size {
                        p.stats.tx_errors += 1;
                        continue;
                    }
                    // SAFETY: the frame is owned by user space (AVAILABLE);
                    // the copy stays inside it (checked above); then the
                    // length is set and the frame handed over with release order.
                    unsafe {
                        ptr::copy_nonoverlapping(d.as_ptr(), frame.add(data_off), d.len());
                        ptr::addr_of_mut!((*hdr).tp_len).write(d.len() as u32);
                        ptr::addr_of_mut!((*hdr).tp_snaplen).write(d.len() as u32);
                    }
                    st.store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
                    ring.head = (ring.head + 1) % ring.frame_nr;
                    queued += 1;
                }
                if queued > 0 {
                    // SAFETY: a zero-length send kicks the TX ring of this socket.
                    let r = unsafe {
                        libc::sendto(
                            p.tx_fd.0,
                            ptr::null(),
                            0,
                            libc::MSG_DONTWAIT,
                            ptr::null(),
                            0,
                        )
                    };
                    if r < 0 {
                        let e = io::Error::last_os_error().raw_os_error();
                        if e != Some(libc::EAGAIN) && e != Some(libc::ENOBUFS) {
                            p.stats.tx_errors += 1;
                        }
                    }
                }
                queued
            }
        };
        p.stats.tx_packets += sent as u64;
        for pk in pkts.drain(..) {
            self.release(pk);
        }
        TxResult {
            sent,
            dropped: n - sent,
        }
    }

    fn free(&mut self, pkt: Pkt) {
        self.release(pkt);
    }

    fn alloc(&mut self) -> Option<Pkt> {
        self.pool_pkt()
    }

    fn wait_rx(&mut self, timeout_us: u32) {
        let ms = timeout_us.div_ceil(1000).max(1) as i32;
        // SAFETY: `pollfds` is a live array of `len` pollfd structs.
        unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                ms,
            );
        }
    }

    fn port_stats(&mut self, port: usize) -> PortStats {
        let Some(p) = self.ports.get_mut(port) else {
            return PortStats::default();
        };
        // PACKET_STATISTICS returns and resets the kernel's counters.
        // SAFETY: tpacket_stats_v3 is plain data; all-zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes of the given size
        // (V2 sockets fill the first two fields only).
        let r = unsafe {
            libc::getsockopt(
                p.rx_fd.0,
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
                &mut len,
            )
        };
        if r == 0 {
            p.stats.rx_dropped += st.tp_drops as u64;
        }
        p.stats
    }
}

impl AfPacket {
    /// Cold path of `rx_burst`: the pool was empty while copying packet `i`;
    /// drop the remaining short-tailroom packets.
    #[cold]
    fn rx_fixup_tail(
        &mut self,
        port: usize,
        out: &mut Burst<Pkt>,
        before: usize,
        i: usize,
    ) -> usize {
        let mut j = i;
        while j < out.len() {
            if out[j].tailroom() < MIN_TAILROOM {
                let p = out.remove(j);
                self.release(p);
                self.ports[port].stats.rx_truncated += 1;
            } else {
                j += 1;
            }
        }
        out.len() - before
    }

    /// Names of the ports, in index order.
    pub fn port_names(&self) -> Vec<String> {
        self.ports.iter().map(|p| p.name.clone()).collect()
    }
}
