//! The algorithms both processes name: ESP encryption and integrity
//! transforms and their suites (key sizes, legacy flag, stable names), and
//! why a suite or key is refused.

/// ESP encryption transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncrAlg {
    /// NULL encryption (RFC 2410): integrity only.
    Null,
    /// AES-CBC with a 128-bit key (RFC 3602).
    AesCbc128,
    /// AES-CBC with a 256-bit key (RFC 3602).
    AesCbc256,
    /// AES-GCM, 16-byte ICV, 128-bit key + 4-byte salt (RFC 4106).
    AesGcm128,
    /// AES-GCM, 16-byte ICV, 256-bit key + 4-byte salt (RFC 4106).
    AesGcm256,
    /// ChaCha20-Poly1305, 256-bit key + 4-byte salt (RFC 7634).
    ChaCha20Poly1305,
    /// Legacy 3DES-CBC (RFC 2451): only with the legacy opt-in (RFC 8221).
    TripleDesCbc,
}

impl EncrAlg {
    /// True for combined-mode (AEAD) transforms, which take no separate integrity.
    pub const fn is_aead(self) -> bool {
        matches!(
            self,
            Self::AesGcm128 | Self::AesGcm256 | Self::ChaCha20Poly1305
        )
    }
    /// Key length in bytes as keyed by IKE/manual config (AEAD: key + 4-byte salt).
    pub const fn key_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::AesCbc128 => 16,
            Self::AesCbc256 => 32,
            Self::AesGcm128 => 20,
            Self::AesGcm256 => 36,
            Self::ChaCha20Poly1305 => 36,
            Self::TripleDesCbc => 24,
        }
    }
    /// Explicit IV length on the wire.
    pub const fn iv_len(self) -> usize {
        match self {
            Self::Null => 0,
            Self::AesCbc128 | Self::AesCbc256 => 16,
            Self::AesGcm128 | Self::AesGcm256 | Self::ChaCha20Poly1305 => 8,
            Self::TripleDesCbc => 8,
        }
    }
    /// Alignment the ciphertext (payload + padding + 2) must reach: the block
    /// size, and at least 4 (RFC 4303 §2.4).
    pub const fn pad_align(self) -> usize {
        match self {
            Self::AesCbc128 | Self::AesCbc256 => 16,
            Self::TripleDesCbc => 8,
            _ => 4,
        }
    }
    /// Legacy algorithm that needs the explicit opt-in.
    pub const fn is_legacy(self) -> bool {
        matches!(self, Self::TripleDesCbc)
    }
    /// Stable name (config files, status output).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::AesCbc128 => "aes-cbc-128",
            Self::AesCbc256 => "aes-cbc-256",
            Self::AesGcm128 => "aes-gcm-128",
            Self::AesGcm256 => "aes-gcm-256",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::TripleDesCbc => "3des-cbc",
        }
    }
}

/// ESP integrity transform (for non-AEAD encryption).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntegAlg {
    /// No separate integrity (AEAD suites).
    None,
    /// HMAC-SHA1-96 (RFC 2404).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868).
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868).
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868).
    HmacSha512_256,
    /// Legacy HMAC-MD5-96 (RFC 2403): only with the legacy opt-in (RFC 8221).
    HmacMd5_96,
}

impl IntegAlg {
    /// Key length in bytes.
    pub const fn key_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 => 20,
            Self::HmacSha256_128 => 32,
            Self::HmacSha384_192 => 48,
            Self::HmacSha512_256 => 64,
            Self::HmacMd5_96 => 16,
        }
    }
    /// Truncated ICV length on the wire.
    pub const fn icv_len(self) -> usize {
        match self {
            Self::None => 0,
            Self::HmacSha1_96 | Self::HmacMd5_96 => 12,
            Self::HmacSha256_128 => 16,
            Self::HmacSha384_192 => 24,
            Self::HmacSha512_256 => 32,
        }
    }
    /// Legacy algorithm that needs the explicit opt-in.
    pub const fn is_legacy(self) -> bool {
        matches!(self, Self::HmacMd5_96)
    }
    /// Stable name (config files, status output).
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HmacSha1_96 => "hmac-sha1-96",
            Self::HmacSha256_128 => "hmac-sha256-128",
            Self::HmacSha384_192 => "hmac-sha384-192",
            Self::HmacSha512_256 => "hmac-sha512-256",
            Self::HmacMd5_96 => "hmac-md5-96",
        }
    }
}

/// An ESP suite: encryption plus integrity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Suite {
    /// Encryption transform.
    pub encr: EncrAlg,
    /// Integrity transform (`None` for AEAD).
    pub integ: IntegAlg,
}

impl Suite {
    /// ICV length on the wire.
    pub const fn icv_len(self) -> usize {
        if self.encr.is_aead() {
            16
        } else {
            self.integ.icv_len()
        }
    }

    /// Checks that the combination is valid: AEAD without separate integrity,
    /// non-AEAD with integrity, legacy algorithms only when allowed.
    pub fn validate(self, allow_legacy: bool) -> Result<(), CryptoError> {
        if self.encr.is_aead() && self.integ != IntegAlg::None {
            return Err(CryptoError::Combination {
                encr: self.encr,
                integ: self.integ,
                why: "combined-mode encryption takes no separate integrity algorithm",
            });
        }
        if !self.encr.is_aead() && self.integ == IntegAlg::None {
            return Err(CryptoError::Combination {
                encr: self.encr,
                integ: self.integ,
                why: "encryption without integrity is insecure (RFC 4303 §3.2)",
            });
        }
        if !allow_legacy && (self.encr.is_legacy() || self.integ.is_legacy()) {
            return Err(CryptoError::LegacyNotAllowed {
                alg: if self.encr.is_legacy() {
                    self.encr.name()
                } else {
                    self.integ.name()
                },
            });
        }
        Ok(())
    }
}

/// Why a cipher could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Key of the wrong length for the algorithm.
    #[error("{alg} needs a {expected}-byte key, got {got} bytes")]
    KeyLength {
        /// Algorithm name.
        alg: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// Invalid encryption/integrity combination.
    #[error("{} with {}: {why}", encr.name(), integ.name())]
    Combination {
        /// Encryption transform.
        encr: EncrAlg,
        /// Integrity transform.
        integ: IntegAlg,
        /// Explanation.
        why: &'static str,
    },
    /// Legacy algorithm used without the opt-in.
    #[error("{alg} is a legacy algorithm (RFC 8221): set allow_legacy = true to use it")]
    LegacyNotAllowed {
        /// Algorithm name.
        alg: &'static str,
    },
    /// The requested backend does not implement this algorithm.
    #[error("crypto backend {backend} does not implement {alg}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Algorithm name.
        alg: &'static str,
    },
    /// The requested backend was not compiled in (cargo feature off).
    #[error("crypto backend {backend} is not compiled in (cargo feature {feature})")]
    BackendNotCompiled {
        /// Backend name.
        backend: &'static str,
        /// The cargo feature of espresso-dataplane that enables it.
        feature: &'static str,
    },
    /// A key that is the right length but unusable.
    #[error("{alg} key rejected: {why}")]
    WeakKey {
        /// Algorithm name.
        alg: &'static str,
        /// Explanation.
        why: &'static str,
    },
    /// The operating system's random number generator failed (CBC IV key).
    #[error("OS random number generator failed: {0}")]
    Rng(String),
}
