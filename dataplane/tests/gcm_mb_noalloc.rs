//! The multi-buffer AES-GCM transform (`crypto::mb`) never allocates on the
//! packet path: seal and open of bursts (short four-packet runs, single
//! packets, long packets, malformed short ones) under a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use dataplane::crypto::mb::build_gcm;
use dataplane::crypto::{Key, OpenJob, SealJob};

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
    for (klen, esn) in [(20usize, false), (36, true)] {
        let Some(c) = build_gcm(&Key::new(vec![0x5a; klen]), esn) else {
            eprintln!("CPU lacks VAES/VPCLMULQDQ/AVX-512: nothing to check");
            return;
        };
        // 8 short packets (two four-packet runs), then mixed and long ones.
        let lens = [
            64usize, 64, 64, 64, 60, 60, 60, 60, 0, 1420, 9000, 200, 3, 4096,
        ];
        let mut pkts: Vec<Vec<u8>> = lens.iter().map(|&l| vec![7u8; l + 32]).collect();
        pkts.push(vec![1u8; 10]); // malformed: shorter than header + ICV
        let seqs: Vec<u64> = (1..=pkts.len() as u64).collect();
        for round in 0..2 {
            // The job vectors are built outside the counted region.
            let mut seal: Vec<SealJob<'_>> = pkts
                .iter_mut()
                .zip(&seqs)
                .map(|(p, &seq)| SealJob { esp: p, seq })
                .collect();
            COUNTING.with(|c| c.set(true));
            c.seal(&mut seal);
            COUNTING.with(|c| c.set(false));
            drop(seal);
            let mut open: Vec<OpenJob<'_>> = pkts
                .iter_mut()
                .zip(&seqs)
                .map(|(p, &seq)| OpenJob {
                    esp: p,
                    seq,
                    ok: false,
                })
                .collect();
            COUNTING.with(|c| c.set(true));
            c.open(&mut open);
            COUNTING.with(|c| c.set(false));
            let oks: Vec<bool> = open.iter().map(|j| j.ok).collect();
            drop(open);
            assert_eq!(
                &oks[..lens.len()],
                &vec![true; lens.len()][..],
                "round {round}"
            );
            assert!(!oks[lens.len()], "malformed packet opened");
        }
        assert_eq!(
            ALLOCS.load(Ordering::SeqCst),
            0,
            "allocations on the packet path"
        );
    }
}
