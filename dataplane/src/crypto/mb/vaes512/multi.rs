use super::*;

// ---------------------------------------------------------------------------
// Several short messages at once
// ---------------------------------------------------------------------------

/// Messages shorter than this are one chunk (no full 16-block chunk):
/// `len / 16 + 1 < 16`.
pub(super) const SMALL_LIMIT: usize = 240;

/// Registers of a short message's single chunk (`ceil((n + 2) / 4)` for `n`
/// data blocks, 1..=5), or 0 if the message is not short.
pub(super) fn small_regs(len: usize) -> usize {
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
        pub(super) fn aes_multi<const NR: usize, const G: usize, const P: usize>(
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
        pub(super) fn seal_small<const NR: usize, const G: usize, const P: usize>(
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
        pub(super) fn open_small<const NR: usize, const G: usize, const P: usize>(
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
