//! hark-engine: tensors, dtypes, runtime-selected kernels, ops, KV cache, delegates.
//!
//! Design in brief:
//! - **Weights are tensors, activations are slices.** [`Tensor`] (shared storage +
//!   layout + dtype) holds weights, zero-copy from memory-mapped safetensors
//!   ([`safetensors::Weights`]). Ops ([`ops`]) take f32 activations as row-major
//!   `&[f32]` with explicit dimensions and write into caller-provided `&mut [f32]`, so a
//!   decoder step can run without allocating.
//! - **Mixed precision without a dtype explosion.** Only matrix ops look at the weight
//!   dtype ([`tensor::WeightView`] → GEMM kernel); everything else is f32. A model's
//!   [`precision::PrecisionPolicy`] picks the weight dtype and can pin layers to f32.
//! - **Kernels vs ops.** [`kernels`] holds single-threaded, ISA-selected GEMM/vector
//!   kernels; ops do the threading over the shared [`threads::pool`].
//! - **Model vs stream.** Weights are immutable and shared; per-stream state is the
//!   [`kv_cache::KvCache`], [`kv_cache::CrossKv`] and a [`scratch::Scratch`] arena.
//! - **Delegates per stage** ([`delegate`]), CPU fallback.
#![deny(missing_docs)]

pub mod delegate;
pub mod dtype;
pub mod error;
pub mod kernels;
pub mod kv_cache;
pub mod ops;
pub mod precision;
pub mod safetensors;
pub mod scratch;
pub mod tensor;
pub mod threads;

pub use dtype::{bf16, f16, DType};
pub use error::{Error, Result};
pub use kv_cache::{CrossKv, KvCache};
pub use precision::{Precision, PrecisionPolicy};
pub use safetensors::{save_safetensors, SafeTensors, Weights};
pub use scratch::Scratch;
pub use tensor::{Tensor, WeightView};
