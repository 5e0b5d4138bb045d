//! Lock-free rings of mbufs (`rte_ring`), and `net_ring` ports made of them.

use std::ptr::NonNull;

use crate::eal::{cstring, Eal};
use crate::error::{DpdkError, Errno, Result};
use crate::mbuf::MbufBurst;
use crate::sys;

/// A multi-producer/multi-consumer ring carrying owned mbufs. A copyable
/// handle: rings live until the process exits (a `net_ring` port or another
/// thread may still use them), like mempools. Mbufs left in a ring at exit are
/// reclaimed with the process.
#[derive(Debug, Clone, Copy)]
pub struct Ring(NonNull<sys::rte_ring>);

// SAFETY: the ring is created multi-producer/multi-consumer, so enqueue and
// dequeue are safe from any number of threads.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring of `size` slots (a power of two; usable capacity
    /// `size - 1`) on NUMA socket `socket` (None: any).
    pub fn create(_eal: &Eal, name: &str, size: u32, socket: Option<i32>) -> Result<Ring> {
        if !size.is_power_of_two() || size < 2 {
            return Err(DpdkError::InvalidArgument {
                what: "ring size",
                value: size.to_string(),
                why: "must be a power of two of at least 2",
            });
        }
        let c_name = cstring("ring name", name)?;
        // SAFETY: valid name; flags 0 = MP/MC.
        let p = unsafe {
            sys::rte_ring_create(
                c_name.as_ptr(),
                size,
                socket.unwrap_or(sys::SOCKET_ID_ANY),
                0,
            )
        };
        NonNull::new(p).map(Ring).ok_or_else(|| DpdkError::Ring {
            name: name.to_owned(),
            size,
            errno: Errno::last(),
        })
    }

    /// The raw ring.
    pub fn as_ptr(&self) -> *mut sys::rte_ring {
        self.0.as_ptr()
    }

    /// Mbufs in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: valid ring; racy snapshot by design.
        unsafe { sys::espresso_rte_ring_count(self.0.as_ptr()) }
    }

    /// Moves as many mbufs as fit from the front of `burst` into the ring;
    /// those that did not fit stay in the burst. Returns how many moved.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let len = burst.len() as u32;
        if len == 0 {
            return 0;
        }
        // SAFETY: valid MP ring; the first len slots are owned mbufs, the ring
        // takes ownership of the first n it reports.
        let n = unsafe {
            sys::espresso_rte_ring_enqueue_burst(
                self.0.as_ptr(),
                burst.as_raw_mut() as *const *mut std::ffi::c_void,
                len,
                std::ptr::null_mut(),
            )
        } as usize;
        burst.consume_front(n);
        n
    }

    /// Moves up to `burst.spare()` mbufs from the ring to the end of `burst`.
    /// Returns how many moved.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let spare = burst.spare() as u32;
        if spare == 0 {
            return 0;
        }
        // SAFETY: valid MC ring holding only owned mbufs (only enqueue_burst
        // and net_ring ports put objects in it); room for `spare` pointers.
        let n = unsafe {
            sys::espresso_rte_ring_dequeue_burst(
                self.0.as_ptr(),
                burst.spare_ptr() as *mut *mut std::ffi::c_void,
                spare,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring handed over n owned mbufs.
        unsafe { burst.grow(n) };
        n
    }
}

/// Creates a `net_ring` ethdev port named `name` whose rx queue `i` reads
/// from `rx[i]` and tx queue `i` writes to `tx[i]` (`rte_eth_from_rings`).
/// Two such ports with crossed rings form a back-to-back pair in one process.
pub fn port_from_rings(_eal: &Eal, name: &str, rx: &[Ring], tx: &[Ring]) -> Result<u16> {
    let err = |errno| DpdkError::Vdev {
        name: name.to_owned(),
        args: format!("{} rx rings, {} tx rings", rx.len(), tx.len()),
        op: "rte_eth_from_rings",
        errno,
    };
    if rx.is_empty() || tx.is_empty() || rx.len() > 16 || tx.len() > 16 {
        return Err(DpdkError::InvalidArgument {
            what: "ring count",
            value: format!("{} rx, {} tx", rx.len(), tx.len()),
            why: "between 1 and 16 rx and tx rings are needed",
        });
    }
    let c_name = cstring("port name", name)?;
    let mut rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
    let mut txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
    // SAFETY: valid name and ring arrays (rings live forever); DPDK copies
    // the arrays.
    let ret = unsafe {
        sys::rte_eth_from_rings(
            c_name.as_ptr(),
            rxp.as_mut_ptr(),
            rxp.len() as u32,
            txp.as_mut_ptr(),
            txp.len() as u32,
            sys::rte_socket_id(),
        )
    };
    if ret < 0 {
        return Err(err(Errno::last()));
    }
    Ok(ret as u16)
}
