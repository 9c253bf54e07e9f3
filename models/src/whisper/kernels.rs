//! Private compute kernels used by the Whisper forward pass until hark-engine publishes
//! its op/kernel API (then `Linear::forward` and `gemm_nt` forward to it).
//!
//! One primitive does nearly all the work: `C[m, n] = Σ_k A[m, k] · W[n, k]` ("NT" form:
//! both operands row-major with the reduction axis contiguous), which is what a linear
//! layer (`W = [out, in]`), `Q·Kᵀ` and `P·(Vᵀ)ᵀ` need. The AVX2+FMA micro-kernel keeps a
//! 4×3 tile of 8-lane accumulators in registers; weights may be f32, f16 (converted with
//! F16C on load) or int8 with one scale per row. The scalar path is the reference the
//! SIMD path is tested against (`simd_gemm_matches_scalar_*`).

use half::f16;
use rayon::prelude::*;

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
    fn rows(self, r0: usize, r1: usize, k: usize) -> WRef<'a> {
        match self {
            WRef::F32(v) => WRef::F32(&v[r0 * k..r1 * k]),
            WRef::F16(v) => WRef::F16(&v[r0 * k..r1 * k]),
            WRef::I8(q, s) => WRef::I8(&q[r0 * k..r1 * k], &s[r0..r1]),
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

/// `c[m, n] = Σ_k a[m, k] · w[n, k] (+ bias[n])`, single-threaded.
/// `a`: `[m, k]` with row stride `k`; `c`: `[m, n]` with row stride `ldc`.
pub fn gemm_nt_serial(
    a: &[f32],
    m: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(m == 0 || c.len() >= (m - 1) * ldc + n, "gemm_nt: output too small");
    // SAFETY: `c` holds the m rows of n columns at stride ldc (asserted above).
    unsafe { gemm_nt_raw(a, m, k, w, n, bias, c.as_mut_ptr(), ldc) }
}

/// [`gemm_nt_serial`] writing through a raw pointer, so that several threads can fill
/// disjoint column blocks of one output.
///
/// # Safety
/// `c` must be valid for writes at `i * ldc + j` for all `i < m`, `j < n`, and no other
/// thread may access those elements meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_nt_raw(
    a: &[f32],
    m: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    c: *mut f32,
    ldc: usize,
) {
    assert!(a.len() >= m * k, "gemm_nt: a too small");
    #[cfg(target_arch = "x86_64")]
    {
        if use_avx2() {
            // SAFETY: the CPU supports avx2, fma and f16c (checked by `use_avx2`);
            // the caller guarantees the output region.
            unsafe { x86::gemm_nt_avx2(a, m, k, w, n, bias, c, ldc) };
            return;
        }
    }
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            let ar = &a[i * k..(i + 1) * k];
            match w {
                WRef::F32(v) => ar.iter().zip(&v[j * k..(j + 1) * k]).for_each(|(x, y)| s += x * y),
                WRef::F16(v) => ar.iter().zip(&v[j * k..(j + 1) * k]).for_each(|(x, y)| s += x * y.to_f32()),
                WRef::I8(q, sc) => {
                    ar.iter().zip(&q[j * k..(j + 1) * k]).for_each(|(x, y)| s += x * *y as f32);
                    s *= sc[j];
                }
            }
            // SAFETY: guaranteed by the caller.
            unsafe { *c.add(i * ldc + j) = s + bias.map_or(0.0, |b| b[j]) };
        }
    }
}

/// Plain scalar reference of [`gemm_nt_serial`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt_scalar(
    a: &[f32],
    m: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let mut s = 0f32;
            match w {
                WRef::F32(v) => {
                    for (x, y) in ar.iter().zip(&v[j * k..(j + 1) * k]) {
                        s += x * y;
                    }
                }
                WRef::F16(v) => {
                    for (x, y) in ar.iter().zip(&v[j * k..(j + 1) * k]) {
                        s += x * y.to_f32();
                    }
                }
                WRef::I8(q, sc) => {
                    for (x, y) in ar.iter().zip(&q[j * k..(j + 1) * k]) {
                        s += x * *y as f32;
                    }
                    s *= sc[j];
                }
            }
            c[i * ldc + j] = s + bias.map_or(0.0, |b| b[j]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn use_avx2() -> bool {
    use std::sync::OnceLock;
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG.get_or_init(|| {
        std::env::var("HARK_ISA").map(|v| v != "generic").unwrap_or(true)
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

/// Multi-threaded [`gemm_nt_serial`]: splits rows of `a` when `m` is large, else the
/// rows of `w` (the decoder's GEMV-like steps, where streaming `w` dominates).
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt(
    a: &[f32],
    m: usize,
    k: usize,
    w: WRef<'_>,
    n: usize,
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
    let threads = rayon::current_num_threads();
    let work = m * n * k;
    if threads <= 1 || work < 1 << 18 {
        gemm_nt_serial(a, m, k, w, n, bias, c, n);
        return;
    }
    if m >= 64 {
        let rows_per = m.div_ceil(threads * 4).max(8);
        c.par_chunks_mut(rows_per * n).enumerate().for_each(|(ci, cc)| {
            let r0 = ci * rows_per;
            let rm = cc.len() / n;
            gemm_nt_serial(&a[r0 * k..(r0 + rm) * k], rm, k, w, n, bias, cc, n);
        });
    } else {
        // split columns: each task writes a column block of every row.
        let blocks = threads * 4;
        let per = n.div_ceil(blocks).div_ceil(8) * 8;
        let nb = n.div_ceil(per);
        assert!(c.len() >= m * n, "gemm_nt: output too small");
        let cptr = SendPtr(c.as_mut_ptr());
        (0..nb).into_par_iter().for_each(|bi| {
            let n0 = bi * per;
            let n1 = (n0 + per).min(n);
            let p = cptr;
            // SAFETY: each task writes only the disjoint column range [n0, n1) of each
            // of the m rows of `c` (m*n elements, asserted below the closure's creation).
            unsafe {
                gemm_nt_raw(a, m, k, w.rows(n0, n1, k), n1 - n0, bias.map(|b| &b[n0..n1]), p.0.add(n0), n)
            };
        });
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint regions of one buffer to rayon tasks.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::WRef;
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        // SAFETY: avx available (caller's target_feature).
        unsafe {
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps(v, 1);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_hadd_ps(s, s);
            let s = _mm_hadd_ps(s, s);
            _mm_cvtss_f32(s)
        }
    }

    #[inline(always)]
    unsafe fn load_w(w: WRef<'_>, off: usize) -> __m256 {
        // SAFETY: caller guarantees off+8 <= len.
        unsafe {
            match w {
                WRef::F32(v) => _mm256_loadu_ps(v.as_ptr().add(off)),
                WRef::F16(v) => _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(off) as *const __m128i)),
                WRef::I8(q, _) => {
                    let b = _mm_loadl_epi64(q.as_ptr().add(off) as *const __m128i);
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))
                }
            }
        }
    }

    #[inline(always)]
    fn w_scalar(w: WRef<'_>, off: usize) -> f32 {
        match w {
            WRef::F32(v) => v[off],
            WRef::F16(v) => v[off].to_f32(),
            WRef::I8(q, _) => q[off] as f32,
        }
    }

    #[inline(always)]
    fn row_scale(w: WRef<'_>, j: usize) -> f32 {
        match w {
            WRef::I8(_, s) => s[j],
            _ => 1.0,
        }
    }

    /// AVX2/FMA/F16C version of `gemm_nt_serial` (4×3 register tile).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_nt_avx2(
        a: &[f32],
        m: usize,
        k: usize,
        w: WRef<'_>,
        n: usize,
        bias: Option<&[f32]>,
        c: *mut f32,
        ldc: usize,
    ) {
        const MR: usize = 4;
        const NR: usize = 3;
        let k8 = k / 8 * 8;
        let ap = a.as_ptr();
        // Column blocks keep a panel of W in L2 while all rows of A stream over it.
        let nb = 96;
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            let mut i = 0;
            while i < m {
                let mr = MR.min(m - i);
                let mut j = j0;
                while j < j1 {
                    let nr = NR.min(j1 - j);
                    // SAFETY: all offsets are < m*k (a) and < n*k (w), checked by the loop bounds.
                    unsafe {
                        let mut acc = [[_mm256_setzero_ps(); NR]; MR];
                        let mut kk = 0;
                        if mr == MR && nr == NR {
                            while kk < k8 {
                                let w0 = load_w(w, j * k + kk);
                                let w1 = load_w(w, (j + 1) * k + kk);
                                let w2 = load_w(w, (j + 2) * k + kk);
                                for (r, accr) in acc.iter_mut().enumerate() {
                                    let av = _mm256_loadu_ps(ap.add((i + r) * k + kk));
                                    accr[0] = _mm256_fmadd_ps(av, w0, accr[0]);
                                    accr[1] = _mm256_fmadd_ps(av, w1, accr[1]);
                                    accr[2] = _mm256_fmadd_ps(av, w2, accr[2]);
                                }
                                kk += 8;
                            }
                        } else {
                            while kk < k8 {
                                for jj in 0..nr {
                                    let wv = load_w(w, (j + jj) * k + kk);
                                    for r in 0..mr {
                                        let av = _mm256_loadu_ps(ap.add((i + r) * k + kk));
                                        acc[r][jj] = _mm256_fmadd_ps(av, wv, acc[r][jj]);
                                    }
                                }
                                kk += 8;
                            }
                        }
                        for r in 0..mr {
                            for jj in 0..nr {
                                let mut s = hsum(acc[r][jj]);
                                for t in k8..k {
                                    s += a[(i + r) * k + t] * w_scalar(w, (j + jj) * k + t);
                                }
                                s *= row_scale(w, j + jj);
                                if let Some(b) = bias {
                                    s += b[j + jj];
                                }
                                *c.add((i + r) * ldc + j + jj) = s;
                            }
                        }
                    }
                    j += nr;
                }
                i += mr;
            }
            j0 = j1;
        }
    }
}

/// Row-wise LayerNorm over `d` features (eps 1e-5), in place.
pub fn layer_norm(x: &mut [f32], d: usize, gamma: &[f32], beta: &[f32]) {
    for row in x.chunks_exact_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + 1e-5).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// LayerNorm of `x` into `out`.
pub fn layer_norm_into(x: &[f32], out: &mut [f32], d: usize, gamma: &[f32], beta: &[f32]) {
    out.copy_from_slice(x);
    layer_norm(out, d, gamma, beta);
}

/// erf(x), Abramowitz & Stegun 7.1.26 refined (|error| < 1.5e-7).
fn erf(x: f32) -> f32 {
    let x64 = x as f64;
    let s = x64.signum();
    let a = x64.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-a * a).exp();
    (s * y) as f32
}

/// Exact (erf-based) GELU, in place — as PyTorch `nn.GELU()` used by Whisper.
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Numerically stable softmax of one row, in place.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
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
        gemm_nt_scalar(&a, m, k, w.view(), n, Some(&bias), &mut c1, n);
        gemm_nt(&a, m, k, w.view(), n, Some(&bias), &mut c2);
        for (x, y) in c1.iter().zip(&c2) {
            assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y} (m={m} k={k} n={n})");
        }
    }

    #[test]
    fn simd_gemm_matches_scalar_f32_f16_i8_odd_shapes() {
        for &(m, k, n) in &[(1, 384, 1000), (5, 64, 7), (7, 1500, 64), (130, 240, 97), (3, 13, 5)] {
            let w = pseudo(n * k, 3);
            check(&WeightData::F32(w.clone()), m, k, n);
            check(&WeightData::F16(w.iter().map(|&x| f16::from_f32(x)).collect()), m, k, n);
            check(&quantize_rows_i8(&w, k), m, k, n);
        }
    }

    #[test]
    fn gelu_matches_known_values() {
        let mut x = [-3.0f32, -1.0, 0.0, 0.5, 2.0];
        gelu(&mut x);
        let want = [-0.004_049_7, -0.158_655_3, 0.0, 0.345_731_1, 1.954_499_7];
        for (a, b) in x.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
