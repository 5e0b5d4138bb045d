//! ICMP and ICMPv6 error messages built in place: the offending packet's
//! buffer becomes the error (new IP + ICMP header in the headroom, the
//! original packet truncated behind it), so no buffer is allocated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::pkt::PacketBuf;
use crate::wire::{
    proto, IcmpPacket, IcmpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, ICMP_HEADER_LEN,
    IPV4_HEADER_LEN, IPV6_HEADER_LEN,
};

/// ICMP time exceeded (type 11), code 0: TTL exceeded in transit.
pub const ICMP4_TIME_EXCEEDED: (u8, u8) = (11, 0);
/// ICMP destination unreachable (3), code 4: fragmentation needed and DF set.
pub const ICMP4_FRAG_NEEDED: (u8, u8) = (3, 4);
/// ICMP destination unreachable (3), code 0: network unreachable.
pub const ICMP4_NET_UNREACHABLE: (u8, u8) = (3, 0);
/// ICMPv6 time exceeded (3), code 0: hop limit exceeded in transit.
pub const ICMP6_TIME_EXCEEDED: (u8, u8) = (3, 0);
/// ICMPv6 packet too big (2), code 0.
pub const ICMP6_PACKET_TOO_BIG: (u8, u8) = (2, 0);
/// ICMPv6 destination unreachable (1), code 0: no route.
pub const ICMP6_NO_ROUTE: (u8, u8) = (1, 0);

/// Largest IPv4 ICMP error (RFC 1812 §4.3.2.3).
pub const ICMP4_MAX: usize = 576;
/// Largest ICMPv6 error (RFC 4443 §2.4 (c)): the IPv6 minimum MTU.
pub const ICMP6_MAX: usize = 1280;

const TTL: u8 = 64;

/// True if an ICMP error may be sent about this IPv4 packet (RFC 1812
/// §4.3.2.7): not about an ICMP error, a non-first fragment, or a packet
/// from/to a broadcast, multicast or unspecified address.
pub fn may_answer_v4(pkt: &[u8]) -> bool {
    if pkt.len() < IPV4_HEADER_LEN {
        return false;
    }
    let ip = Ipv4Packet::new_unchecked(pkt);
    let hl = ip.header_len();
    let (src, dst) = (ip.src(), ip.dst());
    if ip.frag_offset() != 0
        || src.is_unspecified()
        || src.is_multicast()
        || src.is_broadcast()
        || dst.is_multicast()
        || dst.is_broadcast()
    {
        return false;
    }
    if ip.protocol() == proto::ICMP {
        // Only informational messages (echo, timestamp...) get errors.
        match pkt.get(hl) {
            Some(t) => matches!(*t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
            None => false,
        }
    } else {
        true
    }
}

/// True if an ICMPv6 error may be sent about this IPv6 packet (RFC 4443
/// §2.4 (e)): not about an ICMPv6 error, nor from an unspecified or
/// multicast source; to a multicast destination only "packet too big".
pub fn may_answer_v6(pkt: &[u8], too_big: bool) -> bool {
    if pkt.len() < IPV6_HEADER_LEN {
        return false;
    }
    let ip = Ipv6Packet::new_unchecked(pkt);
    let src = ip.src();
    if src.is_unspecified() || src.is_multicast() {
        return false;
    }
    if ip.dst().is_multicast() && !too_big {
        return false;
    }
    if ip.next_header() == proto::ICMPV6 {
        // Errors are types 0..=127.
        return pkt.get(IPV6_HEADER_LEN).is_some_and(|t| *t >= 128);
    }
    true
}

/// Turns the IPv4 packet in `pkt` (starting at its IP header) into an ICMP
/// error `(type, code)` from `src` to the packet's source, with `rest` in the
/// second header word (e.g. the next-hop MTU for "fragmentation needed").
/// Returns false (buffer unchanged in meaning, to be dropped) if the headroom
/// is short or the packet is too short.
pub fn to_icmp4_error<B: PacketBuf>(
    pkt: &mut B,
    (ty, code): (u8, u8),
    rest: u32,
    src: Ipv4Addr,
) -> bool {
    const HDRS: usize = IPV4_HEADER_LEN + ICMP_HEADER_LEN;
    let d = pkt.data();
    if d.len() < IPV4_HEADER_LEN {
        return false;
    }
    let ip = Ipv4Packet::new_unchecked(d);
    let total = usize::from(ip.total_len()).min(d.len());
    let orig_src = ip.src();
    let keep = total.min(ICMP4_MAX - HDRS);
    if !pkt.trim_back(pkt.len() - keep) || !pkt.prepend(HDRS) {
        return false;
    }
    let len = HDRS + keep;
    let b = pkt.data_mut();
    Ipv4Repr {
        tos: 0xc0, // internetwork control
        total_len: len as u16,
        ident: 0,
        df: false,
        ttl: TTL,
        protocol: proto::ICMP,
        src,
        dst: orig_src,
    }
    .emit(b);
    let (_, icmp) = b.split_at_mut(IPV4_HEADER_LEN);
    IcmpRepr {
        msg_type: ty,
        code,
        rest,
    }
    .emit(icmp);
    IcmpPacket::new_unchecked(&mut icmp[..len - IPV4_HEADER_LEN]).fill_checksum_v4();
    true
}

/// Turns the IPv6 packet in `pkt` into an ICMPv6 error `(type, code)` from
/// `src` to the packet's source, with `rest` in the second header word (the
/// MTU for "packet too big"). Returns false if the headroom is short.
pub fn to_icmp6_error<B: PacketBuf>(
    pkt: &mut B,
    (ty, code): (u8, u8),
    rest: u32,
    src: Ipv6Addr,
) -> bool {
    const HDRS: usize = IPV6_HEADER_LEN + ICMP_HEADER_LEN;
    let d = pkt.data();
    if d.len() < IPV6_HEADER_LEN {
        return false;
    }
    let ip = Ipv6Packet::new_unchecked(d);
    let total = ip.total_len().min(d.len());
    let orig_src = ip.src();
    let keep = total.min(ICMP6_MAX - HDRS);
    if !pkt.trim_back(pkt.len() - keep) || !pkt.prepend(HDRS) {
        return false;
    }
    let plen = ICMP_HEADER_LEN + keep;
    let b = pkt.data_mut();
    Ipv6Repr {
        traffic_class: 0,
        flow_label: 0,
        payload_len: plen as u16,
        next_header: proto::ICMPV6,
        hop_limit: TTL,
        src,
        dst: orig_src,
    }
    .emit(b);
    let (_, icmp) = b.split_at_mut(IPV6_HEADER_LEN);
    IcmpRepr {
        msg_type: ty,
        code,
        rest,
    }
    .emit(icmp);
    IcmpPacket::new_unchecked(&mut icmp[..plen]).fill_checksum_v6(src, orig_src);
    true
}

/// Builds an ICMP(v6) error for `pkt` from `src`, choosing the family by `src`.
pub fn to_icmp_error<B: PacketBuf>(
    pkt: &mut B,
    v4: (u8, u8),
    v6: (u8, u8),
    rest: u32,
    src: IpAddr,
) -> bool {
    match src {
        IpAddr::V4(s) => to_icmp4_error(pkt, v4, rest, s),
        IpAddr::V6(s) => to_icmp6_error(pkt, v6, rest, s),
    }
}

/// ICMP errors a worker may generate per second on average (RFC 4443
/// §2.4(f), RFC 1812 §4.3.2.8), and how many at once: Linux's defaults
/// (`net.ipv4.icmp_msgs_per_sec` 1000, `icmp_msgs_burst` 50).
pub const ICMP_PER_SEC: u64 = 1000;
/// See [`ICMP_PER_SEC`].
pub const ICMP_BURST: u64 = 50;

/// Token bucket limiting the ICMP errors one worker generates; the errors
/// it refuses are counted (`icmp_rate_limited`). Fed the time in
/// nanoseconds (monotonic), so that tests drive it.
#[derive(Clone, Debug)]
pub struct IcmpLimiter {
    per_sec: u64,
    burst: u64,
    tokens: u64,
    /// When the tokens were last topped up (ns).
    last_ns: u64,
}

impl IcmpLimiter {
    /// A full bucket of `burst` tokens refilled at `per_sec`.
    pub fn new(per_sec: u64, burst: u64, now_ns: u64) -> IcmpLimiter {
        IcmpLimiter {
            per_sec: per_sec.max(1),
            burst,
            tokens: burst,
            last_ns: now_ns,
        }
    }

    /// Whether one more error may be sent at `now_ns` (takes a token).
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let per_token = 1_000_000_000 / self.per_sec;
        let new = elapsed / per_token.max(1);
        if new > 0 {
            self.tokens = self.tokens.saturating_add(new).min(self.burst);
            // keep the remainder unless the bucket is full
            self.last_ns = if self.tokens == self.burst {
                now_ns
            } else {
                self.last_ns + new * per_token
            };
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::HeapBuf;
    use crate::wire::checksum;

    fn udp4(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 1;
        p[9] = proto::UDP;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        let c = checksum::checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn v4_frag_needed_carries_mtu_and_valid_checksums() {
        let orig = udp4(1500);
        let mut b = HeapBuf::from_slice(&orig);
        assert!(may_answer_v4(b.data()));
        assert!(to_icmp4_error(
            &mut b,
            ICMP4_FRAG_NEEDED,
            1446,
            Ipv4Addr::new(10, 1, 0, 1)
        ));
        assert_eq!(b.len(), ICMP4_MAX);
        let ip = Ipv4Packet::new_checked(b.data()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(ip.dst(), Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(ip.protocol(), proto::ICMP);
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum_v4());
        assert_eq!((icmp.msg_type(), icmp.code()), (3, 4));
        assert_eq!(icmp.rest_of_header() & 0xffff, 1446);
        assert_eq!(&icmp.data()[..20], &orig[..20]);
    }

    #[test]
    fn no_error_about_errors_or_fragments() {
        let mut p = udp4(60);
        p[9] = proto::ICMP;
        p[20] = 11; // time exceeded
        assert!(!may_answer_v4(&p));
        p[20] = 8; // echo request
        assert!(may_answer_v4(&p));
        let mut f = udp4(60);
        f[6] = 0x00;
        f[7] = 0x10; // offset 16*8
        assert!(!may_answer_v4(&f));
    }

    #[test]
    fn v6_packet_too_big() {
        let mut p = vec![0u8; 1400];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((1400 - 40) as u16).to_be_bytes());
        p[6] = proto::UDP;
        p[7] = 64;
        let src: Ipv6Addr = "fd00:1::2".parse().unwrap();
        let dst: Ipv6Addr = "fd00:2::2".parse().unwrap();
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        let mut b = HeapBuf::new(128, 1400, 64);
        b.reset_to(128, &p);
        assert!(may_answer_v6(b.data(), true));
        let me: Ipv6Addr = "fd00:1::1".parse().unwrap();
        assert!(to_icmp6_error(&mut b, ICMP6_PACKET_TOO_BIG, 1422, me));
        assert_eq!(b.len(), ICMP6_MAX);
        let ip = Ipv6Packet::new_checked(b.data()).unwrap();
        assert_eq!(ip.dst(), src);
        let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum_v6(me, src));
        assert_eq!(icmp.msg_type(), 2);
        assert_eq!(icmp.rest_of_header(), 1422);
    }

    #[test]
    fn icmp_errors_are_limited_by_a_token_bucket() {
        let t0 = 5_000_000_000u64;
        let mut l = IcmpLimiter::new(1000, 50, t0);
        // a burst of 50, then nothing at the same instant
        assert_eq!((0..200).filter(|_| l.allow(t0)).count(), 50);
        // 1000 per second: 10 more after 10 ms, none before 1 ms
        assert!(!l.allow(t0 + 999_999));
        assert_eq!((0..200).filter(|_| l.allow(t0 + 10_000_000)).count(), 10);
        // a second of flood at 100 kpps passes about 1000 (plus nothing of the burst, spent)
        let mut sent = 0;
        for i in 0..100_000u64 {
            if l.allow(t0 + 10_000_000 + i * 10_000) {
                sent += 1;
            }
        }
        assert!((990..=1010).contains(&sent), "{sent}");
        // idle refills only up to the burst; a clock going backwards takes nothing
        let t1 = t0 + 100_000_000_000;
        assert_eq!((0..200).filter(|_| l.allow(t1)).count(), 50);
        assert!(!l.allow(t0));
    }
}
