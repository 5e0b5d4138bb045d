//! The AEAD and HMAC of the two backends built on ring's API: ring itself
//! and aws-lc-rs, which mirrors it type for type (`aead::LessSafeKey`,
//! `hmac::Key`, ...) without a trait the two share. One body, instantiated
//! in each backend's module by [`ring_api_primitives!`].

#![forbid(unsafe_code)]

/// Defines, in the calling backend module, over the library `$lib` (`ring`
/// or `aws_lc_rs`, `$name` in the docs): `$aead`, a
/// [`RawAead`](super::raw::RawAead) over `$lib::aead::LessSafeKey` (key
/// scheduled at build), `$hmac`, a [`RawMac`](super::raw::RawMac) over
/// `$lib::hmac::Key` (the inner and outer pad states absorbed at build,
/// copied per packet without heap), their builders `aead_key` and
/// `hmac_key`, and the boxed `raw_aead` and `raw_mac`. The caller's module
/// has `unsupported(alg) -> CryptoError` (naming its backend).
macro_rules! ring_api_primitives {
    ($lib:ident, $name:literal, $aead:ident, $hmac:ident) => {
        #[doc = concat!("A ", $name, " AEAD (key scheduled at build).")]
        pub struct $aead(::$lib::aead::LessSafeKey);

        impl $crate::crypto::raw::RawAead for $aead {
            #[inline]
            fn seal(
                &self,
                nonce: &[u8; 12],
                aad: &[u8],
                data: &mut [u8],
            ) -> [u8; $crate::crypto::raw::TAG_LEN] {
                use ::$lib::aead::{Aad, Nonce};
                use $crate::crypto::raw::TAG_LEN;
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
                use ::$lib::aead::{Aad, Nonce};
                ct_tag.len() >= $crate::crypto::raw::TAG_LEN
                    && self
                        .0
                        .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), ct_tag)
                        .is_ok()
            }
        }

        #[doc = concat!("A ", $name, " HMAC: the key keeps the inner and outer states")]
        /// after the pads; each packet copies them (no heap).
        pub struct $hmac {
            key: ::$lib::hmac::Key,
            full: usize,
        }

        impl $crate::crypto::raw::RawMac for $hmac {
            fn full_len(&self) -> usize {
                self.full
            }

            #[inline]
            fn mac2(&self, a: &[u8], b: &[u8], out: &mut [u8]) {
                let mut ctx = ::$lib::hmac::Context::with_key(&self.key);
                ctx.update(a);
                ctx.update(b);
                let tag = ctx.sign();
                let tag = tag.as_ref();
                let n = out.len().min(tag.len());
                out[..n].copy_from_slice(&tag[..n]);
            }
        }

        fn aead_key(
            encr: $crate::crypto::EncrAlg,
            key: &[u8],
        ) -> Result<$aead, $crate::crypto::CryptoError> {
            use ::$lib::aead::{AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305};
            use $crate::crypto::EncrAlg;
            let alg = match encr {
                EncrAlg::AesGcm128 => &AES_128_GCM,
                EncrAlg::AesGcm256 => &AES_256_GCM,
                EncrAlg::ChaCha20Poly1305 => &CHACHA20_POLY1305,
                _ => return Err(unsupported(encr.name())),
            };
            let k = ::$lib::aead::UnboundKey::new(alg, key).map_err(|_| {
                $crate::crypto::CryptoError::KeyLength {
                    alg: encr.name(),
                    expected: encr.key_len() - 4,
                    got: key.len(),
                }
            })?;
            Ok($aead(::$lib::aead::LessSafeKey::new(k)))
        }

        fn hmac_key(
            integ: $crate::crypto::IntegAlg,
            key: &[u8],
        ) -> Result<$hmac, $crate::crypto::CryptoError> {
            use ::$lib::hmac;
            use $crate::crypto::IntegAlg;
            let (alg, full) = match integ {
                IntegAlg::HmacSha1_96 => (hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, 20),
                IntegAlg::HmacSha256_128 => (hmac::HMAC_SHA256, 32),
                IntegAlg::HmacSha384_192 => (hmac::HMAC_SHA384, 48),
                IntegAlg::HmacSha512_256 => (hmac::HMAC_SHA512, 64),
                IntegAlg::HmacMd5_96 | IntegAlg::None => return Err(unsupported(integ.name())),
            };
            Ok($hmac {
                key: hmac::Key::new(alg, key),
                full,
            })
        }

        #[doc = concat!("A raw ", $name, " AEAD; `key` without salt.")]
        pub(crate) fn raw_aead(
            encr: $crate::crypto::EncrAlg,
            key: &[u8],
        ) -> Result<Box<dyn $crate::crypto::raw::RawAead>, $crate::crypto::CryptoError> {
            Ok(Box::new(aead_key(encr, key)?))
        }

        #[doc = concat!("A raw ", $name, " HMAC (any key length).")]
        pub(crate) fn raw_mac(
            integ: $crate::crypto::IntegAlg,
            key: &[u8],
        ) -> Result<Box<dyn $crate::crypto::raw::RawMac>, $crate::crypto::CryptoError> {
            Ok(Box::new(hmac_key(integ, key)?))
        }
    };
}

pub(crate) use ring_api_primitives;
