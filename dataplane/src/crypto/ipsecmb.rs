//! intel-ipsec-mb backend (cargo feature `ipsec-mb`): Intel's multi-buffer
//! crypto library, the engine under DPDK's `crypto_aesni_mb`, called through
//! the safe burst API of `ffi::ipsecmb` without DPDK's cryptodev layer.
//!
//! Suites: AES-CBC-128/256 with HMAC-SHA1-96 / SHA-256-128 / SHA-384-192 /
//! SHA-512-256, NULL with the same HMACs, AES-GCM-128/256, ChaCha20-Poly1305. A whole burst
//! goes to the library in one call per stage, which is what makes it fast:
//! CBC encryption is serial within a packet, so the library interleaves the
//! packets of a burst across SIMD lanes (up to 16 with VAES on AVX-512), and
//! HMAC-SHA hashes 8 or 16 packets per register.
//!
//! The ESP constructions are those of `transform.rs` (same bytes as every
//! other backend, checked by the property tests):
//! - seal (CBC + HMAC): IV = E_k'(seq) (`AesIvGen`), CBC-encrypt the burst,
//!   then HMAC the burst over SPI..ciphertext (with SeqHi appended for ESN:
//!   written temporarily where the ICV goes, RFC 4303 §2.2.1), ICV =
//!   truncated MAC;
//! - open: save the received ICVs, HMAC the burst, compare in constant time,
//!   then CBC-decrypt only the packets whose ICV matched;
//! - AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634): nonce = salt || IV,
//!   IV = seq, AAD = SPI || Seq (or SPI || SeqHi || SeqLo with ESN); open
//!   compares the tag the library computed over the ciphertext in constant
//!   time.
//!
//! No per-packet branch on the algorithm (one type per suite family and ESN
//! mode, chosen in [`build`]); no allocation per burst (the library's
//! per-thread manager is created by `ffi::ipsecmb::warm_thread` or on the
//! first call of a thread); keys wiped on drop (`ffi::ipsecmb` key types).
//! Malformed jobs: a seal job of the wrong length is zeroed, an open job
//! gets `ok = false`; if the library refuses a burst, every seal job of it is
//! zeroed and every open job fails.

use arrayvec::ArrayVec;
use ffi::ipsecmb as imb;

use super::ct;
use super::hmac_burst::{sha_ni, HmacKeyState, Sha1, Sha256, SmallJob, SmallMac};
use super::hmac_wide::{self, Sha1Wide, Sha384Wide, Sha512Wide, WideMac};
use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::transform::AesIvGen;
use super::{
    split_salt, CryptoError, Direction, EncrAlg, EspCipher, IntegAlg, OpenJob, SealJob, Suite,
};

/// SPI + sequence number header length.
const HDR: usize = 8;
/// AES block (CBC IV length and ciphertext alignment).
const BLOCK: usize = 16;
/// Jobs per library call from the ESP transforms (bursts are split).
const CHUNK: usize = 32;
/// Largest ICV (HMAC-SHA-512-256).
const MAX_ICV: usize = 32;

/// Backend name in status output, by the library's code path.
fn name(arch: imb::Arch) -> &'static str {
    match arch {
        imb::Arch::Avx512 => "ipsec-mb-avx512",
        imb::Arch::Avx2 => "ipsec-mb-avx2",
        imb::Arch::Avx => "ipsec-mb-avx",
        imb::Arch::Sse => "ipsec-mb-sse",
        imb::Arch::NoAesni => "ipsec-mb-noaesni",
    }
}

fn lib_err(e: imb::ImbError) -> CryptoError {
    CryptoError::Unsupported {
        backend: "ipsec-mb",
        alg: match e {
            imb::ImbError::NoManager => "any algorithm (no library manager for this thread)",
            imb::ImbError::Invalid { what, .. } => what,
            imb::ImbError::Library { op, .. } => op,
        },
    }
}

fn unsupported(alg: &'static str) -> CryptoError {
    CryptoError::Unsupported {
        backend: "ipsec-mb",
        alg,
    }
}

fn hash_alg(integ: IntegAlg) -> Option<imb::HashAlg> {
    Some(match integ {
        IntegAlg::HmacSha1_96 => imb::HashAlg::Sha1,
        IntegAlg::HmacSha256_128 => imb::HashAlg::Sha256,
        IntegAlg::HmacSha384_192 => imb::HashAlg::Sha384,
        IntegAlg::HmacSha512_256 => imb::HashAlg::Sha512,
        _ => return None,
    })
}

/// True if the library is usable on this thread (a manager can be created).
pub fn available() -> bool {
    imb::warm_thread().is_ok()
}

/// Builds the ESP transform of `suite` on intel-ipsec-mb, or
/// [`CryptoError::Unsupported`] for suites it does not cover (3DES,
/// HMAC-MD5: RustCrypto).
pub fn build(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
) -> Result<Box<dyn EspCipher>, CryptoError> {
    build_for(suite, enc, auth, esn, iv_key, None)
}

/// [`build`] for an SA of one direction (`None`: both): an AES-CBC
/// transform then keeps only the key schedule it uses (outbound: the
/// encryption schedule and the IV key; inbound: the decryption schedule)
/// and refuses the other operation (every job fails: `open` sets no `ok`,
/// `seal` writes no valid packet).
pub fn build_for(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
    dir: Option<Direction>,
) -> Result<Box<dyn EspCipher>, CryptoError> {
    let keep = match dir {
        None => imb::AesKeyUse::Both,
        Some(Direction::Outbound) => imb::AesKeyUse::Encrypt,
        Some(Direction::Inbound) => imb::AesKeyUse::Decrypt,
    };
    let arch = imb::warm_thread().map_err(lib_err)?;
    let backend = name(arch);
    match (suite.encr, hash_alg(suite.integ)) {
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256 | EncrAlg::Null, Some(h)) => {
            // Where the CPU has AVX-512: SHA-1 on the 16-lane path
            // (hmac_wide) up to 951-byte messages, SHA-384/512 on the 8-lane
            // path at every length; else (and SHA-256 always) the
            // interleaved SHA-NI path for short packets (hmac_burst) and the
            // library for the others.
            match h {
                imb::HashAlg::Sha1 => {
                    mac_esp::<Sha1>(suite, enc, auth, esn, iv_key, keep, h, backend)
                }
                imb::HashAlg::Sha256 => {
                    mac_esp::<Sha256>(suite, enc, auth, esn, iv_key, keep, h, backend)
                }
                _ => mac_esp::<NoSmall>(suite, enc, auth, esn, iv_key, keep, h, backend),
            }
        }
        (EncrAlg::ChaCha20Poly1305, _) => {
            let (k, salt) = split_salt(suite.encr, enc)?;
            Ok(aead_esp(
                imb::ChachaKey::new(k).map_err(lib_err)?,
                salt,
                esn,
                backend,
            ))
        }
        (EncrAlg::AesGcm128 | EncrAlg::AesGcm256, _) => {
            let (k, salt) = split_salt(suite.encr, enc)?;
            Ok(aead_esp(
                imb::GcmKey::new(k).map_err(lib_err)?,
                salt,
                esn,
                backend,
            ))
        }
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256 | EncrAlg::Null, None) => {
            Err(unsupported(suite.integ.name()))
        }
        (e, _) => Err(unsupported(e.name())),
    }
}

/// Raw AES-GCM and ChaCha20-Poly1305 (known-answer tests, benchmarks).
pub fn raw_aead(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawAead>, CryptoError> {
    match encr {
        EncrAlg::ChaCha20Poly1305 => Ok(Box::new(RawAeadImb(
            imb::ChachaKey::new(key).map_err(lib_err)?,
        ))),
        EncrAlg::AesGcm128 | EncrAlg::AesGcm256 => Ok(Box::new(RawAeadImb(
            imb::GcmKey::new(key).map_err(lib_err)?,
        ))),
        e => Err(unsupported(e.name())),
    }
}

/// Raw HMAC (known-answer tests, benchmarks).
pub fn raw_mac(integ: IntegAlg, key: &[u8]) -> Result<Box<dyn RawMac>, CryptoError> {
    let h = hash_alg(integ).ok_or(unsupported(integ.name()))?;
    Ok(Box::new(RawHmac(
        imb::HmacKey::new(h, key).map_err(lib_err)?,
    )))
}

/// Raw AES-CBC (known-answer tests, benchmarks).
pub fn raw_cbc(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawCbc>, CryptoError> {
    match encr {
        EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => {
            Ok(Box::new(RawAes(imb::AesKey::new(key).map_err(lib_err)?)))
        }
        e => Err(unsupported(e.name())),
    }
}

// ---------------------------------------------------------------------------
// HMAC of a burst: the library, or the interleaved SHA-NI path for short
// packets
// ---------------------------------------------------------------------------

/// No interleaved path (SHA-384/512): every packet goes to the library.
struct NoSmall;

impl SmallMac for NoSmall {
    const MAX_BLOCKS: usize = 0;
    type State = [u32; 1];
    const DIGEST: usize = 0;
    fn iv() -> [u32; 1] {
        [0]
    }
    fn compress(_: &mut [u32; 1], _: &[u8; 64]) {}
    fn digest(_: &[u32; 1], _: &mut [u8; 32]) {}
}

/// The integrity half of an SA: the library's key and, for SHA-1/SHA-256
/// on a CPU with SHA-NI, the interleaved path's key states; for SHA-1 and
/// SHA-384/512 on a CPU with AVX-512, the 16- / 8-lane path's (chosen at install time: when
/// present it takes every packet of a burst up to its length limit, the
/// SHA-NI path only a remainder of at most `hmac_wide::SMALL_REST`).
struct Mac<H: SmallMac> {
    lib: imb::HmacKey,
    small: Option<HmacKeyState<H>>,
    wide: Option<Box<dyn WideMac>>,
}

impl<H: SmallMac> Mac<H> {
    fn new(h: imb::HashAlg, key: &[u8]) -> Result<Self, CryptoError> {
        let small = if H::MAX_BLOCKS > 0 && sha_ni() {
            HmacKeyState::<H>::new(key)
        } else {
            None
        };
        let wide: Option<Box<dyn WideMac>> = match h {
            imb::HashAlg::Sha1 => Sha1Wide::new(key).map(|w| Box::new(w) as _),
            imb::HashAlg::Sha384 => Sha384Wide::new(key).map(|w| Box::new(w) as _),
            imb::HashAlg::Sha512 => Sha512Wide::new(key).map(|w| Box::new(w) as _),
            _ => None,
        };
        Ok(Mac {
            lib: imb::HmacKey::new(h, key).map_err(lib_err)?,
            small,
            wide,
        })
    }

    /// The 16-lane SHA-1 path: whole groups of sixteen there, a remainder
    /// of at most `SMALL_REST` packets on the SHA-NI path when the SA has
    /// it (sixteen lanes would mostly compute nothing).
    #[inline]
    fn macs_wide(&self, w: &dyn WideMac, msgs: &[&[u8]], tags: &mut [[u8; 32]]) {
        let n = msgs.len().min(tags.len());
        let rest = n % hmac_wide::LANES;
        let (Some(k), true) = (&self.small, rest > 0 && rest <= hmac_wide::SMALL_REST) else {
            w.mac_burst(&msgs[..n], &mut tags[..n]);
            return;
        };
        let whole = n - rest;
        w.mac_burst(&msgs[..whole], &mut tags[..whole]);
        let mut small: ArrayVec<SmallJob<'_>, { hmac_wide::SMALL_REST }> = ArrayVec::new();
        for &m in &msgs[whole..n] {
            small.push(SmallJob {
                msg: m,
                out: [0; 32],
            });
        }
        k.mac_burst(&mut small);
        for (t, j) in tags[whole..n].iter_mut().zip(&small) {
            *t = j.out;
        }
    }

    /// The 16-lane path: packets of at most `w.max_blocks()` compressions
    /// there, longer ones in one library burst (the choice is by packet
    /// length, made per packet). A burst of one kind goes straight through.
    fn macs_16(
        &self,
        w: &dyn WideMac,
        msgs: &[&[u8]],
        tags: &mut [[u8; 32]],
    ) -> Result<(), imb::ImbError> {
        let wide = |m: &&[u8]| w.takes(m.len());
        let n_wide = msgs.iter().filter(|m| wide(m)).count();
        if n_wide == msgs.len() {
            self.macs_wide(w, msgs, tags);
            return Ok(());
        }
        if n_wide == 0 {
            return imb::hmac_trunc(&self.lib, msgs, tags);
        }
        let mut part: [ArrayVec<&[u8], CHUNK>; 2] = [ArrayVec::new(), ArrayVec::new()];
        let mut idx: [ArrayVec<usize, CHUNK>; 2] = [ArrayVec::new(), ArrayVec::new()];
        for (i, m) in msgs.iter().enumerate().take(CHUNK) {
            let k = usize::from(!wide(m));
            part[k].push(m);
            idx[k].push(i);
        }
        let mut out = [[[0u8; 32]; CHUNK]; 2];
        self.macs_wide(w, &part[0], &mut out[0]);
        imb::hmac_trunc(&self.lib, &part[1], &mut out[1])?;
        for k in 0..2 {
            for (&i, t) in idx[k].iter().zip(&out[k]) {
                tags[i] = *t;
            }
        }
        Ok(())
    }

    /// Truncated MACs (the ICVs: `imb::HashAlg::trunc_len` bytes) of
    /// `msgs` into the first bytes of `tags` (same order): packets of at
    /// most `H::MAX_BLOCKS` compressions on the interleaved path, the others
    /// in one library burst. Err if the library refused its part.
    #[inline]
    fn macs(&self, msgs: &[&[u8]], tags: &mut [[u8; 32]]) -> Result<(), imb::ImbError> {
        if let Some(w) = &self.wide {
            return self.macs_16(&**w, msgs, tags);
        }
        let Some(k) = &self.small else {
            // SHA-1, SHA-384/512 or no SHA-NI: the whole burst in one call.
            return imb::hmac_trunc(&self.lib, msgs, tags);
        };
        let mut small: ArrayVec<SmallJob<'_>, CHUNK> = ArrayVec::new();
        let mut small_idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
        let mut big: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
        let mut big_idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
        for (i, &m) in msgs.iter().enumerate().take(CHUNK) {
            if HmacKeyState::<H>::blocks(m.len()) <= H::MAX_BLOCKS {
                small.push(SmallJob {
                    msg: m,
                    out: [0; 32],
                });
                small_idx.push(i);
            } else {
                big.push(m);
                big_idx.push(i);
            }
        }
        if !small.is_empty() {
            k.mac_burst(&mut small);
            for (&i, j) in small_idx.iter().zip(&small) {
                tags[i] = j.out;
            }
        }
        if !big.is_empty() {
            let mut bt = [[0u8; 32]; CHUNK];
            imb::hmac_trunc(&self.lib, &big, &mut bt)?;
            for (&i, t) in big_idx.iter().zip(&bt) {
                tags[i] = *t;
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)] // the key material of one SA, set up once
fn mac_esp<H: SmallMac>(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
    keep: imb::AesKeyUse,
    h: imb::HashAlg,
    backend: &'static str,
) -> Result<Box<dyn EspCipher>, CryptoError> {
    let mac = Mac::<H>::new(h, auth)?;
    let icv_len = suite.integ.icv_len();
    // The library writes the IPsec truncation of the MAC (`Mac::macs`).
    if icv_len != h.trunc_len() {
        return Err(unsupported(suite.integ.name()));
    }
    if suite.encr == EncrAlg::Null {
        let m = NullHmac {
            mac,
            icv_len,
            backend,
        };
        return Ok(if esn {
            Box::new(NullHmacEsp::<true, H>(m))
        } else {
            Box::new(NullHmacEsp::<false, H>(m))
        });
    }
    let c = CbcHmac {
        aes: imb::AesKey::new_for(enc, keep).map_err(lib_err)?,
        mac,
        ivgen: if keep == imb::AesKeyUse::Decrypt {
            AesIvGen::decrypt_only()
        } else {
            AesIvGen::new(iv_key)
        },
        icv_len,
        backend,
    };
    Ok(if esn {
        Box::new(CbcHmacEsp::<true, H>(c))
    } else {
        Box::new(CbcHmacEsp::<false, H>(c))
    })
}

// ---------------------------------------------------------------------------
// ESP: AES-CBC + HMAC
// ---------------------------------------------------------------------------

struct CbcHmac<H: SmallMac> {
    aes: imb::AesKey,
    mac: Mac<H>,
    ivgen: AesIvGen,
    icv_len: usize,
    backend: &'static str,
}

impl<H: SmallMac> CbcHmac<H> {
    /// Ciphertext length of a well-formed packet: at least one block, whole
    /// blocks.
    #[inline(always)]
    fn ct_len(&self, len: usize) -> Option<usize> {
        let ct = len.checked_sub(HDR + BLOCK + self.icv_len)?;
        (ct >= BLOCK && ct % BLOCK == 0).then_some(ct)
    }
}

struct CbcHmacEsp<const ESN: bool, H: SmallMac>(CbcHmac<H>);

/// Writes SeqHi where the ICV goes (the HMAC input is SPI..ciphertext ||
/// SeqHi with ESN, RFC 4303 §2.2.1) and returns the HMAC input length.
#[inline(always)]
fn authed_len<const ESN: bool>(esp: &mut [u8], end: usize, seq: u64) -> usize {
    if ESN {
        esp[end..end + 4].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
        end + 4
    } else {
        end
    }
}

impl<const ESN: bool, H: SmallMac> CbcHmacEsp<ESN, H> {
    fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        let c = &self.0;
        let icv = c.icv_len;
        // Ciphertext length per job, once (0: malformed, zeroed, skipped).
        let mut cts = [0usize; CHUNK];
        // 1. IVs of the burst in one call, CBC encryption of the burst.
        let mut ivs = [[0u8; 16]; CHUNK];
        let mut k = 0;
        for (job, ct) in jobs.iter_mut().zip(cts.iter_mut()) {
            match c.ct_len(job.esp.len()) {
                Some(n) => {
                    *ct = n;
                    ivs[k] = AesIvGen::block_for(job.seq);
                    k += 1;
                }
                None => job.esp.fill(0),
            }
        }
        c.ivgen.ivs_in_place(&mut ivs[..k]);
        let mut ops: ArrayVec<imb::CbcOp<'_>, CHUNK> = ArrayVec::new();
        for (job, &ct) in jobs.iter_mut().zip(&cts) {
            if ct == 0 {
                continue;
            }
            let (head, rest) = job.esp.split_at_mut(HDR + BLOCK);
            let iv: [u8; BLOCK] = ivs[ops.len()];
            head[HDR..].copy_from_slice(&iv);
            ops.push(imb::CbcOp {
                data: &mut rest[..ct],
                iv,
            });
        }
        if imb::aes_cbc_encrypt(&c.aes, &mut ops).is_err() {
            drop(ops);
            jobs.iter_mut().for_each(|j| j.esp.fill(0));
            return;
        }
        drop(ops);
        // 2. Truncated HMAC (the ICVs) of the burst.
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for (job, &ct) in jobs.iter_mut().zip(&cts) {
                if ct == 0 {
                    continue;
                }
                let esp = &mut *job.esp;
                let n = authed_len::<ESN>(esp, HDR + BLOCK + ct, job.seq);
                msgs.push(&esp[..n]);
            }
            if c.mac.macs(&msgs, &mut tags).is_err() {
                drop(msgs);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
        }
        // 3. ICVs.
        let mut k = 0;
        for (job, &ct) in jobs.iter_mut().zip(&cts) {
            if ct == 0 {
                continue;
            }
            let end = HDR + BLOCK + ct;
            job.esp[end..end + icv].copy_from_slice(&tags[k][..icv]);
            k += 1;
        }
    }

    fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let c = &self.0;
        let icv = c.icv_len;
        let mut cts = [0usize; CHUNK];
        // With ESN: the ICV bytes SeqHi overwrites while hashing.
        let mut saved = [[0u8; 4]; CHUNK];
        // 1. HMAC the burst (received ICVs stay in the packets).
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                job.ok = false;
                let esp = &mut *job.esp;
                let Some(ct) = c.ct_len(esp.len()) else {
                    continue;
                };
                cts[i] = ct;
                let end = HDR + BLOCK + ct;
                if ESN {
                    saved[i].copy_from_slice(&esp[end..end + 4]);
                }
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
            }
            if c.mac.macs(&msgs, &mut tags).is_err() {
                drop(msgs);
                if ESN {
                    for (i, job) in jobs.iter_mut().enumerate() {
                        let end = HDR + BLOCK + cts[i];
                        if cts[i] != 0 {
                            job.esp[end..end + 4].copy_from_slice(&saved[i]);
                        }
                    }
                }
                return;
            }
        }
        // 2. Compare in place (putting back the bytes SeqHi overwrote);
        //    decrypt what verified.
        let mut good = [false; CHUNK];
        let mut ops: ArrayVec<imb::CbcOp<'_>, CHUNK> = ArrayVec::new();
        let mut k = 0;
        for (i, job) in jobs.iter_mut().enumerate() {
            let ct = cts[i];
            if ct == 0 {
                continue;
            }
            let esp = &mut *job.esp;
            let end = HDR + BLOCK + ct;
            if ESN {
                esp[end..end + 4].copy_from_slice(&saved[i]);
            }
            let g = ct::eq(&tags[k][..icv], &esp[end..end + icv]);
            k += 1;
            good[i] = g;
            if !g {
                continue;
            }
            let (head, rest) = esp.split_at_mut(HDR + BLOCK);
            let mut iv = [0u8; BLOCK];
            iv.copy_from_slice(&head[HDR..]);
            ops.push(imb::CbcOp {
                data: &mut rest[..ct],
                iv,
            });
        }
        let decrypted = imb::aes_cbc_decrypt(&c.aes, &mut ops).is_ok();
        drop(ops);
        for (job, &g) in jobs.iter_mut().zip(&good) {
            job.ok = g && decrypted;
        }
    }
}

impl<const ESN: bool, H: SmallMac> EspCipher for CbcHmacEsp<ESN, H> {
    fn iv_len(&self) -> usize {
        BLOCK
    }
    fn pad_align(&self) -> usize {
        BLOCK
    }
    fn icv_len(&self) -> usize {
        self.0.icv_len
    }
    fn backend(&self) -> &'static str {
        self.0.backend
    }
    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.seal_chunk(chunk);
        }
    }
    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.open_chunk(chunk);
        }
    }
}

// ---------------------------------------------------------------------------
// ESP: NULL + HMAC
// ---------------------------------------------------------------------------

struct NullHmac<H: SmallMac> {
    mac: Mac<H>,
    icv_len: usize,
    backend: &'static str,
}

struct NullHmacEsp<const ESN: bool, H: SmallMac>(NullHmac<H>);

impl<const ESN: bool, H: SmallMac> NullHmacEsp<ESN, H> {
    /// End of the authenticated part (SPI..payload), if the packet has room
    /// for the header and the ICV.
    #[inline(always)]
    fn end(&self, len: usize) -> Option<usize> {
        len.checked_sub(self.0.icv_len).filter(|&e| e >= HDR)
    }

    fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        let m = &self.0;
        let mut tags = [[0u8; 32]; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            for job in jobs.iter_mut() {
                let esp = &mut *job.esp;
                let Some(end) = self.end(esp.len()) else {
                    esp.fill(0);
                    continue;
                };
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
            }
            if m.mac.macs(&msgs, &mut tags).is_err() {
                drop(msgs);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
        }
        let mut k = 0;
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            let Some(end) = self.end(esp.len()) else {
                continue;
            };
            esp[end..end + m.icv_len].copy_from_slice(&tags[k][..m.icv_len]);
            k += 1;
        }
    }

    fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let m = &self.0;
        let mut rx = [[0u8; MAX_ICV]; CHUNK];
        let mut good = [false; CHUNK];
        {
            let mut msgs: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
            let mut idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                let esp = &mut *job.esp;
                let Some(end) = self.end(esp.len()) else {
                    continue;
                };
                rx[i][..m.icv_len].copy_from_slice(&esp[end..end + m.icv_len]);
                let n = authed_len::<ESN>(esp, end, job.seq);
                msgs.push(&esp[..n]);
                idx.push(i);
            }
            let mut tags = [[0u8; 32]; CHUNK];
            if m.mac.macs(&msgs, &mut tags).is_ok() {
                for (t, &i) in tags.iter().zip(&idx) {
                    good[i] = ct::eq(&t[..m.icv_len], &rx[i][..m.icv_len]);
                }
            }
        }
        for (i, job) in jobs.iter_mut().enumerate() {
            job.ok = good[i];
            if ESN {
                if let Some(end) = self.end(job.esp.len()) {
                    job.esp[end..end + 4].copy_from_slice(&rx[i][..4]);
                }
            }
        }
    }
}

impl<const ESN: bool, H: SmallMac> EspCipher for NullHmacEsp<ESN, H> {
    fn iv_len(&self) -> usize {
        0
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        self.0.icv_len
    }
    fn backend(&self) -> &'static str {
        self.0.backend
    }
    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.seal_chunk(chunk);
        }
    }
    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.open_chunk(chunk);
        }
    }
}

// ---------------------------------------------------------------------------
// ESP: AES-GCM (RFC 4106), ChaCha20-Poly1305 (RFC 7634)
// ---------------------------------------------------------------------------

/// A library AEAD key: one burst call of the library for it.
trait ImbAead: Send + Sync + 'static {
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError>;
}

impl ImbAead for imb::ChachaKey {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::chacha20_poly1305(self, dir, ops)
    }
}

impl ImbAead for imb::GcmKey {
    #[inline(always)]
    fn run(&self, dir: imb::Direction, ops: &mut [imb::AeadOp<'_>]) -> Result<(), imb::ImbError> {
        imb::aes_gcm(self, dir, ops)
    }
}

struct Aead<K> {
    key: K,
    salt: [u8; 4],
    backend: &'static str,
}

struct AeadEsp<K, const ESN: bool>(Aead<K>);

fn aead_esp<K: ImbAead>(
    key: K,
    salt: [u8; 4],
    esn: bool,
    backend: &'static str,
) -> Box<dyn EspCipher> {
    let a = Aead { key, salt, backend };
    if esn {
        Box::new(AeadEsp::<K, true>(a))
    } else {
        Box::new(AeadEsp::<K, false>(a))
    }
}

/// IV length (the 64-bit sequence number).
const AEAD_IV: usize = 8;

impl<K: ImbAead, const ESN: bool> AeadEsp<K, ESN> {
    const MIN: usize = HDR + AEAD_IV + TAG_LEN;

    #[inline(always)]
    fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.0.salt);
        n[4..].copy_from_slice(iv);
        n
    }

    /// AADs for ESN (SPI || SeqHi || SeqLo), computed before the ops borrow
    /// the packets.
    #[inline(always)]
    fn esn_aads(jobs: impl Iterator<Item = (u64, [u8; 8])>) -> [[u8; 12]; CHUNK] {
        let mut aads = [[0u8; 12]; CHUNK];
        if ESN {
            for (a, (seq, hdr)) in aads.iter_mut().zip(jobs) {
                a[..4].copy_from_slice(&hdr[..4]);
                a[4..8].copy_from_slice(&((seq >> 32) as u32).to_be_bytes());
                a[8..].copy_from_slice(&hdr[4..]);
            }
        }
        aads
    }

    fn seal_chunk(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs.iter_mut() {
            if job.esp.len() >= Self::MIN {
                job.esp[HDR..HDR + AEAD_IV].copy_from_slice(&job.seq.to_be_bytes());
            }
        }
        let aads = Self::esn_aads(jobs.iter().map(|j| (j.seq, hdr8(j.esp))));
        let mut tags = [[0u8; TAG_LEN]; CHUNK];
        {
            let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
            for (i, job) in jobs.iter_mut().enumerate() {
                let esp = &mut *job.esp;
                if esp.len() < Self::MIN {
                    esp.fill(0);
                    continue;
                }
                let len = esp.len();
                let (head, rest) = esp.split_at_mut(HDR + AEAD_IV);
                let nonce = self.nonce(&head[HDR..]);
                let aad: &[u8] = if ESN { &aads[i] } else { &head[..HDR] };
                ops.push(imb::AeadOp {
                    nonce,
                    aad,
                    data: &mut rest[..len - HDR - AEAD_IV - TAG_LEN],
                    tag: [0; TAG_LEN],
                });
            }
            if self.0.key.run(imb::Direction::Seal, &mut ops).is_err() {
                drop(ops);
                jobs.iter_mut().for_each(|j| j.esp.fill(0));
                return;
            }
            for (t, o) in tags.iter_mut().zip(&ops) {
                *t = o.tag;
            }
        }
        let mut k = 0;
        for job in jobs.iter_mut() {
            let esp = &mut *job.esp;
            if esp.len() < Self::MIN {
                continue;
            }
            let len = esp.len();
            esp[len - TAG_LEN..].copy_from_slice(&tags[k]);
            k += 1;
        }
    }

    fn open_chunk(&self, jobs: &mut [OpenJob<'_>]) {
        let aads = Self::esn_aads(jobs.iter().map(|j| (j.seq, hdr8(j.esp))));
        let mut good = [false; CHUNK];
        let mut ops: ArrayVec<imb::AeadOp<'_>, CHUNK> = ArrayVec::new();
        let mut rx: ArrayVec<([u8; TAG_LEN], usize), CHUNK> = ArrayVec::new();
        for (i, job) in jobs.iter_mut().enumerate() {
            let esp = &mut *job.esp;
            if esp.len() < Self::MIN {
                continue;
            }
            let len = esp.len();
            let (head, rest) = esp.split_at_mut(HDR + AEAD_IV);
            let nonce = self.nonce(&head[HDR..]);
            let aad: &[u8] = if ESN { &aads[i] } else { &head[..HDR] };
            let (data, tag) = rest.split_at_mut(len - HDR - AEAD_IV - TAG_LEN);
            let mut t = [0u8; TAG_LEN];
            t.copy_from_slice(tag);
            rx.push((t, i));
            ops.push(imb::AeadOp {
                nonce,
                aad,
                data,
                tag: [0; TAG_LEN],
            });
        }
        if self.0.key.run(imb::Direction::Open, &mut ops).is_ok() {
            for (o, (t, i)) in ops.iter().zip(&rx) {
                good[*i] = ct::eq(&o.tag, t);
            }
        }
        drop(ops);
        for (job, g) in jobs.iter_mut().zip(good) {
            job.ok = g;
        }
    }
}

/// The first 8 bytes (SPI, Seq) of a packet, zeros if shorter.
#[inline(always)]
fn hdr8(esp: &[u8]) -> [u8; 8] {
    let mut h = [0u8; 8];
    if let Some(s) = esp.get(..8) {
        h.copy_from_slice(s);
    }
    h
}

impl<K: ImbAead, const ESN: bool> EspCipher for AeadEsp<K, ESN> {
    fn iv_len(&self) -> usize {
        AEAD_IV
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        TAG_LEN
    }
    fn backend(&self) -> &'static str {
        self.0.backend
    }
    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.seal_chunk(chunk);
        }
    }
    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(CHUNK) {
            self.open_chunk(chunk);
        }
    }
}

// ---------------------------------------------------------------------------
// Raw primitives (known-answer tests and benchmarks, one call per message)
// ---------------------------------------------------------------------------

struct RawAeadImb<K>(K);

impl<K: ImbAead> RawAead for RawAeadImb<K> {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut ops = [imb::AeadOp {
            nonce: *nonce,
            aad,
            data,
            tag: [0; TAG_LEN],
        }];
        if self.0.run(imb::Direction::Seal, &mut ops).is_err() {
            ops[0].data.fill(0);
            return [0; TAG_LEN];
        }
        ops[0].tag
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool {
        let Some(n) = ct_tag.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (data, tag) = ct_tag.split_at_mut(n);
        let mut ops = [imb::AeadOp {
            nonce: *nonce,
            aad,
            data,
            tag: [0; TAG_LEN],
        }];
        self.0.run(imb::Direction::Open, &mut ops).is_ok() && ct::eq(&ops[0].tag, tag)
    }
}

struct RawHmac(imb::HmacKey);

impl RawMac for RawHmac {
    fn full_len(&self) -> usize {
        self.0.alg().digest_len()
    }

    /// The library hashes one contiguous message: `b` (non-empty only for
    /// callers outside this backend's ESP path) is appended in a copy.
    fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
        let joined;
        let msg = if b.is_empty() {
            a
        } else {
            joined = [a, b].concat();
            &joined[..]
        };
        let mut ops = [imb::HmacOp { msg, tag: [0; 64] }];
        let n = out.len().min(self.full_len());
        if imb::hmac(&self.0, &mut ops).is_err() {
            out.fill(0);
            return;
        }
        out[..n].copy_from_slice(&ops[0].tag[..n]);
    }
}

struct RawAes(imb::AesKey);

impl RawCbc for RawAes {
    fn block_len(&self) -> usize {
        BLOCK
    }

    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; BLOCK]>::try_from(iv) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        imb::aes_cbc_encrypt(&self.0, &mut [imb::CbcOp { data, iv }]).is_ok()
    }

    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; BLOCK]>::try_from(iv) else {
            return false;
        };
        if data.is_empty() {
            return true;
        }
        imb::aes_cbc_decrypt(&self.0, &mut [imb::CbcOp { data, iv }]).is_ok()
    }
}
