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

/// WeNet/ESPnet unit lists: with the BPE model named in config.json, text goes through
/// SentencePiece and back; detokenizing joins units and turns "▁" into spaces.
#[test]
fn wenet_units_with_bpe_round_trip_text() {
    use hark_models::conformer_aed::ConformerConfig;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conformer_wenet/wenet_bn_k15");
    let cfg = ConformerConfig::load(&dir.join("config.json")).unwrap();
    assert_eq!(cfg.dict, "units.txt");
    let tok = FireRedTokenizer::from_model_dir(&dir, &cfg).unwrap();
    let (pieces, ids) = tok.tokenize("two five seven");
    assert!(pieces.iter().any(|p| p.starts_with('▁')), "{pieces:?}");
    assert!(!ids.contains(&1), "no <unk> for AN4 words: {pieces:?}");
    assert_eq!(tok.detokenize(&ids), "TWO FIVE SEVEN");
}

/// A unit list without a BPE model (`spm_model: ""`): words found in the list are one
/// unit, others are split into characters (`<unk>` when absent).
#[test]
fn units_only_tokenizer_looks_up_words_then_characters() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("units.txt");
    std::fs::write(
        &p,
        "<blank> 0\n<unk> 1\nHELLO 2\nW 3\nO 4\nR 5\nL 6\nD 7\n<sos/eos> 8\n",
    )
    .unwrap();
    let tok = FireRedTokenizer::load_units(&p).unwrap();
    let (pieces, ids) = tok.tokenize("hello world!");
    assert_eq!(pieces, ["HELLO", "W", "O", "R", "L", "D"]);
    assert_eq!(ids, [2, 3, 4, 5, 6, 7]);
    let (_, ids) = tok.tokenize("xyz");
    assert_eq!(ids, [1, 1, 1]);
    assert_eq!(tok.detokenize(&[2, 3, 4]), "HELLOWO");
}
