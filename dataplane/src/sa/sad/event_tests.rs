//! SA events collected from a whole table (`Sad::collect_events`): a walk
//! only when some SA raised one since the last walk began, and no event
//! lost when SAs raise them while the table is collected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use crate::sa::runtime::ev;
use crate::sa::{DfMode, Direction, Lifetime, LifetimeKind, Mode, SaParams};

/// An SA whose first packet crosses the soft packet limit and whose
/// second crosses the hard one.
fn sa(spi: u32) -> Arc<Sa> {
    let suite = Suite {
        encr: EncrAlg::AesGcm128,
        integ: IntegAlg::None,
    };
    let p = SaParams {
        spi,
        direction: Direction::Inbound,
        mode: Mode::Tunnel,
        suite,
        enc_key: Key::new(vec![7; suite.encr.key_len()]),
        auth_key: Key::new(vec![]),
        esn: false,
        replay_window: 64,
        local_addr: "192.0.2.1".parse().unwrap(),
        remote_addr: "198.51.100.7".parse().unwrap(),
        encap: None,
        selectors: vec![],
        lifetime: Lifetime {
            soft_packets: 1,
            hard_packets: 2,
            ..Lifetime::default()
        },
        df: DfMode::Copy,
        copy_dscp: false,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 1,
    };
    Arc::new(Sa::new(p, Backend::Auto).unwrap())
}

fn table(n: u32) -> (Sad, Vec<Arc<Sa>>) {
    let sad = Sad::with_capacity(1024);
    let sas: Vec<Arc<Sa>> = (1..=n).map(|i| sa(0x100 + i)).collect();
    sad.apply(sas.iter().cloned().map(SadOp::Insert));
    (sad, sas)
}

/// With no event raised (anywhere in the process: the count is shared
/// with other tests, so the check is made on a pass where it did not
/// move), a collection looks at no SA; a raise makes the next one walk
/// and return the event, once.
#[test]
fn walks_only_after_a_raise() {
    let (sad, sas) = table(100);
    let mut out = vec![];
    let quiet = (0..1000).any(|_| {
        let c0 = ev::raised();
        sad.collect_events(&mut out);
        let seen = sad.collect_events(&mut out);
        if c0 == ev::raised() {
            assert_eq!(seen, 0, "no raise since the last walk, yet a walk");
            true
        } else {
            false
        }
    });
    assert!(quiet, "the event count never stood still");
    assert!(out.is_empty());
    sas[17].account(1, 100);
    assert_eq!(sad.collect_events(&mut out), 100);
    assert_eq!(
        out,
        vec![SaEvent::SoftExpire {
            spi: sas[17].spi(),
            direction: Direction::Inbound,
            kind: LifetimeKind::Packets,
        }]
    );
    out.clear();
    sad.collect_events(&mut out);
    assert!(out.is_empty(), "an event collected twice: {out:?}");
}

/// A thread raises a soft then a hard event on every SA (in two passes,
/// yielding now and then) while this one collects in a loop: after one
/// last collection, every SA's two events were collected exactly once.
#[test]
fn no_event_lost_while_collecting() {
    let (sad, sas) = table(4096);
    let done = Arc::new(AtomicBool::new(false));
    let raiser = {
        let (sas, done) = (sas.clone(), done.clone());
        std::thread::spawn(move || {
            for _pass in 0..2 {
                // A stride through the table: raises land before and
                // after the collector's position.
                for k in 0..sas.len() {
                    sas[(k * 1031) % sas.len()].account(1, 100);
                    if k.is_multiple_of(64) {
                        std::thread::yield_now();
                    }
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut out = vec![];
    let mut walks = 0;
    while !done.load(Ordering::Acquire) {
        if sad.collect_events(&mut out) > 0 {
            walks += 1;
        }
    }
    raiser.join().unwrap();
    sad.collect_events(&mut out);
    let mut got: HashMap<(u32, bool), u32> = HashMap::new();
    for e in &out {
        let key = match *e {
            SaEvent::SoftExpire {
                spi,
                kind: LifetimeKind::Packets,
                ..
            } => (spi, false),
            SaEvent::HardExpire {
                spi,
                kind: LifetimeKind::Packets,
                ..
            } => (spi, true),
            ref other => panic!("unexpected event {other:?}"),
        };
        *got.entry(key).or_default() += 1;
    }
    for sa in &sas {
        for hard in [false, true] {
            assert_eq!(
                got.get(&(sa.spi(), hard)),
                Some(&1),
                "SA {:#x} hard={hard}: collected {:?} times ({walks} walks)",
                sa.spi(),
                got.get(&(sa.spi(), hard))
            );
        }
    }
    assert_eq!(out.len(), 2 * sas.len());
}
