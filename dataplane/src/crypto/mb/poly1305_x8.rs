//! Poly1305 (RFC 8439 §2.5) of the AEAD construction (§2.8) for eight
//! messages at once on AVX-512 IFMA: one 64-bit lane per message, so lane
//! `i` of the three accumulator registers holds message `i`'s h in
//! 44/44/42-bit limbs, and a step multiplies all eight by their own r with
//! `vpmadd52luq`/`vpmadd52huq` (the low and high 52 bits of 52 x 52-bit
//! products). Each message is hashed block by block as in the scalar
//! code, no key powers: the burst gives the parallelism, and a key is used
//! once per packet, so per-packet set-up (r^2..r^8) would not pay.
//!
//! `G` groups of eight run in the same loop (two independent multiply
//! chains, so the multiplier's latency is hidden). Messages are read 64
//! bytes per lane at a time (masked loads: zero-padded, nothing past the
//! end), then transposed so a register holds the same 64-bit word of the
//! eight lanes. Lanes of unequal lengths: a lane without a block at a step
//! keeps its accumulator (masked move).
//!
//! Used by `chacha_poly` when the CPU has AVX-512 F/BW and IFMA; checked
//! against the scalar `poly1305` and RustCrypto (tests here and in
//! `chacha_poly`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use zeroize::Zeroize;

use super::poly1305::{finish, key_limbs};

/// Messages per group (64-bit lanes of a 512-bit register).
pub const LANES: usize = 8;

/// One message of a group: the one-time key, the AAD and the ciphertext.
#[derive(Clone, Copy)]
pub struct Msg<'a> {
    /// Poly1305 key (the first 32 bytes of ChaCha20 block 0).
    pub key: &'a [u8; 32],
    /// Additional authenticated data.
    pub aad: &'a [u8],
    /// Ciphertext.
    pub ct: &'a [u8],
}

/// Proof that this CPU has AVX-512 F, BW and IFMA.
#[derive(Clone, Copy, Debug)]
pub struct PolyX8(());

impl PolyX8 {
    /// `Some` if the CPU runs the kernel.
    pub fn detect() -> Option<PolyX8> {
        #[cfg(target_arch = "x86_64")]
        {
            (std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512ifma"))
            .then_some(PolyX8(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The AEAD tags of `G` groups of eight messages (`out[g][i]` for
    /// `msgs[g][i]`).
    #[inline]
    pub fn aead_tags<const G: usize>(self, msgs: &[[Msg<'_>; LANES]; G]) -> [[[u8; 16]; LANES]; G] {
        let mut out = [[[0u8; 16]; LANES]; G];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `PolyX8` exists only after `detect` found AVX-512 F, BW
        // and IFMA, the features the kernel is compiled for.
        unsafe {
            tags::<G>(msgs, &mut out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = msgs;
        }
        out
    }
}

const M44: u64 = (1 << 44) - 1;
const M42: u64 = (1 << 42) - 1;

/// Accumulator limbs of eight lanes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct H([__m512i; 3]);

/// r limbs (r0, r1, r2) and 20 * r1, 20 * r2 of eight lanes.
#[cfg(target_arch = "x86_64")]
type R = [__m512i; 5];

/// h = (h + m) * r mod p (partly reduced) in the lanes of `active`; the
/// other lanes keep h. `m0`, `m1`: the block's two little-endian words.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512ifma")]
#[inline]
fn step(h: &mut H, k: &R, m0: __m512i, m1: __m512i, active: __mmask8) {
    let m44 = _mm512_set1_epi64(M44 as i64);
    let m42 = _mm512_set1_epi64(M42 as i64);
    let hibit = _mm512_set1_epi64(1 << 40);
    let z = _mm512_setzero_si512();
    let l0 = _mm512_and_si512(m0, m44);
    let l1 = _mm512_and_si512(
        _mm512_or_si512(_mm512_srli_epi64::<44>(m0), _mm512_slli_epi64::<20>(m1)),
        m44,
    );
    let l2 = _mm512_or_si512(_mm512_srli_epi64::<24>(m1), hibit);
    let h0 = _mm512_add_epi64(h.0[0], l0);
    let h1 = _mm512_add_epi64(h.0[1], l1);
    let h2 = _mm512_add_epi64(h.0[2], l2);
    let [r0, r1, r2, s1, s2] = *k;
    // d0 = h0 r0 + h1 s2 + h2 s1, d1 = h0 r1 + h1 r0 + h2 s2,
    // d2 = h0 r2 + h1 r1 + h2 r0; each as lo (bits 0..52 of the products,
    // summed) + hi * 2^52.
    let d0l = _mm512_madd52lo_epu64(
        _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r0), h1, s2),
        h2,
        s1,
    );
    let d0h = _mm512_madd52hi_epu64(
        _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r0), h1, s2),
        h2,
        s1,
    );
    let d1l = _mm512_madd52lo_epu64(
        _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r1), h1, r0),
        h2,
        s2,
    );
    let d1h = _mm512_madd52hi_epu64(
        _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r1), h1, r0),
        h2,
        s2,
    );
    let d2l = _mm512_madd52lo_epu64(
        _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(z, h0, r2), h1, r1),
        h2,
        r0,
    );
    let d2h = _mm512_madd52hi_epu64(
        _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(z, h0, r2), h1, r1),
        h2,
        r0,
    );
    // Carries: limb 0 and 1 hold 44 bits, limb 2 42 (2^130 = 5 mod p).
    let c = _mm512_add_epi64(_mm512_srli_epi64::<44>(d0l), _mm512_slli_epi64::<8>(d0h));
    let n0 = _mm512_and_si512(d0l, m44);
    let d1l = _mm512_add_epi64(d1l, c);
    let c = _mm512_add_epi64(_mm512_srli_epi64::<44>(d1l), _mm512_slli_epi64::<8>(d1h));
    let n1 = _mm512_and_si512(d1l, m44);
    let d2l = _mm512_add_epi64(d2l, c);
    let c = _mm512_add_epi64(_mm512_srli_epi64::<42>(d2l), _mm512_slli_epi64::<10>(d2h));
    let n2 = _mm512_and_si512(d2l, m42);
    let n0 = _mm512_add_epi64(n0, _mm512_add_epi64(c, _mm512_slli_epi64::<2>(c)));
    let c = _mm512_srli_epi64::<44>(n0);
    let n0 = _mm512_and_si512(n0, m44);
    let n1 = _mm512_add_epi64(n1, c);
    if active == 0xff {
        h.0 = [n0, n1, n2];
    } else {
        h.0[0] = _mm512_mask_mov_epi64(h.0[0], active, n0);
        h.0[1] = _mm512_mask_mov_epi64(h.0[1], active, n1);
        h.0[2] = _mm512_mask_mov_epi64(h.0[2], active, n2);
    }
}

/// 8 x 8 transpose of 64-bit words: lane `q` of `c[i]` goes to lane `i` of
/// the result's register `q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512ifma")]
#[inline]
fn transpose8(c: &[__m512i; 8]) -> [__m512i; 8] {
    let t0 = _mm512_unpacklo_epi64(c[0], c[1]);
    let t1 = _mm512_unpackhi_epi64(c[0], c[1]);
    let t2 = _mm512_unpacklo_epi64(c[2], c[3]);
    let t3 = _mm512_unpackhi_epi64(c[2], c[3]);
    let t4 = _mm512_unpacklo_epi64(c[4], c[5]);
    let t5 = _mm512_unpackhi_epi64(c[4], c[5]);
    let t6 = _mm512_unpacklo_epi64(c[6], c[7]);
    let t7 = _mm512_unpackhi_epi64(c[6], c[7]);
    let u0 = _mm512_shuffle_i64x2::<0x88>(t0, t2);
    let u1 = _mm512_shuffle_i64x2::<0xdd>(t0, t2);
    let u2 = _mm512_shuffle_i64x2::<0x88>(t1, t3);
    let u3 = _mm512_shuffle_i64x2::<0xdd>(t1, t3);
    let u4 = _mm512_shuffle_i64x2::<0x88>(t4, t6);
    let u5 = _mm512_shuffle_i64x2::<0xdd>(t4, t6);
    let u6 = _mm512_shuffle_i64x2::<0x88>(t5, t7);
    let u7 = _mm512_shuffle_i64x2::<0xdd>(t5, t7);
    [
        _mm512_shuffle_i64x2::<0x88>(u0, u4),
        _mm512_shuffle_i64x2::<0x88>(u2, u6),
        _mm512_shuffle_i64x2::<0x88>(u1, u5),
        _mm512_shuffle_i64x2::<0x88>(u3, u7),
        _mm512_shuffle_i64x2::<0xdd>(u0, u4),
        _mm512_shuffle_i64x2::<0xdd>(u2, u6),
        _mm512_shuffle_i64x2::<0xdd>(u1, u5),
        _mm512_shuffle_i64x2::<0xdd>(u3, u7),
    ]
}

/// Hashes one segment (the AAD or the ciphertext, zero-padded to 16
/// bytes) of every lane of `G` groups into `h`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512ifma")]
#[inline]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
fn absorb<const G: usize>(h: &mut [H; G], k: &[R; G], seg: &[[&[u8]; LANES]; G]) {
    let mut nblk = [[0u64; LANES]; G];
    let mut longest = 0;
    for (n, s) in nblk.iter_mut().zip(seg) {
        for (n, s) in n.iter_mut().zip(s) {
            *n = s.len().div_ceil(16) as u64;
            longest = longest.max(s.len());
        }
    }
    let most = longest.div_ceil(16);
    let nblk: [__m512i; G] = std::array::from_fn(|g| bytemuck::must_cast(nblk[g]));
    for chunk in 0..longest.div_ceil(64) {
        let off = 64 * chunk;
        let mut w = [[_mm512_setzero_si512(); 8]; G];
        for g in 0..G {
            let mut c = [_mm512_setzero_si512(); 8];
            for (c, s) in c.iter_mut().zip(&seg[g]) {
                let rem = s.len().saturating_sub(off);
                let mask: u64 = if rem >= 64 { !0 } else { (1 << rem) - 1 };
                // SAFETY: only the bytes under `mask` are read, and those
                // are `s[off..off + rem]`, inside the slice (a masked-off
                // byte is not accessed and raises no fault; with `rem` = 0
                // nothing is read and the pointer is not dereferenced).
                *c = unsafe { _mm512_maskz_loadu_epi8(mask, s.as_ptr().wrapping_add(off).cast()) };
            }
            w[g] = transpose8(&c);
        }
        // Steps past every lane's last block (a short AAD, the last
        // chunk) are skipped.
        for b in 0..(most - 4 * chunk).min(4) {
            let j = _mm512_set1_epi64((4 * chunk + b) as i64);
            for g in 0..G {
                let active = _mm512_cmpgt_epu64_mask(nblk[g], j);
                step(&mut h[g], &k[g], w[g][2 * b], w[g][2 * b + 1], active);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512ifma")]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
fn tags<const G: usize>(msgs: &[[Msg<'_>; LANES]; G], out: &mut [[[u8; 16]; LANES]; G]) {
    let mut r = [[[0u64; LANES]; 3]; G];
    let mut pad = [[[0u64; 2]; LANES]; G];
    let mut lens = [[[0u64; LANES]; 2]; G];
    for g in 0..G {
        for (i, m) in msgs[g].iter().enumerate() {
            let (ri, pi) = key_limbs(m.key);
            for (l, v) in ri.into_iter().enumerate() {
                r[g][l][i] = v;
            }
            pad[g][i] = pi;
            lens[g][0][i] = m.aad.len() as u64;
            lens[g][1][i] = m.ct.len() as u64;
        }
    }
    // r1, r2 < 2^44: 20 * r fits the 52-bit multiplier input.
    let mut s = [[[0u64; LANES]; 2]; G];
    for (s, r) in s.iter_mut().zip(&r) {
        for i in 0..LANES {
            s[0][i] = 20 * r[1][i];
            s[1][i] = 20 * r[2][i];
        }
    }
    let mut keys: [R; G] = std::array::from_fn(|g| {
        let [r0, r1, r2] = r[g].map(bytemuck::must_cast);
        let [s1, s2] = s[g].map(bytemuck::must_cast);
        [r0, r1, r2, s1, s2]
    });
    r.zeroize();
    s.zeroize();
    let mut h = [H([_mm512_setzero_si512(); 3]); G];
    let aads: [[&[u8]; LANES]; G] = std::array::from_fn(|g| msgs[g].map(|m| m.aad));
    let cts: [[&[u8]; LANES]; G] = std::array::from_fn(|g| msgs[g].map(|m| m.ct));
    absorb(&mut h, &keys, &aads);
    absorb(&mut h, &keys, &cts);
    for g in 0..G {
        let m0: __m512i = bytemuck::must_cast(lens[g][0]);
        let m1: __m512i = bytemuck::must_cast(lens[g][1]);
        step(&mut h[g], &keys[g], m0, m1, 0xff);
    }
    for g in 0..G {
        let mut limbs: [[u64; LANES]; 3] = h[g].0.map(bytemuck::must_cast);
        for i in 0..LANES {
            out[g][i] = finish([limbs[0][i], limbs[1][i], limbs[2][i]], pad[g][i]);
        }
        limbs.zeroize();
        bytemuck::cast_slice_mut::<__m512i, u8>(&mut h[g].0).zeroize();
    }
    pad.zeroize();
    bytemuck::cast_slice_mut::<R, u8>(&mut keys).zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::mb::poly1305::aead_tag;
    use rand::{Rng, RngCore, SeedableRng};

    /// Random groups (lengths 0..=700, AAD 0..=40, unequal within a
    /// group, so lanes idle at different steps): every tag equals the
    /// scalar code's, for one group and for two.
    #[test]
    fn matches_scalar() {
        let Some(p) = PolyX8::detect() else {
            crate::crypto::mb::sha_ni::skip_note::note(
                "poly1305_x8::matches_scalar",
                "the 8-lane IFMA Poly1305",
                "this CPU has no AVX-512 IFMA",
            );
            return;
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1305);
        for round in 0..200 {
            let mut keys = vec![[0u8; 32]; 2 * LANES];
            let mut aads = Vec::new();
            let mut cts = Vec::new();
            for (i, k) in keys.iter_mut().enumerate() {
                rng.fill_bytes(k);
                if round % 7 == 0 {
                    // r and s at their largest after clamping.
                    k.fill(0xff);
                }
                let mut a = vec![0u8; rng.random_range(0..=40)];
                rng.fill_bytes(&mut a);
                let len = if i == 0 {
                    (round * 7) % 701
                } else {
                    rng.random_range(0..=700)
                };
                let mut c = vec![0u8; len];
                rng.fill_bytes(&mut c);
                if round % 5 == 0 {
                    c.fill(0xff);
                    a.fill(0xff);
                }
                aads.push(a);
                cts.push(c);
            }
            let msg = |i: usize| Msg {
                key: &keys[i],
                aad: &aads[i],
                ct: &cts[i],
            };
            let want: Vec<[u8; 16]> = (0..2 * LANES)
                .map(|i| aead_tag(&keys[i], &aads[i], &cts[i]))
                .collect();
            let one = p.aead_tags::<1>(&[std::array::from_fn(msg)]);
            assert_eq!(one[0].to_vec(), want[..LANES].to_vec(), "round {round}");
            let two = p.aead_tags::<2>(&[
                std::array::from_fn(msg),
                std::array::from_fn(|i| msg(LANES + i)),
            ]);
            assert_eq!(two[0].to_vec(), want[..LANES].to_vec(), "round {round}");
            assert_eq!(two[1].to_vec(), want[LANES..].to_vec(), "round {round}");
        }
    }
}
