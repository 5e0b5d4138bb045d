//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: both share the 8-byte
//! header layout `type | code | checksum | rest of header`.

use std::net::Ipv6Addr;

use super::{checksum, proto, rd16, rd32, truncated, wr16, wr32, WireError};

/// ICMP/ICMPv6 header length (type, code, checksum, 4 bytes rest of header).
pub const ICMP_HEADER_LEN: usize = 8;

/// Byte offsets of the header fields.
pub mod field {
    /// Type.
    pub const TYPE: usize = 0;
    /// Code.
    pub const CODE: usize = 1;
    /// Checksum.
    pub const CHECKSUM: usize = 2;
    /// Rest of the header (identifier/sequence, MTU, pointer...).
    pub const REST: usize = 4;
}

/// The fields of an ICMP or ICMPv6 header, to write one ([`IcmpRepr::emit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpRepr {
    /// Type.
    pub msg_type: u8,
    /// Code.
    pub code: u8,
    /// Rest of the header.
    pub rest: u32,
}

impl IcmpRepr {
    /// Writes the header into the first [`ICMP_HEADER_LEN`] bytes of `buf`
    /// (which must hold them), checksum 0: fill it once the data is in place.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut m = IcmpPacket::new_unchecked(buf);
        m.set_msg_type(self.msg_type);
        m.set_code(self.code);
        m.set_checksum(0);
        m.set_rest_of_header(self.rest);
    }
}

/// A view of an ICMP or ICMPv6 message.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buf` (the whole message) after checking it holds the header.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let have = buf.as_ref().len();
        if have < ICMP_HEADER_LEN {
            return Err(truncated("icmp", ICMP_HEADER_LEN, have));
        }
        Ok(IcmpPacket { buf })
    }
    /// Wraps `buf` without checking: the caller has checked that it holds
    /// the fields it reads (the accessors index it, as slice indexing does).
    #[inline]
    pub const fn new_unchecked(buf: T) -> Self {
        IcmpPacket { buf }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        rd16(self.buf.as_ref(), field::CHECKSUM)
    }
    /// The 4 bytes after the checksum (identifier/sequence, MTU, pointer...).
    pub fn rest_of_header(&self) -> u32 {
        rd32(self.buf.as_ref(), field::REST)
    }
    /// Echo identifier (first half of the rest of the header).
    pub fn echo_ident(&self) -> u16 {
        rd16(self.buf.as_ref(), field::REST)
    }
    /// Echo sequence number (second half of the rest of the header).
    pub fn echo_seq(&self) -> u16 {
        rd16(self.buf.as_ref(), field::REST + 2)
    }
    /// Data after the header (for errors: the quoted packet).
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[ICMP_HEADER_LEN..]
    }
    /// True if the ICMPv4 checksum (over the message) verifies.
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::fold(checksum::sum(self.buf.as_ref())) == 0xffff
    }
    /// True if the ICMPv6 checksum (over the pseudo-header and message) verifies.
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buf.as_ref();
        let s = checksum::pseudo_v6(src, dst, proto::ICMPV6, b.len() as u32) + checksum::sum(b);
        checksum::fold(s) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, t: u8) {
        self.buf.as_mut()[field::TYPE] = t;
    }
    /// Sets the code.
    pub fn set_code(&mut self, c: u8) {
        self.buf.as_mut()[field::CODE] = c;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        wr16(self.buf.as_mut(), field::CHECKSUM, c);
    }
    /// Sets the rest of the header.
    pub fn set_rest_of_header(&mut self, v: u32) {
        wr32(self.buf.as_mut(), field::REST, v);
    }
    /// The data after the header, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[ICMP_HEADER_LEN..]
    }
    /// Computes and writes the ICMPv4 checksum.
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buf.as_ref());
        self.set_checksum(c);
    }
    /// Computes and writes the ICMPv6 checksum.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buf.as_ref();
        let s = checksum::pseudo_v6(src, dst, proto::ICMPV6, b.len() as u32) + checksum::sum(b);
        self.set_checksum(!checksum::fold(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_checksums() {
        let mut m = vec![8u8, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c'];
        let mut p = IcmpPacket::new_checked(&mut m[..]).unwrap();
        p.fill_checksum_v4();
        let p = IcmpPacket::new_checked(&m[..]).unwrap();
        assert!(p.verify_checksum_v4());
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap());
        m[0] = 128;
        IcmpPacket::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum_v6(s, d);
        assert!(IcmpPacket::new_checked(&m[..])
            .unwrap()
            .verify_checksum_v6(s, d));
        assert!(!IcmpPacket::new_checked(&m[..])
            .unwrap()
            .verify_checksum_v6(s, "fe80::3".parse().unwrap()));
        assert!(IcmpPacket::new_checked(&m[..7]).is_err());
    }
}
