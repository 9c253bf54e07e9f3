//! Large-`m` (encoder, compute-bound) float linear layers and the strided matmul, on top of
//! the `gemm` crate (packed, cache-blocked outer-product micro-kernels with its own runtime
//! AVX2/AVX-512 dispatch). f16/bf16 weights are widened to f32 one column block at a time:
//! the conversion costs `n·k` operations against `m·n·k` FMAs, negligible for `m` in the
//! hundreds, and keeps a single well-tuned f32 micro-kernel.

use half::{bf16, f16};

use super::super::generic::matmul_dims;
use super::super::{linear_dims, MatMut, MatRef};

/// `out[m×n] (row stride ors) = x[m×k] · w[n×k]ᵀ`, then `+ bias`.
///
/// Safety: pointers cover the stated shapes.
unsafe fn gemm_xwt(
    x: *const f32,
    m: usize,
    k: usize,
    w: *const f32,
    n: usize,
    out: *mut f32,
    ors: usize,
) {
    // SAFETY (caller): dst m×n at (rs=ors, cs=1); lhs x m×k at (rs=k, cs=1);
    // rhs = wᵀ, k×n: element (l, j) = w[j·k + l] → (rs=1, cs=k).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            ors as isize,
            false,
            x,
            1,
            k as isize,
            w,
            k as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

fn add_bias(bias: Option<&[f32]>, out: &mut MatMut<'_>) {
    if let Some(b) = bias {
        for i in 0..out.rows() {
            for (o, bv) in out.row_mut(i).iter_mut().zip(b) {
                *o += bv;
            }
        }
    }
}

/// f32 weights.
pub(super) fn linear_f32(x: &[f32], w: &[f32], bias: Option<&[f32]>, mut out: MatMut<'_>) {
    let (m, k, n) = linear_dims("linear_f32", x.len(), w.len(), bias, &out);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        (0..m).for_each(|i| out.row_mut(i).fill(0.0));
    } else {
        let ors = out.row_stride();
        // SAFETY: shapes checked by linear_dims.
        unsafe { gemm_xwt(x.as_ptr(), m, k, w.as_ptr(), n, out.as_mut_ptr(), ors) };
    }
    add_bias(bias, &mut out);
}

/// Weights widened block by block with `widen`, then [`gemm_xwt`].
fn linear_widened<W: Copy>(
    name: &str,
    x: &[f32],
    w: &[W],
    bias: Option<&[f32]>,
    mut out: MatMut<'_>,
    widen: fn(&[W], &mut [f32]),
) {
    let (m, k, n) = linear_dims(name, x.len(), w.len(), bias, &out);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        (0..m).for_each(|i| out.row_mut(i).fill(0.0));
        add_bias(bias, &mut out);
        return;
    }
    // ~1 MiB of f32 weights per block: large enough for gemm's own blocking.
    let nb = (256 * 1024 / k).max(16).min(n);
    let ors = out.row_stride();
    let op = out.as_mut_ptr();
    super::super::scratch::with_bufs(|bufs| {
        let buf = super::super::scratch::take(&mut bufs.f32b, nb * k);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            let wb = &mut buf[..(j1 - j0) * k];
            widen(&w[j0 * k..j1 * k], wb);
            // SAFETY: columns j0..j1 of the checked m×n output; wb is (j1-j0)×k.
            unsafe { gemm_xwt(x.as_ptr(), m, k, wb.as_ptr(), j1 - j0, op.add(j0), ors) };
            j0 = j1;
        }
    });
    add_bias(bias, &mut out);
}

/// f16 weights.
pub(super) fn linear_f16(
    x: &[f32],
    w: &[f16],
    bias: Option<&[f32]>,
    out: MatMut<'_>,
    widen: fn(&[f16], &mut [f32]),
) {
    linear_widened("linear_f16", x, w, bias, out, widen)
}

/// bf16 weights.
pub(super) fn linear_bf16(
    x: &[f32],
    w: &[bf16],
    bias: Option<&[f32]>,
    out: MatMut<'_>,
    widen: fn(&[bf16], &mut [f32]),
) {
    linear_widened("linear_bf16", x, w, bias, out, widen)
}

/// Strided `out = [out +] a·b` ([`super::super::MatmulF32Fn`]).
pub(super) fn matmul_f32(a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, mut out: MatMut<'_>) {
    let (m, k, n) = matmul_dims(&a, &b, &out);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|i| out.row_mut(i).fill(0.0));
        }
        return;
    }
    let ors = out.row_stride();
    // SAFETY: MatRef::new checked that every (i, j) of a and b lies in its slice; out is m×n.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            ors as isize,
            accumulate,
            a.data().as_ptr(),
            a.col_stride() as isize,
            a.row_stride() as isize,
            b.data().as_ptr(),
            b.col_stride() as isize,
            b.row_stride() as isize,
            if accumulate { 1.0f32 } else { 0.0 },
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
