//! Whole IKEv1 phase 1 + quick mode exchanges between two engines in memory
//! with RSA signature authentication (RFC 2409 §5.1): X.509 certificates
//! made with strongSwan's `pki` (control/tests/fixtures/pki), a chain with
//! an intermediate, identities as DN, FQDN and IPv4 address, raw RSA keys
//! (FreeS/WAN `rsasigkey`), main and aggressive mode, both roles. Every
//! refusal (untrusted CA, revoked certificate, wrong raw key, identity
//! mismatch) must end in an AuthFailed event that says why, a counted
//! `auth` drop and no IPsec SA.

use std::time::Instant;

use control::ike::{Identity, LocalAddr, LocalAuth, RemoteAddr, RemoteAuth, WallClock};
use control::ikev1::proposal::{parse_phase1, parse_phase2};
use control::ikev1::wire;
use control::ikev1::{
    Connection, DataplaneOp, Engine, Event, ExchangeMode, Output, Settings, V1Drop,
};
use control::pki::rsakey;

#[path = "common/pki.rs"]
mod pki;
use pki::{cert, ip, key, now_wall, trust};

/// A connection `name` from `local` to `remote` with no authentication yet.
fn base(name: &str, local: &str, remote: &str) -> Connection {
    let mut c = Connection::new(
        name,
        LocalAddr::Addr(ip(local)),
        RemoteAddr::Addr(ip(remote)),
        b"",
    );
    c.phase1_proposals = parse_phase1("aes128-sha256-modp2048").unwrap();
    c.esp_proposals = parse_phase2("aes128gcm16").unwrap();
    let n = |a: &str| if a.ends_with(".1") { 1 } else { 2 };
    c.local_ts = vec![format!("10.{}.0.0/24", n(local)).parse().unwrap()];
    c.remote_ts = vec![format!("10.{}.0.0/24", n(remote)).parse().unwrap()];
    c
}

/// Certificate `me` (plus intermediates), accepting peers under `cas`.
fn with_cert(mut c: Connection, me: &str, ints: &[&str], cas: &[&str], crl: bool) -> Connection {
    let mut chain = vec![cert(me)];
    chain.extend(ints.iter().map(|i| cert(i)));
    c.local_auth = LocalAuth::Cert {
        key: key(me),
        chain,
        rsa_pss: false,
    };
    c.remote_auth = RemoteAuth::Cert {
        trust: trust(cas, crl),
        ca: None,
    };
    c
}

/// Raw keys: ours `me`, the peer's public key `peer`.
fn with_raw(mut c: Connection, me: &str, peer: &str) -> Connection {
    c.local_auth = LocalAuth::RawKey {
        key: key(me),
        rsa_pss: false,
    };
    // through the FreeS/WAN form, as configured
    let s = rsakey::to_0s(key(peer).public_key()).unwrap();
    c.remote_auth = RemoteAuth::RawKey {
        key: rsakey::parse_public(&s).unwrap(),
    };
    c
}

fn settings() -> Settings {
    Settings {
        clock: WallClock::Fixed(now_wall()),
        ..Settings::default()
    }
}

#[derive(Default)]
struct Side {
    events: Vec<Event>,
    installs: usize,
    sent: Vec<Vec<u8>>,
}

struct Net {
    a: Engine,
    b: Engine,
    sa: Side,
    sb: Side,
    now: Instant,
}

impl Net {
    /// A initiates connection `a` to B, which has the connections `b`.
    fn new(a: Connection, b: Vec<Connection>) -> Net {
        let now = Instant::now();
        let mut n = Net {
            a: Engine::with_seed(settings(), 1),
            b: Engine::with_seed(settings(), 2),
            sa: Side::default(),
            sb: Side::default(),
            now,
        };
        for c in b {
            n.b.add_connection(c, now).unwrap();
        }
        n.a.add_connection(a, now).unwrap();
        n
    }
    fn run(&mut self) {
        self.a.initiate("a", self.now).unwrap();
        self.pump();
    }
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(o) = self.a.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(t) => {
                        self.sa.sent.push(t.data.clone());
                        self.b.handle_datagram(&t.data, t.local, t.remote, self.now);
                    }
                    Output::Event(e) => self.sa.events.push(e),
                    Output::Dataplane(DataplaneOp::InstallSa(_)) => self.sa.installs += 1,
                    Output::Dataplane(_) => {}
                }
            }
            while let Some(o) = self.b.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(t) => {
                        self.sb.sent.push(t.data.clone());
                        self.a.handle_datagram(&t.data, t.local, t.remote, self.now);
                    }
                    Output::Event(e) => self.sb.events.push(e),
                    Output::Dataplane(DataplaneOp::InstallSa(_)) => self.sb.installs += 1,
                    Output::Dataplane(_) => {}
                }
            }
            if !moved {
                break;
            }
        }
    }
    fn up(&self) -> (bool, bool) {
        let up = |e: &[Event]| e.iter().any(|e| matches!(e, Event::IkeEstablished { .. }));
        (up(&self.sa.events), up(&self.sb.events))
    }
    /// Both sides have an IPsec SA pair (inbound and outbound each).
    fn assert_tunnel(&self) {
        assert_eq!(
            self.up(),
            (true, true),
            "{:?} / {:?}",
            self.sa.events,
            self.sb.events
        );
        assert!(self.sa.installs >= 2 && self.sb.installs >= 2);
    }
    fn failures(ev: &[Event]) -> Vec<String> {
        ev.iter()
            .filter_map(|e| match e {
                Event::AuthFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
    /// B refused A: a reason containing `why`, one counted auth drop, nothing installed.
    fn assert_refused_by_b(&self, why: &str) {
        let f = Self::failures(&self.sb.events);
        assert!(
            f.iter().any(|r| r.contains(why)),
            "B's failures {f:?} lack {why:?}"
        );
        assert_eq!(self.b.stats().drop_count(V1Drop::Auth), 1);
        assert_eq!((self.sa.installs, self.sb.installs), (0, 0));
        assert!(!self.up().1);
    }
    fn status_b(&self) -> control::ikev1::Ikev1SaStatus {
        self.b.status().remove(0)
    }
}

const MOON: &str = "C=CH, O=espresso test, CN=moon.example";
const SUN: &str = "C=CH, O=espresso test, CN=sun.example";

/// moon (192.0.2.1) initiates to sun (192.0.2.2), both RSA certificates
/// under the pki root; identities default to the subject DNs.
fn cert_pair() -> (Connection, Connection) {
    let a = with_cert(
        base("a", "192.0.2.1", "192.0.2.2"),
        "moon",
        &[],
        &["rsa-ca"],
        true,
    );
    let b = with_cert(
        base("b", "192.0.2.2", "192.0.2.1"),
        "sun",
        &[],
        &["rsa-ca"],
        true,
    );
    (a, b)
}

#[test]
fn main_mode_certificates_both_ways_with_dn_identities() {
    let (a, mut b) = cert_pair();
    b.remote_id = Some("C=CH, O=espresso test, CN=*".parse().unwrap());
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_tunnel();
    let s = n.status_b();
    assert_eq!(s.peer_auth.as_deref(), Some("pubkey"));
    assert_eq!(s.peer_cert.as_deref(), Some(MOON));
    assert_eq!(s.sa.remote_id.as_deref(), Some(MOON));
    assert_eq!(s.sa.proposal, "aes128-sha256-modp2048");
    let sa = n.a.status().remove(0);
    assert_eq!(sa.peer_cert.as_deref(), Some(SUN));
    // MM3 and MM4 ask for a certificate of the trusted CA by its DN
    for m in [&n.sa.sent[1], &n.sb.sent[1]] {
        let h = wire::Header::parse(m).unwrap();
        let p = wire::Payloads::parse(&m[wire::HEADER_LEN..], h.next_payload()).unwrap();
        assert!(p.ke.is_some());
        assert_eq!(p.certreqs.len(), 1);
        assert_eq!(p.certreqs[0].encoding, 4);
        assert_eq!(p.certreqs[0].data, cert("rsa-ca").subject());
    }
    // MM5 is encrypted: no certificate or identity in the clear
    let h = wire::Header::parse(&n.sa.sent[2]).unwrap();
    assert!(h.encrypted());
    assert_eq!(n.a.stats().drops_total(), 0);
    assert_eq!(n.b.stats().drops_total(), 0);
}

#[test]
fn main_mode_certificates_with_fqdn_and_address_identities() {
    for (ida, idb) in [
        ("@moon.example", "@sun.example"),
        ("192.0.2.1", "192.0.2.2"),
    ] {
        let (mut a, mut b) = cert_pair();
        a.local_id = Some(ida.parse().unwrap());
        a.remote_id = Some(idb.parse().unwrap());
        b.local_id = Some(idb.parse().unwrap());
        b.remote_id = Some(ida.parse().unwrap());
        let mut n = Net::new(a, vec![b]);
        n.run();
        n.assert_tunnel();
        assert_eq!(n.status_b().sa.remote_id.as_deref(), Some(ida));
        assert_eq!(n.status_b().peer_cert.as_deref(), Some(MOON));
    }
}

#[test]
fn chain_with_an_intermediate() {
    let a = with_cert(
        base("a", "192.0.2.1", "192.0.2.2"),
        "venus",
        &["rsa-int"],
        &["rsa-ca"],
        false,
    );
    let (_, b) = cert_pair();
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_tunnel();
    assert_eq!(
        n.status_b().peer_cert.as_deref(),
        Some("C=CH, O=espresso test, OU=branch, CN=venus.example")
    );
}

#[test]
fn aggressive_mode_certificates() {
    let (mut a, mut b) = cert_pair();
    a.exchange = ExchangeMode::Aggressive;
    b.exchange = ExchangeMode::Aggressive;
    a.local_id = Some("@moon.example".parse().unwrap());
    b.remote_id = Some("@moon.example".parse().unwrap());
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_tunnel();
    assert_eq!(n.status_b().peer_cert.as_deref(), Some(MOON));
    assert_eq!(n.status_b().mode, ExchangeMode::Aggressive);
}

#[test]
fn raw_rsa_keys_main_and_aggressive() {
    for mode in [ExchangeMode::Main, ExchangeMode::Aggressive] {
        let mut a = with_raw(base("a", "192.0.2.1", "192.0.2.2"), "moon", "sun");
        let mut b = with_raw(base("b", "192.0.2.2", "192.0.2.1"), "sun", "moon");
        a.exchange = mode;
        b.exchange = mode;
        let mut n = Net::new(a, vec![b]);
        n.run();
        n.assert_tunnel();
        let s = n.status_b();
        assert_eq!(s.peer_auth.as_deref(), Some("rsasig"));
        assert_eq!(s.peer_cert, None);
        assert_eq!(s.sa.remote_id.as_deref(), Some("192.0.2.1"));
    }
}

#[test]
fn the_responder_picks_the_connection_the_certificate_fits() {
    // two certificate connections for the same peer address: only the
    // second accepts moon's identity
    let (a, b) = cert_pair();
    let mut other = b.clone();
    other.name = "b-other".into();
    other.remote_id = Some("@someone-else.example".parse().unwrap());
    let mut right = b;
    right.remote_id = Some(MOON.parse::<Identity>().unwrap());
    let mut n = Net::new(a, vec![other, right]);
    n.run();
    n.assert_tunnel();
    assert_eq!(n.status_b().sa.conn, "b");
}

#[test]
fn untrusted_ca_is_refused() {
    let a = with_cert(
        base("a", "192.0.2.1", "192.0.2.2"),
        "mercury",
        &[],
        &["rsa-ca"],
        false,
    );
    let (_, b) = cert_pair();
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_refused_by_b("is not trusted");
}

#[test]
fn revoked_certificate_is_refused() {
    let a = with_cert(
        base("a", "192.0.2.1", "192.0.2.2"),
        "revoked",
        &[],
        &["rsa-ca"],
        false,
    );
    let (_, b) = cert_pair();
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_refused_by_b("revoked");
}

#[test]
fn wrong_raw_key_is_refused() {
    let a = with_raw(base("a", "192.0.2.1", "192.0.2.2"), "moon", "sun");
    // B expects neptune's key, moon signs
    let b = with_raw(base("b", "192.0.2.2", "192.0.2.1"), "sun", "neptune");
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_refused_by_b("remote_rsasigkey");
}

#[test]
fn identity_not_in_the_certificate_is_refused() {
    let (a, mut b) = cert_pair();
    b.remote_id = Some("@venus.example".parse().unwrap());
    let mut n = Net::new(a, vec![b]);
    n.run();
    n.assert_refused_by_b("is not the configured @venus.example");
}

#[test]
fn key_not_of_the_certificate_is_refused_at_load() {
    let (mut a, _) = cert_pair();
    a.local_auth = LocalAuth::Cert {
        key: key("neptune"),
        chain: vec![cert("moon")],
        rsa_pss: false,
    };
    let e = Engine::with_seed(settings(), 1)
        .add_connection(a, Instant::now())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not belong to the certificate"), "{e}");
    // an identity the certificate does not carry
    let (mut a, _) = cert_pair();
    a.local_id = Some("@venus.example".parse().unwrap());
    let e = a.validate().unwrap_err().to_string();
    assert!(e.contains("is not in the certificate"), "{e}");
    // ECDSA, PSS and mixed methods are refused with the field named
    let (mut a, _) = cert_pair();
    a.local_auth = LocalAuth::Cert {
        key: key("mars"),
        chain: vec![cert("mars")],
        rsa_pss: false,
    };
    assert!(a
        .validate()
        .unwrap_err()
        .to_string()
        .contains("local_key is a"));
    let (mut a, _) = cert_pair();
    a.local_auth = LocalAuth::RawKey {
        key: key("moon"),
        rsa_pss: true,
    };
    assert!(a
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rsa_pss = true"));
    let (mut a, _) = cert_pair();
    a.remote_auth = RemoteAuth::Psk;
    let e = a.validate().unwrap_err().to_string();
    assert!(
        e.contains("local_auth = pubkey and remote_auth = psk"),
        "{e}"
    );
}

#[test]
fn psk_and_signature_connections_side_by_side() {
    // B has a PSK connection and a certificate connection for the same
    // peer: the proposal's authentication method picks one
    let (a, b) = cert_pair();
    let mut psk = Connection::new(
        "b-psk",
        LocalAddr::Addr(ip("192.0.2.2")),
        RemoteAddr::Addr(ip("192.0.2.1")),
        b"a-long-enough-pre-shared-key-0123",
    );
    psk.phase1_proposals = b.phase1_proposals.clone();
    psk.esp_proposals = b.esp_proposals.clone();
    let mut n = Net::new(a, vec![psk, b]);
    n.run();
    n.assert_tunnel();
    assert_eq!(n.status_b().sa.conn, "b");
    assert_eq!(n.status_b().peer_auth.as_deref(), Some("pubkey"));
}
