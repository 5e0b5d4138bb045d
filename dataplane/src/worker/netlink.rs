//! Follows the kernel's routes, neighbours, links and addresses over rtnetlink
//! and publishes [`Fib`] snapshots. Runs on its own (non-worker) thread.
//!
//! The thread subscribes to the link, address, route and neighbour multicast
//! groups, then dumps the four tables into a snapshot. Every batch of change
//! notifications (RTM_NEWROUTE, RTM_NEWNEIGH, ...) triggers a fresh dump and a
//! new snapshot: simple and always consistent, and cheap for gateway-sized
//! tables. Workers ask for neighbour resolution (next hop without an entry,
//! or with a stale one) through a bounded channel; the thread asks the kernel
//! to resolve with an `RTM_NEWNEIGH` carrying `NTF_USE` (for a STALE entry
//! the kernel then goes through DELAY and PROBE as if it had sent a packet),
//! and the kernel's answer (ARP/ND) comes back as a neighbour notification.
//! An entry the kernel drops (its garbage collector, `ip neigh flush`) or
//! starts resolving again is kept in the snapshots, stale, for
//! [`STALE_GRACE`] or until the kernel marks it FAILED ([`carry_stale`]):
//! the dataplane sends no packet of its own through the kernel, so the
//! kernel never sees its entries in use and expires them.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::fib::{Fib, FibHandle, Link, Neighbour, Route, RouteKind};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;

/// A request from a worker: resolve `addr` on interface `ifindex`.
pub type ResolveRequest = (u32, IpAddr);

/// Sender side for workers: never blocks, drops requests when full.
#[derive(Clone)]
pub struct Resolver(SyncSender<ResolveRequest>);

impl Resolver {
    /// Wraps a channel sender.
    pub fn new(tx: SyncSender<ResolveRequest>) -> Self {
        Resolver(tx)
    }
    /// Asks for resolution of `addr` on `ifindex` (best effort).
    #[inline]
    pub fn request(&self, ifindex: u32, addr: IpAddr) {
        match self.0.try_send((ifindex, addr)) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn nl_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A request/response netlink socket.
struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Conn {
    fn new() -> io::Result<Conn> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_non_blocking(false)?;
        Ok(Conn {
            sock,
            seq: 1,
            buf: vec![0; 1 << 16],
        })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        let mut nl = NetlinkMessage::from(msg);
        self.seq = self.seq.wrapping_add(1);
        nl.header.flags = flags;
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Reads the kernel's answers to request `seq` and hands each to `each`
    /// until it returns a result.
    fn replies<T>(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> Option<io::Result<T>>,
    ) -> io::Result<T> {
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(nl_err)?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(nl_err("netlink message of length 0"));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != seq {
                    continue;
                }
                if let Some(r) = each(m) {
                    return r;
                }
            }
        }
    }

    /// Sends a dump request and collects the answers. A dump the kernel
    /// marks interrupted (the table changed meanwhile, NLM_F_DUMP_INTR) is
    /// an `Interrupted` error: it may lack entries.
    fn dump(&mut self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        let mut intr = false;
        self.replies(seq, |m| {
            intr |= m.header.flags & NLM_F_DUMP_INTR != 0;
            match m.payload {
                NetlinkPayload::Done(_) if intr => Some(Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "netlink dump interrupted by a change",
                ))),
                NetlinkPayload::Done(_) => Some(Ok(std::mem::take(&mut out))),
                NetlinkPayload::Error(e) => Some(match e.code {
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                    None => Ok(std::mem::take(&mut out)),
                }),
                NetlinkPayload::InnerMessage(inner) => {
                    out.push(inner);
                    None
                }
                _ => None,
            }
        })
    }

    /// Sends a request for one object; `None` when the kernel has none
    /// (ENOENT).
    fn get(&mut self, msg: RouteNetlinkMessage) -> io::Result<Option<RouteNetlinkMessage>> {
        let seq = self.send(msg, NLM_F_REQUEST)?;
        self.replies(seq, |m| match m.payload {
            NetlinkPayload::InnerMessage(inner) => Some(Ok(Some(inner))),
            NetlinkPayload::Error(e) => Some(match e.code {
                Some(code) if -code.get() == libc::ENOENT => Ok(None),
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                None => Ok(None),
            }),
            _ => None,
        })
    }

    /// Sends a request that expects an acknowledgement.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK | flags)?;
        self.replies(seq, |m| match m.payload {
            NetlinkPayload::Error(e) => Some(match e.code {
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                None => Ok(()),
            }),
            _ => None,
        })
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// Reads the kernel's tables into a new snapshot.
/// [`build_once`], again while the kernel reports a dump interrupted by a
/// concurrent change (such a snapshot can miss entries, e.g. a neighbour
/// added while the tables were read).
/// Also returns the neighbour entries the kernel marks FAILED.
fn build(conn: &mut Conn, generation: u64) -> io::Result<(Fib, HashSet<(u32, IpAddr)>)> {
    let mut tries = 0;
    loop {
        match build_once(conn, generation) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 10 => tries += 1,
            r => return r,
        }
    }
}

fn build_once(conn: &mut Conn, generation: u64) -> io::Result<(Fib, HashSet<(u32, IpAddr)>)> {
    let mut failed_neigh = HashSet::new();
    let mut fib = Fib {
        generation,
        ..Default::default()
    };
    dump_links(conn, &mut fib)?;
    dump_addresses(conn, &mut fib)?;
    dump_routes(conn, &mut fib)?;
    dump_neighbours(conn, &mut fib, &mut failed_neigh)?;
    Ok((fib, failed_neigh))
}

/// The interfaces: index, name, MAC address, MTU.
fn dump_links(conn: &mut Conn, fib: &mut Fib) -> io::Result<()> {
    for m in conn.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
        if let RouteNetlinkMessage::NewLink(l) = m {
            let mut link = Link {
                ifindex: l.header.index,
                name: String::new(),
                mac: [0; 6],
                mtu: 1500,
                addrs4: Vec::new(),
                addrs6: Vec::new(),
            };
            for a in &l.attributes {
                match a {
                    LinkAttribute::IfName(n) => link.name = n.clone(),
                    LinkAttribute::Mtu(m) => link.mtu = *m,
                    LinkAttribute::Address(mac) if mac.len() == 6 => link.mac.copy_from_slice(mac),
                    _ => {}
                }
            }
            fib.links.insert(link.ifindex, link);
        }
    }
    Ok(())
}

/// The interfaces' addresses (IPv6: global ones first) and the local set.
fn dump_addresses(conn: &mut Conn, fib: &mut Fib) -> io::Result<()> {
    for m in conn.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            let mut addr = None;
            for at in &a.attributes {
                match at {
                    AddressAttribute::Local(ip) => addr = Some(*ip),
                    AddressAttribute::Address(ip) if addr.is_none() => addr = Some(*ip),
                    _ => {}
                }
            }
            if let (Some(ip), Some(link)) = (addr, fib.links.get_mut(&a.header.index)) {
                match ip {
                    IpAddr::V4(v) => link.addrs4.push(v),
                    IpAddr::V6(v) => {
                        // Global addresses first: ICMP errors should come from one.
                        if v.segments()[0] & 0xffc0 == 0xfe80 {
                            link.addrs6.push(v)
                        } else {
                            link.addrs6.insert(0, v)
                        }
                    }
                }
                fib.local.insert(ip);
            }
        }
    }
    Ok(())
}

/// The main table's routes (unicast, blackhole, unreachable) and the local
/// table's host addresses.
fn dump_routes(conn: &mut Conn, fib: &mut Fib) -> io::Result<()> {
    for m in conn.dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()))? {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        let mut table = r.header.table as u32;
        let mut dst = None;
        let mut gw = None;
        let mut oif = 0;
        let mut mtu = 0;
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(d) => dst = route_addr(d),
                RouteAttribute::Gateway(g) => gw = route_addr(g),
                RouteAttribute::Oif(o) => oif = *o,
                RouteAttribute::Metrics(ms) => {
                    for m in ms {
                        if let RouteMetric::Mtu(v) = m {
                            mtu = *v;
                        }
                    }
                }
                _ => {}
            }
        }
        let len = r.header.destination_prefix_length;
        let dst = dst.unwrap_or(match r.header.address_family {
            AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        });
        if table == RT_TABLE_LOCAL {
            if r.header.kind == RouteType::Local && len == if dst.is_ipv4() { 32 } else { 128 } {
                fib.local.insert(dst);
            }
            continue;
        }
        if table != RT_TABLE_MAIN {
            continue;
        }
        let kind = match r.header.kind {
            RouteType::Unicast => RouteKind::Unicast,
            RouteType::BlackHole => RouteKind::Blackhole,
            RouteType::Unreachable | RouteType::Prohibit => RouteKind::Unreachable,
            _ => continue,
        };
        let route = Route {
            kind,
            oif,
            gateway: gw,
            mtu,
        };
        match dst {
            IpAddr::V4(a) => fib.v4.insert(u32::from(a), len, route),
            IpAddr::V6(a) => {
                // Skip link-local and multicast routes: not forwarded.
                let s = a.segments()[0];
                if s & 0xffc0 == 0xfe80 || s & 0xff00 == 0xff00 {
                    continue;
                }
                fib.v6.insert(u128::from(a), len, route)
            }
        }
    }
    Ok(())
}

/// The usable neighbours (with their MAC address) and the failed ones.
fn dump_neighbours(
    conn: &mut Conn,
    fib: &mut Fib,
    failed_neigh: &mut HashSet<(u32, IpAddr)>,
) -> io::Result<()> {
    for m in conn.dump(RouteNetlinkMessage::GetNeighbour(
        NeighbourMessage::default(),
    ))? {
        let RouteNetlinkMessage::NewNeighbour(n) = m else {
            continue;
        };
        let state = n.header.state;
        let usable = matches!(
            state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        let failed = state == NeighbourState::Failed;
        if !usable && !failed {
            continue;
        }
        let mut ip = None;
        let mut mac = None;
        for a in &n.attributes {
            match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                    ip = Some(IpAddr::V4(*v))
                }
                NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                    ip = Some(IpAddr::V6(*v))
                }
                NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(l);
                    mac = Some(m);
                }
                _ => {}
            }
        }
        match (ip, mac) {
            (Some(ip), _) if failed => {
                failed_neigh.insert((n.header.ifindex, ip));
            }
            (Some(ip), Some(mac)) => {
                let stale = state == NeighbourState::Stale;
                fib.neigh
                    .insert((n.header.ifindex, ip), Neighbour { mac, stale });
            }
            _ => {}
        }
    }
    Ok(())
}

/// How long an entry the kernel stopped listing (deleted by its garbage
/// collector or `ip neigh flush`, or being resolved again: INCOMPLETE) is
/// still used, as stale, while the kernel resolves it again. An entry the
/// kernel marks FAILED (no answer to its probes) is forgotten at once.
pub const STALE_GRACE: Duration = Duration::from_secs(10);

/// Carries the entries of `prev` that `next` (just read from the kernel)
/// lacks into `next`, marked stale, for [`STALE_GRACE`] after they went
/// missing (`missing`: when each went missing; updated), unless the kernel
/// reports them FAILED (`failed`) or their interface is gone. Linux keeps
/// sending to a STALE neighbour while it probes it; a gateway that dropped
/// packets whenever the kernel's entry expired would lose traffic at every
/// re-resolution.
pub fn carry_stale(
    prev: &Fib,
    next: &mut Fib,
    failed: &HashSet<(u32, IpAddr)>,
    missing: &mut HashMap<(u32, IpAddr), Instant>,
    now: Instant,
) {
    let mut carried = Vec::new();
    for (k, n) in &prev.neigh {
        if next.neigh.contains_key(k) || failed.contains(k) || !next.links.contains_key(&k.0) {
            continue;
        }
        let since = *missing.entry(*k).or_insert(now);
        if now.duration_since(since) < STALE_GRACE {
            carried.push((*k, n.mac));
        }
    }
    missing.retain(|k, _| carried.iter().any(|(c, _)| c == k));
    for (k, mac) in carried {
        next.neigh.insert(k, Neighbour { mac, stale: true });
    }
}

/// What [`resolve`] did for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The kernel was asked to resolve (`NTF_USE`).
    Asked,
    /// The kernel already has a usable entry that needs no probe (static,
    /// NOARP or REACHABLE): nothing was sent; the snapshot is behind and
    /// should be read again.
    Known,
}

/// Whether asking the kernel to resolve (`NTF_USE`) an entry in `state`
/// (`None`: no entry) is right. Never for a PERMANENT or NOARP entry:
/// since Linux 5.16 `NTF_USE` turns a PERMANENT entry into a dynamic one
/// (`__neigh_update` with `NEIGH_UPDATE_F_USE` clears `NUD_PERMANENT`), so
/// the operator's static entry would be replaced by an ARP/ND probe that
/// may never be answered. Not for a REACHABLE one either (nothing to do).
pub fn needs_probe(state: Option<NeighbourState>) -> bool {
    !matches!(
        state,
        Some(NeighbourState::Permanent | NeighbourState::Noarp | NeighbourState::Reachable)
    )
}

fn neighbour_msg(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.ifindex = ifindex;
    m.attributes
        .push(NeighbourAttribute::Destination(match addr {
            IpAddr::V4(a) => NeighbourAddress::Inet(a),
            IpAddr::V6(a) => NeighbourAddress::Inet6(a),
        }));
    m
}

/// Asks the kernel to resolve `addr` on `ifindex` (`NTF_USE`: the kernel
/// starts ARP/ND for the entry as if it had a packet to send), unless its
/// current entry needs no probe ([`needs_probe`]).
fn resolve(conn: &mut Conn, ifindex: u32, addr: IpAddr) -> io::Result<Resolution> {
    let state = match conn.get(RouteNetlinkMessage::GetNeighbour(neighbour_msg(
        ifindex, addr,
    )))? {
        Some(RouteNetlinkMessage::NewNeighbour(n)) => Some(n.header.state),
        _ => None,
    };
    if !needs_probe(state) {
        return Ok(Resolution::Known);
    }
    let mut m = neighbour_msg(ifindex, addr);
    m.header.state = NeighbourState::None;
    m.header.flags = NeighbourFlags::Use;
    conn.request(RouteNetlinkMessage::NewNeighbour(m), NLM_F_CREATE)?;
    Ok(Resolution::Asked)
}

/// Asks the kernel once, on a socket of its own, to resolve `addr` on
/// `ifindex` as the netlink thread would for a worker (for tools and tests:
/// `examples/neigh_resolve.rs`).
pub fn resolve_once(ifindex: u32, addr: IpAddr) -> io::Result<Resolution> {
    resolve(&mut Conn::new()?, ifindex, addr)
}

/// The netlink thread's state.
pub struct FibSync {
    events: Socket,
    conn: Conn,
    fib: FibHandle,
    generation: u64,
    /// Neighbour entries carried as stale: when each went missing.
    missing: HashMap<(u32, IpAddr), Instant>,
}

impl FibSync {
    /// Subscribes to changes and publishes the first snapshot.
    pub fn new() -> io::Result<FibSync> {
        let mut events = Socket::new(NETLINK_ROUTE)?;
        let groups = RTMGRP_LINK
            | RTMGRP_NEIGH
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        events.bind(&SocketAddr::new(0, groups))?;
        events.set_non_blocking(true)?;
        let _ = events.set_rx_buf_sz(4 << 20);
        let mut conn = Conn::new()?;
        let (fib, _) = build(&mut conn, 1)?;
        Ok(FibSync {
            events,
            conn,
            fib: FibHandle::new(fib),
            generation: 1,
            missing: HashMap::new(),
        })
    }

    /// The handle workers read snapshots from.
    pub fn handle(&self) -> FibHandle {
        self.fib.clone()
    }

    /// Rebuilds and publishes a snapshot now.
    pub fn refresh(&mut self) -> io::Result<()> {
        self.generation += 1;
        let (mut fib, failed) = build(&mut self.conn, self.generation)?;
        let prev = self.fib.load_full();
        carry_stale(&prev, &mut fib, &failed, &mut self.missing, Instant::now());
        self.fib.store(fib);
        Ok(())
    }

    /// Runs until `stop`: follows changes, serves resolution requests.
    pub fn run(mut self, requests: Receiver<ResolveRequest>, stop: Arc<AtomicBool>) {
        let mut buf = vec![0u8; 1 << 16];
        let mut asked: HashMap<ResolveRequest, Instant> = HashMap::new();
        let mut last_refresh = Instant::now();
        let mut asking = false;
        // A request found the kernel's entry usable: the snapshot is behind.
        let mut behind = false;
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.events),
                events: libc::POLLIN,
                revents: 0,
            };
            let _ = crate::io::poll_fd(&mut pfd, 20);
            let mut changed = false;
            loop {
                match self.events.recv(&mut &mut buf[..], 0) {
                    Ok(0) => break,
                    Ok(_) => changed = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        // Lost notifications: a full dump catches up.
                        changed = true;
                    }
                    Err(e) => {
                        tracing::warn!("netlink events: {e}");
                        break;
                    }
                }
            }
            // Workers asking for neighbours while no event came for a while:
            // read the tables again rather than trust the snapshot (a safety
            // net for a missed or inconsistent update; at most once a
            // second, and only while neighbours are missing).
            if changed || behind || (asking && last_refresh.elapsed() >= Duration::from_secs(1)) {
                if let Err(e) = self.refresh() {
                    tracing::warn!("netlink refresh: {e}");
                }
                last_refresh = Instant::now();
                asking = false;
                behind = false;
            }
            let now = Instant::now();
            asked.retain(|_, t| now.duration_since(*t) < Duration::from_millis(200));
            while let Ok(req) = requests.try_recv() {
                asking = true;
                if asked.contains_key(&req) {
                    continue;
                }
                asked.insert(req, now);
                match resolve(&mut self.conn, req.0, req.1) {
                    Ok(Resolution::Asked) => {}
                    // The snapshot is behind the kernel: read it again now.
                    Ok(Resolution::Known) => behind = true,
                    Err(e) => tracing::debug!("resolve {} on if {}: {e}", req.1, req.0),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn fib_with(entries: &[(u32, [u8; 4], u8, bool)]) -> Fib {
        let mut f = Fib::default();
        for ifx in [2, 3] {
            f.links.insert(
                ifx,
                Link {
                    ifindex: ifx,
                    name: format!("if{ifx}"),
                    mac: [0; 6],
                    mtu: 1500,
                    addrs4: Vec::new(),
                    addrs6: Vec::new(),
                },
            );
        }
        for (ifx, a, m, stale) in entries {
            f.neigh.insert(
                (*ifx, IpAddr::V4(Ipv4Addr::from(*a))),
                Neighbour {
                    mac: [2, 0, 0, 0, 0, *m],
                    stale: *stale,
                },
            );
        }
        f
    }

    fn key(ifx: u32, a: [u8; 4]) -> (u32, IpAddr) {
        (ifx, IpAddr::V4(Ipv4Addr::from(a)))
    }

    #[test]
    fn static_and_reachable_entries_are_never_probed() {
        // NTF_USE would turn a PERMANENT entry into a dynamic one (and an
        // unanswered probe into FAILED): never ask for those.
        assert!(!needs_probe(Some(NeighbourState::Permanent)));
        assert!(!needs_probe(Some(NeighbourState::Noarp)));
        assert!(!needs_probe(Some(NeighbourState::Reachable)));
        for s in [
            None,
            Some(NeighbourState::Stale),
            Some(NeighbourState::Delay),
            Some(NeighbourState::Probe),
            Some(NeighbourState::Incomplete),
            Some(NeighbourState::Failed),
            Some(NeighbourState::None),
        ] {
            assert!(needs_probe(s), "{s:?}");
        }
    }

    #[test]
    fn vanished_entry_is_kept_stale_for_the_grace_period() {
        let prev = fib_with(&[(2, [10, 0, 0, 1], 1, false), (2, [10, 0, 0, 2], 2, false)]);
        let t0 = Instant::now();
        let mut missing = HashMap::new();
        // The kernel dropped 10.0.0.1 (flush / gc); 10.0.0.2 is still there.
        let mut next = fib_with(&[(2, [10, 0, 0, 2], 2, false)]);
        carry_stale(&prev, &mut next, &HashSet::new(), &mut missing, t0);
        let n = next.neighbour(2, "10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(n.mac, [2, 0, 0, 0, 0, 1]);
        assert!(n.stale);
        assert!(
            !next
                .neighbour(2, "10.0.0.2".parse().unwrap())
                .unwrap()
                .stale
        );
        // Still missing a little later: still carried, same start.
        let mut later = fib_with(&[(2, [10, 0, 0, 2], 2, false)]);
        carry_stale(
            &next,
            &mut later,
            &HashSet::new(),
            &mut missing,
            t0 + Duration::from_secs(1),
        );
        assert!(
            later
                .neighbour(2, "10.0.0.1".parse().unwrap())
                .unwrap()
                .stale
        );
        assert_eq!(missing.get(&key(2, [10, 0, 0, 1])), Some(&t0));
        // Past the grace period: gone.
        let mut end = fib_with(&[(2, [10, 0, 0, 2], 2, false)]);
        carry_stale(
            &later,
            &mut end,
            &HashSet::new(),
            &mut missing,
            t0 + STALE_GRACE,
        );
        assert!(end.neighbour(2, "10.0.0.1".parse().unwrap()).is_none());
        assert!(missing.is_empty());
    }

    #[test]
    fn resolved_again_replaces_the_stale_entry() {
        let prev = fib_with(&[(2, [10, 0, 0, 1], 1, true)]);
        let mut missing = HashMap::new();
        missing.insert(key(2, [10, 0, 0, 1]), Instant::now());
        // The kernel answers with a new MAC.
        let mut next = fib_with(&[(2, [10, 0, 0, 1], 9, false)]);
        carry_stale(
            &prev,
            &mut next,
            &HashSet::new(),
            &mut missing,
            Instant::now(),
        );
        let n = next.neighbour(2, "10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(n.mac, [2, 0, 0, 0, 0, 9]);
        assert!(!n.stale);
        assert!(missing.is_empty());
    }

    #[test]
    fn failed_entry_or_gone_interface_is_forgotten() {
        let prev = fib_with(&[(2, [10, 0, 0, 1], 1, false), (3, [10, 0, 1, 1], 3, false)]);
        let mut missing = HashMap::new();
        let mut next = fib_with(&[]);
        next.links.remove(&3);
        let failed: HashSet<_> = [key(2, [10, 0, 0, 1])].into_iter().collect();
        carry_stale(&prev, &mut next, &failed, &mut missing, Instant::now());
        assert!(next.neigh.is_empty());
        assert!(missing.is_empty());
    }
}
