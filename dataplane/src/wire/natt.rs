//! UDP encapsulation of ESP (RFC 3948): telling ESP from IKE and keepalives
//! on port 4500.

use super::{malformed, truncated, WireError, ESP_HEADER_LEN};

/// The NAT-T port.
pub const NATT_PORT: u16 = 4500;
/// Length of the non-ESP marker (four zero bytes) in front of IKE messages.
pub const NON_ESP_MARKER_LEN: usize = 4;

/// What a UDP/4500 payload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NattKind {
    /// An ESP packet (first 4 bytes: a non-zero SPI).
    Esp,
    /// An IKE message behind the non-ESP marker.
    Ike,
    /// A NAT-keepalive (the single byte 0xff, RFC 3948 §2.3).
    Keepalive,
}

/// Classifies a UDP/4500 payload.
pub fn classify_natt(payload: &[u8]) -> Result<NattKind, WireError> {
    match payload {
        [0xff] => Ok(NattKind::Keepalive),
        [0, 0, 0, 0, ..] => Ok(NattKind::Ike),
        p if p.len() >= ESP_HEADER_LEN => Ok(NattKind::Esp),
        [] => Err(truncated("udp-encapsulated esp", ESP_HEADER_LEN, 0)),
        [b] => Err(malformed("nat-t keepalive", "byte", u64::from(*b))),
        p => Err(truncated("udp-encapsulated esp", ESP_HEADER_LEN, p.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        assert_eq!(classify_natt(&[0xff]), Ok(NattKind::Keepalive));
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1, 2]), Ok(NattKind::Ike));
        assert_eq!(
            classify_natt(&[0, 0, 0x10, 1, 0, 0, 0, 1]),
            Ok(NattKind::Esp)
        );
        assert!(classify_natt(&[]).is_err());
        assert!(classify_natt(&[0xfe]).is_err());
        assert!(classify_natt(&[0, 0, 0x10, 1, 0]).is_err());
    }
}
