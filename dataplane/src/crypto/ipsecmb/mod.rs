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
//! Small groups (a burst spread over many SAs gives each SA 1-4 packets):
//! a CBC seal of at most `mb::aes_ni::CBC_LANES` packets is encrypted with
//! AES-NI (chains interleaved) instead of the library, whose multi-buffer
//! lanes encrypt a lone packet on all sixteen; a lone SHA-384/512 message
//! is hashed with RustCrypto's one-message compression (`hmac_wide`), and
//! a group of 1-4 SHA-1 packets goes to the SHA-NI path alone (choices by
//! group size; bench/results/sad.md, small14).
//!
//! No per-packet branch on the algorithm (one type per suite family and ESN
//! mode, chosen in [`build`]); no allocation per burst (the library's
//! per-thread manager is created by `ffi::ipsecmb::warm_thread` or on the
//! first call of a thread); keys wiped on drop (`ffi::ipsecmb` key types).
//! The AES-CBC + HMAC and NULL + HMAC transforms keep only their raw keys
//! and an id (`key_slot::SaKeys`: inline, one array sized by the hash
//! family, so a transform is one allocation of 86-130 bytes); their
//! expanded keys (AES schedules, HMAC
//! states, IV key schedule) are in the worker's key cache
//! (`key_slot::CbcKeys`, `crypto::key_cache`), looked up once per chunk of
//! a burst, expanded in place on a miss (`ffi::ipsecmb::aes_expand_into`,
//! `hmac_pads_into`), and read there by every kernel (the library, the
//! one-pass VAES CBC + SHA-NI open, `hmac_wide`, `hmac_burst`).
//! Malformed jobs: a seal job of the wrong length is zeroed, an open job
//! gets `ok = false`; if the library refuses a burst, every seal job of it is
//! zeroed and every open job fails.

use arrayvec::ArrayVec;
use ffi::ipsecmb as imb;

use super::ct;
use super::hmac_burst::{sha_ni, Sha1, Sha256, ShaNiHmac, SmallJob, SmallMac};
use super::hmac_wide::{self, Sha1Wide, Sha384Wide, Sha512Wide, WideMac};
use super::mb::aes_ni::AesNi;
use super::mb::cbc_dec::CbcDec;
use super::mb::chacha_poly::{ChachaOp, ChachaPolyX16};
use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::transform::AesIvGen;
use super::{
    split_salt, CryptoError, Direction, EncrAlg, EspCipher, IntegAlg, OpenJob, SealJob, Suite,
};

mod aead;
mod cbc_hmac;
mod cbc_onepass;
mod key_slot;
mod mac;
mod null_hmac;
mod raw;

#[cfg(test)]
mod cache_tests;

use aead::*;
use cbc_hmac::*;
use cbc_onepass::*;
pub use key_slot::cbc_cache_stats;
use key_slot::*;
pub(crate) use key_slot::{poll_cbc_cache, warm_cbc_cache};
use mac::*;
use null_hmac::*;
use raw::*;

/// SPI + sequence number header length.
const HDR: usize = 8;
/// AES block (CBC IV length and ciphertext alignment).
const BLOCK: usize = 16;
/// Jobs per library call from the ESP transforms (bursts are split).
const CHUNK: usize = 32;
/// `impl EspCipher` for an ESP transform of this backend that works on
/// chunks of at most [`CHUNK`] packets (its inherent `seal_chunk` /
/// `open_chunk`): the wire constants as given (`icv_len` and `backend` read
/// through the binding `|c|`), `seal` / `open` split the burst into chunks.
///
/// A macro, not a blanket impl over a trait: the impl stays in the
/// transform's own file and module, so the release build's machine code,
/// and where it lies in the binary, are those of the hand-written impls it
/// replaced (`esp_mops`: `.text`, `.rodata` and `.data` byte-identical). A
/// blanket impl in this module (branch tidy11) moved every seal/open
/// function elsewhere in the binary and, with `CbcHmacOnePass` on it too,
/// kept `CbcHmacEsp::seal_chunk` out of line; what that costs is below what
/// a same-run A/B resolves (bench/results/esp_vs_dpdk.md, tidy12).
macro_rules! esp_cipher_in_chunks {
    (
        impl[$($gen:tt)*] $ty:ty,
        iv_len: $iv:expr,
        pad_align: $align:expr,
        icv_len: |$c1:ident| $icv:expr,
        backend: |$c2:ident| $backend:expr $(,)?
    ) => {
        impl<$($gen)*> EspCipher for $ty {
            fn iv_len(&self) -> usize {
                $iv
            }
            fn pad_align(&self) -> usize {
                $align
            }
            fn icv_len(&self) -> usize {
                let $c1 = self;
                $icv
            }
            fn backend(&self) -> &'static str {
                let $c2 = self;
                $backend
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
    };
}
pub(super) use esp_cipher_in_chunks;

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
    build_id(suite, enc, auth, esn, iv_key, dir).map(|(c, _)| c)
}

/// [`build_for`] and the transform's key-cache id (0: a transform without
/// a cache entry, AES-GCM and ChaCha20-Poly1305 on the library).
fn build_id(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
    dir: Option<Direction>,
) -> Result<(Box<dyn EspCipher>, u64), CryptoError> {
    let keep = match dir {
        None => imb::AesKeyUse::Both,
        Some(Direction::Outbound) => imb::AesKeyUse::Encrypt,
        Some(Direction::Inbound) => imb::AesKeyUse::Decrypt,
    };
    let arch = imb::warm_thread().map_err(lib_err)?;
    match (suite.encr, hash_alg(suite.integ)) {
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256 | EncrAlg::Null, Some(h)) => {
            // Where the CPU has AVX-512: SHA-1 on the 16-lane path
            // (hmac_wide) and SHA-384/512 on the 8-lane path, at every
            // length; else (and SHA-256 always) the
            // interleaved SHA-NI path for short packets (hmac_burst) and the
            // library for the others.
            match h {
                imb::HashAlg::Sha1 => mac_esp::<Sha1>(suite, enc, auth, esn, iv_key, keep, h, arch),
                imb::HashAlg::Sha256 => {
                    mac_esp::<Sha256>(suite, enc, auth, esn, iv_key, keep, h, arch)
                }
                _ => mac_esp::<NoSmall>(suite, enc, auth, esn, iv_key, keep, h, arch),
            }
        }
        (EncrAlg::ChaCha20Poly1305, _) => {
            let (k, salt) = split_salt(suite.encr, enc)?;
            Ok((aead_esp(ChachaKeys::new(k)?, salt, esn, arch), 0))
        }
        (EncrAlg::AesGcm128 | EncrAlg::AesGcm256, _) => {
            let (k, salt) = split_salt(suite.encr, enc)?;
            let c = aead_esp(imb::GcmKey::new(k).map_err(lib_err)?, salt, esn, arch);
            Ok((c, 0))
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
