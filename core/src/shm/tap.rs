//! Decrypted-traffic tap (Halon's enc0): workers copy the clear packets of
//! tapped tunnels into a per-worker ring; the control process writes them to
//! pcap files on request.
//!
//! A worker checks one flag per burst ([`TapWriter::active`]); only when some
//! tunnel is tapped does it test each packet's tunnel ([`TapWriter::wants`])
//! and copy it ([`TapWriter::capture`]). A full ring drops the copy (counted
//! as `tap_lost`), never the packet.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::layout::{hw, RING_HDR, TAP_MAX_TUNNELS};
use super::region::Mapping;
use super::ring::Ring;
use super::ShmError;

/// Record kind of a tapped packet.
pub(crate) const KIND_TAP: u16 = 0x0100;
/// Longest packet copied; longer ones are truncated (the original length is kept).
pub const TAP_SNAPLEN: usize = 2048;
const TAP_META: usize = 20;

/// Which way a tapped packet was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapDirection {
    /// Decrypted after arriving from the peer.
    In,
    /// About to be encrypted for the peer.
    Out,
}

/// One tapped packet (control side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapPacket {
    /// Tunnel id.
    pub tunnel_id: u32,
    /// Direction.
    pub direction: TapDirection,
    /// CLOCK_REALTIME time of the capture, in ns since the Unix epoch.
    pub time_ns: u64,
    /// Length of the packet on the wire (may exceed `data.len()`).
    pub orig_len: u32,
    /// Inner IP packet (IP header onward), at most [`TAP_SNAPLEN`] bytes.
    pub data: Vec<u8>,
}

pub(crate) fn tap_ring(map: &Arc<Mapping>, worker: u32) -> Ring {
    let cap = map.geometry.tap_ring_bytes;
    let off = map.offsets.tap_off + u64::from(worker) * (RING_HDR as u64 + cap);
    Ring::new(map.clone(), off, cap, "tap")
}

fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME always exists.
    unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A worker's handle on its tap ring. One per worker thread (it is the ring's
/// only producer); `Send` so it can move into the worker.
pub struct TapWriter {
    map: Arc<Mapping>,
    ring: Ring,
    buf: Vec<u8>,
}

impl TapWriter {
    pub(crate) fn new(map: Arc<Mapping>, worker: u32) -> Result<TapWriter, ShmError> {
        if worker >= map.geometry.max_workers {
            return Err(ShmError::WorkerIndex {
                worker,
                max: map.geometry.max_workers,
            });
        }
        let ring = tap_ring(&map, worker);
        Ok(TapWriter {
            map,
            ring,
            buf: Vec::with_capacity(TAP_META + TAP_SNAPLEN),
        })
    }

    /// True if any tunnel is tapped: check once per burst.
    #[inline]
    pub fn active(&self) -> bool {
        self.map.hdr(hw::TAP_ACTIVE).load(Ordering::Relaxed) != 0
    }

    /// True if `tunnel_id` is tapped.
    #[inline]
    pub fn wants(&self, tunnel_id: u32) -> bool {
        if tunnel_id >= TAP_MAX_TUNNELS {
            return false;
        }
        let w = self
            .map
            .hdr(hw::TAP_BITMAP + (tunnel_id / 64) as usize)
            .load(Ordering::Relaxed);
        w & (1u64 << (tunnel_id % 64)) != 0
    }

    /// Copies one clear packet (IP header onward) into the ring. Returns false
    /// (and counts `tap_lost`) when the ring is full. No allocation: the
    /// staging buffer is reserved up front.
    pub fn capture(&mut self, tunnel_id: u32, direction: TapDirection, packet: &[u8]) -> bool {
        let n = packet.len().min(TAP_SNAPLEN);
        self.buf.clear();
        self.buf.extend_from_slice(&tunnel_id.to_le_bytes());
        self.buf.push(match direction {
            TapDirection::In => 0,
            TapDirection::Out => 1,
        });
        self.buf.extend_from_slice(&[0, 0, 0]);
        self.buf.extend_from_slice(&realtime_ns().to_le_bytes());
        self.buf
            .extend_from_slice(&(packet.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&packet[..n]);
        match self.ring.push(KIND_TAP, 0, &self.buf) {
            Ok(_) => true,
            Err(_) => {
                self.map
                    .hdr(hw::DP_TAP_LOST)
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

pub(crate) fn decode_tap(b: &[u8]) -> Option<TapPacket> {
    if b.len() < TAP_META {
        return None;
    }
    let tunnel_id = u32::from_le_bytes(b[0..4].try_into().ok()?);
    let direction = match b[4] {
        0 => TapDirection::In,
        1 => TapDirection::Out,
        _ => return None,
    };
    let time_ns = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let orig_len = u32::from_le_bytes(b[16..20].try_into().ok()?);
    Some(TapPacket {
        tunnel_id,
        direction,
        time_ns,
        orig_len,
        data: b[TAP_META..].to_vec(),
    })
}

/// Sets or clears the tap bit of a tunnel and keeps the active count right.
pub(crate) fn set_tap(map: &Mapping, tunnel_id: u32, on: bool) {
    if tunnel_id >= TAP_MAX_TUNNELS {
        return;
    }
    let word = map.hdr(hw::TAP_BITMAP + (tunnel_id / 64) as usize);
    let bit = 1u64 << (tunnel_id % 64);
    let old = if on {
        word.fetch_or(bit, Ordering::Relaxed)
    } else {
        word.fetch_and(!bit, Ordering::Relaxed)
    };
    let was = old & bit != 0;
    // Recount rather than increment: robust against a writer that died mid-update.
    if was != on {
        let count: u64 = (0..hw::TAP_BITMAP_WORDS)
            .map(|i| {
                u64::from(
                    map.hdr(hw::TAP_BITMAP + i)
                        .load(Ordering::Relaxed)
                        .count_ones(),
                )
            })
            .sum();
        map.hdr(hw::TAP_ACTIVE).store(count, Ordering::Relaxed);
    }
}

pub(crate) fn clear_taps(map: &Mapping) {
    for i in 0..hw::TAP_BITMAP_WORDS {
        map.hdr(hw::TAP_BITMAP + i).store(0, Ordering::Relaxed);
    }
    map.hdr(hw::TAP_ACTIVE).store(0, Ordering::Relaxed);
}
