//! End to end through the family-agnostic front door: `Recognizer::set_delegates` with the
//! delegates `Delegates::for_model` builds for the built-in `an4-conformer`; transcripts
//! (fbank, CMVN, GPU encoder, CTC prefix beam search, attention rescoring through the GPU
//! decoder session) must equal the CPU-only ones, and both the encoder and the decoder
//! must have run on the GPU delegate. Uses `samples/hello.wav` and the first AN4
//! test files when ../shared is present (the full comparison over all 130 files is
//! `scripts/gpu/compare_cpu_gpu.py`). Skips without a compute adapter.

use std::path::PathBuf;

use hark_engine::delegate::Executor;
use hark_gpu::{Delegates, DevicePreference, GpuContext};
use hark_models::recognizer::Recognizer;
use hark_models::whisper::TranscribeOptions;

#[test]
fn an4_conformer_transcripts_with_gpu_encoder_and_decoder_equal_cpu_ones() {
    if let Err(e) = GpuContext::new(DevicePreference::Any) {
        eprintln!("skipping: {e}");
        return;
    }
    let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let dir = repo.join("models/builtin/an4-conformer");
    let mut files = vec![repo.join("samples/hello.wav")];
    let an4 = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/an4/test"
    ));
    match std::fs::read_dir(&an4) {
        Ok(rd) => {
            let mut flacs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "flac"))
                .collect();
            flacs.sort();
            files.extend(flacs.into_iter().take(8));
        }
        Err(_) => eprintln!(
            "skipping AN4 files: ../shared not found ({})",
            an4.display()
        ),
    }
    let cpu = Recognizer::load(&dir, None).unwrap();
    let mut gpu = Recognizer::load(&dir, None).unwrap();
    let delegates = Delegates::for_model(&dir, DevicePreference::Any).unwrap();
    let name = delegates[0].name().to_string();
    gpu.set_delegates(delegates);
    let opts = TranscribeOptions::default();
    for f in &files {
        let samples = hark_audio::load_audio(f).unwrap();
        let want = cpu.text(&samples, &opts).unwrap();
        assert_eq!(cpu.last_encoder_executor(), Some(Executor::Cpu));
        assert_eq!(cpu.last_decoder_executor(), Some(Executor::Cpu));
        let got = gpu.text(&samples, &opts).unwrap();
        assert_eq!(
            gpu.last_encoder_executor(),
            Some(Executor::Delegate(name.clone())),
            "{}: the encoder ran on the GPU",
            f.display()
        );
        assert_eq!(
            gpu.last_decoder_executor(),
            Some(Executor::Delegate(name.clone())),
            "{}: the decoder ran on the GPU",
            f.display()
        );
        eprintln!("{}: {got:?}", f.display());
        assert_eq!(got, want, "{}", f.display());
    }
}
