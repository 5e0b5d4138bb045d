//! Proposals, authentication, traffic selectors and start actions.

use super::*;

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
    let mut n = Net::from_sides(
        Side::new(5, Settings::default()),
        Side::new(6, Settings::default()),
    );
    let now = n.now;
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
    let mut n = Net::from_sides(
        Side::new(7, Settings::default()),
        Side::new(8, Settings::default()),
    );
    let now = n.now;
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
