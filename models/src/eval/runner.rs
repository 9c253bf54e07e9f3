//! The evaluation loop: transcribe every utterance, normalise, score, total.
//!
//! The model side is a closure (`&Utterance -> Transcription`), so this module knows
//! nothing about models or audio decoding; the caller (the `hark eval` command) turns
//! a model into that closure and fills the model-side report fields (model,
//! precision, threads, decoding options). Progress is pushed to a callback after each
//! utterance; a cancel flag is checked before each one, and a cancelled run still
//! returns a complete report of what was done.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, DatasetFormat, DatasetSummary, Utterance};
use super::normalize::Normalizer;
use super::score::{score_pair, AlignedToken, ErrorCounts};

/// What a transcriber returns for one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    /// Hypothesis text.
    pub text: String,
    /// Seconds of audio transcribed (for the real-time factor).
    pub audio_seconds: f64,
}

/// Error type transcribers return.
pub type TranscribeError = Box<dyn std::error::Error + Send + Sync>;

/// Evaluation options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOptions {
    /// Normaliser applied to references and hypotheses.
    pub normalizer: Normalizer,
    /// Evaluate at most this many utterances (dataset order).
    pub limit: Option<usize>,
}

/// Progress after one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress<'a> {
    /// Utterances done (including failed ones).
    pub done: usize,
    /// Utterances to do.
    pub total: usize,
    /// Id of the utterance just finished.
    pub id: &'a str,
    /// Running corpus WER.
    pub wer: f64,
    /// Audio seconds transcribed so far.
    pub audio_seconds: f64,
}

/// Result of one utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtteranceResult {
    /// Utterance id.
    pub id: String,
    /// Audio file.
    pub audio: PathBuf,
    /// Reference as in the dataset.
    pub reference: String,
    /// Hypothesis as transcribed (empty if transcription failed).
    pub hypothesis: String,
    /// Normalised reference.
    pub reference_normalized: String,
    /// Normalised hypothesis.
    pub hypothesis_normalized: String,
    /// Word counts.
    pub words: ErrorCounts,
    /// Character counts.
    pub chars: ErrorCounts,
    /// Word error rate of this utterance.
    pub wer: f64,
    /// Character error rate of this utterance.
    pub cer: f64,
    /// Word-by-word alignment, errors marked.
    pub alignment: Vec<AlignedToken>,
    /// Audio seconds.
    pub audio_seconds: f64,
    /// Transcription error; such utterances are not scored.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// A full evaluation report (serialisable to JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// hark version.
    pub hark_version: String,
    /// Model name (filled by the caller).
    pub model: String,
    /// Weight/compute precision (filled by the caller).
    pub precision: String,
    /// Threads used (filled by the caller).
    pub threads: usize,
    /// Decoding options (filled by the caller), e.g. `beam_size`.
    pub decoding: BTreeMap<String, String>,
    /// Dataset path.
    pub dataset: PathBuf,
    /// Dataset layout.
    pub format: DatasetFormat,
    /// Dataset problems.
    pub dataset_summary: DatasetSummary,
    /// Normaliser used.
    pub normalizer: Normalizer,
    /// Per-utterance results, in dataset order.
    pub utterances: Vec<UtteranceResult>,
    /// Scored utterances.
    pub scored: usize,
    /// Utterances whose transcription failed (not scored).
    pub failed: usize,
    /// `true` if the run was stopped before the end.
    pub cancelled: bool,
    /// Corpus word counts.
    pub words: ErrorCounts,
    /// Corpus character counts.
    pub chars: ErrorCounts,
    /// Corpus WER, (S+D+I)/N over all scored utterances.
    pub wer: f64,
    /// Corpus CER.
    pub cer: f64,
    /// Sentence error rate: share of scored utterances with any word error.
    pub ser: f64,
    /// Seconds of audio transcribed.
    pub audio_seconds: f64,
    /// Wall-clock seconds of the loop.
    pub wall_seconds: f64,
    /// Real-time factor: wall seconds / audio seconds.
    pub rtf: f64,
    /// Peak resident memory (VmHWM), bytes, where the OS tells it.
    pub peak_memory_bytes: Option<u64>,
    /// Seconds spent resolving and loading the model (filled by the caller; not in
    /// `wall_seconds`).
    #[serde(default)]
    pub model_load_seconds: f64,
    /// SIMD kernel level the engine ran (`generic`, `avx2`, `avx512`; filled by the
    /// caller).
    #[serde(default)]
    pub isa: String,
    /// Logical CPUs of the machine.
    #[serde(default)]
    pub cpus: usize,
}

impl EvalReport {
    /// Recompute totals and rates from `utterances` (after editing or merging).
    pub fn recompute_totals(&mut self) {
        let mut words = ErrorCounts::default();
        let mut chars = ErrorCounts::default();
        let (mut scored, mut failed, mut wrong) = (0, 0, 0);
        let mut audio = 0.0;
        for u in &self.utterances {
            audio += u.audio_seconds;
            if u.error.is_some() {
                failed += 1;
                continue;
            }
            scored += 1;
            words.add(&u.words);
            chars.add(&u.chars);
            if u.words.errors() > 0 {
                wrong += 1;
            }
        }
        self.words = words;
        self.chars = chars;
        self.scored = scored;
        self.failed = failed;
        self.wer = words.error_rate();
        self.cer = chars.error_rate();
        self.ser = if scored == 0 {
            0.0
        } else {
            wrong as f64 / scored as f64
        };
        self.audio_seconds = audio;
        self.rtf = if audio > 0.0 {
            self.wall_seconds / audio
        } else {
            0.0
        };
    }
}

/// Score one reference/hypothesis pair into an [`UtteranceResult`].
pub fn score_utterance(
    utt: &Utterance,
    hypothesis: &str,
    normalizer: Normalizer,
    audio_seconds: f64,
) -> UtteranceResult {
    let r = normalizer.apply(&utt.text);
    let h = normalizer.apply(hypothesis);
    let s = score_pair(&r, &h);
    UtteranceResult {
        id: utt.id.clone(),
        audio: utt.audio.clone(),
        reference: utt.text.clone(),
        hypothesis: hypothesis.to_string(),
        reference_normalized: r,
        hypothesis_normalized: h,
        wer: s.words.error_rate(),
        cer: s.chars.error_rate(),
        words: s.words,
        chars: s.chars,
        alignment: s.alignment,
        audio_seconds,
        error: None,
    }
}

/// Peak resident set size (VmHWM from `/proc/self/status`), bytes.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Evaluate `transcriber` on `dataset`.
pub fn evaluate(
    dataset: &Dataset,
    transcriber: &mut dyn FnMut(&Utterance) -> Result<Transcription, TranscribeError>,
    options: &EvalOptions,
    progress: &mut dyn FnMut(&Progress<'_>),
    cancel: &AtomicBool,
) -> EvalReport {
    let todo: Vec<&Utterance> = dataset
        .utterances
        .iter()
        .take(options.limit.unwrap_or(usize::MAX))
        .collect();
    let mut report = EvalReport {
        hark_version: env!("CARGO_PKG_VERSION").to_string(),
        model: String::new(),
        precision: String::new(),
        threads: 0,
        decoding: BTreeMap::new(),
        dataset: dataset.path.clone(),
        format: dataset.format,
        dataset_summary: dataset.summary.clone(),
        normalizer: options.normalizer,
        utterances: Vec::with_capacity(todo.len()),
        scored: 0,
        failed: 0,
        cancelled: false,
        words: ErrorCounts::default(),
        chars: ErrorCounts::default(),
        wer: 0.0,
        cer: 0.0,
        ser: 0.0,
        audio_seconds: 0.0,
        wall_seconds: 0.0,
        rtf: 0.0,
        peak_memory_bytes: None,
        model_load_seconds: 0.0,
        isa: String::new(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };
    let start = Instant::now();
    let mut running = ErrorCounts::default();
    let mut audio = 0.0;
    for (i, utt) in todo.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            report.cancelled = true;
            break;
        }
        let result = match transcriber(utt) {
            Ok(t) => score_utterance(utt, &t.text, options.normalizer, t.audio_seconds),
            Err(e) => {
                let mut r = score_utterance(utt, "", options.normalizer, 0.0);
                r.words = ErrorCounts::default();
                r.chars = ErrorCounts::default();
                r.alignment.clear();
                r.wer = 0.0;
                r.cer = 0.0;
                r.error = Some(e.to_string());
                r
            }
        };
        if result.error.is_none() {
            running.add(&result.words);
        }
        audio += result.audio_seconds;
        progress(&Progress {
            done: i + 1,
            total: todo.len(),
            id: &utt.id,
            wer: running.error_rate(),
            audio_seconds: audio,
        });
        report.utterances.push(result);
    }
    if report.utterances.len() < todo.len() && cancel.load(Ordering::Relaxed) {
        report.cancelled = true;
    }
    report.wall_seconds = start.elapsed().as_secs_f64();
    report.recompute_totals();
    report.peak_memory_bytes = peak_memory_bytes();
    report
}
