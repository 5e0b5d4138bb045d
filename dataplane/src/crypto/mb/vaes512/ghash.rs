use super::*;

// ---------------------------------------------------------------------------
// GHASH
// ---------------------------------------------------------------------------

/// Unreduced sum of products, as three 256-bit-per-lane partial products.
#[derive(Clone, Copy)]
pub(super) struct Acc {
    pub(super) lo: __m512i,
    pub(super) mi: __m512i,
    pub(super) hi: __m512i,
}

simd_fn! {
    /// `a * b` per lane, unreduced.
    pub(super) fn mul_first(a: __m512i, b: __m512i) -> Acc {
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
    pub(super) fn mul_acc(acc: Acc, a: __m512i, b: __m512i) -> Acc {
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
    pub(super) fn reduce(acc: Acc) -> __m128i {
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
    pub(super) fn mul128(a: __m128i, b: __m128i) -> __m128i {
        let acc = mul_first(_mm512_zextsi128_si512(a), _mm512_zextsi128_si512(b));
        reduce(acc)
    }
}

simd_fn! {
    /// `a * b * X^-128 mod G` in each of the four lanes (key set-up only:
    /// four hash-key powers per multiplication).
    pub(super) fn mul4(a: __m512i, b: __m512i) -> __m512i {
        const C: i64 = 0xC200_0000_0000_0000u64 as i64;
        let poly = _mm512_set_epi64(C, 0, C, 0, C, 0, C, 0);
        let acc = mul_first(a, b);
        let t = _mm512_clmulepi64_epi128::<0x10>(acc.lo, poly);
        let mi = xor3(acc.mi, _mm512_shuffle_epi32::<0x4E>(acc.lo), t);
        let t = _mm512_clmulepi64_epi128::<0x10>(mi, poly);
        xor3(acc.hi, _mm512_shuffle_epi32::<0x4E>(mi), t)
    }
}

impl Keys {
    simd_fn! {
        /// Round key `i` (broadcast to the four lanes by the load).
        pub(super) fn k(&self, i: usize) -> __m512i {
            _mm512_broadcast_i32x4(bytemuck::must_cast(self.rk[i]))
        }
    }

    simd_fn! {
        /// Four lanes of the powers `S_(17-i)`, `S_(16-i)`, ... (zero past
        /// `S_1`), `i <= 17`: flat entries `15 + i..19 + i` of `h32`.
        pub(super) fn pow4(&self, i: usize) -> __m512i {
            let flat: &[u8] = bytemuck::cast_slice(&self.h32);
            load64(flat, (32 - NPOW + i) * 16)
        }
    }

    simd_fn! {
        /// GHASH of one chunk of `m <= 17` blocks held in `g[0..ceil(m/4)]`
        /// (lanes past block `m` are ignored), continuing from `y`:
        /// returns `(y ^ X_0) * H^m + X_1 * H^(m-1) + ... + X_(m-1) * H`.
        pub(super) fn ghash_chunk<const G: usize>(&self, y: __m128i, g: &[__m512i; G], m: usize) -> __m128i {
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
        pub(super) fn ghash16(&self, y: __m128i, g: &[__m512i; 4]) -> __m128i {
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
        pub(super) fn ghash_full(&self, j: usize, full: usize, acc: &mut Acc, y: &mut __m128i, g: &[__m512i; 4]) {
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
        pub(super) fn ghash_bytes(&self, mut y: __m128i, data: &[u8]) -> __m128i {
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
