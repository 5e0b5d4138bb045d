//! DELETE from either side, dead peer detection, INITIAL_CONTACT.

use super::*;

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
    n.a = Side::new(99, Settings::default());
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
