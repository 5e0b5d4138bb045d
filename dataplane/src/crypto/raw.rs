//! The primitive layer under the ESP transforms: AEAD, HMAC and CBC objects
//! of one backend, with no ESP framing.
//!
//! The ESP constructions in [`super::transform`] are generic over these
//! traits and monomorphised per backend, so the hot path calls them without
//! dynamic dispatch. They are public so that known-answer tests (Wycheproof)
//! and benchmarks can reach exactly the code the ESP ciphers use; the boxed
//! constructors below ([`aead`], [`mac`], [`cbc`]) are for those callers and
//! are not meant for the packet path.

#![forbid(unsafe_code)]

use super::{Backend, CryptoError, EncrAlg, IntegAlg};

/// Length of every AEAD tag we use (RFC 4106 16-octet ICV, RFC 7634).
pub const TAG_LEN: usize = 16;

/// An AEAD with a 96-bit nonce and a 128-bit tag, key already scheduled.
pub trait RawAead: Send + Sync {
    /// Encrypts `data` in place and returns the tag. A length the library
    /// refuses (beyond 2^36 bytes) zeroes `data` and returns a zero tag, which
    /// no receiver accepts; ESP packets never come near it.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN];
    /// Verifies the tag in the last [`TAG_LEN`] bytes of `ct_tag` and decrypts
    /// the bytes before it in place. False on a bad tag or a too-short input.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool;
}

/// HMAC with inner/outer states precomputed from the key.
pub trait RawMac: Send + Sync {
    /// Untruncated output length of the hash.
    fn full_len(&self) -> usize;
    /// Writes HMAC(key, `a` || `b`) truncated to `out.len()` bytes (at most
    /// [`RawMac::full_len`]; longer `out` is only filled up to that).
    fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]);
}

/// A block cipher in CBC mode without padding, key already scheduled.
pub trait RawCbc: Send + Sync {
    /// Block length (16 for AES, 8 for 3DES); also the IV length.
    fn block_len(&self) -> usize;
    /// Encrypts `data` in place. False (data untouched) if `iv` is not one
    /// block or `data` is not a whole number of blocks.
    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool;
    /// Decrypts `data` in place; same length rules as [`RawCbc::encrypt`].
    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool;
}

/// Resolves `Auto` for raw objects: the first compiled backend that has the
/// primitive, in the order of [`super::auto_order`].
fn resolve(backend: Backend, encr: EncrAlg, integ: IntegAlg) -> Vec<Backend> {
    match backend {
        Backend::Auto => super::auto_order(super::Suite { encr, integ }).to_vec(),
        b => vec![b],
    }
}

/// A raw AEAD for `encr` (AES-GCM-128/256 or ChaCha20-Poly1305) with `key`
/// the cipher key alone (no salt).
pub fn aead(encr: EncrAlg, backend: Backend, key: &[u8]) -> Result<Box<dyn RawAead>, CryptoError> {
    let expected = encr.key_len().saturating_sub(4);
    if !encr.is_aead() {
        return Err(CryptoError::Unsupported {
            backend: "raw aead",
            alg: encr.name(),
        });
    }
    if key.len() != expected {
        return Err(CryptoError::KeyLength {
            alg: encr.name(),
            expected,
            got: key.len(),
        });
    }
    let mut last = None;
    for b in resolve(backend, encr, IntegAlg::None) {
        match b.raw_aead(encr, key) {
            Ok(a) => return Ok(a),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(CryptoError::Unsupported {
        backend: backend.name(),
        alg: encr.name(),
    }))
}

/// A raw HMAC for `integ`; `key` may have any length (RFC 2104), unlike the
/// ESP transforms, which require the RFC 4868 key lengths.
pub fn mac(integ: IntegAlg, backend: Backend, key: &[u8]) -> Result<Box<dyn RawMac>, CryptoError> {
    let mut last = None;
    for b in resolve(backend, EncrAlg::Null, integ) {
        match b.raw_mac(integ, key) {
            Ok(m) => return Ok(m),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(CryptoError::Unsupported {
        backend: backend.name(),
        alg: integ.name(),
    }))
}

/// A raw CBC cipher for `encr` (AES-CBC-128/256 or 3DES-CBC).
pub fn cbc(encr: EncrAlg, backend: Backend, key: &[u8]) -> Result<Box<dyn RawCbc>, CryptoError> {
    if key.len() != encr.key_len() {
        return Err(CryptoError::KeyLength {
            alg: encr.name(),
            expected: encr.key_len(),
            got: key.len(),
        });
    }
    let mut last = None;
    for b in resolve(backend, encr, IntegAlg::HmacSha256_128) {
        match b.raw_cbc(encr, key) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(CryptoError::Unsupported {
        backend: backend.name(),
        alg: encr.name(),
    }))
}
