//! RustCrypto backend: pure Rust (AES-NI/CLMUL/SHA-NI through runtime CPU
//! detection inside the crates), every suite, always compiled: the portable
//! fallback. Crates: aes-gcm, aes, cbc, chacha20poly1305, des, hmac, sha1,
//! sha2, md-5.

#![forbid(unsafe_code)]

use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{
    BlockCipher, BlockDecrypt, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit,
};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::AeadInPlace;
use hmac::Mac;

use super::raw::{RawAead, RawCbc, RawMac, TAG_LEN};
use super::transform::{aead_esp, cbc_hmac_esp, null_hmac_esp, AesIvGen, TdesIvGen};
use super::{CryptoError, EncrAlg, EspCipher, IntegAlg, Suite};

/// Backend name in status output.
pub const NAME: &str = "rustcrypto";

/// Any RustCrypto AEAD in place (AES-GCM, ChaCha20-Poly1305).
pub struct RcAead<A>(A);

impl<A> RawAead for RcAead<A>
where
    A: AeadInPlace<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        match self
            .0
            .encrypt_in_place_detached(GenericArray::from_slice(nonce), aad, data)
        {
            Ok(tag) => tag.into(),
            Err(_) => {
                data.fill(0);
                [0; TAG_LEN]
            }
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool {
        let Some(ct_len) = ct_tag.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (ct, tag) = ct_tag.split_at_mut(ct_len);
        self.0
            .decrypt_in_place_detached(
                GenericArray::from_slice(nonce),
                aad,
                ct,
                GenericArray::from_slice(tag),
            )
            .is_ok()
    }
}

/// HMAC over a RustCrypto hash (`hmac::Hmac<Sha256>` ...): the key is
/// absorbed into the inner and outer states at build time and the state is
/// cloned per packet (a copy, no allocation).
pub struct RcHmac<M>(M);

impl<M: Mac + Clone + Send + Sync> RawMac for RcHmac<M> {
    fn full_len(&self) -> usize {
        <M as hmac::digest::OutputSizeUser>::output_size()
    }

    #[inline]
    fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
        let mut m = self.0.clone();
        m.update(a);
        m.update(b);
        let tag = m.finalize().into_bytes();
        let n = out.len().min(tag.len());
        out[..n].copy_from_slice(&tag[..n]);
    }
}

/// CBC without padding over a RustCrypto block cipher; `E` and `D` are the
/// scheduled encryption and decryption keys (AES: `Aes128Enc`/`Aes128Dec`,
/// 3DES: `TdesEde3` for both), copied into a CBC state per packet.
pub struct RcCbc<E, D> {
    enc: E,
    dec: D,
}

impl<E, D> RawCbc for RcCbc<E, D>
where
    E: BlockCipher + BlockEncrypt + Clone + Send + Sync,
    D: BlockCipher + BlockDecrypt + Clone + Send + Sync,
{
    fn block_len(&self) -> usize {
        E::block_size()
    }

    #[inline]
    fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(mut c) = cbc::Encryptor::<E>::inner_iv_slice_init(self.enc.clone(), iv) else {
            return false;
        };
        let (blocks, tail) = InOutBuf::from(data).into_chunks();
        if !tail.is_empty() {
            return false;
        }
        c.encrypt_blocks_inout_mut(blocks);
        true
    }

    #[inline]
    fn decrypt(&self, iv: &[u8], data: &mut [u8]) -> bool {
        let Ok(mut c) = cbc::Decryptor::<D>::inner_iv_slice_init(self.dec.clone(), iv) else {
            return false;
        };
        let (blocks, tail) = InOutBuf::from(data).into_chunks();
        if !tail.is_empty() {
            return false;
        }
        c.decrypt_blocks_inout_mut(blocks);
        true
    }
}

fn key_err(alg: &'static str, expected: usize, got: usize) -> CryptoError {
    CryptoError::KeyLength { alg, expected, got }
}

/// A raw RustCrypto AEAD; `key` is the cipher key without salt.
pub(crate) fn raw_aead(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawAead>, CryptoError> {
    let err = || key_err(encr.name(), encr.key_len().saturating_sub(4), key.len());
    Ok(match encr {
        EncrAlg::AesGcm128 => Box::new(RcAead(
            aes_gcm::Aes128Gcm::new_from_slice(key).map_err(|_| err())?,
        )),
        EncrAlg::AesGcm256 => Box::new(RcAead(
            aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| err())?,
        )),
        EncrAlg::ChaCha20Poly1305 => Box::new(RcAead(
            chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).map_err(|_| err())?,
        )),
        _ => {
            return Err(CryptoError::Unsupported {
                backend: NAME,
                alg: encr.name(),
            })
        }
    })
}

/// Calls `$body` with `$m` bound to the RustCrypto HMAC for `$integ`, keyed
/// with `$key` (the generic body is instantiated once per hash).
macro_rules! with_hmac {
    ($integ:expr, $key:expr, |$m:ident| $body:expr) => {{
        let key: &[u8] = $key;
        match $integ {
            IntegAlg::HmacSha1_96 => {
                let $m = RcHmac(
                    <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(key)
                        .map_err(|_| key_err("hmac-sha1", 20, key.len()))?,
                );
                $body
            }
            IntegAlg::HmacSha256_128 => {
                let $m = RcHmac(
                    <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key)
                        .map_err(|_| key_err("hmac-sha256", 32, key.len()))?,
                );
                $body
            }
            IntegAlg::HmacSha384_192 => {
                let $m = RcHmac(
                    <hmac::Hmac<sha2::Sha384> as Mac>::new_from_slice(key)
                        .map_err(|_| key_err("hmac-sha384", 48, key.len()))?,
                );
                $body
            }
            IntegAlg::HmacSha512_256 => {
                let $m = RcHmac(
                    <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(key)
                        .map_err(|_| key_err("hmac-sha512", 64, key.len()))?,
                );
                $body
            }
            IntegAlg::HmacMd5_96 => {
                let $m = RcHmac(
                    <hmac::Hmac<md5::Md5> as Mac>::new_from_slice(key)
                        .map_err(|_| key_err("hmac-md5", 16, key.len()))?,
                );
                $body
            }
            IntegAlg::None => {
                return Err(CryptoError::Unsupported {
                    backend: NAME,
                    alg: IntegAlg::None.name(),
                })
            }
        }
    }};
}

/// A raw RustCrypto HMAC (any key length).
pub(crate) fn raw_mac(integ: IntegAlg, key: &[u8]) -> Result<Box<dyn RawMac>, CryptoError> {
    with_hmac!(integ, key, |m| Ok(Box::new(m) as Box<dyn RawMac>))
}

/// Scheduled AES-128-CBC.
pub(crate) fn aes128_cbc(key: &[u8]) -> Result<RcCbc<aes::Aes128Enc, aes::Aes128Dec>, CryptoError> {
    let err = |_| key_err(EncrAlg::AesCbc128.name(), 16, key.len());
    Ok(RcCbc {
        enc: aes::Aes128Enc::new_from_slice(key).map_err(err)?,
        dec: aes::Aes128Dec::new_from_slice(key).map_err(err)?,
    })
}

/// Scheduled AES-256-CBC.
pub(crate) fn aes256_cbc(key: &[u8]) -> Result<RcCbc<aes::Aes256Enc, aes::Aes256Dec>, CryptoError> {
    let err = |_| key_err(EncrAlg::AesCbc256.name(), 32, key.len());
    Ok(RcCbc {
        enc: aes::Aes256Enc::new_from_slice(key).map_err(err)?,
        dec: aes::Aes256Dec::new_from_slice(key).map_err(err)?,
    })
}

/// Scheduled 3DES-EDE-CBC.
pub(crate) fn tdes_cbc(key: &[u8]) -> Result<RcCbc<des::TdesEde3, des::TdesEde3>, CryptoError> {
    let c = des::TdesEde3::new_from_slice(key)
        .map_err(|_| key_err(EncrAlg::TripleDesCbc.name(), 24, key.len()))?;
    Ok(RcCbc {
        enc: c.clone(),
        dec: c,
    })
}

/// A raw RustCrypto CBC cipher.
pub(crate) fn raw_cbc(encr: EncrAlg, key: &[u8]) -> Result<Box<dyn RawCbc>, CryptoError> {
    Ok(match encr {
        EncrAlg::AesCbc128 => Box::new(aes128_cbc(key)?),
        EncrAlg::AesCbc256 => Box::new(aes256_cbc(key)?),
        EncrAlg::TripleDesCbc => Box::new(tdes_cbc(key)?),
        _ => {
            return Err(CryptoError::Unsupported {
                backend: NAME,
                alg: encr.name(),
            })
        }
    })
}

/// Builds the RustCrypto transform for a validated suite with checked key
/// lengths. `enc` is the whole encryption key (AEAD: key || salt).
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
            Ok(match suite.encr {
                EncrAlg::AesGcm128 => aead_esp(
                    RcAead(
                        aes_gcm::Aes128Gcm::new_from_slice(k)
                            .map_err(|_| key_err(suite.encr.name(), 16, k.len()))?,
                    ),
                    salt,
                    esn,
                    NAME,
                ),
                EncrAlg::AesGcm256 => aead_esp(
                    RcAead(
                        aes_gcm::Aes256Gcm::new_from_slice(k)
                            .map_err(|_| key_err(suite.encr.name(), 32, k.len()))?,
                    ),
                    salt,
                    esn,
                    NAME,
                ),
                _ => aead_esp(
                    RcAead(
                        chacha20poly1305::ChaCha20Poly1305::new_from_slice(k)
                            .map_err(|_| key_err(suite.encr.name(), 32, k.len()))?,
                    ),
                    salt,
                    esn,
                    NAME,
                ),
            })
        }
        EncrAlg::AesCbc128 => {
            let c = aes128_cbc(enc)?;
            with_hmac!(suite.integ, auth, |m| Ok(cbc_hmac_esp(
                c,
                AesIvGen::new(iv_key),
                m,
                icv,
                esn,
                NAME
            )))
        }
        EncrAlg::AesCbc256 => {
            let c = aes256_cbc(enc)?;
            with_hmac!(suite.integ, auth, |m| Ok(cbc_hmac_esp(
                c,
                AesIvGen::new(iv_key),
                m,
                icv,
                esn,
                NAME
            )))
        }
        EncrAlg::TripleDesCbc => {
            let c = tdes_cbc(enc)?;
            with_hmac!(suite.integ, auth, |m| Ok(cbc_hmac_esp(
                c,
                TdesIvGen::new(iv_key),
                m,
                icv,
                esn,
                NAME
            )))
        }
        EncrAlg::Null => {
            with_hmac!(suite.integ, auth, |m| Ok(null_hmac_esp(m, icv, esn, NAME)))
        }
    }
}
