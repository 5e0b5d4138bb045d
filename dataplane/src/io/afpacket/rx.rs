//! The receive rings' readers: TPACKET_V2 frames ([`RxV2`]) and TPACKET_V3
//! blocks ([`RxV3`]), handing packets of user-owned frames and blocks out as
//! [`Pkt`]s (the ring types and their set-up are the parent's).

use super::*;

const V2_HDR: usize = size_of::<libc::tpacket2_hdr>();

impl RxV2 {
    pub(super) fn burst(
        &mut self,
        port: u16,
        out: &mut Burst<Pkt>,
        max: usize,
        stats: &mut PortStats,
    ) {
        let mut n = 0;
        while n < max && self.outstanding.get() < self.frame_nr {
            // SAFETY: head < frame_nr, so the frame lies inside the ring mapping.
            let frame = unsafe { self.mem.ptr.add(self.head * self.frame_size) };
            let hdr = frame.cast::<libc::tpacket2_hdr>();
            let status_ptr = hdr.cast::<AtomicU32>().cast_const();
            // SAFETY: tp_status is the first u32 of the frame header (aligned:
            // frames are 16-byte aligned); the kernel updates it concurrently,
            // so it is read atomically with acquire order.
            let status = unsafe { (*status_ptr).load(Ordering::Acquire) };
            if status & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the frame is owned by user space (status USER), so the
            // header fields are stable; read them by value.
            let (len, snap, mac) = unsafe {
                let h = ptr::read_volatile(hdr);
                (h.tp_len, h.tp_snaplen, h.tp_mac as usize)
            };
            self.head = (self.head + 1) % self.frame_nr;
            self.outstanding.set(self.outstanding.get() + 1);
            let origin = Origin::V2 {
                port,
                status: status_ptr,
            };
            // The packet area starts behind the frame header (the
            // sockaddr_ll and reserve behind it become headroom).
            let base_off = V2_HDR;
            let bad = snap < len || mac < base_off || mac + snap as usize > self.frame_size;
            // SAFETY: base_off < frame_size: inside the frame.
            let base = unsafe { frame.add(base_off) };
            let p = Pkt {
                base,
                cap: (self.frame_size - base_off) as u32,
                start: (mac.saturating_sub(base_off)) as u32,
                end: (mac.saturating_sub(base_off) + snap as usize) as u32,
                origin,
                _mem: self.mem.clone(),
            };
            if bad {
                stats.rx_truncated += 1;
                // Hand back now (same as release, without the backend).
                // SAFETY: as in `AfPacket::release`.
                unsafe { (*status_ptr).store(libc::TP_STATUS_KERNEL, Ordering::Release) };
                self.outstanding.set(self.outstanding.get() - 1);
                drop(p);
                continue;
            }
            out.push(p);
            n += 1;
        }
    }
}

const V3_HDR: usize = size_of::<libc::tpacket3_hdr>();

impl RxV3 {
    fn block_ptr(&self, b: usize) -> *mut u8 {
        // SAFETY: b < block_nr: inside the ring mapping.
        unsafe { self.mem.ptr.add(b * self.block_size) }
    }

    fn block_status(&self, b: usize) -> &AtomicU32 {
        let desc = self.block_ptr(b).cast::<libc::tpacket_block_desc>();
        // SAFETY: block_status is a u32 at a fixed, 4-aligned offset in the
        // block descriptor at the start of the block; the kernel writes it
        // concurrently, so it is accessed atomically.
        unsafe { &*ptr::addr_of!((*desc).hdr.bh1.block_status).cast::<AtomicU32>() }
    }

    fn read_hdr(&self, off: usize) -> (u32, u32, u32, u16) {
        // SAFETY: `off` was given by the kernel for a block owned by user
        // space and lies inside it; the header is read by value, unaligned-safe.
        let h = unsafe {
            ptr::read_unaligned(
                self.block_ptr(self.cur)
                    .add(off)
                    .cast::<libc::tpacket3_hdr>(),
            )
        };
        (h.tp_next_offset, h.tp_snaplen, h.tp_len, h.tp_mac)
    }

    /// One packet of `block` given back.
    pub(super) fn put(&mut self, block: usize) {
        if let Some(h) = self.held.get_mut(block) {
            *h = h.saturating_sub(1);
            if *h == 0 {
                self.block_status(block)
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
            }
        }
    }

    pub(super) fn burst(
        &mut self,
        port: u16,
        out: &mut Burst<Pkt>,
        max: usize,
        stats: &mut PortStats,
    ) {
        let mut n = 0;
        while n < max {
            if !self.open {
                if self.held[self.cur] != 0 {
                    // Still holding packets of this block from the last lap.
                    break;
                }
                let st = self.block_status(self.cur).load(Ordering::Acquire);
                if st & libc::TP_STATUS_USER == 0 {
                    break;
                }
                let desc = self.block_ptr(self.cur).cast::<libc::tpacket_block_desc>();
                // SAFETY: the block is owned by user space; the descriptor
                // fields are stable and read by value.
                let (num, first) = unsafe {
                    let bh = ptr::read_unaligned(ptr::addr_of!((*desc).hdr.bh1));
                    (bh.num_pkts, bh.offset_to_first_pkt as usize)
                };
                self.open = true;
                self.remaining = num;
                self.next_off = first;
                self.held[self.cur] = 1;
                self.ahead = if num > 0 && first + V3_HDR <= self.block_size {
                    Some(self.read_hdr(first))
                } else {
                    None
                };
            }
            let Some((next, snap, len, mac)) = self.ahead.take().filter(|_| self.remaining > 0)
            else {
                // Block done: give up the reader's hold and move on.
                self.open = false;
                let b = self.cur;
                self.put(b);
                self.cur = (self.cur + 1) % self.block_nr;
                continue;
            };
            self.remaining -= 1;
            let off = self.next_off;
            let mac = mac as usize;
            // Region end: into the next packet's header area (read ahead
            // now, before this packet can be written), or the block end.
            let end_off = if self.remaining > 0 && next != 0 {
                let noff = off + next as usize;
                if noff + V3_HDR <= self.block_size {
                    self.ahead = Some(self.read_hdr(noff));
                    self.next_off = noff;
                    (noff + V3_TAIL_SHARE).min(self.block_size)
                } else {
                    self.remaining = 0;
                    self.block_size
                }
            } else {
                self.remaining = 0;
                self.block_size
            };
            let base_off = off + V3_TAIL_SHARE;
            let pkt_off = off + mac;
            let bad = snap < len || pkt_off < base_off || pkt_off + snap as usize > end_off;
            if bad {
                stats.rx_truncated += 1;
                continue;
            }
            self.held[self.cur] += 1;
            // SAFETY: base_off < end_off <= block_size: inside the block.
            let base = unsafe { self.block_ptr(self.cur).add(base_off) };
            out.push(Pkt {
                base,
                cap: (end_off - base_off) as u32,
                start: (pkt_off - base_off) as u32,
                end: (pkt_off - base_off + snap as usize) as u32,
                origin: Origin::V3 {
                    port,
                    block: self.cur as u32,
                },
                _mem: self.mem.clone(),
            });
            n += 1;
        }
    }
}
