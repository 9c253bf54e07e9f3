//! FireRedASR tokenizer (dict.txt + SentencePiece BPE read from the protobuf) against the
//! reference `ChineseCharEnglishSpmTokenizer` and the `sentencepiece` package, using the
//! fixtures written by `scripts/conformer/make_fixtures.py`.

use std::path::Path;

use hark_models::conformer_aed::tokenizer::sentencepiece::SentencePieceModel;
use hark_models::conformer_aed::FireRedTokenizer;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer/tokenizer")
}

#[test]
fn fireredasr_tokenizer_matches_reference_pieces_ids_and_text() {
    let d = dir();
    let tok = FireRedTokenizer::load(&d.join("dict.txt"), &d.join("train_bpe60.model")).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("golden.json")).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let (pieces, ids) = tok.tokenize(text);
        let want_pieces: Vec<&str> = c["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        let want_ids: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(pieces, want_pieces, "pieces of {text:?}");
        assert_eq!(ids, want_ids, "ids of {text:?}");
        assert_eq!(
            tok.detokenize(&ids),
            c["detok"].as_str().unwrap(),
            "detokenize of {text:?}"
        );
    }
}

#[test]
fn sentencepiece_protobuf_reader_reads_vocab_and_merges_unknown_runs() {
    let spm = SentencePieceModel::load(&dir().join("train_bpe60.model")).unwrap();
    assert_eq!(spm.len(), 60);
    assert_eq!(spm.id_to_piece(0), Some("<unk>"));
    assert_eq!(spm.normalizer(), "identity");
    // Values from the sentencepiece package: encode_as_pieces('AÉÉB') and encode(...).
    assert_eq!(spm.encode_as_pieces("AÉÉB"), ["\u{2581}A", "ÉÉ", "B"]);
    assert_eq!(spm.encode("AÉÉB"), [18, 0, 50]);
    assert_eq!(
        spm.encode_as_pieces(" A  B "),
        ["\u{2581}A", "\u{2581}", "B"]
    );
    assert_eq!(spm.decode(&spm.encode("ENTER TWO")), "ENTER TWO");
}

#[test]
fn sentencepiece_rejects_truncated_protobuf() {
    let bytes = std::fs::read(dir().join("train_bpe60.model")).unwrap();
    let err = SentencePieceModel::from_bytes(&bytes[..bytes.len() / 2], "half.model").unwrap_err();
    assert!(err.to_string().contains("half.model"), "{err}");
}
