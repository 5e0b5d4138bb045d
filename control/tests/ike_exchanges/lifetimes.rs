//! Lifetimes (time and bytes) and children replaced after a delete or an expiry.

use super::*;

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
