//! A software prefetch hint, for table lookups outside this folder
//! (`sa::sad`'s burst lookup), which cannot hold `unsafe` themselves.
//!
//! `_mm_prefetch` is an SSE instruction (baseline on x86_64) but is declared
//! `#[target_feature(enable = "sse")]`, so Rust still wants an `unsafe`
//! block to call it from a function without that attribute; this is the one
//! block. A prefetch only hints the cache: it never faults, whatever the
//! address, and reads or writes no memory that Rust code can see.

/// Starts loading the cache line of `r` into the L2 cache and below
/// (PREFETCHT1, a hint: no effect on the program's results). A no-op off
/// x86_64.
///
/// T1, not T0: a burst lookup prefetches 32 lines at once. Into L1 (T0)
/// each occupies one of L1's few miss buffers until its line arrives; into
/// L2 (T1; Zen 4 fills L2 only) they queue in L2's larger miss queue, and
/// the probes that follow find the lines in L2. Measured with 1,000,000
/// SAs on 2 MB pages (bench/results/sad.md, sad12): 40-41 against 50-54
/// cycles per lookup (our CPU time); 100k SAs unchanged (25 against 24-25).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        // SAFETY: `sse` is part of the x86_64 baseline, so the instruction
        // exists on every CPU this code runs on; PREFETCHT1 never faults
        // and changes no memory (the pointer comes from a reference, so it
        // is valid anyway).
        unsafe { _mm_prefetch::<_MM_HINT_T1>(r as *const T as *const i8) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = r;
    }
}
