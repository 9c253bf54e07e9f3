//! Whisper log-mel against faster-whisper's NumPy `FeatureExtractor` on real speech
//! (AN4 test utterances read from `../shared`). Fixture generator:
//! `scripts/audio/gen_whisper_mel_fixture.py`.

mod common;

use hark_audio::features::whisper::{log_mel_spectrogram, FASTER_WHISPER_PADDING, N_FRAMES};

#[test]
fn whisper_log_mel_matches_faster_whisper_on_an4_speech() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let text =
        std::fs::read_to_string(common::fixtures().join("whisper_mel.json")).expect("fixture");
    let fx: serde_json::Value = serde_json::from_str(&text).expect("json");
    for e in fx["entries"].as_array().expect("entries") {
        let file = e["file"].as_str().expect("file");
        let n_mels = e["n_mels"].as_u64().expect("n_mels") as usize;
        let audio =
            hark_audio::load_audio(&shared.join("data/an4/test").join(file)).expect("decode");
        assert_eq!(
            audio.len() as u64,
            e["n_samples"].as_u64().expect("n"),
            "{file}: sample count"
        );
        let mel = log_mel_spectrogram(&audio, n_mels, FASTER_WHISPER_PADDING).expect("mel");
        assert_eq!(
            mel.n_frames as u64,
            e["n_frames"].as_u64().expect("frames"),
            "{file}: frame count"
        );
        let mut max_d = 0.0f32;
        let frames = e["frames"].as_array().expect("frames");
        let values = e["values"].as_array().expect("values");
        for (t, col) in frames.iter().zip(values) {
            let t = t.as_u64().expect("t") as usize;
            for (m, want) in col.as_array().expect("col").iter().enumerate() {
                let want = want.as_f64().expect("v") as f32;
                let got = mel.get(m, t);
                let d = (got - want).abs();
                max_d = max_d.max(d);
                assert!(
                    d <= 1e-4,
                    "{file} n_mels={n_mels}: frame {t} mel {m}: ours {got} faster-whisper {want}"
                );
            }
        }
        eprintln!(
            "{file} n_mels={n_mels}: {} frames, max |diff| {max_d:.2e}",
            mel.n_frames
        );
    }
}

#[test]
fn whisper_segment_pads_with_zero_frames_like_pad_or_trim() {
    // 1 s of a tone: 101 frames, content_frames = 100.
    let x: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
    let mel = log_mel_spectrogram(&x, 80, FASTER_WHISPER_PADDING).expect("mel");
    assert_eq!(mel.n_frames, 101);
    assert_eq!(mel.content_frames(), 100);
    let seg = mel.segment(0);
    assert_eq!(seg.n_frames, N_FRAMES);
    for m in 0..80 {
        for t in 0..100 {
            assert_eq!(seg.get(m, t), mel.get(m, t));
        }
        // The 101st frame is not content: faster-whisper slices it away and pads zeros.
        for t in 100..N_FRAMES {
            assert_eq!(seg.get(m, t), 0.0);
        }
    }
}
