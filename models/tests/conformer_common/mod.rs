//! Shared helpers of the conformer golden tests (FireRedASR and WeNet/ESPnet fixtures):
//! loading a fixture directory's model, golden tensors and metadata, and recomputing the
//! reference's features from its wav.
#![allow(dead_code)]

use std::path::Path;

use hark_audio::features::{FbankOptions, FrameComputer};
use hark_models::conformer_aed::weights::TensorStore;
use hark_models::conformer_aed::{ConformerAed, EncoderOutput};
use hark_test_support::fixtures::read_json;
use hark_test_support::metrics::assert_max_rel_err;

/// Every stage must match the f32 reference within this, relative to max(|ref|, 1).
pub const TOL: f32 = 1e-4;

/// [`assert_max_rel_err`] at [`TOL`].
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_max_rel_err(what, got, want, TOL);
}

/// The fixture's reference tensors (`golden.safetensors`).
pub fn golden(dir: &Path) -> TensorStore {
    TensorStore::open(&dir.join("golden.safetensors")).expect("golden.safetensors")
}

/// The fixture's metadata (`golden.json`: wav, search options, expected hypotheses).
pub fn meta(dir: &Path) -> serde_json::Value {
    read_json(&dir.join("golden.json"))
}

/// The golden tensor `name` as f32 values.
pub fn take(g: &mut TensorStore, name: &str) -> Vec<f32> {
    g.take_any(name).unwrap_or_else(|e| panic!("{e}")).data
}

/// The golden decoder prefix (`decoder.prefix`) as token ids.
pub fn prefix(g: &mut TensorStore) -> Vec<u32> {
    g.take_any("decoder.prefix")
        .unwrap()
        .ints
        .iter()
        .map(|&t| t as u32)
        .collect()
}

/// Runs the encoder (keeping every stage's output) on the golden features.
pub fn encode(model: &ConformerAed, g: &mut TensorStore) -> EncoderOutput {
    let feats = take(g, "feats");
    model.encoder.forward(&feats, true).expect("encode")
}

/// The fixture's model, its golden tensors and the encoder output on the golden features.
pub fn load(dir: &Path) -> (ConformerAed, TensorStore, EncoderOutput) {
    let model = ConformerAed::load(dir).expect("load");
    let mut g = golden(dir);
    let enc = encode(&model, &mut g);
    (model, g, enc)
}

/// Asserts [`assert_close`] for every encoder stage against the golden tensors: the
/// subsampling, each block, and the output (labelled `output`); labels start with the
/// fixture's `name`.
pub fn assert_encoder_stages(
    name: &str,
    output: &str,
    model: &ConformerAed,
    enc: &EncoderOutput,
    g: &mut TensorStore,
) {
    assert_close(
        &format!("{name} subsampling"),
        &enc.stages[0],
        &take(g, "subsampling"),
    );
    for i in 0..model.config.n_layers_enc {
        assert_close(
            &format!("{name} encoder block {i}"),
            &enc.stages[i + 1],
            &take(g, &format!("encoder.block{i}")),
        );
    }
    assert_close(
        &format!("{name} {output}"),
        &enc.hidden,
        &take(g, "encoder_out"),
    );
}

/// The reference's input from the fixture's wav (`meta["wav"]`, relative to the
/// workspace root): hark-audio's Kaldi fbank (int16 scale, 80 bins, dither 0), returned
/// as is and after the model's CMVN.
pub fn wav_features(model: &ConformerAed, meta: &serde_json::Value) -> (Vec<f32>, Vec<f32>) {
    let wav = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(meta["wav"].as_str().unwrap());
    let samples: Vec<f32> = hark_audio::load_audio(&wav)
        .expect("decode wav")
        .iter()
        .map(|s| s * 32768.0)
        .collect();
    let fbank = FrameComputer::new(FbankOptions::with_bins(80))
        .unwrap()
        .compute(&samples)
        .unwrap();
    let mut feats = fbank.data.clone();
    model.apply_cmvn(&mut feats).unwrap();
    (fbank.data, feats)
}
