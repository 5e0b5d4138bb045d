//! A fixed-length, reference-counted slice that large tables can put on
//! 2 MB pages: [`HugeArc`].
//!
//! Not shared memory: a private anonymous mapping (or the heap). It lives in
//! `shm/` because that is where `core` allows `unsafe` (HACKING.md), and it
//! is the same kind of code as [`super::region`]'s mapping.
//!
//! Why: a table of a million entries is tens of megabytes read at random;
//! on 4 KB pages nearly every read is also a TLB miss and a page walk
//! (nested under a hypervisor). Transparent huge pages need no reservation:
//! with THP in `madvise` mode (the usual default) a mapping advised
//! `MADV_HUGEPAGE` gets 2 MB pages where the kernel has them, 4 KB pages
//! where it does not, with nothing to configure and nothing to fail.
//!
//! A [`HugeArc`] is like an `Arc<[T]>`: one block holding a header line (the
//! reference count) followed by the elements, a fat pointer to it, clones
//! share the block, the last drop drops the elements and frees the block.
//! Readers reach an element in one dependent load from the handle, as with
//! `Arc<[T]>`. The block comes from
//! - an anonymous mapping aligned to 2 MB and advised `MADV_HUGEPAGE`, when
//!   [`Placement::Huge`] is asked for and the block is at least
//!   [`HUGE_PAGE`]; if the mapping fails the heap is used instead (no
//!   error: the table works the same on 4 KB pages);
//! - the heap (the global allocator, 64-byte aligned) otherwise.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// A transparent huge page (x86-64, aarch64 with 4 KB base pages).
pub const HUGE_PAGE: usize = 2 << 20;

/// Bytes of the header line in front of the elements.
pub const HEADER: usize = 64;

/// Where the block of a [`HugeArc`] should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The heap.
    Heap,
    /// Its own mapping advised `MADV_HUGEPAGE` if the block (header and
    /// elements) is at least [`HUGE_PAGE`], else the heap.
    Huge,
}

/// The header line: the reference count and where the block came from.
#[repr(C, align(64))]
struct Header {
    count: AtomicUsize,
    /// Length of the mapping, or 0 for a heap block.
    map_len: usize,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER);

/// A shared slice of `T` in one block (heap or a huge-page mapping); see
/// the module documentation. `T`'s alignment must be at most 64.
pub struct HugeArc<T> {
    hdr: NonNull<Header>,
    len: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a `HugeArc<T>` gives shared access to `T`s from any thread and
// drops them on whichever thread drops the last handle, exactly as
// `Arc<[T]>` does; the reference count is atomic. So it is `Send` and `Sync`
// under the same bounds as `Arc<[T]>`.
unsafe impl<T: Send + Sync> Send for HugeArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for HugeArc<T> {}

#[cfg(test)]
thread_local! {
    /// Tests: make the next mapping on this thread fail (the fallback).
    pub(crate) static FAIL_NEXT_MAP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A private anonymous mapping of `len` bytes (a multiple of 4 KB) whose
/// start is aligned to [`HUGE_PAGE`], advised `MADV_HUGEPAGE`. `None` if the
/// kernel refuses the mapping (the advice may fail alone: then the mapping
/// stays on 4 KB pages).
fn map_huge(len: usize) -> Option<NonNull<u8>> {
    #[cfg(test)]
    if FAIL_NEXT_MAP.with(|f| f.replace(false)) {
        return None;
    }
    let total = len.checked_add(HUGE_PAGE)?;
    // SAFETY: a new private anonymous mapping (no file, no fixed address):
    // it aliases no memory of this process. The result is checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let (head, tail) = (aligned - start, start + total - (aligned + len));
    if head > 0 {
        // SAFETY: `[start, aligned)` is the unaligned head of the mapping
        // just made, page-aligned at both ends (mmap returns page-aligned
        // addresses and HUGE_PAGE is a multiple of the page size); nothing
        // refers to it.
        unsafe { libc::munmap(p, head) };
    }
    if tail > 0 {
        // SAFETY: `[aligned + len, start + total)` is the tail of the same
        // mapping, page-aligned (`len` is a multiple of 4 KB); unused.
        unsafe { libc::munmap((aligned + len) as *mut libc::c_void, tail) };
    }
    // SAFETY: `[aligned, aligned + len)` is mapped by this function and
    // owned by the caller; the advice changes only how it is backed.
    let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    NonNull::new(aligned as *mut u8)
}

impl<T> HugeArc<T> {
    const ALIGN_OK: () = assert!(std::mem::align_of::<T>() <= HEADER);

    /// A slice of `len` elements made by `f(0)`, `f(1)`, ... in a block
    /// placed as `placement` says. Aborts like `Box` when memory runs out.
    /// If `f` panics the elements made so far and the block are leaked.
    pub fn from_fn(len: usize, placement: Placement, mut f: impl FnMut(usize) -> T) -> Self {
        let () = Self::ALIGN_OK;
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(HEADER))
            .filter(|&b| b <= isize::MAX as usize - HUGE_PAGE)
            .expect("HugeArc: size overflow");
        let mapped = (placement == Placement::Huge && bytes >= HUGE_PAGE)
            .then(|| bytes.next_multiple_of(4096))
            .and_then(|l| map_huge(l).map(|p| (p, l)));
        let (block, map_len) = match mapped {
            Some((p, l)) => (p, l),
            None => {
                let layout = Layout::from_size_align(bytes, HEADER).expect("HugeArc: layout");
                // SAFETY: `layout` has a non-zero size (at least the header).
                let p = unsafe { std::alloc::alloc(layout) };
                match NonNull::new(p) {
                    Some(p) => (p, 0),
                    None => std::alloc::handle_alloc_error(layout),
                }
            }
        };
        let hdr = block.cast::<Header>();
        // SAFETY: `block` is a fresh allocation of `bytes >= HEADER` bytes,
        // 64-byte aligned (heap layout, or a 2 MB-aligned mapping), owned
        // here: the header is written before anything reads it.
        unsafe {
            hdr.as_ptr().write(Header {
                count: AtomicUsize::new(1),
                map_len,
            })
        };
        let data = Self::data_of(hdr);
        for i in 0..len {
            // SAFETY: element `i` lies inside the block (`HEADER + len *
            // size_of::<T>() <= bytes`), is aligned (the block is 64-byte
            // aligned and `align_of::<T>() <= 64` divides both the header
            // size and `size_of::<T>()`), and is written once, before any
            // handle exists.
            unsafe { data.as_ptr().add(i).write(f(i)) };
        }
        HugeArc {
            hdr,
            len,
            _owns: PhantomData,
        }
    }

    /// A slice of `len` default values.
    pub fn new_default(len: usize, placement: Placement) -> Self
    where
        T: Default,
    {
        Self::from_fn(len, placement, |_| T::default())
    }

    fn data_of(hdr: NonNull<Header>) -> NonNull<T> {
        // SAFETY: the elements start `HEADER` bytes after the header, inside
        // the same block (its size is at least `HEADER`).
        unsafe { hdr.cast::<u8>().add(HEADER).cast::<T>() }
    }

    /// True when the block is a mapping of its own advised `MADV_HUGEPAGE`
    /// (whether the kernel backed it with 2 MB pages is its choice:
    /// `AnonHugePages` in /proc/self/smaps says).
    pub fn is_mapped(&self) -> bool {
        self.header().map_len != 0
    }

    /// Bytes of the block: the mapping's length, or header plus elements
    /// on the heap.
    pub fn block_bytes(&self) -> usize {
        match self.header().map_len {
            0 => HEADER + std::mem::size_of::<T>() * self.len,
            n => n,
        }
    }

    /// Handles to this block (tests).
    pub fn count(this: &Self) -> usize {
        this.header().count.load(Ordering::Acquire)
    }

    fn header(&self) -> &Header {
        // SAFETY: the header is initialised in `from_fn` and lives as long
        // as any handle (this one included).
        unsafe { self.hdr.as_ref() }
    }
}

impl<T> std::ops::Deref for HugeArc<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` elements were initialised in `from_fn` and are
        // dropped only with the last handle; this handle is alive for the
        // returned borrow, and elements are only ever shared (`&T`).
        unsafe { std::slice::from_raw_parts(Self::data_of(self.hdr).as_ptr(), self.len) }
    }
}

impl<T> Clone for HugeArc<T> {
    fn clone(&self) -> Self {
        // As `Arc`: a new handle is made from an existing one, so Relaxed
        // suffices; a count near overflow aborts.
        if self.header().count.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
            std::process::abort();
        }
        HugeArc {
            hdr: self.hdr,
            len: self.len,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for HugeArc<T> {
    fn drop(&mut self) {
        if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other handle's uses happen before the elements are dropped.
        fence(Ordering::Acquire);
        let map_len = self.header().map_len;
        let data = Self::data_of(self.hdr);
        // SAFETY: this was the last handle: nothing else can reach the
        // elements; they were initialised in `from_fn` and are dropped once.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(data.as_ptr(), self.len))
        };
        let bytes = HEADER + std::mem::size_of::<T>() * self.len;
        if map_len != 0 {
            // SAFETY: the block is the mapping of `map_len` bytes made by
            // `map_huge` for this slice; nothing refers to it any more.
            unsafe { libc::munmap(self.hdr.as_ptr().cast(), map_len) };
        } else {
            // SAFETY: a heap block allocated in `from_fn` with this same
            // layout (`bytes`, 64-byte aligned); nothing refers to it.
            unsafe {
                std::alloc::dealloc(
                    self.hdr.as_ptr().cast(),
                    Layout::from_size_align_unchecked(bytes, HEADER),
                )
            };
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HugeArc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArc")
            .field("len", &self.len)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::Arc;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>, #[allow(dead_code)] [u8; 40]);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The VmFlags line of the mapping holding `addr` in /proc/self/smaps.
    fn vm_flags(addr: usize) -> Option<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    return Some(f.trim().to_string());
                }
            }
        }
        None
    }

    fn thp_possible() -> bool {
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .is_ok_and(|s| !s.contains("[never]"))
    }

    #[test]
    fn large_huge_slice_is_an_aligned_advised_mapping() {
        let n = 3 * HUGE_PAGE / 4; // 6 MB of elements
        let a = HugeArc::<AtomicU32>::from_fn(n, Placement::Huge, |i| AtomicU32::new(i as u32));
        assert!(a.is_mapped());
        assert_eq!(a.len(), n);
        let base = a.as_ptr() as usize - HEADER;
        assert_eq!(base % HUGE_PAGE, 0, "mapping not 2 MB aligned");
        assert_eq!(a.block_bytes(), (HEADER + 4 * n).next_multiple_of(4096));
        assert!((0..n)
            .step_by(997)
            .all(|i| a[i].load(Ordering::Relaxed) == i as u32));
        // Shared and written through a clone.
        let b = a.clone();
        assert_eq!(HugeArc::count(&a), 2);
        b[5].store(77, Ordering::Relaxed);
        assert_eq!(a[5].load(Ordering::Relaxed), 77);
        if thp_possible() {
            let flags = vm_flags(base).expect("mapping in smaps");
            assert!(flags.split(' ').any(|f| f == "hg"), "not advised: {flags}");
        }
        drop(a);
        drop(b);
        // Unmapped with its last handle.
        assert!(vm_flags(base).is_none());
    }

    #[test]
    fn small_or_heap_slices_use_the_heap() {
        let a = HugeArc::<u64>::new_default(1000, Placement::Huge);
        assert!(!a.is_mapped());
        assert_eq!(a.block_bytes(), HEADER + 8000);
        assert_eq!(a.as_ptr() as usize % 64, 0);
        let b = HugeArc::<u64>::new_default(HUGE_PAGE, Placement::Heap);
        assert!(!b.is_mapped());
        assert!(b.iter().all(|&x| x == 0));
        let e = HugeArc::<u64>::new_default(0, Placement::Huge);
        assert!(e.is_empty());
    }

    #[test]
    fn failed_mapping_falls_back_to_the_heap() {
        FAIL_NEXT_MAP.with(|f| f.set(true));
        let n = HUGE_PAGE / 8;
        let a = HugeArc::<u64>::from_fn(n, Placement::Huge, |i| i as u64);
        assert!(!a.is_mapped());
        assert_eq!(a[n - 1], (n - 1) as u64);
        // The next one maps again.
        let b = HugeArc::<u64>::new_default(n, Placement::Huge);
        assert!(b.is_mapped());
    }

    #[test]
    fn elements_drop_once_with_the_last_handle() {
        for (n, placement) in [(10, Placement::Heap), (HUGE_PAGE / 48, Placement::Huge)] {
            let drops = Arc::new(AtomicUsize::new(0));
            let a = HugeArc::from_fn(n, placement, |_| Counted(drops.clone(), [0; 40]));
            assert_eq!(a.is_mapped(), placement == Placement::Huge);
            let clones: Vec<_> = (0..4).map(|_| a.clone()).collect();
            let t = std::thread::spawn(move || drop(clones));
            t.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), 0);
            drop(a);
            assert_eq!(drops.load(Ordering::Relaxed), n);
        }
    }
}
