//! ID payloads: identities and the selectors of quick mode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::*;
use super::codes::*;
use crate::ike::error::ParseError;
use crate::ike::wire::TsEntry;

/// An identification payload (phase 1 identity or quick-mode client ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdView<'a> {
    /// Body after the generic header: type, protocol, port, data (IDii_b).
    pub body: &'a [u8],
}

impl<'a> IdView<'a> {
    /// Checks the minimum length.
    pub fn parse(body: &'a [u8]) -> Result<Self, ParseError> {
        need("ID payload", body, 4)?;
        Ok(IdView { body })
    }
    /// ID type.
    pub fn id_type(&self) -> u8 {
        self.body[0]
    }
    /// Protocol ID (0 = any).
    pub fn protocol(&self) -> u8 {
        self.body[1]
    }
    /// Port (0 = any).
    pub fn port(&self) -> u16 {
        be16(self.body, 2)
    }
    /// Identification data.
    pub fn data(&self) -> &'a [u8] {
        &self.body[4..]
    }

    /// The phase 1 identity (None for types we do not handle: ranges,
    /// subnets, ID_DER_ASN1_GN).
    pub fn identity(&self) -> Option<crate::ike::Identity> {
        crate::ike::Identity::from_payload(self.id_type(), self.data())
    }

    /// The quick-mode client ID as a traffic selector.
    pub fn ts(&self) -> Result<TsEntry, ParseError> {
        let d = self.data();
        let v4 = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
        let v6 = |b: &[u8]| {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[..16]);
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let (start, end) = match self.id_type() {
            id_type::IPV4_ADDR => {
                if d.len() != 4 {
                    return Err(bad("ID_IPV4_ADDR length", d.len() as u64));
                }
                (v4(d), v4(d))
            }
            id_type::IPV6_ADDR => {
                if d.len() != 16 {
                    return Err(bad("ID_IPV6_ADDR length", d.len() as u64));
                }
                (v6(d), v6(d))
            }
            id_type::IPV4_ADDR_SUBNET => {
                if d.len() != 8 {
                    return Err(bad("ID_IPV4_ADDR_SUBNET length", d.len() as u64));
                }
                let a = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
                let m = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(bad("ID_IPV4_ADDR_SUBNET mask", u64::from(m)));
                }
                (
                    IpAddr::V4(Ipv4Addr::from(a & m)),
                    IpAddr::V4(Ipv4Addr::from((a & m) | !m)),
                )
            }
            id_type::IPV6_ADDR_SUBNET => {
                if d.len() != 32 {
                    return Err(bad("ID_IPV6_ADDR_SUBNET length", d.len() as u64));
                }
                let a = u128::from_be_bytes(d[..16].try_into().unwrap_or([0; 16]));
                let m = u128::from_be_bytes(d[16..].try_into().unwrap_or([0; 16]));
                if m.leading_ones() + m.trailing_zeros() != 128 {
                    return Err(bad("ID_IPV6_ADDR_SUBNET mask", 0));
                }
                (
                    IpAddr::V6(Ipv6Addr::from(a & m)),
                    IpAddr::V6(Ipv6Addr::from((a & m) | !m)),
                )
            }
            id_type::IPV4_ADDR_RANGE => {
                if d.len() != 8 {
                    return Err(bad("ID_IPV4_ADDR_RANGE length", d.len() as u64));
                }
                (v4(d), v4(&d[4..]))
            }
            id_type::IPV6_ADDR_RANGE => {
                if d.len() != 32 {
                    return Err(bad("ID_IPV6_ADDR_RANGE length", d.len() as u64));
                }
                (v6(d), v6(&d[16..]))
            }
            t => return Err(bad("quick-mode ID type", u64::from(t))),
        };
        let port = self.port();
        let t = TsEntry {
            proto: self.protocol(),
            start_port: if port == 0 { 0 } else { port },
            end_port: if port == 0 { 65535 } else { port },
            start,
            end,
        };
        if !crate::ike::ts::valid(&t) {
            return Err(bad("ID address range", 0));
        }
        Ok(t)
    }
}

/// The ID payload body of an identity: type, protocol 0, port 0, data.
pub fn identity_body(id: &crate::ike::Identity) -> Vec<u8> {
    use crate::ike::Identity;
    let (t, d): (u8, Vec<u8>) = match id {
        Identity::Ipv4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
        Identity::Ipv6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
        Identity::Fqdn(s) => (id_type::FQDN, s.as_bytes().to_vec()),
        Identity::Email(s) => (id_type::USER_FQDN, s.as_bytes().to_vec()),
        Identity::KeyId(k) => (id_type::KEY_ID, k.clone()),
        Identity::Dn(d) => (id_type::DER_ASN1_DN, d.clone()),
    };
    let mut b = vec![t, 0, 0, 0];
    b.extend_from_slice(&d);
    b
}

/// The quick-mode ID body of a selector: an address for a single host,
/// a subnet when the range is a prefix, a range otherwise.
pub fn ts_body(t: &TsEntry) -> Vec<u8> {
    let port = if t.start_port == t.end_port {
        t.start_port
    } else {
        0
    };
    let mut b = Vec::with_capacity(36);
    let nets = crate::ike::ts::range_to_nets(t);
    match (t.start, t.end) {
        (IpAddr::V4(s), IpAddr::V4(e)) if s == e => {
            b.extend_from_slice(&[id_type::IPV4_ADDR, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&s.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(e)) if s == e => {
            b.extend_from_slice(&[id_type::IPV6_ADDR, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&s.octets());
        }
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            if let [ipnet::IpNet::V4(n)] = nets.as_slice() {
                b.extend_from_slice(&[id_type::IPV4_ADDR_SUBNET, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&n.network().octets());
                b.extend_from_slice(&n.netmask().octets());
            } else {
                b.extend_from_slice(&[id_type::IPV4_ADDR_RANGE, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&e.octets());
            }
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            if let [ipnet::IpNet::V6(n)] = nets.as_slice() {
                b.extend_from_slice(&[id_type::IPV6_ADDR_SUBNET, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&n.network().octets());
                b.extend_from_slice(&n.netmask().octets());
            } else {
                b.extend_from_slice(&[id_type::IPV6_ADDR_RANGE, t.proto]);
                b.extend_from_slice(&port.to_be_bytes());
                b.extend_from_slice(&s.octets());
                b.extend_from_slice(&e.octets());
            }
        }
        // mixed families never come out of ts::valid selectors; encode the start host
        (s, _) => {
            let (ty, o) = match s {
                IpAddr::V4(a) => (id_type::IPV4_ADDR, a.octets().to_vec()),
                IpAddr::V6(a) => (id_type::IPV6_ADDR, a.octets().to_vec()),
            };
            b.extend_from_slice(&[ty, t.proto]);
            b.extend_from_slice(&port.to_be_bytes());
            b.extend_from_slice(&o);
        }
    }
    b
}
