use super::*;

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
    pub(super) fn len_block(aad_len: u64, len: usize) -> __m128i {
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
        pub(super) fn seal_impl<const NR: usize, const LONG: bool>(&self, m: &Msg, data: &mut [u8]) -> [u8; 16] {
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
        pub(super) fn seal_tail<const NR: usize, const LONG: bool, const G: usize>(
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
    pub(super) fn seal_post<const G: usize>(
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
        pub(super) fn open_impl<const NR: usize, const LONG: bool>(&self, m: &Msg, data: &mut [u8], tag: &[u8; 16]) -> bool {
            align_frame();
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
        pub(super) fn open_tail<const NR: usize, const LONG: bool, const G: usize>(
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
    pub(super) fn open_pre<const G: usize>(
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
    pub(super) fn open_post<const G: usize>(
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
