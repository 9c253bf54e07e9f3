//! End to end through the model's own hook: `Whisper::set_delegates` with the delegates
//! `Delegates::for_model` builds for tiny.en, then a whole transcription of an AN4 test
//! utterance. The encoder must have run on the GPU (the executor says so) and the
//! transcript must equal the CPU path's.
//!
//! One 30 s window costs one encoder pass, which on lavapipe (software Vulkan, CI) takes
//! one to three minutes, so this uses a single utterance and greedy decoding.
//! Needs the converted tiny.en (`$HARK_HOME/models/tiny.en`), `../shared` and a compute
//! adapter; skips with a message otherwise.

mod common;

use common::{on_gpu, whisper_text};
use hark_engine::delegate::Executor;
use hark_gpu::{Delegates, DevicePreference};
use hark_models::whisper::{Precision, Whisper};
use hark_test_support::{model_dir, shared_path};

#[test]
fn whisper_transcript_with_gpu_encoder_equals_cpu() {
    let Some(dir) = model_dir("tiny.en") else {
        return;
    };
    let Some(wav) = shared_path("data/an4/test/an391-mjwl-b.flac") else {
        return;
    };
    let delegates = match Delegates::for_model(&dir, DevicePreference::Any) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipping: no compute adapter ({e})");
            return;
        }
    };
    assert_eq!(delegates.len(), 1, "tiny.en gets the encoder delegate");
    let samples = hark_audio::load_audio(&wav).expect("decode an4 file");

    let cpu = Whisper::load(&dir, Precision::F16).expect("load tiny.en");
    let want = whisper_text(&cpu, &samples, 1);
    assert_eq!(cpu.last_encoder_executor(), Some(Executor::Cpu));

    let mut gpu = Whisper::load(&dir, Precision::F16).expect("load tiny.en");
    gpu.set_delegates(delegates);
    let got = whisper_text(&gpu, &samples, 1);
    on_gpu(gpu.last_encoder_executor(), "encoder");
    assert!(!want.is_empty());
    assert_eq!(
        got, want,
        "GPU-encoder transcript differs from the CPU path"
    );
}
