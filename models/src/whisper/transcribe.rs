//! Long-form transcription: the 30 s sliding window with seek, temperature fallback,
//! no-speech skipping, previous-text conditioning and segment splitting on timestamp
//! tokens — following faster-whisper `transcribe.py` (`WhisperModel.generate_segments`,
//! `generate_with_fallback`, `_split_segments_by_timestamps`, `get_prompt`), our parity
//! target, where it differs from openai-whisper `transcribe.py`.
//!
//! Segments are pushed into a caller-supplied sink as soon as a window is decoded, so
//! the app can print them while the rest is still running.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use hark_audio::features::whisper::{LogMel, WhisperMel, FASTER_WHISPER_PADDING, N_FRAMES};
use hark_engine::delegate::{
    open_decoder_session, run_stage, Delegate, Executor, SessionRequest, Stage, StageKind,
};
use hark_tokenizer::{Task, WhisperTokenizer};

use super::config::Precision;
use super::decode::{generate, GenerateOptions, Generation, SpecialTokens};
use super::error::{Result, WhisperError};
use super::model::{check_cancel, DecodeRows, DecoderState, EncoderOutput, WhisperModel};

/// Seconds per mel frame (hop 160 at 16 kHz).
pub const TIME_PER_FRAME: f64 = 0.01;
/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;
/// Mel frames per encoder position (conv2 stride).
pub const INPUT_STRIDE: usize = 2;
/// Maximum decoder length.
pub const MAX_LENGTH: usize = 448;

/// Options of a transcription, named and defaulted as faster-whisper's `transcribe()`.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Spoken language code (`None`: detect on multilingual models, `en` otherwise).
    pub language: Option<String>,
    /// Translate to English instead of transcribing.
    pub translate: bool,
    /// Beam width (1 = greedy).
    pub beam_size: usize,
    /// Samples per temperature > 0.
    pub best_of: usize,
    /// Beam patience.
    pub patience: f32,
    /// Length penalty.
    pub length_penalty: f32,
    /// Fallback temperatures, tried in order.
    pub temperatures: Vec<f32>,
    /// Gzip compression-ratio threshold (too repetitive above it).
    pub compression_ratio_threshold: Option<f32>,
    /// Average log-prob threshold.
    pub log_prob_threshold: Option<f32>,
    /// No-speech probability threshold.
    pub no_speech_threshold: Option<f32>,
    /// Feed the previous window's text as a prompt.
    pub condition_on_previous_text: bool,
    /// Drop the prompt after a window decoded above this temperature.
    pub prompt_reset_on_temperature: f32,
    /// Text to condition the first window on.
    pub initial_prompt: Option<String>,
    /// Text the first window's transcript must begin with (faster-whisper's `prefix`):
    /// tokenised with a leading space, preceded by `<|0.00|>` with timestamps, and
    /// forced after the task tokens (see [`super::decode::generate`]). The returned segments hold only
    /// what the decoder continues with, not the prefix itself. Later windows do not
    /// get it. At most `MAX_LENGTH / 2 - 1` tokens.
    pub prefix: Option<String>,
    /// At most this many tokens generated per window (faster-whisper's
    /// `max_new_tokens`); `None` = up to half the decoder context (224). A decode that
    /// reaches it ends there (a repetition loop stops early; the fallback rules still
    /// judge the text).
    pub max_new_tokens: Option<usize>,
    /// Suppress blank and EOT at the first step.
    pub suppress_blank: bool,
    /// Suppressed tokens (`-1` = non-speech symbols).
    pub suppress_tokens: Vec<i64>,
    /// Decode without timestamp tokens (one segment per window).
    pub without_timestamps: bool,
    /// Largest first timestamp, seconds.
    pub max_initial_timestamp: f32,
    /// Seed of the sampler used at temperature > 0.
    pub seed: u64,
    /// Windows whose audio RMS is below this (digital or near silence, -60 dBFS by
    /// default) are skipped without decoding. Not in faster-whisper, which on pure
    /// silence often accepts a confident hallucination (" You": no-speech prob 0.94
    /// but avg log-prob -0.77 > -1); `None` restores its behaviour.
    pub silence_rms_threshold: Option<f32>,
    /// Reduced audio context, whisper.cpp's `--audio-ctx`: the encoder runs on this
    /// many positions (20 ms of audio each, at most `n_audio_ctx` = 1500) instead of the
    /// whole 30 s window, and the decoder attends to them only. The log-mel features are
    /// still computed and normalised on the whole window; windows then cover at most
    /// `2 × audio_ctx` frames of audio (seek advances by no more). A speed/accuracy
    /// trade-off: encoder time falls about linearly, but a context much tighter than the
    /// audio truncates or hallucinates. `None` (default) = the full window.
    pub audio_ctx: Option<usize>,
    /// What a reduced `audio_ctx` does with the positions past it.
    pub audio_ctx_mode: AudioCtxMode,
    /// Cancellation flag, read between encoder layers, decoder steps and windows: once
    /// it is set the transcription returns [`WhisperError::Cancelled`] promptly.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            translate: false,
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: 1.0,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            prefix: None,
            max_new_tokens: None,
            suppress_blank: true,
            suppress_tokens: vec![-1],
            without_timestamps: false,
            max_initial_timestamp: 1.0,
            seed: 0,
            silence_rms_threshold: Some(1e-3),
            audio_ctx: None,
            audio_ctx_mode: AudioCtxMode::Truncate,
            cancel: None,
        }
    }
}

/// What a reduced audio context ([`TranscribeOptions::audio_ctx`]) does with the
/// encoder positions past it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AudioCtxMode {
    /// Drop them, as whisper.cpp's `--audio-ctx`: encoder and decoder see `audio_ctx`
    /// positions only. Fastest, but Whisper was trained on 30 s windows and often
    /// repeats the last words or loses punctuation when the window ends right after
    /// the speech.
    #[default]
    Truncate,
    /// Keep the 30 s window: the positions past `audio_ctx` hold the encoder states of
    /// an all-silence window (computed once per model, see
    /// [`WhisperModel::encode_padded`]), so the decoder still sees 1500 positions
    /// ending in silence. Costs a little more attention than `Truncate` (each
    /// computed position attends to 1500) and ~40 MB (tiny) of cached states; windows
    /// cover at most `2 × audio_ctx - 2` frames of audio.
    Silence,
}

/// One transcribed segment (faster-whisper `Segment`).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// 1-based index.
    pub id: usize,
    /// Mel frame at which its window started.
    pub seek: usize,
    /// Start time, seconds.
    pub start: f64,
    /// End time, seconds.
    pub end: f64,
    /// Decoded text (with its leading space, as Whisper produces it).
    pub text: String,
    /// Token ids (text and timestamp tokens).
    pub tokens: Vec<u32>,
    /// Temperature of the accepted decoding.
    pub temperature: f32,
    /// Average log-probability per token of the window's decoding.
    pub avg_logprob: f32,
    /// Gzip compression ratio of the window's text.
    pub compression_ratio: f32,
    /// Probability of no speech in the window.
    pub no_speech_prob: f32,
}

/// Summary of a transcription.
#[derive(Debug, Clone, Default)]
pub struct TranscriptionInfo {
    /// Language used.
    pub language: String,
    /// Its probability (1 when given).
    pub language_probability: f32,
    /// Audio duration, seconds.
    pub duration: f64,
    /// Number of 30 s windows decoded (including skipped silent ones).
    pub windows: usize,
    /// Time spent in the feature extractor, seconds.
    pub features_s: f64,
    /// Time spent in the encoder (+ cross-attention K/V), seconds.
    pub encoder_s: f64,
    /// Time spent decoding, seconds.
    pub decoder_s: f64,
    /// Most samples held at once by the streaming feature extractor (bounded by one
    /// 30 s window plus context and one read chunk, whatever the duration).
    pub max_buffered_samples: usize,
}

/// A model plus its tokenizer and feature extractor, ready to transcribe (immutable;
/// each call creates its own decoder state).
pub struct Whisper {
    /// The network.
    pub model: Arc<WhisperModel>,
    /// The tokenizer.
    pub tokenizer: Arc<WhisperTokenizer>,
    mel: WhisperMel,
    /// Accelerators offered the encoder stage (empty: CPU only).
    delegates: Vec<Arc<dyn Delegate>>,
    /// Where the last encoder pass ran.
    last_encoder: std::sync::Mutex<Option<Executor>>,
    /// Where the decoder steps of the last window ran.
    last_decoder: std::sync::Mutex<Option<Executor>>,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("model", &self.model)
            .finish()
    }
}

/// gzip-style compression ratio of `text` (bytes / zlib-compressed bytes), as
/// faster-whisper's `get_compression_ratio`.
pub fn compression_ratio(text: &str) -> f32 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(bytes);
    let n = enc.finish().map(|v| v.len()).unwrap_or(bytes.len());
    bytes.len() as f32 / n.max(1) as f32
}

impl Whisper {
    /// Loads a hark Whisper model directory.
    pub fn load(dir: &Path, precision: Precision) -> Result<Self> {
        if !dir.is_dir() {
            return Err(WhisperError::Config {
                path: dir.into(),
                msg: "model directory not found".into(),
            });
        }
        let model = WhisperModel::load(dir, precision)?;
        let tokenizer = WhisperTokenizer::from_file(dir.join(&model.config.tokenizer))
            .map_err(|e| WhisperError::Tokenizer(e.to_string()))?;
        let mel =
            WhisperMel::new(model.dims().n_mels).map_err(|e| WhisperError::Audio(e.to_string()))?;
        Ok(Whisper {
            model: Arc::new(model),
            tokenizer: Arc::new(tokenizer),
            mel,
            delegates: Vec::new(),
            last_encoder: std::sync::Mutex::new(None),
            last_decoder: std::sync::Mutex::new(None),
        })
    }

    /// Offers the encoder stage and the decoder (a session per transcription, see
    /// [`Self::new_decoder_state`]) to `delegates` (e.g. the GPU delegate built for this
    /// model directory) before the CPU: the first that accepts runs it
    /// (`StageKind::Encoder`, model `"whisper"`, input `"mel"` `[n_mels, 3000]`, output
    /// `[1500 × d_model]` after `ln_post`).
    pub fn set_delegates(&mut self, delegates: Vec<Arc<dyn Delegate>>) {
        self.delegates = delegates;
    }

    /// Where the most recent encoder pass ran (`None` before the first).
    pub fn last_encoder_executor(&self) -> Option<Executor> {
        self.last_encoder.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// Where the decoder steps of the most recently decoded window ran (`None` before
    /// the first).
    pub fn last_decoder_executor(&self) -> Option<Executor> {
        self.last_decoder.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// A decoder state for `max_beams` rows whose decoder runs on the first delegate that
    /// offers a session for it ([`hark_engine::delegate::Delegate::decoder_session`]),
    /// else on the CPU.
    pub fn new_decoder_state(&self, max_beams: usize) -> Result<DecoderState> {
        let mut st = self.model.new_state(max_beams);
        if !self.delegates.is_empty() {
            let list: Vec<&dyn Delegate> = self.delegates.iter().map(|d| d.as_ref()).collect();
            let request = SessionRequest {
                model: "whisper",
                max_beams: st.max_beams(),
                max_len: self.model.dims().n_text_ctx,
            };
            let session = open_decoder_session(&list, &request)
                .map_err(|e| WhisperError::Invalid(format!("opening a decoder session: {e}")))?;
            if let Some(s) = session {
                st.attach_session(s);
            }
        }
        Ok(st)
    }

    /// The encoder of one window, on the first delegate that accepts it, else the CPU,
    /// and its cross-attention K/V into `st`. A reduced audio context (see
    /// [`TranscribeOptions::audio_ctx`]) runs on the CPU: the delegates take the full
    /// window's shape only.
    fn encode_into(
        &self,
        st: &mut DecoderState,
        mel: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<()> {
        let n = self.model.audio_ctx(opts.audio_ctx)?;
        let cancel = opts.cancel.as_deref();
        if n < self.model.dims().n_audio_ctx && opts.audio_ctx_mode == AudioCtxMode::Silence {
            let enc = self.model.encode_padded(mel, n, cancel)?;
            if let Ok(mut e) = self.last_encoder.lock() {
                *e = Some(Executor::Cpu);
            }
            return self.model.set_audio_padded(st, &enc);
        }
        let enc = self.encode(mel, opts.audio_ctx, cancel)?;
        self.model.set_audio(st, &enc)
    }

    /// Audio frames one window covers under `opts`' audio context.
    fn window_frames(&self, opts: &TranscribeOptions) -> Result<usize> {
        let n = self.model.audio_ctx(opts.audio_ctx)?;
        Ok(
            if n < self.model.dims().n_audio_ctx && opts.audio_ctx_mode == AudioCtxMode::Silence {
                // the frames the silence positions' convolutions read stay padding
                (INPUT_STRIDE * n).saturating_sub(2).max(1)
            } else {
                N_FRAMES.min(INPUT_STRIDE * n)
            },
        )
    }

    /// The encoder of one window, on the first delegate that accepts it, else the CPU.
    fn encode(
        &self,
        mel: &[f32],
        audio_ctx: Option<usize>,
        cancel: Option<&AtomicBool>,
    ) -> Result<EncoderOutput> {
        let dm = self.model.dims();
        let reduced = self.model.audio_ctx(audio_ctx)? < dm.n_audio_ctx;
        if self.delegates.is_empty() || reduced {
            let out = self.model.encode_with(mel, audio_ctx, cancel)?;
            if let Ok(mut e) = self.last_encoder.lock() {
                *e = Some(Executor::Cpu);
            }
            return Ok(out);
        }
        check_cancel(cancel)?;
        let frames = dm.n_audio_ctx;
        let shape = [dm.n_mels, self.model.n_frames()];
        let stage = Stage {
            kind: StageKind::Encoder,
            model: "whisper",
            inputs: &[("mel", &shape[..], mel)],
        };
        let mut data = vec![0f32; frames * dm.n_audio_state];
        let mut cpu_err = None;
        let executor = run_stage(
            &self
                .delegates
                .iter()
                .map(|d| d.as_ref())
                .collect::<Vec<_>>(),
            &stage,
            &mut [&mut data],
            |_, out| {
                match self.model.encode_with(mel, None, cancel) {
                    Ok(e) => out[0].copy_from_slice(&e.data),
                    Err(e) => cpu_err = Some(e),
                }
                Ok(())
            },
        )?;
        if let Some(e) = cpu_err {
            return Err(e);
        }
        if let Ok(mut e) = self.last_encoder.lock() {
            *e = Some(executor);
        }
        Ok(EncoderOutput { data, frames })
    }

    /// The special token ids of this model.
    pub fn special_tokens(&self) -> SpecialTokens {
        let t = &self.tokenizer;
        SpecialTokens {
            eot: t.eot(),
            sot: t.sot(),
            no_timestamps: t.no_timestamps(),
            no_speech: t.no_speech(),
            timestamp_begin: t.timestamp_begin(),
            timestamp_end: self.model.dims().n_vocab as u32 - 1,
        }
    }

    /// faster-whisper's `get_suppressed_tokens`.
    fn suppressed_tokens(&self, list: &[i64]) -> Vec<u32> {
        let t = &self.tokenizer;
        let mut out: Vec<u32> = list
            .iter()
            .filter(|&&x| x >= 0)
            .map(|&x| x as u32)
            .collect();
        if list.contains(&-1) {
            out.extend(t.non_speech_tokens());
        }
        out.extend([
            t.transcribe(),
            t.translate(),
            t.sot(),
            t.sot_prev(),
            t.sot_lm(),
            t.no_speech(),
        ]);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Computes the log-mel features of 16 kHz mono samples (faster-whisper padding).
    pub fn features(&self, samples: &[f32]) -> Result<LogMel> {
        self.mel
            .compute(samples, FASTER_WHISPER_PADDING)
            .map_err(|e| WhisperError::Audio(e.to_string()))
    }

    /// Detects the language on the window at `seek` (multilingual models): returns the
    /// code and its probability.
    pub fn detect_language(&self, mel: &LogMel, seek: usize) -> Result<(String, f32)> {
        self.detect_language_window(&mel.segment(seek), &TranscribeOptions::default())
    }

    fn detect_language_window(
        &self,
        seg: &LogMel,
        opts: &TranscribeOptions,
    ) -> Result<(String, f32)> {
        let lang_ids = &self.model.config.lang_ids;
        if lang_ids.is_empty() {
            return Ok(("en".into(), 1.0));
        }
        let mut st = self.model.new_state(1);
        self.encode_into(&mut st, &seg.data, opts)?;
        self.model
            .decode_step(&mut st, &[self.tokenizer.sot()], DecodeRows::Shared)?;
        let lg = self.model.step_logits(&mut st, 0, 1)?;
        let vals: Vec<f32> = lang_ids.iter().map(|&i| lg[i as usize]).collect();
        let max = vals.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let sum: f32 = vals.iter().map(|v| (v - max).exp()).sum();
        let (bi, bv) =
            vals.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |a, (i, &v)| if v > a.1 { (i, v) } else { a },
            );
        let code = self
            .tokenizer
            .language_of_token(lang_ids[bi])
            .ok_or_else(|| {
                WhisperError::Tokenizer(format!("token {} is not a language", lang_ids[bi]))
            })?;
        Ok((code.to_string(), (bv - max).exp() / sum))
    }

    /// Transcribes 16 kHz mono samples; each segment is passed to `sink` as soon as its
    /// window is decoded. Same as [`Whisper::transcribe_stream`] over the slice.
    pub fn transcribe(
        &self,
        samples: &[f32],
        opts: &TranscribeOptions,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<TranscriptionInfo> {
        self.transcribe_stream(&mut SliceSource::new(samples), opts, sink)
    }

    /// Transcribes a chunked sample source in bounded memory: log-mel features are
    /// computed window by window ([`StreamMel`]) and only the samples of the current
    /// 30 s window plus a little context are held, whatever the duration. The output
    /// equals [`Whisper::transcribe_mel`] on the whole signal's features. The source is
    /// read twice (see [`SampleSource`]).
    pub fn transcribe_stream(
        &self,
        source: &mut dyn SampleSource,
        opts: &TranscribeOptions,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<TranscriptionInfo> {
        let mut info = TranscriptionInfo::default();
        let t0 = std::time::Instant::now();
        let mut mel = StreamMel::new(&self.mel, source)?;
        info.features_s = t0.elapsed().as_secs_f64();
        info.duration = mel.len as f64 / 16000.0;
        if mel.len == 0 {
            return Ok(info);
        }
        self.transcribe_features(&mut mel, opts, &mut info, sink)?;
        info.features_s += mel.spent;
        info.max_buffered_samples = mel.max_buffered;
        Ok(info)
    }

    /// Transcribes precomputed features (see [`Whisper::transcribe`]).
    pub fn transcribe_mel(
        &self,
        mel: &LogMel,
        opts: &TranscribeOptions,
        info: &mut TranscriptionInfo,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<()> {
        let mut mel = mel;
        self.transcribe_features(&mut mel, opts, info, sink)
    }

    fn transcribe_features(
        &self,
        mel: &mut dyn Features,
        opts: &TranscribeOptions,
        info: &mut TranscriptionInfo,
        sink: &mut dyn FnMut(&Segment),
    ) -> Result<()> {
        if opts.beam_size == 0 || opts.best_of == 0 || opts.temperatures.is_empty() {
            return Err(WhisperError::Invalid(
                "beam size, best-of and the temperature list must be non-empty".into(),
            ));
        }
        // Frames of audio one window covers: the whole window, or what a reduced audio
        // context encodes.
        let window_frames = self.window_frames(opts)?;
        let cancel = opts.cancel.as_deref();
        let tok = &self.tokenizer;
        let sp = self.special_tokens();
        let multilingual = tok.is_multilingual();
        let language = match (&opts.language, multilingual) {
            (_, false) => {
                info.language_probability = 1.0;
                "en".to_string()
            }
            (Some(l), true) => {
                info.language_probability = 1.0;
                l.clone()
            }
            (None, true) => {
                let t = std::time::Instant::now();
                let (l, p) = self.detect_language_window(
                    &mel.window(0, window_frames.min(mel.content_frames()))?,
                    opts,
                )?;
                info.encoder_s += t.elapsed().as_secs_f64();
                info.language_probability = p;
                l
            }
        };
        info.language = language.clone();
        let task = if opts.translate {
            Task::Translate
        } else {
            Task::Transcribe
        };
        let sot_sequence = tok
            .sot_sequence(
                if multilingual {
                    Some(language.as_str())
                } else {
                    None
                },
                task,
            )
            .map_err(|e| WhisperError::Tokenizer(e.to_string()))?;
        let suppress = self.suppressed_tokens(&opts.suppress_tokens);
        let gen_base = GenerateOptions {
            beam_size: opts.beam_size,
            patience: opts.patience,
            length_penalty: opts.length_penalty,
            max_length: MAX_LENGTH,
            max_new_tokens: opts.max_new_tokens,
            suppress_tokens: suppress,
            begin_suppress_tokens: if opts.suppress_blank {
                self.model.config.begin_suppress_tokens.clone()
            } else {
                Vec::new()
            },
            max_initial_timestamp_index: (opts.max_initial_timestamp as f64 / TIME_PRECISION)
                .round() as u32,
            seed: opts.seed,
            cancel: opts.cancel.clone(),
            ..Default::default()
        };
        let content_frames = mel.content_frames();
        let mut all_tokens: Vec<u32> = Vec::new();
        if let Some(p) = &opts.initial_prompt {
            all_tokens.extend(tok.encode(&format!(" {}", p.trim())));
        }
        // The forced prefix of the first window (faster-whisper `get_prompt`).
        let mut prefix_tokens: Vec<u32> = Vec::new();
        if let Some(p) = opts
            .prefix
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if !opts.without_timestamps {
                prefix_tokens.push(sp.timestamp_begin);
            }
            prefix_tokens.extend(tok.encode(&format!(" {p}")));
            if prefix_tokens.len() >= MAX_LENGTH / 2 {
                return Err(WhisperError::Invalid(format!(
                    "the decoder prefix has {} tokens, more than {}",
                    prefix_tokens.len(),
                    MAX_LENGTH / 2 - 1
                )));
            }
        }
        let mut prompt_reset_since = 0usize;
        // A silence-padded reduced audio context decodes on the CPU (the session has no
        // padded cross-attention K/V), so no device session is opened for it.
        let rows = opts.beam_size.max(opts.best_of);
        let padded = self.model.audio_ctx(opts.audio_ctx)? < self.model.dims().n_audio_ctx
            && opts.audio_ctx_mode == AudioCtxMode::Silence;
        let mut st = if padded {
            self.model.new_state(rows)
        } else {
            self.new_decoder_state(rows)?
        };
        let mut seek = 0usize;
        let mut idx = 0usize;
        while seek < content_frames {
            check_cancel(cancel)?;
            info.windows += 1;
            let time_offset = seek as f64 * TIME_PER_FRAME;
            let segment_size = window_frames.min(content_frames - seek);
            let segment_duration = segment_size as f64 * TIME_PER_FRAME;
            if let (Some(th), Some(rms)) =
                (opts.silence_rms_threshold, mel.rms(seek, segment_size)?)
            {
                if rms < th {
                    seek += segment_size;
                    continue;
                }
            }
            let window = mel.window(seek, segment_size)?;
            let t = std::time::Instant::now();
            self.encode_into(&mut st, &window.data, opts)?;
            info.encoder_s += t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let previous = &all_tokens[prompt_reset_since..];
            let mut prompt = Vec::new();
            if !previous.is_empty() {
                prompt.push(tok.sot_prev());
                let keep = MAX_LENGTH / 2 - 1;
                prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
            }
            prompt.extend_from_slice(&sot_sequence);
            if opts.without_timestamps {
                prompt.push(sp.no_timestamps);
            }
            let forced: &[u32] = if seek == 0 { &prefix_tokens } else { &[] };
            prompt.extend_from_slice(forced);
            let (mut result, avg_logprob, temperature, cr) =
                self.generate_with_fallback(&mut st, &prompt, forced.len(), &sp, &gen_base, opts)?;
            info.decoder_s += t.elapsed().as_secs_f64();
            if let Ok(mut e) = self.last_decoder.lock() {
                *e = Some(st.executor());
            }
            if let Some(nst) = opts.no_speech_threshold {
                let mut skip = result.no_speech_prob > nst;
                if opts.log_prob_threshold.is_some_and(|lpt| avg_logprob > lpt) {
                    skip = false;
                }
                if skip {
                    seek += segment_size;
                    continue;
                }
            }
            let previous_seek = seek;
            // Split the whole sequence (a forced prefix opens the first piece with its
            // timestamp), then drop the prefix from the pieces' tokens.
            if !forced.is_empty() {
                result.tokens.splice(0..0, forced.iter().copied());
            }
            let (pieces, new_seek) = split_by_timestamps(
                &result.tokens,
                sp.timestamp_begin,
                time_offset,
                segment_size,
                segment_duration,
                seek,
            );
            // Guard against a window that does not advance (cannot happen with the
            // timestamp rules, but a stuck loop would never end).
            seek = if new_seek <= seek {
                seek + segment_size
            } else {
                new_seek
            };
            let mut skip = forced.len();
            for (start, end, mut tokens) in pieces {
                let k = skip.min(tokens.len());
                skip -= k;
                // The prefix conditions later windows as the text before it does.
                all_tokens.extend(tokens.drain(..k));
                let text = tok.decode(&tokens);
                if start == end || text.trim().is_empty() {
                    continue;
                }
                all_tokens.extend_from_slice(&tokens);
                idx += 1;
                let seg = Segment {
                    id: idx,
                    seek: previous_seek,
                    start,
                    end,
                    text,
                    tokens,
                    temperature,
                    avg_logprob,
                    compression_ratio: cr,
                    no_speech_prob: result.no_speech_prob,
                };
                sink(&seg);
            }
            if !opts.condition_on_previous_text || temperature > opts.prompt_reset_on_temperature {
                prompt_reset_since = all_tokens.len();
            }
        }
        Ok(())
    }

    fn generate_with_fallback(
        &self,
        st: &mut DecoderState,
        prompt: &[u32],
        forced: usize,
        sp: &SpecialTokens,
        base: &GenerateOptions,
        opts: &TranscribeOptions,
    ) -> Result<(Generation, f32, f32, f32)> {
        let mut all: Vec<(Generation, f32, f32, f32)> = Vec::new();
        let mut below_cr: Vec<usize> = Vec::new();
        let mut last_t = 0.0;
        for (ti, &temperature) in opts.temperatures.iter().enumerate() {
            last_t = temperature;
            let mut g = base.clone();
            if temperature > 0.0 {
                g.beam_size = 1;
                g.num_hypotheses = opts.best_of;
                g.sampling_temperature = temperature;
                g.seed = base.seed.wrapping_add(ti as u64);
            } else {
                g.num_hypotheses = 1;
            }
            let result = generate(&self.model, st, prompt, sp, &g)?;
            // The score covers a forced prefix too.
            let seq_len = (forced + result.tokens.len()) as f32;
            let cum = result.score * seq_len.powf(opts.length_penalty);
            let avg_logprob = cum / (seq_len + 1.0);
            let text = self.tokenizer.decode(&result.tokens);
            let cr = compression_ratio(text.trim());
            let mut needs_fallback = false;
            if let Some(th) = opts.compression_ratio_threshold {
                if cr > th {
                    needs_fallback = true;
                } else {
                    below_cr.push(all.len());
                }
            }
            if opts.log_prob_threshold.is_some_and(|th| avg_logprob < th) {
                needs_fallback = true;
            }
            if let (Some(nst), Some(lpt)) = (opts.no_speech_threshold, opts.log_prob_threshold) {
                if result.no_speech_prob > nst && avg_logprob < lpt {
                    needs_fallback = false;
                }
            }
            all.push((result, avg_logprob, temperature, cr));
            if !needs_fallback {
                return Ok(all.pop().unwrap_or_else(unreachable_result));
            }
        }
        let pool: Vec<usize> = if below_cr.is_empty() {
            (0..all.len()).collect()
        } else {
            below_cr
        };
        let best = pool.into_iter().fold(None::<usize>, |b, i| match b {
            Some(j) if all[j].1 >= all[i].1 => Some(j),
            _ => Some(i),
        });
        let mut r = all.swap_remove(best.unwrap_or(0));
        r.2 = last_t;
        Ok(r)
    }
}

/// Source of 30 s feature windows. Windows are requested at non-decreasing `seek`.
trait Features {
    /// faster-whisper's `content_frames`.
    fn content_frames(&self) -> usize;
    /// Frames `[seek, seek + size)` zero-padded to 3000.
    fn window(&mut self, seek: usize, size: usize) -> Result<LogMel>;
    /// RMS of the audio under frames `[seek, seek + size)`, when the samples are known.
    fn rms(&mut self, _seek: usize, _size: usize) -> Result<Option<f32>> {
        Ok(None)
    }
}

impl Features for &LogMel {
    fn content_frames(&self) -> usize {
        LogMel::content_frames(self)
    }
    fn window(&mut self, seek: usize, size: usize) -> Result<LogMel> {
        Ok(self.slice_padded(seek, size, N_FRAMES))
    }
}

/// A source of 16 kHz mono samples in `[-1, 1]`, read chunk by chunk.
///
/// [`Whisper::transcribe_stream`] reads it twice: a first pass finds the loudest
/// log-mel value of the whole signal (faster-whisper clamps every value to that
/// maximum − 8, i.e. 80 dB below it, so exact features need it before the first
/// window), then [`SampleSource::rewind`] and a second pass decodes.
pub trait SampleSource {
    /// Appends up to `max` samples to `out` and returns how many were appended; 0
    /// means the end of the signal.
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize>;
    /// Restarts from the first sample.
    fn rewind(&mut self) -> Result<()>;
}

/// A [`SampleSource`] over samples already in memory.
#[derive(Debug, Clone)]
pub struct SliceSource<'a> {
    samples: &'a [f32],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    /// Reads `samples` from the start.
    pub fn new(samples: &'a [f32]) -> Self {
        SliceSource { samples, pos: 0 }
    }
}

impl SampleSource for SliceSource<'_> {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        let n = max.min(self.samples.len() - self.pos);
        out.extend_from_slice(&self.samples[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
    fn rewind(&mut self) -> Result<()> {
        self.pos = 0;
        Ok(())
    }
}

/// A [`SampleSource`] streaming an audio file (any format hark-audio decodes) as
/// 16 kHz mono through [`hark_audio::FileReader`]; [`SampleSource::rewind`] re-opens
/// the file. Memory stays bounded whatever the file's duration.
#[derive(Debug)]
pub struct FileSource {
    path: std::path::PathBuf,
    reader: hark_audio::FileReader,
}

impl FileSource {
    /// Opens `path` (decoding its first block, so missing or non-audio files fail here).
    pub fn open(path: &Path) -> Result<Self> {
        let reader = hark_audio::FileReader::open(path, 16000)
            .map_err(|e| WhisperError::Audio(e.to_string()))?;
        Ok(FileSource {
            path: path.to_path_buf(),
            reader,
        })
    }
}

impl SampleSource for FileSource {
    fn read(&mut self, out: &mut Vec<f32>, max: usize) -> Result<usize> {
        self.reader
            .read(out, max)
            .map_err(|e| WhisperError::Audio(e.to_string()))
    }
    fn rewind(&mut self) -> Result<()> {
        if self.reader.samples_read() > 0 {
            *self = FileSource::open(&self.path)?;
        }
        Ok(())
    }
}

const HOP: usize = 160;
/// Frames of STFT context kept on each side of a block of frames.
const CTX_FRAMES: usize = 2;
/// Samples requested from the source per read (10 s).
const READ_CHUNK: usize = 160_000;

/// Log-mel features computed one window at a time from a [`SampleSource`], equal to
/// the whole-file computation (faster-whisper: STFT of the file + 160 zeros, clamped to
/// the global max − 8).
///
/// Each block's STFT runs on its samples plus [`CTX_FRAMES`] hops of context on each
/// side (the context frames are dropped, so every kept frame sees exactly the samples
/// it sees in the whole-file STFT). The global max comes from a first pass over the
/// source in 3000-frame blocks. Only the samples from the current window's start
/// (minus context) onwards are buffered; earlier ones are dropped as `seek` advances,
/// so memory does not grow with the duration.
/// Caveat: the first pass takes each block's max over its kept frames after the
/// block's own clamp; it equals the true global max unless a dropped context frame is
/// more than 80 dB louder than every kept frame of its block (not seen in practice).
struct StreamMel<'a> {
    mel: &'a WhisperMel,
    src: &'a mut dyn SampleSource,
    /// Samples `[start, start + buf.len())` of the signal.
    buf: Vec<f32>,
    start: usize,
    eof: bool,
    /// Signal length in samples (known after the first pass).
    len: usize,
    n_frames: usize,
    floor: f32,
    spent: f64,
    max_buffered: usize,
}

impl<'a> StreamMel<'a> {
    fn new(mel: &'a WhisperMel, src: &'a mut dyn SampleSource) -> Result<Self> {
        let mut w = StreamMel {
            mel,
            src,
            buf: Vec::new(),
            start: 0,
            eof: false,
            len: usize::MAX,
            n_frames: usize::MAX,
            floor: f32::NEG_INFINITY,
            spent: 0.0,
            max_buffered: 0,
        };
        w.src.rewind()?;
        let mut gmax = f32::NEG_INFINITY;
        let mut f = 0;
        loop {
            // One sample more than the block reads, to know whether it ends the signal.
            w.fill((f + N_FRAMES + CTX_FRAMES) * HOP + 1)?;
            if w.eof {
                w.set_len(w.start + w.buf.len());
            }
            if f >= w.n_frames || w.len == 0 {
                break;
            }
            let n = N_FRAMES.min(w.n_frames - f);
            let block = w.frames(f, n)?;
            gmax = gmax.max(block.data.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)));
            f += n;
            w.drop_before(f.saturating_sub(CTX_FRAMES) * HOP);
        }
        // normalized value of the global floor: ((max - 8) + 4) / 4 with max = 4y - 4
        w.floor = ((4.0 * gmax - 4.0) - 8.0 + 4.0) / 4.0;
        let first_len = w.len;
        w.src.rewind()?;
        w.buf.clear();
        w.start = 0;
        w.eof = false;
        w.len = first_len;
        Ok(w)
    }

    fn set_len(&mut self, len: usize) {
        self.len = len;
        self.n_frames = WhisperMel::num_frames(len, FASTER_WHISPER_PADDING);
    }

    /// Reads until the buffer reaches absolute sample `upto` or the source ends.
    fn fill(&mut self, upto: usize) -> Result<()> {
        while !self.eof && self.start + self.buf.len() < upto {
            let before = self.buf.len();
            let n = self.src.read(&mut self.buf, READ_CHUNK)?;
            if self.buf[before..].iter().any(|x| !x.is_finite()) {
                return Err(WhisperError::Audio(
                    "the audio contains NaN or infinite samples".into(),
                ));
            }
            if n == 0 {
                self.eof = true;
                let end = self.start + self.buf.len();
                if self.len != usize::MAX && end != self.len {
                    return Err(WhisperError::Audio(format!(
                        "the audio source gave {end} samples on its second pass, {} on its first",
                        self.len
                    )));
                }
            }
            self.max_buffered = self.max_buffered.max(self.buf.len());
        }
        Ok(())
    }

    /// Forgets samples before absolute index `at`.
    fn drop_before(&mut self, at: usize) {
        if at > self.start {
            let k = (at - self.start).min(self.buf.len());
            self.buf.drain(..k);
            self.start += k;
        }
    }

    /// Samples `[a, b)` (clipped to the signal), which must still be buffered.
    fn samples(&mut self, a: usize, b: usize) -> Result<&[f32]> {
        self.fill(b)?;
        let end = self.start + self.buf.len();
        let (a, b) = (a.min(end), b.min(end));
        if a < self.start {
            return Err(WhisperError::Invalid(format!(
                "streaming features: sample {a} requested after the window moved past it ({})",
                self.start
            )));
        }
        Ok(&self.buf[a - self.start..b - self.start])
    }

    /// Frames `[f0, f0 + n)` normalized with their own block's clamp.
    fn frames(&mut self, f0: usize, n: usize) -> Result<LogMel> {
        let start_frame = f0.saturating_sub(CTX_FRAMES);
        let len = self.len;
        let mel = self.mel;
        let x = self.samples(start_frame * HOP, (f0 + n + CTX_FRAMES) * HOP)?;
        let at_end = start_frame * HOP + x.len() >= len;
        let padding = if at_end { FASTER_WHISPER_PADDING } else { 0 };
        let full = mel
            .compute(x, padding)
            .map_err(|e| WhisperError::Audio(e.to_string()))?;
        let skip = f0 - start_frame;
        let nm = full.n_mels;
        let mut data = vec![0f32; nm * n];
        for m in 0..nm {
            for t in 0..n {
                let src = skip + t;
                data[m * n + t] = if src < full.n_frames {
                    full.data[m * full.n_frames + src]
                } else {
                    0.0
                };
            }
        }
        Ok(LogMel {
            data,
            n_mels: nm,
            n_frames: n,
        })
    }
}

impl Features for StreamMel<'_> {
    fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(1)
    }
    fn window(&mut self, seek: usize, size: usize) -> Result<LogMel> {
        let t = std::time::Instant::now();
        self.drop_before(seek.saturating_sub(CTX_FRAMES) * HOP);
        let size = size.min(self.n_frames.saturating_sub(seek));
        let mut w = self.frames(seek, size)?;
        for v in &mut w.data {
            *v = v.max(self.floor);
        }
        let out = w.pad_or_trim(N_FRAMES);
        self.spent += t.elapsed().as_secs_f64();
        Ok(out)
    }
    fn rms(&mut self, seek: usize, size: usize) -> Result<Option<f32>> {
        self.drop_before(seek.saturating_sub(CTX_FRAMES) * HOP);
        let x = self.samples(seek * HOP, (seek + size) * HOP)?;
        if x.is_empty() {
            return Ok(Some(0.0));
        }
        let e: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        Ok(Some((e / x.len() as f64).sqrt() as f32))
    }
}

fn unreachable_result() -> (Generation, f32, f32, f32) {
    (
        Generation {
            tokens: Vec::new(),
            score: 0.0,
            no_speech_prob: 0.0,
        },
        0.0,
        0.0,
        0.0,
    )
}

/// faster-whisper `_split_segments_by_timestamps`: returns `(start, end, tokens)`
/// pieces and the next seek.
pub fn split_by_timestamps(
    tokens: &[u32],
    timestamp_begin: u32,
    time_offset: f64,
    segment_size: usize,
    segment_duration: f64,
    seek: usize,
) -> (Vec<(f64, f64, Vec<u32>)>, usize) {
    let is_ts = |t: u32| t >= timestamp_begin;
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts(tokens[n - 2]) && is_ts(tokens[n - 1]);
    let consecutive: Vec<usize> = (1..n)
        .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
        .collect();
    let mut out = Vec::new();
    let mut seek = seek;
    if !consecutive.is_empty() {
        let mut slices = consecutive;
        if single_timestamp_ending {
            slices.push(n);
        }
        let mut last = 0;
        for &cur in &slices {
            let piece = tokens[last..cur].to_vec();
            let s = (piece[0] - timestamp_begin) as f64;
            let e = (piece[piece.len() - 1] - timestamp_begin) as f64;
            out.push((
                time_offset + s * TIME_PRECISION,
                time_offset + e * TIME_PRECISION,
                piece,
            ));
            last = cur;
        }
        if single_timestamp_ending {
            seek += segment_size;
        } else {
            let pos = (tokens[last - 1] - timestamp_begin) as usize;
            seek += pos * INPUT_STRIDE;
        }
    } else {
        let mut duration = segment_duration;
        if let Some(&lt) = tokens.iter().rev().find(|&&t| is_ts(t)) {
            if lt != timestamp_begin {
                duration = (lt - timestamp_begin) as f64 * TIME_PRECISION;
            }
        }
        out.push((time_offset, time_offset + duration, tokens.to_vec()));
        seek += segment_size;
    }
    (out, seek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_ratio_of_repetitive_text_is_high() {
        let rep = "the the the the the the the the the the the the the the the the the the";
        assert!(compression_ratio(rep) > 2.4, "{}", compression_ratio(rep));
        assert!(compression_ratio("a short distinct sentence") < 2.4);
    }

    #[test]
    fn split_on_consecutive_timestamps_seeks_to_last_timestamp() {
        let tb = 50363;
        // <0.00> a b <1.00><1.00> c <2.00>  (no single timestamp ending: ends with ts after text)
        let toks = [tb, 1, 2, tb + 50, tb + 50, 3, tb + 100, tb + 100, 4];
        let (pieces, seek) = split_by_timestamps(&toks, tb, 10.0, 3000, 30.0, 1000);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].0, 10.0);
        assert!((pieces[0].1 - 11.0).abs() < 1e-9);
        assert!((pieces[1].1 - 12.0).abs() < 1e-9);
        assert_eq!(seek, 1000 + 100 * 2);
        // single timestamp ending: whole window consumed
        let toks = [tb, 1, tb + 50, tb + 50, 3, tb + 75];
        let (pieces, seek) = split_by_timestamps(&toks, tb, 0.0, 2500, 25.0, 0);
        assert_eq!(pieces.len(), 2);
        assert_eq!(seek, 2500);
    }
}
