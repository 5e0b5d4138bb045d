//! Intel's Multi-Buffer Crypto for IPsec library (intel-ipsec-mb 1.3, Debian
//! `libipsec-mb-dev`) behind a safe burst API: AES-CBC, HMAC-SHA1/SHA-2,
//! AES-GCM and ChaCha20-Poly1305 (feature `ipsec-mb`).
//!
//! This is the engine under DPDK's `crypto_aesni_mb` PMD, called directly:
//! no cryptodev ops, mbufs or queue pairs. AES-CBC and HMAC go through the
//! library's synchronous burst functions (`IMB_SUBMIT_CIPHER_BURST`,
//! `IMB_SUBMIT_HASH_BURST`), which spread a burst of buffers over the SIMD
//! lanes of the multi-buffer kernels (CBC encryption interleaves up to 16
//! buffers with VAES on AVX-512; HMAC-SHA runs 8 or 16 buffers per register).
//! The AEADs (AES-GCM, ChaCha20-Poly1305) go through the job API (submit,
//! then flush), unchecked as DPDK submits them, with the checks that matter
//! made here first (`check_aead_ops`).
//!
//! # Managers
//! A library manager (`IMB_MGR`) is not thread-safe: every thread that calls
//! into this module gets its own, created on the first call (allocated by
//! the library, a few hundred KiB) and freed when the thread exits. A
//! packet thread calls [`warm_thread`] at start so that its packet path
//! never allocates. The manager's code path (AVX-512, AVX2, AVX, SSE, or no
//! AES-NI) is the library's choice for this CPU ([`arch`]).
//!
//! # Memory safety
//! Every pointer handed to the library comes from a slice borrowed for the
//! duration of the call, and lengths are checked first ([`ImbError::Invalid`]):
//! CBC data a non-zero multiple of 16 bytes, and the library's own job
//! validation is on for CBC and HMAC (the checking variants of submit);
//! AEAD jobs are checked here and submitted unchecked. The burst functions
//! complete every job before they return; the job API is flushed before
//! the AEAD functions return. So no job outlives the borrows.
//!
//! # Keys
//! [`AesKey`], [`HmacKey`] and [`ChachaKey`] hold scheduled key material and
//! wipe it when dropped (`zeroize`); temporaries are wiped too.

use std::cell::RefCell;
use std::ffi::CStr;
use std::ptr::NonNull;

use zeroize::Zeroize;

mod in_place;
pub use in_place::{aes_cbc_decrypt_with, aes_cbc_encrypt_with, aes_expand_into};
pub use in_place::{hmac_full_pads, hmac_pads_into, hmac_trunc_pads};

/// Raw bindgen output over `intel-ipsec-mb.h` (job structure, enums) and the
/// C shim `shim/imb_shim.c`.
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    missing_docs,
    unsafe_op_in_unsafe_fn,
    unused_qualifications
)]
#[allow(clippy::all, clippy::undocumented_unsafe_blocks)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/imb_bindings.rs"));
}

/// Jobs per library call; longer slices are processed in chunks of this.
pub const MAX_BURST: usize = 64;

/// AES block length (CBC data must be a multiple of it; IV length).
pub const AES_BLOCK: usize = 16;

/// What went wrong in a call into the library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImbError {
    /// No manager for this thread (allocation or initialisation failed, or
    /// the thread is exiting).
    #[error("intel-ipsec-mb: no multi-buffer manager for this thread")]
    NoManager,
    /// An argument the library cannot take.
    #[error("intel-ipsec-mb: {what} = {value}: {why}")]
    Invalid {
        /// The argument.
        what: &'static str,
        /// Its value.
        value: usize,
        /// Why it is refused.
        why: &'static str,
    },
    /// The library reported an error.
    #[error("intel-ipsec-mb: {op} failed: {} (error {code})", strerror(*code))]
    Library {
        /// The operation.
        op: &'static str,
        /// The library's error number (`imb_get_errno`).
        code: i32,
    },
}

fn strerror(code: i32) -> String {
    // SAFETY: imb_get_strerror returns a pointer to a static string for any
    // value (an "unknown error" string for unknown ones), never NULL.
    let p = unsafe { sys::espresso_imb_strerror(code) };
    if p.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-null, NUL-terminated static string (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The code path the library chose for this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Portable C (no AES-NI).
    NoAesni,
    /// SSE4.2 + AES-NI (and SHA-NI where present).
    Sse,
    /// AVX.
    Avx,
    /// AVX2.
    Avx2,
    /// AVX-512 (with VAES/VPCLMULQDQ where present).
    Avx512,
}

impl Arch {
    /// Short name (`avx512`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Arch::NoAesni => "no-aesni",
            Arch::Sse => "sse",
            Arch::Avx => "avx",
            Arch::Avx2 => "avx2",
            Arch::Avx512 => "avx512",
        }
    }

    fn from_raw(a: u32) -> Option<Arch> {
        Some(match a {
            x if x == sys::IMB_ARCH_NOAESNI => Arch::NoAesni,
            x if x == sys::IMB_ARCH_SSE => Arch::Sse,
            x if x == sys::IMB_ARCH_AVX => Arch::Avx,
            x if x == sys::IMB_ARCH_AVX2 => Arch::Avx2,
            x if x == sys::IMB_ARCH_AVX512 => Arch::Avx512,
            _ => return None,
        })
    }
}

/// The library version string (`1.3.0`).
pub fn version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let p = unsafe { sys::espresso_imb_version() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null static string (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// One thread's manager and job array.
struct Mgr {
    ptr: NonNull<sys::IMB_MGR>,
    arch: Arch,
    /// Jobs for the synchronous burst calls (the job API uses the
    /// manager's own queue).
    jobs: Box<[sys::IMB_JOB; MAX_BURST]>,
}

impl Mgr {
    fn new() -> Result<Mgr, ImbError> {
        // SAFETY: no arguments; returns NULL on failure.
        let p = unsafe { sys::espresso_imb_new() };
        let ptr = NonNull::new(p).ok_or(ImbError::NoManager)?;
        // SAFETY: `ptr` is an initialised manager.
        let raw = unsafe { sys::espresso_imb_arch(ptr.as_ptr()) };
        let Some(arch) = Arch::from_raw(raw) else {
            // SAFETY: allocated just above, not used elsewhere.
            unsafe { sys::espresso_imb_free(ptr.as_ptr()) };
            return Err(ImbError::NoManager);
        };
        Ok(Mgr {
            ptr,
            arch,
            jobs: Box::new(std::array::from_fn(|_| sys::IMB_JOB::default())),
        })
    }

    fn errno(&self) -> i32 {
        // SAFETY: valid manager owned by this thread.
        unsafe { sys::espresso_imb_errno(self.ptr.as_ptr()) }
    }
}

impl Drop for Mgr {
    fn drop(&mut self) {
        // SAFETY: allocated by espresso_imb_new, freed once; no job is in
        // flight (every call flushes before returning).
        unsafe { sys::espresso_imb_free(self.ptr.as_ptr()) }
    }
}

thread_local! {
    static MGR: RefCell<Option<Mgr>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's manager, creating it on first use.
fn with_mgr<R>(f: impl FnOnce(&mut Mgr) -> Result<R, ImbError>) -> Result<R, ImbError> {
    MGR.try_with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| ImbError::NoManager)?;
        if slot.is_none() {
            *slot = Some(Mgr::new()?);
        }
        match slot.as_mut() {
            Some(m) => f(m),
            None => Err(ImbError::NoManager),
        }
    })
    .map_err(|_| ImbError::NoManager)?
}

/// Creates this thread's manager now (a packet thread calls it before its
/// first burst, so the packet path does not allocate) and returns the code
/// path the library chose.
pub fn warm_thread() -> Result<Arch, ImbError> {
    with_mgr(|m| Ok(m.arch))
}

/// The code path the library uses on this CPU (creates this thread's manager
/// if needed).
pub fn arch() -> Result<Arch, ImbError> {
    warm_thread()
}

/// Which schedules an [`AesKey`] keeps: an SA works in one direction and
/// needs only one (an outbound CBC SA encrypts, an inbound one decrypts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AesKeyUse {
    /// Encryption and decryption schedules.
    Both,
    /// The encryption schedule only: [`aes_cbc_decrypt`] refuses the key.
    Encrypt,
    /// The decryption schedule only: [`aes_cbc_encrypt`] refuses the key.
    Decrypt,
}

/// An expanded AES-128/192/256 key (the encryption and/or decryption
/// schedule, [`AesKeyUse`]), wiped on drop.
pub struct AesKey {
    enc: Option<Box<RoundKeys>>,
    dec: Option<Box<RoundKeys>>,
    len: usize,
}

/// 15 round keys of 16 bytes (AES-256's 15; what the library may read for
/// any key size, as DPDK's and VPP's sessions allocate), 16-byte aligned as
/// the library requires. 240 bytes, a plain 16-byte-aligned heap block.
#[repr(C, align(16))]
pub struct RoundKeys(pub [[u8; 16]; 15]);

impl Drop for RoundKeys {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Zeroize for RoundKeys {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl AesKey {
    /// Expands a 16-, 24- or 32-byte key (both schedules).
    pub fn new(key: &[u8]) -> Result<AesKey, ImbError> {
        Self::new_for(key, AesKeyUse::Both)
    }

    /// Expands a 16-, 24- or 32-byte key, keeping the schedules `keep`.
    pub fn new_for(key: &[u8], keep: AesKeyUse) -> Result<AesKey, ImbError> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(ImbError::Invalid {
                what: "AES key length",
                value: key.len(),
                why: "must be 16, 24 or 32 bytes",
            });
        }
        // The library writes both; the one not kept is wiped when these drop.
        let mut enc = Box::new(RoundKeys([[0; 16]; 15]));
        let mut dec = Box::new(RoundKeys([[0; 16]; 15]));
        aes_expand_into(key, &mut enc, &mut dec)?;
        let (enc, dec) = match keep {
            AesKeyUse::Both => (Some(enc), Some(dec)),
            AesKeyUse::Encrypt => (Some(enc), None),
            AesKeyUse::Decrypt => (None, Some(dec)),
        };
        Ok(AesKey {
            enc,
            dec,
            len: key.len(),
        })
    }

    /// Key length in bytes.
    pub fn key_len(&self) -> usize {
        self.len
    }

    /// The decryption schedule, if kept: the 15 round keys of FIPS-197
    /// §5.3.5's equivalent inverse cipher in the order `aesdec` uses them
    /// (key `r` = InvMixColumns of encryption key `nr - r`, the first and
    /// last not mixed), the first `nr + 1` meaningful. Lent to another AES
    /// decryption of the same key (the VAES CBC kernel), so that an SA keeps
    /// one schedule.
    pub fn dec_round_keys(&self) -> Option<&[[u8; 16]; 15]> {
        self.dec.as_deref().map(|k| &k.0)
    }

    /// Bytes of the schedules kept (heap).
    pub fn schedule_bytes(&self) -> usize {
        (usize::from(self.enc.is_some()) + usize::from(self.dec.is_some()))
            * std::mem::size_of::<RoundKeys>()
    }
}

/// One AES-CBC operation in place: `data` (a non-zero multiple of 16 bytes)
/// is encrypted or decrypted with `iv`.
pub struct CbcOp<'a> {
    /// The data, replaced by its encryption or decryption.
    pub data: &'a mut [u8],
    /// The initialisation vector.
    pub iv: [u8; AES_BLOCK],
}

/// Encrypts every op in place, AES-CBC (multi-buffer: the ops of a burst
/// run in parallel lanes).
pub fn aes_cbc_encrypt(key: &AesKey, ops: &mut [CbcOp<'_>]) -> Result<(), ImbError> {
    cbc(key, ops, sys::IMB_DIR_ENCRYPT)
}

/// Decrypts every op in place, AES-CBC.
pub fn aes_cbc_decrypt(key: &AesKey, ops: &mut [CbcOp<'_>]) -> Result<(), ImbError> {
    cbc(key, ops, sys::IMB_DIR_DECRYPT)
}

fn cbc(
    key: &AesKey,
    ops: &mut [CbcOp<'_>],
    dir: sys::IMB_CIPHER_DIRECTION,
) -> Result<(), ImbError> {
    for op in ops.iter() {
        if op.data.is_empty() || op.data.len() % AES_BLOCK != 0 {
            return Err(ImbError::Invalid {
                what: "AES-CBC data length",
                value: op.data.len(),
                why: "must be a non-zero multiple of 16 bytes",
            });
        }
    }
    if ops.is_empty() {
        return Ok(());
    }
    // The schedule this direction reads (the library reads only that one).
    let keys = if dir == sys::IMB_DIR_ENCRYPT {
        key.enc.as_deref()
    } else {
        key.dec.as_deref()
    }
    .ok_or(ImbError::Invalid {
        what: "AES-CBC direction",
        value: dir as usize,
        why: "the key was expanded for the other direction only",
    })?;
    in_place::cbc_with(keys, key.len, ops, dir)
}

/// A hash of the HMAC family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Block length of the compression function.
    pub const fn block_len(self) -> usize {
        match self {
            HashAlg::Sha1 | HashAlg::Sha256 => 64,
            HashAlg::Sha384 | HashAlg::Sha512 => 128,
        }
    }
    /// Truncated MAC length of IPsec (RFC 2404, RFC 4868): SHA-1 12
    /// bytes, SHA-2 half the digest; one of the two tag lengths the library
    /// accepts for HMAC (the other is the full digest).
    pub const fn trunc_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 12,
            HashAlg::Sha256 => 16,
            HashAlg::Sha384 => 24,
            HashAlg::Sha512 => 32,
        }
    }
    /// Full digest length.
    pub const fn digest_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
    fn raw(self) -> sys::IMB_HASH_ALG {
        match self {
            HashAlg::Sha1 => sys::IMB_AUTH_HMAC_SHA_1,
            HashAlg::Sha256 => sys::IMB_AUTH_HMAC_SHA_256,
            HashAlg::Sha384 => sys::IMB_AUTH_HMAC_SHA_384,
            HashAlg::Sha512 => sys::IMB_AUTH_HMAC_SHA_512,
        }
    }
}

/// An HMAC key: the hash states after the key XOR ipad and XOR opad blocks
/// (RFC 2104), precomputed once; wiped on drop. Each state is the hash's
/// chaining words in native byte order (20 bytes for SHA-1, 32 for SHA-256,
/// 64 for SHA-384/512), zero-padded to 64; [`HmacKey::pads`] lends them to
/// other implementations of the same HMAC.
#[repr(C, align(16))]
pub struct HmacKey {
    ipad: [u8; 64],
    opad: [u8; 64],
    alg: HashAlg,
}

impl HmacKey {
    /// Precomputes the HMAC states for `key` (any length: keys longer than
    /// the block are hashed first, RFC 2104 §2).
    pub fn new(alg: HashAlg, key: &[u8]) -> Result<HmacKey, ImbError> {
        let mut k = HmacKey {
            ipad: [0; 64],
            opad: [0; 64],
            alg,
        };
        hmac_pads_into(alg, key, &mut k.ipad, &mut k.opad)?;
        Ok(k)
    }

    /// The hash.
    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// The ipad and opad states, as the library reads them: the chaining
    /// words in native byte order (see [`HmacKey`]).
    #[inline]
    pub fn pads(&self) -> (&[u8; 64], &[u8; 64]) {
        (&self.ipad, &self.opad)
    }
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.ipad.zeroize();
        self.opad.zeroize();
    }
}

/// Full-length HMACs: the MAC of `msgs[i]` is written to the first
/// [`HashAlg::digest_len`] bytes of `tags[i]` (truncate it as the protocol
/// says; the rest of `tags[i]` is left as it was), the messages of a burst
/// in parallel lanes. Messages must not be empty (the library cannot hash
/// an empty message; ESP always authenticates at least SPI and sequence
/// number). `tags` must have at least `msgs.len()` entries.
pub fn hmac(key: &HmacKey, msgs: &[&[u8]], tags: &mut [[u8; 64]]) -> Result<(), ImbError> {
    hmac_full_pads(key.alg, &key.ipad, &key.opad, msgs, tags)
}

/// Truncated HMACs for IPsec: the MAC of `msgs[i]`, truncated to
/// [`HashAlg::trunc_len`] bytes, is written to the first bytes of `tags[i]`
/// (the rest of `tags[i]` is left as it was). One library burst per
/// [`MAX_BURST`] messages, without the library's per-job validation: every
/// job is checked here (non-empty message; the tag length is the truncated
/// one, which fits the 32-byte tag buffer). `tags` must have at least
/// `msgs.len()` entries.
pub fn hmac_trunc(key: &HmacKey, msgs: &[&[u8]], tags: &mut [[u8; 32]]) -> Result<(), ImbError> {
    hmac_trunc_pads(key.alg, &key.ipad, &key.opad, msgs, tags)
}

/// A ChaCha20-Poly1305 key (RFC 8439), wiped on drop. Held as the eight
/// little-endian words of the ChaCha20 state (RFC 8439 §2.3: state words
/// 4..11), which is the form a vector ChaCha20 kernel loads; in memory
/// (little-endian: the library exists for x86-64 only) they are the key's
/// 32 bytes in order, which is what the library reads. One copy serves both.
pub struct ChachaKey {
    words: [u32; 8],
}

// The library reads the words' memory as the key bytes.
const _: () = assert!(cfg!(target_endian = "little"));

impl ChachaKey {
    /// A 32-byte key.
    pub fn new(key: &[u8]) -> Result<ChachaKey, ImbError> {
        let key: &[u8; 32] = key.try_into().map_err(|_| ImbError::Invalid {
            what: "ChaCha20-Poly1305 key length",
            value: key.len(),
            why: "must be 32 bytes",
        })?;
        let mut words = [0u32; 8];
        for (w, b) in words.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Ok(ChachaKey { words })
    }

    /// The key as the eight little-endian state words (RFC 8439 §2.3).
    #[inline(always)]
    pub fn words(&self) -> &[u32; 8] {
        &self.words
    }
}

impl Drop for ChachaKey {
    fn drop(&mut self) {
        self.words.zeroize();
    }
}

/// One AEAD operation in place (AES-GCM or ChaCha20-Poly1305, 96-bit nonce,
/// 128-bit tag).
pub struct AeadOp<'a> {
    /// The nonce.
    pub nonce: [u8; 12],
    /// Additional authenticated data.
    pub aad: &'a [u8],
    /// Plaintext (seal) or ciphertext (open), replaced in place.
    pub data: &'a mut [u8],
    /// Output: the tag computed over the ciphertext. After an open, compare
    /// it (in constant time) with the received tag before using `data`.
    pub tag: [u8; 16],
}

/// Which way an AEAD op goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encrypt and compute the tag.
    Seal,
    /// Compute the tag over the ciphertext and decrypt (the caller verifies
    /// the tag).
    Open,
}

/// An AES-GCM key (128, 192 or 256 bits): round keys and GHASH key powers
/// as the library precomputes them, wiped on drop.
pub struct GcmKey {
    data: Box<sys::gcm_key_data>,
    len: usize,
}

impl GcmKey {
    /// Precomputes a 16-, 24- or 32-byte AES-GCM key.
    pub fn new(key: &[u8]) -> Result<GcmKey, ImbError> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(ImbError::Invalid {
                what: "AES-GCM key length",
                value: key.len(),
                why: "must be 16, 24 or 32 bytes",
            });
        }
        let mut k = GcmKey {
            data: Box::default(),
            len: key.len(),
        };
        with_mgr(|m| {
            // SAFETY: `key` holds key.len() bytes; `data` is a whole,
            // properly aligned gcm_key_data the library fills.
            let r = unsafe {
                sys::espresso_imb_gcm_pre(
                    m.ptr.as_ptr(),
                    key.as_ptr().cast(),
                    key.len(),
                    &mut *k.data,
                )
            };
            if r != 0 {
                return Err(ImbError::Invalid {
                    what: "AES-GCM key length",
                    value: key.len(),
                    why: "refused by the library",
                });
            }
            Ok(())
        })?;
        Ok(k)
    }
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        // gcm_key_data is plain bytes (arrays of u8 in a union).
        let p: *mut sys::gcm_key_data = &mut *self.data;
        // SAFETY: `p` points to one owned, initialised gcm_key_data; writing
        // zero bytes over it leaves a valid value (all its fields are byte
        // arrays). Volatile so the wipe is not optimised away.
        unsafe {
            let bytes = p.cast::<u8>();
            for i in 0..std::mem::size_of::<sys::gcm_key_data>() {
                bytes.add(i).write_volatile(0);
            }
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// ChaCha20-Poly1305 over every op, in place.
pub fn chacha20_poly1305(
    key: &ChachaKey,
    dir: Direction,
    ops: &mut [AeadOp<'_>],
) -> Result<(), ImbError> {
    let k = AeadParams {
        cipher: sys::IMB_CIPHER_CHACHA20_POLY1305,
        hash: sys::IMB_AUTH_CHACHA20_POLY1305,
        // The words' 32 bytes are the key in order (little-endian).
        key: key.words.as_ptr().cast(),
        key_len: 32,
        op: "ChaCha20-Poly1305 job",
    };
    aead(&k, dir, ops)
}

/// AES-GCM (96-bit nonce, 128-bit tag) over every op, in place.
pub fn aes_gcm(key: &GcmKey, dir: Direction, ops: &mut [AeadOp<'_>]) -> Result<(), ImbError> {
    let k = AeadParams {
        cipher: sys::IMB_CIPHER_GCM,
        hash: sys::IMB_AUTH_AES_GMAC,
        key: (&*key.data as *const sys::gcm_key_data).cast(),
        key_len: key.len as u64,
        op: "AES-GCM job",
    };
    aead(&k, dir, ops)
}

/// One AEAD key as the job API takes it (set per burst, not per packet).
struct AeadParams {
    cipher: sys::IMB_CIPHER_MODE,
    hash: sys::IMB_HASH_ALG,
    key: *const std::ffi::c_void,
    key_len: u64,
    op: &'static str,
}

/// Longest AEAD message or AAD passed to the library: far above any packet,
/// far below what GCM (2^36 - 32 bytes) and ChaCha20-Poly1305 allow.
pub const AEAD_MAX_LEN: usize = u32::MAX as usize;

/// What the library's job validation would refuse in an AEAD op, checked
/// here because the jobs are submitted unchecked (`IMB_SUBMIT_JOB_NOCHECK`,
/// as DPDK's `crypto_aesni_mb` submits them). Everything else the
/// validation looks at is fixed by the types: key lengths ([`GcmKey`]: 16,
/// 24 or 32 bytes; [`ChachaKey`]: 32), the 12-byte nonce, the 16-byte tag,
/// non-null pointers (slices), and the cipher/hash pair, direction and
/// chain order set below.
fn check_aead_ops(ops: &[AeadOp<'_>]) -> Result<(), ImbError> {
    for op in ops {
        if op.data.len() > AEAD_MAX_LEN {
            return Err(ImbError::Invalid {
                what: "AEAD message length",
                value: op.data.len(),
                why: "longer than 2^32 - 1 bytes",
            });
        }
        if op.aad.len() > AEAD_MAX_LEN {
            return Err(ImbError::Invalid {
                what: "AEAD AAD length",
                value: op.aad.len(),
                why: "longer than 2^32 - 1 bytes",
            });
        }
    }
    Ok(())
}

fn aead(k: &AeadParams, dir: Direction, ops: &mut [AeadOp<'_>]) -> Result<(), ImbError> {
    if ops.is_empty() {
        return Ok(());
    }
    check_aead_ops(ops)?;
    let (cdir, order) = match dir {
        Direction::Seal => (sys::IMB_DIR_ENCRYPT, sys::IMB_ORDER_CIPHER_HASH),
        Direction::Open => (sys::IMB_DIR_DECRYPT, sys::IMB_ORDER_HASH_CIPHER),
    };
    let gcm = k.cipher == sys::IMB_CIPHER_GCM;
    with_mgr(|m| {
        let mgr = m.ptr.as_ptr();
        let (mut completed, mut failed) = (0usize, false);
        let mut reap = |mut job: *mut sys::IMB_JOB| {
            while !job.is_null() {
                // SAFETY: a non-null pointer returned by submit/flush/
                // get_completed is a job of this manager's queue.
                let status = unsafe { (*job).status };
                if status != sys::IMB_STATUS_COMPLETED {
                    failed = true;
                }
                completed += 1;
                // SAFETY: valid manager of this thread.
                job = unsafe { sys::espresso_imb_get_completed_job(mgr) };
            }
        };
        for op in ops.iter_mut() {
            // SAFETY: valid manager; returns the next free job of its queue
            // (never NULL: completed jobs are reaped after every submit).
            let job = unsafe { sys::espresso_imb_get_next_job(mgr) };
            // SAFETY: `job` points to a job structure owned by the manager,
            // which we fill before submitting.
            let j = unsafe { &mut *job };
            j.enc_keys = k.key;
            j.dec_keys = k.key;
            j.key_len_in_bytes = k.key_len;
            j.__bindgen_anon_1.src = op.data.as_ptr();
            j.__bindgen_anon_2.dst = op.data.as_mut_ptr();
            j.__bindgen_anon_3.cipher_start_src_offset_in_bytes = 0;
            j.__bindgen_anon_4.msg_len_to_cipher_in_bytes = op.data.len() as u64;
            j.hash_start_src_offset_in_bytes = 0;
            j.__bindgen_anon_5.msg_len_to_hash_in_bytes = op.data.len() as u64;
            j.iv = op.nonce.as_ptr();
            j.iv_len_in_bytes = 12;
            if gcm {
                j.u.GCM.aad = op.aad.as_ptr().cast();
                j.u.GCM.aad_len_in_bytes = op.aad.len() as u64;
                j.u.GCM.ctx = std::ptr::null_mut();
            } else {
                j.u.CHACHA20_POLY1305.aad = op.aad.as_ptr().cast();
                j.u.CHACHA20_POLY1305.aad_len_in_bytes = op.aad.len() as u64;
                j.u.CHACHA20_POLY1305.ctx = std::ptr::null_mut();
            }
            j.auth_tag_output = op.tag.as_mut_ptr();
            j.auth_tag_output_len_in_bytes = 16;
            j.cipher_mode = k.cipher;
            j.hash_alg = k.hash;
            j.cipher_direction = cdir;
            j.chain_order = order;
            // SAFETY: the job points at `op`'s nonce, aad, data and tag and
            // at the key, borrowed until this function returns; every job
            // is completed (flushed below) before that. Unchecked submit:
            // every field the library's validation would check is valid
            // (`check_aead_ops` and the types, see there).
            reap(unsafe { sys::espresso_imb_submit_job_nocheck(mgr) });
        }
        loop {
            // SAFETY: valid manager; NULL once the queue is empty.
            let job = unsafe { sys::espresso_imb_flush_job(mgr) };
            if job.is_null() {
                break;
            }
            reap(job);
        }
        if failed || completed != ops.len() {
            return Err(ImbError::Library {
                op: k.op,
                code: m.errno(),
            });
        }
        Ok(())
    })
}
