//! Shared helpers for engine tests: fixture loading and tolerance checks.
#![allow(dead_code)]

pub mod decoder;

use std::collections::HashMap;

/// Arrays of `tests/fixtures/ops.json` (written by scripts/engine/make_op_fixtures.py).
pub struct Fixtures(HashMap<String, (Vec<usize>, Vec<f32>)>);

impl Fixtures {
    pub fn load() -> Fixtures {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops.json");
        let text = std::fs::read_to_string(path).expect("read ops.json fixture");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parse ops.json");
        let mut m = HashMap::new();
        for (k, e) in v.as_object().expect("object") {
            let shape = e["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let data = e["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_f64().unwrap() as f32)
                .collect();
            m.insert(k.clone(), (shape, data));
        }
        Fixtures(m)
    }

    pub fn get(&self, name: &str) -> &[f32] {
        &self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("fixture {name} missing"))
            .1
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("fixture {name} missing"))
            .0
    }
}

/// Asserts `|a - b| <= rtol·|b| + atol` element-wise, reporting the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], rtol: f32, atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f32);
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let excess = (a - b).abs() - (rtol * b.abs() + atol);
        assert!(!a.is_nan(), "{what}: NaN at {i}");
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 0.0,
        "{what}: element {i}: got {} want {} (rtol {rtol}, atol {atol})",
        got[i],
        want[i]
    );
}

/// The f32 tolerance used for every f32 op: 1e-5 relative, 1e-6 absolute floor for
/// values near zero.
pub fn assert_f32(what: &str, got: &[f32], want: &[f32]) {
    assert_close(what, got, want, 1e-5, 1e-6);
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
