//! Global cepstral mean and variance normalisation.
//!
//! Reads Kaldi CMVN statistics (`compute-cmvn-stats` output, a 2 x (dim+1) matrix:
//! row 0 = per-dimension sums with the frame count last, row 1 = sums of squares),
//! in Kaldi binary (`\0B` + `FM`/`DM` matrix) or text (`[ ... ]`) form, with or
//! without a leading utterance key, and WeNet's JSON `global_cmvn`
//! (`{"mean_stat": [...], "var_stat": [...], "frame_num": N}`, written by
//! wenet/tools/compute_cmvn_stats.py). Normalisation follows WeNet's
//! `GlobalCMVN` (wenet/transformer/cmvn.py, wenet/utils/cmvn.py):
//! `(x - mean) * istd` with `var = var_stat / n - mean^2` floored at 1e-20.

use std::path::Path;

use crate::error::AudioError;

/// Precomputed mean and inverse standard deviation per dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalCmvn {
    /// Per-dimension mean.
    pub mean: Vec<f32>,
    /// Per-dimension 1/std (all ones when variance normalisation is off).
    pub istd: Vec<f32>,
}

impl GlobalCmvn {
    /// From accumulated statistics: per-dimension sums, sums of squares and the
    /// frame count. `norm_vars = false` only subtracts the mean.
    pub fn from_stats(
        sum: &[f64],
        sum_sq: &[f64],
        count: f64,
        norm_vars: bool,
    ) -> Result<Self, AudioError> {
        let bad = |reason: String| AudioError::Cmvn {
            path: "<stats>".into(),
            reason,
        };
        if sum.len() != sum_sq.len() || sum.is_empty() {
            return Err(bad(format!(
                "mean and variance statistics have different or zero lengths ({} vs {})",
                sum.len(),
                sum_sq.len()
            )));
        }
        if count.is_nan() || count < 1.0 {
            return Err(bad(format!("frame count {count} must be >= 1")));
        }
        let mut mean = Vec::with_capacity(sum.len());
        let mut istd = Vec::with_capacity(sum.len());
        for (&s, &q) in sum.iter().zip(sum_sq) {
            let m = s / count;
            let var = (q / count - m * m).max(1e-20);
            mean.push(m as f32);
            istd.push(if norm_vars {
                (1.0 / var.sqrt()) as f32
            } else {
                1.0
            });
        }
        Ok(Self { mean, istd })
    }

    /// Loads a Kaldi `cmvn.ark` (binary or text) or a WeNet JSON `global_cmvn`,
    /// recognised by content.
    pub fn load(path: &Path) -> Result<Self, AudioError> {
        let bytes = std::fs::read(path).map_err(|io| AudioError::Open {
            path: path.to_path_buf(),
            io,
        })?;
        let err = |reason: String| AudioError::Cmvn {
            path: path.to_path_buf(),
            reason,
        };
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
        let (sum, sq, count) = match first {
            None => return Err(err("file is empty".into())),
            Some(b'{') => parse_wenet_json(&bytes).map_err(err)?,
            Some(_) => {
                let m = parse_kaldi_matrix(&bytes).map_err(err)?;
                split_kaldi_stats(&m.0, m.1, m.2).map_err(err)?
            }
        };
        Self::from_stats(&sum, &sq, count, true).map_err(|e| match e {
            AudioError::Cmvn { reason, .. } => err(reason),
            other => other,
        })
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Normalises `[n_frames, dim]` row-major features in place.
    pub fn apply(&self, feats: &mut [f32], dim: usize) -> Result<(), AudioError> {
        if dim != self.dim() || !feats.len().is_multiple_of(dim.max(1)) {
            return Err(AudioError::CmvnDim {
                features: dim,
                stats: self.dim(),
            });
        }
        for row in feats.chunks_exact_mut(dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.istd) {
                *v = (*v - m) * s;
            }
        }
        Ok(())
    }
}

fn split_kaldi_stats(
    data: &[f64],
    rows: usize,
    cols: usize,
) -> Result<(Vec<f64>, Vec<f64>, f64), String> {
    if rows != 2 || cols < 2 {
        return Err(format!(
            "expected a 2 x (dim+1) statistics matrix, got {rows} x {cols}"
        ));
    }
    let dim = cols - 1;
    let count = data[dim];
    Ok((data[..dim].to_vec(), data[cols..cols + dim].to_vec(), count))
}

fn parse_wenet_json(bytes: &[u8]) -> Result<(Vec<f64>, Vec<f64>, f64), String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    let arr = |k: &str| -> Result<Vec<f64>, String> {
        v.get(k)
            .and_then(|a| a.as_array())
            .ok_or_else(|| format!("missing array {k:?}"))?
            .iter()
            .map(|x| {
                x.as_f64()
                    .ok_or_else(|| format!("non-numeric value in {k:?}"))
            })
            .collect()
    };
    let count = v
        .get("frame_num")
        .and_then(|n| n.as_f64())
        .ok_or("missing number \"frame_num\"")?;
    Ok((arr("mean_stat")?, arr("var_stat")?, count))
}

/// Parses one Kaldi matrix (optionally preceded by a key), binary or text.
/// Returns (data row-major, rows, cols).
fn parse_kaldi_matrix(bytes: &[u8]) -> Result<(Vec<f64>, usize, usize), String> {
    // Skip an optional "key " prefix: binary matrices start with "\0B", text with '['.
    let mut pos = 0;
    while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
        pos += 1;
    }
    if pos < bytes.len() && bytes[pos] != 0 && bytes[pos] != b'[' {
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos] == b' ' {
            pos += 1;
        }
    }
    if bytes.get(pos..pos + 2) == Some(b"\0B") {
        parse_binary(&bytes[pos + 2..])
    } else {
        parse_text(&bytes[pos..])
    }
}

fn parse_binary(b: &[u8]) -> Result<(Vec<f64>, usize, usize), String> {
    let tok = b.get(0..3).ok_or("truncated binary matrix header")?;
    let elem = match tok {
        b"FM " => 4,
        b"DM " => 8,
        other => {
            return Err(format!(
                "unsupported binary matrix type {:?} (expected FM or DM; compressed CM is not supported)",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let read_int = |at: usize| -> Result<usize, String> {
        if b.get(at) != Some(&4) {
            return Err("bad integer size marker in binary matrix header".into());
        }
        let v = b
            .get(at + 1..at + 5)
            .ok_or("truncated binary matrix header")?;
        let n = i32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        usize::try_from(n).map_err(|_| format!("negative matrix dimension {n}"))
    };
    let rows = read_int(3)?;
    let cols = read_int(8)?;
    let data = &b[13..];
    let n = rows * cols;
    if data.len() < n * elem {
        return Err(format!(
            "binary matrix {rows} x {cols} truncated ({} data bytes)",
            data.len()
        ));
    }
    let out = (0..n)
        .map(|i| {
            let c = &data[i * elem..(i + 1) * elem];
            if elem == 4 {
                f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64
            } else {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            }
        })
        .collect();
    Ok((out, rows, cols))
}

fn parse_text(b: &[u8]) -> Result<(Vec<f64>, usize, usize), String> {
    let s = std::str::from_utf8(b).map_err(|_| "text matrix is not UTF-8".to_string())?;
    let open = s.find('[').ok_or("no '[' opening the text matrix")?;
    let close = s.find(']').ok_or("no ']' closing the text matrix")?;
    if close < open {
        return Err("']' before '['".into());
    }
    let mut rows = Vec::new();
    for line in s[open + 1..close].lines() {
        let vals: Result<Vec<f64>, _> = line.split_whitespace().map(|t| t.parse::<f64>()).collect();
        let vals = vals.map_err(|e| format!("bad number in text matrix: {e}"))?;
        if !vals.is_empty() {
            rows.push(vals);
        }
    }
    let cols = rows.first().map_or(0, |r| r.len());
    if rows.iter().any(|r| r.len() != cols) {
        return Err("rows of the text matrix have different lengths".into());
    }
    let n = rows.len();
    Ok((rows.concat(), n, cols))
}
