use super::*;

// ---------------------------------------------------------------------------
// Key set-up
// ---------------------------------------------------------------------------

simd_fn! {
    /// AES SubWord of a 4-byte word, in constant time (AESENCLAST on a
    /// state whose four columns are the word: ShiftRows is then a no-op).
    pub(super) fn sub_word(w: [u8; 4]) -> [u8; 4] {
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
        let mut keys = Keys {
            h32: [[0; 64]; POW_LEN / 4],
            rk: [[0; 16]; 15],
            nr: nr as u32,
            salt: 0,
        };
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
