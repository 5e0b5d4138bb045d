//! IPv4 header (RFC 791) with header checksum.

use std::net::Ipv4Addr;

use super::{checksum, malformed, rd16, truncated, wr16, WireError};

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Don't-fragment flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More-fragments flag in the flags/fragment-offset word.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset (in 8-byte units) in the flags/fragment-offset word.
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Byte offsets of the header fields.
pub mod field {
    use std::ops::Range;
    /// Version (4 bits) and header length in 32-bit words (4 bits).
    pub const VER_IHL: usize = 0;
    /// Type of service: DSCP << 2 | ECN.
    pub const TOS: usize = 1;
    /// Total length.
    pub const LEN: usize = 2;
    /// Identification.
    pub const IDENT: usize = 4;
    /// Flags (DF, MF) and fragment offset.
    pub const FLAGS_FRAG: usize = 6;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: usize = 10;
    /// Source address.
    pub const SRC: Range<usize> = 12..16;
    /// Destination address.
    pub const DST: Range<usize> = 16..20;
}

/// The fields of an IPv4 header without options, to write one
/// ([`Ipv4Repr::emit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Type of service (DSCP << 2 | ECN).
    pub tos: u8,
    /// Total length.
    pub total_len: u16,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub df: bool,
    /// Time to live.
    pub ttl: u8,
    /// Protocol.
    pub protocol: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
}

impl Ipv4Repr {
    /// Writes the header, checksum included, into the first
    /// [`IPV4_HEADER_LEN`] bytes of `buf` (which must hold them).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut ip = Ipv4Packet::new_unchecked(buf);
        ip.set_ver_ihl(IPV4_HEADER_LEN);
        ip.set_tos(self.tos);
        ip.set_total_len(self.total_len);
        ip.set_ident(self.ident);
        ip.set_flags_frag(if self.df { FLAG_DF } else { 0 });
        ip.set_ttl(self.ttl);
        ip.set_protocol(self.protocol);
        ip.set_src(self.src);
        ip.set_dst(self.dst);
        ip.fill_checksum();
    }
}

/// A view of an IPv4 packet. A checked view guarantees: version 4,
/// `20 <= ihl*4 <= total_len <= buffer length`.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buf` after validating version and every length field.
    /// Bytes past `total_len` (link-layer padding) are allowed.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < IPV4_HEADER_LEN {
            return Err(truncated("ipv4", IPV4_HEADER_LEN, b.len()));
        }
        let ver = b[0] >> 4;
        if ver != 4 {
            return Err(malformed("ipv4", "version", ver.into()));
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < IPV4_HEADER_LEN {
            return Err(malformed("ipv4", "ihl", (hl / 4) as u64));
        }
        let total = usize::from(rd16(b, 2));
        if total < hl {
            return Err(malformed("ipv4", "total_len", total as u64));
        }
        if b.len() < total {
            return Err(truncated("ipv4", total, b.len()));
        }
        Ok(Ipv4Packet { buf })
    }
    /// Wraps `buf` without checking: the caller has checked that it holds
    /// the fields it reads (the accessors index it, as slice indexing does).
    #[inline]
    pub const fn new_unchecked(buf: T) -> Self {
        Ipv4Packet { buf }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }
    /// DSCP (upper 6 bits of the TOS byte).
    pub fn dscp(&self) -> u8 {
        self.b()[field::TOS] >> 2
    }
    /// ECN (lower 2 bits of the TOS byte).
    pub fn ecn(&self) -> u8 {
        self.b()[field::TOS] & 3
    }
    /// The whole TOS / traffic-class byte.
    pub fn tos(&self) -> u8 {
        self.b()[field::TOS]
    }
    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        rd16(self.b(), field::LEN)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        rd16(self.b(), field::IDENT)
    }
    /// Don't-fragment flag.
    #[inline]
    pub fn df(&self) -> bool {
        self.b()[field::FLAGS_FRAG] & (FLAG_DF >> 8) as u8 != 0
    }
    /// More-fragments flag.
    pub fn mf(&self) -> bool {
        rd16(self.b(), field::FLAGS_FRAG) & FLAG_MF != 0
    }
    /// The whole flags and fragment-offset word.
    #[inline]
    pub fn flags_frag(&self) -> u16 {
        rd16(self.b(), field::FLAGS_FRAG)
    }
    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        rd16(self.b(), field::FLAGS_FRAG) & FRAG_OFFSET_MASK
    }
    /// True for any fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        rd16(self.b(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        rd16(self.b(), field::CHECKSUM)
    }
    /// Source address.
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination address.
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// True if the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.b()[..self.header_len()])) == 0xffff
    }
    /// The payload: bytes between the header and `total_len`.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buf.as_mut()
    }
    /// Sets version 4 and the header length (`len` bytes, a multiple of 4).
    #[inline]
    pub fn set_ver_ihl(&mut self, len: usize) {
        self.bm()[field::VER_IHL] = 0x40 | (len / 4) as u8;
    }
    /// Sets the TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.bm()[field::TOS] = tos;
    }
    /// Sets the TOS byte and updates the header checksum incrementally
    /// (RFC 1624).
    #[inline]
    pub fn update_tos(&mut self, tos: u8) {
        let b = self.bm();
        let old = rd16(b, field::VER_IHL);
        b[field::TOS] = tos;
        let new = rd16(b, field::VER_IHL);
        let c = checksum::update16(rd16(b, field::CHECKSUM), old, new);
        wr16(b, field::CHECKSUM, c);
    }
    /// Sets the ECN bits, keeping DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = self.bm();
        b[field::TOS] = (b[field::TOS] & !3) | (ecn & 3);
    }
    /// Sets the DSCP, keeping ECN.
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = self.bm();
        b[field::TOS] = (b[field::TOS] & 3) | (dscp << 2);
    }
    /// Sets the total length field. A view stays valid only while the buffer
    /// is at least that long; callers set it to a length they checked.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        wr16(self.bm(), field::LEN, len);
    }
    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, id: u16) {
        wr16(self.bm(), field::IDENT, id);
    }
    /// Sets or clears DF.
    pub fn set_df(&mut self, df: bool) {
        let b = self.bm();
        let v = rd16(b, field::FLAGS_FRAG);
        wr16(
            b,
            field::FLAGS_FRAG,
            if df { v | FLAG_DF } else { v & !FLAG_DF },
        );
    }
    /// Sets the whole flags and fragment-offset word.
    #[inline]
    pub fn set_flags_frag(&mut self, v: u16) {
        wr16(self.bm(), field::FLAGS_FRAG, v);
    }
    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[field::TTL] = ttl;
    }
    /// Takes one from the TTL (a router forwarding the packet; the caller
    /// has checked it is above 1), updating the header checksum
    /// incrementally (RFC 1624).
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.bm();
        let old = rd16(b, field::TTL);
        b[field::TTL] -= 1;
        let new = rd16(b, field::TTL);
        let c = checksum::update16(rd16(b, field::CHECKSUM), old, new);
        wr16(b, field::CHECKSUM, c);
    }
    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, p: u8) {
        self.bm()[field::PROTOCOL] = p;
    }
    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        wr16(self.bm(), field::CHECKSUM, c);
    }
    /// Sets the source address.
    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.bm()[field::SRC].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.bm()[field::DST].copy_from_slice(&a.octets());
    }
    /// Recomputes and writes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.bm();
        wr16(b, field::CHECKSUM, 0);
        let c = checksum::checksum(&b[..hl]);
        wr16(b, field::CHECKSUM, c);
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.bm()[hl..tl]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example of the IPv4 header checksum article (UDP, checksum b861).
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn parses_known_header_and_verifies_checksum() {
        let mut b = HDR.to_vec();
        b.resize(0x73, 0);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.df());
        assert!(!p.is_fragment());
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 0, 1));
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 0x73 - 20);
    }

    #[test]
    fn fill_checksum_matches_known_value() {
        let mut b = HDR.to_vec();
        b.resize(0x73, 0);
        b[10] = 0;
        b[11] = 0;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xb861);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut b = HDR.to_vec();
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::Truncated { need: 0x73, .. })
        ));
        b[0] = 0x44;
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::Malformed { field: "ihl", .. })
        ));
        b[0] = 0x65;
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::Malformed {
                field: "version",
                value: 6,
                ..
            })
        ));
        b[0] = 0x45;
        b[2] = 0;
        b[3] = 10;
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]),
            Err(WireError::Malformed {
                field: "total_len",
                ..
            })
        ));
    }
}
