//! seal/open never allocate (Rust global allocator; the C code inside
//! aws-lc-rs allocates through libc malloc, which this counter does not see:
//! AWS-LC's AEAD seal/open, AES_cbc_encrypt and HMAC_CTX_copy_ex work on
//! caller/stack memory).

mod crypto_common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crypto_common::{all_suites, keys, opts, packet, padded};
use dataplane::crypto::{build_with, Backend, OpenJob, SealJob};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    /// Counting is on for this thread only: other threads of the test
    /// harness (e.g. the main thread's first channel wait, which allocates
    /// its waker context) may allocate at any time, which is not ours.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting_here() -> bool {
    COUNTING.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: every method forwards to the system allocator unchanged; the
// counter only observes calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting_here() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        if counting_here() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarding to the system allocator.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn seal_and_open_do_not_allocate() {
    let mut checked = 0;
    for suite in all_suites() {
        for esn in [false, true] {
            let (ek, ak) = keys(suite, 5);
            for &b in Backend::compiled() {
                let Ok(c) = build_with(suite, &ek, &ak, &opts(b, esn)) else {
                    continue;
                };
                let pt = padded(&*c, &[0x11; 500]);
                let mut pkts: Vec<Vec<u8>> =
                    (0..32).map(|i| packet(&*c, 0x300, i + 1, &pt)).collect();
                let mut seal: Vec<SealJob> = pkts
                    .iter_mut()
                    .enumerate()
                    .map(|(i, p)| SealJob {
                        esp: p,
                        seq: i as u64 + 1,
                    })
                    .collect();
                ALLOCS.store(0, Ordering::SeqCst);
                COUNTING.with(|c| c.set(true));
                c.seal(&mut seal);
                COUNTING.with(|c| c.set(false));
                assert_eq!(
                    ALLOCS.load(Ordering::SeqCst),
                    0,
                    "{suite:?} {b} seal allocated"
                );
                drop(seal);
                let mut open: Vec<OpenJob> = pkts
                    .iter_mut()
                    .enumerate()
                    .map(|(i, p)| OpenJob {
                        esp: p,
                        seq: i as u64 + 1,
                        ok: false,
                    })
                    .collect();
                ALLOCS.store(0, Ordering::SeqCst);
                COUNTING.with(|c| c.set(true));
                c.open(&mut open);
                COUNTING.with(|c| c.set(false));
                assert_eq!(
                    ALLOCS.load(Ordering::SeqCst),
                    0,
                    "{suite:?} {b} open allocated"
                );
                assert!(open.iter().all(|j| j.ok), "{suite:?} {b}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 46);
}
