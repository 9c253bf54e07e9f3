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
//! * Conformer-AED models are trained on utterances, not hour-long files. Longer input is
//!   cut into pieces of at most [`CONFORMER_MAX_PIECE_S`] at the quietest 10 ms frame of
//!   the last third of each piece (where a pause is most likely), and each piece is
//!   decoded on its own; segment times are piece times.

use std::path::{Path, PathBuf};

use hark_audio::features::{FbankOptions, FrameComputer};
use hark_engine::Precision;

use crate::conformer_aed::{BeamSearchOptions, ConformerAed, ConformerError, FireRedTokenizer};
use crate::whisper::{Segment, TranscribeOptions, TranscriptionInfo, Whisper, WhisperError};

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
        })
    }

    /// Decodes one piece of audio (16 kHz mono, [-1, 1]) to its best hypothesis.
    /// Input shorter than one fbank frame (25 ms) gives an empty text.
    pub fn decode_piece(
        &self,
        samples: &[f32],
        beam_size: usize,
    ) -> Result<PieceResult, RecognizerError> {
        let mut out = PieceResult::default();
        let t = std::time::Instant::now();
        // FireRedASR computes fbank on int16-scale samples.
        let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
        let feats = self
            .fbank
            .compute(&scaled)
            .map_err(|e| RecognizerError::Input(format!("fbank: {e}")))?;
        if feats.n_frames == 0 {
            return Ok(out);
        }
        let mut x = feats.data;
        self.model.apply_cmvn(&mut x)?;
        out.features_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let enc = self.model.encode(&x)?;
        out.encoder_s = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let opts = BeamSearchOptions {
            beam_size: beam_size.max(1),
            ..Default::default()
        };
        let hyps = self.model.beam_search(&enc, &opts)?;
        out.decoder_s = t.elapsed().as_secs_f64();
        if let Some(h) = hyps.into_iter().next() {
            out.avg_logprob = h.score / (h.tokens.len().max(1) as f32);
            out.text = self.tokenizer.detokenize(&h.tokens);
            out.tokens = h.tokens;
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
}

/// Cut points (sample indices, exclusive ends) splitting `samples` into pieces of at most
/// `max_len` samples, each cut at the quietest 10 ms frame in the last third of its piece.
pub fn split_for_conformer(samples: &[f32], max_len: usize) -> Vec<usize> {
    const FRAME: usize = 160;
    let mut cuts = Vec::new();
    let mut start = 0;
    while samples.len() - start > max_len {
        // Frames on the absolute 10 ms grid, so cuts do not depend on where a piece began.
        let lo = (start + max_len * 2 / 3).div_ceil(FRAME) * FRAME;
        let hi = start + max_len;
        let mut best = (f32::INFINITY, hi);
        let mut f = lo;
        while f + FRAME <= hi {
            let e: f32 = samples[f..f + FRAME].iter().map(|x| x * x).sum();
            if e < best.0 {
                best = (e, f + FRAME / 2);
            }
            f += FRAME;
        }
        cuts.push(best.1);
        start = best.1;
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

    /// The model family.
    pub fn family(&self) -> Family {
        match self {
            Recognizer::Whisper(_) => Family::Whisper,
            Recognizer::ConformerAed(_) => Family::ConformerAed,
        }
    }

    /// The Whisper model, when this is one.
    pub fn as_whisper(&self) -> Option<&Whisper> {
        match self {
            Recognizer::Whisper(w) => Some(w),
            Recognizer::ConformerAed(_) => None,
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
        match self {
            Recognizer::Whisper(w) => Ok(w.transcribe(samples, opts, sink)?),
            Recognizer::ConformerAed(c) => transcribe_conformer(c, samples, opts, sink),
        }
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

fn transcribe_conformer(
    c: &ConformerAsr,
    samples: &[f32],
    opts: &TranscribeOptions,
    sink: &mut dyn FnMut(&Segment),
) -> Result<TranscriptionInfo, RecognizerError> {
    let mut info = TranscriptionInfo {
        language: "en".into(),
        language_probability: 1.0,
        duration: samples.len() as f64 / 16000.0,
        ..Default::default()
    };
    if samples.iter().any(|x| !x.is_finite()) {
        return Err(RecognizerError::Input(
            "the audio contains NaN or infinite samples".into(),
        ));
    }
    if samples.is_empty() {
        return Ok(info);
    }
    let max_len = (CONFORMER_MAX_PIECE_S * 16000.0) as usize;
    let mut start = 0;
    let mut id = 0;
    for end in split_for_conformer(samples, max_len) {
        let PieceResult {
            text,
            tokens,
            avg_logprob,
            features_s,
            encoder_s,
            decoder_s,
        } = c.decode_piece(&samples[start..end], opts.beam_size)?;
        info.features_s += features_s;
        info.encoder_s += encoder_s;
        info.decoder_s += decoder_s;
        info.windows += 1;
        if !text.trim().is_empty() {
            id += 1;
            sink(&Segment {
                id,
                seek: start / 160,
                start: start as f64 / 16000.0,
                end: end as f64 / 16000.0,
                text,
                tokens,
                temperature: 0.0,
                avg_logprob,
                compression_ratio: 0.0,
                no_speech_prob: 0.0,
            });
        }
        start = end;
    }
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
