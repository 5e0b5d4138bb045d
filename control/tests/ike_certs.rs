//! Whole IKE_AUTH exchanges between two engines in memory with signature
//! authentication: X.509 certificates of every key type (made with
//! strongSwan's `pki` and OpenSSL, control/tests/fixtures/pki), chains with
//! an intermediate, CRLs, raw RSA keys (FreeS/WAN `rsasigkey`), the legacy
//! methods for peers without RFC 7427, and IKE fragmentation (RFC 7383) over
//! a 1280-byte path. Every refusal must end in AUTHENTICATION_FAILED with a
//! reason that says why.

use std::time::Instant;

use control::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use control::ike::wire::{self, payload, Header, HEADER_LEN};
use control::ike::{
    Connection, Engine, Event, Identity, LocalAddr, LocalAuth, Output, RemoteAddr, RemoteAuth,
    Settings, WallClock,
};
use control::pki::rsakey;

const PSK: &[u8] = b"unused-psk-0123456789";

#[path = "common/pki.rs"]
mod pki;
use pki::{cert, ip, key, now_wall, trust};

/// A connection from `local` to `remote` authenticating with certificate `me`
/// (plus intermediates), accepting peers under `cas` with identity `peer_id`.
fn conn(
    name: &str,
    local: &str,
    remote: &str,
    me: &str,
    ints: &[&str],
    cas: &[&str],
    peer_id: &str,
) -> Connection {
    let mut c = Connection::new(
        name,
        LocalAddr::Addr(ip(local)),
        RemoteAddr::Addr(ip(remote)),
        PSK,
    );
    c.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    c.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
    let mut chain = vec![cert(me)];
    chain.extend(ints.iter().map(|i| cert(i)));
    c.local_auth = LocalAuth::Cert {
        key: key(me),
        chain,
        rsa_pss: false,
    };
    c.remote_auth = RemoteAuth::Cert {
        trust: trust(cas, false),
        ca: None,
    };
    c.remote_id = Some(peer_id.parse().unwrap());
    c.local_ts = vec![
        format!("10.{}.0.0/24", if local.ends_with(".1") { 1 } else { 2 })
            .parse()
            .unwrap(),
    ];
    c.remote_ts = vec![
        format!("10.{}.0.0/24", if remote.ends_with(".1") { 1 } else { 2 })
            .parse()
            .unwrap(),
    ];
    c
}

/// A's connection (192.0.2.1 to 192.0.2.2), see [`conn`].
fn a_conn(me: &str, ints: &[&str], cas: &[&str], peer_id: &str) -> Connection {
    conn("a", "192.0.2.1", "192.0.2.2", me, ints, cas, peer_id)
}

/// B's connection (192.0.2.2 to 192.0.2.1), see [`conn`].
fn b_conn(me: &str, ints: &[&str], cas: &[&str], peer_id: &str) -> Connection {
    conn("b", "192.0.2.2", "192.0.2.1", me, ints, cas, peer_id)
}

const ANY_TEST: &str = "C=CH, O=espresso test, CN=*";
const BRANCH: &str = "C=CH, O=espresso test, OU=branch, CN=*";

struct Side {
    eng: Engine,
    events: Vec<Event>,
    sent: Vec<Vec<u8>>,
}

struct Net {
    a: Side,
    b: Side,
    now: Instant,
    /// Largest UDP payload the path carries (None: any).
    mtu_payload: Option<usize>,
}

fn settings() -> Settings {
    Settings {
        clock: WallClock::Fixed(now_wall()),
        ..Settings::default()
    }
}

impl Net {
    fn new(a: Connection, b: Connection) -> Net {
        Self::with(a, b, settings(), settings())
    }
    fn with(a: Connection, b: Connection, sa: Settings, sb: Settings) -> Net {
        let now = Instant::now();
        let mut n = Net {
            a: Side {
                eng: Engine::with_seed(sa, 1),
                events: vec![],
                sent: vec![],
            },
            b: Side {
                eng: Engine::with_seed(sb, 2),
                events: vec![],
                sent: vec![],
            },
            now,
            mtu_payload: None,
        };
        n.b.eng.add_connection(b, now).unwrap();
        n.a.eng.add_connection(a, now).unwrap();
        n
    }
    fn run(&mut self) -> u64 {
        let id = self.a.eng.initiate("a", self.now).unwrap();
        self.pump();
        id
    }
    fn pump(&mut self) {
        for _ in 0..1000 {
            let a = Self::carry(&mut self.a, &mut self.b, self.mtu_payload, self.now);
            let b = Self::carry(&mut self.b, &mut self.a, self.mtu_payload, self.now);
            if !(a || b) {
                break;
            }
        }
    }
    /// Delivers `from`'s outputs to `to` (datagrams larger than the path's
    /// `mtu_payload` are lost); whether there were any.
    fn carry(from: &mut Side, to: &mut Side, mtu_payload: Option<usize>, now: Instant) -> bool {
        let mut moved = false;
        while let Some(o) = from.eng.poll_output() {
            moved = true;
            match o {
                Output::Transmit(t) => {
                    from.sent.push(t.data.clone());
                    if mtu_payload.is_some_and(|m| t.data.len() > m) {
                        continue; // too big for the path: lost
                    }
                    to.eng.handle_datagram(&t.data, t.local, t.remote, now);
                }
                Output::Event(e) => from.events.push(e),
                Output::Dataplane(_) => {}
            }
        }
        moved
    }
    fn established(&self) -> (bool, bool) {
        let up = |e: &[Event]| e.iter().any(|e| matches!(e, Event::IkeEstablished { .. }));
        (up(&self.a.events), up(&self.b.events))
    }
    fn auth_failed(ev: &[Event]) -> Vec<String> {
        ev.iter()
            .filter_map(|e| match e {
                Event::AuthFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Both ends established the IKE SA.
fn assert_up(n: &Net) {
    assert_eq!(
        n.established(),
        (true, true),
        "A {:?}\nB {:?}",
        n.a.events,
        n.b.events
    );
}

/// B refused A: B logs `why`, A hears AUTHENTICATION_FAILED.
fn assert_refused_by_b(n: &Net, why: &[&str]) {
    assert_eq!(
        n.established(),
        (false, false),
        "A {:?}\nB {:?}",
        n.a.events,
        n.b.events
    );
    let b = Net::auth_failed(&n.b.events);
    assert!(
        b.iter().any(|r| why.iter().all(|w| r.contains(w))),
        "B's reason should name {why:?}: {b:?}"
    );
    let a = Net::auth_failed(&n.a.events);
    assert!(
        a.iter().any(|r| r.contains("AUTHENTICATION_FAILED")),
        "A: {a:?}"
    );
    assert!(n.a.eng.ike_sas().is_empty() && n.b.eng.ike_sas().is_empty());
}

/// A and B run the exchange and B refuses A, saying `why`.
fn refused(a: Connection, b: Connection, why: &[&str]) {
    let mut n = Net::new(a, b);
    n.run();
    assert_refused_by_b(&n, why);
}

fn pair(a_cert: &str, b_cert: &str) -> Net {
    let cas = ["rsa-ca", "ec-ca", "ossl-ca"];
    let a = a_conn(a_cert, &[], &cas, ANY_TEST);
    let b = b_conn(b_cert, &[], &cas, ANY_TEST);
    Net::new(a, b)
}

#[test]
fn every_key_type_both_ways() {
    // (initiator cert, responder cert, scheme the responder sees, scheme the initiator sees)
    for (a, b, at_b, at_a) in [
        (
            "moon",
            "sun",
            "sha256WithRSAEncryption",
            "sha256WithRSAEncryption",
        ),
        ("mars", "jupiter", "ecdsa-with-sha256", "ecdsa-with-sha384"),
        ("pluto", "moon", "ed25519", "sha256WithRSAEncryption"),
        ("jupiter", "pluto", "ecdsa-with-sha384", "ed25519"),
    ] {
        let mut n = pair(a, b);
        let id = n.run();
        assert_eq!(
            n.established(),
            (true, true),
            "{a}->{b}: A {:?}\nB {:?}",
            n.a.events,
            n.b.events
        );
        let pa = n.a.eng.peer_auth(id).unwrap();
        assert_eq!(pa.method, at_a, "{a}->{b}");
        assert_eq!(
            pa.cert_subject.as_deref(),
            Some(cert(b).subject_str().as_str())
        );
        let bid = n.b.eng.ike_sas()[0];
        assert_eq!(n.b.eng.peer_auth(bid).unwrap().method, at_b, "{a}->{b}");
        // the peer's identity is its certificate's subject DN
        assert!(n.b.events.iter().any(|e| matches!(e, Event::IkeEstablished { remote_id, .. } if *remote_id == cert(a).subject_str())));
    }
}

#[test]
fn openssl_certificates_and_rsa_pss() {
    let cas = ["rsa-ca", "ossl-ca"];
    let mut a = a_conn("saturn", &[], &cas, "@sun.example");
    if let LocalAuth::Cert { rsa_pss, .. } = &mut a.local_auth {
        *rsa_pss = true; // saturn is ECDSA: ignored
    }
    a.local_id = Some("@saturn.example".parse().unwrap());
    let mut b = b_conn("sun", &[], &cas, "@saturn.example");
    if let LocalAuth::Cert { rsa_pss, .. } = &mut b.local_auth {
        *rsa_pss = true;
    }
    b.local_id = Some("@sun.example".parse().unwrap());
    let mut n = Net::new(a, b);
    let id = n.run();
    assert_up(&n);
    assert_eq!(n.a.eng.peer_auth(id).unwrap().method, "rsassa-pss-sha256");
}

#[test]
fn legacy_methods_without_rfc7427() {
    let no7427 = Settings {
        rfc7427: false,
        ..settings()
    };
    for (a, b) in [("moon", "sun"), ("mars", "jupiter")] {
        let cas = ["rsa-ca", "ec-ca"];
        let mut n = Net::with(
            a_conn(a, &[], &cas, ANY_TEST),
            b_conn(b, &[], &cas, ANY_TEST),
            no7427.clone(),
            settings(),
        );
        let id = n.run();
        assert_up(&n);
        // B saw no hash notify from A: it signs with method 1 / 10; A (who
        // announced nothing) got it
        let m = &n.a.eng.peer_auth(id).unwrap().method;
        assert!(
            m == "sha1WithRSAEncryption" || m == "ecdsa-sha384-fixed",
            "{m}"
        );
        let bid = n.b.eng.ike_sas()[0];
        let m = &n.b.eng.peer_auth(bid).unwrap().method;
        assert!(
            m == "sha1WithRSAEncryption" || m == "ecdsa-sha256-fixed",
            "{m}"
        );
    }
    // Ed25519 needs RFC 8420: refused with a reason, not a bad signature
    let mut n = Net::with(
        a_conn("moon", &[], &["ec-ca", "rsa-ca"], ANY_TEST),
        b_conn("pluto", &[], &["rsa-ca", "ec-ca"], ANY_TEST),
        no7427,
        settings(),
    );
    n.run();
    assert!(!n.established().0);
    let b = Net::auth_failed(&n.b.events);
    assert!(
        b.iter()
            .any(|r| r.contains("Ed25519") && r.contains("RFC 8420")),
        "{b:?}"
    );
}

#[test]
fn untrusted_ca_is_refused() {
    refused(
        a_conn("moon", &[], &["rsa-ca"], ANY_TEST),
        b_conn("mars", &[], &["ec-ca"], ANY_TEST),
        &["not trusted", "RSA Root CA"],
    );
    // a certificate of another CA with the right name is refused too
    refused(
        a_conn("mercury", &[], &["rsa-ca"], ANY_TEST),
        b_conn("sun", &[], &["rsa-ca"], ANY_TEST),
        &["not trusted", "Other Root CA"],
    );
}

#[test]
fn expired_certificate_is_refused() {
    refused(
        a_conn("expired", &[], &["rsa-ca"], ANY_TEST),
        b_conn("sun", &[], &["rsa-ca"], ANY_TEST),
        &["expired.example", "expired", "2026-06-01"],
    );
}

#[test]
fn revoked_certificate_is_refused() {
    let a = a_conn("revoked", &[], &["rsa-ca"], ANY_TEST);
    let mut b = b_conn("sun", &[], &["rsa-ca"], ANY_TEST);
    b.remote_auth = RemoteAuth::Cert {
        trust: trust(&["rsa-ca"], true),
        ca: None,
    };
    let mut n = Net::new(a, b);
    n.run();
    assert_refused_by_b(&n, &["revoked.example", "revoked", "key compromise"]);
}

#[test]
fn identity_mismatch_is_refused() {
    // B wants sun, A is moon: no connection for the identity
    refused(
        a_conn("moon", &[], &["rsa-ca"], ANY_TEST),
        b_conn(
            "sun",
            &[],
            &["rsa-ca"],
            "C=CH, O=espresso test, CN=sun.example",
        ),
        &["moon.example"],
    );
    // A claims an identity its certificate does not hold: caught at load
    let mut a = a_conn("moon", &[], &["rsa-ca"], ANY_TEST);
    a.local_id = Some("@sun.example".parse().unwrap());
    let e = a.validate().unwrap_err().to_string();
    assert!(
        e.contains("sun.example") && e.contains("not in the certificate"),
        "{e}"
    );
    // a key that does not belong to the certificate
    let mut a = a_conn("moon", &[], &["rsa-ca"], ANY_TEST);
    if let LocalAuth::Cert { key: k, .. } = &mut a.local_auth {
        *k = key("sun");
    }
    assert!(a
        .validate()
        .unwrap_err()
        .to_string()
        .contains("does not belong"));
    // the responder's certificate does not hold the IDr the initiator wants
    let a = a_conn("moon", &[], &["rsa-ca"], "@mars.example");
    let b = b_conn("sun", &[], &["rsa-ca"], ANY_TEST);
    let mut n = Net::new(a, b);
    n.run();
    assert_eq!(n.established(), (false, false));
}

#[test]
fn required_ca_rightca() {
    let a = a_conn("moon", &[], &["rsa-ca", "ec-ca"], ANY_TEST);
    let mut b = b_conn("jupiter", &[], &["rsa-ca", "ec-ca"], ANY_TEST);
    b.remote_auth = RemoteAuth::Cert {
        trust: trust(&["rsa-ca", "ec-ca"], false),
        ca: Some(control::pki::dn::parse("C=CH, O=espresso test, CN=ECDSA Root CA").unwrap()),
    };
    let mut n = Net::new(a, b);
    n.run();
    assert_refused_by_b(&n, &["required CA", "ECDSA Root CA"]);
}

/// The IKE message of a datagram (after the non-ESP marker on port 4500).
fn ike_msg(d: &[u8]) -> &[u8] {
    if d.len() > 4 && d[..4] == [0, 0, 0, 0] {
        &d[4..]
    } else {
        d
    }
}

/// Counts SKF (fragment) datagrams among `sent`.
fn fragments(sent: &[Vec<u8>]) -> usize {
    sent.iter()
        .filter(|d| Header::parse(ike_msg(d)).is_ok_and(|h| h.next_payload() == payload::SKF))
        .count()
}

#[test]
fn chain_with_intermediate_fragmented_over_1280() {
    // venus (under the intermediate) sends its chain; B trusts only the root
    let a = a_conn("venus", &["rsa-int"], &["rsa-ca"], ANY_TEST);
    let b = b_conn("moon", &[], &["rsa-ca"], BRANCH);
    let mut n = Net::new(a.clone(), b.clone());
    // IPv4 path of 1280 bytes: UDP payload at most 1280 - 20 - 8
    n.mtu_payload = Some(1252);
    n.run();
    assert_up(&n);
    assert!(
        fragments(&n.a.sent) >= 2,
        "IKE_AUTH request fragmented: {}",
        fragments(&n.a.sent)
    );
    assert!(n.a.sent.iter().chain(&n.b.sent).all(|d| d.len() <= 1252));
    // without fragmentation the IKE_AUTH request does not pass that path
    let off = Settings {
        fragmentation: false,
        ..settings()
    };
    let mut n = Net::with(a, b, off.clone(), off);
    n.mtu_payload = Some(1252);
    n.run();
    assert_eq!(n.established(), (false, false));
    assert!(
        n.a.sent.iter().any(|d| d.len() > 1252),
        "the unfragmented message is larger"
    );
    // the intermediate missing: untrusted
    refused(
        a_conn("venus", &[], &["rsa-ca"], ANY_TEST),
        b_conn("moon", &[], &["rsa-ca"], BRANCH),
        &["not trusted", "RSA Intermediate CA"],
    );
}

#[test]
fn certreq_selects_what_is_sent() {
    // B trusts the intermediate itself: A need not send it
    let a = a_conn("venus", &["rsa-int"], &["rsa-ca"], ANY_TEST);
    let b = b_conn("moon", &[], &["rsa-int", "rsa-ca"], BRANCH);
    let mut n = Net::new(a, b);
    n.run();
    assert_eq!(n.established(), (true, true));
    let venus = cert("venus").der().len();
    let int = cert("rsa-int").der().len();
    let auth_req = n.a.sent.iter().find(|d| {
        Header::parse(ike_msg(d))
            .is_ok_and(|h| h.exchange() == wire::exchange::IKE_AUTH && !h.is_response())
    });
    let len = auth_req.map(|d| d.len()).unwrap_or(0);
    assert!(
        len > venus && len < venus + int,
        "IKE_AUTH of {len} bytes: venus {venus}, intermediate {int}"
    );
}

#[test]
fn raw_rsa_keys_rsasig() {
    let mk = |name: &str, local: &str, remote: &str, me: &str, peer: &str| {
        let mut c = Connection::new(
            name,
            LocalAddr::Addr(ip(local)),
            RemoteAddr::Addr(ip(remote)),
            PSK,
        );
        c.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
        c.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
        c.local_auth = LocalAuth::RawKey {
            key: key(me),
            rsa_pss: false,
        };
        // as FreeS/WAN configures it: the peer's key in 0s form
        let zero_s = rsakey::to_0s(key(peer).public_key()).unwrap();
        c.remote_auth = RemoteAuth::RawKey {
            key: rsakey::parse_public(&zero_s).unwrap(),
        };
        c.remote_id = Some(Identity::from_ip(ip(remote)));
        c
    };
    let mut n = Net::new(
        mk("a", "192.0.2.1", "192.0.2.2", "moon", "sun"),
        mk("b", "192.0.2.2", "192.0.2.1", "sun", "moon"),
    );
    let id = n.run();
    assert_up(&n);
    assert_eq!(n.a.eng.peer_auth(id).unwrap().cert_subject, None);
    assert!(fragments(&n.a.sent) == 0);
    // B has another key for A: refused
    let mut n = Net::new(
        mk("a", "192.0.2.1", "192.0.2.2", "moon", "sun"),
        mk("b", "192.0.2.2", "192.0.2.1", "sun", "revoked"),
    );
    n.run();
    assert_refused_by_b(&n, &["configured key", "does not verify"]);
}

#[test]
fn psk_peer_against_certificate_connection() {
    let a = Connection::new(
        "a",
        LocalAddr::Addr(ip("192.0.2.1")),
        RemoteAddr::Addr(ip("192.0.2.2")),
        b"a-shared-secret-long-enough",
    );
    let mut a = a;
    a.ike_proposals = parse_ike_proposals("aes128gcm16-prfsha256-ecp256").unwrap();
    a.esp_proposals = parse_esp_proposals("aes128gcm16").unwrap();
    a.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    a.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut b = b_conn("sun", &[], &["rsa-ca"], "192.0.2.1");
    b.remote_id = None;
    let mut n = Net::new(a, b);
    n.run();
    assert_refused_by_b(&n, &["pre-shared key", "expects a certificate"]);
}

/// A damaged fragment is dropped (its own ICV), and the message completes
/// from the retransmission.
#[test]
fn fragment_integrity_is_checked_one_by_one() {
    let a = a_conn("venus", &["rsa-int"], &["rsa-ca"], ANY_TEST);
    let b = b_conn("moon", &[], &["rsa-ca"], BRANCH);
    let mut n = Net::new(a, b);
    n.mtu_payload = Some(1252);
    let _ = n.a.eng.initiate("a", n.now).unwrap();
    // IKE_SA_INIT both ways
    let t = match n.a.eng.poll_output() {
        Some(Output::Transmit(t)) => t,
        o => panic!("{o:?}"),
    };
    n.b.eng.handle_datagram(&t.data, t.local, t.remote, n.now);
    let t = loop {
        match n.b.eng.poll_output() {
            Some(Output::Transmit(t)) => break t,
            Some(_) => continue,
            None => panic!("no answer"),
        }
    };
    n.a.eng.handle_datagram(&t.data, t.local, t.remote, n.now);
    let mut frags = vec![];
    while let Some(o) = n.a.eng.poll_output() {
        if let Output::Transmit(t) = o {
            frags.push(t);
        }
    }
    assert!(frags.len() >= 2);
    let before = n.b.eng.stats().drop_count(control::ike::IkeDrop::Integrity);
    let mut bad = frags[0].data.clone();
    let l = bad.len();
    bad[l - 3] ^= 0x40;
    n.b.eng
        .handle_datagram(&bad, frags[0].local, frags[0].remote, n.now);
    assert_eq!(
        n.b.eng.stats().drop_count(control::ike::IkeDrop::Integrity),
        before + 1
    );
    for f in &frags {
        n.b.eng.handle_datagram(&f.data, f.local, f.remote, n.now);
    }
    let mut answered = false;
    while let Some(o) = n.b.eng.poll_output() {
        if let Output::Transmit(t) = o {
            let m = ike_msg(&t.data);
            answered |= Header::parse(m).is_ok_and(|h| h.exchange() == wire::exchange::IKE_AUTH);
            assert!(m.len() > HEADER_LEN);
        }
    }
    assert!(answered, "B answered once every fragment was in");
}

/// Fragmentation carries over to a rekeyed IKE SA: after an IKE rekey, a
/// child rekey whose 120 traffic selectors do not fit the 1280-byte path is
/// fragmented on the new SA and completes.
#[test]
fn rekeyed_ike_sa_keeps_fragmenting() {
    let mut a = a_conn("mars", &[], &["ec-ca"], ANY_TEST);
    let mut b = b_conn("jupiter", &[], &["ec-ca"], ANY_TEST);
    a.local_ts = (0..120)
        .map(|i| format!("10.1.{i}.0/24").parse().unwrap())
        .collect();
    b.remote_ts = vec!["10.1.0.0/16".parse().unwrap()];
    let mut n = Net::new(a, b);
    n.mtu_payload = Some(1252);
    let id = n.run();
    assert_up(&n);
    n.a.eng.rekey_ike(id, n.now).unwrap();
    n.pump();
    assert!(
        n.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeRekeyed { .. })),
        "A {:?}",
        n.a.events
    );
    let new = n.a.eng.ike_sas()[0];
    assert_ne!(new, id);
    let st = &n.a.eng.status()[0];
    assert_eq!(st.children[0].local_ts.len(), 120);
    let spi = st.children[0].inbound_spi;
    let before = (fragments(&n.a.sent), fragments(&n.b.sent));
    n.a.eng.rekey_child(spi, n.now).unwrap();
    n.pump();
    let after = (fragments(&n.a.sent), fragments(&n.b.sent));
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "{before:?} -> {after:?}"
    );
    let st = &n.a.eng.status()[0];
    assert!(
        st.children
            .iter()
            .any(|c| c.inbound_spi != spi && c.state == "INSTALLED"),
        "{:?}",
        n.a.events
    );
    assert!(n.a.sent.iter().chain(&n.b.sent).all(|d| d.len() <= 1252));
}
