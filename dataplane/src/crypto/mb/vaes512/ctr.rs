use super::*;

// ---------------------------------------------------------------------------
// AES-CTR
// ---------------------------------------------------------------------------

impl Keys {
    simd_fn! {
        /// Encrypts `G` registers of counter blocks and returns the keystream.
        pub(super) fn aes_ctr<const NR: usize, const G: usize>(&self, ctr: &[__m512i; G]) -> [__m512i; G] {
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
pub(super) const SHORT_MAX: usize = 254 * 16;

simd_fn! {
    /// The running counter register for blocks 0..3 of a message: the AES
    /// input blocks themselves (`LONG = false`) or byte-reflected
    /// (`LONG = true`).
    pub(super) fn ctr_start<const LONG: bool>(j0r: __m128i) -> __m512i {
        let b = _mm512_broadcast_i32x4(j0r);
        // Lane offsets 0..3 added to the counter word: the low dword of each
        // reflected lane; 32-bit wrap like GCM's inc32.
        let r = _mm512_add_epi32(b, _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0));
        if LONG { r } else { bswap(r) }
    }
}

simd_fn! {
    /// The next `G` registers of AES input blocks, advancing `ctr`.
    pub(super) fn counters<const LONG: bool, const G: usize>(ctr: &mut __m512i) -> [__m512i; G] {
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
