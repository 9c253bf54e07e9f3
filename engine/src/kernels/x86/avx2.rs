//! AVX2 + FMA + F16C kernels (8 f32 lanes, 16 ymm registers).
//!
//! Same dot-form register tiles as the AVX-512 level (see `avx512.rs`), sized for 16
//! registers: up to 2 rows × 4 weight rows, or up to 6 rows × 2 weight rows. AVX2 has no
//! masked byte/half loads, so `k` tails (< 8 values) are copied into a zero-padded stack
//! buffer. int8 uses the `vpsignb` trick: `|qx|` (u8) × `sign(qx)·qw` (i8) with `vpmaddubsw`
//! cannot saturate because both magnitudes are ≤ 127 (2·127·127 < 32767).

use std::arch::x86_64::*;

use half::{bf16, f16};

use super::super::generic::matmul_dims;
use super::super::{generic, linear_dims, MatMut, MatRef};

/// Maximum activation rows handled in one pass over the weights.
pub(super) const MR: usize = 6;

/// Loads 8 weights widened to f32.
pub(super) trait Load8: Copy + Default {
    /// 8 values at `p` (unaligned).
    unsafe fn load(p: *const Self) -> __m256;
}

impl Load8 for f32 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }
}

impl Load8 for f16 {
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load(p: *const f16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
}

impl Load8 for bf16 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load(p: *const bf16) -> __m256 {
        unsafe {
            let h = _mm_loadu_si128(p as *const __m128i);
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
        }
    }
}

/// `n < 8` values at `p`, zero-padded, via a stack copy (reads only `n` values).
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn load_tail<W: Load8>(p: *const W, n: usize) -> __m256 {
    let mut buf = [W::default(); 8];
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
        W::load(buf.as_ptr())
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// One `R×C` tile: `out[r][c] = Σ_l x[r][l]·w[c][l] + bias[c]` (bias may be null).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<W: Load8, const R: usize, const C: usize>(
    x: *const f32,
    xs: usize,
    k: usize,
    w: *const W,
    ws: usize,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
    accumulate: bool,
) {
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut wv = [_mm256_setzero_ps(); C];
        let mut l = 0;
        while l + 8 <= k {
            for c in 0..C {
                wv[c] = W::load(w.add(c * ws + l));
            }
            for r in 0..R {
                let xv = _mm256_loadu_ps(x.add(r * xs + l));
                for c in 0..C {
                    acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
            l += 8;
        }
        if l < k {
            let t = k - l;
            for c in 0..C {
                wv[c] = load_tail(w.add(c * ws + l), t);
            }
            for r in 0..R {
                let xv = load_tail(x.add(r * xs + l), t);
                for c in 0..C {
                    acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
        }
        for r in 0..R {
            for c in 0..C {
                let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
                let o = out.add(r * ors + c);
                let v = hsum(acc[r][c]) + b;
                *o = if accumulate { *o + v } else { v };
            }
        }
    }
}

type TileFn<W> =
    unsafe fn(*const f32, usize, usize, *const W, usize, *const f32, *mut f32, usize, bool);

/// Tile for `r` rows: the wide one (`C` = 4 for r ≤ 2, else 2) and the 1-column tail.
fn tiles_for<W: Load8>(r: usize) -> (usize, TileFn<W>, TileFn<W>) {
    match r {
        1 => (4, tile::<W, 1, 4>, tile::<W, 1, 1>),
        2 => (4, tile::<W, 2, 4>, tile::<W, 2, 1>),
        3 => (2, tile::<W, 3, 2>, tile::<W, 3, 1>),
        4 => (2, tile::<W, 4, 2>, tile::<W, 4, 1>),
        5 => (2, tile::<W, 5, 2>, tile::<W, 5, 1>),
        _ => (2, tile::<W, 6, 2>, tile::<W, 6, 1>),
    }
}

fn linear_small<W: Load8>(
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
    let op = out.as_mut_ptr();
    let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
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
            let (cw, tw, t1) = tiles_for::<W>(r);
            let mut j = j0;
            while j < j1 {
                let wide = j + cw <= j1;
                // SAFETY: offsets inside the checked operands; AVX2 detected before install.
                unsafe {
                    let b = if bp.is_null() { bp } else { bp.add(j) };
                    let t = if wide { tw } else { t1 };
                    t(
                        x.as_ptr().add(i * k),
                        k,
                        k,
                        w.as_ptr().add(j * k),
                        k,
                        b,
                        op.add(i * ors + j),
                        ors,
                        false,
                    );
                }
                j += if wide { cw } else { 1 };
            }
            i += r;
        }
        j0 = j1;
    }
}

/// f32 weights.
pub(super) fn linear_f32(x: &[f32], w: &[f32], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_f32(x, w, bias, out)
    } else {
        linear_small("linear_f32", x, w, bias, out)
    }
}

/// f16 weights.
pub(super) fn linear_f16(x: &[f32], w: &[f16], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_f16(x, w, bias, out, f16_to_f32)
    } else {
        linear_small("linear_f16", x, w, bias, out)
    }
}

/// bf16 weights.
pub(super) fn linear_bf16(x: &[f32], w: &[bf16], bias: Option<&[f32]>, out: MatMut<'_>) {
    if out.rows() > super::LARGE_M {
        super::large::linear_bf16(x, w, bias, out, generic::bf16_to_f32)
    } else {
        linear_small("linear_bf16", x, w, bias, out)
    }
}

// ---------------------------------------------------------------------------------------
// Small strided matmul (attention tiles)

/// Strided `out (+)= a·b` without the `gemm` crate's per-call packing and allocation, for
/// `m <= 256`: `Q·Kᵀ` (columns of `b` and rows of `a` contiguous) on the dot-form tiles,
/// `P·V` (rows of `b` contiguous, any `a`) on [`mm_rows`]; anything else on the crate.
pub(super) fn matmul_f32(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, mut out: MatMut<'_>) {
    let (m, k, n) = matmul_dims(&a, &b, &out);
    if m == 0 || n == 0 || k == 0 || m > 256 {
        return super::large::matmul_f32(a, b, accumulate, out);
    }
    let ors = out.row_stride();
    let op = out.as_mut_ptr();
    let (ap, bp) = (a.data().as_ptr(), b.data().as_ptr());
    if b.col_stride() == 1 {
        let mut i = 0;
        while i < m {
            let r = (m - i).min(4);
            let f: MmRowsFn = match r {
                1 => mm_rows::<1>,
                2 => mm_rows::<2>,
                3 => mm_rows::<3>,
                _ => mm_rows::<4>,
            };
            let mut j = 0;
            while j < n {
                let nc = (n - j).min(16);
                // SAFETY: MatRef::new bounds-checked a and b; out is m×n; AVX2 detected.
                unsafe {
                    f(
                        ap.add(i * a.row_stride()),
                        a.row_stride(),
                        a.col_stride(),
                        bp.add(j),
                        b.row_stride(),
                        k,
                        nc,
                        op.add(i * ors + j),
                        ors,
                        accumulate,
                    )
                };
                j += 16;
            }
            i += r;
        }
    } else if b.row_stride() == 1 && a.col_stride() == 1 {
        let (xs, ws) = (a.row_stride(), b.col_stride());
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR);
            let (cw, tw, t1) = tiles_for::<f32>(r);
            let mut j = 0;
            while j < n {
                let wide = j + cw <= n;
                let t = if wide { tw } else { t1 };
                // SAFETY: as above; rows of a and columns of b are contiguous runs of k.
                unsafe {
                    t(
                        ap.add(i * xs),
                        xs,
                        k,
                        bp.add(j * ws),
                        ws,
                        std::ptr::null(),
                        op.add(i * ors + j),
                        ors,
                        accumulate,
                    )
                };
                j += if wide { cw } else { 1 };
            }
            i += r;
        }
    } else {
        super::large::matmul_f32(a, b, accumulate, out)
    }
}

type MmRowsFn =
    unsafe fn(*const f32, usize, usize, *const f32, usize, usize, usize, *mut f32, usize, bool);

/// Lane mask for the first `n` (0..=8) of 8 lanes, for `vmaskmovps` (which never touches
/// masked-off elements, so pointers past a short tail are not dereferenced).
#[inline]
#[target_feature(enable = "avx2")]
fn lane_mask(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Outer-product tile: `R` rows × 16 columns (`ncols` valid) of `out (+)= a·b`, `a` elements
/// broadcast (any strides), `b` rows contiguous.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn mm_rows<const R: usize>(
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    k: usize,
    ncols: usize,
    out: *mut f32,
    ors: usize,
    accumulate: bool,
) {
    unsafe {
        let m0 = lane_mask(ncols.min(8));
        let m1 = lane_mask(ncols.saturating_sub(8));
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        if accumulate {
            for r in 0..R {
                acc[r][0] = _mm256_maskload_ps(out.add(r * ors), m0);
                acc[r][1] = _mm256_maskload_ps(out.wrapping_add(r * ors + 8), m1);
            }
        }
        for l in 0..k {
            let b0 = _mm256_maskload_ps(b.add(l * b_rs), m0);
            let b1 = _mm256_maskload_ps(b.wrapping_add(l * b_rs + 8), m1);
            for r in 0..R {
                let av = _mm256_set1_ps(*a.add(r * a_rs + l * a_cs));
                acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..R {
            _mm256_maskstore_ps(out.add(r * ors), m0, acc[r][0]);
            _mm256_maskstore_ps(out.wrapping_add(r * ors + 8), m1, acc[r][1]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// int8

/// int8 tile: `xq` rows are quantised activations (i8, row stride `kp`, zero-padded to a
/// multiple of 32), `w` rows i8 with stride `k` (tail copied into a padded buffer).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile_i8<const R: usize, const C: usize>(
    xq: *const i8,
    sx: *const f32,
    kp: usize,
    w: *const i8,
    k: usize,
    scales: *const f32,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); C]; R];
        let mut wv = [_mm256_setzero_si256(); C];
        let mut l = 0;
        while l < k {
            for c in 0..C {
                wv[c] = if l + 32 <= k {
                    _mm256_loadu_si256(w.add(c * k + l) as *const __m256i)
                } else {
                    let mut buf = [0i8; 32];
                    std::ptr::copy_nonoverlapping(w.add(c * k + l), buf.as_mut_ptr(), k - l);
                    _mm256_loadu_si256(buf.as_ptr() as *const __m256i)
                };
            }
            for r in 0..R {
                let xv = _mm256_loadu_si256(xq.add(r * kp + l) as *const __m256i);
                let ax = _mm256_sign_epi8(xv, xv);
                for c in 0..C {
                    let p16 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(wv[c], xv));
                    acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(p16, ones));
                }
            }
            l += 32;
        }
        for c in 0..C {
            let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
            let sw = *scales.add(c);
            for r in 0..R {
                *out.add(r * ors + c) = hsum_i32(acc[r][c]) as f32 * *sx.add(r) * sw + b;
            }
        }
    }
}

type TileI8Fn = unsafe fn(
    *const i8,
    *const f32,
    usize,
    *const i8,
    usize,
    *const f32,
    *const f32,
    *mut f32,
    usize,
);

/// Rows per int8 tile (accumulators + temporaries fit 16 registers).
const MR_I8: usize = 4;

fn tiles_i8_for(r: usize) -> (TileI8Fn, TileI8Fn) {
    match r {
        1 => (tile_i8::<1, 2>, tile_i8::<1, 1>),
        2 => (tile_i8::<2, 2>, tile_i8::<2, 1>),
        3 => (tile_i8::<3, 2>, tile_i8::<3, 1>),
        _ => (tile_i8::<4, 2>, tile_i8::<4, 1>),
    }
}

/// int8 weights (see [`super::super::LinearI8Fn`]).
pub(super) fn linear_i8(
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
    let kp = k.div_ceil(32) * 32;
    super::super::scratch::with_bufs(|bufs| {
        let xq = super::super::scratch::take(&mut bufs.i8a, m * kp);
        let sx = super::super::scratch::take(&mut bufs.f32a, m);
        linear_i8_run(x, m, k, kp, xq, sx, w, n, scales, bias, out.rb());
    })
}

#[allow(clippy::too_many_arguments)]
fn linear_i8_run(
    x: &[f32],
    m: usize,
    k: usize,
    kp: usize,
    xq: &mut [i8],
    sx: &mut [f32],
    w: &[i8],
    n: usize,
    scales: &[f32],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
) {
    for i in 0..m {
        // SAFETY: this kernel is installed only when AVX2 and FMA are present.
        sx[i] = unsafe {
            super::quantize_row_i8_fma(&x[i * k..(i + 1) * k], &mut xq[i * kp..i * kp + k])
        };
    }
    let ors = out.row_stride();
    let op = out.as_mut_ptr();
    let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    let nb = if m <= MR_I8 {
        n
    } else {
        ((256 * 1024 / k.max(1)) / 2 * 2).max(2)
    };
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR_I8);
            let (t2, t1) = tiles_i8_for(r);
            let mut j = j0;
            while j < j1 {
                let wide = j + 2 <= j1;
                // SAFETY: offsets inside the checked operands; AVX2 detected before install.
                unsafe {
                    let b = if bp.is_null() { bp } else { bp.add(j) };
                    let t = if wide { t2 } else { t1 };
                    t(
                        xq.as_ptr().add(i * kp),
                        sx.as_ptr().add(i),
                        kp,
                        w.as_ptr().add(j * k),
                        k,
                        scales.as_ptr().add(j),
                        b,
                        op.add(i * ors + j),
                        ors,
                    );
                }
                j += if wide { 2 } else { 1 };
            }
            i += r;
        }
        j0 = j1;
    }
}

// ---------------------------------------------------------------------------------------
// Vector helpers

/// Dot product.
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: length mismatch");
    // SAFETY: equal lengths; AVX2 detected.
    unsafe { dot_impl(a, b) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (ap, bp) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    unsafe {
        while i + 32 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                *s = _mm256_fmadd_ps(
                    _mm256_loadu_ps(ap.add(i + 8 * u)),
                    _mm256_loadu_ps(bp.add(i + 8 * u)),
                    *s,
                );
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(ap.add(i)),
                _mm256_loadu_ps(bp.add(i)),
                acc[0],
            );
            i += 8;
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut r = hsum(s);
    for j in i..n {
        r += a[j] * b[j];
    }
    r
}

/// `y += alpha·x`.
pub(super) fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: length mismatch");
    // SAFETY: equal lengths; AVX2 detected.
    unsafe { axpy_impl(alpha, x, y) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_impl(alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len();
    let a = _mm256_set1_ps(alpha);
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            let v = _mm256_fmadd_ps(
                a,
                _mm256_loadu_ps(x.as_ptr().add(i)),
                _mm256_loadu_ps(y.as_ptr().add(i)),
            );
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
            i += 8;
        }
    }
    for j in i..n {
        y[j] = alpha.mul_add(x[j], y[j]);
    }
}

/// `x *= alpha`.
pub(super) fn scale(alpha: f32, x: &mut [f32]) {
    // SAFETY: AVX2 detected.
    unsafe { scale_impl(alpha, x) }
}

#[target_feature(enable = "avx2")]
unsafe fn scale_impl(alpha: f32, x: &mut [f32]) {
    let n = x.len();
    let a = _mm256_set1_ps(alpha);
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(a, _mm256_loadu_ps(p)));
            i += 8;
        }
    }
    for v in &mut x[i..] {
        *v *= alpha;
    }
}

/// Sum.
pub(super) fn sum(x: &[f32]) -> f32 {
    // SAFETY: AVX2 detected.
    unsafe { sum_impl(x) }
}

#[target_feature(enable = "avx2")]
unsafe fn sum_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    unsafe {
        while i + 32 <= n {
            for (u, s) in acc.iter_mut().enumerate() {
                *s = _mm256_add_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8 * u)), *s);
            }
            i += 32;
        }
        while i + 8 <= n {
            acc[0] = _mm256_add_ps(_mm256_loadu_ps(x.as_ptr().add(i)), acc[0]);
            i += 8;
        }
    }
    let mut r = hsum(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    for v in &x[i..] {
        r += v;
    }
    r
}

/// Maximum (`-inf` for empty input; NaNs ignored).
pub(super) fn max(x: &[f32]) -> f32 {
    // SAFETY: AVX2 detected.
    unsafe { max_impl(x) }
}

#[target_feature(enable = "avx2")]
unsafe fn max_impl(x: &[f32]) -> f32 {
    let n = x.len();
    let mut acc = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            // max_ps returns the second operand when either is NaN: keep the accumulator.
            acc = _mm256_max_ps(_mm256_loadu_ps(x.as_ptr().add(i)), acc);
            i += 8;
        }
    }
    let mut lanes = [0f32; 8];
    // SAFETY: 8-float buffer.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    lanes
        .iter()
        .chain(&x[i..])
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `exp` of 8 lanes: same range reduction and Cephes polynomial as the AVX-512 `exp16`;
/// `2^n` (n ∈ [-150, 129] after clamping x to [-104, 89]) is applied as two factors
/// `2^(n>>1)·2^(n-(n>>1))`, each a normal float built from its exponent bits, so the result
/// overflows to +inf and underflows gradually to 0 like `f32::exp`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-104.0)),
        _mm256_set1_ps(89.0),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.398_2e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.333_452e-3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166_579_6e-2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666_666_5e-1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5));
    let r2 = _mm256_mul_ps(r, r);
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let f1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let f2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(e, f1), f2)
}

/// In-place exp.
pub(super) fn exp(x: &mut [f32]) {
    // SAFETY: AVX2 detected.
    unsafe { exp_sum_impl(x, 0.0) };
}

/// In-place `exp(x - shift)`, returns the sum.
pub(super) fn exp_sum(x: &mut [f32], shift: f32) -> f32 {
    // SAFETY: AVX2 detected.
    unsafe { exp_sum_impl(x, shift) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn exp_sum_impl(x: &mut [f32], shift: f32) -> f32 {
    let n = x.len();
    let s = _mm256_set1_ps(shift);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            let p = x.as_mut_ptr().add(i);
            let v = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), s));
            _mm256_storeu_ps(p, v);
            acc = _mm256_add_ps(acc, v);
            i += 8;
        }
    }
    let mut total = hsum(acc);
    if i < n {
        let t = n - i;
        let mut buf = [0f32; 8];
        buf[..t].copy_from_slice(&x[i..]);
        let mut out = [0f32; 8];
        // SAFETY: 8-float buffers.
        unsafe {
            _mm256_storeu_ps(
                out.as_mut_ptr(),
                exp8(_mm256_sub_ps(_mm256_loadu_ps(buf.as_ptr()), s)),
            )
        };
        x[i..].copy_from_slice(&out[..t]);
        total += out[..t].iter().sum::<f32>();
    }
    total
}

/// f16 → f32.
pub(super) fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
    // SAFETY: equal lengths; AVX2+F16C detected.
    unsafe { f16_to_f32_impl(src, dst) }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_to_f32_impl(src: &[f16], dst: &mut [f32]) {
    let n = src.len();
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            _mm256_storeu_ps(dst.as_mut_ptr().add(i), f16::load(src.as_ptr().add(i)));
            i += 8;
        }
    }
    for j in i..n {
        dst[j] = src[j].to_f32();
    }
}

/// f32 → f16 (round to nearest even).
pub(super) fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: length mismatch");
    // SAFETY: equal lengths; AVX2+F16C detected.
    unsafe { f32_to_f16_impl(src, dst) }
}

#[target_feature(enable = "avx2,f16c")]
unsafe fn f32_to_f16_impl(src: &[f32], dst: &mut [f16]) {
    let n = src.len();
    let mut i = 0;
    unsafe {
        while i + 8 <= n {
            let h =
                _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(src.as_ptr().add(i)));
            _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h);
            i += 8;
        }
    }
    for j in i..n {
        dst[j] = f16::from_f32(src[j]);
    }
}

/// Sums of 8 vectors at once: lane `i` of the result is the sum of the 8 lanes of `v[i]`
/// (a transpose-and-add tree: 4 + 2 + 1 combining steps).
#[inline]
#[target_feature(enable = "avx2")]
fn hsum8(v: &[__m256; 8]) -> __m256 {
    let mut w = [_mm256_setzero_ps(); 4];
    for i in 0..4 {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        w[i] = _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    }
    let mut x = [_mm256_setzero_ps(); 2];
    for i in 0..2 {
        let (a, b) = (_mm256_castps_pd(w[2 * i]), _mm256_castps_pd(w[2 * i + 1]));
        x[i] = _mm256_add_ps(
            _mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)),
        );
    }
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(x[0], x[1]),
        _mm256_permute2f128_ps::<0x31>(x[0], x[1]),
    )
}

/// Attention scores of a group of query rows against a block of keys
/// ([`super::super::AttnScoresFn`]): per query row, 8 keys at a time, 8 accumulators over
/// the head dimension in 8-lane chunks (masked tail), reduced together by [`hsum8`].
pub(super) fn attn_scores(q: &[f32], d: usize, keys: &[&[f32]], out: &mut [f32], os: usize) {
    let rows = generic::attn_scores_dims(q, d, keys, out, os);
    if keys.is_empty() {
        return;
    }
    // SAFETY: lengths checked above; AVX2 detected before install.
    unsafe { attn_scores_impl(q.as_ptr(), rows, d, keys, out.as_mut_ptr(), os) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn attn_scores_impl(
    q: *const f32,
    rows: usize,
    d: usize,
    keys: &[&[f32]],
    out: *mut f32,
    os: usize,
) {
    let nk_all = keys.len();
    let mut j0 = 0;
    while j0 < nk_all {
        let nk = (nk_all - j0).min(8);
        // short blocks repeat the last key; its extra scores are not stored
        let mut kp = [keys[j0].as_ptr(); 8];
        for (jj, p) in kp.iter_mut().enumerate() {
            *p = keys[j0 + jj.min(nk - 1)].as_ptr();
        }
        for r in 0..rows {
            let qr = unsafe { q.add(r * d) };
            let mut acc = [_mm256_setzero_ps(); 8];
            let mut c = 0;
            while c < d {
                let mk = lane_mask((d - c).min(8));
                let qv = unsafe { _mm256_maskload_ps(qr.add(c), mk) };
                for jj in 0..8 {
                    let kv = unsafe { _mm256_maskload_ps(kp[jj].add(c), mk) };
                    acc[jj] = _mm256_fmadd_ps(qv, kv, acc[jj]);
                }
                c += 8;
            }
            let s = hsum8(&acc);
            unsafe { _mm256_maskstore_ps(out.add(r * os + j0), lane_mask(nk), s) };
        }
        j0 += 8;
    }
}

/// Attention value accumulation ([`super::super::AttnPvFn`]): a register tile of up to 4
/// query rows × 16 columns (8 accumulators) held across the block of keys; keys added in
/// order with one FMA each, as the per-key `axpy` did.
pub(super) fn attn_pv(p: &[f32], ps: usize, values: &[&[f32]], acc: &mut [f32], d: usize) {
    // SAFETY: AVX2 detected before install.
    unsafe {
        super::attn_pv_rows(
            p,
            ps,
            values,
            acc,
            d,
            &[pv_tile::<1>, pv_tile::<2>, pv_tile::<3>, pv_tile::<4>],
        )
    }
}

/// `R` rows of [`attn_pv`], 16 columns at a time (masked tail).
#[target_feature(enable = "avx2,fma")]
unsafe fn pv_tile<const R: usize>(
    p: *const f32,
    ps: usize,
    values: &[&[f32]],
    acc: *mut f32,
    d: usize,
) {
    let mut c = 0;
    while c < d {
        let m0 = lane_mask((d - c).min(8));
        let m1 = lane_mask((d - c).saturating_sub(8).min(8));
        let mut a = [[_mm256_setzero_ps(); 2]; R];
        for r in 0..R {
            let ap = acc.wrapping_add(r * d + c);
            a[r][0] = unsafe { _mm256_maskload_ps(ap, m0) };
            a[r][1] = unsafe { _mm256_maskload_ps(ap.wrapping_add(8), m1) };
        }
        for (j, vr) in values.iter().enumerate() {
            let vp = vr.as_ptr().wrapping_add(c);
            let v0 = unsafe { _mm256_maskload_ps(vp, m0) };
            let v1 = unsafe { _mm256_maskload_ps(vp.wrapping_add(8), m1) };
            for r in 0..R {
                let pw = _mm256_set1_ps(unsafe { *p.add(r * ps + j) });
                a[r][0] = _mm256_fmadd_ps(pw, v0, a[r][0]);
                a[r][1] = _mm256_fmadd_ps(pw, v1, a[r][1]);
            }
        }
        for r in 0..R {
            let ap = acc.wrapping_add(r * d + c);
            unsafe {
                _mm256_maskstore_ps(ap, m0, a[r][0]);
                _mm256_maskstore_ps(ap.wrapping_add(8), m1, a[r][1]);
            }
        }
        c += 16;
    }
}
