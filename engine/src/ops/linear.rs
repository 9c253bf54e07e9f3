//! Linear layers and matrix products.
//!
//! `linear` computes `out = x · Wᵀ + b` with `W` stored `[out, in]` (PyTorch layout) in
//! any weight dtype. The per-thread GEMM ("out[m×n] (+)= x[m×k] · W[n×k]ᵀ") is the
//! kernels engineer's (`crate::kernels`); this module does the threading:
//! - small products (< ~256k multiply-adds) run on the calling thread;
//! - many rows (encoder, `m >= 8 · threads`): rows are split into chunks, each thread
//!   runs the GEMM on its rows against the whole `W`;
//! - few rows (decoder steps): the output features `n` are split, each thread reads
//!   only its slice of `W` (which then stays in its cache) for every row.

use crate::dtype::DType;
use std::sync::Mutex;

use crate::error::{check_len, Error, Result};
use crate::kernels::{self, MatMut, MatRef};
use crate::ops::SharedMut;
use crate::safetensors::Weights;
use crate::tensor::{Tensor, WeightView};
use crate::threads;

/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MIN_MACS: usize = 1 << 18;
/// Most blocks one product is split into.
const MAX_BLOCKS: usize = 32;

fn weight_len(w: &WeightView<'_>) -> usize {
    match w {
        WeightView::F32(d) => d.len(),
        WeightView::F16(d) => d.len(),
        WeightView::Bf16(d) => d.len(),
        WeightView::I8 { q, .. } => q.len(),
    }
}

/// `out[m×n] = x[m×k] · W[n×k]ᵀ (+ bias[n])` for a weight of any dtype, multithreaded
/// over the shared pool (see the module docs for the split).
#[allow(clippy::too_many_arguments)]
pub fn matmul_nt(
    x: &[f32],
    m: usize,
    k: usize,
    w: WeightView<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    matmul_op("matmul_nt", x, m, k, w, n, bias, out)
}

/// [`matmul_nt`] reporting errors under the name of the calling op.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_op(
    op: &'static str,
    x: &[f32],
    m: usize,
    k: usize,
    w: WeightView<'_>,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    check_len(op, "x", x.len(), m * k)?;
    check_len(op, "w", weight_len(&w), n * k)?;
    check_len(op, "out", out.len(), m * n)?;
    if let WeightView::I8 { scales, .. } = w {
        check_len(op, "w.scales", scales.len(), n)?;
    }
    if let Some(b) = bias {
        check_len(op, "bias", b.len(), n)?;
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let kern = kernels::kernels();
    if k == 0 {
        for row in out.chunks_exact_mut(n) {
            match bias {
                Some(b) => row.copy_from_slice(b),
                None => row.fill(0.0),
            }
        }
        return Ok(());
    }
    let pool = threads::pool();
    let t = pool.threads();
    let mat = MatMut::from_slice(out, m, n);
    if t == 1 || m * n * k < PAR_MIN_MACS {
        kern.linear(x, w, bias, mat);
        return Ok(());
    }
    // Pre-split the output into disjoint blocks; task `i` takes block `i`.
    let parts: [Mutex<Option<(usize, MatMut<'_>)>>; MAX_BLOCKS] =
        std::array::from_fn(|_| Mutex::new(None));
    let by_rows = m >= 8 * t;
    let blocks;
    if by_rows {
        let per = m.div_ceil((2 * t).min(MAX_BLOCKS)).max(4);
        blocks = m.div_ceil(per);
        let mut rest = mat;
        for (i, p) in parts.iter().enumerate().take(blocks) {
            let take = per.min(rest.rows());
            let (a, b) = rest.split_rows(take);
            *lock(p) = Some((i * per, a));
            rest = b;
        }
    } else {
        // Columns in multiples of 16, one block per thread.
        let per = (n.div_ceil(t).div_ceil(16) * 16).max(16);
        blocks = n.div_ceil(per).min(MAX_BLOCKS);
        let per = n.div_ceil(blocks).div_ceil(16) * 16;
        let mut rest = mat;
        for (i, p) in parts.iter().enumerate().take(blocks) {
            let take = per.min(rest.cols());
            let (a, b) = rest.split_cols(take);
            *lock(p) = Some((i * per, a));
            rest = b;
        }
    }
    pool.parallel_for(blocks, |i| {
        let Some((start, part)) = lock(&parts[i]).take() else {
            return;
        };
        if by_rows {
            let rows = part.rows();
            kern.linear(&x[start * k..(start + rows) * k], w, bias, part);
        } else {
            let cols = part.cols();
            let wsub = w.rows(k, start, start + cols);
            kern.linear(x, wsub, bias.map(|b| &b[start..start + cols]), part);
        }
    });
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `out[rows, out_f] = x[rows, in_f] · Wᵀ + bias` with `W` a `[out_f, in_f]` tensor of any
/// weight dtype and `bias` (optional) of `out_f` values.
pub fn linear(
    x: &[f32],
    rows: usize,
    w: &Tensor,
    bias: Option<&[f32]>,
    out: &mut [f32],
) -> Result<()> {
    if w.rank() != 2 {
        return Err(Error::ShapeMismatch {
            what: "linear: weight must be [out, in]".into(),
            expected: vec![0, 0],
            got: w.shape().to_vec(),
        });
    }
    let (n, k) = (w.dim(0), w.dim(1));
    let wv = w.weight_view()?;
    matmul_op("linear", x, rows, k, wv, n, bias, out)
}

/// A linear layer `y = x · Wᵀ + b` (W `[out, in]`, b `[out]`, b always f32).
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[out_features, in_features]` in any weight dtype.
    pub weight: Tensor,
    /// Optional f32 bias `[out_features]`.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Builds a layer, checking that shapes and dtypes agree.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Linear> {
        if weight.rank() != 2 {
            return Err(Error::ShapeMismatch {
                what: "Linear weight must be [out, in]".into(),
                expected: vec![0, 0],
                got: weight.shape().to_vec(),
            });
        }
        if let Some(b) = &bias {
            if b.dtype() != DType::F32 {
                return Err(Error::DTypeMismatch {
                    what: "Linear bias".into(),
                    expected: "f32".into(),
                    got: b.dtype(),
                });
            }
            if b.shape() != [weight.dim(0)] {
                return Err(Error::ShapeMismatch {
                    what: "Linear bias".into(),
                    expected: vec![weight.dim(0)],
                    got: b.shape().to_vec(),
                });
            }
        }
        Ok(Linear { weight, bias })
    }

    /// Loads `{name}.weight` (`[out, in]`, dtype from the precision policy) and, if
    /// `bias`, `{name}.bias` (`[out]`, as f32).
    pub fn load(
        w: &Weights,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Linear> {
        let w = w.pp(name);
        let weight = w.get_matrix("weight", &[out_features, in_features])?;
        let bias = if bias {
            Some(w.get_f32("bias", &[out_features])?)
        } else {
            None
        };
        Linear::new(weight, bias)
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.dim(1)
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.dim(0)
    }

    /// `out[rows, out_f] = x[rows, in_f] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32]) -> Result<()> {
        let b = match &self.bias {
            Some(b) => Some(b.as_f32()?),
            None => None,
        };
        linear(x, rows, &self.weight, b, out)
    }
}

/// Batched f32 product: for each `b < batch`, `out[b] = a[b] · B[b]` where `a[b]` is
/// `[m, k]`, `B[b]` is `[n, k]` used transposed (`trans_b`) or `[k, n]`, `out[b]` `[m, n]`.
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    trans_b: bool,
) -> Result<()> {
    const OP: &str = "batched_matmul";
    check_len(OP, "a", a.len(), batch * m * k)?;
    check_len(OP, "b", b.len(), batch * k * n)?;
    check_len(OP, "out", out.len(), batch * m * n)?;
    let shared = SharedMut::new(out);
    let kern = kernels::kernels();
    let run = |bi: usize| {
        // SAFETY: each batch index writes its own output matrix.
        let o = unsafe { shared.slice(bi * m * n, m * n) };
        let ab = MatRef::from_slice(&a[bi * m * k..(bi + 1) * m * k], m, k);
        let bs = &b[bi * k * n..(bi + 1) * k * n];
        let bb = if trans_b {
            MatRef::from_slice(bs, n, k).t()
        } else {
            MatRef::from_slice(bs, k, n)
        };
        (kern.matmul_f32)(ab, bb, false, MatMut::from_slice(o, m, n));
    };
    if batch * m * n * k < PAR_MIN_MACS {
        (0..batch).for_each(run);
    } else {
        threads::pool().parallel_for(batch, run);
    }
    Ok(())
}
