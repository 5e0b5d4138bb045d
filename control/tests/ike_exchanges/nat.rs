//! NAT detection and UDP encapsulation.

use super::*;

#[test]
fn nat_detection_moves_to_4500_with_udp_encapsulation() {
    let mut a = conn("to-b", "10.0.0.1", "192.0.2.2");
    a.local_id = Some("@a.example".parse().unwrap());
    a.local_ts = vec!["10.1.0.0/24".parse().unwrap()];
    a.remote_ts = vec!["10.2.0.0/24".parse().unwrap()];
    let mut b = Connection::new("rw", LocalAddr::Addr(ip("192.0.2.2")), RemoteAddr::Any, PSK);
    b.ike_proposals = a.ike_proposals.clone();
    b.esp_proposals = a.esp_proposals.clone();
    b.local_id = Some("192.0.2.2".parse().unwrap());
    b.remote_id = Some("@a.example".parse().unwrap());
    b.local_ts = vec!["10.2.0.0/24".parse().unwrap()];
    b.remote_ts = vec!["10.1.0.0/24".parse().unwrap()];
    let mut n = Net::new(a, b);
    n.nat = Some(Nat {
        inside: ip("10.0.0.1"),
        public: ip("198.51.100.7"),
        map: HashMap::new(),
        next: 30000,
    });
    n.initiate();
    assert!(n.a.events.iter().any(|e| matches!(
        e,
        Event::IkeEstablished {
            nat_local: true,
            nat_remote: false,
            ..
        }
    )));
    assert!(n.b.events.iter().any(|e| matches!(
        e,
        Event::IkeEstablished {
            nat_local: false,
            nat_remote: true,
            ..
        }
    )));
    // IKE_SA_INIT on 500, IKE_AUTH on 4500 with the non-ESP marker
    assert_eq!(n.a.sent[0].1.port(), 500);
    assert_eq!(n.a.sent[1].1.port(), 4500);
    assert_eq!(n.a.sent[1].2.port(), 4500);
    assert_eq!(&n.a.sent[1].3[..4], &[0, 0, 0, 0]);
    let (ao, bo) = assert_one_pair(&n);
    let a_out = &n.a.dp.sas[&(ao, Direction::Outbound)];
    assert_eq!(
        a_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, 4500))
    );
    let b_out = &n.b.dp.sas[&(bo, Direction::Outbound)];
    let mapped = n.nat.as_ref().unwrap().map[&4500];
    assert_eq!(
        b_out.encap.map(|e| (e.local_port, e.remote_port)),
        Some((4500, mapped))
    );
    assert_eq!(b_out.remote_addr, ip("198.51.100.7"));
    // keepalives from the side behind the NAT
    let before = n.a.eng.stats().keepalives_tx;
    n.advance(Duration::from_secs(61));
    assert_eq!(n.a.eng.stats().keepalives_tx - before, 3);
    assert_eq!(n.b.eng.stats().keepalives_rx, 3);
    assert_eq!(n.b.eng.stats().keepalives_tx, 0);
    // rekey through the NAT
    n.a.eng.rekey_child(bo, n.now).unwrap();
    n.pump();
    let (ao2, _) = assert_one_pair(&n);
    assert!(n.a.dp.sas[&(ao2, Direction::Outbound)].encap.is_some());
}

#[test]
fn forced_encapsulation_like_strongswan_libipsec() {
    let (mut a, b) = pair();
    a.force_encap = true;
    let mut n = Net::new(a, b);
    n.initiate();
    let (ao, bo) = assert_one_pair(&n);
    assert!(n.a.dp.sas[&(ao, Direction::Outbound)].encap.is_some());
    assert!(n.b.dp.sas[&(bo, Direction::Outbound)].encap.is_some());
    assert_eq!(n.b.sent.last().unwrap().1.port(), 4500);
}
