//! x86-64 SIMD kernels (AVX2+FMA+F16C and AVX-512), compiled with `#[target_feature]` and
//! installed into the table only after runtime detection.

use super::Kernels;

// Register tiles index their accumulator arrays explicitly (`acc[r][c]`), which reads better
// than iterator chains and unrolls identically; tile fns take raw operand pointers.
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
mod avx2;
#[allow(clippy::needless_range_loop, clippy::too_many_arguments)]
mod avx512;
mod large;

/// Above this many activation rows, float-weight linear layers switch from the dot-form
/// register tiles (one pass over the weights) to the packed, blocked GEMM in [`large`].
/// Measured (`crossover/*` benches, 512² and 1280² weights): the `gemm` crate is 3–5× slower
/// than the tiles for m = 25..64 and still behind at m = 128; at m = 1500 the two are within
/// noise of each other, the crate being steadier for large k, so it keeps the encoder sizes.
pub(crate) const LARGE_M: usize = 256;

/// [`super::generic::quantize_row_i8`] compiled with FMA so that its `mul_add` is one
/// `vfmadd` instead of a libm call (same result bit for bit).
///
/// # Safety
/// The CPU must support AVX2 and FMA (every caller runs inside a kernel installed only
/// after [`has_avx2`]).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn quantize_row_i8_fma(x: &[f32], q: &mut [i8]) -> f32 {
    super::generic::quantize_row_i8_body(x, q)
}

/// One register tile of an `attn_pv` kernel: `R` query rows of weights (`p`, row stride `ps`)
/// times all `values`, added into `R` rows of `acc` (row stride `d`). Index `R - 1` of the
/// table handed to [`attn_pv_rows`].
type PvTile = unsafe fn(*const f32, usize, &[&[f32]], *mut f32, usize);

/// The row driver shared by the AVX2 and AVX-512 `attn_pv` kernels: checks the operands
/// ([`super::generic::attn_pv_dims`]) and walks the query rows in tiles of up to 4, handing
/// each to `tiles[rows_in_tile - 1]` (the instruction-set-specific register tiles).
///
/// # Safety
/// Every tile must be a kernel whose CPU features were detected before install.
unsafe fn attn_pv_rows(
    p: &[f32],
    ps: usize,
    values: &[&[f32]],
    acc: &mut [f32],
    d: usize,
    tiles: &[PvTile; 4],
) {
    let rows = super::generic::attn_pv_dims(p, ps, values, acc, d);
    if values.is_empty() {
        return;
    }
    let (pp, ap) = (p.as_ptr(), acc.as_mut_ptr());
    let mut r0 = 0;
    while r0 < rows {
        let nr = (rows - r0).min(4);
        // SAFETY: rows r0..r0+nr of p (stride ps) and acc (stride d) are in bounds (checked by
        // attn_pv_dims); the caller guarantees the tile's CPU features.
        unsafe { tiles[nr - 1](pp.add(r0 * ps), ps, values, ap.add(r0 * d), d) };
        r0 += nr;
    }
}

/// AVX2 + FMA + F16C present.
pub(crate) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// AVX-512 F/BW/VL/DQ present (plus the AVX2 level).
pub(crate) fn has_avx512() -> bool {
    has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
}

/// Overwrites entries with AVX2 variants (caller checked [`has_avx2`]).
pub(crate) fn install_avx2(k: &mut Kernels) {
    k.linear_f32 = avx2::linear_f32;
    k.linear_f16 = avx2::linear_f16;
    k.linear_bf16 = avx2::linear_bf16;
    k.linear_i8 = avx2::linear_i8;
    k.matmul_f32 = avx2::matmul_f32;
    k.attn_scores = avx2::attn_scores;
    k.attn_pv = avx2::attn_pv;
    k.dot = avx2::dot;
    k.axpy = avx2::axpy;
    k.scale = avx2::scale;
    k.sum = avx2::sum;
    k.max = avx2::max;
    k.exp = avx2::exp;
    k.exp_sum = avx2::exp_sum;
    k.f16_to_f32 = avx2::f16_to_f32;
    k.f32_to_f16 = avx2::f32_to_f16;
}

/// Overwrites entries with AVX-512 variants (caller checked [`has_avx512`]); int8 uses VNNI
/// when present and keeps the AVX2 kernel otherwise.
pub(crate) fn install_avx512(k: &mut Kernels) {
    k.linear_f32 = avx512::linear_f32;
    k.linear_f16 = avx512::linear_f16;
    k.linear_bf16 = avx512::linear_bf16;
    if is_x86_feature_detected!("avx512vnni") {
        k.linear_i8 = avx512::linear_i8_vnni;
    }
    k.attn_scores = avx512::attn_scores;
    k.attn_pv = avx512::attn_pv;
    k.dot = avx512::dot;
    k.axpy = avx512::axpy;
    k.scale = avx512::scale;
    k.sum = avx512::sum;
    k.max = avx512::max;
    k.exp = avx512::exp;
    k.exp_sum = avx512::exp_sum;
    k.f16_to_f32 = avx512::f16_to_f32;
    k.f32_to_f16 = avx512::f32_to_f16;
    k.bf16_to_f32 = avx512::bf16_to_f32;
    k.matmul_f32 = avx512::matmul_f32;
}
