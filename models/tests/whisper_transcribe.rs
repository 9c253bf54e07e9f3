//! End-to-end Whisper transcription tests: long-form audio and bad inputs. They need
//! tiny.en in the model store and ../shared, and skip with a message otherwise.

mod whisper_common;

use std::path::Path;

use hark_models::whisper::{
    FileSource, Precision, SampleSource, Segment, TranscribeOptions, TranscriptionInfo, Whisper,
    WhisperError,
};

fn load(name: &str) -> Option<Whisper> {
    let dir = whisper_common::model_dir(name)?;
    Some(Whisper::load(&dir, Precision::F16).expect("loading the model"))
}

fn run(w: &Whisper, samples: &[f32], opts: &TranscribeOptions) -> Vec<Segment> {
    let mut segs = Vec::new();
    w.transcribe(samples, opts, &mut |s| segs.push(s.clone()))
        .expect("transcription");
    segs
}

fn words(text: &str) -> Vec<String> {
    text.to_uppercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn an4_utterances_transcribe_close_to_reference() {
    let (Some(w), Some(utts)) = (load("tiny.en"), whisper_common::an4_test()) else {
        return;
    };
    let mut exact = 0;
    for (id, path, refr) in utts.iter().take(4) {
        let samples = hark_audio::load_audio(path).unwrap();
        let segs = run(&w, &samples, &TranscribeOptions::default());
        let text: String = segs.iter().map(|s| s.text.as_str()).collect();
        // AN4 spells digits out while Whisper writes numerals: compare only words.
        let hyp: Vec<String> = words(&text)
            .into_iter()
            .filter(|x| !x.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let first_ref = words(refr)[0].clone();
        eprintln!("{id}: {text:?} | {refr}");
        if hyp.first() == Some(&first_ref) {
            exact += 1;
        }
    }
    assert!(
        exact >= 3,
        "the first word (command) should match on most utterances"
    );
}

/// ~3 minutes of AN4 speech (utterances joined with 0.5 s of silence).
/// `max_new_tokens` (faster-whisper's option) stops each window's decode after that many
/// generated tokens: a greedy decode capped at 3 tokens is the first 3 tokens of the
/// uncapped one.
#[test]
fn max_new_tokens_caps_the_decode_at_its_first_tokens() {
    let (Some(w), Some(utts)) = (load("tiny.en"), whisper_common::an4_test()) else {
        return;
    };
    let samples = hark_audio::load_audio(&utts[0].1).unwrap();
    let greedy = TranscribeOptions {
        beam_size: 1,
        temperatures: vec![0.0],
        without_timestamps: true,
        no_speech_threshold: None,
        ..Default::default()
    };
    let tokens = |opts: &TranscribeOptions| -> Vec<u32> {
        run(&w, &samples, opts)
            .iter()
            .flat_map(|s| s.tokens.clone())
            .collect()
    };
    let full = tokens(&greedy);
    assert!(full.len() > 3, "uncapped decode: {full:?}");
    let capped = tokens(&TranscribeOptions {
        max_new_tokens: Some(3),
        ..greedy.clone()
    });
    assert_eq!(capped, full[..3].to_vec());
}

fn long_audio() -> Option<(Vec<f32>, Vec<String>)> {
    let utts = whisper_common::an4_test()?;
    let mut samples = Vec::new();
    let mut refs = Vec::new();
    for (_, path, refr) in utts {
        samples.extend(hark_audio::load_audio(&path).ok()?);
        samples.extend(std::iter::repeat_n(0.0f32, 8000));
        refs.push(refr);
        if samples.len() >= 180 * 16000 {
            break;
        }
    }
    Some((samples, refs))
}

#[test]
fn long_form_three_minutes_is_transcribed_completely_with_monotonic_timestamps() {
    let (Some(w), Some((samples, refs))) = (load("tiny.en"), long_audio()) else {
        return;
    };
    let duration = samples.len() as f64 / 16000.0;
    assert!(duration >= 180.0);
    let segs = run(&w, &samples, &TranscribeOptions::default());
    assert!(!segs.is_empty());
    let mut prev_start = 0.0;
    let mut prev_end = 0.0f64;
    let mut max_gap = 0.0f64;
    for s in &segs {
        assert!(s.start >= prev_start - 1e-9, "start times go back: {s:?}");
        assert!(s.end >= s.start, "segment ends before it starts: {s:?}");
        assert!(s.end <= duration + 1.0, "segment past the end: {s:?}");
        max_gap = max_gap.max(s.start - prev_end);
        prev_start = s.start;
        prev_end = prev_end.max(s.end);
    }
    let last = segs.last().map_or(0.0, |s| s.end);
    assert!(
        last >= duration - 15.0,
        "transcript stops at {last:.1}s of {duration:.1}s"
    );
    assert!(
        max_gap < 15.0,
        "a {max_gap:.1}s stretch of speech has no transcript (dropped window?)"
    );
    // no repetition loops: no segment text repeated 3+ times in a row, no window
    // accepted above the compression-ratio threshold
    for win in segs.windows(3) {
        assert!(
            !(win[0].text == win[1].text && win[1].text == win[2].text),
            "repetition loop: {:?}",
            win[0].text
        );
    }
    assert!(segs
        .iter()
        .all(|s| s.compression_ratio <= 2.4 || s.temperature > 0.0));
    // word count near the reference's (numerals count one word per digit, as spelled)
    let hyp: usize = segs
        .iter()
        .flat_map(|s| words(&s.text))
        .map(|w| {
            if w.chars().all(|c| c.is_ascii_digit()) {
                w.len()
            } else {
                1
            }
        })
        .sum();
    let refw: usize = refs.iter().map(|r| words(r).len()).sum();
    let ratio = hyp as f64 / refw as f64;
    eprintln!(
        "{} segments, {hyp} words vs {refw} reference words, last end {last:.1}s / {duration:.1}s",
        segs.len()
    );
    assert!(
        (0.6..1.4).contains(&ratio),
        "hypothesis/reference word ratio {ratio:.2}"
    );
}

/// Hands out a signal in chunks of an awkward size (not a multiple of the hop).
struct Chunked<'a> {
    samples: &'a [f32],
    chunk: usize,
    pos: usize,
}

impl SampleSource for Chunked<'_> {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, WhisperError> {
        let n = max.min(self.chunk).min(self.samples.len() - self.pos);
        out.extend_from_slice(&self.samples[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
    fn rewind(&mut self) -> Result<(), WhisperError> {
        self.pos = 0;
        Ok(())
    }
}

#[test]
fn streamed_transcription_equals_whole_signal_features() {
    let (Some(w), Some((samples, _))) = (load("tiny.en"), long_audio()) else {
        return;
    };
    // Greedy keeps the test short; the feature path is what is compared.
    let opts = TranscribeOptions {
        beam_size: 1,
        silence_rms_threshold: None,
        ..Default::default()
    };
    let mut whole = Vec::new();
    let mel = w.features(&samples).expect("features");
    w.transcribe_mel(&mel, &opts, &mut TranscriptionInfo::default(), &mut |s| {
        whole.push(s.clone())
    })
    .expect("whole-signal transcription");
    let mut src = Chunked {
        samples: &samples,
        chunk: 7919,
        pos: 0,
    };
    let mut streamed = Vec::new();
    let info = w
        .transcribe_stream(&mut src, &opts, &mut |s| streamed.push(s.clone()))
        .expect("streamed transcription");
    assert!(whole.len() > 10, "{} segments", whole.len());
    assert_eq!(streamed, whole);
    // 7919-sample reads: one window + context + one read at most
    assert!(info.max_buffered_samples <= 3004 * 160 + 7919 + 1);
    assert!((info.duration - samples.len() as f64 / 16000.0).abs() < 1e-9);
}

#[test]
fn file_source_gives_the_transcript_of_the_loaded_samples() {
    let (Some(w), Some(utts)) = (load("tiny.en"), whisper_common::an4_test()) else {
        return;
    };
    let path = &utts[3].1;
    let opts = TranscribeOptions::default();
    let loaded = run(&w, &hark_audio::load_audio(path).expect("decoding"), &opts);
    let mut streamed = Vec::new();
    let mut src = FileSource::open(path).expect("opening");
    w.transcribe_stream(&mut src, &opts, &mut |s| streamed.push(s.clone()))
        .expect("streamed transcription");
    assert!(!loaded.is_empty());
    assert_eq!(streamed, loaded);
    let err = FileSource::open(Path::new("/nonexistent/x.flac")).unwrap_err();
    assert!(matches!(err, WhisperError::Audio(_)), "{err}");
}

#[test]
fn silence_only_audio_gives_an_empty_transcript() {
    let Some(w) = load("tiny.en") else { return };
    let silence = vec![0.0f32; 16000 * 20];
    let segs = run(&w, &silence, &TranscribeOptions::default());
    let text: String = segs.iter().map(|s| s.text.trim()).collect();
    assert!(text.is_empty(), "hallucinated text on silence: {text:?}");
    // very quiet noise too
    let mut x = 12345u32;
    let noise: Vec<f32> = (0..16000 * 10)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 1e-4
        })
        .collect();
    let segs = run(&w, &noise, &TranscribeOptions::default());
    let text: String = segs.iter().map(|s| s.text.trim()).collect();
    assert!(
        text.is_empty(),
        "hallucinated text on faint noise: {text:?}"
    );
}

#[test]
fn very_short_and_empty_clips_are_handled() {
    let Some(w) = load("tiny.en") else { return };
    let tone: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.1).sin() * 0.3).collect();
    let segs = run(&w, &tone, &TranscribeOptions::default());
    for s in &segs {
        assert!(s.end <= 1.0, "segment beyond a 0.1 s clip: {s:?}");
    }
    let segs = run(&w, &[], &TranscribeOptions::default());
    assert!(segs.is_empty());
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let err = Whisper::load(Path::new("/nonexistent/hark-model"), Precision::F16).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/hark-model"), "{err}");
}

#[test]
fn corrupt_model_file_is_a_clear_error() {
    let Some(dir) = whisper_common::model_dir("tiny.en") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    // garbage
    std::fs::write(
        tmp.path().join("model.safetensors"),
        b"this is not a safetensors file",
    )
    .unwrap();
    let err = Whisper::load(tmp.path(), Precision::F16).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
    // truncated: valid header, data cut short
    let full = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(
        tmp.path().join("model.safetensors"),
        &full[..full.len() / 2],
    )
    .unwrap();
    let err = Whisper::load(tmp.path(), Precision::F16).unwrap_err();
    assert!(
        matches!(
            err,
            WhisperError::Engine(hark_engine::Error::SafetensorsFormat { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("file truncated"), "{err}");
}

#[test]
fn undecodable_audio_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("broken.wav");
    std::fs::write(&p, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk").unwrap();
    let err = hark_audio::load_audio(&p).unwrap_err();
    assert!(err.to_string().contains("broken.wav"), "{err}");
}

#[test]
fn non_finite_samples_are_rejected() {
    let Some(w) = load("tiny.en") else { return };
    let mut x = vec![0.0f32; 16000];
    x[100] = f32::NAN;
    let err = w
        .transcribe(&x, &TranscribeOptions::default(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, WhisperError::Audio(_)), "{err}");
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

/// Near silence with a faint hum, generated on the fly.
struct Hum {
    total: usize,
    pos: usize,
}

impl SampleSource for Hum {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, WhisperError> {
        let n = max.min(self.total - self.pos);
        out.extend((self.pos..self.pos + n).map(|i| (i as f32 * 0.03).sin() * 2e-4));
        self.pos += n;
        Ok(n)
    }
    fn rewind(&mut self) -> Result<(), WhisperError> {
        self.pos = 0;
        Ok(())
    }
}

/// A 2-hour recording (near silence with a faint hum) streamed from a generated
/// source: it never exists in memory as a whole (460 MB as f32), features are computed
/// window by window, and nothing is hallucinated.
#[test]
#[ignore = "2 hours of audio: ~1 minute in release mode"]
fn two_hour_audio_is_streamed_in_bounded_memory() {
    let Some(w) = load("tiny.en") else { return };
    let mut src = Hum {
        total: 16000 * 7200,
        pos: 0,
    };
    let before = peak_rss_mb().unwrap_or(0.0);
    let mut count = 0;
    let info = w
        .transcribe_stream(&mut src, &TranscribeOptions::default(), &mut |_| count += 1)
        .unwrap();
    let after = peak_rss_mb().unwrap_or(0.0);
    assert_eq!(count, 0, "text hallucinated on a near-silent recording");
    assert_eq!(info.windows, 240);
    assert!(info.max_buffered_samples <= 3004 * 160 + 160_000 + 1);
    // the samples alone would be 460 MB, whole-file features 230 MB
    assert!(
        after - before < 60.0,
        "peak RSS grew by {:.0} MB",
        after - before
    );
}
