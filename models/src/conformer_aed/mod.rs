//! `conformer_aed`: conformer encoder + transformer decoder (attention encoder-decoder)
//! ASR models, starting with FireRedASR-AED.
//!
//! A model directory (written by `scripts/convert_fireredasr.py`) holds `config.json`
//! (`"family": "conformer_aed"`, hyper-parameters named as in the reference), one
//! `model.safetensors` (the reference's tensor names, plus the global CMVN as
//! `cmvn.means` / `cmvn.istd`), and the tokenizer files.
//!
//! Design:
//! * [`ConformerAed`] is immutable after [`ConformerAed::load`] and can be shared across
//!   threads; per-utterance state ([`decoder::DecoderState`], [`decoder::CrossKv`]) lives in
//!   the call.
//! * Every tensor is checked against the shape the config implies, and leftover tensors are
//!   an error, so a checkpoint that does not match its config names the culprit.
//! * Weights are widened to f32 at load and all arithmetic is f32 (matrix products through
//!   `gemm`); this matches the PyTorch reference to f32 rounding, which the golden tests in
//!   `models/tests/conformer_golden.rs` check stage by stage.
//! * Input is Kaldi fbank computed on int16-scale samples (80 bins, dither 0); CMVN is part
//!   of the model because it is part of the checkpoint.

pub mod config;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod nn;
pub mod search;
pub mod tokenizer;
pub mod weights;

use std::path::Path;

pub use hark_engine::Precision;

pub use config::ConformerConfig;
pub use decoder::TransformerDecoder;
pub use encoder::{ConformerEncoder, EncoderOutput};
pub use error::ConformerError;
pub use search::{beam_search, BeamSearchOptions, Hypothesis};
pub use tokenizer::FireRedTokenizer;
use weights::TensorStore;

/// A loaded conformer_aed model.
#[derive(Debug, Clone)]
pub struct ConformerAed {
    /// The validated configuration.
    pub config: ConformerConfig,
    cmvn_means: Vec<f32>,
    cmvn_istd: Vec<f32>,
    /// Encoder weights.
    pub encoder: ConformerEncoder,
    /// Decoder weights.
    pub decoder: TransformerDecoder,
}

impl ConformerAed {
    /// Loads `config.json` + `model.safetensors` from a model directory.
    pub fn load(dir: &Path) -> Result<Self, ConformerError> {
        Self::load_with_precision(dir, Precision::F32)
    }

    /// Loads with weight matrices converted to `precision` (f16 / int8 use the engine's
    /// kernels; norms, biases, convolutions, embeddings and CMVN stay f32).
    pub fn load_with_precision(dir: &Path, precision: Precision) -> Result<Self, ConformerError> {
        let config = ConformerConfig::load(&dir.join("config.json"))?;
        let ws = TensorStore::open(&dir.join("model.safetensors"))?.with_precision(precision);
        Self::from_parts(config, ws)
    }

    /// A random-weight model with `config`'s shapes (benchmarks at real size).
    pub fn synthetic(
        config: ConformerConfig,
        precision: Precision,
        seed: u64,
    ) -> Result<Self, ConformerError> {
        Self::from_parts(
            config,
            TensorStore::synthetic(seed).with_precision(precision),
        )
    }

    /// Builds the model from a parsed config and tensor store (all tensors must be used).
    pub fn from_parts(
        config: ConformerConfig,
        mut ws: TensorStore,
    ) -> Result<Self, ConformerError> {
        let cmvn_means = ws.take("cmvn.means", &[config.idim])?;
        let cmvn_istd = ws.take("cmvn.istd", &[config.idim])?;
        let encoder = ConformerEncoder::load(&mut ws, &config)?;
        let decoder = TransformerDecoder::load(&mut ws, &config)?;
        ws.finish()?;
        Ok(Self {
            config,
            cmvn_means,
            cmvn_istd,
            encoder,
            decoder,
        })
    }

    /// Applies the global CMVN in place to `[frames × idim]` fbank features
    /// (`(x - mean) * istd`, FireRedASR `data/asr_feat.py` `CMVN`).
    pub fn apply_cmvn(&self, feats: &mut [f32]) -> Result<(), ConformerError> {
        let d = self.config.idim;
        if !feats.len().is_multiple_of(d) {
            return Err(ConformerError::Input(format!(
                "{} values is not a whole number of {d}-dim frames",
                feats.len()
            )));
        }
        for row in feats.chunks_exact_mut(d) {
            for ((x, m), s) in row.iter_mut().zip(&self.cmvn_means).zip(&self.cmvn_istd) {
                *x = (*x - m) * s;
            }
        }
        Ok(())
    }

    /// Encodes CMVN-normalised features.
    pub fn encode(&self, feats: &[f32]) -> Result<EncoderOutput, ConformerError> {
        self.encoder.forward(feats, false)
    }

    /// Teacher-forced decoder logits (`[prefix.len() × vocab]`) for a token prefix
    /// (starting with `<sos>`), stepping the KV cache one position at a time.
    pub fn decoder_logits(
        &self,
        enc: &EncoderOutput,
        prefix: &[u32],
    ) -> Result<Vec<f32>, ConformerError> {
        let cross = self.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        let mut state = self.decoder.new_state(1);
        let mut out = Vec::with_capacity(prefix.len() * self.decoder.vocab());
        for &t in prefix {
            out.extend(self.decoder.step(&[t], &mut state, &cross)?);
        }
        Ok(out)
    }

    /// Beam search over an encoder output.
    pub fn beam_search(
        &self,
        enc: &EncoderOutput,
        opts: &BeamSearchOptions,
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        let cross = self.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        beam_search(
            &self.decoder,
            &cross,
            enc.frames,
            self.config.sos_id,
            self.config.eos_id,
            opts,
        )
    }

    /// Raw fbank (int16-scale Kaldi fbank, `[frames × idim]`) → n-best token sequences.
    pub fn transcribe_fbank(
        &self,
        fbank: &[f32],
        opts: &BeamSearchOptions,
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        let mut x = fbank.to_vec();
        self.apply_cmvn(&mut x)?;
        let enc = self.encode(&x)?;
        self.beam_search(&enc, opts)
    }
}
