//! conformer_aed against FireRedASR's reference code, stage by stage.
//!
//! Fixtures: `models/tests/fixtures/conformer/<config>/`, produced by
//! `scripts/conformer/make_fixtures.py` (random tiny models built with the reference classes,
//! saved as real checkpoints, converted by `scripts/convert_fireredasr.py`, run on the
//! reference's fbank + CMVN of an AN4 test file). Weights are f16-representable, so the f16
//! storage is lossless and every stage must match the f32 reference within 1e-4 (relative to
//! max(|reference|, 1)); n-best token sequences must match exactly.
//!
//! `firered_causal_d32_k7` is a streaming model (causal convolutions,
//! `scripts/conformer/streaming.py`); its fixture also holds the reference's encoder and
//! search with a chunk attention mask (`chunk<c>.*`).

mod conformer_common;

use std::path::{Path, PathBuf};

use conformer_common::{
    assert_close, assert_encoder_stages, golden, load, meta, prefix, take, wav_features,
};
use hark_models::conformer_aed::{BeamSearchOptions, ConformerAed};
use hark_test_support::fixtures::json_u32s;
use hark_test_support::{max_abs_diff, nmse, shared_dir};

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer")
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = fixture_root();
    let dirs: Vec<PathBuf> = [
        "firered_d32_k15",
        "firered_d32_h2_k7",
        "firered_causal_d32_k7",
    ]
    .iter()
    .map(|n| root.join(n))
    .collect();
    for d in &dirs {
        assert!(
            d.join("config.json").exists(),
            "missing fixture {}",
            d.display()
        );
    }
    dirs
}

#[test]
fn conformer_encoder_stages_match_fireredasr() {
    for dir in fixture_dirs() {
        let (model, mut g, enc) = load(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_encoder_stages(&name, "encoder output", &model, &enc, &mut g);
        let mask = g.take_any("encoder_mask").unwrap().ints;
        assert_eq!(enc.frames, mask.len(), "{name}: encoder frames");
        assert_eq!(
            enc.valid,
            mask.iter().filter(|&&m| m == 1).count(),
            "{name}: valid frames"
        );
    }
}

#[test]
fn conformer_decoder_kv_cache_logits_match_fireredasr_full_recompute() {
    for dir in fixture_dirs() {
        let (model, mut g, enc) = load(&dir);
        let prefix = prefix(&mut g);
        let logits = model.decoder_logits(&enc, &prefix).expect("decode");
        assert_close(
            &format!("{} decoder logits", dir.display()),
            &logits,
            &take(&mut g, "decoder.logits"),
        );
    }
}

/// The reference's search options: `res` (one entry of `meta["results"]`) gives the beam
/// and n-best sizes, `meta` the scoring options.
fn search_options(meta: &serde_json::Value, res: &serde_json::Value) -> BeamSearchOptions {
    BeamSearchOptions {
        beam_size: res["beam_size"].as_u64().unwrap() as usize,
        nbest: res["nbest"].as_u64().unwrap() as usize,
        decode_max_len: 0,
        softmax_smoothing: meta["softmax_smoothing"].as_f64().unwrap() as f32,
        length_penalty: meta["length_penalty"].as_f64().unwrap() as f32,
        eos_penalty: meta["eos_penalty"].as_f64().unwrap() as f32,
    }
}

fn check_nbest(key: &str) {
    for dir in fixture_dirs() {
        let (model, _, enc) = load(&dir);
        let meta = meta(&dir);
        let res = meta["results"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, v)| {
                (key == "beam1") == (k.as_str() == "beam1")
                    && !k.starts_with("chunk")
                    && v["beam_size"].as_u64().is_some()
            })
            .map(|(_, v)| v.clone())
            .unwrap();
        let opts = search_options(&meta, &res);
        let hyps = model.beam_search(&enc, &opts).expect("beam search");
        let want = res["hyps"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len(), "{}: n-best size", dir.display());
        for (i, (h, w)) in hyps.iter().zip(want).enumerate() {
            let toks = json_u32s(&w["tokens"]);
            assert_eq!(h.tokens, toks, "{} {key} hyp {i} tokens", dir.display());
            let s = w["score"].as_f64().unwrap() as f32;
            assert_close(
                &format!("{} {key} hyp {i} score", dir.display()),
                &[h.score],
                &[s],
            );
        }
    }
}

#[test]
fn conformer_beam_search_nbest_matches_fireredasr() {
    check_nbest("beam");
}

#[test]
fn conformer_greedy_search_matches_fireredasr() {
    check_nbest("beam1");
}

/// Whole pipeline from the wav: hark-audio's Kaldi fbank (int16 scale, 80 bins, dither 0)
/// followed by the model's CMVN must reproduce the reference's features (kaldi_native_fbank + CMVN),
/// and transcribing from them must give the reference's n-best.
#[test]
fn conformer_wav_to_nbest_matches_fireredasr_pipeline() {
    if shared_dir().is_none() {
        return;
    }
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        let meta = meta(&dir);
        let (fbank, feats) = wav_features(&model, &meta);
        let mut g = golden(&dir);
        let want = take(&mut g, "feats");
        assert_eq!(feats.len(), want.len(), "frames");
        let worst = max_abs_diff(&feats, &want);
        eprintln!("{}: max abs feature difference {worst}", dir.display());
        assert!(
            worst < 2e-4,
            "{}: features differ from the reference by {worst}",
            dir.display()
        );
        let res = meta["results"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() != "beam1" && !k.starts_with("chunk"))
            .unwrap()
            .1
            .clone();
        let opts = search_options(&meta, &res);
        let hyps = model.transcribe_fbank(&fbank, &opts).unwrap();
        for (h, w) in hyps.iter().zip(res["hyps"].as_array().unwrap()) {
            let toks = json_u32s(&w["tokens"]);
            assert_eq!(h.tokens, toks, "{}: n-best from wav", dir.display());
        }
    }
}

/// Streaming fixture: with a chunk attention mask, every encoder block, the encoder output
/// and the n-best of the beam search over it match the reference's masked forward
/// (`streaming.encode` + `batch_beam_search`); `ConformerAed::encode` after
/// `set_attention_chunk` gives the same output; and the mask changes the output (so the
/// comparison is not the full-context one again).
#[test]
fn conformer_chunk_attention_matches_reference() {
    let dir = fixture_root().join("firered_causal_d32_k7");
    let model = ConformerAed::load(&dir).expect("load");
    assert!(model.config.causal_conv, "fixture is a causal model");
    let meta = meta(&dir);
    let mut g = golden(&dir);
    let feats = take(&mut g, "feats");
    let full = take(&mut g, "encoder_out");
    let mut checked = 0;
    for (key, res) in meta["results"].as_object().unwrap() {
        let Some(chunk) = res["chunk"].as_u64().map(|c| c as usize) else {
            continue;
        };
        let enc = model
            .encoder
            .forward_chunked(&feats, chunk, true)
            .expect("encode");
        for i in 0..model.config.n_layers_enc {
            assert_close(
                &format!("{key} encoder block {i}"),
                &enc.stages[i + 1],
                &take(&mut g, &format!("chunk{chunk}.encoder.block{i}")),
            );
        }
        assert_close(
            &format!("{key} encoder output"),
            &enc.hidden,
            &take(&mut g, &format!("chunk{chunk}.encoder_out")),
        );
        let diff = max_abs_diff(&enc.hidden, &full);
        assert!(
            diff > 1e-2,
            "{key}: chunked output equals full context ({diff})"
        );
        let mut chunked = model.clone();
        chunked.set_attention_chunk(chunk);
        assert_eq!(chunked.attention_chunk(), chunk);
        assert_eq!(
            chunked.encode(&feats).expect("encode").hidden,
            enc.hidden,
            "{key}: ConformerAed::encode with the chunk set"
        );
        let hyps = model
            .beam_search(&enc, &search_options(&meta, res))
            .expect("beam search");
        let want = res["hyps"].as_array().unwrap();
        assert_eq!(hyps.len(), want.len(), "{key}: n-best size");
        for (i, (h, w)) in hyps.iter().zip(want).enumerate() {
            assert_eq!(h.tokens, json_u32s(&w["tokens"]), "{key} hyp {i} tokens");
            let s = w["score"].as_f64().unwrap() as f32;
            assert_close(&format!("{key} hyp {i} score"), &[h.score], &[s]);
        }
        checked += 1;
    }
    assert!(checked > 0, "no chunk results in {}", dir.display());
}

/// What chunk-by-chunk streaming relies on: with causal convolutions and a chunk mask, the
/// encoder output of the first chunks does not change when the audio after them is cut off
/// (keeping the subsampling's look-ahead of `pad_context` frames), for every cut point.
#[test]
fn conformer_chunked_causal_encoder_ignores_later_audio() {
    let dir = fixture_root().join("firered_causal_d32_k7");
    let model = ConformerAed::load(&dir).expect("load");
    let idim = model.config.idim;
    let mut g = golden(&dir);
    let feats = take(&mut g, "feats");
    let chunk = 4;
    let full = model
        .encoder
        .forward_chunked(&feats, chunk, false)
        .expect("encode");
    let d = model.config.d_model;
    let sub = model.encoder.subsampling();
    let frames = feats.len() / idim;
    let mut cuts = 0;
    for m in 1.. {
        let keep = sub * chunk * m + model.config.pad_context;
        if keep >= frames {
            break;
        }
        let part = model
            .encoder
            .forward_chunked(&feats[..keep * idim], chunk, false)
            .expect("encode prefix");
        let n = chunk * m * d;
        let diff = max_abs_diff(&part.hidden[..n], &full.hidden[..n]);
        assert!(
            diff < 1e-4,
            "first {m} chunks change by {diff} when the audio after them is cut"
        );
        cuts += 1;
    }
    assert!(cuts >= 3, "utterance too short for the check ({cuts} cuts)");
}

/// Incremental encoding (`ConformerEncoder::stream`): features pushed in uneven pieces give,
/// after every push, what `forward_chunked` gives for the features so far, and at the end
/// the reference's masked forward; the chunks kept for good are never recomputed.
#[test]
fn conformer_stream_matches_chunked_forward_and_reference() {
    let dir = fixture_root().join("firered_causal_d32_k7");
    let model = ConformerAed::load(&dir).expect("load");
    let idim = model.config.idim;
    let d = model.config.d_model;
    let mut g = golden(&dir);
    let feats = take(&mut g, "feats");
    let chunk = 4;
    let want = take(&mut g, &format!("chunk{chunk}.encoder_out"));
    let frames = feats.len() / idim;
    let enc = &model.encoder;
    let mut st = enc.stream(chunk).expect("stream");
    assert!(
        enc.stream_output(&mut st).is_err(),
        "no audio yet: too short to subsample"
    );
    let (mut at, mut checks, mut kept) = (0, 0, 0);
    for piece in [1usize, 2, 7, 3, 16, 5, 11, 1, 9].iter().cycle() {
        if at >= frames {
            break;
        }
        let end = (at + piece).min(frames);
        enc.stream_push(&mut st, &feats[at * idim..end * idim])
            .expect("push");
        at = end;
        assert_eq!(st.frames_in(), at);
        assert!(st.committed() >= kept, "kept chunks are never dropped");
        kept = st.committed();
        assert_eq!(kept % chunk, 0, "only whole chunks are kept");
        if enc.output_frames(at) == 0 {
            continue;
        }
        let got = enc.stream_output(&mut st).expect("output");
        let reference = enc
            .forward_chunked(&feats[..at * idim], chunk, false)
            .expect("chunked forward");
        assert_eq!((got.frames, got.valid), (reference.frames, reference.valid));
        let diff = max_abs_diff(&got.hidden, &reference.hidden);
        assert!(
            diff < 1e-4,
            "after {at} frames the stream differs from forward_chunked by {diff}"
        );
        checks += 1;
    }
    assert!(
        kept + 2 * chunk > enc.output_frames(frames),
        "{kept} of {} frames kept: whole chunks are kept as soon as their audio is in",
        enc.output_frames(frames)
    );
    assert!(checks >= 5, "{checks} checks");
    let got = enc.stream_output(&mut st).expect("output");
    assert_close("stream vs reference", &got.hidden, &want);
    assert_eq!(got.hidden.len() / d, got.frames);
    // Asking twice changes nothing (the unfinished chunk is not kept).
    let again = enc.stream_output(&mut st).expect("output");
    assert_eq!(again.hidden, got.hidden);
}

/// The stream refuses what it cannot do, naming why.
#[test]
fn conformer_stream_needs_a_causal_model_and_a_chunk() {
    let causal = ConformerAed::load(&fixture_root().join("firered_causal_d32_k7")).expect("load");
    let err = causal.encoder.stream(0).unwrap_err().to_string();
    assert!(err.contains("chunk"), "{err}");
    let mut st = causal.encoder.stream(4).expect("stream");
    let err = causal
        .encoder
        .stream_push(&mut st, &[0.0; 3])
        .unwrap_err()
        .to_string();
    assert!(err.contains("frames"), "{err}");
    for dir in fixture_dirs() {
        let model = ConformerAed::load(&dir).expect("load");
        if model.config.causal_conv {
            continue;
        }
        let err = model.encoder.stream(4).unwrap_err().to_string();
        assert!(err.contains("causal"), "{}: {err}", dir.display());
    }
}

/// Reduced-precision weights against the f32 reference: the fixtures' weights are
/// f16-exact, so f16 storage only changes the kernels' summation order (bound 1e-4, same as
/// f32); int8 (per-row symmetric) is bounded by a normalised error on the encoder output and
/// the decoder logits.
#[test]
fn conformer_f16_and_int8_weights_stay_close_to_reference() {
    use hark_models::conformer_aed::Precision;
    for dir in fixture_dirs() {
        let mut g = golden(&dir);
        let feats = take(&mut g, "feats");
        let want_enc = take(&mut g, "encoder_out");
        let prefix = prefix(&mut g);
        let want_logits = take(&mut g, "decoder.logits");
        for (p, bound) in [(Precision::F16, 1e-4f32), (Precision::Int8, 5e-2)] {
            let model = ConformerAed::load_with_precision(&dir, p).expect("load");
            let enc = model.encode(&feats).unwrap();
            let logits = model.decoder_logits(&enc, &prefix).unwrap();
            for (what, got, want) in [
                ("encoder", &enc.hidden, &want_enc),
                ("logits", &logits, &want_logits),
            ] {
                let nmse = nmse(got, want);
                eprintln!("{} {p:?} {what}: normalised MSE {nmse:e}", dir.display());
                assert!(
                    nmse <= f64::from(bound * bound),
                    "{} {p:?} {what}: normalised MSE {nmse} > {}",
                    dir.display(),
                    bound * bound
                );
            }
        }
    }
}
