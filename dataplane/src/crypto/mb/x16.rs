//! For the 16-lane AVX-512 hash kernels (`sha1_x16`; a 32-bit-word hash
//! with 64-byte blocks would share it): sixteen 64-byte blocks loaded as rows, their 32-bit words byte-swapped
//! (SHA words are big-endian) and transposed, so that register `i` holds
//! word `i` of the sixteen blocks.

use core::arch::x86_64::*;

/// Message words 0..16 of sixteen blocks, word-major (`w[i]` lane `l` =
/// word `i` of the block at `p[l]`, as a big-endian u32).
///
/// # Safety
/// Every `p[l]` points to 64 readable bytes (no alignment demand).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
pub(super) unsafe fn load_words(p: &[*const u8; 16]) -> [__m512i; 16] {
    let bswap = _mm512_set4_epi32(0x0c0d_0e0f, 0x0809_0a0b, 0x0405_0607, 0x0001_0203);
    let mut w = [_mm512_setzero_si512(); 16];
    for l in 0..16 {
        // SAFETY: the caller's contract: `p[l]` is 64 readable bytes; loadu
        // has no alignment demand.
        let row = unsafe { _mm512_loadu_si512(p[l].cast()) };
        w[l] = _mm512_shuffle_epi8(row, bswap);
    }
    transpose16(&mut w);
    w
}

/// [`load_words`] on a CPU with AVX-512 VBMI: the byte swap is folded
/// into the first transpose stage (`vpermt2b` picks the bytes of two rows
/// in swapped order), 16 shuffles fewer per block.
///
/// # Safety
/// Every `p[l]` points to 64 readable bytes (no alignment demand).
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
pub(super) unsafe fn load_words_vbmi(p: &[*const u8; 16]) -> [__m512i; 16] {
    let mut r = [_mm512_setzero_si512(); 16];
    for l in 0..16 {
        // SAFETY: the caller's contract: `p[l]` is 64 readable bytes; loadu
        // has no alignment demand.
        r[l] = unsafe { _mm512_loadu_si512(p[l].cast()) };
    }
    // Stage 1 of `transpose16` (unpacklo/hi_epi32 of row pairs) on the
    // byte-swapped words: output dword 4L + 2j + s (128-bit lane L) is word
    // 4L + j (lo) or 4L + j + 2 (hi) of row s, its bytes reversed; in the
    // two-table index, bit 6 picks the second row.
    let (lo, hi) = (VBMI_IDX.0, VBMI_IDX.1);
    // SAFETY: 64 readable bytes each (statics).
    let (ilo, ihi) = unsafe {
        (
            _mm512_loadu_si512(lo.as_ptr().cast()),
            _mm512_loadu_si512(hi.as_ptr().cast()),
        )
    };
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_permutex2var_epi8(r[2 * i], ilo, r[2 * i + 1]);
        t[2 * i + 1] = _mm512_permutex2var_epi8(r[2 * i], ihi, r[2 * i + 1]);
    }
    transpose16_from_stage2(&t)
}

/// The byte indices of [`load_words_vbmi`]'s first stage (lo, hi).
static VBMI_IDX: ([u8; 64], [u8; 64]) = vbmi_idx();

const fn vbmi_idx() -> ([u8; 64], [u8; 64]) {
    let mut lo = [0u8; 64];
    let mut hi = [0u8; 64];
    let mut o = 0;
    while o < 64 {
        let (lane, dw, byte) = (o / 16, (o % 16) / 4, o % 4);
        let (j, src) = (dw / 2, dw % 2);
        lo[o] = (src * 64 + lane * 16 + j * 4 + (3 - byte)) as u8;
        hi[o] = (src * 64 + lane * 16 + (j + 2) * 4 + (3 - byte)) as u8;
        o += 1;
    }
    (lo, hi)
}

/// 16 x 16 transpose of 32-bit words: lane `l` of `r[i]` goes to lane `i`
/// of `r[l]` (its own inverse; `chacha_x16` uses it to go back from
/// word-major to block-major).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
pub(super) fn transpose16(r: &mut [__m512i; 16]) {
    // Stage 1: interleave words of row pairs; stage 2: quadwords of row
    // quads. Then t[4g + j], 128-bit lane L, holds word 4L + j of rows
    // 4g..4g+3.
    let mut t = [_mm512_setzero_si512(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    *r = transpose16_from_stage2(&t);
}

/// Stages 2-4 of [`transpose16`], from its stage-1 output `t`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
fn transpose16_from_stage2(t: &[__m512i; 16]) -> [__m512i; 16] {
    let mut r = [_mm512_setzero_si512(); 16];
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let b = 4 * g;
        u[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
        u[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
        u[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
        u[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    // Stages 3 and 4: a 4 x 4 transpose of 128-bit lanes across
    // u[j], u[4 + j], u[8 + j], u[12 + j]; word 4L + j ends in r[4L + j].
    for j in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[j], u[4 + j]);
        let v1 = _mm512_shuffle_i32x4::<0xEE>(u[j], u[4 + j]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + j], u[12 + j]);
        let v3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + j], u[12 + j]);
        r[j] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        r[4 + j] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
        r[8 + j] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        r[12 + j] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
    r
}
