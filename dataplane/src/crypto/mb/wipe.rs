//! Zeroing the stack the SIMD kernels used, once per burst.
//!
//! The kernels here keep round keys, hash-key powers, HMAC chaining states
//! (derived from the key's ipad/opad blocks) and ChaCha/Poly1305 key words
//! in registers, and the compiler spills some of them to the kernel's stack
//! frame. Those slots are not cleared when the kernel returns, so
//! key-derived data would stay in memory below the caller's frame until
//! something else overwrites it (intel-ipsec-mb clears them under
//! `SAFE_DATA`).
//!
//! [`burst`] runs a burst (a closure) in a frame of its own, then calls
//! [`stack`], whose frame is a zeroed array of `N` bytes placed where the
//! burst's frames were (just below the caller's stack pointer): once per
//! burst, not per packet. `N` must cover the deepest chain of frames of the
//! burst (the `*_WIPE` constants; the tests in `wipe/tests.rs` run bursts,
//! read the stack below their frame back and look for the key-derived
//! words).

use std::hint::black_box;

/// Writes `N` zero bytes into this function's own frame, which starts just
/// below the caller's stack pointer, i.e. over the frames of the functions
/// the caller called before: 16-byte volatile stores (SSE2, every x86-64
/// CPU), which the compiler neither drops nor turns into a `memset` call
/// (glibc's `rep stosb` costs more at these sizes).
#[inline(never)]
pub(crate) fn stack<const N: usize>() {
    /// `N` bytes, 16-byte aligned.
    #[repr(C, align(16))]
    struct Buf<const N: usize>([u8; N]);
    let mut buf = core::mem::MaybeUninit::<Buf<N>>::uninit();
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__m128i, _mm_setzero_si128};
        let p = buf.as_mut_ptr().cast::<__m128i>();
        for i in 0..N / 16 {
            // SAFETY: `p.add(i)` for `i < N / 16` is a 16-byte aligned slot
            // inside `buf` (16-byte aligned, `N` bytes); SSE2 is part of
            // x86-64.
            unsafe { core::ptr::write_volatile(p.add(i), _mm_setzero_si128()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        buf.write(Buf([0; N]));
    }
    black_box(&buf);
}

/// [`stack`] with 64-byte stores, for the bursts of kernels that exist only
/// on AVX-512 CPUs (a quarter of the stores).
///
/// # Safety
/// The CPU must have AVX-512 F.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
#[target_feature(enable = "avx512f")]
unsafe fn stack512<const N: usize>() {
    /// `N` bytes, 64-byte aligned.
    #[repr(C, align(64))]
    struct Buf<const N: usize>([u8; N]);
    use core::arch::x86_64::{__m512i, _mm512_setzero_si512};
    let mut buf = core::mem::MaybeUninit::<Buf<N>>::uninit();
    let p = buf.as_mut_ptr().cast::<__m512i>();
    for i in 0..N / 64 {
        // SAFETY: `p.add(i)` for `i < N / 64` is a 64-byte aligned slot
        // inside `buf` (64-byte aligned, `N` bytes); AVX-512 F is enabled.
        unsafe { core::ptr::write_volatile(p.add(i), _mm512_setzero_si512()) };
    }
    black_box(&buf);
}

/// [`burst`] for a kernel that exists only on a CPU with AVX-512 F.
///
/// # Safety
/// The CPU must have AVX-512 F (the caller holds a kernel token that
/// proves it).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn burst512<const N: usize, R>(f: impl FnOnce() -> R) -> R {
    let r = framed(f);
    // SAFETY: the caller guarantees AVX-512 F.
    unsafe { stack512::<N>() };
    r
}

/// Runs `f` in a frame of its own (never inlined into the caller, so its
/// locals and spills lie below the caller's stack pointer), then clears `N`
/// bytes of stack below the caller: the frames of `f` and of the kernels it
/// called.
#[inline(always)]
pub(crate) fn burst<const N: usize, R>(f: impl FnOnce() -> R) -> R {
    let r = framed(f);
    stack::<N>();
    r
}

/// `f()` in a frame of its own.
#[inline(never)]
fn framed<R>(f: impl FnOnce() -> R) -> R {
    f()
}

// Each size: the deepest a burst wrote below the caller's stack pointer in
// the release build (measured by `bursts_stay_within_their_wipe`, 64-,
// 1400-byte and mixed bursts, 2026-12-07), rounded up with 256-900 bytes
// to spare. That test fails if a burst goes deeper than its wipe.

/// [`burst`] with the 64-byte stores of `stack512`, for a kernel whose
/// token `cpu` proves AVX-512 F (`ChachaX16` exists only after it was
/// detected).
#[inline(always)]
pub(crate) fn burst_x16<const N: usize, R>(
    cpu: super::chacha_x16::ChachaX16,
    f: impl FnOnce() -> R,
) -> R {
    let _ = cpu;
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a `ChachaX16` is only built by `ChachaX16::detect`, after
        // AVX-512 F and BW were detected.
        unsafe { burst512::<N, R>(f) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        burst::<N, R>(f)
    }
}

/// Bytes cleared after a burst of the VAES GCM kernel (`EspGcm`,
/// `AeadEsp` over `Gcm`): 2164 bytes deep.
pub(crate) const GCM_WIPE: usize = 2560;

/// Bytes cleared after a ChaCha20-Poly1305 burst (`keystream`, `tags`,
/// `poly1305_x8::tags` + `absorb`): 9312 bytes deep.
pub(crate) const CHACHA_POLY_WIPE: usize = 10240;

/// Bytes cleared after a burst of the 16-lane SHA-1 / 8-lane SHA-384/512
/// HMAC kernels (the group loop and the compression function): 4800 and
/// 5056 bytes deep.
pub(crate) const WIDE_HMAC_WIPE: usize = 5376;

/// Bytes cleared after a burst of the 4-lane SHA-NI HMAC kernels: 1368
/// bytes deep.
pub(crate) const SHA_NI_WIPE: usize = 1792;

#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) mod probe;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
