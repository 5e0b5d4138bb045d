use super::*;

#[test]
fn floor_refuses_everything_up_to_it() {
    for size in [64u32, 100, 4096] {
        for floor in [1u64, 30, 31, 32, 33, 63, 64, 65, 1000, 5000, (1 << 32) + 7] {
            let w = ReplayWindow::new(size).unwrap();
            w.set_floor(floor);
            assert_eq!(w.top(), floor);
            for back in 0..u64::from(size).min(floor) {
                let s = floor - back;
                assert_eq!(
                    w.check(s),
                    Err(ReplayError::Replayed),
                    "size {size} floor {floor} seq {s}"
                );
                assert!(w.commit(s).is_err(), "size {size} floor {floor} seq {s}");
            }
            if floor > u64::from(size) {
                assert_eq!(
                    w.check(floor - u64::from(size)),
                    Err(ReplayError::OutsideWindow)
                );
            }
            for s in floor + 1..floor + 40 {
                assert_eq!(w.check(s), Ok(()), "size {size} floor {floor} seq {s}");
                assert_eq!(w.commit(s), Ok(()), "size {size} floor {floor} seq {s}");
                assert_eq!(w.check(s), Err(ReplayError::Replayed));
            }
        }
    }
    // Zero: nothing seen.
    let w = ReplayWindow::new(64).unwrap();
    w.commit(5).unwrap();
    w.set_floor(0);
    assert_eq!(w.check(5), Ok(()));
}

/// The reciprocal gives exactly `block / N` and `block % N`.
#[test]
fn place_matches_division() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for size in [64u32, 100, 4095, 4096, 4097, 10_000, 65536] {
        let w = ReplayWindow::new(size).unwrap();
        let n = w.slots.len() as u64;
        let mut seqs: Vec<u64> = vec![0, 1, 47, 48, 49, u64::MAX, u64::MAX - 48];
        seqs.extend((1..200u64).map(|k| k * n * BLOCK_BITS - 1));
        seqs.extend((1..200u64).map(|k| k * n * BLOCK_BITS));
        seqs.extend((0..20_000).map(|_| rng.random::<u64>()));
        seqs.extend((0..20_000).map(|_| rng.random_range(0..1u64 << 40)));
        for seq in seqs {
            let p = w.place(seq);
            let block = seq / BLOCK_BITS;
            assert_eq!(p.slot as u64, block % n, "W {size} seq {seq}");
            assert_eq!(p.tag, (block / n) << TAG_SHIFT, "W {size} seq {seq}");
            assert_eq!(p.base, block * BLOCK_BITS);
        }
    }
}

#[test]
fn sizes() {
    assert!(ReplayWindow::new(63).is_err());
    assert!(ReplayWindow::new(65537).is_err());
    // (W - 1) / 48 + 2 slots of 8 bytes.
    assert_eq!(ReplayWindow::new(64).unwrap().slots.len(), 3);
    assert_eq!(ReplayWindow::new(4096).unwrap().slots.len(), 87);
    assert_eq!(ReplayWindow::new(4096).unwrap().slot_bytes(), 696);
    assert_eq!(ReplayWindow::new(65536).unwrap().slots.len(), 1367);
    assert_eq!(ReplayWindow::new(0).unwrap().slot_bytes(), 0);
    assert_eq!(ReplayWindow::new(100).unwrap().size(), 100);
}

#[test]
fn basic_window_semantics() {
    let w = ReplayWindow::new(64).unwrap();
    assert_eq!(w.check(0), Err(ReplayError::OutsideWindow));
    w.check_and_commit(1).unwrap();
    assert_eq!(w.check(1), Err(ReplayError::Replayed));
    w.check_and_commit(100).unwrap();
    // 100 - 64 = 36 is just outside, 37 just inside.
    assert_eq!(w.check(36), Err(ReplayError::OutsideWindow));
    w.check_and_commit(37).unwrap();
    assert_eq!(w.commit(37), Err(ReplayError::Replayed));
    w.check_and_commit(99).unwrap();
    assert_eq!(w.check(99), Err(ReplayError::Replayed));
    // A big jump invalidates everything old.
    w.check_and_commit(1_000_000).unwrap();
    assert_eq!(w.check(100), Err(ReplayError::OutsideWindow));
    assert_eq!(w.check(999_999), Ok(()));
    assert_eq!(w.check(1_000_000 - 63), Ok(()));
    assert_eq!(w.check(1_000_000 - 64), Err(ReplayError::OutsideWindow));
}

#[test]
fn every_in_window_number_accepted_once_after_reuse_of_slots() {
    for size in [64u32, 100, 4096] {
        let w = ReplayWindow::new(size).unwrap();
        // Walk far enough that every slot is re-tagged several times.
        let n = u64::from(size) * 20;
        for s in (1..=n).step_by(2) {
            w.check_and_commit(s).unwrap();
        }
        // Even numbers in the window were never seen: all accepted once.
        let lo = n - u64::from(size) + 1;
        for s in lo..=n {
            if s % 2 == 0 {
                assert_eq!(w.check_and_commit(s), Ok(()), "size {size} seq {s}");
            }
            assert_eq!(
                w.check(s),
                Err(ReplayError::Replayed),
                "size {size} seq {s}"
            );
        }
        assert_eq!(w.check(lo - 1), Err(ReplayError::OutsideWindow));
    }
}

#[test]
fn burst_commit_accepts_each_number_once_and_drops_nothing_in_window() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for size in [64u32, 100, 4096] {
        let w = ReplayWindow::new(size).unwrap();
        let mut accepted = std::collections::HashSet::new();
        let mut base = 1u64;
        for _ in 0..3000 {
            let seqs: Vec<u64> = (0..32)
                .map(|_| base + rng.random_range(0..(u64::from(size) * 2)))
                .collect();
            base += rng.random_range(0..u64::from(size) / 2);
            let mut out = vec![Ok(()); 32];
            w.commit_burst(&seqs, &mut out);
            let top = w.top();
            assert_eq!(top, *seqs.iter().max().unwrap().max(&top));
            let mut first_copy = std::collections::HashSet::new();
            for (s, r) in seqs.iter().zip(&out) {
                let fresh = !accepted.contains(s);
                if r.is_ok() {
                    assert!(fresh, "size {size}: {s} accepted twice");
                    accepted.insert(*s);
                } else if fresh && top - s < u64::from(size) && first_copy.insert(*s) {
                    panic!("size {size}: {s} dropped ({r:?}) although new and inside the window (top {top})");
                }
            }
        }
    }
}

/// A burst whose later packet moves the window a whole lap past an
/// earlier one still accepts the earlier one (judged as if committed in
/// order); a duplicate of it afterwards is refused. Before, the check
/// after the CAS refused any packet whose block `top` had lapped, though
/// its bit stayed set: a concurrent duplicate then counted as a replay
/// of a packet never accepted (CI, `esp_replay_mt` window 64).
#[test]
fn a_later_packet_a_lap_ahead_does_not_take_back_an_accepted_one() {
    for size in [64u32, 4096] {
        let w = ReplayWindow::new(size).unwrap();
        let lap = w.slots.len() as u64 * BLOCK_BITS;
        let seqs = [10, 10 + lap];
        let mut out = [Err(ReplayError::Replayed); 2];
        w.commit_burst(&seqs, &mut out);
        assert_eq!(out, [Ok(()); 2], "size {size}");
        assert_eq!(w.check(10), Err(ReplayError::OutsideWindow));
        assert_eq!(w.commit(10), Err(ReplayError::OutsideWindow));
        assert_eq!(w.commit(10 + lap), Err(ReplayError::Replayed));
        assert_eq!(w.commit(11 + 3 * lap), Ok(()));
        assert_eq!(w.commit(11 + 3 * lap), Err(ReplayError::Replayed));
    }
}

/// Strictly increasing bursts (the in-order path, `commit_ascending`,
/// bursts longer than 64 included) give what per-packet commits give,
/// for bursts spanning less than the window (a packet W below a later
/// one of its own burst may be refused by a burst commit: the window
/// has moved past it when its slot is claimed).
#[test]
fn increasing_bursts_match_per_packet_commits() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for size in [64u32, 100, 4096] {
        let (bursts, single) = (
            ReplayWindow::new(size).unwrap(),
            ReplayWindow::new(size).unwrap(),
        );
        let max_len = (size as usize / 2 - 1).min(100);
        let mut next = 1u64;
        for round in 0..2000 {
            if rng.random_bool(0.05) {
                next += u64::from(size);
            }
            let len = rng.random_range(1..=max_len);
            let mut seqs = Vec::with_capacity(len);
            for _ in 0..len {
                next += rng.random_range(1..=2u64);
                seqs.push(next);
            }
            // Every tenth burst again (all replays) or shifted back
            // into the window (increasing, some new, some seen).
            if round % 10 == 9 {
                let back = rng.random_range(0..u64::from(size) / 2);
                for s in seqs.iter_mut() {
                    *s = s.saturating_sub(back).max(1);
                }
                seqs.dedup();
            }
            let mut out = vec![Ok(()); seqs.len()];
            bursts.commit_burst(&seqs, &mut out);
            let want: Vec<_> = seqs.iter().map(|&q| single.commit(q)).collect();
            assert_eq!(out, want, "size {size} round {round} seqs {seqs:?}");
            assert_eq!(bursts.top(), single.top());
        }
    }
}

/// Reordered bursts with duplicates spanning less than the window (the
/// `commit_in_window` path, one or two blocks or more) give what
/// per-packet commits give.
#[test]
fn reordered_bursts_within_the_window_match_per_packet_commits() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for size in [64u32, 100, 4096] {
        let (bursts, single) = (
            ReplayWindow::new(size).unwrap(),
            ReplayWindow::new(size).unwrap(),
        );
        let mut next = 1u64;
        for round in 0..3000 {
            let span = rng.random_range(1..u64::from(size).min(200));
            let lo = next
                .saturating_sub(rng.random_range(0..u64::from(size) - span))
                .max(1);
            let len = rng.random_range(1..=64usize);
            let mut seqs: Vec<u64> = (0..len).map(|_| lo + rng.random_range(0..span)).collect();
            seqs.shuffle(&mut rng);
            next = next.max(lo + span);
            let mut out = vec![Ok(()); len];
            bursts.commit_burst(&seqs, &mut out);
            let want: Vec<_> = seqs.iter().map(|&q| single.commit(q)).collect();
            assert_eq!(out, want, "size {size} round {round} seqs {seqs:?}");
            assert_eq!(bursts.top(), single.top());
        }
    }
}

/// The per-burst shortcut of the lapped test (`lap_reach`) agrees with
/// the exact test at its boundary: a burst whose top reaches the first
/// later lap with the same 16-bit tag as its lowest packet refuses that
/// packet; one number lower, the packet stays accepted.
#[test]
fn burst_refuses_a_packet_only_once_top_reached_its_same_tag_lap() {
    for size in [64u32, 4096] {
        let w = ReplayWindow::new(size).unwrap();
        let same_tag_lap = w.slots.len() as u64 * TAG_LAPS * BLOCK_BITS;
        let first = 10;
        let mut out = [Ok(()); 2];
        w.commit_burst(&[first, same_tag_lap - 1], &mut out);
        assert_eq!(out[0], Ok(()), "size {size}");
        assert!(w.lapped(first, same_tag_lap));
        assert!(!w.lapped(first, same_tag_lap - 1));
        assert!(same_tag_lap - first >= w.lap_reach());
        let w = ReplayWindow::new(size).unwrap();
        w.commit_burst(&[first, same_tag_lap], &mut out);
        assert_eq!(out[0], Err(ReplayError::OutsideWindow), "size {size}");
    }
}

#[test]
fn window_off_accepts_duplicates_but_tracks_top() {
    let w = ReplayWindow::new(0).unwrap();
    w.check_and_commit(5).unwrap();
    w.check_and_commit(5).unwrap();
    assert_eq!(w.top(), 5);
    assert_eq!(w.check(0), Err(ReplayError::OutsideWindow));
}

/// Inference is exact for every number from the bottom of the window to
/// 2^32 - W above its top, whatever the top (across subspace boundaries
/// too); a number further behind gets the next subspace (RFC 4303 A2.2),
/// which the ICV then refuses.
#[test]
fn esn_inference_exact_from_the_window_bottom_and_late_packets_get_the_next_subspace() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for size in [64u32, 4096] {
        let w = ReplayWindow::new(size).unwrap();
        let wl = u64::from(size);
        let mut tops = vec![
            wl,
            wl + 1,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 5,
            (1 << 32) + wl,
            (5 << 32) + 3,
        ];
        tops.extend((0..200).map(|_| rng.random_range(wl..1u64 << 40)));
        for top in tops {
            w.set_top(top);
            let mut probes: Vec<u64> = vec![top - wl + 1, top, top + 1, top + (1 << 32) - wl];
            probes.extend((0..50).map(|_| rng.random_range(top - wl + 1..=top + (1 << 32) - wl)));
            for s in probes {
                assert_eq!(
                    w.infer_seq(s as u32, true),
                    Some(s),
                    "W {size} top {top} seq {s}"
                );
            }
            // A packet more than W behind the top: next subspace (or none
            // when that would need a high half past 2^32 - 1).
            for late in [
                top - wl,
                top.saturating_sub(wl + 1),
                top.saturating_sub(wl + 1000),
            ] {
                if late == 0 {
                    continue;
                }
                let got = w.infer_seq(late as u32, true);
                assert_ne!(got, Some(late), "W {size} top {top} late {late}");
                if let Some(g) = got {
                    assert_eq!(g, late + (1 << 32), "W {size} top {top} late {late}");
                    assert!(
                        g > top,
                        "the wrong number lies ahead: only the ICV can refuse it"
                    );
                }
            }
        }
    }
}

#[test]
fn esn_inference_rfc4303_a2() {
    let w = ReplayWindow::new(64).unwrap();
    // Before anything: small numbers are in subspace 0.
    assert_eq!(w.infer_seq(1, true), Some(1));
    // Numbers just below 2^32 would be in subspace -1: impossible.
    assert_eq!(w.infer_seq(u32::MAX, true), None);
    // Case A: top in the middle of subspace 0.
    w.set_top(1000);
    assert_eq!(w.infer_seq(1000 - 63, true), Some(937));
    assert_eq!(w.infer_seq(936, true), Some((1 << 32) | 936));
    assert_eq!(w.infer_seq(5000, true), Some(5000));
    // Top near the end of subspace 0: a small number wrapped into subspace 1.
    w.set_top(u64::from(u32::MAX) - 5);
    assert_eq!(w.infer_seq(3, true), Some((1 << 32) | 3));
    assert_eq!(
        w.infer_seq(u32::MAX - 10, true),
        Some(u64::from(u32::MAX) - 10)
    );
    // Case B: top just after the boundary; late packets from subspace 0.
    w.set_top((1 << 32) | 10);
    assert_eq!(
        w.infer_seq(u32::MAX - 20, true),
        Some(u64::from(u32::MAX) - 20)
    );
    assert_eq!(w.infer_seq(5, true), Some((1 << 32) | 5));
    assert_eq!(w.infer_seq(100, true), Some((1 << 32) | 100));
    // Without ESN the number is the low half.
    assert_eq!(w.infer_seq(7, false), Some(7));
}
