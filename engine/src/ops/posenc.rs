//! Positional encodings.
//!
//! - [`whisper_sinusoids`]: openai/whisper `whisper/model.py` `sinusoids()` (encoder).
//! - [`sinusoidal_positions`]: the Transformer's / ESPnet `PositionalEncoding`
//!   (`espnet/nets/pytorch_backend/transformer/embedding.py`), interleaved sin/cos.
//! - [`rel_positional_encoding`]: ESPnet `RelPositionalEncoding` (relative positions
//!   `T-1 … -(T-1)`, `2T-1` rows), used with `rel_shift`.
//! - [`legacy_rel_positional_encoding`]: ESPnet `LegacyRelPositionalEncoding` (positions
//!   `0 … T-1`), used without `rel_shift`.
//!
//! Values are computed in f64 and rounded once.

/// Whisper's encoder positional embedding `[length, channels]`: `[sin | cos]` halves with
/// timescales `exp(-ln(10000)/(channels/2 - 1) · i)`.
pub fn whisper_sinusoids(length: usize, channels: usize) -> Vec<f32> {
    let half = channels / 2;
    let inc = if half > 1 {
        (10000f64).ln() / (half as f64 - 1.0)
    } else {
        0.0
    };
    let mut out = vec![0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let a = t as f64 * (-inc * i as f64).exp();
            out[t * channels + i] = a.sin() as f32;
            out[t * channels + half + i] = a.cos() as f32;
        }
    }
    out
}

fn interleaved(pos: f64, d: usize, row: &mut [f32]) {
    for i in (0..d).step_by(2) {
        let div = (-(10000f64).ln() * i as f64 / d as f64).exp();
        row[i] = (pos * div).sin() as f32;
        if i + 1 < d {
            row[i + 1] = (pos * div).cos() as f32;
        }
    }
}

/// Transformer sinusoidal encoding `[length, d]`: `pe[p, 2i] = sin(p / 10000^(2i/d))`,
/// `pe[p, 2i+1] = cos(…)`.
pub fn sinusoidal_positions(length: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; length * d];
    for p in 0..length {
        interleaved(p as f64, d, &mut out[p * d..(p + 1) * d]);
    }
    out
}

/// ESPnet `RelPositionalEncoding` for a length-`t` input: `[2t-1, d]`, row `r` encodes
/// relative position `t-1-r` (interleaved sin/cos as [`sinusoidal_positions`]).
pub fn rel_positional_encoding(t: usize, d: usize) -> Vec<f32> {
    if t == 0 {
        return Vec::new();
    }
    let rows = 2 * t - 1;
    let mut out = vec![0f32; rows * d];
    for r in 0..rows {
        let pos = (t as f64 - 1.0) - r as f64;
        interleaved(pos, d, &mut out[r * d..(r + 1) * d]);
    }
    out
}

/// ESPnet `LegacyRelPositionalEncoding` for a length-`t` input: `[t, d]`, identical to
/// [`sinusoidal_positions`].
pub fn legacy_rel_positional_encoding(t: usize, d: usize) -> Vec<f32> {
    sinusoidal_positions(t, d)
}
