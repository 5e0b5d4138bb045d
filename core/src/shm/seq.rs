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
