//! A forced prefix on a conformer-AED model (`TranscribeOptions::prefix`, what live
//! dictation uses to keep final text while an utterance continues): with the built-in
//! `an4-conformer` (CTC head) on real AN4 test utterances (`../shared/data/an4/test`;
//! skipped with a message when absent), the text after a prefix the model itself
//! produced is the rest of its free decode, and a prefix the audio does not support is
//! kept while the rest is still decoded.

use hark_models::recognizer::Recognizer;
use hark_models::store::{ModelStore, NoProgress};
use hark_models::whisper::TranscribeOptions;
use hark_test_support::shared_path;

/// Utterances of a few words each (commands followed by spelled letters and numbers).
const UTTERANCES: &[&str] = &[
    "an391-mjwl-b",
    "an398-miry-b",
    "cen3-menk-b",
    "an406-fcaw-b",
];

#[test]
fn conformer_continues_after_a_forced_prefix_of_its_own_words() {
    let Some(test) = shared_path("data/an4/test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = ModelStore::at(tmp.path().join("models"))
        .ensure("an4-conformer", &NoProgress)
        .unwrap();
    let rec = Recognizer::load(&dir, None).unwrap();
    let Recognizer::ConformerAed(asr) = &rec else {
        panic!("an4-conformer is not a conformer-AED model")
    };
    assert!(asr.accepts_prefix(), "an4-conformer has a CTC head");
    let free_opts = TranscribeOptions::default();
    let mut checked = 0;
    for id in UTTERANCES {
        let samples = hark_audio::load_audio(&test.join(format!("{id}.flac"))).unwrap();
        let free = rec.text(&samples, &free_opts).unwrap();
        let words: Vec<&str> = free.split_whitespace().collect();
        assert!(words.len() >= 2, "{id}: {free}");
        for k in 1..words.len() {
            let opts = TranscribeOptions {
                prefix: Some(words[..k].join(" ")),
                ..TranscribeOptions::default()
            };
            let rest = rec.text(&samples, &opts).unwrap();
            assert_eq!(
                rest,
                words[k..].join(" "),
                "{id} after {k} words of `{free}`"
            );
            // ... by the constrained search, not the free-decode fallback.
            let piece = asr
                .decode_piece_after(&samples, 5, &words[..k].join(" "))
                .unwrap();
            assert!(piece.prefix_forced, "{id}: prefix of {k} words not forced");
            assert_eq!(piece.text, rest);
            checked += 1;
        }
        // A prefix the audio does not say: kept (not repeated in the output), the rest
        // of the utterance still decoded.
        let opts = TranscribeOptions {
            prefix: Some("GO".into()),
            ..TranscribeOptions::default()
        };
        let rest = rec.text(&samples, &opts).unwrap();
        assert!(!rest.is_empty(), "{id}: nothing after a wrong prefix");
    }
    assert!(checked >= 8);
}
