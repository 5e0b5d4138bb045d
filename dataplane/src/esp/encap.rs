//! Outbound: inner packets in, ESP packets out (in place).

use arrayvec::ArrayVec;

use super::ecn::encap_ecn;
use super::MAX_BURST;
use crate::crypto::SealJob;
use crate::drop::{DropReason, Verdict};
use crate::pkt::PacketBuf;
use crate::sa::{DfMode, Direction, DropCounters, Mode, Sa};
use crate::wire::ipv4::FLAG_DF;
use crate::wire::{
    checksum, ip_version, proto, EspPacket, EspTrailer, Ipv4Packet, Ipv6Packet, UdpPacket, UdpRepr,
    ESP_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN,
};

/// What the first pass learned about one packet.
#[derive(Clone, Copy, Default)]
struct Prep {
    /// Bytes of the original packet kept in front of the ESP header
    /// (transport mode: IP header and extension headers; tunnel: 0).
    hdr_len: usize,
    /// Length of the protected payload (tunnel: the whole inner packet).
    payload_len: usize,
    /// Next header written in the trailer.
    next_header: u8,
    /// TOS / traffic class of the inner packet.
    tos: u8,
    /// Inner DF (IPv4).
    df: bool,
    /// Transport IPv6: offset of the next-header byte to set to ESP/UDP.
    nh_field: usize,
    pad_len: usize,
}

/// Encapsulates a burst of inner packets for one outbound SA, in place.
///
/// Each packet starts at its IP header. On `Verdict::Pass` it holds the
/// ESP packet (tunnel: outer IP [+ UDP] + ESP; transport: the original IP
/// header with ESP inserted). On `Verdict::Drop` it is unchanged, and the drop
/// is counted on the SA and in `drops`. Up to `min(pkts.len(),
/// verdicts.len())` packets are processed, in chunks of [`MAX_BURST`].
/// Sequence numbers for each chunk are reserved with one atomic operation;
/// the cipher seals the chunk in one call. Never allocates, locks or logs.
pub fn encap_burst<B: PacketBuf>(
    sa: &Sa,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    drops: &DropCounters,
) {
    let n = pkts.len().min(verdicts.len());
    for (p, v) in pkts[..n]
        .chunks_mut(MAX_BURST)
        .zip(verdicts[..n].chunks_mut(MAX_BURST))
    {
        encap_chunk(sa, p, v, drops);
    }
}

#[inline]
fn drop_pkt(sa: &Sa, drops: &DropCounters, v: &mut Verdict, r: DropReason) {
    *v = Verdict::Drop(r);
    sa.count_drop(r);
    drops.add(r);
}

fn encap_chunk<B: PacketBuf>(
    sa: &Sa,
    pkts: &mut [B],
    verdicts: &mut [Verdict],
    drops: &DropCounters,
) {
    let whole_burst_drop = if sa.direction != Direction::Outbound {
        Some(DropReason::WrongDirection)
    } else {
        sa.dead_reason()
    };
    if let Some(r) = whole_burst_drop {
        for v in verdicts.iter_mut() {
            drop_pkt(sa, drops, v, r);
        }
        return;
    }
    let mut prep = [Prep::default(); MAX_BURST];
    let front_fixed = ESP_HEADER_LEN + usize::from(sa.iv_len);
    let outer_len = match sa.mode {
        Mode::Tunnel => usize::from(sa.outer.len),
        Mode::Transport => {
            if sa.outer.udp {
                UDP_HEADER_LEN
            } else {
                0
            }
        }
    };
    let front = outer_len + front_fixed;
    let align = usize::from(sa.pad_align);

    // Pass 1: validate, size, check room.
    let mut n_ok = 0u64;
    for (i, (p, v)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
        match prepare(sa, p, &mut prep[i]) {
            Ok(()) => {}
            Err(r) => {
                drop_pkt(sa, drops, v, r);
                continue;
            }
        }
        let pr = &mut prep[i];
        pr.pad_len = EspTrailer::pad_len_for(pr.payload_len, align);
        let tail = pr.pad_len + 2 + usize::from(sa.icv_len);
        let total = pr.hdr_len + front + pr.payload_len + tail;
        if p.headroom() < front || p.tailroom() < tail {
            drop_pkt(sa, drops, v, DropReason::NoRoom);
            continue;
        }
        if total > usize::from(u16::MAX) + if is_v6_outer(sa) { IPV6_HEADER_LEN } else { 0 } {
            drop_pkt(sa, drops, v, DropReason::TooBig);
            continue;
        }
        *v = Verdict::Pass;
        n_ok += 1;
    }
    if n_ok == 0 {
        return;
    }

    // One atomic reservation for the whole chunk.
    let (mut seq, granted) = sa.reserve_seq(n_ok);
    let mut left = granted;
    let mut bytes = 0u64;
    let mut jobs: ArrayVec<SealJob<'_>, MAX_BURST> = ArrayVec::new();

    // Pass 2: write headers and trailers.
    for (i, (p, v)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
        if *v != Verdict::Pass {
            continue;
        }
        if left == 0 {
            drop_pkt(sa, drops, v, DropReason::SeqExhausted);
            continue;
        }
        let pr = prep[i];
        bytes += (pr.hdr_len + pr.payload_len) as u64;
        let esp_off = match build(sa, p, &pr, front, outer_len, seq) {
            Some(o) => o,
            None => {
                // Room was checked in pass 1; a PacketBuf that refuses now is
                // counted rather than trusted.
                drop_pkt(sa, drops, v, DropReason::NoRoom);
                continue;
            }
        };
        left -= 1;
        jobs.push(SealJob {
            esp: &mut p.data_mut()[esp_off..],
            seq,
        });
        seq = seq.wrapping_add(1);
    }
    let sealed = jobs.len() as u64;
    sa.cipher.seal(&mut jobs);
    drop(jobs);

    // Pass 3: UDP checksum over IPv6 (needs the ciphertext).
    if sa.outer.udp && is_v6_outer(sa) {
        for (p, v) in pkts.iter_mut().zip(verdicts.iter()) {
            if *v == Verdict::Pass {
                fill_udp6(p.data_mut(), sa.mode);
            }
        }
    }
    sa.account(sealed, bytes);
}

fn is_v6_outer(sa: &Sa) -> bool {
    match sa.mode {
        Mode::Tunnel => sa.outer.v6,
        Mode::Transport => sa.local_addr().is_ipv6(),
    }
}

/// Pass 1 for one packet: parse the inner header, trim link padding.
#[inline]
fn prepare<B: PacketBuf>(sa: &Sa, p: &mut B, pr: &mut Prep) -> Result<(), DropReason> {
    let d = p.data();
    let (total, v6) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            pr.tos = ip.tos();
            pr.df = ip.df();
            if sa.mode == Mode::Transport {
                if ip.is_fragment() {
                    return Err(DropReason::UnsupportedPayload);
                }
                pr.hdr_len = ip.header_len();
                pr.next_header = ip.protocol();
            } else {
                pr.next_header = proto::IPIP;
            }
            (usize::from(ip.total_len()), false)
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d).map_err(|e| e.drop_reason())?;
            pr.tos = ip.traffic_class();
            pr.df = false;
            if sa.mode == Mode::Transport {
                let ul = ip.upper_layer().map_err(|e| e.drop_reason())?;
                // Transport mode protects whole datagrams only (RFC 4303
                // §3.1.1), as for IPv4 above: no Fragment header.
                if ul.later_fragment || crate::wire::ipv6::has_fragment_header(d) {
                    return Err(DropReason::UnsupportedPayload);
                }
                pr.hdr_len = ul.offset;
                pr.nh_field = ul.nh_field;
                pr.next_header = ul.proto;
            } else {
                pr.next_header = proto::IPV6;
            }
            (ip.total_len(), true)
        }
        Some(_) => return Err(DropReason::Malformed),
        None => return Err(DropReason::Truncated),
    };
    if sa.mode == Mode::Transport && v6 != sa.local_addr().is_ipv6() {
        return Err(DropReason::UnsupportedPayload);
    }
    let extra = p.len() - total;
    if extra > 0 && !p.trim_back(extra) {
        return Err(DropReason::Malformed);
    }
    pr.payload_len = total - pr.hdr_len;
    Ok(())
}

/// Copies the first `N` bytes of `src` to the front of `dst` (both at least
/// `N` long: an outer header template and a packet with room for it).
#[inline(always)]
fn copy_n<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
}

/// Pass 2 for one packet: grow the buffer, write outer headers, ESP header
/// and trailer. Returns the offset of the ESP header.
#[inline]
fn build<B: PacketBuf>(
    sa: &Sa,
    p: &mut B,
    pr: &Prep,
    front: usize,
    outer_len: usize,
    seq: u64,
) -> Option<usize> {
    let tail = pr.pad_len + 2 + usize::from(sa.icv_len);
    let end_plain = pr.hdr_len + pr.payload_len;
    if !p.append(tail) {
        return None;
    }
    {
        let d = p.data_mut();
        // The trailer cannot fail: 2 <= pad_len + 2 <= 257.
        EspTrailer::write(
            &mut d[end_plain..end_plain + pr.pad_len + 2],
            pr.next_header,
        )
        .ok()?;
    }
    if !p.prepend(front) {
        p.trim_back(tail);
        return None;
    }
    let d = p.data_mut();
    let len = d.len();
    let esp_off = pr.hdr_len + outer_len;
    match sa.mode {
        Mode::Tunnel => {
            let t = &sa.outer;
            // Fixed-size copies (inlined moves) for the four outer header
            // lengths rather than a memcpy call of a variable length.
            match t.len {
                20 => copy_n::<20>(d, &t.bytes),
                28 => copy_n::<28>(d, &t.bytes),
                40 => copy_n::<40>(d, &t.bytes),
                48 => copy_n::<48>(d, &t.bytes),
                n => d[..usize::from(n)].copy_from_slice(&t.bytes[..usize::from(n)]),
            }
            let ecn = encap_ecn(pr.tos & 3);
            let dscp = if sa.copy_dscp { pr.tos & !3 } else { 0 };
            let tos = dscp | ecn;
            if t.v6 {
                let mut ip = Ipv6Packet::new_checked(&mut d[..]).ok()?;
                ip.set_traffic_class(tos);
                ip.set_payload_len((len - IPV6_HEADER_LEN) as u16);
            } else {
                let df = match sa.df {
                    DfMode::Copy => pr.df,
                    DfMode::Set => true,
                    DfMode::Clear => false,
                };
                let flags: u16 = if df { FLAG_DF } else { 0 };
                let ident = seq as u16;
                let mut ip = Ipv4Packet::new_unchecked(&mut *d);
                ip.set_total_len(len as u16);
                ip.set_ident(ident);
                ip.set_flags_frag(flags);
                ip.set_tos(tos);
                // The template's checksum sum plus the fields written per packet.
                let s = u64::from(t.csum_base())
                    + len as u64
                    + u64::from(ident)
                    + u64::from(flags)
                    + u64::from(tos);
                ip.set_checksum(!checksum::fold(s));
            }
            if t.udp {
                let ip_len = t.ip_len();
                let mut u = UdpPacket::new_unchecked(&mut d[ip_len..]);
                u.set_len((len - ip_len) as u16);
                u.set_checksum(0);
            }
        }
        Mode::Transport => {
            // Move the IP header (and IPv6 extension headers) to the front.
            d.copy_within(front..front + pr.hdr_len, 0);
            let next = if sa.outer.udp { proto::UDP } else { proto::ESP };
            if ip_version(d) == Some(4) {
                let mut ip = Ipv4Packet::new_unchecked(&mut *d);
                ip.set_total_len(len as u16);
                ip.set_protocol(next);
                ip.fill_checksum();
            } else {
                let mut ip = Ipv6Packet::new_unchecked(&mut *d);
                ip.set_payload_len((len - IPV6_HEADER_LEN) as u16);
                ip.set_next_header_at(pr.nh_field, next);
            }
            if sa.outer.udp {
                let e = sa.encap()?;
                let u = pr.hdr_len;
                UdpRepr {
                    src_port: e.local_port,
                    dst_port: e.remote_port,
                    len: (len - u) as u16,
                }
                .emit(&mut d[u..]);
            }
        }
    }
    let mut esp = EspPacket::new_unchecked(&mut d[esp_off..]);
    esp.set_spi(sa.spi);
    esp.set_seq(seq as u32);
    Some(esp_off)
}

/// Computes the UDP checksum of a UDP-encapsulated ESP packet over IPv6.
fn fill_udp6(d: &mut [u8], mode: Mode) {
    let udp_off = match mode {
        Mode::Tunnel => IPV6_HEADER_LEN,
        Mode::Transport => match Ipv6Packet::new_checked(&d[..]).and_then(|ip| ip.upper_layer()) {
            Ok(ul) => ul.offset,
            Err(_) => return,
        },
    };
    let (src, dst) = match Ipv6Packet::new_checked(&d[..]) {
        Ok(ip) => (ip.src(), ip.dst()),
        Err(_) => return,
    };
    if let Ok(mut u) = UdpPacket::new_checked(&mut d[udp_off..]) {
        u.fill_checksum_v6(src, dst);
    }
}
