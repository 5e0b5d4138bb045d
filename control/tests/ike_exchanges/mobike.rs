//! MOBIKE (RFC 4555).

use super::*;

fn ike_status(e: &Engine) -> control::ike::IkeSaStatus {
    let mut v = e.status();
    assert_eq!(v.len(), 1, "one IKE SA: {v:?}");
    v.remove(0)
}

#[test]
fn mobike_is_negotiated_by_default_and_off_with_mobike_no() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(ike_status(&n.a.eng).mobike);
    assert!(ike_status(&n.b.eng).mobike);
    // with MOBIKE the initiator floats to 4500 in IKE_AUTH (RFC 4555 §3.3)
    assert_eq!(n.a.sent[0].1.port(), 500);
    assert_eq!(n.a.sent[1].1.port(), 4500);
    assert_eq!(&n.a.sent[1].3[..4], &[0, 0, 0, 0]);
    let (a, mut b) = pair();
    b.mobike = false;
    let mut n = Net::new(a, b);
    n.initiate();
    assert!(!ike_status(&n.a.eng).mobike);
    assert!(!ike_status(&n.b.eng).mobike);
    assert_eq!(
        n.a.eng
            .move_sa(ike_status(&n.a.eng).id, ip("192.0.2.11"), n.now)
            .map_err(|_| ()),
        Err(())
    );
}

#[test]
fn mobike_only_the_initiator_moves_the_ike_sa() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    // B responded: RFC 4555 §3.5 leaves the choice of addresses to A
    let id = ike_status(&n.b.eng).id;
    assert!(n.b.eng.move_sa(id, ip("192.0.2.12"), n.now).is_err());
    assert!(n
        .b
        .eng
        .local_address_changed(None, ip("192.0.2.12"), n.now)
        .is_empty());
    n.pump();
    assert_eq!((n.a.dp.moves, n.b.dp.moves), (0, 0));
    assert_eq!(
        ike_status(&n.a.eng).remote,
        "192.0.2.2:4500".parse().unwrap()
    );
}

#[test]
fn mobike_update_sa_addresses_moves_children_without_rekeying() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    let (installs_a, installs_b) = (n.a.dp.installs, n.b.dp.installs);
    let sent_b = n.b.sent.len();
    let moved =
        n.a.eng
            .local_address_changed(Some(ip("192.0.2.1")), ip("192.0.2.11"), n.now);
    assert_eq!(moved.len(), 1);
    n.pump();
    // same SPIs, nothing installed anew, no new IKE SA
    assert_eq!(assert_one_pair(&n), (ao, bo));
    assert_eq!((n.a.dp.installs, n.b.dp.installs), (installs_a, installs_b));
    assert_eq!(established(&n.a.events) + established(&n.b.events), 2);
    // both directions of the child moved at both ends
    assert_eq!((n.a.dp.moves, n.b.dp.moves), (2, 2));
    for ((spi, dir), sa) in &n.b.dp.sas {
        assert_eq!(sa.remote_addr, ip("192.0.2.11"), "B {spi:#x} {dir:?}");
        assert_eq!(sa.encap, None);
    }
    for sa in n.a.dp.sas.values() {
        assert_eq!(sa.local_addr, ip("192.0.2.11"));
    }
    assert_eq!(
        ike_status(&n.b.eng).remote,
        "192.0.2.11:4500".parse().unwrap()
    );
    assert_eq!(
        ike_status(&n.a.eng).local,
        "192.0.2.11:4500".parse().unwrap()
    );
    // B checked the new address (COOKIE2) before moving: it sent a request
    // there after its answer (§5.2)
    let b_to_new: Vec<_> = n.b.sent[sent_b..]
        .iter()
        .filter(|s| s.2.ip() == ip("192.0.2.11"))
        .collect();
    assert_eq!(
        b_to_new.len(),
        2,
        "B answers the update and checks the address"
    );
    for e in [&n.a.events, &n.b.events] {
        assert_eq!(
            count(e, |e| matches!(
                e,
                Event::AddressesUpdated {
                    children: 1,
                    nat_local: false,
                    nat_remote: false,
                    ..
                }
            )),
            1
        );
    }
    // the SAs keep working: a rekey and a DPD at the new addresses
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert_ne!(ao2, ao);
    assert_eq!(
        n.b.dp.sas[&(ao2, Direction::Inbound)].remote_addr,
        ip("192.0.2.11")
    );
}

#[test]
fn mobike_move_behind_a_nat_switches_on_udp_encapsulation() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    assert!(n.a.dp.sas.values().all(|s| s.encap.is_none()));
    // A moves into a private network behind a NAT
    n.nat = Some(Nat {
        inside: ip("10.9.0.5"),
        public: ip("198.51.100.7"),
        map: HashMap::new(),
        next: 30000,
    });
    n.a.eng.local_address_changed(None, ip("10.9.0.5"), n.now);
    n.pump();
    assert_eq!(assert_one_pair(&n), (ao, bo));
    let mapped = n.nat.as_ref().unwrap().map[&4500];
    let b_out = &n.b.dp.sas[&(bo, Direction::Outbound)];
    assert_eq!(b_out.remote_addr, ip("198.51.100.7"));
    assert_eq!(
        b_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, mapped))
    );
    let a_out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(a_out.local_addr, ip("10.9.0.5"));
    assert_eq!(
        a_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 4500))
    );
    let sa = ike_status(&n.a.eng);
    assert!(sa.nat_local && !sa.nat_remote);
    assert!(ike_status(&n.b.eng).nat_remote);
    assert!(ike_status(&n.a.eng).children[0].encap);
    // A keeps the NAT mapping alive now
    let before = n.a.eng.stats().keepalives_tx;
    n.advance(Duration::from_secs(21));
    assert!(n.a.eng.stats().keepalives_tx > before);
}

#[test]
fn mobike_update_without_mobike_negotiated_is_ignored() {
    let (a, mut b) = pair();
    b.mobike = false;
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    // A cannot even ask; B has no MOBIKE SA to move
    assert!(n
        .a
        .eng
        .local_address_changed(None, ip("192.0.2.11"), n.now)
        .is_empty());
    n.pump();
    assert_eq!(n.b.dp.moves, 0);
    assert_eq!(
        n.b.dp.sas[&(bo, Direction::Outbound)].remote_addr,
        ip("192.0.2.1")
    );
}

#[test]
fn mobike_routability_check_unanswered_keeps_children_where_they_were() {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (_, bo) = assert_one_pair(&n);
    n.a.eng.local_address_changed(None, ip("192.0.2.11"), n.now);
    // A's update reaches B, but every datagram B sends is lost: B answers
    // and checks, nothing comes back, its children stay
    n.drop_b = usize::MAX;
    n.pump();
    assert_eq!(n.b.dp.moves, 0);
    assert_eq!(
        n.b.dp.sas[&(bo, Direction::Outbound)].remote_addr,
        ip("192.0.2.1")
    );
    assert_eq!(n.a.dp.moves, 0, "A has no answer either");
}
