//! Quick-mode rekeys and ISAKMP SA re-authentication, from either side.

use super::*;

#[test]
fn rekeys_from_both_sides_make_before_break() {
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    // A rekeys (the dataplane model checks every switch)
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    // QM3 sent: A keeps sending on the old SA until B surely installed the
    // new inbound one (Settings::rekey_switch_delay)
    assert_eq!(assert_one_pair(&n).0, ao, "A still sends on the old SA");
    n.advance(Duration::from_millis(1100));
    let (ao2, bo2) = assert_one_pair(&n);
    assert!(ao2 != ao && bo2 != bo);
    assert_eq!(
        count(&n.a.events, |e| matches!(e, Event::ChildRekeyed { .. })),
        1
    );
    assert_eq!(
        count(&n.b.events, |e| matches!(e, Event::ChildRekeyed { .. })),
        1
    );
    // B's old inbound SA drains, then goes; A's old one too
    n.advance(Duration::from_secs(3));
    assert!(!n.a.dp.sas.contains_key(&(bo, Direction::Inbound)));
    assert!(!n.b.dp.sas.contains_key(&(ao, Direction::Inbound)));
    assert_eq!(n.a.dp.sas.len(), 2, "{:?}", n.a.dp.sas.keys());
    assert_eq!(n.b.dp.sas.len(), 2);
    // B (the quick-mode responder so far) rekeys
    let b_in = n.b.eng.status()[0].sa.children[0].inbound_spi;
    n.b.eng.rekey_child(b_in, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_millis(1100));
    let (ao3, bo3) = assert_one_pair(&n);
    assert!(ao3 != ao2 && bo3 != bo2);
    n.advance(Duration::from_secs(3));
    assert_eq!(n.a.dp.sas.len(), 2);
    assert_eq!(n.b.dp.sas.len(), 2);
    // lifetimes: rekeyed before the 3600 s expiry, over and over
    n.advance(Duration::from_secs(3 * 3600));
    assert_one_pair(&n);
    assert!(count(&n.a.events, |e| matches!(e, Event::ChildRekeyed { .. })) >= 5);
    assert_eq!(
        count(&n.a.events, |e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Expired,
                ..
            }
        )),
        0,
        "nothing expired"
    );
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        0
    );
}

#[test]
fn isakmp_sa_reauthentication_moves_ipsec_sas() {
    let mut n = Net::new(pair().0, pair().1);
    let id = n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    n.a.eng.rekey_ike(id, n.now).unwrap();
    n.pump();
    // the old ISAKMP SA's DELETE waits (RETIRE_AFTER_REAUTH): strongSwan
    // adopts the IPsec SAs in a job after its last main mode message, and
    // a DELETE handled before it takes them along
    assert_eq!(n.a.eng.status().len(), 2, "old ISAKMP SA kept a while");
    assert_eq!(n.b.eng.status().len(), 2, "no DELETE at once");
    assert!(n
        .b
        .eng
        .status()
        .iter()
        .any(|s| s.sa.id != id && s.sa.children.len() == 1));
    n.advance(Duration::from_millis(1900));
    assert_eq!(n.b.eng.status().len(), 2, "no DELETE within the grace");
    n.advance(Duration::from_millis(200));
    assert_eq!(n.a.eng.status().len(), 1, "old ISAKMP SA gone");
    assert_eq!(n.b.eng.status().len(), 1);
    assert_ne!(n.a.eng.status()[0].sa.id, id);
    assert_eq!(assert_one_pair(&n), (ao, bo), "IPsec SAs untouched");
    assert_eq!(n.b.eng.status()[0].sa.children.len(), 1);
    // and the new ISAKMP SA manages them: a rekey works
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    assert_ne!(assert_one_pair(&n), (ao, bo));
    // the ISAKMP lifetime: re-authenticated before 28800 s, the SAs live on
    n.advance(Duration::from_secs(9 * 3600));
    assert_one_pair(&n);
    assert!(count(&n.a.events, |e| matches!(e, Event::IkeRekeyed { .. })) >= 2);
}

/// The peer re-authenticates (as strongSwan does, with its children moved
/// under the new ISAKMP SA): the old ISAKMP SA is deleted on both sides, so
/// `status` lists only the new one. And a responder whose peer never
/// re-authenticates (strongSwan's 4 h against our lifetime) does it itself
/// before the ISAKMP SA expires, rather than losing the IPsec SAs with it.
#[test]
fn responder_reauthenticates_and_replaced_isakmp_sas_go() {
    let (mut a, b) = pair();
    a.rekey = false;
    let mut n = Net::new(a, b);
    let id = n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    // B (the responder) re-authenticates on demand: A deletes the old SA
    let bid = n.b.eng.ike_sas()[0];
    n.b.eng.rekey_ike(bid, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_millis(2100));
    assert_eq!(n.a.eng.status().len(), 1, "A keeps a replaced ISAKMP SA");
    assert_eq!(n.b.eng.status().len(), 1, "B keeps a replaced ISAKMP SA");
    assert_ne!(n.a.eng.status()[0].sa.id, id);
    assert_eq!(assert_one_pair(&n), (ao, bo), "IPsec SAs untouched");
    // A never re-authenticates; B does, before each expiry, for 9 h
    n.advance(Duration::from_secs(9 * 3600));
    assert_one_pair(&n);
    assert_eq!(n.a.eng.status().len(), 1);
    assert_eq!(n.b.eng.status().len(), 1);
    assert!(count(&n.b.events, |e| matches!(e, Event::IkeRekeyed { .. })) >= 2);
    for ev in [&n.a.events, &n.b.events] {
        assert_eq!(
            count(ev, |e| matches!(
                e,
                Event::IkeDeleted {
                    reason: DeleteReason::Expired | DeleteReason::Local | DeleteReason::Peer,
                    ..
                }
            )),
            0,
            "no ISAKMP SA expired or was torn down"
        );
    }
    // both sides delete the replaced ISAKMP SA and the deletes cross: each
    // finds it gone at the other side (two counted unknown-SA drops per
    // re-authentication, nothing else)
    let reauths = count(&n.b.events, |e| matches!(e, Event::IkeRekeyed { .. }));
    let unknown = n.a.eng.stats().drop_count(V1Drop::UnknownSa)
        + n.b.eng.stats().drop_count(V1Drop::UnknownSa);
    assert!(
        unknown as usize <= 2 * reauths,
        "{unknown} unknown-SA drops, {reauths} re-authentications"
    );
    assert_eq!(
        n.a.eng.stats().drops_total() + n.b.eng.stats().drops_total(),
        unknown
    );
}

/// A quick-mode rekey of ours is in flight (QM1 unanswered: strongSwan
/// ignores a quick mode on the IKEv1 SA it is re-authenticating) when the
/// peer re-authenticates: the IPsec SA moves under the new ISAKMP SA and is
/// rekeyed there at once, instead of staying marked busy until it expires.
#[test]
fn rekey_in_flight_during_peer_reauthentication_is_redone() {
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    n.drop_a = 1; // A's QM1 is lost
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    let bid = n.b.eng.ike_sas()[0];
    n.b.eng.rekey_ike(bid, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(5));
    let (ao2, bo2) = assert_one_pair(&n);
    assert!(
        ao2 != ao && bo2 != bo,
        "the IPsec SA was not rekeyed under the new ISAKMP SA"
    );
    assert_eq!(n.a.eng.status().len(), 1);
    assert_eq!(n.a.eng.status()[0].sa.children.len(), 1);
    // and lives on: rekeyed, never expired
    n.advance(Duration::from_secs(3 * 3600));
    assert_one_pair(&n);
    assert_eq!(
        count(&n.a.events, |e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Expired,
                ..
            }
        )),
        0
    );
}

#[test]
fn failed_rekey_is_retried_while_the_sa_lives() {
    let mut n = Net::new(pair().0, pair().1);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    n.b_down = true;
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(170));
    assert_eq!(
        count(&n.a.events, |e| matches!(
            e,
            Event::ChildFailed {
                error: control::ike::IkeError::Timeout(6),
                ..
            }
        )),
        1,
        "{:?}",
        n.a.events
    );
    assert_eq!(
        assert_one_pair(&n).0,
        ao,
        "the old SA still carries traffic"
    );
    n.b_down = false;
    n.advance(Duration::from_secs(40));
    assert_eq!(
        count(&n.a.events, |e| matches!(e, Event::ChildRekeyed { .. })),
        1
    );
    assert_ne!(assert_one_pair(&n).0, ao);
}

/// The order of tests/netns/35 (espresso vs strongSwan) that lost traffic:
/// A (espresso, 20 s lifetime, 8 s margin) rekeys on its own, then B
/// (strongSwan) rekeys A's new SA with A as responder, then A rekeys that
/// one, and so on. A's outbound policy must point at an installed SA the
/// peer receives on at every moment, the SA that A initiated must go
/// only when its successor carries the traffic, and no IPsec SA may expire
/// without a successor.
#[test]
fn our_rekey_then_the_peers_then_ours_never_leaves_a_gap() {
    let (mut a, mut b) = pair();
    a.child_lifetime = Duration::from_secs(20);
    a.margin = Duration::from_secs(8);
    a.fuzz_percent = 0;
    // strongSwan's defaults: a long lifetime (it takes A's shorter one) and
    // no rekey of its own before A's
    b.child_lifetime = Duration::from_secs(3960);
    b.margin = Duration::from_secs(540);
    let mut n = Net::new(a, b);
    n.initiate();
    let mut seen = vec![assert_one_pair(&n)];
    let step = Duration::from_millis(100);
    let check = |n: &Net, seen: &mut Vec<(u32, u32)>| {
        let p = assert_one_pair(n);
        if seen.last().unwrap().0 != p.0 {
            seen.push(p);
        }
    };
    // A's own rekey at 12 s
    for _ in 0..140 {
        n.advance(step);
        check(&n, &mut seen);
    }
    assert_eq!(seen.len(), 2, "A rekeyed once by its lifetime: {seen:x?}");
    // B rekeys A's new SA 9 s after it came (as `swanctl --rekey` did)
    for _ in 0..70 {
        n.advance(step);
        check(&n, &mut seen);
    }
    let b_in = n.b.eng.status()[0]
        .sa
        .children
        .iter()
        .find(|c| c.state == "INSTALLED")
        .unwrap()
        .inbound_spi;
    n.b.eng.rekey_child(b_in, n.now).unwrap();
    n.pump();
    // strongSwan (IKEv1) does not delete the SA it rekeyed: it expires at A
    n.drop_b = 1;
    // A goes on rekeying by its lifetime for a minute
    for _ in 0..600 {
        n.advance(step);
        check(&n, &mut seen);
    }
    assert!(seen.len() >= 7, "rekeys: {seen:x?}");
    // only the SA B replaced (and did not delete) expires
    assert!(
        count(&n.a.events, |e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Expired,
                ..
            }
        )) == 1,
        "IPsec SAs expired: A {:?}",
        n.a.events
    );
}

/// The control process stalled past an IPsec SA's rekey time (seen in
/// tests/netns/35 on a loaded machine: the timers ran 12 s late, the SA
/// expired without a successor and the traffic met the hold policy): the
/// expired SA is replaced at once by a new quick mode.
#[test]
fn an_sa_that_expires_unrekeyed_after_a_stall_is_replaced_at_once() {
    let (mut a, b) = pair();
    a.child_lifetime = Duration::from_secs(20);
    a.margin = Duration::from_secs(8);
    a.fuzz_percent = 0;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, _) = assert_one_pair(&n);
    // no timer runs for 23 s: past the rekey (12 s) and the expiry (20 s)
    n.now += Duration::from_secs(23);
    n.a.eng.handle_timeout(n.now);
    n.pump();
    assert_eq!(
        count(&n.a.events, |e| matches!(
            e,
            Event::ChildDeleted {
                reason: DeleteReason::Expired,
                ..
            }
        )),
        1
    );
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao, "a new IPsec SA replaced the expired one");
    assert_eq!(established(&n).0, 2);
    // and it is rekeyed by its lifetime again
    n.advance(Duration::from_secs(30));
    assert_one_pair(&n);
    assert!(count(&n.a.events, |e| matches!(e, Event::ChildRekeyed { .. })) >= 1);
}

/// Both ends re-authenticate at once (the two new ISAKMP SAs cross): each
/// side hands the IPsec SAs to the other's new SA first, then the crossing
/// settles on one ISAKMP SA (the higher initiator cookie's SA is deleted,
/// the IPsec SAs follow the DELETE to the other), with no gap: one working
/// pair at every step, the same ISAKMP SA at both ends at the end.
#[test]
fn crossing_reauthentications_leave_the_ipsec_sas_on_one_isakmp_sa() {
    let mut n = Net::new(pair().0, pair().1);
    n.a.dp.strict = true;
    n.b.dp.strict = true;
    let id = n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let bid = n.b.eng.ike_sas()[0];
    n.a.eng.rekey_ike(id, n.now).unwrap();
    n.b.eng.rekey_ike(bid, n.now).unwrap();
    n.pump();
    for _ in 0..700 {
        n.advance(Duration::from_millis(100));
        assert_eq!(assert_one_pair(&n), (ao, bo), "IPsec SAs untouched");
    }
    let (sa, sb) = (n.a.eng.status(), n.b.eng.status());
    assert_eq!(
        sa.len(),
        1,
        "A: {:x?}",
        sa.iter().map(|s| s.sa.spis).collect::<Vec<_>>()
    );
    assert_eq!(
        sb.len(),
        1,
        "B: {:x?}",
        sb.iter().map(|s| s.sa.spis).collect::<Vec<_>>()
    );
    assert_eq!(
        sa[0].sa.spis, sb[0].sa.spis,
        "the same ISAKMP SA at both ends"
    );
    assert_eq!(sa[0].sa.children.len(), 1);
    assert_eq!(sb[0].sa.children.len(), 1);
    // and it manages them: a rekey from either side works
    n.a.eng.rekey_child(a_child(&n), n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(2));
    assert_ne!(assert_one_pair(&n), (ao, bo));
    let b_in = n.b.eng.status()[0].sa.children[0].inbound_spi;
    n.b.eng.rekey_child(b_in, n.now).unwrap();
    n.pump();
    n.advance(Duration::from_secs(5));
    assert_one_pair(&n);
    assert_eq!(n.a.eng.status()[0].sa.children.len(), 1);
    assert_eq!(n.b.eng.status()[0].sa.children.len(), 1);
    for ev in [&n.a.events, &n.b.events] {
        assert_eq!(
            count(ev, |e| matches!(
                e,
                Event::ChildDeleted {
                    reason: DeleteReason::Peer,
                    ..
                }
            )),
            0,
            "no IPsec SA went with an ISAKMP SA"
        );
    }
}
