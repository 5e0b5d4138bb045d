//! aws-lc-rs backend (cargo feature `aws-lc`): AES-GCM, ChaCha20-Poly1305,
//! AES-CBC and HMAC-SHA1/SHA-2 from AWS-LC (assembly with AES-NI, VAES,
//! AVX-512). No 3DES and no HMAC-MD5 here: legacy suites are built by
//! RustCrypto. CBC IVs come from the shared AES IV generator (one AES block
//! per packet) so every backend produces the same bytes.

#![forbid(unsafe_code)]

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_256,
};

use super::raw::RawCbc;
use super::ring_api::ring_api_primitives;
use super::transform::{aead_esp, cbc_hmac_esp, null_hmac_esp, AesIvGen};
use super::{CryptoError, EncrAlg, EspCipher, Suite};

/// Backend name in status output.
pub const NAME: &str = "aws-lc-rs";

fn unsupported(alg: &'static str) -> CryptoError {
    CryptoError::Unsupported { backend: NAME, alg }
}

ring_api_primitives!(aws_lc_rs, "aws-lc-rs", LcAead, LcHmac);

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
