//! Per-thread, grow-only scratch buffers for kernels that need temporary storage
//! (quantised activations, packed weights, widened weight blocks), so that a warmed-up
//! decoder step performs no heap allocation: after the first call with a given size the
//! buffers are reused.

use std::cell::RefCell;

/// Scratch vectors, one per role (disjoint fields can be borrowed together).
#[derive(Default)]
pub(crate) struct Bufs {
    /// Quantised activations (u8 with +128 offset).
    pub u8a: Vec<u8>,
    /// Quantised activations (i8) / one quantised row.
    pub i8a: Vec<i8>,
    /// Packed int8 weights.
    pub i8b: Vec<i8>,
    /// Per-row activation scales.
    pub f32a: Vec<f32>,
    /// Widened weights / padded per-column scales.
    pub f32b: Vec<f32>,
    /// Padded bias.
    pub f32c: Vec<f32>,
    /// Per-column weight sums.
    pub i32a: Vec<i32>,
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Runs `f` with this thread's scratch buffers (fresh, allocating ones if re-entered).
pub(crate) fn with_bufs<R>(f: impl FnOnce(&mut Bufs) -> R) -> R {
    BUFS.with(|b| {
        if let Ok(mut g) = b.try_borrow_mut() {
            return f(&mut g);
        }
        f(&mut Bufs::default())
    })
}

/// The first `n` elements of `v`, zero-filled, growing `v` if needed (never shrinking).
pub(crate) fn take<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    let s = &mut v[..n];
    s.fill(T::default());
    s
}
