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
    /// Sixteen consecutive keystream blocks of one message (block counters
    /// `ctr..ctr + 16`, nonce words `nonce`) XORed into `data`, the
    /// message's 1024 bytes from block `ctr - 1` on (no lane bookkeeping,
    /// the keystream is not stored).
    #[inline]
    pub fn xor_run16(self, key: &[u32; 8], nonce: &[u32; 3], ctr: u32, data: &mut [u8; 1024]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `blocks`; `run16_xor` touches only `data`.
        unsafe {
            run16_xor(key, nonce, ctr, data)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (key, nonce, ctr, data);
        }
    }

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

/// One quarter round on registers `a`, `b`, `c`, `d` of `x`.
#[cfg(target_arch = "x86_64")]
macro_rules! qr {
    ($x:ident, $a:expr, $b:expr, $c:expr, $d:expr) => {{
        $x[$a] = _mm512_add_epi32($x[$a], $x[$b]);
        $x[$d] = _mm512_rol_epi32::<16>(_mm512_xor_si512($x[$d], $x[$a]));
        $x[$c] = _mm512_add_epi32($x[$c], $x[$d]);
        $x[$b] = _mm512_rol_epi32::<12>(_mm512_xor_si512($x[$b], $x[$c]));
        $x[$a] = _mm512_add_epi32($x[$a], $x[$b]);
        $x[$d] = _mm512_rol_epi32::<8>(_mm512_xor_si512($x[$d], $x[$a]));
        $x[$c] = _mm512_add_epi32($x[$c], $x[$d]);
        $x[$b] = _mm512_rol_epi32::<7>(_mm512_xor_si512($x[$b], $x[$c]));
    }};
}

/// The block function of sixteen lanes from their input states `s`
/// (word-major: `s[i]` = word `i` of every lane); evaluates to `x` with
/// `x[l]` = lane `l`'s 64-byte block (its sixteen little-endian words).
/// A macro so that both entry points get it inlined.
#[cfg(target_arch = "x86_64")]
macro_rules! block_fn {
    ($s:expr) => {{
        let s: [__m512i; 16] = $s;
        let mut x = s;
        for _ in 0..10 {
            qr!(x, 0, 4, 8, 12);
            qr!(x, 1, 5, 9, 13);
            qr!(x, 2, 6, 10, 14);
            qr!(x, 3, 7, 11, 15);
            qr!(x, 0, 5, 10, 15);
            qr!(x, 1, 6, 11, 12);
            qr!(x, 2, 7, 8, 13);
            qr!(x, 3, 4, 9, 14);
        }
        for (x, s) in x.iter_mut().zip(s) {
            *x = _mm512_add_epi32(*x, s);
        }
        // Word-major to lane-major, little-endian in memory as the
        // keystream is defined.
        transpose16(&mut x);
        x
    }};
}

/// Input states: the constants and the key broadcast, counters and nonces
/// per lane.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn state(key: &[u32; 8], ctr: __m512i, nonce: [__m512i; 3]) -> [__m512i; 16] {
    std::array::from_fn(|i| match i {
        0..4 => set1(SIGMA[i]),
        4..12 => set1(key[i - 4]),
        12 => ctr,
        _ => nonce[i - 13],
    })
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn set1(w: u32) -> __m512i {
    bytemuck::must_cast([w; 16])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn blocks16(key: &[u32; 8], lanes: &Lanes, out: &mut Blocks16) {
    let nonce = lanes.nonce.map(bytemuck::must_cast);
    let x = block_fn!(state(key, bytemuck::must_cast(lanes.ctr), nonce));
    for (o, x) in out.iter_mut().zip(x) {
        *o = bytemuck::must_cast(x);
    }
}

/// Sixteen consecutive blocks of one message (counters `ctr..ctr + 16`,
/// one nonce) XORed into its 1024 bytes `data`, straight from the
/// registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn run16_xor(key: &[u32; 8], nonce: &[u32; 3], ctr: u32, data: &mut [u8; 1024]) {
    let iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    let ctr = _mm512_add_epi32(set1(ctr), iota);
    let x = block_fn!(state(key, ctr, nonce.map(set1)));
    for (l, k) in x.into_iter().enumerate() {
        let p = data[64 * l..].as_mut_ptr();
        // SAFETY: `data[64 * l..64 * l + 64]` is inside the 1024-byte
        // array (l < 16); loadu/storeu have no alignment demand.
        unsafe {
            let v = _mm512_loadu_si512(p.cast());
            _mm512_storeu_si512(p.cast(), _mm512_xor_si512(v, k));
        }
    }
}
