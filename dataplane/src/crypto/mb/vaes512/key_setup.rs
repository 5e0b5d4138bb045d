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
    /// [`expand`] in place: writes the round keys (unused ones zeroed), the
    /// round count and the hash-key powers of `key` into `keys`: every
    /// field but the tag, so nothing of the keys it held before remains.
    /// False (and `keys` untouched) for a key length other than 16, 24 or 32.
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
        // S_1..S_4 one by one, then four at a time (lanes
        // S_(4q+1)..S_(4q+4) times S_4), so that a key set-up on a key-cache
        // miss costs 10 dependent multiplications, not 31; each register,
        // lanes reversed, is row 7 - q of `h32` (lane `l` of row `r` is
        // `S_(32-4r-l)`), written in place (no copy of the powers to wipe).
        let s2 = mul128(s1v, s1v);
        let s3 = mul128(s2, s1v);
        let s4 = mul128(s3, s1v);
        let mut first: [[u8; 16]; 4] = [
            bytemuck::must_cast(s1v),
            bytemuck::must_cast(s2),
            bytemuck::must_cast(s3),
            bytemuck::must_cast(s4),
        ];
        let mut v: __m512i = bytemuck::must_cast(first);
        first.zeroize();
        let b4 = _mm512_broadcast_i32x4(s4);
        for q in 0..8 {
            keys.h32[7 - q] = bytemuck::must_cast(_mm512_shuffle_i64x2::<0x1B>(v, v));
            if q < 7 {
                v = mul4(v, b4);
            }
        }
        true
    }
}
