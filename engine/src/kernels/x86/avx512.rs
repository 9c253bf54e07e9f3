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

use super::super::generic::matmul_dims;
use super::super::{linear_dims, MatMut, MatRef};

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
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut wv = [_mm512_setzero_ps(); C];
        let mut l = 0;
        while l + 16 <= k {
            for c in 0..C {
                wv[c] = W::load(w.add(c * ws + l));
                // Rows two tiles ahead: each tile starts new 4 KiB pages, where the hardware
                // prefetcher stops, so decode (weights streaming from DRAM) would start every
                // tile with demand misses. The distance is a guess the shared, noisy bench
                // machine could not resolve (1, 2 and 4 tiles all within noise).
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((2 * C + c) * ws + l) as *const i8);
            }
            for r in 0..R {
                let xv = _mm512_loadu_ps(x.add(r * xs + l));
                for c in 0..C {
                    acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
            l += 16;
        }
        if l < k {
            let t = k - l;
            for c in 0..C {
                wv[c] = W::load_tail(w.add(c * ws + l), t);
            }
            for r in 0..R {
                let xv = _mm512_maskz_loadu_ps(mask16(t), x.add(r * xs + l));
                for c in 0..C {
                    acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
                }
            }
        }
        if C == 4 {
            let b4 = if bias.is_null() {
                _mm_setzero_ps()
            } else {
                _mm_loadu_ps(bias)
            };
            for r in 0..R {
                let s = reduce4_ps(acc[r][0], acc[r][1 % C], acc[r][2 % C], acc[r][3 % C]);
                let o = out.add(r * ors);
                let v = _mm_add_ps(s, b4);
                _mm_storeu_ps(
                    o,
                    if accumulate {
                        _mm_add_ps(_mm_loadu_ps(o), v)
                    } else {
                        v
                    },
                );
            }
        } else {
            for r in 0..R {
                for c in 0..C {
                    let b = if bias.is_null() { 0.0 } else { *bias.add(c) };
                    let o = out.add(r * ors + c);
                    let v = _mm512_reduce_add_ps(acc[r][c]) + b;
                    *o = if accumulate { *o + v } else { v };
                }
            }
        }
    }
}

/// Horizontal sums of four vectors at once: `[Σa, Σb, Σc, Σd]` (an in-register 4×4
/// transpose-and-add per 128-bit lane, then the four lanes), ~3× cheaper than four
/// separate reductions, which matters when `k` is only a few hundred.
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn reduce4_ps(a: __m512, b: __m512, c: __m512, d: __m512) -> __m128 {
    // Per 128-bit lane: ab = [a0+a2, b0+b2, a1+a3, b1+b3], cd likewise.
    let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    // Per lane: [Σa, Σb, Σc, Σd] partials.
    let (abd, cdd) = (_mm512_castps_pd(ab), _mm512_castps_pd(cd));
    let abcd = _mm512_add_ps(
        _mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)),
        _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd)),
    );
    let s = _mm256_add_ps(
        _mm512_castps512_ps256(abcd),
        _mm512_extractf32x8_ps::<1>(abcd),
    );
    _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s))
}

/// Integer version of [`reduce4_ps`].
#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn reduce4_epi32(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let s = _mm256_add_epi32(
        _mm512_castsi512_si256(abcd),
        _mm512_extracti32x8_epi32::<1>(abcd),
    );
    _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
}

type TileFn<W> =
    unsafe fn(*const f32, usize, usize, *const W, usize, *const f32, *mut f32, usize, bool);

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
                unsafe {
                    t(
                        x.add(i * k),
                        k,
                        k,
                        w.add(j * k),
                        k,
                        b,
                        out.add(i * ors + j),
                        ors,
                        false,
                    )
                };
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
// Small strided matmul (attention tiles)

/// Strided `out (+)= a·b` for attention-sized operands without the `gemm` crate's per-call
/// packing and allocation: `Q·Kᵀ` (columns of `b` contiguous, rows of `a` contiguous) runs
/// on the dot-form tiles; `P·V` (rows of `b` contiguous, any `a`) on [`mm_rows`]. Other
/// layouts and large `m` go to the `gemm` crate.
pub(super) fn matmul_f32(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, mut out: MatMut<'_>) {
    let (m, k, n) = matmul_dims(&a, &b, &out);
    if m == 0 || n == 0 || k == 0 || m > SMALL_MM_M {
        return super::large::matmul_f32(a, b, accumulate, out);
    }
    let ors = out.row_stride();
    let op = out.as_mut_ptr();
    let (ap, bp) = (a.data().as_ptr(), b.data().as_ptr());
    if b.col_stride() == 1 {
        // SAFETY: MatRef::new bounds-checked every element of a and b; out is m×n.
        unsafe {
            mm_rows_drive(
                ap,
                a.row_stride(),
                a.col_stride(),
                bp,
                b.row_stride(),
                m,
                k,
                n,
                op,
                ors,
                accumulate,
            )
        };
    } else if b.row_stride() == 1 && a.col_stride() == 1 {
        let (xs, ws) = (a.row_stride(), b.col_stride());
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR);
            let (t4, t1) = (tile_for::<f32>(r, true), tile_for::<f32>(r, false));
            let mut j = 0;
            while j < n {
                let four = j + 4 <= n;
                let t = if four { t4 } else { t1 };
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
                j += if four { 4 } else { 1 };
            }
            i += r;
        }
    } else {
        super::large::matmul_f32(a, b, accumulate, out)
    }
}

/// Above this many rows the `gemm` crate's packing pays off.
const SMALL_MM_M: usize = 256;

/// Outer-product tile: `R` rows × 32 columns (`ncols` valid), `out[r][:] (+)= Σ_l a[r][l]·b[l][:]`
/// with `a` elements broadcast (any strides) and `b` rows contiguous.
#[inline]
#[target_feature(enable = "avx512f,fma")]
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
        let m0 = if ncols >= 16 { 0xffff } else { mask16(ncols) };
        // Masked-off lanes are never accessed (AVX-512 fault suppression), so the second
        // half may point past the operands when ncols <= 16 (hence wrapping_add below).
        let m1 = if ncols >= 32 {
            0xffff
        } else if ncols > 16 {
            mask16(ncols - 16)
        } else {
            0
        };
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        if accumulate {
            for r in 0..R {
                acc[r][0] = _mm512_maskz_loadu_ps(m0, out.add(r * ors));
                acc[r][1] = _mm512_maskz_loadu_ps(m1, out.wrapping_add(r * ors + 16));
            }
        }
        for l in 0..k {
            let b0 = _mm512_maskz_loadu_ps(m0, b.add(l * b_rs));
            let b1 = _mm512_maskz_loadu_ps(m1, b.wrapping_add(l * b_rs + 16));
            for r in 0..R {
                let av = _mm512_set1_ps(*a.add(r * a_rs + l * a_cs));
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        for r in 0..R {
            _mm512_mask_storeu_ps(out.add(r * ors), m0, acc[r][0]);
            _mm512_mask_storeu_ps(out.wrapping_add(r * ors + 16), m1, acc[r][1]);
        }
    }
}

/// Runs [`mm_rows`] tiles (up to 6 rows × 32 columns) over the whole `m×n` output.
///
/// Safety: operands cover the stated shapes and strides.
#[target_feature(enable = "avx512f,fma")]
unsafe fn mm_rows_drive(
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    m: usize,
    k: usize,
    n: usize,
    out: *mut f32,
    ors: usize,
    accumulate: bool,
) {
    type F =
        unsafe fn(*const f32, usize, usize, *const f32, usize, usize, usize, *mut f32, usize, bool);
    let mut i = 0;
    while i < m {
        let r = (m - i).min(6);
        let f: F = match r {
            1 => mm_rows::<1>,
            2 => mm_rows::<2>,
            3 => mm_rows::<3>,
            4 => mm_rows::<4>,
            5 => mm_rows::<5>,
            _ => mm_rows::<6>,
        };
        let mut j = 0;
        while j < n {
            let nc = (n - j).min(32);
            unsafe {
                f(
                    a.add(i * a_rs),
                    a_rs,
                    a_cs,
                    b.add(j),
                    b_rs,
                    k,
                    nc,
                    out.add(i * ors + j),
                    ors,
                    accumulate,
                )
            };
            j += 32;
        }
        i += r;
    }
}

// ---------------------------------------------------------------------------------------
// int8 × int8 (VNNI)

/// VNNI tile on quantised operands: `xq` holds `qx + 128` as u8 (row stride `k`), `w` is
/// i8. `vpdpbusd` accumulates `Σ (qx+128)·qw` exactly in i32; a second `vpdpbusd` with
/// all-ones per weight row yields `Σ qw`, so `Σ qx·qw = acc - 128·Σ qw` (the u8/i8
/// operand order of `vpdpbusd` forces the offset). `sx` = per-row activation scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
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
                _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((2 * C + c) * k + l));
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
        if C == 4 {
            let wsum = reduce4_epi32(comp[0], comp[1 % C], comp[2 % C], comp[3 % C]);
            let w128 = _mm_slli_epi32::<7>(wsum);
            let b4 = if bias.is_null() {
                _mm_setzero_ps()
            } else {
                _mm_loadu_ps(bias)
            };
            let sw4 = _mm_loadu_ps(scales);
            for r in 0..R {
                let d = _mm_sub_epi32(
                    reduce4_epi32(acc[r][0], acc[r][1 % C], acc[r][2 % C], acc[r][3 % C]),
                    w128,
                );
                // Same operation order as the reference: ((dot·sx)·scale) + bias.
                let v = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(d), _mm_set1_ps(*sx.add(r))), sw4);
                _mm_storeu_ps(out.add(r * ors), _mm_add_ps(v, b4));
            }
            return;
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
    if m > MR_I8 {
        let bp = bias.map_or(std::ptr::null(), |b| b.as_ptr());
        let ors = out.row_stride();
        // SAFETY: dims checked above; VNNI detected before install.
        unsafe { linear_i8_packed(x, m, k, w, n, scales.as_ptr(), bp, out.as_mut_ptr(), ors) };
        return;
    }
    super::super::scratch::with_bufs(|bufs| {
        let xq = super::super::scratch::take(&mut bufs.u8a, m * k);
        let q = super::super::scratch::take(&mut bufs.i8a, k);
        let sx = super::super::scratch::take(&mut bufs.f32a, m);
        quantize_rows_offset(x, m, k, k, q, xq, sx);
        linear_i8_small(xq, sx, m, k, w, n, scales, bias, out.rb());
    })
}

#[allow(clippy::too_many_arguments)]
fn linear_i8_small(
    xq: &[u8],
    sx: &[f32],
    m: usize,
    k: usize,
    w: &[i8],
    n: usize,
    scales: &[f32],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
) {
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

// ---------------------------------------------------------------------------------------
// int8 × int8 for large m: outer-product VNNI micro-kernel on packed weights

/// Columns per packed weight panel (one zmm of i32 accumulators).
const NP: usize = 16;
/// Panels per micro-kernel tile and rows per tile: 8×2 accumulators.
const PANELS: usize = 2;
const MR_PACKED: usize = 8;

/// Packs `w` (`n×k` i8) into panels of [`NP`] columns: for panel `p` and k-quad `q`, 64
/// bytes = for each of the 16 columns the 4 weights `w[16p+c][4q..4q+4]` (zero-padded past
/// `k` and `n`), the operand layout `vpdpbusd` wants for a broadcast activation quad. Also
/// returns `Σ_l w[j][l]` per column for the +128 offset compensation.
/// `packed` (zeroed, ≥ `ceil(n/16)·kq·64`) and `wsum` (≥ `n`) are written in place.
fn pack_i8(w: &[i8], n: usize, k: usize, packed: &mut [i8], wsum: &mut [i32]) {
    let kq = k.div_ceil(4);
    for j in 0..n {
        let (p, c) = (j / NP, j % NP);
        let row = &w[j * k..(j + 1) * k];
        wsum[j] = row.iter().map(|&v| v as i32).sum();
        let base = p * kq * 64 + c * 4;
        for (l, &v) in row.iter().enumerate() {
            packed[base + (l / 4) * 64 + l % 4] = v;
        }
    }
}

/// `R` rows × `PANELS·16` columns. `xq`: rows of `qx+128` (stride `kp = 4·kq`), `wp`: the
/// first of `PANELS` consecutive packed panels, `wsum`/`scales`/`bias` at the tile's first
/// column, `ncols` valid columns (≤ 32; the rest are masked on store).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")]
unsafe fn tile_i8_packed<const R: usize>(
    xq: *const u8,
    sx: *const f32,
    kq: usize,
    wp: *const i8,
    wsum: *const i32,
    scales: *const f32,
    bias: *const f32,
    ncols: usize,
    out: *mut f32,
    ors: usize,
) {
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); PANELS]; R];
        let kp = kq * 4;
        let panel_stride = kq * 64;
        for q in 0..kq {
            let w0 = _mm512_loadu_si512(wp.add(q * 64) as *const _);
            let w1 = _mm512_loadu_si512(wp.add(panel_stride + q * 64) as *const _);
            for r in 0..R {
                let xb = _mm512_set1_epi32((xq.add(r * kp + q * 4) as *const i32).read_unaligned());
                acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xb, w0);
                acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xb, w1);
            }
        }
        for pi in 0..PANELS {
            let c0 = pi * NP;
            if c0 >= ncols {
                break;
            }
            let mask = if ncols - c0 >= NP {
                0xffff
            } else {
                mask16(ncols - c0)
            };
            let comp = _mm512_slli_epi32::<7>(_mm512_maskz_loadu_epi32(mask, wsum.add(c0)));
            let sw = _mm512_maskz_loadu_ps(mask, scales.add(c0));
            let b = if bias.is_null() {
                _mm512_setzero_ps()
            } else {
                _mm512_maskz_loadu_ps(mask, bias.add(c0))
            };
            for r in 0..R {
                let d = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][pi], comp));
                // Same operation order as the reference: ((dot·sx)·scale) + bias.
                let v = _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(*sx.add(r))), sw);
                _mm512_mask_storeu_ps(out.add(r * ors + c0), mask, _mm512_add_ps(v, b));
            }
        }
    }
}

type TilePackedFn = unsafe fn(
    *const u8,
    *const f32,
    usize,
    *const i8,
    *const i32,
    *const f32,
    *const f32,
    usize,
    *mut f32,
    usize,
);

fn tile_packed_for(r: usize) -> TilePackedFn {
    match r {
        1 => tile_i8_packed::<1>,
        2 => tile_i8_packed::<2>,
        3 => tile_i8_packed::<3>,
        4 => tile_i8_packed::<4>,
        5 => tile_i8_packed::<5>,
        6 => tile_i8_packed::<6>,
        7 => tile_i8_packed::<7>,
        _ => tile_i8_packed::<8>,
    }
}

/// Large-`m` int8 path: quantise `x` (rows padded to whole quads), pack `w` once per call
/// (`n·k` bytes, negligible next to `m·n·k` MACs), then for each 32-column panel pair (a
/// few KB..160 KB, stays in L1/L2) sweep all row tiles. No horizontal reductions.
///
/// Safety: `x` is `m×k`, `w` `n×k`, `scales` `n`, `bias` null or `n`, `out` `m×n` (stride `ors`).
#[allow(clippy::too_many_arguments)]
unsafe fn linear_i8_packed(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[i8],
    n: usize,
    scales: *const f32,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    super::super::scratch::with_bufs(|b| {
        let kq = k.div_ceil(4);
        let kp = kq * 4;
        // Whole panel pairs, so the tile may always read PANELS panels.
        let panels = n.div_ceil(NP).div_ceil(PANELS) * PANELS;
        let q = super::super::scratch::take(&mut b.i8a, k);
        let xq = super::super::scratch::take(&mut b.u8a, m * kp);
        let sx = super::super::scratch::take(&mut b.f32a, m);
        quantize_rows_offset(x, m, k, kp, q, xq, sx);
        let packed = super::super::scratch::take(&mut b.i8b, panels * kq * 64);
        let wsum = super::super::scratch::take(&mut b.i32a, panels * NP);
        pack_i8(w, n, k, packed, wsum);
        let scale_pad = super::super::scratch::take(&mut b.f32b, panels * NP);
        let bias_pad = super::super::scratch::take(&mut b.f32c, panels * NP);
        // SAFETY: forwarded caller contract.
        unsafe {
            run_packed(
                m, n, kq, xq, sx, packed, wsum, scale_pad, bias_pad, scales, bias, out, ors,
            )
        }
    })
}

/// Tile sweep of [`linear_i8_packed`] over prepared operands.
///
/// Safety: as [`linear_i8_packed`]; the padded buffers hold `panels·16` columns.
#[allow(clippy::too_many_arguments)]
unsafe fn run_packed(
    m: usize,
    n: usize,
    kq: usize,
    xq: &[u8],
    sx: &[f32],
    packed: &[i8],
    wsum: &[i32],
    scale_pad: &mut [f32],
    bias_pad: &mut [f32],
    scales: *const f32,
    bias: *const f32,
    out: *mut f32,
    ors: usize,
) {
    let kp = kq * 4;
    let panels = scale_pad.len() / NP;
    // SAFETY (caller): scales and bias (if non-null) hold n values.
    unsafe {
        scale_pad[..n].copy_from_slice(std::slice::from_raw_parts(scales, n));
        if !bias.is_null() {
            bias_pad[..n].copy_from_slice(std::slice::from_raw_parts(bias, n));
        }
    }
    let bp = if bias.is_null() {
        std::ptr::null()
    } else {
        bias_pad.as_ptr()
    };
    let mut p = 0;
    while p < panels {
        let c0 = p * NP;
        let ncols = n.saturating_sub(c0).min(PANELS * NP);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR_PACKED);
            // SAFETY: padded buffers cover PANELS panels from p; out columns < n via ncols mask.
            unsafe {
                let b = if bp.is_null() { bp } else { bp.add(c0) };
                tile_packed_for(r)(
                    xq.as_ptr().add(i * kp),
                    sx.as_ptr().add(i),
                    kq,
                    packed.as_ptr().add(p * kq * 64),
                    wsum.as_ptr().add(c0),
                    scale_pad.as_ptr().add(c0),
                    b,
                    ncols,
                    out.add(i * ors + c0),
                    ors,
                );
            }
            i += r;
        }
        p += PANELS;
    }
}

/// Quantises each row of `x` (`m×k`) with [`super::super::generic::quantize_row_i8`] into `sx` and
/// `xq` rows of stride `kp >= k` holding `q + 128` as u8 (`q`: a `k`-value temporary).
fn quantize_rows_offset(
    x: &[f32],
    m: usize,
    k: usize,
    kp: usize,
    q: &mut [i8],
    xq: &mut [u8],
    sx: &mut [f32],
) {
    for i in 0..m {
        // SAFETY: this kernel is installed only when AVX-512 (hence AVX2 and FMA) is present.
        sx[i] = unsafe { super::quantize_row_i8_fma(&x[i * k..(i + 1) * k], q) };
        for (d, &v) in xq[i * kp..i * kp + k].iter_mut().zip(q.iter()) {
            *d = (v as i16 + 128) as u8;
        }
    }
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

/// Sums of 16 vectors at once: lane `i` of the result is the sum of the 16 lanes of
/// `v[i]`. A transpose-and-add tree (8 + 4 + 2 + 1 combining steps of two shuffles and an
/// add), instead of 16 separate horizontal reductions.
#[inline]
#[target_feature(enable = "avx512f")]
fn hsum16(v: &[__m512; 16]) -> __m512 {
    // level 1: per 128-bit lane [a0+a2, b0+b2, a1+a3, b1+b3] for the pairs (a, b)
    let mut w = [_mm512_setzero_ps(); 8];
    for i in 0..8 {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        w[i] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    // level 2: per 128-bit lane, element k = that lane's partial sum of v[4i + k]
    let mut x = [_mm512_setzero_ps(); 4];
    for i in 0..4 {
        let (a, b) = (_mm512_castps_pd(w[2 * i]), _mm512_castps_pd(w[2 * i + 1]));
        x[i] = _mm512_add_ps(
            _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
        );
    }
    // level 3: add the four 128-bit lanes; 128-bit lane i of the result holds x[i]'s
    let s01 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(x[0], x[1]),
        _mm512_shuffle_f32x4::<0xDD>(x[0], x[1]),
    );
    let s23 = _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(x[2], x[3]),
        _mm512_shuffle_f32x4::<0xDD>(x[2], x[3]),
    );
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<0x88>(s01, s23),
        _mm512_shuffle_f32x4::<0xDD>(s01, s23),
    )
}

/// Attention scores of a group of query rows against a block of keys
/// ([`super::super::AttnScoresFn`]). For each query row and 16 keys at a time: 16
/// accumulators (one per key) gather `q·k` over the head dimension in 16-lane chunks (the
/// query chunk loaded once per chunk, masked tail), then one [`hsum16`] turns them into
/// the 16 scores. Key rows are read through their slices (any stride or index table).
pub(super) fn attn_scores(q: &[f32], d: usize, keys: &[&[f32]], out: &mut [f32], os: usize) {
    let rows = super::super::generic::attn_scores_dims(q, d, keys, out, os);
    if keys.is_empty() {
        return;
    }
    // SAFETY: lengths checked above (q: rows·d, keys ≥ d each, out ≥ (rows-1)·os + nk);
    // AVX-512 detected before install.
    unsafe { attn_scores_impl(q.as_ptr(), rows, d, keys, out.as_mut_ptr(), os) }
}

#[target_feature(enable = "avx512f,fma")]
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
        let nk = (nk_all - j0).min(16);
        // short blocks repeat the last key; its extra scores are not stored
        let mut kp = [keys[j0].as_ptr(); 16];
        for (jj, p) in kp.iter_mut().enumerate() {
            *p = keys[j0 + jj.min(nk - 1)].as_ptr();
        }
        for r in 0..rows {
            let qr = unsafe { q.add(r * d) };
            let mut acc = [_mm512_setzero_ps(); 16];
            let mut c = 0;
            while c < d {
                let mk = if d - c >= 16 { 0xffff } else { mask16(d - c) };
                let qv = unsafe { _mm512_maskz_loadu_ps(mk, qr.add(c)) };
                for jj in 0..16 {
                    let kv = unsafe { _mm512_maskz_loadu_ps(mk, kp[jj].add(c)) };
                    acc[jj] = _mm512_fmadd_ps(qv, kv, acc[jj]);
                }
                c += 16;
            }
            let s = hsum16(&acc);
            let mk = if nk == 16 { 0xffff } else { mask16(nk) };
            unsafe { _mm512_mask_storeu_ps(out.add(r * os + j0), mk, s) };
        }
        j0 += 16;
    }
}

/// Attention value accumulation ([`super::super::AttnPvFn`]): `acc[r] += Σ_j p[r][j]·v[j]`
/// as a register tile of up to 4 query rows × 64 columns (16 accumulators) held across the
/// whole block of keys: each value chunk is loaded once for all rows of the tile, each
/// weight broadcast, no load/store of the accumulators per key. Keys are added in order
/// with one FMA each, as the per-key `axpy` did (same results).
pub(super) fn attn_pv(p: &[f32], ps: usize, values: &[&[f32]], acc: &mut [f32], d: usize) {
    // SAFETY: AVX-512 detected before install.
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

/// `R` rows of [`attn_pv`], 64 columns at a time (masked tail).
#[target_feature(enable = "avx512f,fma")]
unsafe fn pv_tile<const R: usize>(
    p: *const f32,
    ps: usize,
    values: &[&[f32]],
    acc: *mut f32,
    d: usize,
) {
    let mut c = 0;
    while c < d {
        let w = (d - c).min(64);
        let mut mk = [0 as __mmask16; 4];
        for (u, m) in mk.iter_mut().enumerate() {
            let n = w.saturating_sub(16 * u).min(16);
            *m = if n == 16 { 0xffff } else { mask16(n) };
        }
        let mut a = [[_mm512_setzero_ps(); 4]; R];
        for r in 0..R {
            for u in 0..4 {
                a[r][u] =
                    unsafe { _mm512_maskz_loadu_ps(mk[u], acc.wrapping_add(r * d + c + 16 * u)) };
            }
        }
        for (j, vr) in values.iter().enumerate() {
            let vp = vr.as_ptr();
            let mut v = [_mm512_setzero_ps(); 4];
            for u in 0..4 {
                v[u] = unsafe { _mm512_maskz_loadu_ps(mk[u], vp.wrapping_add(c + 16 * u)) };
            }
            for r in 0..R {
                let pw = _mm512_set1_ps(unsafe { *p.add(r * ps + j) });
                for u in 0..4 {
                    a[r][u] = _mm512_fmadd_ps(pw, v[u], a[r][u]);
                }
            }
        }
        for r in 0..R {
            for u in 0..4 {
                unsafe {
                    _mm512_mask_storeu_ps(acc.wrapping_add(r * d + c + 16 * u), mk[u], a[r][u])
                };
            }
        }
        c += 64;
    }
}
