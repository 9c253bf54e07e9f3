//! Convolutions on time-major activations.
//!
//! `conv1d` (Whisper's k=3 front-end, conformer pointwise convs) and `conv2d` (3×3
//! stride-2 subsampling) are computed as im2col + GEMM so they reuse the dtype-dispatched
//! GEMM: a block of output positions is unrolled into rows of `Cin·K` values ordered
//! like PyTorch's weight `[Cout, Cin, K]` (channel-major, then tap), which makes the
//! weight usable as a `[Cout, Cin·K]` matrix without reordering (zero-copy, any dtype).
//! Blocks of output rows run in parallel; each block allocates its own im2col scratch
//! (these ops run in encoders, not in decoder steps).
//!
//! `depthwise_conv1d` (conformer conv module) is a direct loop over taps.

use crate::error::{check_len, Error, Result};
use crate::ops::linear::matmul_op;
use crate::ops::SharedMut;
use crate::tensor::Tensor;
use crate::threads;

/// Output length of a conv over `len` inputs.
pub fn conv1d_out_len(len: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    if len + 2 * padding < kernel || stride == 0 {
        0
    } else {
        (len + 2 * padding - kernel) / stride + 1
    }
}

/// Output size along one axis of a conv2d (same formula as [`conv1d_out_len`]).
pub fn conv2d_out_len(len: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    conv1d_out_len(len, kernel, stride, padding)
}

const ROW_BLOCK: usize = 32;

/// 1-D convolution over time: `x` is `[t_in, c_in]`, `weight` a `[c_out, c_in, k]` tensor
/// of any weight dtype (PyTorch `Conv1d` layout), `bias` `[c_out]`, zero `padding` on
/// both sides, dilation 1. Writes `out` `[t_out, c_out]` with
/// `t_out = (t_in + 2·padding - k) / stride + 1`.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &[f32],
    t_in: usize,
    weight: &Tensor,
    bias: Option<&[f32]>,
    stride: usize,
    padding: usize,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv1d";
    if weight.rank() != 3 {
        return Err(Error::ShapeMismatch {
            what: "conv1d: weight must be [c_out, c_in, k]".into(),
            expected: vec![0, 0, 0],
            got: weight.shape().to_vec(),
        });
    }
    let (c_out, c_in, k) = (weight.dim(0), weight.dim(1), weight.dim(2));
    if stride == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: "stride must be >= 1".into(),
        });
    }
    let t_out = conv1d_out_len(t_in, k, stride, padding);
    check_len(OP, "x", x.len(), t_in * c_in)?;
    check_len(OP, "out", out.len(), t_out * c_out)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), c_out)?;
    }
    let w2 = weight.reshape(&[c_out, c_in * k])?;
    let wv = w2.weight_view()?;
    let ck = c_in * k;
    let shared = SharedMut::new(out);
    let blocks = t_out.div_ceil(ROW_BLOCK);
    let err = std::sync::Mutex::new(None);
    threads::pool().parallel_for(blocks, |blk| {
        let r0 = blk * ROW_BLOCK;
        let r1 = (r0 + ROW_BLOCK).min(t_out);
        let mut cols = vec![0f32; (r1 - r0) * ck];
        for (ri, r) in (r0..r1).enumerate() {
            let row = &mut cols[ri * ck..(ri + 1) * ck];
            for j in 0..k {
                let ti = (r * stride + j) as isize - padding as isize;
                if ti < 0 || ti as usize >= t_in {
                    continue;
                }
                let xr = &x[ti as usize * c_in..(ti as usize + 1) * c_in];
                for c in 0..c_in {
                    row[c * k + j] = xr[c];
                }
            }
        }
        // SAFETY: each block writes its own output rows.
        let o = unsafe { shared.slice(r0 * c_out, (r1 - r0) * c_out) };
        if let Err(e) = matmul_op("conv1d", &cols, r1 - r0, ck, wv, c_out, bias, o) {
            *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    match err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stride and padding of a 2-D convolution, `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Stride along (height, width).
    pub stride: (usize, usize),
    /// Zero padding along (height, width), both sides.
    pub padding: (usize, usize),
}

/// 2-D convolution, channel-major like PyTorch without the batch axis: `x` is
/// `[c_in, h, w]`, `weight` `[c_out, c_in, kh, kw]` (any weight dtype), `bias` `[c_out]`,
/// `out` `[c_out, h_out, w_out]`. Used for conformer 3×3 stride-2 subsampling, where the
/// input is the fbank `[1, frames, bins]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    c_in: usize,
    h: usize,
    w: usize,
    weight: &Tensor,
    bias: Option<&[f32]>,
    params: Conv2dParams,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "conv2d";
    if weight.rank() != 4 || weight.dim(1) != c_in {
        return Err(Error::ShapeMismatch {
            what: "conv2d: weight must be [c_out, c_in, kh, kw]".into(),
            expected: vec![weight.dim(0), c_in, weight.dim(2), weight.dim(3)],
            got: weight.shape().to_vec(),
        });
    }
    let (c_out, kh, kw) = (weight.dim(0), weight.dim(2), weight.dim(3));
    let (sh, sw) = params.stride;
    let (ph, pw) = params.padding;
    if sh == 0 || sw == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: "stride must be >= 1".into(),
        });
    }
    let ho = conv2d_out_len(h, kh, sh, ph);
    let wo = conv2d_out_len(w, kw, sw, pw);
    check_len(OP, "x", x.len(), c_in * h * w)?;
    check_len(OP, "out", out.len(), c_out * ho * wo)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), c_out)?;
    }
    let ck = c_in * kh * kw;
    let w2 = weight.reshape(&[c_out, ck])?;
    let wv = w2.weight_view()?;
    let npix = ho * wo;
    // GEMM result is pixel-major [npix, c_out]; transposed into out at the end.
    let mut tmp = vec![0f32; npix * c_out];
    let shared = SharedMut::new(&mut tmp);
    let blocks = npix.div_ceil(ROW_BLOCK);
    let err = std::sync::Mutex::new(None);
    threads::pool().parallel_for(blocks, |blk| {
        let p0 = blk * ROW_BLOCK;
        let p1 = (p0 + ROW_BLOCK).min(npix);
        let mut cols = vec![0f32; (p1 - p0) * ck];
        for (ri, p) in (p0..p1).enumerate() {
            let (oy, ox) = (p / wo, p % wo);
            let row = &mut cols[ri * ck..(ri + 1) * ck];
            for c in 0..c_in {
                for i in 0..kh {
                    let iy = (oy * sh + i) as isize - ph as isize;
                    if iy < 0 || iy as usize >= h {
                        continue;
                    }
                    for j in 0..kw {
                        let ix = (ox * sw + j) as isize - pw as isize;
                        if ix < 0 || ix as usize >= w {
                            continue;
                        }
                        row[(c * kh + i) * kw + j] = x[(c * h + iy as usize) * w + ix as usize];
                    }
                }
            }
        }
        // SAFETY: each block writes its own pixel rows.
        let o = unsafe { shared.slice(p0 * c_out, (p1 - p0) * c_out) };
        if let Err(e) = matmul_op("conv2d", &cols, p1 - p0, ck, wv, c_out, None, o) {
            *err.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    if let Some(e) = err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    for co in 0..c_out {
        let b = bias.map_or(0.0, |b| b[co]);
        let orow = &mut out[co * npix..(co + 1) * npix];
        for (p, o) in orow.iter_mut().enumerate() {
            *o = tmp[p * c_out + co] + b;
        }
    }
    Ok(())
}

/// Depthwise 1-D convolution over time (stride 1): `x` is `[t_in, c]`, `weight` `[c, k]`
/// f32 (PyTorch `[c, 1, k]` flattened), `bias` `[c]`; `pad_left` / `pad_right` zeros
/// (symmetric `(k-1)/2` each, or causal `k-1, 0`). `out` is `[t_in + pad_left + pad_right
/// - k + 1, c]`.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv1d(
    x: &[f32],
    t_in: usize,
    c: usize,
    weight: &[f32],
    k: usize,
    bias: Option<&[f32]>,
    pad_left: usize,
    pad_right: usize,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "depthwise_conv1d";
    if t_in + pad_left + pad_right < k || k == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            reason: format!("input of {t_in} frames is shorter than the kernel {k}"),
        });
    }
    let t_out = t_in + pad_left + pad_right + 1 - k;
    check_len(OP, "x", x.len(), t_in * c)?;
    check_len(OP, "weight", weight.len(), c * k)?;
    check_len(OP, "out", out.len(), t_out * c)?;
    if let Some(b) = bias {
        check_len(OP, "bias", b.len(), c)?;
    }
    for t in 0..t_out {
        let orow = &mut out[t * c..(t + 1) * c];
        match bias {
            Some(b) => orow.copy_from_slice(b),
            None => orow.fill(0.0),
        }
        for j in 0..k {
            let ti = (t + j) as isize - pad_left as isize;
            if ti < 0 || ti as usize >= t_in {
                continue;
            }
            let xr = &x[ti as usize * c..(ti as usize + 1) * c];
            for ch in 0..c {
                orow[ch] += weight[ch * k + j] * xr[ch];
            }
        }
    }
    Ok(())
}
