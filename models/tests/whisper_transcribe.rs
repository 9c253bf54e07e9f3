//! End-to-end Whisper transcription tests (need tiny.en in the model store and
//! ../shared; they skip with a message otherwise).

mod whisper_common;

use hark_models::whisper::{Precision, TranscribeOptions, Whisper};

#[test]
fn dev_print_an4() {
    let (Some(dir), Some(utts)) = (
        whisper_common::model_dir("tiny.en"),
        whisper_common::an4_test(),
    ) else {
        return;
    };
    let w = Whisper::load(&dir, Precision::F16).unwrap();
    for (id, path, refr) in utts.iter().take(5) {
        let samples = hark_audio::load_audio(path).unwrap();
        let t = std::time::Instant::now();
        let mut text = String::new();
        let info = w
            .transcribe(
                &samples,
                &TranscribeOptions {
                    beam_size: 1,
                    ..Default::default()
                },
                &mut |s| text.push_str(&s.text),
            )
            .unwrap();
        eprintln!(
            "{id}: {:?} | ref {refr} | {:.2}s {info:?}",
            text,
            t.elapsed().as_secs_f64()
        );
    }
}
