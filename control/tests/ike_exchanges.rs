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

#[test]
fn psk_handshake_installs_matching_sas() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    assert_eq!(established(&n.a.events), 1, "{:?}", n.a.events);
    assert_eq!(established(&n.b.events), 1, "{:?}", n.b.events);
    let (ao, bo) = assert_one_pair(&n);
    let out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(out.suite.encr, espresso_core::alg::EncrAlg::AesGcm128);
    assert_eq!(out.enc_key.len(), 20);
    assert_eq!(out.selectors.len(), 1);
    assert_eq!(out.selectors[0].local.to_string(), "10.1.0.0/24");
    assert_eq!(out.selectors[0].remote.to_string(), "10.2.0.0/24");
    assert_eq!(out.encap, None);
    let bin = &n.b.dp.sas[&(ao, Direction::Inbound)];
    assert_eq!(bin.selectors[0].local.to_string(), "10.2.0.0/24");
    assert_ne!(ao, bo);
    // four datagrams: IKE_SA_INIT and IKE_AUTH, request and response
    assert_eq!(n.delivered, 4);
    assert_eq!(n.a.sent[0].1.port(), 500);
    // the remote identity is reported
    assert!(n.b.events.iter().any(|e| matches!(e, Event::IkeEstablished { remote_id, initiator: false, .. } if remote_id == "192.0.2.1")));
    // IKE keys agree
    let ia = n.a.eng.ike_sas()[0];
    let ib = n.b.eng.ike_sas()[0];
    let (ka, kb) = (n.a.eng.ike_keys(ia).unwrap(), n.b.eng.ike_keys(ib).unwrap());
    assert_eq!(ka.sk_d, kb.sk_d);
    assert_eq!(ka.sk_ei, kb.sk_ei);
    assert_eq!(n.a.eng.stats().drops_total(), 0);
    assert_eq!(n.b.eng.stats().drops_total(), 0);
    assert_eq!(n.b.eng.half_open(), 0);
}

#[test]
fn every_ike_suite_and_group() {
    for p in [
        "aes128gcm16-prfsha256-ecp256",
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16-prfsha512-curve25519",
        "aes128-sha256-modp2048",
        "aes256-sha384-ecp256",
        "aes256-sha512-curve25519",
        "aes192-sha256-ecp384",
        "aes128-sha1-modp1024",
        "AES-256 SHA-256 14",
        // issue 13: what strongSwan 5.9 proposes beyond the above
        "chacha20poly1305-prfsha512-curve25519",
        "chacha20poly1305-prfsha256-ecp256",
        "aes256-sha384-ecp384",
        "aes256-sha512-modp3072",
        "aes128-sha256-modp4096",
        "aes256gcm16-prfsha512-ecp521",
        "aes256-sha512-modp6144",
        "aes256-sha512-modp8192",
        "AES-256 SHA-256 15",
    ] {
        let (mut a, mut b) = pair();
        a.ike_proposals = parse_ike_proposals(p).unwrap();
        b.ike_proposals = parse_ike_proposals(p).unwrap();
        let mut n = Net::new(a, b);
        n.initiate();
        assert_eq!(established(&n.a.events), 1, "{p}: {:?}", n.a.events);
        let prop = n.a.events.iter().find_map(|e| match e {
            Event::IkeEstablished { proposal, .. } => Some(proposal.clone()),
            _ => None,
        });
        assert!(prop.is_some());
        assert_one_pair(&n);
    }
}

#[test]
fn every_esp_suite() {
    for (p, legacy) in [
        ("aes128gcm16", false),
        ("aes256gcm16", false),
        ("chacha20poly1305", false),
        ("aes128-sha256", false),
        ("aes256-sha256", false),
        ("aes256-sha384", false),
        ("aes256-sha512", false),
        ("aes128-sha1", false),
        ("aes128gcm16-esn", false),
        ("aes256-sha256-esn", false),
        ("null-sha256", false),
        ("3des-md5", true),
    ] {
        let (mut a, mut b) = pair();
        a.esp_proposals = parse_esp_proposals(p).unwrap();
        b.esp_proposals = parse_esp_proposals(p).unwrap();
        a.allow_legacy = legacy;
        b.allow_legacy = legacy;
        let mut n = Net::new(a, b);
        n.initiate();
        let (ao, _) = assert_one_pair(&n);
        let sa = &n.a.dp.sas[&(ao, Direction::Outbound)];
        let want = &parse_esp_proposals(p).unwrap()[0];
        assert_eq!(sa.suite.encr, want.encr[0], "{p}");
        assert_eq!(sa.esn, want.esn[0], "{p}");
        assert_eq!(sa.enc_key.len(), want.encr[0].key_len(), "{p}");
        sa.suite.validate(legacy).unwrap();
    }
}

#[test]
fn responder_picks_its_preference_among_the_offers() {
    let (mut a, mut b) = pair();
    a.ike_proposals =
        parse_ike_proposals("aes128-sha256-modp2048, aes256gcm16-prfsha384-ecp384").unwrap();
    b.ike_proposals =
        parse_ike_proposals("aes256gcm16-prfsha384-ecp384, aes128-sha256-modp2048").unwrap();
    a.esp_proposals = parse_esp_proposals("aes128-sha256, aes256gcm16").unwrap();
    b.esp_proposals = parse_esp_proposals("aes256gcm16, aes128-sha256").unwrap();
    let mut n = Net::new(a, b);
    n.initiate();
    // A's KE was modp2048 (its first group), B prefers ecp384: INVALID_KE_PAYLOAD, then retry
    let p = n.a.events.iter().find_map(|e| match e {
        Event::IkeEstablished { proposal, .. } => Some(proposal.clone()),
        _ => None,
    });
    assert_eq!(
        p.as_deref(),
        Some("aes256gcm16-prfsha384-ecp384"),
        "{:?} {:?} {:?} {}",
        n.a.eng.stats(),
        n.b.eng.stats(),
        n.b.eng.status(),
        n.delivered
    );
    let (ao, _) = assert_one_pair(&n);
    assert_eq!(
        n.a.dp.sas[&(ao, Direction::Outbound)].suite.encr,
        espresso_core::alg::EncrAlg::AesGcm256
    );
    assert_eq!(n.delivered, 6, "one INVALID_KE_PAYLOAD round trip");
}

#[test]
fn ike_proposal_mismatch_is_explained() {
    let (mut a, mut b) = pair();
    a.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    b.ike_proposals = parse_ike_proposals("aes256-sha512-modp2048").unwrap();
    let mut n = Net::new(a, b);
    n.initiate();
    let m =
        n.b.events
            .iter()
            .find_map(|e| match e {
                Event::ProposalMismatch {
                    kind,
                    offered,
                    configured,
                    local_responder,
                    ..
                } => Some((*kind, offered.clone(), configured.clone(), *local_responder)),
                _ => None,
            })
            .expect("responder explains the mismatch");
    assert_eq!(m.0, "IKE");
    assert_eq!(m.1, vec!["aes128gcm16-prfsha256-ecp256".to_string()]);
    assert_eq!(m.2, vec!["aes256-sha512-prfsha512-modp2048".to_string()]);
    assert!(m.3);
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::ProposalMismatch {
            kind: "IKE",
            local_responder: false,
            ..
        }
    )));
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::Failed(_),
            ..
        }
    )));
    assert!(n.a.eng.ike_sas().is_empty());
    assert!(n.b.eng.ike_sas().is_empty());
}

#[test]
fn esp_proposal_mismatch_keeps_the_ike_sa() {
    let (mut a, mut b) = pair();
    a.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
    b.esp_proposals = parse_esp_proposals("aes256-sha256").unwrap();
    let mut n = Net::new(a, b);
    n.initiate();
    assert_eq!(established(&n.a.events), 1);
    let offered = n.b.events.iter().find_map(|e| match e {
        Event::ProposalMismatch {
            kind: "ESP",
            offered,
            configured,
            ..
        } => Some((offered.clone(), configured.clone())),
        _ => None,
    });
    assert_eq!(
        offered,
        Some((
            vec!["aes128gcm16".to_string()],
            vec!["aes256-sha256".to_string()]
        ))
    );
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildFailed { .. })));
    assert!(n.a.dp.sas.is_empty() && n.b.dp.sas.is_empty());
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let (a, mut b) = pair();
    b.psk = espresso_core::key::Key::from_slice(b"another-key-entirely-123");
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::AuthFailed { reason, .. } if reason.contains("pre-shared"))));
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::AuthFailed { .. })));
    assert!(n.a.eng.ike_sas().is_empty());
    assert!(n.b.eng.ike_sas().is_empty());
    assert_eq!(n.b.eng.half_open(), 0);
    assert!(n.a.dp.sas.is_empty() && n.b.dp.sas.is_empty());
}

#[test]
fn wrong_identity_is_refused() {
    let (a, mut b) = pair();
    b.remote_id = Some("@somebody-else".parse().unwrap());
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::AuthFailed { reason, .. } if reason.contains("192.0.2.1"))));
    assert_eq!(established(&n.a.events), 0);
}

fn child_rekey(pfs: bool) {
    let (mut a, mut b) = pair();
    a.pfs = pfs;
    b.pfs = pfs;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let a_in = bo;
    let before = n.delivered;
    n.a.eng.rekey_child(a_in, n.now).unwrap();
    n.pump();
    // CREATE_CHILD_SA + INFORMATIONAL delete
    assert_eq!(n.delivered - before, 4);
    let (ao2, bo2) = assert_one_pair(&n);
    assert_ne!(ao, ao2);
    assert_ne!(bo, bo2);
    assert!(n.a.events.iter().any(|e| matches!(e, Event::ChildRekeyed { old_outbound, new_outbound, .. } if *old_outbound == ao && *new_outbound == ao2)));
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { old_inbound, .. } if *old_inbound == ao)));
    // old inbound SAs are still there (draining), old outbound ones are gone
    assert!(n.b.dp.sas.contains_key(&(ao, Direction::Inbound)));
    assert!(n.a.dp.sas.contains_key(&(bo, Direction::Inbound)));
    assert!(!n.a.dp.sas.contains_key(&(ao, Direction::Outbound)));
    n.advance(Duration::from_secs(3));
    assert_eq!(n.a.dp.sas.len(), 2, "{:?}", n.a.dp.sas.keys());
    assert_eq!(n.b.dp.sas.len(), 2);
    // the keys differ from the old ones
    assert_ne!(
        n.a.dp.sas[&(ao2, Direction::Outbound)].enc_key,
        n.b.dp.sas[&(bo2, Direction::Outbound)].enc_key
    );
    // a second rekey, this time started by the responder
    n.b.eng.rekey_child(ao2, n.now).unwrap();
    n.pump();
    let (ao3, bo3) = assert_one_pair(&n);
    assert!(ao3 != ao2 && bo3 != bo2);
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        0
    );
}

#[test]
fn child_rekey_without_pfs() {
    child_rekey(false);
}

#[test]
fn child_rekey_with_pfs() {
    child_rekey(true);
}

#[test]
fn pfs_group_follows_the_esp_proposal() {
    let (mut a, mut b) = pair();
    a.esp_proposals = parse_esp_proposals("aes128gcm16-modp2048").unwrap();
    b.esp_proposals = parse_esp_proposals("aes128gcm16-modp2048").unwrap();
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    // the CREATE_CHILD_SA request carried a 256-byte MODP public value
    let req = &n.a.sent[2].3;
    assert!(req.len() > 256 + 28, "request with KE: {} bytes", req.len());
    assert_one_pair(&n);
}

/// strongSwan's `esp_proposals = aes128-sha256-modp3072` under an ecp256 IKE
/// SA: its rekey carries a MODP-3072 KE; a responder whose ESP proposal names
/// no group takes it, with `pfs` on (any group is PFS) and off (the group
/// list once lacked MODP-3072: NO_PROPOSAL_CHOSEN).
#[test]
fn responder_without_an_esp_group_takes_the_peers_pfs_group() {
    for pfs in [true, false] {
        let (mut a, mut b) = pair();
        a.ike_proposals = parse_ike_proposals("aes128-sha256-ecp256").unwrap();
        b.ike_proposals = parse_ike_proposals("aes128-sha256-ecp256").unwrap();
        a.esp_proposals = parse_esp_proposals("aes128gcm16-modp3072").unwrap();
        b.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
        a.pfs = true;
        b.pfs = pfs;
        let mut n = Net::new(a, b);
        n.initiate();
        let (_, bo) = assert_one_pair(&n);
        n.a.eng.rekey_child(bo, n.now).unwrap();
        n.pump();
        // the CREATE_CHILD_SA request carried a 384-byte MODP-3072 public value
        let req = &n.a.sent[2].3;
        assert!(req.len() > 384 + 28, "request with KE: {} bytes", req.len());
        assert!(
            n.a.events
                .iter()
                .any(|e| matches!(e, Event::ChildRekeyed { .. })),
            "pfs = {pfs}: the rekey with MODP-3072 was refused"
        );
        assert_one_pair(&n);
    }
}

#[test]
fn responder_with_pfs_no_accepts_pfs() {
    let (mut a, mut b) = pair();
    a.pfs = true;
    b.pfs = false;
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { .. })));
}

#[test]
fn ike_rekey_moves_children_and_keeps_working() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    let old = n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let old_keys = n.a.eng.ike_keys(old).unwrap().sk_d.clone();
    n.a.eng.rekey_ike(old, n.now).unwrap();
    n.pump();
    let ids = n.a.eng.ike_sas();
    assert_eq!(ids.len(), 1, "old IKE SA deleted");
    let new = ids[0];
    assert_ne!(new, old);
    assert_ne!(n.a.eng.ike_keys(new).unwrap().sk_d, old_keys);
    assert_eq!(n.b.eng.ike_sas().len(), 1);
    assert_eq!(
        n.a.eng.ike_keys(new).unwrap().sk_d,
        n.b.eng.ike_keys(n.b.eng.ike_sas()[0]).unwrap().sk_d
    );
    assert!(n.a.events.iter().any(|e| matches!(e, Event::IkeRekeyed { old_sa, new_sa, .. } if *old_sa == old && *new_sa == new)));
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::IkeRekeyed { .. })));
    // the child survived and is now under the new IKE SA
    assert_eq!(assert_one_pair(&n), (ao, bo));
    let st = n.a.eng.status();
    assert_eq!(st[0].children.len(), 1);
    // the new IKE SA works: rekey the child over it, then DPD
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
    n.b.eng.rekey_ike(n.b.eng.ike_sas()[0], n.now).unwrap();
    n.pump();
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    assert_eq!(n.b.eng.ike_sas().len(), 1);
    assert_eq!(n.a.eng.status()[0].children.len(), 1);
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        0
    );
}

#[test]
fn child_rekey_collision_leaves_one_pair() {
    for seed_shift in 0..6u64 {
        let (a, b) = pair();
        let s = Settings::default();
        let now = Instant::now();
        let mut n = Net {
            a: side(10 + seed_shift, s.clone()),
            b: side(20 + seed_shift, s),
            now,
            nat: None,
            drop_a: 0,
            drop_b: 0,
            b_down: false,
            delivered: 0,
        };
        n.b.eng.add_connection(b, now).unwrap();
        n.a.eng.add_connection(a, now).unwrap();
        n.initiate();
        let (ao, bo) = assert_one_pair(&n);
        // both start a rekey before either sees the other's request
        n.a.eng.rekey_child(bo, n.now).unwrap();
        n.b.eng.rekey_child(ao, n.now).unwrap();
        n.pump();
        // (the winner's DELETE of the old pair waits the switch delay)
        n.advance(Duration::from_secs(5));
        let (ao2, bo2) = assert_one_pair(&n);
        assert!(ao2 != ao && bo2 != bo);
        // exactly one pair left on each side, nothing dangling
        assert_eq!(n.a.dp.sas.len(), 2, "A: {:?}", n.a.dp.sas.keys());
        assert_eq!(n.b.dp.sas.len(), 2, "B: {:?}", n.b.dp.sas.keys());
        assert_eq!(n.a.eng.status()[0].children.len(), 1);
        assert_eq!(n.b.eng.status()[0].children.len(), 1);
        assert_eq!(
            n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
            0
        );
    }
}

#[test]
fn ike_rekey_collision_leaves_one_ike_sa() {
    for k in 0..6u64 {
        let (a, b) = pair();
        let s = Settings::default();
        let now = Instant::now();
        let mut n = Net {
            a: side(30 + k, s.clone()),
            b: side(40 + k, s),
            now,
            nat: None,
            drop_a: 0,
            drop_b: 0,
            b_down: false,
            delivered: 0,
        };
        n.b.eng.add_connection(b, now).unwrap();
        n.a.eng.add_connection(a, now).unwrap();
        let ia = n.initiate();
        let ib = n.b.eng.ike_sas()[0];
        let pair0 = assert_one_pair(&n);
        n.a.eng.rekey_ike(ia, n.now).unwrap();
        n.b.eng.rekey_ike(ib, n.now).unwrap();
        n.pump();
        n.advance(Duration::from_secs(5));
        assert_eq!(n.a.eng.ike_sas().len(), 1, "A: {:?}", n.a.eng.status());
        assert_eq!(n.b.eng.ike_sas().len(), 1, "B: {:?}", n.b.eng.status());
        let (sa_a, sa_b) = (n.a.eng.ike_sas()[0], n.b.eng.ike_sas()[0]);
        assert_eq!(
            n.a.eng.ike_keys(sa_a).unwrap().sk_d,
            n.b.eng.ike_keys(sa_b).unwrap().sk_d
        );
        assert_eq!(n.a.eng.status()[0].children.len(), 1);
        assert_eq!(n.b.eng.status()[0].children.len(), 1);
        assert_eq!(assert_one_pair(&n), pair0);
        // and it is usable
        n.a.eng.dpd(sa_a, n.now).unwrap();
        n.pump();
        assert_eq!(
            n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
            0
        );
    }
}

#[test]
fn retransmission_recovers_a_lost_packet_and_backs_off() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.drop_a = 1; // IKE_SA_INIT request lost
    n.a.eng.initiate("to-b", n.now).unwrap();
    n.pump();
    assert_eq!(established(&n.a.events), 0);
    n.advance(Duration::from_secs(5));
    assert_eq!(established(&n.a.events), 1);
    assert_eq!(n.a.eng.stats().retransmits, 1);
    // a lost response: B answers the retransmitted request from its cache
    let (_, bo) = assert_one_pair(&n);
    n.drop_b = 1;
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(5));
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { .. })));
    assert_one_pair(&n);
}

#[test]
fn retransmission_gives_up_with_exponential_backoff() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.b_down = true;
    let t0 = n.now;
    n.a.eng.initiate("to-b", n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(400));
    let times: Vec<f64> = n.a.sent.iter().map(|s| (s.0 - t0).as_secs_f64()).collect();
    // 4 s, then x1.8 each time, 5 retransmissions
    let want = [
        0.0,
        4.0,
        4.0 + 7.2,
        4.0 + 7.2 + 12.96,
        4.0 + 7.2 + 12.96 + 23.328,
        4.0 + 7.2 + 12.96 + 23.328 + 41.9904,
    ];
    assert_eq!(times.len(), want.len(), "{times:?}");
    for (t, w) in times.iter().zip(want) {
        assert!((t - w).abs() < 0.01, "{times:?}");
    }
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::Failed(control::ike::IkeError::Timeout(6)),
            ..
        }
    )));
    assert!(n.a.eng.ike_sas().is_empty());
}

#[test]
fn cookies_when_half_open_threshold_is_passed() {
    let (a, b) = pair();
    let s = Settings {
        cookie_threshold: 0,
        ..Settings::default()
    };
    let mut n = Net::with_settings(a, b, s);
    n.initiate();
    assert_eq!(n.b.eng.stats().cookies_sent, 1);
    assert_eq!(established(&n.a.events), 1);
    assert_eq!(n.delivered, 6);
    // the cookie came back as the first payload of the second IKE_SA_INIT
    let second = &n.a.sent[1].3;
    assert_eq!(second[16], 41, "first payload is a Notify");
    assert_eq!(u16::from_be_bytes([second[28 + 6], second[28 + 7]]), 16390);
    assert_one_pair(&n);
}

#[test]
fn half_open_sas_time_out() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.drop_a = 2; // IKE_SA_INIT arrives, IKE_AUTH is lost ... (first is delivered? no: drop the first two A sends)
    n.drop_a = 0;
    n.a.eng.initiate("to-b", n.now).unwrap();
    // deliver only IKE_SA_INIT request to B, nothing else
    let o = n.a.eng.poll_output().unwrap();
    if let Output::Transmit(t) = o {
        n.b.eng.handle_datagram(&t.data, t.local, t.remote, n.now);
    }
    assert_eq!(n.b.eng.half_open(), 1);
    while n.b.eng.poll_output().is_some() {}
    let t = n.now + Duration::from_secs(31);
    n.b.eng.handle_timeout(t);
    assert_eq!(n.b.eng.half_open(), 0);
    assert!(n.b.eng.ike_sas().is_empty());
}

#[test]
fn nat_detection_moves_to_4500_with_udp_encapsulation() {
    let mut a = conn("to-b", "10.0.0.1", "192.0.2.2");
    a.local_id = Some("@a.example".parse().unwrap());
    a.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    a.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut b = Connection::new("rw", LocalAddr::Addr(ip("192.0.2.2")), RemoteAddr::Any, PSK);
    b.ike_proposals = a.ike_proposals.clone();
    b.esp_proposals = a.esp_proposals.clone();
    b.local_id = Some("192.0.2.2".parse().unwrap());
    b.remote_id = Some("@a.example".parse().unwrap());
    b.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
    b.remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
    let mut n = Net::new(a, b);
    n.nat = Some(Nat {
        inside: ip("10.0.0.1"),
        public: ip("198.51.100.7"),
        map: HashMap::new(),
        next: 30000,
    });
    n.initiate();
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeEstablished {
            nat_local: true,
            nat_remote: false,
            ..
        }
    )));
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::IkeEstablished {
            nat_local: false,
            nat_remote: true,
            ..
        }
    )));
    // IKE_SA_INIT on 500, IKE_AUTH on 4500 with the non-ESP marker
    assert_eq!(n.a.sent[0].1.port(), 500);
    assert_eq!(n.a.sent[1].1.port(), 4500);
    assert_eq!(n.a.sent[1].2.port(), 4500);
    assert_eq!(&n.a.sent[1].3[..4], &[0, 0, 0, 0]);
    let (ao, bo) = assert_one_pair(&n);
    let a_out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(
        a_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 4500))
    );
    let b_out = &n.b.dp.sas[&(bo, Direction::Outbound)];
    let mapped = n.nat.as_ref().unwrap().map[&4500];
    assert_eq!(
        b_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, mapped))
    );
    assert_eq!(b_out.remote_addr, ip("198.51.100.7"));
    // keepalives from the side behind the NAT
    let before = n.a.eng.stats().keepalives_tx;
    n.advance(Duration::from_secs(61));
    assert_eq!(n.a.eng.stats().keepalives_tx - before, 3);
    assert_eq!(n.b.eng.stats().keepalives_rx, 3);
    assert_eq!(n.b.eng.stats().keepalives_tx, 0);
    // rekey through the NAT
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert!(n.a.dp.sas[&(ao2, Direction::Outbound)].encap.is_some());
}

#[test]
fn forced_encapsulation_like_strongswan_libipsec() {
    let (mut a, b) = pair();
    a.force_encap = true;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    assert!(n.a.dp.sas[&(ao, Direction::Outbound)].encap.is_some());
    assert!(n.b.dp.sas[&(bo, Direction::Outbound)].encap.is_some());
    assert_eq!(n.b.sent.last().unwrap().1.port(), 4500);
}

#[test]
fn narrowing_and_several_subnets() {
    let (mut a, mut b) = pair();
    a.local_ts = vec![
        "10.1.0.0/16".parse().unwrap(),
        "10.3.0.0/24".parse().unwrap(),
    ];
    a.remote_ts = vec![
        "10.2.0.0/24".parse().unwrap(),
        "10.4.0.0/24".parse().unwrap(),
    ];
    b.remote_ts = vec![
        "10.1.5.0/24".parse().unwrap(),
        "10.3.0.0/24".parse().unwrap(),
    ];
    b.local_ts = vec![
        "10.2.0.0/24".parse().unwrap(),
        "10.4.0.0/24".parse().unwrap(),
    ];
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    let sel: Vec<(String, String)> = n.a.dp.sas[&(ao, Direction::Outbound)]
        .selectors
        .iter()
        .map(|s| (s.local.to_string(), s.remote.to_string()))
        .collect();
    assert_eq!(
        sel,
        vec![
            ("10.1.5.0/24".into(), "10.2.0.0/24".into()),
            ("10.1.5.0/24".into(), "10.4.0.0/24".into()),
            ("10.3.0.0/24".into(), "10.2.0.0/24".into()),
            ("10.3.0.0/24".into(), "10.4.0.0/24".into()),
        ]
    );
    assert_eq!(n.a.dp.policies.len(), 4);
    assert_eq!(n.b.dp.policies.len(), 4);
    // disjoint selectors: TS_UNACCEPTABLE, the IKE SA stays
    let (mut a, mut b) = pair();
    a.remote_ts = vec!["172.16.0.0/24".parse().unwrap()];
    b.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut n = Net::new(a, b);
    n.initiate();
    assert_eq!(established(&n.a.events), 1);
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::ChildFailed {
            error: control::ike::IkeError::TsUnacceptable(_),
            ..
        }
    )));
    assert!(n.a.dp.sas.is_empty());
}

#[test]
fn delete_from_either_side() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.terminate_child(bo, n.now).unwrap();
    n.pump();
    // B drains the inbound SA of a child the peer deleted (ESP sent before
    // the DELETE may still arrive): gone after the drain time
    assert!(n.b.dp.policies.is_empty());
    n.advance(Duration::from_secs(3));
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(n.b.dp.sas.is_empty());
    assert!(n.a.dp.policies.is_empty() && n.b.dp.policies.is_empty());
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::ChildDeleted {
            reason: DeleteReason::Peer,
            ..
        }
    )));
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    // the responder deletes the IKE SA
    let ib = n.b.eng.ike_sas()[0];
    n.b.eng.terminate_ike(ib, n.now).unwrap();
    n.pump();
    assert!(n.a.eng.ike_sas().is_empty() && n.b.eng.ike_sas().is_empty());
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::Peer,
            ..
        }
    )));
    // again with a child: IKE delete takes the children along
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    let ia = n.initiate();
    n.a.eng.terminate_ike(ia, n.now).unwrap();
    n.pump();
    assert!(n.a.dp.sas.is_empty() && n.b.dp.sas.is_empty());
    assert!(n.a.dp.policies.is_empty() && n.b.dp.policies.is_empty());
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::ChildDeleted {
            reason: DeleteReason::Peer,
            ..
        }
    )));
}

#[test]
fn dpd_declares_a_dead_peer_and_holds_traffic() {
    let (mut a, b) = pair();
    a.dpd.delay = Duration::from_secs(30);
    a.dpd.action = DpdAction::Hold;
    let mut n = Net::new(a, b);
    n.initiate();
    assert_one_pair(&n);
    // alive: liveness checks are answered
    n.advance(Duration::from_secs(65));
    assert!(n.a.eng.stats().tx >= 4);
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    n.b_down = true;
    n.advance(Duration::from_secs(400));
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::DpdDead {
            action: DpdAction::Hold,
            ..
        }
    )));
    assert!(n.a.eng.ike_sas().is_empty());
    assert!(n.a.dp.sas.is_empty());
    // hold: the policy stays, as a trap
    assert_eq!(n.a.dp.policies.len(), 1);
    assert!(n
        .a
        .dp
        .policies
        .values()
        .all(|p| p.action == PolicyAction::Trap));
    // traffic hits the trap: a new negotiation starts
    n.b_down = false;
    let pid = *n.a.dp.policies.keys().next().unwrap();
    n.a.eng.handle_dataplane_event(
        &SaEvent::Acquire {
            policy_id: pid,
            src: ip("10.1.0.10"),
            dst: ip("10.2.0.10"),
            proto: 1,
        },
        n.now,
    );
    n.pump();
    assert_one_pair(&n);
    assert_eq!(
        n.a.dp.policies.len(),
        1,
        "the trap policy became the protect policy"
    );
}

#[test]
fn dpd_clear_and_restart() {
    for action in [DpdAction::Clear, DpdAction::Restart] {
        let (mut a, b) = pair();
        a.dpd.delay = Duration::from_secs(10);
        a.dpd.timeout = Duration::from_secs(30);
        a.dpd.action = action;
        let mut n = Net::new(a, b);
        n.initiate();
        n.b_down = true;
        n.advance(Duration::from_secs(45));
        assert!(
            n.a.events
                .iter()
                .any(|e| matches!(e, Event::DpdDead { .. })),
            "{action:?} within dpd timeout"
        );
        match action {
            DpdAction::Clear => {
                assert!(n.a.dp.policies.is_empty());
                assert!(n.a.eng.ike_sas().is_empty());
            }
            _ => {
                // a new IKE SA is being negotiated
                assert_eq!(n.a.eng.ike_sas().len(), 1);
                n.b_down = false;
                n.advance(Duration::from_secs(10));
                assert_eq!(established(&n.a.events), 2);
            }
        }
    }
}

#[test]
fn initial_contact_replaces_stale_sas() {
    let (a, b) = pair();
    let mut n = Net::new(a.clone(), b);
    n.initiate();
    assert_eq!(n.b.eng.ike_sas().len(), 1);
    // A restarts (new engine, no memory) and connects again
    n.a = side(99, Settings::default());
    n.a.eng.add_connection(a, n.now).unwrap();
    n.initiate();
    assert_eq!(n.b.eng.ike_sas().len(), 1, "the stale IKE SA is gone");
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::InitialContact,
            ..
        }
    )));
    assert_eq!(n.b.dp.sas.len(), 2);
    assert_one_pair(&n);
}

#[test]
fn lifetimes_with_jitter_drive_rekeys() {
    let (a, b) = pair();
    assert_eq!(a.child_lifetime, Duration::from_secs(3600));
    assert_eq!(a.ike_lifetime, Duration::from_secs(28800));
    let mut n = Net::new(a, b);
    let t0 = n.now;
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    n.advance(Duration::from_secs(2500));
    assert_eq!(
        assert_one_pair(&n).0,
        ao,
        "no rekey before lifetime - 2 x margin"
    );
    n.advance(Duration::from_secs(3061 - 2500));
    let rk: Vec<f64> =
        n.a.events
            .iter()
            .chain(n.b.events.iter())
            .filter(|e| matches!(e, Event::ChildRekeyed { .. }))
            .map(|_| 0.0)
            .collect();
    assert!(
        !rk.is_empty(),
        "a child rekey happened between 2520 s and 3060 s"
    );
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
    // the IKE SA rekeys before 28800 s, children survive, SAs never expire unrekeyed
    n.advance_to(t0 + Duration::from_secs(28800));
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::IkeRekeyed { .. })));
    assert!(
        !n.a.events.iter().chain(n.b.events.iter()).any(|e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Expired,
                ..
            }
        ))
    );
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    assert_one_pair(&n);
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        0
    );
}

#[test]
fn rekey_no_lets_sas_expire() {
    let (mut a, mut b) = pair();
    a.rekey = false;
    b.rekey = false;
    let mut n = Net::new(a, b);
    n.initiate();
    n.advance(Duration::from_secs(3601));
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(n.b.dp.sas.is_empty());
    assert!(!n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildRekeyed { .. })));
}

#[test]
fn byte_lifetime_from_the_dataplane_triggers_rekey() {
    let (mut a, b) = pair();
    a.life_bytes = 1_000_000_000;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    let sa = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(sa.lifetime.hard_bytes, 1_000_000_000);
    assert!(sa.lifetime.soft_bytes >= 850_000_000 && sa.lifetime.soft_bytes <= 900_000_000);
    n.a.eng.handle_dataplane_event(
        &SaEvent::SoftExpire {
            spi: ao,
            direction: Direction::Outbound,
            kind: LifetimeKind::Bytes,
        },
        n.now,
    );
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao, ao2);
    n.a.eng.handle_dataplane_event(
        &SaEvent::HardExpire {
            spi: ao2,
            direction: Direction::Outbound,
            kind: LifetimeKind::Bytes,
        },
        n.now,
    );
    n.pump();
    assert!(protect_spis(&n.a.dp).is_empty());
}

#[test]
fn soft_and_hard_byte_lifetime_together_still_rekey() {
    // A fast flow can cross the soft and the hard limit between two looks of
    // the dataplane's management thread: the rekey must replace the SA, and
    // the new SA must carry the policies.
    let (mut a, b) = pair();
    a.life_bytes = 1_000_000;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    for ev in [
        SaEvent::SoftExpire {
            spi: ao,
            direction: Direction::Outbound,
            kind: LifetimeKind::Bytes,
        },
        SaEvent::HardExpire {
            spi: ao,
            direction: Direction::Outbound,
            kind: LifetimeKind::Bytes,
        },
    ] {
        n.a.eng.handle_dataplane_event(&ev, n.now);
    }
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao, ao2);
    assert_eq!(protect_spis(&n.a.dp), vec![ao2], "policies on the new SA");
}

#[test]
fn trap_start_action_negotiates_on_traffic() {
    let (mut a, b) = pair();
    a.start_action = StartAction::Trap;
    let mut n = Net::new(a, b);
    n.pump();
    assert_eq!(n.a.dp.policies.len(), 1);
    let (pid, pol) =
        n.a.dp
            .policies
            .iter()
            .next()
            .map(|(k, v)| (*k, v.clone()))
            .unwrap();
    assert_eq!(pol.action, PolicyAction::Trap);
    assert!(n.a.eng.ike_sas().is_empty());
    n.a.eng.handle_dataplane_event(
        &SaEvent::Acquire {
            policy_id: pid,
            src: ip("10.1.0.10"),
            dst: ip("10.2.0.10"),
            proto: 6,
        },
        n.now,
    );
    n.pump();
    assert_one_pair(&n);
    assert!(matches!(
        n.a.dp.policies[&pid].action,
        PolicyAction::Protect { .. }
    ));
    // a second acquire while up does nothing
    n.a.eng.handle_dataplane_event(
        &SaEvent::Acquire {
            policy_id: pid,
            src: ip("10.1.0.10"),
            dst: ip("10.2.0.10"),
            proto: 6,
        },
        n.now,
    );
    n.pump();
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    // a peer delete puts the trap back
    let (_, bo) = assert_one_pair(&n);
    let _ = bo;
    let ib = n.b.eng.ike_sas()[0];
    n.b.eng.terminate_ike(ib, n.now).unwrap();
    n.pump();
    assert_eq!(n.a.dp.policies[&pid].action, PolicyAction::Trap);
}

#[test]
fn start_action_start_initiates_at_load() {
    let (mut a, b) = pair();
    a.start_action = StartAction::Start;
    let mut n = Net::new(a, b);
    n.pump();
    assert_eq!(established(&n.a.events), 1);
    assert_one_pair(&n);
}

#[test]
fn road_warrior_with_fqdn_ids_and_defaultroute() {
    let mut a = Connection::new(
        "home",
        LocalAddr::DefaultRoute,
        RemoteAddr::Addr(ip("192.0.2.2")),
        PSK,
    );
    a.local_id = Some("@roadwarrior".parse().unwrap());
    a.remote_id = Some("@clearos".parse().unwrap());
    a.remote_ts = vec!["192.168.1.0/24".parse().unwrap()];
    let mut b = Connection::new("rw", LocalAddr::DefaultRoute, RemoteAddr::Any, PSK);
    b.local_id = Some("@clearos".parse().unwrap());
    b.remote_id = Some("@roadwarrior".parse().unwrap());
    b.local_ts = vec!["192.168.1.0/24".parse().unwrap()];
    let now = Instant::now();
    let mut n = Net {
        a: side(5, Settings::default()),
        b: side(6, Settings::default()),
        now,
        nat: None,
        drop_a: 0,
        drop_b: 0,
        b_down: false,
        delivered: 0,
    };
    n.a.eng.set_default_route(Some(ip("203.0.113.50")));
    n.b.eng.set_default_route(Some(ip("192.0.2.2")));
    n.b.eng.add_connection(b, now).unwrap();
    n.a.eng.add_connection(a, now).unwrap();
    n.a.eng.initiate("home", n.now).unwrap();
    n.pump();
    assert!(n.b.events.iter().any(|e| matches!(e, Event::IkeEstablished { remote_id, conn, .. } if remote_id == "@roadwarrior" && conn == "rw")));
    let (ao, _) = assert_one_pair(&n);
    let sel = &n.a.dp.sas[&(ao, Direction::Outbound)].selectors[0];
    assert_eq!(
        sel.local.to_string(),
        "203.0.113.50/32",
        "dynamic local selector = our address"
    );
    assert_eq!(sel.remote.to_string(), "192.168.1.0/24");
    // %defaultroute unresolved: a clear error
    let mut e = Engine::with_seed(Settings::default(), 1);
    let c = Connection::new(
        "x",
        LocalAddr::DefaultRoute,
        RemoteAddr::Addr(ip("192.0.2.2")),
        PSK,
    );
    e.add_connection(c, now).unwrap();
    assert!(e
        .initiate("x", now)
        .unwrap_err()
        .to_string()
        .contains("defaultroute"));
}

#[test]
fn two_road_warriors_pick_their_own_connection_by_id() {
    let mk = |id: &str, key: &[u8]| {
        let mut c = Connection::new(id, LocalAddr::Addr(ip("192.0.2.2")), RemoteAddr::Any, key);
        c.remote_id = Some(id.parse::<Identity>().unwrap());
        c.local_id = Some("@gw".parse().unwrap());
        c
    };
    let mut a = Connection::new(
        "c",
        LocalAddr::Addr(ip("192.0.2.1")),
        RemoteAddr::Addr(ip("192.0.2.2")),
        b"second-psk-of-user-two",
    );
    a.local_id = Some("@two".parse().unwrap());
    a.remote_id = Some("@gw".parse().unwrap());
    let now = Instant::now();
    let mut n = Net {
        a: side(7, Settings::default()),
        b: side(8, Settings::default()),
        now,
        nat: None,
        drop_a: 0,
        drop_b: 0,
        b_down: false,
        delivered: 0,
    };
    n.b.eng
        .add_connection(mk("@one", b"first-psk-of-user-one"), now)
        .unwrap();
    n.b.eng
        .add_connection(mk("@two", b"second-psk-of-user-two"), now)
        .unwrap();
    n.a.eng.add_connection(a, now).unwrap();
    n.a.eng.initiate("c", now).unwrap();
    n.pump();
    assert!(
        n.b.events
            .iter()
            .any(|e| matches!(e, Event::IkeEstablished { conn, .. } if conn == "@two")),
        "{:?}",
        n.b.events
    );
}

#[test]
fn replayed_request_gets_the_cached_response_once_processed() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    // replay A's CREATE_CHILD_SA request (message 2): B must not create another SA
    let (_, l, r, data) = n.a.sent[2].clone();
    let sas_before = n.b.dp.sas.len();
    let tx_before = n.b.eng.stats().tx;
    n.b.eng.handle_datagram(&data, l, r, n.now);
    n.pump();
    // B already answered message 3 (the delete) since: message 2 is outside the window
    assert_eq!(n.b.dp.sas.len(), sas_before);
    assert_eq!(n.b.eng.stats().drop_count(IkeDrop::MessageId), 1);
    // the latest request (the delete, message 3) gets the cached response again
    let (_, l, r, data) = n.a.sent[3].clone();
    n.b.eng.handle_datagram(&data, l, r, n.now);
    assert_eq!(n.b.eng.stats().tx, tx_before + 1);
    while n.b.eng.poll_output().is_some() {}
}

#[test]
fn tampered_protected_message_is_a_counted_drop() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let ia = n.a.eng.ike_sas()[0];
    n.a.eng.dpd(ia, n.now).unwrap();
    let Some(Output::Transmit(t)) = n.a.eng.poll_output() else {
        panic!()
    };
    let mut bad = t.data.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    n.b.eng.handle_datagram(&bad, t.local, t.remote, n.now);
    assert_eq!(n.b.eng.stats().drop_count(IkeDrop::Integrity), 1);
    assert!(
        n.b.eng.poll_output().is_none(),
        "no answer to a forged message"
    );
    // the genuine one still works
    n.b.eng.handle_datagram(&t.data, t.local, t.remote, n.now);
    n.pump();
    assert_eq!(n.a.eng.stats().drops_total(), 0);
}

#[test]
fn tolerates_strongswan_notifies() {
    // an IKE_SA_INIT like strongSwan's: FRAG_SUP, HASH_ALG, REDIR_SUP and a vendor ID
    use control::ike::wire::{self, notify, payload, PayloadWriter};
    let (_, b) = pair();
    let mut eng = Engine::with_seed(Settings::default(), 3);
    let now = Instant::now();
    eng.add_connection(b, now).unwrap();
    let mut rng_a = Engine::with_seed(Settings::default(), 4);
    let (a, _) = pair();
    rng_a.add_connection(a, now).unwrap();
    rng_a.initiate("to-b", now).unwrap();
    let Some(Output::Transmit(t)) = rng_a.poll_output() else {
        panic!()
    };
    // rebuild the message with extra notifies appended
    let msg = wire::Message::parse(&t.data).unwrap();
    let mut pw = PayloadWriter::new();
    let mut it = wire::PayloadIter::new(&t.data[28..], msg.header.next_payload());
    while let Some(Ok(p)) = it.next() {
        pw.push(p.ptype, p.body);
    }
    pw.notify(0, &[], notify::IKEV2_FRAGMENTATION_SUPPORTED, &[]);
    pw.notify(
        0,
        &[],
        notify::SIGNATURE_HASH_ALGORITHMS,
        &[0, 2, 0, 3, 0, 4],
    );
    pw.notify(0, &[], notify::REDIRECT_SUPPORTED, &[]);
    pw.push(payload::VENDOR, b"strongSwan");
    let m2 = wire::build_plain(msg.header.spi_i(), 0, 34, 0x08, 0, &pw);
    eng.handle_datagram(&m2, t.local, t.remote, now);
    let Some(Output::Transmit(resp)) = eng.poll_output() else {
        panic!("no response")
    };
    let r = wire::Message::parse(&resp.data).unwrap();
    assert!(r.payloads.sa.is_some() && r.payloads.ke.is_some());
    assert_eq!(eng.stats().drops_total(), 0);
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn engines() -> (Net, Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        let (a, b) = pair();
        let mut n = Net::new(a, b);
        n.initiate();
        let (_, bo) = assert_one_pair(&n);
        n.a.eng.rekey_child(bo, n.now).unwrap();
        n.pump();
        let mut msgs: Vec<(SocketAddr, SocketAddr, Vec<u8>)> =
            n.a.sent.iter().map(|s| (s.1, s.2, s.3.clone())).collect();
        msgs.extend(n.b.sent.iter().map(|s| (s.1, s.2, s.3.clone())));
        (n, msgs)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), port in prop_oneof![Just(500u16), Just(4500u16)]) {
            let (mut n, _) = engines();
            let from = SocketAddr::new(ip("192.0.2.1"), port);
            let to = SocketAddr::new(ip("192.0.2.2"), port);
            let before = n.b.eng.stats().drops_total();
            n.b.eng.handle_datagram(&data, from, to, n.now);
            n.pump();
            // either counted as a drop or answered; the established SA is untouched
            prop_assert!(n.b.eng.stats().drops_total() >= before);
            prop_assert!(!n.b.eng.ike_sas().is_empty());
            assert_one_pair(&n);
        }

        #[test]
        fn mutated_messages_never_panic(idx in 0usize..8, flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6), trunc in proptest::option::of(any::<u16>())) {
            let (mut n, msgs) = engines();
            let (l, r, m) = &msgs[idx % msgs.len()];
            let mut m = m.clone();
            for (at, x) in flips {
                let i = at as usize % m.len();
                m[i] ^= x | 1;
            }
            if let Some(t) = trunc {
                let t = t as usize % (m.len() + 1);
                m.truncate(t);
            }
            // deliver the mutant to both engines, as if from either side
            n.b.eng.handle_datagram(&m, *l, *r, n.now);
            n.a.eng.handle_datagram(&m, *r, *l, n.now);
            n.pump();
            n.advance(Duration::from_secs(1));
            prop_assert!(!n.a.eng.ike_sas().is_empty());
            prop_assert!(!n.b.eng.ike_sas().is_empty());
        }

        #[test]
        fn mutated_ike_sa_init_never_panics(flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8)) {
            let (a, b) = pair();
            let now = Instant::now();
            let mut ea = Engine::with_seed(Settings::default(), 1);
            let mut eb = Engine::with_seed(Settings::default(), 2);
            ea.add_connection(a, now).unwrap();
            eb.add_connection(b, now).unwrap();
            ea.initiate("to-b", now).unwrap();
            let Some(Output::Transmit(t)) = ea.poll_output() else { panic!() };
            let mut m = t.data.clone();
            for (at, x) in flips {
                let i = at as usize % m.len();
                m[i] ^= x | 1;
            }
            eb.handle_datagram(&m, t.local, t.remote, now);
            while let Some(o) = eb.poll_output() {
                if let Output::Transmit(r) = o {
                    ea.handle_datagram(&r.data, r.local, r.remote, now);
                }
            }
            while ea.poll_output().is_some() {}
        }
    }
}

/// The SPIs of the one child SA a run with the default seeds gives: A's
/// inbound (= B's outbound) and B's inbound (= A's outbound).
fn default_child_spis() -> (u32, u32) {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (a_out, b_out) = assert_one_pair(&n);
    (b_out, a_out)
}

fn spi_refused(ev: &[Event], spi: u32) -> bool {
    ev.iter().any(|e| {
        matches!(e, Event::ChildFailed { error: control::ike::IkeError::SpiInUse(s), .. } if *s == spi)
    })
}

#[test]
fn responder_refuses_a_child_whose_spi_another_sa_holds() {
    // Same seeds: the initiator offers the same inbound SPI again, and B
    // (responder) has an outbound SA (say a manual tunnel's spi_out) with it.
    let (a_in, _) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.b.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: Default::default(),
        outbound: [a_in].into(),
    });
    n.initiate();
    // The IKE SA stands; the child is refused with NO_PROPOSAL_CHOSEN and
    // nothing is installed on either side (above all no outbound SA a_in).
    assert_eq!(established(&n.a.events), 1, "{:?}", n.a.events);
    assert_eq!(established(&n.b.events), 1, "{:?}", n.b.events);
    assert!(spi_refused(&n.b.events, a_in), "{:?}", n.b.events);
    assert_eq!(n.b.eng.stats().child_spi_in_use, 1);
    assert!(
        n.a.events.iter().any(|e| matches!(
            e,
            Event::ChildFailed {
                error: control::ike::IkeError::PeerError { code: 14, .. },
                ..
            }
        )),
        "{:?}",
        n.a.events
    );
    assert!(n.b.dp.sas.is_empty(), "{:?}", n.b.dp.sas.keys());
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(protect_spis(&n.b.dp).is_empty());
}

#[test]
fn initiator_refuses_and_deletes_a_child_whose_spi_another_sa_holds() {
    // A (initiator) holds B's SPI already as an outbound SPI.
    let (_, b_in) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.a.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: Default::default(),
        outbound: [b_in].into(),
    });
    n.initiate();
    assert_eq!(established(&n.a.events), 1, "{:?}", n.a.events);
    assert!(spi_refused(&n.a.events, b_in), "{:?}", n.a.events);
    assert_eq!(n.a.eng.stats().child_spi_in_use, 1);
    // Nothing installed by A; B was told to delete its half and did (its
    // inbound SA after the drain time).
    n.advance(Duration::from_secs(3));
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(n.b.dp.sas.is_empty(), "{:?}", n.b.dp.sas.keys());
    assert!(n
        .a
        .dp
        .policies
        .values()
        .all(|p| !matches!(p.action, PolicyAction::Protect { spi } if spi == b_in)));
}

#[test]
fn our_inbound_spis_avoid_those_held_by_other_sas() {
    let (a_in, _) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.a.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: [a_in].into(),
        outbound: Default::default(),
    });
    n.initiate();
    let (_, b_out) = assert_one_pair(&n);
    assert_ne!(b_out, a_in);
}

// ------------------------------------------------------------ MOBIKE (RFC 4555)

fn ike_status(e: &Engine) -> control::ike::IkeSaStatus {
    let mut v = e.status();
    assert_eq!(v.len(), 1, "one IKE SA: {v:?}");
    v.remove(0)
}

#[test]
fn mobike_is_negotiated_by_default_and_off_with_mobike_no() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(ike_status(&n.a.eng).mobike);
    assert!(ike_status(&n.b.eng).mobike);
    // with MOBIKE the initiator floats to 4500 in IKE_AUTH (RFC 4555 §3.3)
    assert_eq!(n.a.sent[0].1.port(), 500);
    assert_eq!(n.a.sent[1].1.port(), 4500);
    assert_eq!(&n.a.sent[1].3[..4], &[0, 0, 0, 0]);
    let (a, mut b) = pair();
    b.mobike = false;
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(!ike_status(&n.a.eng).mobike);
    assert!(!ike_status(&n.b.eng).mobike);
    assert_eq!(
        n.a.eng
            .move_sa(ike_status(&n.a.eng).id, ip("192.0.2.11"), n.now)
            .map_err(|_| ()),
        Err(())
    );
}

#[test]
fn mobike_only_the_initiator_moves_the_ike_sa() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    // B responded: RFC 4555 §3.5 leaves the choice of addresses to A
    let id = ike_status(&n.b.eng).id;
    assert!(n.b.eng.move_sa(id, ip("192.0.2.12"), n.now).is_err());
    assert!(n
        .b
        .eng
        .local_address_changed(None, ip("192.0.2.12"), n.now)
        .is_empty());
    n.pump();
    assert_eq!((n.a.dp.moves, n.b.dp.moves), (0, 0));
    assert_eq!(
        ike_status(&n.a.eng).remote,
        "192.0.2.2:4500".parse().unwrap()
    );
}

#[test]
fn mobike_update_sa_addresses_moves_children_without_rekeying() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let (installs_a, installs_b) = (n.a.dp.installs, n.b.dp.installs);
    let sent_b = n.b.sent.len();
    let moved =
        n.a.eng
            .local_address_changed(Some(ip("192.0.2.1")), ip("192.0.2.11"), n.now);
    assert_eq!(moved.len(), 1);
    n.pump();
    // same SPIs, nothing installed anew, no new IKE SA
    assert_eq!(assert_one_pair(&n), (ao, bo));
    assert_eq!((n.a.dp.installs, n.b.dp.installs), (installs_a, installs_b));
    assert_eq!(established(&n.a.events) + established(&n.b.events), 2);
    // both directions of the child moved at both ends
    assert_eq!((n.a.dp.moves, n.b.dp.moves), (2, 2));
    for ((spi, dir), sa) in &n.b.dp.sas {
        assert_eq!(sa.remote_addr, ip("192.0.2.11"), "B {spi:#x} {dir:?}");
        assert_eq!(sa.encap, None);
    }
    for sa in n.a.dp.sas.values() {
        assert_eq!(sa.local_addr, ip("192.0.2.11"));
    }
    assert_eq!(
        ike_status(&n.b.eng).remote,
        "192.0.2.11:4500".parse().unwrap()
    );
    assert_eq!(
        ike_status(&n.a.eng).local,
        "192.0.2.11:4500".parse().unwrap()
    );
    // B checked the new address (COOKIE2) before moving: it sent a request
    // there after its answer (§5.2)
    let b_to_new: Vec<_> = n.b.sent[sent_b..]
        .iter()
        .filter(|s| s.2.ip() == ip("192.0.2.11"))
        .collect();
    assert_eq!(
        b_to_new.len(),
        2,
        "B answers the update and checks the address"
    );
    for e in [&n.a.events, &n.b.events] {
        assert_eq!(
            count(e, |e| matches!(
                e,
                Event::AddressesUpdated {
                    children: 1,
                    nat_local: false,
                    nat_remote: false,
                    ..
                }
            )),
            1
        );
    }
    // the SAs keep working: a rekey and a DPD at the new addresses
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
    assert_eq!(
        n.b.dp.sas[&(ao2, Direction::Inbound)].remote_addr,
        ip("192.0.2.11")
    );
}

#[test]
fn mobike_move_behind_a_nat_switches_on_udp_encapsulation() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    assert!(n.a.dp.sas.values().all(|s| s.encap.is_none()));
    // A moves into a private network behind a NAT
    n.nat = Some(Nat {
        inside: ip("10.9.0.5"),
        public: ip("198.51.100.7"),
        map: HashMap::new(),
        next: 30000,
    });
    n.a.eng.local_address_changed(None, ip("10.9.0.5"), n.now);
    n.pump();
    assert_eq!(assert_one_pair(&n), (ao, bo));
    let mapped = n.nat.as_ref().unwrap().map[&4500];
    let b_out = &n.b.dp.sas[&(bo, Direction::Outbound)];
    assert_eq!(b_out.remote_addr, ip("198.51.100.7"));
    assert_eq!(
        b_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, mapped))
    );
    let a_out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(a_out.local_addr, ip("10.9.0.5"));
    assert_eq!(
        a_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 4500))
    );
    let sa = ike_status(&n.a.eng);
    assert!(sa.nat_local && !sa.nat_remote);
    assert!(ike_status(&n.b.eng).nat_remote);
    assert!(ike_status(&n.a.eng).children[0].encap);
    // A keeps the NAT mapping alive now
    let before = n.a.eng.stats().keepalives_tx;
    n.advance(Duration::from_secs(21));
    assert!(n.a.eng.stats().keepalives_tx > before);
}

#[test]
fn mobike_update_without_mobike_negotiated_is_ignored() {
    let (a, mut b) = pair();
    b.mobike = false;
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    // A cannot even ask; B has no MOBIKE SA to move
    assert!(n
        .a
        .eng
        .local_address_changed(None, ip("192.0.2.11"), n.now)
        .is_empty());
    n.pump();
    assert_eq!(n.b.dp.moves, 0);
    assert_eq!(
        n.b.dp.sas[&(bo, Direction::Outbound)].remote_addr,
        ip("192.0.2.1")
    );
}

#[test]
fn mobike_routability_check_unanswered_keeps_children_where_they_were() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.local_address_changed(None, ip("192.0.2.11"), n.now);
    // A's update reaches B, but every datagram B sends is lost: B answers
    // and checks, nothing comes back, its children stay
    n.drop_b = usize::MAX;
    n.pump();
    assert_eq!(n.b.dp.moves, 0);
    assert_eq!(
        n.b.dp.sas[&(bo, Direction::Outbound)].remote_addr,
        ip("192.0.2.1")
    );
    assert_eq!(n.a.dp.moves, 0, "A has no answer either");
}

/// One IKE_SA_INIT request of A's (to replay to B from other addresses).
fn init_request() -> (Vec<u8>, SocketAddr) {
    let (a, _) = pair();
    let mut s = side(7, Settings::default());
    let now = Instant::now();
    s.eng.add_connection(a, now).unwrap();
    s.eng.initiate("to-b", now).unwrap();
    while let Some(o) = s.eng.poll_output() {
        if let Output::Transmit(t) = o {
            return (t.data, t.remote);
        }
    }
    panic!("no IKE_SA_INIT");
}

#[test]
fn half_open_hard_limits_in_total_and_per_source() {
    let (_, mut cb) = pair();
    cb.remote_addr = RemoteAddr::Any;
    cb.remote_id = None;
    let s = Settings {
        cookie_threshold: 1000,
        half_open_limits: control::ike::halfopen::Limits {
            global: 3,
            per_source: 2,
        },
        ..Settings::default()
    };
    let mut b = side(2, s);
    let now = Instant::now();
    b.eng.add_connection(cb, now).unwrap();
    let (req, to) = init_request();
    let mut spi = 1u64;
    let mut send = |b: &mut Side, from: &str| {
        let mut m = req.clone();
        m[..8].copy_from_slice(&spi.to_be_bytes());
        spi += 1;
        b.eng
            .handle_datagram(&m, SocketAddr::new(ip(from), 500), to, now);
        while b.eng.poll_output().is_some() {}
    };
    for _ in 0..3 {
        send(&mut b, "198.51.100.1");
    }
    assert_eq!(b.eng.half_open(), 2);
    assert_eq!(b.eng.stats().drop_count(IkeDrop::HalfOpenPerSource), 1);
    send(&mut b, "198.51.100.2");
    send(&mut b, "198.51.100.3");
    assert_eq!(b.eng.half_open(), 3);
    assert_eq!(b.eng.stats().drop_count(IkeDrop::HalfOpenLimit), 1);
    // they time out and the counts with them, per source too
    b.eng.handle_timeout(now + Duration::from_secs(31));
    assert_eq!(b.eng.half_open(), 0);
    for _ in 0..2 {
        send(&mut b, "198.51.100.1");
    }
    assert_eq!(b.eng.half_open(), 2);
    assert_eq!(b.eng.stats().drop_count(IkeDrop::HalfOpenPerSource), 1);
}

#[test]
fn oversized_messages_are_dropped_unparsed() {
    let (_, cb) = pair();
    let mut b = side(2, Settings::default());
    let now = Instant::now();
    b.eng.add_connection(cb, now).unwrap();
    let (req, to) = init_request();
    let from = SocketAddr::new(ip("192.0.2.1"), 500);
    // an IKE_SA_INIT request longer than max_init_message (header length consistent)
    let mut big = req.clone();
    big.resize(Settings::default().max_init_message + 1, 0);
    let len = big.len() as u32;
    big[24..28].copy_from_slice(&len.to_be_bytes());
    b.eng.handle_datagram(&big, from, to, now);
    assert_eq!(b.eng.stats().drop_count(IkeDrop::TooBig), 1);
    assert_eq!(b.eng.half_open(), 0);
    assert!(
        b.eng.poll_output().is_none(),
        "no answer to an oversized request"
    );
    // anything longer than max_message
    let huge = vec![0u8; Settings::default().max_message + 5];
    b.eng.handle_datagram(&huge, from, to, now);
    assert_eq!(b.eng.stats().drop_count(IkeDrop::TooBig), 2);
    // the request itself is well within the limit and answered
    b.eng.handle_datagram(&req, from, to, now);
    assert_eq!(b.eng.half_open(), 1);
}

#[test]
fn pfs_mismatch_is_named_and_our_own_rekey_with_pfs_follows() {
    // A requires PFS (the default); B does not and rekeys without KE, as
    // strongSwan does with an ESP proposal without a DH group.
    let (mut a, mut b) = pair();
    a.pfs = true;
    b.pfs = false;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    n.b.eng.rekey_child(ao, n.now).unwrap();
    n.pump();
    // A refused B's rekey, in words (never "offered X, configured X")
    assert!(
        n.a.events.iter().any(|e| matches!(
            e,
            Event::ChildFailed {
                error: control::ike::IkeError::PfsRequired,
                ..
            }
        )),
        "{:?}",
        n.a.events
    );
    assert!(!n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ProposalMismatch { .. })));
    let text = control::ike::IkeError::PfsRequired.to_string();
    assert!(text.contains("no key exchange (no PFS)") && text.contains("set `pfs = false`"));
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::ChildDegraded {
            next: control::ike::DegradedNext::OwnRekey,
            ..
        }
    )));
    // ... and rekeyed the child itself, with PFS, which B (pfs = no) accepts
    n.advance(Duration::from_millis(10));
    assert!(
        n.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildRekeyed { old_outbound, .. } if *old_outbound == ao)),
        "{:?}",
        n.a.events
    );
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
}

#[test]
fn a_child_the_peer_deletes_is_replaced_at_once_on_a_start_connection() {
    let (mut a, b) = pair();
    a.start_action = control::ike::StartAction::Start;
    // a start connection initiates when it is added
    let mut n = Net::new(a, b);
    n.advance(Duration::from_millis(10));
    let (ao, _) = assert_one_pair(&n);
    n.b.eng.terminate_child(ao, n.now).unwrap();
    n.pump();
    assert!(
        n.a.events
            .iter()
            .any(|e| matches!(e, Event::ChildReplaced { .. })),
        "{:?}",
        n.a.events
    );
    n.advance(Duration::from_secs(3));
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
}

#[test]
fn rekey_delete_waits_the_switch_delay() {
    let (a, b) = pair();
    let mut n = Net::with_settings(a, b, Settings::default());
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let before = n.delivered;
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    // CREATE_CHILD_SA only: A sends on the new SA, the old pair stays
    assert_eq!(n.delivered - before, 2);
    assert!(n.b.dp.sas.contains_key(&(ao, Direction::Inbound)));
    assert!(!n.a.dp.sas.contains_key(&(ao, Direction::Outbound)));
    n.advance(Duration::from_millis(500));
    assert_eq!(n.delivered - before, 2, "DELETE before the switch delay");
    // then the DELETE, and after the drain time one pair is left
    n.advance(Duration::from_secs(4));
    assert_eq!(n.delivered - before, 4);
    let (ao2, bo2) = assert_one_pair(&n);
    assert!(ao2 != ao && bo2 != bo);
    assert_eq!(n.a.dp.sas.len(), 2, "{:?}", n.a.dp.sas.keys());
    assert_eq!(n.b.dp.sas.len(), 2, "{:?}", n.b.dp.sas.keys());
}

#[test]
fn a_child_that_expires_unrekeyed_after_a_stall_is_replaced_at_once() {
    let (mut a, mut b) = pair();
    for c in [&mut a, &mut b] {
        c.child_lifetime = Duration::from_secs(60);
        c.margin = Duration::from_secs(10);
        c.fuzz_percent = 0;
    }
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    // the control loop stalls past the rekey time and the expiry: the
    // first timer it runs finds the child expired, not due for rekey
    // (A's loop; B's runs its timers later)
    n.now += Duration::from_secs(61);
    n.a.eng.handle_timeout(n.now);
    n.pump();
    let (ao2, bo2) = assert_one_pair(&n);
    assert!(
        ao2 != ao && bo2 != bo,
        "a new child replaced the expired one"
    );
}

#[test]
fn peer_ike_rekey_in_the_switch_delay_after_a_child_rekey_is_accepted() {
    // RFC 7296 §2.25.2 asks for TEMPORARY_FAILURE while a child is being
    // rekeyed or closed; a child we replaced whose DELETE waits for the
    // switch delay is neither: the IKE rekey goes through and the DELETE
    // follows on the new IKE SA
    let (a, b) = pair();
    let mut n = Net::with_settings(a, b, Settings::default());
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    assert!(
        n.b.dp.sas.contains_key(&(ao, Direction::Inbound)),
        "old pair kept for the switch delay"
    );
    let b_old = n.b.eng.ike_sas()[0];
    n.b.eng.rekey_ike(b_old, n.now).unwrap();
    n.pump();
    assert!(
        n.b.events
            .iter()
            .any(|e| matches!(e, Event::IkeRekeyed { old_sa, .. } if *old_sa == b_old)),
        "B's IKE rekey refused: {:?}",
        n.b.events
    );
    assert_eq!(n.a.eng.ike_sas().len(), 1);
    assert_eq!(n.b.eng.ike_sas().len(), 1);
    // the old child's DELETE goes over the new IKE SA; one pair is left
    n.advance(Duration::from_secs(5));
    let (ao2, bo2) = assert_one_pair(&n);
    assert!(ao2 != ao && bo2 != bo);
    assert_eq!(n.a.dp.sas.len(), 2, "{:?}", n.a.dp.sas.keys());
    assert_eq!(n.b.dp.sas.len(), 2, "{:?}", n.b.dp.sas.keys());
    assert_eq!(n.a.eng.status()[0].children.len(), 1);
    assert_eq!(n.b.eng.status()[0].children.len(), 1);
}
