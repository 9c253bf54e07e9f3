//! Reduced audio context (whisper.cpp's `--audio-ctx`) and cancellation of a Whisper
//! transcription. They need tiny.en in the model store (and ../shared for real speech)
//! and skip with a message otherwise.

mod whisper_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hark_models::whisper::{
    AudioCtxMode, Precision, Segment, TranscribeOptions, Whisper, WhisperError,
};

fn load() -> Option<Whisper> {
    let dir = whisper_common::model_dir("tiny.en")?;
    Some(Whisper::load(&dir, Precision::F16).expect("loading tiny.en"))
}

fn segments(w: &Whisper, samples: &[f32], opts: &TranscribeOptions) -> Vec<Segment> {
    let mut segs = Vec::new();
    w.transcribe(samples, opts, &mut |s| segs.push(s.clone()))
        .expect("transcription");
    segs
}

fn text(w: &Whisper, samples: &[f32], opts: &TranscribeOptions) -> String {
    segments(w, samples, opts)
        .iter()
        .map(|s| s.text.as_str())
        .collect()
}

/// The listen rule: encoder positions of the audio (padding frame included) + `margin`,
/// rounded up to 32.
fn ctx_for(samples: usize, margin: usize) -> usize {
    let positions = (samples / 160 + 1).div_ceil(2);
    ((positions + margin).div_ceil(32) * 32).min(1500)
}

/// The first `n` AN4 test utterances (samples), if ../shared is there.
fn an4(n: usize) -> Option<Vec<(String, Vec<f32>)>> {
    let utts = whisper_common::an4_test()?;
    Some(
        utts.into_iter()
            .take(n)
            .map(|(id, path, _)| (id, hark_audio::load_audio(&path).unwrap()))
            .collect(),
    )
}

#[test]
fn audio_ctx_1500_is_bit_identical_to_the_full_window() {
    let (Some(w), Some(utts)) = (load(), an4(2)) else {
        return;
    };
    let samples = &utts[0].1;
    let mel = w.features(samples).unwrap().pad_or_trim(3000);
    let full = w.model.encode(&mel.data).unwrap();
    let same = w.model.encode_with(&mel.data, Some(1500), None).unwrap();
    assert_eq!(full.frames, 1500);
    assert_eq!(same.frames, 1500);
    assert!(
        full.data
            .iter()
            .zip(&same.data)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "encoder outputs differ"
    );
    let opts = TranscribeOptions::default();
    let with = TranscribeOptions {
        audio_ctx: Some(1500),
        ..Default::default()
    };
    for (id, samples) in &utts {
        assert_eq!(
            segments(&w, samples, &opts),
            segments(&w, samples, &with),
            "{id}"
        );
    }
}

#[test]
fn reduced_audio_ctx_encodes_only_its_positions() {
    let (Some(w), Some(utts)) = (load(), an4(1)) else {
        return;
    };
    let mel = w.features(&utts[0].1).unwrap().pad_or_trim(3000);
    let out = w.model.encode_with(&mel.data, Some(160), None).unwrap();
    assert_eq!(out.frames, 160);
    assert_eq!(out.data.len(), 160 * w.model.dims().n_audio_state);
    assert!(out.data.iter().all(|v| v.is_finite()));
}

#[test]
fn reduced_audio_ctx_keeps_the_transcript_of_a_short_an4_utterance() {
    let (Some(w), Some(utts)) = (load(), an4(1)) else {
        return;
    };
    let (id, samples) = &utts[0];
    let full = text(&w, samples, &TranscribeOptions::default());
    for mode in [AudioCtxMode::Truncate, AudioCtxMode::Silence] {
        let ctx = ctx_for(samples.len(), 64);
        let opts = TranscribeOptions {
            audio_ctx: Some(ctx),
            audio_ctx_mode: mode,
            ..Default::default()
        };
        assert_eq!(full, text(&w, samples, &opts), "{id}: {mode:?} {ctx}");
    }
}

#[test]
fn silence_padded_audio_ctx_matches_the_full_window_on_most_an4_utterances() {
    let (Some(w), Some(utts)) = (load(), an4(8)) else {
        return;
    };
    let mut identical = 0;
    for (id, samples) in &utts {
        let ctx = ctx_for(samples.len(), 16);
        assert!(ctx < 1500, "{id}: AN4 utterances are short");
        let full = text(&w, samples, &TranscribeOptions::default());
        let reduced = text(
            &w,
            samples,
            &TranscribeOptions {
                audio_ctx: Some(ctx),
                audio_ctx_mode: AudioCtxMode::Silence,
                ..Default::default()
            },
        );
        eprintln!("{id} ctx {ctx}: {full:?} | {reduced:?}");
        identical += usize::from(full == reduced);
        // Never the repetitions of a truncated window ("Enter 8. Enter 8. Enter 8.").
        assert!(
            reduced.len() <= full.len() + 4,
            "{id}: {full:?} -> {reduced:?}"
        );
    }
    assert!(identical >= 6, "{identical}/8 identical");
}

#[test]
fn silence_padded_audio_ctx_of_the_whole_window_is_the_full_path() {
    let (Some(w), Some(utts)) = (load(), an4(1)) else {
        return;
    };
    let opts = TranscribeOptions {
        audio_ctx: Some(1500),
        audio_ctx_mode: AudioCtxMode::Silence,
        ..Default::default()
    };
    assert_eq!(
        segments(&w, &utts[0].1, &TranscribeOptions::default()),
        segments(&w, &utts[0].1, &opts)
    );
}

#[test]
fn invalid_audio_ctx_is_a_clear_error_not_a_panic() {
    let Some(w) = load() else {
        return;
    };
    let samples = vec![0.01f32; 16000];
    for bad in [0usize, 1501, usize::MAX] {
        let opts = TranscribeOptions {
            audio_ctx: Some(bad),
            ..Default::default()
        };
        let err = w.transcribe(&samples, &opts, &mut |_| {}).unwrap_err();
        assert!(matches!(err, WhisperError::Invalid(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("audio context {bad}")) && msg.contains("between 1 and 1500"),
            "{msg}"
        );
        let mel = vec![0f32; 80 * 3000];
        assert!(w.model.encode_with(&mel, Some(bad), None).is_err());
    }
}

#[test]
fn raised_cancel_flag_stops_the_encoder_and_the_transcription() {
    let (Some(w), Some(utts)) = (load(), an4(1)) else {
        return;
    };
    let flag = Arc::new(AtomicBool::new(true));
    let mel = w.features(&utts[0].1).unwrap().pad_or_trim(3000);
    let err = w
        .model
        .encode_with(&mel.data, None, Some(&flag))
        .unwrap_err();
    assert!(matches!(err, WhisperError::Cancelled), "{err}");
    let opts = TranscribeOptions {
        cancel: Some(flag),
        ..Default::default()
    };
    let mut got = 0;
    let err = w
        .transcribe(&utts[0].1, &opts, &mut |_| got += 1)
        .unwrap_err();
    assert!(matches!(err, WhisperError::Cancelled), "{err}");
    assert_eq!(got, 0);
}

#[test]
fn cancel_raised_mid_transcription_returns_cancelled_early() {
    let (Some(w), Some(utts)) = (load(), an4(40)) else {
        return;
    };
    // ~2 minutes of speech: many windows, seconds of work.
    let mut samples = Vec::new();
    for (_, s) in &utts {
        samples.extend_from_slice(s);
        samples.extend(std::iter::repeat_n(0.0f32, 8000));
    }
    let flag = Arc::new(AtomicBool::new(false));
    let opts = TranscribeOptions {
        cancel: Some(flag.clone()),
        ..Default::default()
    };
    let raiser = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::Relaxed);
        })
    };
    let mut segs = 0;
    let result = w.transcribe(&samples, &opts, &mut |_| segs += 1);
    raiser.join().unwrap();
    // Finishing would return Ok with every window's segments; a cancelled run stops
    // inside the first windows.
    let err = result.unwrap_err();
    assert!(matches!(err, WhisperError::Cancelled), "{err}");
    assert!(segs < 10, "{segs} segments emitted before stopping");
}
