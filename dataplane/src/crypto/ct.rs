//! Constant-time comparison of ICVs and tags.
//!
//! `subtle::ConstantTimeEq` on byte slices passes every byte through an
//! optimisation barrier, which profiled at 11 % of a 64-byte HMAC decap
//! (about 20 ns per packet for a 16-byte ICV). Here the bytes are OR-folded
//! without any early exit and only the folded byte goes through one barrier
//! (`core::hint::black_box`) before the single comparison at the end, so the
//! time does not depend on where (or whether) the inputs differ.

/// True if `a` and `b` are equal; time independent of their contents (not
/// of their lengths, which are public: ICV lengths).
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn equal_and_unequal() {
        let a = [7u8; 32];
        for n in 0..=32 {
            assert!(super::eq(&a[..n], &a[..n]));
            for i in 0..n {
                for bit in 0..8 {
                    let mut b = a;
                    b[i] ^= 1 << bit;
                    assert!(!super::eq(&a[..n], &b[..n]), "n {n} byte {i} bit {bit}");
                }
            }
        }
        assert!(!super::eq(&a[..3], &a[..4]));
    }
}
