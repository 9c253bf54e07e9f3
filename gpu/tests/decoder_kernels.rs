//! The decoder's skinny GEMM (`Recorder::linear_rows`, `dec_gemv.wgsl`, used for decoder
//! steps of up to 8 rows) against hark-engine's CPU linear, for f32, f16 and int8 weights,
//! 1/5/8 rows (and 9, which takes the tiled matmul), with bias, GELU and the residual
//! accumulate. k = 300 crosses the kernel's 256-wide k tile and is not a multiple of 8;
//! n = 131 leaves a partial 64-column workgroup. The other decoder kernels (embedding,
//! cache table, cache write, self-attention through the table) are checked through the
//! whole decoder step against the CPU in `whisper_decoder.rs`.
//!
//! Bound: the same as the tiled matmul's test in `kernels.rs` (max error scaled by the
//! largest CPU value <= 2e-5): both sides accumulate in f32 over the same weights, so only
//! the summation order differs (~k·ulp).

mod common;

use std::sync::Arc;

use common::{cpu_linear, ctx, rand_vec};
use hark_engine::Tensor;
use hark_gpu::kernels::{Act, GpuWeight, WeightFormat};
use hark_gpu::GpuContext;
use hark_test_support::metrics::max_scaled_err;

/// `linear_rows` with weights `w` against the CPU linear with `w_ref` (`w` dequantised).
fn case(ctx: &Arc<GpuContext>, w: &Tensor, w_ref: &Tensor, format: WeightFormat) {
    let (n, k) = (w.dim(0), w.dim(1));
    let gw = GpuWeight::upload(ctx, w).unwrap();
    assert_eq!(gw.format, format);
    for m in [1usize, 5, 8, 9] {
        for (act, acc) in [(Act::None, false), (Act::Gelu, false), (Act::None, true)] {
            let x = rand_vec(10 + m as u64, m * k, 1.0);
            let bias = rand_vec(2, n, 0.5);
            let prev = rand_vec(3, m * n, 1.0);
            let cpu = cpu_linear(&x, m, w_ref, &bias, act, acc.then_some(&prev[..]));
            let (gx, gb, gy) = (ctx.upload(&x), ctx.upload(&bias), ctx.upload(&prev));
            let mut r = ctx.recorder();
            r.linear_rows(&gx, m, &gw, Some(&gb), &gy, act, acc)
                .unwrap();
            r.submit().unwrap();
            let (e, _) = max_scaled_err("linear_rows", &ctx.download(&gy).unwrap(), &cpu);
            assert!(
                e <= 2e-5,
                "linear_rows {format:?} m={m} {act:?} acc={acc}: max scaled error {e}"
            );
        }
    }
}

#[test]
fn decoder_gemv_matches_cpu_linear_f32_f16_int8() {
    let Some(ctx) = ctx() else { return };
    let (n, k) = (131, 300);
    let wf = rand_vec(4, n * k, 0.3);
    let w = Tensor::from_f32(&[n, k], &wf).unwrap();
    case(&ctx, &w, &w, WeightFormat::F32);
    let h: Vec<half::f16> = wf.iter().map(|&v| half::f16::from_f32(v)).collect();
    let w = Tensor::from_slice(&[n, k], &h).unwrap();
    case(&ctx, &w, &w, WeightFormat::F16);
    let (q, s) = hark_engine::tensor::quantize_rows_i8(&wf, n);
    let w = Tensor::from_i8(&[n, k], &q, &s).unwrap();
    let deq: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * s[i / k])
        .collect();
    let w_ref = Tensor::from_f32(&[n, k], &deq).unwrap();
    case(&ctx, &w, &w_ref, WeightFormat::I8);
}
