//! conformer_aed at FireRedASR-AED-L's real shapes (d_model 1280, 16+16 layers, 20 heads,
//! FFN 5120, kernel 33, vocabulary 7832) with random weights built in memory (no checkpoint
//! needed): encoder on 4 s of features, one decoder step per token for 1 and 3 beam rows
//! (averaged over 32 steps from an empty cache, incl. the vocabulary projection).
//! `HARK_BENCH_PRECISION=f16|int8|f32` picks the weight precision (default f16; one per run
//! so that the peak RSS printed at the end belongs to that precision).

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use hark_models::conformer_aed::{ConformerAed, ConformerConfig, Precision};

const CONFIG: &str = r#"{
  "family": "conformer_aed", "source": "fireredasr", "idim": 80, "odim": 7832,
  "d_model": 1280, "n_head": 20, "n_layers_enc": 16, "n_layers_dec": 16, "kernel_size": 33,
  "pe_maxlen": 5000, "sos_id": 3, "eos_id": 4, "pad_id": 2, "subsampling": "conv2d4",
  "subsampling_channels": 32, "pad_context": 6, "layer_norm_eps": 1e-05, "ffn_mult": 4,
  "conv_inner_mult": 2, "conv_norm": "layer_norm", "qkv_layer_norm": true, "rel_shift": true,
  "xscale": false, "dec_embed_scale": true, "dec_activation": "gelu", "tied_output": true,
  "weights_dtype": "f16", "dict": "dict.txt", "spm_model": "train_bpe1000.model"
}"#;

fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench(c: &mut Criterion) {
    let precision = std::env::var("HARK_BENCH_PRECISION")
        .ok()
        .and_then(|s| Precision::parse(&s))
        .unwrap_or(Precision::F16);
    let cfg = ConformerConfig::from_json(CONFIG, Path::new("<bench>")).expect("config");
    let t0 = Instant::now();
    let model = ConformerAed::synthetic(cfg, precision, 7).expect("synthetic model");
    eprintln!(
        "built random FireRedASR-AED-L shapes at {precision:?} in {:.1?}",
        t0.elapsed()
    );
    let frames = 400; // 4 s
    let feats: Vec<f32> = (0..frames * 80)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let mut g = c.benchmark_group(format!("conformer_aed_large_{precision:?}"));
    g.sample_size(10).warm_up_time(Duration::from_millis(1));
    g.bench_function("encoder_4s_audio", |b| {
        b.iter(|| model.encode(&feats).expect("encode"))
    });
    let enc = model.encode(&feats).expect("encode");
    for beams in [1usize, 3] {
        let cross = model.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        g.bench_function(format!("decoder_per_token_beam{beams}"), |b| {
            b.iter_custom(|iters| {
                let steps = 32u32;
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut st = model.decoder.new_state(beams);
                    let toks: Vec<u32> = (0..beams as u32).map(|i| 10 + i).collect();
                    let t = Instant::now();
                    for _ in 0..steps {
                        model.decoder.step(&toks, &mut st, &cross).expect("step");
                    }
                    total += t.elapsed() / steps;
                }
                total
            })
        });
    }
    g.finish();
    if let Some(mib) = peak_rss_mib() {
        eprintln!("peak RSS ({precision:?}): {mib:.0} MiB");
    }
}

/// The shipped AN4 model's shapes with causal convolutions (a streaming model), random
/// weights.
const STREAMING_CONFIG: &str = r#"{
  "family": "conformer_aed", "source": "fireredasr", "idim": 80, "odim": 154,
  "d_model": 144, "n_head": 4, "n_layers_enc": 8, "n_layers_dec": 3, "kernel_size": 15,
  "pe_maxlen": 5000, "sos_id": 3, "eos_id": 4, "pad_id": 2, "subsampling": "conv2d4",
  "subsampling_channels": 32, "pad_context": 6, "layer_norm_eps": 1e-05, "ffn_mult": 4,
  "conv_inner_mult": 2, "conv_norm": "layer_norm", "qkv_layer_norm": true, "rel_shift": true,
  "xscale": false, "dec_embed_scale": true, "dec_activation": "gelu", "tied_output": true,
  "weights_dtype": "f16", "dict": "dict.txt", "spm_model": "train_bpe150.model",
  "causal_conv": true
}"#;

/// Live re-decoding of one 10 s utterance with 640 ms chunks, the encoder output refreshed
/// every 160 ms (what `hark listen --chunk-ms 640` asks for): re-encoding the whole
/// utterance each time (`forward_chunked`) against the incremental stream (only new
/// chunks, plus the unfinished last one). Time per 10 s utterance. Run with
/// `cargo bench -p hark-models --bench conformer_aed -- streaming_`.
fn bench_streaming(c: &mut Criterion) {
    let cfg = ConformerConfig::from_json(STREAMING_CONFIG, Path::new("<bench>")).expect("config");
    let model = ConformerAed::synthetic(cfg, Precision::F16, 7).expect("synthetic model");
    let frames = 1000; // 10 s
    let feats: Vec<f32> = (0..frames * 80)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let (chunk, step) = (16usize, 16usize); // 640 ms chunks, a refresh every 160 ms
    let enc = &model.encoder;
    let mut g = c.benchmark_group("streaming_10s_utterance_640ms_chunks");
    g.sample_size(10).warm_up_time(Duration::from_millis(1));
    g.bench_function("recompute_every_160ms", |b| {
        b.iter(|| {
            for end in (step..=frames).step_by(step) {
                enc.forward_chunked(&feats[..end * 80], chunk, false)
                    .expect("encode");
            }
        })
    });
    g.bench_function("incremental_every_160ms", |b| {
        b.iter(|| {
            let mut st = enc.stream(chunk).expect("stream");
            for start in (0..frames).step_by(step) {
                enc.stream_push(&mut st, &feats[start * 80..(start + step).min(frames) * 80])
                    .expect("push");
                enc.stream_output(&mut st).expect("output");
            }
        })
    });
    g.finish();
}

/// One encoder-sized product (FFN expand: 100 frames × 1280 → 5120) through the engine's
/// `matmul_nt` at f16 and int8: isolates the GEMM from the rest of the encoder. Run with
/// `cargo bench -p hark-models --bench conformer_aed -- linear_`.
fn bench_linear(c: &mut Criterion) {
    use hark_engine::{ops::matmul_nt, DType, Tensor};
    let (m, k, n) = (100usize, 1280usize, 5120usize);
    let x: Vec<f32> = (0..m * k)
        .map(|i| ((i * 31 % 97) as f32 - 48.0) / 50.0)
        .collect();
    let w: Vec<f32> = (0..n * k)
        .map(|i| ((i * 17 % 101) as f32 - 50.0) / 1500.0)
        .collect();
    let mut out = vec![0.0f32; m * n];
    let mut g = c.benchmark_group("linear_m100_k1280_n5120");
    g.sample_size(10).warm_up_time(Duration::from_millis(100));
    for dt in [DType::F16, DType::I8] {
        let t = Tensor::from_f32(&[n, k], &w)
            .and_then(|t| t.to_dtype(dt))
            .expect("weight");
        g.bench_function(format!("{dt:?}"), |b| {
            b.iter(|| {
                matmul_nt(&x, m, k, t.weight_view().expect("view"), n, None, &mut out)
                    .expect("matmul")
            })
        });
        // The conformer's own Linear (int8: split by columns, see nn.rs).
        let lin = hark_models::conformer_aed::nn::Linear {
            w: hark_models::conformer_aed::nn::Weight::Engine(t.clone()),
            b: None,
            k,
            n,
        };
        g.bench_function(format!("{dt:?}_conformer_linear"), |b| {
            b.iter(|| lin.forward_into(&x, &mut out))
        });
        {
            for chunk in [0usize, 5] {
                let wv = t.weight_view().expect("view");
                g.bench_function(format!("{dt:?}_columns_rows_of_{chunk}"), |b| {
                    b.iter(|| {
                        hark_models::conformer_aed::nn::matmul_i8_columns(
                            &x, m, k, wv, n, None, &mut out, chunk,
                        )
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench_streaming, bench_linear, bench);
criterion_main!(benches);
