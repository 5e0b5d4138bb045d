//! Batched AES-GCM for ESP (RFC 4106) on VAES + VPCLMULQDQ + AVX-512.
//!
//! One SA's burst is sealed or opened in one call into a SIMD kernel
//! (`vaes512`): AES-CTR runs four blocks per 512-bit register, several
//! registers in flight, GHASH uses carry-less multiplies on four blocks at a
//! time with the key powers `H^1..H^32` computed once when the SA is
//! installed, and one reduction per 32 blocks. Runs of four short packets
//! (under 240 bytes, same register count) are processed together: the AES
//! rounds of their registers are interleaved. The tag mask `E(J0)`, the
//! AAD block and the length block ride in lanes of the registers of the
//! packet's first and last chunk (see the module docs of `vaes512`).
//!
//! Also here: the 16-lane AVX-512 kernels of other suites, each behind a
//! type that exists only once the CPU was checked: SHA-1 (`sha1_x16`),
//! SHA-384/512 (`sha512_x8`), SHA-NI (`sha_ni`), and ChaCha20
//! (`chacha_x16`, with `poly1305` / `poly1305_x8` (AVX-512 IFMA, eight
//! packets per register) and the burst AEAD `chacha_poly` for
//! ChaCha20-Poly1305 ESP packets: all of them with IFMA, else those of at
//! most 112 bytes).
//!
//! The CPU is checked once, when a cipher is built: without AVX-512
//! F/BW/VL, VAES, VPCLMULQDQ (and AES-NI, PCLMULQDQ, SSSE3, SSE4.1, BMI2), [`build_gcm`] returns `None` and the
//! caller uses a library backend.
//!
//! `unsafe` here: the calls into the `#[target_feature]` kernel, made only
//! from objects that exist after the runtime check succeeded, and the masked
//! partial loads/stores inside `vaes512`, and the cache hint in `prefetch`
//! (used by `sa::sad`). Everything else is safe code.

use super::raw::{RawAead, TAG_LEN};
use super::{EspCipher, Key, OpenJob, SealJob};

pub(crate) mod aes_ni;
pub(crate) mod cbc_dec;
pub mod chacha_poly;
pub mod chacha_x16;
#[cfg(target_arch = "x86_64")]
mod key_schedule;
mod poly1305;
pub mod poly1305_x8;
pub mod prefetch;
pub mod sha1_x16;
pub mod sha512_x8;
pub mod sha_ni;
#[cfg(target_arch = "x86_64")]
mod vaes512;
pub(crate) mod wipe;
#[cfg(target_arch = "x86_64")]
mod x16;

/// Backend name reported by [`EspCipher::backend`].
pub const BACKEND_NAME: &str = "mb-vaes512";

/// Largest plaintext GCM allows under one nonce (NIST SP 800-38D: 2^39 - 256 bits).
const MAX_DATA: u64 = (1 << 36) - 32;

/// True if this CPU runs the VAES/VPCLMULQDQ/AVX-512 kernel.
pub fn supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("vaes")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
            && std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Builds the ESP transform for AES-GCM-128/192/256 with a 16-byte ICV
/// (`enc_key` = AES key || 4-byte salt, 20/28/36 bytes), or `None` if the
/// CPU lacks the instructions or the key length is not one of those.
pub fn build_gcm(enc_key: &Key, esn: bool) -> Option<Box<dyn EspCipher>> {
    let k = enc_key.bytes();
    if k.len() < 4 {
        return None;
    }
    let (key, salt) = k.split_at(k.len() - 4);
    let salt = u32::from_be_bytes([salt[0], salt[1], salt[2], salt[3]]);
    #[cfg(target_arch = "x86_64")]
    {
        if !supported() {
            return None;
        }
        // SAFETY: `supported()` just confirmed every feature that
        // `vaes512::expand` is compiled for.
        let mut keys = unsafe { vaes512::expand(key) }?;
        keys.set_salt(salt);
        // One heap block per transform: the keys with the salt inside.
        Some(match (keys.rounds(), esn) {
            (10, false) => Box::new(EspGcm::<10, false> { keys }),
            (10, true) => Box::new(EspGcm::<10, true> { keys }),
            (12, false) => Box::new(EspGcm::<12, false> { keys }),
            (12, true) => Box::new(EspGcm::<12, true> { keys }),
            (14, false) => Box::new(EspGcm::<14, false> { keys }),
            (14, true) => Box::new(EspGcm::<14, true> { keys }),
            _ => return None,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (key, salt, esn);
        None
    }
}

/// The raw kernel: AES-GCM with a 96-bit nonce and a 128-bit tag, key
/// scheduled and hash-key powers precomputed. Exists only on a CPU that
/// passed [`supported`].
pub struct Gcm {
    #[cfg(target_arch = "x86_64")]
    keys: Box<vaes512::Keys>,
}

impl Gcm {
    /// Schedules a 16-, 24- or 32-byte AES key; `None` for other lengths or
    /// when the CPU lacks the instructions.
    pub fn new(key: &[u8]) -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        {
            if !supported() {
                return None;
            }
            // SAFETY: `supported()` just confirmed every feature that
            // `vaes512::expand` is compiled for.
            let keys = unsafe { vaes512::expand(key) }?;
            Some(Gcm {
                keys: Box::new(keys),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = key;
            None
        }
    }

    /// AES rounds (10, 12 or 14).
    pub fn rounds(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            self.keys.rounds()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    }

    /// Encrypts `data` in place and returns the tag. `None` (and `data`
    /// untouched) if `data` is longer than GCM allows (2^36 - 32 bytes).
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Option<[u8; 16]> {
        if data.len() as u64 > MAX_DATA {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let k = &*self.keys;
            // SAFETY: a `Gcm` exists only after `supported()` returned true
            // (see `Gcm::new`), so the kernel's target features are present.
            Some(unsafe {
                let m = vaes512::msg(k, nonce, aad);
                match k.rounds() {
                    10 => k.seal::<10>(&m, data),
                    12 => k.seal::<12>(&m, data),
                    _ => k.seal::<14>(&m, data),
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (nonce, aad);
            None
        }
    }

    /// Verifies `tag` (constant time) and decrypts `data` in place. On a
    /// mismatch returns false and `data` holds unspecified bytes.
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
        if data.len() as u64 > MAX_DATA {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let k = &*self.keys;
            // SAFETY: as in `seal`: the CPU features were checked when `self`
            // was built.
            unsafe {
                let m = vaes512::msg(k, nonce, aad);
                match k.rounds() {
                    10 => k.open::<10>(&m, data, tag),
                    12 => k.open::<12>(&m, data, tag),
                    _ => k.open::<14>(&m, data, tag),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (nonce, aad, tag);
            false
        }
    }
}

impl RawAead for Gcm {
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        match Gcm::seal(self, nonce, aad, data) {
            Some(t) => t,
            None => {
                data.fill(0);
                [0; TAG_LEN]
            }
        }
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], ct_tag: &mut [u8]) -> bool {
        if ct_tag.len() < TAG_LEN {
            return false;
        }
        let (data, tag) = ct_tag.split_at_mut(ct_tag.len() - TAG_LEN);
        let tag: [u8; TAG_LEN] = match (&*tag).try_into() {
            Ok(t) => t,
            Err(_) => return false,
        };
        Gcm::open(self, nonce, aad, data, &tag)
    }
}

/// The ESP transform: one SA's key, salt and ESN mode, with the AES round
/// count and ESN chosen at build time (const generics), so the packet path
/// has no branch on either. The keys are held inline (the boxed transform
/// is the one heap block of the SA's key material).
#[cfg(target_arch = "x86_64")]
struct EspGcm<const NR: usize, const ESN: bool> {
    keys: vaes512::Keys,
}

#[cfg(target_arch = "x86_64")]
impl<const NR: usize, const ESN: bool> EspCipher for EspGcm<NR, ESN> {
    fn iv_len(&self) -> usize {
        8
    }
    fn pad_align(&self) -> usize {
        4
    }
    fn icv_len(&self) -> usize {
        TAG_LEN
    }
    fn backend(&self) -> &'static str {
        BACKEND_NAME
    }

    fn seal(&self, jobs: &mut [SealJob<'_>]) {
        // SAFETY: `EspGcm` is only built by `build_gcm`, after `supported()`
        // confirmed the CPU features: the kernel's, and AVX-512 F, which
        // `burst512`'s wipe needs (the closure runs in this unsafe block).
        unsafe {
            wipe::burst512::<{ wipe::GCM_WIPE }, _>(|| {
                self.keys.seal_esp::<NR, ESN>(self.keys.salt(), jobs)
            })
        }
    }

    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        // SAFETY: as in `seal`.
        unsafe {
            wipe::burst512::<{ wipe::GCM_WIPE }, _>(|| {
                self.keys.open_esp::<NR, ESN>(self.keys.salt(), jobs)
            })
        }
    }
}
