//! Inbound: received packets in, inner packets out (in place).

use std::net::IpAddr;

use arrayvec::ArrayVec;

use super::ecn::decap_ecn;
use super::MAX_BURST;
use crate::crypto::OpenJob;
use crate::drop::{DropReason, Verdict};
use crate::pkt::PacketBuf;
use crate::sa::{Direction, DropCounters, FlowKey, Mode, ReplayError, Sa, SadTable};
use crate::wire::{
    checksum, classify_natt, ip_version, ipv4, ipv6, proto, rd16, tcp, udp, wr16, EspPacket,
    EspTrailer, Ipv4Packet, Ipv6Packet, NattKind, UdpPacket, WireError, ESP_HEADER_LEN,
    IPV6_HEADER_LEN, NATT_PORT, UDP_HEADER_LEN,
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

/// Where ESP sits in a received packet.
#[derive(Clone, Copy)]
struct Loc {
    /// Offset of the ESP header.
    esp_off: usize,
    /// Bytes of IP header (+ IPv6 extension headers) before ESP or UDP.
    hdr_len: usize,
    /// Offset of the byte naming the protocol after `hdr_len` (IPv4: 9).
    nh_field: usize,
    /// Outer TOS / traffic class.
    tos: u8,
    dst: IpAddr,
}

enum Cls {
    Esp(Loc),
    Other(PacketKind),
}

#[derive(Clone, Copy)]
struct Meta<'a> {
    sa: Option<&'a Sa>,
    loc: Loc,
    seq: u64,
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

fn decap_chunk<B: PacketBuf>(
    sad: &SadTable,
    pkts: &mut [B],
    out: &mut [DecapResult],
    drops: &DropCounters,
) {
    let mut meta: [Option<Meta<'_>>; MAX_BURST] = [None; MAX_BURST];
    let mut pending: u64 = 0;

    // Phase 1: parse, look up, replay check.
    for (i, (p, o)) in pkts.iter_mut().zip(out.iter_mut()).enumerate() {
        *o = DecapResult::default();
        let loc = match classify(p) {
            Ok(Cls::Esp(l)) => l,
            Ok(Cls::Other(k)) => {
                o.kind = k;
                continue;
            }
            Err(r) => {
                o.kind = PacketKind::Esp;
                drop_pkt(None, drops, o, r);
                continue;
            }
        };
        o.kind = PacketKind::Esp;
        match lookup(sad, p.data(), &loc) {
            Ok((sa, seq)) => {
                o.spi = sa.spi;
                o.tunnel_id = sa.tunnel_id();
                meta[i] = Some(Meta {
                    sa: Some(sa),
                    loc,
                    seq,
                });
                pending |= 1 << i;
            }
            Err((sa, spi, r)) => {
                o.spi = spi;
                if let Some(sa) = sa {
                    o.tunnel_id = sa.tunnel_id();
                }
                drop_pkt(sa, drops, o, r);
            }
        }
    }

    // Phase 2+3 per SA: one batched open, then commit and strip.
    let mut ok = [false; MAX_BURST];
    while pending != 0 {
        let first = pending.trailing_zeros() as usize;
        let sa = match meta[first].and_then(|m| m.sa) {
            Some(sa) => sa,
            None => {
                pending &= !(1 << first);
                continue;
            }
        };
        let mut group = 0u64;
        let mut bits = pending;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if meta[j]
                .and_then(|m| m.sa)
                .is_some_and(|s| std::ptr::eq(s, sa))
            {
                group |= 1 << j;
            }
        }
        pending &= !group;
        {
            let mut jobs: ArrayVec<OpenJob<'_>, MAX_BURST> = ArrayVec::new();
            for (j, p) in pkts.iter_mut().enumerate() {
                if group >> j & 1 == 1 {
                    if let Some(m) = meta[j] {
                        jobs.push(OpenJob {
                            esp: &mut p.data_mut()[m.loc.esp_off..],
                            seq: m.seq,
                            ok: false,
                        });
                    }
                }
            }
            sa.cipher.open(&mut jobs);
            let mut bits = group;
            for job in jobs.iter() {
                let j = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                ok[j] = job.ok;
            }
        }
        // Replay commit for the authenticated packets of the group at once.
        let mut cseqs = [0u64; MAX_BURST];
        let mut cidx = [0usize; MAX_BURST];
        let mut nc = 0;
        let mut bits = group;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let (true, Some(m)) = (ok[j], meta[j]) {
                cseqs[nc] = m.seq;
                cidx[nc] = j;
                nc += 1;
            }
        }
        let mut cres = [Ok(()); MAX_BURST];
        sa.replay.commit_burst(&cseqs[..nc], &mut cres[..nc]);
        let mut commit = [Ok(()); MAX_BURST];
        for k in 0..nc {
            commit[cidx[k]] = cres[k];
        }
        let mut npk = 0u64;
        let mut nbytes = 0u64;
        let mut bits = group;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(m) = meta[j] else { continue };
            match finish(sa, &mut pkts[j], &m, ok[j], commit[j]) {
                Ok(kind) => {
                    out[j].kind = kind;
                    npk += 1;
                    nbytes += pkts[j].len() as u64;
                }
                Err(r) => drop_pkt(Some(sa), drops, &mut out[j], r),
            }
        }
        sa.account(npk, nbytes);
    }
}

/// Finds ESP in a received packet and trims link-layer padding.
#[inline]
fn classify<B: PacketBuf>(p: &mut B) -> Result<Cls, DropReason> {
    let d = p.data();
    let (loc, end) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let hl = ip.header_len();
            let dst = IpAddr::V4(ip.dst());
            let loc = Loc {
                esp_off: hl,
                hdr_len: hl,
                nh_field: ipv4::field::PROTOCOL,
                tos: ip.tos(),
                dst,
            };
            let next = ip.protocol();
            let total = usize::from(ip.total_len());
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
            (loc, total)
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            let dst = IpAddr::V6(ip.dst());
            let tos = ip.traffic_class();
            let total = ip.total_len();
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
            (
                Loc {
                    esp_off: ul.offset,
                    hdr_len: ul.offset,
                    nh_field: ul.nh_field,
                    tos,
                    dst,
                },
                total,
            )
        }
        Some(_) => return Ok(Cls::Other(PacketKind::NotEsp)),
        None => return Err(DropReason::Truncated),
    };
    let mut loc = loc;
    let mut end = end;
    let proto_byte = d[loc.nh_field]; // the next-header byte the wire views located
    if proto_byte == proto::UDP {
        let u = UdpPacket::new_checked(&d[loc.hdr_len..end]).map_err(|e| e.drop_reason())?;
        if u.dst_port() != NATT_PORT {
            return Ok(Cls::Other(PacketKind::NotEsp));
        }
        match classify_natt(u.payload()) {
            Ok(NattKind::Esp) => {}
            Ok(NattKind::Ike) => return Ok(Cls::Other(PacketKind::Ike)),
            Ok(NattKind::Keepalive) => return Ok(Cls::Other(PacketKind::Keepalive)),
            Err(e) => return Err(e.drop_reason()),
        }
        end = loc.hdr_len + usize::from(u.len());
        loc.esp_off = loc.hdr_len + UDP_HEADER_LEN;
    }
    let extra = p.len() - end;
    if extra > 0 && !p.trim_back(extra) {
        return Err(DropReason::Malformed);
    }
    Ok(Cls::Esp(loc))
}

/// SPI lookup, destination and length checks, ESN inference, replay check.
#[allow(clippy::type_complexity)]
#[inline]
fn lookup<'a>(
    sad: &'a SadTable,
    d: &[u8],
    loc: &Loc,
) -> Result<(&'a Sa, u64), (Option<&'a Sa>, u32, DropReason)> {
    let esp = EspPacket::new_checked(&d[loc.esp_off..])
        .map_err(|e: WireError| (None, 0, e.drop_reason()))?;
    let spi = esp.spi();
    let sa: &Sa = match sad.get(spi) {
        Some(sa) => sa,
        None => return Err((None, spi, DropReason::UnknownSpi)),
    };
    if sa.direction != Direction::Inbound {
        return Err((Some(sa), spi, DropReason::WrongDirection));
    }
    if let Some(local) = sa.local {
        if local != loc.dst {
            return Err((None, spi, DropReason::UnknownSpi));
        }
    }
    if let Some(r) = sa.dead_reason() {
        return Err((Some(sa), spi, r));
    }
    let esp_len = d.len() - loc.esp_off;
    let fixed = ESP_HEADER_LEN + sa.iv_len + sa.icv_len;
    if esp_len < fixed + sa.pad_align {
        return Err((Some(sa), spi, DropReason::Truncated));
    }
    if (esp_len - fixed) & (sa.pad_align - 1) != 0 {
        return Err((Some(sa), spi, DropReason::Malformed));
    }
    let seq = match sa.replay.infer_seq(esp.seq(), sa.esn) {
        Some(s) => s,
        None => return Err((Some(sa), spi, DropReason::OutsideWindow)),
    };
    if let Err(e) = sa.replay.check(seq) {
        return Err((Some(sa), spi, e.drop_reason()));
    }
    Ok((sa, seq))
}

/// After `open`: replay commit, trailer, strip, exit processing, policy check.
#[inline]
fn finish<B: PacketBuf>(
    sa: &Sa,
    p: &mut B,
    m: &Meta<'_>,
    ok: bool,
    commit: Result<(), ReplayError>,
) -> Result<PacketKind, DropReason> {
    if !ok {
        return Err(DropReason::IcvMismatch);
    }
    commit.map_err(|e| e.drop_reason())?;
    let ct_start = m.loc.esp_off + ESP_HEADER_LEN + sa.iv_len;
    let len = p.len();
    let ct_end = len - sa.icv_len;
    let tr = EspTrailer::parse(&p.data()[ct_start..ct_end]).map_err(|_| DropReason::BadPadding)?;
    if tr.next_header == proto::NONE {
        return Err(DropReason::DummyPacket);
    }
    let cut_back = sa.icv_len + usize::from(tr.pad_len) + 2;
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
            tunnel_exit(sa, p, v4, m.loc.tos)?
        }
        Mode::Transport => {
            if !p.trim_back(cut_back) {
                return Err(DropReason::Truncated);
            }
            let kind = transport_exit(p, &m.loc, ct_start, tr.next_header)?;
            if sa.encap.is_some() {
                // RFC 3948 §3.1.2: behind a NAT the TCP/UDP checksum was made
                // over the peer's original address; the ICV already vouches
                // for the bytes, so the checksum is recomputed over the
                // addresses the packet now carries.
                natt_transport_fixup(p.data_mut(), m.loc.hdr_len, tr.next_header);
            }
            kind
        }
    };
    let key = FlowKey::from_ip(p.data()).map_err(|e| e.drop_reason())?;
    if !sa.inbound_allows(&key) {
        return Err(DropReason::PolicyMismatch);
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
    let gap = ct_start - loc.hdr_len;
    {
        let d = p.data_mut();
        d.copy_within(0..loc.hdr_len, gap);
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
        ip.set_next_header_at(loc.nh_field, next);
        ip.set_payload_len((len - IPV6_HEADER_LEN) as u16);
        Ok(PacketKind::Inner6)
    }
}
