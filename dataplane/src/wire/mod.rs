//! Zero-copy typed views over packet bytes (smoltcp `wire/` style).
//!
//! Each view wraps a buffer `T: AsRef<[u8]>` (and `AsMut<[u8]>` for setters).
//! `new_checked` validates every length the accessors rely on, so accessors on a
//! checked view never panic; parsing any byte string returns a typed
//! [`WireError`] naming the field and value, never panics. The parse entry
//! points take `&[u8]`, so they are easy to fuzz.
//!
//! Views: [`EthernetFrame`], [`Ipv4Packet`] (+ header checksum),
//! [`Ipv6Packet`] (+ extension-header walk), [`UdpPacket`] (+ checksum with the
//! IPv4/IPv6 pseudo-header), [`EspPacket`] and [`EspTrailer`],
//! [`IcmpPacket`] (ICMP and ICMPv6), and the NAT-T demultiplexer
//! [`classify_natt`] (non-ESP marker, keepalive).
//!
//! Each header module also has its field offsets (`ipv4::field::TTL`, ...)
//! and a `*Repr` whose `emit` writes a whole header (what encapsulation and
//! the ICMP errors write). Code outside `wire/` reads and writes headers
//! only through these. On the hot path, where a length was already checked,
//! `new_unchecked` wraps a buffer at no cost (the accessors index it as
//! slice indexing would; no extra check per packet).

#![forbid(unsafe_code)]

pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
mod natt;
pub mod udp;

pub use esp::{EspPacket, EspTrailer, ESP_HEADER_LEN};
pub use ethernet::{
    EthernetFrame, EthernetRepr, ETHERNET_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4,
    ETHERTYPE_IPV6, ETHERTYPE_VLAN,
};
pub use icmp::{IcmpPacket, IcmpRepr, ICMP_HEADER_LEN};
pub use ipv4::{Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};
pub use ipv6::{
    FragLoc, FragmentHeader, Ipv6Packet, Ipv6Repr, UpperLayer, FRAG_HEADER_LEN, IPV6_HEADER_LEN,
};
pub use natt::{classify_natt, NattKind, NATT_PORT, NON_ESP_MARKER_LEN};
pub use udp::{UdpPacket, UdpRepr, UDP_HEADER_LEN};

/// TCP, as far as the engine touches it (the checksum after NAT-T decap).
pub mod tcp {
    /// Byte offsets of the header fields.
    pub mod field {
        /// Checksum.
        pub const CHECKSUM: usize = 16;
    }
}

/// IP protocol numbers used by the engine.
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPT: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 in IP (tunnel-mode ESP next header for IPv4 inner).
    pub const IPIP: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 in IP (tunnel-mode ESP next header for IPv6 inner).
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 fragment header.
    pub const IPV6_FRAG: u8 = 44;
    /// ESP.
    pub const ESP: u8 = 50;
    /// AH.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header (ESP dummy packet, RFC 4303 §2.6).
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const IPV6_OPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Why bytes could not be parsed as a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header or a length field says.
    #[error("{what}: truncated, need {need} bytes, have {have}")]
    Truncated {
        /// Header being parsed.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A field has a value the header cannot have.
    #[error("{what}: bad {field} = {value}")]
    Malformed {
        /// Header being parsed.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// Offending value.
        value: u64,
    },
}

impl WireError {
    /// The drop reason this parse error is counted under.
    pub const fn drop_reason(self) -> crate::drop::DropReason {
        match self {
            WireError::Truncated { .. } => crate::drop::DropReason::Truncated,
            WireError::Malformed { .. } => crate::drop::DropReason::Malformed,
        }
    }
}

pub(crate) const fn truncated(what: &'static str, need: usize, have: usize) -> WireError {
    WireError::Truncated { what, need, have }
}

pub(crate) const fn malformed(what: &'static str, field: &'static str, value: u64) -> WireError {
    WireError::Malformed { what, field, value }
}

#[inline(always)]
pub(crate) fn rd16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline(always)]
pub(crate) fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline(always)]
pub(crate) fn wr16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn wr32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// IP version of a packet that starts at the IP header (4, 6, or whatever the
/// first nibble says); `None` for an empty buffer.
pub fn ip_version(b: &[u8]) -> Option<u8> {
    b.first().map(|v| v >> 4)
}

/// ECN codepoints (RFC 3168).
pub mod ecn {
    /// Not ECN-capable transport.
    pub const NOT_ECT: u8 = 0;
    /// ECN-capable transport (1).
    pub const ECT1: u8 = 1;
    /// ECN-capable transport (0).
    pub const ECT0: u8 = 2;
    /// Congestion experienced.
    pub const CE: u8 = 3;
}
