//! The whole Whisper pipeline on the GPU delegate (encoder pass + decoder session with its
//! KV cache on the device) through the model's own hooks (`Whisper::set_delegates`):
//! transcripts of AN4 test utterances with beam 5 (hark's default) and greedy decoding
//! must equal the CPU path's, with both stages reported as run on the GPU and the decoder
//! reading the encoder output its own encoder left on the device (no re-upload).
//!
//! Temperature fallback is off (`temperatures = [0.0]`) so each transcription is one
//! encoder pass: on lavapipe (software Vulkan, CI) a 30 s tiny.en window takes about a
//! minute, so two utterances x two decoding modes keep this to a few minutes.
//! Needs the converted tiny.en (`$HARK_HOME/models/tiny.en`), `../shared` and a compute
//! adapter; skips with a message otherwise.

mod common;

use std::sync::Arc;

use common::{ctx, on_gpu, whisper_text as text};
use hark_engine::delegate::{Delegate, Executor};
use hark_gpu::whisper::WhisperEncoderDelegate;
use hark_models::whisper::{Precision, Whisper};
use hark_test_support::{model_dir, shared_path};

#[test]
fn whisper_transcripts_with_gpu_encoder_and_decoder_equal_cpu_beam5_and_greedy() {
    let Some(dir) = model_dir("tiny.en") else {
        return;
    };
    let Some(an4) = shared_path("data/an4/test") else {
        return;
    };
    let Some(ctx) = ctx() else { return };
    let delegate = Arc::new(
        WhisperEncoderDelegate::load(ctx, &dir)
            .and_then(|d| d.with_decoder(&dir))
            .expect("GPU delegate with decoder"),
    );
    let cpu = Whisper::load(&dir, Precision::F16).expect("load tiny.en");
    let mut gpu = Whisper::load(&dir, Precision::F16).expect("load tiny.en");
    gpu.set_delegates(vec![delegate.clone() as Arc<dyn Delegate>]);

    let mut passes = 0;
    for name in ["an391-mjwl-b", "an393-mjwl-b"] {
        let samples =
            hark_audio::load_audio(&an4.join(format!("{name}.flac"))).expect("decode an4 file");
        for beam in [5, 1] {
            let want = text(&cpu, &samples, beam);
            assert_eq!(cpu.last_decoder_executor(), Some(Executor::Cpu));
            let got = text(&gpu, &samples, beam);
            passes += 1;
            on_gpu(gpu.last_encoder_executor(), "encoder");
            on_gpu(gpu.last_decoder_executor(), "decoder");
            eprintln!("{name} beam {beam}: {got:?}");
            assert!(!want.is_empty());
            assert_eq!(
                got, want,
                "{name}, beam {beam}: the GPU pipeline's transcript differs from the CPU's"
            );
        }
    }
    assert_eq!(
        delegate.resident_encoder_outputs_reused(),
        passes,
        "every window's decoder should read the encoder output left on the device"
    );
}
