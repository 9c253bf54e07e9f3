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

mod conformer_common;

use std::path::{Path, PathBuf};

use conformer_common::{
    assert_close, assert_encoder_stages, golden, load, meta, prefix, take, wav_features,
};
use hark_models::conformer_aed::{ConformerAed, FireRedTokenizer};
use hark_test_support::fixtures::json_u32s;
use hark_test_support::{max_abs_diff, shared_dir};
const CONFIGS: [&str; 3] = [
    "wenet_bn_k15",
    "espnet_latest_sub6_k7",
    "espnet_legacy_sub8_k31",
];

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer_wenet");
    CONFIGS.iter().map(|n| root.join(n)).collect()
}

#[test]
fn wenet_espnet_encoder_stages_match_reference() {
    for dir in fixture_dirs() {
        let (model, mut g, enc) = load(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_encoder_stages(&name, "encoder output (after_norm)", &model, &enc, &mut g);
        assert_eq!(
            enc.valid, enc.frames,
            "{name}: no padding without context frames"
        );
    }
}

#[test]
fn wenet_espnet_decoder_logits_match_reference() {
    for dir in fixture_dirs() {
        let (model, mut g, enc) = load(&dir);
        let prefix = prefix(&mut g);
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
        let (model, mut g, enc) = load(&dir);
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
        let (model, _, enc) = load(&dir);
        let m = meta(&dir);
        let beam = m["beam"].as_u64().unwrap() as usize;
        let hyps = model.ctc_prefix_beam_search(&enc, beam).unwrap();
        let want = m["ctc_nbest"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len(), "{}: n-best size", dir.display());
        for (i, (h, w)) in hyps.iter().zip(want).enumerate() {
            assert_eq!(
                h.tokens,
                json_u32s(&w["tokens"]),
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
        let (model, _, enc) = load(&dir);
        let m = meta(&dir);
        let beam = m["beam"].as_u64().unwrap() as usize;
        let w = m["ctc_weight"].as_f64().unwrap() as f32;
        let hyps = model.ctc_attention_rescoring(&enc, beam, w).unwrap();
        let want = m["rescored"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len());
        for r in want {
            let toks = json_u32s(&r["tokens"]);
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
            json_u32s(&m["best"]),
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
    if shared_dir().is_none() {
        return;
    }
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let m = meta(&dir);
        let (_, feats) = wav_features(&model, &m);
        let want = take(&mut golden(&dir), "feats");
        let worst = max_abs_diff(&feats, &want);
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
        assert_eq!(hyps[0].tokens, json_u32s(&m["best"]), "{}", dir.display());
        let tok = FireRedTokenizer::from_model_dir(&dir, &model.config).expect("tokenizer");
        let text = tok.detokenize(&hyps[0].tokens);
        assert!(!text.is_empty() && !text.contains('▁'), "{text:?}");
    }
}
