//! Traffic selectors: conversion between configured subnets, TS ranges on
//! the wire (RFC 7296 §3.13) and dataplane selectors, and narrowing (§2.9).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use espresso_core::sa::{PortRange, TrafficSelector};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::config::{LocalAddr, RemoteAddr};
use super::wire::TsEntry;
use espresso_core::config::ike::Connection;

fn to_u128(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}
fn from_u128(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    }
}

/// A subnet as a TS range (any protocol, any port).
pub fn from_net(n: &IpNet) -> TsEntry {
    TsEntry {
        proto: 0,
        start_port: 0,
        end_port: 65535,
        start: n.network(),
        end: n.broadcast(),
    }
}

/// Address family of a TS: true for IPv6.
fn is_v6(t: &TsEntry) -> bool {
    matches!(t.start, IpAddr::V6(_))
}

/// Well-formed: same family, start <= end for addresses and ports.
pub fn valid(t: &TsEntry) -> bool {
    let (f1, s) = to_u128(t.start);
    let (f2, e) = to_u128(t.end);
    f1 == f2 && s <= e && t.start_port <= t.end_port
}

/// Intersection of two selectors, if not empty.
pub fn intersect(a: &TsEntry, b: &TsEntry) -> Option<TsEntry> {
    if is_v6(a) != is_v6(b) || !valid(a) || !valid(b) {
        return None;
    }
    let proto = match (a.proto, b.proto) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let sp = a.start_port.max(b.start_port);
    let ep = a.end_port.min(b.end_port);
    if sp > ep {
        return None;
    }
    let v6 = is_v6(a);
    let s = to_u128(a.start).1.max(to_u128(b.start).1);
    let e = to_u128(a.end).1.min(to_u128(b.end).1);
    if s > e {
        return None;
    }
    Some(TsEntry {
        proto,
        start_port: sp,
        end_port: ep,
        start: from_u128(v6, s),
        end: from_u128(v6, e),
    })
}

/// `inner` lies entirely inside `outer`.
pub fn contains(outer: &TsEntry, inner: &TsEntry) -> bool {
    intersect(outer, inner).as_ref() == Some(inner)
}

/// Narrows the peer's proposed selectors to what the configuration allows:
/// every non-empty intersection, with selectors already covered by another
/// dropped (a trap's packet selector inside the subnet it belongs to).
pub fn narrow(proposed: &[TsEntry], configured: &[TsEntry]) -> Vec<TsEntry> {
    let mut out: Vec<TsEntry> = Vec::new();
    for p in proposed {
        for c in configured {
            if let Some(i) = intersect(p, c) {
                out.push(i);
            }
        }
    }
    let mut keep: Vec<TsEntry> = Vec::new();
    for (i, t) in out.iter().enumerate() {
        let covered = out
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && contains(o, t) && (o != t || j < i));
        if !covered {
            keep.push(*t);
        }
    }
    keep
}

/// Every selector of `got` lies inside one of `offered` (the responder did narrow, not widen).
pub fn all_within(got: &[TsEntry], offered: &[TsEntry]) -> bool {
    got.iter().all(|g| offered.iter().any(|o| contains(o, g)))
}

/// Smallest set of prefixes covering exactly the address range of `t`.
pub fn range_to_nets(t: &TsEntry) -> Vec<IpNet> {
    let v6 = is_v6(t);
    let bits: u32 = if v6 { 128 } else { 32 };
    let (_, mut s) = to_u128(t.start);
    let (_, e) = to_u128(t.end);
    let mut out = Vec::new();
    if s > e {
        return out;
    }
    loop {
        // largest block aligned at s that does not pass e
        let mut size: u32 = if s == 0 {
            bits
        } else {
            s.trailing_zeros().min(bits)
        };
        while size > 0 {
            let span = if size >= 128 {
                u128::MAX
            } else {
                (1u128 << size) - 1
            };
            if s.checked_add(span).is_some_and(|end| end <= e) {
                break;
            }
            size -= 1;
        }
        let plen = (bits - size) as u8;
        let addr = from_u128(v6, s);
        let net = match addr {
            IpAddr::V4(a) => Ipv4Net::new(a, plen).map(IpNet::V4),
            IpAddr::V6(a) => Ipv6Net::new(a, plen).map(IpNet::V6),
        };
        if let Ok(n) = net {
            out.push(n);
        }
        let span = if size >= 128 {
            u128::MAX
        } else {
            (1u128 << size) - 1
        };
        match s.checked_add(span) {
            Some(last) if last < e => s = last + 1,
            _ => break,
        }
    }
    out
}

/// Dataplane selectors for a child SA: every local x remote pair, ranges split into prefixes.
pub fn to_selectors(local: &[TsEntry], remote: &[TsEntry]) -> Vec<TrafficSelector> {
    let mut out = Vec::new();
    for l in local {
        for r in remote {
            if is_v6(l) != is_v6(r) {
                continue;
            }
            let proto = match (l.proto, r.proto) {
                (0, p) | (p, 0) => p,
                (p, q) if p == q => p,
                _ => continue,
            };
            for ln in range_to_nets(l) {
                for rn in range_to_nets(r) {
                    out.push(TrafficSelector {
                        local: ln,
                        remote: rn,
                        proto,
                        local_ports: PortRange {
                            start: l.start_port,
                            end: l.end_port,
                        },
                        remote_ports: PortRange {
                            start: r.start_port,
                            end: r.end_port,
                        },
                    });
                }
            }
        }
    }
    out
}

/// Human form for events and status: `10.1.0.0/24`, `10.1.0.5-10.1.0.9[tcp/80]`.
pub fn display(t: &TsEntry) -> String {
    let nets = range_to_nets(t);
    let addr = if nets.len() == 1 {
        nets[0].to_string()
    } else {
        format!("{}-{}", t.start, t.end)
    };
    if t.proto == 0 && t.start_port == 0 && t.end_port == 65535 {
        addr
    } else if t.start_port == t.end_port {
        format!("{addr}[{}/{}]", t.proto, t.start_port)
    } else if t.start_port == 0 && t.end_port == 65535 {
        format!("{addr}[{}]", t.proto)
    } else {
        format!("{addr}[{}/{}-{}]", t.proto, t.start_port, t.end_port)
    }
}

/// The configured selectors of a connection (subnets, or the hosts themselves).
pub fn conn_ts(
    conn: &Connection,
    local_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
) -> (Vec<TsEntry>, Vec<TsEntry>) {
    let host = |a: IpAddr| from_net(&IpNet::from(a));
    let l = if conn.local_ts.is_empty() {
        match (conn.local_addr, local_ip) {
            (LocalAddr::Addr(a), _) | (_, Some(a)) => vec![host(a)],
            _ => vec![],
        }
    } else {
        conn.local_ts.iter().map(from_net).collect()
    };
    let r = if conn.remote_ts.is_empty() {
        match (conn.remote_addr, remote_ip) {
            (RemoteAddr::Addr(a), _) | (_, Some(a)) => vec![host(a)],
            (RemoteAddr::Any, None) => vec![],
        }
    } else {
        conn.remote_ts.iter().map(from_net).collect()
    };
    (l, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> TsEntry {
        from_net(&s.parse().unwrap())
    }

    #[test]
    fn narrowing() {
        let proposed = [net("10.0.0.0/8"), net("192.168.1.7/32")];
        let conf = [
            net("10.1.0.0/24"),
            net("10.2.0.0/24"),
            net("192.168.0.0/16"),
        ];
        let n = narrow(&proposed, &conf);
        assert_eq!(
            n,
            vec![
                net("10.1.0.0/24"),
                net("10.2.0.0/24"),
                net("192.168.1.7/32")
            ]
        );
        // trap packet selector inside the subnet: only the subnet stays
        let proposed = [net("10.1.0.5/32"), net("10.1.0.0/24")];
        assert_eq!(
            narrow(&proposed, &[net("10.1.0.0/24")]),
            vec![net("10.1.0.0/24")]
        );
        assert!(narrow(&[net("172.16.0.0/12")], &conf).is_empty());
        assert!(narrow(&[net("2001:db8::/32")], &conf).is_empty());
        assert!(all_within(&[net("10.1.0.0/24")], &[net("10.0.0.0/8")]));
        assert!(!all_within(&[net("10.0.0.0/8")], &[net("10.1.0.0/24")]));
    }

    #[test]
    fn ports_and_protocols() {
        let mut a = net("10.0.0.0/8");
        a.proto = 6;
        a.start_port = 80;
        a.end_port = 80;
        let b = net("10.1.0.0/16");
        let i = intersect(&a, &b).unwrap();
        assert_eq!((i.proto, i.start_port, i.end_port), (6, 80, 80));
        let mut c = b;
        c.proto = 17;
        assert!(intersect(&a, &c).is_none());
    }

    #[test]
    fn ranges_to_prefixes() {
        let t = TsEntry {
            proto: 0,
            start_port: 0,
            end_port: 65535,
            start: "10.0.0.1".parse().unwrap(),
            end: "10.0.0.6".parse().unwrap(),
        };
        let v: Vec<String> = range_to_nets(&t).iter().map(|n| n.to_string()).collect();
        assert_eq!(
            v,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(range_to_nets(&net("0.0.0.0/0"))[0].to_string(), "0.0.0.0/0");
        assert_eq!(range_to_nets(&net("::/0"))[0].to_string(), "::/0");
        let sel = to_selectors(
            &[net("10.1.0.0/24"), net("10.3.0.0/24")],
            &[net("10.2.0.0/24")],
        );
        assert_eq!(sel.len(), 2);
        assert_eq!(sel[1].local.to_string(), "10.3.0.0/24");
    }
}
