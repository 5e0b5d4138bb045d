//! The drop-counter fold of a whole table (`Sad::fold_drops_step`): walks
//! only when a slot reached 2^31, in chunks, and folds every SA that needs
//! it exactly once while SAs are installed and removed between chunks.

use std::sync::Arc;

use super::*;
use crate::crypto::{Backend, EncrAlg, IntegAlg, Key, Suite};
use crate::drop::DropReason as D;
use crate::sa::drops::FOLD_REQUEST_TESTS;
use crate::sa::{DfMode, Direction, Lifetime, Mode, SaParams, FOLD_AT};

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
        lifetime: Lifetime::default(),
        df: DfMode::Copy,
        copy_dscp: false,
        initial_seq: 1,
        allow_legacy: false,
        tunnel_id: 1,
    };
    Arc::new(Sa::new(p, Backend::Auto).unwrap())
}

fn table(spis: impl Iterator<Item = u32>) -> (Sad, Vec<Arc<Sa>>) {
    let sad = Sad::with_capacity(1024);
    let sas: Vec<Arc<Sa>> = spis.map(sa).collect();
    sad.apply(sas.iter().cloned().map(SadOp::Insert));
    (sad, sas)
}

/// Finishes any walk that requests of other tests (or this one's set-up)
/// left for this table, so that the next step starts from a clean state.
fn settle(sad: &Sad) {
    sad.fold_drops();
}

/// No slot reached 2^31: a step looks at no SA (a slot just below is not
/// a request). The drop that takes one slot to 2^31 makes the next step
/// walk the table and fold that SA, and only that one; then steps look at
/// nothing again. A forced walk looks at every SA and folds none.
#[test]
fn walks_only_when_a_slot_reached_the_threshold() {
    let _lock = FOLD_REQUEST_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (sad, sas) = table(1000..1200);
    settle(&sad);
    let idle = sad.fold_drops_step(FOLD_CHUNK);
    assert_eq!(
        idle,
        FoldStep {
            visited: 0,
            folded: 0,
            done: true
        }
    );

    // Clean and almost-full slots: still no walk.
    sas[3].count_drop(D::Replayed);
    sas[7].count_drops(D::IcvMismatch, FOLD_AT - 1);
    assert_eq!(sad.fold_drops_step(FOLD_CHUNK).visited, 0);

    // The drop that reaches 2^31: one walk, one SA folded, exact counts.
    sas[7].count_drop(D::IcvMismatch);
    let walk = sad.fold_drops();
    assert_eq!(
        walk,
        FoldStep {
            visited: 200,
            folded: 1,
            done: true
        }
    );
    assert_eq!(sas[7].counters().drops(D::IcvMismatch), u64::from(FOLD_AT));
    assert_eq!(sas[3].counters().drops(D::Replayed), 1);
    sas[7].count_drop(D::IcvMismatch);
    assert_eq!(
        sas[7].counters().drops(D::IcvMismatch),
        u64::from(FOLD_AT) + 1
    );
    assert_eq!(sad.fold_drops_step(FOLD_CHUNK).visited, 0);

    // Forced: every SA looked at, nothing left to fold.
    sad.request_fold_walk();
    assert_eq!(
        sad.fold_drops(),
        FoldStep {
            visited: 200,
            folded: 0,
            done: true
        }
    );
}

/// A walk in chunks of 7 SAs with drops counted between the chunks (on SAs
/// already passed and on SAs not yet reached): every SA at 2^31 when the
/// walk began is folded exactly once and no drop is lost or counted twice
/// across a chunk boundary.
#[test]
fn chunked_walk_folds_each_sa_once_and_loses_no_drop() {
    let _lock = FOLD_REQUEST_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (sad, sas) = table(5000..5300);
    settle(&sad);
    let mut want = vec![0u64; sas.len()];
    for (i, s) in sas.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        s.count_drops(D::OutsideWindow, FOLD_AT + 5);
        want[i] += u64::from(FOLD_AT) + 5;
    }
    let dirty = sas.len().div_ceil(3);
    let (mut visited, mut folded, mut steps) = (0, 0, 0);
    loop {
        let s = sad.fold_drops_step(7);
        assert!(s.visited < 7 + BUCKET, "a chunk is 7 SAs (whole buckets)");
        visited += s.visited;
        folded += s.folded;
        steps += 1;
        // Between chunks: one more drop on every SA.
        for (i, sa) in sas.iter().enumerate() {
            sa.count_drop(D::OutsideWindow);
            want[i] += 1;
        }
        for (i, sa) in sas.iter().enumerate() {
            assert_eq!(sa.counters().drops(D::OutsideWindow), want[i], "SA {i}");
        }
        if s.done {
            break;
        }
    }
    assert_eq!(visited, sas.len());
    assert_eq!(folded, dirty);
    assert!(steps >= sas.len() / 7, "{steps} steps");
    // Nothing left at 2^31.
    sad.request_fold_walk();
    assert_eq!(sad.fold_drops().folded, 0);
}

/// Installs and removals between the chunks of a walk, enough to rebuild
/// shards the walk is inside of (checked): the
/// walk ends, every SA at 2^31 that stays installed is folded exactly once
/// (a rebuilt shard is walked again from its start, whole), and the counts
/// stay exact.
#[test]
fn walk_with_installs_and_removals_between_chunks() {
    let _lock = FOLD_REQUEST_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (sad, sas) = table(10_000..10_400);
    settle(&sad);
    for s in &sas {
        s.count_drops(D::BadPadding, FOLD_AT);
    }
    let churn: Vec<Arc<Sa>> = (20_000..20_200).map(sa).collect();
    let (mut folded, mut round, mut restarts) = (0, 0, 0);
    loop {
        let s = sad.fold_drops_step(5);
        folded += s.folded;
        if s.done {
            break;
        }
        // 100 SAs installed and removed again per chunk: dead slots pile
        // up and shards (about 25 live SAs each) are rebuilt every few
        // chunks.
        let k = (round % 2) * 100;
        round += 1;
        assert!(round < 10_000, "the walk does not end under churn");
        sad.apply(churn[k..k + 100].iter().cloned().map(SadOp::Insert));
        sad.apply(churn[k..k + 100].iter().map(|s| SadOp::Remove(s.spi())));
        // Was the shard the walk is inside rebuilt?
        let w = sad.writer.lock().unwrap();
        if let Some(c) = w.fold.walk {
            if c.bucket != 0 && w.shards[c.shard].generation != c.generation {
                restarts += 1;
            }
        }
    }
    assert!(
        restarts > 0,
        "no shard rebuilt under the walk ({round} rounds)"
    );
    assert_eq!(folded, sas.len(), "each SA folded once, none passed over");
    for s in &sas {
        s.count_drop(D::BadPadding);
        assert_eq!(s.counters().drops(D::BadPadding), u64::from(FOLD_AT) + 1);
    }
    sad.request_fold_walk();
    assert_eq!(sad.fold_drops().folded, 0);
}

/// A walk while another thread installs and removes SAs at random: the
/// table's writer lock is taken per chunk, so both go on; every SA at
/// 2^31 that stays installed is folded once and every count is exact.
#[test]
fn walk_concurrent_with_installs_and_removals() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _lock = FOLD_REQUEST_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (sad, sas) = table(30_000..30_300);
    settle(&sad);
    for s in &sas {
        s.count_drops(D::Malformed, FOLD_AT + 1);
    }
    let churn: Vec<Arc<Sa>> = (40_000..40_400).map(sa).collect();
    let stop = AtomicBool::new(false);
    let folded = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut applies = 0u32;
            while !stop.load(Ordering::Relaxed) || applies < 4 {
                let k = (applies as usize * 37) % 300;
                sad.apply(churn[k..k + 100].iter().cloned().map(SadOp::Insert));
                sad.apply(churn[k..k + 100].iter().map(|s| SadOp::Remove(s.spi())));
                applies += 1;
            }
            applies
        });
        let mut folded = 0;
        loop {
            let s = sad.fold_drops_step(3);
            folded += s.folded;
            if s.done {
                break;
            }
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() >= 4);
        folded
    });
    assert_eq!(folded, sas.len());
    assert_eq!(sad.len(), sas.len());
    for s in &sas {
        assert_eq!(s.counters().drops(D::Malformed), u64::from(FOLD_AT) + 1);
    }
    sad.request_fold_walk();
    assert_eq!(sad.fold_drops().folded, 0);
}
