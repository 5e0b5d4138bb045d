//! ESP cipher suites behind one trait.
//!
//! An SA's suite is turned into a boxed [`EspCipher`] once, when the SA is
//! installed ([`build`]); the hot path then calls `seal`/`open` on whole bursts
//! through that one pointer and never branches per packet on the algorithm
//! (as DPDK lib/ipsec chooses its process function at SA set-up).
//!
//! The cipher owns the ESP cryptographic layout of RFC 4303:
//! `SPI(4) | Seq(4) | IV | ciphertext(payload, padding, pad length, next header) | ICV`.
//! The ESP engine builds the plaintext trailer; the cipher writes the IV,
//! encrypts in place and writes the ICV (or verifies and decrypts).
//!
//! # Backends
//! [`Backend`] picks the library: [`rustcrypto`] (always compiled, every
//! suite), [`awslc`] (feature `aws-lc`) and [`ring`] (feature `ring`), both
//! default features. `Backend::Auto` takes the fastest backend per suite from
//! the table in [`auto_order`], measured by `bench/benches/crypto_backends.rs`
//! (results in `bench/results/crypto_backends.md`). Each backend module only
//! supplies primitives ([`raw`]); the ESP constructions are shared and
//! generic (`transform.rs`), so all backends write identical bytes.
//!
//! # IVs
//! - AES-GCM and ChaCha20-Poly1305 (RFC 4106 §3, RFC 7634 §2): the 8-byte IV
//!   is the 64-bit sequence number, big-endian. A sequence number is never
//!   reused under one SA (the engine stops the SA before it would wrap), so
//!   the nonce salt || IV never repeats for a key.
//! - CBC (RFC 3602 §3 wants unpredictable IVs): IV = E_k'(seq), one block of
//!   AES-128 (AES-CBC: input 0^64 || seq) or 3DES (3DES-CBC: input seq)
//!   under k', a random per-SA IV key drawn once from the OS RNG in
//!   [`build_with`]. Distinct sequence numbers give outputs of a keyed
//!   permutation on distinct inputs, unpredictable without k', with no RNG
//!   call per packet. k' is not shared with the peer (the IV travels in the
//!   packet).
//!
//! # Key material in memory
//! [`Key`] is zeroized on drop. Scheduled keys: RustCrypto AES, AES-GCM,
//! ChaCha20-Poly1305, 3DES and the CBC IV key are wiped on drop (crate
//! `zeroize` features); aws-lc-rs wipes its cipher keys and cleans its HMAC
//! contexts. Not wiped (the libraries offer no safe way to wipe them):
//! RustCrypto's precomputed HMAC states and ring's key schedules.
//!
//! # Hot path
//! `seal`/`open` never allocate, lock or log; keys are scheduled at build
//! and HMAC inner/outer states are precomputed (copied per packet). Malformed
//! jobs never panic: a seal job too short or misaligned for the suite is
//! zeroed (never sent in clear), an open job gets `ok = false`.

use std::fmt;

use zeroize::Zeroizing;

pub use espresso_core::alg::{CryptoError, EncrAlg, IntegAlg, Suite};
pub use espresso_core::key::Key;
pub use espresso_core::sa::Direction;

#[cfg(feature = "aws-lc")]
pub mod awslc;
pub(crate) mod ct;
#[cfg(feature = "ipsec-mb")]
mod hmac_burst;
#[cfg(feature = "ipsec-mb")]
mod hmac_wide;
#[cfg(all(test, feature = "ipsec-mb", target_arch = "x86_64"))]
mod hmac_wipe_tests;
#[cfg(feature = "ipsec-mb")]
pub mod ipsecmb;
pub mod key_cache;
#[cfg(all(test, target_arch = "x86_64"))]
mod key_cache_steps;
// The multi-buffer AES-GCM kernel's `#[target_feature]` calls and SIMD
// loads: the documented exception to "unsafe only in io/, shm/ and ffi/".
#[allow(unsafe_code)]
pub mod mb;
pub mod raw;
#[cfg(feature = "ring")]
pub mod ring;
#[cfg(any(feature = "aws-lc", feature = "ring"))]
mod ring_api;
pub mod rustcrypto;
#[cfg(test)]
mod test_jobs;
mod transform;

/// One packet to encrypt in place.
///
/// `esp` spans the whole ESP packet: `SPI | Seq | IV | plaintext | ICV`, with
/// the SPI, the low 32 bits of the sequence number and the plaintext (payload,
/// padding, pad length, next header) already written, and room for the IV and
/// the ICV. The cipher writes the IV, encrypts the plaintext in place and
/// writes the ICV.
pub struct SealJob<'a> {
    /// The ESP packet bytes (SPI through ICV).
    pub esp: &'a mut [u8],
    /// Full 64-bit sequence number (the high half enters the AAD/ICV with ESN).
    pub seq: u64,
}

/// One packet to verify and decrypt in place.
///
/// `esp` spans the whole received ESP packet (SPI through ICV). On success
/// the plaintext replaces the ciphertext and `ok` is set; on failure `ok` is
/// false and the plaintext bytes are unspecified.
pub struct OpenJob<'a> {
    /// The ESP packet bytes (SPI through ICV).
    pub esp: &'a mut [u8],
    /// Full 64-bit sequence number, high half inferred per RFC 4303 App. A.
    pub seq: u64,
    /// Set by the cipher: true if the ICV verified.
    pub ok: bool,
}

/// An ESP transform bound to one SA's keys. Chosen once per SA.
pub trait EspCipher: Send + Sync {
    /// Explicit IV length on the wire.
    fn iv_len(&self) -> usize;
    /// Ciphertext alignment (see [`EncrAlg::pad_align`]).
    fn pad_align(&self) -> usize;
    /// ICV length on the wire.
    fn icv_len(&self) -> usize;
    /// Encrypts and authenticates a burst in place. Never allocates.
    fn seal(&self, jobs: &mut [SealJob<'_>]);
    /// Verifies and decrypts a burst in place, setting each job's `ok`. Never allocates.
    fn open(&self, jobs: &mut [OpenJob<'_>]);
    /// Implementation name, for status output and benchmarks.
    fn backend(&self) -> &'static str;
}

/// Which crypto library implements an SA's transform. Chosen once per SA.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Backend {
    /// The fastest correct backend for the suite according to the measured
    /// table in [`auto_order`], among those compiled in.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// RustCrypto (pure Rust; every suite; always compiled).
    #[serde(rename = "rustcrypto")]
    RustCrypto,
    /// aws-lc-rs (cargo feature `aws-lc`): AES-GCM, ChaCha20-Poly1305,
    /// AES-CBC, HMAC-SHA1/SHA-2. No 3DES, no HMAC-MD5.
    #[serde(rename = "aws-lc")]
    AwsLc,
    /// ring (cargo feature `ring`): AES-GCM, ChaCha20-Poly1305, HMAC-SHA1/SHA-2;
    /// CBC suites pair RustCrypto AES-CBC with ring HMAC. No 3DES, no HMAC-MD5.
    #[serde(rename = "ring")]
    Ring,
    /// espresso's own batched multi-buffer AES-GCM kernel ([`mb`]: VAES +
    /// VPCLMULQDQ on AVX-512, chosen at run time): AES-GCM-128/256 only, and
    /// only on a CPU that has those instructions.
    #[serde(rename = "multibuffer")]
    MultiBuffer,
    /// Intel's multi-buffer library intel-ipsec-mb (cargo feature
    /// `ipsec-mb`, [`ipsecmb`]), called directly in bursts: AES-CBC with
    /// HMAC-SHA1/SHA-2, NULL with HMAC-SHA1/SHA-2, ChaCha20-Poly1305.
    #[serde(rename = "ipsec-mb")]
    IpsecMb,
}

impl Backend {
    /// Every concrete backend compiled into this build.
    pub fn compiled() -> &'static [Backend] {
        &[
            Backend::RustCrypto,
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc,
            #[cfg(feature = "ring")]
            Backend::Ring,
            Backend::MultiBuffer,
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb,
        ]
    }

    /// The backend a name gives (`auto`, `rustcrypto`, `aws-lc` or `awslc`,
    /// `ring`, `multibuffer`; any case), compiled in or not.
    pub fn from_name(s: &str) -> Option<Backend> {
        let s = s.to_ascii_lowercase().replace('-', "");
        [
            Backend::Auto,
            Backend::RustCrypto,
            Backend::AwsLc,
            Backend::Ring,
            Backend::MultiBuffer,
            Backend::IpsecMb,
        ]
        .into_iter()
        .find(|b| b.name().replace('-', "") == s)
    }

    /// Stable name (config files, status output).
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::RustCrypto => "rustcrypto",
            Backend::AwsLc => "aws-lc",
            Backend::Ring => "ring",
            Backend::MultiBuffer => "multibuffer",
            Backend::IpsecMb => "ipsec-mb",
        }
    }

    fn not_compiled(self) -> CryptoError {
        CryptoError::BackendNotCompiled {
            backend: self.name(),
            feature: match self {
                Backend::AwsLc => "aws-lc",
                Backend::Ring => "ring",
                Backend::IpsecMb => "ipsec-mb",
                _ => "default",
            },
        }
    }

    /// Builds the transform with this concrete backend (not `Auto`).
    fn build_one(
        self,
        suite: Suite,
        enc: &[u8],
        auth: &[u8],
        esn: bool,
        iv_key: &[u8; 32],
        #[cfg_attr(not(feature = "ipsec-mb"), allow(unused_variables))] dir: Option<Direction>,
    ) -> Result<Box<dyn EspCipher>, CryptoError> {
        match self {
            Backend::RustCrypto => rustcrypto::build(suite, enc, auth, esn, iv_key),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => awslc::build(suite, enc, auth, esn, iv_key),
            #[cfg(feature = "ring")]
            Backend::Ring => ring::build(suite, enc, auth, esn, iv_key),
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb => ipsecmb::build_for(suite, enc, auth, esn, iv_key, dir),
            Backend::MultiBuffer => match suite.encr {
                EncrAlg::AesGcm128 | EncrAlg::AesGcm256 => {
                    mb::build_gcm(&Key::from_slice(enc), esn).ok_or(CryptoError::Unsupported {
                        backend: "multibuffer (this CPU lacks VAES/VPCLMULQDQ/AVX-512)",
                        alg: suite.encr.name(),
                    })
                }
                _ => Err(CryptoError::Unsupported {
                    backend: "multibuffer",
                    alg: suite.encr.name(),
                }),
            },
            Backend::Auto => Err(CryptoError::Unsupported {
                backend: "auto",
                alg: suite.encr.name(),
            }),
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled()),
        }
    }

    pub(crate) fn raw_aead(
        self,
        encr: EncrAlg,
        key: &[u8],
    ) -> Result<Box<dyn raw::RawAead>, CryptoError> {
        match self {
            Backend::RustCrypto => rustcrypto::raw_aead(encr, key),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => awslc::raw_aead(encr, key),
            #[cfg(feature = "ring")]
            Backend::Ring => ring::raw_aead(encr, key),
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb => ipsecmb::raw_aead(encr, key),
            Backend::MultiBuffer => match encr {
                EncrAlg::AesGcm128 | EncrAlg::AesGcm256 => mb::Gcm::new(key)
                    .map(|g| Box::new(g) as Box<dyn raw::RawAead>)
                    .ok_or(CryptoError::Unsupported {
                        backend: "multibuffer (this CPU lacks VAES/VPCLMULQDQ/AVX-512)",
                        alg: encr.name(),
                    }),
                _ => Err(CryptoError::Unsupported {
                    backend: "multibuffer",
                    alg: encr.name(),
                }),
            },
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled()),
        }
    }

    pub(crate) fn raw_mac(
        self,
        integ: IntegAlg,
        key: &[u8],
    ) -> Result<Box<dyn raw::RawMac>, CryptoError> {
        match self {
            Backend::RustCrypto => rustcrypto::raw_mac(integ, key),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => awslc::raw_mac(integ, key),
            #[cfg(feature = "ring")]
            Backend::Ring => ring::raw_mac(integ, key),
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb => ipsecmb::raw_mac(integ, key),
            // The multi-buffer kernel is AES-GCM only.
            Backend::MultiBuffer => Err(CryptoError::Unsupported {
                backend: "multibuffer",
                alg: integ.name(),
            }),
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled()),
        }
    }

    pub(crate) fn raw_cbc(
        self,
        encr: EncrAlg,
        key: &[u8],
    ) -> Result<Box<dyn raw::RawCbc>, CryptoError> {
        match self {
            Backend::RustCrypto => rustcrypto::raw_cbc(encr, key),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => awslc::raw_cbc(encr, key),
            #[cfg(feature = "ring")]
            Backend::Ring => ring::raw_cbc(encr, key),
            #[cfg(feature = "ipsec-mb")]
            Backend::IpsecMb => ipsecmb::raw_cbc(encr, key),
            // The multi-buffer kernel is AES-GCM only.
            Backend::MultiBuffer => Err(CryptoError::Unsupported {
                backend: "multibuffer",
                alg: encr.name(),
            }),
            #[allow(unreachable_patterns)]
            other => Err(other.not_compiled()),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `Auto` choice: backends to try for a suite, fastest first. Backends
/// not compiled in, or without the suite, are skipped by [`build`], which
/// falls back to RustCrypto (every suite).
///
/// Measured table (bench/results/crypto_backends.md, run 2026-11-23 with
/// `cargo bench -p espresso-bench --bench crypto_backends`): rank = geometric
/// mean of seal and open Mops at 64, 512 and 1420 B, bursts of 32, per-burst
/// minimum. Geomeans (aws-lc / ring / rustcrypto):
/// AES-GCM-128 6.73 / 6.20 / 2.02; AES-GCM-256 6.35 / 5.72 / 1.92;
/// ChaCha20-Poly1305 2.16 / 2.21 / 0.43; AES-CBC-128 + SHA1 1.29 / 0.58 / 1.36;
/// AES-CBC-128 + SHA-256 1.26 / 1.27 / 1.40; AES-CBC-x + SHA-384/512 about
/// 0.60 / 0.62 / 0.59 (within noise); NULL + SHA1 1.73 / 0.68 / 2.13;
/// NULL + SHA-256 1.67 / 1.85 / 2.12; NULL + SHA-384/512 0.68 / 0.75 / 0.71.
/// (SHA-1/SHA-256: RustCrypto uses SHA-NI; ring has no SHA-NI SHA-1.)
/// Legacy suites exist in RustCrypto only.
///
/// AES-GCM goes first to the multi-buffer kernel ([`mb`]) where the CPU has
/// VAES/VPCLMULQDQ/AVX-512: measured with `bench/e2e/crypto_perf_ref.sh`
/// and `cargo bench -p espresso-bench --bench gcm_mb` (bench/results/gcm_mb.md),
/// it seals 3.4x (64 B) to 1.8x (1420 B) faster than aws-lc-rs and
/// 1.3x-2.1x faster than DPDK's crypto_aesni_mb on CPU time.
///
/// AES-CBC + HMAC, NULL + HMAC and ChaCha20-Poly1305 go first to
/// intel-ipsec-mb ([`ipsecmb`], cargo feature `ipsec-mb`) called in bursts:
/// its multi-buffer CBC and HMAC kernels run the packets of a burst in
/// parallel SIMD lanes, 2-6x the single-buffer libraries above (measured
/// through the ESP path with `esp_mops --backend`, bench/results/esp_vs_dpdk.md).
pub fn auto_order(suite: Suite) -> &'static [Backend] {
    use Backend::{AwsLc, IpsecMb, MultiBuffer, Ring, RustCrypto};
    const MB_LC_RING_RC: &[Backend] = &[MultiBuffer, AwsLc, Ring, RustCrypto];
    const IMB_RING_LC_RC: &[Backend] = &[IpsecMb, Ring, AwsLc, RustCrypto];
    const IMB_RC_LC_RING: &[Backend] = &[IpsecMb, RustCrypto, AwsLc, Ring];
    const IMB_RC_RING_LC: &[Backend] = &[IpsecMb, RustCrypto, Ring, AwsLc];
    const IMB_RING_RC_LC: &[Backend] = &[IpsecMb, Ring, RustCrypto, AwsLc];
    const RC: &[Backend] = &[RustCrypto];
    match (suite.encr, suite.integ) {
        (EncrAlg::AesGcm128 | EncrAlg::AesGcm256, _) => MB_LC_RING_RC,
        (EncrAlg::ChaCha20Poly1305, _) => IMB_RING_LC_RC,
        (EncrAlg::TripleDesCbc, _) | (_, IntegAlg::HmacMd5_96) => RC,
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256, IntegAlg::HmacSha1_96) => IMB_RC_LC_RING,
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256, IntegAlg::HmacSha256_128) => IMB_RC_LC_RING,
        (EncrAlg::AesCbc128 | EncrAlg::AesCbc256, _) => IMB_RING_LC_RC,
        (EncrAlg::Null, IntegAlg::HmacSha1_96) => IMB_RC_LC_RING,
        (EncrAlg::Null, IntegAlg::HmacSha256_128) => IMB_RC_RING_LC,
        (EncrAlg::Null, _) => IMB_RING_RC_LC,
    }
}

/// Prepares the calling thread for the packet path: creates the per-thread
/// state that some backends keep (intel-ipsec-mb's manager, the caches of
/// expanded keys of [`key_cache`] at their first size, one set each), so
/// that the thread's bursts do not allocate. Packet threads call it once
/// when they start; calling it again is cheap. Returns the bytes of this
/// thread's key caches (each grows to [`key_cache::entries`] entries, in
/// [`poll_key_caches`], once a worker needs it).
pub fn warm_thread() -> usize {
    #[cfg(feature = "ipsec-mb")]
    if let Err(e) = ffi::ipsecmb::warm_thread() {
        tracing::warn!("intel-ipsec-mb: {e}; its SAs will fail on this thread");
    }
    #[cfg(feature = "ipsec-mb")]
    let cbc = ipsecmb::warm_cbc_cache();
    #[cfg(not(feature = "ipsec-mb"))]
    let cbc = 0;
    mb::warm_gcm_cache() + cbc
}

/// Once per poll loop of a packet thread, between bursts: wipes, from this
/// thread's key caches, the expanded keys of SAs removed since the last
/// call (one atomic load per cache when no SA was removed: a removed SA's
/// keys do not stay in an idle worker's memory), and gives a cache its
/// full size ([`key_cache::entries`]) the first time a third SA of its
/// kind needed an entry on this thread. Returns the bytes allocated (0
/// but at most once per cache and thread).
#[inline]
pub fn poll_key_caches() -> usize {
    #[cfg(feature = "ipsec-mb")]
    let cbc = ipsecmb::poll_cbc_cache();
    #[cfg(not(feature = "ipsec-mb"))]
    let cbc = 0;
    mb::poll_gcm_cache() + cbc
}

/// Bytes of this thread's key caches now: (AES-GCM on the VAES kernel,
/// ipsec-mb AES-CBC / NULL + HMAC); each is created (one set) if the
/// thread had none.
pub fn key_cache_bytes() -> (usize, usize) {
    #[cfg(feature = "ipsec-mb")]
    let cbc = ipsecmb::warm_cbc_cache();
    #[cfg(not(feature = "ipsec-mb"))]
    let cbc = 0;
    (mb::warm_gcm_cache(), cbc)
}

/// Options of [`build_with`].
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// 64-bit extended sequence numbers (RFC 4304).
    pub esn: bool,
    /// Which library to use.
    pub backend: Backend,
    /// Accept the legacy algorithms (3DES-CBC, HMAC-MD5-96; RFC 8221). A
    /// warning is logged for every legacy SA built.
    pub allow_legacy: bool,
    /// The CBC IV key k' (see the CBC IV derivation in the module docs): by
    /// default 32 bytes drawn from the OS RNG once per build. Set it only for
    /// known-answer tests and cross-backend comparisons, which need identical
    /// IVs; a fixed IV key in production makes CBC IVs predictable.
    pub iv_key: Option<Key>,
    /// The direction of the SA the transform serves (`None`: both, for
    /// tests and tools that seal and open with one object). A backend may
    /// then keep only the key material that direction uses (ipsec-mb
    /// AES-CBC: one key schedule, no IV key inbound) and refuse the other
    /// operation.
    pub direction: Option<Direction>,
}

/// Splits an AEAD key into the cipher key and the 4-byte salt (last 4 bytes).
pub(crate) fn split_salt(encr: EncrAlg, enc: &[u8]) -> Result<(&[u8], [u8; 4]), CryptoError> {
    if enc.len() != encr.key_len() || enc.len() < 4 {
        return Err(CryptoError::KeyLength {
            alg: encr.name(),
            expected: encr.key_len(),
            got: enc.len(),
        });
    }
    let (k, s) = enc.split_at(enc.len() - 4);
    let mut salt = [0u8; 4];
    salt.copy_from_slice(s);
    Ok((k, salt))
}

/// Builds the transform of one SA: `suite` with its keys (AEAD `enc_key` =
/// key || 4-byte salt; `auth_key` empty for AEAD and NULL-free suites),
/// `esn` for 64-bit sequence numbers, on `backend`. Legacy suites are refused
/// here; use [`build_with`] and [`BuildOptions::allow_legacy`] for them.
pub fn build(
    suite: Suite,
    enc_key: &Key,
    auth_key: &Key,
    esn: bool,
    backend: Backend,
) -> Result<Box<dyn EspCipher>, CryptoError> {
    build_with(
        suite,
        enc_key,
        auth_key,
        &BuildOptions {
            esn,
            backend,
            ..BuildOptions::default()
        },
    )
}

/// [`build`] with every option.
pub fn build_with(
    suite: Suite,
    enc_key: &Key,
    auth_key: &Key,
    opts: &BuildOptions,
) -> Result<Box<dyn EspCipher>, CryptoError> {
    suite.validate(opts.allow_legacy)?;
    if enc_key.len() != suite.encr.key_len() {
        return Err(CryptoError::KeyLength {
            alg: suite.encr.name(),
            expected: suite.encr.key_len(),
            got: enc_key.len(),
        });
    }
    if auth_key.len() != suite.integ.key_len() {
        return Err(CryptoError::KeyLength {
            alg: if suite.integ == IntegAlg::None {
                "integrity key of a combined-mode suite (none)"
            } else {
                suite.integ.name()
            },
            expected: suite.integ.key_len(),
            got: auth_key.len(),
        });
    }
    if suite.encr == EncrAlg::TripleDesCbc {
        let k = enc_key.bytes();
        // RFC 2451 §2.2 / SP 800-67: K1 = K2 or K2 = K3 degrades to single DES.
        if k[..8] == k[8..16] || k[8..16] == k[16..24] {
            return Err(CryptoError::WeakKey {
                alg: suite.encr.name(),
                why: "K1 = K2 or K2 = K3 reduces 3DES to single DES",
            });
        }
    }
    let mut iv_key = Zeroizing::new([0u8; 32]);
    match &opts.iv_key {
        Some(k) if k.len() == 32 => iv_key.copy_from_slice(k.bytes()),
        Some(k) => {
            return Err(CryptoError::KeyLength {
                alg: "CBC IV key",
                expected: 32,
                got: k.len(),
            })
        }
        None => {
            use rand::TryRngCore;
            rand::rngs::OsRng
                .try_fill_bytes(&mut iv_key[..])
                .map_err(|e| CryptoError::Rng(e.to_string()))?;
        }
    }
    if suite.encr.is_legacy() || suite.integ.is_legacy() {
        tracing::warn!(
            encr = suite.encr.name(),
            integ = suite.integ.name(),
            "building an SA with a legacy algorithm (RFC 8221: 3DES-CBC and HMAC-MD5-96 \
             are deprecated); allowed by allow_legacy"
        );
    }
    let candidates: &[Backend] = match opts.backend {
        Backend::Auto => auto_order(suite),
        ref b => std::slice::from_ref(b),
    };
    let mut last = None;
    for &b in candidates {
        match b.build_one(
            suite,
            enc_key.bytes(),
            auth_key.bytes(),
            opts.esn,
            &iv_key,
            opts.direction,
        ) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    // Auto falls back to RustCrypto, which has every suite.
    if opts.backend == Backend::Auto {
        return rustcrypto::build(suite, enc_key.bytes(), auth_key.bytes(), opts.esn, &iv_key);
    }
    Err(last.unwrap_or(CryptoError::Unsupported {
        backend: opts.backend.name(),
        alg: suite.encr.name(),
    }))
}
