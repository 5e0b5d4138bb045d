//! The bound on outbound sequence numbers (see "Outbound sequence numbers
//! are never reused under one key" in the module docs of [`super`]).

#![forbid(unsafe_code)]

/// Upper bound on the packets one SA can send per second: the line rate of
/// 100 Gbit/s Ethernet at minimum frame size (148.8 Mpps), rounded up.
pub const SEQ_RATE_BOUND_PPS: u64 = 150_000_000;
/// Added to every sequence bound on re-install: covers the bursts workers may
/// still have in flight on a removed SA (workers x burst size, with room).
pub const SEQ_MARGIN: u64 = 65_536;

/// Upper bound at `now_ns` on the next sequence number of an SA whose next
/// number was exactly `seq` at `at_ns` (`at_ns == u64::MAX`: the SA was
/// stopped, the bound does not grow).
pub fn seq_bound(seq: u64, at_ns: u64, now_ns: u64) -> u64 {
    if at_ns == u64::MAX {
        return seq;
    }
    let dt = now_ns.saturating_sub(at_ns) as u128;
    let grow = dt * u128::from(SEQ_RATE_BOUND_PPS) / 1_000_000_000 + 1;
    seq.saturating_add(grow.min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Never panics or wraps: at least `seq`, growing with time, saturating.
        #[test]
        fn bound_saturates_and_grows(seq in any::<u64>(), at in any::<u64>(), d1 in any::<u64>(), d2 in any::<u64>()) {
            let now1 = at.saturating_add(d1 % (1 << 50));
            let now2 = now1.saturating_add(d2 % (1 << 50));
            let b1 = seq_bound(seq, at, now1);
            let b2 = seq_bound(seq, at, now2);
            prop_assert!(b1 >= seq);
            prop_assert!(b2 >= b1);
            if at == u64::MAX {
                prop_assert_eq!(b1, seq);
            }
        }
    }

    #[test]
    fn bound_at_the_top() {
        assert_eq!(seq_bound(u64::MAX, 0, u64::MAX), u64::MAX);
        assert_eq!(seq_bound(u64::MAX - 1, 0, 1), u64::MAX);
        assert_eq!(seq_bound(5, 10, 3), 6);
    }
}
