//! Shared helpers of the Whisper integration tests: locating the model and ../shared.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$HARK_HOME/models/<name>` or `~/.cache/hark/models/<name>`, if it holds a model.
pub fn model_dir(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HARK_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hark")))?;
    let dir = home.join("models").join(name);
    if dir.join("config.json").is_file() && dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: Whisper model {name} not found at {} (run `hark models pull {name}`)",
            dir.display()
        );
        None
    }
}

/// The `../shared` reference-data directory beside the workspace, if present.
pub fn shared_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

/// AN4 test utterances: (id, flac path, reference text).
pub fn an4_test() -> Option<Vec<(String, PathBuf, String)>> {
    let dir = shared_dir()?.join("data/an4/test");
    let text = std::fs::read_to_string(dir.join("text")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (id, t) = l.split_once(' ')?;
                Some((
                    id.to_string(),
                    dir.join(format!("{id}.flac")),
                    t.to_string(),
                ))
            })
            .collect(),
    )
}
