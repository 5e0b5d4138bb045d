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
mod tests;
