//! The network and dataplane model of the in-memory exchange tests of both
//! engines (`ike_exchanges`, `ikev1_exchanges`; included by `#[path]`): two
//! engines, a clock, datagrams carried between them (optionally through a
//! NAT, optionally losing some), and a dataplane model per side that applies
//! the SA/policy operations and checks after every single operation that
//! traffic could not be lost: every policy points at an installed outbound
//! SA whose inbound twin, with the same keys, is already installed at the
//! peer. A traffic model sends one packet each way per clock step.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use control::ike::{DataplaneOp, Event, Output};
use espresso_core::sa::{Direction, Policy, PolicyAction, SaParams};

/// What the model needs of an engine (IKEv2's and IKEv1's `Engine`).
pub trait TestEngine {
    /// Its connections.
    type Conn;
    /// Its settings.
    type Settings: Clone;
    /// Whether it moves SAs (MOBIKE).
    const MOVES_SAS: bool;
    fn with_seed(settings: Self::Settings, seed: u64) -> Self;
    fn add(&mut self, c: Self::Conn, now: Instant);
    fn initiate(&mut self, name: &str, now: Instant) -> u64;
    fn poll_output(&mut self) -> Option<Output>;
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn handle_datagram(&mut self, data: &[u8], from: SocketAddr, to: SocketAddr, now: Instant);
    /// The dataplane's packet counts of the inbound SAs the engine watches.
    fn report_inbound(&mut self, rx: &HashMap<u32, u64>);
}

#[derive(Default)]
pub struct Dataplane {
    pub sas: HashMap<(u32, Direction), SaParams>,
    pub policies: HashMap<u32, Policy>,
    pub installs: usize,
    pub removes: usize,
    pub moves: usize,
    /// Refuse to remove an inbound SA the peer still sends on (a lost datagram).
    pub strict: bool,
    /// Packets received per inbound SPI (the traffic model: one packet each
    /// way per clock step, see `Net::traffic`).
    pub rx: HashMap<u32, u64>,
    /// Send on the newest outbound SA installed, whatever the policies say
    /// (strongSwan with the kernel or libipsec: the newest SA of the reqid).
    pub newest_out: bool,
    /// Outbound SPIs in the order they were installed.
    pub out_order: Vec<u32>,
}

pub struct Nat {
    pub inside: IpAddr,
    pub public: IpAddr,
    /// inside port -> public port
    pub map: HashMap<u16, u16>,
    pub next: u16,
}

pub struct Side<E> {
    pub eng: E,
    pub dp: Dataplane,
    pub events: Vec<Event>,
    pub sent: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

pub struct Net<E> {
    pub a: Side<E>,
    pub b: Side<E>,
    pub now: Instant,
    /// A sits behind this NAT (A's packets are rewritten on their way to B).
    pub nat: Option<Nat>,
    /// Drop the next N datagrams sent by A / by B.
    pub drop_a: usize,
    pub drop_b: usize,
    /// B is unreachable (its datagrams and those to it vanish).
    pub b_down: bool,
    /// Drop B's messages that carry the IKEv1 commit flag (its CONNECTED).
    pub drop_b_connected: bool,
    pub delivered: usize,
    /// Packets of the traffic model that met no inbound SA at the receiver.
    pub lost: u64,
    /// Report the traffic model's counts to the engines (off: the test
    /// reports what it wants, or nothing: a peer that never decides).
    pub feed: bool,
}

impl<E: TestEngine> Side<E> {
    /// An engine with these settings and seed, an empty dataplane.
    pub fn new(seed: u64, settings: E::Settings) -> Side<E> {
        Side {
            eng: E::with_seed(settings, seed),
            dp: Dataplane::default(),
            events: Vec::new(),
            sent: Vec::new(),
        }
    }
}

impl<E: TestEngine> Net<E> {
    /// Two sides with no connections yet, at the current time.
    pub fn from_sides(a: Side<E>, b: Side<E>) -> Net<E> {
        Net {
            a,
            b,
            now: Instant::now(),
            nat: None,
            drop_a: 0,
            drop_b: 0,
            b_down: false,
            drop_b_connected: false,
            delivered: 0,
            lost: 0,
            feed: true,
        }
    }

    /// A (seed 1, initiating `to-b`) and B (seed 2) with these settings.
    pub fn with_settings(a: E::Conn, b: E::Conn, s: E::Settings) -> Net<E> {
        Self::with_seeds(a, b, (s.clone(), s), (1, 2))
    }

    /// A and B with their own settings and seeds.
    pub fn with_seeds(
        a: E::Conn,
        b: E::Conn,
        (sa, sb): (E::Settings, E::Settings),
        (seed_a, seed_b): (u64, u64),
    ) -> Net<E> {
        let mut n = Net::<E>::from_sides(Side::new(seed_a, sa), Side::new(seed_b, sb));
        n.b.eng.add(b, n.now);
        n.a.eng.add(a, n.now);
        n
    }

    pub fn initiate(&mut self) -> u64 {
        let id = self.a.eng.initiate("to-b", self.now);
        self.pump();
        id
    }

    /// Moves every pending output until both engines are quiet.
    pub fn pump(&mut self) {
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

    pub fn out_a(&mut self, o: Output) {
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
            Output::Dataplane(op) => apply::<E>(&mut self.a.dp, op, &self.b.dp),
            Output::Event(e) => self.a.events.push(e),
        }
    }

    pub fn out_b(&mut self, o: Output) {
        match o {
            Output::Transmit(t) => {
                self.b
                    .sent
                    .push((self.now, t.local, t.remote, t.data.clone()));
                if self.drop_b > 0 {
                    self.drop_b -= 1;
                    return;
                }
                if self.drop_b_connected && commits(&t.data, t.local.port()) {
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
            Output::Dataplane(op) => apply::<E>(&mut self.b.dp, op, &self.a.dp),
            Output::Event(e) => self.b.events.push(e),
        }
    }

    /// One packet each way on the SA each end sends on, counted at the
    /// receiver's inbound SA (or as lost); the engines get the counts of
    /// the inbound SAs they watch, as the daemon's bridge reads them.
    pub fn traffic(&mut self) {
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
            s.eng.report_inbound(&s.dp.rx);
        }
    }

    /// Advances the clock to `t`, firing every timer on the way.
    pub fn advance_to(&mut self, t: Instant) {
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

    pub fn advance(&mut self, d: Duration) {
        let t = self.now + d;
        self.advance_to(t);
    }
}

/// Whether an IKEv1 message (after the non-ESP marker on port 4500) is an
/// informational exchange (32) with the commit flag.
fn commits(data: &[u8], port: u16) -> bool {
    let m = if port == 4500 { &data[4..] } else { data };
    m.len() > 19 && m[18] == 32 && m[19] & 2 != 0
}

/// Applies one operation and checks the no-loss invariant against the peer.
pub fn apply<E: TestEngine>(dp: &mut Dataplane, op: DataplaneOp, peer: &Dataplane) {
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
        DataplaneOp::MoveSa {
            spi,
            direction,
            local_addr,
            remote_addr,
            encap,
        } => {
            assert!(E::MOVES_SAS, "this engine has no MOBIKE: nothing moves SAs");
            dp.moves += 1;
            let sa = dp
                .sas
                .get_mut(&(spi, direction))
                .unwrap_or_else(|| panic!("moving an SA that is not installed: {spi:#x}"));
            sa.local_addr = local_addr;
            sa.remote_addr = remote_addr;
            sa.encap = encap;
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
    }
}

pub fn protect_spis(dp: &Dataplane) -> Vec<u32> {
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
pub fn sending(dp: &Dataplane) -> Vec<u32> {
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
pub fn assert_one_pair<E>(n: &Net<E>) -> (u32, u32) {
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

pub fn count<F: Fn(&Event) -> bool>(ev: &[Event], f: F) -> usize {
    ev.iter().filter(|e| f(e)).count()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
