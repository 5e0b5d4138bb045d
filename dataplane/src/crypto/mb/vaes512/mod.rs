//! AES-GCM with VAES + VPCLMULQDQ on 512-bit registers (AVX-512 F/BW/VL).
//!
//! Every function here carries `#[target_feature(enable = ...)]` and is only
//! reached through [`super`], which checks the CPU once when a cipher is built
//! (`is_x86_feature_detected!`) and refuses to build one otherwise.
//!
//! # Layout of one message
//!
//! Blocks are numbered globally from 0: AES-CTR block `b` uses counter
//! `J0 + b` (so block 0 is `E(J0)`, the tag mask, and block `b >= 1`
//! encrypts data bytes `16(b-1)..16b`). The GHASH input uses the same
//! numbering: block 0 is the AAD "head" block, blocks `1..=n` the
//! ciphertext, block `n+1` the length block. So one 4-lane register holds
//! the same four block indices for AES and GHASH: the tag mask, the AAD and
//! the length block ride in lanes of registers we process anyway instead of
//! costing separate 128-bit operations.
//!
//! GHASH is computed in chunks of 16 blocks (four registers) with
//! precomputed powers of `H` and aggregated reduction: pairs of full chunks
//! are multiplied by `H^32..H^1` and reduced once, the last chunk (at most
//! 16 data blocks plus the length block) by `H^m..H^1`. The encrypt loop is stitched: the AES of chunk `c` and the
//! GHASH of chunk `c-1` are in the same loop body, so AES (port 0) and
//! carry-less multiplies (port 5) overlap.
//!
//! # Field arithmetic
//!
//! Blocks are byte-reflected (`vpshufb`) so that a 128-bit lane, read as a
//! little-endian integer, is the bit-reflection of the GHASH polynomial.
//! With `G = X^128 + X^127 + X^126 + X^121 + 1` the reflected modulus,
//! `mul(u, v) = u * v * X^-128 mod G` (two-step Montgomery folding with the
//! constant `X^63 + X^62 + X^57`), and the hash key is stored as
//! `S1 = rev(H) * X mod G` so that `mul(rev(a), S1) = rev(a * H)`;
//! `S_k = mul(S_{k-1}, S1) = rev(H^k) * X`. (Gueron and Kounavis,
//! "Intel Carry-Less Multiplication Instruction and its Usage for Computing
//! the GCM Mode", 2010; the same representation as intel-ipsec-mb and VPP.)
//!
//! # Memory access
//!
//! Full 64-byte loads and stores go through `bytemuck` (safe, bounds
//! checked). Partial ones (the last bytes of a message) use AVX-512 masked
//! loads/stores in [`load_n`] / [`store_n`], the only `unsafe`
//! memory access in this file: their masks never select a byte outside the
//! slice they are given.

use core::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Number of hash-key powers kept: a chunk has at most 16 blocks, except the
/// last one, which may have 16 data blocks and the length block.
const NPOW: usize = 17;
/// Entries of the power table: `S_32..S_1`, then four zero entries, so that
/// a 4-lane load starting anywhere in the last chunk's window reads zeros
/// past `H^1`.
const POW_LEN: usize = 32 + 4;

/// The expanded key of one SA: AES round keys (16 bytes each, broadcast to
/// the four lanes when loaded) and the GHASH key powers `H^32..H^1` (one
/// table read both as aligned registers of four powers and, for the last
/// chunk of a message, at any 16-byte offset) and the id of the transform
/// whose keys these are in a per-worker key cache (in what would be
/// padding). 832 bytes; built in place on a cache miss
/// ([`expand_into`]), wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct Keys {
    /// `H^32..H^1` then zeros, 64-byte aligned: `h32[q]` lane `l` is
    /// `S_(32-4q-l)` for `q < 8`; `h32[8]` is zero. Flat, entry `j` is
    /// `S_(32-j)` (see [`Keys::pow4`]).
    h32: [[u8; 64]; POW_LEN / 4],
    /// Round keys 0..=NR.
    rk: [[u8; 16]; 15],
    /// Number of AES rounds (10, 12, 14).
    nr: u32,
    /// The transform id (`crypto::key_cache`); 0: none.
    tag: u64,
}

impl Keys {
    /// All zero: no key.
    pub(crate) fn blank() -> Keys {
        Keys {
            h32: [[0; 64]; POW_LEN / 4],
            rk: [[0; 16]; 15],
            nr: 0,
            tag: 0,
        }
    }
    /// The transform id (key cache tag).
    #[inline(always)]
    pub(crate) fn tag(&self) -> u64 {
        self.tag
    }
    /// Sets the transform id.
    #[inline(always)]
    pub(crate) fn set_tag(&mut self, tag: u64) {
        self.tag = tag;
    }
    /// Round count, and true if the round keys past it are zero.
    #[cfg(test)]
    pub(crate) fn rounds_and_clean_tail(&self) -> (u32, bool) {
        let tail = self.rk[self.nr as usize + 1..]
            .iter()
            .all(|r| r.iter().all(|&b| b == 0));
        (self.nr, tail)
    }
    /// True if every field is zero.
    #[cfg(test)]
    pub(crate) fn is_zero(&self) -> bool {
        self.h32.iter().all(|r| r.iter().all(|&b| b == 0))
            && self.rk.iter().all(|r| r.iter().all(|&b| b == 0))
            && self.nr == 0
            && self.tag == 0
    }
    /// AES rounds for this key size.
    pub(crate) fn rounds(&self) -> usize {
        self.nr as usize
    }
}

/// The features every function in this module is compiled for.
macro_rules! simd_fn {
    ($(#[$m:meta])* $v:vis fn $name:ident $($rest:tt)*) => {
        $(#[$m])*
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,vaes,vpclmulqdq,aes,pclmulqdq,ssse3,sse4.1,bmi2")]
        $v fn $name $($rest)*
    };
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

simd_fn! {
    /// A 64-byte array as a register (a plain unaligned load).
    fn z(b: &[u8; 64]) -> __m512i {
        bytemuck::must_cast(*b)
    }
}

simd_fn! {
    /// 64 bytes of `s` starting at `off` (bounds checked).
    fn load64(s: &[u8], off: usize) -> __m512i {
        let b: &[u8; 64] = s[off..off + 64].try_into().expect("64-byte window");
        bytemuck::must_cast(*b)
    }
}

simd_fn! {
    /// Stores `v` into `s[off..off + 64]` (bounds checked).
    fn store64(s: &mut [u8], off: usize, v: __m512i) {
        let b: [u8; 64] = bytemuck::must_cast(v);
        s[off..off + 64].copy_from_slice(&b);
    }
}

simd_fn! {
    /// Mask of the low `min(n, 64)` bits.
    fn nmask(n: usize) -> u64 {
        _bzhi_u64(!0, n.min(64) as u32)
    }
}

simd_fn! {
    /// Loads `min(n, 64)` bytes of `s` from `off` (fewer if `s` ends
    /// first) into the low bytes of a register, zeroing the rest.
    fn load_n(s: &[u8], off: usize, n: usize) -> __m512i {
        let off = off.min(s.len());
        let mask = nmask(n.min(s.len() - off));
        let p = s[off..].as_ptr().cast::<i8>();
        // SAFETY: `mask` selects only bytes `off + i` with `i < s.len() - off`,
        // all inside `s`; AVX-512 masked loads do not access (nor fault on)
        // bytes whose mask bit is clear, and the load has no alignment
        // requirement. The CPU features are enabled on this function.
        unsafe { _mm512_maskz_loadu_epi8(mask, p) }
    }
}

simd_fn! {
    /// Stores the low `min(n, 64)` bytes of `v` into `s` at `off` (fewer if
    /// `s` ends first).
    fn store_n(s: &mut [u8], off: usize, n: usize, v: __m512i) {
        let off = off.min(s.len());
        let mask = nmask(n.min(s.len() - off));
        let p = s[off..].as_mut_ptr().cast::<i8>();
        // SAFETY: as in `load_n`: only bytes inside `s` (which we hold
        // exclusively) have their mask bit set, masked-off bytes are neither
        // written nor faulted on, and the store has no alignment requirement.
        unsafe { _mm512_mask_storeu_epi8(p, mask, v) }
    }
}

/// One 64-byte aligned slot (see [`align_frame`]).
#[repr(C, align(64))]
struct FrameSlot([u8; 64]);

/// Gives the function it is inlined into a 64-byte aligned stack frame
/// (one 64-byte aligned slot whose address escapes, so LLVM realigns `rsp`
/// in the prologue and reserves `rbp` for that before register allocation).
///
/// Why: a kernel that runs out of the 32 vector registers spills 512-bit
/// values (hoisted round keys, GHASH state) to its frame. When the frame is
/// not realigned, LLVM uses unaligned `vmovdqu64` at `rsp + k*64`, so the
/// slots are 64-byte aligned only if the caller happened to leave `rsp` so;
/// otherwise every spill and reload in the loop splits a cache line.
/// `open_impl` was such a function (the `seal_*` and `*_small` kernels
/// realign already, for their own aligned arrays): AES-GCM-256 decap at
/// 512/1420 B ran 12-16 % slower when a change elsewhere (`sa::sad`'s burst
/// lookup, inlined into the caller's frame) moved `rsp` at the kernel by 16
/// bytes mod 64 (bench/results/sad.md, sad11).
#[inline(always)]
fn align_frame() {
    let mut slot = FrameSlot([0; 64]);
    core::hint::black_box(&mut slot);
}

simd_fn! {
    /// Reverses the bytes of each 128-bit lane.
    fn bswap(v: __m512i) -> __m512i {
        let m = _mm512_broadcast_i32x4(_mm_set_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
        ));
        _mm512_shuffle_epi8(v, m)
    }
}

simd_fn! {
    /// Reverses the bytes of a 128-bit value.
    fn bswap128(v: __m128i) -> __m128i {
        _mm_shuffle_epi8(v, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    }
}

simd_fn! {
    fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<0x96>(a, b, c)
    }
}

simd_fn! {
    /// Lanes `[x, v0, v1, v2]`: `v` moved up one lane, lane 0 from `x`'s lane 3.
    fn lane_up(v: __m512i, x: __m512i) -> __m512i {
        _mm512_alignr_epi64::<6>(v, x)
    }
}

simd_fn! {
    /// Lanes `[v1, v2, v3, 0]`.
    fn lane_down(v: __m512i) -> __m512i {
        _mm512_alignr_epi64::<2>(_mm512_setzero_si512(), v)
    }
}

simd_fn! {
    /// XOR of the four 128-bit lanes.
    fn hxor(v: __m512i) -> __m128i {
        let a = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
        _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a))
    }
}

// The sections, one file each (they share this file's helpers and `Keys`).
mod ctr;
mod esp;
mod ghash;
mod key_setup;
mod msg;
mod multi;

use ctr::*;
use ghash::*;
pub(crate) use key_setup::*;
pub(crate) use msg::*;
use multi::*;
