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

use std::cell::RefCell;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::key_cache::{self, KeyCache};
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
    build_gcm_id(enc_key, esn).map(|(c, _)| c)
}

/// [`build_gcm`] and the transform's key-cache id.
fn build_gcm_id(enc_key: &Key, esn: bool) -> Option<(Box<dyn EspCipher>, u64)> {
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
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.get_mut(..key.len())?.copy_from_slice(key);
        // The raw key, salt and a fresh id per transform; the expanded keys
        // live in the worker's cache (`GCM_KEYS`).
        let id = key_cache::new_id();
        macro_rules! gcm {
            ($nr:literal, $esn:literal) => {
                Box::new(EspGcm::<$nr, $esn> {
                    key: KeyBytes(*raw),
                    salt,
                    id,
                }) as Box<dyn EspCipher>
            };
        }
        let c = match (key.len(), esn) {
            (16, false) => gcm!(10, false),
            (16, true) => gcm!(10, true),
            (24, false) => gcm!(12, false),
            (24, true) => gcm!(12, true),
            (32, false) => gcm!(14, false),
            (32, true) => gcm!(14, true),
            _ => return None,
        };
        Some((c, id))
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

/// An AES key of up to 32 bytes (the first `4 * (NR - 6)` used), wiped on
/// drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct KeyBytes([u8; 32]);

/// The ESP transform: one SA's raw AES key, salt and ESN mode, with the AES
/// round count and ESN chosen at build time (const generics), so the packet
/// path has no branch on either. 48 bytes: the expanded keys (832 bytes)
/// are in the packet thread's key cache (`GCM_KEYS`, see
/// `crypto::key_cache`), found by `id` once per burst and expanded there on
/// a miss.
#[cfg(target_arch = "x86_64")]
struct EspGcm<const NR: usize, const ESN: bool> {
    key: KeyBytes,
    salt: u32,
    id: u64,
}

#[cfg(target_arch = "x86_64")]
impl key_cache::CacheSlot for vaes512::Keys {
    fn blank() -> Self {
        vaes512::Keys::blank()
    }
    fn tag(&self) -> u64 {
        vaes512::Keys::tag(self)
    }
    fn set_tag(&mut self, id: u64) {
        vaes512::Keys::set_tag(self, id)
    }
    #[cfg(test)]
    fn is_zero(&self) -> bool {
        vaes512::Keys::is_zero(self)
    }
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// This thread's cache of expanded AES-GCM keys: one set at first
    /// (created by `crypto::warm_thread` when a worker starts, else on first
    /// use), the full cache from the poll loop after a third SA needed it
    /// (`poll_gcm_cache`).
    static GCM_KEYS: RefCell<KeyCache<vaes512::Keys>> = RefCell::new(KeyCache::small());
}

/// Creates this thread's (one-set) AES-GCM key cache (if the CPU runs the
/// kernel) and returns its size in bytes.
pub(crate) fn warm_gcm_cache() -> usize {
    #[cfg(target_arch = "x86_64")]
    if supported() {
        return GCM_KEYS.with(|c| c.borrow().bytes());
    }
    0
}

/// Once per poll loop: wipes the entries of removed SAs from this thread's
/// AES-GCM key cache (one atomic load when no SA was removed) and gives it
/// its full size once a third SA needed it; the bytes allocated (0 but
/// once).
#[inline]
pub(crate) fn poll_gcm_cache() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // Threads that never used the cache do not create one here.
        GCM_KEYS
            .try_with(|c| c.try_borrow_mut().map_or(0, |mut c| c.poll()))
            .unwrap_or(0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Hits, misses and wipes of this thread's AES-GCM key cache, and its
/// entries.
pub fn gcm_cache_stats() -> (key_cache::CacheStats, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        GCM_KEYS.with(|c| {
            let c = c.borrow();
            (c.stats(), c.len())
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        (key_cache::CacheStats::default(), 0)
    }
}

#[cfg(target_arch = "x86_64")]
impl<const NR: usize, const ESN: bool> EspGcm<NR, ESN> {
    /// Runs `f` on this SA's expanded keys from the thread's cache
    /// (expanding them there on a miss), inside the burst's stack wipe.
    #[inline(always)]
    fn with_keys<R>(&self, f: impl FnOnce(&vaes512::Keys) -> R) -> R {
        GCM_KEYS.with(|c| {
            let mut c = c.borrow_mut();
            // SAFETY: `EspGcm` is only built by `build_gcm`, after
            // `supported()` confirmed the CPU features: the kernel's (and
            // `expand_into`'s), and AVX-512 F, which `burst512`'s wipe needs
            // (the closure runs in this unsafe block).
            unsafe {
                wipe::burst512::<{ wipe::GCM_WIPE }, _>(|| {
                    let keys = c.get(self.id, |e| {
                        let ok = vaes512::expand_into(e, &self.key.0[..4 * (NR - 6)]);
                        debug_assert!(ok);
                    });
                    f(keys)
                })
            }
        })
    }
}

#[cfg(target_arch = "x86_64")]
impl<const NR: usize, const ESN: bool> Drop for EspGcm<NR, ESN> {
    fn drop(&mut self) {
        // The raw key wipes itself (`KeyBytes`); the expanded copies go at
        // each worker's next sweep.
        key_cache::retire(self.id);
    }
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
        let salt = self.salt;
        // SAFETY: the kernel's CPU features were checked when `self` was
        // built (`build_gcm`).
        self.with_keys(|k| unsafe { k.seal_esp::<NR, ESN>(salt, jobs) })
    }

    fn open(&self, jobs: &mut [OpenJob<'_>]) {
        let salt = self.salt;
        // SAFETY: as in `seal`.
        self.with_keys(|k| unsafe { k.open_esp::<NR, ESN>(salt, jobs) })
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod cache_tests;
