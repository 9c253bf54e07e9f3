//! A global allocator that counts allocations while switched on, for tests proving that
//! a warmed-up step allocates nothing.
//!
//! A test binary installs it with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;` and brackets the code
//! under test with [`start_counting`] / [`stop_counting`]. The counters are process-wide
//! (pool worker threads included), so such a binary should hold a single test.
//! `alloc` and `realloc` count; `dealloc` does not. Everything is forwarded to
//! [`System`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static ON: AtomicBool = AtomicBool::new(false);

/// The counting allocator (forwards to [`System`]).
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments; counting only
// touches atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

/// Resets the count to zero and starts counting.
pub fn start_counting() {
    ALLOCS.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
}

/// Stops counting and returns the number of allocations since [`start_counting`].
pub fn stop_counting() -> usize {
    ON.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}
