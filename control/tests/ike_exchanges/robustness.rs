//! Lost, replayed, tampered, oversized and hostile messages; cookies and half-open SAs.

use super::*;

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

/// One IKE_SA_INIT request of A's (to replay to B from other addresses).
fn init_request() -> (Vec<u8>, SocketAddr) {
    let (a, _) = pair();
    let mut s = Side::new(7, Settings::default());
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
    let mut b = Side::new(2, s);
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
    let mut b = Side::new(2, Settings::default());
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
