//! Criterion benches for engine ops at Whisper shapes (base: d_model 512, 8 heads of 64,
//! 1500 encoder frames; the encoder front-end convs run on 3000 mel frames).
//! The GEMM kernels have their own benches (benches/gemm.rs).
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hark_engine::ops::{self, AttentionOpts, RelPosTerm, Rows};
use hark_engine::{DType, Tensor};

fn data(n: usize, seed: u32) -> Vec<f32> {
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

fn bench_attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    g.sample_size(10);
    let (h, d) = (8, 64);
    let hd = h * d;
    // Encoder self-attention, 1500 × 1500.
    let t = 1500;
    let (q, k, v) = (data(t * hd, 1), data(t * hd, 2), data(t * hd, 3));
    let mut out = vec![0f32; t * hd];
    let opts = AttentionOpts::new(h, d);
    g.bench_function("whisper_base_encoder_self_1500", |b| {
        b.iter(|| {
            ops::attention(
                Rows::new(&q, t, hd),
                Rows::new(&k, t, hd),
                Rows::new(&v, t, hd),
                &opts,
                &mut out,
            )
            .unwrap()
        })
    });
    // Decoder step: one query against 1500 cross frames, and against 100 cached tokens.
    let mut o1 = vec![0f32; hd];
    g.bench_function("whisper_base_decoder_cross_1x1500", |b| {
        b.iter(|| {
            ops::attention(
                Rows::new(&q[..hd], 1, hd),
                Rows::new(&k, t, hd),
                Rows::new(&v, t, hd),
                &opts,
                &mut o1,
            )
            .unwrap()
        })
    });
    // Five beams attending the same cross-attention K/V in one call.
    let mut o5 = vec![0f32; 5 * hd];
    g.bench_function("whisper_base_decoder_cross_5x1500", |b| {
        b.iter(|| {
            ops::attention(
                Rows::new(&q[..5 * hd], 5, hd),
                Rows::new(&k, t, hd),
                Rows::new(&v, t, hd),
                &opts,
                &mut o5,
            )
            .unwrap()
        })
    });
    let causal = opts.causal(true);
    g.bench_function("whisper_base_decoder_self_1x100", |b| {
        b.iter(|| {
            ops::attention(
                Rows::new(&q[..hd], 1, hd),
                Rows::new(&k, 100, hd),
                Rows::new(&v, 100, hd),
                &causal,
                &mut o1,
            )
            .unwrap()
        })
    });
    // Conformer encoder self-attention with ESPnet relative positions (256 dims, 4 heads,
    // 300 frames after 4x subsampling ≈ 12 s of audio).
    let (rh, rd, rt) = (4, 64, 300);
    let rhd = rh * rd;
    let (rq, rk, rv) = (data(rt * rhd, 12), data(rt * rhd, 13), data(rt * rhd, 14));
    let rp = data((2 * rt - 1) * rhd, 15);
    let (u, vb) = (data(rhd, 16), data(rhd, 17));
    let mut ro = vec![0f32; rt * rhd];
    let rel = RelPosTerm {
        pos: Rows::new(&rp, 2 * rt - 1, rhd),
        bias_u: &u,
        bias_v: &vb,
        shift: true,
    };
    let ropts = AttentionOpts::new(rh, rd).with_rel(rel);
    g.bench_function("conformer_relpos_self_300", |b| {
        b.iter(|| {
            ops::attention(
                Rows::new(&rq, rt, rhd),
                Rows::new(&rk, rt, rhd),
                Rows::new(&rv, rt, rhd),
                &ropts,
                &mut ro,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn bench_layer_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_norm");
    for &(rows, dim) in &[(1500usize, 512usize), (1, 512), (5, 512)] {
        let x = data(rows * dim, 4);
        let gamma = data(dim, 5);
        let beta = data(dim, 6);
        let mut out = vec![0f32; rows * dim];
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{rows}x{dim}")),
            &rows,
            |b, _| {
                b.iter(|| {
                    ops::layer_norm(&x, rows, dim, &gamma, Some(&beta), 1e-5, &mut out).unwrap()
                })
            },
        );
    }
    g.finish();
}

fn bench_conv1d(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv1d");
    g.sample_size(10);
    // Whisper base: conv1 80 -> 512 (k3 s1 p1) on 3000 frames, conv2 512 -> 512 (k3 s2 p1).
    let t = 3000;
    for (name, cin, stride, dtype) in [
        ("whisper_base_conv1_f32", 80usize, 1usize, DType::F32),
        ("whisper_base_conv2_f32", 512, 2, DType::F32),
        ("whisper_base_conv2_f16", 512, 2, DType::F16),
    ] {
        let x = data(t * cin, 7);
        let w = Tensor::from_f32(&[512, cin, 3], &data(512 * cin * 3, 8))
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let bias = data(512, 9);
        let t_out = ops::conv1d_out_len(t, 3, stride, 1);
        let mut out = vec![0f32; t_out * 512];
        g.bench_function(name, |b| {
            b.iter(|| ops::conv1d(&x, t, &w, Some(&bias), stride, 1, &mut out).unwrap())
        });
    }
    g.finish();
}

fn bench_gelu_softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    let x = data(1500 * 2048, 10);
    let mut y = x.clone();
    g.bench_function("gelu_1500x2048", |b| {
        b.iter(|| {
            y.copy_from_slice(&x);
            ops::gelu(&mut y)
        })
    });
    let s = data(5 * 51864, 11);
    let mut z = s.clone();
    g.bench_function("log_softmax_5x51864", |b| {
        b.iter(|| {
            z.copy_from_slice(&s);
            ops::log_softmax(&mut z, 51864).unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_attention,
    bench_layer_norm,
    bench_conv1d,
    bench_gelu_softmax
);
criterion_main!(benches);
