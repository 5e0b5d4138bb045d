//! Outbound sequence numbers respect the SA's limit whatever the initial
//! number (issue 10, acceptance 3): an initial number past the limit (2^32 - 1
//! without ESN) is refused with a reason, never installed to wrap; reserving
//! never wraps, never panics, never grants a number twice or past the limit.

mod esp_common;

use dataplane::crypto::Backend;
use dataplane::sa::{Direction, Mode, Sa, SaError, SaEvent, SaParams};
use esp_common::*;
use proptest::prelude::*;

const LIMIT32: u64 = u32::MAX as u64;

fn outbound(esn: bool, initial_seq: u64) -> SaParams {
    let (mut out, _) = sa_pair(
        suites()[0],
        Mode::Tunnel,
        "192.0.2.1",
        "192.0.2.2",
        esn,
        false,
    );
    out.initial_seq = initial_seq;
    out
}

fn events(sa: &Sa) -> Vec<SaEvent> {
    let mut v = Vec::new();
    sa.take_events(&mut v);
    v
}

#[test]
fn an_initial_sequence_number_past_the_limit_is_refused_with_a_reason() {
    for (esn, seq, ok) in [
        (false, LIMIT32, true),
        (false, LIMIT32 + 1, false),
        (false, 1 << 40, false),
        (false, u64::MAX, false),
        (true, LIMIT32 + 1, true),
        (true, u64::MAX, true),
    ] {
        for dir in [Direction::Outbound, Direction::Inbound] {
            let mut p = outbound(esn, seq);
            p.direction = dir;
            match Sa::new(p, Backend::Auto) {
                Ok(_) => assert!(ok, "esn {esn} initial_seq {seq} {dir:?} installed"),
                Err(e) => {
                    assert!(!ok, "esn {esn} initial_seq {seq} {dir:?} refused: {e}");
                    assert!(matches!(e, SaError::InitialSeq { value, .. } if value == seq));
                    assert!(e.to_string().contains(&seq.to_string()), "{e}");
                    assert_eq!(
                        e.refuse_reason(),
                        espresso_core::shm::RefuseReason::InitialSeq
                    );
                }
            }
        }
    }
}

#[test]
fn the_last_number_is_sent_once_and_then_the_sa_is_exhausted() {
    let sa = Sa::new(outbound(false, LIMIT32), Backend::Auto).unwrap();
    assert_eq!(sa.reserve_seq(32), (LIMIT32, 1));
    assert_eq!(sa.reserve_seq(32).1, 0);
    assert_eq!(sa.next_seq(), LIMIT32 + 1);
    assert!(events(&sa)
        .iter()
        .any(|e| matches!(e, SaEvent::SeqExhausted { .. })));
    let sa = Sa::new(outbound(true, u64::MAX), Backend::Auto).unwrap();
    assert_eq!(sa.reserve_seq(4), (u64::MAX, 1));
    assert_eq!(sa.reserve_seq(4), (u64::MAX, 0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the initial number and the bursts: either refused (past the
    /// limit), or every granted number is fresh, increasing and within the limit.
    #[test]
    fn reserved_numbers_never_wrap_or_repeat(
        esn in any::<bool>(),
        near in prop_oneof![
            Just(0u64), Just(1), Just(LIMIT32 - 100), Just(LIMIT32), Just(LIMIT32 + 1),
            Just(u64::MAX - 100), Just(u64::MAX)
        ],
        off in 0u64..200,
        bursts in proptest::collection::vec(0u64..80, 1..40),
    ) {
        let initial = near.saturating_add(off);
        let limit = if esn { u64::MAX } else { LIMIT32 };
        let sa = match Sa::new(outbound(esn, initial), Backend::Auto) {
            Ok(sa) => sa,
            Err(e) => {
                prop_assert!(initial > limit, "refused below the limit: {}", e);
                return Ok(());
            }
        };
        prop_assert!(initial <= limit);
        let mut next = initial.max(1);
        let mut total = 0u64;
        for n in bursts {
            let (first, k) = sa.reserve_seq(n);
            prop_assert!(k <= n);
            if k > 0 {
                prop_assert_eq!(first, next);
                prop_assert!(first.checked_add(k - 1).is_some_and(|l| l <= limit));
                next = first + k;
                total += k;
            }
            if k < n {
                // exhausted: the rest of the numbers up to the limit were granted
                prop_assert_eq!(next - 1, limit);
            }
        }
        prop_assert!(total <= limit - initial.max(1) + 1);
    }
}
