//! The SAD: 1,000,000 SAs fit; lookups stay correct and lock-free while
//! another thread adds, replaces and removes SAs.

mod esp_common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use dataplane::crypto::Backend;
use dataplane::sa::{Direction, Mode, Sa, SaParams, Sad, SadOp};
use esp_common::*;

fn params(spi: u32) -> SaParams {
    let (_, mut ip) = sa_pair(
        suites()[0],
        Mode::Tunnel,
        "192.0.2.1",
        "192.0.2.2",
        false,
        false,
    );
    ip.spi = spi;
    ip.replay_window = 64;
    ip.direction = Direction::Inbound;
    ip
}

fn spi_of(i: u32) -> u32 {
    // Spread like IKE-allocated random SPIs, never in 0..=255.
    (i.wrapping_mul(2_654_435_761) | 0x100).max(0x100)
}

#[test]
fn a_million_sas_fit_and_are_found() {
    let n: u32 = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let sad = Sad::with_capacity(n as usize);
    let template = Sa::new(params(0x1234), Backend::Auto).unwrap();
    drop(template);
    let mut spis: Vec<u32> = (0..n).map(spi_of).collect();
    spis.sort_unstable();
    spis.dedup();
    // Install in batches of 100k (one publication per batch).
    for chunk in spis.chunks(100_000) {
        sad.apply(
            chunk
                .iter()
                .map(|&s| SadOp::Insert(Arc::new(Sa::new(params(s), Backend::Auto).unwrap()))),
        );
    }
    assert_eq!(sad.len(), spis.len());
    let t = sad.load();
    for &s in &spis {
        assert_eq!(t.get(s).map(|sa| sa.spi()), Some(s));
    }
    assert!(t.get(0x1).is_none());
    assert!(t.get(0).is_none());
    // The burst lookup finds the same, present or absent, in any burst size.
    let mut probe: Vec<u32> = spis.iter().step_by(7).copied().collect();
    probe.extend((0..5000u32).map(|i| spi_of(i + n + 17)));
    probe.extend([0, 1, 255]);
    let mut out = vec![None; probe.len()];
    t.get_burst(&probe, &mut out);
    for (s, o) in probe.iter().zip(&out) {
        assert_eq!(
            o.map(|sa| sa.spi()),
            t.get(*s).map(|sa| sa.spi()),
            "spi {s:#x}"
        );
    }
    for k in [1usize, 5, 31, 32, 33, 64, 100] {
        let mut out = vec![None; k];
        t.get_burst(&probe[..k], &mut out);
        for (s, o) in probe[..k].iter().zip(&out) {
            assert_eq!(o.map(|sa| sa.spi()), t.get(*s).map(|sa| sa.spi()));
        }
    }
    // The index costs tens of bytes per SA (the SAs themselves are counted
    // by the sad benchmark).
    let per_sa = t.index_bytes() as f64 / t.len() as f64;
    assert!((16.0..256.0).contains(&per_sa), "index {per_sa:.1} B/SA");
    // Remove every other one.
    drop(t);
    sad.apply(spis.iter().step_by(2).map(|&s| SadOp::Remove(s)));
    let t = sad.load();
    for (i, &s) in spis.iter().enumerate() {
        assert_eq!(t.get(s).is_some(), i % 2 == 1);
    }
    assert_eq!(t.len(), spis.len() / 2);
}

#[test]
fn readers_see_a_consistent_table_while_a_writer_churns() {
    let sad = Arc::new(Sad::with_capacity(20_000));
    let stable: Vec<u32> = (0..10_000).map(spi_of).collect();
    let churn: Vec<u32> = (10_000..12_000).map(spi_of).collect();
    sad.apply(
        stable
            .iter()
            .map(|&s| SadOp::Insert(Arc::new(Sa::new(params(s), Backend::Auto).unwrap()))),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let churn_hits = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (sad, stop, lookups, churn_hits) = (
                sad.clone(),
                stop.clone(),
                lookups.clone(),
                churn_hits.clone(),
            );
            let (stable, churn) = (stable.clone(), churn.clone());
            std::thread::spawn(move || {
                let mut i = r * 7;
                while !stop.load(Ordering::Relaxed) {
                    let t = sad.load();
                    for _ in 0..32 {
                        i += 1;
                        let s = stable[i % stable.len()];
                        let sa = t.get(s).expect("a stable SA vanished during updates");
                        assert_eq!(sa.spi(), s);
                        let c = churn[i % churn.len()];
                        if let Some(sa) = t.get(c) {
                            assert_eq!(sa.spi(), c);
                            churn_hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lookups.fetch_add(64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Writer: add, replace (rekey with the same SPI) and remove, one by one.
    let mut replaced = 0;
    for round in 0..3 {
        for &c in &churn {
            let old = sad.insert(Arc::new(Sa::new(params(c), Backend::Auto).unwrap()));
            if old.is_some() {
                replaced += 1;
            }
        }
        for &c in churn.iter().skip(round).step_by(2) {
            assert!(sad.remove(c).is_some());
        }
    }
    // Replace stable SAs too: lookups must keep finding them.
    for &s in stable.iter().take(2000) {
        assert!(sad
            .insert(Arc::new(Sa::new(params(s), Backend::Auto).unwrap()))
            .is_some());
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(replaced > 0);
    assert!(lookups.load(Ordering::Relaxed) > 0);
    assert!(churn_hits.load(Ordering::Relaxed) > 0);
    assert_eq!(
        sad.len(),
        stable.len() + churn.len() - churn.iter().skip(2).step_by(2).count()
    );
}
