//! IPv4 header (RFC 791) with header checksum.

use std::net::Ipv4Addr;

use super::{checksum, malformed, rd16, truncated, wr16, WireError};

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

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
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    fn b(&self) -> &[u8] {
        self.buf.as_ref()
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0f) * 4
    }
    /// DSCP (upper 6 bits of the TOS byte).
    pub fn dscp(&self) -> u8 {
        self.b()[1] >> 2
    }
    /// ECN (lower 2 bits of the TOS byte).
    pub fn ecn(&self) -> u8 {
        self.b()[1] & 3
    }
    /// The whole TOS / traffic-class byte.
    pub fn tos(&self) -> u8 {
        self.b()[1]
    }
    /// Total length field.
    pub fn total_len(&self) -> u16 {
        rd16(self.b(), 2)
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        rd16(self.b(), 4)
    }
    /// Don't-fragment flag.
    pub fn df(&self) -> bool {
        rd16(self.b(), 6) & FLAG_DF != 0
    }
    /// More-fragments flag.
    pub fn mf(&self) -> bool {
        rd16(self.b(), 6) & FLAG_MF != 0
    }
    /// Fragment offset in 8-byte units.
    pub fn frag_offset(&self) -> u16 {
        rd16(self.b(), 6) & 0x1fff
    }
    /// True for any fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        rd16(self.b(), 6) & 0x3fff != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }
    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }
    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        rd16(self.b(), 10)
    }
    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    /// Destination address.
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
    /// Sets the TOS byte (DSCP << 2 | ECN).
    pub fn set_tos(&mut self, tos: u8) {
        self.bm()[1] = tos;
    }
    /// Sets the ECN bits, keeping DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = self.bm();
        b[1] = (b[1] & !3) | (ecn & 3);
    }
    /// Sets the DSCP, keeping ECN.
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = self.bm();
        b[1] = (b[1] & 3) | (dscp << 2);
    }
    /// Sets the total length field. A view stays valid only while the buffer
    /// is at least that long; callers set it to a length they checked.
    pub fn set_total_len(&mut self, len: u16) {
        wr16(self.bm(), 2, len);
    }
    /// Sets the identification.
    pub fn set_ident(&mut self, id: u16) {
        wr16(self.bm(), 4, id);
    }
    /// Sets or clears DF.
    pub fn set_df(&mut self, df: bool) {
        let b = self.bm();
        let v = rd16(b, 6);
        wr16(b, 6, if df { v | FLAG_DF } else { v & !FLAG_DF });
    }
    /// Sets the TTL.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.bm()[8] = ttl;
    }
    /// Sets the protocol.
    pub fn set_protocol(&mut self, p: u8) {
        self.bm()[9] = p;
    }
    /// Sets the source address.
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.bm()[12..16].copy_from_slice(&a.octets());
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.bm()[16..20].copy_from_slice(&a.octets());
    }
    /// Recomputes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.bm();
        wr16(b, 10, 0);
        let c = checksum::checksum(&b[..hl]);
        wr16(b, 10, c);
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
