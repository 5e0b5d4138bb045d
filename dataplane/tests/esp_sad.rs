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

fn new_sa(spi: u32) -> Arc<Sa> {
    Arc::new(Sa::new(params(spi), Backend::Auto).unwrap())
}

/// A table of 16 shards sized for a few SAs each: most of the changes
/// below fill slots in place and many rebuild a shard; after each batch
/// the table matches a map of what was applied.
#[test]
fn in_place_changes_and_rebuilds_match_a_model() {
    use std::collections::HashMap;
    let sad = Sad::with_capacity(16);
    let pool: Vec<u32> = (0..600).map(spi_of).collect();
    let mut model: HashMap<u32, Arc<Sa>> = HashMap::new();
    let mut x = 0x2545_f491_u64;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for round in 0..200 {
        let mut ops = Vec::new();
        for _ in 0..1 + rnd(20) {
            let s = pool[rnd(pool.len())];
            if rnd(3) == 0 {
                ops.push(SadOp::Remove(s));
                model.remove(&s);
            } else {
                // Inserts of present SPIs replace them (a rekey).
                let sa = new_sa(s);
                model.insert(s, sa.clone());
                ops.push(SadOp::Insert(sa));
            }
        }
        if round % 2 == 0 {
            sad.apply(ops);
        } else {
            for op in ops {
                match op {
                    SadOp::Insert(sa) => {
                        sad.insert(sa);
                    }
                    SadOp::Remove(s) => {
                        sad.remove(s);
                    }
                }
            }
        }
        let t = sad.load();
        assert_eq!(t.len(), model.len(), "round {round}");
        assert_eq!(t.iter().count(), model.len(), "round {round}");
        let mut out = vec![None; pool.len()];
        t.get_burst(&pool, &mut out);
        for (s, o) in pool.iter().zip(&out) {
            let want = model.get(s);
            assert_eq!(o.is_some(), want.is_some(), "round {round} spi {s:#x}");
            if let (Some(o), Some(w)) = (o, want) {
                assert!(Arc::ptr_eq(o, w), "round {round} spi {s:#x}: another SA");
            }
            assert_eq!(t.get(*s).map(Arc::as_ptr), want.map(Arc::as_ptr));
        }
    }
    let rebuilds = sad.rebuilds();
    assert!(rebuilds > 0, "no shard was rebuilt");
    // Most changes are made in place (~2,000 changes in 200 rounds).
    assert!(rebuilds < 1000, "{rebuilds} rebuilds");
}

/// Removed SAs stay valid for a reader that found them before the removal
/// and are freed afterwards by the writer, never by the reader's guard.
#[test]
fn removed_sas_are_freed_by_the_writer_not_by_a_reader() {
    let sad = Sad::with_capacity(16);
    let spis: Vec<u32> = (0..64).map(spi_of).collect();
    sad.apply(spis.iter().map(|&s| SadOp::Insert(new_sa(s))));
    let weak: Vec<std::sync::Weak<Sa>> = spis
        .iter()
        .map(|&s| Arc::downgrade(&sad.get(s).unwrap()))
        .collect();
    let t = sad.load(); // a worker's burst
    let held = t.get(spis[0]).unwrap();
    // Removing all of them leaves every shard with more dead slots than
    // live ones: each is rebuilt and the table replaced.
    let before = sad.rebuilds();
    sad.apply(spis.iter().map(|&s| SadOp::Remove(s)));
    assert!(sad.rebuilds() > before);
    assert!(sad.is_empty());
    assert!(sad.load().get(spis[0]).is_none());
    assert_eq!(held.spi(), spis[0]);
    drop(t);
    // The writer still owns the retired table: the reader did not free it.
    assert!(weak[0].upgrade().is_some(), "freed by the reader's guard");
    // The next write finds no reader holding it and drops it.
    sad.apply([SadOp::Remove(0x1234_5678)]);
    assert!(weak.iter().all(|w| w.upgrade().is_none()), "not freed");
}

/// Burst lookups while a writer churns a small table (most updates in
/// place, many shard rebuilds): a stable SPI is always found and is its
/// SA or the SA that replaced it, a churned SPI is absent or its own SA.
#[test]
fn burst_lookups_never_see_a_wrong_or_missing_sa_while_a_writer_churns() {
    let sad = Arc::new(Sad::with_capacity(16));
    let stable: Vec<u32> = (0..1000).map(spi_of).collect();
    let churn: Vec<u32> = (1000..1600).map(spi_of).collect();
    let first: Vec<Arc<Sa>> = stable.iter().map(|&s| new_sa(s)).collect();
    let second: Vec<Arc<Sa>> = stable.iter().map(|&s| new_sa(s)).collect();
    let pool: Vec<Arc<Sa>> = churn.iter().map(|&s| new_sa(s)).collect();
    sad.apply(first.iter().cloned().map(SadOp::Insert));
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
            let (stable, churn, first, second) =
                (stable.clone(), churn.clone(), first.clone(), second.clone());
            std::thread::spawn(move || {
                let mut i = r * 13;
                let mut spis = [0u32; 32];
                let mut idx = [0usize; 32];
                while !stop.load(Ordering::Relaxed) {
                    for (k, (s, x)) in spis.iter_mut().zip(idx.iter_mut()).enumerate() {
                        i += 7;
                        if k % 2 == 0 {
                            *x = i % stable.len();
                            *s = stable[*x];
                        } else {
                            *s = churn[i % churn.len()];
                        }
                    }
                    let t = sad.load();
                    let mut out = [None; 32];
                    t.get_burst(&spis, &mut out);
                    for (k, o) in out.iter().enumerate() {
                        if k % 2 == 0 {
                            let sa = o.expect("a stable SA vanished during updates");
                            let x = idx[k];
                            assert!(
                                Arc::ptr_eq(sa, &first[x]) || Arc::ptr_eq(sa, &second[x]),
                                "spi {:#x}: not its SA",
                                spis[k]
                            );
                        } else if let Some(sa) = o {
                            assert_eq!(sa.spi(), spis[k]);
                            churn_hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lookups.fetch_add(32, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // The readers first look up at least once (on a loaded machine the
    // writer's rounds can otherwise end before a reader thread ran).
    while lookups.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let before = sad.rebuilds();
    for round in 0..30 {
        // Batches of installs and removals, as the control channel sends.
        for chunk in pool.chunks(50) {
            sad.apply(chunk.iter().cloned().map(SadOp::Insert));
        }
        for chunk in churn.chunks(40) {
            sad.apply(
                chunk
                    .iter()
                    .skip(round % 2)
                    .step_by(2)
                    .map(|&s| SadOp::Remove(s)),
            );
        }
        // Rekeys of stable SAs with the same SPI, one by one.
        let (from, to) = if round % 2 == 0 {
            (&first, &second)
        } else {
            (&second, &first)
        };
        for (a, b) in from.iter().zip(to).skip(round * 31 % 900).take(100) {
            let old = sad.insert(b.clone()).expect("stable SA missing");
            assert!(Arc::ptr_eq(&old, a) || Arc::ptr_eq(&old, b));
        }
    }
    // Half the churned SPIs stay installed after the last round: the readers
    // must find some of them (on a loaded machine they may not have run
    // while the rounds went on; a minute is far more than they need).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while churn_hits.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(lookups.load(Ordering::Relaxed) > 0);
    assert!(
        churn_hits.load(Ordering::Relaxed) > 0,
        "no churned SA ever found"
    );
    assert!(sad.rebuilds() > before, "no shard rebuilt under readers");
    let t = sad.load();
    for &s in &stable {
        assert_eq!(t.get(s).map(|sa| sa.spi()), Some(s));
    }
    assert_eq!(
        t.len(),
        stable.len() + churn.len() - churn.iter().skip(1).step_by(2).count()
    );
}

#[test]
fn large_tables_put_their_shards_on_huge_page_mappings() {
    use dataplane::sa::sad::{Placement, HUGE_TABLE};
    const MB2: usize = 2 << 20;
    let huge = Sad::with_capacity(HUGE_TABLE);
    let heap = Sad::with_capacity_placed(HUGE_TABLE, Placement::Heap);
    let small = Sad::with_capacity(20_000);
    {
        let (t, h, s) = (huge.load(), heap.load(), small.load());
        // A few large shards, each a mapping of its own in whole 2 MB
        // pages; the same shards on the heap when asked; small tables on
        // the heap.
        assert!(t.shards() <= 4, "{} shards", t.shards());
        assert_eq!(t.shards(), h.shards());
        let mapped = t.index_mapped_bytes();
        assert!(mapped >= t.shards() * MB2, "mapped {mapped}");
        assert_eq!(mapped % MB2, 0);
        assert!(mapped * 100 >= t.index_bytes() * 99);
        assert_eq!(h.index_mapped_bytes(), 0);
        assert_eq!(s.index_mapped_bytes(), 0);
    }
    // Both placements hold and find the same SAs.
    let spis: Vec<u32> = (0..3000).map(spi_of).collect();
    for sad in [&huge, &heap] {
        sad.apply(spis.iter().map(|&s| SadOp::Insert(new_sa(s))));
        let t = sad.load();
        assert_eq!(t.len(), spis.len());
        let mut out = vec![None; spis.len()];
        t.get_burst(&spis, &mut out);
        for (s, o) in spis.iter().zip(&out) {
            assert_eq!(o.map(|sa| sa.spi()), Some(*s));
        }
        assert!(t.get(spi_of(5000)).is_none());
    }
    // Removing most SAs rebuilds their shards with room for the rest: small
    // blocks, on the heap; lookups stay right.
    huge.apply(spis.iter().skip(100).map(|&s| SadOp::Remove(s)));
    assert!(huge.rebuilds() > 0);
    let t = huge.load();
    assert_eq!(t.len(), 100);
    assert_eq!(t.index_mapped_bytes(), 0);
    for (i, &s) in spis.iter().enumerate() {
        assert_eq!(t.get(s).map(|sa| sa.spi()), (i < 100).then_some(s));
    }
}
