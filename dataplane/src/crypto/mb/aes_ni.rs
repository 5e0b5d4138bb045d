//! AES-128 encryption of independent blocks with AES-NI, for the AES-CBC
//! IV generator (`transform::AesIvGen`: IV = AES-128_k'(0^64 || seq) under a
//! per-SA IV key k'). Its round keys take 176 bytes; RustCrypto's
//! `Aes128Enc`, used before, takes about 700 because it also holds its
//! portable (fixsliced) schedule. Checked against RustCrypto on random keys
//! and blocks and against FIPS-197 Appendix C.1 (tests below).
//!
//! Also AES-CBC encryption of a small group (1-4 packets of one SA, any key
//! size) on the round keys of an ipsec-mb CBC transform's cache entry
//! ([`AesNi::cbc_encrypt`]): checked against RustCrypto's `cbc` and read
//! back from the stack for spilled round keys (tests below).
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

/// One packet of a small AES-CBC group ([`AesNi::cbc_encrypt`]): its data
/// (whole blocks, encrypted in place) and its IV.
pub(crate) struct CbcLane<'a> {
    pub(crate) data: &'a mut [u8],
    pub(crate) iv: [u8; 16],
}

/// Packets [`AesNi::cbc_encrypt`] takes at once (their chains interleaved).
pub(crate) const CBC_LANES: usize = 4;

impl AesNi {
    /// AES-CBC encryption in place of at most [`CBC_LANES`] packets, their
    /// serial chains interleaved round by round, with the encryption
    /// schedule `rk` (FIPS-197 order: the library's layout) of a key of
    /// `nr` rounds (10, 12 or 14). False, and nothing written, if `nr` is
    /// none of those, there are more lanes, or a lane's data is not whole
    /// blocks. For groups too small for the library's multi-buffer lanes,
    /// which encrypt a lone packet on all of them.
    #[inline]
    pub(crate) fn cbc_encrypt(
        self,
        rk: &[[u8; 16]; 15],
        nr: usize,
        lanes: &mut [CbcLane<'_>],
    ) -> bool {
        if !matches!(nr, 10 | 12 | 14)
            || lanes.len() > CBC_LANES
            || lanes.iter().any(|l| l.data.len() % 16 != 0)
        {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `AesNi` exists only if `detect` found AES-NI and SSE2.
        unsafe {
            cbc_enc(rk, nr, lanes)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rk, nr, lanes);
            unreachable!("AesNi::detect returns None off x86_64")
        }
        true
    }
}

/// CBC encryption of up to [`CBC_LANES`] lanes (checked by the caller:
/// `nr` in 10/12/14, whole blocks). Every lane runs every round (a lane
/// without a block left computes on its last state and stores nothing),
/// so the chains share the AES unit's pipeline. The round keys are read
/// from `rk` in a loop bounded by `nr`, not held in registers across it
/// (`cbc_small_group_leaves_no_round_key_on_the_stack` checks that none
/// is spilled).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn cbc_enc(rk: &[[u8; 16]; 15], nr: usize, lanes: &mut [CbcLane<'_>]) {
    let mut s = [_mm_setzero_si128(); CBC_LANES];
    let mut nb = [0usize; CBC_LANES];
    for ((v, n), l) in s.iter_mut().zip(nb.iter_mut()).zip(lanes.iter()) {
        *v = bytemuck::must_cast(l.iv);
        *n = l.data.len() / 16;
    }
    let most = nb.iter().copied().max().unwrap_or(0);
    for b in 0..most {
        let mut x = s;
        for ((v, &n), l) in x.iter_mut().zip(&nb).zip(lanes.iter()) {
            if b < n {
                if let Some(p) = l.data[16 * b..].first_chunk::<16>() {
                    *v = _mm_xor_si128(*v, bytemuck::must_cast(*p));
                }
            }
        }
        let k0: __m128i = bytemuck::must_cast(rk[0]);
        for v in x.iter_mut() {
            *v = _mm_xor_si128(*v, k0);
        }
        for r in rk.iter().take(nr).skip(1) {
            let kr: __m128i = bytemuck::must_cast(*r);
            for v in x.iter_mut() {
                *v = _mm_aesenc_si128(*v, kr);
            }
        }
        let kl: __m128i = bytemuck::must_cast(rk[nr]);
        for (((v, st), &n), l) in x.iter().zip(s.iter_mut()).zip(&nb).zip(lanes.iter_mut()) {
            if b < n {
                let c = _mm_aesenclast_si128(*v, kl);
                *st = c;
                if let Some(out) = l.data[16 * b..].first_chunk_mut::<16>() {
                    *out = bytemuck::must_cast(c);
                }
            }
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

    /// Small CBC groups (1-4 packets of 0-40 blocks, AES-128/192/256 on
    /// random keys) against RustCrypto's `cbc` packet by packet; refusals.
    #[test]
    fn cbc_small_groups_match_rustcrypto() {
        use aes::cipher::{BlockEncryptMut, KeyIvInit};
        let Some(ni) = AesNi::detect() else {
            eprintln!("SKIP aes_ni cbc: this CPU has no AES-NI");
            return;
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for klen in [16usize, 24, 32] {
            for _ in 0..60 {
                let key: Vec<u8> = (0..klen).map(|_| rng.random()).collect();
                // SAFETY: `ni` exists, so the CPU has AES-NI and SSE2.
                let words = unsafe { super::super::key_schedule::expand_words(&key) };
                let words = words.expect("key length");
                let mut enc = [[0u8; 16]; 15];
                for (r, k) in enc.iter_mut().enumerate().take(words.nr + 1) {
                    words.round_key(r, k);
                }
                let n = rng.random_range(1..=CBC_LANES);
                let mut bufs: Vec<Vec<u8>> = (0..n)
                    .map(|_| {
                        let blocks = rng.random_range(0..=40);
                        (0..16 * blocks).map(|_| rng.random()).collect()
                    })
                    .collect();
                let ivs: Vec<[u8; 16]> = (0..n).map(|_| rng.random()).collect();
                let want: Vec<Vec<u8>> = bufs
                    .iter()
                    .zip(&ivs)
                    .map(|(b, iv)| cbc_ref(&key, iv, b))
                    .collect();
                let mut lanes: Vec<CbcLane<'_>> = bufs
                    .iter_mut()
                    .zip(&ivs)
                    .map(|(b, &iv)| CbcLane { data: b, iv })
                    .collect();
                assert!(ni.cbc_encrypt(&enc, klen / 4 + 6, &mut lanes));
                drop(lanes);
                assert_eq!(bufs, want, "key {klen} B, {n} lanes");
            }
        }
        fn cbc_ref(key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
            let mut d = data.to_vec();
            let n = d.len();
            macro_rules! run {
                ($a:ty) => {
                    cbc::Encryptor::<$a>::new_from_slices(key, iv)
                        .unwrap()
                        .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut d, n)
                        .unwrap()
                        .len()
                };
            }
            let _ = match key.len() {
                16 => run!(aes::Aes128),
                24 => run!(aes::Aes192),
                _ => run!(aes::Aes256),
            };
            d
        }
        let rk = [[0u8; 16]; 15];
        let mut d = [0u8; 17];
        let mut odd = [CbcLane {
            data: &mut d,
            iv: [0; 16],
        }];
        assert!(!ni.cbc_encrypt(&rk, 10, &mut odd));
        assert!(!ni.cbc_encrypt(&rk, 11, &mut []));
    }

    /// A small CBC group (AES-256: the most round keys, one and four
    /// lanes) leaves none of its round keys on the stack below the caller.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn cbc_small_group_leaves_no_round_key_on_the_stack() {
        use crate::crypto::mb::wipe::probe::{below_sp, found, DUMP};
        use crate::crypto::mb::wipe::stack;
        let Some(ni) = AesNi::detect() else {
            return;
        };
        let key: [u8; 32] = std::array::from_fn(|i| 0x5c ^ (i as u8).wrapping_mul(29));
        // SAFETY: `ni` exists, so the CPU has AES-NI and SSE2.
        let words = unsafe { super::super::key_schedule::expand_words(&key) }.expect("key");
        let mut enc = [[0u8; 16]; 15];
        for (r, k) in enc.iter_mut().enumerate() {
            words.round_key(r, k);
        }
        let mut dump = Box::new([0u8; DUMP]);
        for n in [1usize, 4] {
            let mut bufs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 96 + 16 * i]).collect();
            let mut lanes: Vec<CbcLane<'_>> = bufs
                .iter_mut()
                .map(|b| CbcLane {
                    data: b,
                    iv: [7; 16],
                })
                .collect();
            stack::<DUMP>();
            assert!(ni.cbc_encrypt(&enc, 14, &mut lanes));
            below_sp(&mut dump);
            // Round key 0 is the key's first half: the needles are 1..=14.
            let hits = found(&dump[..], &enc[1..]);
            assert!(
                hits.is_empty(),
                "{n} lanes: round keys (index, offset) left: {hits:?}"
            );
        }
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
