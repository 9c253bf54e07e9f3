//! Per-step times of the Whisper tiny.en decoder on the GPU session against the CPU step
//! (a measurement, not a test: nothing is asserted about speed; run it with
//! `cargo test --release -p hark-gpu --test whisper_decoder_times -- --ignored --nocapture`).
//!
//! Beam 5 over a 1500-frame window (the CPU encoder's output): one shared step, then
//! `STEPS` beam steps with a reorder each, as beam search runs them. Prints the mean wall
//! time per step (decoder layers + logits of 5 rows) on both sides and the GPU's split into
//! upload (token ids, positions, parents) / kernels / download (logits), from the
//! delegate's `StageClock`.

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::ctx;
use hark_gpu::whisper::WhisperEncoderDelegate;
use hark_gpu::StageClock;
use hark_models::whisper::{DecodeRows, Precision, WhisperModel};
use hark_test_support::model_dir;

const STEPS: usize = 20;

#[test]
#[ignore = "a timing run; prints figures"]
fn whisper_decoder_step_times_gpu_vs_cpu() {
    let Some(dir) = model_dir("tiny.en") else {
        return;
    };
    let Some(ctx) = ctx() else { return };
    eprintln!("adapter: {:?}", ctx.adapter());
    let model = WhisperModel::load(&dir, Precision::F16).unwrap();
    let clock = Arc::new(StageClock::default());
    let delegate = WhisperEncoderDelegate::load(ctx, &dir)
        .and_then(|d| d.with_decoder(&dir))
        .unwrap()
        .with_clock(clock.clone());
    let mel = vec![-0.5f32; model.dims().n_mels * model.n_frames()];
    let enc = model.encode(&mel).unwrap();
    let beams = 5;
    let run = |gpu: bool| -> f64 {
        let mut st = model.new_state(beams);
        if gpu {
            st.attach_session(Box::new(
                delegate
                    .open_decoder(beams, model.dims().n_text_ctx)
                    .unwrap(),
            ));
        }
        model.set_audio(&mut st, &enc).unwrap();
        model
            .decode_step(&mut st, &[50257, 50362], DecodeRows::Shared)
            .unwrap();
        model.step_logits(&mut st, 1, 1).unwrap();
        let all: Vec<usize> = (0..beams).collect();
        let t = Instant::now();
        for s in 0..STEPS {
            let toks: Vec<u32> = (0..beams).map(|b| (300 + 17 * s + b) as u32).collect();
            model
                .decode_step(&mut st, &toks, DecodeRows::Beams(&all))
                .unwrap();
            model.step_logits(&mut st, 0, beams).unwrap();
            let parents: Vec<usize> = (0..beams).map(|b| (b + s) % beams).collect();
            st.reorder(&parents).unwrap();
        }
        t.elapsed().as_secs_f64() / STEPS as f64
    };
    let cpu = run(false);
    let before = clock.decoder_total();
    let gpu = run(true);
    let after = clock.decoder_total();
    let n = (after.1 - before.1) as f64;
    let ms = |a: std::time::Duration, b: std::time::Duration| (a - b).as_secs_f64() * 1e3 / n;
    eprintln!(
        "beam {beams}, {STEPS} steps: CPU {:.2} ms/step, GPU {:.2} ms/step \
         (per step incl. the prompt: upload {:.3} ms, kernels {:.2} ms, download {:.3} ms; {} steps timed)",
        cpu * 1e3,
        gpu * 1e3,
        ms(after.0.upload, before.0.upload),
        ms(after.0.kernels, before.0.kernels),
        ms(after.0.download, before.0.download),
        after.1 - before.1
    );
}
