//! Main, aggressive and quick mode: proposals, PFS, identities, legacy algorithms, the commit bit, lifetimes notified, trap policies, IPv6.

use super::*;

#[test]
fn main_mode_and_quick_mode() {
    let mut n = Net::new(pair().0, pair().1);
    let id = n.initiate();
    assert_eq!(
        established(&n),
        (1, 1),
        "A {:?}\nB {:?}",
        n.a.events,
        n.b.events
    );
    let (ao, bo) = assert_one_pair(&n);
    assert_ne!(ao, bo);
    let st = &n.a.eng.status()[0];
    assert_eq!(st.sa.id, id);
    assert_eq!(st.mode, ExchangeMode::Main);
    assert_eq!(st.sa.state, "ESTABLISHED");
    assert_eq!(st.sa.proposal, "aes128-sha256-ecp256");
    assert_eq!(st.sa.remote_id.as_deref(), Some("192.0.2.2"));
    assert_eq!(st.sa.children[0].proposal, "aes128gcm16-ecp256");
    assert!(st.peer_dpd && st.nat_t == "rfc3947");
    // 6 main mode + 3 quick mode datagrams, nothing dropped
    assert_eq!(n.delivered, 9);
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        0
    );
    // PFS on by default: the selectors and tunnel mode
    let out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(out.selectors[0].local, "10.1.0.0/24".parse().unwrap());
    assert_eq!(out.selectors[0].remote, "10.2.0.0/24".parse().unwrap());
    assert!(out.encap.is_none(), "no NAT, no encapsulation");
    assert_eq!(out.enc_key.len(), 20, "AES-GCM-128 key + salt");
}

#[test]
fn aggressive_mode_with_fqdn_ids_and_any_responder() {
    let mut n = with(|a, b| {
        a.exchange = ExchangeMode::Aggressive;
        b.exchange = ExchangeMode::Aggressive;
        a.local_id = Some("@west.example.net".parse().unwrap());
        a.remote_id = Some("@east.example.net".parse().unwrap());
        b.local_id = Some("@east.example.net".parse().unwrap());
        b.remote_id = Some("@west.example.net".parse().unwrap());
        // Halon's "aggressive passive": any address, known identity
        b.remote_addr = RemoteAddr::Any;
    });
    n.initiate();
    assert_eq!(established(&n), (1, 1), "{:?}", n.b.events);
    assert_one_pair(&n);
    let st = &n.b.eng.status()[0];
    assert_eq!(st.mode, ExchangeMode::Aggressive);
    assert_eq!(st.sa.remote_id.as_deref(), Some("@west.example.net"));
    // 3 aggressive + 3 quick mode
    assert_eq!(n.delivered, 6);
}

#[test]
fn aggressive_mode_wrong_identity_is_refused() {
    let mut n = with(|a, b| {
        a.exchange = ExchangeMode::Aggressive;
        b.exchange = ExchangeMode::Aggressive;
        a.local_id = Some("@intruder.example.net".parse().unwrap());
        a.remote_id = Some("@east.example.net".parse().unwrap());
        b.local_id = Some("@east.example.net".parse().unwrap());
        b.remote_id = Some("@west.example.net".parse().unwrap());
    });
    n.initiate();
    assert_eq!(established(&n), (0, 0));
    assert!(n.b.eng.stats().drop_count(V1Drop::NoConnection) >= 1);
}

#[test]
fn quick_mode_without_pfs_and_with_pfs() {
    let mut n = with(|a, b| {
        a.pfs = false;
        b.pfs = false;
    });
    n.initiate();
    assert_eq!(n.a.eng.status()[0].sa.children[0].proposal, "aes128gcm16");
    assert_one_pair(&n);
    // pfs = no on the responder still accepts a peer that proposes PFS (as Openswan does)
    let mut n = with(|_, b| b.pfs = false);
    n.initiate();
    assert_eq!(
        n.b.eng.status()[0].sa.children[0].proposal,
        "aes128gcm16-ecp256"
    );
    // an explicit PFS group in the ESP proposal; CBC + HMAC
    let mut n = with(|a, b| {
        a.esp_proposals = parse_phase2("aes256-sha256-modp3072").unwrap();
        b.esp_proposals = parse_phase2("aes256-sha256-modp3072, aes128gcm16").unwrap();
    });
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    assert_eq!(n.a.dp.sas[&(ao, Direction::Outbound)].auth_key.len(), 32);
    assert_eq!(
        n.a.eng.status()[0].sa.children[0].proposal,
        "aes256-sha256-modp3072"
    );
    // pfs = yes refuses a peer without PFS
    let mut n = with(|a, _| a.pfs = false);
    n.initiate();
    assert_eq!(established(&n), (0, 0));
    assert!(n
        .a
        .events
        .iter()
        .any(|e| matches!(e, Event::ChildFailed { .. })));
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::ProposalMismatch { kind: "ESP", .. })));
}

#[test]
fn several_quick_mode_sas_per_isakmp_sa() {
    let mut n = with(|a, b| {
        a.local_ts = vec![
            "10.1.0.0/24".parse().unwrap(),
            "10.3.0.0/24".parse().unwrap(),
        ];
        b.remote_ts = vec![
            "10.1.0.0/24".parse().unwrap(),
            "10.3.0.0/24".parse().unwrap(),
        ];
    });
    n.initiate();
    assert_eq!(established(&n), (2, 2));
    assert_eq!(n.a.eng.status().len(), 1, "one ISAKMP SA");
    assert_eq!(n.a.eng.status()[0].sa.children.len(), 2);
    assert_eq!(protect_spis(&n.a.dp).len(), 2);
    assert_eq!(n.a.dp.policies.len(), 2);
    // a further one on demand (acquire from a trap) reuses the ISAKMP SA
    let before = n.delivered;
    let id = n.a.eng.ike_sas()[0];
    let _ = id;
    n.a.eng.handle_dataplane_event(
        &SaEvent::SoftExpire {
            spi: a_child(&n),
            direction: Direction::Inbound,
            kind: espresso_core::sa::LifetimeKind::Bytes,
        },
        n.now,
    );
    n.pump();
    // the initiator switches Settings::rekey_switch_delay after QM3 and
    // deletes the old SA as long again after that
    assert_eq!(n.delivered - before, 3, "QM1, QM2, QM3");
    n.advance(Duration::from_millis(1100));
    assert_eq!(
        n.delivered - before,
        3,
        "no delete yet: packets on the old SA may be on the way"
    );
    n.advance(Duration::from_millis(1100));
    assert_eq!(
        n.delivered - before,
        4,
        "QM1, QM2, QM3 and the delete of the old SA"
    );
    assert_eq!(n.a.eng.status().len(), 1);
}

#[test]
fn legacy_needs_allow_legacy() {
    let (mut a, _) = pair();
    a.phase1_proposals = parse_phase1("3DES MD5 2").unwrap();
    let mut e = Engine::with_seed(Settings::default(), 1);
    let err = e
        .add_connection(a.clone(), Instant::now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_legacy"), "{err}");
    let (_, mut b) = pair();
    b.esp_proposals = parse_phase2("aes-sha1;modp1024").unwrap();
    let err = e.add_connection(b, Instant::now()).unwrap_err().to_string();
    assert!(err.contains("allow_legacy"), "{err}");
    // A allows legacy and offers only 3DES/MD5; B does not: refused, explained
    let mut n = with(|a, b| {
        a.allow_legacy = true;
        a.phase1_proposals = parse_phase1("3des-md5-modp1024").unwrap();
        b.phase1_proposals = parse_phase1("aes128-sha256-ecp256, aes256-sha1-modp2048").unwrap();
    });
    n.initiate();
    assert_eq!(established(&n), (0, 0));
    let m =
        n.b.events
            .iter()
            .find_map(|e| match e {
                Event::ProposalMismatch {
                    offered,
                    configured,
                    local_responder: true,
                    ..
                } => Some((offered.clone(), configured.clone())),
                _ => None,
            })
            .expect("mismatch explained");
    assert_eq!(m.0, vec!["3des-md5-modp1024".to_string()]);
    assert_eq!(
        m.1,
        vec![
            "aes128-sha256-ecp256".to_string(),
            "aes256-sha1-modp2048".into()
        ]
    );
    assert!(
        n.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeDeleted { .. })),
        "A gives up at once"
    );
    // both allow legacy: the seeds' "3DES MD5 2" works end to end
    let mut n = with(|a, b| {
        for c in [a, b] {
            c.allow_legacy = true;
            c.phase1_proposals = parse_phase1("3DES MD5 2").unwrap();
            c.esp_proposals = parse_phase2("3DES MD5 2").unwrap();
        }
    });
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    assert_eq!(n.a.dp.sas[&(ao, Direction::Outbound)].enc_key.len(), 24);
    assert!(n.a.dp.sas[&(ao, Direction::Outbound)].allow_legacy);
}

#[test]
fn commit_bit_waits_for_connected() {
    let s = Settings {
        commit_bit: true,
        ..Settings::default()
    };
    let mut n = Net::with_settings(pair().0, pair().1, s);
    n.initiate();
    assert_eq!(established(&n), (1, 1));
    // QM1 carried the commit bit; B answered QM3 with CONNECTED (4th message)
    assert_eq!(n.delivered, 10);
    assert_ne!(
        n.a.sent.iter().find(|s| s.3[18] == 32).unwrap().3[19] & 0x02,
        0
    );
    assert_one_pair(&n);
    // CONNECTED lost: A waits, then uses the SA anyway
    let s = Settings {
        commit_bit: true,
        ..Settings::default()
    };
    let mut n = Net::with_settings(pair().0, pair().1, s);
    n.initiate();
    let id = n.a.eng.ike_sas()[0];
    let _ = id;
    n.drop_b_connected = true;
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    assert_eq!(
        n.a.eng.status()[0]
            .sa
            .children
            .iter()
            .filter(|c| c.state == "INSTALLING")
            .count(),
        1
    );
    n.advance(Duration::from_secs(15));
    assert_one_pair(&n);
    assert_eq!(
        count(&n.a.events, |e| matches!(e, Event::ChildRekeyed { .. })),
        1
    );
}

#[test]
fn responder_lifetime_is_sent_and_honoured() {
    let mut n = with(|a, b| {
        a.child_lifetime = Duration::from_secs(3600);
        b.child_lifetime = Duration::from_secs(1200);
        b.margin = Duration::from_secs(100);
    });
    n.initiate();
    let c = &n.a.eng.status()[0].sa.children[0];
    assert_eq!(
        (c.expire_at - c.created).as_secs(),
        1200,
        "the responder's shorter lifetime"
    );
    assert!(c.rekey_at.unwrap() < c.expire_at);
    // the other way round: the initiator's shorter lifetime is accepted as is
    let mut n = with(|a, b| {
        a.child_lifetime = Duration::from_secs(1200);
        a.margin = Duration::from_secs(100);
        b.child_lifetime = Duration::from_secs(3600);
    });
    n.initiate();
    let c = &n.b.eng.status()[0].sa.children[0];
    assert_eq!((c.expire_at - c.created).as_secs(), 1200);
}

#[test]
fn wrong_psk_fails_authentication() {
    let mut n =
        with(|_, b| b.psk = espresso_core::key::Key::from_slice(b"another-psk-of-enough-length"));
    n.initiate();
    assert_eq!(established(&n), (0, 0));
    assert!(n
        .b
        .events
        .iter()
        .any(|e| matches!(e, Event::AuthFailed { .. })));
    assert!(n.b.eng.stats().drop_count(V1Drop::Decrypt) >= 1);
    // B told A (AUTHENTICATION-FAILED in the clear): A gave up at once
    assert!(
        n.a.events
            .iter()
            .any(|e| matches!(e, Event::IkeDeleted { .. })),
        "{:?}",
        n.a.events
    );
    n.advance(Duration::from_secs(60));
    assert!(n.a.eng.status().is_empty() && n.b.eng.status().is_empty());
    assert_eq!(n.b.eng.half_open(), 0);
}

#[test]
fn trap_policy_acquire_initiates() {
    let mut n = with(|a, _| a.start_action = StartAction::Trap);
    assert_eq!(
        n.a.dp.policies.len(),
        0,
        "policies are applied through pump"
    );
    n.pump();
    let trap = *n.a.dp.policies.keys().next().unwrap();
    assert!(matches!(n.a.dp.policies[&trap].action, PolicyAction::Trap));
    n.a.eng.handle_dataplane_event(
        &SaEvent::Acquire {
            policy_id: trap,
            src: ip("10.1.0.5"),
            dst: ip("10.2.0.9"),
            proto: 1,
        },
        n.now,
    );
    n.pump();
    assert!(established(&n).0 >= 1);
    assert!(
        matches!(n.a.dp.policies[&trap].action, PolicyAction::Protect { .. }),
        "the trap became protect"
    );
}

#[test]
fn ipv6_gateways_and_subnets() {
    let mk = |name: &str, l: &str, r: &str, ls: &str, rs: &str| {
        let mut c = conn(name, l, r);
        c.local_ts = vec![ls.parse().unwrap()];
        c.remote_ts = vec![rs.parse().unwrap()];
        c
    };
    let a = mk(
        "to-b",
        "2001:db8::1",
        "2001:db8::2",
        "fd00:1::/64",
        "fd00:2::/64",
    );
    let b = mk(
        "to-a",
        "2001:db8::2",
        "2001:db8::1",
        "fd00:2::/64",
        "fd00:1::/64",
    );
    let mut n = Net::new(a, b);
    n.initiate();
    assert_eq!(established(&n), (1, 1), "{:?}", n.b.events);
    let (ao, _) = assert_one_pair(&n);
    let out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(out.selectors[0].remote, "fd00:2::/64".parse().unwrap());
    assert_eq!(
        n.b.eng.status()[0].sa.remote_id.as_deref(),
        Some("2001:db8::1")
    );
}
