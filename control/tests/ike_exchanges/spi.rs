//! SPIs held by other SAs (HACKING.md, SPIs belong to one SA).

use super::*;

/// The SPIs of the one child SA a run with the default seeds gives: A's
/// inbound (= B's outbound) and B's inbound (= A's outbound).
fn default_child_spis() -> (u32, u32) {
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.initiate();
    let (a_out, b_out) = assert_one_pair(&n);
    (b_out, a_out)
}

fn spi_refused(ev: &[Event], spi: u32) -> bool {
    ev.iter().any(|e| {
        matches!(e, Event::ChildFailed { error: control::ike::IkeError::SpiInUse(s), .. } if *s == spi)
    })
}

#[test]
fn responder_refuses_a_child_whose_spi_another_sa_holds() {
    // Same seeds: the initiator offers the same inbound SPI again, and B
    // (responder) has an outbound SA (say a manual tunnel's spi_out) with it.
    let (a_in, _) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.b.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: Default::default(),
        outbound: [a_in].into(),
    });
    n.initiate();
    // The IKE SA stands; the child is refused with NO_PROPOSAL_CHOSEN and
    // nothing is installed on either side (above all no outbound SA a_in).
    assert_eq!(established(&n.a.events), 1, "{:?}", n.a.events);
    assert_eq!(established(&n.b.events), 1, "{:?}", n.b.events);
    assert!(spi_refused(&n.b.events, a_in), "{:?}", n.b.events);
    assert_eq!(n.b.eng.stats().child_spi_in_use, 1);
    assert!(
        n.a.events.iter().any(|e| matches!(
            e,
            Event::ChildFailed {
                error: control::ike::IkeError::PeerError { code: 14, .. },
                ..
            }
        )),
        "{:?}",
        n.a.events
    );
    assert!(n.b.dp.sas.is_empty(), "{:?}", n.b.dp.sas.keys());
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(protect_spis(&n.b.dp).is_empty());
}

#[test]
fn initiator_refuses_and_deletes_a_child_whose_spi_another_sa_holds() {
    // A (initiator) holds B's SPI already as an outbound SPI.
    let (_, b_in) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.a.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: Default::default(),
        outbound: [b_in].into(),
    });
    n.initiate();
    assert_eq!(established(&n.a.events), 1, "{:?}", n.a.events);
    assert!(spi_refused(&n.a.events, b_in), "{:?}", n.a.events);
    assert_eq!(n.a.eng.stats().child_spi_in_use, 1);
    // Nothing installed by A; B was told to delete its half and did (its
    // inbound SA after the drain time).
    n.advance(Duration::from_secs(3));
    assert!(n.a.dp.sas.is_empty(), "{:?}", n.a.dp.sas.keys());
    assert!(n.b.dp.sas.is_empty(), "{:?}", n.b.dp.sas.keys());
    assert!(n
        .a
        .dp
        .policies
        .values()
        .all(|p| !matches!(p.action, PolicyAction::Protect { spi } if spi == b_in)));
}

#[test]
fn our_inbound_spis_avoid_those_held_by_other_sas() {
    let (a_in, _) = default_child_spis();
    let (a, b) = pair();
    let mut n = Net::new(a, b);
    n.a.eng.set_reserved_spis(control::ike::ReservedSpis {
        inbound: [a_in].into(),
        outbound: Default::default(),
    });
    n.initiate();
    let (_, b_out) = assert_one_pair(&n);
    assert_ne!(b_out, a_in);
}
