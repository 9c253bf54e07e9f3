//! Linear-layer kernels at the real model shapes, per weight dtype, plus the machine's
//! limits they are judged against.
//!
//! * `linear/<model>/<layer> n×k/m<M>/<dtype>[_2t]`: `out[M×n] = x[M×k]·W[n×k]ᵀ + b` with the
//!   process-wide kernel table (`HARK_ISA` respected). Throughput is reported in elements =
//!   FLOPs (2·M·n·k), i.e. criterion's "Gelem/s" reads as GFLOP/s. `_2t` splits N (M ≤ 5) or
//!   M (M = 1500) over the engine's 2-thread pool.
//! * `machine/read_bw`: sum over a 256 MiB buffer (bytes/s = streaming read bandwidth, the
//!   bound for M = 1 decoding, which reads every weight once).
//! * `machine/fma_peak`: 12 independent AVX-512 (or AVX2) FMA chains: the f32 FLOP/s ceiling.
//!
//! `scripts/kernels/gemm_table.py` turns `target/criterion` into the README table.
//! Shapes: Whisper tiny/base (openai/whisper `model.py`: d_model 384/512, MLP 4·d, vocab
//! 51864), FireRedASR-AED-L (d_model 1280, d_inner 5120, vocab 7832).

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use half::{bf16, f16};
use hark_engine::kernels::{kernels, MatMut, MatRef, Weights};
use hark_engine::threads::ThreadPool;

struct Layer {
    model: &'static str,
    name: &'static str,
    n: usize,
    k: usize,
    encoder: bool,
}

const fn l(model: &'static str, name: &'static str, n: usize, k: usize, encoder: bool) -> Layer {
    Layer {
        model,
        name,
        n,
        k,
        encoder,
    }
}

const LAYERS: &[Layer] = &[
    l("whisper-tiny", "attn", 384, 384, true),
    l("whisper-tiny", "fc1", 1536, 384, true),
    l("whisper-tiny", "fc2", 384, 1536, true),
    l("whisper-tiny", "vocab", 51864, 384, false),
    l("whisper-base", "attn", 512, 512, true),
    l("whisper-base", "fc1", 2048, 512, true),
    l("whisper-base", "fc2", 512, 2048, true),
    l("whisper-base", "vocab", 51864, 512, false),
    l("fireredasr-aed-l", "attn", 1280, 1280, true),
    l("fireredasr-aed-l", "fc1", 5120, 1280, true),
    l("fireredasr-aed-l", "fc2", 1280, 5120, true),
    l("fireredasr-aed-l", "vocab", 7832, 1280, false),
];

fn fill(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

struct Owned {
    f32: Vec<f32>,
    f16: Vec<f16>,
    bf16: Vec<bf16>,
    q: Vec<i8>,
    scales: Vec<f32>,
}

impl Owned {
    fn new(n: usize, k: usize) -> Owned {
        let f = fill(n * k, 11, 0.05);
        Owned {
            f16: f.iter().map(|&v| f16::from_f32(v)).collect(),
            bf16: f.iter().map(|&v| bf16::from_f32(v)).collect(),
            q: f.iter()
                .map(|&v| (v / 0.05 * 127.0).round() as i8)
                .collect(),
            scales: vec![0.05 / 127.0; n],
            f32: f,
        }
    }
    fn get(&self, dtype: &str) -> Weights<'_> {
        match dtype {
            "f32" => Weights::F32(&self.f32),
            "f16" => Weights::F16(&self.f16),
            "bf16" => Weights::Bf16(&self.bf16),
            _ => Weights::I8 {
                q: &self.q,
                scales: &self.scales,
            },
        }
    }
}

/// Runs one linear layer on 2 threads: N split in 2 (aligned to 16) for decode-sized M,
/// M split in 2 otherwise.
#[allow(clippy::too_many_arguments)]
fn linear_2t(
    pool: &ThreadPool,
    x: &[f32],
    w: Weights<'_>,
    bias: &[f32],
    out: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    let kern = kernels();
    let view = MatMut::from_slice(out, m, n);
    if m <= 6 {
        let at = (n / 2).div_ceil(16) * 16;
        let (a, b) = view.split_cols(at.min(n));
        let parts = [Mutex::new(Some(a)), Mutex::new(Some(b))];
        pool.parallel_for(2, |t| {
            let Some(o) = parts[t].lock().ok().and_then(|mut p| p.take()) else {
                return;
            };
            let (n0, n1) = if t == 0 { (0, at) } else { (at, n) };
            kern.linear(x, w.rows(k, n0, n1), Some(&bias[n0..n1]), o);
        });
    } else {
        let at = m / 2;
        let (a, b) = view.split_rows(at);
        let parts = [Mutex::new(Some(a)), Mutex::new(Some(b))];
        pool.parallel_for(2, |t| {
            let Some(o) = parts[t].lock().ok().and_then(|mut p| p.take()) else {
                return;
            };
            let xs = if t == 0 { &x[..at * k] } else { &x[at * k..] };
            kern.linear(xs, w, Some(bias), o);
        });
    }
}

fn bench_linear(c: &mut Criterion) {
    let pool = ThreadPool::new(2);
    let kern = kernels();
    eprintln!("kernel table: {:?}", kern.isa);
    for layer in LAYERS {
        let (n, k) = (layer.n, layer.k);
        let weights = Owned::new(n, k);
        let bias = fill(n, 5, 0.1);
        let ms: &[usize] = if layer.encoder {
            &[1, 5, 1500]
        } else {
            &[1, 5]
        };
        for &m in ms {
            let x = fill(m * k, 3, 1.0);
            let mut out = vec![0f32; m * n];
            let mut g = c.benchmark_group(format!(
                "linear/{}/{} {n}x{k}/m{m}",
                layer.model, layer.name
            ));
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_millis(1200));
            for dtype in ["f32", "f16", "bf16", "i8"] {
                let w = weights.get(dtype);
                g.bench_function(dtype, |b| {
                    b.iter(|| {
                        kern.linear(
                            black_box(&x),
                            w,
                            Some(&bias),
                            MatMut::from_slice(&mut out, m, n),
                        )
                    })
                });
                g.bench_function(format!("{dtype}_2t"), |b| {
                    b.iter(|| linear_2t(&pool, black_box(&x), w, &bias, &mut out, m, n, k))
                });
            }
            g.finish();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod peak {
    use std::arch::x86_64::*;

    /// 12 independent FMA chains × `iters`; returns a value so nothing is optimised away.
    #[target_feature(enable = "avx512f")]
    pub fn fma512(iters: usize) -> f32 {
        let mut acc = [_mm512_set1_ps(0.0); 12];
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = acc[0];
        for v in &acc[1..] {
            s = _mm512_add_ps(s, *v);
        }
        _mm512_reduce_add_ps(s)
    }

    /// Same with 256-bit vectors.
    #[target_feature(enable = "avx2,fma")]
    pub fn fma256(iters: usize) -> f32 {
        let mut acc = [_mm256_set1_ps(0.0); 12];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iters {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0f32; 8];
        let mut s = acc[0];
        for v in &acc[1..] {
            s = _mm256_add_ps(s, *v);
        }
        // SAFETY: 8-float buffer.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        lanes.iter().sum()
    }
}

fn bench_machine(c: &mut Criterion) {
    let mut g = c.benchmark_group("machine");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let buf = fill(64 << 20, 1, 1.0);
    let kern = kernels();
    g.throughput(Throughput::Bytes((buf.len() * 4) as u64));
    g.bench_function("read_bw", |b| b.iter(|| (kern.sum)(black_box(&buf))));
    #[cfg(target_arch = "x86_64")]
    {
        const ITERS: usize = 1 << 20;
        if is_x86_feature_detected!("avx512f") {
            g.throughput(Throughput::Elements((ITERS * 12 * 16 * 2) as u64));
            // SAFETY: feature detected above.
            g.bench_function("fma_peak_avx512", |b| {
                b.iter(|| unsafe { peak::fma512(black_box(ITERS)) })
            });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            g.throughput(Throughput::Elements((ITERS * 12 * 8 * 2) as u64));
            // SAFETY: features detected above.
            g.bench_function("fma_peak_avx2", |b| {
                b.iter(|| unsafe { peak::fma256(black_box(ITERS)) })
            });
        }
    }
    g.finish();
}

/// Dot-form tiles vs the packed `gemm` crate across m, to choose `LARGE_M` (the switch):
/// `f32`/`f16` use the table's linear layer, `f32_gemm_crate` the crate (only where m > 256, matmul_f32's own limit).
fn bench_crossover(c: &mut Criterion) {
    let kern = kernels();
    for (n, k) in [(512usize, 512usize), (1280, 1280)] {
        let weights = Owned::new(n, k);
        let bias = fill(n, 5, 0.1);
        for m in [8usize, 16, 24, 32, 64, 128, 256, 1500] {
            let x = fill(m * k, 3, 1.0);
            let mut out = vec![0f32; m * n];
            let mut g = c.benchmark_group(format!("crossover/{n}x{k}/m{m}"));
            g.throughput(Throughput::Elements((2 * m * n * k) as u64));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(600));
            for dtype in ["f32", "f16"] {
                let w = weights.get(dtype);
                g.bench_function(dtype, |b| {
                    b.iter(|| {
                        kern.linear(
                            black_box(&x),
                            w,
                            Some(&bias),
                            MatMut::from_slice(&mut out, m, n),
                        )
                    })
                });
            }
            if m > 256 {
                // The same product through the `gemm` crate (matmul_f32 above its small-m limit).
                let a = MatRef::from_slice(&x, m, k);
                let wt = MatRef::from_slice(&weights.f32, n, k).t();
                g.bench_function("f32_gemm_crate", |b| {
                    b.iter(|| {
                        (kern.matmul_f32)(
                            black_box(a),
                            wt,
                            false,
                            MatMut::from_slice(&mut out, m, n),
                        )
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench_machine, bench_linear, bench_crossover);
criterion_main!(benches);
