//! Shared helpers of the Whisper integration tests: locating the model and ../shared
//! (from `hark-test-support`) and the AN4 test list.
#![allow(dead_code)]

use std::path::PathBuf;

pub use hark_test_support::{model_dir, shared_dir};

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
