//! End to end with the built-in `an4-conformer` model: the model compiled into the binary is
//! installed into a (temporary) store on first use, loaded through the family-agnostic
//! [`Recognizer`], and transcribes real AN4 test utterances (`../shared/data/an4/test`; the
//! transcription test is skipped with a message when that directory is absent).
//!
//! The model is trained by `scripts/train_an4.py` (see `models/builtin/an4-conformer/README.md`).

use std::path::{Path, PathBuf};

use hark_models::recognizer::{Family, Recognizer};
use hark_models::store::builtin::embedded;
use hark_models::store::{ModelStore, NoProgress};
use hark_models::whisper::TranscribeOptions;

const NAME: &str = "an4-conformer";

/// AN4 test utterances checked against their reference transcripts (the data set's `text`):
/// ones the shipped model gets right at f32, f16 and int8 and on which hark equals the
/// PyTorch reference decode (`scripts/an4/ref_decode.py`). The model is weak (test WER ~79%,
/// see its README), so most utterances would not pass.
const UTTERANCES: &[&str] = &[
    "an436-mjgm-b",
    "cen5-marh-b",
    "cen6-menk-b",
    "an402-mdms2-b",
];

/// `<id> <transcript>` lines of a Kaldi `text` file.
fn references(test: &Path) -> std::collections::HashMap<String, String> {
    std::fs::read_to_string(test.join("text"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, t)| (id.to_string(), t.trim().to_string()))
        .collect()
}

fn an4_test_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/an4/test");
    dir.is_dir().then_some(dir)
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
    let Some(test) = an4_test_dir() else {
        eprintln!("skipping: ../shared not found (AN4 test set)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = ModelStore::at(tmp.path().join("models"));
    let dir = store.ensure(NAME, &NoProgress).unwrap();
    let rec = Recognizer::load(&dir, None).unwrap();
    assert_eq!(rec.family(), Family::ConformerAed);
    let opts = TranscribeOptions::default();
    let refs = references(&test);
    for id in UTTERANCES {
        let samples = hark_audio::load_audio(&test.join(format!("{id}.flac"))).unwrap();
        let text = rec.text(&samples, &opts).unwrap();
        assert_eq!(text.trim(), refs[*id], "utterance {id}");
    }
}
