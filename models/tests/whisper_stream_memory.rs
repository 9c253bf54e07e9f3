//! Long inputs are transcribed from a chunked source in bounded memory: a generated
//! 20-minute recording (digital silence with an AN4 utterance every 4 minutes) never
//! exists in memory as a whole, and the peak RSS grows by far less than its samples
//! (77 MB as f32) or its whole-file features (38 MB) would take. One test per binary,
//! so that no other test moves the process's peak RSS meanwhile. Needs tiny.en and
//! ../shared (skips otherwise); meant for release mode (`./x test`, CI).

mod whisper_common;

use hark_models::whisper::{
    Precision, SampleSource, Segment, TranscribeOptions, Whisper, WhisperError,
};

/// Silence with `utt` starting every `every` samples, `total` samples long, produced
/// on the fly.
struct Generated {
    utt: Vec<f32>,
    every: usize,
    total: usize,
    pos: usize,
}

impl SampleSource for Generated {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize, WhisperError> {
        let n = max.min(self.total - self.pos);
        out.extend((self.pos..self.pos + n).map(|i| {
            let j = i % self.every;
            self.utt.get(j).copied().unwrap_or(0.0)
        }));
        self.pos += n;
        Ok(n)
    }
    fn rewind(&mut self) -> Result<(), WhisperError> {
        self.pos = 0;
        Ok(())
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

#[test]
fn twenty_minute_stream_is_transcribed_in_bounded_memory() {
    let (Some(dir), Some(utts)) = (
        whisper_common::model_dir("tiny.en"),
        whisper_common::an4_test(),
    ) else {
        return;
    };
    let w = Whisper::load(&dir, Precision::F16).expect("loading the model");
    let utt = hark_audio::load_audio(&utts[0].1).expect("decoding an AN4 file");
    let every = 16000 * 240;
    let opts = TranscribeOptions {
        beam_size: 1,
        ..Default::default()
    };
    let run = |minutes: usize| {
        let mut src = Generated {
            utt: utt.clone(),
            every,
            total: 16000 * 60 * minutes,
            pos: 0,
        };
        let mut segs: Vec<Segment> = Vec::new();
        let info = w
            .transcribe_stream(&mut src, &opts, &mut |s| segs.push(s.clone()))
            .expect("streamed transcription");
        (segs, info)
    };
    // Warm-up on 2 minutes: the encoder/decoder buffers reach their size here.
    let (segs, _) = run(2);
    assert!(!segs.is_empty(), "the utterance at 0 s was not transcribed");
    let before = peak_rss_mb();
    let (segs, info) = run(20);
    let after = peak_rss_mb();
    assert!((info.duration - 1200.0).abs() < 1e-6);
    assert_eq!(info.windows, 40);
    // One 30 s window (+ STFT context) and one 10 s read chunk at most.
    assert!(
        info.max_buffered_samples <= 3004 * 160 + 160_000 + 1,
        "{} samples buffered",
        info.max_buffered_samples
    );
    // Every utterance is found, at its place, and nothing else.
    for k in 0..5 {
        let t = (k * every) as f64 / 16000.0;
        assert!(
            segs.iter().any(|s| s.start >= t - 0.5 && s.start < t + 5.0),
            "no segment near {t} s: {segs:?}"
        );
    }
    assert!(segs.len() <= 10, "unexpected text in the silence: {segs:?}");
    if let (Some(b), Some(a)) = (before, after) {
        eprintln!("peak RSS {b:.0} MB -> {a:.0} MB over a 20-minute stream");
        assert!(a - b < 30.0, "peak RSS grew by {:.0} MB", a - b);
    }
}
