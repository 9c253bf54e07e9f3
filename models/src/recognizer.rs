//! The family-agnostic front door: "a model directory + 16 kHz mono samples → segments".
//!
//! `hark transcribe`, `hark eval` and `hark listen` use [`Recognizer`] so that every model
//! family the store can hold runs everywhere without the app knowing its internals.
//! A model directory names its family in `config.json` (`"family": "whisper"` or
//! `"conformer_aed"`); [`Recognizer::load`] dispatches on it.
//!
//! Design:
//! * Options are faster-whisper's ([`TranscribeOptions`]) because that is what users of
//!   both families type (`--beam`, `--language`, ...); a family ignores the options it has
//!   no use for (a conformer-AED model has no language token, no temperature fallback).
//! * Segments are Whisper's [`Segment`] shape. Whisper fills every field; a conformer-AED
//!   model fills id, times, text, tokens and `avg_logprob` (its beam score per token) and
//!   leaves the Whisper-specific ones (temperature, compression ratio, no-speech
//!   probability) at zero.
//! * A conformer-AED model with a CTC head decodes as WeNet's runtime does (CTC prefix beam
//!   search, then attention rescoring with CTC weight [`CTC_RESCORING_WEIGHT`]); one without
//!   (FireRedASR) uses the attention beam search with FireRedASR's scoring.
//! * `TranscribeOptions::prefix` (text the transcript must begin with; the segments hold
//!   only what follows) works for both families: Whisper forces it on its decoder, a
//!   conformer-AED model with a CTC head on its CTC prefix search
//!   ([`ConformerAsr::decode_piece_after`]), so live dictation can keep text final while
//!   the utterance continues.
//! * Conformer-AED models are trained on utterances, not hour-long files. Longer input is
//!   cut into pieces of at most [`CONFORMER_MAX_PIECE_S`] at the quietest 10 ms frame of
//!   the last third of each piece (where a pause is most likely), and each piece is
//!   decoded on its own; segment times are piece times.
//! * Input is a [`SampleSource`] read chunk by chunk (a file through
//!   [`Recognizer::transcribe_file`]), so memory is bounded by one window (Whisper: 30 s
//!   plus context; conformer: one piece plus a 10 s read) whatever the duration.

use std::path::{Path, PathBuf};

use hark_audio::features::{FbankOptions, FrameComputer};
use std::sync::{Arc, Mutex};

use hark_engine::delegate::{Delegate, Executor};
use hark_engine::Precision;

use crate::conformer_aed::{
    BeamSearchOptions, ConformerAed, ConformerError, EncoderOutput, EncoderStream, FireRedTokenizer,
};
use crate::whisper::{
    FileSource, SampleSource, Segment, SliceSource, TranscribeOptions, TranscriptionInfo, Whisper,
    WhisperError,
};

/// Weight of the CTC score in attention rescoring (WeNet's runtime default).
pub const CTC_RESCORING_WEIGHT: f32 = 0.5;

/// Longest piece of audio a conformer-AED model decodes at once, seconds.
pub const CONFORMER_MAX_PIECE_S: f64 = 30.0;

/// Errors of loading or running a model through [`Recognizer`].
#[derive(Debug, thiserror::Error)]
pub enum RecognizerError {
    /// `config.json` is missing, unreadable or names no known family.
    #[error("reading the model config {path}: {msg}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A Whisper model failed.
    #[error(transparent)]
    Whisper(#[from] WhisperError),
    /// A conformer-AED model failed.
    #[error(transparent)]
    Conformer(#[from] ConformerError),
    /// The audio cannot be transcribed.
    #[error("transcribing: {0}")]
    Input(String),
    /// A decoding setting does not apply to this model.
    #[error("decoding setting: {0}")]
    Setting(String),
}

/// Model families a hark model directory can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI Whisper.
    Whisper,
    /// Conformer encoder + transformer decoder (FireRedASR-AED, WeNet, ESPnet).
    ConformerAed,
}

impl Family {
    /// The name used in `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Whisper => "whisper",
            Family::ConformerAed => "conformer_aed",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Facts about a model directory read from its `config.json` without loading weights.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    /// The family.
    pub family: Family,
    /// The precision the weights are stored in (the default run-time precision).
    pub stored_precision: Precision,
}

/// Reads the family and stored precision of a model directory.
pub fn model_facts(dir: &Path) -> Result<ModelFacts, RecognizerError> {
    let path = dir.join("config.json");
    let err = |msg: String| RecognizerError::Config {
        path: path.clone(),
        msg,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let family = match v.get("family").and_then(|f| f.as_str()) {
        Some("whisper") => Family::Whisper,
        Some("conformer_aed") => Family::ConformerAed,
        Some(other) => {
            return Err(err(format!(
                "unknown model family `{other}` (hark knows whisper and conformer_aed)"
            )))
        }
        None => return Err(err("no `family` field".into())),
    };
    let key = match family {
        Family::Whisper => "precision",
        Family::ConformerAed => "weights_dtype",
    };
    let stored_precision = match v.get(key).and_then(|p| p.as_str()) {
        Some(p) => p
            .parse::<Precision>()
            .map_err(|e| err(format!("`{key}`: {e}")))?,
        None => Precision::F32,
    };
    Ok(ModelFacts {
        family,
        stored_precision,
    })
}

/// A conformer-AED model with its tokenizer and feature extractor.
#[derive(Debug)]
pub struct ConformerAsr {
    /// The network.
    pub model: ConformerAed,
    /// The tokenizer.
    pub tokenizer: FireRedTokenizer,
    fbank: FrameComputer,
    /// With a chunk set on a streaming model: the last decoded audio's incremental
    /// encoder state, reused when the next decode's audio begins with that audio (live
    /// dictation re-decodes each utterance as it grows).
    stream: Mutex<Option<AudioStream>>,
}

/// Audio encoded incrementally ([`ConformerAsr`]'s streaming cache).
#[derive(Debug)]
struct AudioStream {
    /// The audio encoded so far, as given.
    samples: Vec<f32>,
    /// Fbank frames pushed into `enc`.
    frames: usize,
    enc: EncoderStream,
}

impl ConformerAsr {
    /// Loads a conformer_aed model directory at `precision`.
    pub fn load(dir: &Path, precision: Precision) -> Result<Self, RecognizerError> {
        let model = ConformerAed::load_with_precision(dir, precision)?;
        let tokenizer = FireRedTokenizer::from_model_dir(dir, &model.config)?;
        let fbank = FrameComputer::new(FbankOptions::with_bins(model.config.idim))
            .map_err(|e| RecognizerError::Input(format!("fbank set-up: {e}")))?;
        Ok(ConformerAsr {
            model,
            tokenizer,
            fbank,
            stream: Mutex::new(None),
        })
    }

    /// Decodes one piece of audio (16 kHz mono, [-1, 1]) to its best hypothesis.
    /// Input shorter than one fbank frame (25 ms) gives an empty text.
    pub fn decode_piece(
        &self,
        samples: &[f32],
        beam_size: usize,
    ) -> Result<PieceResult, RecognizerError> {
        self.decode_piece_forced(samples, beam_size, &[])
    }

    /// Whether [`Self::decode_piece_after`] can force a prefix on the search (it needs
    /// the CTC head: the prefix constrains the CTC prefix beam search).
    pub fn accepts_prefix(&self) -> bool {
        self.model.ctc.is_some()
    }

    /// Decodes a piece whose start was already decoded as `prefix` (text this model
    /// produced, e.g. a live final): the hypotheses are constrained to begin with
    /// `prefix`'s tokens and the result holds only what follows them. When the prefix
    /// cannot be forced (no CTC head, text that does not tokenize back to itself, or no
    /// path through the audio emits it), the piece is decoded freely and the words after
    /// the prefix's word count are returned.
    pub fn decode_piece_after(
        &self,
        samples: &[f32],
        beam_size: usize,
        prefix: &str,
    ) -> Result<PieceResult, RecognizerError> {
        let words = prefix.split_whitespace().count();
        if words == 0 {
            return self.decode_piece(samples, beam_size);
        }
        let forced = self.prefix_tokens(prefix).unwrap_or_default();
        let mut out = self.decode_piece_forced(samples, beam_size, &forced)?;
        if out.prefix_forced {
            return Ok(out);
        }
        out.text = out
            .text
            .split_whitespace()
            .skip(words)
            .collect::<Vec<_>>()
            .join(" ");
        out.tokens = self.tokenizer.tokenize(&out.text).1;
        Ok(out)
    }

    /// `prefix` as token ids when the model can force it and it tokenizes back to itself.
    fn prefix_tokens(&self, prefix: &str) -> Option<Vec<u32>> {
        if !self.accepts_prefix() {
            return None;
        }
        let (_, ids) = self.tokenizer.tokenize(prefix);
        let back = self.tokenizer.detokenize(&ids);
        let same = back
            .split_whitespace()
            .eq(prefix.to_uppercase().split_whitespace());
        (same && !ids.is_empty()).then_some(ids)
    }

    /// CMVN-normalised fbank features of `samples` (at least one frame long).
    fn features(&self, samples: &[f32]) -> Result<Vec<f32>, RecognizerError> {
        // FireRedASR computes fbank on int16-scale samples.
        let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
        let feats = self
            .fbank
            .compute(&scaled)
            .map_err(|e| RecognizerError::Input(format!("fbank: {e}")))?;
        let mut x = feats.data;
        self.model.apply_cmvn(&mut x)?;
        Ok(x)
    }

    /// The chunked encoder output of `samples` through the streaming cache: when they
    /// begin with the audio encoded last, only the fbank frames and encoder chunks after
    /// it are computed (fbank frames and chunks of a causal, chunk-masked model do not
    /// depend on later audio); otherwise a new stream starts.
    fn encode_incrementally(
        &self,
        samples: &[f32],
        out: &mut PieceResult,
    ) -> Result<EncoderOutput, RecognizerError> {
        let chunk = self.model.attention_chunk();
        // Workers sharing the model (`--jobs`) do not wait for each other: a decode that
        // finds the cache in use encodes on a stream of its own.
        let mut own: Option<AudioStream> = None;
        let mut guard;
        let slot: &mut Option<AudioStream> = match self.stream.try_lock() {
            Ok(g) => {
                guard = g;
                &mut guard
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                guard = p.into_inner();
                &mut guard
            }
            Err(std::sync::TryLockError::WouldBlock) => &mut own,
        };
        let continues = slot.as_ref().is_some_and(|s| {
            s.enc.chunk() == chunk
                && samples.len() >= s.samples.len()
                && samples[..s.samples.len()] == s.samples[..]
        });
        if !continues {
            *slot = Some(AudioStream {
                samples: Vec::new(),
                frames: 0,
                enc: self.model.encoder.stream(chunk)?,
            });
        }
        let s = slot.as_mut().expect("stream set above");
        let t = std::time::Instant::now();
        let shift = self.fbank.frame_opts().window_shift();
        let start = s.frames * shift;
        let new_frames = self
            .fbank
            .frame_opts()
            .num_frames(samples.len() - start, true);
        let x = if new_frames > 0 {
            self.features(&samples[start..])?
        } else {
            Vec::new()
        };
        out.features_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let enc = match self.model.encode_stream(&mut s.enc, &x) {
            Ok(enc) => enc,
            Err(e) => {
                *slot = None;
                return Err(e.into());
            }
        };
        s.frames += new_frames;
        s.samples.extend_from_slice(&samples[s.samples.len()..]);
        out.encoder_s = t.elapsed().as_secs_f64();
        Ok(enc)
    }

    /// The decode: the best hypothesis starting with `forced` (empty: any), its tokens
    /// after `forced`; when no path emits `forced`, the best free hypothesis, whole
    /// (`prefix_forced` false). The audio is encoded once either way.
    fn decode_piece_forced(
        &self,
        samples: &[f32],
        beam_size: usize,
        forced: &[u32],
    ) -> Result<PieceResult, RecognizerError> {
        let mut out = PieceResult::default();
        let fo = self.fbank.frame_opts();
        if fo.num_frames(samples.len(), true) == 0 {
            return Ok(out);
        }
        let incremental = self.model.attention_chunk() > 0
            && self.model.encoder.streams()
            && fo.dither == 0.0
            && fo.snip_edges;
        let enc = if incremental {
            self.encode_incrementally(samples, &mut out)?
        } else {
            let t = std::time::Instant::now();
            let x = self.features(samples)?;
            out.features_s = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let enc = self.model.encode(&x)?;
            out.encoder_s = t.elapsed().as_secs_f64();
            enc
        };
        let t = std::time::Instant::now();
        let beam = beam_size.max(1);
        let mut forced = forced;
        let hyps = if self.model.ctc.is_some() {
            match self.model.ctc_attention_rescoring_forced(
                &enc,
                beam,
                CTC_RESCORING_WEIGHT,
                forced,
            ) {
                Err(ConformerError::Input(_)) if !forced.is_empty() => {
                    forced = &[];
                    self.model
                        .ctc_attention_rescoring(&enc, beam, CTC_RESCORING_WEIGHT)?
                }
                r => r?,
            }
        } else {
            forced = &[];
            let opts = BeamSearchOptions {
                beam_size: beam,
                ..Default::default()
            };
            self.model.beam_search(&enc, &opts)?
        };
        out.decoder_s = t.elapsed().as_secs_f64();
        out.prefix_forced = !forced.is_empty();
        if let Some(h) = hyps.into_iter().next() {
            out.avg_logprob = h.score / (h.tokens.len().max(1) as f32);
            let rest = &h.tokens[forced.len().min(h.tokens.len())..];
            out.text = self.tokenizer.detokenize(rest);
            out.tokens = rest.to_vec();
        }
        Ok(out)
    }
}

/// What [`ConformerAsr::decode_piece`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PieceResult {
    /// Best hypothesis as text.
    pub text: String,
    /// Its token ids (without `<sos>`/`<eos>`).
    pub tokens: Vec<u32>,
    /// Its beam score per token.
    pub avg_logprob: f32,
    /// Seconds in fbank + CMVN.
    pub features_s: f64,
    /// Seconds in the encoder.
    pub encoder_s: f64,
    /// Seconds in the beam search.
    pub decoder_s: f64,
    /// [`ConformerAsr::decode_piece_after`]: whether the prefix was forced on the search
    /// (else the piece was decoded freely and the prefix's word count skipped).
    pub prefix_forced: bool,
}

/// Samples per 10 ms frame at 16 kHz: the grid on which pieces are cut.
const CUT_FRAME: usize = 160;

/// Where to end the next piece of `buf` (whose first sample is sample `offset` of the
/// signal) when it is longer than `max_len`: the middle of the quietest 10 ms frame
/// (on the signal's absolute 10 ms grid) in the last third of the first `max_len`
/// samples. Returns a length in `1..=max_len`.
fn quiet_cut(buf: &[f32], offset: usize, max_len: usize) -> usize {
    let hi = offset + max_len.min(buf.len());
    let lo = (offset + max_len * 2 / 3).div_ceil(CUT_FRAME) * CUT_FRAME;
    let mut best = (f32::INFINITY, hi);
    let mut f = lo;
    while f + CUT_FRAME <= hi {
        let e: f32 = buf[f - offset..f - offset + CUT_FRAME]
            .iter()
            .map(|x| x * x)
            .sum();
        // Ties go to the later frame: fewer, longer pieces.
        if e <= best.0 {
            best = (e, f + CUT_FRAME / 2);
        }
        f += CUT_FRAME;
    }
    (best.1 - offset).max(1)
}

/// Cut points (sample indices, exclusive ends) splitting `samples` into pieces of at most
/// `max_len` samples, each cut at the quietest 10 ms frame in the last third of its piece
/// (what the conformer path does while streaming).
pub fn split_for_conformer(samples: &[f32], max_len: usize) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut start = 0;
    while samples.len() - start > max_len {
        start += quiet_cut(&samples[start..], start, max_len);
        cuts.push(start);
    }
    cuts.push(samples.len());
    cuts
}

/// A loaded model of any family.
#[derive(Debug)]
pub enum Recognizer {
    /// Whisper.
    Whisper(Box<Whisper>),
    /// Conformer-AED.
    ConformerAed(Box<ConformerAsr>),
}

impl Recognizer {
    /// Loads a model directory; `precision` `None` runs at the stored precision.
    pub fn load(dir: &Path, precision: Option<Precision>) -> Result<Self, RecognizerError> {
        let facts = model_facts(dir)?;
        let precision = precision.unwrap_or(facts.stored_precision);
        Ok(match facts.family {
            Family::Whisper => Recognizer::Whisper(Box::new(Whisper::load(dir, precision)?)),
            Family::ConformerAed => {
                Recognizer::ConformerAed(Box::new(ConformerAsr::load(dir, precision)?))
            }
        })
    }

    /// Whether `TranscribeOptions::prefix` is forced on the search (Whisper; a
    /// conformer-AED model with a CTC head). Otherwise the piece is decoded freely and
    /// the prefix's word count skipped.
    pub fn accepts_prefix(&self) -> bool {
        match self {
            Recognizer::Whisper(_) => true,
            Recognizer::ConformerAed(c) => c.accepts_prefix(),
        }
    }

    /// Whether the model was built for streaming: a conformer-AED model with causal
    /// convolutions (`config.json` `causal_conv`, trained with chunk masks), whose output
    /// does not rely on audio after a chunk. Whisper and full-context conformers: false.
    pub fn is_streaming(&self) -> bool {
        match self {
            Recognizer::Whisper(_) => false,
            Recognizer::ConformerAed(c) => c.model.config.causal_conv,
        }
    }

    /// The model family.
    pub fn family(&self) -> Family {
        match self {
            Recognizer::Whisper(_) => Family::Whisper,
            Recognizer::ConformerAed(_) => Family::ConformerAed,
        }
    }

    /// Decode with a chunk attention mask of `chunk_ms` milliseconds (0 = full context): the
    /// encoder output of each chunk then depends only on that chunk and earlier audio, as
    /// in chunk-by-chunk streaming ([`ConformerAed::set_attention_chunk`]). Conformer-AED
    /// models only; `chunk_ms` must be a whole number of encoder frames (40 ms for 4x
    /// subsampling). Meant for models trained with dynamic chunks and causal convolutions
    /// (`causal_conv`): a full-context model runs, but loses accuracy.
    pub fn set_chunk_ms(&mut self, chunk_ms: u32) -> Result<(), RecognizerError> {
        match self {
            Recognizer::Whisper(_) => Err(RecognizerError::Setting(
                "chunked attention (--chunk-ms) needs a conformer-AED model; Whisper attends to its whole 30 s window"
                    .into(),
            )),
            Recognizer::ConformerAed(c) => {
                let frame = c.model.frame_ms() as u32;
                if !chunk_ms.is_multiple_of(frame) {
                    return Err(RecognizerError::Setting(format!(
                        "chunk of {chunk_ms} ms is not a whole number of {frame} ms encoder frames"
                    )));
                }
                c.model.set_attention_chunk((chunk_ms / frame) as usize);
                Ok(())
            }
        }
    }

    /// The Whisper model, when this is one.
    pub fn as_whisper(&self) -> Option<&Whisper> {
        match self {
            Recognizer::Whisper(w) => Some(w),
            Recognizer::ConformerAed(_) => None,
        }
    }

    /// Hands the model accelerators that may take its encoder stage (see
    /// [`Whisper::set_delegates`], [`ConformerAed::set_delegates`]).
    pub fn set_delegates(&mut self, delegates: Vec<Arc<dyn Delegate>>) {
        match self {
            Recognizer::Whisper(w) => w.set_delegates(delegates),
            Recognizer::ConformerAed(c) => c.model.set_delegates(delegates),
        }
    }

    /// Where the most recent encoder pass ran (`None` before the first).
    pub fn last_encoder_executor(&self) -> Option<Executor> {
        match self {
            Recognizer::Whisper(w) => w.last_encoder_executor(),
            Recognizer::ConformerAed(c) => c.model.last_encoder_executor(),
        }
    }

    /// Where the decoder steps of the most recent window (Whisper) or utterance
    /// (conformer-AED: beam search or attention rescoring) ran (`None` before the first).
    pub fn last_decoder_executor(&self) -> Option<Executor> {
        match self {
            Recognizer::Whisper(w) => w.last_decoder_executor(),
            Recognizer::ConformerAed(c) => c.model.last_decoder_executor(),
        }
    }

    /// Token ids below this are text (for JSON output); `u32::MAX` when all are.
    pub fn first_special_token(&self) -> u32 {
        match self {
            Recognizer::Whisper(w) => w.tokenizer.eot(),
            Recognizer::ConformerAed(_) => u32::MAX,
        }
    }

    /// Transcribes 16 kHz mono samples; each segment goes to `sink` as soon as it is
    /// decoded.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<TranscriptionInfo, RecognizerError> {
        self.transcribe_source(&mut SliceSource::new(samples), opts, sink)
    }

    /// Transcribes a source read chunk by chunk, in memory bounded by one decoding
    /// window whatever the duration (Whisper reads the source twice, see
    /// [`SampleSource`]).
    pub fn transcribe_source(
        &self,
        source: &mut dyn SampleSource,
        opts: &TranscribeOptions,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<TranscriptionInfo, RecognizerError> {
        match self {
            Recognizer::Whisper(w) => Ok(w.transcribe_stream(source, opts, sink)?),
            Recognizer::ConformerAed(c) => transcribe_conformer(c, source, opts, sink),
        }
    }

    /// Transcribes an audio file (any format hark-audio decodes) streamed from disk, so a
    /// file of any length is transcribed in bounded memory.
    pub fn transcribe_file(
        &self,
        path: &Path,
        opts: &TranscribeOptions,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<TranscriptionInfo, RecognizerError> {
        let mut source = FileSource::open(path)?;
        self.transcribe_source(&mut source, opts, sink)
    }

    /// Transcribes and joins the segment texts with single spaces.
    pub fn text(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<String, RecognizerError> {
        let mut texts: Vec<String> = Vec::new();
        self.transcribe(samples, opts, &mut |s| {
            let t = s.text.trim();
            if !t.is_empty() {
                texts.push(t.to_string());
            }
        })?;
        Ok(texts.join(" "))
    }
}

/// Samples read from the source at a time by the conformer path (10 s).
const CONFORMER_READ_CHUNK: usize = 160_000;

fn transcribe_conformer(
    c: &ConformerAsr,
    source: &mut dyn SampleSource,
    opts: &TranscribeOptions,
    sink: &mut dyn FnMut(&Segment),
) -> Result<TranscriptionInfo, RecognizerError> {
    let mut info = TranscriptionInfo {
        language: "en".into(),
        language_probability: 1.0,
        ..Default::default()
    };
    let max_len = (CONFORMER_MAX_PIECE_S * 16000.0) as usize;
    let mut buf: Vec<f32> = Vec::with_capacity(max_len + CONFORMER_READ_CHUNK);
    let (mut offset, mut id) = (0usize, 0usize);
    let mut prefix = opts.prefix.as_deref().filter(|p| !p.trim().is_empty());
    loop {
        let before = buf.len();
        let ended = source
            .read(&mut buf, CONFORMER_READ_CHUNK)
            .map_err(|e| RecognizerError::Input(e.to_string()))?
            == 0;
        if buf[before..].iter().any(|x| !x.is_finite()) {
            return Err(RecognizerError::Input(
                "the audio contains NaN or infinite samples".into(),
            ));
        }
        info.max_buffered_samples = info.max_buffered_samples.max(buf.len());
        while buf.len() > max_len || (ended && !buf.is_empty()) {
            let cut = if buf.len() > max_len {
                quiet_cut(&buf, offset, max_len)
            } else {
                buf.len()
            };
            // A forced prefix (live dictation's final text) applies to the first piece.
            let piece = match prefix.take() {
                Some(p) => c.decode_piece_after(&buf[..cut], opts.beam_size, p)?,
                None => c.decode_piece(&buf[..cut], opts.beam_size)?,
            };
            info.features_s += piece.features_s;
            info.encoder_s += piece.encoder_s;
            info.decoder_s += piece.decoder_s;
            info.windows += 1;
            if !piece.text.trim().is_empty() {
                id += 1;
                sink(&Segment {
                    id,
                    seek: offset / CUT_FRAME,
                    start: offset as f64 / 16000.0,
                    end: (offset + cut) as f64 / 16000.0,
                    text: piece.text,
                    tokens: piece.tokens,
                    temperature: 0.0,
                    avg_logprob: piece.avg_logprob,
                    compression_ratio: 0.0,
                    no_speech_prob: 0.0,
                });
            }
            buf.drain(..cut);
            offset += cut;
        }
        if ended {
            break;
        }
    }
    info.duration = offset as f64 / 16000.0;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_short_input_whole() {
        let x = vec![0.1f32; 1000];
        assert_eq!(split_for_conformer(&x, 16000), vec![1000]);
    }

    #[test]
    fn split_cuts_at_the_quiet_frame_and_bounds_pieces() {
        // 2.5 "s" of loud signal with a silent 10 ms gap at 0.8 s, pieces of at most 1 s.
        let mut x: Vec<f32> = (0..40000)
            .map(|i| ((i % 50) as f32 - 25.0) / 25.0)
            .collect();
        for v in &mut x[12800..12960] {
            *v = 0.0;
        }
        let cuts = split_for_conformer(&x, 16000);
        assert_eq!(
            cuts[0], 12880,
            "first cut in the middle of the silent frame"
        );
        let mut prev = 0;
        for &c in &cuts {
            assert!(c - prev <= 16000 && c > prev);
            prev = c;
        }
        assert_eq!(*cuts.last().unwrap(), x.len());
    }

    fn fixture_conformer() -> Recognizer {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformer/firered_d32_k15");
        Recognizer::load(&dir, None).expect("fixture conformer model")
    }

    #[test]
    fn chunk_ms_sets_whole_encoder_frames_and_names_a_bad_size() {
        let mut rec = fixture_conformer();
        rec.set_chunk_ms(640).unwrap();
        let Recognizer::ConformerAed(c) = &rec else {
            unreachable!()
        };
        assert_eq!(c.model.frame_ms(), 40);
        assert_eq!(c.model.attention_chunk(), 16);
        let err = rec.set_chunk_ms(50).unwrap_err().to_string();
        assert!(
            err.contains("50 ms") && err.contains("40 ms"),
            "error names the size and the frame: {err}"
        );
        rec.set_chunk_ms(0).unwrap();
        let Recognizer::ConformerAed(c) = &rec else {
            unreachable!()
        };
        assert_eq!(c.model.attention_chunk(), 0, "0 = full context");
    }

    /// Growing audio decoded with a chunk set on a streaming model reuses the incremental
    /// encoder (only new chunks are encoded) and decodes as a fresh recogniser does.
    #[test]
    fn growing_audio_reuses_the_incremental_encoder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/conformer/firered_causal_d32_k7");
        let load = || {
            let mut rec = Recognizer::load(&dir, None).expect("fixture causal model");
            rec.set_chunk_ms(160).unwrap();
            rec
        };
        // The fixture's golden utterance (its random-init weights emit tokens for it); without
        // ../shared, noise: the reuse is still checked, the token comparison is then empty.
        let wav = hark_test_support::shared_path("data/an4/test/an392-mjwl-b.flac");
        let real = wav.is_some();
        let x: Vec<f32> = match wav {
            Some(p) => hark_audio::load_audio(&p).expect("an4 wav"),
            None => {
                let mut seed = 12345u32;
                (0..48000)
                    .map(|_| {
                        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                        0.3 * ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
                    })
                    .collect()
            }
        };
        let rec = load();
        let Recognizer::ConformerAed(c) = &rec else {
            unreachable!()
        };
        let committed = || {
            c.stream
                .lock()
                .unwrap()
                .as_ref()
                .map_or(0, |s| s.enc.committed())
        };
        let (mut last, mut words) = (0, 0);
        let mut first = None;
        for end in (1600..=x.len()).step_by(1600) {
            let got = c.decode_piece(&x[..end], 3).unwrap();
            let fresh = load();
            let Recognizer::ConformerAed(f) = &fresh else {
                unreachable!()
            };
            let want = f.decode_piece(&x[..end], 3).unwrap();
            assert_eq!(got.tokens, want.tokens, "{end} samples");
            words += got.tokens.len();
            let now = committed();
            assert!(
                now >= last,
                "{end} samples: kept chunks stay ({last} -> {now})"
            );
            first.get_or_insert(now);
            last = now;
        }
        assert!(last > first.unwrap(), "chunks were kept as the audio grew");
        assert!(!real || words > 0, "the decodes produced tokens to compare");
        // Other audio starts a new stream.
        c.decode_piece(&x[1600..6400], 3).unwrap();
        assert!(
            committed() < last,
            "a new stream for audio that does not continue"
        );
        let mut full = load();
        full.set_chunk_ms(0).unwrap();
        let Recognizer::ConformerAed(f) = &full else {
            unreachable!()
        };
        f.decode_piece(&x, 3).unwrap();
        assert!(
            f.stream.lock().unwrap().is_none(),
            "full context: no stream"
        );
    }

    /// Decodes on several threads with a chunk set do not wait for the shared stream cache
    /// (one of them encodes on a stream of its own) and give the single-thread results.
    #[test]
    fn concurrent_chunked_decodes_share_the_model() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/conformer/firered_causal_d32_k7");
        let mut rec = Recognizer::load(&dir, None).expect("fixture causal model");
        rec.set_chunk_ms(160).unwrap();
        let Recognizer::ConformerAed(c) = &rec else {
            unreachable!()
        };
        let clips: Vec<Vec<f32>> = (0..4u32)
            .map(|k| {
                let mut seed = 777 + k;
                (0..16000 + 4000 * k as usize)
                    .map(|_| {
                        seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                        0.3 * ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5)
                    })
                    .collect()
            })
            .collect();
        let want: Vec<PieceResult> = clips
            .iter()
            .map(|x| c.decode_piece(x, 3).unwrap())
            .collect();
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    sc.spawn(|| {
                        for _ in 0..3 {
                            for (x, w) in clips.iter().zip(&want) {
                                assert_eq!(c.decode_piece(x, 3).unwrap().tokens, w.tokens);
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        });
    }

    #[test]
    fn conformer_long_input_is_decoded_in_bounded_pieces() {
        // 75 s of a random-weight model's input: tone bursts with short pauses.
        let n = 75 * 16000;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / 16000.0;
                if t.fract() < 0.8 {
                    0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let rec = fixture_conformer();
        assert_eq!(rec.family(), Family::ConformerAed);
        let mut segs = Vec::new();
        let info = rec
            .transcribe(&x, &TranscribeOptions::default(), &mut |s| {
                segs.push(s.clone())
            })
            .unwrap();
        assert_eq!(info.windows, 3, "75 s in pieces of at most 30 s");
        assert!((info.duration - 75.0).abs() < 1e-9);
        let max_len = (CONFORMER_MAX_PIECE_S * 16000.0) as usize;
        assert!(info.max_buffered_samples <= max_len + CONFORMER_READ_CHUNK);
        // Segment times are the pieces: contiguous, increasing, at most 30 s each, and
        // cut inside the pauses.
        let cuts = split_for_conformer(&x, max_len);
        assert_eq!(cuts.len(), 3);
        for c in &cuts[..2] {
            assert_eq!(x[*c], 0.0, "cut at {c} is in a pause");
        }
        for w in segs.windows(2) {
            assert!(w[0].end <= w[1].start + 1e-9);
        }
        for s in &segs {
            assert!(s.end - s.start <= CONFORMER_MAX_PIECE_S + 1e-9);
        }
    }

    #[test]
    fn conformer_rejects_non_finite_audio_and_accepts_empty() {
        let rec = fixture_conformer();
        let e = rec
            .text(&[0.0, f32::NAN, 0.0], &TranscribeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
        assert_eq!(rec.text(&[], &TranscribeOptions::default()).unwrap(), "");
        assert_eq!(
            rec.text(&[0.0; 100], &TranscribeOptions::default())
                .unwrap(),
            ""
        );
    }

    #[test]
    fn facts_reject_unknown_family() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), r#"{"family":"rnnt"}"#).unwrap();
        let e = model_facts(d.path()).unwrap_err().to_string();
        assert!(e.contains("unknown model family `rnnt`"), "{e}");
        let e = model_facts(&d.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("config.json"), "{e}");
    }
}
