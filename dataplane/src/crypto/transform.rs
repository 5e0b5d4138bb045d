//! The ESP constructions, generic over the primitives of [`super::raw`] and
//! monomorphised per backend and per ESN setting: the trait object built once
//! per SA holds one concrete type, so the per-packet code neither branches on
//! the algorithm nor on ESN (a const generic), and never allocates.
//!
//! Layout handled here (RFC 4303 §2): `SPI(4) | Seq(4) | IV | ciphertext | ICV`.
//!
//! - Combined mode (RFC 4106 AES-GCM, RFC 7634 ChaCha20-Poly1305): nonce =
//!   salt(4) || IV(8), IV = the 64-bit sequence number big-endian (unique per
//!   key since a sequence number is never reused under one SA); AAD = SPI ||
//!   Seq (8 bytes), or SPI || SeqHi || SeqLo (12 bytes) with ESN (RFC 4106 §5,
//!   RFC 7634 §2.1). ICV 16 bytes.
//! - CBC + HMAC (RFC 3602, RFC 2451 with RFC 2404/4868/2403): IV = E_k'(seq)
//!   (see [`AesIvGen`]); ICV = truncated HMAC over SPI through the end of the
//!   ciphertext, with SeqHi appended for the computation only when ESN
//!   (RFC 4303 §2.2.1); verified in constant time before decryption.
//! - NULL encryption (RFC 2410): no IV, HMAC as above over SPI..payload.

#![forbid(unsafe_code)]

use aes::cipher::{BlockEncrypt, KeyInit};

use super::mb::aes_ni::Aes128Ni;
use super::mb::wipe;
use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::{EspCipher, OpenJob, SealJob};

/// SPI + sequence number header length.
const HDR: usize = 8;
/// Largest ICV of an HMAC suite (HMAC-SHA-512-256) and largest HMAC output.
const MAX_MAC: usize = 64;

/// Writes the 12-byte ESN AAD: SPI || SeqHi || SeqLo (SeqLo as on the wire).
#[inline(always)]
fn esn_aad(hdr: &[u8], seq: u64) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&hdr[..4]);
    aad[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
    aad[8..12].copy_from_slice(&hdr[4..8]);
    aad
}

/// Combined-mode ESP (AES-GCM, ChaCha20-Poly1305) over any [`RawAead`].
pub(crate) struct AeadEsp<A, const ESN: bool> {
    aead: A,
    salt: [u8; 4],
    backend: &'static str,
}

/// Boxes a combined-mode transform, choosing the ESN variant once.
pub(crate) fn aead_esp<A: RawAead + 'static>(
    aead: A,
    salt: [u8; 4],
    esn: bool,
    backend: &'static str,
) -> Box<dyn EspCipher> {
    if esn {
        Box::new(AeadEsp::<A, true> {
            aead,
            salt,
            backend,
        })
    } else {
        Box::new(AeadEsp::<A, false> {
            aead,
            salt,
            backend,
        })
    }
}

impl<A: RawAead, const ESN: bool> AeadEsp<A, ESN> {
    const IV: usize = 8;
    const MIN: usize = HDR + Self::IV + TAG_LEN;

    #[inline(always)]
    fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(iv);
        n
    }
}

impl<A: RawAead, const ESN: bool> EspCipher for AeadEsp<A, ESN> {
    fn iv_len(&self) -> usize {
        Self::IV
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        TAG_LEN
    }
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        wipe::burst::<{ wipe::GCM_WIPE }, _>(|| {
            for job in jobs.iter_mut() {
                let esp = &mut *job.esp;
                if esp.len() < Self::MIN {
                    // Malformed job: never let plaintext leave in clear.
                    esp.fill(0);
                    continue;
                }
                let (head, rest) = esp.split_at_mut(HDR + Self::IV);
                let (hdr, iv) = head.split_at_mut(HDR);
                iv.copy_from_slice(&job.seq.to_be_bytes());
                let nonce = self.nonce(iv);
                let ct_len = rest.len() - TAG_LEN;
                let (data, icv) = rest.split_at_mut(ct_len);
                let tag = if ESN {
                    self.aead.seal(&nonce, &esn_aad(hdr, job.seq), data)
                } else {
                    self.aead.seal(&nonce, hdr, data)
                };
                icv.copy_from_slice(&tag);
            }
        })
    }

    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        wipe::burst::<{ wipe::GCM_WIPE }, _>(|| {
            for job in jobs.iter_mut() {
                let esp = &mut *job.esp;
                if esp.len() < Self::MIN {
                    job.ok = false;
                    continue;
                }
                let (head, ct_tag) = esp.split_at_mut(HDR + Self::IV);
                let (hdr, iv) = head.split_at(HDR);
                let nonce = self.nonce(iv);
                job.ok = if ESN {
                    self.aead.open(&nonce, &esn_aad(hdr, job.seq), ct_tag)
                } else {
                    self.aead.open(&nonce, hdr, ct_tag)
                };
            }
        })
    }
}

/// Derives unpredictable CBC IVs from the sequence number (RFC 3602 §3 asks
/// for an IV the attacker cannot predict): IV = E_k'(seq), with k' a random
/// per-SA IV key drawn once from the OS RNG when the SA is built (never an RNG
/// call per packet). Sequence numbers never repeat under one SA, so the IVs
/// are outputs of a keyed permutation on distinct inputs: without k' they are
/// indistinguishable from random. The receiver needs no k' (the IV travels).
pub(crate) trait IvGen: Send + Sync {
    /// Writes the IV for `seq` into `out` (one cipher block).
    fn iv(&self, seq: u64, out: &mut [u8]);
}

/// AES-CBC IVs: AES-128_k'(0^64 || seq), k' = the first 16 IV-key bytes.
/// The key schedule is on the heap and absent for a transform that only
/// decrypts (an inbound SA makes no IVs): 176 bytes of AES-NI round keys
/// (`mb::aes_ni`), or RustCrypto's `Aes128Enc` (about 700 bytes with its
/// portable fallback) on a CPU without AES-NI.
pub(crate) struct AesIvGen(IvKey);

enum IvKey {
    Ni(Box<Aes128Ni>),
    Soft(Box<aes::Aes128Enc>),
}

impl AesIvGen {
    pub(crate) fn new(iv_key: &[u8; 32]) -> Self {
        let k: &[u8; 16] = iv_key[..16].try_into().expect("16 of 32 bytes");
        AesIvGen(match Aes128Ni::new(k) {
            Some(ni) => IvKey::Ni(Box::new(ni)),
            None => IvKey::Soft(Box::new(aes::Aes128Enc::new(
                aes::cipher::generic_array::GenericArray::from_slice(k),
            ))),
        })
    }
}

impl AesIvGen {
    /// The IVs of a burst in one call (the AES rounds of the blocks are
    /// interleaved): `blocks[i]` holds `seq_i` as [`IvGen::iv`] lays it out
    /// (0^64 || seq, big-endian) on entry and the IV on return.
    #[inline]
    pub(crate) fn ivs_in_place(&self, blocks: &mut [[u8; 16]]) {
        match &self.0 {
            IvKey::Ni(k) => k.encrypt_blocks(blocks),
            IvKey::Soft(k) => {
                for b in blocks.iter_mut() {
                    k.encrypt_block(aes::Block::from_mut_slice(b));
                }
            }
        }
    }

    /// The input block for `seq` (see [`AesIvGen::ivs_in_place`]).
    #[inline(always)]
    pub(crate) fn block_for(seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[8..].copy_from_slice(&seq.to_be_bytes());
        block
    }
}

impl IvGen for AesIvGen {
    #[inline(always)]
    fn iv(&self, seq: u64, out: &mut [u8]) {
        let mut block = [Self::block_for(seq)];
        self.ivs_in_place(&mut block);
        let n = out.len().min(16);
        out[..n].copy_from_slice(&block[0][..n]);
    }
}

/// 3DES-CBC IVs: 3DES-EDE_k'(seq), k' = the first 24 IV-key bytes.
pub(crate) struct TdesIvGen(des::TdesEde3);

impl TdesIvGen {
    pub(crate) fn new(iv_key: &[u8; 32]) -> Self {
        TdesIvGen(des::TdesEde3::new(
            des::cipher::generic_array::GenericArray::from_slice(&iv_key[..24]),
        ))
    }
}

impl IvGen for TdesIvGen {
    #[inline(always)]
    fn iv(&self, seq: u64, out: &mut [u8]) {
        let mut block = des::cipher::Block::<des::TdesEde3>::default();
        block.copy_from_slice(&seq.to_be_bytes());
        self.0.encrypt_block(&mut block);
        let n = out.len().min(8);
        out[..n].copy_from_slice(&block[..n]);
    }
}

/// Computes the HMAC ICV of `authed` (SPI..end of ciphertext) with SeqHi
/// appended when ESN, into `out`.
#[inline(always)]
fn icv<M: RawMac, const ESN: bool>(mac: &M, authed: &[u8], seq: u64, out: &mut [u8]) {
    if ESN {
        mac.mac2(authed, &((seq >> 32) as u32).to_be_bytes(), out);
    } else {
        mac.mac2(authed, &[], out);
    }
}

/// Constant-time check of the ICV at the end of `esp`.
#[inline(always)]
fn icv_ok<M: RawMac, const ESN: bool>(mac: &M, esp: &[u8], icv_len: usize, seq: u64) -> bool {
    let (authed, got) = esp.split_at(esp.len() - icv_len);
    let mut want = [0u8; MAX_MAC];
    icv::<M, ESN>(mac, authed, seq, &mut want[..icv_len]);
    super::ct::eq(&want[..icv_len], got)
}

/// CBC encryption + HMAC integrity (AES-CBC, 3DES-CBC).
pub(crate) struct CbcHmacEsp<C, G, M, const ESN: bool> {
    cbc: C,
    ivgen: G,
    mac: M,
    block: usize,
    icv_len: usize,
    backend: &'static str,
}

/// Boxes a CBC + HMAC transform, choosing the ESN variant once.
pub(crate) fn cbc_hmac_esp<C, G, M>(
    cbc: C,
    ivgen: G,
    mac: M,
    icv_len: usize,
    esn: bool,
    backend: &'static str,
) -> Box<dyn EspCipher>
where
    C: RawCbc + 'static,
    G: IvGen + 'static,
    M: RawMac + 'static,
{
    let block = cbc.block_len();
    let icv_len = icv_len.min(mac.full_len()).min(MAX_MAC);
    if esn {
        Box::new(CbcHmacEsp::<C, G, M, true> {
            cbc,
            ivgen,
            mac,
            block,
            icv_len,
            backend,
        })
    } else {
        Box::new(CbcHmacEsp::<C, G, M, false> {
            cbc,
            ivgen,
            mac,
            block,
            icv_len,
            backend,
        })
    }
}

impl<C: RawCbc, G: IvGen, M: RawMac, const ESN: bool> CbcHmacEsp<C, G, M, ESN> {
    /// Ciphertext length if `len` is a well-formed packet length: at least one
    /// block of ciphertext, a whole number of blocks.
    #[inline(always)]
    fn ct_len(&self, len: usize) -> Option<usize> {
        let ct = len.checked_sub(HDR + self.block + self.icv_len)?;
        (ct >= self.block && ct % self.block == 0).then_some(ct)
    }
}

impl<C: RawCbc, G: IvGen, M: RawMac, const ESN: bool> EspCipher for CbcHmacEsp<C, G, M, ESN> {
    fn iv_len(&self) -> usize {
        self.block
    }
    fn pad_align(&self) -> usize {
        self.block.max(4)
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            let Some(ct_len) = self.ct_len(esp.len()) else {
                esp.fill(0);
                continue;
            };
            let ct_start = HDR + self.block;
            let (head, rest) = esp.split_at_mut(ct_start);
            let iv = &mut head[HDR..];
            self.ivgen.iv(job.seq, iv);
            if !self.cbc.encrypt(iv, &mut rest[..ct_len]) {
                esp.fill(0);
                continue;
            }
            let (authed, out) = esp.split_at_mut(ct_start + ct_len);
            icv::<M, ESN>(&self.mac, authed, job.seq, out);
        }
    }

    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            let Some(ct_len) = self.ct_len(esp.len()) else {
                job.ok = false;
                continue;
            };
            if !icv_ok::<M, ESN>(&self.mac, esp, self.icv_len, job.seq) {
                job.ok = false;
                continue;
            }
            let (head, rest) = esp.split_at_mut(HDR + self.block);
            job.ok = self.cbc.decrypt(&head[HDR..], &mut rest[..ct_len]);
        }
    }
}

/// NULL encryption (RFC 2410) + HMAC: integrity only, no IV.
pub(crate) struct NullHmacEsp<M, const ESN: bool> {
    mac: M,
    icv_len: usize,
    backend: &'static str,
}

/// Boxes a NULL + HMAC transform, choosing the ESN variant once.
pub(crate) fn null_hmac_esp<M: RawMac + 'static>(
    mac: M,
    icv_len: usize,
    esn: bool,
    backend: &'static str,
) -> Box<dyn EspCipher> {
    let icv_len = icv_len.min(mac.full_len()).min(MAX_MAC);
    if esn {
        Box::new(NullHmacEsp::<M, true> {
            mac,
            icv_len,
            backend,
        })
    } else {
        Box::new(NullHmacEsp::<M, false> {
            mac,
            icv_len,
            backend,
        })
    }
}

impl<M: RawMac, const ESN: bool> EspCipher for NullHmacEsp<M, ESN> {
    fn iv_len(&self) -> usize {
        0
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        self.icv_len
    }
    fn backend(&self) -> &'static str {
        self.backend
    }

    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            if esp.len() < HDR + self.icv_len {
                esp.fill(0);
                continue;
            }
            let (authed, out) = esp.split_at_mut(esp.len() - self.icv_len);
            icv::<M, ESN>(&self.mac, authed, job.seq, out);
        }
    }

    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for job in jobs.iter_mut() {
            let esp = &*job.esp;
            job.ok = esp.len() >= HDR + self.icv_len
                && icv_ok::<M, ESN>(&self.mac, esp, self.icv_len, job.seq);
        }
    }
}
