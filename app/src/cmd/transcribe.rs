//! `hark transcribe`: audio files (or directories of them) to text.
//!
//! Flags are validated once into a [`TranscribeOptions`]; the model is resolved through
//! the store (`ensure_model`: pulled on first use, with a progress bar), loaded once and
//! shared by all inputs. Text goes to stdout (`txt`: one line per file; `json`: one JSON
//! object per file and line) or, with `--output-dir`, to `<stem>.<format>` per file.
//! A file that fails (cannot be decoded, ...) is reported and skipped; the exit code is
//! then 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use hark_models::recognizer::Recognizer;
use hark_models::store::progress::{Progress, Unit};
use hark_models::whisper::{Precision, Segment, TranscribeOptions, TranscriptionInfo};

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
    /// Weight precision at run time (default: the precision the model is stored in).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Txt)]
    pub format: Format,
    /// Write `<stem>.<format>` files here instead of printing to stdout.
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
    /// Print per-stage timings to stderr.
    #[arg(long)]
    pub timings: bool,
}

const AUDIO_EXTS: &[&str] = &[
    "wav", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "webm", "mka", "mkv", "aif",
    "aiff", "caf", "wv",
];

pub(crate) fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).with_context(|| format!("reading directory {}", p.display()))?;
            if found.is_empty() {
                eprintln!("hark: warning: no audio files found in {}", p.display());
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("input {} does not exist", p.display());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| AUDIO_EXTS.contains(&x.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
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

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.beam == 0 || args.best_of == 0 {
        bail!("--beam and --best-of must be at least 1");
    }
    if args.temperature.is_empty() || args.temperature.iter().any(|t| !(0.0..=2.0).contains(t)) {
        bail!("--temperature takes values between 0 and 2");
    }
    if let Some(n) = args.threads {
        hark_models::whisper::set_threads(n).context("setting --threads")?;
    }
    let files = collect_inputs(&args.inputs)?;
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
    let w = Recognizer::load(&dir, args.precision)
        .with_context(|| format!("loading model {}", dir.display()))?;
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
        ..Default::default()
    };
    let mut failures = 0;
    let stdout = std::io::stdout();
    let (mut tot_audio, mut tot_feat, mut tot_enc, mut tot_dec, mut tot_all) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    for file in &files {
        let t = Instant::now();
        let result = hark_audio::load_audio(file)
            .map_err(anyhow::Error::from)
            .and_then(|samples| {
                let audio_s = t.elapsed().as_secs_f64();
                let mut segs = Vec::new();
                let info = w.transcribe(&samples, &opts, &mut |s| segs.push(s.clone()))?;
                Ok((segs, info, audio_s))
            })
            .with_context(|| format!("transcribing {}", file.display()));
        let (segs, info, audio_s) = match result {
            Ok(r) => r,
            Err(e) => {
                eprintln!("hark: error: {e:#}");
                failures += 1;
                continue;
            }
        };
        let seconds = t.elapsed().as_secs_f64();
        tot_audio += audio_s;
        tot_feat += info.features_s;
        tot_enc += info.encoder_s;
        tot_dec += info.decoder_s;
        tot_all += seconds;
        let out = render(args.format, file, &segs, &info, seconds, &w);
        match &args.output_dir {
            Some(dir) => {
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "out".into());
                let path = dir.join(format!("{stem}.{}", args.format.ext()));
                std::fs::write(&path, out)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => {
                let mut lock = stdout.lock();
                lock.write_all(out.as_bytes())
                    .context("writing to stdout")?;
                lock.flush().ok();
            }
        }
    }
    if args.timings {
        eprintln!(
            "hark: timings: load {load_s:.3}s, audio decode {tot_audio:.3}s, features {tot_feat:.3}s, encoder {tot_enc:.3}s, decoder {tot_dec:.3}s, total {tot_all:.3}s ({} files)",
            files.len()
        );
    }
    Ok(if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
