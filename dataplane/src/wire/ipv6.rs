//! IPv6 header (RFC 8200) and a bounded walk over extension headers.

use std::net::Ipv6Addr;

use super::{malformed, proto, rd16, rd32, truncated, wr16, wr32, WireError};

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// Byte offsets of the fixed header's fields.
pub mod field {
    use std::ops::Range;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: usize = 0;
    /// Payload length.
    pub const PAYLOAD_LEN: usize = 4;
    /// Next header.
    pub const NEXT_HEADER: usize = 6;
    /// Hop limit.
    pub const HOP_LIMIT: usize = 7;
    /// Source address.
    pub const SRC: Range<usize> = 8..24;
    /// Destination address.
    pub const DST: Range<usize> = 24..40;
}

/// The fields of a fixed IPv6 header, to write one ([`Ipv6Repr::emit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Traffic class (DSCP << 2 | ECN).
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Payload length.
    pub payload_len: u16,
    /// Next header.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Repr {
    /// Writes the header into the first [`IPV6_HEADER_LEN`] bytes of `buf`
    /// (which must hold them).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut ip = Ipv6Packet::new_unchecked(buf);
        ip.set_version_tc_flow(self.traffic_class, self.flow_label);
        ip.set_payload_len(self.payload_len);
        ip.set_next_header(self.next_header);
        ip.set_hop_limit(self.hop_limit);
        ip.set_src(self.src);
        ip.set_dst(self.dst);
    }
}

/// Longest chain of extension headers walked before giving up.
const MAX_EXT_HEADERS: usize = 8;

/// Where the upper-layer protocol starts (after extension headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol number (e.g. 6, 17, 58, 50), or the first header
    /// not walked.
    pub proto: u8,
    /// Offset of that header from the start of the IPv6 packet.
    pub offset: usize,
    /// Offset of the "next header" byte that names `proto` (6 for the fixed header).
    pub nh_field: usize,
    /// True if a fragment header with a non-zero offset was seen (no ports).
    pub later_fragment: bool,
}

/// A view of an IPv6 packet. A checked view guarantees: version 6 and
/// `40 + payload_len <= buffer length`.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buf` after validating version and payload length. Bytes past the
    /// payload (link-layer padding) are allowed.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < IPV6_HEADER_LEN {
            return Err(truncated("ipv6", IPV6_HEADER_LEN, b.len()));
        }
        let ver = b[0] >> 4;
        if ver != 6 {
            return Err(malformed("ipv6", "version", ver.into()));
        }
        let total = IPV6_HEADER_LEN + usize::from(rd16(b, 4));
        if b.len() < total {
            return Err(truncated("ipv6", total, b.len()));
        }
        Ok(Ipv6Packet { buf })
    }
    /// Wraps `buf` without checking: the caller has checked that it holds
    /// the fields it reads (the accessors index it, as slice indexing does).
    #[inline]
    pub const fn new_unchecked(buf: T) -> Self {
        Ipv6Packet { buf }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// Traffic class byte (DSCP << 2 | ECN).
    pub fn traffic_class(&self) -> u8 {
        let b = self.b();
        (b[0] << 4) | (b[1] >> 4)
    }
    /// DSCP.
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }
    /// ECN.
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 3
    }
    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        rd32(self.b(), 0) & 0x000f_ffff
    }
    /// Payload length field.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        rd16(self.b(), field::PAYLOAD_LEN)
    }
    /// Total length: header plus payload.
    pub fn total_len(&self) -> usize {
        IPV6_HEADER_LEN + usize::from(self.payload_len())
    }
    /// Next header of the fixed header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }
    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[field::SRC]);
        Ipv6Addr::from(a)
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.b()[field::DST]);
        Ipv6Addr::from(a)
    }
    /// The payload (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.b()[IPV6_HEADER_LEN..self.total_len()]
    }
    /// Walks hop-by-hop, routing, fragment and destination-options headers
    /// (at most 8) to the upper-layer header. Every length is checked.
    pub fn upper_layer(&self) -> Result<UpperLayer, WireError> {
        let b = &self.b()[..self.total_len()];
        let mut nh = b[field::NEXT_HEADER];
        let mut nh_field = field::NEXT_HEADER;
        let mut off = IPV6_HEADER_LEN;
        let mut later_fragment = false;
        for _ in 0..MAX_EXT_HEADERS {
            let len = match nh {
                proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                    if b.len() < off + 2 {
                        return Err(truncated("ipv6 extension header", off + 2, b.len()));
                    }
                    (usize::from(b[off + 1]) + 1) * 8
                }
                proto::IPV6_FRAG => {
                    if b.len() < off + 8 {
                        return Err(truncated("ipv6 fragment header", off + 8, b.len()));
                    }
                    if rd16(b, off + 2) & 0xfff8 != 0 {
                        later_fragment = true;
                    }
                    8
                }
                _ => {
                    return Ok(UpperLayer {
                        proto: nh,
                        offset: off,
                        nh_field,
                        later_fragment,
                    });
                }
            };
            if b.len() < off + len {
                return Err(truncated("ipv6 extension header", off + len, b.len()));
            }
            nh = b[off];
            nh_field = off;
            off += len;
        }
        Err(malformed(
            "ipv6",
            "extension header chain length",
            MAX_EXT_HEADERS as u64 + 1,
        ))
    }
}

/// True if the IPv6 packet `d` (at least a fixed header) carries a fragment
/// header before its upper layer (a second walk, for the rare packets with
/// extension headers; the walk stops at 8 headers or a short buffer).
pub fn has_fragment_header(d: &[u8]) -> bool {
    let mut nh = d[field::NEXT_HEADER];
    let mut off = IPV6_HEADER_LEN;
    for _ in 0..MAX_EXT_HEADERS {
        match nh {
            proto::IPV6_FRAG => return true,
            proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS if d.len() >= off + 2 => {
                nh = d[off];
                off += (usize::from(d[off + 1]) + 1) * 8;
            }
            _ => return false,
        }
    }
    false
}

/// Length of the IPv6 fragment header (RFC 8200 §4.5).
pub const FRAG_HEADER_LEN: usize = 8;

/// A view of an IPv6 fragment header (RFC 8200 §4.5): next header, reserved,
/// fragment offset (13 bits, 8-byte units) + 2 reserved bits + M flag,
/// identification. A checked view holds at least [`FRAG_HEADER_LEN`] bytes.
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps `buf` after checking it holds a whole fragment header.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let n = buf.as_ref().len();
        if n < FRAG_HEADER_LEN {
            return Err(truncated("ipv6 fragment header", FRAG_HEADER_LEN, n));
        }
        Ok(FragmentHeader { buf })
    }
    /// Header of the fragmentable part that follows.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    /// Fragment offset in bytes (a multiple of 8).
    pub fn offset(&self) -> usize {
        usize::from(rd16(self.buf.as_ref(), 2) & 0xfff8)
    }
    /// More-fragments flag.
    pub fn more(&self) -> bool {
        rd16(self.buf.as_ref(), 2) & 1 != 0
    }
    /// Identification.
    pub fn ident(&self) -> u32 {
        rd32(self.buf.as_ref(), 4)
    }
}

/// Where a fragment header sits in an IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragLoc {
    /// Offset of the fragment header (the unfragmentable part ends here).
    pub offset: usize,
    /// Offset of the "next header" byte that names the fragment header.
    pub nh_field: usize,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Finds the fragment header: walks hop-by-hop, routing and
    /// destination-options headers (at most 8, every length checked) and
    /// returns where the fragment header is, or `None` if the chain reaches
    /// another header first.
    pub fn fragment_header(&self) -> Result<Option<FragLoc>, WireError> {
        let b = &self.b()[..self.total_len()];
        let mut nh = b[field::NEXT_HEADER];
        let mut nh_field = field::NEXT_HEADER;
        let mut off = IPV6_HEADER_LEN;
        for _ in 0..MAX_EXT_HEADERS {
            match nh {
                proto::IPV6_FRAG => {
                    if b.len() < off + FRAG_HEADER_LEN {
                        return Err(truncated(
                            "ipv6 fragment header",
                            off + FRAG_HEADER_LEN,
                            b.len(),
                        ));
                    }
                    return Ok(Some(FragLoc {
                        offset: off,
                        nh_field,
                    }));
                }
                proto::HOPOPT | proto::IPV6_ROUTE | proto::IPV6_OPTS => {
                    if b.len() < off + 2 {
                        return Err(truncated("ipv6 extension header", off + 2, b.len()));
                    }
                    let len = (usize::from(b[off + 1]) + 1) * 8;
                    if b.len() < off + len {
                        return Err(truncated("ipv6 extension header", off + len, b.len()));
                    }
                    nh = b[off];
                    nh_field = off;
                    off += len;
                }
                _ => return Ok(None),
            }
        }
        Err(malformed(
            "ipv6",
            "extension header chain length",
            MAX_EXT_HEADERS as u64 + 1,
        ))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    /// Writes version 6, traffic class and flow label.
    pub fn set_version_tc_flow(&mut self, tc: u8, flow: u32) {
        let v = (6u32 << 28) | (u32::from(tc) << 20) | (flow & 0x000f_ffff);
        wr32(self.bm(), 0, v);
    }
    /// Sets the traffic class, keeping version and flow label.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.bm();
        b[0] = (b[0] & 0xf0) | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }
    /// Sets the ECN bits, keeping DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tc = (self.traffic_class() & !3) | (ecn & 3);
        self.set_traffic_class(tc);
    }
    /// Sets the DSCP, keeping ECN.
    pub fn set_dscp(&mut self, dscp: u8) {
        let tc = (self.traffic_class() & 3) | (dscp << 2);
        self.set_traffic_class(tc);
    }
    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        wr16(self.bm(), field::PAYLOAD_LEN, len);
    }
    /// Sets the next header of the fixed header.
    #[inline]
    pub fn set_next_header(&mut self, nh: u8) {
        self.bm()[field::NEXT_HEADER] = nh;
    }
    /// Sets the "next header" byte at `nh_field` (the fixed header's, or an
    /// extension header's as [`UpperLayer::nh_field`] gives it).
    #[inline]
    pub fn set_next_header_at(&mut self, nh_field: usize, nh: u8) {
        self.bm()[nh_field] = nh;
    }
    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.bm()[field::HOP_LIMIT] = h;
    }
    /// Takes one from the hop limit (a router forwarding the packet; the
    /// caller has checked it is above 1).
    #[inline]
    pub fn decrement_hop_limit(&mut self) {
        self.bm()[field::HOP_LIMIT] -= 1;
    }
    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.bm()[field::SRC].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.bm()[field::DST].copy_from_slice(&a.octets());
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let tl = self.total_len();
        &mut self.bm()[IPV6_HEADER_LEN..tl]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        let mut p = Ipv6Packet { buf: &mut b[..] };
        p.set_version_tc_flow(0xb9, 0x12345);
        p.set_payload_len(payload.len() as u16);
        p.set_next_header(nh);
        p.set_hop_limit(64);
        p.set_src("2001:db8::1".parse().unwrap());
        p.set_dst("2001:db8::2".parse().unwrap());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn fields_round_trip() {
        let b = pkt(17, &[0u8; 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.traffic_class(), 0xb9);
        assert_eq!(p.dscp(), 0xb9 >> 2);
        assert_eq!(p.ecn(), 1);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.next_header(), 17);
        assert_eq!(p.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.upper_layer().unwrap().offset, 40);
    }

    #[test]
    fn walks_extension_headers() {
        // hop-by-hop (8 bytes) -> fragment (offset 0) -> UDP
        let mut pl = vec![proto::IPV6_FRAG, 0, 0, 0, 0, 0, 0, 0];
        pl.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 1]);
        pl.extend_from_slice(&[0u8; 8]);
        let b = pkt(proto::HOPOPT, &pl);
        let u = Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            u,
            UpperLayer {
                proto: 17,
                offset: 56,
                nh_field: 48,
                later_fragment: false
            }
        );
        // truncated hop-by-hop claiming 16 bytes
        let b = pkt(proto::HOPOPT, &[17, 1, 0, 0, 0, 0, 0, 0]);
        assert!(Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer()
            .is_err());
    }

    #[test]
    fn rejects_short_and_wrong_version() {
        let mut b = pkt(17, &[0u8; 8]);
        assert!(Ipv6Packet::new_checked(&b[..47]).is_err());
        b[0] = 0x45;
        assert!(matches!(
            Ipv6Packet::new_checked(&b[..]),
            Err(WireError::Malformed {
                field: "version",
                ..
            })
        ));
    }
}
