//! The anti-replay window (`sa::ReplayWindow`) against a reference model
//! on random traffic: a set of accepted numbers and the highest one, RFC
//! 4303 §3.4.3 taken literally (a number is new if above the highest, or
//! less than W below it and not accepted before), and RFC 4303 Appendix A
//! inference of the high half with ESN written another way (the one
//! candidate in the 2^32 numbers from the window's bottom on).
//!
//! Each burst goes as decap sends it: every packet's number inferred and
//! checked against the window as it was before the burst, then the ones
//! that passed committed together (`commit_burst`), judged as if one by
//! one in burst order. A packet whose number is inferred wrong (sent from
//! behind the window, put in the next subspace) fails its ICV (which
//! covers the high half) and goes no further, as in decap. Bursts span
//! less than W (a burst commit may refuse a packet W below a later one of
//! its own burst: the module says so).

use std::collections::HashSet;

use dataplane::sa::{ReplayError, ReplayWindow};
use proptest::prelude::*;

struct Model {
    w: u64,
    top: u64,
    accepted: HashSet<u64>,
}

impl Model {
    fn judge(&self, s: u64) -> Result<(), ReplayError> {
        if s == 0 {
            Err(ReplayError::OutsideWindow)
        } else if s > self.top {
            Ok(())
        } else if self.top - s >= self.w {
            Err(ReplayError::OutsideWindow)
        } else if self.accepted.contains(&s) {
            Err(ReplayError::Replayed)
        } else {
            Ok(())
        }
    }

    fn commit(&mut self, s: u64) -> Result<(), ReplayError> {
        self.judge(s)?;
        self.accepted.insert(s);
        self.top = self.top.max(s);
        Ok(())
    }

    /// The 64-bit number of low half `l`: the one candidate
    /// `(h << 32) | l` in `[bottom, bottom + 2^32)`, bottom = top - W + 1
    /// (the window's lowest number; may lie below 0 early on), or `None`
    /// if that candidate is below 0 or past 2^64.
    fn infer(&self, l: u32, infer_w: u64) -> Option<u64> {
        let bottom = i128::from(self.top) - i128::from(infer_w) + 1;
        let base = bottom.div_euclid(1 << 32) << 32;
        let mut c = base + i128::from(l);
        if c < bottom {
            c += 1 << 32;
        }
        u64::try_from(c).ok()
    }
}

fn run(size: u32, esn: bool, start: u64, bursts: &[(i64, Vec<u16>)]) {
    let win = ReplayWindow::new(size).unwrap();
    win.set_top(start);
    let w = u64::from(size);
    let mut m = Model {
        w,
        top: start,
        accepted: HashSet::new(),
    };
    // Bursts span less than W.
    let span = (w - 1).min(200);
    for (shift, offs) in bursts {
        let base = (m.top as i128 + i128::from(*shift)).max(0) as u64;
        let seqs: Vec<u64> = offs.iter().map(|o| base + u64::from(*o) % span).collect();
        let mut passed = Vec::new();
        for &s in &seqs {
            let l = s as u32;
            let got = win.infer_seq(l, esn);
            let want = if esn {
                m.infer(l, w)
            } else {
                Some(u64::from(l))
            };
            assert_eq!(got, want, "infer {l:#x} at top {:#x}", m.top);
            // A number inferred wrong (a packet from behind the window,
            // put in the next subspace) fails the ICV, which covers the
            // high half: never checked or committed.
            let Some(q) = got.filter(|&q| q == s) else {
                continue;
            };
            let c = win.check(q);
            assert_eq!(c, m.judge(q), "check {q:#x} at top {:#x}", m.top);
            if c.is_ok() {
                passed.push(q);
            }
        }
        let mut out = vec![Ok(()); passed.len()];
        win.commit_burst(&passed, &mut out);
        let want: Vec<_> = passed.iter().map(|&q| m.commit(q)).collect();
        assert_eq!(out, want, "burst {passed:x?}");
        assert_eq!(win.top(), m.top);
    }
}

fn bursts(w: u32) -> impl Strategy<Value = Vec<(i64, Vec<u16>)>> {
    let w = i64::from(w);
    prop::collection::vec(
        (-2 * w..64i64, prop::collection::vec(any::<u16>(), 1..48)),
        1..40,
    )
}

fn size() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![64u32, 100, 1000, 4096])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// 32-bit numbers (no ESN), from the start of the SA.
    #[test]
    fn window_matches_the_model(size in size(), b in size().prop_flat_map(bursts)) {
        run(size, false, 0, &b);
    }

    /// ESN: numbers around the 2^32 boundary (and a few more laps of the
    /// low half), inferred from their low halves.
    #[test]
    fn esn_window_matches_the_model(
        size in size(),
        hi in 0u64..3,
        below in 0u64..5000,
        b in size().prop_flat_map(bursts),
    ) {
        run(size, true, ((hi + 1) << 32).saturating_sub(below), &b);
    }
}
