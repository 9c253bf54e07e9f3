//! The evaluation loop with a stand-in transcriber.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use hark_models::eval::{
    evaluate, Dataset, DatasetFormat, DatasetSummary, EvalOptions, EvalReport, Normalizer,
    TranscribeError, Transcription, Utterance,
};

fn dataset() -> Dataset {
    let utt = |id: &str, text: &str| Utterance {
        id: id.into(),
        audio: PathBuf::from(format!("{id}.wav")),
        text: text.into(),
        segment: None,
        duration: Some(2.0),
    };
    Dataset {
        path: PathBuf::from("synthetic"),
        format: DatasetFormat::Jsonl,
        utterances: vec![
            utt("u1", "Hello world."),
            utt("u2", "The cat sat on the mat"),
            utt("u3", "twenty five dollars"),
            utt("u4", "fail here"),
        ],
        summary: DatasetSummary {
            utterances: 4,
            ..Default::default()
        },
    }
}

fn hyp(u: &Utterance) -> Result<Transcription, TranscribeError> {
    let text = match u.id.as_str() {
        "u1" => "hello world",
        "u2" => "the cat sat on mat",
        "u3" => "$25",
        _ => return Err("decoder exploded".into()),
    };
    Ok(Transcription {
        text: text.into(),
        audio_seconds: 2.0,
    })
}

#[test]
fn evaluate_scores_totals_and_reports_failures() {
    let ds = dataset();
    let mut seen = Vec::new();
    let cancel = AtomicBool::new(false);
    let opts = EvalOptions {
        normalizer: Normalizer::WhisperEn,
        limit: None,
    };
    let r = evaluate(
        &ds,
        &mut hyp,
        &opts,
        &mut |p| seen.push((p.done, p.total)),
        &cancel,
    );
    assert_eq!(seen, vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
    assert_eq!(r.scored, 3);
    assert_eq!(r.failed, 1);
    assert_eq!(r.utterances[3].error.as_deref(), Some("decoder exploded"));
    // u1: 2 words ok; u2: 6 ref words, 1 deletion; u3: "$25" both sides.
    assert_eq!(r.words.reference_len(), 9);
    assert_eq!(r.words.deletions, 1);
    assert_eq!(r.words.errors(), 1);
    assert!((r.wer - 1.0 / 9.0).abs() < 1e-12);
    assert!((r.ser - 1.0 / 3.0).abs() < 1e-12);
    assert!(!r.cancelled);
    assert_eq!(r.audio_seconds, 6.0);
    assert!(r.utterances[1]
        .alignment
        .iter()
        .any(|t| t.hypothesis.is_none()));
    // The report round-trips through JSON.
    let json = serde_json::to_string(&r).expect("serialise");
    let back: EvalReport = serde_json::from_str(&json).expect("deserialise");
    // (serde_json's default float parsing may differ in the last bit; compare the rest.)
    assert_eq!(back.utterances.len(), r.utterances.len());
    assert_eq!(back.utterances[1].alignment, r.utterances[1].alignment);
    assert_eq!(
        (back.words, back.chars, back.scored, back.failed),
        (r.words, r.chars, r.scored, r.failed)
    );
    assert!((back.wer - r.wer).abs() < 1e-12);
}

#[test]
fn evaluate_honours_limit_and_cancel_flag() {
    let ds = dataset();
    let cancel = AtomicBool::new(false);
    let opts = EvalOptions {
        normalizer: Normalizer::Basic,
        limit: Some(2),
    };
    let r = evaluate(&ds, &mut hyp, &opts, &mut |_| {}, &cancel);
    assert_eq!(r.utterances.len(), 2);
    assert!(!r.cancelled);

    let opts = EvalOptions {
        normalizer: Normalizer::Basic,
        limit: None,
    };
    let mut tr = |u: &Utterance| {
        if u.id == "u2" {
            cancel.store(true, Ordering::Relaxed);
        }
        hyp(u)
    };
    let flag = &cancel;
    let r = evaluate(&ds, &mut tr, &opts, &mut |_| {}, flag);
    assert!(r.cancelled);
    assert_eq!(r.utterances.len(), 2);
    assert_eq!(r.scored, 2);
}
