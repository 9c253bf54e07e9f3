//! End-to-end tests of `hark listen` (the real binary, file input replayed through the
//! live ring-buffer path): finals vs offline `hark transcribe`, device errors, input
//! rates/channels.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{write_wav, HARK};

fn shared() -> Option<PathBuf> {
    common::an4_test()
}

fn model_present() -> bool {
    common::tiny_en_dir().is_some()
}

fn skip_reason() -> Option<&'static str> {
    if shared().is_none() {
        return Some("skipping: ../shared not found");
    }
    if !model_present() {
        return Some("skipping: tiny.en model not installed (hark models pull tiny.en)");
    }
    None
}

/// Writes interleaved samples as 16-bit PCM WAV.
/// The first `n` AN4 test utterances joined with 1 s pauses (0.5 s lead-in), 16 kHz.
fn joined_an4(n: usize) -> Vec<f32> {
    let dir = shared().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flac"))
        .collect();
    files.sort();
    let mut out = vec![0.0; 8000];
    for f in files.iter().take(n) {
        out.extend(hark_audio::load_audio(f).unwrap());
        out.extend(vec![0.0; 16000]);
    }
    out
}

/// Comparison words: lower case, split on anything not alphanumeric; spelled-out
/// letters ("UDB-E5", "U-D-B-E-5") and digit runs ("2981") are split into single
/// characters so that Whisper's formatting choices do not count as word errors.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let spelled = piece.len() <= 4
            && piece
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        let has_digit = piece.chars().any(|c| c.is_ascii_digit());
        if spelled || has_digit {
            out.extend(piece.chars().map(|c| c.to_lowercase().to_string()));
        } else {
            out.push(piece.to_lowercase());
        }
    }
    out
}

/// 1 - word error rate of `hyp` against `reference` (Levenshtein on words).
fn word_match(reference: &[String], hyp: &[String]) -> f64 {
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hyp.len() + 1];
        for (j, h) in hyp.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(r != h))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    1.0 - prev[hyp.len()] as f64 / reference.len().max(1) as f64
}

/// One final JSON line: utterance id, text, start, end, latency_ms.
type FinalLine = (u64, String, f64, f64, f64);

/// The `--no-tui` JSON lines of a run: (id, text, start, end, latency_ms) of each final,
/// checking the shape of every line (partials included), that finals follow each
/// other in stream time without overlapping, and that the pieces of an utterance (same
/// `id`) are numbered by `part` from 0.
fn finals_of(stdout: &str) -> Vec<FinalLine> {
    let mut finals: Vec<FinalLine> = Vec::new();
    for l in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        let f = |k: &str| {
            v[k].as_f64()
                .unwrap_or_else(|| panic!("no number `{k}`: {l}"))
        };
        let (start, end) = (f("start"), f("end"));
        assert!(0.0 <= start && start < end, "{l}");
        let text = v["text"].as_str().unwrap().to_string();
        match v["type"].as_str() {
            Some("partial") => assert!(v["latency_ms"].is_null(), "{l}"),
            Some("final") => {
                let id = v["id"].as_u64().unwrap_or_else(|| panic!("no id: {l}"));
                let part = v["part"].as_u64().unwrap_or_else(|| panic!("no part: {l}"));
                let want = finals.iter().rev().take_while(|p| p.0 == id).count() as u64;
                assert_eq!(part, want, "{l}");
                if let Some(prev) = finals.last() {
                    assert!(start >= prev.3 - 1e-3, "overlaps the previous final: {l}");
                }
                finals.push((id, text, start, end, f("latency_ms")));
            }
            _ => panic!("unknown type: {l}"),
        }
    }
    finals
}

/// The final texts, one line per utterance (what the transcript file holds): pieces of
/// one utterance joined with a space, none before punctuation.
fn final_text(stdout: &str) -> String {
    let mut out = String::new();
    let mut open = None;
    for (id, t, ..) in finals_of(stdout) {
        if open == Some(id) {
            if !t.starts_with(|c: char| ".,;:!?%)]}'".contains(c)) {
                out.push(' ');
            }
        } else {
            if open.is_some() {
                out.push('\n');
            }
            open = Some(id);
        }
        out.push_str(&t);
    }
    if open.is_some() {
        out.push('\n');
    }
    out
}

/// Runs `hark listen --no-tui` and returns (final texts one per line, stderr).
fn listen(input: &Path, transcript: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(HARK)
        .args(["listen", "--no-tui", "--model", "tiny.en", "--input"])
        .arg(input)
        .arg("--output")
        .arg(transcript)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "hark listen failed: {stderr}");
    (final_text(&stdout), stderr)
}

#[test]
fn listen_finals_match_offline_transcribe_on_an4_recording() {
    if let Some(r) = skip_reason() {
        eprintln!("{r}");
        return;
    }
    let tmp = tempdir();
    let wav = tmp.join("an4_joined.wav");
    write_wav(&wav, &joined_an4(8), 16000, 1);
    let offline = Command::new(HARK)
        .args(["transcribe", "--model", "tiny.en"])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let offline = String::from_utf8_lossy(&offline.stdout).into_owned();
    let transcript = tmp.join("t.txt");
    let (live, stderr) = listen(&wav, &transcript, &["--realtime-speed", "4", "--stats"]);
    let (r, h) = (words(&offline), words(&live));
    let m = word_match(&r, &h);
    eprintln!("offline: {offline}\nlive: {live}\n{stderr}\nword match {m:.3}");
    assert!(
        m >= 0.95,
        "word match {m:.3} < 0.95\noffline: {offline}\nlive: {live}"
    );
    // Several utterances, each a final line, all saved in the transcript file.
    assert!(live.lines().count() >= 6, "{live}");
    // Some utterances went on after a pause that made their text final (soft finals,
    // continued with the final text as the decoder prefix): more finals than lines.
    let finals: usize = stderr
        .split("stats: finals: ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no stats line: {stderr}"));
    assert!(finals > live.lines().count(), "{finals} finals\n{live}");
    assert_eq!(std::fs::read_to_string(&transcript).unwrap(), live);
    assert!(
        stderr.contains("dropped audio (overruns): 0 samples"),
        "{stderr}"
    );
}

#[test]
fn listen_accepts_8k_stereo_and_48k_input() {
    if let Some(r) = skip_reason() {
        eprintln!("{r}");
        return;
    }
    let tmp = tempdir();
    let mono = joined_an4(2);
    let reference_wav = tmp.join("ref16k.wav");
    write_wav(&reference_wav, &mono, 16000, 1);
    let (reference, _) = listen(
        &reference_wav,
        &tmp.join("r.txt"),
        &["--realtime-speed", "4"],
    );
    for (rate, channels) in [(8000u32, 2u16), (48000, 1), (44100, 2)] {
        let x = hark_audio::resample(&mono, 16000, rate).unwrap();
        let inter: Vec<f32> = x
            .iter()
            .flat_map(|&s| std::iter::repeat_n(s, channels as usize))
            .collect();
        let wav = tmp.join(format!("in_{rate}_{channels}.wav"));
        write_wav(&wav, &inter, rate, channels);
        let (live, _) = listen(
            &wav,
            &tmp.join(format!("t{rate}.txt")),
            &["--realtime-speed", "4"],
        );
        let m = word_match(&words(&reference), &words(&live));
        assert!(
            m >= 0.8,
            "{rate} Hz x{channels}: match {m:.2}\n{reference}\n{live}"
        );
    }
}

#[test]
fn listen_with_unknown_device_fails_listing_devices() {
    let out = Command::new(HARK)
        .args(["listen", "--no-tui", "--device", "no-such-device-42"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`no-such-device-42` not found"), "{err}");
    assert!(err.contains("available input devices:"), "{err}");
}

#[test]
fn listen_without_any_input_device_fails_cleanly() {
    if !hark_audio::capture::list_input_devices()
        .unwrap_or_default()
        .is_empty()
    {
        eprintln!("skipping: this machine has an input device");
        return;
    }
    let out = Command::new(HARK)
        .args(["listen", "--no-tui"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no audio input device found; available input devices: (none)"),
        "{err}"
    );
    assert!(err.contains("--input FILE"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn listen_missing_input_file_is_a_clear_error() {
    let out = Command::new(HARK)
        .args(["listen", "--no-tui", "--input", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--input /nonexistent/x.wav does not exist")
    );
}

#[test]
fn comparison_words_split_spelled_letters_and_digits() {
    assert_eq!(words("Erase UDB-E5."), words("erase U-D-B-E-5"));
    assert_eq!(words("Enter 2981."), vec!["enter", "2", "9", "8", "1"]);
    let r = words("a b c d");
    assert!((word_match(&r, &words("a x c d")) - 0.75).abs() < 1e-9);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "hark-listen-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn listen_ctrl_c_finishes_the_current_utterance_first() {
    if let Some(r) = skip_reason() {
        eprintln!("{r}");
        return;
    }
    let tmp = tempdir();
    let wav = tmp.join("ctrlc.wav");
    write_wav(&wav, &joined_an4(3), 16000, 1);
    let transcript = tmp.join("ctrlc.txt");
    let child = Command::new(HARK)
        .args(["listen", "--no-tui", "--model", "tiny.en", "--input"])
        .arg(&wav)
        .arg("--output")
        .arg(&transcript)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The model loads, then the first utterance (0.5 s .. ~2.5 s) plays at real time:
    // interrupt while it is being spoken.
    let start = std::time::Instant::now();
    while std::fs::metadata(&transcript).is_err() {
        assert!(start.elapsed().as_secs() < 60, "listen never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1800));
    let kill = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The interrupted utterance still became final text (one line, maybe in pieces),
    // saved to the file.
    let text = final_text(&stdout);
    assert_eq!(
        text.lines().count(),
        1,
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        words(&text).first().is_some_and(|w| w == "enter"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&transcript).unwrap(),
        final_text(&stdout)
    );
}

/// A conformer-AED model directory (the random-weight FireRedASR fixture: its text is
/// meaningless, the plumbing is what is tested).
fn conformer_fixture() -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/tests/fixtures/conformer/firered_d32_k15"
    ))
    .to_path_buf()
}

#[test]
fn listen_runs_a_conformer_aed_model_through_the_same_pipeline() {
    if shared().is_none() {
        eprintln!("skipping: ../shared not found");
        return;
    }
    let tmp = tempdir();
    let wav = tmp.join("conformer.wav");
    write_wav(&wav, &joined_an4(3), 16000, 1);
    let transcript = tmp.join("conformer.txt");
    let out = Command::new(HARK)
        .args(["listen", "--no-tui", "--stats", "--partials"])
        .args(["--realtime-speed", "4", "--model"])
        .arg(conformer_fixture())
        .arg("--input")
        .arg(&wav)
        .arg("--output")
        .arg(&transcript)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    finals_of(&stdout);
    assert!(stdout.contains(r#""type":"partial""#), "{stdout}");
    // One final per utterance (the random weights may give empty texts, which are not
    // printed, but every utterance is decoded and timed).
    assert!(stderr.contains("stats: finals: 3;"), "{stderr}");
    assert!(
        stderr.contains("dropped audio (overruns): 0 samples"),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&transcript).unwrap(),
        final_text(&String::from_utf8_lossy(&out.stdout))
    );
}

/// `--chunk-ms` on a streaming conformer (the causal random-weight fixture): the pipeline
/// runs with the chunk attention mask; a size that is not a whole number of encoder frames
/// is refused before any audio is read, naming the flag and the frame length.
#[test]
fn listen_chunk_ms_runs_a_streaming_conformer_and_refuses_partial_frames() {
    let tmp = tempdir();
    let wav = tmp.join("chunk.wav");
    // 0.5 s silence, 1.5 s of a 440 Hz tone with a 300 Hz overtone, 1 s silence.
    let x: Vec<f32> = (0..48000)
        .map(|i| {
            let t = i as f32 / 16000.0;
            if (0.5..2.0).contains(&t) {
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                    + 0.1 * (2.0 * std::f32::consts::PI * 300.0 * t).sin()
            } else {
                0.0
            }
        })
        .collect();
    write_wav(&wav, &x, 16000, 1);
    let causal = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/tests/fixtures/conformer/firered_causal_d32_k7"
    ));
    let run = |chunk: &str| {
        Command::new(HARK)
            .args(["listen", "--no-tui", "--stats", "--realtime-speed", "8"])
            .args(["--chunk-ms", chunk, "--model"])
            .arg(causal)
            .arg("--input")
            .arg(&wav)
            .output()
            .unwrap()
    };
    let out = run("160");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stats: finals: 1;"), "{stderr}");
    let out = run("50");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "50 ms accepted: {stderr}");
    assert!(
        stderr.contains("--chunk-ms") && stderr.contains("40 ms"),
        "{stderr}"
    );
}

/// The built-in an4-conformer with soft finals (`--final-pause-ms 250`, the default for
/// streaming conformer-AED models, given explicitly here): text becomes final at pauses inside an utterance, and the rest
/// of the utterance is decoded with that text forced on the CTC prefix search, so the
/// pieces still read as the offline per-utterance transcripts.
#[test]
fn listen_an4_conformer_soft_finals_continue_the_utterance_after_final_text() {
    if shared().is_none() {
        eprintln!("skipping: ../shared not found");
        return;
    }
    let n = 12;
    let tmp = tempdir();
    let wav = tmp.join("an4.wav");
    write_wav(&wav, &joined_an4(n), 16000, 1);
    let mut files: Vec<_> = std::fs::read_dir(shared().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "flac"))
        .collect();
    files.sort();
    let offline = Command::new(HARK)
        .args(["transcribe", "--model", "an4-conformer", "--format", "txt"])
        .args(&files[..n])
        .output()
        .unwrap();
    assert!(offline.status.success());
    let offline = String::from_utf8_lossy(&offline.stdout).into_owned();
    let out = Command::new(HARK)
        .args(["listen", "--no-tui", "--model", "an4-conformer"])
        .args([
            "--final-pause-ms",
            "250",
            "--realtime-speed",
            "4",
            "--input",
        ])
        .arg(&wav)
        .arg("--output")
        .arg(tmp.join("an4.txt"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let finals = finals_of(&stdout);
    // Some utterance was finalised in pieces (AN4's spelled letters have pauses).
    let pieces = finals.windows(2).filter(|w| w[0].0 == w[1].0).count();
    assert!(pieces >= 1, "no soft final: {stdout}");
    let live = final_text(&stdout);
    let m = word_match(&words(&offline), &words(&live));
    eprintln!("an4-conformer soft finals: word match with offline {m:.3}");
    // Measured on these 12 utterances: 0.936 (the streaming model; the full-context one
    // before it: 0.967; the first word-piece model: 0.945; the letter-vocabulary model: 0.892;
    // with the prefix ignored, each piece re-decoding the whole utterance and repeating
    // the words already final, it gave 0.763).
    assert!(
        m >= 0.8,
        "word match {m:.3} < 0.8\noffline: {offline}\nlive: {live}"
    );
}

#[test]
fn listen_max_utterance_limit_depends_on_the_model_family() {
    let tmp = tempdir();
    let wav = tmp.join("short.wav");
    write_wav(&wav, &vec![0.0; 1600], 16000, 1);
    let run = |secs: &str| {
        Command::new(HARK)
            .args(["listen", "--no-tui", "--max-utterance-s", secs, "--model"])
            .arg(conformer_fixture())
            .arg("--input")
            .arg(&wav)
            .arg("--output")
            .arg(tmp.join(format!("t{secs}.txt")))
            .output()
            .unwrap()
    };
    // 29 s is beyond Whisper's 28 s but within a conformer-AED piece (30 s).
    let ok = run("29");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run("31");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("between 1 and 30 for conformer_aed models"),
        "{err}"
    );
}
