//! Forced decoder prefix (faster-whisper's `prefix`, CTranslate2's `prefix_ids`): the
//! decoder follows the given tokens after the task tokens, then continues on its own.
//! Forcing the start of a decode's own output must give back the rest of that decode.
//! Needs tiny.en in the model store and ../shared; skips with a message otherwise.

mod whisper_common;

use hark_models::whisper::decode::generate;
use hark_models::whisper::{GenerateOptions, Precision, TranscribeOptions, Whisper, WhisperModel};

fn load() -> Option<Whisper> {
    let dir = whisper_common::model_dir("tiny.en")?;
    Some(Whisper::load(&dir, Precision::F16).expect("loading tiny.en"))
}

/// The first `n` AN4 test utterances (samples), if ../shared is there.
fn an4(n: usize) -> Option<Vec<Vec<f32>>> {
    let utts = whisper_common::an4_test()?;
    Some(
        utts.into_iter()
            .take(n)
            .map(|(_, path, _)| hark_audio::load_audio(&path).unwrap())
            .collect(),
    )
}

fn text(w: &Whisper, samples: &[f32], opts: &TranscribeOptions) -> String {
    let mut out = String::new();
    w.transcribe(samples, opts, &mut |s| out.push_str(&s.text))
        .expect("transcription");
    out
}

/// Token-level: for every split point k of the greedy decode's tokens, forcing tokens
/// `[..k]` makes `generate` return exactly tokens `[k..]`, with and without timestamps.
/// (Beam search is not prefix-consistent in general: a search that starts from the
/// forced prefix alone spends every beam on its continuations and may find one the
/// plain search pruned; the text-level test below covers beam 5 on real utterances.)
#[test]
fn decode_with_its_own_start_forced_returns_the_rest_of_the_plain_decode() {
    let (Some(w), Some(utts)) = (load(), an4(3)) else {
        return;
    };
    let model: &WhisperModel = &w.model;
    let sp = w.special_tokens();
    let sot = w
        .tokenizer
        .sot_sequence(None, hark_tokenizer::Task::Transcribe)
        .unwrap();
    for (u, samples) in utts.iter().enumerate() {
        let mel = w.features(samples).unwrap().pad_or_trim(3000);
        let enc = model.encode(&mel.data).unwrap();
        let mut st = model.new_state(5);
        model.set_audio(&mut st, &enc).unwrap();
        for (beam, timestamps) in [(1, true), (1, false)] {
            let opts = GenerateOptions {
                beam_size: beam,
                suppress_tokens: model.config.suppress_tokens.clone(),
                begin_suppress_tokens: model.config.begin_suppress_tokens.clone(),
                ..Default::default()
            };
            let mut prompt = sot.clone();
            if !timestamps {
                prompt.push(sp.no_timestamps);
            }
            let plain = generate(model, &mut st, &prompt, &sp, &opts).unwrap();
            assert!(plain.tokens.len() >= 2, "utterance {u}: {:?}", plain.tokens);
            let n = plain.tokens.len();
            for k in 1..n {
                let mut forced = prompt.clone();
                forced.extend_from_slice(&plain.tokens[..k]);
                let g = generate(model, &mut st, &forced, &sp, &opts).unwrap();
                assert_eq!(
                    g.tokens,
                    plain.tokens[k..],
                    "utterance {u}, beam {beam}, timestamps {timestamps}, prefix of {k} tokens"
                );
                assert!(
                    (g.no_speech_prob - plain.no_speech_prob).abs() < 1e-3,
                    "no-speech probability at the same position"
                );
            }
        }
    }
}

/// Text-level (`TranscribeOptions::prefix`, the way `hark listen` uses it): the first
/// words of the plain transcript as the prefix give back exactly the remaining text, for
/// greedy and beam 5 decodes with timestamps and fallback.
#[test]
fn transcribe_with_the_first_words_as_prefix_returns_the_remaining_text() {
    let (Some(w), Some(utts)) = (load(), an4(4)) else {
        return;
    };
    for (u, samples) in utts.iter().enumerate() {
        for beam in [1, 5] {
            let opts = TranscribeOptions {
                beam_size: beam,
                ..Default::default()
            };
            let plain = text(&w, samples, &opts);
            let words: Vec<&str> = plain.split_whitespace().collect();
            for k in 1..words.len() {
                let prefix = words[..k].join(" ");
                let rest = text(
                    &w,
                    samples,
                    &TranscribeOptions {
                        prefix: Some(prefix.clone()),
                        ..opts.clone()
                    },
                );
                assert_eq!(
                    format!(" {prefix}{rest}"),
                    plain,
                    "utterance {u}, beam {beam}, prefix `{prefix}`"
                );
            }
        }
    }
}

#[test]
fn an_overlong_prefix_is_refused() {
    let (Some(w), Some(utts)) = (load(), an4(1)) else {
        return;
    };
    let opts = TranscribeOptions {
        prefix: Some("word ".repeat(300)),
        ..Default::default()
    };
    let err = w
        .transcribe(&utts[0], &opts, &mut |_| {})
        .expect_err("a 300-token prefix must be refused");
    assert!(err.to_string().contains("decoder prefix"), "{err}");
}
