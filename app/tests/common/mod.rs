//! Helpers shared by the app's end-to-end tests (each test file uses a subset).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `hark` binary under test.
pub const HARK: &str = env!("CARGO_BIN_EXE_hark");

/// `../shared/data/an4/test` beside the repo, when present.
pub fn an4_test() -> Option<PathBuf> {
    let p = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/an4/test"
    ));
    p.is_dir().then(|| p.to_path_buf())
}

/// The installed tiny.en model directory (`$HARK_HOME/models/tiny.en`, default
/// `~/.cache/hark`), when present.
pub fn tiny_en_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HARK_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hark")))?;
    let d = home.join("models/tiny.en");
    d.join("config.json").is_file().then_some(d)
}

/// Writes interleaved samples in [-1, 1] as a 16-bit PCM WAV.
pub fn write_wav(path: &Path, samples: &[f32], rate: u32, channels: u16) {
    let data_len = (samples.len() * 2) as u32;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for &x in samples {
        b.extend_from_slice(&((x.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}
