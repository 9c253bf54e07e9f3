//! `hark transcribe`: audio files (or directories of them) to text.
//!
//! Flags are validated once into a [`TranscribeOptions`]; the model is resolved through
//! the store (`ensure_model`: pulled on first use, with a progress bar), loaded once and
//! shared by every worker (the recognizer is immutable after loading; each call keeps
//! its decoding state on its own stack). Inputs are streamed through
//! [`crate::batch::run`]: `--jobs N` files in flight, one output per input under
//! `--output-dir` (written atomically, skipped when it exists unless `--overwrite`), or
//! stdout in input order (`txt`: one line per file; `json`: one JSON object per file and
//! line). A file that fails (cannot be decoded, ...) is reported at once and again in
//! the final list; the exit code is then 1 (130 after Ctrl-C).
//!
//! Threads: `--threads` (default: all cores, or `HARK_THREADS`) is the compute budget of
//! the whole run. The engine's shared pool runs one parallel op at a time and a job that
//! finds it busy computes on its own thread, so `J` jobs over a pool of `n` threads keep
//! at most `J + n - 1` threads busy; the pool is therefore sized `budget - J + 1` (at
//! least 1). With as many jobs as cores every job computes on its own single thread,
//! which is the most efficient split for many short files (no synchronisation at all).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::batch;
use hark_models::recognizer::Recognizer;

use crate::device::Device;
use hark_models::store::progress::{Progress, Unit};
use hark_models::whisper::{
    AudioCtxMode, Precision, Segment, TranscribeOptions, TranscriptionInfo,
};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Plain text.
    Txt,
    /// JSON with segments, tokens, log-probs and no-speech probabilities.
    Json,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// Tab-separated start, end (milliseconds) and text.
    Tsv,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Json => "json",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
            Format::Tsv => "tsv",
        }
    }
}

/// `--audio-ctx-mode` values (see [`AudioCtxMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AudioCtxModeArg {
    /// Drop the positions past the audio context.
    Truncate,
    /// Fill them with a silent window's encoder states.
    Silence,
}

impl From<AudioCtxModeArg> for AudioCtxMode {
    fn from(m: AudioCtxModeArg) -> Self {
        match m {
            AudioCtxModeArg::Truncate => AudioCtxMode::Truncate,
            AudioCtxModeArg::Silence => AudioCtxMode::Silence,
        }
    }
}

/// Arguments of `hark transcribe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio files or directories (searched recursively for audio files).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model name (pulled on first use) or model directory.
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    /// Spoken language (e.g. en, fr); detected when omitted on multilingual models.
    #[arg(long)]
    pub language: Option<String>,
    /// Beam size (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Number of samples per fallback temperature > 0.
    #[arg(long, default_value_t = 5)]
    pub best_of: usize,
    /// Fallback temperatures, comma-separated (a single 0 disables the fallback).
    #[arg(long, default_value = "0,0.2,0.4,0.6,0.8,1.0", value_delimiter = ',')]
    pub temperature: Vec<f32>,
    /// Whisper: at most this many tokens generated per 30 s window (faster-whisper's
    /// `max_new_tokens`; default: up to 224). Bounds the time a repetition loop costs.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Weight precision at run time (default: the precision the model is stored in).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Compute threads for the whole run, shared by the jobs (default: all cores, or
    /// HARK_THREADS).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the heavy stages run: auto (a hardware GPU if present, else the CPU), cpu, gpu.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Conformer-AED models: encode with a chunk attention mask of MS milliseconds (a
    /// multiple of 40), as chunk-by-chunk streaming would. Default: full context.
    #[arg(long, value_name = "MS")]
    pub chunk_ms: Option<u32>,
    /// Files transcribed at the same time, sharing one loaded model (each with
    /// threads/jobs compute threads).
    #[arg(long, short = 'j', default_value_t = 1)]
    pub jobs: usize,
    /// Transcribe inputs again even when their output file exists (default: skip them).
    #[arg(long)]
    pub overwrite: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Txt)]
    pub format: Format,
    /// Write `<stem>.<format>` files here instead of printing to stdout (files found
    /// under a directory argument keep their sub-directory).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Decode without timestamp tokens.
    #[arg(long)]
    pub no_timestamps: bool,
    /// Text to condition the first window on (names, spelling, style).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    /// Do not feed each window's text to the next one as a prompt.
    #[arg(long)]
    pub no_condition_on_previous_text: bool,
    /// Translate to English instead of transcribing.
    #[arg(long)]
    pub translate: bool,
    /// Decode windows even when their audio is near-silent (RMS < -60 dBFS); by
    /// default they are skipped, which avoids Whisper's hallucinations on silence.
    #[arg(long)]
    pub no_silence_skip: bool,
    /// Whisper only: encode N positions (20 ms of audio each, 1..=1500) instead of the
    /// whole 30 s window, as whisper.cpp's --audio-ctx. A speed/accuracy trade-off:
    /// the encoder runs about 1500/N times faster and windows cover at most N x 20 ms,
    /// but a context much shorter than the speech in a window truncates the text or
    /// makes it up. Default: the full window (most accurate).
    #[arg(long)]
    pub audio_ctx: Option<usize>,
    /// With --audio-ctx: `truncate` drops the positions past N (whisper.cpp; fastest,
    /// but Whisper often repeats words when its window ends right after the speech),
    /// `silence` fills them with the states of a silent window computed once, so the
    /// decoder still sees a 30 s window that ends in silence (windows then cover at
    /// most N x 20 ms - 20 ms).
    #[arg(long, value_enum, default_value_t = AudioCtxModeArg::Truncate, requires = "audio_ctx")]
    pub audio_ctx_mode: AudioCtxModeArg,
    /// Print per-stage timings to stderr.
    #[arg(long)]
    pub timings: bool,
}

/// All audio files under `inputs` (files as given, directories searched recursively),
/// in the order `hark transcribe` processes them. Holds the whole list: batch runs use
/// [`batch::inputs::InputWalker`], which streams it.
pub(crate) fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    batch::inputs::count(inputs)?;
    batch::inputs::InputWalker::new(inputs)
        .map(|f| match f {
            batch::inputs::Found::File { path, .. } => Ok(path),
            batch::inputs::Found::Error { path, message } => {
                Err(anyhow::anyhow!("{}: {message}", path.display()))
            }
        })
        .collect()
}

/// Renders store progress (model download/conversion) on stderr.
struct BarProgress {
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl Progress for BarProgress {
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let tmpl = match unit {
            Unit::Bytes => "{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
            Unit::Tensors => "{msg} [{bar:30}] {pos}/{len}",
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(tmpl) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(step.to_string());
        *self.bar.borrow_mut() = Some(bar);
    }
    fn update(&self, done: u64) {
        if let Some(b) = &*self.bar.borrow() {
            b.set_position(done);
        }
    }
    fn end(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
    fn note(&self, message: &str) {
        eprintln!("hark: {message}");
    }
}

fn timestamp(t: f64, sep: char, always_hours: bool) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, r) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if always_hours || h > 0 {
        format!("{h:02}:{m:02}:{s:02}{sep}{r:03}")
    } else {
        format!("{m:02}:{s:02}{sep}{r:03}")
    }
}

fn render(
    format: Format,
    file: &Path,
    segs: &[Segment],
    info: &TranscriptionInfo,
    seconds: f64,
    w: &Recognizer,
) -> String {
    let text = segs
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match format {
        Format::Txt => format!("{text}\n"),
        Format::Json => {
            let segments: Vec<serde_json::Value> = segs
                .iter()
                .map(|s| {
                    let text_tokens: Vec<u32> =
                        s.tokens.iter().copied().filter(|&t| t < w.first_special_token()).collect();
                    serde_json::json!({
                        "id": s.id, "seek": s.seek,
                        "start": (s.start * 1000.0).round() / 1000.0,
                        "end": (s.end * 1000.0).round() / 1000.0,
                        "text": s.text, "tokens": s.tokens, "text_tokens": text_tokens,
                        "temperature": s.temperature, "avg_logprob": s.avg_logprob,
                        "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob,
                    })
                })
                .collect();
            let v = serde_json::json!({
                "file": file.display().to_string(), "text": text, "language": info.language,
                "language_probability": info.language_probability, "duration": info.duration,
                "seconds": (seconds * 1e4).round() / 1e4, "segments": segments,
            });
            format!("{v}\n")
        }
        Format::Srt => segs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    timestamp(s.start, ',', true),
                    timestamp(s.end, ',', true),
                    s.text.trim()
                )
            })
            .collect(),
        Format::Vtt => {
            let mut o = String::from("WEBVTT\n\n");
            for s in segs {
                o += &format!(
                    "{} --> {}\n{}\n\n",
                    timestamp(s.start, '.', false),
                    timestamp(s.end, '.', false),
                    s.text.trim()
                );
            }
            o
        }
        Format::Tsv => {
            let mut o = String::from("start\tend\ttext\n");
            for s in segs {
                o += &format!(
                    "{}\t{}\t{}\n",
                    (s.start * 1000.0).round() as u64,
                    (s.end * 1000.0).round() as u64,
                    s.text.trim()
                );
            }
            o
        }
    }
}

/// The compute pool size for `jobs` jobs within a budget of `budget` threads (see the
/// module docs).
pub fn pool_threads(budget: usize, jobs: usize) -> usize {
    budget.max(1).saturating_sub(jobs.max(1) - 1).max(1)
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.beam == 0 || args.best_of == 0 {
        bail!("--beam and --best-of must be at least 1");
    }
    if args.max_new_tokens == Some(0) {
        bail!("--max-new-tokens must be at least 1");
    }
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    if args.temperature.is_empty() || args.temperature.iter().any(|t| !(0.0..=2.0).contains(t)) {
        bail!("--temperature takes values between 0 and 2");
    }
    let budget = args
        .threads
        .unwrap_or_else(hark_engine::threads::default_threads);
    hark_models::whisper::set_threads(pool_threads(budget, args.jobs))
        .context("setting --threads")?;
    let total = batch::inputs::count(&args.inputs)?;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating output directory {}", dir.display()))?;
    }
    let t_load = Instant::now();
    let progress = BarProgress {
        bar: std::cell::RefCell::new(None),
    };
    let dir = hark_models::store::ensure_model(&args.model, &progress)
        .with_context(|| format!("resolving model `{}`", args.model))?;
    let mut w = Recognizer::load(&dir, args.precision)
        .with_context(|| format!("loading model {}", dir.display()))?;
    w.set_delegates(crate::device::delegates_for(&dir, args.device)?);
    if let Some(ms) = args.chunk_ms {
        w.set_chunk_ms(ms).context("--chunk-ms")?;
    }
    if let Some(n) = args.audio_ctx {
        match w.as_whisper() {
            Some(wh) => {
                wh.model.audio_ctx(Some(n)).context("--audio-ctx")?;
            }
            None => eprintln!(
                "hark: warning: --audio-ctx applies to Whisper models only; ignored for {}",
                w.family()
            ),
        }
    }
    let load_s = t_load.elapsed().as_secs_f64();
    let opts = TranscribeOptions {
        language: args.language.clone(),
        translate: args.translate,
        beam_size: args.beam,
        best_of: args.best_of,
        temperatures: args.temperature.clone(),
        initial_prompt: args.initial_prompt.clone(),
        without_timestamps: args.no_timestamps,
        condition_on_previous_text: !args.no_condition_on_previous_text,
        silence_rms_threshold: if args.no_silence_skip {
            None
        } else {
            Some(1e-3)
        },
        audio_ctx: args.audio_ctx,
        audio_ctx_mode: args.audio_ctx_mode.into(),
        max_new_tokens: args.max_new_tokens,
        ..Default::default()
    };

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        // A second Ctrl-C (or a handler that cannot be installed) exits at once;
        // outputs already written are complete files either way.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\nhark: stopping after the files in progress (Ctrl-C again to quit now)");
        });
    }

    let format = args.format;
    let work = |file: &Path| -> anyhow::Result<batch::Done> {
        // The batch runner prefixes failures with the file name.
        transcribe_file(&w, &opts, format, file)
    };
    let cfg = batch::Config {
        jobs: args.jobs,
        output_dir: args.output_dir.clone(),
        ext: format.ext(),
        overwrite: args.overwrite,
        progress: total > 1,
    };
    let mut stdout = std::io::stdout();
    let summary = batch::run(&args.inputs, total, &cfg, &cancel, work, &mut stdout)?;

    if args.timings {
        let t = &summary.timings;
        eprintln!(
            "hark: timings: load {load_s:.3}s, audio decode {:.3}s, features {:.3}s, encoder {:.3}s, decoder {:.3}s, total {:.3}s ({} files); wall {:.3}s, {:.1} audio s per wall s",
            t.audio_decode,
            t.features,
            t.encoder,
            t.decoder,
            t.total,
            summary.done,
            summary.wall_seconds,
            summary.audio_seconds / summary.wall_seconds.max(1e-9),
        );
    }
    report(&summary, cfg.output_dir.is_some());
    Ok(if summary.cancelled {
        ExitCode::from(130)
    } else if !summary.failures.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Decodes, transcribes and renders one file.
fn transcribe_file(
    w: &Recognizer,
    opts: &TranscribeOptions,
    format: Format,
    file: &Path,
) -> anyhow::Result<batch::Done> {
    let t = Instant::now();
    // Streamed from disk: memory stays bounded by one decoding window whatever the
    // file's length (decoding the audio is part of the stages' times).
    let audio_decode = 0.0;
    let mut segs = Vec::new();
    let info = w.transcribe_file(file, opts, &mut |s| segs.push(s.clone()))?;
    let seconds = t.elapsed().as_secs_f64();
    let rendered = render(format, file, &segs, &info, seconds, w);
    Ok(batch::Done {
        rendered,
        audio_seconds: info.duration,
        timings: batch::Timings {
            audio_decode,
            features: info.features_s,
            encoder: info.encoder_s,
            decoder: info.decoder_s,
            total: seconds,
        },
    })
}

/// The end-of-run summary on stderr: counts, skipped files, every failure. Quiet for a
/// plain successful run to stdout.
fn report(s: &batch::Summary, to_files: bool) {
    let notable = !s.failures.is_empty() || s.skipped > 0 || s.cancelled;
    if !(notable || (to_files && s.total > 1)) {
        return;
    }
    let mut line = format!(
        "hark: {} of {} files transcribed ({:.1} s of audio in {:.1} s)",
        s.done, s.total, s.audio_seconds, s.wall_seconds
    );
    if s.skipped > 0 {
        line += &format!(
            ", {} skipped (output exists; --overwrite redoes them)",
            s.skipped
        );
    }
    if s.cancelled {
        line += &format!(", {} not started (cancelled)", s.not_started);
    }
    if !s.failures.is_empty() {
        line += &format!(", {} failed", s.failures.len());
    }
    eprintln!("{line}");
    if !s.failures.is_empty() {
        eprintln!("hark: failed inputs:");
        for f in &s.failures {
            eprintln!("  {}: {}", f.path.display(), f.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_keeps_jobs_plus_pool_within_the_budget() {
        assert_eq!(pool_threads(2, 1), 2);
        assert_eq!(pool_threads(2, 2), 1);
        assert_eq!(pool_threads(2, 8), 1);
        assert_eq!(pool_threads(8, 2), 7);
        assert_eq!(pool_threads(0, 1), 1);
    }

    /// The batch workers borrow one recognizer from several threads.
    #[test]
    fn recognizer_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Recognizer>();
    }
}
