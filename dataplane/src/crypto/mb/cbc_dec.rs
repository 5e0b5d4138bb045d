//! AES-CBC decryption (128/192/256-bit keys) with VAES on 512-bit
//! registers, one packet per call, for the one-pass ESP open of CBC +
//! HMAC-SHA-256 (`ipsecmb/cbc_onepass.rs`: four packets hashed on SHA-NI,
//! then the verified ones decrypted here while they are still in L1).
//!
//! CBC decryption is parallel within a packet (`P_i = D(C_i) ^ C_(i-1)`):
//! sixteen blocks per step in four registers. In place: a step loads its
//! four ciphertext registers before it stores; the block before its first
//! one (the IV, or the previous step's last ciphertext block, kept in a
//! register) enters through a lane shift (`valignq`), so no block is read
//! after it was decrypted. The last 1-15 blocks go through masked loads and
//! stores.
//!
//! (Tried and dropped, measured on Zen 4: running these steps *inside* the
//! four-lane SHA-NI SHA-256 kernel, between its round groups, so that the
//! AES units work while `sha256rnds2` runs: the ESP open at 1420 bytes got
//! ~12 % slower than hashing first and decrypting after, although a loop of
//! only `sha256rnds2` and `vaesdec` overlaps the two.)
//!
//! `unsafe` here: the call into the `#[target_feature]` function, made only
//! through a [`CbcDecKeys`] (which exists once `new` found the CPU
//! features), and the masked loads/stores of the tail, whose masks select
//! only bytes inside the ciphertext slice. Checked against RustCrypto's
//! `cbc` on random keys, IVs and every length up to 40 blocks, and against
//! RFC 3602 / SP 800-38A (tests below; the ESP path in
//! `tests/crypto_ipsecmb.rs`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// AES block length.
const BLOCK: usize = 16;

/// AES decryption round keys for `aesdec` (FIPS-197 §5.3.5, the
/// equivalent inverse cipher: the encryption schedule reversed, InvMixColumns
/// applied to the middle keys), each broadcast to four lanes; wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct CbcDecKeys {
    rk: [[u8; 64]; 15],
    nr: usize,
}

impl CbcDecKeys {
    /// Expands a 16/24/32-byte AES key; `None` for another length or if
    /// this CPU lacks AVX-512F/VL, VAES or AES-NI (the caller then keeps
    /// the library's CBC).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("vaes")
                && std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sse2");
            if !cpu || !matches!(key.len(), 16 | 24 | 32) {
                return None;
            }
            // SAFETY: the CPU has every feature `expand_dec` is compiled
            // for (checked just above).
            unsafe { expand_dec(key) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = key;
            None
        }
    }

    /// Decrypts `data` (whole blocks) in place under `iv`. False, and
    /// `data` untouched, if its length is not a multiple of 16.
    #[inline]
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> bool {
        if !data.len().is_multiple_of(BLOCK) {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `CbcDecKeys` exists only after `new` found every
        // feature `decrypt_cbc` is compiled for.
        unsafe {
            match self.nr {
                10 => decrypt_cbc::<10>(self, iv, data),
                12 => decrypt_cbc::<12>(self, iv, data),
                _ => decrypt_cbc::<14>(self, iv, data),
            }
        }
        true
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn expand_dec(key: &[u8]) -> Option<CbcDecKeys> {
    let k = super::key_schedule::expand_words(key)?;
    let nr = k.nr;
    let mut keys = CbcDecKeys {
        rk: [[0; 64]; 15],
        nr,
    };
    for r in 0..=nr {
        let mut ek = [0u8; 16];
        k.round_key(nr - r, &mut ek);
        let mut v: __m128i = bytemuck::must_cast(ek);
        if r != 0 && r != nr {
            v = _mm_aesimc_si128(v);
        }
        let b: [u8; 16] = bytemuck::must_cast(v);
        for lane in 0..4 {
            keys.rk[r][lane * 16..lane * 16 + 16].copy_from_slice(&b);
        }
        ek.zeroize();
    }
    Some(keys)
}

/// CBC decryption of whole blocks in place, `NR` rounds: sixteen blocks
/// (four registers) per step, then the last 1-15 blocks masked.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
#[target_feature(enable = "avx512f,avx512vl,vaes,aes,sse2")]
fn decrypt_cbc<const NR: usize>(keys: &CbcDecKeys, iv: &[u8; 16], data: &mut [u8]) {
    let rk: [__m512i; 15] = core::array::from_fn(|r| bytemuck::must_cast(keys.rk[r]));
    // Lane 3 of `prev`: the ciphertext block before the step's first one.
    let mut prev = _mm512_broadcast_i32x4(bytemuck::must_cast::<[u8; 16], __m128i>(*iv));
    let rounds = |c: [__m512i; 4], p: [__m512i; 4]| -> [__m512i; 4] {
        let mut x = [_mm512_setzero_si512(); 4];
        for i in 0..4 {
            x[i] = _mm512_xor_si512(c[i], rk[0]);
        }
        for k in &rk[1..NR] {
            for xi in x.iter_mut() {
                *xi = _mm512_aesdec_epi128(*xi, *k);
            }
        }
        for i in 0..4 {
            x[i] = _mm512_xor_si512(_mm512_aesdeclast_epi128(x[i], rk[NR]), p[i]);
        }
        x
    };
    let mut chunks = data.chunks_exact_mut(256);
    for ch in chunks.by_ref() {
        let ch: &mut [u8; 256] = ch.try_into().expect("256-byte chunk");
        let blk: [[u8; 64]; 4] = bytemuck::must_cast(*ch);
        let c: [__m512i; 4] = core::array::from_fn(|i| bytemuck::must_cast(blk[i]));
        let p = [
            _mm512_alignr_epi64::<6>(c[0], prev),
            _mm512_alignr_epi64::<6>(c[1], c[0]),
            _mm512_alignr_epi64::<6>(c[2], c[1]),
            _mm512_alignr_epi64::<6>(c[3], c[2]),
        ];
        prev = c[3];
        let x = rounds(c, p);
        let out: [[u8; 64]; 4] = core::array::from_fn(|i| bytemuck::must_cast(x[i]));
        *ch = bytemuck::must_cast(out);
    }
    let tail = chunks.into_remainder();
    if tail.is_empty() {
        return;
    }
    let nb = tail.len() / BLOCK;
    let base = tail.as_mut_ptr();
    let mut m = [0u8; 4];
    let mut c = [_mm512_setzero_si512(); 4];
    for i in 0..4 {
        // Blocks of register i: 0..=4 (two 64-bit mask bits each).
        let k = nb.saturating_sub(4 * i).min(4);
        m[i] = ((1u16 << (2 * k)) - 1) as u8;
        // SAFETY: the mask selects the 8-byte words of the tail's blocks
        // 4i .. 4i + k, all inside `tail`; masked-off words are neither
        // read nor faulted on (the address is formed with wrapping
        // arithmetic and may point past the slice only when the mask is
        // 0). No alignment requirement; the CPU features are enabled on
        // this function.
        c[i] = unsafe {
            _mm512_maskz_loadu_epi64(m[i], base.wrapping_add(64 * i).cast::<i64>().cast_const())
        };
    }
    let p = [
        _mm512_alignr_epi64::<6>(c[0], prev),
        _mm512_alignr_epi64::<6>(c[1], c[0]),
        _mm512_alignr_epi64::<6>(c[2], c[1]),
        _mm512_alignr_epi64::<6>(c[3], c[2]),
    ];
    let x = rounds(c, p);
    for i in 0..4 {
        // SAFETY: the same words as the load above (inside `tail`, borrowed
        // mutably); masked-off words are not written.
        unsafe { _mm512_mask_storeu_epi64(base.wrapping_add(64 * i).cast::<i64>(), m[i], x[i]) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    use rand::{Rng, RngCore};

    fn reference(key: &[u8], iv: &[u8; 16], ct: &[u8]) -> Vec<u8> {
        fn run<C: BlockDecryptMut>(mut c: C, buf: &mut [u8]) {
            for b in buf.chunks_exact_mut(16) {
                c.decrypt_block_mut(aes::cipher::generic_array::GenericArray::from_mut_slice(b));
            }
        }
        let mut buf = ct.to_vec();
        match key.len() {
            16 => run(
                cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).unwrap(),
                &mut buf,
            ),
            24 => run(
                cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).unwrap(),
                &mut buf,
            ),
            _ => run(
                cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).unwrap(),
                &mut buf,
            ),
        }
        buf
    }

    fn skip() -> bool {
        if CbcDecKeys::new(&[0; 16]).is_none() {
            crate::crypto::mb::sha_ni::skip_note::note(
                "cbc_dec",
                "VAES CBC decryption not run",
                "no AVX-512/VAES on this CPU; the library's CBC runs instead",
            );
            return true;
        }
        false
    }

    #[test]
    fn matches_rustcrypto_cbc_at_every_length_and_key_size() {
        if skip() {
            return;
        }
        let mut rng = rand::rng();
        for klen in [16usize, 24, 32] {
            for _ in 0..20 {
                let mut key = vec![0u8; klen];
                rng.fill_bytes(&mut key);
                let k = CbcDecKeys::new(&key).unwrap();
                let iv: [u8; 16] = rng.random();
                for blocks in 0..=40 {
                    let mut ct = vec![0u8; blocks * 16];
                    rng.fill_bytes(&mut ct);
                    let want = reference(&key, &iv, &ct);
                    assert!(k.decrypt(&iv, &mut ct));
                    assert_eq!(ct, want, "key {klen} blocks {blocks}");
                }
            }
        }
    }

    #[test]
    fn refuses_partial_blocks() {
        if skip() {
            return;
        }
        let k = CbcDecKeys::new(&[7; 16]).unwrap();
        let mut odd = [1u8; 17];
        assert!(!k.decrypt(&[0; 16], &mut odd));
        assert_eq!(odd, [1u8; 17]);
        assert!(CbcDecKeys::new(&[0; 20]).is_none());
    }

    /// Bytes around the ciphertext (the ESP header and IV before it, the
    /// ICV after it) are never touched, at every tail length.
    #[test]
    fn leaves_the_bytes_around_the_ciphertext_alone() {
        if skip() {
            return;
        }
        let mut rng = rand::rng();
        let key: [u8; 32] = rng.random();
        let k = CbcDecKeys::new(&key).unwrap();
        for blocks in 0..=40 {
            let mut buf = vec![0u8; 24 + 16 * blocks + 64];
            rng.fill_bytes(&mut buf);
            let iv: [u8; 16] = buf[8..24].try_into().unwrap();
            let mut want = buf.clone();
            let end = 24 + 16 * blocks;
            want[24..end].copy_from_slice(&reference(&key, &iv, &buf[24..end]));
            assert!(k.decrypt(&iv, &mut buf[24..end]));
            assert_eq!(buf, want, "blocks {blocks}");
        }
    }

    /// RFC 3602 §4 cases 1-4 (AES-128-CBC) and NIST SP 800-38A F.2.6
    /// (AES-256-CBC decrypt).
    #[test]
    fn published_vectors() {
        if skip() {
            return;
        }
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                "e353779c1079aeb82708942dbe77181a",
                "53696e676c6520626c6f636b206d7367",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            ),
            (
                "6c3ea0477630ce21a2ce334aa746c2cd",
                "c782dc4c098c66cbd9cd27d825682c81",
                "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5021c19216bad525c8579695d83ba2684",
                "5468697320697320612034382d62797465206d657373616765202865786163746c7920332041455320626c6f636b7329",
            ),
            (
                "56e47a38c5598974bc46903dba290349",
                "8ce82eefbea0da3c44699ed7db51b7d9",
                "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
                "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "000102030405060708090a0b0c0d0e0f",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
                "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
            ),
        ];
        for (key, iv, ct, pt) in cases {
            let k = CbcDecKeys::new(&hex::decode(key).unwrap()).unwrap();
            let iv: [u8; 16] = hex::decode(iv).unwrap().try_into().unwrap();
            let mut data = hex::decode(ct).unwrap();
            assert!(k.decrypt(&iv, &mut data));
            assert_eq!(data, hex::decode(pt).unwrap(), "key {key}");
        }
    }
}
