//! Portable scalar reference kernels.
//!
//! These define the semantics every SIMD variant is tested against: straightforward loops,
//! sequential f32 accumulation, `f32::exp`. They are also the fallback on CPUs without
//! AVX2. Contracts are documented on the fn-pointer types in the parent module.

use half::{bf16, f16};

use super::{linear_dims, MatMut, MatRef};

fn linear_generic<W: Copy>(
    name: &str,
    x: &[f32],
    w: &[W],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
    widen: impl Fn(W) -> f32,
) {
    let (m, k, n) = linear_dims(name, x.len(), w.len(), bias, &out);
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        let orow = out.row_mut(i);
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc = 0.0f32;
            for l in 0..k {
                acc += xr[l] * widen(wr[l]);
            }
            orow[j] = acc + bias.map_or(0.0, |b| b[j]);
        }
    }
}

/// Reference f32-weight linear layer ([`super::LinearF32Fn`]).
pub fn linear_f32(x: &[f32], w: &[f32], bias: Option<&[f32]>, out: MatMut<'_>) {
    linear_generic("linear_f32", x, w, bias, out, |v| v)
}

/// Reference f16-weight linear layer ([`super::LinearF16Fn`]).
pub fn linear_f16(x: &[f32], w: &[f16], bias: Option<&[f32]>, out: MatMut<'_>) {
    linear_generic("linear_f16", x, w, bias, out, f16::to_f32)
}

/// Reference bf16-weight linear layer ([`super::LinearBf16Fn`]).
pub fn linear_bf16(x: &[f32], w: &[bf16], bias: Option<&[f32]>, out: MatMut<'_>) {
    linear_generic("linear_bf16", x, w, bias, out, bf16::to_f32)
}

/// Symmetric dynamic quantisation of one activation row, the definition shared by every
/// int8 kernel, bit-identical to CTranslate2 4.x on x86 CPUs: `sx = max|x| / 127` and
/// `q[l] = round_half_even(fma(x[l], 127 / max|x|, 128)) - 128`, clamped to `[-127, 127]`.
///
/// CTranslate2 feeds its u8s8s32 GEMM (oneDNN) with activations shifted to `u8`
/// (`cpu::quantize_s8` with `shift_to_uint8 = true, round_before_cast = true` in
/// `src/cpu/kernels.cc`, called from `src/ops/quantize_cpu.cc`); its AVX2 build computes
/// the shifted value with one fused multiply-add (`vfmadd132ps` with 128.0, verified in
/// the 4.8.5 wheel) and rounds with `nearbyint`. Rounding `x·s + 128` in one step differs
/// from rounding `x·s` near half-integers, so we reproduce the fused form (the integer
/// products with the compensation term are then exactly the signed ones).
/// Returns `sx` (0 for an all-zero row, which quantises to zeros).
pub fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> f32 {
    quantize_row_i8_body(x, q)
}

/// Body of [`quantize_row_i8`], inlined into callers compiled with the `fma` target
/// feature (where `f32::mul_add` is one instruction instead of a libm call); the result
/// is identical either way because `mul_add` is always correctly rounded.
#[inline(always)]
pub(crate) fn quantize_row_i8_body(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "quantize_row_i8: length mismatch");
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return if amax == 0.0 { 0.0 } else { f32::NAN };
    }
    let inv = 127.0f32 / amax;
    // Round half to even by adding and subtracting 1.5·2^23 (exact for |t| < 2^22, here
    // 0 <= t <= 255): identical to `round_ties_even`, but vectorisable on baseline
    // x86-64, where `round_ties_even` is a libm call.
    const MAGIC: f32 = 12_582_912.0;
    for (qv, &v) in q.iter_mut().zip(x) {
        let t = v.mul_add(inv, 128.0);
        *qv = (((t + MAGIC) - MAGIC) - 128.0).clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// Reference int8-weight linear layer ([`super::LinearI8Fn`]).
pub fn linear_i8(x: &[f32], w: &[i8], scales: &[f32], bias: Option<&[f32]>, mut out: MatMut<'_>) {
    let (m, k, n) = linear_dims("linear_i8", x.len(), w.len(), bias, &out);
    assert!(
        scales.len() == n,
        "linear_i8: {} scales for n={n}",
        scales.len()
    );
    super::scratch::with_bufs(|bufs| {
        let qx = super::scratch::take(&mut bufs.i8a, k);
        for i in 0..m {
            let sx = quantize_row_i8(&x[i * k..(i + 1) * k], qx);
            let orow = out.row_mut(i);
            for j in 0..n {
                let wr = &w[j * k..(j + 1) * k];
                let acc: i32 = qx.iter().zip(wr).map(|(&a, &b)| a as i32 * b as i32).sum();
                orow[j] = acc as f32 * sx * scales[j] + bias.map_or(0.0, |b| b[j]);
            }
        }
    })
}

/// Reference strided matmul ([`super::MatmulF32Fn`]).
pub fn matmul_f32(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, mut out: MatMut<'_>) {
    let (m, k, n) = matmul_dims(&a, &b, &out);
    for i in 0..m {
        let orow = out.row_mut(i);
        for (j, o) in orow.iter_mut().enumerate().take(n) {
            let mut acc = 0.0f32;
            for l in 0..k {
                acc += a.at(i, l) * b.at(l, j);
            }
            *o = if accumulate { *o + acc } else { acc };
        }
    }
}

/// Checks matmul shapes, returns `(m, k, n)`; panics on a mismatch (caller bug).
pub(crate) fn matmul_dims(
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    out: &MatMut<'_>,
) -> (usize, usize, usize) {
    assert!(
        a.cols() == b.rows() && a.rows() == out.rows() && b.cols() == out.cols(),
        "matmul_f32: a {}×{} · b {}×{} into out {}×{}",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols(),
        out.rows(),
        out.cols()
    );
    (a.rows(), a.cols(), b.cols())
}

/// Reference dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x * y)
}

/// Reference `y += alpha·x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
    }
}

/// Reference `x *= alpha`.
pub fn scale(alpha: f32, x: &mut [f32]) {
    for v in x {
        *v *= alpha;
    }
}

/// Reference sum.
pub fn sum(x: &[f32]) -> f32 {
    x.iter().sum()
}

/// Reference maximum (`-inf` for an empty slice; NaNs are ignored).
pub fn max(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// Reference in-place exp (`f32::exp`).
pub fn exp(x: &mut [f32]) {
    for v in x {
        *v = v.exp();
    }
}

/// Reference `x = exp(x - shift)`, returning the sum.
pub fn exp_sum(x: &mut [f32], shift: f32) -> f32 {
    let mut s = 0.0;
    for v in x {
        *v = (*v - shift).exp();
        s += *v;
    }
    s
}

/// Reference f16 → f32.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Reference f32 → f16 (round to nearest even).
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: length mismatch");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f16::from_f32(s);
    }
}

/// Reference bf16 → f32.
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: length mismatch");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Checks the [`super::AttnScoresFn`] contract and returns the number of query rows.
pub(crate) fn attn_scores_dims(
    q: &[f32],
    d: usize,
    keys: &[&[f32]],
    out: &[f32],
    os: usize,
) -> usize {
    assert!(
        d > 0 && q.len().is_multiple_of(d),
        "attn_scores: q has {} values, not a multiple of d={d}",
        q.len()
    );
    let rows = q.len() / d;
    assert!(
        keys.iter().all(|k| k.len() >= d),
        "attn_scores: a key row is shorter than d={d}"
    );
    if rows > 0 && !keys.is_empty() {
        assert!(
            rows == 1 || keys.len() <= os,
            "attn_scores: {} keys exceed the row stride {os}",
            keys.len()
        );
        assert!(
            out.len() >= (rows - 1) * os + keys.len(),
            "attn_scores: out has {} values, need {}",
            out.len(),
            (rows - 1) * os + keys.len()
        );
    }
    rows
}

/// Checks the [`super::AttnPvFn`] contract and returns the number of query rows.
pub(crate) fn attn_pv_dims(
    p: &[f32],
    ps: usize,
    values: &[&[f32]],
    acc: &[f32],
    d: usize,
) -> usize {
    assert!(
        d > 0 && acc.len().is_multiple_of(d),
        "attn_pv: acc has {} values, not a multiple of d={d}",
        acc.len()
    );
    let rows = acc.len() / d;
    assert!(
        values.iter().all(|v| v.len() >= d),
        "attn_pv: a value row is shorter than d={d}"
    );
    if rows > 0 && !values.is_empty() {
        assert!(
            rows == 1 || values.len() <= ps,
            "attn_pv: {} values exceed the row stride {ps}",
            values.len()
        );
        assert!(
            p.len() >= (rows - 1) * ps + values.len(),
            "attn_pv: p has {} values, need {}",
            p.len(),
            (rows - 1) * ps + values.len()
        );
    }
    rows
}

/// Reference attention scores ([`super::AttnScoresFn`]):
/// `out[r·os + j] = Σ_t q[r·d + t] · keys[j][t]`, one sequential dot product each.
pub fn attn_scores(q: &[f32], d: usize, keys: &[&[f32]], out: &mut [f32], os: usize) {
    let rows = attn_scores_dims(q, d, keys, out, os);
    for r in 0..rows {
        let qr = &q[r * d..(r + 1) * d];
        for (j, k) in keys.iter().enumerate() {
            out[r * os + j] = dot(qr, &k[..d]);
        }
    }
}

/// Reference attention value accumulation ([`super::AttnPvFn`]):
/// `acc[r·d + t] += Σ_j p[r·ps + j] · values[j][t]`, keys in order.
pub fn attn_pv(p: &[f32], ps: usize, values: &[&[f32]], acc: &mut [f32], d: usize) {
    let rows = attn_pv_dims(p, ps, values, acc, d);
    for r in 0..rows {
        let ar = &mut acc[r * d..(r + 1) * d];
        for (j, v) in values.iter().enumerate() {
            axpy(p[r * ps + j], &v[..d], ar);
        }
    }
}
