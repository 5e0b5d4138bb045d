//! aws-lc-rs backend (cargo feature `aws-lc`): AES-GCM, ChaCha20-Poly1305,
//! AES-CBC and HMAC-SHA1/SHA-2 from AWS-LC (assembly with AES-NI, VAES,
//! AVX-512). No 3DES and no HMAC-MD5 here: legacy suites are built by
//! RustCrypto. CBC IVs come from the shared AES IV generator (one AES block
//! per packet) so every backend produces the same bytes.

#![forbid(unsafe_code)]

use aws_lc_rs::aead::{
    Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305,
};
use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_256,
};
use aws_lc_rs::hmac;

use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::transform::{aead_esp, cbc_hmac_esp, null_hmac_esp, AesIvGen};
use super::{CryptoError, EncrAlg, EspCipher, IntegAlg, Suite};

/// Backend name in status output.
pub const NAME: &str = "aws-lc-rs";

fn unsupported(alg: &'static str) -> CryptoError {
    CryptoError::Unsupported { backend: NAME, alg }
}

/// An aws-lc-rs AEAD (key scheduled at build).
pub struct LcAead(LessSafeKey);

impl RawAead for LcAead {
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

/// aws-lc-rs HMAC: the key holds an HMAC_CTX with the inner and outer pads
/// already absorbed; each packet copies it (`HMAC_CTX_copy_ex`, no heap).
pub struct LcHmac {
    key: hmac::Key,
    full: usize,
}

impl RawMac for LcHmac {
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

/// aws-lc-rs AES-CBC without padding (AES_cbc_encrypt on scheduled keys).
pub struct LcCbc {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

impl RawCbc for LcCbc {
    fn block_len(&self) -> usize {
        16
    }

    #[inline]
    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; 16]>::try_from(iv) else {
            return false;
        };
        if !data.len().is_multiple_of(16) {
            return false;
        }
        self.enc
            .less_safe_encrypt(data, EncryptionContext::Iv128(iv.into()))
            .is_ok()
    }

    #[inline]
    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(iv) = <[u8; 16]>::try_from(iv) else {
            return false;
        };
        if !data.len().is_multiple_of(16) {
            return false;
        }
        self.dec
            .decrypt(data, DecryptionContext::Iv128(iv.into()))
            .is_ok()
    }
}

fn key_err(alg: &'static str, expected: usize, got: usize) -> CryptoError {
    CryptoError::KeyLength { alg, expected, got }
}

fn aead_key(encr: EncrAlg, key: &[u8]) -> Result<LcAead, CryptoError> {
    let alg = match encr {
        EncrAlg::AesGcm128 => &AES_128_GCM,
        EncrAlg::AesGcm256 => &AES_256_GCM,
        EncrAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
        _ => return Err(unsupported(encr.name())),
    };
    let k = UnboundKey::new(alg, key)
        .map_err(|_| key_err(encr.name(), encr.key_len() - 4, key.len()))?;
    Ok(LcAead(LessSafeKey::new(k)))
}

fn hmac_key(integ: IntegAlg, key: &[u8]) -> Result<LcHmac, CryptoError> {
    let (alg, full) = match integ {
        IntegAlg::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
        IntegAlg::HmacSha256_128 => (hmac::HMAC_SHA256, 32),
        IntegAlg::HmacSha384_192 => (hmac::HMAC_SHA384, 48),
        IntegAlg::HmacSha512_256 => (hmac::HMAC_SHA512, 64),
        IntegAlg::HmacMd5_96 | IntegAlg::None => return Err(unsupported(integ.name())),
    };
    Ok(LcHmac {
        key: hmac::Key::new(alg, key),
        full,
    })
}

fn cbc_key(encr: EncrAlg, key: &[u8]) -> Result<LcCbc, CryptoError> {
    let alg = match encr {
        EncrAlg::AesCbc128 => &AES_128,
        EncrAlg::AesCbc256 => &AES_256,
        _ => return Err(unsupported(encr.name())),
    };
    let err = |_| key_err(encr.name(), encr.key_len(), key.len());
    Ok(LcCbc {
        enc: EncryptingKey::cbc(UnboundCipherKey::new(alg, key).map_err(err)?).map_err(err)?,
        dec: DecryptingKey::cbc(UnboundCipherKey::new(alg, key).map_err(err)?).map_err(err)?,
    })
}

/// A raw aws-lc-rs AEAD; `key` without salt.
pub(crate) fn raw_aead(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawAead>, CryptoError> {
    Ok(Box::new(aead_key(encr, key)?))
}

/// A raw aws-lc-rs HMAC (any key length).
pub(crate) fn raw_mac(integ: IntegAlg, key: &[u8]) -> Result<Box<dyn RawMac>, CryptoError> {
    Ok(Box::new(hmac_key(integ, key)?))
}

/// A raw aws-lc-rs AES-CBC cipher.
pub(crate) fn raw_cbc(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawCbc>, CryptoError> {
    Ok(Box::new(cbc_key(encr, key)?))
}

/// Builds the aws-lc-rs transform for a validated suite with checked key lengths.
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
        EncrAlg::AesCbc128 | EncrAlg::AesCbc256 => Ok(cbc_hmac_esp(
            cbc_key(suite.encr, enc)?,
            AesIvGen::new(iv_key),
            hmac_key(suite.integ, auth)?,
            icv,
            esn,
            NAME,
        )),
        EncrAlg::Null => Ok(null_hmac_esp(hmac_key(suite.integ, auth)?, icv, esn, NAME)),
        EncrAlg::TripleDesCbc => Err(unsupported(suite.encr.name())),
    }
}
