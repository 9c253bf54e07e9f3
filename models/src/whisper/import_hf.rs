//! Importer for Hugging Face `transformers` Whisper directories (`model.safetensors`,
//! `config.json`, `tokenizer.json`, optional `generation_config.json`).
//!
//! Follows `transformers/models/whisper/{configuration_whisper.py, modeling_whisper.py}`:
//! hark's tensor names are the transformers names without the `model.` prefix, except that
//! self-attention `q_proj`/`k_proj`/`v_proj` are fused into `qkv_proj` and cross-attention
//! `k_proj`/`v_proj` into `kv_proj` (`k_proj` has no bias in Whisper: zeros are stored),
//! exactly as CTranslate2's `WhisperLoader.set_attention` does. `proj_out.weight`, when
//! present, must equal `decoder.embed_tokens.weight` (it is tied).

use std::path::Path;

use hark_engine::safetensors::SafeTensors;
use hark_engine::tensor::Tensor;
use serde::Deserialize;

use super::config::{
    FeatureConfig, ModelDimensions, ModelSource, Precision, WhisperConfig, FAMILY, FORMAT_VERSION,
    TOKENIZER_FILE,
};
use crate::store::convert::{check_weights, sha256_file, ImportedWhisper, WeightMap};
use crate::store::error::{engine, io, Result, StoreError};
use crate::store::progress::{Progress, Unit};

/// The weights file of a transformers directory.
pub const HF_WEIGHTS: &str = "model.safetensors";

/// The fields of transformers' `WhisperConfig` (configuration_whisper.py) hark needs.
#[derive(Debug, Deserialize)]
pub struct HfWhisperConfig {
    /// Must be `"whisper"`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Mel bins.
    pub num_mel_bins: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Encoder heads.
    pub encoder_attention_heads: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
    /// Decoder heads.
    pub decoder_attention_heads: usize,
    /// Width.
    pub d_model: usize,
    /// Encoder FFN width (must be 4 × d_model).
    #[serde(default)]
    pub encoder_ffn_dim: Option<usize>,
    /// Decoder FFN width (must be 4 × d_model).
    #[serde(default)]
    pub decoder_ffn_dim: Option<usize>,
    /// Encoder positions (1500).
    pub max_source_positions: usize,
    /// Decoder positions (448).
    pub max_target_positions: usize,
    /// Whisper does not scale embeddings.
    #[serde(default)]
    pub scale_embedding: bool,
    /// "gelu".
    #[serde(default)]
    pub activation_function: Option<String>,
    /// Suppressed at every step.
    #[serde(default)]
    pub suppress_tokens: Option<Vec<i64>>,
    /// Suppressed at the first step.
    #[serde(default)]
    pub begin_suppress_tokens: Option<Vec<i64>>,
}

/// `generation_config.json` fields hark uses.
#[derive(Debug, Default, Deserialize)]
struct HfGenerationConfig {
    #[serde(default)]
    suppress_tokens: Option<Vec<i64>>,
    #[serde(default)]
    begin_suppress_tokens: Option<Vec<i64>>,
    #[serde(default)]
    alignment_heads: Option<Vec<[usize; 2]>>,
    #[serde(default)]
    lang_to_id: Option<std::collections::BTreeMap<String, u32>>,
}

/// True if `dir` looks like a transformers Whisper directory.
pub fn is_hf_dir(dir: &Path) -> bool {
    let cfg = dir.join("config.json");
    dir.join(HF_WEIGHTS).is_file()
        && std::fs::read_to_string(cfg)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v.get("model_type")
                    .and_then(|m| m.as_str())
                    .map(|m| m == "whisper")
            })
            .unwrap_or(false)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io("read", path))?;
    serde_json::from_str(&text).map_err(|e| StoreError::Json {
        path: path.into(),
        problem: e.to_string(),
    })
}

/// Reads a transformers Whisper directory. `name` goes into `config.source.name`.
pub fn read_hf_dir(dir: &Path, name: &str, progress: &dyn Progress) -> Result<ImportedWhisper> {
    let st_path = dir.join(HF_WEIGHTS);
    let cfg_path = dir.join("config.json");
    let tokenizer = dir.join(TOKENIZER_FILE);
    for (p, what) in [
        (&st_path, HF_WEIGHTS),
        (&cfg_path, "config.json"),
        (&tokenizer, TOKENIZER_FILE),
    ] {
        if !p.is_file() {
            return Err(StoreError::NotAModel {
                path: dir.into(),
                problem: format!("no {what}"),
            });
        }
    }
    let hf: HfWhisperConfig = read_json(&cfg_path)?;
    let gen_path = dir.join("generation_config.json");
    let gen: HfGenerationConfig = if gen_path.is_file() {
        read_json(&gen_path)?
    } else {
        HfGenerationConfig::default()
    };
    let bad = |what: &str, problem: String| StoreError::Invalid {
        path: cfg_path.clone(),
        what: what.into(),
        problem,
    };
    if hf.model_type != "whisper" {
        return Err(bad(
            "model_type",
            format!("is {:?}, expected \"whisper\"", hf.model_type),
        ));
    }
    if hf.scale_embedding {
        return Err(bad(
            "scale_embedding",
            "is true; Whisper does not scale embeddings".into(),
        ));
    }
    if let Some(a) = &hf.activation_function {
        if a != "gelu" {
            return Err(bad(
                "activation_function",
                format!("is {a:?}, expected \"gelu\""),
            ));
        }
    }
    for (what, v) in [
        ("encoder_ffn_dim", hf.encoder_ffn_dim),
        ("decoder_ffn_dim", hf.decoder_ffn_dim),
    ] {
        if let Some(v) = v {
            if v != 4 * hf.d_model {
                return Err(bad(
                    what,
                    format!("is {v}, expected 4 × d_model = {}", 4 * hf.d_model),
                ));
            }
        }
    }
    let dims = ModelDimensions {
        n_mels: hf.num_mel_bins,
        n_audio_ctx: hf.max_source_positions,
        n_audio_state: hf.d_model,
        n_audio_head: hf.encoder_attention_heads,
        n_audio_layer: hf.encoder_layers,
        n_vocab: hf.vocab_size,
        n_text_ctx: hf.max_target_positions,
        n_text_state: hf.d_model,
        n_text_head: hf.decoder_attention_heads,
        n_text_layer: hf.decoder_layers,
    };
    let ids = |v: Option<Vec<i64>>, what: &str| -> Result<Vec<u32>> {
        v.unwrap_or_default()
            .into_iter()
            .map(|x| u32::try_from(x).map_err(|_| bad(what, format!("token id {x} is negative"))))
            .collect()
    };
    let sha = sha256_file(&st_path, progress)?;
    let st =
        SafeTensors::open(&st_path).map_err(engine(format!("opening {}", st_path.display())))?;
    let prefix = if st.contains("model.encoder.conv1.weight") {
        "model."
    } else {
        ""
    };
    let source_precision = match st.info(&format!("{prefix}decoder.embed_tokens.weight")) {
        Some((hark_engine::dtype::DType::F32, _)) => Precision::F32,
        Some((hark_engine::dtype::DType::I8, _)) => Precision::Int8,
        _ => Precision::F16,
    };
    let alignment_heads = gen.alignment_heads.clone().unwrap_or_else(|| {
        // transformers' default, as CTranslate2 uses: all heads of the last half of layers.
        (dims.n_text_layer / 2..dims.n_text_layer)
            .flat_map(|l| (0..dims.n_text_head).map(move |h| [l, h]))
            .collect()
    });
    let mut lang_ids: Vec<u32> = gen
        .lang_to_id
        .map(|m| m.into_values().collect())
        .unwrap_or_default();
    lang_ids.sort_unstable();
    let config = WhisperConfig {
        family: FAMILY.into(),
        format_version: FORMAT_VERSION,
        dims,
        multilingual: dims.n_vocab >= 51865,
        precision: source_precision,
        suppress_tokens: ids(
            gen.suppress_tokens.or(hf.suppress_tokens),
            "suppress_tokens",
        )?,
        begin_suppress_tokens: ids(
            gen.begin_suppress_tokens.or(hf.begin_suppress_tokens),
            "begin_suppress_tokens",
        )?,
        lang_ids,
        alignment_heads,
        features: FeatureConfig::whisper(dims.n_mels),
        tokenizer: TOKENIZER_FILE.into(),
        source: ModelSource {
            format: "transformers".into(),
            file_sha256: sha,
            name: name.into(),
        },
    };
    config.validate()?;

    let load = |n: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let full = format!("{prefix}{n}");
        let (_, s) = st.info(&full).ok_or_else(|| StoreError::MissingTensor {
            path: st_path.clone(),
            tensor: full.clone(),
        })?;
        if s != shape {
            return Err(StoreError::Shape {
                path: st_path.clone(),
                tensor: full.clone(),
                expected: shape.to_vec(),
                found: s.to_vec(),
            });
        }
        st.tensor(&full)
            .and_then(|t| t.to_f32_vec())
            .map_err(engine(format!("reading {full} from {}", st_path.display())))
    };
    let expected = dims.tensor_shapes();
    progress.begin(
        "reading transformers weights",
        Some(expected.len() as u64),
        Unit::Tensors,
    );
    let mut weights = WeightMap::new();
    let d = dims.n_audio_state;
    for (i, (hark, shape)) in expected.iter().enumerate() {
        let fused = |parts: &[&str], base: &str, leaf: &str| -> Result<Vec<f32>> {
            let mut out = Vec::with_capacity(shape.iter().product());
            for p in parts {
                let n = format!("{base}.{p}.{leaf}");
                if leaf == "bias" && *p == "k_proj" && !st.contains(&format!("{prefix}{n}")) {
                    out.extend(std::iter::repeat_n(0.0f32, d));
                } else if leaf == "bias" {
                    out.extend(load(&n, &[d])?);
                } else {
                    out.extend(load(&n, &[d, d])?);
                }
            }
            Ok(out)
        };
        let (base, leaf) = hark.rsplit_once('.').unwrap_or((hark.as_str(), ""));
        let data = if let Some(b) = base.strip_suffix(".qkv_proj") {
            fused(&["q_proj", "k_proj", "v_proj"], b, leaf)?
        } else if let Some(b) = base.strip_suffix(".kv_proj") {
            fused(&["k_proj", "v_proj"], b, leaf)?
        } else {
            load(hark, shape)?
        };
        let t = Tensor::from_f32(shape, &data).map_err(engine(format!("tensor {hark}")))?;
        weights.insert(hark.clone(), t);
        progress.update(i as u64 + 1);
    }
    progress.end();
    if st.contains("proj_out.weight") {
        let proj = load_any(&st, "proj_out.weight", &st_path)?;
        let emb = weights["decoder.embed_tokens.weight"]
            .to_f32_vec()
            .map_err(engine("embed_tokens"))?;
        if proj != emb {
            return Err(StoreError::Invalid {
                path: st_path.clone(),
                what: "proj_out.weight".into(),
                problem:
                    "differs from decoder.embed_tokens.weight; hark ties the output projection"
                        .into(),
            });
        }
    }
    check_weights(&st_path, &config, &weights)?;
    Ok(ImportedWhisper {
        config,
        weights,
        tokenizer,
        source_file: st_path,
    })
}

fn load_any(st: &SafeTensors, name: &str, path: &Path) -> Result<Vec<f32>> {
    st.tensor(name)
        .and_then(|t| t.to_f32_vec())
        .map_err(engine(format!("reading {name} from {}", path.display())))
}
