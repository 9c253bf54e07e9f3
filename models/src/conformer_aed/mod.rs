//! `conformer_aed`: conformer encoder + transformer decoder (attention encoder-decoder)
//! ASR models, starting with FireRedASR-AED.
//!
//! A model directory (written by `scripts/convert_fireredasr.py` or
//! `scripts/convert_wenet.py`) holds `config.json`
//! (`"family": "conformer_aed"`, hyper-parameters named as in the reference), one
//! `model.safetensors` (FireRedASR's tensor names, WeNet/ESPnet names mapped onto them, plus the global CMVN as
//! `cmvn.means` / `cmvn.istd`), and the tokenizer files.
//!
//! Design:
//! * [`ConformerAed`] is immutable after [`ConformerAed::load`] and can be shared across
//!   threads; per-utterance state ([`decoder::DecoderState`] around the engine's
//!   preallocated `KvCache`, [`decoder::CrossKv`] computed once per utterance) lives in the
//!   call.
//! * Every tensor is checked against the shape the config implies, and leftover tensors are
//!   an error, so a checkpoint that does not match its config names the culprit.
//! * One model code path for FireRedASR-AED and WeNet/ESPnet conformers: the structural
//!   differences are `config.json` options with FireRedASR defaults (see
//!   [`config::ConformerConfig`] and `encoder.rs`); converters map both checkpoint layouts to
//!   one set of tensor names (`scripts/convert_fireredasr.py`, `scripts/convert_wenet.py`).
//! * At f32 the matrix products go through the `gemm` crate and match the PyTorch references
//!   to f32 rounding (golden tests `models/tests/conformer_golden.rs`,
//!   `models/tests/conformer_wenet_golden.rs`). At f16/int8 the weight matrices are engine
//!   tensors multiplied on the engine's threaded kernels (int8 encoder products split by
//!   columns, see `nn.rs`); attention (encoder rel-pos and decoder) uses the engine's
//!   attention op; norms, biases, convolutions and CMVN stay f32.
//! * Decoding: FireRedASR's batched beam search ([`search`]) or, with a CTC head, WeNet's
//!   CTC prefix beam search + attention rescoring ([`ctc`]).
//! * Input is Kaldi fbank computed on int16-scale samples (80 bins, dither 0); CMVN is part
//!   of the model because it is part of the checkpoint.
//! * The encoder is offered as one stage to delegates ([`ConformerAed::set_delegates`],
//!   e.g. hark-gpu's conformer encoder) through `hark_engine::delegate::run_stage`, as the
//!   Whisper encoder is; without delegates the CPU path runs exactly as before.
//! * The decoder is offered to the same delegates as a `DecoderSession` (caches on the
//!   device; hark-gpu's is `conformer_decoder`), opened per utterance: the beam search
//!   steps it through [`decoder::DecoderSteps`] (one row per beam, reorders by parent
//!   index), and attention rescoring runs each CTC hypothesis as one teacher-forced
//!   prompt step and reads the logits of all its rows. When every delegate declines, the
//!   CPU decoder runs ([`ConformerAed::last_decoder_executor`] tells which).

pub mod config;
pub mod ctc;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod nn;
pub mod search;
pub mod tokenizer;
pub mod weights;

use std::path::Path;
use std::sync::{Arc, Mutex};

use hark_engine::delegate::{
    open_decoder_session, run_stage, Delegate, Executor, SessionRequest, Stage, StageKind,
};
pub use hark_engine::Precision;

pub use config::ConformerConfig;
pub use ctc::CtcHead;
pub use decoder::TransformerDecoder;
pub use encoder::{ConformerEncoder, EncoderOutput, EncoderStream};
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
    /// CTC head, when the checkpoint has one (`config.ctc`).
    pub ctc: Option<CtcHead>,
    delegates: EncoderDelegates,
    /// Chunk attention mask of [`Self::encode`], encoder frames (0 = full context).
    chunk: usize,
}

/// The model name an encoder stage carries (`Stage::model`).
pub const STAGE_MODEL: &str = "conformer_aed";

/// Accelerators offered the encoder stage and the decoder, and where the last encoder
/// pass and the last utterance's decoder ran.
#[derive(Default)]
struct EncoderDelegates {
    list: Vec<Arc<dyn Delegate>>,
    last: Mutex<Option<Executor>>,
    last_decoder: Mutex<Option<Executor>>,
}

impl Clone for EncoderDelegates {
    fn clone(&self) -> Self {
        EncoderDelegates {
            list: self.list.clone(),
            last: Mutex::new(self.last.lock().map(|e| e.clone()).unwrap_or(None)),
            last_decoder: Mutex::new(self.last_decoder.lock().map(|e| e.clone()).unwrap_or(None)),
        }
    }
}

impl std::fmt::Debug for EncoderDelegates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|d| d.name()).collect();
        f.debug_struct("EncoderDelegates")
            .field("list", &names)
            .finish()
    }
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
        let ctc = if config.ctc {
            Some(CtcHead::load(&mut ws, &config)?)
        } else {
            None
        };
        ws.finish()?;
        Ok(Self {
            config,
            cmvn_means,
            cmvn_istd,
            encoder,
            decoder,
            ctc,
            delegates: EncoderDelegates::default(),
            chunk: 0,
        })
    }

    /// Offers the encoder stage to `delegates` (e.g. the GPU delegate built for this model
    /// directory) before the CPU: the first that accepts runs it (`StageKind::Encoder`,
    /// model [`STAGE_MODEL`], input `"feats"` `[frames, idim]` after CMVN, output
    /// `[t × d_model]` as [`EncoderOutput::hidden`]).
    pub fn set_delegates(&mut self, delegates: Vec<Arc<dyn Delegate>>) {
        self.delegates.list = delegates;
    }

    /// Where the most recent encoder pass ran (`None` before the first).
    pub fn last_encoder_executor(&self) -> Option<Executor> {
        self.delegates
            .last
            .lock()
            .map(|e| e.clone())
            .unwrap_or(None)
    }

    /// Where the most recent utterance's decoder (beam search or attention rescoring) ran
    /// (`None` before the first).
    pub fn last_decoder_executor(&self) -> Option<Executor> {
        self.delegates
            .last_decoder
            .lock()
            .map(|e| e.clone())
            .unwrap_or(None)
    }

    fn record_decoder(&self, e: Executor) {
        if let Ok(mut last) = self.delegates.last_decoder.lock() {
            *last = Some(e);
        }
    }

    /// A decoder session on the first delegate that offers one for `max_beams` rows and
    /// `max_len` positions (model [`STAGE_MODEL`]), started on `enc`'s unmasked frames;
    /// `None` when there are no delegates or all decline (the CPU decoder runs).
    pub fn open_decoder_session(
        &self,
        enc: &EncoderOutput,
        max_beams: usize,
        max_len: usize,
    ) -> Result<Option<decoder::SessionSteps>, ConformerError> {
        if self.delegates.list.is_empty() || enc.valid == 0 {
            return Ok(None);
        }
        let list: Vec<&dyn Delegate> = self.delegates.list.iter().map(|d| d.as_ref()).collect();
        let request = SessionRequest {
            model: STAGE_MODEL,
            max_beams,
            max_len,
        };
        let session =
            open_decoder_session(&list, &request).map_err(|source| ConformerError::Session {
                call: "open",
                source,
            })?;
        session
            .map(|s| decoder::SessionSteps::begin(s, &self.decoder, &enc.hidden, enc.valid))
            .transpose()
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

    /// Milliseconds of audio per encoder frame (10 ms fbank frames times the subsampling).
    pub fn frame_ms(&self) -> usize {
        10 * self.encoder.subsampling()
    }

    /// Makes [`Self::encode`] apply a chunk attention mask of `frames` encoder frames
    /// ([`ConformerEncoder::forward_chunked`]; 0 = full context, the default). Meant for
    /// streaming models (`config.causal_conv`, trained with dynamic chunks): their output
    /// for a chunk then does not depend on later audio. Chunked encoding runs on the CPU
    /// (the delegates' encoders have no chunk mask).
    pub fn set_attention_chunk(&mut self, frames: usize) {
        self.chunk = frames;
    }

    /// The chunk size [`Self::encode`] uses, encoder frames (0 = full context).
    pub fn attention_chunk(&self) -> usize {
        self.chunk
    }

    /// Encodes CMVN-normalised features, on the first delegate that accepts the stage,
    /// else on the CPU.
    pub fn encode(&self, feats: &[f32]) -> Result<EncoderOutput, ConformerError> {
        let record = |e: Executor| {
            if let Ok(mut last) = self.delegates.last.lock() {
                *last = Some(e);
            }
        };
        if self.delegates.list.is_empty() || self.chunk > 0 {
            let out = self.encoder.forward_chunked(feats, self.chunk, false)?;
            record(Executor::Cpu);
            return Ok(out);
        }
        let (frames, t, valid) = self.encoder.geometry(feats)?;
        let shape = [frames, self.config.idim];
        let stage = Stage {
            kind: StageKind::Encoder,
            model: STAGE_MODEL,
            inputs: &[("feats", &shape[..], feats)],
        };
        let mut hidden = vec![0f32; t * self.encoder.d_model()];
        let mut cpu_err = None;
        let list: Vec<&dyn Delegate> = self.delegates.list.iter().map(|d| d.as_ref()).collect();
        let executor = run_stage(&list, &stage, &mut [&mut hidden], |_, out| {
            match self.encoder.forward(feats, false) {
                Ok(e) => out[0].copy_from_slice(&e.hidden),
                Err(e) => cpu_err = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = cpu_err {
            return Err(e);
        }
        record(executor);
        Ok(EncoderOutput {
            hidden,
            frames: t,
            valid,
            stages: Vec::new(),
        })
    }

    /// Pushes CMVN-normalised features into an incremental encoding
    /// ([`ConformerEncoder::stream`]) and returns the encoder output for everything pushed
    /// so far, as [`Self::encode`] with the chunk set gives it; on the CPU.
    pub fn encode_stream(
        &self,
        st: &mut EncoderStream,
        feats: &[f32],
    ) -> Result<EncoderOutput, ConformerError> {
        self.encoder.stream_push(st, feats)?;
        let out = self.encoder.stream_output(st)?;
        if let Ok(mut last) = self.delegates.last.lock() {
            *last = Some(Executor::Cpu);
        }
        Ok(out)
    }

    /// Teacher-forced decoder logits (`[prefix.len() × vocab]`) for a token prefix
    /// (starting with `<sos>`), stepping the KV cache one position at a time.
    pub fn decoder_logits(
        &self,
        enc: &EncoderOutput,
        prefix: &[u32],
    ) -> Result<Vec<f32>, ConformerError> {
        let cross = self.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        let mut state = self.decoder.new_state_with_capacity(1, prefix.len());
        let mut out = Vec::with_capacity(prefix.len() * self.decoder.vocab());
        for &t in prefix {
            out.extend(self.decoder.step(&[t], &mut state, &cross)?);
        }
        Ok(out)
    }

    /// Beam search over an encoder output, stepping a delegate's decoder session when one
    /// is offered ([`Self::set_delegates`]), else the CPU decoder.
    pub fn beam_search(
        &self,
        enc: &EncoderOutput,
        opts: &BeamSearchOptions,
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        let len = search::max_steps(&self.decoder, enc.frames, opts) + 1;
        if let Some(mut steps) = self.open_decoder_session(enc, opts.beam_size, len)? {
            let name = steps.name().to_string();
            let hyps = search::beam_search_with(
                &mut steps,
                &self.decoder,
                enc.frames,
                self.config.sos_id,
                self.config.eos_id,
                opts,
            )?;
            self.record_decoder(Executor::Delegate(name));
            return Ok(hyps);
        }
        let cross = self.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        let hyps = beam_search(
            &self.decoder,
            &cross,
            enc.frames,
            self.config.sos_id,
            self.config.eos_id,
            opts,
        )?;
        self.record_decoder(Executor::Cpu);
        Ok(hyps)
    }

    /// CTC log-probabilities `[valid frames × vocab]` of an encoder output.
    pub fn ctc_log_probs(&self, enc: &EncoderOutput) -> Result<Vec<f32>, ConformerError> {
        let head = self.ctc.as_ref().ok_or_else(|| {
            ConformerError::Input("this model has no CTC head (config `ctc` is false)".into())
        })?;
        Ok(head.log_probs(&enc.hidden, enc.valid))
    }

    /// CTC prefix beam search (WeNet `ctc_prefix_beam_search`): `beam` prefixes with their
    /// CTC log-probabilities, best first.
    pub fn ctc_prefix_beam_search(
        &self,
        enc: &EncoderOutput,
        beam: usize,
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        let lp = self.ctc_log_probs(enc)?;
        ctc::ctc_prefix_beam_search(&lp, self.config.odim, beam, self.config.blank_id)
    }

    /// WeNet's `attention_rescoring` mode: CTC prefix beam search, then every prefix scored by
    /// the decoder plus `ctc_weight` × its CTC score; best first.
    pub fn ctc_attention_rescoring(
        &self,
        enc: &EncoderOutput,
        beam: usize,
        ctc_weight: f32,
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        self.ctc_attention_rescoring_forced(enc, beam, ctc_weight, &[])
    }

    /// [`Self::ctc_attention_rescoring`] of hypotheses that start with `forced` (CTC
    /// search constrained by [`ctc::ctc_prefix_beam_search_forced`]; the decoder scores
    /// the whole sequences). The hypotheses hold `forced` followed by the continuation.
    pub fn ctc_attention_rescoring_forced(
        &self,
        enc: &EncoderOutput,
        beam: usize,
        ctc_weight: f32,
        forced: &[u32],
    ) -> Result<Vec<Hypothesis>, ConformerError> {
        let lp = self.ctc_log_probs(enc)?;
        let nbest = ctc::ctc_prefix_beam_search_forced(
            &lp,
            self.config.odim,
            beam,
            self.config.blank_id,
            forced,
        )?;
        let longest = nbest.iter().map(|h| h.tokens.len()).max().unwrap_or(0);
        if let Some(mut steps) = self.open_decoder_session(enc, 1, longest + 1)? {
            let name = steps.name().to_string();
            let hyps = ctc::attention_rescoring_with_session(
                &mut steps,
                self.decoder.vocab(),
                &nbest,
                self.config.sos_id,
                self.config.eos_id,
                ctc_weight,
            )?;
            self.record_decoder(Executor::Delegate(name));
            return Ok(hyps);
        }
        let cross = self.decoder.cross_kv(&enc.hidden, enc.frames, enc.valid);
        let hyps = ctc::attention_rescoring(
            &self.decoder,
            &cross,
            &nbest,
            self.config.sos_id,
            self.config.eos_id,
            ctc_weight,
        )?;
        self.record_decoder(Executor::Cpu);
        Ok(hyps)
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
