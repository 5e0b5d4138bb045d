//! AES-CBC decryption (128/192/256-bit keys) with VAES on 512-bit
//! registers, in small steps that a hash kernel can interleave with its
//! rounds.
//!
//! CBC decryption is parallel within a packet (`P_i = D(C_i) ^ C_(i-1)`),
//! four blocks per register. A [`CbcQueue`] holds the ciphertexts of
//! packets whose ICV already verified and decrypts them in place a few
//! registers at a time ([`CbcQueue::work`]); the SHA-NI HMAC kernel
//! (`sha_ni`, `hmac_burst`) calls that between its round groups, so the AES
//! units work while `sha256rnds2` runs (on Zen 4 the two overlap: a loop
//! of both costs what the longer one costs alone). What is left when the
//! hashing ends is finished by [`CbcQueue::finish`].
//!
//! In place: every step loads its ciphertext registers before it stores;
//! the block before a step's first one (the IV, or the previous step's last
//! ciphertext block, kept in the queue before it is overwritten) enters
//! through a lane shift (`valignq`), so no block is read after it was
//! decrypted.
//!
//! `unsafe` here: the calls into the `#[target_feature]` functions, made
//! only through a [`CbcDecKeys`] (which exists once `new` found the CPU
//! features), and the masked loads/stores of a step, whose masks select
//! only bytes inside the ciphertext slice. Checked against RustCrypto's
//! `cbc` on random keys, IVs and every length up to 40 blocks, and against
//! RFC 3602 (tests below; the ESP path in `tests/crypto_ipsecmb.rs`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use arrayvec::ArrayVec;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// AES block length.
const BLOCK: usize = 16;
/// Packets a queue holds (one ESP chunk).
pub(crate) const QUEUE_LEN: usize = 32;

/// AES decryption round keys for `aesdec` (FIPS-197 §5.3.5, the
/// equivalent inverse cipher: the encryption schedule reversed, InvMixColumns
/// applied to the middle keys), each broadcast to four lanes; wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct CbcDecKeys {
    pub(super) rk: [[u8; 64]; 15],
    pub(super) nr: usize,
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
            Some(unsafe { expand_dec(key) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = key;
            None
        }
    }

    /// Decrypts `data` (whole blocks) in place under `iv`, at once (the
    /// tests' one-packet entry). False, and `data` untouched, if its length
    /// is not a multiple of 16.
    #[cfg(test)]
    pub(crate) fn decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> bool {
        let mut q = CbcQueue::new(self);
        if !q.push(data, *iv) {
            return false;
        }
        q.finish();
        true
    }
}

/// The packets still to decrypt, in order, and how far the first one got.
/// (Fields visible in `mb` for [`cbc_step!`].)
pub(crate) struct CbcQueue<'k, 'd> {
    pub(super) keys: &'k CbcDecKeys,
    pub(super) items: ArrayVec<(&'d mut [u8], [u8; 16]), QUEUE_LEN>,
    /// Index of the packet in progress.
    pub(super) cur: usize,
    /// Bytes of it done.
    pub(super) pos: usize,
    /// Its ciphertext block before `pos` (unused at `pos` 0: the IV).
    pub(super) prev: [u8; 16],
}

impl<'k, 'd> CbcQueue<'k, 'd> {
    pub(crate) fn new(keys: &'k CbcDecKeys) -> Self {
        CbcQueue {
            keys,
            items: ArrayVec::new(),
            cur: 0,
            pos: 0,
            prev: [0; 16],
        }
    }

    /// Queues `ct` (decrypted in place under `iv`). False (nothing queued)
    /// if the queue is full or `ct` is not whole blocks; an empty `ct` is
    /// accepted and has nothing to do.
    pub(crate) fn push(&mut self, ct: &'d mut [u8], iv: [u8; 16]) -> bool {
        if ct.len() % BLOCK != 0 || self.items.is_full() {
            return false;
        }
        if ct.is_empty() {
            return true;
        }
        self.items.push((ct, iv));
        true
    }

    /// True while a queued packet is not fully decrypted.
    #[inline(always)]
    pub(crate) fn pending(&self) -> bool {
        self.cur < self.items.len()
    }

    /// One step: up to 8 blocks of the packet in progress (two registers,
    /// the amount a hash kernel interleaves between its round groups).
    #[inline(always)]
    pub(crate) fn work(&mut self) {
        if self.pending() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `CbcDecKeys` exists only after `new` found every
            // feature `step` is compiled for.
            unsafe {
                step::<2>(self)
            }
        }
    }

    /// Decrypts everything still queued (16 blocks per step).
    pub(crate) fn finish(&mut self) {
        while self.pending() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `work`.
            unsafe {
                step::<4>(self)
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn expand_dec(key: &[u8]) -> CbcDecKeys {
    // FIPS-197 §5.2 KeyExpansion on 4-byte words; SubWord by AESENCLAST on
    // a state whose four columns are the word (ShiftRows is then a no-op).
    let sub_word = |w: [u8; 4]| -> [u8; 4] {
        let s = _mm_set1_epi32(i32::from_le_bytes(w));
        let r = _mm_aesenclast_si128(s, _mm_setzero_si128());
        _mm_cvtsi128_si32(r).to_le_bytes()
    };
    let nk = key.len() / 4;
    let nr = nk + 6;
    let mut w = [[0u8; 4]; 60];
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
    let mut keys = CbcDecKeys {
        rk: [[0; 64]; 15],
        nr,
    };
    for r in 0..=nr {
        let mut ek = [0u8; 16];
        for c in 0..4 {
            ek[c * 4..c * 4 + 4].copy_from_slice(&w[4 * (nr - r) + c]);
        }
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
    w.zeroize();
    keys
}

/// One step of a queue `$q` (`&mut CbcQueue`): up to four times `$z` blocks of the
/// packet in progress, decrypted in place; moves on to the next packet when
/// this one is done. A macro so that the stitched hash kernel gets the step
/// pasted between its round groups (a call would be a point the compiler
/// moves the independent hash code around, and every live hash register
/// would be spilled across it). Expanded only in functions compiled with
/// AVX-512F/VL, VAES and AES-NI and reached through a `CbcDecKeys`.
macro_rules! cbc_step {
    ($q:expr, $z:expr) => {{
        let q: &mut $crate::crypto::mb::cbc_dec::CbcQueue<'_, '_> = $q;
        let keys = q.keys;
        if let Some((data, iv)) = q.items.get_mut(q.cur) {
            let len = data.len();
            let start = q.pos;
            let n = (len - start).min($z * 64);
            let prev = if start == 0 { *iv } else { q.prev };
            // The last ciphertext block of this step, before it is
            // overwritten.
            let mut last = [0u8; 16];
            last.copy_from_slice(&data[start + n - 16..start + n]);
            let base = data[start..].as_mut_ptr();
            let mut c = [_mm512_setzero_si512(); $z];
            let mut m = [0u8; $z];
            for i in 0..$z {
                // Blocks of register i: 0..=4 (two 64-bit mask bits each).
                let nb = (n / 16).saturating_sub(4 * i).min(4);
                m[i] = ((1u16 << (2 * nb)) - 1) as u8;
                // SAFETY: the mask selects the 8-byte words of blocks
                // start/16 + 4i .. + nb, all inside `data` (n bytes from
                // `start` remain); masked-off words are neither read nor
                // faulted on (the address is formed with wrapping arithmetic
                // and may point past the slice only when the mask is 0). No
                // alignment requirement; the CPU features are those of the
                // function this is expanded in.
                c[i] = unsafe {
                    _mm512_maskz_loadu_epi64(
                        m[i],
                        base.wrapping_add(64 * i).cast::<i64>().cast_const(),
                    )
                };
            }
            let pv: __m128i = bytemuck::must_cast(prev);
            let mut p = [_mm512_setzero_si512(); $z];
            p[0] = _mm512_alignr_epi64::<6>(c[0], _mm512_broadcast_i32x4(pv));
            for i in 1..$z {
                p[i] = _mm512_alignr_epi64::<6>(c[i], c[i - 1]);
            }
            let rk = |r: usize| -> __m512i { bytemuck::must_cast(keys.rk[r]) };
            let mut x = [_mm512_setzero_si512(); $z];
            let k0 = rk(0);
            for i in 0..$z {
                x[i] = _mm512_xor_si512(c[i], k0);
            }
            for r in 1..keys.nr {
                let k = rk(r);
                for xi in x.iter_mut() {
                    *xi = _mm512_aesdec_epi128(*xi, k);
                }
            }
            let kl = rk(keys.nr);
            for i in 0..$z {
                let v = _mm512_xor_si512(_mm512_aesdeclast_epi128(x[i], kl), p[i]);
                // SAFETY: the same words as the load above (inside `data`,
                // which the queue holds exclusively); masked-off words are
                // not written.
                unsafe {
                    _mm512_mask_storeu_epi64(base.wrapping_add(64 * i).cast::<i64>(), m[i], v)
                };
            }
            if start + n == len {
                q.cur += 1;
                q.pos = 0;
            } else {
                q.pos = start + n;
                q.prev = last;
            }
        }
    }};
}
pub(crate) use cbc_step;

/// [`cbc_step!`] as a function (the queue's own steps: `work` from a
/// kernel without the features, `finish`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx512f,avx512vl,vaes,aes,sse2")]
fn step<const Z: usize>(q: &mut CbcQueue<'_, '_>) {
    cbc_step!(q, Z);
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
            16 => run(cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv).unwrap(), &mut buf),
            24 => run(cbc::Decryptor::<aes::Aes192>::new_from_slices(key, iv).unwrap(), &mut buf),
            _ => run(cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv).unwrap(), &mut buf),
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

    /// A queue of packets of mixed lengths, stepped the way the hash kernel
    /// does (`work`, pushes in between), then finished: every packet as
    /// RustCrypto decrypts it; bytes around the ciphertexts untouched.
    #[test]
    fn queue_of_mixed_packets_matches_rustcrypto() {
        if skip() {
            return;
        }
        let mut rng = rand::rng();
        for round in 0..200 {
            let mut key = vec![0u8; if round % 2 == 0 { 16 } else { 32 }];
            rng.fill_bytes(&mut key);
            let k = CbcDecKeys::new(&key).unwrap();
            let n = rng.random_range(1..=QUEUE_LEN);
            // Each packet: 8 guard bytes, IV, ciphertext, 8 guard bytes.
            let mut pkts: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let mut p = vec![0u8; 8 + 16 + 16 * rng.random_range(0..100) + 8];
                    rng.fill_bytes(&mut p);
                    p
                })
                .collect();
            let want: Vec<Vec<u8>> = pkts
                .iter()
                .map(|p| {
                    let iv: [u8; 16] = p[8..24].try_into().unwrap();
                    let mut w = p.clone();
                    let end = p.len() - 8;
                    w[24..end].copy_from_slice(&reference(&key, &iv, &p[24..end]));
                    w
                })
                .collect();
            let mut q = CbcQueue::new(&k);
            for p in pkts.iter_mut() {
                let end = p.len() - 8;
                let iv: [u8; 16] = p[8..24].try_into().unwrap();
                assert!(q.push(&mut p[24..end], iv));
                for _ in 0..rng.random_range(0..4) {
                    q.work();
                }
            }
            q.finish();
            assert!(!q.pending());
            drop(q);
            assert_eq!(pkts, want, "round {round}");
        }
    }

    #[test]
    fn refuses_partial_blocks_and_a_full_queue() {
        if skip() {
            return;
        }
        let k = CbcDecKeys::new(&[7; 16]).unwrap();
        let mut odd = [1u8; 17];
        assert!(!k.decrypt(&[0; 16], &mut odd));
        assert_eq!(odd, [1u8; 17]);
        let mut bufs = vec![[0u8; 16]; QUEUE_LEN + 1];
        let mut q = CbcQueue::new(&k);
        let mut it = bufs.iter_mut();
        for b in it.by_ref().take(QUEUE_LEN) {
            assert!(q.push(b, [0; 16]));
        }
        assert!(!q.push(it.next().unwrap(), [0; 16]));
        assert!(CbcDecKeys::new(&[0; 20]).is_none());
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
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
            let k = CbcDecKeys::new(&unhex(key)).unwrap();
            let iv: [u8; 16] = unhex(iv).try_into().unwrap();
            let mut data = unhex(ct);
            assert!(k.decrypt(&iv, &mut data));
            assert_eq!(data, unhex(pt), "key {key}");
        }
    }
}
