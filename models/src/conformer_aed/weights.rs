//! Reading `model.safetensors` (and golden files) into f32 tensors by name.
//!
//! A small private reader: the header is JSON, the data little-endian. Weights stored as
//! f16 are widened to f32 when taken (the model computes in f32 with f32 accumulation).
//! [`TensorStore::take`] checks each tensor's shape against what the config implies and
//! [`TensorStore::finish`] reports every tensor nobody asked for, so a checkpoint that
//! does not match its config fails with the tensor's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::f16;
use hark_engine::Precision;

use super::nn::Weight;

use super::error::ConformerError;

/// One tensor widened to f32 (i32 tensors are kept exactly as i32 in `ints`).
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values (f32/f16 tensors).
    pub data: Vec<f32>,
    /// Values (i32 tensors).
    pub ints: Vec<i32>,
}

/// Where one tensor's bytes lie in the file, decoded only when taken.
#[derive(Debug, Clone)]
struct Entry {
    dtype: &'static str,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// All tensors of a safetensors file, removed one by one as the model takes them.
///
/// The file's bytes are kept as read and each tensor is widened to f32 only when taken,
/// so loading needs the file plus one tensor's f32 copy at a time (not an f32 copy of the
/// whole checkpoint).
#[derive(Debug)]
pub struct TensorStore {
    path: PathBuf,
    data: Vec<u8>,
    tensors: BTreeMap<String, Entry>,
    precision: Precision,
    /// When set, every requested tensor is generated (random-weight models for benchmarks).
    synthetic: Option<u64>,
}

fn st_err(path: &Path, message: impl Into<String>) -> ConformerError {
    ConformerError::Safetensors {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl TensorStore {
    /// Reads every tensor of `path`.
    pub fn open(path: &Path) -> Result<Self, ConformerError> {
        let bytes = std::fs::read(path).map_err(|source| ConformerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes, path)
    }

    /// Parses safetensors bytes (`path` only labels errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ConformerError> {
        Self::from_bytes(bytes.to_vec(), path)
    }

    /// Parses an owned safetensors file image (`path` only labels errors).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, ConformerError> {
        let n = bytes
            .get(..8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize)
            .ok_or_else(|| st_err(path, "file shorter than the 8-byte header length"))?;
        let header = bytes
            .get(8..8usize.saturating_add(n))
            .ok_or_else(|| st_err(path, format!("header length {n} exceeds the file")))?;
        let header_end = 8 + n;
        let data = &bytes[header_end..];
        let header: serde_json::Value = serde_json::from_slice(header)
            .map_err(|e| st_err(path, format!("header JSON: {e}")))?;
        let obj = header
            .as_object()
            .ok_or_else(|| st_err(path, "header is not a JSON object"))?;
        let mut tensors = BTreeMap::new();
        for (name, info) in obj {
            if name == "__metadata__" {
                continue;
            }
            let dtype = info["dtype"]
                .as_str()
                .ok_or_else(|| st_err(path, format!("tensor {name}: no dtype")))?;
            let shape: Vec<usize> = info["shape"]
                .as_array()
                .ok_or_else(|| st_err(path, format!("tensor {name}: no shape")))?
                .iter()
                .map(|v| v.as_u64().map(|x| x as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| st_err(path, format!("tensor {name}: bad shape")))?;
            let offs = info["data_offsets"]
                .as_array()
                .and_then(|a| Some((a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize)))
                .ok_or_else(|| st_err(path, format!("tensor {name}: bad data_offsets")))?;
            if offs.0 > offs.1 || data.get(offs.0..offs.1).is_none() {
                return Err(st_err(
                    path,
                    format!("tensor {name}: data_offsets outside the file"),
                ));
            }
            let count = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| st_err(path, format!("tensor {name}: shape {shape:?} overflows")))?;
            let (dtype, width): (&'static str, usize) = match dtype {
                "F32" => ("F32", 4),
                "I32" => ("I32", 4),
                "F16" => ("F16", 2),
                other => {
                    return Err(st_err(
                        path,
                        format!("tensor {name}: unsupported dtype {other}"),
                    ))
                }
            };
            if Some(offs.1 - offs.0) != count.checked_mul(width) {
                return Err(st_err(
                    path,
                    format!(
                        "tensor {name}: {} bytes for shape {shape:?} of {dtype}",
                        offs.1 - offs.0
                    ),
                ));
            }
            let t = Entry {
                dtype,
                shape,
                start: header_end + offs.0,
                end: header_end + offs.1,
            };
            tensors.insert(name.clone(), t);
        }
        Ok(Self {
            path: path.to_path_buf(),
            data: bytes,
            tensors,
            precision: Precision::F32,
            synthetic: None,
        })
    }

    /// A store that invents every tensor it is asked for: LayerNorm scales 1, vectors
    /// small, matrices uniform with variance 1/fan-in. For benchmarks at real shapes
    /// without a checkpoint file.
    pub fn synthetic(seed: u64) -> Self {
        Self {
            path: PathBuf::from("<synthetic>"),
            data: Vec::new(),
            tensors: BTreeMap::new(),
            precision: Precision::F32,
            synthetic: Some(seed.max(1)),
        }
    }

    /// The precision matrices are converted to.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets the precision that [`TensorStore::take_matrix`] converts matrices to.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    fn generate(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        let state = self.synthetic.get_or_insert(1);
        let n: usize = shape.iter().product();
        let fan_in = if shape.len() > 1 { n / shape[0] } else { 1 };
        let is_norm_scale = shape.len() == 1 && name.ends_with(".weight");
        let amp = if shape.len() > 1 {
            (3.0 / fan_in as f32).sqrt()
        } else {
            0.1
        };
        (0..n)
            .map(|_| {
                // xorshift64*
                *state ^= *state >> 12;
                *state ^= *state << 25;
                *state ^= *state >> 27;
                let u =
                    (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
                if is_norm_scale {
                    1.0
                } else {
                    (2.0 * u - 1.0) * amp
                }
            })
            .collect()
    }

    /// Takes a weight matrix `[n × k]` (a Linear / pointwise conv weight) in the store's
    /// precision.
    pub fn take_matrix(&mut self, name: &str, shape: &[usize]) -> Result<Weight, ConformerError> {
        let w = self.take(name, shape)?;
        let (n, k) = (shape[0], shape[1..].iter().product());
        self.to_weight(w, n, k)
    }

    /// Converts an f32 matrix `[n × k]` to the store's precision.
    pub fn to_weight(&self, w: Vec<f32>, n: usize, k: usize) -> Result<Weight, ConformerError> {
        Weight::with_precision(w, n, k, self.precision).map_err(|e| ConformerError::Safetensors {
            path: self.path.clone(),
            message: format!(
                "converting a [{n}, {k}] matrix to {:?}: {e}",
                self.precision
            ),
        })
    }

    /// Removes and returns tensor `name`, checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ConformerError> {
        if self.synthetic.is_some() {
            return Ok(self.generate(name, shape));
        }
        // Check the shape before decoding (and leave a mismatching tensor in place).
        match self.tensors.get(name) {
            Some(e) if e.shape != shape => {
                return Err(ConformerError::Shape {
                    name: name.to_string(),
                    got: e.shape.clone(),
                    expected: shape.to_vec(),
                })
            }
            _ => {}
        }
        Ok(self.take_any(name)?.data)
    }

    /// Removes and returns tensor `name` whatever its shape.
    pub fn take_any(&mut self, name: &str) -> Result<RawTensor, ConformerError> {
        let e = self
            .tensors
            .remove(name)
            .ok_or_else(|| ConformerError::MissingTensor {
                name: name.to_string(),
                path: self.path.clone(),
            })?;
        let raw = &self.data[e.start..e.end];
        let mut t = RawTensor {
            shape: e.shape,
            data: Vec::new(),
            ints: Vec::new(),
        };
        match e.dtype {
            "F32" => {
                t.data = raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
            "F16" => {
                t.data = raw
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect()
            }
            _ => {
                t.ints = raw
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }
        }
        Ok(t)
    }

    /// Fails if any tensor was not taken.
    pub fn finish(self) -> Result<(), ConformerError> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        Err(ConformerError::UnexpectedTensors {
            names: self.tensors.keys().cloned().collect::<Vec<_>>().join(", "),
            path: self.path,
        })
    }
}
