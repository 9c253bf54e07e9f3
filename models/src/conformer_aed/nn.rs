//! Small f32 building blocks shared by the encoder and decoder.
//!
//! Activations are row-major `[rows × width]` f32. f32 weight matrices are multiplied with
//! the `gemm` crate using explicit strides (per-head views of `[T × d_model]` need no
//! copies; bit-for-bit the path the golden tests check); f16/int8 weights are engine tensors
//! on the engine's threaded kernels. The definitions follow PyTorch's (biased variance in
//! LayerNorm, exact erf GELU, GLU over the channel halves).

use gemm::Parallelism;

/// `dst[m×n] (row stride dst_rs) (+)= a[m×k] · b[k×n]`, with arbitrary element strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_f32(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // Bounds of every element the kernel touches (the kernel itself does not check).
    assert!((m - 1) * dst_rs + n <= dst.len(), "gemm_f32: dst too small");
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "gemm_f32: lhs too small"
    );
    assert!(
        (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "gemm_f32: rhs too small"
    );
    // The workspace builds gemm without its rayon feature: single-threaded here.
    let par = Parallelism::None;
    // SAFETY: the asserts above keep every strided access inside the three slices, and
    // `dst` does not alias `a` or `b` (distinct borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// A weight matrix `[out × in]`: f32 (multiplied with `gemm`, bit-for-bit the reference
/// path the golden tests check) or an engine tensor in f16/int8 (multiplied with the
/// engine's multithreaded `matmul_nt`, f32 accumulation).
#[derive(Debug, Clone)]
pub enum Weight {
    /// f32 row-major.
    F32(Vec<f32>),
    /// Engine tensor (f16, bf16 or int8 with per-row scales).
    Engine(hark_engine::Tensor),
}

impl Weight {
    /// Converts an f32 matrix `[n × k]` to the dtype `precision` asks for.
    pub fn with_precision(
        w: Vec<f32>,
        n: usize,
        k: usize,
        precision: hark_engine::Precision,
    ) -> Result<Self, hark_engine::Error> {
        match precision {
            hark_engine::Precision::F32 => Ok(Weight::F32(w)),
            p => Ok(Weight::Engine(
                hark_engine::Tensor::from_f32(&[n, k], &w)?.to_dtype(p.weight_dtype())?,
            )),
        }
    }

    /// Bytes held by the weight data.
    pub fn bytes(&self) -> usize {
        match self {
            Weight::F32(w) => 4 * w.len(),
            Weight::Engine(t) => {
                t.numel() * t.dtype().size_in_bytes()
                    + if t.dtype() == hark_engine::DType::I8 {
                        4 * t.dims()[0]
                    } else {
                        0
                    }
            }
        }
    }
}

/// Rows per kernel call in [`matmul_i8_by_columns`] (0 = all rows in one call). 5 = the
/// engine's largest unpacked int8 tile (`MR_I8`): no weight packing at all, and each
/// 256-column weight block (320 KB at d 1280) stays in L2 for all row chunks. Measured at
/// 100×1280×5120 under load: engine matmul_nt 127 ms, columns with packing 40 ms, rows of 5
/// 32 ms, f16 60 ms.
pub const I8_ROW_CHUNK: usize = 5;
/// Output columns per weight block in [`matmul_i8_by_columns`] when rows are chunked.
const I8_COL_BLOCK: usize = 256;

/// int8 product for many rows, split over the engine's threads by output columns.
///
/// The engine's `matmul_nt` splits many-row products by rows, and its large-m int8 kernel
/// packs the whole weight matrix for the VNNI micro-kernel on every call, so each row block
/// re-packs all of `W` (4 packs per call on 2 threads): at encoder sizes (100 frames × 1280
/// → 5120) that made int8 twice as slow as f16. Here each thread takes a slice of the
/// output columns and runs the kernel on [`I8_ROW_CHUNK`] rows at a time (its unpacked
/// path) over L2-sized weight blocks, so the weights are never packed.
fn matmul_i8_by_columns(
    x: &[f32],
    m: usize,
    k: usize,
    w: hark_engine::WeightView<'_>,
    n: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
) {
    matmul_i8_columns(x, m, k, w, n, bias, y, I8_ROW_CHUNK)
}

/// [`matmul_i8_by_columns`] with an explicit row chunk: `row_chunk > 0` calls the kernel
/// on at most `row_chunk` rows at a time (its unpacked small-m path) over column blocks
/// whose weights stay in L2; 0 = all rows per call (packed path). Public for the benchmark.
#[allow(clippy::too_many_arguments)]
pub fn matmul_i8_columns(
    x: &[f32],
    m: usize,
    k: usize,
    w: hark_engine::WeightView<'_>,
    n: usize,
    bias: Option<&[f32]>,
    y: &mut [f32],
    row_chunk: usize,
) {
    use hark_engine::kernels::{kernels, MatMut};
    use std::sync::Mutex;
    let pool = hark_engine::threads::pool();
    let blocks = pool.threads().max(1);
    let per = n.div_ceil(blocks).div_ceil(16) * 16;
    let mut parts: Vec<Mutex<Option<(usize, MatMut<'_>)>>> = Vec::with_capacity(blocks);
    let mut rest = MatMut::from_slice(y, m, n);
    let mut start = 0;
    while start < n {
        let take = per.min(n - start);
        let (a, b) = rest.split_cols(take);
        parts.push(Mutex::new(Some((start, a))));
        rest = b;
        start += take;
    }
    let kern = kernels();
    pool.parallel_for(parts.len(), |i| {
        let taken = parts[i].lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((s, part)) = taken else {
            return;
        };
        let e = s + part.cols();
        if row_chunk == 0 {
            kern.linear(x, w.rows(k, s, e), bias.map(|b| &b[s..e]), part);
            return;
        }
        let mut part = part;
        let mut c0 = s;
        while c0 < e {
            let c1 = (c0 + I8_COL_BLOCK).min(e);
            let (blk, rest) = part.split_cols(c1 - c0);
            part = rest;
            let wb = w.rows(k, c0, c1);
            let bb = bias.map(|b| &b[c0..c1]);
            let mut blk = blk;
            let mut r = 0;
            while r < m {
                let rr = row_chunk.min(m - r);
                let (top, bottom) = blk.split_rows(rr);
                kern.linear(&x[r * k..(r + rr) * k], wb, bb, top);
                blk = bottom;
                r += rr;
            }
            c0 = c1;
        }
    });
}

/// A PyTorch `Linear`: `y = x · Wᵀ + b`, `W` stored `[out × in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[out × in]`.
    pub w: Weight,
    /// Optional bias `[out]`.
    pub b: Option<Vec<f32>>,
    /// Input width.
    pub k: usize,
    /// Output width.
    pub n: usize,
}

impl Linear {
    /// `x` is `[m × k]`; returns `[m × n]`.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let m = x.len() / self.k;
        let mut y = vec![0.0f32; m * self.n];
        self.forward_into(x, &mut y);
        y
    }

    /// Like [`Linear::forward`] into a caller buffer of `m × n`.
    pub fn forward_into(&self, x: &[f32], y: &mut [f32]) {
        let m = x.len() / self.k;
        if let Some(b) = &self.b {
            for row in y.chunks_exact_mut(self.n) {
                row.copy_from_slice(b);
            }
        }
        match &self.w {
            Weight::F32(w) => gemm_f32(
                (m, self.n, self.k),
                y,
                self.n,
                self.b.is_some(),
                x,
                (self.k, 1),
                w,
                (1, self.k),
            ),
            Weight::Engine(t) => {
                // Shapes were checked at load; the engine only fails on length mismatches.
                let view = t
                    .weight_view()
                    .expect("engine weight view of a loaded matrix");
                if t.dtype() == hark_engine::DType::I8 && m > 8 {
                    matmul_i8_by_columns(x, m, self.k, view, self.n, self.b.as_deref(), y);
                } else {
                    hark_engine::ops::matmul_nt(x, m, self.k, view, self.n, self.b.as_deref(), y)
                        .expect("matmul_nt with shapes checked at load");
                }
            }
        }
    }
}

/// A PyTorch `LayerNorm` over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale.
    pub g: Vec<f32>,
    /// Shift.
    pub b: Vec<f32>,
    /// Epsilon added to the (biased) variance.
    pub eps: f32,
}

impl LayerNorm {
    /// Normalises every row of `x` (`[rows × g.len()]`) into a new buffer.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = x.to_vec();
        self.forward_inplace(&mut y);
        y
    }

    /// In-place variant.
    pub fn forward_inplace(&self, x: &mut [f32]) {
        let d = self.g.len();
        for row in x.chunks_exact_mut(d) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + self.eps as f64).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.g).zip(&self.b) {
                *v = ((*v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    }
}

/// Logistic sigmoid.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Swish / SiLU in place.
pub fn swish(x: &mut [f32]) {
    for v in x {
        *v *= sigmoid(*v);
    }
}

/// Exact (erf) GELU in place, as `torch.nn.GELU()`.
pub fn gelu(x: &mut [f32]) {
    for v in x {
        let z = *v as f64;
        *v = (0.5 * z * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))) as f32;
    }
}

/// ReLU in place.
pub fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Softmax of one row in place; entries equal to `-inf` get probability 0.
pub fn softmax(x: &mut [f32]) {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut s = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    let inv = 1.0 / s;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// `log_softmax(x / temperature)` of one row.
pub fn log_softmax(x: &[f32], temperature: f32) -> Vec<f32> {
    let z: Vec<f32> = x.iter().map(|&v| v / temperature).collect();
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let s: f64 = z.iter().map(|&v| ((v - m) as f64).exp()).sum();
    let lse = m + s.ln() as f32;
    z.iter().map(|&v| v - lse).collect()
}

/// Sinusoidal encoding value of position `pos` (may be negative) for column `col` of
/// width `d`, computed as the reference tables are (f32 `div_term`, f32 angle).
#[inline]
pub fn sinusoid(pos: f32, col: usize, d: usize) -> f32 {
    let ln = (10000.0f32).ln() as f64;
    let div = ((col / 2 * 2) as f32 * (-(ln / d as f64)) as f32).exp();
    let angle = pos * div;
    if col.is_multiple_of(2) {
        angle.sin()
    } else {
        angle.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column-split int8 product equals the engine's own `matmul_nt` (same kernels and
    /// per-row activation quantisation; only the work split differs), including ragged
    /// column blocks and a bias.
    #[test]
    fn int8_column_split_equals_engine_matmul_nt() {
        for (m, k, n) in [(9usize, 50usize, 37usize), (40, 96, 130), (100, 64, 16)] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 13 % 89) as f32 - 44.0) / 60.0)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 / 10.0).collect();
            let t = hark_engine::Tensor::from_f32(&[n, k], &w)
                .unwrap()
                .to_dtype(hark_engine::DType::I8)
                .unwrap();
            let mut want = vec![0.0f32; m * n];
            hark_engine::ops::matmul_nt(&x, m, k, t.weight_view().unwrap(), n, Some(&b), &mut want)
                .unwrap();
            for chunk in [0usize, 5, 8] {
                let mut got = vec![0.0f32; m * n];
                matmul_i8_columns(
                    &x,
                    m,
                    k,
                    t.weight_view().unwrap(),
                    n,
                    Some(&b),
                    &mut got,
                    chunk,
                );
                assert_eq!(got, want, "m={m} k={k} n={n} row chunk {chunk}");
            }
        }
    }
}
