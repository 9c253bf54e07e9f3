//! Dataset readers on tiny synthetic layouts (good and bad cases) and on AN4.

use std::fs;
use std::path::{Path, PathBuf};

use hark_models::eval::{detect_format, load_dataset, DatasetFormat, EvalError};
use hark_test_support::shared_path;

fn touch(p: &Path) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(p, b"RIFF").expect("write");
}

fn write(p: &Path, s: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(p, s).expect("write");
}

#[test]
fn kaldi_dir_resolves_relative_and_absolute_paths_and_reports_problems() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    touch(&d.join("a.wav"));
    touch(&d.join("sub/b.wav"));
    let abs = d.join("abs/c.wav");
    touch(&abs);
    write(
        &d.join("wav.scp"),
        &format!(
            "a a.wav\nb sub/b.wav\nc {}\nmissing nope.wav\nnotext a.wav\n",
            abs.display()
        ),
    );
    write(
        &d.join("text"),
        "a HELLO WORLD\nb\nc SOME TEXT\nmissing X\norphan Y\n",
    );
    assert_eq!(detect_format(d).expect("detect"), DatasetFormat::Kaldi);
    let ds = load_dataset(d, DatasetFormat::Auto).expect("load");
    assert_eq!(ds.format, DatasetFormat::Kaldi);
    let ids: Vec<&str> = ds.utterances.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "b", "c"]);
    assert_eq!(ds.utterances[0].audio, d.join("a.wav"));
    assert_eq!(ds.utterances[1].audio, d.join("sub/b.wav"));
    assert_eq!(ds.utterances[2].audio, abs);
    assert_eq!(ds.utterances[0].text, "HELLO WORLD");
    let s = &ds.summary;
    assert_eq!(s.utterances, 3);
    assert_eq!(s.missing_audio, vec!["missing"]);
    assert_eq!(s.missing_transcript, vec!["notext"]);
    assert_eq!(s.transcript_without_audio, vec!["orphan"]);
    assert_eq!(s.empty_transcript, vec!["b"]);
    assert!(!s.is_clean());
}

#[test]
fn kaldi_segments_make_one_utterance_per_segment() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    touch(&d.join("rec.flac"));
    write(&d.join("wav.scp"), "rec rec.flac\n");
    write(
        &d.join("segments"),
        "s1 rec 0.0 1.5\ns2 rec 1.5 3.25\ns3 gone 0 1\n",
    );
    write(&d.join("text"), "s1 ONE\ns2 TWO\ns3 THREE\n");
    let ds = load_dataset(d, DatasetFormat::Kaldi).expect("load");
    assert_eq!(ds.utterances.len(), 2);
    let s2 = &ds.utterances[1];
    assert_eq!(s2.id, "s2");
    let seg = s2.segment.expect("segment");
    assert_eq!((seg.start, seg.end), (1.5, 3.25));
    assert_eq!(s2.duration, Some(1.75));
    assert_eq!(ds.summary.transcript_without_audio, vec!["s3"]);
}

#[test]
fn kaldi_piped_wav_scp_is_a_clear_error() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    write(&d.join("wav.scp"), "a a.wav\nb sox b.sph -t wav - |\n");
    write(&d.join("text"), "a A\nb B\n");
    match load_dataset(d, DatasetFormat::Auto) {
        Err(EvalError::PipedCommand { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected a piped-command error, got {other:?}"),
    }
    write(&d.join("wav.scp"), "a a.wav\nb\n");
    assert!(matches!(
        load_dataset(d, DatasetFormat::Kaldi),
        Err(EvalError::Malformed { line: 2, .. })
    ));
    write(&d.join("wav.scp"), "a a.wav\n");
    write(&d.join("segments"), "s1 a zero 1\n");
    assert!(matches!(
        load_dataset(d, DatasetFormat::Kaldi),
        Err(EvalError::Malformed { line: 1, .. })
    ));
}

#[test]
fn librispeech_tree_is_read_and_problems_reported() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path().join("test-clean");
    let ch = root.join("61/70968");
    touch(&ch.join("61-70968-0000.flac"));
    touch(&ch.join("61-70968-0001.flac"));
    touch(&ch.join("61-70968-0099.flac"));
    write(
        &ch.join("61-70968.trans.txt"),
        "61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n61-70968-0001 GIVE NOT SO EARNEST A MIND\n61-70968-0002 MISSING AUDIO\n",
    );
    let ch2 = root.join("121/121726");
    touch(&ch2.join("121-121726-0000.flac"));
    write(
        &ch2.join("121-121726.trans.txt"),
        "121-121726-0000 ALSO A POPULAR CONTRIVANCE\n",
    );
    assert_eq!(
        detect_format(&root).expect("detect"),
        DatasetFormat::LibriSpeech
    );
    let ds = load_dataset(&root, DatasetFormat::Auto).expect("load");
    let ids: Vec<&str> = ds.utterances.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["121-121726-0000", "61-70968-0000", "61-70968-0001"]
    );
    assert_eq!(ds.utterances[1].text, "HE BEGAN A CONFUSED COMPLAINT");
    assert_eq!(ds.utterances[1].audio, ch.join("61-70968-0000.flac"));
    assert_eq!(ds.summary.missing_audio, vec!["61-70968-0002"]);
    assert_eq!(ds.summary.missing_transcript, vec!["61-70968-0099"]);
}

#[test]
fn jsonl_manifest_resolves_paths_against_its_directory() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path().join("set");
    touch(&d.join("audio/x.wav"));
    touch(&d.join("audio/y.wav"));
    let abs = t.path().join("elsewhere/z.wav");
    touch(&abs);
    let manifest = d.join("manifest.jsonl");
    write(
        &manifest,
        &format!(
            concat!(
                "{{\"audio_filepath\": \"audio/x.wav\", \"text\": \"hello\", \"duration\": 1.5, \"id\": \"x1\"}}\n",
                "{{\"audio_filepath\": \"audio/y.wav\", \"text\": \"\"}}\n",
                "\n",
                "{{\"audio_filepath\": \"{}\", \"text\": \"zed\", \"id\": 7}}\n",
                "{{\"audio_filepath\": \"audio/missing.wav\", \"text\": \"gone\", \"id\": \"m\"}}\n",
                "{{\"audio_filepath\": \"audio/x.wav\", \"id\": \"notext\"}}\n",
                "{{\"text\": \"no audio\", \"id\": \"orphan\"}}\n"
            ),
            abs.display()
        ),
    );
    for p in [&manifest, &d] {
        assert_eq!(detect_format(p).expect("detect"), DatasetFormat::Jsonl);
        let ds = load_dataset(p, DatasetFormat::Auto).expect("load");
        let ids: Vec<&str> = ds.utterances.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, vec!["x1", "audio/y.wav", "7"]);
        assert_eq!(ds.utterances[0].audio, d.join("audio/x.wav"));
        assert_eq!(ds.utterances[0].duration, Some(1.5));
        assert_eq!(ds.utterances[2].audio, abs);
        assert_eq!(ds.summary.missing_audio, vec!["m"]);
        assert_eq!(ds.summary.missing_transcript, vec!["notext"]);
        assert_eq!(ds.summary.transcript_without_audio, vec!["orphan"]);
        assert_eq!(ds.summary.empty_transcript, vec!["audio/y.wav"]);
    }
    write(
        &manifest,
        "{\"audio_filepath\": \"audio/x.wav\", \"text\": \"a\"}\n{not json\n",
    );
    assert!(matches!(
        load_dataset(&manifest, DatasetFormat::Jsonl),
        Err(EvalError::Malformed { line: 2, .. })
    ));
}

#[test]
fn unknown_layouts_and_missing_paths_are_errors() {
    let t = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        detect_format(t.path()),
        Err(EvalError::UnknownLayout(_))
    ));
    assert!(matches!(
        detect_format(&t.path().join("nope")),
        Err(EvalError::NotFound(_))
    ));
    assert_eq!(
        "librispeech".parse::<DatasetFormat>().ok(),
        Some(DatasetFormat::LibriSpeech)
    );
    assert!("wav".parse::<DatasetFormat>().is_err());
}

fn an4_test() -> Option<PathBuf> {
    shared_path("data/an4/test")
}

#[test]
fn an4_test_set_has_130_utterances_in_kaldi_and_jsonl_form() {
    let Some(dir) = an4_test() else { return };
    let kaldi = load_dataset(&dir, DatasetFormat::Auto).expect("kaldi");
    assert_eq!(kaldi.format, DatasetFormat::Kaldi);
    assert_eq!(kaldi.utterances.len(), 130);
    assert!(kaldi.summary.is_clean(), "{:?}", kaldi.summary);
    let jsonl = load_dataset(&dir.join("manifest.jsonl"), DatasetFormat::Auto).expect("jsonl");
    assert_eq!(jsonl.utterances.len(), 130);
    for (a, b) in kaldi.utterances.iter().zip(&jsonl.utterances) {
        assert_eq!((&a.id, &a.audio, &a.text), (&b.id, &b.audio, &b.text));
    }
}
