//! Reading golden fixtures (JSON metadata and raw little-endian f32 arrays written by the
//! generator scripts in `scripts/`). A missing or malformed fixture is a broken checkout,
//! not a skip: these panic with the file's path.

use std::path::Path;

use serde_json::Value;

/// Parses the JSON file at `path`.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("parsing fixture {}: {e}", path.display()))
}

/// The little-endian f32 values of the raw file at `path`.
pub fn read_f32_le(path: &Path) -> Vec<f32> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()));
    assert!(
        bytes.len().is_multiple_of(4),
        "fixture {}: {} bytes is not a whole number of f32",
        path.display(),
        bytes.len()
    );
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// A JSON array of non-negative integers (token ids) as `u32`s.
pub fn json_u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a JSON array of token ids, got {v}"))
        .iter()
        .map(|t| {
            t.as_u64()
                .unwrap_or_else(|| panic!("expected a token id, got {t}")) as u32
        })
        .collect()
}
