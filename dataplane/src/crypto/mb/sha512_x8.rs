//! SHA-512 (and SHA-384, same compression) of eight independent messages
//! at once on AVX-512: one 512-bit register holds the same 64-bit state or
//! message word of the eight lanes (`vprorq` for the rotations,
//! `vpternlogq` for Ch, Maj and the three-way XORs of Σ/σ), rounds written
//! from FIPS 180-4 §6.4.2. The eight 128-byte blocks are loaded as rows
//! (two registers each) and transposed (two 8 x 8 transposes of 64-bit
//! words). Lanes outside `active` keep their state.
//!
//! Callers get the kernel only through [`Sha512x8`], which exists once the
//! CPU was checked (AVX-512 F and BW). Checked against RustCrypto's
//! `sha2::compress512` on random states, blocks and masks (tests below)
//! and, through the HMAC built on it, against RFC 4231 and RustCrypto's
//! `hmac` on every length 0..2000 (`hmac_wide`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// The eight state words of eight lanes, word-major: `st[j][l]` is word
/// `j` (A..H) of lane `l`.
pub type State8 = [[u64; 8]; 8];

/// Proof that this CPU has AVX-512 F and BW.
#[derive(Clone, Copy, Debug)]
pub struct Sha512x8(());

impl Sha512x8 {
    /// `Some` if the CPU runs the kernel.
    pub fn detect() -> Option<Sha512x8> {
        #[cfg(target_arch = "x86_64")]
        {
            (std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw"))
            .then_some(Sha512x8(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// One compression of `blocks[l]` into lane `l` of `st`, for every lane
    /// whose bit is set in `active` (the others keep their state).
    #[inline]
    pub fn compress(self, st: &mut State8, blocks: &[&[u8; 128]; 8], active: u8) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Sha512x8` exists only after `detect` found AVX-512 F
        // and BW, the features the kernel is compiled for; the kernel reads
        // 128 bytes through each block reference and writes `st` through
        // `&mut`.
        unsafe {
            compress8(st, blocks, active)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (st, blocks, active);
        }
    }
}

const K: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// 8 x 8 transpose of 64-bit words: `r[l]` word `i` becomes `r[i]` lane `l`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
fn transpose8(r: &mut [__m512i; 8]) {
    // Stage 1: t[2g + j], 128-bit lane L, holds word 2L + j of rows 2g,
    // 2g + 1.
    let mut t = [_mm512_setzero_si512(); 8];
    for g in 0..4 {
        t[2 * g] = _mm512_unpacklo_epi64(r[2 * g], r[2 * g + 1]);
        t[2 * g + 1] = _mm512_unpackhi_epi64(r[2 * g], r[2 * g + 1]);
    }
    // Stages 2 and 3: a 4 x 4 transpose of 128-bit lanes across t[j],
    // t[2 + j], t[4 + j], t[6 + j]; word 2L + j ends in r[2L + j].
    for j in 0..2 {
        let v0 = _mm512_shuffle_i64x2::<0x44>(t[j], t[2 + j]);
        let v1 = _mm512_shuffle_i64x2::<0xEE>(t[j], t[2 + j]);
        let v2 = _mm512_shuffle_i64x2::<0x44>(t[4 + j], t[6 + j]);
        let v3 = _mm512_shuffle_i64x2::<0xEE>(t[4 + j], t[6 + j]);
        r[j] = _mm512_shuffle_i64x2::<0x88>(v0, v2);
        r[2 + j] = _mm512_shuffle_i64x2::<0xDD>(v0, v2);
        r[4 + j] = _mm512_shuffle_i64x2::<0x88>(v1, v3);
        r[6 + j] = _mm512_shuffle_i64x2::<0xDD>(v1, v3);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::needless_range_loop)]
// one register per index, on purpose
// The last rounds' schedule words and shifted-out state are never read.
#[allow(unused_assignments)]
fn compress8(st: &mut State8, blocks: &[&[u8; 128]; 8], active: u8) {
    // Byte swap within each 64-bit word (the message words are big-endian).
    let bswap = _mm512_set4_epi64(
        0x0809_0a0b_0c0d_0e0f,
        0x0001_0203_0405_0607,
        0x0809_0a0b_0c0d_0e0f,
        0x0001_0203_0405_0607,
    );
    let mut lo = [_mm512_setzero_si512(); 8];
    let mut hi = [_mm512_setzero_si512(); 8];
    for l in 0..8 {
        let p = blocks[l].as_ptr();
        // SAFETY: `blocks[l]` is 128 readable bytes: two unaligned 64-byte
        // loads at offsets 0 and 64.
        let (a, b) = unsafe {
            (
                _mm512_loadu_si512(p.cast()),
                _mm512_loadu_si512(p.add(64).cast()),
            )
        };
        lo[l] = _mm512_shuffle_epi8(a, bswap);
        hi[l] = _mm512_shuffle_epi8(b, bswap);
    }
    transpose8(&mut lo);
    transpose8(&mut hi);
    let mut w = [_mm512_setzero_si512(); 16];
    w[..8].copy_from_slice(&lo);
    w[8..].copy_from_slice(&hi);
    let mut s = [_mm512_setzero_si512(); 8];
    for j in 0..8 {
        // SAFETY: `st[j]` is 8 readable u64 (64 bytes), loadu unaligned.
        s[j] = unsafe { _mm512_loadu_si512(st[j].as_ptr().cast()) };
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = s;
    macro_rules! round {
        ($t:expr) => {{
            let t: usize = $t;
            let wt = if t < 16 {
                w[t]
            } else {
                let w15 = w[(t + 1) & 15];
                let w2 = w[(t + 14) & 15];
                let s0 = _mm512_ternarylogic_epi64::<0x96>(
                    _mm512_ror_epi64::<1>(w15),
                    _mm512_ror_epi64::<8>(w15),
                    _mm512_srli_epi64::<7>(w15),
                );
                let s1 = _mm512_ternarylogic_epi64::<0x96>(
                    _mm512_ror_epi64::<19>(w2),
                    _mm512_ror_epi64::<61>(w2),
                    _mm512_srli_epi64::<6>(w2),
                );
                let x = _mm512_add_epi64(
                    _mm512_add_epi64(w[t & 15], s0),
                    _mm512_add_epi64(w[(t + 9) & 15], s1),
                );
                w[t & 15] = x;
                x
            };
            let big_s1 = _mm512_ternarylogic_epi64::<0x96>(
                _mm512_ror_epi64::<14>(e),
                _mm512_ror_epi64::<18>(e),
                _mm512_ror_epi64::<41>(e),
            );
            let ch = _mm512_ternarylogic_epi64::<0xCA>(e, f, g);
            let t1 = _mm512_add_epi64(
                _mm512_add_epi64(h, big_s1),
                _mm512_add_epi64(ch, _mm512_add_epi64(wt, _mm512_set1_epi64(K[t] as i64))),
            );
            let big_s0 = _mm512_ternarylogic_epi64::<0x96>(
                _mm512_ror_epi64::<28>(a),
                _mm512_ror_epi64::<34>(a),
                _mm512_ror_epi64::<39>(a),
            );
            let maj = _mm512_ternarylogic_epi64::<0xE8>(a, b, c);
            let t2 = _mm512_add_epi64(big_s0, maj);
            h = g;
            g = f;
            f = e;
            e = _mm512_add_epi64(d, t1);
            d = c;
            c = b;
            b = a;
            a = _mm512_add_epi64(t1, t2);
        }};
    }
    macro_rules! rounds16 {
        ($base:expr) => {{
            round!($base);
            round!($base + 1);
            round!($base + 2);
            round!($base + 3);
            round!($base + 4);
            round!($base + 5);
            round!($base + 6);
            round!($base + 7);
            round!($base + 8);
            round!($base + 9);
            round!($base + 10);
            round!($base + 11);
            round!($base + 12);
            round!($base + 13);
            round!($base + 14);
            round!($base + 15);
        }};
    }
    rounds16!(0);
    rounds16!(16);
    rounds16!(32);
    rounds16!(48);
    rounds16!(64);
    let out = [a, b, c, d, e, f, g, h];
    for j in 0..8 {
        let v = _mm512_mask_add_epi64(s[j], active, s[j], out[j]);
        // SAFETY: `st[j]` is 8 writable u64 (64 bytes), storeu unaligned.
        unsafe { _mm512_storeu_si512(st[j].as_mut_ptr().cast(), v) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};
    use sha2::digest::generic_array::GenericArray;

    #[test]
    fn matches_rustcrypto_compress_on_random_states_blocks_and_masks() {
        let Some(k) = Sha512x8::detect() else {
            super::super::sha1_x16::skip(
                "sha512_x8::matches_rustcrypto_compress_on_random_states_blocks_and_masks",
            );
            return;
        };
        let mut rng = rand::rng();
        for round in 0..500 {
            let mut blocks = [[0u8; 128]; 8];
            blocks.iter_mut().for_each(|b| rng.fill_bytes(b));
            let mut st: State8 = [[0; 8]; 8];
            for row in st.iter_mut() {
                row.iter_mut().for_each(|x| *x = rng.random());
            }
            let active: u8 = match round {
                0 => 0xFF,
                1 => 0,
                2 => 1,
                _ => rng.random(),
            };
            let mut want = st;
            for l in 0..8 {
                if active & (1 << l) != 0 {
                    let mut s: [u64; 8] = std::array::from_fn(|j| want[j][l]);
                    sha2::compress512(&mut s, &[*GenericArray::from_slice(&blocks[l])]);
                    for j in 0..8 {
                        want[j][l] = s[j];
                    }
                }
            }
            let refs: [&[u8; 128]; 8] = std::array::from_fn(|l| &blocks[l]);
            k.compress(&mut st, &refs, active);
            assert_eq!(st, want, "round {round} mask {active:#04x}");
        }
    }
}
