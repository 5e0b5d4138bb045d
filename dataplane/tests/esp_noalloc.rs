//! The hot path does not allocate: encap and decap bursts (every suite,
//! tunnel and transport, NAT-T, ESN), SAD and SPD lookups, replay, measured
//! with a counting global allocator (`allocation-counter`).

mod esp_common;

use std::sync::Arc;

use dataplane::crypto::Backend;
use dataplane::drop::Verdict;
use dataplane::esp::{decap_burst, encap_burst, DecapResult};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{DropCounters, FlowKey, Mode, Policy, PolicyAction, Sa, Sad, Spd};
use esp_common::*;

#[test]
fn encap_and_decap_bursts_do_not_allocate() {
    let drops = DropCounters::default();
    let mut tried = 0;
    for (suite, backend) in suites()
        .into_iter()
        .flat_map(|s| Backend::compiled().iter().map(move |b| (s, *b)))
    {
        for (mode, natt, esn, outer) in [
            (Mode::Tunnel, false, false, ("192.0.2.1", "192.0.2.2")),
            (Mode::Tunnel, true, true, ("2001:db8::1", "2001:db8::2")),
            (Mode::Transport, true, false, ("10.1.0.10", "10.2.0.10")),
        ] {
            let (op, ip) = sa_pair(suite, mode, outer.0, outer.1, esn, natt);
            let v4_selector = op
                .selectors
                .iter()
                .find(|s| s.local.addr().is_ipv4())
                .unwrap()
                .clone();
            let Ok(out) = Sa::new(op, backend) else {
                continue;
            };
            let sad = Sad::with_capacity(16);
            sad.insert(Arc::new(Sa::new(ip, backend).unwrap()));
            tried += 1;
            let spd = Spd::new();
            spd.insert([Policy {
                id: 1,
                tunnel_id: 1,
                selector: v4_selector,
                action: PolicyAction::Protect { spi: out.spi() },
                priority: 1,
            }]);
            let inner: Vec<Vec<u8>> = (0..32)
                .map(|i| {
                    let payload = vec![i as u8; 64 + i * 40];
                    if mode == Mode::Transport {
                        udp4([10, 1, 0, 10], [10, 2, 0, 10], 0, true, &payload)
                    } else {
                        udp4([10, 1, 0, 1], [10, 2, 0, 1], 0, true, &payload)
                    }
                })
                .collect();
            // Buffers, verdicts and results are allocated once, outside.
            let mut bufs: Vec<HeapBuf> =
                inner.iter().map(|_| HeapBuf::new(128, 2048, 128)).collect();
            let mut v = vec![Verdict::Pass; 32];
            let mut res = vec![DecapResult::default(); 32];
            let mut round = |bufs: &mut Vec<HeapBuf>| {
                for (b, p) in bufs.iter_mut().zip(&inner) {
                    assert!(b.reset_to(128, p));
                }
                let spd_t = spd.load();
                for b in bufs.iter() {
                    let k = FlowKey::from_ip(b.data()).unwrap();
                    assert!(spd_t.lookup(&k).is_some());
                }
                drop(spd_t);
                encap_burst(&out, bufs, &mut v, &drops);
                let t = sad.load();
                decap_burst(&t, bufs, &mut res, &drops);
            };
            // Warm up: first use of a thread's arc-swap slot and any lazy
            // backend initialisation happen here.
            round(&mut bufs);
            let info = allocation_counter::measure(|| {
                for _ in 0..3 {
                    round(&mut bufs);
                }
            });
            assert_eq!(
                info.count_total, 0,
                "{suite:?} {backend:?} {mode:?}: {info:?}"
            );
            assert!(
                res.iter().all(|r| r.verdict == Verdict::Pass),
                "{suite:?} {mode:?} {res:?}"
            );
            for (b, p) in bufs.iter().zip(&inner) {
                assert_eq!(b.data(), &p[..]);
            }
        }
    }
    assert_eq!(drops.total(), 0);
    assert!(tried >= suites().len() * 3);
}

#[test]
fn the_counter_sees_allocations() {
    // The measuring allocator works (a test that cannot fail is no test).
    let info = allocation_counter::measure(|| {
        let v = vec![1u8; 100];
        std::hint::black_box(v);
    });
    assert_eq!(info.count_total, 1);
}
