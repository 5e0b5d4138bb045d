//! ring backend (cargo feature `ring`): AES-GCM, ChaCha20-Poly1305 and
//! HMAC-SHA1/SHA-2. ring has no CBC mode, so the AES-CBC suites pair
//! RustCrypto AES-CBC with ring's HMAC (backend name
//! "ring+rustcrypto-cbc"); the benchmark in bench/results/crypto_backends.md
//! shows whether that pairing pays. No 3DES and no HMAC-MD5 here: legacy
//! suites are built by RustCrypto.

#![forbid(unsafe_code)]

use super::raw::RawCbc;
use super::ring_api::ring_api_primitives;
use super::rustcrypto;
use super::transform::{aead_esp, cbc_hmac_esp, null_hmac_esp, AesIvGen};
use super::{CryptoError, EncrAlg, EspCipher, Suite};

/// Backend name in status output.
pub const NAME: &str = "ring";
/// Backend name of the CBC suites (RustCrypto AES-CBC + ring HMAC).
pub const NAME_CBC: &str = "ring+rustcrypto-cbc";

fn unsupported(alg: &'static str) -> CryptoError {
    CryptoError::Unsupported { backend: NAME, alg }
}

ring_api_primitives!(ring, "ring", RingAead, RingHmac);

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
