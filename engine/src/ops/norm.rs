//! Normalisation and softmax (always f32), and batch-norm folding.

use crate::error::{check_len, Error, Result};
use crate::ops::SharedMut;

/// Layer norm over the last dimension: `out = (x - mean) / sqrt(var + eps) · gamma + beta`
/// for each of the `rows` rows of width `dim` (biased variance, as PyTorch).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    rows: usize,
    dim: usize,
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "layer_norm";
    check_len(OP, "x", x.len(), rows * dim)?;
    check_len(OP, "out", out.len(), rows * dim)?;
    check_len(OP, "gamma", gamma.len(), dim)?;
    if let Some(b) = beta {
        check_len(OP, "beta", b.len(), dim)?;
    }
    let sum = crate::kernels::kernels().sum;
    if rows * dim < 1 << 16 {
        for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
            norm_row(xr, or, gamma, beta, eps, sum);
        }
        return Ok(());
    }
    let shared = SharedMut::new(out);
    crate::threads::pool().parallel_range(rows, 16, |r0, r1| {
        // SAFETY: row ranges of different tasks are disjoint.
        let o = unsafe { shared.slice(r0 * dim, (r1 - r0) * dim) };
        for (xr, or) in x[r0 * dim..r1 * dim]
            .chunks_exact(dim)
            .zip(o.chunks_exact_mut(dim))
        {
            norm_row(xr, or, gamma, beta, eps, sum);
        }
    });
    Ok(())
}

fn mean_inv_std(xr: &[f32], eps: f32, sum: fn(&[f32]) -> f32) -> (f32, f32) {
    let n = xr.len() as f32;
    let mean = sum(xr) / n;
    let mut acc = [0f32; 8];
    let chunks = xr.chunks_exact(8);
    let rem = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            let dv = c[i] - mean;
            acc[i] += dv * dv;
        }
    }
    let mut var: f32 = acc.iter().sum();
    for v in rem {
        var += (v - mean) * (v - mean);
    }
    (mean, 1.0 / (var / n + eps).sqrt())
}

fn norm_row(
    xr: &[f32],
    or: &mut [f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
    sum: fn(&[f32]) -> f32,
) {
    let (mean, inv) = mean_inv_std(xr, eps, sum);
    match beta {
        Some(b) => {
            for i in 0..xr.len() {
                or[i] = (xr[i] - mean) * inv * gamma[i] + b[i];
            }
        }
        None => {
            for i in 0..xr.len() {
                or[i] = (xr[i] - mean) * inv * gamma[i];
            }
        }
    }
}

/// Layer norm in place (see [`layer_norm`]).
pub fn layer_norm_inplace(
    x: &mut [f32],
    dim: usize,
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
) -> Result<()> {
    const OP: &str = "layer_norm_inplace";
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(Error::BufferLength {
            op: OP,
            arg: "x (multiple of dim)",
            expected: dim,
            got: x.len(),
        });
    }
    check_len(OP, "gamma", gamma.len(), dim)?;
    if let Some(b) = beta {
        check_len(OP, "beta", b.len(), dim)?;
    }
    let sum = crate::kernels::kernels().sum;
    for row in x.chunks_exact_mut(dim) {
        let (mean, inv) = mean_inv_std(row, eps, sum);
        for i in 0..dim {
            row[i] = (row[i] - mean) * inv * gamma[i] + beta.map_or(0.0, |b| b[i]);
        }
    }
    Ok(())
}

/// Softmax over each row of width `cols`, in place (max-subtracted; rows that are all
/// `-inf` become all zeros).
pub fn softmax(x: &mut [f32], cols: usize) -> Result<()> {
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(Error::BufferLength {
            op: "softmax",
            arg: "x (multiple of cols)",
            expected: cols,
            got: x.len(),
        });
    }
    for row in x.chunks_exact_mut(cols) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        if m == f32::NEG_INFINITY {
            row.fill(0.0);
            continue;
        }
        let mut s = 0f32;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        let inv = 1.0 / s;
        row.iter_mut().for_each(|v| *v *= inv);
    }
    Ok(())
}

/// Log-softmax over each row of width `cols`, in place.
pub fn log_softmax(x: &mut [f32], cols: usize) -> Result<()> {
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(Error::BufferLength {
            op: "log_softmax",
            arg: "x (multiple of cols)",
            expected: cols,
            got: x.len(),
        });
    }
    for row in x.chunks_exact_mut(cols) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
        let lse = m + s.ln();
        row.iter_mut().for_each(|v| *v -= lse);
    }
    Ok(())
}

/// Folds an inference-mode batch norm that follows a conv into the conv's weights:
/// `w'[o, ..] = w[o, ..] · g[o]` and `b'[o] = (b[o] - mean[o]) · g[o] + beta[o]` with
/// `g = gamma / sqrt(var + eps)`. `weight` is `[out_channels, ...]` row-major, `bias` has
/// `out_channels` values (pass zeros for a conv without bias).
#[allow(clippy::too_many_arguments)]
pub fn fold_batch_norm(
    weight: &mut [f32],
    bias: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
) -> Result<()> {
    const OP: &str = "fold_batch_norm";
    let c = bias.len();
    check_len(OP, "gamma", gamma.len(), c)?;
    check_len(OP, "beta", beta.len(), c)?;
    check_len(OP, "running_mean", running_mean.len(), c)?;
    check_len(OP, "running_var", running_var.len(), c)?;
    if c == 0 || !weight.len().is_multiple_of(c) {
        return Err(Error::BufferLength {
            op: OP,
            arg: "weight (multiple of channels)",
            expected: c,
            got: weight.len(),
        });
    }
    let per = weight.len() / c;
    for o in 0..c {
        let g = gamma[o] / (running_var[o] + eps).sqrt();
        weight[o * per..(o + 1) * per]
            .iter_mut()
            .for_each(|w| *w *= g);
        bias[o] = (bias[o] - running_mean[o]) * g + beta[o];
    }
    Ok(())
}
