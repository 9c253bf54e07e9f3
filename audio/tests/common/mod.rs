//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared` beside the workspace root, or `None` (the caller prints a skip note).
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

/// Parses a Kaldi text archive with one utterance into rows.
pub fn parse_kaldi_text(text: &str) -> Vec<Vec<f32>> {
    let open = text.find('[').expect("text archive has '['");
    let close = text.rfind(']').expect("text archive has ']'");
    text[open + 1..close]
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse::<f32>().expect("number"))
                .collect::<Vec<f32>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Reads a 16-bit WAV as int16-scale f32 samples.
pub fn read_wav_i16(path: &std::path::Path) -> Vec<f32> {
    let r = hound::WavReader::open(path).expect("open wav");
    r.into_samples::<i16>()
        .map(|s| s.expect("sample") as f32)
        .collect()
}

/// Fixture directory of this crate.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}
