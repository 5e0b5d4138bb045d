//! SHA-1 and SHA-256 compression on the SHA extensions (SHA-NI), several
//! independent messages per call.
//!
//! One message's compression is a serial chain of `sha1rnds4` /
//! `sha256rnds2` instructions whose latency, not throughput, bounds it; the
//! HMACs of a burst are independent, so the kernels below run `N` of them
//! (one block each) in the same loop body: every round step is written once
//! over an array of `N` lane registers, which the compiler unrolls, and the
//! `N` chains fill the pipeline. The round structure is Intel's reference
//! (the SHA extensions white paper, Gulley et al., 2013), written from the
//! message-schedule recurrences rather than unrolled by hand.
//!
//! Callers get these only through [`ShaNi`], which exists once the CPU was
//! checked (`sha`, `ssse3`, `sse4.1`). Checked against RustCrypto's
//! `sha1::compress` / `sha2::compress256` on random states and blocks
//! (tests below) and, through the HMAC built on it, against published
//! vectors (RFC 2202, RFC 4231) in `hmac_burst`.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Proof that this CPU has the SHA extensions (plus SSSE3 and SSE4.1).
#[derive(Clone, Copy, Debug)]
pub struct ShaNi(());

impl ShaNi {
    /// `Some` if the CPU runs the kernels.
    pub fn detect() -> Option<ShaNi> {
        #[cfg(target_arch = "x86_64")]
        {
            (std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse2")
                && std::arch::is_x86_feature_detected!("ssse3")
                && std::arch::is_x86_feature_detected!("sse4.1"))
            .then_some(ShaNi(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// One SHA-1 compression of each lane's block into its state.
    #[inline]
    pub fn sha1<const N: usize>(self, states: &mut [[u32; 5]; N], blocks: &[&[u8; 64]; N]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `ShaNi` exists only after `detect` found every feature
        // the kernel is compiled for; the kernel reads 64 bytes from each
        // block reference and writes the states through `&mut`.
        unsafe {
            sha1_lanes::<N>(states, blocks)
        }
    }

    /// One SHA-256 compression of each lane's block into its state.
    #[inline]
    pub fn sha256<const N: usize>(self, states: &mut [[u32; 8]; N], blocks: &[&[u8; 64]; N]) {
        let mut t = [[0u32; 8]; N];
        for (t, s) in t.iter_mut().zip(states.iter()) {
            *t = to_abef(s);
        }
        self.sha256_abef::<N>(&mut t, blocks);
        for (s, t) in states.iter_mut().zip(&t) {
            *s = from_abef(t);
        }
    }

    /// [`ShaNi::sha256`] on states kept in the layout `sha256rnds2` works
    /// on ([`to_abef`]): two 128-bit loads and stores per lane and block
    /// instead of eight word inserts and extracts (a caller hashing a
    /// message of several blocks converts once, at the start and the end).
    #[inline]
    pub fn sha256_abef<const N: usize>(self, states: &mut [[u32; 8]; N], blocks: &[&[u8; 64]; N]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `sha1`.
        unsafe {
            sha256_lanes::<N>(states, blocks)
        }
    }
}

/// A SHA-256 state `[A, B, C, D, E, F, G, H]` in the layout of
/// `sha256rnds2`'s two registers, as little-endian words: ABEF then CDGH,
/// i.e. `[F, E, B, A, H, G, D, C]`.
#[inline(always)]
pub fn to_abef(s: &[u32; 8]) -> [u32; 8] {
    [s[5], s[4], s[1], s[0], s[7], s[6], s[3], s[2]]
}

/// The inverse of [`to_abef`].
#[inline(always)]
pub fn from_abef(t: &[u32; 8]) -> [u32; 8] {
    [t[3], t[2], t[7], t[6], t[1], t[0], t[5], t[4]]
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_be(block: &[u8; 64], i: usize, mask: __m128i) -> __m128i {
    let b = &block[i * 16..i * 16 + 16];
    // SAFETY: `b` is 16 readable bytes; loadu has no alignment demand.
    let v = unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
    _mm_shuffle_epi8(v, mask)
}

/// SHA-1 rounds 4i..4i+3 on every lane: `e` gets the next E (sha1nexte of
/// the state before the previous group, or E + W for group 0), `prev`
/// keeps the state before this group.
macro_rules! sha1_group {
    ($abcd:ident, $prev:ident, $w:expr, $func:literal, $n:ident) => {
        for l in 0..$n {
            let e = _mm_sha1nexte_epu32($prev[l], $w[l]);
            $prev[l] = $abcd[l];
            $abcd[l] = _mm_sha1rnds4_epu32::<$func>($abcd[l], e);
        }
    };
}

// The lane loops index several arrays by lane on purpose (one register per
// lane and step), so clippy's iterator suggestion does not apply.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha1_lanes<const N: usize>(states: &mut [[u32; 5]; N], blocks: &[&[u8; 64]; N]) {
    let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
    let mut abcd = [_mm_setzero_si128(); N];
    let mut e0 = [_mm_setzero_si128(); N];
    for l in 0..N {
        let s = &states[l];
        abcd[l] = _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32);
        e0[l] = _mm_set_epi32(s[4] as i32, 0, 0, 0);
    }
    let (abcd_save, e_save) = (abcd, e0);
    // The message schedule, four words per register: w[i % 4] is W[i].
    let mut w = [[_mm_setzero_si128(); N]; 4];
    for (i, wi) in w.iter_mut().enumerate() {
        for l in 0..N {
            wi[l] = load_be(blocks[l], i, mask);
        }
    }
    let mut prev = abcd;
    // Rounds 0-3: E + W0.
    for l in 0..N {
        let e = _mm_add_epi32(e0[l], w[0][l]);
        prev[l] = abcd[l];
        abcd[l] = _mm_sha1rnds4_epu32::<0>(abcd[l], e);
    }
    // Groups 1..20; W[i] for i >= 4 computed in place of W[i - 4].
    macro_rules! next_w {
        ($i:expr) => {
            if $i >= 4 {
                for l in 0..N {
                    let m = _mm_sha1msg1_epu32(w[($i - 4) % 4][l], w[($i - 3) % 4][l]);
                    let m = _mm_xor_si128(m, w[($i - 2) % 4][l]);
                    w[$i % 4][l] = _mm_sha1msg2_epu32(m, w[($i - 1) % 4][l]);
                }
            }
        };
    }
    for i in 1..5 {
        next_w!(i);
        sha1_group!(abcd, prev, w[i % 4], 0, N);
    }
    for i in 5..10 {
        next_w!(i);
        sha1_group!(abcd, prev, w[i % 4], 1, N);
    }
    for i in 10..15 {
        next_w!(i);
        sha1_group!(abcd, prev, w[i % 4], 2, N);
    }
    for i in 15..20 {
        next_w!(i);
        sha1_group!(abcd, prev, w[i % 4], 3, N);
    }
    for l in 0..N {
        let e = _mm_sha1nexte_epu32(prev[l], e_save[l]);
        let a = _mm_add_epi32(abcd[l], abcd_save[l]);
        let s = &mut states[l];
        s[0] = _mm_extract_epi32::<3>(a) as u32;
        s[1] = _mm_extract_epi32::<2>(a) as u32;
        s[2] = _mm_extract_epi32::<1>(a) as u32;
        s[3] = _mm_extract_epi32::<0>(a) as u32;
        s[4] = _mm_extract_epi32::<3>(e) as u32;
    }
}

/// SHA-256 round constants, four per register.
const K256: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha256_lanes<const N: usize>(states: &mut [[u32; 8]; N], blocks: &[&[u8; 64]; N]) {
    let mask = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    // state0 = ABEF, state1 = CDGH (the layout sha256rnds2 works on; the
    // states are stored that way, `to_abef`).
    let mut s0 = [_mm_setzero_si128(); N];
    let mut s1 = [_mm_setzero_si128(); N];
    for l in 0..N {
        let (lo, hi) = states[l].split_at(4);
        // SAFETY: `lo` and `hi` are 16 readable bytes each; loadu has no
        // alignment demand.
        unsafe {
            s0[l] = _mm_loadu_si128(lo.as_ptr().cast());
            s1[l] = _mm_loadu_si128(hi.as_ptr().cast());
        }
    }
    let (s0_save, s1_save) = (s0, s1);
    let mut w = [[_mm_setzero_si128(); N]; 4];
    for (i, wi) in w.iter_mut().enumerate() {
        for l in 0..N {
            wi[l] = load_be(blocks[l], i, mask);
        }
    }
    // Sixteen groups of four rounds, written out (constant indices: the
    // schedule registers are not addressed through the stack by a loop
    // counter).
    macro_rules! group {
        ($i:expr) => {{
            let i: usize = $i;
            if i >= 4 {
                for l in 0..N {
                    let m = _mm_sha256msg1_epu32(w[(i - 4) % 4][l], w[(i - 3) % 4][l]);
                    let m = _mm_add_epi32(
                        m,
                        _mm_alignr_epi8::<4>(w[(i - 1) % 4][l], w[(i - 2) % 4][l]),
                    );
                    w[i % 4][l] = _mm_sha256msg2_epu32(m, w[(i - 1) % 4][l]);
                }
            }
            let k = _mm_set_epi32(
                K256[4 * i + 3] as i32,
                K256[4 * i + 2] as i32,
                K256[4 * i + 1] as i32,
                K256[4 * i] as i32,
            );
            for l in 0..N {
                let m = _mm_add_epi32(w[i % 4][l], k);
                s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], m);
                let m = _mm_shuffle_epi32::<0x0E>(m);
                s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], m);
            }
        }};
    }
    group!(0);
    group!(1);
    group!(2);
    group!(3);
    group!(4);
    group!(5);
    group!(6);
    group!(7);
    group!(8);
    group!(9);
    group!(10);
    group!(11);
    group!(12);
    group!(13);
    group!(14);
    group!(15);
    for l in 0..N {
        let a = _mm_add_epi32(s0[l], s0_save[l]);
        let c = _mm_add_epi32(s1[l], s1_save[l]);
        let (lo, hi) = states[l].split_at_mut(4);
        // SAFETY: `lo` and `hi` are 16 writable bytes each (borrowed
        // mutably); storeu has no alignment demand.
        unsafe {
            _mm_storeu_si128(lo.as_mut_ptr().cast(), a);
            _mm_storeu_si128(hi.as_mut_ptr().cast(), c);
        }
    }
}

// Test skips recorded where scripts/test.sh prints them (ESPRESSO_TEST_SKIPS);
// also used by crypto::hmac_burst's tests (a module is loaded once).
#[cfg(test)]
#[path = "../../../tests/skip_note/mod.rs"]
pub(crate) mod skip_note;

#[cfg(test)]
mod tests {
    use super::*;

    use super::skip_note;
    use rand::{Rng, RngCore};
    use sha1::digest::generic_array::GenericArray;

    fn lanes<const N: usize>(ni: ShaNi, rng: &mut impl RngCore) {
        let mut blocks = [[0u8; 64]; N];
        blocks.iter_mut().for_each(|b| rng.fill_bytes(b));
        let refs: [&[u8; 64]; N] = std::array::from_fn(|l| &blocks[l]);
        let mut s1: [[u32; 5]; N] = std::array::from_fn(|_| rng.random());
        let mut want1 = s1;
        for (s, b) in want1.iter_mut().zip(&blocks) {
            sha1::compress(s, std::slice::from_ref(GenericArray::from_slice(b)));
        }
        ni.sha1::<N>(&mut s1, &refs);
        assert_eq!(s1, want1, "SHA-1, {N} lanes");
        let mut s2: [[u32; 8]; N] = std::array::from_fn(|_| rng.random());
        let mut want2 = s2;
        for (s, b) in want2.iter_mut().zip(&blocks) {
            sha2::compress256(s, std::slice::from_ref(GenericArray::from_slice(b)));
        }
        ni.sha256::<N>(&mut s2, &refs);
        assert_eq!(s2, want2, "SHA-256, {N} lanes");
    }

    #[test]
    fn matches_rustcrypto_compress_on_random_inputs() {
        let Some(ni) = ShaNi::detect() else {
            skip_note::note(
                "sha_ni::matches_rustcrypto_compress_on_random_inputs",
                "SHA-NI compression kernel not run",
                "no SHA extensions on this CPU; the library's SHA-1/SHA-256 run instead",
            );
            return;
        };
        let mut rng = rand::rng();
        for _ in 0..500 {
            lanes::<1>(ni, &mut rng);
            lanes::<2>(ni, &mut rng);
            lanes::<4>(ni, &mut rng);
        }
    }
}
