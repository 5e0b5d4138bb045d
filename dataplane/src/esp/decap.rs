//! Inbound: received packets in, inner packets out (in place).

use std::sync::Arc;

use arrayvec::ArrayVec;

use super::ecn::decap_ecn;
use super::MAX_BURST;
use crate::crypto::OpenJob;
use crate::drop::{DropReason, Verdict};
use crate::pkt::PacketBuf;
use crate::sa::{Direction, DropCounters, FlowKey, Mode, Sa, SadTable};
use crate::wire::{
    checksum, classify_natt, ip_version, ipv4, ipv6, proto, rd16, rd32, tcp, udp, wr16, EspPacket,
    EspTrailer, Ipv4Packet, Ipv6Packet, NattKind, UdpPacket, ESP_HEADER_LEN, IPV6_HEADER_LEN,
    NATT_PORT, UDP_HEADER_LEN,
};

/// What a received packet turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PacketKind {
    /// Not ESP, not for the engine (unchanged): the caller routes or hands it
    /// to the exception path.
    #[default]
    NotEsp,
    /// ESP decapsulated: the buffer holds the inner IPv4 packet.
    Inner4,
    /// ESP decapsulated: the buffer holds the inner IPv6 packet.
    Inner6,
    /// IKE on UDP/4500 behind the non-ESP marker (unchanged): hand it to the
    /// IKE daemon.
    Ike,
    /// NAT-T keepalive (unchanged): consume it.
    Keepalive,
    /// ESP that was dropped (see the verdict).
    Esp,
}

/// The outcome of decap for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapResult {
    /// Pass (see `kind`) or drop with a reason.
    pub verdict: Verdict,
    /// What the packet is.
    pub kind: PacketKind,
    /// SPI of the SA (0 if none).
    pub spi: u32,
    /// Tunnel of the SA (0 if none).
    pub tunnel_id: u32,
}

impl Default for DecapResult {
    fn default() -> Self {
        DecapResult {
            verdict: Verdict::Pass,
            kind: PacketKind::NotEsp,
            spi: 0,
            tunnel_id: 0,
        }
    }
}

/// Where ESP sits in a received packet: what [`classify`] found, kept per
/// packet between the steps of a chunk (16 bytes, no address: the local
/// address check reads the destination from the packet).
#[derive(Clone, Copy, Default)]
struct Loc {
    /// Offset of the ESP header.
    esp_off: u32,
    /// Bytes of IP header (+ IPv6 extension headers) before ESP or UDP.
    hdr_len: u32,
    /// Offset of the byte naming the protocol after `hdr_len` (IPv4: 9).
    nh_field: u32,
    /// Outer TOS / traffic class.
    tos: u8,
    /// Outer header is IPv6.
    v6: bool,
}

enum Cls {
    Esp(Loc),
    Other(PacketKind),
}

/// A set of packets of one chunk, bit `i` = packet `i`.
type Mask = u64;
const _: () = assert!(MAX_BURST <= Mask::BITS as usize);

/// What the steps of one chunk learn about its packets, by index.
struct Chunk<'t> {
    loc: [Loc; MAX_BURST],
    spi: [u32; MAX_BURST],
    sa: [Option<&'t Sa>; MAX_BURST],
    /// Full sequence number (ESN inferred).
    seq: [u64; MAX_BURST],
}

impl Chunk<'_> {
    fn new() -> Self {
        Chunk {
            loc: [Loc::default(); MAX_BURST],
            spi: [0; MAX_BURST],
            sa: [None; MAX_BURST],
            seq: [0; MAX_BURST],
        }
    }
}

/// Decapsulates a burst of received packets, in place.
///
/// Each packet starts at its outer IP header. The engine demultiplexes raw ESP
/// (protocol 50) and UDP/4500 (RFC 3948: non-ESP marker => [`PacketKind::Ike`],
/// `0xff` => [`PacketKind::Keepalive`], both returned unchanged with
/// `Verdict::Pass`); anything else is [`PacketKind::NotEsp`]. ESP packets go
/// through: SPI lookup in `sad` (and destination check), ESN inference, replay
/// check, one batched `open` per SA, replay commit, padding check, next header
/// (4/41 tunnel, any in transport, 59 => `DummyPacket`), RFC 6040 ECN and
/// DSCP on exit, inbound policy check of the inner packet against the SA's
/// selectors, and lifetime accounting. Every drop is counted on its SA (when
/// known) and in `drops`. Up to `min(pkts.len(), out.len())` packets are
/// processed. Never allocates, locks or logs.
pub fn decap_burst<B: PacketBuf>(
    sad: &SadTable,
    pkts: &mut [B],
    out: &mut [DecapResult],
    drops: &DropCounters,
) {
    let n = pkts.len().min(out.len());
    for (p, o) in pkts[..n]
        .chunks_mut(MAX_BURST)
        .zip(out[..n].chunks_mut(MAX_BURST))
    {
        decap_chunk(sad, p, o, drops);
    }
}

#[inline]
fn drop_pkt(sa: Option<&Sa>, drops: &DropCounters, o: &mut DecapResult, r: DropReason) {
    o.verdict = Verdict::Drop(r);
    if let Some(sa) = sa {
        sa.count_drop(r);
    }
    drops.add(r);
}

/// Iterates over the indices in a mask, lowest first.
#[inline(always)]
fn each(mut m: Mask) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (m != 0).then(|| {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            i
        })
    })
}

/// Up to [`MAX_BURST`] packets, step by step: every step is one pass over
/// the packets still in play, so the loads of one step (headers, SAD
/// buckets, replay slots) overlap across packets.
fn decap_chunk<B: PacketBuf>(
    sad: &SadTable,
    pkts: &mut [B],
    out: &mut [DecapResult],
    drops: &DropCounters,
) {
    let n = pkts.len().min(out.len()).min(MAX_BURST);
    let (pkts, out) = (&mut pkts[..n], &mut out[..n]);
    let mut c = Chunk::new();
    let esp = classify_chunk(pkts, out, drops, &mut c);
    find_sas(sad, esp, &mut c);
    let mut live = check_chunk(pkts, out, drops, esp, &mut c);
    // Per SA (usually one per chunk): one batched open, the replay commit,
    // then trailer, strip and exit per packet.
    while live != 0 {
        let first = live.trailing_zeros() as usize;
        let Some(sa) = c.sa[first] else {
            live &= !(1 << first);
            continue;
        };
        let group = same_sa(&c, live, sa);
        live &= !group;
        let authed = open_group(sa, pkts, &c, group);
        let fresh = commit_group(sa, out, drops, &c, group, authed);
        finish_group(sa, pkts, out, drops, &c, fresh);
    }
}

/// Step 1: resets each result, finds ESP (raw or in UDP/4500) and reads its
/// SPI. Returns the ESP packets; the others are done (passed on unchanged,
/// or dropped when malformed).
#[inline(always)]
fn classify_chunk<B: PacketBuf>(
    pkts: &mut [B],
    out: &mut [DecapResult],
    drops: &DropCounters,
    c: &mut Chunk<'_>,
) -> Mask {
    let mut esp: Mask = 0;
    for (i, (p, o)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
        *o = DecapResult::default();
        match classify(p) {
            Ok(Cls::Esp(l)) => {
                c.loc[i] = l;
                c.spi[i] = rd32(p.data(), l.esp_off as usize);
                esp |= 1 << i;
            }
            Ok(Cls::Other(k)) => o.kind = k,
            Err(r) => {
                o.kind = PacketKind::Esp;
                drop_pkt(None, drops, o, r);
            }
        }
    }
    esp
}

/// Step 2: the SA of every ESP packet, from one burst lookup
/// (`SadTable::get_burst`: all hashes and bucket loads first, then the
/// probes). A run of packets with the same SPI (a burst from one peer) is
/// looked up once.
#[inline(always)]
fn find_sas<'t>(sad: &'t SadTable, esp: Mask, c: &mut Chunk<'t>) {
    let mut uniq = [0u32; MAX_BURST];
    let mut of = [0u8; MAX_BURST];
    let mut k = 0usize;
    let mut prev = None;
    for i in each(esp) {
        let spi = c.spi[i];
        if prev != Some(spi) {
            uniq[k] = spi;
            k += 1;
            prev = Some(spi);
        }
        of[i] = (k - 1) as u8;
    }
    let mut found: [Option<&Arc<Sa>>; MAX_BURST] = [None; MAX_BURST];
    sad.get_burst(&uniq[..k], &mut found[..k]);
    for i in each(esp) {
        c.sa[i] = found[usize::from(of[i])].map(|a| &**a);
    }
}

/// Step 3: per ESP packet, the checks before decryption ([`check`]).
/// Returns the packets that passed (their SA and sequence number recorded);
/// the others are dropped.
#[inline(always)]
fn check_chunk<B: PacketBuf>(
    pkts: &[B],
    out: &mut [DecapResult],
    drops: &DropCounters,
    esp: Mask,
    c: &mut Chunk<'_>,
) -> Mask {
    let mut live: Mask = 0;
    for i in each(esp) {
        let o = &mut out[i];
        o.kind = PacketKind::Esp;
        o.spi = c.spi[i];
        match check(c.sa[i], pkts[i].data(), &c.loc[i]) {
            Ok((sa, seq)) => {
                o.tunnel_id = sa.tunnel_id();
                c.seq[i] = seq;
                live |= 1 << i;
            }
            Err((sa, r)) => {
                if let Some(sa) = sa {
                    o.tunnel_id = sa.tunnel_id();
                }
                drop_pkt(sa, drops, o, r);
            }
        }
    }
    live
}

/// The packets of `live` whose SA is `sa`.
#[inline(always)]
fn same_sa(c: &Chunk<'_>, live: Mask, sa: &Sa) -> Mask {
    let mut group: Mask = 0;
    for j in each(live) {
        if c.sa[j].is_some_and(|s| std::ptr::eq(s, sa)) {
            group |= 1 << j;
        }
    }
    group
}

/// Step 4: one batched `open` of a group of one SA. Returns the packets
/// whose ICV verified (decrypted in place).
#[inline(always)]
fn open_group<B: PacketBuf>(sa: &Sa, pkts: &mut [B], c: &Chunk<'_>, group: Mask) -> Mask {
    let mut jobs: ArrayVec<OpenJob<'_>, MAX_BURST> = ArrayVec::new();
    for (j, p) in pkts.iter_mut().enumerate() {
        if group >> j & 1 == 1 {
            jobs.push(OpenJob {
                esp: &mut p.data_mut()[c.loc[j].esp_off as usize..],
                seq: c.seq[j],
                ok: false,
            });
        }
    }
    sa.cipher.open(&mut jobs);
    let mut authed: Mask = 0;
    for (job, j) in jobs.iter().zip(each(group)) {
        authed |= Mask::from(job.ok) << j;
    }
    authed
}

/// Step 5: the replay commit of the authenticated packets of a group, at
/// once; drops the others (`IcvMismatch`) and those the commit refuses.
/// Returns the packets that go on.
#[inline(always)]
fn commit_group(
    sa: &Sa,
    out: &mut [DecapResult],
    drops: &DropCounters,
    c: &Chunk<'_>,
    group: Mask,
    authed: Mask,
) -> Mask {
    let mut seqs = [0u64; MAX_BURST];
    let mut nc = 0;
    for j in each(authed) {
        seqs[nc] = c.seq[j];
        nc += 1;
    }
    let mut res = [Ok(()); MAX_BURST];
    sa.replay.commit_burst(&seqs[..nc], &mut res[..nc]);
    let mut fresh: Mask = 0;
    for (j, r) in each(authed).zip(&res[..nc]) {
        match r {
            Ok(()) => fresh |= 1 << j,
            Err(e) => drop_pkt(Some(sa), drops, &mut out[j], e.drop_reason()),
        }
    }
    for j in each(group & !authed) {
        drop_pkt(Some(sa), drops, &mut out[j], DropReason::IcvMismatch);
    }
    fresh
}

/// Step 6: the trailers of the group ([`trailer`]: one pass, so the loads
/// of the freshly decrypted trailers overlap), then strip and exit of each
/// packet ([`exit`]), then the SA's packet and byte counters once for the
/// group.
#[inline(always)]
fn finish_group<B: PacketBuf>(
    sa: &Sa,
    pkts: &mut [B],
    out: &mut [DecapResult],
    drops: &DropCounters,
    c: &Chunk<'_>,
    fresh: Mask,
) {
    let mut tr = [Trailer::default(); MAX_BURST];
    let mut good: Mask = 0;
    for j in each(fresh) {
        match trailer(sa, pkts[j].data(), &c.loc[j]) {
            Ok(t) => {
                tr[j] = t;
                good |= 1 << j;
            }
            Err(r) => drop_pkt(Some(sa), drops, &mut out[j], r),
        }
    }
    let mut npk = 0u64;
    let mut nbytes = 0u64;
    for j in each(good) {
        let p = &mut pkts[j];
        match exit(sa, p, &c.loc[j], tr[j]) {
            Ok(kind) => {
                out[j].kind = kind;
                npk += 1;
                nbytes += p.len() as u64;
            }
            Err(r) => drop_pkt(Some(sa), drops, &mut out[j], r),
        }
    }
    sa.account(npk, nbytes);
}

/// Finds ESP in a received packet, trims link-layer padding and checks
/// that the ESP header (SPI, sequence number) is there.
#[inline]
fn classify<B: PacketBuf>(p: &mut B) -> Result<Cls, DropReason> {
    let d = p.data();
    let (mut loc, mut end) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let next = ip.protocol();
            if next != proto::ESP && next != proto::UDP {
                return Ok(Cls::Other(PacketKind::NotEsp));
            }
            if !ip.verify_checksum() {
                return Err(DropReason::Malformed);
            }
            if ip.is_fragment() {
                return if next == proto::ESP {
                    Err(DropReason::UnsupportedPayload)
                } else {
                    Ok(Cls::Other(PacketKind::NotEsp))
                };
            }
            let hl = ip.header_len() as u32;
            let loc = Loc {
                esp_off: hl,
                hdr_len: hl,
                nh_field: ipv4::field::PROTOCOL as u32,
                tos: ip.tos(),
                v6: false,
            };
            (loc, usize::from(ip.total_len()))
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let ul = match ip.upper_layer() {
                Ok(u) => u,
                Err(_) => return Ok(Cls::Other(PacketKind::NotEsp)),
            };
            if ul.proto != proto::ESP && ul.proto != proto::UDP {
                return Ok(Cls::Other(PacketKind::NotEsp));
            }
            if ul.later_fragment || ul.offset > IPV6_HEADER_LEN && ipv6::has_fragment_header(d) {
                return if ul.proto == proto::ESP {
                    Err(DropReason::UnsupportedPayload)
                } else {
                    Ok(Cls::Other(PacketKind::NotEsp))
                };
            }
            // Offsets inside one IPv6 packet (at most 65,575 bytes).
            let loc = Loc {
                esp_off: ul.offset as u32,
                hdr_len: ul.offset as u32,
                nh_field: ul.nh_field as u32,
                tos: ip.traffic_class(),
                v6: true,
            };
            (loc, ip.total_len())
        }
        Some(_) => return Ok(Cls::Other(PacketKind::NotEsp)),
        None => return Err(DropReason::Truncated),
    };
    let hdr_len = loc.hdr_len as usize;
    // The next-header byte the wire views located.
    if d[loc.nh_field as usize] == proto::UDP {
        let u = UdpPacket::new_checked(&d[hdr_len..end]).map_err(|e| e.drop_reason())?;
        if u.dst_port() != NATT_PORT {
            return Ok(Cls::Other(PacketKind::NotEsp));
        }
        match classify_natt(u.payload()) {
            Ok(NattKind::Esp) => {}
            Ok(NattKind::Ike) => return Ok(Cls::Other(PacketKind::Ike)),
            Ok(NattKind::Keepalive) => return Ok(Cls::Other(PacketKind::Keepalive)),
            Err(e) => return Err(e.drop_reason()),
        }
        end = hdr_len + usize::from(u.len());
        loc.esp_off = (hdr_len + UDP_HEADER_LEN) as u32;
    }
    let extra = p.len() - end;
    if extra > 0 && !p.trim_back(extra) {
        return Err(DropReason::Malformed);
    }
    // SPI and sequence number (the SPI is read before the SA lookup).
    EspPacket::new_checked(&p.data()[loc.esp_off as usize..]).map_err(|e| e.drop_reason())?;
    Ok(Cls::Esp(loc))
}

/// True if the packet's outer destination is the SA's local address (or the
/// SA accepts any).
#[inline(always)]
fn to_local(sa: &Sa, d: &[u8], v6: bool) -> bool {
    sa.to_local(d, v6)
}

/// The checks of one ESP packet before decryption: its SA (`found`, from
/// the burst lookup), destination, direction, liveness, lengths, ESN
/// inference and replay check. Err carries the SA to count the drop on
/// (none when the SPI is unknown here).
#[allow(clippy::type_complexity)]
#[inline]
fn check<'a>(
    found: Option<&'a Sa>,
    d: &[u8],
    loc: &Loc,
) -> Result<(&'a Sa, u64), (Option<&'a Sa>, DropReason)> {
    let Some(sa) = found else {
        return Err((None, DropReason::UnknownSpi));
    };
    if sa.direction != Direction::Inbound {
        return Err((Some(sa), DropReason::WrongDirection));
    }
    if !to_local(sa, d, loc.v6) {
        return Err((None, DropReason::UnknownSpi));
    }
    if let Some(r) = sa.dead_reason() {
        return Err((Some(sa), r));
    }
    let esp_off = loc.esp_off as usize;
    let esp_len = d.len() - esp_off;
    let fixed = ESP_HEADER_LEN + usize::from(sa.iv_len) + usize::from(sa.icv_len);
    let pad_align = usize::from(sa.pad_align);
    if esp_len < fixed + pad_align {
        return Err((Some(sa), DropReason::Truncated));
    }
    if (esp_len - fixed) & (pad_align - 1) != 0 {
        return Err((Some(sa), DropReason::Malformed));
    }
    // classify checked the ESP header.
    let seql = EspPacket::new_unchecked(&d[esp_off..]).seq();
    let Some(seq) = sa.replay.infer_seq(seql, sa.esn) else {
        return Err((Some(sa), DropReason::OutsideWindow));
    };
    if let Err(e) = sa.replay.check(seq) {
        return Err((Some(sa), e.drop_reason()));
    }
    Ok((sa, seq))
}

/// The decrypted ESP trailer of one packet: pad length, next header.
#[derive(Clone, Copy, Default)]
struct Trailer {
    pad_len: u8,
    next_header: u8,
}

/// After `open` and the replay commit: the trailer (padding checked; a
/// dummy packet is dropped here).
#[inline]
fn trailer(sa: &Sa, d: &[u8], loc: &Loc) -> Result<Trailer, DropReason> {
    let ct_start = loc.esp_off as usize + ESP_HEADER_LEN + usize::from(sa.iv_len);
    let ct_end = d.len() - usize::from(sa.icv_len);
    let tr = EspTrailer::parse(&d[ct_start..ct_end]).map_err(|_| DropReason::BadPadding)?;
    if tr.next_header == proto::NONE {
        return Err(DropReason::DummyPacket);
    }
    Ok(Trailer {
        pad_len: tr.pad_len,
        next_header: tr.next_header,
    })
}

/// Strip, exit processing, policy check.
#[inline]
fn exit<B: PacketBuf>(
    sa: &Sa,
    p: &mut B,
    loc: &Loc,
    tr: Trailer,
) -> Result<PacketKind, DropReason> {
    let ct_start = loc.esp_off as usize + ESP_HEADER_LEN + usize::from(sa.iv_len);
    let cut_back = usize::from(sa.icv_len) + usize::from(tr.pad_len) + 2;
    let kind = match sa.mode {
        Mode::Tunnel => {
            let v4 = match tr.next_header {
                proto::IPIP => true,
                proto::IPV6 => false,
                _ => return Err(DropReason::UnsupportedPayload),
            };
            if !p.trim_back(cut_back) || !p.trim_front(ct_start) {
                return Err(DropReason::Truncated);
            }
            tunnel_exit(sa, p, v4, loc.tos)?
        }
        Mode::Transport => {
            if !p.trim_back(cut_back) {
                return Err(DropReason::Truncated);
            }
            let kind = transport_exit(p, loc, ct_start, tr.next_header)?;
            if sa.outer.udp {
                // RFC 3948 §3.1.2: behind a NAT the TCP/UDP checksum was made
                // over the peer's original address; the ICV already vouches
                // for the bytes, so the checksum is recomputed over the
                // addresses the packet now carries.
                natt_transport_fixup(p.data_mut(), loc.hdr_len as usize, tr.next_header);
            }
            kind
        }
    };
    // An SA without selectors accepts every inner packet (the inner header
    // was checked by the exit above): the flow key is built only to match.
    if !sa.selectors.is_empty() {
        let key = FlowKey::from_ip(p.data()).map_err(|e| e.drop_reason())?;
        if !sa.inbound_allows(&key) {
            return Err(DropReason::PolicyMismatch);
        }
    }
    Ok(kind)
}

/// Tunnel exit: check the inner header, trim TFC padding, ECN and DSCP.
#[inline]
fn tunnel_exit<B: PacketBuf>(
    sa: &Sa,
    p: &mut B,
    v4: bool,
    outer_tos: u8,
) -> Result<PacketKind, DropReason> {
    let d = p.data_mut();
    let (total, kind) = if v4 {
        let mut ip = Ipv4Packet::new_checked(&mut d[..]).map_err(|e| e.drop_reason())?;
        let old = ip.tos();
        let ecn = decap_ecn(old & 3, outer_tos & 3).ok_or(DropReason::EcnCeNotEct)?;
        let dscp = if sa.copy_dscp {
            outer_tos & !3
        } else {
            old & !3
        };
        let new = dscp | ecn;
        if new != old {
            ip.update_tos(new);
        }
        (usize::from(ip.total_len()), PacketKind::Inner4)
    } else {
        let mut ip = Ipv6Packet::new_checked(&mut d[..]).map_err(|e| e.drop_reason())?;
        let old = ip.traffic_class();
        let ecn = decap_ecn(old & 3, outer_tos & 3).ok_or(DropReason::EcnCeNotEct)?;
        let dscp = if sa.copy_dscp {
            outer_tos & !3
        } else {
            old & !3
        };
        if dscp | ecn != old {
            ip.set_traffic_class(dscp | ecn);
        }
        (ip.total_len(), PacketKind::Inner6)
    };
    // Bytes after the inner packet are TFC padding (RFC 4303 §2.7).
    let extra = p.len() - total;
    if extra > 0 && !p.trim_back(extra) {
        return Err(DropReason::Malformed);
    }
    Ok(kind)
}

/// Recomputes the TCP or UDP checksum of a transport-mode packet after
/// NAT-T decapsulation (RFC 3948 §3.1.2, "the receiver recomputes"). UDP over
/// UDP with checksum 0 (none computed) stays 0. Other protocols are left alone.
#[inline]
fn natt_transport_fixup(d: &mut [u8], hdr_len: usize, next: u8) {
    let len = d.len().saturating_sub(hdr_len) as u32;
    let (proto_no, pseudo) = if ip_version(d) == Some(4) {
        let ip = Ipv4Packet::new_unchecked(&*d);
        (next, checksum::pseudo_v4(ip.src(), ip.dst(), next, len))
    } else {
        let ip = Ipv6Packet::new_unchecked(&*d);
        (next, checksum::pseudo_v6(ip.src(), ip.dst(), next, len))
    };
    let off = match proto_no {
        proto::TCP => tcp::field::CHECKSUM,
        proto::UDP => udp::field::CHECKSUM,
        _ => return,
    };
    let l4 = &mut d[hdr_len..];
    if l4.len() < off + 2 {
        return;
    }
    if proto_no == proto::UDP && rd16(l4, off) == 0 {
        return;
    }
    wr16(l4, off, 0);
    let mut c = !checksum::fold(pseudo + checksum::sum(l4));
    if proto_no == proto::UDP && c == 0 {
        c = 0xffff;
    }
    wr16(l4, off, c);
}

/// Transport exit: move the IP header up against the payload and restore
/// the protocol and lengths.
#[inline]
fn transport_exit<B: PacketBuf>(
    p: &mut B,
    loc: &Loc,
    ct_start: usize,
    next: u8,
) -> Result<PacketKind, DropReason> {
    let hdr_len = loc.hdr_len as usize;
    let gap = ct_start - hdr_len;
    {
        let d = p.data_mut();
        d.copy_within(0..hdr_len, gap);
    }
    if !p.trim_front(gap) {
        return Err(DropReason::Truncated);
    }
    let d = p.data_mut();
    let len = d.len();
    if ip_version(d) == Some(4) {
        let mut ip = Ipv4Packet::new_unchecked(d);
        ip.set_protocol(next);
        ip.set_total_len(len as u16);
        ip.fill_checksum();
        Ok(PacketKind::Inner4)
    } else {
        let mut ip = Ipv6Packet::new_unchecked(d);
        ip.set_next_header_at(loc.nh_field as usize, next);
        ip.set_payload_len((len - IPV6_HEADER_LEN) as u16);
        Ok(PacketKind::Inner6)
    }
}
