//! ECN on tunnel entry and exit (RFC 6040, normal mode) and DF choice.

use crate::wire::ecn::{CE, ECT0, NOT_ECT};

/// Outer ECN on tunnel entry (RFC 6040 §4.1, normal mode): the inner
/// codepoint is copied unchanged, CE included. (RFC 6040 updates RFC 4301
/// §5.1.2.1, which reset CE to ECT(0); the copy keeps congestion signals
/// visible to the exit, which restores CE from the outer header anyway.)
#[inline(always)]
pub const fn encap_ecn(inner: u8) -> u8 {
    inner
}

/// Inner ECN on tunnel exit (RFC 6040 §4.2, table 2). `None`: drop (outer CE
/// on a not-ECT inner packet).
#[inline(always)]
pub const fn decap_ecn(inner: u8, outer: u8) -> Option<u8> {
    match (inner, outer) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (_, CE) => Some(CE),
        // ECT(0) inner with ECT(1) outer: ECT(1). Otherwise the inner stays.
        (ECT0, 1) => Some(1),
        (i, _) => Some(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ecn::ECT1;

    #[test]
    fn rfc6040_tables() {
        assert_eq!(encap_ecn(NOT_ECT), NOT_ECT);
        assert_eq!(encap_ecn(ECT0), ECT0);
        assert_eq!(encap_ecn(ECT1), ECT1);
        assert_eq!(encap_ecn(CE), CE);
        // RFC 6040 Figure 4: rows inner, columns outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
            (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
            (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
            (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
        ];
        for (inner, row) in table {
            for (outer, want) in [NOT_ECT, ECT0, ECT1, CE].into_iter().zip(row) {
                assert_eq!(decap_ecn(inner, outer), want, "inner {inner} outer {outer}");
            }
        }
    }
}
