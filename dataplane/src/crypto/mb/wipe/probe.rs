//! Reading the stack below the current frame back (tests of the wipes).

use std::arch::asm;

/// Bytes of stack read back below the test's frame (more than any wipe).
pub(crate) const DUMP: usize = 32 * 1024;

/// Copies the `DUMP` bytes just below the stack pointer into `out`.
#[inline(always)]
pub(crate) fn below_sp(out: &mut [u8; DUMP]) {
    // SAFETY: reads the `DUMP` bytes below `rsp`, which lie in this thread's
    // stack (a test thread has 2 MiB and the test runs near its top), and
    // writes `out`, a buffer of exactly `DUMP` bytes. The asm pushes nothing
    // (`nostack`) and restores no flags it changes (`rep movsb` changes none).
    unsafe {
        asm!(
            "mov rsi, rsp",
            "sub rsi, {n}",
            "rep movsb",
            n = const DUMP,
            inout("rdi") out.as_mut_ptr() => _,
            inout("rcx") DUMP => _,
            out("rsi") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Offsets in `dump` where one of `needles` occurs, as (needle index, offset).
pub(crate) fn found<const L: usize>(dump: &[u8], needles: &[[u8; L]]) -> Vec<(usize, usize)> {
    let mut hits = Vec::new();
    for (i, n) in needles.iter().enumerate() {
        for (off, w) in dump.windows(L).enumerate() {
            if w == n {
                hits.push((i, off));
            }
        }
    }
    hits
}

/// A 32-bit word four times (one 128-bit lane of a broadcast register).
pub(crate) fn splat(w: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    for c in b.chunks_exact_mut(4) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// Fills the `DUMP` bytes below the stack pointer with 0xa5.
#[inline(always)]
pub(crate) fn paint_below_sp() {
    // SAFETY: writes the `DUMP` bytes below `rsp`: this thread's stack, not
    // in use by any frame (they are below the stack pointer); nothing pushed.
    unsafe {
        asm!(
            "mov rdi, rsp",
            "sub rdi, {n}",
            "mov al, 0xa5",
            "rep stosb",
            n = const DUMP,
            out("rdi") _,
            inout("rcx") DUMP => _,
            out("al") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Bytes below the stack pointer a burst wrote (after `paint_below_sp`).
pub(crate) fn depth(dump: &[u8; DUMP]) -> usize {
    DUMP - dump.iter().position(|&b| b != 0xa5).unwrap_or(DUMP)
}

/// Slack for the wipe's own frame (return address, saved registers,
/// alignment) below the caller's stack pointer.
pub(crate) const SLACK: usize = 256;

/// ESP packets (header, IV, payload, ICV room) of the given payload sizes.
pub(crate) fn packets(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let mut p = vec![0u8; 16 + n + 16];
            p[..4].copy_from_slice(&0x1000u32.to_be_bytes());
            p[4..8].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            for (j, b) in p[16..16 + n].iter_mut().enumerate() {
                *b = (j * 7 + i) as u8;
            }
            p
        })
        .collect()
}
