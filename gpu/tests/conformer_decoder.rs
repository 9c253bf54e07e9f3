//! The conformer-AED transformer decoder on the GPU (the session the conformer delegate
//! opens, driven through `hark_models`' `SessionSteps`, exactly as the beam search and
//! the attention rescoring drive it) against the CPU decoder (`CpuSteps`, golden-tested
//! against FireRedASR and ESPnet): beam steps from `<sos>`, reorders by parent index
//! (including a beam continuing another's history and a dropped beam), a pad token
//! (a masked key from then on), and teacher-forced prompts (one shared step, the logits
//! of all its rows) against the CPU's position-by-position `decoder_logits`. Models: the
//! built-in `an4-conformer` and the random-weight fixtures of the CPU golden tests
//! (FireRedASR: tied output, GELU, no key bias, pad 2; WeNet/ESPnet: untied output with
//! bias, ReLU, key biases, pad 0), on the CPU encoder's output for `samples/hello.wav`.
//!
//! Bound. Both sides use the stored f16 weights exactly (widened to f32; the CPU model is
//! loaded at f32 so it does not requantise) and accumulate in f32, so they differ only by
//! summation order and exp/sqrt/erf ulps (~1e-7 relative per op). Through at most 3
//! layers of LayerNorm/attention/GEMMs and the output projection the measured normalised
//! MSE Σ(g-c)²/Σc² is printed below (around 1e-13..1e-12 on lavapipe); we bound it at
//! 1e-8 (a relative L2 error of 1e-4), as the Whisper decoder and the encoder tests do:
//! a wrong cache row, table entry, position, unmasked pad key, missing √d scale or bias
//! moves logits by O(1), i.e. nMSE >= 1e-3.
//!
//! Needs a compute adapter (lavapipe in CI); skips with a message otherwise.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{conformer_features, ctx};
use hark_engine::delegate::{Delegate, SessionRequest};
use hark_gpu::conformer::ConformerEncoderDelegate;
use hark_gpu::{DevicePreference, GpuContext};
use hark_models::conformer_aed::decoder::{CpuSteps, DecoderSteps, SessionSteps};
use hark_models::conformer_aed::{ConformerAed, EncoderOutput, Precision};
use hark_test_support::{nmse, workspace_root};

const NMSE_BOUND: f64 = 1e-8;

/// The CPU encoder's output for `samples/hello.wav` (FireRedASR's input: Kaldi fbank of
/// int16-scale samples, then the model's CMVN).
fn encoder_output(model: &ConformerAed) -> EncoderOutput {
    let x = conformer_features(model, &workspace_root().join("samples/hello.wav"));
    model.encoder.forward(&x, false).unwrap()
}

const BEAMS: usize = 4;

/// Runs the same beam steps, reorders and prompts on the CPU and through the GPU
/// session of the delegate for `dir`; returns the worst nMSE.
fn compare(ctx: &Arc<GpuContext>, dir: &Path, what: &str) -> f64 {
    let model = ConformerAed::load_with_precision(dir, Precision::F32).unwrap();
    let enc = encoder_output(&model);
    let cfg = &model.config;
    let (v, sos, pad) = (model.decoder.vocab(), cfg.sos_id, cfg.pad_id);
    let delegate = ConformerEncoderDelegate::load(ctx.clone(), dir)
        .unwrap()
        .with_decoder(dir)
        .unwrap();
    let request = SessionRequest {
        model: "conformer_aed",
        max_beams: BEAMS,
        max_len: 16,
    };
    let session = delegate
        .decoder_session(&request)
        .unwrap()
        .expect("the conformer delegate offers a decoder session");
    assert_eq!(session.name(), delegate.name(), "{what}: the GPU's session");
    assert!(
        session.name().starts_with("gpu:"),
        "{what}: {}",
        session.name()
    );
    let mut gpu = SessionSteps::begin(session, &model.decoder, &enc.hidden, enc.valid).unwrap();
    let cross = model.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
    let mut cpu = CpuSteps {
        dec: &model.decoder,
        state: model.decoder.new_state_with_capacity(BEAMS, 16),
        cross: &cross,
    };
    // A token other than sos/eos/pad for beam b at step s.
    let tok = |s: usize, b: usize| -> u32 {
        let mut t = ((s * 7 + b * 5 + 5) % v) as u32;
        while t == sos || t == cfg.eos_id || t == pad {
            t = (t + 1) % v as u32;
        }
        t
    };
    let mut worst = 0f64;
    let mut check = |step: &str, got: Vec<f32>, want: Vec<f32>| {
        let e = nmse(&got, &want);
        eprintln!("{what}: {step}: logits nMSE {e:.3e}");
        assert!(
            e < NMSE_BOUND,
            "{what}: {step}: GPU logits differ from the CPU's (nMSE {e:.3e})"
        );
        worst = worst.max(e);
    };
    let steps: [(&[usize], bool); 6] = [
        (&[0, 1, 2, 3], false),
        (&[1, 1, 0, 3], false),
        (&[2, 0, 0, 1], true),
        (&[3, 3, 1, 0], false),
        (&[0, 2, 1, 3], false),
        (&[1, 0, 3, 2], false),
    ];
    let first = vec![sos; BEAMS];
    check(
        "step 0 (<sos>)",
        gpu.step(&first).unwrap(),
        cpu.step(&first).unwrap(),
    );
    for (s, (parents, with_pad)) in steps.iter().enumerate() {
        gpu.reorder(parents).unwrap();
        cpu.reorder(parents).unwrap();
        let mut tokens: Vec<u32> = (0..BEAMS).map(|b| tok(s, b)).collect();
        if *with_pad {
            tokens[1] = pad;
        }
        check(
            &format!("step {} after reorder {parents:?}", s + 1),
            gpu.step(&tokens).unwrap(),
            cpu.step(&tokens).unwrap(),
        );
    }
    // Teacher-forced prompts (attention rescoring): reset + one shared step each.
    let prompts: Vec<Vec<u32>> = vec![
        vec![sos],
        (0..6)
            .map(|i| if i == 0 { sos } else { tok(i, 2) })
            .collect(),
        (0..12)
            .map(|i| match i {
                0 => sos,
                4 => pad,
                _ => tok(i, 3),
            })
            .collect(),
    ];
    for p in &prompts {
        check(
            &format!("prompt of {}", p.len()),
            gpu.prompt_logits(p).unwrap(),
            model.decoder_logits(&enc, p).unwrap(),
        );
    }
    worst
}

#[test]
fn conformer_gpu_decoder_logits_match_cpu_over_beam_steps_reorders_and_prompts() {
    let Some(ctx) = ctx() else { return };
    let fx = workspace_root().join("models/tests/fixtures");
    let mut dirs = vec![(
        "an4-conformer",
        workspace_root().join("models/builtin/an4-conformer"),
    )];
    for name in [
        "conformer/firered_d32_k15",
        "conformer/firered_d32_h2_k7",
        "conformer_wenet/wenet_bn_k15",
        "conformer_wenet/espnet_latest_sub6_k7",
    ] {
        dirs.push((name, fx.join(name)));
    }
    for (name, dir) in dirs {
        let worst = compare(&ctx, &dir, name);
        eprintln!("{name}: worst logits nMSE {worst:.3e}");
    }
}

#[test]
fn conformer_decoder_session_declines_other_models_and_oversized_requests() {
    let Some(ctx) = ctx() else { return };
    let dir = workspace_root().join("models/builtin/an4-conformer");
    let encoder_only = ConformerEncoderDelegate::load(ctx.clone(), &dir).unwrap();
    let ok = SessionRequest {
        model: "conformer_aed",
        max_beams: 2,
        max_len: 8,
    };
    assert!(encoder_only.decoder_session(&ok).unwrap().is_none());
    let d = encoder_only.with_decoder(&dir).unwrap();
    assert!(d.decoder_session(&ok).unwrap().is_some());
    for request in [
        SessionRequest {
            model: "whisper",
            ..ok
        },
        SessionRequest {
            max_len: 4096,
            ..ok
        },
        SessionRequest { max_beams: 0, ..ok },
    ] {
        assert!(
            d.decoder_session(&request).unwrap().is_none(),
            "{request:?} declined"
        );
    }
}

/// FireRedASR's attention beam search (the fixture has no CTC head) through the GPU
/// session gives the CPU's n-best: same token sequences, scores within 1e-3 (the logits
/// differ by nMSE ~1e-13, see the bound above), and the decoder ran on the GPU.
#[test]
fn conformer_beam_search_through_the_gpu_session_matches_cpu_nbest() {
    if ctx().is_none() {
        return;
    }
    let dir = workspace_root().join("models/tests/fixtures/conformer/firered_d32_k15");
    let cpu = ConformerAed::load_with_precision(&dir, Precision::F32).unwrap();
    let mut gpu = cpu.clone();
    let delegates = hark_gpu::Delegates::for_model(&dir, DevicePreference::Any).unwrap();
    let name = delegates[0].name().to_string();
    gpu.set_delegates(delegates);
    let enc = encoder_output(&cpu);
    let opts = hark_models::conformer_aed::BeamSearchOptions {
        beam_size: 3,
        nbest: 3,
        decode_max_len: 12,
        ..Default::default()
    };
    let want = cpu.beam_search(&enc, &opts).unwrap();
    assert_eq!(
        cpu.last_decoder_executor(),
        Some(hark_engine::delegate::Executor::Cpu)
    );
    let got = gpu.beam_search(&enc, &opts).unwrap();
    assert_eq!(
        gpu.last_decoder_executor(),
        Some(hark_engine::delegate::Executor::Delegate(name)),
        "the decoder ran on the GPU session"
    );
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        eprintln!("{:?} {} / {:?} {}", g.tokens, g.score, w.tokens, w.score);
        assert_eq!(g.tokens, w.tokens);
        assert!(
            (g.score - w.score).abs() < 1e-3,
            "{} vs {}",
            g.score,
            w.score
        );
    }
}
