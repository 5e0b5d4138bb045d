//! The Internet checksum (RFC 1071), pseudo-headers and incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded
/// with zero), not yet folded.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the two 32-bit halves; 32-bit one's-complement sums fold to 16 bits later.
        acc += w >> 32;
        acc += w & 0xffff_ffff;
    }
    let mut rest = chunks.remainder();
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        // 4 of the last 7 bytes at once (an IPv4 header's last word).
        acc += u64::from(u32::from_be_bytes(*w));
        rest = tail;
    }
    while rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        acc += u64::from(b) << 8;
    }
    acc
}

/// Folds a sum to 16 bits (not complemented).
#[inline]
pub fn fold(acc: u64) -> u16 {
    // End-around carries without a loop: 64 -> 33 -> 18 -> 17 -> 16 bits.
    let a = (acc & 0xffff_ffff) + (acc >> 32);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    a as u16
}

/// The checksum field value for `data` (complemented fold of the sum).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Sum of the IPv4 pseudo-header (RFC 768).
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u64 {
    sum(&src.octets()) + sum(&dst.octets()) + u64::from(proto) + u64::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u64 {
    sum(&src.octets())
        + sum(&dst.octets())
        + u64::from(next_header)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff)
}

/// Incremental update of a checksum field when one 16-bit word changes from
/// `old` to `new` (RFC 1624 eqn. 3).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!csum) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (before complement).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    /// RFC 1071 word by word, folded after every addition.
    fn reference(d: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in d.chunks(2) {
            acc += u32::from(c[0]) << 8 | u32::from(c.get(1).copied().unwrap_or(0));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn sum_and_fold_agree_with_word_by_word_sum() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..80usize {
            for fill in [0x00u8, 0xff, 0x5a] {
                let mut d = vec![fill; len];
                for b in d.iter_mut().skip(fill as usize % 3) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if fill == 0x5a {
                        *b = x as u8;
                    }
                }
                assert_eq!(fold(sum(&d)), reference(&d), "len {len} fill {fill:#x}");
            }
        }
        // Sums far above 16 bits (pseudo-headers added to long sums).
        for acc in [
            0u64,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            u64::MAX >> 1,
            0x0001_0000_ffff_0001,
        ] {
            let mut slow = acc;
            while slow > 0xffff {
                slow = (slow & 0xffff) + (slow >> 16);
            }
            assert_eq!(u64::from(fold(acc)), slow, "acc {acc:#x}");
        }
    }

    #[test]
    fn odd_length_and_incremental_update_agree_with_full_sum() {
        let mut d: Vec<u8> = (0u16..61).map(|i| (i * 37 + 11) as u8).collect();
        let c0 = checksum(&d);
        let old = u16::from_be_bytes([d[10], d[11]]);
        d[10] = 0xab;
        d[11] = 0xcd;
        assert_eq!(update16(c0, old, 0xabcd), checksum(&d));
    }
}
