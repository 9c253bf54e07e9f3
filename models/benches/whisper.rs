//! Whisper stage benchmarks at the real model's shapes (tiny.en from the model store;
//! skipped with a message when absent): encoder on one 30 s window, cross-attention K/V
//! projection, one decoder step for 1 and 5 beam rows (incl. the 51864-row vocabulary
//! projection), per weight precision.
#![allow(missing_docs)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use hark_models::whisper::{Precision, WhisperModel};

fn model_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HARK_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hark")))?;
    let d = home.join("models/tiny.en");
    d.join("model.safetensors").is_file().then_some(d)
}

fn bench(c: &mut Criterion) {
    let Some(dir) = model_dir() else {
        eprintln!("skipping: tiny.en not installed (hark models pull tiny.en)");
        return;
    };
    for p in [Precision::F32, Precision::F16, Precision::Int8] {
        let model = WhisperModel::load(&dir, p).expect("load tiny.en");
        let dm = model.dims();
        let mel: Vec<f32> = (0..dm.n_mels * model.n_frames())
            .map(|i| ((i % 97) as f32 / 97.0) - 0.5)
            .collect();
        let mut g = c.benchmark_group(format!("whisper_tiny_en_{p}"));
        g.sample_size(10);
        g.bench_function("encoder_30s", |b| {
            b.iter(|| model.encode(&mel).expect("encode"))
        });
        let enc = model.encode(&mel).expect("encode");
        let mut st = model.new_state(5);
        g.bench_function("cross_kv_30s", |b| {
            b.iter(|| model.set_audio(&mut st, &enc))
        });
        for rows in [1usize, 5] {
            let toks: Vec<u32> = (0..rows as u32).map(|i| 50257 + i % 2).collect();
            let beams: Vec<usize> = (0..rows).collect();
            let pos = vec![20usize; rows];
            g.bench_function(format!("decoder_step_rows{rows}_pos20"), |b| {
                b.iter(|| {
                    let h = model
                        .decode_rows(&mut st, &toks, &beams, &pos)
                        .expect("step");
                    model.logits(&h, rows)
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
