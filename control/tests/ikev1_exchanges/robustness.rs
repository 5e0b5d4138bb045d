//! Deletes, DPD, retransmission, replays and tampering, NAT traversal, half-open limits.

use super::*;

#[test]
fn deletes_both_ways() {
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    n.a.eng.terminate_child(a_child(&n), n.now).unwrap();
    n.pump();
    assert!(n.b.eng.status()[0].sa.children.is_empty());
    assert!(n.b.dp.policies.is_empty() && n.a.dp.policies.is_empty());
    n.advance(Duration::from_secs(3));
    assert!(
        n.b.dp.sas.is_empty() && n.a.dp.sas.is_empty(),
        "{:?}",
        n.b.dp.sas.keys()
    );
    assert_eq!(
        count(&n.b.events, |e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Peer,
                ..
            }
        )),
        1
    );
    // a new one, then B deletes everything
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    let id = n.b.eng.ike_sas()[0];
    n.b.eng.terminate_ike(id, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(3));
    assert!(n.a.eng.status().is_empty() && n.b.eng.status().is_empty());
    assert!(n.a.dp.sas.is_empty() && n.a.dp.policies.is_empty());
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::Peer,
            ..
        }
    )));
}

#[test]
fn dpd_detects_a_silent_peer() {
    for action in [DpdAction::Clear, DpdAction::Restart] {
        let mut n = with(|a, _| {
            a.dpd.delay = Duration::from_secs(10);
            a.dpd.timeout = Duration::from_secs(30);
            a.dpd.action = action;
        });
        n.initiate();
        // alive: R-U-THERE answered, nothing happens
        n.advance(Duration::from_secs(60));
        assert!(n.a.eng.stats().dpd_sent >= 3);
        assert_eq!(
            count(&n.a.events, |e| matches!(e, Event::DpdDead { .. })),
            0
        );
        assert_one_pair(&n);
        n.b_down = true;
        n.advance(Duration::from_secs(60));
        assert_eq!(
            count(&n.a.events, |e| matches!(e, Event::DpdDead { .. })),
            1,
            "{action:?}"
        );
        assert!(n.a.dp.sas.is_empty() && n.a.dp.policies.is_empty());
        let restarted = n.a.eng.status().len();
        assert_eq!(
            restarted,
            usize::from(action == DpdAction::Restart),
            "{action:?}"
        );
    }
}

#[test]
fn retransmission_with_backoff_and_a_limit() {
    let s = Settings {
        retransmit_tries: 3,
        ..Settings::default()
    };
    let mut n = Net::with_settings(pair().0, pair().1, s);
    n.b_down = true;
    n.initiate();
    n.advance(Duration::from_secs(120));
    let sent: Vec<Instant> = n.a.sent.iter().map(|s| s.0).collect();
    assert_eq!(sent.len(), 4, "MM1 and 3 retransmissions");
    let gaps: Vec<f64> = sent
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "backoff: {gaps:?}");
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeDeleted {
            reason: DeleteReason::Failed(control::ike::IkeError::Timeout(4)),
            ..
        }
    )));
    assert!(n.a.eng.status().is_empty());
    // a lost answer: the retransmitted request gets the same answer again
    let mut n = Net::new(pair().0, pair().1);
    n.drop_b = 1; // MM2 lost
    n.initiate();
    assert_eq!(established(&n), (0, 0));
    n.advance(Duration::from_secs(5));
    assert_eq!(established(&n), (1, 1));
    assert_one_pair(&n);
    // QM2 lost: B repeats it for the retransmitted QM1 (no second SA)
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    n.drop_b = 1;
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(5));
    assert!(n.b.eng.stats().replies_repeated >= 1);
    assert!(n.b.eng.stats().drop_count(V1Drop::Duplicate) >= 1);
    assert_one_pair(&n);
}

#[test]
fn replayed_and_tampered_messages_are_counted_drops() {
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    let qm1 =
        n.a.sent
            .iter()
            .rev()
            .find(|s| s.3[18] == 32 && s.3.len() > 100)
            .unwrap()
            .clone();
    // the same QM1 again within the exchange's memory: a duplicate, answered again
    n.b.eng.handle_datagram(&qm1.3, qm1.1, qm1.2, n.now);
    n.pump();
    assert_eq!(n.b.eng.stats().drop_count(V1Drop::Duplicate), 1);
    // later: a replay of a finished exchange
    n.advance(Duration::from_secs(120));
    n.b.eng.handle_datagram(&qm1.3, qm1.1, qm1.2, n.now);
    assert_eq!(n.b.eng.stats().drop_count(V1Drop::Unexpected), 1);
    assert_eq!(
        n.b.eng.status()[0].sa.children.len(),
        1,
        "no SA from a replay"
    );
    // tampered: every byte of the encrypted part flipped in turn
    let mut q = qm1.3.clone();
    q[20] ^= 0x55; // a new message ID: decrypts to garbage under its own IV
    n.b.eng.handle_datagram(&q, qm1.1, qm1.2, n.now);
    for i in [30usize, 60, q.len() - 1] {
        let mut q = qm1.3.clone();
        q[20] ^= 0x11;
        q[i] ^= 1;
        n.b.eng.handle_datagram(&q, qm1.1, qm1.2, n.now);
    }
    let st = n.b.eng.stats();
    assert_eq!(
        st.drop_count(V1Drop::Hash)
            + st.drop_count(V1Drop::Decrypt)
            + st.drop_count(V1Drop::Invalid),
        4,
        "{:?}",
        st.drops
    );
    assert_eq!(n.b.eng.status()[0].sa.children.len(), 1);
    // garbage and oversized datagrams
    n.b.eng.handle_datagram(&[1, 2, 3], qm1.1, qm1.2, n.now);
    n.b.eng
        .handle_datagram(&vec![0u8; 70_000], qm1.1, qm1.2, n.now);
    assert_eq!(n.b.eng.stats().drop_count(V1Drop::Malformed), 1);
    assert_eq!(n.b.eng.stats().drop_count(V1Drop::TooBig), 1);
}

#[test]
fn nat_detected_float_to_4500_and_keepalives() {
    let mut n = Net::new(pair().0, pair().1);
    n.nat = Some(Nat {
        inside: ip("192.0.2.1"),
        public: ip("198.51.100.7"),
        map: HashMap::new(),
        next: 40000,
    });
    // B sees A's public address: answer %any
    let (a, mut b) = pair();
    b.remote_addr = RemoteAddr::Any;
    b.remote_id = Some("192.0.2.1".parse().unwrap());
    let mut n2 = Net::new(a, b);
    n2.nat = n.nat.take();
    let mut n = n2;
    n.initiate();
    assert_eq!(
        established(&n),
        (1, 1),
        "{:?}\n{:?}",
        n.a.events,
        n.b.events
    );
    let a = &n.a.eng.status()[0];
    let b = &n.b.eng.status()[0];
    assert!(a.sa.nat_local && !a.sa.nat_remote);
    assert!(b.sa.nat_remote && !b.sa.nat_local);
    assert_eq!(a.sa.local.port(), 4500);
    assert_eq!(b.sa.remote.ip(), ip("198.51.100.7"));
    assert_ne!(b.sa.remote.port(), 500, "the NAT's 4500 mapping");
    let (ao, bo) = assert_one_pair(&n);
    assert_eq!(
        n.a.dp.sas[&(ao, Direction::Outbound)]
            .encap
            .unwrap()
            .remote_port,
        4500
    );
    assert!(n.b.dp.sas[&(bo, Direction::Outbound)].encap.is_some());
    // main mode went 500 -> 4500 after MM4 (MM5 onward with the non-ESP marker)
    let ports: Vec<u16> = n.a.sent.iter().map(|s| s.1.port()).collect();
    assert_eq!(&ports[..3], &[500, 500, 4500]);
    n.advance(Duration::from_secs(45));
    assert!(n.a.eng.stats().keepalives_tx >= 2);
    assert!(n.b.eng.stats().keepalives_rx >= 2);
    assert_eq!(
        n.b.eng.stats().keepalives_tx,
        0,
        "only the side behind the NAT"
    );
}

#[test]
fn half_open_limit() {
    let s = Settings {
        half_open_limits: control::ike::halfopen::Limits {
            global: 2,
            per_source: 32,
        },
        ..Settings::default()
    };
    let now = Instant::now();
    let mut b = Engine::with_seed(s, 9);
    let (_, mut cb) = pair();
    cb.remote_addr = RemoteAddr::Any;
    cb.remote_id = None;
    b.add_connection(cb, now).unwrap();
    for i in 0..4u8 {
        let mut a = Engine::with_seed(Settings::default(), 100 + u64::from(i));
        let mut ca = pair().0;
        ca.local_addr = LocalAddr::Addr(ip(&format!("192.0.2.{}", 10 + i)));
        a.add_connection(ca, now).unwrap();
        a.initiate("to-b", now).unwrap();
        while let Some(o) = a.poll_output() {
            if let Output::Transmit(t) = o {
                b.handle_datagram(&t.data, t.local, t.remote, now);
            }
        }
    }
    assert_eq!(b.half_open(), 2);
    assert_eq!(b.stats().drop_count(V1Drop::HalfOpenLimit), 2);
    b.handle_timeout(now + Duration::from_secs(31));
    assert_eq!(b.half_open(), 0, "half-open timeout");
    assert!(b.status().is_empty());
}

#[test]
fn half_open_limit_per_source_and_first_message_size() {
    let s = Settings {
        half_open_limits: control::ike::halfopen::Limits {
            global: 100,
            per_source: 2,
        },
        ..Settings::default()
    };
    let now = Instant::now();
    let mut b = Engine::with_seed(s, 9);
    let (_, mut cb) = pair();
    cb.remote_addr = RemoteAddr::Any;
    cb.remote_id = None;
    b.add_connection(cb, now).unwrap();
    let mut first = None;
    for i in 0..4u8 {
        let mut a = Engine::with_seed(Settings::default(), 100 + u64::from(i));
        let mut ca = pair().0;
        // three from one address, one from another
        ca.local_addr = LocalAddr::Addr(ip(if i < 3 { "192.0.2.10" } else { "192.0.2.11" }));
        a.add_connection(ca, now).unwrap();
        a.initiate("to-b", now).unwrap();
        while let Some(o) = a.poll_output() {
            if let Output::Transmit(t) = o {
                first.get_or_insert_with(|| t.clone());
                b.handle_datagram(&t.data, t.local, t.remote, now);
            }
        }
    }
    assert_eq!(b.half_open(), 3);
    assert_eq!(b.stats().drop_count(V1Drop::HalfOpenPerSource), 1);
    // a first message longer than max_first_message: dropped, no state
    let t = first.unwrap();
    let mut big = t.data.clone();
    big.resize(Settings::default().max_first_message + 1, 0);
    big[..8].copy_from_slice(&[7; 8]);
    let len = big.len() as u32;
    big[24..28].copy_from_slice(&len.to_be_bytes());
    b.handle_datagram(&big, SocketAddr::new(ip("192.0.2.12"), 500), t.remote, now);
    assert_eq!(b.stats().drop_count(V1Drop::TooBig), 1);
    assert_eq!(b.half_open(), 3);
}
