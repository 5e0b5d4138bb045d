//! Ethernet II frame header.

use super::{rd16, truncated, wr16, WireError};

/// Ethernet header length (no VLAN tag).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// EtherType IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// Byte offsets of the header fields.
pub mod field {
    use std::ops::Range;
    /// Destination MAC address.
    pub const DST: Range<usize> = 0..6;
    /// Source MAC address.
    pub const SRC: Range<usize> = 6..12;
    /// EtherType.
    pub const ETHERTYPE: usize = 12;
}

/// The fields of an Ethernet II header, to write one ([`EthernetRepr::emit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination MAC address.
    pub dst: [u8; 6],
    /// Source MAC address.
    pub src: [u8; 6],
    /// EtherType.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Writes the header into the first [`ETHERNET_HEADER_LEN`] bytes of
    /// `buf` (which must hold them).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) {
        let mut f = EthernetFrame::new_unchecked(buf);
        f.set_dst(self.dst);
        f.set_src(self.src);
        f.set_ethertype(self.ethertype);
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buf` after checking it holds a full header.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let have = buf.as_ref().len();
        if have < ETHERNET_HEADER_LEN {
            return Err(truncated("ethernet", ETHERNET_HEADER_LEN, have));
        }
        Ok(EthernetFrame { buf })
    }
    /// Wraps `buf` without checking: the caller has checked that it holds
    /// the header (the accessors index it, as slice indexing does).
    #[inline]
    pub const fn new_unchecked(buf: T) -> Self {
        EthernetFrame { buf }
    }
    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }
    /// Destination MAC address.
    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        let b = self.buf.as_ref();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }
    /// True if the destination is a group (multicast or broadcast) address.
    #[inline]
    pub fn dst_is_group(&self) -> bool {
        self.buf.as_ref()[field::DST.start] & 1 != 0
    }
    /// Source MAC address.
    #[inline]
    pub fn src(&self) -> [u8; 6] {
        let b = self.buf.as_ref();
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }
    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        rd16(self.buf.as_ref(), field::ETHERTYPE)
    }
    /// Bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[ETHERNET_HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::DST].copy_from_slice(&mac);
    }
    /// Sets the source MAC.
    #[inline]
    pub fn set_src(&mut self, mac: [u8; 6]) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&mac);
    }
    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        wr16(self.buf.as_mut(), field::ETHERTYPE, t);
    }
    /// Bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[ETHERNET_HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut b = [0u8; 20];
        assert!(EthernetFrame::new_checked(&b[..13]).is_err());
        let mut f = EthernetFrame::new_checked(&mut b[..]).unwrap();
        f.set_dst([1, 2, 3, 4, 5, 6]);
        f.set_src([7, 8, 9, 10, 11, 12]);
        f.set_ethertype(ETHERTYPE_IPV6);
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.payload().len(), 6);
    }
}
