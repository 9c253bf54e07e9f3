//! `config.json` of a conformer_aed model directory.
//!
//! Hyper-parameters keep the names of FireRedASR's checkpoint `args`
//! (fireredasr/models/fireredasr_aed.py); structural options that FireRedASR fixes in code
//! are explicit here so that other toolkits (WeNet/ESPnet) can set them differently.
//! Unknown options are rejected (`deny_unknown_fields`) so that a converter newer than this
//! loader cannot silently change the model's meaning.

use std::path::Path;

use serde::Deserialize;

use super::error::ConformerError;

/// Parsed and validated `config.json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConformerConfig {
    /// Always `"conformer_aed"`.
    pub family: String,
    /// Toolkit the checkpoint came from (`"fireredasr"`).
    pub source: String,
    /// Feature dimension (`args.idim`, 80 fbank bins).
    pub idim: usize,
    /// Vocabulary size (`args.odim`).
    pub odim: usize,
    /// Model width (`args.d_model`).
    pub d_model: usize,
    /// Attention heads, encoder and decoder (`args.n_head`).
    pub n_head: usize,
    /// Conformer blocks (`args.n_layers_enc`).
    pub n_layers_enc: usize,
    /// Decoder layers (`args.n_layers_dec`).
    pub n_layers_dec: usize,
    /// Depthwise convolution kernel size (`args.kernel_size`; odd unless `causal_conv`).
    pub kernel_size: usize,
    /// Positional-encoding table length (`args.pe_maxlen`); bounds frames and tokens.
    pub pe_maxlen: usize,
    /// Start-of-sentence token (`args.sos_id`).
    pub sos_id: u32,
    /// End-of-sentence token (`args.eos_id`).
    pub eos_id: u32,
    /// Padding token (`args.pad_id`); masked as a self-attention key like the reference.
    pub pad_id: u32,
    /// Subsampling front end: `"conv2d4"` (two 3×3 stride-2 convolutions).
    pub subsampling: String,
    /// Channels of the subsampling convolutions (`Conv2dSubsampling.out_channels`).
    pub subsampling_channels: usize,
    /// Zero frames appended to the features before subsampling (`context - 1`).
    pub pad_context: usize,
    /// Epsilon of every LayerNorm.
    pub layer_norm_eps: f32,
    /// FFN expansion factor (conformer and decoder).
    pub ffn_mult: usize,
    /// Channels of the convolution module after GLU, as a multiple of `d_model`.
    pub conv_inner_mult: usize,
    /// Norm after the depthwise convolution: `"layer_norm"` (FireRedASR) or `"batch_norm"`
    /// (folded into the depthwise weights + a bias at conversion).
    pub conv_norm: String,
    /// Separate LayerNorms on the q/k/v inputs of the encoder attention (FireRedASR).
    pub qkv_layer_norm: bool,
    /// Transformer-XL `rel_shift` of the positional score matrix.
    pub rel_shift: bool,
    /// Scale the subsampling output by √d_model before the blocks.
    pub xscale: bool,
    /// Scale decoder token embeddings by √d_model.
    pub dec_embed_scale: bool,
    /// Decoder FFN activation: `"gelu"` or `"relu"`.
    pub dec_activation: String,
    /// Output projection shares the embedding matrix.
    pub tied_output: bool,
    /// Storage type of weight matrices in model.safetensors (`"f32"` or `"f16"`).
    pub weights_dtype: String,
    /// Token dictionary file (`dict.txt`, WeNet `units.txt`).
    pub dict: String,
    /// SentencePiece model file; empty when the unit list alone detokenizes (WeNet).
    #[serde(default)]
    pub spm_model: String,
    /// Relative positional encoding (ESPnet `pos_enc_layer_type`): `"rel_pos"` (FireRedASR,
    /// ESPnet `rel_pos_type: latest`, WeNet) or `"legacy_rel_pos"` (ESPnet's legacy
    /// encoding: reversed absolute table and the old `rel_shift`).
    #[serde(default = "default_pos_enc")]
    pub pos_enc_layer_type: String,
    /// Encoder FFN and convolution-module activation (`activation_type`): `"swish"` or
    /// `"relu"`.
    #[serde(default = "default_enc_activation")]
    pub enc_activation: String,
    /// ESPnet/WeNet layout: every attention projection (except `linear_pos`) and every
    /// convolution of the convolution module has a bias (FireRedASR: none in the encoder,
    /// no key bias in the decoder).
    #[serde(default)]
    pub linear_bias: bool,
    /// A final LayerNorm after the last block (`encoder.after_norm`, ESPnet/WeNet).
    #[serde(default)]
    pub enc_after_norm: bool,
    /// Causal depthwise convolutions (WeNet `causal: true`, hark's streaming AN4 recipe):
    /// `kernel_size - 1` zeros on the left and none on the right, so an encoder frame never
    /// depends on later frames through the convolution modules (with a chunk attention mask
    /// the encoder can then run chunk by chunk). Otherwise `(kernel_size - 1) / 2` each side.
    #[serde(default)]
    pub causal_conv: bool,
    /// The checkpoint has a CTC head (`ctc.ctc_lo`), enabling CTC prefix beam search +
    /// attention rescoring.
    #[serde(default)]
    pub ctc: bool,
    /// CTC blank id.
    #[serde(default)]
    pub blank_id: u32,
}

fn default_pos_enc() -> String {
    "rel_pos".into()
}

fn default_enc_activation() -> String {
    "swish".into()
}

impl ConformerConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, ConformerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConformerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// Parses and validates config JSON text (`path` only labels errors).
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ConformerError> {
        let cfg: ConformerConfig =
            serde_json::from_str(text).map_err(|e| ConformerError::Config {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConformerError> {
        fn bad(option: &'static str, value: impl ToString, message: &str) -> ConformerError {
            ConformerError::Unsupported {
                option,
                value: value.to_string(),
                message: message.to_string(),
            }
        }
        if self.family != "conformer_aed" {
            return Err(bad("family", &self.family, "expected \"conformer_aed\""));
        }
        if !matches!(self.subsampling.as_str(), "conv2d4" | "conv2d6" | "conv2d8") {
            return Err(bad(
                "subsampling",
                &self.subsampling,
                "supported: \"conv2d4\", \"conv2d6\", \"conv2d8\"",
            ));
        }
        if !matches!(self.conv_norm.as_str(), "layer_norm" | "batch_norm") {
            return Err(bad(
                "conv_norm",
                &self.conv_norm,
                "supported: \"layer_norm\", \"batch_norm\" (folded at conversion)",
            ));
        }
        if !matches!(
            self.pos_enc_layer_type.as_str(),
            "rel_pos" | "legacy_rel_pos"
        ) {
            return Err(bad(
                "pos_enc_layer_type",
                &self.pos_enc_layer_type,
                "supported: \"rel_pos\", \"legacy_rel_pos\"",
            ));
        }
        if self.pos_enc_layer_type == "legacy_rel_pos" && !self.rel_shift {
            return Err(bad(
                "rel_shift",
                self.rel_shift,
                "legacy_rel_pos always shifts (ESPnet LegacyRelPositionMultiHeadedAttention)",
            ));
        }
        if !matches!(self.enc_activation.as_str(), "swish" | "relu") {
            return Err(bad(
                "enc_activation",
                &self.enc_activation,
                "supported: \"swish\", \"relu\"",
            ));
        }
        if self.blank_id as usize >= self.odim {
            return Err(bad("blank_id", self.blank_id, "must be < odim"));
        }
        if !matches!(self.dec_activation.as_str(), "gelu" | "relu") {
            return Err(bad(
                "dec_activation",
                &self.dec_activation,
                "supported: \"gelu\", \"relu\"",
            ));
        }
        if !matches!(self.weights_dtype.as_str(), "f32" | "f16") {
            return Err(bad(
                "weights_dtype",
                &self.weights_dtype,
                "supported: \"f32\", \"f16\"",
            ));
        }
        if self.d_model == 0 || self.n_head == 0 || !self.d_model.is_multiple_of(self.n_head) {
            return Err(bad("n_head", self.n_head, "must divide d_model"));
        }
        if self.d_k() > 256 {
            return Err(bad(
                "n_head",
                self.n_head,
                "d_model / n_head must be at most 256 (the engine's attention head width)",
            ));
        }
        if !self.d_model.is_multiple_of(2) {
            return Err(bad(
                "d_model",
                self.d_model,
                "must be even (sinusoidal encodings)",
            ));
        }
        if self.kernel_size == 0 || (self.kernel_size.is_multiple_of(2) && !self.causal_conv) {
            return Err(bad(
                "kernel_size",
                self.kernel_size,
                "must be odd (even kernels need causal_conv)",
            ));
        }
        if self.subsampled_idim() == 0 {
            return Err(bad(
                "idim",
                self.idim,
                "too small for the subsampling convolutions",
            ));
        }
        for (name, id) in [
            ("sos_id", self.sos_id),
            ("eos_id", self.eos_id),
            ("pad_id", self.pad_id),
        ] {
            if id as usize >= self.odim {
                return Err(ConformerError::Unsupported {
                    option: name,
                    value: id.to_string(),
                    message: format!("must be < odim ({})", self.odim),
                });
            }
        }
        Ok(())
    }

    /// (kernel, stride) of each subsampling convolution (ESPnet `Conv2dSubsampling`,
    /// `Conv2dSubsampling6`, `Conv2dSubsampling8`).
    pub fn subsampling_layers(&self) -> &'static [(usize, usize)] {
        match self.subsampling.as_str() {
            "conv2d6" => &[(3, 2), (5, 3)],
            "conv2d8" => &[(3, 2), (3, 2), (3, 2)],
            _ => &[(3, 2), (3, 2)],
        }
    }

    /// Length of an axis of `n` after the subsampling convolutions (None if too short).
    pub fn subsampled_dim(&self, n: usize) -> Option<usize> {
        let mut n = n;
        for &(k, s) in self.subsampling_layers() {
            if n < k {
                return None;
            }
            n = (n - k) / s + 1;
        }
        Some(n)
    }

    /// Frequency bins after the subsampling convolutions.
    pub fn subsampled_idim(&self) -> usize {
        self.subsampled_dim(self.idim).unwrap_or(0)
    }

    /// Per-head width.
    pub fn d_k(&self) -> usize {
        self.d_model / self.n_head
    }
}
