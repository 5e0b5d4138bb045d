//! ring backend (cargo feature `ring`): AES-GCM, ChaCha20-Poly1305 and
//! HMAC-SHA1/SHA-2. ring has no CBC mode, so the AES-CBC suites pair
//! RustCrypto AES-CBC with ring's HMAC (backend name
//! "ring+rustcrypto-cbc"); the benchmark in bench/results/crypto_backends.md
//! shows whether that pairing pays. No 3DES and no HMAC-MD5 here: legacy
//! suites are built by RustCrypto.

#![forbid(unsafe_code)]

use ::ring::aead::{
    Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use ::ring::hmac;

use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::rustcrypto;
use super::transform::{aead_esp, cbc_hmac_esp, null_hmac_esp, AesIvGen};
use super::{CryptoError, EncrAlg, EspCipher, IntegAlg, Suite};

/// Backend name in status output.
pub const NAME: &str = "ring";
/// Backend name of the CBC suites (RustCrypto AES-CBC + ring HMAC).
pub const NAME_CBC: &str = "ring+rustcrypto-cbc";

fn unsupported(alg: &'static str) -> CryptoError {
    CryptoError::Unsupported { backend: NAME, alg }
}

/// A ring AEAD (key scheduled at build).
pub struct RingAead(LessSafeKey);

impl RawAead for RingAead {
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        match self.0.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(aad),
            data,
        ) {
            Ok(tag) => {
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
            Err(_) => {
                data.fill(0);
                [0; TAG_LEN]
            }
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool {
        ct_tag.len() >= TAG_LEN
            && self
                .0
                .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), ct_tag)
                .is_ok()
    }
}

/// ring HMAC: `hmac::Key` keeps the inner and outer block states after the
/// pads; `Context::with_key` copies them per packet (no heap).
pub struct RingHmac {
    key: hmac::Key,
    full: usize,
}

impl RawMac for RingHmac {
    fn full_len(&self) -> usize {
        self.full
    }

    #[inline]
    fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(a);
        ctx.update(b);
        let tag = ctx.sign();
        let tag = tag.as_ref();
        let n = out.len().min(tag.len());
        out[..n].copy_from_slice(&tag[..n]);
    }
}

fn aead_key(encr: EncrAlg, key: &[u8]) -> Result<RingAead, CryptoError> {
    let alg = match encr {
        EncrAlg::AesGcm128 => &AES_128_GCM,
        EncrAlg::AesGcm256 => &AES_256_GCM,
        EncrAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        _ => return Err(unsupported(encr.name())),
    };
    let k = UnboundKey::new(alg, key).map_err(|_| CryptoError::KeyLength {
        alg: encr.name(),
        expected: encr.key_len() - 4,
        got: key.len(),
    })?;
    Ok(RingAead(LessSafeKey::new(k)))
}

fn hmac_key(integ: IntegAlg, key: &[u8]) -> Result<RingHmac, CryptoError> {
    let (alg, full) = match integ {
        IntegAlg::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        IntegAlg::HmacSha256_128 => (hmac::HMAC_SHA256, 32),
        IntegAlg::HmacSha384_192 => (hmac::HMAC_SHA384, 48),
        IntegAlg::HmacSha512_256 => (hmac::HMAC_SHA512, 64),
        IntegAlg::HmacMd5_96 | IntegAlg::None => return Err(unsupported(integ.name())),
    };
    Ok(RingHmac {
        key: hmac::Key::new(alg, key),
        full,
    })
}

/// A raw ring AEAD; `key` without salt.
pub(crate) fn raw_aead(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawAead>, CryptoError> {
    Ok(Box::new(aead_key(encr, key)?))
}

/// A raw ring HMAC (any key length).
pub(crate) fn raw_mac(integ: IntegAlg, key: &[u8]) -> Result<Box<dyn RawMac>, CryptoError> {
    Ok(Box::new(hmac_key(integ, key)?))
}

/// ring has no CBC: the raw CBC layer of this backend does not exist.
pub(crate) fn raw_cbc(encr: EncrAlg, _key: &[u8]) -> Result<Box<dyn RawCbc>, CryptoError> {
    Err(unsupported(encr.name()))
}

/// Builds the ring transform for a validated suite with checked key lengths.
pub(crate) fn build(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
) -> Result<Box<dyn EspCipher>, CryptoError> {
    let icv = suite.icv_len();
    match suite.encr {
        EncrAlg::AesGcm128 | EncrAlg::AesGcm256 | EncrAlg::ChaCha20Poly1305 => {
            let (k, salt) = super::split_salt(suite.encr, enc)?;
            Ok(aead_esp(aead_key(suite.encr, k)?, salt, esn, NAME))
        }
        EncrAlg::AesCbc128 => Ok(cbc_hmac_esp(
            rustcrypto::aes128_cbc(enc)?,
            AesIvGen::new(iv_key),
            hmac_key(suite.integ, auth)?,
            icv,
            esn,
            NAME_CBC,
        )),
        EncrAlg::AesCbc256 => Ok(cbc_hmac_esp(
            rustcrypto::aes256_cbc(enc)?,
            AesIvGen::new(iv_key),
            hmac_key(suite.integ, auth)?,
            icv,
            esn,
            NAME_CBC,
        )),
        EncrAlg::Null => Ok(null_hmac_esp(hmac_key(suite.integ, auth)?, icv, esn, NAME)),
        EncrAlg::TripleDesCbc => Err(unsupported(suite.encr.name())),
    }
}
