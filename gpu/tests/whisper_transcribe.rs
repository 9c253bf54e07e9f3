//! End to end through the model's own hook: `Whisper::set_delegates` with the delegates
//! `Delegates::for_model` builds for tiny.en, then a whole transcription of an AN4 test
//! utterance. The encoder must have run on the GPU (the executor says so) and the
//! transcript must equal the CPU path's.
//!
//! One 30 s window costs one encoder pass, which on lavapipe (software Vulkan, CI) takes
//! one to three minutes, so this uses a single utterance and greedy decoding.
//! Needs the converted tiny.en (`$HARK_HOME/models/tiny.en`), `../shared` and a compute
//! adapter; skips with a message otherwise.

use std::path::PathBuf;

use hark_engine::delegate::Executor;
use hark_gpu::{Delegates, DevicePreference};
use hark_models::whisper::{Precision, TranscribeOptions, Whisper};

fn model_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HARK_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hark")))?;
    let dir = home.join("models").join("tiny.en");
    dir.join("model.safetensors").is_file().then_some(dir)
}

fn text(w: &Whisper, samples: &[f32]) -> String {
    let opts = TranscribeOptions {
        beam_size: 1,
        temperatures: vec![0.0],
        ..Default::default()
    };
    let mut out = Vec::new();
    w.transcribe(samples, &opts, &mut |s| out.push(s.text.trim().to_string()))
        .expect("transcribe");
    out.join(" ")
}

#[test]
fn whisper_transcript_with_gpu_encoder_equals_cpu() {
    let Some(dir) = model_dir() else {
        eprintln!("skipping: tiny.en is not installed (hark models pull tiny.en)");
        return;
    };
    let wav = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
        .join("data/an4/test/an391-mjwl-b.flac");
    if !wav.is_file() {
        eprintln!("skipping: ../shared not found ({})", wav.display());
        return;
    }
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
    let want = text(&cpu, &samples);
    assert_eq!(cpu.last_encoder_executor(), Some(Executor::Cpu));

    let mut gpu = Whisper::load(&dir, Precision::F16).expect("load tiny.en");
    gpu.set_delegates(delegates);
    let got = text(&gpu, &samples);
    match gpu.last_encoder_executor() {
        Some(Executor::Delegate(name)) => assert!(name.starts_with("gpu"), "{name}"),
        other => panic!("the encoder did not run on the GPU: {other:?}"),
    }
    assert!(!want.is_empty());
    assert_eq!(
        got, want,
        "GPU-encoder transcript differs from the CPU path"
    );
}
