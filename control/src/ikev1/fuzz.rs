//! The fuzz entry points of the IKEv1 parser and engine (`cargo fuzz run
//! ikev1` and `ikev1_engine`, in dataplane/fuzz): built for fuzzing
//! (`cfg(fuzzing)`, set by cargo-fuzz) and for the tests below, not into
//! the daemon.

use super::{proposal, wire, Connection, Engine, ExchangeMode, Output, Settings};

#[cfg(test)]
mod tests;

/// Fuzz entry point for the parser: the bytes as a whole message, and as a
/// payload chain after every first-payload type an exchange can start with;
/// every view (proposals, transforms, attributes, IDs as identities and
/// selectors, notifies, deletes, NAT-OA, certificates) is walked. Never panics.
pub fn parse(data: &[u8]) {
    if let Ok(h) = wire::Header::parse(data) {
        if let Ok(p) = wire::Payloads::parse(&data[wire::HEADER_LEN..], h.next_payload()) {
            walk(&p);
        }
    }
    for first in [
        wire::payload::SA,
        wire::payload::HASH,
        wire::payload::KE,
        wire::payload::ID,
        wire::payload::NOTIFY,
        wire::payload::DELETE,
        wire::payload::VENDOR,
    ] {
        if let Ok(p) = wire::Payloads::parse(data, first) {
            walk(&p);
        }
    }
}

/// Fuzz entry point for the engine. `data[0] < 128`: `data[1..]` is a series
/// of datagrams (each prefixed by a 2-byte length whose top bit selects port
/// 4500) for a responder engine with main- and aggressive-mode
/// connections, with time advancing between them. Otherwise an ISAKMP SA
/// is established in memory and the peer's engine receives `data[2..]` as
/// the payloads of a correctly encrypted and hashed quick-mode
/// (`data[1]` even) or informational message, then more raw datagrams.
/// Never panics; drops are counted.
pub fn engine(data: &[u8]) {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::{Duration, Instant};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let a_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
    let now = Instant::now();
    let mk = |name: &str, l: IpAddr, r: IpAddr, aggr: bool| {
        let mut c = Connection::new(
            name,
            crate::ike::LocalAddr::Addr(l),
            crate::ike::RemoteAddr::Addr(r),
            b"fuzzing-psk-0123456789",
        );
        c.phase1_proposals = proposal::parse_phase1("aes128-sha1-ecp256").unwrap_or_default();
        c.esp_proposals = proposal::parse_phase2("aes128gcm16, aes128-sha1").unwrap_or_default();
        c.pfs = false;
        c.dpd.delay = Duration::from_secs(5);
        if aggr {
            c.exchange = ExchangeMode::Aggressive;
        }
        c
    };
    let feed = |e: &mut Engine, mut d: &[u8], mut t: Instant| {
        while d.len() >= 2 {
            let l = u16::from_be_bytes([d[0], d[1]]);
            let port = if l & 0x8000 != 0 { 4500 } else { 500 };
            let r = &d[2..];
            let take = usize::from(l & 0x7fff).min(r.len());
            let (m, rest) = r.split_at(take);
            if let Some(&b) = m.last() {
                t += Duration::from_millis(u64::from(b) * 100);
            }
            e.handle_datagram(
                m,
                SocketAddr::new(a_ip, port),
                SocketAddr::new(b_ip, port),
                t,
            );
            if e.poll_timeout().is_some_and(|x| x <= t) {
                e.handle_timeout(t);
            }
            while e.poll_output().is_some() {}
            d = rest;
        }
    };
    if mode < 128 {
        let mut b = Engine::with_seed(Settings::default(), 2);
        let _ = b.add_connection(mk("main", b_ip, a_ip, false), now);
        let mut c2 = mk("aggr", b_ip, a_ip, true);
        c2.remote_addr = crate::ike::RemoteAddr::Any;
        let _ = b.add_connection(c2, now);
        feed(&mut b, rest, now);
        return;
    }
    // an established pair
    let mut a = Engine::with_seed(Settings::default(), 1);
    let mut b = Engine::with_seed(Settings::default(), 2);
    if a.add_connection(mk("a", a_ip, b_ip, false), now).is_err()
        || b.add_connection(mk("b", b_ip, a_ip, false), now).is_err()
        || a.initiate("a", now).is_err()
    {
        return;
    }
    for _ in 0..20 {
        let mut moved = false;
        while let Some(o) = a.poll_output() {
            if let Output::Transmit(t) = o {
                moved = true;
                b.handle_datagram(&t.data, t.local, t.remote, now);
            }
        }
        while let Some(o) = b.poll_output() {
            if let Output::Transmit(t) = o {
                moved = true;
                a.handle_datagram(&t.data, t.local, t.remote, now);
            }
        }
        if !moved {
            break;
        }
    }
    let Some((&sel, chain)) = rest.split_first() else {
        return;
    };
    let (chain, more) = chain.split_at(chain.len().min(usize::from(sel) * 4 + 16));
    let exch = if sel % 2 == 0 {
        wire::exchange::QUICK
    } else {
        wire::exchange::INFORMATIONAL
    };
    let first = chain.first().copied().unwrap_or(0) % 22;
    let msg = a.sas.values().next().and_then(|s| {
        s.fuzz_phase2(
            exch,
            0x1000 + u32::from(sel),
            first,
            chain.get(1..).unwrap_or(&[]),
        )
    });
    if let Some(m) = msg {
        let (l, r) = a
            .sas
            .values()
            .next()
            .map(|s| (s.local, s.remote))
            .unwrap_or((SocketAddr::new(a_ip, 500), SocketAddr::new(b_ip, 500)));
        let m = if l.port() == 4500 {
            let mut v = vec![0u8; 4];
            v.extend_from_slice(&m);
            v
        } else {
            m
        };
        b.handle_datagram(&m, l, r, now);
        while b.poll_output().is_some() {}
    }
    feed(&mut b, more, now);
}

fn walk(p: &wire::Payloads<'_>) {
    if let Some(sa) = p.sa {
        if let Ok(props) = sa.proposals() {
            for pr in &props {
                for t in &pr.transforms {
                    let _ = proposal::Phase1Suite::from_transform(t);
                    let _ = proposal::p2_from_transform(t);
                    let _ = proposal::describe_p1(t);
                    let _ = proposal::describe_p2(t);
                }
            }
        }
    }
    for i in &p.ids {
        let _ = i.identity();
        if let Ok(t) = i.ts() {
            let _ = wire::ts_body(&t);
            let _ = crate::ike::ts::range_to_nets(&t);
        }
    }
    for d in &p.deletes {
        let _ = d.spis32().count();
        let _ = d.cookies().count();
    }
    for n in &p.notifies {
        let _ = n.spi32();
        let _ = wire::parse_attrs(n.data);
    }
    let _ = p.known_vids();
}
