//! Owned mbufs with safe views, and fixed-size bursts of them.
//!
//! An [`Mbuf`] owns one `rte_mbuf` (freed back to its pool on drop). Its
//! packet is the first segment's data: `data_len` bytes at `buf_addr +
//! data_off`, with `data_off` bytes of headroom in front and the rest of the
//! buffer as tailroom. Ports are configured without scattered rx, so received
//! packets are single-segment; [`Mbuf::is_contiguous`] tells otherwise.
//!
//! The length arithmetic of the hot-path operations (prepend, append, adj,
//! trim) is done here in Rust on the mbuf fields, exactly as DPDK's inline
//! functions do it, to avoid a call per packet; multi-segment mbufs go through
//! the C shim. Tests compare both.

use std::ptr::NonNull;

use crate::sys;

/// One packet buffer from a DPDK mempool, owned.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is a plain buffer owned by exactly one Mbuf value; DPDK
// mempools are multi-thread safe, so it may be used and freed on any thread.
unsafe impl Send for Mbuf {}
// SAFETY: shared references only read the mbuf.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must point to a valid mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership without freeing.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    /// The raw mbuf, still owned by `self`.
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline(always)]
    fn m(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for the lifetime of self.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: we own a valid mbuf, and &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    /// The packet bytes (first segment).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // buffer (DPDK invariant: data_off + data_len <= buf_len), which lives
        // as long as the mbuf; we hold it, so no one writes it meanwhile.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The packet bytes (first segment), writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m_mut();
        // SAFETY: as in `data`, and &mut self makes the access exclusive.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        self.m().data_len as usize
    }

    /// True if the first segment holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.m().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }

    /// True if the packet is a single segment (then `data()` is all of it).
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.m().nb_segs == 1
    }

    /// Free bytes in front of the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.m().data_off as usize
    }

    /// Free bytes behind the packet (in the last segment).
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        if m.nb_segs == 1 {
            m.buf_len as usize - m.data_off as usize - m.data_len as usize
        } else {
            // SAFETY: valid owned mbuf chain.
            unsafe { sys::espresso_rte_pktmbuf_tailroom(self.0.as_ptr()) as usize }
        }
    }

    /// Size of the whole data buffer of the first segment.
    #[inline]
    pub fn buf_len(&self) -> usize {
        self.m().buf_len as usize
    }

    /// Grows the packet by `n` bytes at the front (`rte_pktmbuf_prepend`).
    /// Returns false, changing nothing, if the headroom is short.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if n > m.data_off as usize {
            return false;
        }
        let n16 = n as u16; // n <= data_off <= u16::MAX
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += n as u32;
        true
    }

    /// Grows the packet by `n` bytes at the back (`rte_pktmbuf_append`).
    /// Returns false, changing nothing, if the tailroom is short.
    #[inline]
    pub fn append(&mut self, n: usize) -> bool {
        if self.m().nb_segs != 1 {
            let Ok(n16) = u16::try_from(n) else {
                return false;
            };
            // SAFETY: valid owned mbuf chain; returns NULL and changes nothing
            // if the last segment's tailroom is short.
            return !unsafe { sys::espresso_rte_pktmbuf_append(self.0.as_ptr(), n16) }.is_null();
        }
        if n > self.tailroom() {
            return false;
        }
        let m = self.m_mut();
        m.data_len += n as u16; // n <= tailroom < u16::MAX
        m.pkt_len += n as u32;
        true
    }

    /// Removes `n` bytes from the front (`rte_pktmbuf_adj`). Returns false,
    /// changing nothing, if the first segment is shorter than `n`.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if n > m.data_len as usize {
            return false;
        }
        let n16 = n as u16;
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= n as u32;
        true
    }

    /// Removes `n` bytes from the back (`rte_pktmbuf_trim`). Returns false,
    /// changing nothing, if the last segment is shorter than `n`.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        if self.m().nb_segs != 1 {
            let Ok(n16) = u16::try_from(n) else {
                return false;
            };
            // SAFETY: valid owned mbuf chain; returns -1 and changes nothing
            // if the last segment is too short.
            return unsafe { sys::espresso_rte_pktmbuf_trim(self.0.as_ptr(), n16) } == 0;
        }
        let m = self.m_mut();
        if n > m.data_len as usize {
            return false;
        }
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }

    /// Appends `bytes` behind the packet. Returns false, changing nothing, if
    /// the tailroom is short.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> bool {
        let old = self.len();
        if !self.is_contiguous() || !self.append(bytes.len()) {
            return false;
        }
        self.data_mut()[old..].copy_from_slice(bytes);
        true
    }

    /// Empties the packet and restores the default headroom
    /// (`rte_pktmbuf_reset`; frees nothing, so single-segment mbufs only).
    pub fn reset(&mut self) {
        if self.is_contiguous() {
            // SAFETY: valid owned single-segment mbuf.
            unsafe { sys::espresso_rte_pktmbuf_reset(self.0.as_ptr()) }
        }
    }

    /// The port the packet was received on (or is marked for).
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Marks the packet's port.
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.m_mut().port = port;
    }

    /// The RSS hash computed by the NIC, if any.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.m();
        if m.ol_flags & sys::ESPRESSO_MBUF_F_RX_RSS_HASH != 0 {
            // SAFETY: reading a u32 from a plain-data union; with
            // RTE_MBUF_F_RX_RSS_HASH set the rss member is the valid one.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain); it is freed exactly once here.
        unsafe { sys::espresso_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// Default burst size.
pub const BURST: usize = 32;

/// A fixed array of up to `N` owned mbufs: what rx fills and tx drains. Never
/// allocates; remaining mbufs are freed in bulk when cleared or dropped.
pub struct MbufBurst<const N: usize = BURST> {
    ptrs: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: the burst owns its mbufs exactly as `Mbuf` does.
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> std::fmt::Debug for MbufBurst<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MbufBurst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufBurst<N> {
    const CAPACITY_FITS_U16: () = assert!(N > 0 && N <= u16::MAX as usize);

    /// An empty burst.
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS_U16;
        MbufBurst {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no mbuf is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if no more mbufs fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Maximum number of mbufs.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        N - self.len
    }

    /// The mbufs held.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has
        // the layout of *mut rte_mbuf; ptrs[..len] are all non-null owned mbufs.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr() as *const Mbuf, self.len) }
    }

    /// The mbufs held, writable (each can be edited or swapped in place).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; &mut self gives exclusive access, and any
        // Mbuf swapped in through the slice is itself a valid owned mbuf.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Iterates over the mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates over the mbufs, writable.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Adds an mbuf at the end; gives it back if the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf out.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let p = std::mem::replace(&mut self.ptrs[self.len], std::ptr::null_mut());
        // SAFETY: slots below the old len hold owned non-null mbufs; the slot
        // is cleared so ownership moves to the returned Mbuf.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    /// Takes mbuf `i` out, moving the last one into its place. None if `i` is
    /// out of range.
    pub fn swap_remove(&mut self, i: usize) -> Option<Mbuf> {
        if i >= self.len {
            return None;
        }
        self.ptrs.swap(i, self.len - 1);
        self.pop()
    }

    /// Keeps the mbufs for which `keep` returns true, in order, and frees the
    /// others in one bulk call. Returns the number freed.
    pub fn retain_mut<F: FnMut(&mut Mbuf) -> bool>(&mut self, mut keep: F) -> usize {
        let mut freed = [std::ptr::null_mut::<sys::rte_mbuf>(); N];
        let mut nfree = 0;
        let mut w = 0;
        for r in 0..self.len {
            // SAFETY: slot r < len holds an owned non-null mbuf; we borrow it
            // as an Mbuf without taking ownership (ManuallyDrop).
            let mut m = std::mem::ManuallyDrop::new(unsafe {
                Mbuf::from_raw(NonNull::new_unchecked(self.ptrs[r]))
            });
            if keep(&mut m) {
                self.ptrs[w] = self.ptrs[r];
                w += 1;
            } else {
                freed[nfree] = self.ptrs[r];
                nfree += 1;
            }
        }
        self.len = w;
        free_bulk(&mut freed[..nfree]);
        nfree
    }

    /// Frees every mbuf held (one bulk call).
    #[inline]
    pub fn clear(&mut self) {
        let n = self.len;
        self.len = 0;
        free_bulk(&mut self.ptrs[..n]);
    }

    /// Moves mbufs from the front of `other` to the end of `self` until self
    /// is full or other is empty; returns how many moved.
    pub fn append_from<const M: usize>(&mut self, other: &mut MbufBurst<M>) -> usize {
        let n = self.spare().min(other.len);
        self.ptrs[self.len..self.len + n].copy_from_slice(&other.ptrs[..n]);
        self.len += n;
        other.consume_front(n);
        n
    }

    /// Takes every mbuf out, front to back. Mbufs the iterator has not yielded
    /// when it is dropped are freed (in bulk).
    pub fn drain(&mut self) -> Drain<'_, N> {
        Drain {
            burst: self,
            next: 0,
        }
    }

    /// Pointer to the first free slot, for rx-style calls that write up to
    /// `spare()` pointers.
    #[inline]
    pub(crate) fn spare_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        // SAFETY: len <= N, so this is in bounds or one past the end.
        unsafe { self.ptrs.as_mut_ptr().add(self.len) }
    }

    /// Pointer to the first slot, for tx-style calls that read `len()` pointers.
    #[inline]
    pub(crate) fn as_raw_mut(&mut self) -> *mut *mut sys::rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// Records that `n` more slots after `len` now hold owned mbufs.
    ///
    /// # Safety
    /// The `n` slots after `len` must hold valid owned mbufs, `n <= spare()`.
    #[inline]
    pub(crate) unsafe fn grow(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        self.len += n;
    }

    /// Forgets the first `n` mbufs (their ownership went elsewhere, e.g. to a
    /// NIC queue) and moves the rest to the front.
    #[inline]
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// Iterator of [`MbufBurst::drain`].
pub struct Drain<'a, const N: usize> {
    burst: &'a mut MbufBurst<N>,
    next: usize,
}

impl<const N: usize> Iterator for Drain<'_, N> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.burst.len {
            return None;
        }
        let p = self.burst.ptrs[self.next];
        self.next += 1;
        // SAFETY: slots below len hold owned non-null mbufs; slot `next - 1`
        // is never read again (Drop below only frees slots from `next` on,
        // then empties the burst), so ownership moves to the returned Mbuf.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.burst.len - self.next;
        (n, Some(n))
    }
}

impl<const N: usize> ExactSizeIterator for Drain<'_, N> {}

impl<const N: usize> Drop for Drain<'_, N> {
    fn drop(&mut self) {
        let (from, to) = (self.next, self.burst.len);
        self.burst.len = 0;
        free_bulk(&mut self.burst.ptrs[from..to]);
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Frees owned mbuf pointers in one call.
#[inline]
fn free_bulk(ptrs: &mut [*mut sys::rte_mbuf]) {
    if ptrs.is_empty() {
        return;
    }
    // SAFETY: every pointer is an owned non-null mbuf that the caller has
    // forgotten (burst length already reduced), so each is freed once.
    unsafe { sys::rte_pktmbuf_free_bulk(ptrs.as_mut_ptr(), ptrs.len() as u32) }
}
