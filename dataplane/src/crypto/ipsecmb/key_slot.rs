use std::cell::RefCell;

use zeroize::Zeroize;

use super::*;
use crate::crypto::key_cache::{self, CacheSlot, KeyCache};
use crate::crypto::mb::aes_ni::AesNi;
use crate::crypto::mb::wipe;

// ---------------------------------------------------------------------------
// AES-CBC + HMAC and NULL + HMAC: raw keys per SA, expanded keys in the
// worker's cache (`crypto::key_cache`)
// ---------------------------------------------------------------------------

/// Stack cleared after a key expansion into the cache (a miss only): the
/// frames of `fill` and of the library's key-expansion and one-block hash
/// functions, which take key bytes through registers and locals. Not
/// measured by `wipe`'s probe test (those run the SIMD kernels); the
/// library itself clears its own stack under `SAFE_DATA`.
const FILL_WIPE: usize = 2048;

/// One cache entry: everything the kernels of an ipsec-mb CBC/NULL
/// transform read. 832 bytes, 64-byte aligned.
///
/// - `enc` / `dec`: the library's AES encryption / decryption schedules
///   (an outbound SA's `dec` and an inbound SA's `enc` are zero, as is
///   every round key past the key's `nr + 1`, and both for NULL);
/// - `ipad` / `opad`: the HMAC states, in the library's layout
///   ([`imb::hmac_pads_into`]), which the library, the SHA-NI path
///   (`hmac_burst`) and the wide paths (`hmac_wide`) read;
/// - `iv`: the IV generator's AES-128 round keys (`transform::AesIvGen`'s
///   key: IV = AES-128_k'(0^64 || seq)); zero for an inbound SA.
#[repr(C, align(64))]
pub(super) struct CbcKeys {
    tag: u64,
    pub(super) enc: imb::RoundKeys,
    pub(super) dec: imb::RoundKeys,
    pub(super) ipad: [u8; 64],
    pub(super) opad: [u8; 64],
    pub(super) iv: [[u8; 16]; 11],
}

impl Zeroize for CbcKeys {
    fn zeroize(&mut self) {
        self.tag.zeroize();
        self.enc.zeroize();
        self.dec.zeroize();
        self.ipad.zeroize();
        self.opad.zeroize();
        self.iv.zeroize();
    }
}

impl CacheSlot for CbcKeys {
    fn blank() -> Self {
        CbcKeys {
            tag: 0,
            enc: imb::RoundKeys([[0; 16]; 15]),
            dec: imb::RoundKeys([[0; 16]; 15]),
            ipad: [0; 64],
            opad: [0; 64],
            iv: [[0; 16]; 11],
        }
    }
    fn tag(&self) -> u64 {
        self.tag
    }
    fn set_tag(&mut self, id: u64) {
        self.tag = id;
    }
    #[cfg(test)]
    fn is_zero(&self) -> bool {
        self.tag == 0
            && self
                .enc
                .0
                .iter()
                .chain(&self.dec.0)
                .flatten()
                .all(|&b| b == 0)
            && self.ipad.iter().chain(&self.opad).all(|&b| b == 0)
            && self.iv.iter().flatten().all(|&b| b == 0)
    }
}

thread_local! {
    /// This thread's cache of expanded ipsec-mb CBC/NULL + HMAC keys: one
    /// set at first (created by `crypto::warm_thread` when a worker starts,
    /// else on first use), the full cache from the poll loop after a third
    /// SA needed it (`poll_cbc_cache`).
    pub(super) static CBC_KEYS: RefCell<KeyCache<CbcKeys>> = RefCell::new(KeyCache::small());
}

/// Creates this thread's (one-set) CBC/NULL + HMAC key cache and returns
/// its size in bytes.
pub(crate) fn warm_cbc_cache() -> usize {
    CBC_KEYS.with(|c| c.borrow().bytes())
}

/// Once per poll loop: wipes the entries of removed SAs from this thread's
/// CBC/NULL + HMAC key cache (one atomic load when no SA was removed) and
/// gives it its full size once a third SA needed it; the bytes allocated
/// (0 but once).
#[inline]
pub(crate) fn poll_cbc_cache() -> usize {
    // Threads that never used the cache do not create one here.
    CBC_KEYS
        .try_with(|c| c.try_borrow_mut().map_or(0, |mut c| c.poll()))
        .unwrap_or(0)
}

/// Hits, misses and wipes of this thread's CBC/NULL + HMAC key cache, and
/// its entries.
pub fn cbc_cache_stats() -> (key_cache::CacheStats, usize) {
    CBC_KEYS.with(|c| {
        let c = c.borrow();
        (c.stats(), c.len())
    })
}

/// One SA's raw key material, wiped on drop: the AES key (none for NULL),
/// the IV key (outbound AES-CBC only) and the HMAC key as given (hashed by
/// the library on a miss if longer than the block, as RFC 2104 says: kept
/// raw rather than as its two chaining states because that is what the
/// library's own set-up function takes, and RFC 4868 keys are no longer
/// than those states), all in one array whose length the hash family
/// fixes ([`EspHash::Keys`]: no allocation of its own), the hash, and the
/// transform's cache id.
pub(super) struct SaKeys<H: EspHash> {
    keys: H::Keys,
    /// The cache id as bytes: the struct then has alignment 1, so the
    /// transform's one-byte fields take what would be its padding
    /// (SHA-384/512: 130 bytes for the whole AES-CBC transform instead of
    /// 136).
    id: [u8; 8],
    enc_len: u8,
    auth_len: u8,
    alg: imb::HashAlg,
    /// Which AES schedules (and whether the IV key) the SA uses.
    pub(super) keep: imb::AesKeyUse,
}

impl<H: EspHash> SaKeys<H> {
    /// `enc`: 16/24/32 bytes, or empty for NULL; `auth`: at most the
    /// family's longest RFC 4868 key (SHA-1 20, SHA-256 32, SHA-384/512
    /// 64 bytes).
    pub(super) fn new(
        enc: &[u8],
        auth: &[u8],
        iv_key: &[u8; 32],
        alg: imb::HashAlg,
        keep: imb::AesKeyUse,
    ) -> Result<Self, CryptoError> {
        if !matches!(enc.len(), 0 | 16 | 24 | 32) {
            return Err(lib_err(imb::ImbError::Invalid {
                what: "AES key length",
                value: enc.len(),
                why: "must be 16, 24 or 32 bytes",
            }));
        }
        let mut s = SaKeys::<H> {
            keys: H::Keys::ZERO,
            id: key_cache::new_id().to_ne_bytes(),
            enc_len: enc.len() as u8,
            alg,
            keep,
            auth_len: 0,
        };
        let k = s.keys.as_mut();
        if auth.len() > k.len() - AUTH_AT {
            // `s` drops here: its id is retired, its bytes wiped.
            return Err(CryptoError::KeyLength {
                alg: "HMAC key",
                expected: k.len() - AUTH_AT,
                got: auth.len(),
            });
        }
        k[..enc.len()].copy_from_slice(enc);
        if keep != imb::AesKeyUse::Decrypt && !enc.is_empty() {
            k[32..AUTH_AT].copy_from_slice(&iv_key[..16]);
        }
        k[AUTH_AT..AUTH_AT + auth.len()].copy_from_slice(auth);
        // At most 64 (checked above).
        s.auth_len = auth.len() as u8;
        // Refuse now what a miss would refuse later (the key lengths are
        // checked; this runs the library's set-up once on this thread).
        let mut probe = CbcKeys::blank();
        let ok = s.fill(&mut probe, AesNi::detect());
        probe.zeroize();
        if !ok {
            return Err(unsupported("HMAC key set-up (refused by the library)"));
        }
        Ok(s)
    }

    /// The transform's key-cache id.
    #[inline(always)]
    pub(super) fn id(&self) -> u64 {
        u64::from_ne_bytes(self.id)
    }

    /// AES key length in bytes (0: NULL).
    pub(super) fn enc_len(&self) -> usize {
        usize::from(self.enc_len)
    }

    /// The raw IV key (for a CPU without AES-NI: `IvSrc::Soft`).
    pub(super) fn iv_key(&self) -> &[u8; 16] {
        self.keys.as_ref()[32..AUTH_AT]
            .try_into()
            .expect("16 bytes")
    }

    /// Expands the keys into `e`, every field but the tag overwritten.
    /// False if the library refused (no manager on this thread).
    fn fill(&self, e: &mut CbcKeys, ni: Option<AesNi>) -> bool {
        wipe::burst::<FILL_WIPE, _>(|| {
            let n = self.enc_len();
            let k = self.keys.as_ref();
            let mut ok = true;
            if n == 0 {
                e.enc.0 = [[0; 16]; 15];
                e.dec.0 = [[0; 16]; 15];
            } else {
                ok &= imb::aes_expand_into(&k[..n], &mut e.enc, &mut e.dec).is_ok();
                let nr = n / 4 + 6;
                e.enc.0[nr + 1..].fill([0; 16]);
                e.dec.0[nr + 1..].fill([0; 16]);
                match self.keep {
                    imb::AesKeyUse::Encrypt => e.dec.0 = [[0; 16]; 15],
                    imb::AesKeyUse::Decrypt => e.enc.0 = [[0; 16]; 15],
                    imb::AesKeyUse::Both => {}
                }
            }
            let auth = &k[AUTH_AT..AUTH_AT + usize::from(self.auth_len)];
            ok &= imb::hmac_pads_into(self.alg, auth, &mut e.ipad, &mut e.opad).is_ok();
            match ni {
                Some(ni) if n != 0 && self.keep != imb::AesKeyUse::Decrypt => {
                    ni.expand_into(self.iv_key(), &mut e.iv)
                }
                _ => e.iv = [[0; 16]; 11],
            }
            ok
        })
    }

    /// Runs `f` on this SA's expanded keys from the thread's cache
    /// (expanded there on a miss; `None` if the library refused).
    #[inline(always)]
    pub(super) fn with<R>(&self, ni: Option<AesNi>, f: impl FnOnce(Option<&CbcKeys>) -> R) -> R {
        CBC_KEYS.with(|c| {
            let mut c = c.borrow_mut();
            f(c.try_get(self.id(), |e| self.fill(e, ni)))
        })
    }
}

impl<H: EspHash> Drop for SaKeys<H> {
    fn drop(&mut self) {
        self.keys.zeroize();
        // The expanded copies go at each worker's next sweep.
        key_cache::retire(self.id());
    }
}
