//! hark-format Whisper configuration (`config.json`), shared by importers and the model.
//!
//! The contract is written down in `coord/whisper-format.md`; in short, a hark Whisper
//! model directory holds `config.json` (this type), `model.safetensors` (Hugging Face
//! tensor names with fused attention projections) and `tokenizer.json`.
//!
//! Field names follow the references: `dims` uses openai-whisper's `ModelDimensions`
//! (`whisper/model.py`), the token lists use the generation-config names of
//! transformers (`suppress_tokens`, `begin_suppress_tokens`), which CTranslate2 calls
//! `suppress_ids` / `suppress_ids_begin` in its `config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The `family` value of a Whisper hark model.
pub const FAMILY: &str = "whisper";
/// The `format_version` this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the configuration inside a model directory.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the tokenizer inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Errors reading or validating a Whisper `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading Whisper config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON or misses fields.
    #[error("parsing Whisper config {path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A field holds a value hark cannot use.
    #[error("invalid Whisper config: {field}: {problem}")]
    Invalid {
        /// The field (dotted path, e.g. `dims.n_audio_head`).
        field: &'static str,
        /// What was expected.
        problem: String,
    },
}

/// Model dimensions, named as openai-whisper's `ModelDimensions` (whisper/model.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDimensions {
    /// Number of mel bins of the input (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Encoder positions (1500 = 30 s after the stride-2 convolution).
    pub n_audio_ctx: usize,
    /// Encoder width d.
    pub n_audio_state: usize,
    /// Encoder attention heads.
    pub n_audio_head: usize,
    /// Encoder layers.
    pub n_audio_layer: usize,
    /// Vocabulary size (51864 English-only, 51865 multilingual, 51866 large-v3).
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Decoder width (equal to `n_audio_state` in every released Whisper).
    pub n_text_state: usize,
    /// Decoder attention heads.
    pub n_text_head: usize,
    /// Decoder layers.
    pub n_text_layer: usize,
}

impl ModelDimensions {
    /// Every tensor of a hark Whisper `model.safetensors` with its shape (PyTorch layout),
    /// as listed in `coord/whisper-format.md`. int8 models add `<name>.scale` for each
    /// matrix (see [`is_matrix`]).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.n_audio_state;
        let mut v: Vec<(String, Vec<usize>)> = vec![
            ("encoder.conv1.weight".into(), vec![d, self.n_mels, 3]),
            ("encoder.conv1.bias".into(), vec![d]),
            ("encoder.conv2.weight".into(), vec![d, d, 3]),
            ("encoder.conv2.bias".into(), vec![d]),
            (
                "encoder.embed_positions.weight".into(),
                vec![self.n_audio_ctx, d],
            ),
        ];
        let norm = |v: &mut Vec<(String, Vec<usize>)>, p: String| {
            v.push((format!("{p}.weight"), vec![d]));
            v.push((format!("{p}.bias"), vec![d]));
        };
        let lin = |v: &mut Vec<(String, Vec<usize>)>, p: String, out: usize, inp: usize| {
            v.push((format!("{p}.weight"), vec![out, inp]));
            v.push((format!("{p}.bias"), vec![out]));
        };
        for i in 0..self.n_audio_layer {
            let p = format!("encoder.layers.{i}");
            norm(&mut v, format!("{p}.self_attn_layer_norm"));
            lin(&mut v, format!("{p}.self_attn.qkv_proj"), 3 * d, d);
            lin(&mut v, format!("{p}.self_attn.out_proj"), d, d);
            norm(&mut v, format!("{p}.final_layer_norm"));
            lin(&mut v, format!("{p}.fc1"), 4 * d, d);
            lin(&mut v, format!("{p}.fc2"), d, 4 * d);
        }
        norm(&mut v, "encoder.layer_norm".into());
        let d = self.n_text_state;
        v.push(("decoder.embed_tokens.weight".into(), vec![self.n_vocab, d]));
        v.push((
            "decoder.embed_positions.weight".into(),
            vec![self.n_text_ctx, d],
        ));
        for i in 0..self.n_text_layer {
            let p = format!("decoder.layers.{i}");
            norm(&mut v, format!("{p}.self_attn_layer_norm"));
            lin(&mut v, format!("{p}.self_attn.qkv_proj"), 3 * d, d);
            lin(&mut v, format!("{p}.self_attn.out_proj"), d, d);
            norm(&mut v, format!("{p}.encoder_attn_layer_norm"));
            lin(&mut v, format!("{p}.encoder_attn.q_proj"), d, d);
            lin(&mut v, format!("{p}.encoder_attn.kv_proj"), 2 * d, d);
            lin(&mut v, format!("{p}.encoder_attn.out_proj"), d, d);
            norm(&mut v, format!("{p}.final_layer_norm"));
            lin(&mut v, format!("{p}.fc1"), 4 * d, d);
            lin(&mut v, format!("{p}.fc2"), d, 4 * d);
        }
        norm(&mut v, "decoder.layer_norm".into());
        v
    }
}

/// True for the tensors stored in the model's [`Precision`] (linear and conv weights and
/// the token embedding); LayerNorm parameters, biases and positional embeddings are f32.
pub fn is_matrix(name: &str) -> bool {
    name.ends_with(".weight")
        && !name.contains("layer_norm")
        && !name.ends_with("embed_positions.weight")
}

pub use hark_engine::Precision;

/// serde mapping of [`Precision`] to its name in `config.json` (`"f32"`, `"f16"`,
/// `"int8"`); int8 matrices carry an f32 `<name>.scale` tensor (one scale per row).
mod precision_serde {
    use super::Precision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Precision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Precision, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Audio front-end parameters the model was trained with (openai-whisper `audio.py`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Always `"whisper-mel"` for this family.
    pub kind: String,
    /// Mel bins (equal to `dims.n_mels`).
    pub n_mels: usize,
    /// Input sample rate in Hz (16000).
    pub sample_rate: u32,
    /// FFT size (400).
    pub n_fft: usize,
    /// Hop between frames in samples (160).
    pub hop_length: usize,
    /// Window length in seconds (30).
    pub chunk_length: u32,
}

impl FeatureConfig {
    /// openai-whisper's front end for `n_mels` bins.
    pub fn whisper(n_mels: usize) -> Self {
        FeatureConfig {
            kind: "whisper-mel".to_string(),
            n_mels,
            sample_rate: 16_000,
            n_fft: 400,
            hop_length: 160,
            chunk_length: 30,
        }
    }
}

/// Where a converted model came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSource {
    /// `"ctranslate2"` or `"transformers"`.
    pub format: String,
    /// sha256 (lower-case hex) of the source weights file (CT2 `model.bin`, HF `model.safetensors`).
    pub file_sha256: String,
    /// Built-in name or the imported directory's name.
    pub name: String,
}

/// The `config.json` of a hark Whisper model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperConfig {
    /// Registry dispatch key: always [`FAMILY`].
    pub family: String,
    /// Directory format version: [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Model dimensions.
    pub dims: ModelDimensions,
    /// True for multilingual checkpoints (openai-whisper: `n_vocab >= 51865`).
    pub multilingual: bool,
    /// Storage type of the weight matrices.
    #[serde(with = "precision_serde")]
    pub precision: Precision,
    /// Tokens suppressed at every step (CT2 `suppress_ids`).
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Tokens suppressed at the first sampled position (CT2 `suppress_ids_begin`).
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
    /// Token ids of the language tokens (CT2 `lang_ids`), in the order of the source.
    #[serde(default)]
    pub lang_ids: Vec<u32>,
    /// Cross-attention heads used for word timestamps: `[layer, head]`.
    #[serde(default)]
    pub alignment_heads: Vec<[usize; 2]>,
    /// Audio front end.
    pub features: FeatureConfig,
    /// Tokenizer file name, relative to the model directory.
    pub tokenizer: String,
    /// Provenance.
    pub source: ModelSource,
}

impl WhisperConfig {
    /// Reads and validates `path` (a `config.json`).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let cfg: WhisperConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Json {
                path: path.display().to_string(),
                source,
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads `<dir>/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, ConfigError> {
        Self::from_file(&dir.join(CONFIG_FILE))
    }

    /// Pretty JSON, as written into model directories.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain data structs with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Model width d (`n_audio_state`).
    pub fn d_model(&self) -> usize {
        self.dims.n_audio_state
    }

    /// Checks that the fields are consistent and usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv =
            |field: &'static str, problem: String| Err(ConfigError::Invalid { field, problem });
        if self.family != FAMILY {
            return inv(
                "family",
                format!("expected \"{FAMILY}\", found {:?}", self.family),
            );
        }
        if self.format_version != FORMAT_VERSION {
            return inv(
                "format_version",
                format!(
                    "this hark reads version {FORMAT_VERSION}, found {}",
                    self.format_version
                ),
            );
        }
        let d = &self.dims;
        let positive: [(&'static str, usize); 10] = [
            ("dims.n_mels", d.n_mels),
            ("dims.n_audio_ctx", d.n_audio_ctx),
            ("dims.n_audio_state", d.n_audio_state),
            ("dims.n_audio_head", d.n_audio_head),
            ("dims.n_audio_layer", d.n_audio_layer),
            ("dims.n_vocab", d.n_vocab),
            ("dims.n_text_ctx", d.n_text_ctx),
            ("dims.n_text_state", d.n_text_state),
            ("dims.n_text_head", d.n_text_head),
            ("dims.n_text_layer", d.n_text_layer),
        ];
        for (field, v) in positive {
            if v == 0 {
                return inv(field, "must be positive".to_string());
            }
        }
        if !d.n_audio_state.is_multiple_of(d.n_audio_head) {
            return inv(
                "dims.n_audio_head",
                format!(
                    "must divide n_audio_state = {}, found {}",
                    d.n_audio_state, d.n_audio_head
                ),
            );
        }
        if !d.n_text_state.is_multiple_of(d.n_text_head) {
            return inv(
                "dims.n_text_head",
                format!(
                    "must divide n_text_state = {}, found {}",
                    d.n_text_state, d.n_text_head
                ),
            );
        }
        if d.n_text_state != d.n_audio_state {
            return inv(
                "dims.n_text_state",
                format!(
                    "must equal n_audio_state = {} (cross-attention), found {}",
                    d.n_audio_state, d.n_text_state
                ),
            );
        }
        if self.features.n_mels != d.n_mels {
            return inv(
                "features.n_mels",
                format!(
                    "must equal dims.n_mels = {}, found {}",
                    d.n_mels, self.features.n_mels
                ),
            );
        }
        if let Some(&t) = self
            .suppress_tokens
            .iter()
            .chain(&self.begin_suppress_tokens)
            .chain(&self.lang_ids)
            .find(|&&t| t as usize >= d.n_vocab)
        {
            return inv(
                "suppress_tokens/begin_suppress_tokens/lang_ids",
                format!("token id {t} is outside the vocabulary of {}", d.n_vocab),
            );
        }
        if let Some(h) = self
            .alignment_heads
            .iter()
            .find(|h| h[0] >= d.n_text_layer || h[1] >= d.n_text_head)
        {
            return inv(
                "alignment_heads",
                format!(
                    "[{}, {}] is outside {} layers × {} heads",
                    h[0], h[1], d.n_text_layer, d.n_text_head
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tiny_en() -> WhisperConfig {
        WhisperConfig {
            family: FAMILY.into(),
            format_version: FORMAT_VERSION,
            dims: ModelDimensions {
                n_mels: 80,
                n_audio_ctx: 1500,
                n_audio_state: 384,
                n_audio_head: 6,
                n_audio_layer: 4,
                n_vocab: 51864,
                n_text_ctx: 448,
                n_text_state: 384,
                n_text_head: 6,
                n_text_layer: 4,
            },
            multilingual: false,
            precision: Precision::F16,
            suppress_tokens: vec![1, 2, 7],
            begin_suppress_tokens: vec![220, 50256],
            lang_ids: vec![],
            alignment_heads: vec![[1, 0], [3, 4]],
            features: FeatureConfig::whisper(80),
            tokenizer: TOKENIZER_FILE.into(),
            source: ModelSource {
                format: "ctranslate2".into(),
                file_sha256: "00".into(),
                name: "tiny.en".into(),
            },
        }
    }

    #[test]
    fn config_round_trips_through_json() {
        let cfg = tiny_en();
        let back: WhisperConfig = serde_json::from_str(&cfg.to_json_pretty()).unwrap();
        assert_eq!(back, cfg);
        assert!(cfg.to_json_pretty().contains("\"precision\": \"f16\""));
    }

    #[test]
    fn config_validation_names_the_bad_field() {
        let mut cfg = tiny_en();
        cfg.dims.n_audio_head = 7;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("dims.n_audio_head"), "{err}");
        let mut cfg = tiny_en();
        cfg.alignment_heads.push([4, 0]);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("alignment_heads"), "{err}");
        let mut cfg = tiny_en();
        cfg.family = "conformer_aed".into();
        assert!(cfg.validate().unwrap_err().to_string().contains("family"));
    }

    #[test]
    fn tensor_list_matches_tiny_en_parameter_count() {
        let shapes = tiny_en().dims.tensor_shapes();
        let params: usize = shapes
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        // openai-whisper tiny.en has 37,184,256 parameters excluding the (tied) output
        // projection and the fixed sinusoidal encoder positions (1500 x 384 = 576,000),
        // and k_proj has no bias (zeros are stored here: 4 x 384 encoder, 8 x 384 decoder).
        assert_eq!(params, 37_184_256 + 576_000 + 12 * 384);
        assert!(is_matrix("decoder.embed_tokens.weight"));
        assert!(is_matrix("encoder.conv1.weight"));
        assert!(!is_matrix("encoder.embed_positions.weight"));
        assert!(!is_matrix(
            "decoder.layers.0.encoder_attn_layer_norm.weight"
        ));
        assert!(!is_matrix("decoder.layers.0.fc1.bias"));
    }

    #[test]
    fn precision_parses_cli_names() {
        assert_eq!("f16".parse::<Precision>().unwrap(), Precision::F16);
        assert_eq!("INT8".parse::<Precision>().unwrap(), Precision::Int8);
        assert!("q4".parse::<Precision>().is_err());
    }
}
