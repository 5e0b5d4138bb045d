//! ChaCha20 (RFC 8439 §2.3) on AVX-512, sixteen independent blocks at once:
//! one 512-bit register holds the same state word of the sixteen lanes, so a
//! quarter round is twelve whole-register operations (`vpaddd`, `vpxord`,
//! `vprold`). Every lane has its own block counter and nonce and all share
//! the key, so the lanes can be any mix of blocks of different packets of
//! one SA (which is how `chacha_poly` fills them: a 64-byte packet needs
//! three blocks, the Poly1305 key block and two keystream blocks; a
//! single-buffer implementation runs its wide code on them at a loss).
//! After the rounds the sixteen states are transposed back (`x16`) and
//! stored as sixteen 64-byte keystream blocks.
//!
//! Callers get the kernel only through [`ChachaX16`], which exists once the
//! CPU was checked (AVX-512 F and BW). Checked against RustCrypto's
//! `chacha20` (through `chacha20poly1305`) on random keys, nonces and
//! lengths, and against RFC 8439 §2.3.2 / §2.4.2 (tests in `chacha_poly`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::x16::transpose16;

/// Lanes per kernel call.
pub const LANES: usize = 16;

/// The inputs of one kernel call: per lane the block counter (state word
/// 12) and the three nonce words (state words 13..15, little-endian).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lanes {
    /// Block counter of each lane.
    pub ctr: [u32; LANES],
    /// Nonce words 0..3 of each lane (`nonce[k][l]`: word `k`, lane `l`).
    pub nonce: [[u32; LANES]; 3],
}

/// Sixteen keystream blocks, lane-major (`[l]` is lane `l`'s block, as
/// u64 words in memory order: `bytemuck::cast_ref` gives its 64 bytes).
pub type Blocks16 = [[u64; 8]; LANES];

/// Proof that this CPU has AVX-512 F and BW.
#[derive(Clone, Copy, Debug)]
pub struct ChachaX16(());

impl ChachaX16 {
    /// `Some` if the CPU runs the kernel.
    pub fn detect() -> Option<ChachaX16> {
        #[cfg(target_arch = "x86_64")]
        {
            (std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw"))
            .then_some(ChachaX16(()))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The ChaCha20 block function (key `key` as eight little-endian words)
    /// of every lane of `lanes`, into `out`.
    #[inline]
    pub fn blocks(self, key: &[u32; 8], lanes: &Lanes, out: &mut Blocks16) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `ChachaX16` exists only after `detect` found AVX-512 F
        // and BW, the features the kernel is compiled for; it reads and
        // writes only through the references it is given.
        unsafe {
            blocks16(key, lanes, out)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (key, lanes, out);
        }
    }
}

impl ChachaX16 {
    /// XORs the keystream of `blocks` into `dst`: `dst[l]` (at most 64
    /// bytes; none if `None`) gets the first `dst[l].len()` bytes of lane
    /// `l`'s block. One 64-byte masked load, XOR and store per lane.
    #[inline]
    pub fn xor(self, blocks: &Blocks16, dst: &mut [Option<&mut [u8]>; LANES]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `blocks`: the CPU has AVX-512 F and BW; `xor16`
        // touches only the bytes of the slices it is given.
        unsafe {
            xor16(blocks, dst)
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (k, d) in blocks.iter().zip(dst.iter_mut()) {
            if let Some(d) = d {
                let k: &[u8; 64] = bytemuck::cast_ref(k);
                for (x, y) in d.iter_mut().zip(k) {
                    *x ^= y;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn xor16(blocks: &Blocks16, dst: &mut [Option<&mut [u8]>; LANES]) {
    for (k, d) in blocks.iter().zip(dst.iter_mut()) {
        let Some(d) = d else { continue };
        let n = d.len().min(64);
        let mask: u64 = if n == 64 { !0 } else { (1 << n) - 1 };
        let k: __m512i = bytemuck::must_cast(*k);
        let p = d.as_mut_ptr();
        // SAFETY: only the bytes under `mask`, `d[..n]`, are read and
        // written (masked-off bytes are not accessed).
        unsafe {
            let x = _mm512_maskz_loadu_epi8(mask, p.cast());
            _mm512_mask_storeu_epi8(p.cast(), mask, _mm512_xor_si512(x, k));
        }
    }
}

/// "expand 32-byte k" (RFC 8439 §2.3).
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::needless_range_loop)] // one register per index, on purpose
fn blocks16(key: &[u32; 8], lanes: &Lanes, out: &mut Blocks16) {
    let mut s = [_mm512_setzero_si512(); 16];
    for i in 0..4 {
        s[i] = _mm512_set1_epi32(SIGMA[i] as i32);
    }
    for i in 0..8 {
        s[4 + i] = _mm512_set1_epi32(key[i] as i32);
    }
    s[12] = bytemuck::must_cast(lanes.ctr);
    for i in 0..3 {
        s[13 + i] = bytemuck::must_cast(lanes.nonce[i]);
    }
    let mut x = s;
    macro_rules! qr {
        ($a:expr, $b:expr, $c:expr, $d:expr) => {{
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[$b], x[$c]));
            x[$a] = _mm512_add_epi32(x[$a], x[$b]);
            x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[$d], x[$a]));
            x[$c] = _mm512_add_epi32(x[$c], x[$d]);
            x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[$b], x[$c]));
        }};
    }
    for _ in 0..10 {
        qr!(0, 4, 8, 12);
        qr!(1, 5, 9, 13);
        qr!(2, 6, 10, 14);
        qr!(3, 7, 11, 15);
        qr!(0, 5, 10, 15);
        qr!(1, 6, 11, 12);
        qr!(2, 7, 8, 13);
        qr!(3, 4, 9, 14);
    }
    for i in 0..16 {
        x[i] = _mm512_add_epi32(x[i], s[i]);
    }
    // Word-major to lane-major: x[l] = the sixteen words of lane l's block,
    // little-endian in memory as the keystream is defined.
    transpose16(&mut x);
    for l in 0..LANES {
        out[l] = bytemuck::must_cast(x[l]);
    }
}
