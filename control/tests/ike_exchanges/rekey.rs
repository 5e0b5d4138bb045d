//! Child and IKE SA rekeys: PFS, collisions, the switch delay.

use super::*;

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
        let mut n = Net::from_sides(
            Side::new(10 + seed_shift, s.clone()),
            Side::new(20 + seed_shift, s),
        );
        let now = n.now;
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
        let mut n = Net::from_sides(Side::new(30 + k, s.clone()), Side::new(40 + k, s));
        let now = n.now;
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
