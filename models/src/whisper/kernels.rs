//! Compute glue of the Whisper forward pass: weight storage and the GEMM entry points
//! (backed by hark-engine) plus small row ops.
//!
//! One primitive does nearly all the work: `C[m, n] = Σ_k A[m, k] · W[n, k]` ("NT" form:
//! both operands row-major with the reduction axis contiguous), which is what a linear
//! layer (`W = [out, in]`), `Q·Kᵀ` and `P·(Vᵀ)ᵀ` need. It runs on hark-engine's
//! runtime-selected kernels (`hark_engine::kernels`, AVX2/AVX-512) and thread pool
//! (`hark_engine::ops::linear::matmul_nt`); weights may be f32, f16 or int8 with one
//! scale per row.

use half::f16;

/// A weight matrix `[rows, cols]` (row-major; `cols` = reduction axis).
#[derive(Debug, Clone)]
pub enum WeightData {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values.
    F16(Vec<f16>),
    /// int8 values with one symmetric f32 scale per row.
    I8 {
        /// quantized values
        q: Vec<i8>,
        /// per-row scale
        scale: Vec<f32>,
    },
}

/// Borrowed view of a weight matrix.
#[derive(Debug, Clone, Copy)]
pub enum WRef<'a> {
    /// f32 rows.
    F32(&'a [f32]),
    /// f16 rows.
    F16(&'a [f16]),
    /// int8 rows and per-row scales.
    I8(&'a [i8], &'a [f32]),
}

impl WeightData {
    /// Borrow as a view.
    pub fn view(&self) -> WRef<'_> {
        match self {
            WeightData::F32(v) => WRef::F32(v),
            WeightData::F16(v) => WRef::F16(v),
            WeightData::I8 { q, scale } => WRef::I8(q, scale),
        }
    }

    /// Number of stored elements.
    pub fn len(&self) -> usize {
        match self {
            WeightData::F32(v) => v.len(),
            WeightData::F16(v) => v.len(),
            WeightData::I8 { q, .. } => q.len(),
        }
    }

    /// Row `r` (of `cols` elements) converted to f32 into `out`.
    pub fn row_to_f32(&self, r: usize, cols: usize, out: &mut [f32]) {
        let s = r * cols;
        match self {
            WeightData::F32(v) => out.copy_from_slice(&v[s..s + cols]),
            WeightData::F16(v) => {
                for (o, x) in out.iter_mut().zip(&v[s..s + cols]) {
                    *o = x.to_f32();
                }
            }
            WeightData::I8 { q, scale } => {
                for (o, x) in out.iter_mut().zip(&q[s..s + cols]) {
                    *o = *x as f32 * scale[r];
                }
            }
        }
    }
}

impl<'a> WRef<'a> {
    /// The same weights as hark-engine's kernel view.
    pub fn engine(self) -> hark_engine::kernels::Weights<'a> {
        match self {
            WRef::F32(v) => hark_engine::kernels::Weights::F32(v),
            WRef::F16(v) => hark_engine::kernels::Weights::F16(v),
            WRef::I8(q, scales) => hark_engine::kernels::Weights::I8 { q, scales },
        }
    }

    /// The same weights as a hark-engine tensor view.
    pub fn engine_view(self) -> hark_engine::WeightView<'a> {
        match self {
            WRef::F32(v) => hark_engine::WeightView::F32(v),
            WRef::F16(v) => hark_engine::WeightView::F16(v),
            WRef::I8(q, scales) => hark_engine::WeightView::I8 { q, scales },
        }
    }
}

/// Quantizes an f32 `[rows, cols]` matrix to int8 with one symmetric scale per row.
pub fn quantize_rows_i8(w: &[f32], cols: usize) -> WeightData {
    let rows = w.len() / cols.max(1);
    let mut q = vec![0i8; w.len()];
    let mut scale = vec![0f32; rows];
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let amax = row.iter().fold(0f32, |a, &x| a.max(x.abs()));
        let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        scale[r] = s;
        for (qo, &x) in q[r * cols..(r + 1) * cols].iter_mut().zip(row) {
            *qo = (x / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    WeightData::I8 { q, scale }
}

/// Multi-threaded `c[m, n] = a[m, k] · w[n, k]ᵀ (+ bias)` over hark-engine's thread
/// pool (rows split for the encoder, output features split for decoder steps).
pub fn gemm_nt(
    a: &[f32],
    m: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
    // Shapes are fixed by the model and checked at load time.
    if let Err(e) = hark_engine::ops::linear::matmul_nt(
        &a[..m * k],
        m,
        k,
        w.engine_view(),
        n,
        bias,
        &mut c[..m * n],
    ) {
        panic!("whisper: internal shape error in matmul_nt: {e}");
    }
}

/// log-softmax of one row into `out`.
pub fn log_softmax_into(row: &[f32], out: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
    let lse = max + sum.ln();
    for (o, &v) in out.iter_mut().zip(row) {
        *o = v - lse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn check(w: &WeightData, m: usize, k: usize, n: usize) {
        let a = pseudo(m * k, 7);
        let bias = pseudo(n, 9);
        let mut c1 = vec![0f32; m * n];
        let mut c2 = vec![0f32; m * n];
        let mut mag = vec![0f32; m * n];
        for i in 0..m {
            let mut row = vec![0f32; k];
            for j in 0..n {
                w.row_to_f32(j, k, &mut row);
                let ar = &a[i * k..(i + 1) * k];
                c1[i * n + j] = ar.iter().zip(&row).map(|(x, y)| x * y).sum::<f32>() + bias[j];
                mag[i * n + j] = ar.iter().zip(&row).map(|(x, y)| (x * y).abs()).sum::<f32>();
            }
        }
        gemm_nt(&a, m, k, w.view(), n, Some(&bias), &mut c2);
        // int8 kernels may also quantize the activations to int8 (as CTranslate2 does):
        // allow ~1% of the magnitude sum scaled down by sqrt(k) (random rounding errors).
        let int8 = matches!(w, WeightData::I8 { .. });
        for ((x, y), g) in c1.iter().zip(&c2).zip(&mag) {
            let tol = if int8 {
                1e-2 * g / (k as f32).sqrt() + 1e-4
            } else {
                1e-4 * (1.0 + x.abs())
            };
            assert!((x - y).abs() <= tol, "{x} vs {y} (m={m} k={k} n={n})");
        }
    }

    #[test]
    fn engine_gemm_matches_scalar_f32_f16_i8_odd_shapes() {
        for &(m, k, n) in &[
            (1, 384, 1000),
            (5, 64, 7),
            (7, 1500, 64),
            (130, 240, 97),
            (3, 13, 5),
        ] {
            let w = pseudo(n * k, 3);
            check(&WeightData::F32(w.clone()), m, k, n);
            check(
                &WeightData::F16(w.iter().map(|&x| f16::from_f32(x)).collect()),
                m,
                k,
                n,
            );
            check(&quantize_rows_i8(&w, k), m, k, n);
        }
    }
}
