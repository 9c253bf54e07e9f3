//! The Whisper tiny.en decoder step on the GPU (a `DecoderSession` attached to the model's
//! `DecoderState`) against the CPU decoder step: the same calls (`set_audio`,
//! `decode_step`, `step_logits`, `reorder`) on two states, one of them delegated, compared
//! logits by logits over a prompt, a shared step, beam steps, a reorder and a greedy
//! subset of beams.
//!
//! Bound. Both sides use the stored f16 weights exactly (widened to f32) and accumulate
//! in f32, so they differ only by summation order and exp/sqrt ulps (~1e-7 relative per
//! op). Through 4 blocks of LayerNorm/attention/GEMMs and the 51864-wide tied output
//! projection the measured normalised MSE Σ(g-c)²/Σc² is 1e-12..2e-10 on lavapipe (printed
//! below); we bound
//! it at 1e-8 (relative L2 error 1e-4), as the encoder golden test does: a wrong cache
//! row, table entry, position or missing bias moves logits by O(1), i.e. nMSE >= 1e-3.
//! The best token of every row must also agree.
//!
//! Needs the converted tiny.en (`$HARK_HOME/models/tiny.en`) and a compute adapter
//! (lavapipe in CI); skips with a message otherwise.

mod common;

use common::ctx;
use hark_engine::delegate::{Delegate, Executor, SessionRequest};
use hark_gpu::whisper::WhisperEncoderDelegate;
use hark_models::whisper::{DecodeRows, DecoderState, EncoderOutput, Precision, WhisperModel};
use hark_test_support::metrics::argmax;
use hark_test_support::{model_dir, nmse};

/// A deterministic, speech-like encoder output: the CPU encoder on a synthetic log-mel
/// (a few formant-like bands that move over time, silence after 3 s).
fn encoder_output(model: &WhisperModel) -> EncoderOutput {
    let nm = model.dims().n_mels;
    let nf = model.n_frames();
    let mut mel = vec![-0.8f32; nm * nf];
    for t in 0..300 {
        for m in 0..nm {
            let f1 = 10.0 + 6.0 * (t as f32 / 37.0).sin();
            let f2 = 35.0 + 9.0 * (t as f32 / 23.0).cos();
            let e = (-((m as f32 - f1).powi(2)) / 8.0).exp()
                + 0.7 * (-((m as f32 - f2).powi(2)) / 12.0).exp();
            mel[m * nf + t] = -0.8 + 1.6 * e + 0.05 * ((t * 7 + m * 13) % 11) as f32 / 11.0;
        }
    }
    model.encode(&mel).expect("CPU encoder")
}

struct Pair<'a> {
    model: &'a WhisperModel,
    cpu: DecoderState,
    gpu: DecoderState,
    worst: f64,
    steps: usize,
}

impl Pair<'_> {
    /// One step on both states, then compares the logits of rows `first..first + rows`.
    fn step(&mut self, tokens: &[u32], layout: DecodeRows<'_>, first: usize, rows: usize) {
        let v = self.model.dims().n_vocab;
        self.model
            .decode_step(&mut self.cpu, tokens, layout)
            .expect("CPU step");
        self.model
            .decode_step(&mut self.gpu, tokens, layout)
            .expect("GPU step");
        let want = self
            .model
            .step_logits(&mut self.cpu, first, rows)
            .unwrap()
            .to_vec();
        let got = self
            .model
            .step_logits(&mut self.gpu, first, rows)
            .unwrap()
            .to_vec();
        assert_eq!(got.len(), want.len());
        let e = nmse(&got, &want);
        eprintln!(
            "step {} ({} tokens, rows {first}..{}): logits nMSE {e:.3e}",
            self.steps,
            tokens.len(),
            first + rows
        );
        assert!(
            e < 1e-8,
            "step {}: GPU logits differ from the CPU's (nMSE {e:.3e})",
            self.steps
        );
        for r in 0..rows {
            assert_eq!(
                argmax(&got[r * v..(r + 1) * v]),
                argmax(&want[r * v..(r + 1) * v]),
                "step {}: best token of row {r} differs",
                self.steps
            );
        }
        assert_eq!(self.gpu.len(), self.cpu.len(), "cached positions differ");
        self.worst = self.worst.max(e);
        self.steps += 1;
    }

    fn reorder(&mut self, parents: &[usize]) {
        self.cpu.reorder(parents).unwrap();
        self.gpu.reorder(parents).unwrap();
    }
}

#[test]
fn gpu_decoder_step_logits_match_cpu_over_beam_steps_and_reorders() {
    let Some(dir) = model_dir("tiny.en") else {
        return;
    };
    let Some(ctx) = ctx() else { return };
    let model = WhisperModel::load(&dir, Precision::F16).expect("load tiny.en");
    let dm = model.dims();
    let delegate = WhisperEncoderDelegate::load(ctx, &dir)
        .and_then(|d| d.with_decoder(&dir))
        .expect("GPU delegate with decoder");
    let beams = 3;
    let request = SessionRequest {
        model: "whisper",
        max_beams: beams,
        max_len: dm.n_text_ctx,
    };
    let session = delegate
        .decoder_session(&request)
        .expect("open session")
        .expect("the delegate takes the Whisper decoder");
    let enc = encoder_output(&model);

    let mut pair = Pair {
        model: &model,
        cpu: model.new_state(beams),
        gpu: model.new_state(beams),
        worst: 0.0,
        steps: 0,
    };
    pair.gpu.attach_session(session);
    model.set_audio(&mut pair.cpu, &enc).unwrap();
    model.set_audio(&mut pair.gpu, &enc).unwrap();
    assert_eq!(pair.cpu.executor(), Executor::Cpu);
    match pair.gpu.executor() {
        Executor::Delegate(name) => assert!(name.starts_with("gpu"), "{name}"),
        Executor::Cpu => panic!("the decoder did not go to the GPU session"),
    }
    // The encoder output came from the CPU: the session uploaded it.
    assert_eq!(delegate.resident_encoder_outputs_reused(), 0);

    // <|startofprev|> + previous text + <|startoftranscript|>: an 11-token prompt shared by
    // all beams (more rows than the skinny GEMV takes: the tiled matmul runs), the logits
    // of the <|startoftranscript|> row (first != 0), as generate() reads the no-speech
    // probability; then " The" " quick" (3 rows, the GEMV).
    let (sot, the, quick) = (50257u32, 383u32, 2068u32);
    let prev = [
        50360u32, 383, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290,
    ];
    let mut prompt = prev.to_vec();
    prompt.push(sot);
    pair.step(&prompt, DecodeRows::Shared, 10, 1);
    pair.step(&[the, quick], DecodeRows::Shared, 0, 2);
    // the first decoding step, one row shared by the beams
    pair.step(&[7586], DecodeRows::Shared, 0, 1);
    // the beams diverge
    pair.step(&[21831, 11, 13], DecodeRows::Beams(&[0, 1, 2]), 0, 3);
    // reorder: slots 0 and 1 continue slot 2's history, slot 2 continues slot 0's
    pair.reorder(&[2, 2, 0]);
    pair.step(&[318, 290, 625], DecodeRows::Beams(&[0, 1, 2]), 0, 3);
    pair.reorder(&[1, 0, 0]);
    pair.step(&[262, 262, 257], DecodeRows::Beams(&[0, 1, 2]), 0, 3);
    // sampling-style subset of the slots (the others get placeholder rows)
    pair.step(&[16931, 3290], DecodeRows::Beams(&[2, 0]), 0, 2);
    pair.reorder(&[0, 0, 2]);
    pair.step(&[13, 13, 50256], DecodeRows::Beams(&[0, 1, 2]), 1, 2);
    // a new window resets the cache (same audio): the first step again
    model.set_audio(&mut pair.cpu, &enc).unwrap();
    model.set_audio(&mut pair.gpu, &enc).unwrap();
    pair.step(&[sot, 50362], DecodeRows::Shared, 1, 1);
    eprintln!(
        "worst logits nMSE over {} GPU decoder steps: {:.3e}",
        pair.steps, pair.worst
    );
}

#[test]
fn gpu_decoder_session_reuses_the_resident_encoder_output() {
    let Some(dir) = model_dir("tiny.en") else {
        return;
    };
    let Some(ctx) = ctx() else { return };
    let model = WhisperModel::load(&dir, Precision::F16).expect("load tiny.en");
    let delegate = WhisperEncoderDelegate::load(ctx, &dir)
        .and_then(|d| d.with_decoder(&dir))
        .expect("GPU delegate with decoder");
    // A short window of the same synthetic speech as above, on the GPU encoder.
    let nm = model.dims().n_mels;
    let nf = model.n_frames();
    let mut mel = vec![-0.8f32; nm * nf];
    for t in 0..200 {
        for m in 0..nm {
            mel[m * nf + t] =
                -0.8 + 1.2 * (-((m as f32 - 20.0 - (t % 17) as f32).powi(2)) / 9.0).exp();
        }
    }
    let data = delegate.encode(&mel).expect("GPU encoder");
    let enc = EncoderOutput {
        data,
        frames: model.dims().n_audio_ctx,
    };
    let mut cpu = model.new_state(1);
    let mut gpu = model.new_state(1);
    gpu.attach_session(Box::new(
        delegate.open_decoder(1, model.dims().n_text_ctx).unwrap(),
    ));
    model.set_audio(&mut cpu, &enc).unwrap();
    model.set_audio(&mut gpu, &enc).unwrap();
    assert_eq!(
        delegate.resident_encoder_outputs_reused(),
        1,
        "the session uploaded the encoder output its own encoder had left on the device"
    );
    // The cross-attention K/V computed from the resident buffer give the CPU's logits.
    let toks = [50257u32, 50362];
    model
        .decode_step(&mut cpu, &toks, DecodeRows::Shared)
        .unwrap();
    model
        .decode_step(&mut gpu, &toks, DecodeRows::Shared)
        .unwrap();
    let want = model.step_logits(&mut cpu, 1, 1).unwrap().to_vec();
    let got = model.step_logits(&mut gpu, 1, 1).unwrap().to_vec();
    let e = nmse(&got, &want);
    eprintln!("logits nMSE with the resident encoder output: {e:.3e}");
    assert!(e < 1e-8, "nMSE {e:.3e}");
    // A different encoder output (same length) is not mistaken for the resident one.
    let mut other = enc.clone();
    other.data[12345] += 0.5;
    model.set_audio(&mut gpu, &other).unwrap();
    assert_eq!(delegate.resident_encoder_outputs_reused(), 1);
}
