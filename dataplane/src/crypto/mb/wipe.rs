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
/// the caller called before. Safe code: the array is an ordinary local;
/// `black_box` makes the stores observable so they are not elided.
#[inline(never)]
pub(crate) fn stack<const N: usize>() {
    let buf = [0u8; N];
    black_box(&buf);
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

/// Bytes cleared after a burst of the VAES GCM kernel (`EspGcm`, `Gcm`):
/// `open_small` alone has a ~4 KiB frame, `seal_small` + `seal_impl` ~2.7 KiB.
pub(crate) const GCM_WIPE: usize = 8192;

/// Bytes cleared after a ChaCha20-Poly1305 burst (`keystream`, `tags`,
/// `poly1305_x8::tags` + `absorb`: up to ~6.5 KiB deep).
pub(crate) const CHACHA_POLY_WIPE: usize = 8192;

/// Bytes cleared after a burst of the 16-lane SHA-1 / 8-lane SHA-384/512
/// HMAC kernels (the group loop and the compression function).
pub(crate) const WIDE_HMAC_WIPE: usize = 8192;

/// Bytes cleared after a burst of the 4-lane SHA-NI HMAC kernels.
pub(crate) const SHA_NI_WIPE: usize = 2048;

#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
