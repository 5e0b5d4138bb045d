//! Forwarding information: routes (longest-prefix match), neighbours, links
//! and local addresses, as read from the kernel of the gateway's namespace.
//!
//! A [`Fib`] is an immutable snapshot. The netlink thread builds a new one on
//! every batch of kernel changes and publishes it through [`FibHandle`]
//! (`arc-swap`); workers load the current snapshot once per burst, lock-free.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// A small, fast hasher for fixed-size keys (addresses, indices). Not
/// DoS-resistant; the keys come from the kernel's tables, not from packets'
/// choices alone (a lookup miss costs one probe per prefix length).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

/// Hash map with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// What a route does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Forward through `oif`, to `gateway` or directly to the destination.
    Unicast,
    /// Drop silently (blackhole).
    Blackhole,
    /// Drop; unreachable/prohibit (an ICMP unreachable would be due).
    Unreachable,
}

/// A route's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Route type.
    pub kind: RouteKind,
    /// Output interface index.
    pub oif: u32,
    /// Next-hop gateway; None: the destination is on the link.
    pub gateway: Option<IpAddr>,
    /// Route MTU (0: the interface's).
    pub mtu: u32,
}

/// A longest-prefix-match table: one hash map per prefix length in use,
/// probed from the longest length down.
#[derive(Clone, Debug, Default)]
pub struct Lpm<K> {
    /// (prefix length, masked prefix -> route), longest first.
    levels: Vec<(u8, FastMap<K, Route>)>,
}

/// Address widths usable as LPM keys.
pub trait LpmKey: Copy + Eq + std::hash::Hash {
    /// Bits in the address.
    const BITS: u8;
    /// The address with only the first `len` bits kept.
    fn mask(self, len: u8) -> Self;
}

impl LpmKey for u32 {
    const BITS: u8 = 32;
    #[inline]
    fn mask(self, len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - len as u32))
        }
    }
}

impl LpmKey for u128 {
    const BITS: u8 = 128;
    #[inline]
    fn mask(self, len: u8) -> u128 {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - len as u32))
        }
    }
}

impl<K: LpmKey> Lpm<K> {
    /// Adds (or replaces) a route for `prefix/len`.
    pub fn insert(&mut self, prefix: K, len: u8, route: Route) {
        let len = len.min(K::BITS);
        let key = prefix.mask(len);
        match self.levels.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(i) => {
                self.levels[i].1.insert(key, route);
            }
            Err(i) => {
                let mut m = FastMap::default();
                m.insert(key, route);
                self.levels.insert(i, (len, m));
            }
        }
    }

    /// The route of the longest prefix containing `addr`.
    #[inline]
    pub fn lookup(&self, addr: K) -> Option<&Route> {
        for (len, m) in &self.levels {
            if let Some(r) = m.get(&addr.mask(*len)) {
                return Some(r);
            }
        }
        None
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.levels.iter().map(|(_, m)| m.len()).sum()
    }

    /// True if the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An interface as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// MAC address (zero for non-Ethernet links).
    pub mac: [u8; 6],
    /// MTU.
    pub mtu: u32,
    /// IPv4 addresses on the interface (first is the primary).
    pub addrs4: Vec<Ipv4Addr>,
    /// IPv6 addresses (global ones first).
    pub addrs6: Vec<Ipv6Addr>,
}

/// A neighbour entry as the workers use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    /// Link-layer address.
    pub mac: [u8; 6],
    /// Not confirmed lately (the kernel's NUD_STALE, or an entry the kernel
    /// dropped or is resolving again, kept by [`super::netlink`] for a
    /// grace period): still used, as Linux uses a STALE entry, but the
    /// worker asks for it to be resolved again.
    pub stale: bool,
}

/// One snapshot of the kernel's forwarding state.
#[derive(Clone, Debug, Default)]
pub struct Fib {
    /// IPv4 routes (main table).
    pub v4: Lpm<u32>,
    /// IPv6 routes (main table).
    pub v6: Lpm<u128>,
    /// Usable neighbour entries: (ifindex, address) -> MAC, stale or not.
    pub neigh: FastMap<(u32, IpAddr), Neighbour>,
    /// Links by index.
    pub links: FastMap<u32, Link>,
    /// Addresses of the gateway itself (local table).
    pub local: HashSet<IpAddr, BuildHasherDefault<FastHasher>>,
    /// Generation number (increases with every snapshot).
    pub generation: u64,
}

impl Fib {
    /// The route for `dst`.
    #[inline]
    pub fn route(&self, dst: IpAddr) -> Option<&Route> {
        match dst {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    /// Neighbour `addr` on `oif`, if its link-layer address is known.
    #[inline]
    pub fn neighbour(&self, oif: u32, addr: IpAddr) -> Option<Neighbour> {
        self.neigh.get(&(oif, addr)).copied()
    }

    /// True if `addr` belongs to the gateway.
    #[inline]
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.local.contains(&addr)
    }

    /// The MTU toward `dst` through route `r` (route MTU, else link MTU).
    #[inline]
    pub fn mtu(&self, r: &Route) -> u32 {
        if r.mtu != 0 {
            r.mtu
        } else {
            self.links.get(&r.oif).map(|l| l.mtu).unwrap_or(1500)
        }
    }

    /// A source address of the gateway for packets it originates toward
    /// `dst` (ICMP errors): the primary address of the output interface of
    /// the route to `dst`, else of `fallback_if`.
    pub fn source_for(&self, dst: IpAddr, fallback_if: u32) -> Option<IpAddr> {
        let oif = self.route(dst).map(|r| r.oif).unwrap_or(fallback_if);
        let pick = |ifx: u32| {
            let l = self.links.get(&ifx)?;
            match dst {
                IpAddr::V4(_) => l.addrs4.first().map(|a| IpAddr::V4(*a)),
                IpAddr::V6(_) => l.addrs6.first().map(|a| IpAddr::V6(*a)),
            }
        };
        pick(oif).or_else(|| pick(fallback_if))
    }
}

/// The published snapshot, shared by the netlink thread and the workers.
#[derive(Clone)]
pub struct FibHandle(Arc<ArcSwap<Fib>>);

impl FibHandle {
    /// A handle holding `fib`.
    pub fn new(fib: Fib) -> Self {
        FibHandle(Arc::new(ArcSwap::from_pointee(fib)))
    }
    /// The current snapshot (lock-free; hold it for one burst).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Fib>> {
        self.0.load()
    }
    /// The current snapshot as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Fib> {
        self.0.load_full()
    }
    /// Publishes a new snapshot.
    pub fn store(&self, fib: Fib) {
        self.0.store(Arc::new(fib));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(oif: u32) -> Route {
        Route {
            kind: RouteKind::Unicast,
            oif,
            gateway: None,
            mtu: 0,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = Lpm::<u32>::default();
        t.insert(0, 0, r(1));
        t.insert(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 8, r(2));
        t.insert(u32::from(Ipv4Addr::new(10, 1, 0, 0)), 16, r(3));
        t.insert(u32::from(Ipv4Addr::new(10, 1, 2, 3)), 32, r(4));
        let get = |a: Ipv4Addr| t.lookup(u32::from(a)).unwrap().oif;
        assert_eq!(get(Ipv4Addr::new(192, 168, 0, 1)), 1);
        assert_eq!(get(Ipv4Addr::new(10, 9, 0, 1)), 2);
        assert_eq!(get(Ipv4Addr::new(10, 1, 9, 1)), 3);
        assert_eq!(get(Ipv4Addr::new(10, 1, 2, 3)), 4);
        assert_eq!(get(Ipv4Addr::new(10, 1, 2, 4)), 3);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn no_default_route_misses() {
        let mut t = Lpm::<u128>::default();
        let p: Ipv6Addr = "2001:db8::".parse().unwrap();
        t.insert(u128::from(p), 32, r(7));
        let hit: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let miss: Ipv6Addr = "2001:db9::1".parse().unwrap();
        assert_eq!(t.lookup(u128::from(hit)).unwrap().oif, 7);
        assert!(t.lookup(u128::from(miss)).is_none());
        // Host bits in the inserted prefix are ignored.
        t.insert(u128::from(hit), 32, r(8));
        assert_eq!(t.lookup(u128::from(hit)).unwrap().oif, 8);
        assert_eq!(t.len(), 1);
    }
}
