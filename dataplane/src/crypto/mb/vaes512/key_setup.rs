use super::*;

// ---------------------------------------------------------------------------
// Key set-up
// ---------------------------------------------------------------------------

simd_fn! {
    /// Expands a 16/24/32-byte AES key and derives the GHASH key powers.
    /// `None` for other key lengths.
    pub(crate) fn expand(key: &[u8]) -> Option<Keys> {
        let mut keys = Keys::blank();
        expand_into(&mut keys, key).then_some(keys)
    }
}

simd_fn! {
    /// [`expand`] in place: writes the round keys, the round count and the
    /// hash-key powers of `key` into `keys` (salt and tag untouched); false
    /// (and `keys` untouched) for a key length other than 16, 24 or 32.
    pub(crate) fn expand_into(keys: &mut Keys, key: &[u8]) -> bool {
        let Some(k) = super::super::key_schedule::expand_words(key) else {
            return false;
        };
        let nr = k.nr;
        keys.nr = nr as u32;
        keys.rk = [[0; 16]; 15];
        keys.h32[POW_LEN / 4 - 1] = [0; 64];
        for (r, rk) in keys.rk.iter_mut().enumerate().take(nr + 1) {
            k.round_key(r, rk);
        }
        drop(k);
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
        true
    }
}
