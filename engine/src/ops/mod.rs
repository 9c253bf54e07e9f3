//! Operations on f32 activations.
//!
//! Conventions shared by every op:
//! - activations are row-major `[rows, features]` f32 buffers (time-major: one row per
//!   frame or token), passed as slices together with their dimensions;
//! - results go into caller-provided `out` buffers, so a decoder step can run without
//!   allocating (ops that allocate internal scratch say so: conv1d/conv2d only);
//! - matrix weights are [`Tensor`](crate::tensor::Tensor)s in any weight dtype (f32, f16,
//!   bf16, int8); the GEMM is looked up by the weight's dtype, accumulation is f32;
//! - norms, softmax, reductions and residual sums are f32;
//! - buffer sizes are checked and reported as [`Error::BufferLength`](crate::Error).
//!
//! Large ops split work over the shared [`threads::pool`](crate::threads::pool).

pub mod activation;
pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod embedding;
pub mod linear;
pub mod norm;
pub mod posenc;

pub use activation::{erf, gelu, gelu_into, glu, relu, sigmoid, silu};
pub use attention::{attention, rel_shift, AttentionOpts, RelPosTerm, Rows};
pub use conv::{conv1d, conv1d_out_len, conv2d, conv2d_out_len, depthwise_conv1d, Conv2dParams};
pub use elementwise::{add, add_bias, add_into, mul, scale};
pub use embedding::embedding;
pub use linear::{batched_matmul, linear, matmul_nt, Linear};
pub use norm::{fold_batch_norm, layer_norm, layer_norm_inplace, log_softmax, softmax};
pub use posenc::{
    legacy_rel_positional_encoding, rel_positional_encoding, sinusoidal_positions,
    whisper_sinusoids,
};

/// A raw pointer to a mutable buffer that parallel tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: users guarantee tasks access disjoint ranges (see `slice`).
unsafe impl<T: Send> Send for SharedMut<T> {}
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn new(s: &mut [T]) -> Self {
        SharedMut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
        }
    }

    /// # Safety
    /// No two live slices obtained from this value may overlap, and the source buffer
    /// must outlive them.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "SharedMut::slice out of bounds");
        // SAFETY: in bounds (checked); disjointness is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
