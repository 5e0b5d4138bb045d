//! HMAC-SHA1 and HMAC-SHA-256 over a burst of short messages, interleaved:
//! the packets of a burst are taken four at a time and their compressions
//! run block by block across the four (block 0 of each, then block 1, ...),
//! one call of the SHA-NI kernel `mb::sha_ni` per block (their four serial
//! chains of `sha256rnds2` / `sha1rnds4` share the pipeline), the last one
//! to three packets (and blocks past the shortest of a four) with RustCrypto's
//! `sha1::compress` / `sha2::compress256`. Safe code here; the kernel's
//! `unsafe` is in `mb/`.
//!
//! Measured (AMD EPYC Zen 4, KVM, SHA-NI; `target/release/sha_lanes`,
//! thread CPU time, same CPU, rounds interleaved; figures in
//! `bench/results/esp_vs_dpdk.md`): a SHA-256 block costs ~20 ns with four
//! lanes against ~26 ns for RustCrypto's one-message `compress256`; SHA-1
//! ~19-21 ns per block with one, two or four lanes (`sha1rnds4` is
//! throughput-bound there). intel-ipsec-mb's HMAC burst costs a fixed ~44
//! (SHA-1) / ~52 (SHA-256) ns per message plus ~9 / ~18 ns per block, so
//! this path wins for short messages: each SHA has its
//! [`SmallMac::MAX_BLOCKS`], and a packet of at most that many compressions
//! comes here, the others go to the library (a choice by packet size, made
//! per packet from its length, not by algorithm).
//!
//! Packets are taken four at a time (one kernel call per block of the
//! four), so the four chaining states stay in one group from the first
//! block to the digest; the earlier block-major walk over the whole burst
//! (one pass per block index over every packet) cost more than the
//! compressions it interleaved at 64 bytes.
//!
//! The ipad/opad states (RFC 2104) are the SA's one copy in the library's
//! layout (`ffi::ipsecmb::HmacKey`), read per burst ([`ShaNiHmac`]); the
//! copies made for a burst are wiped after it.

use sha1::digest::generic_array::GenericArray;
use zeroize::Zeroize;

use super::mb::sha_ni::{from_abef, to_abef, ShaNi};
use super::mb::wipe;

/// One message of a burst and where its MAC goes (full length).
pub(crate) struct SmallJob<'a> {
    pub msg: &'a [u8],
    pub out: [u8; 32],
}

/// A hash usable for the interleaved HMAC.
pub(crate) trait SmallMac: Send + Sync + 'static {
    /// Largest number of compressions (inner and outer) for which the
    /// interleaved path is used; 0 disables it.
    const MAX_BLOCKS: usize;
    /// True if an AES-CBC SA with this HMAC opens bursts of long packets
    /// in one pass, four at a time (this path's HMAC, then the VAES
    /// decryption of the verified ones while they are in L1) where the CPU
    /// has VAES.
    const ONE_PASS_CBC: bool;
    /// Chaining state.
    type State: Copy + Default + Zeroize + Send + Sync;
    /// Digest length.
    const DIGEST: usize;
    /// The initial state (the key step of the kernel's tests; the ESP path
    /// reads the library's key states).
    #[cfg(test)]
    fn iv() -> Self::State;
    /// One compression.
    fn compress(state: &mut Self::State, block: &[u8; 64]);
    /// The digest of a state (big-endian words).
    fn digest(state: &Self::State, out: &mut [u8; 32]);
    /// The chaining state from the library's layout of an HMAC key state
    /// (`ffi::ipsecmb::HmacKey`: the state words in native byte order).
    fn from_lib(b: &[u8; 64]) -> Self::State;
    /// Four independent compressions (one block into each state),
    /// interleaved on the SHA extensions.
    fn compress4(ni: ShaNi, states: &mut [Self::State; 4], blocks: &[&[u8; 64]; 4]) {
        let _ = ni;
        for (s, b) in states.iter_mut().zip(blocks) {
            Self::compress(s, b);
        }
    }
}

/// SHA-1.
pub(crate) struct Sha1;
/// SHA-256.
pub(crate) struct Sha256;

impl SmallMac for Sha1 {
    /// Up to 4 compressions (messages up to 183 bytes: 64-byte packets).
    /// SHA-NI's SHA-1 is throughput-bound on Zen 4 (~19-21 ns per block
    /// with one, two or four lanes interleaved) while intel-ipsec-mb's
    /// 16-lane AVX-512 SHA-1 costs ~9 ns per block plus ~44 ns per message
    /// (HMAC burst alone, 80/528/1424-byte messages), so the library wins
    /// from about 5 blocks on. On a CPU with AVX-512 the 16-lane path
    /// (`hmac_wide`) takes SHA-1 packets before this one (which then only
    /// gets a burst remainder of at most four, of any length).
    const MAX_BLOCKS: usize = 4;
    /// No: SHA-NI's SHA-1 costs about twice the library's 16-lane SHA-1
    /// per block.
    const ONE_PASS_CBC: bool = false;
    type State = [u32; 5];
    const DIGEST: usize = 20;
    #[cfg(test)]
    fn iv() -> [u32; 5] {
        [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ]
    }
    #[inline(always)]
    fn compress(state: &mut [u32; 5], block: &[u8; 64]) {
        sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
    fn digest(state: &[u32; 5], out: &mut [u8; 32]) {
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
    }
    #[inline(always)]
    fn from_lib(b: &[u8; 64]) -> [u32; 5] {
        words32::<5>(b)
    }
    #[inline(always)]
    fn compress4(ni: ShaNi, states: &mut [[u32; 5]; 4], blocks: &[&[u8; 64]; 4]) {
        ni.sha1::<4>(states, blocks);
    }
}

impl SmallMac for Sha256 {
    /// Up to 16 compressions (messages up to 951 bytes). The library's
    /// 16-lane SHA-256 HMAC costs ~18 ns per block plus ~52 ns per message,
    /// this path ~20 ns per block: through the ESP path it wins at 64 and
    /// 512 bytes and loses ~3 % at 1420 (24 blocks).
    const MAX_BLOCKS: usize = 16;
    /// Yes: SHA-NI's SHA-256 costs about the library's per block, and the
    /// decryption then reads packets still in L1.
    const ONE_PASS_CBC: bool = true;
    type State = [u32; 8];
    const DIGEST: usize = 32;
    // The chaining state is kept in the SHA-NI kernel's layout
    // (`sha_ni::to_abef`) from the key step to the digest, so the four-lane
    // kernel loads and stores it whole; the one-message compression and the
    // digest convert.
    #[cfg(test)]
    fn iv() -> [u32; 8] {
        to_abef(&[
            0x6a09_e667,
            0xbb67_ae85,
            0x3c6e_f372,
            0xa54f_f53a,
            0x510e_527f,
            0x9b05_688c,
            0x1f83_d9ab,
            0x5be0_cd19,
        ])
    }
    #[inline(always)]
    fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
        let mut s = from_abef(state);
        sha2::compress256(
            &mut s,
            std::slice::from_ref(GenericArray::from_slice(block)),
        );
        *state = to_abef(&s);
    }
    fn digest(state: &[u32; 8], out: &mut [u8; 32]) {
        for (o, w) in out.chunks_exact_mut(4).zip(&from_abef(state)) {
            o.copy_from_slice(&w.to_be_bytes());
        }
    }
    #[inline(always)]
    fn from_lib(b: &[u8; 64]) -> [u32; 8] {
        to_abef(&words32::<8>(b))
    }
    #[inline(always)]
    fn compress4(ni: ShaNi, states: &mut [[u32; 8]; 4], blocks: &[&[u8; 64]; 4]) {
        ni.sha256_abef::<4>(states, blocks);
    }
}

/// HMAC's key step (RFC 2104): the hash states after absorbing one block of
/// `key XOR ipad` and one of `key XOR opad`, for a hash of `N`-byte blocks
/// from `iv` with `compress`. Keys up to one block (every ESP integrity
/// key); `None` for a longer one. The padded key block is zeroized.
#[cfg(test)]
pub(crate) fn pad_states<S: Copy, const N: usize>(
    key: &[u8],
    iv: S,
    compress: impl Fn(&mut S, &[u8; N]),
) -> Option<(S, S)> {
    if key.len() > N {
        return None;
    }
    let mut block = [0u8; N];
    let mut state = |pad: u8| {
        block.fill(pad);
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        let mut s = iv;
        compress(&mut s, &block);
        s
    };
    let states = (state(0x36), state(0x5c));
    block.zeroize();
    Some(states)
}

/// The first `W` native-order 32-bit words of an HMAC key state in the
/// library's layout (`ffi::ipsecmb::HmacKey`).
#[inline(always)]
pub(crate) fn words32<const W: usize>(b: &[u8; 64]) -> [u32; W] {
    std::array::from_fn(|i| {
        u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    })
}

/// True if this CPU has the SHA extensions the interleaved path relies on
/// (without them the library's multi-buffer kernel is faster at every size).
pub(crate) fn sha_ni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha") && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The interleaved SHA-NI HMAC of one hash, as the ESP transform holds it:
/// a token that the CPU has the SHA extensions, no key. The SA's ipad/opad
/// states are kept once, in the library's layout (`ffi::ipsecmb::HmacKey`),
/// and converted per burst ([`SmallMac::from_lib`]).
pub(crate) struct ShaNiHmac<H: SmallMac> {
    ni: ShaNi,
    _hash: std::marker::PhantomData<fn() -> H>,
}

impl<H: SmallMac> ShaNiHmac<H> {
    /// `Some` on a CPU with the SHA extensions.
    pub(crate) fn new() -> Option<Self> {
        Some(ShaNiHmac {
            ni: ShaNi::detect()?,
            _hash: std::marker::PhantomData,
        })
    }

    /// Compressions for a message of `len` bytes: inner (key block already
    /// absorbed) plus the outer one.
    #[inline(always)]
    pub(crate) fn blocks(len: usize) -> usize {
        (len + 9).div_ceil(64) + 1
    }

    /// HMAC of every job's message into its `out` (full digest), the
    /// compressions interleaved across the jobs, with the key states
    /// `ipad` / `opad` in the library's layout.
    pub(crate) fn mac_burst(&self, ipad: &[u8; 64], opad: &[u8; 64], jobs: &mut [SmallJob<'_>]) {
        wipe::burst::<{ wipe::SHA_NI_WIPE }, _>(|| {
            let mut pads = (H::from_lib(ipad), H::from_lib(opad));
            for group in jobs.chunks_mut(4) {
                mac_group::<H>(self.ni, &pads.0, &pads.1, group);
            }
            pads.0.zeroize();
            pads.1.zeroize();
        })
    }
}

/// Precomputed HMAC states of one key (the kernel's own tests: states
/// computed here, not by the library).
#[cfg(test)]
pub(crate) struct HmacKeyState<H: SmallMac> {
    ipad: H::State,
    opad: H::State,
    ni: ShaNi,
}

#[cfg(test)]
impl<H: SmallMac> Drop for HmacKeyState<H> {
    fn drop(&mut self) {
        self.ipad.zeroize();
        self.opad.zeroize();
    }
}

#[cfg(test)]
impl<H: SmallMac> HmacKeyState<H> {
    /// The states after the key XOR ipad / opad blocks (keys up to 64
    /// bytes: every ESP integrity key of SHA-1 and SHA-256), on a CPU with
    /// the SHA extensions (`None` otherwise).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let ni = ShaNi::detect()?;
        let (ipad, opad) = pad_states(key, H::iv(), H::compress)?;
        Some(HmacKeyState { ipad, opad, ni })
    }

    /// HMAC of every job's message into its `out` (full digest), the
    /// compressions interleaved across the jobs.
    pub(crate) fn mac_burst(&self, jobs: &mut [SmallJob<'_>]) {
        for group in jobs.chunks_mut(4) {
            mac_group::<H>(self.ni, &self.ipad, &self.opad, group);
        }
    }
}

/// Up to four messages: the inner hash block by block across them (the
/// four-lane kernel while all four have blocks left, one-message
/// compressions for the rest), then the outer hash. The chaining states
/// stay in this group's four slots from the first block to the digest.
#[inline(always)]
fn mac_group<H: SmallMac>(ni: ShaNi, ipad: &H::State, opad: &H::State, jobs: &mut [SmallJob<'_>]) {
    {
        let n = jobs.len();
        let mut st = [*ipad; 4];
        // The padded last one or two blocks of each message.
        let mut tails = [[0u8; 128]; 4];
        let mut nblocks = [0usize; 4];
        for (i, j) in jobs.iter().enumerate() {
            let len = j.msg.len();
            let full = len / 64;
            let rest = &j.msg[full * 64..];
            let t = &mut tails[i];
            t[..rest.len()].copy_from_slice(rest);
            t[rest.len()] = 0x80;
            let tail_blocks = if rest.len() + 9 <= 64 { 1 } else { 2 };
            let bits = ((64 + len) as u64) * 8;
            let end = tail_blocks * 64;
            t[end - 8..end].copy_from_slice(&bits.to_be_bytes());
            nblocks[i] = full + tail_blocks;
        }
        // Inner hash.
        let common = if n == 4 {
            nblocks.iter().copied().min().unwrap_or(0)
        } else {
            0
        };
        for b in 0..common {
            let blocks = [
                block_of(jobs[0].msg, &tails[0], b),
                block_of(jobs[1].msg, &tails[1], b),
                block_of(jobs[2].msg, &tails[2], b),
                block_of(jobs[3].msg, &tails[3], b),
            ];
            H::compress4(ni, &mut st, &blocks);
        }
        for (i, j) in jobs.iter().enumerate() {
            for b in common..nblocks[i] {
                H::compress(&mut st[i], block_of(j.msg, &tails[i], b));
            }
        }
        // Outer hash: one block each.
        let bits = ((64 + H::DIGEST) as u64) * 8;
        let mut outer = [[0u8; 64]; 4];
        for (s, block) in st.iter_mut().zip(outer.iter_mut()).take(n) {
            let mut inner = [0u8; 32];
            H::digest(s, &mut inner);
            block[..H::DIGEST].copy_from_slice(&inner[..H::DIGEST]);
            block[H::DIGEST] = 0x80;
            block[56..].copy_from_slice(&bits.to_be_bytes());
            *s = *opad;
        }
        if n == 4 {
            let blocks: [&[u8; 64]; 4] = [&outer[0], &outer[1], &outer[2], &outer[3]];
            H::compress4(ni, &mut st, &blocks);
        } else {
            for (s, block) in st.iter_mut().zip(&outer).take(n) {
                H::compress(s, block);
            }
        }
        for (s, j) in st.iter().zip(jobs.iter_mut()) {
            H::digest(s, &mut j.out);
        }
        st.iter_mut().for_each(|s| s.zeroize());
    }
}

/// Block `b` of a message: from the message itself while it has whole
/// blocks, then from its padded tail.
#[inline(always)]
fn block_of<'a>(msg: &'a [u8], tail: &'a [u8; 128], b: usize) -> &'a [u8; 64] {
    let full = msg.len() / 64;
    let got = if b < full {
        msg[b * 64..].first_chunk::<64>()
    } else {
        tail[(b - full) * 64..].first_chunk::<64>()
    };
    // Never `None` (b < full, or b - full < the tail's 2 blocks); a zero
    // block (a wrong MAC) rather than a panic if that ever broke.
    got.unwrap_or(&[0; 64])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    // Skips recorded where scripts/test.sh prints them (ESPRESSO_TEST_SKIPS).
    use crate::crypto::mb::sha_ni::skip_note;

    fn check<H: SmallMac, M: Mac + hmac::digest::KeyInit>(name: &str) {
        for klen in [0usize, 1, 20, 32, 63, 64] {
            let key: Vec<u8> = (0..klen).map(|i| i as u8 ^ 0x5a).collect();
            let k = HmacKeyState::<H>::new(&key).unwrap();
            // Every length 0..2000 in one burst (mixed lengths in every
            // group of four, groups of four plus a remainder).
            let msgs: Vec<Vec<u8>> = (0..2000)
                .map(|l| (0..l).map(|i| (i * 7 + l) as u8).collect())
                .collect();
            let mut jobs: Vec<SmallJob> = msgs
                .iter()
                .map(|m| SmallJob {
                    msg: m,
                    out: [0; 32],
                })
                .collect();
            k.mac_burst(&mut jobs);
            for (j, m) in jobs.iter().zip(&msgs) {
                let mut r = <M as hmac::digest::KeyInit>::new_from_slice(&key).unwrap();
                r.update(m);
                let want = r.finalize().into_bytes();
                assert_eq!(
                    &j.out[..H::DIGEST],
                    &want[..],
                    "{name} key {klen} len {}",
                    m.len()
                );
            }
        }
        assert!(HmacKeyState::<H>::new(&[0; 65]).is_none());
    }

    /// RFC 2202 (HMAC-SHA1) and RFC 4231 (HMAC-SHA-256) cases 1 and 2, nine
    /// messages per burst so that the four-lane kernel (two groups) and the
    /// one-lane remainder both run.
    #[test]
    fn published_vectors_in_a_burst() {
        fn run<H: SmallMac>(cases: &[(&[u8], &[u8], &str)]) {
            for (key, msg, want) in cases {
                let Some(k) = HmacKeyState::<H>::new(key) else {
                    skip_note::note(
                        "hmac_burst::published_vectors_in_a_burst",
                        "interleaved SHA-NI HMAC not run",
                        "no SHA extensions on this CPU; the library HMAC runs instead",
                    );
                    return;
                };
                let mut jobs: Vec<SmallJob> =
                    (0..9).map(|_| SmallJob { msg, out: [0; 32] }).collect();
                k.mac_burst(&mut jobs);
                let want = hex::decode(want).unwrap();
                for j in &jobs {
                    assert_eq!(&j.out[..H::DIGEST], &want[..]);
                }
            }
        }
        let hi: &[u8] = b"Hi There";
        let jefe: (&[u8], &[u8]) = (b"Jefe", b"what do ya want for nothing?");
        run::<Sha1>(&[
            (&[0x0b; 20], hi, "b617318655057264e28bc0b6fb378c8ef146be00"),
            (jefe.0, jefe.1, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        ]);
        run::<Sha256>(&[
            (
                &[0x0b; 20],
                hi,
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                jefe.0,
                jefe.1,
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
        ]);
    }

    #[test]
    fn matches_rustcrypto_hmac_for_every_length_and_key() {
        check::<Sha1, hmac::Hmac<sha1::Sha1>>("sha1");
        check::<Sha256, hmac::Hmac<sha2::Sha256>>("sha256");
    }
}
