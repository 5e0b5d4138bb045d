//! Single-producer single-consumer ring of checksummed, variable-size records.
//!
//! Positions (`head` written by the producer, `tail` by the consumer) count
//! bytes since the region was created and never wrap; the byte at position
//! `p` lives at `data[p % cap]`. A record is
//! `len u32 | kind u16 | flags u16 | crc u32 | payload_len u32 | payload | pad`,
//! padded to 16 bytes; `crc` is CRC-32 over kind, flags, payload_len and the
//! payload. A record never straddles the end of the data area: the producer
//! fills the rest of the area with a `WRAP` record first. The consumer zeroes
//! every record once read (command records carry keys).
//!
//! The producer keeps its own head in private memory and only publishes it:
//! what the other process (or a stray write) leaves in the shared word never
//! moves it. Positions that cannot be (the tail beyond the head, more than
//! the capacity between them) are corruption: the consumer zeroes the data
//! area, takes the published head as its tail and reports it
//! ([`ShmError::BadRecord`], as for a damaged record: the dataplane counts it
//! and the control process re-sends everything); the producer publishes its
//! own head again and reports it, so that the next pop resynchronises. Never
//! a wrap in the arithmetic, a panic or a loop over garbage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::layout::RING_HDR;
use super::region::Mapping;
use super::ShmError;

const REC_HDR: usize = 16;
/// Record kind that only skips to the start of the data area.
pub(crate) const KIND_WRAP: u16 = 0xffff;

fn align16(n: usize) -> usize {
    (n + 15) & !15
}

pub(crate) struct Ring {
    map: Arc<Mapping>,
    off: u64,
    cap: u64,
    name: &'static str,
    /// The producer's head, private: read from the region once, at attach.
    own_head: AtomicU64,
}

/// One record read from a ring.
pub(crate) struct Record {
    pub kind: u16,
    /// Position of the record (for ordering against `head`).
    pub pos: u64,
}

fn crc(kind: u16, flags: u16, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&kind.to_le_bytes());
    h.update(&flags.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

impl Ring {
    pub fn new(map: Arc<Mapping>, off: u64, cap: u64, name: &'static str) -> Ring {
        // Bounds are checked here once; every later access stays inside.
        let _ = map.byte_ptr(off, RING_HDR as u64 + cap);
        let own_head = AtomicU64::new(map.words(off, 1)[0].load(Ordering::Acquire));
        Ring {
            map,
            off,
            cap,
            name,
            own_head,
        }
    }

    /// Whether `head` and `tail` can be positions of this ring.
    fn possible(&self, head: u64, tail: u64) -> bool {
        tail <= head && head - tail <= self.cap
    }

    fn impossible(&self, head: u64, tail: u64) -> String {
        format!(
            "impossible positions: head {head}, tail {tail}, capacity {}",
            self.cap
        )
    }

    fn head(&self) -> &AtomicU64 {
        &self.map.words(self.off, 1)[0]
    }

    fn tail(&self) -> &AtomicU64 {
        &self.map.words(self.off + 64, 1)[0]
    }

    fn data(&self) -> *mut u8 {
        self.map.byte_ptr(self.off + RING_HDR as u64, self.cap)
    }

    /// Producer position (everything before it is published).
    pub fn head_pos(&self) -> u64 {
        self.head().load(Ordering::Acquire)
    }

    /// Consumer position (everything before it has been consumed).
    pub fn tail_pos(&self) -> u64 {
        self.tail().load(Ordering::Acquire)
    }

    /// Bytes published and not yet consumed.
    pub fn pending(&self) -> u64 {
        self.head_pos().saturating_sub(self.tail_pos())
    }

    fn write_bytes(&self, at: u64, bytes: &[u8]) {
        debug_assert!(at + bytes.len() as u64 <= self.cap);
        // SAFETY: `at + len <= cap` (records never straddle the end), so the
        // destination lies in this ring's data area; only the single producer
        // writes to the free part of the ring, which the consumer does not read
        // until the head is published with a release store.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.data().add(at as usize),
                bytes.len(),
            );
        }
    }

    fn read_bytes(&self, at: u64, out: &mut [u8]) {
        debug_assert!(at + out.len() as u64 <= self.cap);
        // SAFETY: in bounds as above; the bytes were published by the producer
        // before the head we loaded with acquire ordering, and the producer
        // does not overwrite them until we advance the tail.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.data().add(at as usize),
                out.as_mut_ptr(),
                out.len(),
            );
        }
    }

    fn zero_bytes(&self, at: u64, len: u64) {
        debug_assert!(at + len <= self.cap);
        // SAFETY: in bounds; the range belongs to records the consumer owns
        // until it advances the tail.
        unsafe {
            std::ptr::write_bytes(self.data().add(at as usize), 0, len as usize);
        }
    }

    /// Appends one record. Fails (nothing written) if it does not fit now.
    pub fn push(&self, kind: u16, flags: u16, payload: &[u8]) -> Result<u64, ShmError> {
        let rec = align16(REC_HDR + payload.len()) as u64;
        if rec > self.cap / 2 || payload.len() > u32::MAX as usize {
            return Err(ShmError::RecordTooLarge {
                ring: self.name,
                len: payload.len(),
                cap: self.cap,
            });
        }
        let mut head = self.own_head.load(Ordering::Relaxed);
        let tail = self.tail().load(Ordering::Acquire);
        if !self.possible(head, tail) {
            // our head published again: the consumer resynchronises on it
            self.head().store(head, Ordering::Release);
            return Err(ShmError::BadRecord {
                ring: self.name,
                pos: head,
                why: self.impossible(head, tail),
            });
        }
        let off = head % self.cap;
        let to_end = self.cap - off;
        let need = if rec <= to_end { rec } else { to_end + rec };
        if head - tail + need > self.cap {
            return Err(ShmError::RingFull {
                ring: self.name,
                need,
                free: self.cap - (head - tail),
            });
        }
        if rec > to_end {
            let mut hdr = [0u8; REC_HDR];
            hdr[0..4].copy_from_slice(&(to_end as u32).to_le_bytes());
            hdr[4..6].copy_from_slice(&KIND_WRAP.to_le_bytes());
            hdr[8..12].copy_from_slice(&crc(KIND_WRAP, 0, &[]).to_le_bytes());
            self.write_bytes(off, &hdr);
            head += to_end;
        }
        let off = head % self.cap;
        let mut hdr = [0u8; REC_HDR];
        hdr[0..4].copy_from_slice(&(rec as u32).to_le_bytes());
        hdr[4..6].copy_from_slice(&kind.to_le_bytes());
        hdr[6..8].copy_from_slice(&flags.to_le_bytes());
        hdr[8..12].copy_from_slice(&crc(kind, flags, payload).to_le_bytes());
        hdr[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.write_bytes(off, &hdr);
        self.write_bytes(off + REC_HDR as u64, payload);
        let pos = head;
        head += rec;
        self.own_head.store(head, Ordering::Relaxed);
        self.head().store(head, Ordering::Release);
        Ok(pos)
    }

    /// Takes the next record, copying its payload into `out` (cleared first)
    /// and zeroing it in the ring. On a damaged record the ring is drained
    /// (everything published is zeroed and skipped) and the damage reported.
    pub fn pop(&self, out: &mut Vec<u8>) -> Result<Option<Record>, ShmError> {
        out.clear();
        loop {
            let tail = self.tail().load(Ordering::Relaxed);
            let head = self.head().load(Ordering::Acquire);
            if tail == head {
                return Ok(None);
            }
            if !self.possible(head, tail) {
                return Err(self.resync(head, tail));
            }
            let off = tail % self.cap;
            let mut hdr = [0u8; REC_HDR];
            let avail = head - tail;
            if avail < REC_HDR as u64 || !off.is_multiple_of(16) {
                return Err(self.damaged(tail, head, "truncated record header".into()));
            }
            self.read_bytes(off, &mut hdr);
            let len = u64::from(u32::from_le_bytes(hdr[0..4].try_into().unwrap_or_default()));
            let kind = u16::from_le_bytes([hdr[4], hdr[5]]);
            let flags = u16::from_le_bytes([hdr[6], hdr[7]]);
            let sum = u32::from_le_bytes(hdr[8..12].try_into().unwrap_or_default());
            let plen = u64::from(u32::from_le_bytes(
                hdr[12..16].try_into().unwrap_or_default(),
            ));
            if len < REC_HDR as u64 || len % 16 != 0 || len > avail || len > self.cap - off {
                return Err(self.damaged(tail, head, format!("record length {len} invalid")));
            }
            if kind == KIND_WRAP {
                if sum != crc(KIND_WRAP, 0, &[]) {
                    return Err(self.damaged(tail, head, "wrap record checksum".into()));
                }
                self.zero_bytes(off, len);
                self.tail().store(tail + len, Ordering::Release);
                continue;
            }
            if plen > len - REC_HDR as u64 {
                return Err(self.damaged(
                    tail,
                    head,
                    format!("payload length {plen} exceeds record length {len}"),
                ));
            }
            out.resize(plen as usize, 0);
            self.read_bytes(off + REC_HDR as u64, out);
            let want = crc(kind, flags, out);
            if want != sum {
                out.iter_mut().for_each(|b| *b = 0);
                out.clear();
                return Err(self.damaged(
                    tail,
                    head,
                    format!("checksum {sum:#010x} does not match payload ({want:#010x})"),
                ));
            }
            self.zero_bytes(off, len);
            self.tail().store(tail + len, Ordering::Release);
            return Ok(Some(Record { kind, pos: tail }));
        }
    }

    /// Consumer, on impossible positions: zeroes the whole data area (it may
    /// hold keys) and takes the published head as the tail.
    fn resync(&self, head: u64, tail: u64) -> ShmError {
        self.zero_bytes(0, self.cap);
        self.tail().store(head, Ordering::Release);
        ShmError::BadRecord {
            ring: self.name,
            pos: tail,
            why: self.impossible(head, tail),
        }
    }

    fn damaged(&self, tail: u64, head: u64, why: String) -> ShmError {
        self.discard_range(tail, head);
        ShmError::BadRecord {
            ring: self.name,
            pos: tail,
            why,
        }
    }

    fn discard_range(&self, tail: u64, head: u64) {
        let mut p = tail;
        while p < head {
            let off = p % self.cap;
            let n = (self.cap - off).min(head - p);
            self.zero_bytes(off, n);
            p += n;
        }
        self.tail().store(head, Ordering::Release);
    }

    /// Consumer: drops (and zeroes) everything published so far.
    pub fn discard_all(&self) -> u64 {
        let tail = self.tail().load(Ordering::Relaxed);
        let head = self.head().load(Ordering::Acquire);
        if !self.possible(head, tail) {
            let _ = self.resync(head, tail);
            return 0;
        }
        self.discard_range(tail, head);
        head - tail
    }

    /// Test helper: writes `v` into the shared head word (a stray write).
    #[cfg(test)]
    pub fn scribble_head(&self, v: u64) {
        self.head().store(v, Ordering::Release);
    }

    /// Test helper: flips one byte of the data area at `pos` (corruption tests).
    #[cfg(test)]
    pub fn corrupt_at(&self, pos: u64) {
        let off = pos % self.cap;
        let mut b = [0u8; 1];
        self.read_bytes(off, &mut b);
        b[0] ^= 0x5a;
        self.write_bytes(off, &b);
    }
}
