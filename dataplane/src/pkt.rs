//! The packet buffer the ESP engine works on.
//!
//! A packet is a contiguous byte range inside a larger buffer, with headroom in
//! front (for the outer IP/UDP/ESP headers on encap) and tailroom behind (for
//! padding, trailer and ICV). AF_PACKET ring frames, DPDK mbufs and the heap
//! buffers used by tests and benchmarks all implement [`PacketBuf`], and the
//! engine is generic over it, so each backend is processed in place with no copy.
//!
//! Packets handed to the engine start at the IP header (layer 3): the worker
//! strips and re-adds the link-layer header.

#![forbid(unsafe_code)]

/// The largest burst anything in the dataplane handles at once: what a
/// backend hands out or takes per call, and what the ESP engine processes
/// per chunk (one sequence reservation, one cipher call per SA).
pub const MAX_BURST: usize = 64;

/// A packet inside a buffer with headroom and tailroom.
pub trait PacketBuf {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the packet.
    fn headroom(&self) -> usize;
    /// Free bytes behind the packet.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front (the new bytes are
    /// unspecified). Returns false, changing nothing, if the headroom is short.
    fn prepend(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the back (the new bytes are
    /// unspecified). Returns false, changing nothing, if the tailroom is short.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front. Returns false, changing nothing, if
    /// the packet is shorter than `n`.
    fn trim_front(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the back. Returns false, changing nothing, if
    /// the packet is shorter than `n`.
    fn trim_back(&mut self, n: usize) -> bool;

    /// Packet length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True if the packet holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet in a heap buffer: used by tests, benchmarks and the exception path.
/// Allocation happens only in [`HeapBuf::new`], never per packet on the hot path
/// (buffers are reused).
#[derive(Clone, Debug)]
pub struct HeapBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Default headroom: Ethernet + outer IPv6 + UDP + ESP header + IV, rounded up.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default tailroom: maximum padding + trailer + largest ICV, rounded up.
pub const DEFAULT_TAILROOM: usize = 128;

impl HeapBuf {
    /// An empty packet in a buffer of `headroom + capacity + tailroom` bytes,
    /// positioned after `headroom`.
    pub fn new(headroom: usize, capacity: usize, tailroom: usize) -> Self {
        let buf = vec![0u8; headroom + capacity + tailroom].into_boxed_slice();
        HeapBuf {
            buf,
            start: headroom,
            end: headroom,
        }
    }

    /// A packet holding a copy of `bytes`, with the default headroom and tailroom.
    pub fn from_slice(bytes: &[u8]) -> Self {
        let mut b = Self::new(DEFAULT_HEADROOM, bytes.len(), DEFAULT_TAILROOM);
        b.end = b.start + bytes.len();
        b.data_mut().copy_from_slice(bytes);
        b
    }

    /// Replaces the contents with `bytes`, resetting the headroom to `headroom`.
    /// Returns false if the buffer is too small.
    pub fn reset_to(&mut self, headroom: usize, bytes: &[u8]) -> bool {
        if headroom + bytes.len() > self.buf.len() {
            return false;
        }
        self.start = headroom;
        self.end = headroom + bytes.len();
        self.buf[self.start..self.end].copy_from_slice(bytes);
        true
    }

    /// Size of the whole underlying buffer.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim_back(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

/// A packet inside a borrowed frame (an AF_PACKET ring slot, a scratch buffer).
#[derive(Debug)]
pub struct FrameBuf<'a> {
    frame: &'a mut [u8],
    start: usize,
    end: usize,
}

impl<'a> FrameBuf<'a> {
    /// The packet is `frame[start..end]`; returns None if the range is invalid.
    pub fn new(frame: &'a mut [u8], start: usize, end: usize) -> Option<Self> {
        if start > end || end > frame.len() {
            return None;
        }
        Some(FrameBuf { frame, start, end })
    }
    /// Offset of the packet's first byte inside the frame.
    pub fn offset(&self) -> usize {
        self.start
    }
}

impl PacketBuf for FrameBuf<'_> {
    fn data(&self) -> &[u8] {
        &self.frame[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.frame[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.frame.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }
    fn trim_front(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim_back(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buf_grows_and_shrinks_within_bounds() {
        let mut b = HeapBuf::from_slice(&[1, 2, 3]);
        assert_eq!(b.headroom(), DEFAULT_HEADROOM);
        assert!(b.prepend(8));
        assert_eq!(b.len(), 11);
        assert!(!b.prepend(DEFAULT_HEADROOM));
        assert!(b.trim_front(8));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(b.append(4));
        assert_eq!(b.len(), 7);
        assert!(!b.trim_back(8));
        assert!(b.trim_back(4));
        assert_eq!(b.data(), &[1, 2, 3]);
    }

    #[test]
    fn frame_buf_rejects_bad_range() {
        let mut f = [0u8; 16];
        assert!(FrameBuf::new(&mut f, 8, 4).is_none());
        let mut f = [0u8; 16];
        assert!(FrameBuf::new(&mut f, 0, 17).is_none());
        let mut f = [0u8; 16];
        let mut p = FrameBuf::new(&mut f, 4, 8).unwrap();
        assert!(p.prepend(4));
        assert!(!p.prepend(1));
        assert!(p.append(8));
        assert!(!p.append(1));
    }
}
