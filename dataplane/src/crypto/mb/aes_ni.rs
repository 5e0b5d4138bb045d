//! AES-128 encryption of independent blocks with AES-NI, for the AES-CBC
//! IV generator (`transform::AesIvGen`: IV = AES-128_k'(0^64 || seq) under a
//! per-SA IV key k'). Its round keys take 176 bytes; RustCrypto's
//! `Aes128Enc`, used before, takes about 700 because it also holds its
//! portable (fixsliced) schedule. Checked against RustCrypto on random keys
//! and blocks and against FIPS-197 Appendix C.1 (tests below).
//!
//! `unsafe` here: only the calls into the `#[target_feature]` functions,
//! made from an [`Aes128Ni`], which exists only after [`Aes128Ni::new`]
//! found AES-NI on this CPU. Loads and stores go through `bytemuck`.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Blocks encrypted side by side (their rounds interleaved).
#[cfg(target_arch = "x86_64")]
const LANES: usize = 8;

/// An expanded AES-128 encryption key (11 round keys), wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Aes128Ni {
    rk: [[u8; 16]; 11],
}

impl Aes128Ni {
    /// Expands `key`; `None` if this CPU lacks AES-NI (the caller then uses
    /// RustCrypto).
    pub(crate) fn new(key: &[u8; 16]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sse2")
            {
                // SAFETY: the CPU has AES-NI and SSE2 (checked just above).
                let rk = unsafe { expand(key) };
                return Some(Aes128Ni { rk });
            }
        }
        let _ = key;
        None
    }

    /// Encrypts every block in place (AES-128 ECB of independent blocks).
    #[inline]
    pub(crate) fn encrypt_blocks(&self, blocks: &mut [[u8; 16]]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Aes128Ni` exists only if `new` found AES-NI and SSE2.
        unsafe {
            encrypt(&self.rk, blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = blocks;
            unreachable!("Aes128Ni::new returns None off x86_64")
        }
    }
}

/// AES-NI on this CPU (a token without key material: exists once
/// [`AesNi::detect`] found the instructions), for a caller that keeps the
/// 11 round keys itself (the IV key schedule in an ipsec-mb CBC transform's
/// key-cache entry).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNi(());

impl AesNi {
    /// The token, if this CPU has AES-NI and SSE2.
    pub(crate) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sse2")
            {
                return Some(AesNi(()));
            }
        }
        None
    }

    /// Expands `key` into `rk` (every round key written).
    #[inline]
    pub(crate) fn expand_into(self, key: &[u8; 16], rk: &mut [[u8; 16]; 11]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `AesNi` exists only if `detect` found AES-NI and SSE2.
        unsafe {
            *rk = expand(key);
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (key, rk);
            unreachable!("AesNi::detect returns None off x86_64")
        }
    }

    /// Encrypts every block in place with the round keys `rk`.
    #[inline]
    pub(crate) fn encrypt_blocks(self, rk: &[[u8; 16]; 11], blocks: &mut [[u8; 16]]) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `AesNi` exists only if `detect` found AES-NI and SSE2.
        unsafe {
            encrypt(rk, blocks)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rk, blocks);
            unreachable!("AesNi::detect returns None off x86_64")
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "aes,sse2")]
fn next_round_key(prev: __m128i, assist: __m128i) -> __m128i {
    // FIPS-197 §5.2 for Nk = 4: w[i] = w[i-4] ^ w[i-1] for the last three
    // words, the first one also takes SubWord(RotWord(w[i-1])) ^ Rcon, which
    // AESKEYGENASSIST computed in its top dword.
    let t = _mm_shuffle_epi32::<0xff>(assist);
    let mut k = prev;
    k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    k = _mm_xor_si128(k, _mm_slli_si128::<8>(k));
    _mm_xor_si128(k, t)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn expand(key: &[u8; 16]) -> [[u8; 16]; 11] {
    let mut rk = [[0u8; 16]; 11];
    let mut k: __m128i = bytemuck::must_cast(*key);
    rk[0] = bytemuck::must_cast(k);
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            k = next_round_key(k, _mm_aeskeygenassist_si128::<$rcon>(k));
            rk[$i] = bytemuck::must_cast(k);
        };
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
    rk
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn encrypt(rk: &[[u8; 16]; 11], blocks: &mut [[u8; 16]]) {
    let k: [__m128i; 11] = core::array::from_fn(|i| bytemuck::must_cast(rk[i]));
    for chunk in blocks.chunks_mut(LANES) {
        let mut s = [_mm_setzero_si128(); LANES];
        for (v, b) in s.iter_mut().zip(chunk.iter()) {
            *v = _mm_xor_si128(bytemuck::must_cast(*b), k[0]);
        }
        for kr in &k[1..10] {
            for v in s.iter_mut() {
                *v = _mm_aesenc_si128(*v, *kr);
            }
        }
        for (v, b) in s.iter().zip(chunk.iter_mut()) {
            *b = bytemuck::must_cast(_mm_aesenclast_si128(*v, k[10]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockEncrypt, KeyInit};
    use hex::FromHex;
    use rand::{Rng, SeedableRng};

    /// FIPS-197 Appendix C.1 (AES-128).
    #[test]
    fn fips197_c1() {
        let Some(k) =
            Aes128Ni::new(&<[u8; 16]>::from_hex("000102030405060708090a0b0c0d0e0f").unwrap())
        else {
            eprintln!("SKIP aes_ni fips197_c1: this CPU has no AES-NI");
            return;
        };
        let mut b = [<[u8; 16]>::from_hex("00112233445566778899aabbccddeeff").unwrap()];
        k.encrypt_blocks(&mut b);
        assert_eq!(
            b[0],
            <[u8; 16]>::from_hex("69c4e0d86a7b0430d8cdb78070b4c55a").unwrap()
        );
    }

    /// Random keys and bursts of every length up to 40 blocks (whole and
    /// partial groups of eight) against RustCrypto.
    #[test]
    fn matches_rustcrypto_on_random_inputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..200 {
            let key: [u8; 16] = rng.random();
            let Some(ours) = Aes128Ni::new(&key) else {
                eprintln!("SKIP aes_ni random: this CPU has no AES-NI");
                return;
            };
            let lib =
                aes::Aes128Enc::new(aes::cipher::generic_array::GenericArray::from_slice(&key));
            for n in 0..=40 {
                let mut blocks: Vec<[u8; 16]> = (0..n).map(|_| rng.random()).collect();
                let mut want = blocks.clone();
                for b in want.iter_mut() {
                    lib.encrypt_block(aes::Block::from_mut_slice(b));
                }
                ours.encrypt_blocks(&mut blocks);
                assert_eq!(blocks, want, "key {key:02x?} n {n}");
            }
        }
    }
}
