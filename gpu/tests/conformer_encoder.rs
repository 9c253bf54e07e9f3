//! The conformer-AED encoder as one GPU stage against hark's CPU encoder
//! (`hark_models::conformer_aed`, itself golden-tested against FireRedASR and ESPnet within
//! 1e-4): the built-in `an4-conformer` on real speech (`samples/hello.wav` and an AN4 test
//! utterance from ../shared when present), and the random-weight fixtures of the other
//! variants the GPU stage implements (WeNet without rel_shift, ESPnet ×6 with BatchNorm
//! folded, ReLU, biases and after_norm); ESPnet's legacy rel-pos variant must be declined.
//!
//! Bound. Both sides use the stored f16 weights exactly (widened to f32; the model is
//! loaded at f32 so the CPU does not requantise) and accumulate in f32, so they differ only
//! by summation order and exp/sqrt/sin ulps (~1e-7 relative per op). Through the
//! subsampling and 6 blocks (LayerNorms and softmaxes re-amplify relative errors) that
//! gives a normalised MSE Σ(g-c)²/Σc² around 1e-12..1e-11 (printed by the test); we bound
//! it at 1e-8, a relative L2 error of 1e-4: three orders of magnitude of headroom for
//! other drivers, while one wrong frame out of ~100, a missing bias, a mis-ordered weight
//! or an unmasked padded key moves it to 1e-3 or more.
//!
//! Needs a compute adapter (lavapipe in CI); skips with a message otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{conformer_features as features, ctx};
use hark_engine::delegate::Executor;
use hark_gpu::conformer::ConformerEncoderDelegate;
use hark_gpu::{Delegates, DevicePreference, GpuContext};
use hark_models::conformer_aed::{ConformerAed, Precision};
use hark_test_support::{nmse, shared_path, workspace_root};

const NMSE_BOUND: f64 = 1e-8;

fn an4_conformer() -> PathBuf {
    workspace_root().join("models/builtin/an4-conformer")
}

/// GPU delegate vs CPU encoder on `feats`; returns the normalised MSE.
fn compare(ctx: &Arc<GpuContext>, dir: &Path, feats: &[f32], what: &str) -> f64 {
    let cpu_model = ConformerAed::load_with_precision(dir, Precision::F32).unwrap();
    let cpu = cpu_model.encode(feats).unwrap();
    assert_eq!(cpu_model.last_encoder_executor(), Some(Executor::Cpu));
    let gpu = ConformerEncoderDelegate::load(ctx.clone(), dir).unwrap();
    let (y, t, valid) = gpu.encode(feats).unwrap();
    assert_eq!((t, valid), (cpu.frames, cpu.valid), "{what}: frames");
    assert!(y.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let e = nmse(&y, &cpu.hidden);
    eprintln!(
        "{what}: {t} frames ({valid} valid) x {}: normalised MSE {e:.3e}",
        cpu_model.config.d_model
    );
    assert!(
        e < NMSE_BOUND,
        "{what}: normalised MSE {e:e} >= {NMSE_BOUND:e}"
    );
    e
}

#[test]
fn an4_conformer_gpu_encoder_matches_cpu_on_speech() {
    let Some(ctx) = ctx() else { return };
    let dir = an4_conformer();
    let model = ConformerAed::load_with_precision(&dir, Precision::F32).unwrap();
    let mut inputs = vec![workspace_root().join("samples/hello.wav")];
    inputs.extend(shared_path("data/an4/test/an391-mjwl-b.flac"));
    for audio in inputs {
        let feats = features(&model, &audio);
        compare(
            &ctx,
            &dir,
            &feats,
            &format!("an4-conformer {}", audio.display()),
        );
    }
}

/// Through the model's own hook: `ConformerAed::set_delegates` with the delegates
/// `Delegates::for_model` builds for the directory; the stage must run on the GPU (not the
/// CPU fallback) and give the CPU's frames, valid count and values.
#[test]
fn an4_conformer_encode_stage_runs_on_the_gpu_delegate() {
    if ctx().is_none() {
        return;
    }
    let dir = an4_conformer();
    let cpu = ConformerAed::load_with_precision(&dir, Precision::F32).unwrap();
    let feats = features(&cpu, &workspace_root().join("samples/hello.wav"));
    let want = cpu.encode(&feats).unwrap();
    let delegates = Delegates::for_model(&dir, DevicePreference::Any).unwrap();
    assert_eq!(delegates.len(), 1, "one conformer encoder delegate");
    let name = delegates[0].name().to_string();
    let mut gpu = ConformerAed::load_with_precision(&dir, Precision::F32).unwrap();
    gpu.set_delegates(delegates);
    assert_eq!(gpu.last_encoder_executor(), None);
    let got = gpu.encode(&feats).unwrap();
    assert_eq!(gpu.last_encoder_executor(), Some(Executor::Delegate(name)));
    assert_eq!((got.frames, got.valid), (want.frames, want.valid));
    let e = nmse(&got.hidden, &want.hidden);
    assert!(e < NMSE_BOUND, "normalised MSE {e:e}");
    // A single frame (one encoder frame thanks to the context padding) runs too, and an
    // input of no whole frame fails with the CPU path's own error.
    let (one_gpu, one_cpu) = (
        gpu.encode(&feats[..80]).unwrap(),
        cpu.encode(&feats[..80]).unwrap(),
    );
    assert_eq!(
        (one_gpu.frames, one_gpu.valid),
        (one_cpu.frames, one_cpu.valid)
    );
    assert!(nmse(&one_gpu.hidden, &one_cpu.hidden) < NMSE_BOUND);
    assert!(gpu.encode(&feats[..40]).is_err());
}

/// The other variants on their random-weight fixtures (the ones the CPU path is golden
/// tested on): WeNet (no rel_shift, BatchNorm folded, biases, after_norm, xscale), ESPnet
/// ×6 subsampling with ReLU, FireRedASR with 2 heads and kernel 7, and a streaming
/// FireRedASR-layout model with causal convolutions, on AN4-like input (hello.wav features
/// through each model's CMVN).
#[test]
fn conformer_variants_gpu_encoder_matches_cpu() {
    let Some(ctx) = ctx() else { return };
    let fx = workspace_root().join("models/tests/fixtures");
    for name in [
        "conformer_wenet/wenet_bn_k15",
        "conformer_wenet/espnet_latest_sub6_k7",
        "conformer/firered_d32_h2_k7",
        "conformer/firered_causal_d32_k7",
    ] {
        let dir = fx.join(name);
        let model = ConformerAed::load_with_precision(&dir, Precision::F32).unwrap();
        let feats = features(&model, &workspace_root().join("samples/hello.wav"));
        compare(&ctx, &dir, &feats, name);
    }
}

#[test]
fn legacy_rel_pos_conformer_is_left_to_the_cpu() {
    if ctx().is_none() {
        return;
    }
    let dir = workspace_root().join("models/tests/fixtures/conformer_wenet/espnet_legacy_sub8_k31");
    let d = Delegates::for_model(&dir, DevicePreference::Any).unwrap();
    assert!(d.is_empty(), "legacy_rel_pos has no GPU implementation");
}
