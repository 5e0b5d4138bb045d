//! Whole IKEv2 exchanges between two engines in memory (no sockets): a
//! network model carries datagrams (optionally through a NAT, optionally
//! losing some), a dataplane model applies the SA/policy operations and
//! checks after every single operation that traffic could not be lost:
//! every policy points at an installed outbound SA whose inbound twin, with
//! the same keys, is already installed at the peer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use control::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use control::ike::{
    Connection, DataplaneOp, DeleteReason, DpdAction, Engine, Event, Identity, IkeDrop, LocalAddr,
    Output, RemoteAddr, Settings, StartAction,
};
use espresso_core::sa::{Direction, LifetimeKind, Policy, PolicyAction, SaEvent, SaParams};

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
    moves: usize,
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
    delivered: usize,
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
    c.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    c.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
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
        // the old pair's DELETE at once after a rekey (exchanges counted
        // right after `pump`); `rekey_delete_waits_the_switch_delay` tests
        // the default delay
        let s = Settings {
            rekey_switch_delay: Duration::ZERO,
            ..Settings::default()
        };
        Self::with_settings(a, b, s)
    }
    fn with_settings(a: Connection, b: Connection, s: Settings) -> Net {
        let now = Instant::now();
        let mut n = Net {
            a: side(1, s.clone()),
            b: side(2, s),
            now,
            nat: None,
            drop_a: 0,
            drop_b: 0,
            b_down: false,
            delivered: 0,
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
                    self.a.eng.handle_timeout(self.now);
                    self.b.eng.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = t;
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
            dp.sas.insert((p.spi, p.direction), *p);
        }
        DataplaneOp::RemoveSa { spi, direction } => {
            dp.removes += 1;
            assert!(
                dp.sas.remove(&(spi, direction)).is_some(),
                "removing an SA that is not installed: {spi:#x} {direction:?}"
            );
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

fn established(ev: &[Event]) -> usize {
    count(ev, |e| matches!(e, Event::IkeEstablished { .. }))
}

mod delete_dpd;
mod lifetimes;
mod mobike;
mod nat;
mod negotiation;
mod rekey;
mod robustness;
mod spi;
