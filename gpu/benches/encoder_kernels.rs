//! Every GPU kernel of the Whisper tiny.en encoder at its real shapes (1500 positions,
//! d 384, 6 heads of 64, MLP 1536, 80 mels; openai-whisper `model.py` `AudioEncoder`),
//! timed one dispatch at a time (record, submit, wait), so the per-kernel costs of a
//! 30 s window can be read off and multiplied by how often the encoder runs each one.
//!
//! * `gpu_encoder/linear/<layer> n×k/m<M>/<f16|f32|i8>`: `x[M×k]·Wᵀ + b` with the fused
//!   epilogue the encoder uses; throughput in elements = FLOPs (2·M·n·k), so criterion's
//!   "Gelem/s" reads as GFLOP/s.
//! * `gpu_encoder/attention/1500x1500 6x64`: fused attention (QKV read in place from a
//!   `[1500, 3·384]` buffer); elements = 4·tq·tk·d FLOPs.
//! * `gpu_encoder/{layer_norm,gelu,add,im2col_conv1,im2col_conv2}`: elements = values.
//!
//! Weights are random (the speed does not depend on them). On lavapipe (software Vulkan)
//! one matmul takes seconds; `HARK_GPU_BENCH_QUICK=1 cargo bench -p hark-gpu --bench
//! encoder_kernels` skips criterion and prints the time of one warm run per kernel plus the
//! encoder's per-window total per kernel type (the profile used to pick what to optimise);
//! any other value than `1` keeps only the kernels whose name contains it (`=f16`).
//! Without an adapter the bench prints a message and does nothing.

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hark_engine::Tensor;
use hark_gpu::kernels::{Act, GpuWeight, RowView};
use hark_gpu::{DevicePreference, GpuContext};

const T: usize = 1500;
const D: usize = 384;
const HEADS: usize = 6;
const MELS: usize = 80;
const LAYERS: usize = 4;

fn pseudo(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32)
        .map(|v| (v / (1u32 << 24) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

fn weight(ctx: &GpuContext, n: usize, k: usize, fmt: &str) -> GpuWeight {
    let v = pseudo(n * k, 7, 0.05);
    let t = match fmt {
        "f32" => Tensor::from_f32(&[n, k], &v).expect("f32 weight"),
        "i8" => {
            let q: Vec<i8> = v.iter().map(|x| (x * 2540.0) as i8).collect();
            Tensor::from_i8(&[n, k], &q, &vec![0.05 / 127.0; n]).expect("int8 weight")
        }
        _ => {
            let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
            Tensor::from_slice(&[n, k], &h).expect("f16 weight")
        }
    };
    GpuWeight::upload(ctx, &t).expect("upload weight")
}

/// One kernel case: its name, how many times a tiny.en window runs it, its element
/// count for the throughput, and a closure that records it.
struct Case {
    name: String,
    per_window: usize,
    elems: u64,
    run: Box<dyn Fn(&GpuContext)>,
}

fn time_one(ctx: &GpuContext, c: &Case) -> Duration {
    let t0 = Instant::now();
    (c.run)(ctx);
    ctx.wait().expect("kernel ran");
    t0.elapsed()
}

fn cases(ctx: &Arc<GpuContext>, formats: &[&'static str]) -> Vec<Case> {
    let mut out = Vec::new();
    let x = ctx.upload(&pseudo(T * 4 * D, 3, 1.0));
    let col = ctx.upload(&pseudo(2 * T * D * 3, 5, 1.0));
    let y = ctx.zeros(2 * T * 4 * D);
    let bias = ctx.upload(&pseudo(4 * D, 9, 0.1));
    // (name, M, n, k, act, accumulate, per window)
    let linears: [(&str, usize, usize, usize, Act, bool, usize); 6] = [
        ("conv1 384x240", 2 * T, D, MELS * 3, Act::Gelu, false, 1),
        ("conv2 384x1152", T, D, D * 3, Act::Gelu, false, 1),
        ("qkv 1152x384", T, 3 * D, D, Act::None, false, LAYERS),
        ("out 384x384", T, D, D, Act::None, true, LAYERS),
        ("fc1 1536x384", T, 4 * D, D, Act::Gelu, false, LAYERS),
        ("fc2 384x1536", T, D, 4 * D, Act::None, true, LAYERS),
    ];
    for fmt in formats {
        for (name, m, n, k, act, acc, per_window) in linears {
            let w = weight(ctx, n, k, fmt);
            let (x, b, y, src) = (x.clone(), bias.clone(), y.clone(), col.clone());
            let input = if name.starts_with("conv") { src } else { x };
            out.push(Case {
                name: format!("linear/{name}/m{m}/{fmt}"),
                per_window,
                elems: (2 * m * n * k) as u64,
                run: Box::new(move |ctx| {
                    let mut r = ctx.recorder();
                    r.linear(&input, m, &w, Some(&b), &y, act, acc)
                        .expect("linear");
                    r.submit().expect("submit");
                }),
            });
        }
    }
    let qkv = ctx.upload(&pseudo(T * 3 * D, 11, 1.0));
    let o = ctx.zeros(T * D);
    out.push(Case {
        name: format!("attention/{T}x{T} {HEADS}x{}", D / HEADS),
        per_window: LAYERS,
        elems: (4 * T * T * D) as u64,
        run: Box::new(move |ctx| {
            let v = |offset| RowView {
                buf: &qkv,
                offset,
                stride: 3 * D,
            };
            let hd = D / HEADS;
            let mut r = ctx.recorder();
            r.attention(
                v(0),
                T,
                v(D),
                v(2 * D),
                T,
                HEADS,
                hd,
                1.0 / (hd as f32).sqrt(),
                &o,
            )
            .expect("attention");
            r.submit().expect("submit");
        }),
    });
    let g = ctx.upload(&pseudo(D, 13, 1.0));
    let (xl, yl, gl) = (x.clone(), y.clone(), g.clone());
    out.push(Case {
        name: format!("layer_norm/{T}x{D}"),
        per_window: 2 * LAYERS + 1,
        elems: (T * D) as u64,
        run: Box::new(move |ctx| {
            let mut r = ctx.recorder();
            r.layer_norm(&xl, T, D, &gl, &gl, 1e-5, &yl)
                .expect("layer_norm");
            r.submit().expect("submit");
        }),
    });
    let yg = y.clone();
    out.push(Case {
        name: format!("gelu/{}", T * 4 * D),
        per_window: 0, // fused into the matmul epilogues in the encoder
        elems: (T * 4 * D) as u64,
        run: Box::new(move |ctx| {
            let mut r = ctx.recorder();
            r.gelu(&yg, T * 4 * D).expect("gelu");
            r.submit().expect("submit");
        }),
    });
    let (ya, xa) = (y.clone(), x.clone());
    out.push(Case {
        name: format!("add/{}", T * D),
        per_window: 1,
        elems: (T * D) as u64,
        run: Box::new(move |ctx| {
            let mut r = ctx.recorder();
            r.add(&ya, &xa, T * D).expect("add");
            r.submit().expect("submit");
        }),
    });
    let (xm, cm) = (x.clone(), col.clone());
    out.push(Case {
        name: format!("im2col_conv1/{MELS}x{}", 2 * T),
        per_window: 1,
        elems: (2 * T * MELS * 3) as u64,
        run: Box::new(move |ctx| {
            let mut r = ctx.recorder();
            r.im2col(&xm, 2 * T, MELS, (1, 2 * T), 3, 1, 1, &cm)
                .expect("im2col");
            r.submit().expect("submit");
        }),
    });
    let (xc, cc) = (y.clone(), col.clone());
    out.push(Case {
        name: format!("im2col_conv2/{}x{D}", 2 * T),
        per_window: 1,
        elems: (T * D * 3) as u64,
        run: Box::new(move |ctx| {
            let mut r = ctx.recorder();
            r.im2col(&xc, 2 * T, D, (D, 1), 3, 2, 1, &cc)
                .expect("im2col");
            r.submit().expect("submit");
        }),
    });
    out
}

fn quick(ctx: &Arc<GpuContext>, filter: &str) {
    println!("adapter: {:?}", ctx.adapter());
    let mut total = Duration::ZERO;
    for c in cases(ctx, &["f16", "f32", "i8"]) {
        if !c.name.contains(filter) {
            continue;
        }
        time_one(ctx, &c); // compile + warm up
        let t = time_one(ctx, &c);
        let rate = c.elems as f64 / t.as_secs_f64() / 1e9;
        let f16ish = !c.name.contains("/f32") && !c.name.contains("/i8");
        let window = t * c.per_window as u32;
        if f16ish {
            total += window;
        }
        println!(
            "{:<40} {:>9.1} ms  {:>7.2} G/s  x{} per window = {:>8.1} ms",
            c.name,
            t.as_secs_f64() * 1e3,
            rate,
            c.per_window,
            window.as_secs_f64() * 1e3
        );
    }
    println!(
        "tiny.en f16 window (sum of kernels): {:.2} s",
        total.as_secs_f64()
    );
}

fn main() {
    let ctx = match GpuContext::new(DevicePreference::Any) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipping: {e}");
            return;
        }
    };
    if let Ok(v) = std::env::var("HARK_GPU_BENCH_QUICK") {
        quick(&ctx, if v == "1" { "" } else { &v });
        return;
    }
    let mut cr = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    let mut g = cr.benchmark_group("gpu_encoder");
    for c in cases(&ctx, &["f16", "f32", "i8"]) {
        g.throughput(Throughput::Elements(c.elems));
        g.bench_function(&c.name, |b| {
            b.iter(|| {
                (c.run)(&ctx);
                ctx.wait().expect("kernel ran");
            })
        });
    }
    g.finish();
    cr.final_summary();
}
