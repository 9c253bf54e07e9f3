//! Error metrics between a computed buffer and its reference, and assertions on them that
//! name what is compared.
//!
//! Every function panics when the two lengths differ (comparing buffers of different
//! sizes is always a bug, never a numeric difference).

fn check_len(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
}

/// Normalised mean squared error `Σ(got - want)² / Σ want²`, accumulated in f64 (the
/// metric ggml's backend tests use to compare every backend with the CPU).
pub fn nmse(got: &[f32], want: &[f32]) -> f64 {
    check_len("nmse", got, want);
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(g, w)| ((g - w) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| (*w as f64).powi(2)).sum();
    num / den
}

/// Asserts `nmse(got, want) < bound`, naming `what`; returns the nMSE.
pub fn assert_nmse_below(what: &str, got: &[f32], want: &[f32], bound: f64) -> f64 {
    check_len(what, got, want);
    let e = nmse(got, want);
    assert!(e < bound, "{what}: normalised MSE {e:.3e} >= {bound:e}");
    e
}

/// The largest `|got - want|`.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    check_len("max_abs_diff", got, want);
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Asserts that every element is within `tol` of the reference relative to
/// `max(|want|, 1)` (and finite), naming `what` and the worst element.
pub fn assert_max_rel_err(what: &str, got: &[f32], want: &[f32], tol: f32) {
    check_len(what, got, want);
    let mut worst = (0.0f32, 0usize);
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err.is_finite(), "{what}[{i}]: got {a}, want {b}");
        if err > worst.0 {
            worst = (err, i);
        }
    }
    assert!(
        worst.0 <= tol,
        "{what}: max relative error {} at {} (got {}, want {})",
        worst.0,
        worst.1,
        got[worst.1],
        want[worst.1]
    );
}

/// The largest `|got - want| / max(1, max |want|)` (the error scaled by the reference's
/// magnitude); panics on a non-finite `got` value.
pub fn max_scaled_err(what: &str, got: &[f32], want: &[f32]) -> (f32, usize) {
    check_len(what, got, want);
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let mut worst = (0f32, 0usize);
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(a.is_finite(), "{what}: non-finite value at {i}");
        let e = (a - b).abs() / scale;
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

/// Asserts [`max_scaled_err`]`(what, got, want) <= tol`, naming `what` and the worst
/// element.
pub fn assert_max_scaled_err(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let (e, i) = max_scaled_err(what, got, want);
    assert!(
        e <= tol,
        "{what}: max scaled error {e} at {i} (got {}, want {}) > {tol}",
        got[i],
        want[i]
    );
}

/// The index of the largest value (the first one on ties; NaNs never win).
pub fn argmax(x: &[f32]) -> usize {
    x.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &v)| if v > b.1 { (i, v) } else { b },
        )
        .0
}
