//! Whole IKEv1 exchanges between two engines in memory (no sockets): main
//! and aggressive mode, quick mode with and without PFS, several IPsec SAs,
//! rekeys from both sides, deletes both ways, DPD, retransmission limits,
//! duplicates, replays and tampering counted as drops, NAT detection, legacy
//! proposals, the commit bit and the responder-lifetime notify. The network
//! model carries datagrams (optionally through a NAT, optionally losing
//! some); the dataplane model applies the SA/policy operations and checks
//! after every operation that no traffic could be lost: every policy points
//! at an installed outbound SA whose inbound twin, with the same keys, is
//! already installed at the peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use control::ike::{DeleteReason, DpdAction, LocalAddr, RemoteAddr, StartAction};
use control::ikev1::proposal::{parse_phase1, parse_phase2};
use control::ikev1::{
    Connection, DataplaneOp, Engine, Event, ExchangeMode, Output, Settings, V1Drop,
};
use espresso_core::sa::{Direction, Policy, PolicyAction, SaEvent, SaParams};

const PSK: &[u8] = b"interop-test-psk-0123456789abcdef";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[derive(Default)]
struct Dataplane {
    sas: HashMap<(u32, Direction), SaParams>,
    policies: HashMap<u32, Policy>,
    installs: usize,
    removes: usize,
    /// Refuse to remove an inbound SA the peer still sends on (a lost datagram).
    strict: bool,
    /// Packets received per inbound SPI (the traffic model: one packet each
    /// way per clock step, see `Net::traffic`).
    rx: HashMap<u32, u64>,
    /// Send on the newest outbound SA installed, whatever the policies say
    /// (strongSwan with the kernel or libipsec: the newest SA of the reqid).
    newest_out: bool,
    /// Outbound SPIs in the order they were installed.
    out_order: Vec<u32>,
}

struct Nat {
    inside: IpAddr,
    public: IpAddr,
    /// inside port -> public port
    map: HashMap<u16, u16>,
    next: u16,
}

struct Side {
    eng: Engine,
    dp: Dataplane,
    events: Vec<Event>,
    sent: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

struct Net {
    a: Side,
    b: Side,
    now: Instant,
    /// A sits behind this NAT (A's packets are rewritten on their way to B).
    nat: Option<Nat>,
    /// Drop the next N datagrams sent by A / by B.
    drop_a: usize,
    drop_b: usize,
    /// B is unreachable (its datagrams and those to it vanish).
    b_down: bool,
    /// Drop B's messages that carry the commit flag (its CONNECTED).
    drop_b_connected: bool,
    delivered: usize,
    /// Packets of the traffic model that met no inbound SA at the receiver.
    lost: u64,
    /// Report the traffic model's counts to the engines (off: the test
    /// reports what it wants, or nothing: a peer that never decides).
    feed: bool,
}

fn side(seed: u64, settings: Settings) -> Side {
    Side {
        eng: Engine::with_seed(settings, seed),
        dp: Dataplane::default(),
        events: Vec::new(),
        sent: Vec::new(),
    }
}

fn conn(name: &str, local: &str, remote: &str) -> Connection {
    let mut c = Connection::new(
        name,
        LocalAddr::Addr(ip(local)),
        RemoteAddr::Addr(ip(remote)),
        PSK,
    );
    c.phase1_proposals = parse_phase1("aes128-sha256-ecp256").unwrap();
    c.esp_proposals = parse_phase2("aes128gcm16").unwrap();
    c.local_id = Some(local.parse().unwrap());
    c.remote_id = Some(remote.parse().unwrap());
    c
}

/// Site A 192.0.2.1 (10.1.0.0/24) <-> site B 192.0.2.2 (10.2.0.0/24).
fn pair() -> (Connection, Connection) {
    let mut a = conn("to-b", "192.0.2.1", "192.0.2.2");
    a.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    a.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut b = conn("to-a", "192.0.2.2", "192.0.2.1");
    b.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
    b.remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
    (a, b)
}

impl Net {
    fn new(a: Connection, b: Connection) -> Net {
        Self::with_settings(a, b, Settings::default())
    }
    fn with_settings(a: Connection, b: Connection, s: Settings) -> Net {
        Self::with_seeds(a, b, (s.clone(), s), (1, 2))
    }
    fn with_seeds(
        a: Connection,
        b: Connection,
        (sa, sb): (Settings, Settings),
        (seed_a, seed_b): (u64, u64),
    ) -> Net {
        let now = Instant::now();
        let mut n = Net {
            a: side(seed_a, sa),
            b: side(seed_b, sb),
            now,
            nat: None,
            drop_a: 0,
            drop_b: 0,
            b_down: false,
            drop_b_connected: false,
            delivered: 0,
            lost: 0,
            feed: true,
        };
        n.b.eng.add_connection(b, now).unwrap();
        n.a.eng.add_connection(a, now).unwrap();
        n
    }

    fn initiate(&mut self) -> u64 {
        let id = self.a.eng.initiate("to-b", self.now).unwrap();
        self.pump();
        id
    }

    /// Moves every pending output until both engines are quiet.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(o) = self.a.eng.poll_output() {
                moved = true;
                self.out_a(o);
            }
            while let Some(o) = self.b.eng.poll_output() {
                moved = true;
                self.out_b(o);
            }
            if !moved {
                return;
            }
        }
        panic!("engines never went quiet");
    }

    fn out_a(&mut self, o: Output) {
        match o {
            Output::Transmit(t) => {
                self.a
                    .sent
                    .push((self.now, t.local, t.remote, t.data.clone()));
                if self.drop_a > 0 {
                    self.drop_a -= 1;
                    return;
                }
                if self.b_down {
                    return;
                }
                let mut from = t.local;
                if let Some(nat) = &mut self.nat {
                    assert_eq!(from.ip(), nat.inside);
                    let p = *nat.map.entry(from.port()).or_insert_with(|| {
                        nat.next += 1;
                        nat.next
                    });
                    from = SocketAddr::new(nat.public, p);
                }
                self.delivered += 1;
                self.b
                    .eng
                    .handle_datagram(&t.data, from, t.remote, self.now);
            }
            Output::Dataplane(op) => apply(&mut self.a.dp, op, &self.b.dp),
            Output::Event(e) => self.a.events.push(e),
        }
    }

    fn out_b(&mut self, o: Output) {
        match o {
            Output::Transmit(t) => {
                self.b
                    .sent
                    .push((self.now, t.local, t.remote, t.data.clone()));
                if self.drop_b > 0 {
                    self.drop_b -= 1;
                    return;
                }
                let m = if t.local.port() == 4500 {
                    &t.data[4..]
                } else {
                    &t.data[..]
                };
                if self.drop_b_connected && m.len() > 19 && m[18] == 32 && m[19] & 2 != 0 {
                    return;
                }
                if self.b_down {
                    return;
                }
                let mut to = t.remote;
                if let Some(nat) = &self.nat {
                    assert_eq!(to.ip(), nat.public, "B answers the NAT's public address");
                    let inside = nat
                        .map
                        .iter()
                        .find(|(_, p)| **p == to.port())
                        .map(|(i, _)| *i)
                        .expect("NAT mapping exists");
                    to = SocketAddr::new(nat.inside, inside);
                }
                self.delivered += 1;
                self.a.eng.handle_datagram(&t.data, t.local, to, self.now);
            }
            Output::Dataplane(op) => apply(&mut self.b.dp, op, &self.a.dp),
            Output::Event(e) => self.b.events.push(e),
        }
    }

    /// One packet each way on the SA each end sends on, counted at the
    /// receiver's inbound SA (or as lost); the engines get the counts of
    /// the inbound SAs they watch, as the daemon's bridge reads them.
    fn traffic(&mut self) {
        let (a_sends, b_sends) = (sending(&self.a.dp), sending(&self.b.dp));
        for (sends, y) in [(a_sends, &mut self.b), (b_sends, &mut self.a)] {
            for spi in sends {
                if y.dp.sas.contains_key(&(spi, Direction::Inbound)) {
                    *y.dp.rx.entry(spi).or_default() += 1;
                } else {
                    self.lost += 1;
                }
            }
        }
        if !self.feed {
            return;
        }
        for s in [&mut self.a, &mut self.b] {
            for spi in s.eng.watched_inbound() {
                let n = s.dp.rx.get(&spi).copied().unwrap_or(0);
                s.eng.inbound_packets(spi, n);
            }
        }
    }

    /// Advances the clock to `t`, firing every timer on the way.
    fn advance_to(&mut self, t: Instant) {
        loop {
            let next = [self.a.eng.poll_timeout(), self.b.eng.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= t => {
                    if n > self.now {
                        self.now = n;
                    }
                    self.traffic();
                    self.a.eng.handle_timeout(self.now);
                    self.b.eng.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = t;
        self.traffic();
        self.a.eng.handle_timeout(self.now);
        self.b.eng.handle_timeout(self.now);
        self.pump();
    }

    fn advance(&mut self, d: Duration) {
        let t = self.now + d;
        self.advance_to(t);
    }
}

/// Applies one operation and checks the no-loss invariant against the peer.
fn apply(dp: &mut Dataplane, op: DataplaneOp, peer: &Dataplane) {
    match op {
        DataplaneOp::InstallSa(p) => {
            dp.installs += 1;
            if p.direction == Direction::Outbound {
                dp.out_order.retain(|s| *s != p.spi);
                dp.out_order.push(p.spi);
            }
            dp.sas.insert((p.spi, p.direction), *p);
        }
        DataplaneOp::RemoveSa { spi, direction } => {
            dp.removes += 1;
            assert!(
                dp.sas.remove(&(spi, direction)).is_some(),
                "removing an SA that is not installed: {spi:#x} {direction:?}"
            );
            if direction == Direction::Inbound && dp.strict {
                assert!(
                    !sending(peer).contains(&spi),
                    "inbound SA {spi:#x} removed while the peer still sends on it"
                );
            }
            if direction == Direction::Outbound {
                for p in dp.policies.values() {
                    assert_ne!(
                        p.action,
                        PolicyAction::Protect { spi },
                        "outbound SA {spi:#x} removed while a policy still uses it"
                    );
                }
            }
        }
        DataplaneOp::InstallPolicy(p) => {
            if let PolicyAction::Protect { spi } = p.action {
                assert!(
                    dp.sas.contains_key(&(spi, Direction::Outbound)),
                    "policy {} -> SPI {spi:#x} with no outbound SA",
                    p.id
                );
                // a switch from one SA to another (a rekey) must find the
                // peer ready to receive on the new SA: make-before-break. (A
                // brand-new policy, at first establishment, replaced nothing.)
                let was_protect = matches!(
                    dp.policies.get(&p.id).map(|o| o.action),
                    Some(PolicyAction::Protect { .. })
                );
                if was_protect {
                    let inb = peer.sas.get(&(spi, Direction::Inbound)).unwrap_or_else(|| {
                        panic!("policy switched to SPI {spi:#x} before the peer installed its inbound SA")
                    });
                    let out = &dp.sas[&(spi, Direction::Outbound)];
                    assert_eq!(out.enc_key, inb.enc_key, "keys differ between the two ends");
                    assert_eq!(out.auth_key, inb.auth_key);
                    assert_eq!(out.suite, inb.suite);
                    assert_eq!(out.esn, inb.esn);
                }
            }
            dp.policies.insert(p.id, p);
        }
        DataplaneOp::RemovePolicy { id } => {
            assert!(
                dp.policies.remove(&id).is_some(),
                "removing unknown policy {id}"
            );
        }
        DataplaneOp::MoveSa { .. } => panic!("IKEv1 has no MOBIKE: nothing moves SAs"),
    }
}

fn protect_spis(dp: &Dataplane) -> Vec<u32> {
    let mut v: Vec<u32> = dp
        .policies
        .values()
        .filter_map(|p| match p.action {
            PolicyAction::Protect { spi } => Some(spi),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The outbound SPIs `dp` sends on: its policies', or its newest
/// outbound SA's (`newest_out`).
fn sending(dp: &Dataplane) -> Vec<u32> {
    if dp.newest_out {
        return dp
            .out_order
            .iter()
            .rev()
            .find(|s| dp.sas.contains_key(&(**s, Direction::Outbound)))
            .map(|s| vec![*s])
            .unwrap_or_default();
    }
    protect_spis(dp)
}

/// Both ends have exactly one working pair: A's outbound = B's inbound and back.
fn assert_one_pair(n: &Net) -> (u32, u32) {
    let a_out = protect_spis(&n.a.dp);
    let b_out = protect_spis(&n.b.dp);
    assert_eq!(a_out.len(), 1, "A policies: {:?}", n.a.dp.policies);
    assert_eq!(b_out.len(), 1, "B policies: {:?}", n.b.dp.policies);
    let (ao, bo) = (a_out[0], b_out[0]);
    for (x, y, spi) in [(&n.a.dp, &n.b.dp, ao), (&n.b.dp, &n.a.dp, bo)] {
        let out = &x.sas[&(spi, Direction::Outbound)];
        let inb = &y.sas[&(spi, Direction::Inbound)];
        assert_eq!(out.enc_key, inb.enc_key, "keys differ between the two ends");
        assert_eq!(out.auth_key, inb.auth_key);
        assert_eq!(
            (out.suite, out.esn, out.mode),
            (inb.suite, inb.esn, inb.mode)
        );
    }
    (ao, bo)
}

fn count<F: Fn(&Event) -> bool>(ev: &[Event], f: F) -> usize {
    ev.iter().filter(|e| f(e)).count()
}

fn established(n: &Net) -> (usize, usize) {
    let f = |e: &Event| matches!(e, Event::ChildEstablished { .. });
    (count(&n.a.events, f), count(&n.b.events, f))
}

fn with<F: FnOnce(&mut Connection, &mut Connection)>(f: F) -> Net {
    let (mut a, mut b) = pair();
    f(&mut a, &mut b);
    Net::new(a, b)
}

fn a_child(n: &Net) -> u32 {
    n.a.eng.status()[0].sa.children[0].inbound_spi
}

mod negotiation;
mod pair_switch;
mod rekey;
mod robustness;
