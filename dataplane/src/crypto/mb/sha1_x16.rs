//! SHA-1 compression of sixteen independent messages at once on AVX-512:
//! one 512-bit register holds the same state word (or message word) of the
//! sixteen lanes, so every round is a handful of whole-register operations
//! (`vprold` for the rotations, `vpternlogd` for the round functions and
//! the three-way XORs of the message schedule). The sixteen 64-byte blocks
//! are loaded as rows and transposed (16 x 16 words, four shuffle stages).
//!
//! This is the structure of intel-ipsec-mb's `sha1_x16_avx512`, written
//! from FIPS 180-4 §6.1.2: the library's HMAC burst costs ~9 ns per block
//! plus ~44 ns per message around it (job handling, its own outer block);
//! here the ipad/opad states are precomputed per SA and the outer block is
//! built in place (`hmac_wide`), so only the compressions remain.
//!
//! One call hashes a run of `n` blocks per lane ([`Sha1x16::compress_blocks`])
//! with the five state registers carried from block to block (stored once
//! at the end); the message schedule is computed `AHEAD` rounds before its
//! use (same operations, ~5 % faster on Zen 4); with AVX-512 VBMI the byte
//! swap of the loads is folded into the first transpose stage (~1.5 %).
//! Lanes may have different block counts: a lane outside `active` keeps its
//! state (the feed-forward add is masked) and its slice is not read.
//!
//! Callers get the kernel only through [`Sha1x16`], which exists once the
//! CPU was checked (AVX-512 F and BW; VBMI noted). Checked against
//! RustCrypto's `sha1::compress` on random states and blocks, mixed masks
//! and runs of 0..40 blocks, with both block loads (tests below), and,
//! through the HMAC built on it, against RFC 2202 and RustCrypto's `hmac`
//! on every length 0..2000 (`hmac_wide`).

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use super::x16::{load_words, load_words_vbmi};

/// The five state words of sixteen lanes, word-major: `st[j][l]` is word
/// `j` (A..E) of lane `l`.
pub type State16 = [[u32; 16]; 5];

/// Proof that this CPU has AVX-512 F and BW; `vbmi`: it also has
/// AVX-512 VBMI (the block loads then byte-swap within the first transpose
/// stage, `vpermt2b`: ~1.5 % faster on Zen 4).
#[derive(Clone, Copy, Debug)]
pub struct Sha1x16 {
    vbmi: bool,
}

impl Sha1x16 {
    /// `Some` if the CPU runs the kernel.
    pub fn detect() -> Option<Sha1x16> {
        #[cfg(target_arch = "x86_64")]
        {
            (std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw"))
            .then(|| Sha1x16 {
                vbmi: std::arch::is_x86_feature_detected!("avx512vbmi"),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// One compression of `blocks[l]` into lane `l` of `st`, for every lane
    /// whose bit is set in `active` (the others keep their state).
    #[inline]
    pub fn compress(self, st: &mut State16, blocks: &[&[u8; 64]; 16], active: u16) {
        // Every lane has its 64 bytes by type: no length checks (one block,
        // step 0).
        let ptr: [*const u8; 16] = std::array::from_fn(|l| blocks[l].as_ptr());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `compress_blocks`; here `n` = 1 and every `ptr[l]`
        // points to the 64 bytes of `blocks[l]`.
        unsafe {
            if self.vbmi {
                compress_run_vbmi(st, &ptr, &[0; 16], 1, active)
            } else {
                compress_run(st, &ptr, &[0; 16], 1, active)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (st, ptr, active);
        }
    }

    /// `n` compressions in a row of every lane whose bit is set in
    /// `active`: lane `l` hashes the blocks `lanes[l][64 * b..64 * b + 64]`,
    /// `b` in `0..n`, with the state kept in registers from one block to the
    /// next. The other lanes keep their state and their slices are not read
    /// (they may be empty). `n` is cut to the shortest active lane's whole
    /// blocks (callers pass slices long enough: a shorter one would give a
    /// wrong hash, never an out-of-bounds read).
    #[inline]
    pub fn compress_blocks(self, st: &mut State16, lanes: &[&[u8]; 16], n: usize, active: u16) {
        let mut n = n;
        let mut ptr = [ZERO.as_ptr(); 16];
        let mut step = [0usize; 16];
        for l in 0..16 {
            if active & (1 << l) != 0 {
                n = n.min(lanes[l].len() / 64);
                ptr[l] = lanes[l].as_ptr();
                step[l] = 64;
            }
        }
        if n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Sha1x16` exists only after `detect` found AVX-512 F and
        // BW, the features `compress_run` is compiled for, and `vbmi` is set
        // only if it also found AVX-512 VBMI (`compress_run_vbmi`). For `b`
        // in `0..n` the kernels read 64 bytes at `ptr[l] + b * step[l]`: an
        // active lane's slice holds at least `64 * n` bytes (`n` was cut to
        // it), an inactive lane reads `ZERO` (64 bytes) with step 0. `st` is
        // written through `&mut`.
        unsafe {
            if self.vbmi {
                compress_run_vbmi(st, &ptr, &step, n, active)
            } else {
                compress_run(st, &ptr, &step, n, active)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (st, ptr, step, active);
        }
    }
}

/// How many rounds ahead of its use `compress_run` computes a schedule
/// word (measured on Zen 4: 6, 8 and 16 within 1 % of each other, all
/// 4-5 % faster than 0).
const AHEAD: usize = 8;

/// The block inactive lanes read (never hashed into a state).
static ZERO: [u8; 64] = [0; 64];

const K: [u32; 4] = [0x5A82_7999, 0x6ED9_EBA1, 0x8F1B_BCDC, 0xCA62_C1D6];

/// The body of the two kernels below (`$load`: how a block of each lane
/// is loaded and transposed).
#[cfg(target_arch = "x86_64")]
macro_rules! compress_run_body {
    ($load:ident, $st:ident, $ptr:ident, $step:ident, $n:ident, $active:ident) => {{
        let (st, ptr, step, n, active) = ($st, $ptr, $step, $n, $active);
        let mut s = [_mm512_setzero_si512(); 5];
        for j in 0..5 {
            // SAFETY: `st[j]` is 16 readable u32 (64 bytes), loadu unaligned.
            s[j] = unsafe { _mm512_loadu_si512(st[j].as_ptr().cast()) };
        }
        let mut p = *ptr;
        for _ in 0..n {
            // SAFETY: the caller's contract: `p[l]` = `ptr[l] + b * step[l]`
            // points to 64 readable bytes for this block `b < n`.
            let w = unsafe { $load(&p) };
            for l in 0..16 {
                p[l] = p[l].wrapping_add(step[l]);
            }
            let [mut a, mut b, mut c, mut d, mut e] = s;
            // The message schedule, computed `AHEAD` rounds before its word is
            // used (round `t` computes word `t + AHEAD`): ~5 % faster on Zen 4
            // than computing each word in its own round (same operations, a
            // better order for the scheduler).
            let mut ws = [_mm512_setzero_si512(); 80];
            ws[..16].copy_from_slice(&w);
            macro_rules! sched {
                ($t:expr) => {{
                    let t: usize = $t;
                    if (16..80).contains(&t) {
                        let x = _mm512_ternarylogic_epi32::<0x96>(ws[t - 3], ws[t - 8], ws[t - 14]);
                        ws[t] = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, ws[t - 16]));
                    }
                }};
            }
            for t in 16..16 + AHEAD {
                sched!(t);
            }
            macro_rules! round {
                ($t:expr, $f:literal, $k:expr) => {{
                    let t: usize = $t;
                    if t >= 16 {
                        sched!(t + AHEAD);
                    }
                    let wt = ws[t];
                    let f = _mm512_ternarylogic_epi32::<$f>(b, c, d);
                    let tmp = _mm512_add_epi32(
                        _mm512_add_epi32(_mm512_rol_epi32::<5>(a), f),
                        _mm512_add_epi32(e, _mm512_add_epi32(wt, $k)),
                    );
                    e = d;
                    d = c;
                    c = _mm512_rol_epi32::<30>(b);
                    b = a;
                    a = tmp;
                }};
            }
            macro_rules! rounds20 {
                ($base:expr, $f:literal, $k:expr) => {{
                    let k = $k;
                    round!($base, $f, k);
                    round!($base + 1, $f, k);
                    round!($base + 2, $f, k);
                    round!($base + 3, $f, k);
                    round!($base + 4, $f, k);
                    round!($base + 5, $f, k);
                    round!($base + 6, $f, k);
                    round!($base + 7, $f, k);
                    round!($base + 8, $f, k);
                    round!($base + 9, $f, k);
                    round!($base + 10, $f, k);
                    round!($base + 11, $f, k);
                    round!($base + 12, $f, k);
                    round!($base + 13, $f, k);
                    round!($base + 14, $f, k);
                    round!($base + 15, $f, k);
                    round!($base + 16, $f, k);
                    round!($base + 17, $f, k);
                    round!($base + 18, $f, k);
                    round!($base + 19, $f, k);
                }};
            }
            // Ch (b ? c : d), parity, majority, parity (FIPS 180-4 §4.1.1).
            rounds20!(0, 0xCA, _mm512_set1_epi32(K[0] as i32));
            rounds20!(20, 0x96, _mm512_set1_epi32(K[1] as i32));
            rounds20!(40, 0xE8, _mm512_set1_epi32(K[2] as i32));
            rounds20!(60, 0x96, _mm512_set1_epi32(K[3] as i32));
            let out = [a, b, c, d, e];
            for j in 0..5 {
                s[j] = _mm512_mask_add_epi32(s[j], active, s[j], out[j]);
            }
        }
        for j in 0..5 {
            // SAFETY: `st[j]` is 16 writable u32 (64 bytes), storeu unaligned.
            unsafe { _mm512_storeu_si512(st[j].as_mut_ptr().cast(), s[j]) };
        }
    }};
}

/// `n` compressions of every lane (see [`Sha1x16::compress_blocks`]),
/// the five state registers carried from block to block; the feed-forward
/// add is masked by `active`.
///
/// # Safety
/// The CPU has AVX-512 F and BW; for every lane `l` and `b` in `0..n`,
/// `ptr[l] + b * step[l]` points to 64 readable bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::needless_range_loop)]
// one register per index, on purpose
// The last rounds' schedule words and shifted-out state are never read.
#[allow(unused_assignments)]
unsafe fn compress_run(
    st: &mut State16,
    ptr: &[*const u8; 16],
    step: &[usize; 16],
    n: usize,
    active: u16,
) {
    compress_run_body!(load_words, st, ptr, step, n, active)
}

/// [`compress_run`] with the VBMI block load.
///
/// # Safety
/// As [`compress_run`], and the CPU has AVX-512 VBMI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[allow(clippy::needless_range_loop)]
// one register per index, on purpose
// The last rounds' schedule words and shifted-out state are never read.
#[allow(unused_assignments)]
unsafe fn compress_run_vbmi(
    st: &mut State16,
    ptr: &[*const u8; 16],
    step: &[usize; 16],
    n: usize,
    active: u16,
) {
    compress_run_body!(load_words_vbmi, st, ptr, step, n, active)
}

/// Skips recorded where scripts/test.sh prints them.
#[cfg(test)]
pub(crate) fn skip(test: &str) {
    super::sha_ni::skip_note::note(
        test,
        "16-lane AVX-512 SHA-1 not run",
        "no AVX-512 F/BW on this CPU; the SHA-NI or library HMAC runs instead",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::digest::generic_array::GenericArray;

    /// xorshift64*: reproducible random bytes without a dependency.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[test]
    fn matches_rustcrypto_compress_on_random_states_blocks_and_masks() {
        let Some(k) = Sha1x16::detect() else {
            skip("sha1_x16::matches_rustcrypto_compress_on_random_states_blocks_and_masks");
            return;
        };
        // Both block loads where the CPU has VBMI.
        for k in [k, Sha1x16 { vbmi: false }] {
            one_block_rounds(k);
        }
    }

    fn one_block_rounds(k: Sha1x16) {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..500 {
            let mut blocks = [[0u8; 64]; 16];
            for b in blocks.iter_mut() {
                for x in b.iter_mut() {
                    *x = rng(&mut seed) as u8;
                }
            }
            let mut st: State16 = [[0; 16]; 5];
            for row in st.iter_mut() {
                for x in row.iter_mut() {
                    *x = rng(&mut seed) as u32;
                }
            }
            let active: u16 = match round {
                0 => 0xFFFF,
                1 => 0,
                2 => 1,
                _ => rng(&mut seed) as u16,
            };
            let mut want = st;
            for l in 0..16 {
                if active & (1 << l) != 0 {
                    let mut s = [want[0][l], want[1][l], want[2][l], want[3][l], want[4][l]];
                    sha1::compress(&mut s, &[*GenericArray::from_slice(&blocks[l])]);
                    for j in 0..5 {
                        want[j][l] = s[j];
                    }
                }
            }
            let refs: [&[u8; 64]; 16] = std::array::from_fn(|l| &blocks[l]);
            k.compress(&mut st, &refs, active);
            assert_eq!(st, want, "round {round} mask {active:#06x} vbmi {}", k.vbmi);
        }
    }

    /// `compress_blocks`: runs of 0..40 blocks per lane, random masks,
    /// lanes of different lengths (the run is cut to the shortest active
    /// one), empty slices for inactive lanes; each lane against RustCrypto's
    /// `sha1::compress` block by block; with and without VBMI.
    #[test]
    fn runs_of_blocks_match_rustcrypto() {
        let Some(k) = Sha1x16::detect() else {
            skip("sha1_x16::runs_of_blocks_match_rustcrypto");
            return;
        };
        let mut seed = 0x0123_4567_89AB_CDEFu64;
        for k in [k, Sha1x16 { vbmi: false }] {
            for round in 0..120 {
                let n = round % 41;
                let data: Vec<Vec<u8>> = (0..16)
                    .map(|_| {
                        let len = 64 * n
                            + (rng(&mut seed) % 3) as usize * 64
                            + (rng(&mut seed) % 64) as usize;
                        (0..len).map(|_| rng(&mut seed) as u8).collect()
                    })
                    .collect();
                let active: u16 = if round % 5 == 0 {
                    0xFFFF
                } else {
                    rng(&mut seed) as u16
                };
                let lanes: [&[u8]; 16] = std::array::from_fn(|l| {
                    if active & (1 << l) != 0 {
                        &data[l][..]
                    } else {
                        &[][..]
                    }
                });
                let ask = n + (round % 2) * 2;
                let got = (0..16)
                    .filter(|l| active & (1 << l) != 0)
                    .map(|l| data[l].len() / 64)
                    .fold(ask, usize::min);
                let mut st: State16 = [[0; 16]; 5];
                for row in st.iter_mut() {
                    for x in row.iter_mut() {
                        *x = rng(&mut seed) as u32;
                    }
                }
                let mut want = st;
                for l in 0..16 {
                    if active & (1 << l) == 0 {
                        continue;
                    }
                    let mut s = [want[0][l], want[1][l], want[2][l], want[3][l], want[4][l]];
                    for b in 0..got {
                        let blk = &data[l][64 * b..64 * b + 64];
                        sha1::compress(&mut s, &[*GenericArray::from_slice(blk)]);
                    }
                    for j in 0..5 {
                        want[j][l] = s[j];
                    }
                }
                k.compress_blocks(&mut st, &lanes, ask, active);
                assert_eq!(
                    st, want,
                    "round {round} n {ask} mask {active:#06x} vbmi {}",
                    k.vbmi
                );
            }
        }
    }
}
