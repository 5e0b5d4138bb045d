//! Packet mbuf pools.

use std::ffi::CStr;
use std::ptr::NonNull;

use crate::eal::{cstring, Eal};
use crate::error::{DpdkError, Errno, Result};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::sys;

/// Default data room of an mbuf: 2048 bytes of packet plus the 128-byte
/// headroom (`RTE_MBUF_DEFAULT_BUF_SIZE`).
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
/// Headroom of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
pub const DEFAULT_HEADROOM: usize = sys::RTE_PKTMBUF_HEADROOM as usize;

/// A packet mbuf pool (`rte_pktmbuf_pool_create`). A copyable handle: pools
/// live until the process exits, like the EAL (mbufs from a pool may be
/// anywhere — in NIC rings, rings, other threads — so a pool is never freed).
#[derive(Debug, Clone, Copy)]
pub struct Mempool(NonNull<sys::rte_mempool>);

// SAFETY: pktmbuf pools use DPDK's default multi-producer/multi-consumer ring
// ops, and every thread-local piece (the per-lcore cache) is selected by the
// calling thread's lcore id: the handle can be used from any thread.
unsafe impl Send for Mempool {}
// SAFETY: as above.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `count` mbufs, each with `data_room` bytes of buffer
    /// (headroom included; [`DEFAULT_DATA_ROOM`] for standard frames), a
    /// per-lcore cache of `cache` mbufs, on NUMA socket `socket` (None: any).
    pub fn create(
        _eal: &Eal,
        name: &str,
        count: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Mempool> {
        let err = |errno| DpdkError::Mempool {
            name: name.to_owned(),
            count,
            data_room,
            errno,
        };
        if (data_room as usize) < DEFAULT_HEADROOM {
            return Err(DpdkError::InvalidArgument {
                what: "mempool data room",
                value: data_room.to_string(),
                why: "smaller than the mbuf headroom (128)",
            });
        }
        let c_name = cstring("mempool name", name)?;
        // SAFETY: valid NUL-terminated name; EAL is initialised (we hold an
        // Eal token).
        let p = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                count,
                cache,
                0,
                data_room,
                socket.unwrap_or(sys::SOCKET_ID_ANY),
            )
        };
        NonNull::new(p)
            .map(Mempool)
            .ok_or_else(|| err(Errno::last()))
    }

    /// The pool's name.
    pub fn name(&self) -> String {
        // SAFETY: the pool is valid forever; `name` is a NUL-terminated array
        // inside it.
        unsafe { CStr::from_ptr(self.0.as_ref().name.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// The raw pool.
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.0.as_ptr()
    }

    /// Bytes of buffer per mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        // SAFETY: valid pktmbuf pool.
        unsafe { sys::espresso_rte_pktmbuf_data_room_size(self.0.as_ptr()) }
    }

    /// Number of mbufs in the pool (free or not).
    pub fn size(&self) -> u32 {
        // SAFETY: the pool is valid forever; reads a constant field.
        unsafe { self.0.as_ref().size }
    }

    /// Free mbufs (in the pool and in the lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool; the count is a racy snapshot by design.
        unsafe { sys::rte_mempool_avail_count(self.0.as_ptr()) }
    }

    /// Mbufs handed out.
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool; the count is a racy snapshot by design.
        unsafe { sys::rte_mempool_in_use_count(self.0.as_ptr()) }
    }

    /// One empty mbuf with the default headroom, or None if the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool; the returned mbuf (if any) is ours.
        let m = unsafe { sys::espresso_rte_pktmbuf_alloc(self.0.as_ptr()) };
        // SAFETY: a non-null mbuf fresh from the pool is owned by nobody else.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills `n` more slots of `burst` with empty mbufs, all or nothing.
    /// Returns false (burst unchanged) if `n` exceeds the burst's free slots
    /// or the pool has fewer than `n` free mbufs.
    #[inline]
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, n: usize) -> bool {
        if n > burst.spare() {
            return false;
        }
        // SAFETY: the spare area has room for n pointers; on success DPDK
        // writes n owned mbufs there, on failure nothing.
        let ret = unsafe {
            sys::espresso_rte_pktmbuf_alloc_bulk(self.0.as_ptr(), burst.spare_ptr(), n as u32)
        };
        if ret != 0 {
            return false;
        }
        // SAFETY: DPDK wrote n owned mbufs after len.
        unsafe { burst.grow(n) };
        true
    }
}
