//! Writing a hark Whisper model directory from imported weights.
//!
//! Importers (CTranslate2, transformers) turn their checkpoint into an [`ImportedWhisper`]:
//! hark tensor names (see `coord/whisper-format.md`), every tensor as f32, plus a
//! [`WhisperConfig`]. This module checks the tensor set against the config's dimensions,
//! converts matrices to the requested [`Precision`] with hark-engine's `Tensor::to_dtype`
//! (f16 round-to-nearest-even; int8 symmetric per output row with a `<name>.scale`
//! tensor, the convention of `hark_engine::safetensors`) and writes `config.json`,
//! `model.safetensors` and `tokenizer.json`.
//!
//! Going through f32 keeps the importers simple and lossless: f16/bf16 sources upcast
//! exactly, so re-storing them as f16 reproduces the source bits.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hark_engine::dtype::DType;
use hark_engine::safetensors::save_safetensors;
use hark_engine::tensor::Tensor;

use super::error::{engine, io, Result, StoreError};
use super::progress::{Progress, Unit};
use crate::whisper::config::{
    is_matrix, Precision, WhisperConfig, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE,
};

/// Tensors by hark name, all f32 and contiguous.
pub type WeightMap = BTreeMap<String, Tensor>;

/// A checkpoint read by an importer, ready to be written in hark's format.
#[derive(Debug)]
pub struct ImportedWhisper {
    /// Configuration; `precision` is the precision of the source's matrices.
    pub config: WhisperConfig,
    /// All tensors, f32, hark names.
    pub weights: WeightMap,
    /// The source's `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// The source weights file (for error messages).
    pub source_file: PathBuf,
}

/// Checks that `weights` holds exactly the tensors of `config.dims` with their shapes.
pub fn check_weights(source: &Path, config: &WhisperConfig, weights: &WeightMap) -> Result<()> {
    let expected = config.dims.tensor_shapes();
    for (name, shape) in &expected {
        let t = weights.get(name).ok_or_else(|| StoreError::MissingTensor {
            path: source.to_path_buf(),
            tensor: name.clone(),
        })?;
        if t.shape() != shape.as_slice() {
            return Err(StoreError::Shape {
                path: source.to_path_buf(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: t.shape().to_vec(),
            });
        }
    }
    if weights.len() != expected.len() {
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(extra) = weights.keys().find(|k| !known.contains(k.as_str())) {
            return Err(StoreError::Invalid {
                path: source.to_path_buf(),
                what: extra.clone(),
                problem: "unexpected tensor for this Whisper configuration".into(),
            });
        }
    }
    Ok(())
}

/// Writes `model` into `out_dir` (created; must not hold another model) with matrices
/// stored in `precision`. Returns the written config.
pub fn write_whisper_dir(
    model: &ImportedWhisper,
    precision: Precision,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<WhisperConfig> {
    check_weights(&model.source_file, &model.config, &model.weights)?;
    std::fs::create_dir_all(out_dir).map_err(io("create directory", out_dir))?;

    let target = match precision {
        Precision::F32 => DType::F32,
        Precision::F16 => DType::F16,
        Precision::Int8 => DType::I8,
    };
    progress.begin(
        &format!("converting to {precision}"),
        Some(model.weights.len() as u64),
        Unit::Tensors,
    );
    let mut converted: Vec<(String, Tensor)> = Vec::with_capacity(model.weights.len());
    for (i, (name, t)) in model.weights.iter().enumerate() {
        let t = if is_matrix(name) && target != DType::F32 {
            t.to_dtype(target)
                .map_err(engine(format!("converting {name} to {precision}")))?
        } else {
            t.clone()
        };
        converted.push((name.clone(), t));
        progress.update(i as u64 + 1);
    }
    progress.end();

    let weights_path = out_dir.join(WEIGHTS_FILE);
    let refs: Vec<(&str, &Tensor)> = converted.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "hark-whisper".to_string());
    meta.insert("precision".to_string(), precision.to_string());
    progress.begin("writing model.safetensors", None, Unit::Bytes);
    save_safetensors(&weights_path, &refs, &meta)
        .map_err(engine(format!("writing {}", weights_path.display())))?;
    progress.end();

    let mut config = model.config.clone();
    config.precision = precision;
    config.tokenizer = TOKENIZER_FILE.to_string();
    config.validate()?;
    let cfg_path = out_dir.join(CONFIG_FILE);
    std::fs::write(&cfg_path, config.to_json_pretty() + "\n").map_err(io("write", &cfg_path))?;
    let tok_path = out_dir.join(TOKENIZER_FILE);
    std::fs::copy(&model.tokenizer, &tok_path).map_err(io("copy", &model.tokenizer))?;
    Ok(config)
}

/// sha256 of a file as lower-case hex, reported as a progress step.
pub fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io("open", path))?;
    let len = f.metadata().map(|m| m.len()).ok();
    progress.begin(
        &format!(
            "sha256 {}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ),
        len,
        Unit::Bytes,
    );
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress.update(done);
    }
    progress.end();
    Ok(hex(&h.finalize()))
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
