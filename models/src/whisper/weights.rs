//! Minimal safetensors reader for the Whisper model (private until hark-engine's
//! mmap loader is published): parses the JSON header, validates every tensor's byte
//! range against the file, and hands out f32 vectors or [`WeightData`] matrices in the
//! precision the caller asks for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::f16;

pub use super::config::Precision;
use super::error::{Result, WhisperError};
use super::kernels::{quantize_rows_i8, WeightData};

#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// An opened safetensors file.
pub struct SafeTensors {
    path: PathBuf,
    data: Vec<u8>,
    base: usize,
    entries: HashMap<String, Entry>,
}

impl SafeTensors {
    /// Reads and validates `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| WhisperError::Io {
            path: path.into(),
            source,
        })?;
        let corrupt = |msg: String| WhisperError::Corrupt {
            path: path.into(),
            msg,
        };
        if data.len() < 8 {
            return Err(corrupt(format!(
                "file is {} bytes, too short for a safetensors header",
                data.len()
            )));
        }
        let hlen = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8])) as usize;
        if hlen > data.len() - 8 || hlen > 100 << 20 {
            return Err(corrupt(format!(
                "header length {hlen} exceeds the file size {}",
                data.len()
            )));
        }
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&data[8..8 + hlen])
                .map_err(|e| corrupt(format!("header is not valid JSON: {e}")))?;
        let base = 8 + hlen;
        let mut entries = HashMap::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = v["dtype"].as_str().unwrap_or("").to_string();
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().map(|x| x as usize))
                        .collect()
                })
                .unwrap_or_default();
            let offs: Vec<usize> = v["data_offsets"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_u64().map(|x| x as usize))
                        .collect()
                })
                .unwrap_or_default();
            if offs.len() != 2 || offs[0] > offs[1] || base + offs[1] > data.len() {
                return Err(corrupt(format!(
                    "tensor `{name}` has data offsets {offs:?} outside the file"
                )));
            }
            let esize = match dtype.as_str() {
                "F32" => 4,
                "F16" | "BF16" => 2,
                "I8" => 1,
                other => {
                    return Err(corrupt(format!(
                        "tensor `{name}` has unsupported dtype {other}"
                    )))
                }
            };
            if shape.iter().product::<usize>() * esize != offs[1] - offs[0] {
                return Err(corrupt(format!(
                    "tensor `{name}`: shape {shape:?} does not match its byte size"
                )));
            }
            entries.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    start: offs[0],
                    end: offs[1],
                },
            );
        }
        Ok(SafeTensors {
            path: path.into(),
            data,
            base,
            entries,
        })
    }

    fn entry(&self, name: &str, shape: &[usize]) -> Result<&Entry> {
        let e = self.entries.get(name).ok_or_else(|| WhisperError::Tensor {
            path: self.path.clone(),
            name: name.into(),
            msg: "missing".into(),
        })?;
        if e.shape != shape {
            return Err(WhisperError::Tensor {
                path: self.path.clone(),
                name: name.into(),
                msg: format!("shape {:?}, expected {shape:?}", e.shape),
            });
        }
        Ok(e)
    }

    fn bytes(&self, e: &Entry) -> &[u8] {
        &self.data[self.base + e.start..self.base + e.end]
    }

    /// A tensor as f32 values (F32/F16/BF16 sources; I8 sources are dequantized with
    /// `<name>.scale`).
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let e = self.entry(name, shape)?;
        let b = self.bytes(e);
        Ok(match e.dtype.as_str() {
            "F32" => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "F16" => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            "BF16" => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => {
                let rows = shape.first().copied().unwrap_or(1);
                let cols = b.len() / rows.max(1);
                let scale = self.f32(&format!("{name}.scale"), &[rows])?;
                b.iter()
                    .enumerate()
                    .map(|(i, &q)| q as i8 as f32 * scale[i / cols.max(1)])
                    .collect()
            }
        })
    }

    /// A weight matrix `[rows, cols]` (further dims folded into `cols`) stored in `p`.
    pub fn matrix(&self, name: &str, shape: &[usize], p: Precision) -> Result<WeightData> {
        let e = self.entry(name, shape)?;
        let cols: usize = shape[1..].iter().product();
        match (p, e.dtype.as_str()) {
            (Precision::F16, "F16") => Ok(WeightData::F16(
                self.bytes(e)
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )),
            (Precision::Int8, "I8") => {
                let q = self.bytes(e).iter().map(|&b| b as i8).collect();
                let scale = self.f32(&format!("{name}.scale"), &shape[..1])?;
                Ok(WeightData::I8 { q, scale })
            }
            (Precision::F32, _) => Ok(WeightData::F32(self.f32(name, shape)?)),
            (Precision::F16, _) => Ok(WeightData::F16(
                self.f32(name, shape)?
                    .into_iter()
                    .map(f16::from_f32)
                    .collect(),
            )),
            (Precision::Int8, _) => Ok(quantize_rows_i8(&self.f32(name, shape)?, cols)),
        }
    }

    /// The dtype name of the stored matrix `name` (for reports).
    pub fn dtype_of(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| e.dtype.as_str())
    }
}
