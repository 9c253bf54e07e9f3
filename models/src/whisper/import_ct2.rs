//! Importer for CTranslate2 Whisper directories (`model.bin`, `config.json`, `tokenizer.json`).
//!
//! Follows CTranslate2's serialisation in `python/ctranslate2/specs/model_spec.py`
//! (`ModelSpec._serialize`) and its loader `src/models/model.cc`. `model.bin`, all
//! integers little-endian:
//!
//! ```text
//! u32 binary_version            (5 or 6 for every Whisper converter)
//! str spec_name                 ("WhisperSpec")        str = u16 length incl. NUL, bytes, NUL
//! u32 spec_revision             (3 today)
//! u32 num_variables
//!   str name; u8 rank; u32 dims[rank]; u8 dtype; u32 num_bytes; bytes[num_bytes]
//! u32 num_aliases
//!   str alias; str variable_name
//! ```
//!
//! dtype ids follow `DataType` in `include/ctranslate2/types.h`: 0 f32, 1 i8, 2 i16,
//! 3 i32, 4 f16, 5 bf16. Quantised weights `<scope>/weight` come with
//! `<scope>/weight_scale` (int8: f32 per output row; int16: one f32) where
//! `quantised = round(value * scale)`, so the value is `q / scale`.
//!
//! Variable names come from `specs/whisper_spec.py` + `specs/transformer_spec.py`, filled
//! by `converters/transformers.py` (`WhisperLoader`): self-attention q/k/v are fused into
//! `self_attention/linear_0` (k bias zeros), cross-attention k/v into `attention/linear_1`,
//! the output projection `decoder/projection/weight` is an alias of
//! `decoder/embeddings/weight`, and nothing is scaled or transposed (conv weights keep
//! PyTorch's `[out, in, k]`, positions are stored as `position_encodings/encodings`).
//! hark uses the same fusions, so the import is a renaming plus dtype conversion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hark_engine::tensor::Tensor;
use memmap2::Mmap;
use serde::Deserialize;

use super::config::{
    FeatureConfig, ModelDimensions, ModelSource, Precision, WhisperConfig, FAMILY, FORMAT_VERSION,
    TOKENIZER_FILE,
};
use crate::store::convert::{check_weights, sha256_file, ImportedWhisper, WeightMap};
use crate::store::error::{engine, io, Result, StoreError};
use crate::store::progress::{Progress, Unit};

/// The weights file of a CTranslate2 model directory.
pub const CT2_WEIGHTS: &str = "model.bin";

/// Element type of a CTranslate2 variable (`DataType` in `include/ctranslate2/types.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2DType {
    /// 0
    F32,
    /// 1
    I8,
    /// 2
    I16,
    /// 3
    I32,
    /// 4
    F16,
    /// 5
    BF16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Ct2DType::F32,
            1 => Ct2DType::I8,
            2 => Ct2DType::I16,
            3 => Ct2DType::I32,
            4 => Ct2DType::F16,
            5 => Ct2DType::BF16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Ct2DType::I8 => 1,
            Ct2DType::I16 | Ct2DType::F16 | Ct2DType::BF16 => 2,
            Ct2DType::F32 | Ct2DType::I32 => 4,
        }
    }
}

/// One variable of a `model.bin`.
#[derive(Debug, Clone)]
pub struct Ct2Variable {
    /// Shape (empty for scalars).
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: Ct2DType,
    /// Byte offset of the data in the file.
    pub offset: usize,
    /// Byte length of the data.
    pub len: usize,
}

/// A parsed (memory-mapped) CTranslate2 `model.bin`.
#[derive(Debug)]
pub struct Ct2Model {
    path: PathBuf,
    map: Mmap,
    /// Binary format version.
    pub binary_version: u32,
    /// Model specification name (`WhisperSpec`).
    pub spec: String,
    /// Specification revision.
    pub revision: u32,
    /// Variables by name.
    pub variables: BTreeMap<String, Ct2Variable>,
    /// Aliases: alias name -> variable name.
    pub aliases: BTreeMap<String, String>,
}

struct Cursor<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(StoreError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                offset: self.pos,
                needed: n,
                len: self.data.len(),
            }),
        }
    }
    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let n = self.u16(what)? as usize;
        let b = self.take(n, what)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| StoreError::Invalid {
            path: self.path.to_path_buf(),
            what: what(),
            problem: "string is not UTF-8".into(),
        })
    }
}

impl Ct2Model {
    /// Maps and parses `path` (a `model.bin`). The tensor data is not read.
    pub fn open(path: &Path) -> Result<Ct2Model> {
        let file = std::fs::File::open(path).map_err(io("open", path))?;
        // SAFETY: read-only mapping of a model file that is not modified while imported.
        let map = unsafe { Mmap::map(&file) }.map_err(io("mmap", path))?;
        let mut c = Cursor {
            path,
            data: &map,
            pos: 0,
        };
        let binary_version = c.u32(&|| "binary version".into())?;
        if !(5..=6).contains(&binary_version) {
            return Err(StoreError::Unsupported {
                path: path.into(),
                problem: format!(
                    "CTranslate2 binary version {binary_version}; hark reads versions 5 and 6"
                ),
            });
        }
        let spec = c.string(&|| "spec name".into())?;
        let revision = c.u32(&|| "spec revision".into())?;
        let n = c.u32(&|| "variable count".into())? as usize;
        let mut variables = BTreeMap::new();
        for i in 0..n {
            let name = c.string(&|| format!("name of variable {i}"))?;
            let ctx = |field: &str| {
                let name = name.clone();
                let field = field.to_string();
                move || format!("{field} of variable {name}")
            };
            let rank = c.u8(&ctx("rank"))? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32(&ctx("shape"))? as usize);
            }
            let id = c.u8(&ctx("dtype"))?;
            let dtype = Ct2DType::from_id(id).ok_or_else(|| StoreError::Unsupported {
                path: path.into(),
                problem: format!("variable {name}: unknown dtype id {id} (expected 0..=5)"),
            })?;
            let len = c.u32(&ctx("byte count"))? as usize;
            let offset = c.pos;
            c.take(len, &ctx("data"))?;
            let numel: usize = shape.iter().product();
            if numel * dtype.size() != len {
                return Err(StoreError::Invalid {
                    path: path.into(),
                    what: name,
                    problem: format!(
                        "{len} bytes do not match shape {shape:?} of {dtype:?} ({} bytes)",
                        numel * dtype.size()
                    ),
                });
            }
            variables.insert(
                name,
                Ct2Variable {
                    shape,
                    dtype,
                    offset,
                    len,
                },
            );
        }
        let na = c.u32(&|| "alias count".into())? as usize;
        let mut aliases = BTreeMap::new();
        for i in 0..na {
            let alias = c.string(&|| format!("alias {i}"))?;
            let target = c.string(&|| format!("target of alias {alias}"))?;
            aliases.insert(alias, target);
        }
        Ok(Ct2Model {
            path: path.to_path_buf(),
            map,
            binary_version,
            spec,
            revision,
            variables,
            aliases,
        })
    }

    /// Resolves aliases.
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map(String::as_str).unwrap_or(name)
    }

    /// The variable `name` (after alias resolution).
    pub fn variable(&self, name: &str) -> Option<&Ct2Variable> {
        self.variables.get(self.resolve(name))
    }

    fn bytes(&self, v: &Ct2Variable) -> &[u8] {
        &self.map[v.offset..v.offset + v.len]
    }

    /// A scalar variable as f64 (integer or float), if present.
    pub fn scalar(&self, name: &str) -> Option<f64> {
        let v = self.variable(name)?;
        if !v.shape.is_empty() && v.shape.iter().product::<usize>() != 1 {
            return None;
        }
        Some(decode_plain(self.bytes(v), v.dtype)[0])
    }

    /// The variable `name` converted to f32 (int8/int16 dequantised with `<name>_scale`).
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let name = self.resolve(name);
        let v = self
            .variable(name)
            .ok_or_else(|| StoreError::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })?;
        let raw = decode_plain(self.bytes(v), v.dtype);
        let mut out: Vec<f32> = raw.iter().map(|&x| x as f32).collect();
        if matches!(v.dtype, Ct2DType::I8 | Ct2DType::I16) {
            let scale_name = format!("{name}_scale");
            let (_, scale) = self
                .f32(&scale_name)
                .map_err(|_| StoreError::MissingTensor {
                    path: self.path.clone(),
                    tensor: scale_name.clone(),
                })?;
            let rows = v.shape.first().copied().unwrap_or(1);
            if scale.len() == 1 {
                out.iter_mut().for_each(|x| *x /= scale[0]);
            } else if scale.len() == rows && rows > 0 {
                let per = out.len() / rows;
                for (r, s) in scale.iter().enumerate() {
                    out[r * per..(r + 1) * per].iter_mut().for_each(|x| *x /= s);
                }
            } else {
                return Err(StoreError::Shape {
                    path: self.path.clone(),
                    tensor: scale_name,
                    expected: vec![rows],
                    found: vec![scale.len()],
                });
            }
        }
        Ok((v.shape.clone(), out))
    }
}

fn decode_plain(b: &[u8], dtype: Ct2DType) -> Vec<f64> {
    match dtype {
        Ct2DType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Ct2DType::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Ct2DType::I16 => b
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as f64)
            .collect(),
        Ct2DType::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64())
            .collect(),
        Ct2DType::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f64())
            .collect(),
        Ct2DType::I8 => b.iter().map(|&x| x as i8 as f64).collect(),
    }
}

/// CTranslate2 name of a hark tensor (see the module docs for the correspondence).
pub fn ct2_name(hark: &str) -> String {
    let (base, leaf) = hark.rsplit_once('.').unwrap_or((hark, ""));
    let norm_leaf = |leaf: &str| match leaf {
        "weight" => "gamma".to_string(),
        "bias" => "beta".to_string(),
        other => other.to_string(),
    };
    // encoder.layers.{i}.<module> / decoder.layers.{i}.<module>
    let mut parts = base.splitn(4, '.');
    let (stack, second, third, module) = (parts.next(), parts.next(), parts.next(), parts.next());
    if let (Some(stack), Some("layers"), Some(i), Some(module)) = (stack, second, third, module) {
        let (m, is_norm) = match module {
            "self_attn_layer_norm" => ("self_attention/layer_norm", true),
            "self_attn.qkv_proj" => ("self_attention/linear_0", false),
            "self_attn.out_proj" => ("self_attention/linear_1", false),
            "encoder_attn_layer_norm" => ("attention/layer_norm", true),
            "encoder_attn.q_proj" => ("attention/linear_0", false),
            "encoder_attn.kv_proj" => ("attention/linear_1", false),
            "encoder_attn.out_proj" => ("attention/linear_2", false),
            "final_layer_norm" => ("ffn/layer_norm", true),
            "fc1" => ("ffn/linear_0", false),
            "fc2" => ("ffn/linear_1", false),
            other => (other, false),
        };
        let leaf = if is_norm {
            norm_leaf(leaf)
        } else {
            leaf.to_string()
        };
        return format!("{stack}/layer_{i}/{m}/{leaf}");
    }
    match base {
        "encoder.embed_positions" => "encoder/position_encodings/encodings".into(),
        "decoder.embed_positions" => "decoder/position_encodings/encodings".into(),
        "decoder.embed_tokens" => format!("decoder/embeddings/{leaf}"),
        "encoder.layer_norm" | "decoder.layer_norm" => {
            format!("{}/{}", base.replace('.', "/"), norm_leaf(leaf))
        }
        _ => format!("{}/{leaf}", base.replace('.', "/")),
    }
}

/// CTranslate2 `config.json` of a Whisper model (`WhisperConfig` in `specs/whisper_spec.py`).
#[derive(Debug, Default, Deserialize)]
pub struct Ct2WhisperConfig {
    /// Suppressed at every step.
    #[serde(default)]
    pub suppress_ids: Vec<i64>,
    /// Suppressed at the first step.
    #[serde(default)]
    pub suppress_ids_begin: Vec<i64>,
    /// Language token ids.
    #[serde(default)]
    pub lang_ids: Vec<u32>,
    /// `[layer, head]` pairs.
    #[serde(default)]
    pub alignment_heads: Vec<[usize; 2]>,
}

/// True if `dir` looks like a CTranslate2 model directory.
pub fn is_ct2_dir(dir: &Path) -> bool {
    dir.join(CT2_WEIGHTS).is_file()
}

/// Scalars that carry no weights; checked where they change the computation.
const KNOWN_SCALARS: &[&str] = &[
    "decoder/activation",
    "decoder/alibi",
    "decoder/alignment_heads",
    "decoder/alignment_layer",
    "decoder/num_heads",
    "decoder/pre_norm",
    "decoder/scale_embeddings",
    "decoder/start_from_zero_embedding",
    "encoder/num_heads",
];

/// `common_spec.Activation.GELU` in CTranslate2.
const CT2_GELU: f64 = 3.0;

/// Reads a CTranslate2 Whisper directory. `name` goes into `config.source.name`.
pub fn read_ct2_dir(dir: &Path, name: &str, progress: &dyn Progress) -> Result<ImportedWhisper> {
    let bin = dir.join(CT2_WEIGHTS);
    if !bin.is_file() {
        return Err(StoreError::NotAModel {
            path: dir.into(),
            problem: format!("no {CT2_WEIGHTS}"),
        });
    }
    let tokenizer = dir.join(TOKENIZER_FILE);
    if !tokenizer.is_file() {
        return Err(StoreError::NotAModel {
            path: dir.into(),
            problem: format!("no {TOKENIZER_FILE} beside {CT2_WEIGHTS}"),
        });
    }
    let cfg_path = dir.join("config.json");
    let ct2_cfg: Ct2WhisperConfig = if cfg_path.is_file() {
        let text = std::fs::read_to_string(&cfg_path).map_err(io("read", &cfg_path))?;
        serde_json::from_str(&text).map_err(|e| StoreError::Json {
            path: cfg_path.clone(),
            problem: e.to_string(),
        })?
    } else {
        Ct2WhisperConfig::default()
    };
    let sha = sha256_file(&bin, progress)?;
    let model = Ct2Model::open(&bin)?;
    let path = bin.as_path();
    if model.spec != "WhisperSpec" {
        return Err(StoreError::Unsupported {
            path: path.into(),
            problem: format!(
                "model spec {:?}; hark imports \"WhisperSpec\" (revision <= 3)",
                model.spec
            ),
        });
    }
    if model.revision > 3 {
        return Err(StoreError::Unsupported {
            path: path.into(),
            problem: format!(
                "WhisperSpec revision {}; hark knows revisions up to 3",
                model.revision
            ),
        });
    }
    let want = |n: &str, expected: f64, meaning: &str| -> Result<()> {
        match model.scalar(n) {
            Some(v) if (v - expected).abs() > 1e-6 => Err(StoreError::Invalid {
                path: path.into(),
                what: n.into(),
                problem: format!("is {v}, expected {expected} ({meaning})"),
            }),
            _ => Ok(()),
        }
    };
    want("decoder/activation", CT2_GELU, "GELU")?;
    want("decoder/pre_norm", 1.0, "pre-norm Transformer")?;
    want("decoder/alibi", 0.0, "no ALiBi")?;
    want(
        "decoder/start_from_zero_embedding",
        0.0,
        "no zero start embedding",
    )?;
    if let Some(v) = model.scalar("decoder/scale_embeddings") {
        // Stored as a bool (int8 0) or as the float factor (1.0 = no scaling).
        if v != 0.0 && (v - 1.0).abs() > 1e-6 {
            return Err(StoreError::Invalid {
                path: path.into(),
                what: "decoder/scale_embeddings".into(),
                problem: format!("is {v}, expected no embedding scaling (Whisper)"),
            });
        }
    }

    let shape_of = |n: &str| -> Result<Vec<usize>> {
        model
            .variable(n)
            .map(|v| v.shape.clone())
            .ok_or_else(|| StoreError::MissingTensor {
                path: path.into(),
                tensor: n.into(),
            })
    };
    let heads = |n: &str| -> Result<usize> {
        model
            .scalar(n)
            .map(|v| v as usize)
            .ok_or_else(|| StoreError::MissingTensor {
                path: path.into(),
                tensor: n.into(),
            })
    };
    let count_layers = |stack: &str| {
        (0..)
            .take_while(|i| {
                let p = format!("{stack}/layer_{i}/");
                model.variables.keys().any(|k| k.starts_with(&p))
            })
            .count()
    };
    let conv1 = shape_of("encoder/conv1/weight")?;
    let emb = shape_of("decoder/embeddings/weight")?;
    let enc_pos = shape_of("encoder/position_encodings/encodings")?;
    let dec_pos = shape_of("decoder/position_encodings/encodings")?;
    let rank_err = |n: &str, s: &[usize], r: usize| StoreError::Invalid {
        path: path.into(),
        what: n.into(),
        problem: format!("has shape {s:?}, expected rank {r}"),
    };
    if conv1.len() != 3 {
        return Err(rank_err("encoder/conv1/weight", &conv1, 3));
    }
    for (n, s) in [
        ("decoder/embeddings/weight", &emb),
        ("encoder/position_encodings/encodings", &enc_pos),
        ("decoder/position_encodings/encodings", &dec_pos),
    ] {
        if s.len() != 2 {
            return Err(rank_err(n, s, 2));
        }
    }
    let dims = ModelDimensions {
        n_mels: conv1[1],
        n_audio_ctx: enc_pos[0],
        n_audio_state: conv1[0],
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: count_layers("encoder"),
        n_vocab: emb[0],
        n_text_ctx: dec_pos[0],
        n_text_state: emb[1],
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: count_layers("decoder"),
    };
    let to_u32 = |v: &[i64], what: &str| -> Result<Vec<u32>> {
        v.iter()
            .map(|&x| {
                u32::try_from(x).map_err(|_| StoreError::Invalid {
                    path: cfg_path.clone(),
                    what: what.into(),
                    problem: format!("token id {x} is negative"),
                })
            })
            .collect()
    };
    let source_precision = match model.variable("decoder/embeddings/weight").map(|v| v.dtype) {
        Some(Ct2DType::F32) => Precision::F32,
        Some(Ct2DType::I8) | Some(Ct2DType::I16) => Precision::Int8,
        _ => Precision::F16,
    };
    let config = WhisperConfig {
        family: FAMILY.into(),
        format_version: FORMAT_VERSION,
        dims,
        multilingual: dims.n_vocab >= 51865,
        precision: source_precision,
        suppress_tokens: to_u32(&ct2_cfg.suppress_ids, "suppress_ids")?,
        begin_suppress_tokens: to_u32(&ct2_cfg.suppress_ids_begin, "suppress_ids_begin")?,
        lang_ids: ct2_cfg.lang_ids.clone(),
        alignment_heads: ct2_cfg.alignment_heads.clone(),
        features: FeatureConfig::whisper(dims.n_mels),
        tokenizer: TOKENIZER_FILE.into(),
        source: ModelSource {
            format: "ctranslate2".into(),
            file_sha256: sha,
            name: name.into(),
        },
    };
    config.validate()?;

    // Read every hark tensor from its CT2 variable.
    let expected = dims.tensor_shapes();
    progress.begin(
        "reading CTranslate2 weights",
        Some(expected.len() as u64),
        Unit::Tensors,
    );
    let mut weights = WeightMap::new();
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (i, (hark, shape)) in expected.iter().enumerate() {
        let src = ct2_name(hark);
        let (s, data) = model.f32(&src)?;
        if &s != shape {
            return Err(StoreError::Shape {
                path: path.into(),
                tensor: src,
                expected: shape.clone(),
                found: s,
            });
        }
        let t = Tensor::from_f32(shape, &data).map_err(engine(format!("tensor {src}")))?;
        used.insert(model.resolve(&src).to_string());
        weights.insert(hark.clone(), t);
        progress.update(i as u64 + 1);
    }
    progress.end();

    // The output projection must be tied to the token embedding.
    if model.variable("decoder/projection/weight").is_some() {
        let resolved = model.resolve("decoder/projection/weight").to_string();
        if resolved != "decoder/embeddings/weight" {
            let (_, proj) = model.f32("decoder/projection/weight")?;
            let (_, emb) = model.f32("decoder/embeddings/weight")?;
            if proj != emb {
                return Err(StoreError::Invalid {
                    path: path.into(),
                    what: "decoder/projection/weight".into(),
                    problem: "differs from decoder/embeddings/weight; hark ties the output projection to the token embedding".into(),
                });
            }
            used.insert(resolved);
        }
    }
    if let Some(v) = model.variable("decoder/projection/bias") {
        let (_, b) = model.f32("decoder/projection/bias")?;
        if b.iter().any(|&x| x != 0.0) {
            return Err(StoreError::Invalid {
                path: path.into(),
                what: "decoder/projection/bias".into(),
                problem: format!(
                    "non-zero output bias of shape {:?}; Whisper has none",
                    v.shape
                ),
            });
        }
        used.insert(model.resolve("decoder/projection/bias").to_string());
    }
    // Anything else that holds weights would be silently dropped: refuse instead.
    for (n, v) in &model.variables {
        let is_scalar = v.shape.iter().product::<usize>() <= 1 && v.shape.len() <= 1;
        let is_scale = n.ends_with("_scale") && used.contains(n.trim_end_matches("_scale"));
        if used.contains(n) || is_scale || KNOWN_SCALARS.contains(&n.as_str()) || is_scalar {
            continue;
        }
        return Err(StoreError::Invalid {
            path: path.into(),
            what: n.clone(),
            problem: format!(
                "unexpected variable of shape {:?} (not part of Whisper)",
                v.shape
            ),
        });
    }
    check_weights(path, &config, &weights)?;
    Ok(ImportedWhisper {
        config,
        weights,
        tokenizer,
        source_file: bin,
    })
}

#[cfg(test)]
mod tests {
    use super::ct2_name;

    #[test]
    fn hark_names_map_to_ctranslate2_variables() {
        let cases = [
            ("encoder.conv1.weight", "encoder/conv1/weight"),
            (
                "encoder.embed_positions.weight",
                "encoder/position_encodings/encodings",
            ),
            (
                "encoder.layers.0.self_attn_layer_norm.weight",
                "encoder/layer_0/self_attention/layer_norm/gamma",
            ),
            (
                "encoder.layers.3.self_attn.qkv_proj.bias",
                "encoder/layer_3/self_attention/linear_0/bias",
            ),
            (
                "encoder.layers.1.fc2.weight",
                "encoder/layer_1/ffn/linear_1/weight",
            ),
            (
                "encoder.layers.1.final_layer_norm.bias",
                "encoder/layer_1/ffn/layer_norm/beta",
            ),
            ("encoder.layer_norm.weight", "encoder/layer_norm/gamma"),
            ("decoder.embed_tokens.weight", "decoder/embeddings/weight"),
            (
                "decoder.embed_positions.weight",
                "decoder/position_encodings/encodings",
            ),
            (
                "decoder.layers.2.encoder_attn.kv_proj.weight",
                "decoder/layer_2/attention/linear_1/weight",
            ),
            (
                "decoder.layers.2.encoder_attn.out_proj.bias",
                "decoder/layer_2/attention/linear_2/bias",
            ),
            (
                "decoder.layers.2.encoder_attn_layer_norm.bias",
                "decoder/layer_2/attention/layer_norm/beta",
            ),
            (
                "decoder.layers.0.self_attn.out_proj.weight",
                "decoder/layer_0/self_attention/linear_1/weight",
            ),
            ("decoder.layer_norm.bias", "decoder/layer_norm/beta"),
        ];
        for (h, c) in cases {
            assert_eq!(ct2_name(h), c, "{h}");
        }
    }
}
