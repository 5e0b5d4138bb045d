use zeroize::Zeroize;

use super::*;

// ---------------------------------------------------------------------------
// HMAC of a burst: the library, or the interleaved SHA-NI path for short
// packets
// ---------------------------------------------------------------------------

/// No interleaved path (SHA-384/512): every packet goes to the library or
/// the 8-lane path.
pub(super) struct NoSmall;

impl SmallMac for NoSmall {
    const MAX_BLOCKS: usize = 0;
    const ONE_PASS_CBC: bool = false;
    type State = [u32; 1];
    const DIGEST: usize = 0;
    #[cfg(test)]
    fn iv() -> [u32; 1] {
        [0]
    }
    fn compress(_: &mut [u32; 1], _: &[u8; 64]) {}
    fn digest(_: &[u32; 1], _: &mut [u8; 32]) {}
    fn from_lib(_: &[u8; 64]) -> [u32; 1] {
        [0]
    }
}

/// No wide path (SHA-256: the 16-lane SHA-256 kernel measured no gain,
/// `hmac_wide`'s module docs): uninhabited, so `Option<NoWide>` is always
/// `None` and its branch is compiled out.
pub(super) enum NoWide {}

impl WideMac for NoWide {
    fn takes(&self, _: usize) -> bool {
        match *self {}
    }
    fn mac_burst(&self, _: &[u8; 64], _: &[u8; 64], _: &[&[u8]], _: &mut [[u8; 32]]) {
        match *self {}
    }
}

/// The raw keys of one SA, in one array of a length fixed by the hash
/// family (`EspHash::Keys`):
/// the AES key at 0..32 (16 or 32 bytes used; none for NULL), the IV key at
/// 32..48 (outbound AES-CBC only), the HMAC key at 48.. (RFC 4868 length:
/// 20 / 32 / 48 / 64 bytes).
pub(super) trait KeyBytes:
    AsRef<[u8]> + AsMut<[u8]> + Zeroize + Send + Sync + 'static
{
    /// All zero.
    const ZERO: Self;
}

impl<const N: usize> KeyBytes for [u8; N] {
    const ZERO: Self = [0; N];
}

/// Where the HMAC key starts in [`KeyBytes`] (after the AES and IV keys).
pub(super) const AUTH_AT: usize = 48;

/// The 8-lane HMAC-SHA-384 or -SHA-512 kernel token (`NoSmall`'s wide
/// path: one type for both hashes, so that they share their transforms'
/// code; the digest length is picked once per burst, as the vtable of the
/// boxed token it replaces did).
pub(super) enum Wide512 {
    Sha384(Sha384Wide),
    Sha512(Sha512Wide),
}

impl WideMac for Wide512 {
    #[inline]
    fn takes(&self, _: usize) -> bool {
        // Every length (both kernels).
        true
    }
    fn mac_burst(&self, ipad: &[u8; 64], opad: &[u8; 64], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        match self {
            Wide512::Sha384(w) => w.mac_burst(ipad, opad, msgs, out),
            Wide512::Sha512(w) => w.mac_burst(ipad, opad, msgs, out),
        }
    }
}

/// What an ipsec-mb CBC/NULL + HMAC transform knows of its hash family
/// when it is compiled: the wide path's kernel token and the size of the
/// SA's raw keys (no token is boxed).
pub(super) trait EspHash: SmallMac {
    /// The 16- / 8-lane path's kernel token ([`NoWide`]: none).
    type Wide: WideMac;
    /// `Some` where the CPU runs the wide path for `alg`.
    fn wide(alg: imb::HashAlg) -> Option<Self::Wide>;
    /// The SA's raw keys: `[u8; AUTH_AT + longest HMAC key of the family]`.
    type Keys: KeyBytes;
}

impl EspHash for Sha1 {
    type Wide = Sha1Wide;
    fn wide(_: imb::HashAlg) -> Option<Sha1Wide> {
        Sha1Wide::new()
    }
    type Keys = [u8; AUTH_AT + 20];
}

impl EspHash for Sha256 {
    type Wide = NoWide;
    fn wide(_: imb::HashAlg) -> Option<NoWide> {
        None
    }
    type Keys = [u8; AUTH_AT + 32];
}

impl EspHash for NoSmall {
    type Wide = Wide512;
    fn wide(alg: imb::HashAlg) -> Option<Wide512> {
        match alg {
            imb::HashAlg::Sha384 => Sha384Wide::new().map(Wide512::Sha384),
            imb::HashAlg::Sha512 => Sha512Wide::new().map(Wide512::Sha512),
            _ => None,
        }
    }
    type Keys = [u8; AUTH_AT + 64];
}

/// The integrity half of an SA: the hash's burst paths; the key states
/// (the hash states after the ipad and opad blocks, in the library's
/// layout) are in the worker's key cache ([`CbcKeys`]), and every burst
/// path reads them from there: the library itself, for SHA-1/SHA-256 on a
/// CPU with SHA-NI the interleaved path, for SHA-1 and SHA-384/512 on a CPU
/// with AVX-512 the 16- / 8-lane path (chosen at install time: when
/// present it takes every packet of a burst up to its length limit, the
/// SHA-NI path only a remainder of at most `hmac_wide::SMALL_REST`). The
/// two paths are kernel tokens without key material, one byte each at
/// most, held inline (their types follow from the transform's type
/// parameter: SHA-1 `Sha1Wide`, SHA-256 none, SHA-384/512 [`Wide512`]).
pub(super) struct Mac<H: EspHash> {
    pub(super) alg: imb::HashAlg,
    pub(super) small: Option<ShaNiHmac<H>>,
    pub(super) wide: Option<H::Wide>,
}

impl<H: EspHash> Mac<H> {
    pub(super) fn new(alg: imb::HashAlg) -> Self {
        // Every path reads the library's states (a key longer than the
        // block was hashed first by the library, RFC 2104 §2).
        let small = if H::MAX_BLOCKS > 0 && sha_ni() {
            ShaNiHmac::<H>::new()
        } else {
            None
        };
        Mac {
            alg,
            small,
            wide: H::wide(alg),
        }
    }

    /// Truncated MACs of `msgs` on the library.
    #[inline(always)]
    fn lib(
        &self,
        keys: &CbcKeys,
        msgs: &[&[u8]],
        tags: &mut [[u8; 32]],
    ) -> Result<(), imb::ImbError> {
        imb::hmac_trunc_pads(self.alg, &keys.ipad, &keys.opad, msgs, tags)
    }

    /// The 16-lane SHA-1 path: whole groups of sixteen there, a remainder
    /// of at most `SMALL_REST` packets on the SHA-NI path when the SA has
    /// it (sixteen lanes would mostly compute nothing).
    #[inline]
    pub(super) fn macs_wide(
        &self,
        keys: &CbcKeys,
        w: &H::Wide,
        msgs: &[&[u8]],
        tags: &mut [[u8; 32]],
    ) {
        let n = msgs.len().min(tags.len());
        let rest = n % hmac_wide::LANES;
        let (ipad, opad) = (&keys.ipad, &keys.opad);
        let (Some(k), true) = (&self.small, rest > 0 && rest <= hmac_wide::SMALL_REST) else {
            w.mac_burst(ipad, opad, &msgs[..n], &mut tags[..n]);
            return;
        };
        let whole = n - rest;
        // No group of sixteen (a group of 1-4 packets of one SA): the wide
        // kernel would only run its stack wipe.
        if whole > 0 {
            w.mac_burst(ipad, opad, &msgs[..whole], &mut tags[..whole]);
        }
        let mut small: ArrayVec<SmallJob<'_>, { hmac_wide::SMALL_REST }> = ArrayVec::new();
        for &m in &msgs[whole..n] {
            small.push(SmallJob {
                msg: m,
                out: [0; 32],
            });
        }
        k.mac_burst(ipad, opad, &mut small);
        for (t, j) in tags[whole..n].iter_mut().zip(&small) {
            *t = j.out;
        }
    }

    /// The 16-lane path: packets of at most `w.max_blocks()` compressions
    /// there, longer ones in one library burst (the choice is by packet
    /// length, made per packet). A burst of one kind goes straight through.
    pub(super) fn macs_16(
        &self,
        keys: &CbcKeys,
        w: &H::Wide,
        msgs: &[&[u8]],
        tags: &mut [[u8; 32]],
    ) -> Result<(), imb::ImbError> {
        let wide = |m: &&[u8]| w.takes(m.len());
        let n_wide = msgs.iter().filter(|m| wide(m)).count();
        if n_wide == msgs.len() {
            self.macs_wide(keys, w, msgs, tags);
            return Ok(());
        }
        if n_wide == 0 {
            return self.lib(keys, msgs, tags);
        }
        let mut part: [ArrayVec<&[u8], CHUNK>; 2] = [ArrayVec::new(), ArrayVec::new()];
        let mut idx: [ArrayVec<usize, CHUNK>; 2] = [ArrayVec::new(), ArrayVec::new()];
        for (i, m) in msgs.iter().enumerate().take(CHUNK) {
            let k = usize::from(!wide(m));
            part[k].push(m);
            idx[k].push(i);
        }
        let mut out = [[[0u8; 32]; CHUNK]; 2];
        self.macs_wide(keys, w, &part[0], &mut out[0]);
        self.lib(keys, &part[1], &mut out[1])?;
        for k in 0..2 {
            for (&i, t) in idx[k].iter().zip(&out[k]) {
                tags[i] = *t;
            }
        }
        Ok(())
    }

    /// Truncated MACs (the ICVs: `imb::HashAlg::trunc_len` bytes) of
    /// `msgs` into the first bytes of `tags` (same order): packets of at
    /// most `H::MAX_BLOCKS` compressions on the interleaved path, the others
    /// in one library burst. Err if the library refused its part.
    #[inline]
    pub(super) fn macs(
        &self,
        keys: &CbcKeys,
        msgs: &[&[u8]],
        tags: &mut [[u8; 32]],
    ) -> Result<(), imb::ImbError> {
        if let Some(w) = &self.wide {
            return self.macs_16(keys, w, msgs, tags);
        }
        let Some(k) = &self.small else {
            // SHA-1, SHA-384/512 or no SHA-NI: the whole burst in one call.
            return self.lib(keys, msgs, tags);
        };
        let mut small: ArrayVec<SmallJob<'_>, CHUNK> = ArrayVec::new();
        let mut small_idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
        let mut big: ArrayVec<&[u8], CHUNK> = ArrayVec::new();
        let mut big_idx: ArrayVec<usize, CHUNK> = ArrayVec::new();
        for (i, &m) in msgs.iter().enumerate().take(CHUNK) {
            if ShaNiHmac::<H>::blocks(m.len()) <= H::MAX_BLOCKS {
                small.push(SmallJob {
                    msg: m,
                    out: [0; 32],
                });
                small_idx.push(i);
            } else {
                big.push(m);
                big_idx.push(i);
            }
        }
        if !small.is_empty() {
            k.mac_burst(&keys.ipad, &keys.opad, &mut small);
            for (&i, j) in small_idx.iter().zip(&small) {
                tags[i] = j.out;
            }
        }
        if !big.is_empty() {
            let mut bt = [[0u8; 32]; CHUNK];
            self.lib(keys, &big, &mut bt)?;
            for (&i, t) in big_idx.iter().zip(&bt) {
                tags[i] = *t;
            }
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)] // the key material of one SA, set up once
pub(super) fn mac_esp<H: EspHash>(
    suite: Suite,
    enc: &[u8],
    auth: &[u8],
    esn: bool,
    iv_key: &[u8; 32],
    keep: imb::AesKeyUse,
    h: imb::HashAlg,
    arch: imb::Arch,
) -> Result<(Box<dyn EspCipher>, u64), CryptoError> {
    let mac = Mac::<H>::new(h);
    // The library writes the IPsec truncation of the MAC (`Mac::macs`).
    let icv_len = match u8::try_from(suite.integ.icv_len()) {
        Ok(n) if usize::from(n) == h.trunc_len() => n,
        _ => return Err(unsupported(suite.integ.name())),
    };
    if suite.encr == EncrAlg::Null {
        let keys = SaKeys::<H>::new(&[], auth, iv_key, h, keep)?;
        let id = keys.id();
        let m = NullHmac {
            keys,
            mac,
            icv_len,
            arch,
        };
        return Ok((
            if esn {
                Box::new(NullHmacEsp::<true, H>(m))
            } else {
                Box::new(NullHmacEsp::<false, H>(m))
            },
            id,
        ));
    }
    let keys = SaKeys::<H>::new(enc, auth, iv_key, h, keep)?;
    let id = keys.id();
    let c = CbcHmac {
        ivs: match AesNi::detect() {
            Some(ni) => IvSrc::Ni(ni),
            None => IvSrc::Soft,
        },
        keys,
        mac,
        icv_len,
        arch,
    };
    // One-pass open (SHA-NI HMAC + VAES CBC decryption) where the hash
    // asks for it and the SA decrypts on a CPU that has both.
    let dec = (H::ONE_PASS_CBC && keep != imb::AesKeyUse::Encrypt && c.mac.small.is_some())
        .then(|| CbcDec::new(enc.len()))
        .flatten();
    let c: Box<dyn EspCipher> = match (dec, esn) {
        (Some(dec), true) => Box::new(CbcHmacOnePass {
            base: CbcHmacEsp::<true, H>(c),
            dec,
        }),
        (Some(dec), false) => Box::new(CbcHmacOnePass {
            base: CbcHmacEsp::<false, H>(c),
            dec,
        }),
        (None, true) => Box::new(CbcHmacEsp::<true, H>(c)),
        (None, false) => Box::new(CbcHmacEsp::<false, H>(c)),
    };
    Ok((c, id))
}
