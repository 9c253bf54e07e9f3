//! End to end with the built-in `an4-conformer` model: the model compiled into the binary is
//! installed into a (temporary) store on first use, loaded through the family-agnostic
//! [`Recognizer`], and transcribes real AN4 test utterances (`../shared/data/an4/test`; the
//! transcription test is skipped with a message when that directory is absent).
//!
//! The model is trained by `scripts/train_an4.py` (see `models/builtin/an4-conformer/README.md`).

use std::path::Path;

use hark_models::eval::{score_pair, Normalizer};
use hark_models::recognizer::{Family, Recognizer};
use hark_models::store::builtin::embedded;
use hark_models::store::{ModelStore, NoProgress};
use hark_models::whisper::TranscribeOptions;
use hark_test_support::shared_path;

const NAME: &str = "an4-conformer";

/// AN4 test utterances checked against their reference transcripts (the data set's `text`):
/// commands, spelled words and numbers that the shipped model gets right at f32, f16 and int8
/// (hark equals the PyTorch reference decode, `scripts/an4/ref_decode.py`, on all 130 test
/// utterances at f32 and f16). The model's test WER is 7.12%, so not every utterance would pass.
const UTTERANCES: &[&str] = &[
    "an391-mjwl-b",
    "an399-miry-b",
    "cen1-marh-b",
    "cen3-menk-b",
    "cen4-mdms2-b",
];

/// Upper bounds on the whole AN4 test set's WER (upper-case words, `hark eval --normalizer
/// upper`) at full context and with 640 ms chunks (`--chunk-ms 640`: the streaming model's
/// chunk attention mask, encoded incrementally). The shipped model measures 7.12% (55 errors
/// in 773 words) at f32 and f16, 7.37% at int8, and 9.57% (74 errors) with 640 ms chunks; the
/// bounds leave 5 words of slack for floating-point differences between CPUs, and fail on any
/// real regression of the conformer path (features, encoder, CTC search, rescoring, chunking).
const MAX_TEST_WER: f64 = 0.078;
const MAX_TEST_WER_640MS: f64 = 0.103;

/// `<id> <transcript>` lines of a Kaldi `text` file.
fn references(test: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(test.join("text"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, t)| (id.to_string(), t.trim().to_string()))
        .collect()
}

/// The built-in model installed from the binary into a fresh temporary store and loaded
/// (the store's directory lives as long as the returned guard).
fn installed_recognizer() -> (tempfile::TempDir, Recognizer) {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let dir = store.ensure(NAME, &NoProgress).unwrap();
    let rec = Recognizer::load(&dir, None).unwrap();
    (tmp, rec)
}

#[test]
fn embedded_an4_conformer_installs_on_first_use_and_is_reinstalled_when_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    assert!(!store.is_installed(NAME));
    let dir = store.ensure(NAME, &NoProgress).unwrap();
    assert_eq!(dir, store.model_dir(NAME));
    let model = embedded(NAME).unwrap();
    assert!(model.is_installed_in(&dir));
    let info = store.info(NAME).unwrap();
    assert_eq!(info.config.family(), Family::ConformerAed);
    assert_eq!(info.size_bytes, model.size_bytes());

    // A damaged (or older) installed copy is replaced by the embedded files.
    std::fs::write(dir.join("dict.txt"), "<blank> 0\n").unwrap();
    assert!(!model.is_installed_in(&dir));
    let again = store.ensure(NAME, &NoProgress).unwrap();
    assert_eq!(again, dir);
    assert!(model.is_installed_in(&dir));
}

#[test]
fn an4_conformer_transcribes_an4_test_utterances() {
    let Some(test) = shared_path("data/an4/test") else {
        return;
    };
    let (_tmp, rec) = installed_recognizer();
    assert_eq!(rec.family(), Family::ConformerAed);
    let opts = TranscribeOptions::default();
    let refs = references(&test);
    for id in UTTERANCES {
        let samples = hark_audio::load_audio(&test.join(format!("{id}.flac"))).unwrap();
        let text = rec.text(&samples, &opts).unwrap();
        assert_eq!(text.trim(), refs[*id], "utterance {id}");
    }
}

/// The test set's WER with `chunk_ms` (0 = full context).
fn test_set_wer(test: &Path, chunk_ms: u32) -> f64 {
    let (_tmp, mut rec) = installed_recognizer();
    rec.set_chunk_ms(chunk_ms).unwrap();
    let opts = TranscribeOptions::default();
    let refs = references(test);
    assert_eq!(refs.len(), 130, "AN4 test has 130 utterances");
    let (mut errors, mut words) = (0usize, 0usize);
    for (id, reference) in &refs {
        let samples = hark_audio::load_audio(&test.join(format!("{id}.flac"))).unwrap();
        let text = rec.text(&samples, &opts).unwrap();
        let score = score_pair(
            &Normalizer::Upper.apply(reference),
            &Normalizer::Upper.apply(&text),
        );
        errors += score.words.errors();
        words += score.words.reference_len();
    }
    let wer = errors as f64 / words as f64;
    eprintln!(
        "an4-conformer AN4 test WER at chunk {chunk_ms} ms: {:.2}% ({errors}/{words})",
        100.0 * wer
    );
    assert_eq!(words, 773);
    wer
}

#[test]
fn an4_conformer_test_set_wer_stays_at_the_measured_figure() {
    let Some(test) = shared_path("data/an4/test") else {
        return;
    };
    for (chunk_ms, bound) in [(0, MAX_TEST_WER), (640, MAX_TEST_WER_640MS)] {
        let wer = test_set_wer(&test, chunk_ms);
        assert!(
            wer <= bound,
            "AN4 test WER {:.2}% above {:.1}% (chunk {chunk_ms} ms)",
            100.0 * wer,
            100.0 * bound
        );
    }
}
