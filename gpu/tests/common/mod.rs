//! Helpers shared by the GPU test binaries (the generic ones — paths, installed models,
//! error metrics — are in `hark-test-support`).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use hark_audio::features::{FbankOptions, FrameComputer};
use hark_engine::delegate::Executor;
use hark_engine::{ops, Tensor};
use hark_gpu::kernels::Act;
use hark_gpu::{DevicePreference, GpuContext};
use hark_models::conformer_aed::ConformerAed;
use hark_models::whisper::{TranscribeOptions, Whisper};
use rand::{Rng, SeedableRng};

/// A context on any adapter (lavapipe, the software Vulkan driver, in CI), or `None`
/// after printing `skipping: <why>` when there is no compute adapter.
pub fn ctx() -> Option<Arc<GpuContext>> {
    match GpuContext::new(DevicePreference::Any) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

/// `n` seeded uniform values in `[-scale, scale)`.
pub fn rand_vec(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.gen_range(-scale..scale)).collect()
}

/// hark-engine's reference for a GPU linear: `x [m, k] · wᵀ + bias`, then `act`, then
/// `+ acc` when the GPU kernel accumulates into its output.
pub fn cpu_linear(
    x: &[f32],
    m: usize,
    w: &Tensor,
    bias: &[f32],
    act: Act,
    acc: Option<&[f32]>,
) -> Vec<f32> {
    let mut y = vec![0f32; m * w.dim(0)];
    ops::linear(x, m, w, Some(bias), &mut y).unwrap();
    if act == Act::Gelu {
        ops::gelu(&mut y);
    }
    if let Some(prev) = acc {
        ops::add(&mut y, prev).unwrap();
    }
    y
}

/// FireRedASR's encoder input for the audio file `audio`: Kaldi fbank of int16-scale
/// samples (`idim` bins), then the model's CMVN.
pub fn conformer_features(model: &ConformerAed, audio: &Path) -> Vec<f32> {
    let samples = hark_audio::load_audio(audio).unwrap();
    let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
    let fb = FrameComputer::new(FbankOptions::with_bins(model.config.idim)).unwrap();
    let mut x = fb.compute(&scaled).unwrap().data;
    model.apply_cmvn(&mut x).unwrap();
    x
}

/// Whisper's transcript of `samples` (beam `beam`, temperature 0 only): the segments'
/// trimmed texts joined by spaces.
pub fn whisper_text(w: &Whisper, samples: &[f32], beam: usize) -> String {
    let opts = TranscribeOptions {
        beam_size: beam,
        temperatures: vec![0.0],
        ..Default::default()
    };
    let mut out = Vec::new();
    w.transcribe(samples, &opts, &mut |s| out.push(s.text.trim().to_string()))
        .expect("transcribe");
    out.join(" ")
}

/// Asserts that the `stage` ran on a GPU delegate (its executor is a delegate named
/// `gpu...`).
pub fn on_gpu(e: Option<Executor>, stage: &str) {
    match e {
        Some(Executor::Delegate(name)) => assert!(name.starts_with("gpu"), "{stage}: {name}"),
        other => panic!("the {stage} did not run on the GPU: {other:?}"),
    }
}
