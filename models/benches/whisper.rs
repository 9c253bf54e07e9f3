//! Whisper stage benchmarks at the real model's shapes (tiny.en from the model store;
//! skipped with a message when absent): encoder on one 30 s window, cross-attention K/V
//! projection, one decoder step for 1 and 5 beam rows (incl. the 51864-row vocabulary
//! projection), per weight precision; and one live final decode (`generate_*`: beam 5, a
//! 100-token previous-text prompt, 16 new tokens, with and without timestamps), which
//! includes the per-step logit processing (rules, log-softmax, candidate selection).
#![allow(missing_docs)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use hark_models::whisper::decode::generate;
use hark_models::whisper::{DecodeRows, GenerateOptions, Precision, SpecialTokens, WhisperModel};

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
        let prompt: Vec<u32> = vec![50257; 20];
        for rows in [1usize, 5] {
            let toks: Vec<u32> = (0..rows as u32).map(|i| 50257 + i % 2).collect();
            let beams: Vec<usize> = (0..rows).collect();
            g.bench_function(format!("decoder_step_rows{rows}"), |b| {
                b.iter(|| {
                    if st.len() + 1 >= dm.n_text_ctx {
                        st.reset();
                        model
                            .decode_step(&mut st, &prompt, DecodeRows::Shared)
                            .expect("prompt");
                    }
                    model
                        .decode_step(&mut st, &toks, DecodeRows::Beams(&beams))
                        .expect("step");
                    model.step_logits(&mut st, 0, rows).map(|l| l[0])
                })
            });
        }
        if p == Precision::F16 {
            // tiny.en's special tokens (its tokenizer.json)
            let sp = SpecialTokens {
                eot: 50256,
                sot: 50257,
                no_timestamps: 50362,
                no_speech: 50361,
                timestamp_begin: 50363,
                timestamp_end: 51863,
            };
            let opts = GenerateOptions {
                beam_size: 5,
                max_new_tokens: Some(16),
                suppress_tokens: vec![1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58],
                begin_suppress_tokens: vec![220, 50256],
                ..GenerateOptions::default()
            };
            // <|startofprev|> + 100 text tokens + <|startoftranscript|> [+ <|notimestamps|>]
            let mut prev: Vec<u32> = vec![50360];
            prev.extend((0..100u32).map(|i| 262 + (i * 37) % 5000));
            prev.push(sp.sot);
            for ts in [true, false] {
                let mut prompt = prev.clone();
                if !ts {
                    prompt.push(sp.no_timestamps);
                }
                let name = if ts {
                    "generate_beam5_prompt100_ts"
                } else {
                    "generate_beam5_prompt100_nots"
                };
                let out = generate(&model, &mut st, &prompt, &sp, &opts).expect("generate");
                eprintln!(
                    "{name}: {} tokens generated, score {}",
                    out.tokens.len(),
                    out.score
                );
                g.bench_function(name, |b| {
                    b.iter(|| generate(&model, &mut st, &prompt, &sp, &opts).expect("generate"))
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
