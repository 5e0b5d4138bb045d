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
/// chunk of a message, at any 16-byte offset). 832 bytes; built once per
/// SA, wiped on drop.
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
    nr: usize,
}

impl Keys {
    /// AES rounds for this key size.
    pub(crate) fn rounds(&self) -> usize {
        self.nr
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

// ---------------------------------------------------------------------------
// GHASH
// ---------------------------------------------------------------------------

/// Unreduced sum of products, as three 256-bit-per-lane partial products.
#[derive(Clone, Copy)]
struct Acc {
    lo: __m512i,
    mi: __m512i,
    hi: __m512i,
}

simd_fn! {
    /// `a * b` per lane, unreduced.
    fn mul_first(a: __m512i, b: __m512i) -> Acc {
        Acc {
            lo: _mm512_clmulepi64_epi128::<0x00>(a, b),
            mi: _mm512_xor_si512(
                _mm512_clmulepi64_epi128::<0x01>(a, b),
                _mm512_clmulepi64_epi128::<0x10>(a, b),
            ),
            hi: _mm512_clmulepi64_epi128::<0x11>(a, b),
        }
    }
}

simd_fn! {
    /// `acc += a * b` per lane, unreduced.
    fn mul_acc(acc: Acc, a: __m512i, b: __m512i) -> Acc {
        Acc {
            lo: _mm512_xor_si512(acc.lo, _mm512_clmulepi64_epi128::<0x00>(a, b)),
            mi: xor3(
                acc.mi,
                _mm512_clmulepi64_epi128::<0x01>(a, b),
                _mm512_clmulepi64_epi128::<0x10>(a, b),
            ),
            hi: _mm512_xor_si512(acc.hi, _mm512_clmulepi64_epi128::<0x11>(a, b)),
        }
    }
}

simd_fn! {
    /// Reduces each lane (`x * X^-128 mod G`) and XORs the four lanes.
    fn reduce(acc: Acc) -> __m128i {
        // X^63 + X^62 + X^57 in the high qword of every lane.
        const C: i64 = 0xC200_0000_0000_0000u64 as i64;
        let poly = _mm512_set_epi64(C, 0, C, 0, C, 0, C, 0);
        let t = _mm512_clmulepi64_epi128::<0x10>(acc.lo, poly);
        let mi = xor3(acc.mi, _mm512_shuffle_epi32::<0x4E>(acc.lo), t);
        let t = _mm512_clmulepi64_epi128::<0x10>(mi, poly);
        let r = xor3(acc.hi, _mm512_shuffle_epi32::<0x4E>(mi), t);
        hxor(r)
    }
}

simd_fn! {
    /// `a * b * X^-128 mod G` on single 128-bit values (key set-up only).
    fn mul128(a: __m128i, b: __m128i) -> __m128i {
        let acc = mul_first(_mm512_zextsi128_si512(a), _mm512_zextsi128_si512(b));
        reduce(acc)
    }
}

impl Keys {
    simd_fn! {
        /// Round key `i` (broadcast to the four lanes by the load).
        fn k(&self, i: usize) -> __m512i {
            _mm512_broadcast_i32x4(bytemuck::must_cast(self.rk[i]))
        }
    }

    simd_fn! {
        /// Four lanes of the powers `S_(17-i)`, `S_(16-i)`, ... (zero past
        /// `S_1`), `i <= 17`: flat entries `15 + i..19 + i` of `h32`.
        fn pow4(&self, i: usize) -> __m512i {
            let flat: &[u8] = bytemuck::cast_slice(&self.h32);
            load64(flat, (32 - NPOW + i) * 16)
        }
    }

    simd_fn! {
        /// GHASH of one chunk of `m <= 17` blocks held in `g[0..ceil(m/4)]`
        /// (lanes past block `m` are ignored), continuing from `y`:
        /// returns `(y ^ X_0) * H^m + X_1 * H^(m-1) + ... + X_(m-1) * H`.
        fn ghash_chunk<const G: usize>(&self, y: __m128i, g: &[__m512i; G], m: usize) -> __m128i {
            let base = NPOW - m;
            let g0 = _mm512_xor_si512(g[0], _mm512_zextsi128_si512(y));
            let mut acc = mul_first(g0, self.pow4(base));
            let mut q = 1;
            while q < G {
                acc = mul_acc(acc, g[q], self.pow4(base + 4 * q));
                q += 1;
            }
            reduce(acc)
        }
    }

    simd_fn! {
        /// GHASH of a full chunk of 16 blocks (powers `H^16..H^1`).
        fn ghash16(&self, y: __m128i, g: &[__m512i; 4]) -> __m128i {
            let g0 = _mm512_xor_si512(g[0], _mm512_zextsi128_si512(y));
            let mut acc = mul_first(g0, z(&self.h32[4]));
            acc = mul_acc(acc, g[1], z(&self.h32[5]));
            acc = mul_acc(acc, g[2], z(&self.h32[6]));
            acc = mul_acc(acc, g[3], z(&self.h32[7]));
            reduce(acc)
        }
    }

    simd_fn! {
        /// GHASH of full chunk `j` of `full` (blocks `16j..16j+16`) with one
        /// reduction per pair of chunks: an even chunk that has a partner is
        /// multiplied by `H^32..H^17` and left unreduced in `acc`; the odd
        /// chunk after it adds `* H^16..H^1` and reduces into `y`; a last
        /// unpaired chunk is hashed alone.
        fn ghash_full(&self, j: usize, full: usize, acc: &mut Acc, y: &mut __m128i, g: &[__m512i; 4]) {
            if j % 2 == 1 {
                let mut a = *acc;
                for (q, gq) in g.iter().enumerate() {
                    a = mul_acc(a, *gq, z(&self.h32[4 + q]));
                }
                *y = reduce(a);
            } else if j + 1 < full {
                let g0 = _mm512_xor_si512(g[0], _mm512_zextsi128_si512(*y));
                let mut a = mul_first(g0, z(&self.h32[0]));
                // Indexed on purpose: the iterator form compiles to slower code here.
                #[allow(clippy::needless_range_loop)]
                for q in 1..4 {
                    a = mul_acc(a, g[q], z(&self.h32[q]));
                }
                *acc = a;
            } else {
                *y = self.ghash16(*y, g);
            }
        }
    }

    simd_fn! {
        /// GHASH of whole bytes (zero-padded to blocks), continuing from `y`
        /// (reflected form). Used for AAD of arbitrary length.
        fn ghash_bytes(&self, mut y: __m128i, data: &[u8]) -> __m128i {
            let mut off = 0;
            while data.len() - off >= 256 {
                let g = [
                    bswap(load64(data, off)),
                    bswap(load64(data, off + 64)),
                    bswap(load64(data, off + 128)),
                    bswap(load64(data, off + 192)),
                ];
                y = self.ghash16(y, &g);
                off += 256;
            }
            let rem = data.len() - off;
            if rem > 0 {
                let m = rem.div_ceil(16);
                let ld = |q: usize| {
                    let o = off + 64 * q;
                    bswap(load_n(data, o, data.len().saturating_sub(o)))
                };
                y = match m.div_ceil(4) {
                    1 => self.ghash_chunk::<1>(y, &[ld(0)], m),
                    2 => self.ghash_chunk::<2>(y, &[ld(0), ld(1)], m),
                    3 => self.ghash_chunk::<3>(y, &[ld(0), ld(1), ld(2)], m),
                    _ => self.ghash_chunk::<4>(y, &[ld(0), ld(1), ld(2), ld(3)], m),
                };
            }
            y
        }
    }
}

// ---------------------------------------------------------------------------
// Key set-up
// ---------------------------------------------------------------------------

simd_fn! {
    /// AES SubWord of a 4-byte word, in constant time (AESENCLAST on a
    /// state whose four columns are the word: ShiftRows is then a no-op).
    fn sub_word(w: [u8; 4]) -> [u8; 4] {
        let s = _mm_set1_epi32(i32::from_le_bytes(w));
        let r = _mm_aesenclast_si128(s, _mm_setzero_si128());
        (_mm_cvtsi128_si32(r)).to_le_bytes()
    }
}

simd_fn! {
    /// Expands a 16/24/32-byte AES key and derives the GHASH key powers.
    /// `None` for other key lengths.
    pub(crate) fn expand(key: &[u8]) -> Option<Keys> {
        let nk = key.len() / 4;
        let nr = match key.len() {
            16 => 10,
            24 => 12,
            32 => 14,
            _ => return None,
        };
        // FIPS-197 §5.2 KeyExpansion on 4-byte words.
        let mut w = [[0u8; 4]; 60];
        for (i, c) in key.chunks_exact(4).enumerate() {
            w[i].copy_from_slice(c);
        }
        let mut rcon = 1u8;
        for i in nk..4 * (nr + 1) {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = sub_word([t[1], t[2], t[3], t[0]]);
                t[0] ^= rcon;
                rcon = (rcon << 1) ^ (if rcon & 0x80 != 0 { 0x1b } else { 0 });
            } else if nk > 6 && i % nk == 4 {
                t = sub_word(t);
            }
            for j in 0..4 {
                w[i][j] = w[i - nk][j] ^ t[j];
            }
        }
        let mut keys = Keys { h32: [[0; 64]; POW_LEN / 4], rk: [[0; 16]; 15], nr };
        for r in 0..=nr {
            for c in 0..4 {
                keys.rk[r][c * 4..c * 4 + 4].copy_from_slice(&w[4 * r + c]);
            }
        }
        w.zeroize();
        // H = E_K(0^128).
        let mut h = _mm_xor_si128(_mm_setzero_si128(), _mm512_castsi512_si128(keys.k(0)));
        for r in 1..nr {
            h = _mm_aesenc_si128(h, _mm512_castsi512_si128(keys.k(r)));
        }
        h = _mm_aesenclast_si128(h, _mm512_castsi512_si128(keys.k(nr)));
        let hb: [u8; 16] = bytemuck::must_cast(h);
        // S1 = rev(H) * X mod G; rev(H) read as an integer is H big-endian.
        let v = u128::from_be_bytes(hb);
        let carry = (v >> 127) as u8;
        let s1 = (v << 1) ^ (u128::from(carry) * 0xC200_0000_0000_0000_0000_0000_0000_0001);
        let s1v: __m128i = bytemuck::must_cast(s1.to_le_bytes());
        // pw[k] = S_k for k = 1..=32.
        let mut pw = [[0u8; 16]; 33];
        let mut p = s1v;
        pw[1] = bytemuck::must_cast(p);
        #[allow(clippy::needless_range_loop)]
        for k in 2..=32 {
            p = mul128(p, s1v);
            pw[k] = bytemuck::must_cast(p);
        }
        for (q, h) in keys.h32.iter_mut().take(8).enumerate() {
            for lane in 0..4 {
                h[16 * lane..16 * lane + 16].copy_from_slice(&pw[32 - 4 * q - lane]);
            }
        }
        pw.zeroize();
        Some(keys)
    }
}

// ---------------------------------------------------------------------------
// AES-CTR
// ---------------------------------------------------------------------------

impl Keys {
    simd_fn! {
        /// Encrypts `G` registers of counter blocks and returns the keystream.
        fn aes_ctr<const NR: usize, const G: usize>(&self, ctr: &[__m512i; G]) -> [__m512i; G] {
            let k0 = self.k(0);
            let mut s = [_mm512_setzero_si512(); G];
            for q in 0..G {
                s[q] = _mm512_xor_si512(ctr[q], k0);
            }
            for r in 1..NR {
                let k = self.k(r);
                for v in s.iter_mut() {
                    *v = _mm512_aesenc_epi128(*v, k);
                }
            }
            let k = self.k(NR);
            for v in s.iter_mut() {
                *v = _mm512_aesenclast_epi128(*v, k);
            }
            s
        }
    }
}

/// Messages up to this many bytes use counters kept in big-endian form: the
/// counter of block `b` is `1 + b <= 255`, so adding to the counter's last
/// byte never carries (as VPP and intel-ipsec-mb do); longer ones keep
/// byte-reflected counters and swap each register.
const SHORT_MAX: usize = 254 * 16;

simd_fn! {
    /// The running counter register for blocks 0..3 of a message: the AES
    /// input blocks themselves (`LONG = false`) or byte-reflected
    /// (`LONG = true`).
    fn ctr_start<const LONG: bool>(j0r: __m128i) -> __m512i {
        let b = _mm512_broadcast_i32x4(j0r);
        // Lane offsets 0..3 added to the counter word: the low dword of each
        // reflected lane; 32-bit wrap like GCM's inc32.
        let r = _mm512_add_epi32(b, _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0));
        if LONG { r } else { bswap(r) }
    }
}

simd_fn! {
    /// The next `G` registers of AES input blocks, advancing `ctr`.
    fn counters<const LONG: bool, const G: usize>(ctr: &mut __m512i) -> [__m512i; G] {
        let step = if LONG {
            _mm512_broadcast_i32x4(_mm_set_epi32(0, 0, 0, 4))
        } else {
            // +4 in the last byte of each big-endian block.
            _mm512_broadcast_i32x4(_mm_set_epi32(4 << 24, 0, 0, 0))
        };
        let mut c = [_mm512_setzero_si512(); G];
        for v in c.iter_mut() {
            *v = if LONG { bswap(*ctr) } else { *ctr };
            *ctr = _mm512_add_epi32(*ctr, step);
        }
        c
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// One message's parameters, all in the reflected domain.
#[derive(Clone, Copy)]
pub(crate) struct Msg {
    /// `J0` byte-reflected.
    pub j0r: __m128i,
    /// GHASH block 0: the (single) AAD block, or for longer AAD
    /// `GHASH(A_1..A_(a-1)) ^ A_a` (so that block 0 times `H^(n+2)` equals
    /// the AAD's contribution), byte-reflected.
    pub head: __m128i,
    /// AAD length in bytes.
    pub aad_len: u64,
}

simd_fn! {
    /// `Msg` for a 12-byte nonce and an AAD of any length.
    pub(crate) fn msg(keys: &Keys, nonce: &[u8; 12], aad: &[u8]) -> Msg {
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(nonce);
        j0[15] = 1;
        let j0r: __m128i = bytemuck::must_cast(u128::from_be_bytes(j0).to_le_bytes());
        let head = if aad.is_empty() {
            _mm_setzero_si128()
        } else {
            let last = (aad.len() - 1) / 16 * 16;
            let y = keys.ghash_bytes(_mm_setzero_si128(), &aad[..last]);
            let mut b = [0u8; 16];
            b[..aad.len() - last].copy_from_slice(&aad[last..]);
            let a: __m128i = bytemuck::must_cast(u128::from_be_bytes(b).to_le_bytes());
            _mm_xor_si128(y, a)
        };
        Msg { j0r, head, aad_len: aad.len() as u64 }
    }
}

simd_fn! {
    /// The length block (reflected): `[len(A) bits][len(C) bits]`.
    fn len_block(aad_len: u64, len: usize) -> __m128i {
        _mm_set_epi64x((aad_len * 8) as i64, (len as u64 * 8) as i64)
    }
}

impl Keys {
    simd_fn! {
        /// Encrypts `data` in place and returns the tag.
        pub(crate) fn seal<const NR: usize>(&self, m: &Msg, data: &mut [u8]) -> [u8; 16] {
            if data.len() <= SHORT_MAX {
                self.seal_impl::<NR, false>(m, data)
            } else {
                self.seal_impl::<NR, true>(m, data)
            }
        }
    }

    simd_fn! {
        fn seal_impl<const NR: usize, const LONG: bool>(&self, m: &Msg, data: &mut [u8]) -> [u8; 16] {
            let len = data.len();
            let nb = len.div_ceil(16) + 1; // AES blocks, block 0 = E(J0)
            let full = (len / 16 + 1) / 16; // chunks of 16 whole blocks
            let mut ctr = ctr_start::<LONG>(m.j0r);
            let mut y = _mm_setzero_si128();
            let mut ej0 = _mm_setzero_si128();
            let mut prev = [_mm512_setzero_si512(); 4];
            let zero = _mm512_setzero_si512();
            let mut acc = Acc { lo: zero, mi: zero, hi: zero };
            let mut c = 0;
            while c < full {
                let ks = self.aes_ctr::<NR, 4>(&counters::<LONG, 4>(&mut ctr));
                if c > 0 {
                    self.ghash_full(c - 1, full, &mut acc, &mut y, &prev);
                }
                let mut g = [_mm512_setzero_si512(); 4];
                for q in 0..4 {
                    if c == 0 && q == 0 {
                        let pt = lane_up(load_n(data, 0, 48), _mm512_setzero_si512());
                        let x = _mm512_xor_si512(pt, ks[0]);
                        store_n(data, 0, 48, lane_down(x));
                        ej0 = _mm512_castsi512_si128(ks[0]);
                        g[0] = _mm512_mask_broadcast_i32x4(bswap(x), 0x000F, m.head);
                    } else {
                        let off = 256 * c + 64 * q - 16;
                        let x = _mm512_xor_si512(load64(data, off), ks[q]);
                        store64(data, off, x);
                        g[q] = bswap(x);
                    }
                }
                prev = g;
                c += 1;
            }
            if full > 0 {
                self.ghash_full(full - 1, full, &mut acc, &mut y, &prev);
            }
            // Tail: r = nb - 16*full AES blocks (0..=16) plus the length block.
            let r = nb - 16 * full;
            let lb = len_block(m.aad_len, len);
            let b0 = 16 * full;
            y = match (r + 1).div_ceil(4) {
                1 => self.seal_tail::<NR, LONG, 1>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                2 => self.seal_tail::<NR, LONG, 2>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                3 => self.seal_tail::<NR, LONG, 3>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                4 => self.seal_tail::<NR, LONG, 4>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                _ => self.seal_tail::<NR, LONG, 5>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
            };
            bytemuck::must_cast(_mm_xor_si128(bswap128(y), ej0))
        }
    }

    simd_fn! {
        /// Last chunk of a seal: `r` AES blocks from block `b0` and the length
        /// block, in `G = ceil((r+1)/4)` registers. Returns the final GHASH.
        #[allow(clippy::too_many_arguments)]
        fn seal_tail<const NR: usize, const LONG: bool, const G: usize>(
            &self,
            m: &Msg,
            data: &mut [u8],
            ctr: &mut __m512i,
            b0: usize,
            r: usize,
            lb: __m128i,
            y: __m128i,
            ej0: &mut __m128i,
        ) -> __m128i {
            let ks = self.aes_ctr::<NR, G>(&counters::<LONG, G>(ctr));
            seal_post::<G>(self, m, data, &ks, b0, r, lb, y, ej0)
        }
    }
}

simd_fn! {
    /// The part of a seal's last chunk after AES: XOR the keystream `ks`,
    /// store, and hash the chunk (see [`Keys::seal_tail`]).
    #[allow(clippy::too_many_arguments)]
    fn seal_post<const G: usize>(
        k: &Keys,
        m: &Msg,
        data: &mut [u8],
        ks: &[__m512i; G],
        b0: usize,
        r: usize,
        lb: __m128i,
        y: __m128i,
        ej0: &mut __m128i,
    ) -> __m128i {
            let len = data.len();
            let mut g = [_mm512_setzero_si512(); G];
            // The length block is block `r` of this chunk.
            let (lq, lbits) = (r / 4, 0xFu16 << (4 * (r % 4)));
            for q in 0..G {
                let gq = if q == 0 && b0 == 0 {
                    // Lane 0 is block 0 (E(J0) / AAD head), lanes 1..3 data 0..48.
                    let n = len.min(48);
                    let pt = lane_up(load_n(data, 0, n), _mm512_setzero_si512());
                    let x = _mm512_maskz_mov_epi8(nmask(n) << 16, _mm512_xor_si512(pt, ks[0]));
                    store_n(data, 0, n, lane_down(x));
                    *ej0 = _mm512_castsi512_si128(ks[0]);
                    _mm512_mask_broadcast_i32x4(bswap(x), 0x000F, m.head)
                } else {
                    let off = 16 * b0 + 64 * q - 16;
                    let n = len.saturating_sub(off);
                    let pt = load_n(data, off, n);
                    let x = _mm512_maskz_mov_epi8(nmask(n), _mm512_xor_si512(pt, ks[q]));
                    store_n(data, off, n, x);
                    bswap(x)
                };
                let lm = if q == lq { lbits } else { 0 };
                g[q] = _mm512_mask_broadcast_i32x4(gq, lm, lb);
            }
            k.ghash_chunk::<G>(y, &g, r + 1)
    }
}

impl Keys {
    simd_fn! {
        /// Verifies `tag` and decrypts `data` in place (the plaintext is
        /// written even when the tag does not match). Constant-time compare.
        pub(crate) fn open<const NR: usize>(&self, m: &Msg, data: &mut [u8], tag: &[u8; 16]) -> bool {
            if data.len() <= SHORT_MAX {
                self.open_impl::<NR, false>(m, data, tag)
            } else {
                self.open_impl::<NR, true>(m, data, tag)
            }
        }
    }

    simd_fn! {
        fn open_impl<const NR: usize, const LONG: bool>(&self, m: &Msg, data: &mut [u8], tag: &[u8; 16]) -> bool {
            let len = data.len();
            let nb = len.div_ceil(16) + 1;
            let full = (len / 16 + 1) / 16;
            let mut ctr = ctr_start::<LONG>(m.j0r);
            let mut y = _mm_setzero_si128();
            let mut ej0 = _mm_setzero_si128();
            let zero = _mm512_setzero_si512();
            let mut acc = Acc { lo: zero, mi: zero, hi: zero };
            let mut c = 0;
            while c < full {
                let mut ct = [_mm512_setzero_si512(); 4];
                let mut g = [_mm512_setzero_si512(); 4];
                for q in 0..4 {
                    if c == 0 && q == 0 {
                        ct[0] = lane_up(load_n(data, 0, 48), _mm512_setzero_si512());
                        g[0] = _mm512_mask_broadcast_i32x4(bswap(ct[0]), 0x000F, m.head);
                    } else {
                        ct[q] = load64(data, 256 * c + 64 * q - 16);
                        g[q] = bswap(ct[q]);
                    }
                }
                let ks = self.aes_ctr::<NR, 4>(&counters::<LONG, 4>(&mut ctr));
                self.ghash_full(c, full, &mut acc, &mut y, &g);
                for q in 0..4 {
                    let x = _mm512_xor_si512(ct[q], ks[q]);
                    if c == 0 && q == 0 {
                        ej0 = _mm512_castsi512_si128(ks[0]);
                        store_n(data, 0, 48, lane_down(x));
                    } else {
                        store64(data, 256 * c + 64 * q - 16, x);
                    }
                }
                c += 1;
            }
            let r = nb - 16 * full;
            let lb = len_block(m.aad_len, len);
            let b0 = 16 * full;
            y = match (r + 1).div_ceil(4) {
                1 => self.open_tail::<NR, LONG, 1>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                2 => self.open_tail::<NR, LONG, 2>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                3 => self.open_tail::<NR, LONG, 3>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                4 => self.open_tail::<NR, LONG, 4>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
                _ => self.open_tail::<NR, LONG, 5>(m, data, &mut ctr, b0, r, lb, y, &mut ej0),
            };
            let t = _mm_xor_si128(bswap128(y), ej0);
            let want: __m128i = bytemuck::must_cast(*tag);
            _mm_cmpeq_epi8_mask(t, want) == 0xFFFF
        }
    }

    simd_fn! {
        /// Last chunk of an open (see [`Keys::seal_tail`]).
        #[allow(clippy::too_many_arguments)]
        fn open_tail<const NR: usize, const LONG: bool, const G: usize>(
            &self,
            m: &Msg,
            data: &mut [u8],
            ctr: &mut __m512i,
            b0: usize,
            r: usize,
            lb: __m128i,
            y: __m128i,
            ej0: &mut __m128i,
        ) -> __m128i {
            let (ct, g) = open_pre::<G>(m, data, b0, r, lb);
            let ks = self.aes_ctr::<NR, G>(&counters::<LONG, G>(ctr));
            let y = self.ghash_chunk::<G>(y, &g, r + 1);
            open_post::<G>(data, &ct, &ks, b0, ej0);
            y
        }
    }
}

simd_fn! {
    /// First part of an open's last chunk: load the ciphertext registers and
    /// the GHASH input (head block, length block inserted).
    fn open_pre<const G: usize>(
        m: &Msg,
        data: &[u8],
        b0: usize,
        r: usize,
        lb: __m128i,
    ) -> ([__m512i; G], [__m512i; G]) {
        let len = data.len();
        let mut ct = [_mm512_setzero_si512(); G];
        let mut g = [_mm512_setzero_si512(); G];
        let (lq, lbits) = (r / 4, 0xFu16 << (4 * (r % 4)));
        for q in 0..G {
            let gq = if q == 0 && b0 == 0 {
                ct[0] = lane_up(load_n(data, 0, len.min(48)), _mm512_setzero_si512());
                _mm512_mask_broadcast_i32x4(bswap(ct[0]), 0x000F, m.head)
            } else {
                let off = 16 * b0 + 64 * q - 16;
                ct[q] = load_n(data, off, len.saturating_sub(off));
                bswap(ct[q])
            };
            let lm = if q == lq { lbits } else { 0 };
            g[q] = _mm512_mask_broadcast_i32x4(gq, lm, lb);
        }
        (ct, g)
    }
}

simd_fn! {
    /// Last part of an open's last chunk: XOR the keystream and store.
    fn open_post<const G: usize>(
        data: &mut [u8],
        ct: &[__m512i; G],
        ks: &[__m512i; G],
        b0: usize,
        ej0: &mut __m128i,
    ) {
        let len = data.len();
        for q in 0..G {
            let x = _mm512_xor_si512(ct[q], ks[q]);
            if q == 0 && b0 == 0 {
                *ej0 = _mm512_castsi512_si128(ks[0]);
                store_n(data, 0, len.min(48), lane_down(x));
            } else {
                let off = 16 * b0 + 64 * q - 16;
                store_n(data, off, len.saturating_sub(off), x);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Several short messages at once
// ---------------------------------------------------------------------------

/// Messages shorter than this are one chunk (no full 16-block chunk):
/// `len / 16 + 1 < 16`.
const SMALL_LIMIT: usize = 240;

/// Registers of a short message's single chunk (`ceil((n + 2) / 4)` for `n`
/// data blocks, 1..=5), or 0 if the message is not short.
fn small_regs(len: usize) -> usize {
    if len >= SMALL_LIMIT {
        0
    } else {
        (len.div_ceil(16) + 2).div_ceil(4)
    }
}

impl Keys {
    simd_fn! {
        /// Keystream for `P` messages of `G` registers each (blocks from 0),
        /// with the AES rounds of all `P * G` registers interleaved.
        fn aes_multi<const NR: usize, const G: usize, const P: usize>(
            &self,
            m: &[Msg; P],
        ) -> [[__m512i; G]; P] {
            let k0 = self.k(0);
            let mut s = [[_mm512_setzero_si512(); G]; P];
            for p in 0..P {
                let mut c = ctr_start::<false>(m[p].j0r);
                let blocks = counters::<false, G>(&mut c);
                for q in 0..G {
                    s[p][q] = _mm512_xor_si512(blocks[q], k0);
                }
            }
            for r in 1..NR {
                let k = self.k(r);
                for sp in s.iter_mut() {
                    for v in sp.iter_mut() {
                        *v = _mm512_aesenc_epi128(*v, k);
                    }
                }
            }
            let k = self.k(NR);
            for sp in s.iter_mut() {
                for v in sp.iter_mut() {
                    *v = _mm512_aesenclast_epi128(*v, k);
                }
            }
            s
        }
    }

    simd_fn! {
        /// Seals `P` short messages whose chunk has `G` registers each
        /// (`small_regs(len) == G`) as one multi-buffer job: their AES-CTR
        /// registers are in flight together, then each is hashed.
        fn seal_small<const NR: usize, const G: usize, const P: usize>(
            &self,
            m: &[Msg; P],
            data: &mut [&mut [u8]; P],
        ) -> [[u8; 16]; P] {
            let ks = self.aes_multi::<NR, G, P>(m);
            let mut tags = [[0u8; 16]; P];
            for p in 0..P {
                let len = data[p].len();
                let r = len.div_ceil(16) + 1;
                let lb = len_block(m[p].aad_len, len);
                let mut ej0 = _mm_setzero_si128();
                let y = seal_post::<G>(self, &m[p], data[p], &ks[p], 0, r, lb, _mm_setzero_si128(), &mut ej0);
                tags[p] = bytemuck::must_cast(_mm_xor_si128(bswap128(y), ej0));
            }
            tags
        }
    }

    simd_fn! {
        /// Opens `P` short messages of `G` registers each (see
        /// [`Keys::seal_small`]); returns whether each tag matched.
        fn open_small<const NR: usize, const G: usize, const P: usize>(
            &self,
            m: &[Msg; P],
            data: &mut [&mut [u8]; P],
            tags: &[[u8; 16]; P],
        ) -> [bool; P] {
            let mut pre = [([_mm512_setzero_si512(); G], [_mm512_setzero_si512(); G]); P];
            for p in 0..P {
                let len = data[p].len();
                let lb = len_block(m[p].aad_len, len);
                pre[p] = open_pre::<G>(&m[p], data[p], 0, len.div_ceil(16) + 1, lb);
            }
            let ks = self.aes_multi::<NR, G, P>(m);
            let mut ok = [false; P];
            for p in 0..P {
                let len = data[p].len();
                let y = self.ghash_chunk::<G>(_mm_setzero_si128(), &pre[p].1, len.div_ceil(16) + 2);
                let mut ej0 = _mm_setzero_si128();
                open_post::<G>(data[p], &pre[p].0, &ks[p], 0, &mut ej0);
                let t = _mm_xor_si128(bswap128(y), ej0);
                let want: __m128i = bytemuck::must_cast(tags[p]);
                ok[p] = _mm_cmpeq_epi8_mask(t, want) == 0xFFFF;
            }
            ok
        }
    }
}

// ---------------------------------------------------------------------------
// ESP bursts (RFC 4106)
// ---------------------------------------------------------------------------

/// ESP header (SPI, Seq) + IV.
const ESP_HDR: usize = 16;
/// Smallest ESP packet: header, IV, ICV (empty plaintext).
pub(crate) const ESP_MIN: usize = ESP_HDR + 16;

simd_fn! {
    /// Nonce/AAD of one ESP packet: nonce = salt || IV (`hdr[8..16]`),
    /// AAD = SPI || SeqLo, or SPI || SeqHi || SeqLo with ESN.
    fn esp_msg<const ESN: bool>(salt: u32, hdr: &[u8; 16], seq: u64) -> Msg {
        let spi = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let seq_lo = u32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let iv = u64::from_be_bytes([hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15]]);
        // Reflected J0 = (salt || IV || 0x00000001) as a big-endian integer.
        let j0_hi = (u64::from(salt) << 32) | (iv >> 32);
        let j0_lo = (iv << 32) | 1;
        let j0r = _mm_set_epi64x(j0_hi as i64, j0_lo as i64);
        let (head, aad_len) = if ESN {
            let hi = (u64::from(spi) << 32) | (seq >> 32);
            let lo = u64::from(seq_lo) << 32;
            (_mm_set_epi64x(hi as i64, lo as i64), 12)
        } else {
            let hi = (u64::from(spi) << 32) | u64::from(seq_lo);
            (_mm_set_epi64x(hi as i64, 0), 8)
        };
        Msg { j0r, head, aad_len }
    }
}

simd_fn! {
    /// Writes the IV (= sequence number) of an ESP packet of at least
    /// `ESP_MIN` bytes and splits it: (nonce/AAD, plaintext, ICV space).
    fn esp_seal_prep<const ESN: bool>(salt: u32, esp: &mut [u8], seq: u64) -> (Msg, &mut [u8], &mut [u8]) {
        esp[8..16].copy_from_slice(&seq.to_be_bytes());
        let (hdr, rest) = esp.split_at_mut(ESP_HDR);
        let hdr: &[u8; 16] = (&*hdr).try_into().expect("16-byte header");
        let m = esp_msg::<ESN>(salt, hdr, seq);
        let ct_len = rest.len() - 16;
        let (body, icv) = rest.split_at_mut(ct_len);
        (m, body, icv)
    }
}

simd_fn! {
    /// Splits a received ESP packet of at least `ESP_MIN` bytes: (nonce/AAD
    /// from its header, ciphertext, ICV).
    fn esp_open_prep<const ESN: bool>(salt: u32, esp: &mut [u8], seq: u64) -> (Msg, &mut [u8], [u8; 16]) {
        let (hdr, rest) = esp.split_at_mut(ESP_HDR);
        let hdr: &[u8; 16] = (&*hdr).try_into().expect("16-byte header");
        let m = esp_msg::<ESN>(salt, hdr, seq);
        let ct_len = rest.len() - 16;
        let (body, icv) = rest.split_at_mut(ct_len);
        let tag: [u8; 16] = (&*icv).try_into().expect("16-byte ICV");
        (m, body, tag)
    }
}

impl Keys {
    simd_fn! {
        /// Seals a burst of ESP packets (see `EspCipher::seal`): runs of four
        /// short packets of the same shape go through the multi-buffer path.
        pub(crate) fn seal_esp<const NR: usize, const ESN: bool>(
            &self,
            salt: u32,
            jobs: &mut [super::super::SealJob<'_>],
        ) {
            let mut i = 0;
            while i < jobs.len() {
                if let Some([a, b, c, d]) = jobs.get_mut(i..i + 4) {
                    let g = small_regs(a.esp.len().wrapping_sub(ESP_MIN));
                    let same = |j: &super::super::SealJob<'_>| {
                        j.esp.len() >= ESP_MIN && small_regs(j.esp.len() - ESP_MIN) == g
                    };
                    if a.esp.len() >= ESP_MIN && g != 0 && same(b) && same(c) && same(d) {
                        let quad = [a, b, c, d];
                        match g {
                            1 => self.seal4::<NR, ESN, 1>(salt, quad),
                            2 => self.seal4::<NR, ESN, 2>(salt, quad),
                            3 => self.seal4::<NR, ESN, 3>(salt, quad),
                            4 => self.seal4::<NR, ESN, 4>(salt, quad),
                            _ => self.seal4::<NR, ESN, 5>(salt, quad),
                        }
                        i += 4;
                        continue;
                    }
                }
                self.seal_one::<NR, ESN>(salt, &mut jobs[i]);
                i += 1;
            }
        }
    }

    simd_fn! {
        /// Seals one ESP packet.
        fn seal_one<const NR: usize, const ESN: bool>(&self, salt: u32, job: &mut super::super::SealJob<'_>) {
            let esp = &mut *job.esp;
            if esp.len() < ESP_MIN {
                // Malformed job: never let plaintext leave in clear.
                esp.fill(0);
                return;
            }
            let (m, body, icv) = esp_seal_prep::<ESN>(salt, esp, job.seq);
            let tag = self.seal::<NR>(&m, body);
            icv.copy_from_slice(&tag);
        }
    }

    simd_fn! {
        /// Seals four short ESP packets of `G` registers each (valid lengths
        /// checked by the caller).
        fn seal4<const NR: usize, const ESN: bool, const G: usize>(
            &self,
            salt: u32,
            jobs: [&mut super::super::SealJob<'_>; 4],
        ) {
            let mut parts = jobs.map(|j| esp_seal_prep::<ESN>(salt, &mut *j.esp, j.seq));
            let m = [parts[0].0, parts[1].0, parts[2].0, parts[3].0];
            let [p0, p1, p2, p3] = &mut parts;
            let mut bodies = [&mut *p0.1, &mut *p1.1, &mut *p2.1, &mut *p3.1];
            let tags = self.seal_small::<NR, G, 4>(&m, &mut bodies);
            for (p, t) in parts.iter_mut().zip(&tags) {
                p.2.copy_from_slice(t);
            }
        }
    }

    simd_fn! {
        /// Opens a burst of ESP packets (see `EspCipher::open`), with the
        /// same multi-buffer path for runs of four short packets.
        pub(crate) fn open_esp<const NR: usize, const ESN: bool>(
            &self,
            salt: u32,
            jobs: &mut [super::super::OpenJob<'_>],
        ) {
            let mut i = 0;
            while i < jobs.len() {
                if let Some([a, b, c, d]) = jobs.get_mut(i..i + 4) {
                    let g = small_regs(a.esp.len().wrapping_sub(ESP_MIN));
                    let same = |j: &super::super::OpenJob<'_>| {
                        j.esp.len() >= ESP_MIN && small_regs(j.esp.len() - ESP_MIN) == g
                    };
                    if a.esp.len() >= ESP_MIN && g != 0 && same(b) && same(c) && same(d) {
                        let quad = [a, b, c, d];
                        match g {
                            1 => self.open4::<NR, ESN, 1>(salt, quad),
                            2 => self.open4::<NR, ESN, 2>(salt, quad),
                            3 => self.open4::<NR, ESN, 3>(salt, quad),
                            4 => self.open4::<NR, ESN, 4>(salt, quad),
                            _ => self.open4::<NR, ESN, 5>(salt, quad),
                        }
                        i += 4;
                        continue;
                    }
                }
                self.open_one::<NR, ESN>(salt, &mut jobs[i]);
                i += 1;
            }
        }
    }

    simd_fn! {
        /// Opens one ESP packet.
        fn open_one<const NR: usize, const ESN: bool>(&self, salt: u32, job: &mut super::super::OpenJob<'_>) {
            let esp = &mut *job.esp;
            if esp.len() < ESP_MIN {
                job.ok = false;
                return;
            }
            let (m, body, tag) = esp_open_prep::<ESN>(salt, esp, job.seq);
            job.ok = self.open::<NR>(&m, body, &tag);
        }
    }

    simd_fn! {
        /// Opens four short ESP packets of `G` registers each.
        fn open4<const NR: usize, const ESN: bool, const G: usize>(
            &self,
            salt: u32,
            jobs: [&mut super::super::OpenJob<'_>; 4],
        ) {
            let [j0, j1, j2, j3] = jobs;
            let (m0, b0, t0) = esp_open_prep::<ESN>(salt, &mut *j0.esp, j0.seq);
            let (m1, b1, t1) = esp_open_prep::<ESN>(salt, &mut *j1.esp, j1.seq);
            let (m2, b2, t2) = esp_open_prep::<ESN>(salt, &mut *j2.esp, j2.seq);
            let (m3, b3, t3) = esp_open_prep::<ESN>(salt, &mut *j3.esp, j3.seq);
            let ok = self.open_small::<NR, G, 4>(&[m0, m1, m2, m3], &mut [b0, b1, b2, b3], &[t0, t1, t2, t3]);
            j0.ok = ok[0];
            j1.ok = ok[1];
            j2.ok = ok[2];
            j3.ok = ok[3];
        }
    }
}
