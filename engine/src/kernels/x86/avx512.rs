//! AVX-512 (F/BW/VL/DQ, VNNI for int8) kernels.
//!
//! Linear layers use "dot-form" register tiles: `R` activation rows × `C` weight rows, each
//! accumulator a 16-lane partial dot product over `k`, reduced horizontally once at the end.
//! This matches the `[n, k]` weight layout directly (both operands are contiguous in `k`), so
//! no packing is needed, and each weight vector loaded from memory is used for all `R` rows:
//! for decoding (`m <= MR`) every weight byte is read exactly once. The `k` tail uses masked
//! loads (no alignment assumptions anywhere). Large `m` with float weights goes to the blocked
//! outer-product GEMM in [`super::large`]; int8 uses VNNI tiles for every `m`.

use std::arch::x86_64::*;

use half::{bf16, f16};

use super::super::{generic, linear_dims, MatMut};

/// Maximum activation rows handled in one pass over the weights (decode batch / beam size).
pub(super) const MR: usize = 6;

/// Loads 16 weights widened to f32.
pub(super) trait Load16: Copy {
    /// 16 values at `p` (unaligned).
    unsafe fn load(p: *const Self) -> __m512;
    /// `n < 16` values at `p`, zero-filled; reads only those `n` values.
    unsafe fn load_tail(p: *const Self, n: usize) -> __m512;
}

#[inline]
fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

impl Load16 for f32 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load_tail(p: *const f32, n: usize) -> __m512 {
        unsafe { _mm512_maskz_loadu_ps(mask16(n), p) }
    }
}

impl Load16 for f16 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load(p: *const f16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    unsafe fn load_tail(p: *const f16, n: usize) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask16(n), p as *const i16)) }
    }
}

impl Load16 for bf16 {
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load(p: *const bf16) -> __m512 {
        unsafe {
            let h = _mm256_loadu_si256(p as *const __m256i);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn load_tail(p: *const bf16, n: usize) -> __m512 {
        unsafe {
            let h = _mm256_maskz_loadu_epi16(mask16(n), p as *const i16);
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
        }
    }
}

/// One `R×C` tile: `out[r][c] = Σ_l x[r][l]·w[c][l] + bias[c]`.
///
/// `x` rows and `w` rows both have stride `k`; `out` has row stride `ors`; `bias` may be null.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")]
unsafe fn tile<W: Load16, const R: usize, const C: usize>(
    x: *const f32,
    k: usize,
    w: *const W,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut wv = [_mm512_setzero_ps(); C];
        let mut l = 0;
        while l + 16 <= k {
            for c in 0..C {
                wv[c] = W::load(w.add(c * k + l));
            }
            for r in 0..R {
                let xv = _mm512_loadu_ps(x.add(r * k + l));
                for c in 0..C {
                    acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
            l += 16;
        }
        if l < k {
            let t = k - l;
            for c in 0..C {
                wv[c] = W::load_tail(w.add(c * k + l), t);
            }
            for r in 0..R {
                let xv = _mm512_maskz_loadu_ps(mask16(t), x.add(r * k + l));
                for c in 0..C {
                    acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
        }
        for r in 0..R {
            for c in 0..C {
                let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
                *out.add(r * ors + c) = _mm512_reduce_add_ps(acc[r][c]) + b;
            }
        }
    }
}

type TileFn<W> = unsafe fn(*const f32, usize, *const W, *const f32, *mut f32, usize);

fn tile_for<W: Load16>(r: usize, c4: bool) -> TileFn<W> {
    match (r, c4) {
        (1, true) => tile::<W, 1, 4>,
        (2, true) => tile::<W, 2, 4>,
        (3, true) => tile::<W, 3, 4>,
        (4, true) => tile::<W, 4, 4>,
        (5, true) => tile::<W, 5, 4>,
        (6, true) => tile::<W, 6, 4>,
        (1, false) => tile::<W, 1, 1>,
        (2, false) => tile::<W, 2, 1>,
        (3, false) => tile::<W, 3, 1>,
        (4, false) => tile::<W, 4, 1>,
        (5, false) => tile::<W, 5, 1>,
        _ => tile::<W, 6, 1>,
    }
}

/// Runs the tiles over rows `0..m` (in groups of at most [`MR`]) and columns `0..n`.
///
/// Safety: `x` is `m×k`, `w` is `n×k`, `out` is `m×n` with row stride `ors`, `bias` null or `n`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")]
unsafe fn drive<W: Load16>(
    x: *const f32,
    m: usize,
    k: usize,
    w: *const W,
    n: usize,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    // For m > MR, process weights in column blocks that stay in L2 while all row groups pass.
    let nb = if m <= MR {
        n
    } else {
        ((128 * 1024 / (k * size_of::<W>()).max(1)) / 4 * 4).max(4)
    };
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR);
            let (t4, t1) = (tile_for::<W>(r, true), tile_for::<W>(r, false));
            let mut j = j0;
            while j < j1 {
                let b = if bias.is_null() {
                    bias
                } else {
                    unsafe { bias.add(j) }
                };
                let t = if j + 4 <= j1 { t4 } else { t1 };
                unsafe { t(x.add(i * k), k, w.add(j * k), b, out.add(i * ors + j), ors) };
                j += if j + 4 <= j1 { 4 } else { 1 };
            }
            i += r;
        }
        j0 = j1;
    }
}

fn linear_small<W: Load16>(
    name: &str,
    x: &[f32],
    w: &[W],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
) {
    let (m, k, n) = linear_dims(name, x.len(), w.len(), bias, &out);
    if m == 0 || n == 0 {
        return;
    }
    let ors = out.row_stride();
    let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    // SAFETY: dims checked by linear_dims; table installed only after AVX-512 detection.
    unsafe { drive::<W>(x.as_ptr(), m, k, w.as_ptr(), n, bp, out.as_mut_ptr(), ors) }
}

/// f32 weights: dot-form tiles for small `m`, blocked GEMM for large `m`.
pub(super) fn linear_f32(x: &[f32], w: &[f32], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_f32(x, w, bias, out)
    } else {
        linear_small("linear_f32", x, w, bias, out)
    }
}

/// f16 weights: dot-form tiles (converted in registers) for small `m`, else blocked GEMM.
pub(super) fn linear_f16(x: &[f32], w: &[f16], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_f16(x, w, bias, out, f16_to_f32)
    } else {
        linear_small("linear_f16", x, w, bias, out)
    }
}

/// bf16 weights: dot-form tiles (converted in registers) for small `m`, else blocked GEMM.
pub(super) fn linear_bf16(x: &[f32], w: &[bf16], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_bf16(x, w, bias, out, bf16_to_f32)
    } else {
        linear_small("linear_bf16", x, w, bias, out)
    }
}

// ---------------------------------------------------------------------------------------
// int8 × int8 (VNNI)

/// VNNI tile on quantised operands: `xq` holds `qx + 128` as u8 (row stride `k`), `w` is
/// i8. `vpdpbusd` accumulates `Σ (qx+128)·qw` exactly in i32; a second `vpdpbusd` with
/// all-ones per weight row yields `Σ qw`, so `Σ qx·qw = acc - 128·Σ qw` (the u8/i8
/// operand order of `vpdpbusd` forces the offset). `sx` = per-row activation scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_i8<const R: usize, const C: usize>(
    xq: *const u8,
    sx: *const f32,
    k: usize,
    w: *const i8,
    scales: *const f32,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    unsafe {
        let ones = _mm512_set1_epi8(1);
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        let mut comp = [_mm512_setzero_si512(); C];
        let mut wv = [_mm512_setzero_si512(); C];
        let mut l = 0;
        while l < k {
            let mask: __mmask64 = if k - l >= 64 {
                !0
            } else {
                (1u64 << (k - l)) - 1
            };
            for c in 0..C {
                wv[c] = _mm512_maskz_loadu_epi8(mask, w.add(c * k + l));
                comp[c] = _mm512_dpbusd_epi32(comp[c], ones, wv[c]);
            }
            for r in 0..R {
                let xv = _mm512_maskz_loadu_epi8(mask, xq.add(r * k + l) as *const i8);
                for c in 0..C {
                    acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], xv, wv[c]);
                }
            }
            l += 64;
        }
        for c in 0..C {
            let wsum = _mm512_reduce_add_epi32(comp[c]);
            let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
            let sw = *scales.add(c);
            for r in 0..R {
                let dot = _mm512_reduce_add_epi32(acc[r][c]).wrapping_sub(wsum.wrapping_mul(128));
                *out.add(r * ors + c) = dot as f32 * *sx.add(r) * sw + b;
            }
        }
    }
}

type TileI8Fn =
    unsafe fn(*const u8, *const f32, usize, *const i8, *const f32, *const f32, *mut f32, usize);

/// Rows per int8 tile: 4×4 accumulators + 4 compensation + 4 weight registers.
const MR_I8: usize = 5;

fn tile_i8_for(r: usize, c4: bool) -> TileI8Fn {
    match (r, c4) {
        (1, true) => tile_i8::<1, 4>,
        (2, true) => tile_i8::<2, 4>,
        (3, true) => tile_i8::<3, 4>,
        (4, true) => tile_i8::<4, 4>,
        (5, true) => tile_i8::<5, 4>,
        (1, false) => tile_i8::<1, 1>,
        (2, false) => tile_i8::<2, 1>,
        (3, false) => tile_i8::<3, 1>,
        (4, false) => tile_i8::<4, 1>,
        _ => tile_i8::<5, 1>,
    }
}

/// int8 weights with VNNI (see [`super::super::LinearI8Fn`] for the quantisation contract).
pub(super) fn linear_i8_vnni(
    x: &[f32],
    w: &[i8],
    scales: &[f32],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
) {
    let (m, k, n) = linear_dims("linear_i8", x.len(), w.len(), bias, &out);
    assert!(
        scales.len() == n,
        "linear_i8: {} scales for n={n}",
        scales.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    let (xq, sx) = quantize_rows_offset(x, m, k);
    let ors = out.row_stride();
    let op = out.as_mut_ptr();
    let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    let nb = if m <= MR_I8 {
        n
    } else {
        ((256 * 1024 / k.max(1)) / 4 * 4).max(4)
    };
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR_I8);
            let (t4, t1) = (tile_i8_for(r, true), tile_i8_for(r, false));
            let mut j = j0;
            while j < j1 {
                let four = j + 4 <= j1;
                let t = if four { t4 } else { t1 };
                // SAFETY: all offsets lie inside the checked operands; VNNI detected before install.
                unsafe {
                    let b = if bp.is_null() { bp } else { bp.add(j) };
                    t(
                        xq.as_ptr().add(i * k),
                        sx.as_ptr().add(i),
                        k,
                        w.as_ptr().add(j * k),
                        scales.as_ptr().add(j),
                        b,
                        op.add(i * ors + j),
                        ors,
                    );
                }
                j += if four { 4 } else { 1 };
            }
            i += r;
        }
        j0 = j1;
    }
}

/// Quantises each row with [`generic::quantize_row_i8`] and stores `q + 128` as u8.
fn quantize_rows_offset(x: &[f32], m: usize, k: usize) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0i8; k];
    let mut xq = vec![0u8; m * k];
    let mut sx = vec![0f32; m];
    for i in 0..m {
        sx[i] = generic::quantize_row_i8(&x[i * k..(i + 1) * k], &mut q);
        for (d, &v) in xq[i * k..(i + 1) * k].iter_mut().zip(&q) {
            *d = (v as i16 + 128) as u8;
        }
    }
    (xq, sx)
}

// ---------------------------------------------------------------------------------------
// Vector helpers

/// Dot product.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    // SAFETY: equal lengths; AVX-512 detected before install.
    unsafe { dot_impl(a.as_ptr(), b.as_ptr(), a.len()) }
}

#[target_feature(enable = "avx512f,fma")]
unsafe fn dot_impl(a: *const f32, b: *const f32, n: usize) -> f32 {
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(
                    _mm512_loadu_ps(a.add(i + 16 * u)),
                    _mm512_loadu_ps(b.add(i + 16 * u)),
                    *s,
                );
            }
            i += 64;
        }
        while i < n {
            let mk = mask16((n - i).min(16));
            let mk = if n - i >= 16 { 0xffff } else { mk };
            acc[0] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(mk, a.add(i)),
                _mm512_maskz_loadu_ps(mk, b.add(i)),
                acc[0],
            );
            i += 16;
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }
}

/// `y += alpha·x`.
pub(super) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    // SAFETY: equal lengths; AVX-512 detected.
    unsafe {
        let (xp, yp, n) = (x.as_ptr(), y.as_mut_ptr(), x.len());
        axpy_impl(alpha, xp, yp, n)
    }
}

#[target_feature(enable = "avx512f,fma")]
unsafe fn axpy_impl(alpha: f32, x: *const f32, y: *mut f32, n: usize) {
    unsafe {
        let a = _mm512_set1_ps(alpha);
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            let v = _mm512_fmadd_ps(
                a,
                _mm512_maskz_loadu_ps(mk, x.add(i)),
                _mm512_maskz_loadu_ps(mk, y.add(i)),
            );
            _mm512_mask_storeu_ps(y.add(i), mk, v);
            i += 16;
        }
    }
}

/// `x *= alpha`.
pub(super) fn scale(alpha: f32, x: &mut [f32]) {
    // SAFETY: AVX-512 detected.
    unsafe { scale_impl(alpha, x.as_mut_ptr(), x.len()) }
}

#[target_feature(enable = "avx512f")]
unsafe fn scale_impl(alpha: f32, x: *mut f32, n: usize) {
    unsafe {
        let a = _mm512_set1_ps(alpha);
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            _mm512_mask_storeu_ps(
                x.add(i),
                mk,
                _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk, x.add(i))),
            );
            i += 16;
        }
    }
}

/// Sum.
pub(super) fn sum(x: &[f32]) -> f32 {
    // SAFETY: AVX-512 detected.
    unsafe { sum_impl(x.as_ptr(), x.len()) }
}

#[target_feature(enable = "avx512f")]
unsafe fn sum_impl(x: *const f32, n: usize) -> f32 {
    unsafe {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                *s = _mm512_add_ps(_mm512_loadu_ps(x.add(i + 16 * u)), *s);
            }
            i += 64;
        }
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            acc[0] = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, x.add(i)), acc[0]);
            i += 16;
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }
}

/// Maximum (`-inf` for empty input).
pub(super) fn max(x: &[f32]) -> f32 {
    // SAFETY: AVX-512 detected.
    unsafe { max_impl(x.as_ptr(), x.len()) }
}

#[target_feature(enable = "avx512f")]
unsafe fn max_impl(x: *const f32, n: usize) -> f32 {
    unsafe {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut acc = [ninf; 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                // max_ps returns the second operand if either is NaN: keep the accumulator.
                *s = _mm512_max_ps(_mm512_loadu_ps(x.add(i + 16 * u)), *s);
            }
            i += 64;
        }
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            acc[0] = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, mk, x.add(i)), acc[0]);
            i += 16;
        }
        _mm512_reduce_max_ps(_mm512_max_ps(
            _mm512_max_ps(acc[0], acc[1]),
            _mm512_max_ps(acc[2], acc[3]),
        ))
    }
}

/// `exp` of 16 lanes: `x = n·ln2 + r`, `|r| <= ln2/2`, Cephes `expf` polynomial for `e^r`
/// (relative error ~1e-7), then `vscalefps` multiplies by `2^n` with correct overflow to
/// +inf and gradual underflow to 0. Inputs are clamped to [-104, 89] first (beyond those
/// the f32 result is already 0 / +inf), which also maps -inf to 0.
#[inline]
#[target_feature(enable = "avx512f,fma")]
unsafe fn exp16(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-104.0)),
        _mm512_set1_ps(89.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.398_2e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.333_452e-3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166_579_6e-2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666_666_5e-1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5));
    let r2 = _mm512_mul_ps(r, r);
    let e = _mm512_add_ps(_mm512_fmadd_ps(p, r2, r), _mm512_set1_ps(1.0));
    _mm512_scalef_ps(e, n)
}

/// In-place exp.
pub(super) fn exp(x: &mut [f32]) {
    // SAFETY: AVX-512 detected.
    unsafe { exp_sum_impl(x.as_mut_ptr(), x.len(), 0.0) };
}

/// In-place `exp(x - shift)`, returns the sum.
pub(super) fn exp_sum(x: &mut [f32], shift: f32) -> f32 {
    // SAFETY: AVX-512 detected.
    unsafe { exp_sum_impl(x.as_mut_ptr(), x.len(), shift) }
}

#[target_feature(enable = "avx512f,fma")]
unsafe fn exp_sum_impl(x: *mut f32, n: usize, shift: f32) -> f32 {
    unsafe {
        let s = _mm512_set1_ps(shift);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            let v = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x.add(i)), s));
            _mm512_mask_storeu_ps(x.add(i), mk, v);
            acc = _mm512_mask_add_ps(acc, mk, acc, v);
            i += 16;
        }
        _mm512_reduce_add_ps(acc)
    }
}

/// f16 → f32.
pub(super) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
    // SAFETY: equal lengths; AVX-512 detected.
    unsafe { f16_to_f32_impl(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn f16_to_f32_impl(src: *const f16, dst: *mut f32, n: usize) {
    unsafe {
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            let h = _mm256_maskz_loadu_epi16(mk, src.add(i) as *const i16);
            _mm512_mask_storeu_ps(dst.add(i), mk, _mm512_cvtph_ps(h));
            i += 16;
        }
    }
}

/// f32 → f16 (round to nearest even).
pub(super) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: length mismatch");
    // SAFETY: equal lengths; AVX-512 detected.
    unsafe { f32_to_f16_impl(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
unsafe fn f32_to_f16_impl(src: *const f32, dst: *mut f16, n: usize) {
    unsafe {
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_maskz_loadu_ps(mk, src.add(i)),
            );
            _mm256_mask_storeu_epi16(dst.add(i) as *mut i16, mk, h);
            i += 16;
        }
    }
}

/// bf16 → f32.
pub(super) fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: length mismatch");
    // SAFETY: equal lengths; AVX-512 detected.
    unsafe { bf16_to_f32_impl(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn bf16_to_f32_impl(src: *const bf16, dst: *mut f32, n: usize) {
    unsafe {
        let mut i = 0;
        while i < n {
            let mk = if n - i >= 16 { 0xffff } else { mask16(n - i) };
            let v = if mk == 0xffff {
                bf16::load(src.add(i))
            } else {
                bf16::load_tail(src.add(i), n - i)
            };
            _mm512_mask_storeu_ps(dst.add(i), mk, v);
            i += 16;
        }
    }
}
