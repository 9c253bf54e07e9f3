//! WeNet/ESPnet-style conformer checkpoints against ESPnet's reference classes, stage by
//! stage, plus WeNet's CTC prefix beam search + attention rescoring.
//!
//! Fixtures: `models/tests/fixtures/conformer_wenet/<config>/`, produced by
//! `scripts/conformer/make_wenet_fixtures.py` (random tiny models built with ESPnet's
//! ConformerEncoder / TransformerDecoder / CTC, saved as WeNet experiment directories and
//! converted by `scripts/convert_wenet.py`). Configs: WeNet (BatchNorm, no rel_shift, ×4,
//! kernel 15), ESPnet latest rel_pos (rel_shift, ×6, kernel 7, ReLU), ESPnet legacy rel_pos
//! (×8, kernel 31). BatchNorm is folded into the depthwise weights by the converter, which
//! the stage checks cover. Every stage must match within 1e-4 relative to max(|ref|, 1); the
//! CTC n-best and the rescoring winner must match exactly.

use std::path::{Path, PathBuf};

use hark_models::conformer_aed::weights::TensorStore;
use hark_models::conformer_aed::{ConformerAed, EncoderOutput, FireRedTokenizer};

const TOL: f32 = 1e-4;
const CONFIGS: [&str; 3] = [
    "wenet_bn_k15",
    "espnet_latest_sub6_k7",
    "espnet_legacy_sub8_k31",
];

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer_wenet");
    CONFIGS.iter().map(|n| root.join(n)).collect()
}

fn golden(dir: &Path) -> TensorStore {
    TensorStore::open(&dir.join("golden.safetensors")).expect("golden.safetensors")
}

fn meta(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("golden.json")).unwrap()).unwrap()
}

fn take(g: &mut TensorStore, name: &str) -> Vec<f32> {
    g.take_any(name).unwrap_or_else(|e| panic!("{e}")).data
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0.0f32, 0usize);
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err.is_finite(), "{what}[{i}]: got {a}, want {b}");
        if err > worst.0 {
            worst = (err, i);
        }
    }
    assert!(
        worst.0 <= TOL,
        "{what}: max relative error {} at {} (got {}, want {})",
        worst.0,
        worst.1,
        got[worst.1],
        want[worst.1]
    );
}

fn encode(model: &ConformerAed, g: &mut TensorStore) -> EncoderOutput {
    let feats = take(g, "feats");
    model.encoder.forward(&feats, true).expect("encode")
}

fn tokens(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn wenet_espnet_encoder_stages_match_reference() {
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let mut g = golden(&dir);
        let enc = encode(&model, &mut g);
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_close(
            &format!("{name} subsampling"),
            &enc.stages[0],
            &take(&mut g, "subsampling"),
        );
        for i in 0..model.config.n_layers_enc {
            assert_close(
                &format!("{name} encoder block {i}"),
                &enc.stages[i + 1],
                &take(&mut g, &format!("encoder.block{i}")),
            );
        }
        assert_close(
            &format!("{name} encoder output (after_norm)"),
            &enc.hidden,
            &take(&mut g, "encoder_out"),
        );
        assert_eq!(
            enc.valid, enc.frames,
            "{name}: no padding without context frames"
        );
    }
}

#[test]
fn wenet_espnet_decoder_logits_match_reference() {
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let mut g = golden(&dir);
        let enc = encode(&model, &mut g);
        let prefix: Vec<u32> = g
            .take_any("decoder.prefix")
            .unwrap()
            .ints
            .iter()
            .map(|&t| t as u32)
            .collect();
        let logits = model.decoder_logits(&enc, &prefix).expect("decode");
        assert_close(
            &format!("{} decoder logits (untied output layer)", dir.display()),
            &logits,
            &take(&mut g, "decoder.logits"),
        );
    }
}

#[test]
fn wenet_espnet_ctc_log_probs_match_reference() {
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let mut g = golden(&dir);
        let enc = encode(&model, &mut g);
        let lp = model.ctc_log_probs(&enc).expect("ctc head");
        assert_close(
            &format!("{} ctc log-probs", dir.display()),
            &lp,
            &take(&mut g, "ctc.log_probs"),
        );
    }
}

#[test]
fn ctc_prefix_beam_search_matches_wenet_reference() {
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let mut g = golden(&dir);
        let enc = encode(&model, &mut g);
        let m = meta(&dir);
        let beam = m["beam"].as_u64().unwrap() as usize;
        let hyps = model.ctc_prefix_beam_search(&enc, beam).unwrap();
        let want = m["ctc_nbest"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len(), "{}: n-best size", dir.display());
        for (i, (h, w)) in hyps.iter().zip(want).enumerate() {
            assert_eq!(
                h.tokens,
                tokens(&w["tokens"]),
                "{} ctc hyp {i}",
                dir.display()
            );
            assert_close(
                &format!("{} ctc hyp {i} score", dir.display()),
                &[h.score],
                &[w["score"].as_f64().unwrap() as f32],
            );
        }
    }
}

#[test]
fn attention_rescoring_matches_wenet_reference() {
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let mut g = golden(&dir);
        let enc = encode(&model, &mut g);
        let m = meta(&dir);
        let beam = m["beam"].as_u64().unwrap() as usize;
        let w = m["ctc_weight"].as_f64().unwrap() as f32;
        let hyps = model.ctc_attention_rescoring(&enc, beam, w).unwrap();
        let want = m["rescored"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len());
        for r in want {
            let toks = tokens(&r["tokens"]);
            let h = hyps
                .iter()
                .find(|h| h.tokens == toks)
                .unwrap_or_else(|| panic!("{}: hypothesis {toks:?} missing", dir.display()));
            assert_close(
                &format!("{} rescored {toks:?}", dir.display()),
                &[h.score],
                &[r["score"].as_f64().unwrap() as f32],
            );
        }
        assert_eq!(
            hyps[0].tokens,
            tokens(&m["best"]),
            "{}: rescoring winner",
            dir.display()
        );
    }
}

/// From the wav: hark's Kaldi fbank + the converted JSON CMVN must give the reference's
/// features, and CTC prefix beam search + rescoring the reference's winner; the unit list +
/// BPE pieces detokenize it.
#[test]
fn wenet_wav_to_rescored_text_matches_reference() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    if !shared.exists() {
        eprintln!("skipping: ../shared not found");
        return;
    }
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let m = meta(&dir);
        let wav = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(m["wav"].as_str().unwrap());
        let samples: Vec<f32> = hark_audio::load_audio(&wav)
            .expect("decode wav")
            .iter()
            .map(|s| s * 32768.0)
            .collect();
        let fbank = hark_audio::features::FrameComputer::new(
            hark_audio::features::FbankOptions::with_bins(80),
        )
        .unwrap()
        .compute(&samples)
        .unwrap();
        let mut feats = fbank.data.clone();
        model.apply_cmvn(&mut feats).unwrap();
        let want = take(&mut golden(&dir), "feats");
        let worst = feats
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 2e-4,
            "{}: features differ by {worst}",
            dir.display()
        );
        let enc = model.encode(&feats).unwrap();
        let hyps = model
            .ctc_attention_rescoring(
                &enc,
                m["beam"].as_u64().unwrap() as usize,
                m["ctc_weight"].as_f64().unwrap() as f32,
            )
            .unwrap();
        assert_eq!(hyps[0].tokens, tokens(&m["best"]), "{}", dir.display());
        let tok = FireRedTokenizer::from_model_dir(&dir, &model.config).expect("tokenizer");
        let text = tok.detokenize(&hyps[0].tokens);
        assert!(!text.is_empty() && !text.contains('▁'), "{text:?}");
    }
}
