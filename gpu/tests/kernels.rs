//! Each GPU kernel against hark-engine's CPU op on random inputs (small shapes: lavapipe
//! is slow). Tolerances are relative to the output's scale: both sides accumulate in f32
//! but in different orders, and the GPU's exp/sqrt may differ from the CPU's by a few ulp.
//! Skips (with a message) when there is no adapter at all.

mod common;

use std::sync::Arc;

use common::{cpu_linear, ctx, rand_vec};
use hark_engine::ops;
use hark_engine::Tensor;
use hark_gpu::kernels::{Act, GpuWeight, RowView, WeightFormat};
use hark_gpu::GpuContext;
use hark_test_support::metrics::assert_max_scaled_err as assert_close;

/// GPU linear with weights `w` against hark-engine's linear with the same weights
/// dequantised to f32 (`w_ref`). For f32/f16 `w_ref` is `w` itself; for int8 it is
/// `q·scale`, because hark-engine's int8 CPU kernel also quantises the activations
/// (CTranslate2's scheme) while the shader keeps them f32.
fn linear_case(
    ctx: &Arc<GpuContext>,
    w: &Tensor,
    w_ref: &Tensor,
    format: WeightFormat,
    act: Act,
    acc: bool,
) {
    let (n, k) = (w.dim(0), w.dim(1));
    let m = 37;
    let x = rand_vec(1, m * k, 1.0);
    let bias = rand_vec(2, n, 0.5);
    let prev = rand_vec(3, m * n, 1.0);
    let cpu = cpu_linear(&x, m, w_ref, &bias, act, acc.then_some(&prev[..]));
    let gw = GpuWeight::upload(ctx, w).unwrap();
    assert_eq!(gw.format, format);
    let (gx, gb, gy) = (ctx.upload(&x), ctx.upload(&bias), ctx.upload(&prev));
    let mut r = ctx.recorder();
    r.linear(&gx, m, &gw, Some(&gb), &gy, act, acc).unwrap();
    r.submit().unwrap();
    let gpu = ctx.download(&gy).unwrap();
    assert_close(
        &format!("linear {format:?} {act:?} acc={acc}"),
        &gpu,
        &cpu,
        2e-5,
    );
}

#[test]
fn tiled_matmul_f32_weights_matches_cpu_linear() {
    let Some(ctx) = ctx() else { return };
    // k = 70 (not a multiple of the 16-wide K tile or of 4), n = 131 (3 column tiles).
    let w = Tensor::from_f32(&[131, 70], &rand_vec(4, 131 * 70, 0.3)).unwrap();
    linear_case(&ctx, &w, &w, WeightFormat::F32, Act::None, false);
    linear_case(&ctx, &w, &w, WeightFormat::F32, Act::Gelu, true);
}

#[test]
fn tiled_matmul_f16_weights_dequantised_in_shader_matches_cpu_linear() {
    let Some(ctx) = ctx() else { return };
    let v: Vec<half::f16> = rand_vec(5, 67 * 70, 0.3)
        .into_iter()
        .map(half::f16::from_f32)
        .collect();
    let w = Tensor::from_slice(&[67, 70], &v).unwrap();
    linear_case(&ctx, &w, &w, WeightFormat::F16, Act::None, false);
    linear_case(&ctx, &w, &w, WeightFormat::F16, Act::Gelu, true);
}

#[test]
fn tiled_matmul_int8_weights_with_row_scales_matches_cpu_linear() {
    let Some(ctx) = ctx() else { return };
    let wf = rand_vec(6, 67 * 70, 0.3);
    let (q, s) = hark_engine::tensor::quantize_rows_i8(&wf, 67);
    let w = Tensor::from_i8(&[67, 70], &q, &s).unwrap();
    let deq: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f32 * s[i / 70])
        .collect();
    let w_ref = Tensor::from_f32(&[67, 70], &deq).unwrap();
    linear_case(&ctx, &w, &w_ref, WeightFormat::I8, Act::None, false);
    linear_case(&ctx, &w, &w_ref, WeightFormat::I8, Act::Gelu, true);
}

/// k = 72 (a multiple of 4) takes the shader variant that reads the activations as
/// vec4s (`matmul_source(.., x_vec4: true)`), which the k = 70 cases above never reach;
/// n = 67 leaves a partial 8-column tile. Every weight format.
#[test]
fn tiled_matmul_vec4_activation_path_matches_cpu_linear_for_every_weight_format() {
    let Some(ctx) = ctx() else { return };
    let (n, k) = (67, 72);
    let wf = rand_vec(13, n * k, 0.3);
    let w32 = Tensor::from_f32(&[n, k], &wf).unwrap();
    linear_case(&ctx, &w32, &w32, WeightFormat::F32, Act::Gelu, true);
    let v: Vec<half::f16> = wf.iter().map(|&x| half::f16::from_f32(x)).collect();
    let w16 = Tensor::from_slice(&[n, k], &v).unwrap();
    linear_case(&ctx, &w16, &w16, WeightFormat::F16, Act::None, false);
    let (q, sc) = hark_engine::tensor::quantize_rows_i8(&wf, n);
    let w8 = Tensor::from_i8(&[n, k], &q, &sc).unwrap();
    let deq: Vec<f32> = q
        .iter()
        .enumerate()
        .map(|(i, &x)| x as f32 * sc[i / k])
        .collect();
    let w8_ref = Tensor::from_f32(&[n, k], &deq).unwrap();
    linear_case(&ctx, &w8, &w8_ref, WeightFormat::I8, Act::None, true);
}

#[test]
fn layer_norm_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    let (rows, dim) = (5, 300);
    let x: Vec<f32> = rand_vec(7, rows * dim, 2.0)
        .iter()
        .map(|v| v + 3.0)
        .collect();
    let g = rand_vec(8, dim, 1.0);
    let b = rand_vec(9, dim, 1.0);
    let mut cpu = vec![0f32; rows * dim];
    ops::layer_norm(&x, rows, dim, &g, Some(&b), 1e-5, &mut cpu).unwrap();
    let (gx, gg, gb, gy) = (
        ctx.upload(&x),
        ctx.upload(&g),
        ctx.upload(&b),
        ctx.zeros(rows * dim),
    );
    let mut r = ctx.recorder();
    r.layer_norm(&gx, rows, dim, &gg, &gb, 1e-5, &gy).unwrap();
    r.submit().unwrap();
    assert_close("layer_norm", &ctx.download(&gy).unwrap(), &cpu, 1e-5);
}

#[test]
fn softmax_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    let (rows, cols) = (4, 517);
    let x = rand_vec(10, rows * cols, 8.0);
    let mut cpu = x.clone();
    ops::softmax(&mut cpu, cols).unwrap();
    let gx = ctx.upload(&x);
    let mut r = ctx.recorder();
    r.softmax(&gx, rows, cols).unwrap();
    r.submit().unwrap();
    assert_close("softmax", &ctx.download(&gx).unwrap(), &cpu, 1e-6);
}

#[test]
fn gelu_silu_glu_add_match_cpu() {
    let Some(ctx) = ctx() else { return };
    let n = 1000;
    let x = rand_vec(11, n, 6.0);
    let b = rand_vec(12, n, 1.0);
    let (mut g, mut s, mut a) = (x.clone(), x.clone(), x.clone());
    ops::gelu(&mut g);
    ops::silu(&mut s);
    ops::add(&mut a, &b).unwrap();
    let mut glu = vec![0f32; n / 2];
    ops::glu(&x, 10, 50, &mut glu).unwrap();
    let (gg, gs, ga, gb, gx, gglu) = (
        ctx.upload(&x),
        ctx.upload(&x),
        ctx.upload(&x),
        ctx.upload(&b),
        ctx.upload(&x),
        ctx.zeros(n / 2),
    );
    let mut r = ctx.recorder();
    r.gelu(&gg, n).unwrap();
    r.silu(&gs, n).unwrap();
    r.add(&ga, &gb, n).unwrap();
    r.glu(&gx, 10, 50, &gglu).unwrap();
    r.submit().unwrap();
    assert_close("gelu", &ctx.download(&gg).unwrap(), &g, 2e-6);
    assert_close("silu", &ctx.download(&gs).unwrap(), &s, 2e-6);
    assert_close("add", &ctx.download(&ga).unwrap(), &a, 0.0);
    assert_close("glu", &ctx.download(&gglu).unwrap(), &glu, 2e-6);
}

/// Whisper's two convolutions: k 3, padding 1, stride 1 then stride 2, as im2col + GEMM,
/// against hark-engine's conv1d (input `[t, c_in]`).
#[test]
fn conv1d_stride_1_and_2_match_cpu() {
    let Some(ctx) = ctx() else { return };
    let (t, cin, cout) = (41, 12, 20);
    let x = rand_vec(13, t * cin, 1.0);
    let bias = rand_vec(14, cout, 0.5);
    let wv: Vec<half::f16> = rand_vec(15, cout * cin * 3, 0.4)
        .into_iter()
        .map(half::f16::from_f32)
        .collect();
    let w = Tensor::from_slice(&[cout, cin, 3], &wv).unwrap();
    let gw = GpuWeight::upload(&ctx, &w.reshape(&[cout, cin * 3]).unwrap()).unwrap();
    let (gx, gb) = (ctx.upload(&x), ctx.upload(&bias));
    for stride in [1, 2] {
        let t_out = ops::conv1d_out_len(t, 3, stride, 1);
        let mut cpu = vec![0f32; t_out * cout];
        ops::conv1d(&x, t, &w, Some(&bias), stride, 1, &mut cpu).unwrap();
        let col = ctx.zeros(t_out * cin * 3);
        let gy = ctx.zeros(t_out * cout);
        let mut r = ctx.recorder();
        let n = r.im2col(&gx, t, cin, (cin, 1), 3, stride, 1, &col).unwrap();
        assert_eq!(n, t_out);
        r.linear(&col, t_out, &gw, Some(&gb), &gy, Act::None, false)
            .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("conv1d stride {stride}"),
            &ctx.download(&gy).unwrap(),
            &cpu,
            2e-5,
        );
    }
}

#[test]
fn depthwise_conv1d_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    let (t, c, k) = (33, 24, 15);
    let x = rand_vec(16, t * c, 1.0);
    let w = rand_vec(17, c * k, 0.4);
    let b = rand_vec(18, c, 0.5);
    for pads in [(7, 7), (14, 0)] {
        let t_out = t + pads.0 + pads.1 + 1 - k;
        let mut cpu = vec![0f32; t_out * c];
        ops::depthwise_conv1d(&x, t, c, &w, k, Some(&b), pads.0, pads.1, &mut cpu).unwrap();
        let (gx, gw, gb, gy) = (
            ctx.upload(&x),
            ctx.upload(&w),
            ctx.upload(&b),
            ctx.zeros(t_out * c),
        );
        let mut r = ctx.recorder();
        r.depthwise_conv1d(&gx, t, c, &gw, k, Some(&gb), pads, &gy)
            .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("depthwise pads {pads:?}"),
            &ctx.download(&gy).unwrap(),
            &cpu,
            1e-5,
        );
    }
}

/// Fused attention reading Q, K and V in place from a fused QKV buffer `[t, 3d]`, with
/// key counts that are not multiples of the 8-key tile, more queries than one workgroup,
/// head dims of one (16, 48, 64) and two column slices (128), more keys than one 256-key
/// chunk (the running softmax state carried between dispatches).
#[test]
fn fused_attention_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    for (t, heads, hd) in [
        (70, 3, 16),
        (21, 2, 64),
        (600, 1, 64),
        (300, 2, 48),
        (70, 2, 128),
    ] {
        let d = heads * hd;
        let qkv = rand_vec(19 + t as u64, t * 3 * d, 2.0);
        let mut cpu = vec![0f32; t * d];
        ops::attention(
            ops::Rows::new(&qkv, t, 3 * d),
            ops::Rows::new(&qkv, t, 3 * d).with_col(d),
            ops::Rows::new(&qkv, t, 3 * d).with_col(2 * d),
            &ops::AttentionOpts::new(heads, hd),
            &mut cpu,
        )
        .unwrap();
        let g = ctx.upload(&qkv);
        let out = ctx.zeros(t * d);
        let view = |offset| RowView {
            buf: &g,
            offset,
            stride: 3 * d,
        };
        let mut r = ctx.recorder();
        let scale = 1.0 / (hd as f32).sqrt();
        r.attention(view(0), t, view(d), view(2 * d), t, heads, hd, scale, &out)
            .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("attention t {t} heads {heads} hd {hd}"),
            &ctx.download(&out).unwrap(),
            &cpu,
            1e-5,
        );
    }
}

#[test]
fn probe_lists_the_adapter_the_context_opens() {
    let Some(ctx) = ctx() else { return };
    let found = hark_gpu::probe();
    assert!(
        found.iter().any(|a| a.name == ctx.adapter().name),
        "{found:?} does not list {:?}",
        ctx.adapter()
    );
}

/// The conformer's epilogues: ReLU and SiLU fused into the GEMM, and a scale `alpha`
/// applied before the residual add (`x + ½·FFN(x)`), against the engine's linear,
/// activation and add.
#[test]
fn tiled_matmul_relu_silu_and_scaled_residual_match_cpu() {
    let Some(ctx) = ctx() else { return };
    let (m, n, k) = (45, 70, 37);
    let w = Tensor::from_f32(&[n, k], &rand_vec(30, n * k, 0.4)).unwrap();
    let x = rand_vec(31, m * k, 1.0);
    let bias = rand_vec(32, n, 0.5);
    let prev = rand_vec(33, m * n, 1.0);
    let gw = GpuWeight::upload(&ctx, &w).unwrap();
    for (act, alpha, acc) in [
        (Act::Relu, 1.0f32, false),
        (Act::Silu, 1.0, false),
        (Act::None, 0.5, true),
        (Act::Silu, 2.5, true),
    ] {
        let mut cpu = vec![0f32; m * n];
        ops::linear(&x, m, &w, Some(&bias), &mut cpu).unwrap();
        match act {
            Act::Relu => ops::relu(&mut cpu),
            Act::Silu => ops::silu(&mut cpu),
            _ => {}
        }
        cpu.iter_mut().for_each(|v| *v *= alpha);
        if acc {
            ops::add(&mut cpu, &prev).unwrap();
        }
        let (gx, gb, gy) = (ctx.upload(&x), ctx.upload(&bias), ctx.upload(&prev));
        let mut r = ctx.recorder();
        r.linear_scaled(&gx, m, &gw, Some(&gb), &gy, act, alpha, acc)
            .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("linear {act:?} alpha {alpha} acc {acc}"),
            &ctx.download(&gy).unwrap(),
            &cpu,
            2e-5,
        );
    }
}

#[test]
fn relu_clear_and_copy_match_cpu() {
    let Some(ctx) = ctx() else { return };
    let n = 1000;
    let x = rand_vec(34, n, 2.0);
    let mut cpu = x.clone();
    ops::relu(&mut cpu);
    let g = ctx.upload(&x);
    let dst = ctx.upload(&rand_vec(35, n, 1.0));
    let mut r = ctx.recorder();
    r.relu(&g, n).unwrap();
    r.clear(&g, 600, 300).unwrap();
    r.copy(&g, &dst, n).unwrap();
    r.submit().unwrap();
    cpu[600..900].fill(0.0);
    assert_close(
        "relu + clear + copy",
        &ctx.download(&dst).unwrap(),
        &cpu,
        0.0,
    );
}

/// 2-D convolution as im2col2d + the tiled GEMM (channel-last, ReLU-free) against the
/// engine's channel-major conv2d, for the conformer subsampling's shapes: a 1-channel
/// 3×3 stride-2 map and a multi-channel 5×5 stride-3 one (×6 subsampling).
#[test]
fn conv2d_as_im2col2d_and_gemm_matches_cpu_conv2d() {
    let Some(ctx) = ctx() else { return };
    for (t, f, cin, cout, k, s) in [
        (29usize, 23usize, 1usize, 8usize, 3usize, 2usize),
        (17, 14, 6, 5, 5, 3),
    ] {
        // Channel-last input [t, f, cin] and its channel-major copy [cin, t, f].
        let x = rand_vec(40 + k as u64, t * f * cin, 1.0);
        let mut xcm = vec![0f32; x.len()];
        for ti in 0..t {
            for fi in 0..f {
                for c in 0..cin {
                    xcm[(c * t + ti) * f + fi] = x[(ti * f + fi) * cin + c];
                }
            }
        }
        let wv = rand_vec(50 + k as u64, cout * cin * k * k, 0.3);
        let w4 = Tensor::from_f32(&[cout, cin, k, k], &wv).unwrap();
        let b = rand_vec(60, cout, 0.5);
        let (to, fo) = ((t - k) / s + 1, (f - k) / s + 1);
        let mut cpu = vec![0f32; cout * to * fo];
        ops::conv2d(
            &xcm,
            cin,
            t,
            f,
            &w4,
            Some(&b),
            ops::Conv2dParams {
                stride: (s, s),
                padding: (0, 0),
            },
            &mut cpu,
        )
        .unwrap();
        // Channel-last view of the CPU result.
        let mut want = vec![0f32; cpu.len()];
        for c in 0..cout {
            for p in 0..to * fo {
                want[p * cout + c] = cpu[c * to * fo + p];
            }
        }
        let w2 = Tensor::from_f32(&[cout, cin * k * k], &wv).unwrap();
        let gw = GpuWeight::upload(&ctx, &w2).unwrap();
        let (gx, gb) = (ctx.upload(&x), ctx.upload(&b));
        let col = ctx.zeros(to * fo * cin * k * k);
        let out = ctx.zeros(to * fo * cout);
        let mut r = ctx.recorder();
        let got = r.im2col2d(&gx, (t, f, cin), k, s, &col).unwrap();
        assert_eq!(got, (to, fo));
        r.linear(&col, to * fo, &gw, Some(&gb), &out, Act::None, false)
            .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("conv2d k {k} s {s} cin {cin}"),
            &ctx.download(&out).unwrap(),
            &want,
            1e-5,
        );
    }
}

/// Relative-position attention (pos_bias_u/v, with rel_shift over 2t-1 rows and without
/// over t rows, padded keys masked) against the engine's attention with a `RelPosTerm`
/// and an additive mask, as the CPU conformer encoder calls it.
#[test]
fn rel_pos_attention_matches_cpu_with_and_without_rel_shift() {
    let Some(ctx) = ctx() else { return };
    for (t, heads, hd, valid, shift) in [
        (37usize, 4usize, 24usize, 37usize, true),
        (50, 2, 16, 41, true),
        (29, 4, 4, 23, false),
        (1, 2, 8, 1, true),
        // A 24 s utterance at x4 subsampling: long key loops in one dispatch.
        (600, 2, 16, 590, true),
    ] {
        let d = heads * hd;
        let np = if shift { 2 * t - 1 } else { t };
        let s = 100 + t as u64;
        let (q, k, v) = (
            rand_vec(s, t * d, 1.5),
            rand_vec(s + 1, t * d, 1.5),
            rand_vec(s + 2, t * d, 1.0),
        );
        let p = rand_vec(s + 3, np * d, 1.0);
        let (bu, bv) = (rand_vec(s + 4, d, 0.5), rand_vec(s + 5, d, 0.5));
        let mask: Vec<f32> = (0..t * t)
            .map(|ij| {
                if ij % t < valid {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let opts = ops::AttentionOpts::new(heads, hd)
            .with_rel(ops::RelPosTerm {
                pos: ops::Rows::new(&p, np, d),
                bias_u: &bu,
                bias_v: &bv,
                shift,
            })
            .with_mask(&mask);
        let mut cpu = vec![0f32; t * d];
        ops::attention(
            ops::Rows::new(&q, t, d),
            ops::Rows::new(&k, t, d),
            ops::Rows::new(&v, t, d),
            &opts,
            &mut cpu,
        )
        .unwrap();
        let (gq, gk, gv, gp, gu, gbv) = (
            ctx.upload(&q),
            ctx.upload(&k),
            ctx.upload(&v),
            ctx.upload(&p),
            ctx.upload(&bu),
            ctx.upload(&bv),
        );
        let scores = ctx.zeros(heads * t * t);
        let out = ctx.zeros(t * d);
        let mut r = ctx.recorder();
        r.rel_pos_attention(
            (&gq, &gk, &gv),
            &gp,
            np,
            (&gu, &gbv),
            (t, heads, hd),
            (valid, shift, 1.0 / (hd as f32).sqrt()),
            &scores,
            &out,
        )
        .unwrap();
        r.submit().unwrap();
        assert_close(
            &format!("rel-pos attention t {t} heads {heads} hd {hd} valid {valid} shift {shift}"),
            &ctx.download(&out).unwrap(),
            &cpu,
            1e-5,
        );
    }
}
