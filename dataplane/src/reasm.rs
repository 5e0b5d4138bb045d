//! Reassembly of IP fragments of ESP and ESP-in-UDP that arrive on the WAN
//! for the gateway (RFC 4303 §3.4.1: inbound fragments are reassembled
//! before IPsec processing), with bounded memory.
//!
//! A worker owns one [`Reassembler`]: a table of [`ReasmConfig::slots`]
//! datagrams under reassembly, each with a buffer of
//! [`ReasmConfig::max_datagram`] bytes, all allocated when the worker starts
//! ([`ReasmConfig::memory_bound`]); nothing is allocated per packet.
//! Fragments are copied into their slot; a complete datagram is written,
//! header fixed, into a packet buffer the caller gives ([`Reassembler::emit`]).
//!
//! The rules are the ones Linux applies (`net/ipv4/ip_fragment.c`,
//! `net/ipv6/reassembly.c`, `inet_fragment.c`), each refusal counted under a
//! [`DropReason`] per fragment:
//! - A datagram is keyed by source, destination, identification and
//!   protocol (RFC 791; for IPv6 the fragment header's next header).
//! - A fragment lying entirely inside one already held is a duplicate:
//!   dropped, the datagram waits on (`frag_duplicate`). Any other overlap
//!   drops the whole datagram (`frag_overlap`; RFC 5722 for IPv6, and
//!   Linux does the same for IPv4 since CVE-2018-5391).
//! - A non-last fragment of IPv6 must carry a multiple of 8 bytes
//!   (RFC 8200 §4.5: dropped, `frag_invalid`); an IPv4 one is cut down to a
//!   multiple of 8 as Linux does. An empty fragment, a last fragment that
//!   ends before bytes already received or disagrees with an earlier last
//!   fragment, or bytes past the last fragment drop the whole datagram
//!   (`frag_invalid`); so does a datagram past [`ReasmConfig::max_datagram`]
//!   or 65535 bytes (`frag_too_big`) or with more than [`MAX_FRAGS`]
//!   fragments (`frag_invalid`).
//! - The first fragment must carry the whole ESP header (8 bytes), or the
//!   UDP header and the 8 bytes after it for UDP (RFC 7112 / RFC 8200 §4.5:
//!   the first fragment has the whole header chain), else it is dropped
//!   (`frag_invalid`).
//! - ECN: fragments that mix Not-ECT with ECT or CE drop the datagram; CE
//!   on any fragment sets CE on the datagram (RFC 3168 §5.3, Linux's
//!   `ip_frag_ecn_table`).
//! - An IPv6 atomic fragment (offset 0, M clear, RFC 8200 §4.5 / RFC 6946)
//!   is not queued: its fragment header is removed ([`strip_atomic`]) and
//!   the packet goes on as it is.
//! - Time: a datagram not complete [`ReasmConfig::timeout_ms`] after its
//!   first fragment came is dropped (`frag_timeout`; Linux's
//!   `ipfrag_time`, 30 s).
//! - Space: a source may hold at most [`ReasmConfig::per_source`]
//!   datagrams; a new one from a source at its share evicts that source's
//!   oldest (`frag_source_limit`). A full table evicts its oldest datagram
//!   (`frag_evicted`). So a flood of incomplete datagrams costs no memory
//!   beyond the table and only pushes out other incomplete datagrams: a
//!   peer's fragments, which come back to back, complete unless a whole
//!   table of flood datagrams arrives between two of them. (Linux instead
//!   refuses new fragments above `ipfrag_high_thresh` until old queues
//!   time out, which lets a flood starve a peer for 30 s.)

#![forbid(unsafe_code)]

use arrayvec::ArrayVec;

use crate::drop::DropReason;
use crate::pkt::PacketBuf;
use crate::sa::DropCounters;
use crate::wire::{
    ecn, ipv4, proto, FragmentHeader, Ipv4Packet, Ipv6Packet, FRAG_HEADER_LEN, IPV4_HEADER_LEN,
    IPV6_HEADER_LEN, UDP_HEADER_LEN,
};

/// Most fragments one datagram may have (with 8-byte fragments, a
/// 512-byte datagram; real ones have 2 to 7 at a 1280-byte MTU).
pub const MAX_FRAGS: usize = 64;

/// Longest unfragmentable part kept from the first fragment: an IPv4
/// header with options (60), or the IPv6 header and the extension headers
/// in front of the fragment header.
pub const MAX_HDR: usize = 128;

/// Largest IP datagram (IPv4 total length, IPv6 payload length).
const MAX_IP_LEN: usize = 65535;

/// The reassembly table's size and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmConfig {
    /// Datagrams under reassembly at once.
    pub slots: usize,
    /// Datagrams one source address may have under reassembly.
    pub per_source: usize,
    /// Largest datagram payload (after the IP header) reassembled, in bytes.
    pub max_datagram: usize,
    /// Milliseconds a datagram may take to complete.
    pub timeout_ms: u64,
}

impl Default for ReasmConfig {
    /// 256 datagrams of up to 2048 bytes per worker (a reassembled datagram
    /// must fit one packet buffer of the I/O backend: 2048-byte AF_PACKET
    /// frames and DPDK mbufs), 32 per source, 30 s (Linux's `ipfrag_time`):
    /// about 640 KiB. A flood must bring 256 new datagrams between two
    /// fragments of a peer's datagram to push it out.
    fn default() -> Self {
        ReasmConfig {
            slots: 256,
            per_source: 32,
            max_datagram: 2048,
            timeout_ms: 30_000,
        }
    }
}

impl ReasmConfig {
    /// Bytes the table takes (buffers and bookkeeping): the most a
    /// reassembler ever holds, whatever it is sent.
    pub fn memory_bound(&self) -> usize {
        self.slots * (self.max_datagram + std::mem::size_of::<Slot>())
    }
}

/// What identifies a datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Key {
    src: u128,
    dst: u128,
    id: u32,
    proto: u8,
    v6: bool,
}

/// An IP fragment of ESP or UDP, as [`parse`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    key: Key,
    /// Offset of this fragment's bytes in the datagram's payload.
    pub offset: usize,
    /// More fragments follow.
    pub more: bool,
    /// Length of the unfragmentable part: the IPv4 header, or the IPv6
    /// header and extension headers up to the fragment header.
    pub hdr_len: usize,
    /// Where this fragment's payload starts in the packet.
    pub data_start: usize,
    /// Where it ends (the IP length; link-layer padding excluded).
    pub data_end: usize,
    /// IPv6: offset of the byte that names the fragment header.
    pub nh_field: usize,
    /// Protocol of the datagram (ESP or UDP).
    pub proto: u8,
    /// ECN codepoint of this fragment.
    pub ecn: u8,
}

impl Fragment {
    /// An IPv6 fragment header saying offset 0 and no more fragments
    /// (RFC 8200 §4.5): the packet is whole.
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
    /// True for IPv6.
    pub fn is_v6(&self) -> bool {
        self.key.v6
    }
}

/// Finds out whether `d` (an IP packet, validated as far as the worker's
/// demux does: version, lengths, IPv4 header checksum) is a fragment of an
/// ESP or UDP datagram. `Ok(None)` for anything else (whole packets, other
/// protocols, IPv6 fragments whose fragmentable part starts with another
/// header), which goes on as before.
pub fn parse(d: &[u8]) -> Result<Option<Fragment>, DropReason> {
    match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let p = ip.protocol();
            if !ip.is_fragment() || (p != proto::ESP && p != proto::UDP) {
                return Ok(None);
            }
            let hl = ip.header_len();
            Ok(Some(Fragment {
                key: Key {
                    src: u32::from(ip.src()).into(),
                    dst: u32::from(ip.dst()).into(),
                    id: ip.ident().into(),
                    proto: p,
                    v6: false,
                },
                offset: usize::from(ip.frag_offset()) * 8,
                more: ip.mf(),
                hdr_len: hl,
                data_start: hl,
                data_end: usize::from(ip.total_len()),
                nh_field: ipv4::field::PROTOCOL,
                proto: p,
                ecn: ip.ecn(),
            }))
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let Some(loc) = ip.fragment_header().map_err(|e| e.drop_reason())? else {
                return Ok(None);
            };
            let fh = FragmentHeader::new_checked(&d[loc.offset..]).map_err(|e| e.drop_reason())?;
            let p = fh.next_header();
            if p != proto::ESP && p != proto::UDP {
                return Ok(None);
            }
            Ok(Some(Fragment {
                key: Key {
                    src: u128::from(ip.src()),
                    dst: u128::from(ip.dst()),
                    id: fh.ident(),
                    proto: p,
                    v6: true,
                },
                offset: fh.offset(),
                more: fh.more(),
                hdr_len: loc.offset,
                data_start: loc.offset + FRAG_HEADER_LEN,
                data_end: ip.total_len(),
                nh_field: loc.nh_field,
                proto: p,
                ecn: ip.ecn(),
            }))
        }
        Some(_) => Ok(None),
        None => Err(DropReason::Truncated),
    }
}

/// Removes the fragment header of an IPv6 atomic fragment `f` (parsed from
/// `p`), in place: the packet becomes the unfragmented packet it stands for.
/// Returns false (changing nothing) if `f` is not atomic or not IPv6.
pub fn strip_atomic<B: PacketBuf>(p: &mut B, f: &Fragment) -> bool {
    if !f.key.v6 || !f.is_atomic() || p.len() < f.data_start {
        return false;
    }
    let d = p.data_mut();
    let mut ip = Ipv6Packet::new_unchecked(&mut *d);
    let plen = ip.payload_len();
    ip.set_payload_len(plen - FRAG_HEADER_LEN as u16);
    ip.set_next_header_at(f.nh_field, f.proto);
    d.copy_within(0..f.hdr_len, FRAG_HEADER_LEN);
    p.trim_front(FRAG_HEADER_LEN)
}

/// What became of a fragment given to [`Reassembler::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// Kept: its datagram is not complete yet.
    Held,
    /// Its datagram is complete: `len` bytes, in `slot`. Call
    /// [`Reassembler::emit`] or [`Reassembler::discard`] before the next push.
    Complete {
        /// The table slot.
        slot: usize,
        /// Length of the reassembled datagram (header included).
        len: usize,
    },
    /// Dropped (and counted) for this reason.
    Dropped(DropReason),
}

/// One datagram under reassembly.
#[derive(Clone, Debug)]
struct Slot {
    used: bool,
    key: Key,
    /// When the first fragment came (ms).
    born: u64,
    /// Creation order (for eviction of the oldest).
    gen: u64,
    /// Payload length, once the last fragment came.
    total: Option<usize>,
    /// Largest end seen.
    max_end: usize,
    /// Payload bytes held.
    got: usize,
    /// Payload ranges held (never overlapping).
    ranges: ArrayVec<(u16, u16), MAX_FRAGS>,
    /// Unfragmentable part of the first fragment (`hdr_len` bytes; 0: not yet).
    hdr: [u8; MAX_HDR],
    hdr_len: usize,
    nh_field: usize,
    /// ECN codepoints seen (bit per codepoint).
    ecn_seen: u8,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            used: false,
            key: Key::default(),
            born: 0,
            gen: 0,
            total: None,
            max_end: 0,
            got: 0,
            ranges: ArrayVec::new(),
            hdr: [0; MAX_HDR],
            hdr_len: 0,
            nh_field: 0,
            ecn_seen: 0,
        }
    }
    /// Fragments held.
    fn held(&self) -> u64 {
        self.ranges.len() as u64
    }
}

/// A bounded table of datagrams under reassembly (one per worker).
pub struct Reassembler {
    cfg: ReasmConfig,
    slots: Vec<Slot>,
    /// `slots.len() * max_datagram` bytes: slot `i`'s payload at
    /// `i * max_datagram`.
    arena: Box<[u8]>,
    next_gen: u64,
    in_use: usize,
}

impl Reassembler {
    /// A table per `cfg` (at least one slot, one per source, 8 bytes),
    /// allocated now.
    pub fn new(cfg: ReasmConfig) -> Self {
        let cfg = ReasmConfig {
            slots: cfg.slots.max(1),
            per_source: cfg.per_source.clamp(1, cfg.slots.max(1)),
            max_datagram: cfg.max_datagram.clamp(8, MAX_IP_LEN),
            timeout_ms: cfg.timeout_ms,
        };
        Reassembler {
            slots: vec![Slot::empty(); cfg.slots],
            arena: vec![0u8; cfg.slots * cfg.max_datagram].into_boxed_slice(),
            cfg,
            next_gen: 0,
            in_use: 0,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &ReasmConfig {
        &self.cfg
    }

    /// Datagrams under reassembly.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Fragments held in all slots.
    pub fn held_fragments(&self) -> u64 {
        self.slots.iter().filter(|s| s.used).map(Slot::held).sum()
    }

    fn free(&mut self, i: usize) {
        let s = &mut self.slots[i];
        if s.used {
            s.used = false;
            s.ranges.clear();
            self.in_use -= 1;
        }
    }

    /// Drops the datagram in `slot`, counting its fragments under `r`.
    pub fn discard(&mut self, slot: usize, r: DropReason, drops: &DropCounters) {
        if let Some(s) = self.slots.get(slot).filter(|s| s.used) {
            drops.add_n(r, s.held());
            self.free(slot);
        }
    }

    /// Drops the datagrams older than the timeout (`frag_timeout`).
    pub fn expire(&mut self, now_ms: u64, drops: &DropCounters) {
        if self.in_use == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.used && now_ms.saturating_sub(s.born) >= self.cfg.timeout_ms {
                self.discard(i, DropReason::FragTimeout, drops);
            }
        }
    }

    /// Drops the datagram in `slot` (if any) and the fragment that made it
    /// invalid, all under `r`.
    fn fail(&mut self, slot: Option<usize>, r: DropReason, drops: &DropCounters) -> Push {
        if let Some(i) = slot {
            self.discard(i, r, drops);
        }
        drops.add(r);
        Push::Dropped(r)
    }

    /// The slot of `key`, or a new one (evicting as the limits say).
    /// Expired slots met on the way are dropped (`frag_timeout`).
    fn find_or_make(&mut self, key: &Key, now_ms: u64, drops: &DropCounters) -> (usize, bool) {
        let mut free = None;
        let mut same_src = 0usize;
        let mut oldest_src: Option<usize> = None;
        let mut oldest: Option<usize> = None;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.used && now_ms.saturating_sub(s.born) >= self.cfg.timeout_ms {
                self.discard(i, DropReason::FragTimeout, drops);
            }
            let s = &self.slots[i];
            if !s.used {
                free.get_or_insert(i);
                continue;
            }
            if s.key == *key {
                return (i, false);
            }
            if s.key.src == key.src && s.key.v6 == key.v6 {
                same_src += 1;
                if oldest_src.is_none_or(|o| self.slots[o].gen > s.gen) {
                    oldest_src = Some(i);
                }
            }
            if oldest.is_none_or(|o| self.slots[o].gen > s.gen) {
                oldest = Some(i);
            }
        }
        let i = if same_src >= self.cfg.per_source {
            // At its share: the source's oldest goes (whether or not the
            // table has room).
            let i = oldest_src.unwrap_or(0);
            self.discard(i, DropReason::FragSourceLimit, drops);
            i
        } else if let Some(i) = free {
            i
        } else {
            let i = oldest.unwrap_or(0);
            self.discard(i, DropReason::FragEvicted, drops);
            i
        };
        let gen = self.next_gen;
        self.next_gen += 1;
        let s = &mut self.slots[i];
        s.used = true;
        s.key = *key;
        s.born = now_ms;
        s.gen = gen;
        s.total = None;
        s.max_end = 0;
        s.got = 0;
        s.ranges.clear();
        s.hdr_len = 0;
        s.ecn_seen = 0;
        self.in_use += 1;
        (i, true)
    }

    /// Takes fragment `f` of packet `d` (as [`parse`] gave it; not atomic)
    /// at time `now_ms`. Every fragment not held or completing a datagram is
    /// counted in `drops`, as are the held fragments of datagrams given up.
    pub fn push(&mut self, d: &[u8], f: &Fragment, now_ms: u64, drops: &DropCounters) -> Push {
        if f.data_end > d.len() || f.data_start > f.data_end || f.is_atomic() {
            return self.fail(None, DropReason::Malformed, drops);
        }
        let len = f.data_end - f.data_start;
        let off = f.offset;
        let mut end = off + len;
        if f.more {
            if f.key.v6 {
                if !len.is_multiple_of(8) {
                    // RFC 8200 §4.5: dropped (Linux answers with a parameter problem).
                    return self.fail(None, DropReason::FragInvalid, drops);
                }
            } else {
                // Linux cuts a non-last IPv4 fragment to a multiple of 8.
                end &= !7;
            }
        }
        if off == 0 {
            let need = if f.proto == proto::UDP {
                UDP_HEADER_LEN + 8
            } else {
                8
            };
            if end < need || f.hdr_len > MAX_HDR {
                // A tiny first fragment: the header must be in it whole.
                return self.fail(None, DropReason::FragInvalid, drops);
            }
        }
        let (slot, _new) = self.find_or_make(&f.key, now_ms, drops);
        let max = self.cfg.max_datagram;
        let hdr_len = if off == 0 {
            f.hdr_len
        } else {
            self.slots[slot].hdr_len
        };
        // The datagram's IP length as far as known (the IPv4 header is at
        // least 20 bytes; the IPv6 one is not counted in its length).
        let full = end.max(self.slots[slot].max_end);
        let ip_len = if f.key.v6 {
            full + hdr_len.saturating_sub(IPV6_HEADER_LEN)
        } else {
            full + hdr_len.max(IPV4_HEADER_LEN)
        };
        if end > max || ip_len > MAX_IP_LEN {
            return self.fail(Some(slot), DropReason::FragTooBig, drops);
        }
        if end <= off {
            // Empty (or cut to nothing): Linux drops the whole queue.
            return self.fail(Some(slot), DropReason::FragInvalid, drops);
        }
        let s = &mut self.slots[slot];
        if !f.more {
            if end < s.max_end || s.total.is_some_and(|t| t != end) {
                return self.fail(Some(slot), DropReason::FragInvalid, drops);
            }
            s.total = Some(end);
        } else if s.total.is_some_and(|t| end > t) {
            return self.fail(Some(slot), DropReason::FragInvalid, drops);
        }
        for &(a, b) in &s.ranges {
            let (a, b) = (usize::from(a), usize::from(b));
            if off >= a && end <= b {
                drops.add(DropReason::FragDuplicate);
                return Push::Dropped(DropReason::FragDuplicate);
            }
            if off < b && end > a {
                return self.fail(Some(slot), DropReason::FragOverlap, drops);
            }
        }
        if s.ranges.is_full() {
            return self.fail(Some(slot), DropReason::FragInvalid, drops);
        }
        // Within max_datagram <= 65535: the casts are exact.
        s.ranges.push((off as u16, end as u16));
        s.got += end - off;
        s.max_end = s.max_end.max(end);
        s.ecn_seen |= 1 << f.ecn;
        if off == 0 && s.hdr_len == 0 {
            s.hdr[..f.hdr_len].copy_from_slice(&d[..f.hdr_len]);
            s.hdr_len = f.hdr_len;
            s.nh_field = f.nh_field;
        }
        let base = slot * max;
        self.arena[base + off..base + end]
            .copy_from_slice(&d[f.data_start..f.data_start + end - off]);
        let s = &self.slots[slot];
        match s.total {
            Some(t) if s.hdr_len > 0 && s.got == t => {
                let not_ect = 1 << ecn::NOT_ECT;
                if s.ecn_seen & not_ect != 0 && s.ecn_seen != not_ect {
                    // Not-ECT mixed with ECT/CE (Linux's ip_frag_ecn_table).
                    self.discard(slot, DropReason::FragInvalid, drops);
                    return Push::Dropped(DropReason::FragInvalid);
                }
                Push::Complete {
                    slot,
                    len: s.hdr_len + t,
                }
            }
            _ => Push::Held,
        }
    }

    /// Writes the complete datagram of `slot` into `out` (at least the
    /// `len` [`Push::Complete`] gave) with its header made whole: IPv4 total
    /// length, offset and flags cleared, checksum; IPv6 fragment header
    /// removed, payload length. Frees the slot. Returns the length written,
    /// or 0 if `slot` holds no complete datagram or `out` is too short.
    pub fn emit(&mut self, slot: usize, out: &mut [u8]) -> usize {
        let Some(s) = self.slots.get(slot) else {
            return 0;
        };
        let Some(total) = s.total.filter(|t| s.used && s.hdr_len > 0 && s.got == *t) else {
            return 0;
        };
        let hl = s.hdr_len;
        let len = hl + total;
        if out.len() < len {
            return 0;
        }
        let ce = s.ecn_seen & (1 << ecn::CE) != 0;
        out[..hl].copy_from_slice(&s.hdr[..hl]);
        let base = slot * self.cfg.max_datagram;
        out[hl..len].copy_from_slice(&self.arena[base..base + total]);
        if s.key.v6 {
            let mut ip = Ipv6Packet::new_unchecked(&mut out[..len]);
            ip.set_payload_len((len - IPV6_HEADER_LEN) as u16);
            ip.set_next_header_at(s.nh_field, s.key.proto);
            if ce {
                ip.set_ecn(ecn::CE);
            }
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut out[..len]);
            ip.set_total_len(len as u16);
            ip.set_flags_frag(0);
            if ce {
                ip.set_ecn(ecn::CE);
            }
            ip.fill_checksum();
        }
        self.free(slot);
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::HeapBuf;
    use crate::wire::{checksum, Ipv4Repr, Ipv6Repr};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const HOPOPT_LEN: usize = 8;

    /// A whole IPv4 or IPv6 packet (optionally with an IPv6 hop-by-hop
    /// header) carrying `len` bytes of ESP or UDP.
    fn datagram(v6: bool, hbh: bool, udp: bool, len: usize, src: u8, seed: u8) -> Vec<u8> {
        let p = if udp { proto::UDP } else { proto::ESP };
        let mut body: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(73).wrapping_add(seed))
            .collect();
        if udp && len >= 8 {
            body[2..4].copy_from_slice(&4500u16.to_be_bytes());
            body[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        }
        if v6 {
            let ext = if hbh { HOPOPT_LEN } else { 0 };
            let mut d = vec![0u8; IPV6_HEADER_LEN + ext];
            Ipv6Repr {
                traffic_class: 0,
                flow_label: 7,
                payload_len: (ext + len) as u16,
                next_header: if hbh { proto::HOPOPT } else { p },
                hop_limit: 64,
                src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(src)),
                dst: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
            }
            .emit(&mut d);
            if hbh {
                // Next header, length 0 (8 bytes), PadN with 4 bytes.
                d[40..48].copy_from_slice(&[p, 0, 1, 4, 0, 0, 0, 0]);
            }
            d.extend_from_slice(&body);
            d
        } else {
            let mut d = vec![0u8; 20];
            Ipv4Repr {
                tos: 0,
                total_len: (20 + len) as u16,
                ident: 0x4242,
                df: false,
                ttl: 64,
                protocol: p,
                src: Ipv4Addr::new(192, 0, 2, src),
                dst: Ipv4Addr::new(198, 51, 100, 1),
            }
            .emit(&mut d);
            d.extend_from_slice(&body);
            d
        }
    }

    /// Unfragmentable part of a datagram built by [`datagram`].
    fn unfrag_len(d: &[u8]) -> usize {
        if d[0] >> 4 == 6 {
            if d[6] == proto::HOPOPT {
                48
            } else {
                40
            }
        } else {
            usize::from(d[0] & 15) * 4
        }
    }

    /// The fragment of `orig` with payload bytes `[off, off + len)`.
    fn fragment(orig: &[u8], off: usize, len: usize, more: bool, ecn: u8) -> Vec<u8> {
        let hl = unfrag_len(orig);
        let body = &orig[hl + off..hl + off + len];
        if orig[0] >> 4 == 6 {
            let mut d = orig[..hl].to_vec();
            let nh_field = if hl == 48 { 40 } else { 6 };
            let p = d[nh_field];
            d[nh_field] = proto::IPV6_FRAG;
            let fo = (off as u16) | u16::from(more);
            d.extend_from_slice(&[p, 0]);
            d.extend_from_slice(&fo.to_be_bytes());
            d.extend_from_slice(&0xdead_beefu32.to_be_bytes());
            d.extend_from_slice(body);
            let mut ip = Ipv6Packet::new_unchecked(&mut d[..]);
            let pl = (hl - 40 + 8 + len) as u16;
            ip.set_payload_len(pl);
            ip.set_ecn(ecn);
            d
        } else {
            let mut d = orig[..hl].to_vec();
            d.extend_from_slice(body);
            let mut ip = Ipv4Packet::new_unchecked(&mut d[..]);
            ip.set_total_len((hl + len) as u16);
            ip.set_flags_frag((off / 8) as u16 | if more { ipv4::FLAG_MF } else { 0 });
            ip.set_ecn(ecn);
            ip.fill_checksum();
            d
        }
    }

    /// Fragments of `orig` cut every `step` bytes.
    fn cut(orig: &[u8], step: usize) -> Vec<Vec<u8>> {
        let total = orig.len() - unfrag_len(orig);
        let mut v = Vec::new();
        let mut off = 0;
        while off < total {
            let len = step.min(total - off);
            v.push(fragment(orig, off, len, off + len < total, 0));
            off += len;
        }
        v
    }

    struct Run {
        r: Reassembler,
        drops: DropCounters,
        done: Vec<Vec<u8>>,
        in_done: u64,
        pushed: u64,
    }

    impl Run {
        fn new(cfg: ReasmConfig) -> Self {
            Run {
                r: Reassembler::new(cfg),
                drops: DropCounters::default(),
                done: Vec::new(),
                in_done: 0,
                pushed: 0,
            }
        }
        fn push_at(&mut self, d: &[u8], now: u64) -> Push {
            self.pushed += 1;
            let f = match parse(d) {
                Ok(Some(f)) if !f.is_atomic() => f,
                Ok(f) => {
                    // A whole packet (offset 0, no more fragments).
                    let mut b = HeapBuf::from_slice(d);
                    if let Some(f) = f {
                        assert!(strip_atomic(&mut b, &f));
                    }
                    self.in_done += 1;
                    self.done.push(b.data().to_vec());
                    return Push::Held;
                }
                Err(e) => panic!("not a fragment: {e:?}"),
            };
            let before = self.r.held_fragments();
            let res = self.r.push(d, &f, now, &self.drops);
            if let Push::Complete { slot, len } = res {
                let held = self.r.held_fragments();
                let mut out = vec![0u8; len];
                assert_eq!(self.r.emit(slot, &mut out), len);
                self.in_done += held - self.r.held_fragments();
                self.done.push(out);
            }
            let _ = before;
            res
        }
        fn push(&mut self, d: &[u8]) -> Push {
            self.push_at(d, 0)
        }
        fn drops(&self, r: DropReason) -> u64 {
            self.drops.get(r)
        }
        /// Every fragment is in a reassembled datagram, counted as a drop,
        /// or held.
        fn balanced(&self) -> bool {
            self.pushed == self.in_done + self.drops.total() + self.r.held_fragments()
        }
    }

    /// The original as reassembly gives it back (IPv4: offset/flags 0 and
    /// checksum as `datagram` wrote them, which they already are).
    fn expect(orig: &[u8]) -> Vec<u8> {
        orig.to_vec()
    }

    #[test]
    fn v4_in_order_and_reversed() {
        let orig = datagram(false, false, false, 1480, 1, 1);
        let frags = cut(&orig, 1256);
        assert_eq!(frags.len(), 2);
        let mut run = Run::new(ReasmConfig::default());
        assert_eq!(run.push(&frags[0]), Push::Held);
        assert!(matches!(
            run.push(&frags[1]),
            Push::Complete { len: 1500, .. }
        ));
        assert_eq!(run.done[0], expect(&orig));
        assert_eq!(checksum::checksum(&run.done[0][..20]), 0);
        for f in cut(&orig, 200).iter().rev() {
            run.push(f);
        }
        assert_eq!(run.done.len(), 2);
        assert_eq!(run.done[1], expect(&orig));
        assert_eq!(run.r.in_use(), 0);
        assert!(run.balanced());
        assert_eq!(run.drops.total(), 0);
    }

    #[test]
    fn v6_with_hop_by_hop_and_udp() {
        for (hbh, udp) in [(false, false), (true, false), (false, true), (true, true)] {
            let orig = datagram(true, hbh, udp, 2000, 2, 3);
            let mut run = Run::new(ReasmConfig::default());
            let frags = cut(&orig, 512);
            for f in frags.iter().skip(1) {
                assert_eq!(run.push(f), Push::Held);
            }
            assert!(matches!(run.push(&frags[0]), Push::Complete { .. }));
            assert_eq!(run.done[0], orig, "hbh {hbh} udp {udp}");
            assert!(run.balanced());
        }
    }

    #[test]
    fn overlap_drops_the_whole_datagram_duplicate_does_not() {
        let orig = datagram(false, false, false, 1000, 1, 1);
        let mut run = Run::new(ReasmConfig::default());
        run.push(&fragment(&orig, 0, 400, true, 0));
        // Exact duplicate and a fragment inside it: duplicates.
        assert_eq!(
            run.push(&fragment(&orig, 0, 400, true, 0)),
            Push::Dropped(DropReason::FragDuplicate)
        );
        assert_eq!(
            run.push(&fragment(&orig, 200, 96, true, 0)),
            Push::Dropped(DropReason::FragDuplicate)
        );
        assert_eq!(run.r.in_use(), 1);
        // Partial overlap: the held fragment and this one go.
        assert_eq!(
            run.push(&fragment(&orig, 392, 400, true, 0)),
            Push::Dropped(DropReason::FragOverlap)
        );
        assert_eq!(run.drops(DropReason::FragOverlap), 2);
        assert_eq!(run.drops(DropReason::FragDuplicate), 2);
        assert_eq!(run.r.in_use(), 0);
        // RFC 5722: IPv6 the same; a fragment covering a held one is an overlap.
        let orig = datagram(true, false, false, 1000, 1, 1);
        run.push(&fragment(&orig, 8, 96, true, 0));
        assert_eq!(
            run.push(&fragment(&orig, 0, 400, true, 0)),
            Push::Dropped(DropReason::FragOverlap)
        );
        assert_eq!(run.drops(DropReason::FragOverlap), 4);
        assert!(run.balanced());
    }

    #[test]
    fn bad_lengths_and_offsets() {
        let mut run = Run::new(ReasmConfig::default());
        // IPv6 non-last fragment not a multiple of 8: dropped alone.
        let o6 = datagram(true, false, false, 1000, 1, 1);
        run.push(&fragment(&o6, 0, 400, true, 0));
        assert_eq!(
            run.push(&fragment(&o6, 400, 100, true, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.r.in_use(), 1);
        // A last fragment ending before bytes held: the datagram goes.
        assert_eq!(
            run.push(&fragment(&o6, 8, 100, false, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.r.in_use(), 0);
        // Two last fragments that disagree.
        run.push(&fragment(&o6, 800, 200, false, 0));
        assert_eq!(
            run.push(&fragment(&o6, 600, 100, false, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        // Bytes past the last fragment.
        run.push(&fragment(&o6, 800, 200, false, 0));
        let longer = datagram(true, false, false, 1200, 1, 1);
        assert_eq!(
            run.push(&fragment(&longer, 1000, 40, true, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        // IPv4: a non-last fragment is cut to a multiple of 8 (Linux).
        let o4 = datagram(false, false, false, 1000, 1, 1);
        run.push(&fragment(&o4, 0, 403, true, 0));
        run.push(&fragment(&o4, 400, 600, false, 0));
        assert_eq!(run.done.len(), 1);
        assert_eq!(run.done[0], o4);
        // An IPv4 fragment cut to nothing drops its datagram.
        run.push(&fragment(&o4, 0, 400, true, 0));
        assert_eq!(
            run.push(&fragment(&o4, 400, 7, true, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.r.in_use(), 0);
        assert!(run.balanced());
    }

    #[test]
    fn tiny_first_fragment_is_refused() {
        let mut run = Run::new(ReasmConfig::default());
        // UDP: the first fragment must hold the UDP header and 8 more bytes.
        let o = datagram(false, false, true, 100, 1, 1);
        assert_eq!(
            run.push(&fragment(&o, 0, 8, true, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.push(&fragment(&o, 0, 16, true, 0)), Push::Held);
        let o = datagram(true, false, true, 100, 1, 1);
        assert_eq!(
            run.push(&fragment(&o, 0, 8, true, 0)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert!(run.balanced());
    }

    #[test]
    fn too_big_and_too_many() {
        let cfg = ReasmConfig {
            max_datagram: 2048,
            ..ReasmConfig::default()
        };
        let mut run = Run::new(cfg);
        let o = datagram(false, false, false, 3000, 1, 1);
        run.push(&fragment(&o, 0, 1000, true, 0));
        assert_eq!(
            run.push(&fragment(&o, 2000, 1000, false, 0)),
            Push::Dropped(DropReason::FragTooBig)
        );
        assert_eq!(run.drops(DropReason::FragTooBig), 2);
        // Past 65535 bytes of IPv4 with the largest offset.
        let mut run = Run::new(ReasmConfig {
            max_datagram: 65535,
            ..ReasmConfig::default()
        });
        let mut f = fragment(&datagram(false, false, false, 64, 1, 1), 0, 64, false, 0);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
        ip.set_flags_frag(ipv4::FRAG_OFFSET_MASK);
        ip.fill_checksum();
        assert_eq!(run.push(&f), Push::Dropped(DropReason::FragTooBig));
        // 65 fragments of 8 bytes.
        let o = datagram(false, false, false, 8 * 70, 1, 1);
        let frags = cut(&o, 8);
        for f in &frags[..MAX_FRAGS] {
            assert_eq!(run.push(f), Push::Held);
        }
        assert_eq!(
            run.push(&frags[MAX_FRAGS]),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.drops(DropReason::FragInvalid), MAX_FRAGS as u64 + 1);
        assert!(run.balanced());
    }

    #[test]
    fn ecn_rules() {
        let o = datagram(false, false, false, 800, 1, 1);
        let mut run = Run::new(ReasmConfig::default());
        run.push(&fragment(&o, 0, 400, true, ecn::ECT0));
        run.push(&fragment(&o, 400, 400, false, ecn::CE));
        assert_eq!(Ipv4Packet::new_unchecked(&run.done[0][..]).ecn(), ecn::CE);
        assert_eq!(checksum::checksum(&run.done[0][..20]), 0);
        run.push(&fragment(&o, 0, 400, true, ecn::NOT_ECT));
        assert_eq!(
            run.push(&fragment(&o, 400, 400, false, ecn::CE)),
            Push::Dropped(DropReason::FragInvalid)
        );
        assert_eq!(run.drops(DropReason::FragInvalid), 2);
        assert!(run.balanced());
    }

    #[test]
    fn timeout_and_limits() {
        let cfg = ReasmConfig {
            slots: 4,
            per_source: 2,
            max_datagram: 4096,
            timeout_ms: 1000,
        };
        let mut run = Run::new(cfg);
        let first = |src: u8, id: u16| {
            let mut f = fragment(&datagram(false, false, false, 800, src, 1), 0, 400, true, 0);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
            ip.set_ident(id);
            ip.fill_checksum();
            f
        };
        run.push_at(&first(1, 1), 0);
        run.push_at(&first(1, 2), 10);
        // Source 1 at its share: its oldest (id 1) goes.
        run.push_at(&first(1, 3), 20);
        assert_eq!(run.drops(DropReason::FragSourceLimit), 1);
        assert_eq!(run.r.in_use(), 2);
        run.push_at(&first(2, 1), 30);
        run.push_at(&first(3, 1), 40);
        // Table full: the oldest (1/2) goes.
        run.push_at(&first(4, 1), 50);
        assert_eq!(run.drops(DropReason::FragEvicted), 1);
        assert_eq!(run.r.in_use(), 4);
        // Time passes: all but the last time out.
        run.r.expire(1045, &run.drops);
        assert_eq!(run.drops(DropReason::FragTimeout), 3);
        assert_eq!(run.r.in_use(), 1);
        // A late fragment of a timed-out datagram starts a new one.
        let o = datagram(false, false, false, 800, 1, 1);
        let mut f = fragment(&o, 400, 400, false, 0);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[..]);
        ip.set_ident(3);
        ip.fill_checksum();
        assert_eq!(run.push_at(&f, 1046), Push::Held);
        assert!(run.balanced());
        assert!(cfg.memory_bound() >= 4 * 4096);
    }

    #[test]
    fn atomic_fragment_is_stripped() {
        let o = datagram(true, true, false, 100, 1, 1);
        let f = fragment(&o, 0, 100, false, 0);
        let pf = parse(&f).unwrap().unwrap();
        assert!(pf.is_atomic());
        let mut b = HeapBuf::from_slice(&f);
        assert!(strip_atomic(&mut b, &pf));
        assert_eq!(b.data(), &o[..]);
        // Not IPv4, not a real fragment.
        let f4 = fragment(&datagram(false, false, false, 100, 1, 1), 0, 96, true, 0);
        let pf4 = parse(&f4).unwrap().unwrap();
        assert!(!strip_atomic(&mut HeapBuf::from_slice(&f4), &pf4));
        // Whole packets and other protocols are not fragments.
        assert_eq!(parse(&o), Ok(None));
        let mut tcp = f4.clone();
        tcp[9] = proto::TCP;
        assert_eq!(parse(&tcp), Ok(None));
    }

    fn order(n: usize, keys: &[u32]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by_key(|&i| keys.get(i).copied().unwrap_or(i as u32));
        idx
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Random datagrams cut at random 8-byte boundaries, delivered in a
        /// random order with random duplicates and overlapping extras
        /// (carrying the datagram's own bytes): whatever completes is the
        /// original, and every fragment is in a datagram, counted as a
        /// drop, or held. Without extras, the datagram always completes.
        #[test]
        fn random_fragmentations_reassemble_or_are_counted(
            v6 in any::<bool>(),
            hbh in any::<bool>(),
            udp in any::<bool>(),
            len in 17usize..4000,
            seed in any::<u8>(),
            cuts in proptest::collection::vec(1usize..500, 0..40),
            keys in proptest::collection::vec(any::<u32>(), 0..80),
            dups in proptest::collection::vec(any::<u16>(), 0..4),
            extras in proptest::collection::vec((0usize..4000, 1usize..600, any::<bool>()), 0..3),
        ) {
            let orig = datagram(v6, v6 && hbh, udp, len, 9, seed);
            let mut frags = Vec::new();
            let mut off = 0;
            for c in cuts.iter().chain(std::iter::once(&usize::MAX)) {
                let first = if off == 0 { 16 } else { 8 };
                let l = (c * 8).max(first).min(len - off);
                let l = if off + l < len { l & !7 } else { l };
                frags.push(fragment(&orig, off, l, off + l < len, 0));
                off += l;
                if off >= len { break; }
            }
            let n_real = frags.len();
            for d in &dups {
                let f = frags[usize::from(*d) % n_real].clone();
                frags.push(f);
            }
            let clean = extras.is_empty();
            for (o, l, more) in &extras {
                // Pieces of the same datagram cut elsewhere (a refragmenting
                // path, a retransmission): M set unless it ends the datagram.
                let o = (o % len) & !7;
                let l = if *more { (*l).min(len - o) } else { len - o };
                let more = o + l < len;
                let l = if more { l & !7 } else { l };
                if l > 0 && (o > 0 || more) {
                    frags.push(fragment(&orig, o, l, more, 0));
                }
            }
            let mut run = Run::new(ReasmConfig { max_datagram: 4096, ..ReasmConfig::default() });
            for i in order(frags.len(), &keys) {
                run.push(&frags[i]);
                prop_assert!(run.balanced());
            }
            for d in &run.done {
                prop_assert_eq!(d, &orig);
            }
            if clean && n_real <= MAX_FRAGS {
                prop_assert!(!run.done.is_empty());
            }
            prop_assert!(run.r.in_use() <= 256);
            run.r.expire(u64::MAX, &run.drops);
            prop_assert_eq!(run.r.in_use(), 0);
            prop_assert!(run.balanced());
        }

        /// Any bytes as a packet: parse and push never panic, and the
        /// books balance.
        #[test]
        fn garbage_never_panics(
            pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20),
            tweak in any::<bool>(),
        ) {
            let mut r = Reassembler::new(ReasmConfig { slots: 4, per_source: 2, max_datagram: 512, timeout_ms: 5 });
            let drops = DropCounters::default();
            let mut pushed = 0u64;
            let mut done = 0u64;
            for (t, mut p) in pkts.into_iter().enumerate() {
                if tweak && p.len() >= 20 {
                    // Make it look like an IPv4 ESP fragment more often.
                    p[0] = 0x45;
                    p[9] = proto::ESP;
                    let l = p.len() as u16;
                    p[2..4].copy_from_slice(&l.to_be_bytes());
                    p[6] |= 0x20;
                }
                if let Ok(Some(f)) = parse(&p) {
                    let mut b = HeapBuf::from_slice(&p);
                    if f.is_atomic() {
                        strip_atomic(&mut b, &f);
                        continue;
                    }
                    pushed += 1;
                    if let Push::Complete { slot, len } = r.push(&p, &f, t as u64, &drops) {
                        let before = r.held_fragments();
                        let mut out = vec![0u8; len];
                        prop_assert_eq!(r.emit(slot, &mut out), len);
                        done += before - r.held_fragments();
                    }
                }
            }
            prop_assert_eq!(pushed, done + drops.total() + r.held_fragments());
        }
    }
}
