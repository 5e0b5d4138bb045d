//! HMAC-SHA1 over a burst, sixteen messages per compression: the 16-lane
//! AVX-512 kernel `mb::sha1_x16` runs the inner hashes of up to sixteen
//! packets in runs of blocks (one call per run, the state kept in
//! registers within it: the whole blocks of the messages, then their padded
//! tails; lanes whose message is done are masked), then their outer hashes
//! in one more call. The ipad/opad states (RFC 2104) are the SA's one copy
//! in the library's layout (`ffi::ipsecmb::HmacKey`), read per burst
//! ([`WideMac::mac_burst`]) and wiped after it; nothing is allocated.
//!
//! Why: through the ESP path SHA-1 on SHA-NI costs ~20 ns per compression
//! (`sha1rnds4` is throughput-bound on Zen 4, four lanes or one), and
//! intel-ipsec-mb's own 16-lane HMAC burst ~9 ns per block plus ~44 ns per
//! message around it. Here a compression of sixteen lanes costs the kernel
//! alone, ~8.5 ns per lane on Zen 4 (figures in `bench/results/esp_vs_dpdk.md`,
//! enc9 and sha1x12 sections), so it takes SHA-1 at every length (through
//! the ESP path at 1420 bytes, 24 compressions: AES-CBC + HMAC-SHA1 open
//! ~9 % faster than with the library's HMAC). The driver is generic over the kernel ([`Kernel`]); a 16-lane
//! SHA-256 kernel written the same way measured no gain over the four-lane
//! SHA-NI path at 64/512 bytes and lost 2-5 % to the library at 1420, so
//! SHA-256 stays where it was.
//!
//! HMAC-SHA-384/512 ([`HmacWide512`]) on the 8-lane kernel
//! `mb::sha512_x8` (64-bit words, 128-byte blocks), same structure; used
//! at every length (through the ESP path +11-27 % at 64-byte packets, +8-13 %
//! at 512, +0-4 % at 1420 against the library alone).
//!
//! A burst remainder of at most [`SMALL_REST`] packets goes to the caller's
//! SHA-NI path instead, where sixteen lanes would mostly compute nothing.
//!
//! Safe code here; the kernels' `unsafe` is in `mb/`.

use zeroize::Zeroize;

#[cfg(test)]
use super::hmac_burst::pad_states;
use super::hmac_burst::words32;
use super::mb::sha1_x16::Sha1x16;
use super::mb::sha512_x8::Sha512x8;
use super::mb::wipe;

/// Lanes of the kernels.
pub(crate) const LANES: usize = 16;
/// A group of at most this many messages is better served by a narrower
/// path (the SHA-NI four-lane HMAC) where there is one.
pub(crate) const SMALL_REST: usize = 4;

/// Compressions for a message of `len` bytes: inner (key block already
/// absorbed) plus the outer one.
#[inline(always)]
pub(crate) fn blocks(len: usize) -> usize {
    (len + 9).div_ceil(64) + 1
}

/// A 16-lane compression kernel of a 64-byte-block hash with `W` 32-bit
/// state words and a digest of `4 * W` bytes (SHA-1: 5).
pub(crate) trait Kernel<const W: usize>: Copy + Send + Sync + 'static {
    /// Largest number of compressions (inner plus outer) for which the ESP
    /// path uses this kernel; longer messages go to the library.
    const MAX_BLOCKS: usize;
    /// `Some` on a CPU that runs it.
    fn detect() -> Option<Self>;
    /// The initial state (the key step of the kernel's tests).
    #[cfg(test)]
    const IV: [u32; W];
    /// One compression of one message (RustCrypto: the key step of the
    /// kernel's tests).
    #[cfg(test)]
    fn compress1(state: &mut [u32; W], block: &[u8; 64]);
    /// `n` compressions in a row per active lane, lane `l` reading
    /// `lanes[l][64 * b..]` for block `b` (the slices of inactive lanes are
    /// not read).
    fn compress_blocks(self, st: &mut [[u32; 16]; W], lanes: &[&[u8]; 16], n: usize, active: u16);
    /// One compression per active lane (no length checks: the blocks are
    /// whole by type).
    fn compress16(self, st: &mut [[u32; 16]; W], blocks: &[&[u8; 64]; 16], active: u16);
}

impl Kernel<5> for Sha1x16 {
    /// Every length: with runs of blocks in one call (sha1x12) the kernel
    /// is faster than the library's HMAC at 512- and 1420-byte packets (10
    /// and 24 compressions), and its cost per block does not grow with the
    /// length.
    const MAX_BLOCKS: usize = usize::MAX;
    fn detect() -> Option<Self> {
        Sha1x16::detect()
    }
    #[cfg(test)]
    const IV: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    #[cfg(test)]
    fn compress1(state: &mut [u32; 5], block: &[u8; 64]) {
        sha1::compress(
            state,
            std::slice::from_ref(sha1::digest::generic_array::GenericArray::from_slice(block)),
        );
    }
    #[inline(always)]
    fn compress_blocks(self, st: &mut [[u32; 16]; 5], lanes: &[&[u8]; 16], n: usize, active: u16) {
        Sha1x16::compress_blocks(self, st, lanes, n, active);
    }
    #[inline(always)]
    fn compress16(self, st: &mut [[u32; 16]; 5], blocks: &[&[u8; 64]; 16], active: u16) {
        self.compress(st, blocks, active);
    }
}

/// HMAC over a burst on a 16-lane (8-lane) kernel: what the ESP transform
/// holds (chosen at install time). It holds no key: the SA's ipad/opad
/// states are kept once, in the library's layout (`ffi::ipsecmb::HmacKey`,
/// the chaining words in native byte order), and read from there per burst.
pub(crate) trait WideMac: Send + Sync {
    /// True if a message of `len` bytes is worth this path (its
    /// compression count within the kernel's limit).
    fn takes(&self, len: usize) -> bool;
    /// Full MAC of `msgs[i]` into the first bytes of `out[i]`, with the
    /// key states `ipad` / `opad` in the library's layout.
    fn mac_burst(&self, ipad: &[u8; 64], opad: &[u8; 64], msgs: &[&[u8]], out: &mut [[u8; 32]]);
}

/// The eight native-order 64-bit words of a state in the library's layout.
#[inline(always)]
fn words64(b: &[u8; 64]) -> [u64; 8] {
    std::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_ne_bytes(w)
    })
}

/// The 16-lane kernel `K` as a [`WideMac`] (a kernel token: no key, no
/// heap).
pub(crate) struct WideKernel<K: Kernel<W>, const W: usize>(K);

/// HMAC-SHA1 on `mb::sha1_x16`.
pub(crate) type Sha1Wide = WideKernel<Sha1x16, 5>;

impl<K: Kernel<W>, const W: usize> WideKernel<K, W> {
    /// `Some` on a CPU that runs the kernel.
    pub(crate) fn new() -> Option<Self> {
        K::detect().map(WideKernel)
    }
}

impl<K: Kernel<W>, const W: usize> WideMac for WideKernel<K, W> {
    #[inline]
    fn takes(&self, len: usize) -> bool {
        blocks(len) <= K::MAX_BLOCKS
    }
    fn mac_burst(&self, ipad: &[u8; 64], opad: &[u8; 64], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        wipe::burst::<{ wipe::WIDE_HMAC_WIPE }, _>(|| {
            let mut pads = (words32::<W>(ipad), words32::<W>(opad));
            for (m, o) in msgs.chunks(LANES).zip(out.chunks_mut(LANES)) {
                mac_group(self.0, &pads.0, &pads.1, m, o);
            }
            pads.0.zeroize();
            pads.1.zeroize();
        })
    }
}

/// A block of zeros, given to lanes without a message.
static ZERO: [u8; 64] = [0; 64];

/// Precomputed HMAC states of one key, for the 16-lane kernel `K` (the
/// kernel's own tests: keys computed here, not by the library).
#[cfg(test)]
pub(crate) struct HmacWide<K: Kernel<W>, const W: usize> {
    ipad: [u32; W],
    opad: [u32; W],
    k: K,
}

#[cfg(test)]
impl<K: Kernel<W>, const W: usize> Drop for HmacWide<K, W> {
    fn drop(&mut self) {
        self.ipad.zeroize();
        self.opad.zeroize();
    }
}

#[cfg(test)]
impl<K: Kernel<W>, const W: usize> HmacWide<K, W> {
    /// Digest length.
    pub(crate) const DIGEST: usize = 4 * W;

    /// The states after the key XOR ipad / opad blocks (keys up to 64
    /// bytes: every ESP HMAC-SHA1 key), on a CPU that runs
    /// the kernel (`None` otherwise).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let k = K::detect()?;
        let (ipad, opad) = pad_states(key, K::IV, K::compress1)?;
        Some(HmacWide { ipad, opad, k })
    }

    /// Full MAC of `msgs[i]` into the first bytes of `out[i]`.
    pub(crate) fn mac_burst(&self, msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        for (m, o) in msgs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            mac_group(self.k, &self.ipad, &self.opad, m, o);
        }
    }
}

/// Up to sixteen messages: the inner hashes block by block, lanes with
/// no block left masked, then the outer hashes.
#[allow(clippy::needless_range_loop)] // lane-indexed arrays, on purpose
fn mac_group<K: Kernel<W>, const W: usize>(
    k: K,
    ipad: &[u32; W],
    opad: &[u32; W],
    msgs: &[&[u8]],
    out: &mut [[u8; 32]],
) {
    let digest = 4 * W;
    {
        let n = msgs.len().min(out.len()).min(LANES);
        let mut st = [[0u32; 16]; W];
        for (row, &v) in st.iter_mut().zip(ipad) {
            *row = [v; 16];
        }
        // The padded last one or two blocks of each message.
        let mut tails = [[0u8; 128]; LANES];
        let mut nblocks = [0usize; LANES];
        let mut full = [0usize; LANES];
        let mut most = 0;
        for i in 0..n {
            let m = msgs[i];
            let len = m.len();
            full[i] = len / 64;
            let rest = &m[full[i] * 64..];
            let t = &mut tails[i];
            t[..rest.len()].copy_from_slice(rest);
            t[rest.len()] = 0x80;
            let tail_blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
            let bits = ((64 + len) as u64) * 8;
            let end = tail_blocks * 64;
            t[end - 8..end].copy_from_slice(&bits.to_be_bytes());
            nblocks[i] = full[i] + tail_blocks;
            most = most.max(nblocks[i]);
        }
        // Inner hashes, in runs of blocks during which no lane moves from
        // its message to its tail or ends (one run of whole blocks and one
        // of tail blocks when the lengths are equal).
        let mut b = 0;
        while b < most {
            let mut active = 0u16;
            let mut end = most;
            let lanes: [&[u8]; LANES] = std::array::from_fn(|i| {
                if i >= n || b >= nblocks[i] {
                    return &[][..];
                }
                active |= 1 << i;
                if b < full[i] {
                    end = end.min(full[i]);
                    msgs[i].get(b * 64..full[i] * 64).unwrap_or(&[])
                } else {
                    end = end.min(nblocks[i]);
                    tails[i]
                        .get((b - full[i]) * 64..(nblocks[i] - full[i]) * 64)
                        .unwrap_or(&[])
                }
            });
            // Never an empty active slice (b < full, or b - full < the
            // tail's 2 blocks); the kernel would hash fewer blocks (a wrong
            // MAC) rather than panic if that ever broke. A run of one block
            // (short packets) skips the kernel's length checks.
            if end - b == 1 {
                let blocks: [&[u8; 64]; LANES] =
                    std::array::from_fn(|i| lanes[i].first_chunk::<64>().unwrap_or(&ZERO));
                k.compress16(&mut st, &blocks, active);
            } else {
                k.compress_blocks(&mut st, &lanes, end - b, active);
            }
            b = end;
        }
        // Outer hashes: key block done (opad state), one block each: the
        // inner digest, padding, length (64 + digest bytes).
        let mut outer = [[0u8; 64]; LANES];
        let bits = ((64 + digest) as u64 * 8).to_be_bytes();
        for i in 0..n {
            let o = &mut outer[i];
            for j in 0..W {
                o[4 * j..4 * j + 4].copy_from_slice(&st[j][i].to_be_bytes());
            }
            o[digest] = 0x80;
            o[56..].copy_from_slice(&bits);
        }
        for (row, &v) in st.iter_mut().zip(opad) {
            *row = [v; 16];
        }
        let blocks: [&[u8; 64]; LANES] = std::array::from_fn(|i| &outer[i]);
        let all = if n == LANES {
            u16::MAX
        } else {
            (1u16 << n) - 1
        };
        k.compress16(&mut st, &blocks, all);
        for i in 0..n {
            for j in 0..W {
                out[i][4 * j..4 * j + 4].copy_from_slice(&st[j][i].to_be_bytes());
            }
        }
        // `st` ends holding the MACs; wiped as the SHA-NI path does. The
        // outer blocks hold inner digests (no key state): left as they are.
        st.zeroize();
    }
}

/// A block of zeros, given to lanes without a message (128-byte blocks).
static ZERO128: [u8; 128] = [0; 128];

/// Lanes of the SHA-512 kernel.
const LANES8: usize = 8;

/// The 8-lane kernel `mb::sha512_x8` as a [`WideMac`] for HMAC-SHA-384
/// (`DW` = 6 digest words) or HMAC-SHA-512 (`DW` = 8): a kernel token, no
/// key, no heap.
pub(crate) struct Wide512Kernel<const DW: usize>(Sha512x8);

/// HMAC-SHA-384 on `mb::sha512_x8`.
pub(crate) type Sha384Wide = Wide512Kernel<6>;
/// HMAC-SHA-512 on `mb::sha512_x8`.
pub(crate) type Sha512Wide = Wide512Kernel<8>;

impl<const DW: usize> Wide512Kernel<DW> {
    /// `Some` on a CPU that runs the kernel (and for `DW` 6 or 8).
    pub(crate) fn new() -> Option<Self> {
        if DW != 6 && DW != 8 {
            return None;
        }
        Sha512x8::detect().map(Wide512Kernel)
    }
}

impl<const DW: usize> WideMac for Wide512Kernel<DW> {
    /// Every length: the kernel measured at or above the library from
    /// 64- to 1420-byte packets.
    #[inline]
    fn takes(&self, _len: usize) -> bool {
        true
    }
    fn mac_burst(&self, ipad: &[u8; 64], opad: &[u8; 64], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        wipe::burst::<{ wipe::WIDE_HMAC_WIPE }, _>(|| {
            let mut pads = (words64(ipad), words64(opad));
            mac_groups512::<DW>(self.0, &pads.0, &pads.1, msgs, out);
            pads.0.zeroize();
            pads.1.zeroize();
        })
    }
}

/// Precomputed HMAC-SHA-384 (`DW` = 6 digest words) or HMAC-SHA-512
/// (`DW` = 8) states of one key, for the 8-lane kernel `mb::sha512_x8`
/// (the states live here in the kernel's tests only; the ESP path reads
/// the library's, [`Wide512Kernel`]).
#[cfg(test)]
pub(crate) struct HmacWide512<const DW: usize> {
    ipad: [u64; 8],
    opad: [u64; 8],
    k: Sha512x8,
}

#[cfg(test)]
impl<const DW: usize> Drop for HmacWide512<DW> {
    fn drop(&mut self) {
        self.ipad.zeroize();
        self.opad.zeroize();
    }
}

#[cfg(test)]
impl<const DW: usize> HmacWide512<DW> {
    /// The states after the key XOR ipad / opad blocks (keys up to 128
    /// bytes: every ESP HMAC-SHA-384/512 key), on a CPU that runs the
    /// kernel (`None` otherwise, or for `DW` other than 6 and 8).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        if DW != 6 && DW != 8 {
            return None;
        }
        let k = Sha512x8::detect()?;
        let (ipad, opad) = pad_states(key, Self::IV, |s: &mut [u64; 8], b: &[u8; 128]| {
            sha2::compress512(
                s,
                std::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(b)),
            )
        })?;
        Some(HmacWide512 { ipad, opad, k })
    }

    /// Full MAC of `msgs[i]` into the first 32 bytes of `out[i]`.
    pub(crate) fn mac_burst(&self, msgs: &[&[u8]], out: &mut [[u8; 32]]) {
        mac_groups512::<DW>(self.k, &self.ipad, &self.opad, msgs, out);
    }

    /// The initial state (FIPS 180-4 §5.3.4 / §5.3.5).
    const IV: [u64; 8] = if DW == 6 {
        [
            0xcbbb9d5dc1059ed8,
            0x629a292a367cd507,
            0x9159015a3070dd17,
            0x152fecd8f70e5939,
            0x67332667ffc00b31,
            0x8eb44a8768581511,
            0xdb0c2e0d64f98fa7,
            0x47b5481dbefa4fa4,
        ]
    } else {
        [
            0x6a09e667f3bcc908,
            0xbb67ae8584caa73b,
            0x3c6ef372fe94f82b,
            0xa54ff53a5f1d36f1,
            0x510e527fade682d1,
            0x9b05688c2b3e6c1f,
            0x1f83d9abfb41bd6b,
            0x5be0cd19137e2179,
        ]
    };
}

/// Groups of at most this many messages take the one-message HMAC
/// ([`mac_one512`]) instead of the 8-lane kernel: one message on eight
/// lanes costs a whole 8-lane compression per block (bench/results/sad.md,
/// small14).
const ONE_LANE512: usize = 1;

/// Every message of a burst, eight at a time: a group of at most
/// [`ONE_LANE512`] (a lone packet of an SA, the rest of a burst) message by
/// message, the others on the 8-lane kernel (a choice by group size).
#[inline(always)]
fn mac_groups512<const DW: usize>(
    k: Sha512x8,
    ipad: &[u64; 8],
    opad: &[u64; 8],
    msgs: &[&[u8]],
    out: &mut [[u8; 32]],
) {
    for (m, o) in msgs.chunks(LANES8).zip(out.chunks_mut(LANES8)) {
        if m.len() <= ONE_LANE512 {
            for (m, o) in m.iter().zip(o.iter_mut()) {
                mac_one512::<DW>(ipad, opad, m, o);
            }
        } else {
            mac_group512::<DW>(k, ipad, opad, m, o);
        }
    }
}

/// One SHA-512 compression of `block` into `st` (RustCrypto).
#[inline(always)]
fn compress512(st: &mut [u64; 8], block: &[u8]) {
    use sha2::digest::generic_array::GenericArray;
    sha2::compress512(st, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// The HMAC-SHA-384 (`DW` = 6) or -512 (`DW` = 8) of one message with
/// RustCrypto's one-message compression, from the key states `ipad` /
/// `opad`: the same blocks as [`mac_group512`] gives a lane; the first
/// 32 bytes of the MAC into `out`.
fn mac_one512<const DW: usize>(ipad: &[u64; 8], opad: &[u64; 8], msg: &[u8], out: &mut [u8; 32]) {
    let len = msg.len();
    let full = len / 128;
    let mut st = *ipad;
    for b in msg.chunks_exact(128) {
        compress512(&mut st, b);
    }
    let rest = &msg[full * 128..];
    let mut tail = [0u8; 256];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_blocks = if rest.len() + 17 <= 128 { 1 } else { 2 };
    let end = tail_blocks * 128;
    tail[end - 16..end].copy_from_slice(&(((128 + len) as u128) * 8).to_be_bytes());
    for b in tail[..end].chunks_exact(128) {
        compress512(&mut st, b);
    }
    let mut outer = [0u8; 128];
    let digest = 8 * DW;
    for j in 0..DW {
        outer[8 * j..8 * j + 8].copy_from_slice(&st[j].to_be_bytes());
    }
    outer[digest] = 0x80;
    outer[112..].copy_from_slice(&(((128 + digest) as u128) * 8).to_be_bytes());
    st = *opad;
    compress512(&mut st, &outer);
    for j in 0..4 {
        out[8 * j..8 * j + 8].copy_from_slice(&st[j].to_be_bytes());
    }
    // The tail holds message bytes only; the chaining state is key-derived.
    st.zeroize();
    tail.zeroize();
}

/// Up to eight messages: the inner hashes block by block, lanes with
/// no block left masked, then the outer hashes. Each `out` gets the
/// first 32 bytes of the MAC (the longest ICV: SHA-512-256).
#[allow(clippy::needless_range_loop)] // lane-indexed arrays, on purpose
fn mac_group512<const DW: usize>(
    k: Sha512x8,
    ipad: &[u64; 8],
    opad: &[u64; 8],
    msgs: &[&[u8]],
    out: &mut [[u8; 32]],
) {
    let n = msgs.len().min(out.len()).min(LANES8);
    let mut st = [[0u64; 8]; 8];
    for (row, &v) in st.iter_mut().zip(ipad) {
        *row = [v; 8];
    }
    // The padded last one or two blocks of each message (128-bit
    // length field).
    let mut tails = [[0u8; 256]; LANES8];
    let mut nblocks = [0usize; LANES8];
    let mut full = [0usize; LANES8];
    let mut most = 0;
    for i in 0..n {
        let m = msgs[i];
        let len = m.len();
        full[i] = len / 128;
        let rest = &m[full[i] * 128..];
        let t = &mut tails[i];
        t[..rest.len()].copy_from_slice(rest);
        t[rest.len()] = 0x80;
        let tail_blocks = if rest.len() + 17 <= 128 { 1 } else { 2 };
        let bits = ((128 + len) as u128) * 8;
        let end = tail_blocks * 128;
        t[end - 16..end].copy_from_slice(&bits.to_be_bytes());
        nblocks[i] = full[i] + tail_blocks;
        most = most.max(nblocks[i]);
    }
    for b in 0..most {
        let mut active = 0u8;
        let blocks: [&[u8; 128]; LANES8] = std::array::from_fn(|i| {
            if i >= n || b >= nblocks[i] {
                return &ZERO128;
            }
            active |= 1 << i;
            let got = if b < full[i] {
                msgs[i][b * 128..].first_chunk::<128>()
            } else {
                tails[i][(b - full[i]) * 128..].first_chunk::<128>()
            };
            // Never `None`, as in `HmacWide::mac_group`.
            got.unwrap_or(&ZERO128)
        });
        k.compress(&mut st, &blocks, active);
    }
    // Outer hashes: one block each (inner digest, padding, length).
    let mut outer = [[0u8; 128]; LANES8];
    let digest = 8 * DW;
    let bits = (((128 + digest) as u128) * 8).to_be_bytes();
    for i in 0..n {
        let o = &mut outer[i];
        for j in 0..DW {
            o[8 * j..8 * j + 8].copy_from_slice(&st[j][i].to_be_bytes());
        }
        o[digest] = 0x80;
        o[112..].copy_from_slice(&bits);
    }
    for (row, &v) in st.iter_mut().zip(opad) {
        *row = [v; 8];
    }
    let blocks: [&[u8; 128]; LANES8] = std::array::from_fn(|i| &outer[i]);
    let all = if n == LANES8 { u8::MAX } else { (1u8 << n) - 1 };
    k.compress(&mut st, &blocks, all);
    for i in 0..n {
        for j in 0..4 {
            out[i][8 * j..8 * j + 8].copy_from_slice(&st[j][i].to_be_bytes());
        }
    }
    st.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;
    use rand::{Rng, RngCore};

    use crate::crypto::mb::sha1_x16::skip;

    fn reference<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut r = <M as hmac::digest::KeyInit>::new_from_slice(key).unwrap();
        r.update(msg);
        r.finalize().into_bytes().to_vec()
    }

    fn check<K: Kernel<W>, const W: usize, M: Mac + hmac::digest::KeyInit>(
        w: &HmacWide<K, W>,
        key: &[u8],
        msgs: &[Vec<u8>],
    ) {
        let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let mut out = vec![[0u8; 32]; msgs.len()];
        w.mac_burst(&refs, &mut out);
        for (m, o) in msgs.iter().zip(&out) {
            assert_eq!(
                o[..HmacWide::<K, W>::DIGEST],
                reference::<M>(key, m)[..],
                "key {} len {} burst {}",
                key.len(),
                m.len(),
                msgs.len()
            );
        }
    }

    /// Every message length 0..2000 (sixteen consecutive lengths per group:
    /// mixed block counts), every burst size 1..=33 (every lane count,
    /// partial groups) with random lengths, whole bursts of one length,
    /// keys of 0..64 bytes; RustCrypto `hmac` as the reference.
    fn random_inputs<K: Kernel<W>, const W: usize, M: Mac + hmac::digest::KeyInit>(name: &str) {
        let mut rng = rand::rng();
        let mut msg = |l: usize| {
            let mut m = vec![0u8; l];
            rng.fill_bytes(&mut m);
            m
        };
        for klen in [0usize, 1, 20, 32, 63, 64] {
            let key = msg(klen);
            let Some(w) = HmacWide::<K, W>::new(&key) else {
                skip(name);
                return;
            };
            let all: Vec<Vec<u8>> = (0..2000).map(&mut msg).collect();
            check::<K, W, M>(&w, &key, &all);
            for n in 1..=33 {
                let lens: Vec<usize> = (0..n).map(|_| rand::rng().random_range(0..2000)).collect();
                let msgs: Vec<Vec<u8>> = lens.into_iter().map(&mut msg).collect();
                check::<K, W, M>(&w, &key, &msgs);
            }
            for l in [0, 55, 56, 63, 64, 104, 119, 120, 552, 1460] {
                let msgs: Vec<Vec<u8>> = (0..32).map(|_| msg(l)).collect();
                check::<K, W, M>(&w, &key, &msgs);
            }
        }
        assert!(HmacWide::<K, W>::new(&[0; 65]).is_none());
    }

    #[test]
    fn sha1_matches_rustcrypto_hmac_on_random_inputs() {
        random_inputs::<Sha1x16, 5, hmac::Hmac<sha1::Sha1>>(
            "hmac_wide::sha1_matches_rustcrypto_hmac_on_random_inputs",
        );
    }

    /// Every length 0..2000, every burst size 1..=17, whole bursts of one
    /// length, keys of 0..128 bytes, against RustCrypto `hmac` (first 32
    /// bytes: what the ESP path keeps).
    fn random_inputs_512<const DW: usize, M: Mac + hmac::digest::KeyInit>(name: &str) {
        let mut rng = rand::rng();
        let mut msg = |l: usize| {
            let mut m = vec![0u8; l];
            rng.fill_bytes(&mut m);
            m
        };
        let check = |w: &HmacWide512<DW>, key: &[u8], msgs: &[Vec<u8>]| {
            let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
            let mut out = vec![[0u8; 32]; msgs.len()];
            w.mac_burst(&refs, &mut out);
            for (m, o) in msgs.iter().zip(&out) {
                assert_eq!(
                    o[..],
                    reference::<M>(key, m)[..32],
                    "key {} len {} burst {}",
                    key.len(),
                    m.len(),
                    msgs.len()
                );
            }
        };
        for klen in [0usize, 1, 48, 64, 127, 128] {
            let key = msg(klen);
            let Some(w) = HmacWide512::<DW>::new(&key) else {
                skip(name);
                return;
            };
            let all: Vec<Vec<u8>> = (0..2000).map(&mut msg).collect();
            check(&w, &key, &all);
            for n in 1..=17 {
                let lens: Vec<usize> = (0..n).map(|_| rand::rng().random_range(0..2000)).collect();
                let msgs: Vec<Vec<u8>> = lens.into_iter().map(&mut msg).collect();
                check(&w, &key, &msgs);
            }
            for l in [0, 104, 111, 112, 127, 128, 239, 240, 552, 1460] {
                let msgs: Vec<Vec<u8>> = (0..32).map(|_| msg(l)).collect();
                check(&w, &key, &msgs);
            }
        }
        assert!(HmacWide512::<DW>::new(&[0; 129]).is_none());
    }

    #[test]
    fn sha384_matches_rustcrypto_hmac_on_random_inputs() {
        random_inputs_512::<6, hmac::Hmac<sha2::Sha384>>(
            "hmac_wide::sha384_matches_rustcrypto_hmac_on_random_inputs",
        );
    }

    #[test]
    fn sha512_matches_rustcrypto_hmac_on_random_inputs() {
        random_inputs_512::<8, hmac::Hmac<sha2::Sha512>>(
            "hmac_wide::sha512_matches_rustcrypto_hmac_on_random_inputs",
        );
    }

    /// RFC 4231 cases 1-4 (keys of at most 128 bytes; case 5 is a
    /// truncation of case-4-like input, 6-7 use 131-byte keys), HMAC-SHA-384
    /// and -512, nine copies each in one burst (a full group of eight and
    /// one lane); the first 32 bytes compared.
    #[test]
    fn rfc4231_sha384_sha512_in_a_burst() {
        fn run<const DW: usize>(cases: &[(Vec<u8>, Vec<u8>, &str)]) {
            for (key, msg, want) in cases {
                let Some(w) = HmacWide512::<DW>::new(key) else {
                    skip("hmac_wide::rfc4231_sha384_sha512_in_a_burst");
                    return;
                };
                let msgs: Vec<&[u8]> = (0..9).map(|_| &msg[..]).collect();
                let mut out = vec![[0u8; 32]; 9];
                w.mac_burst(&msgs, &mut out);
                let want = hex::decode(want).unwrap();
                for o in &out {
                    assert_eq!(o[..], want[..32]);
                }
            }
        }
        let k25: Vec<u8> = (1..=25).collect();
        let hi = b"Hi There".to_vec();
        let jefe = (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec());
        run::<6>(&[
            (vec![0x0b; 20], hi.clone(), "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
            (jefe.0.clone(), jefe.1.clone(), "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
            (vec![0xaa; 20], vec![0xdd; 50], "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b2a5ab39dc13814b94e3ab6e101a34f27"),
            (k25.clone(), vec![0xcd; 50], "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e6801dd23c4a7d679ccf8a386c674cffb"),
        ]);
        run::<8>(&[
            (vec![0x0b; 20], hi, "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
            (jefe.0, jefe.1, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
            (vec![0xaa; 20], vec![0xdd; 50], "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb"),
            (k25, vec![0xcd; 50], "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd"),
        ]);
    }

    /// Seventeen copies of each case in one burst (a full group and a
    /// one-lane group); `want` may be a truncation (RFC 4231 case 5).
    fn vectors<K: Kernel<W>, const W: usize>(name: &str, cases: &[(Vec<u8>, Vec<u8>, &str)]) {
        for (key, msg, want) in cases {
            let Some(w) = HmacWide::<K, W>::new(key) else {
                skip(name);
                return;
            };
            let msgs: Vec<&[u8]> = (0..17).map(|_| &msg[..]).collect();
            let mut out = vec![[0u8; 32]; 17];
            w.mac_burst(&msgs, &mut out);
            let want = hex::decode(want).unwrap();
            for o in &out {
                assert_eq!(o[..want.len()], want[..], "{name}");
            }
        }
    }

    /// RFC 2202 (HMAC-SHA1) cases 1-5: the cases with keys of at most 64
    /// bytes (cases 6-7 use 80-byte keys, which no ESP SA has and `new`
    /// refuses).
    #[test]
    fn published_vectors_in_a_burst() {
        let jefe = (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec());
        let k25: Vec<u8> = (1..=25).collect();
        vectors::<Sha1x16, 5>(
            "hmac_wide::published_vectors_in_a_burst",
            &[
                (
                    vec![0x0b; 20],
                    b"Hi There".to_vec(),
                    "b617318655057264e28bc0b6fb378c8ef146be00",
                ),
                (jefe.0, jefe.1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
                (
                    vec![0xaa; 20],
                    vec![0xdd; 50],
                    "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
                ),
                (
                    k25,
                    vec![0xcd; 50],
                    "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
                ),
                (
                    vec![0x0c; 20],
                    b"Test With Truncation".to_vec(),
                    "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
                ),
            ],
        );
    }
}
