//! Safetensors loading (memory-mapped, zero-copy) and writing.
//!
//! Format (as in huggingface/safetensors `safetensors/src/tensor.rs`): 8-byte little-endian
//! header length `n`, `n` bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]},
//! "__metadata__": {str: str}}`, then the data; offsets are relative to the data start.
//! The header is parsed here with serde_json (small, and lets every error name the file
//! and tensor).
//!
//! **Zero copy.** The file is mapped once (`Arc<Mmap>`); each tensor's storage is a byte
//! range of the mapping. A tensor whose data is not aligned to its element size (possible
//! in files from other writers) is copied into an aligned buffer instead; files written
//! by [`save_safetensors`] (and by the Python `safetensors` package, which sorts tensors by
//! dtype size and pads the header to 8 bytes) never need that.
//!
//! **int8 convention.** An int8 weight `name` is stored as an `I8` tensor `name` of shape
//! `[rows, ...]` plus an `F32` tensor `name.scale` of shape `[rows]` holding one symmetric
//! scale per row: `w[r, ...] = scale[r] * q[r, ...]`.
//!
//! **Writer.** [`save_safetensors`] orders tensors by element size (4, 2, 1 bytes, then
//! name) and pads the header with spaces so data starts at a 64-byte boundary; every
//! tensor then starts at a multiple of its element size.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use serde_json::Value;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::precision::{Precision, PrecisionPolicy};
use crate::tensor::{AlignedBuf, Layout, Storage, Tensor};

/// Suffix of the per-row scale tensor of an int8 tensor.
pub const INT8_SCALE_SUFFIX: &str = ".scale";

/// Largest accepted JSON header (100 MB, as the reference implementation).
const MAX_HEADER: u64 = 100_000_000;

#[derive(Debug, Clone)]
struct Entry {
    dtype: std::result::Result<DType, String>,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A memory-mapped safetensors file.
pub struct SafeTensors {
    path: PathBuf,
    map: Arc<Mmap>,
    data_start: usize,
    entries: BTreeMap<String, Entry>,
    metadata: HashMap<String, String>,
}

impl std::fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SafeTensors({}, {} tensors)",
            self.path.display(),
            self.entries.len()
        )
    }
}

fn format_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::SafetensorsFormat {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl SafeTensors {
    /// Maps and validates a safetensors file. The data is not read.
    pub fn open(path: impl AsRef<Path>) -> Result<SafeTensors> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| Error::Io {
            op: "open",
            path: path.into(),
            source,
        })?;
        // SAFETY: the mapping is read-only. As with every mmap, the file must not be
        // truncated or rewritten by another process while it is mapped; model files are
        // written once by converters and then only read.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| Error::Io {
            op: "mmap",
            path: path.into(),
            source,
        })?;
        Self::parse(path, Arc::new(map))
    }

    fn parse(path: &Path, map: Arc<Mmap>) -> Result<SafeTensors> {
        let bytes: &[u8] = &map;
        if bytes.len() < 8 {
            return Err(format_err(
                path,
                format!(
                    "file is {} bytes, too short for the 8-byte header length",
                    bytes.len()
                ),
            ));
        }
        let mut len8 = [0u8; 8];
        len8.copy_from_slice(&bytes[..8]);
        let n = u64::from_le_bytes(len8);
        if n > MAX_HEADER || n > (bytes.len() - 8) as u64 {
            return Err(format_err(
                path,
                format!(
                    "header length {n} exceeds the file size {} (truncated or not safetensors)",
                    bytes.len()
                ),
            ));
        }
        let n = n as usize;
        let header: Value = serde_json::from_slice(&bytes[8..8 + n])
            .map_err(|e| format_err(path, format!("header is not valid JSON: {e}")))?;
        let obj = header
            .as_object()
            .ok_or_else(|| format_err(path, "header is not a JSON object"))?;
        let data_start = 8 + n;
        let data_len = bytes.len() - data_start;
        let mut entries = BTreeMap::new();
        let mut metadata = HashMap::new();
        for (name, v) in obj {
            if name == "__metadata__" {
                let m = v
                    .as_object()
                    .ok_or_else(|| format_err(path, "__metadata__ is not an object"))?;
                for (k, v) in m {
                    let s = v.as_str().ok_or_else(|| {
                        format_err(path, format!("__metadata__ value '{k}' is not a string"))
                    })?;
                    metadata.insert(k.clone(), s.to_string());
                }
                continue;
            }
            let bad = |what: &str| format_err(path, format!("tensor '{name}': {what}"));
            let dtype_s = v
                .get("dtype")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("missing string 'dtype'"))?;
            let shape = v
                .get("shape")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("missing array 'shape'"))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| bad("'shape' must hold non-negative integers"))?;
            let offs = v
                .get("data_offsets")
                .and_then(Value::as_array)
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
                .ok_or_else(|| bad("'data_offsets' must be [begin, end]"))?;
            let (begin, end) = offs;
            if begin > end || end > data_len {
                return Err(bad(&format!(
                    "data_offsets [{begin}, {end}] outside the {data_len} data bytes (file truncated?)"
                )));
            }
            let dtype = DType::from_safetensors_name(dtype_s).ok_or_else(|| dtype_s.to_string());
            if let Ok(dt) = dtype {
                let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                let expected = numel.and_then(|n| n.checked_mul(dt.size_in_bytes()));
                if expected != Some(end - begin) {
                    return Err(bad(&format!(
                        "shape {shape:?} of {dt} needs {expected:?} bytes but data_offsets span {}",
                        end - begin
                    )));
                }
            }
            entries.insert(
                name.clone(),
                Entry {
                    dtype,
                    shape,
                    begin,
                    end,
                },
            );
        }
        Ok(SafeTensors {
            path: path.to_path_buf(),
            map,
            data_start,
            entries,
            metadata,
        })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` map.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Tensor names in sorted order (int8 scale tensors included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether the file holds a tensor `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The stored dtype and shape of `name`, if present and of a supported dtype.
    pub fn info(&self, name: &str) -> Option<(DType, &[usize])> {
        self.entries
            .get(name)
            .and_then(|e| e.dtype.clone().ok().map(|d| (d, e.shape.as_slice())))
    }

    /// The mapped bytes of the whole file (for zero-copy checks).
    pub fn mapped_bytes(&self) -> &[u8] {
        &self.map
    }

    fn raw(&self, name: &str) -> Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            name: name.to_string(),
            source_desc: self.path.display().to_string(),
        })?;
        let dtype = e.dtype.clone().map_err(|s| {
            format_err(
                &self.path,
                format!(
                    "tensor '{name}' has unsupported dtype {s} (supported: F32, F16, BF16, I8)"
                ),
            )
        })?;
        let start = self.data_start + e.begin;
        let len = e.end - e.begin;
        let aligned = (self.map.as_ptr() as usize + start).is_multiple_of(dtype.size_in_bytes());
        let storage = if aligned {
            Storage::Mapped {
                map: self.map.clone(),
                start,
                len,
            }
        } else {
            Storage::Owned(AlignedBuf::from_bytes(&self.map[start..start + len]))
        };
        let scales = if dtype == DType::I8 {
            let sname = format!("{name}{INT8_SCALE_SUFFIX}");
            let rows = e.shape.first().copied().unwrap_or(1);
            let s = self.raw(&sname).map_err(|err| match err {
                Error::MissingTensor { .. } => Error::MissingTensor {
                    name: sname.clone(),
                    source_desc: format!(
                        "{} (per-row scales of int8 tensor '{name}')",
                        self.path.display()
                    ),
                },
                other => other,
            })?;
            if s.dtype() != DType::F32 || s.shape() != [rows] {
                return Err(Error::ShapeMismatch {
                    what: format!(
                        "{sname} (f32 scales of int8 tensor '{name}', dtype {})",
                        s.dtype()
                    ),
                    expected: vec![rows],
                    got: s.shape().to_vec(),
                });
            }
            Some(s)
        } else {
            None
        };
        Tensor::from_storage(
            Arc::new(storage),
            dtype,
            Layout::contiguous(&e.shape),
            scales,
        )
    }

    /// The tensor `name` as stored (zero-copy when aligned). int8 tensors come with their
    /// `name.scale` scales attached.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        self.raw(name)
    }
}

/// Writes tensors and string metadata to a safetensors file.
///
/// int8 tensors are written as `name` (I8) plus `name.scale` (F32, one per row).
/// Non-contiguous tensors are written in row-major order.
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(&str, &Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    // Flatten to (name, dtype, shape, bytes).
    let mut items: Vec<(String, DType, Vec<usize>, Tensor)> = Vec::new();
    for (name, t) in tensors {
        let t = t.contiguous();
        if let Some(s) = t.scales() {
            items.push((
                format!("{name}{INT8_SCALE_SUFFIX}"),
                DType::F32,
                s.shape().to_vec(),
                s.clone(),
            ));
        }
        items.push((name.to_string(), t.dtype(), t.shape().to_vec(), t));
    }
    let mut seen = std::collections::HashSet::new();
    for (n, ..) in &items {
        if !seen.insert(n.clone()) {
            return Err(Error::InvalidArgument {
                op: "save_safetensors",
                reason: format!("duplicate tensor name '{n}'"),
            });
        }
    }
    items.sort_by(|a, b| {
        b.1.size_in_bytes()
            .cmp(&a.1.size_in_bytes())
            .then_with(|| a.0.cmp(&b.0))
    });
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, Value> = metadata
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        header.insert("__metadata__".into(), Value::Object(m));
    }
    let mut off = 0usize;
    let mut datas: Vec<&[u8]> = Vec::new();
    for (name, dtype, shape, t) in &items {
        let bytes = t.storage().as_bytes();
        let sz = dtype.size_in_bytes();
        let start = t.layout().offset() * sz;
        let data = &bytes[start..start + t.numel() * sz];
        let mut e = serde_json::Map::new();
        e.insert(
            "dtype".into(),
            Value::String(dtype.safetensors_name().into()),
        );
        e.insert(
            "shape".into(),
            Value::Array(shape.iter().map(|&d| Value::from(d as u64)).collect()),
        );
        e.insert(
            "data_offsets".into(),
            Value::Array(vec![
                Value::from(off as u64),
                Value::from((off + data.len()) as u64),
            ]),
        );
        header.insert(name.clone(), Value::Object(e));
        off += data.len();
        datas.push(data);
    }
    let mut hjson =
        serde_json::to_vec(&Value::Object(header)).map_err(|e| Error::InvalidArgument {
            op: "save_safetensors",
            reason: format!("cannot encode header: {e}"),
        })?;
    while (8 + hjson.len()) % 64 != 0 {
        hjson.push(b' ');
    }
    let io = |source| Error::Io {
        op: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::io::BufWriter::new(File::create(path).map_err(io)?);
    f.write_all(&(hjson.len() as u64).to_le_bytes())
        .map_err(io)?;
    f.write_all(&hjson).map_err(io)?;
    for d in datas {
        f.write_all(d).map_err(io)?;
    }
    f.flush().map_err(io)?;
    Ok(())
}

/// Weights of a model: one or more safetensors files, a name prefix, and a precision
/// policy. Cheap to clone; [`Weights::pp`] descends into a sub-module like candle's
/// `VarBuilder::pp` (`w.pp("encoder").pp("layers.3")`).
#[derive(Clone)]
pub struct Weights {
    files: Arc<Vec<SafeTensors>>,
    prefix: String,
    policy: Arc<PrecisionPolicy>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Weights(prefix '{}', {:?})", self.prefix, self.files)
    }
}

impl Weights {
    /// Maps the given safetensors files (tensors are looked up in order).
    pub fn open<P: AsRef<Path>>(paths: &[P], policy: PrecisionPolicy) -> Result<Weights> {
        let files = paths
            .iter()
            .map(SafeTensors::open)
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            files: Arc::new(files),
            prefix: String::new(),
            policy: Arc::new(policy),
        })
    }

    /// Wraps already opened files.
    pub fn from_files(files: Vec<SafeTensors>, policy: PrecisionPolicy) -> Weights {
        Weights {
            files: Arc::new(files),
            prefix: String::new(),
            policy: Arc::new(policy),
        }
    }

    /// A view whose names are prefixed with `name.`.
    pub fn pp(&self, name: &str) -> Weights {
        let mut w = self.clone();
        w.prefix = self.full_name(name);
        w
    }

    /// The full tensor name of `name` under this prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        }
    }

    /// The current prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The precision policy.
    pub fn policy(&self) -> &PrecisionPolicy {
        &self.policy
    }

    /// The underlying files.
    pub fn files(&self) -> &[SafeTensors] {
        &self.files
    }

    /// Metadata value `key` from the first file that has it.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.files
            .iter()
            .find_map(|f| f.metadata().get(key).map(String::as_str))
    }

    /// Whether tensor `name` (under the prefix) exists.
    pub fn contains(&self, name: &str) -> bool {
        let full = self.full_name(name);
        self.files.iter().any(|f| f.contains(&full))
    }

    fn find(&self, full: &str) -> Result<Tensor> {
        for f in self.files.iter() {
            if f.contains(full) {
                return f.tensor(full);
            }
        }
        Err(Error::MissingTensor {
            name: full.to_string(),
            source_desc: self
                .files
                .iter()
                .map(|f| f.path().display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Tensor `name` as stored (any dtype, zero-copy), checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full_name(name);
        let t = self.find(&full)?;
        if t.shape() != shape {
            return Err(Error::ShapeMismatch {
                what: format!("tensor '{full}'"),
                expected: shape.to_vec(),
                got: t.shape().to_vec(),
            });
        }
        Ok(t)
    }

    /// Tensor `name`, which must be stored with exactly `dtype` and `shape` (no
    /// conversion); the error names the tensor and both dtypes otherwise.
    pub fn get_typed(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = self.get(name, shape)?;
        if t.dtype() != dtype {
            return Err(Error::DTypeMismatch {
                what: format!("tensor '{}'", self.full_name(name)),
                expected: dtype.to_string(),
                got: t.dtype(),
            });
        }
        Ok(t)
    }

    /// Tensor `name` converted to `dtype` (zero-copy when already stored so).
    pub fn get_as(&self, name: &str, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = self.get(name, shape)?;
        if t.dtype() == dtype {
            return Ok(t);
        }
        t.to_dtype(dtype)
    }

    /// Tensor `name` as f32: for norms, biases and other vectors that always run in f32.
    pub fn get_f32(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.get_as(name, shape, DType::F32)
    }

    /// Matrix weight `name` in the dtype the precision policy picks for it
    /// (see [`Precision::target_for`]).
    pub fn get_matrix(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = self.full_name(name);
        let t = self.get(name, shape)?;
        let target = self.policy.for_tensor(&full).target_for(t.dtype());
        if t.dtype() == target {
            Ok(t)
        } else {
            t.to_dtype(target)
        }
    }

    /// The precision the policy assigns to tensor `name` under this prefix.
    pub fn precision_for(&self, name: &str) -> Precision {
        self.policy.for_tensor(&self.full_name(name))
    }
}
