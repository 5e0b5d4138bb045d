//! FIPS-197 §5.2 AES KeyExpansion, shared by the key set-up of the kernels
//! in this folder: the VAES GCM kernel's round keys (`vaes512/key_setup.rs`)
//! and the VAES CBC decryption's inverse-cipher keys (`cbc_dec.rs`). Runs
//! once per SA install, not per packet.

use core::arch::x86_64::*;

use zeroize::Zeroize;

/// An expanded AES key as FIPS-197 words (`4 * (nr + 1)` of the 60 used);
/// wiped on drop.
pub(crate) struct KeyWords {
    w: [[u8; 4]; 60],
    /// Number of rounds: 10, 12 or 14.
    pub(crate) nr: usize,
}

impl Drop for KeyWords {
    fn drop(&mut self) {
        self.w.zeroize();
    }
}

impl KeyWords {
    /// Byte `4 * c + j` of round key `r` is byte `j` of word `4 * r + c`
    /// (FIPS-197 byte order, as AESENC reads it).
    #[inline]
    pub(crate) fn round_key(&self, r: usize, out: &mut [u8; 16]) {
        for c in 0..4 {
            out[c * 4..c * 4 + 4].copy_from_slice(&self.w[4 * r + c]);
        }
    }
}

/// AES SubWord of a 4-byte word, in constant time (AESENCLAST on a state
/// whose four columns are the word: ShiftRows is then a no-op).
#[target_feature(enable = "aes,sse2")]
fn sub_word(w: [u8; 4]) -> [u8; 4] {
    let s = _mm_set1_epi32(i32::from_le_bytes(w));
    let r = _mm_aesenclast_si128(s, _mm_setzero_si128());
    _mm_cvtsi128_si32(r).to_le_bytes()
}

/// Expands a 16/24/32-byte AES key; `None` for other key lengths.
#[target_feature(enable = "aes,sse2")]
pub(crate) fn expand_words(key: &[u8]) -> Option<KeyWords> {
    let nr = match key.len() {
        16 => 10,
        24 => 12,
        32 => 14,
        _ => return None,
    };
    let nk = key.len() / 4;
    let mut k = KeyWords {
        w: [[0u8; 4]; 60],
        nr,
    };
    let w = &mut k.w;
    for (wi, c) in w.iter_mut().zip(key.chunks_exact(4)) {
        wi.copy_from_slice(c);
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
    Some(k)
}
