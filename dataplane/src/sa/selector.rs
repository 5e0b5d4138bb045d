//! Traffic selectors compiled for matching on the hot path, and the flow key
//! extracted from an inner packet (addresses, protocol, ports).

use std::net::IpAddr;

use ipnet::IpNet;

use super::params::{PortRange, TrafficSelector};
use crate::wire::{proto, IcmpPacket, Ipv4Packet, Ipv6Packet, UdpPacket, WireError};

/// Addresses, protocol and ports of a packet, as selectors see them.
/// IPv4 addresses sit in the low 32 bits with `v6 == false`.
/// ICMP/ICMPv6 put the type in `sport` and the code in `dport` (as Linux XFRM).
/// Non-first fragments and protocols without ports have `has_ports == false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    /// IPv6 packet.
    pub v6: bool,
    /// Source address.
    pub src: u128,
    /// Destination address.
    pub dst: u128,
    /// Upper-layer protocol.
    pub proto: u8,
    /// Source port (ICMP: type).
    pub sport: u16,
    /// Destination port (ICMP: code).
    pub dport: u16,
    /// Ports are known.
    pub has_ports: bool,
}

fn ports_of(proto_nr: u8, l4: &[u8], first_fragment: bool) -> (u16, u16, bool) {
    if !first_fragment {
        return (0, 0, false);
    }
    match proto_nr {
        // TCP, SCTP and UDP-Lite (136) start with the two ports, as UDP does.
        proto::TCP | proto::UDP | proto::SCTP | 136 if l4.len() >= 4 => {
            let u = UdpPacket::new_unchecked(l4);
            (u.src_port(), u.dst_port(), true)
        }
        proto::ICMP | proto::ICMPV6 if l4.len() >= 2 => {
            let m = IcmpPacket::new_unchecked(l4);
            (u16::from(m.msg_type()), u16::from(m.code()), true)
        }
        _ => (0, 0, false),
    }
}

impl FlowKey {
    /// Extracts the flow key from an IP packet (starting at the IP header).
    pub fn from_ip(pkt: &[u8]) -> Result<FlowKey, WireError> {
        match pkt.first().map(|b| b >> 4) {
            Some(4) => {
                let ip = Ipv4Packet::new_checked(pkt)?;
                let (sport, dport, has_ports) =
                    ports_of(ip.protocol(), ip.payload(), ip.frag_offset() == 0);
                Ok(FlowKey {
                    v6: false,
                    src: u32::from(ip.src()).into(),
                    dst: u32::from(ip.dst()).into(),
                    proto: ip.protocol(),
                    sport,
                    dport,
                    has_ports,
                })
            }
            Some(6) => {
                let ip = Ipv6Packet::new_checked(pkt)?;
                let ul = ip.upper_layer()?;
                let l4 = &pkt[ul.offset..ip.total_len()];
                let (sport, dport, has_ports) = ports_of(ul.proto, l4, !ul.later_fragment);
                Ok(FlowKey {
                    v6: true,
                    src: u128::from(ip.src()),
                    dst: u128::from(ip.dst()),
                    proto: ul.proto,
                    sport,
                    dport,
                    has_ports,
                })
            }
            Some(v) => Err(crate::wire::malformed("ip", "version", v.into())),
            None => Err(crate::wire::truncated("ip", 1, 0)),
        }
    }

    /// The source address as an `IpAddr`.
    pub fn src_addr(&self) -> IpAddr {
        addr(self.v6, self.src)
    }
    /// The destination address as an `IpAddr`.
    pub fn dst_addr(&self) -> IpAddr {
        addr(self.v6, self.dst)
    }
}

fn addr(v6: bool, a: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(a.into())
    } else {
        IpAddr::V4((a as u32).into())
    }
}

/// A prefix as (network, mask) over u128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub v6: bool,
    pub net: u128,
    pub mask: u128,
    pub len: u8,
}

impl Prefix {
    pub fn from_net(n: &IpNet) -> Prefix {
        match n {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let mask = if len == 0 {
                    0
                } else {
                    u128::from(u32::MAX << (32 - len))
                };
                Prefix {
                    v6: false,
                    net: u128::from(u32::from(n.network())) & mask,
                    mask,
                    len,
                }
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                Prefix {
                    v6: true,
                    net: u128::from(n.network()) & mask,
                    mask,
                    len,
                }
            }
        }
    }
    #[inline(always)]
    pub fn contains(&self, v6: bool, a: u128) -> bool {
        self.v6 == v6 && a & self.mask == self.net
    }
}

/// A traffic selector compiled for matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompiledSelector {
    pub(crate) local: Prefix,
    pub(crate) remote: Prefix,
    pub(crate) proto: u8,
    pub(crate) local_ports: PortRange,
    pub(crate) remote_ports: PortRange,
}

#[inline(always)]
fn port_ok(r: PortRange, has: bool, p: u16) -> bool {
    (r.start == 0 && r.end == u16::MAX) || (has && r.start <= p && p <= r.end)
}

impl CompiledSelector {
    /// Compiles a selector.
    pub fn new(ts: &TrafficSelector) -> Self {
        CompiledSelector {
            local: Prefix::from_net(&ts.local),
            remote: Prefix::from_net(&ts.remote),
            proto: ts.proto,
            local_ports: ts.local_ports,
            remote_ports: ts.remote_ports,
        }
    }

    /// Outbound match: source on our side, destination behind the peer.
    #[inline]
    pub fn matches_outbound(&self, k: &FlowKey) -> bool {
        self.local.contains(k.v6, k.src)
            && self.remote.contains(k.v6, k.dst)
            && (self.proto == 0 || self.proto == k.proto)
            && port_ok(self.local_ports, k.has_ports, k.sport)
            && port_ok(self.remote_ports, k.has_ports, k.dport)
    }

    /// Inbound match (after decap): source behind the peer, destination on our side.
    #[inline]
    pub fn matches_inbound(&self, k: &FlowKey) -> bool {
        self.remote.contains(k.v6, k.src)
            && self.local.contains(k.v6, k.dst)
            && (self.proto == 0 || self.proto == k.proto)
            && port_ok(self.remote_ports, k.has_ports, k.sport)
            && port_ok(self.local_ports, k.has_ports, k.dport)
    }

    /// Specificity used to order policies of equal priority (longer prefixes,
    /// a protocol and port ranges first).
    pub fn specificity(&self) -> u32 {
        let ports = |r: PortRange| u32::from(!(r.start == 0 && r.end == u16::MAX));
        u32::from(self.local.len)
            + u32::from(self.remote.len)
            + 8 * u32::from(self.proto != 0)
            + 4 * (ports(self.local_ports) + ports(self.remote_ports))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(local: &str, remote: &str, proto: u8, rp: PortRange) -> TrafficSelector {
        TrafficSelector {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            proto,
            local_ports: PortRange::ANY,
            remote_ports: rp,
        }
    }

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut b = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        b.extend_from_slice(&src);
        b.extend_from_slice(&dst);
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&[0, 8, 0, 0]);
        b
    }

    #[test]
    fn flow_key_and_matching() {
        let p = udp4([10, 1, 0, 5], [10, 2, 0, 9], 1234, 53);
        let k = FlowKey::from_ip(&p).unwrap();
        assert_eq!(
            (k.proto, k.sport, k.dport, k.has_ports),
            (17, 1234, 53, true)
        );
        let s = CompiledSelector::new(&ts(
            "10.1.0.0/24",
            "10.2.0.0/16",
            17,
            PortRange { start: 53, end: 53 },
        ));
        assert!(s.matches_outbound(&k));
        assert!(!s.matches_inbound(&k));
        let s2 = CompiledSelector::new(&ts("10.1.0.0/24", "10.2.0.0/16", 6, PortRange::ANY));
        assert!(!s2.matches_outbound(&k));
        let any = CompiledSelector::new(&ts("0.0.0.0/0", "0.0.0.0/0", 0, PortRange::ANY));
        assert!(any.matches_outbound(&k) && any.matches_inbound(&k));
        let v6any = CompiledSelector::new(&ts("::/0", "::/0", 0, PortRange::ANY));
        assert!(!v6any.matches_outbound(&k));
        assert!(s.specificity() > any.specificity());
    }

    #[test]
    fn fragments_have_no_ports() {
        let mut p = udp4([10, 1, 0, 5], [10, 2, 0, 9], 1234, 53);
        p[6] = 0x00;
        p[7] = 0x10; // offset 16 * 8
        let k = FlowKey::from_ip(&p).unwrap();
        assert!(!k.has_ports);
        let s = CompiledSelector::new(&ts(
            "10.1.0.0/24",
            "10.2.0.0/16",
            17,
            PortRange { start: 53, end: 53 },
        ));
        assert!(!s.matches_outbound(&k));
    }
}
