//! `hark listen`: live dictation from a microphone (or a file replayed at real time).
//!
//! The pipeline lives in `crate::listen`; this module validates flags, resolves and
//! loads the model, opens the transcript file (every final line is appended and
//! flushed as soon as it is final) and runs either the TUI or the `--no-tui` printer
//! (JSON lines on stdout: finals, and partials with `--partials`). `q` and Ctrl-C stop the
//! capture but the current utterance is still decoded and saved.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use hark_audio::{AudioSource, FileSource, MicSource};
use hark_models::recognizer::{self, Family, Recognizer};
use hark_models::streaming::SegmenterConfig;
use hark_models::whisper::{Precision, TranscribeOptions};

use crate::listen::ui::App;
use crate::listen::{Event, Pipeline, SourceFactory, Stats};

/// Arguments of `hark listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model name (pulled on first use) or model directory (any family: Whisper,
    /// conformer-AED).
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    /// Input device name (see `hark devices`); default: the system default input.
    #[arg(long)]
    pub device: Option<String>,
    /// Replay this audio file at real time instead of using a microphone.
    #[arg(long, conflicts_with = "device")]
    pub input: Option<PathBuf>,
    /// Replay speed for --input (1.0 = real time).
    #[arg(long, default_value_t = 1.0)]
    pub realtime_speed: f32,
    /// Print JSON lines to stdout instead of running the terminal UI, one per final:
    /// `{"type":"final","id","part","text","start","end","latency_ms"}` (times in seconds
    /// of the input stream, latency from the end of speech to the text). Finals with the
    /// same `id` are successive pieces (`part` 0, 1, ...) of one utterance: joined with a
    /// space (none before punctuation) they read as one decode of the utterance.
    #[arg(long)]
    pub no_tui: bool,
    /// With --no-tui, also print partial hypotheses (`"type":"partial"`, with the
    /// `committed` words; `latency_ms` is null).
    #[arg(long)]
    pub partials: bool,
    /// Transcript file (default: $HARK_HOME/transcripts/listen-<timestamp>.txt).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Print latency figures (median/p95 final latency, partial refresh, overruns) at the end.
    #[arg(long)]
    pub stats: bool,
    /// Weight precision at run time (default: the precision the model is stored in).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the model's heavy stages run: auto (a hardware GPU if present, else the
    /// CPU), cpu, gpu (`--device` names the audio input here).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Auto)]
    pub compute: crate::device::Device,
    /// Beam size of the final decode (1 = greedy; partials are always greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Whisper: decode finals without timestamp tokens (`hark transcribe
    /// --no-timestamps`). By default finals are decoded as offline, timestamps included,
    /// so live text has the offline text's style; without them the final decode is a few
    /// percent cheaper (20 AN4 utterances: same word match and latency within run-to-run
    /// noise) and the style can differ ("7.15.4." for "7-1-5-4."). Final times come from
    /// the voice activity detector either way.
    #[arg(long)]
    pub no_timestamps: bool,
    /// Re-decode cadence of the open utterance (ms).
    #[arg(long, default_value_t = 400)]
    pub partial_every_ms: u32,
    /// Longest utterance before a cut at a pause (s; at most 28 for Whisper, which sees
    /// 30 s windows, and 30 for conformer-AED models, the longest piece they decode).
    #[arg(long, default_value_t = 25.0)]
    pub max_utterance_s: f32,
    /// Silence that confirms the end of an utterance (ms, the VAD hangover). Shorter
    /// pauses inside an utterance do not split it; a longer one does, and the next
    /// utterance is decoded with the previous finals as its prompt. Whisper's text is
    /// final earlier (--final-pause-ms); otherwise the final latency is at least this.
    #[arg(long, default_value_t = 400)]
    pub hangover_ms: u32,
    /// Silence after which the final decode starts speculatively (ms): the final text
    /// is usually ready when the hangover confirms the end.
    #[arg(long, default_value_t = 100)]
    pub endpoint_ms: u32,
    /// Silence after which the text so far is final (ms; 0 = only when the utterance
    /// closes). The utterance stays open until --hangover-ms: if speech resumes, the
    /// whole utterance is decoded again with the final text as a forced prefix (Whisper's
    /// decoder; a conformer-AED model's CTC prefix search) and only the words after it
    /// become the next final, so the final latency is this pause plus the decode, and
    /// utterances are not split. Default: 250 for Whisper and for streaming conformer-AED
    /// models (causal convolutions, trained with chunk masks: on AN4 the an4-conformer
    /// gives a 260 ms median latency instead of 400 at 91.6% word accuracy instead of
    /// 92.3%); 0 for conformers trained at full context (the previous an4-conformer
    /// misread the last letter before a short pause: 84.5% instead of 89.1%). Models
    /// without a CTC head cannot continue a prefix and ignore it.
    #[arg(long)]
    pub final_pause_ms: Option<u32>,
    /// An utterance's text becomes final at a pause only once the utterance
    /// holds this much audio (ms, including 300 ms of pre-roll): a short opening
    /// fragment decoded alone is where Whisper errs most, so it waits for more speech
    /// or the hangover.
    #[arg(long, default_value_t = DEFAULT_FINAL_MIN_MS)]
    pub final_min_ms: u32,
    /// Whisper: encoder positions (20 ms each) encoded beyond the utterance. Each
    /// decode encodes only the utterance plus this margin (rounded up to 32 positions)
    /// instead of a 30 s window, which makes it several times faster; the positions
    /// past it take the states of a silent window, computed once at start.
    #[arg(long, default_value_t = crate::listen::DEFAULT_AUDIO_CTX_MARGIN)]
    pub audio_ctx_margin: usize,
    /// Whisper: encode the full 30 s window for every decode (slow; what `hark
    /// transcribe` does by default).
    #[arg(long, conflicts_with = "audio_ctx_margin")]
    pub full_audio_ctx: bool,
    /// Conformer-AED streaming models (causal convolutions, trained with dynamic chunks):
    /// encode with a chunk attention mask of MS milliseconds (a multiple of 40), so the
    /// encoder output of audio already heard does not change as the utterance grows.
    /// Default: full context.
    #[arg(long, value_name = "MS")]
    pub chunk_ms: Option<u32>,
}

/// Default of `--final-pause-ms` for Whisper models. Measured with tiny.en on AN4 test utterances joined
/// with 1 s pauses (word match of the finals with offline `hark transcribe`): 250 ms
/// keeps 8/8 utterances at 100% (`--realtime-speed 4`); at 200 ms and `--realtime-speed 4`
/// fragments of slowly spelled letters became final (20 utterances: 57% with one
/// hallucinated repetition), although one real-time run of 20 reached 98.2%.
pub const DEFAULT_FINAL_PAUSE_MS: u32 = 250;

/// Default of `--final-min-ms`. 20 AN4 utterances at real time on an idle machine, with
/// the default pause: 1500 ms gives 95.4% word match and a 347 ms median final latency,
/// 0 gives 91.7% and 286 ms (the opening "RUBOUT" decoded alone reads "Rub out" where
/// the whole utterance reads "Robot"; those fragments last 1.0-1.1 s).
pub const DEFAULT_FINAL_MIN_MS: u32 = 1500;

/// Seconds rounded to the millisecond (JSON output).
fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

fn default_transcript() -> anyhow::Result<PathBuf> {
    let dir = hark_models::store::hark_home()?.join("transcripts");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (d, s) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = d as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Ok(dir.join(format!(
        "listen-{year:04}{month:02}{day:02}-{:02}{:02}{:02}.txt",
        s / 3600,
        s / 60 % 60,
        s % 60
    )))
}

fn source_factory(args: &Args) -> SourceFactory {
    match &args.input {
        Some(path) => {
            let (path, speed) = (path.clone(), args.realtime_speed);
            Box::new(move || {
                let s = FileSource::realtime(&path, speed, 20)
                    .with_context(|| format!("opening --input {}", path.display()))?;
                Ok(Box::new(s) as Box<dyn AudioSource>)
            })
        }
        None => {
            let device = args.device.clone();
            Box::new(move || {
                let s = MicSource::open(device.as_deref()).map_err(|e| {
                    anyhow::anyhow!("{e}\nhint: `hark devices` lists input devices; `--input FILE` replays a file instead")
                })?;
                Ok(Box::new(s) as Box<dyn AudioSource>)
            })
        }
    }
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(args.realtime_speed > 0.0 && args.realtime_speed <= 100.0) {
        anyhow::bail!("--realtime-speed takes a value in (0, 100]");
    }
    if args.beam == 0 {
        anyhow::bail!("--beam must be at least 1");
    }
    if let Some(p) = &args.input {
        if !p.is_file() {
            anyhow::bail!("--input {} does not exist", p.display());
        }
    }
    // Fail on a missing device before loading the model (cheap check; the capture
    // thread opens the device for real).
    if args.input.is_none() {
        let devices = hark_audio::capture::list_input_devices().unwrap_or_default();
        let listed = if devices.is_empty() {
            "(none)".to_string()
        } else {
            devices
                .iter()
                .map(|d| d.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &args.device {
            None if devices.is_empty() => anyhow::bail!(
                "no audio input device found; available input devices: {listed}\nhint: connect a microphone, or replay a file with `hark listen --input FILE`"
            ),
            Some(name) if !devices.iter().any(|d| &d.name == name) => anyhow::bail!(
                "audio input device `{name}` not found; available input devices: {listed}\nhint: `hark devices` lists them; `--input FILE` replays a file"
            ),
            _ => {}
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(hark_engine::threads::default_threads);
    if let Some(n) = args.threads {
        hark_models::whisper::set_threads(n).context("setting --threads")?;
    }
    let progress = crate::cmd::models::BarProgress::default();
    let dir = hark_models::store::ensure_model(&args.model, &progress)
        .with_context(|| format!("resolving model `{}`", args.model))?;
    let facts = recognizer::model_facts(&dir)
        .with_context(|| format!("reading the config of {}", dir.display()))?;
    // The longest utterance a family decodes in one piece.
    let max_utterance = match facts.family {
        Family::Whisper => 28.0,
        Family::ConformerAed => recognizer::CONFORMER_MAX_PIECE_S as f32,
    };
    if !(1.0..=max_utterance).contains(&args.max_utterance_s) {
        anyhow::bail!(
            "--max-utterance-s takes a value between 1 and {max_utterance} for {} models",
            facts.family
        );
    }
    let precision = args.precision.unwrap_or(facts.stored_precision);
    let mut model = Recognizer::load(&dir, Some(precision))
        .with_context(|| format!("loading model {}", dir.display()))?;
    model.set_delegates(crate::device::delegates_for(&dir, args.compute)?);
    if let Some(ms) = args.chunk_ms {
        model.set_chunk_ms(ms).context("--chunk-ms")?;
    }
    let audio_ctx_margin =
        (facts.family == Family::Whisper && !args.full_audio_ctx).then_some(args.audio_ctx_margin);
    if let (Some(w), Some(_)) = (model.as_whisper(), audio_ctx_margin) {
        // The silent window's encoder states, once, before the first utterance (and
        // before the transcript file appears: Ctrl-C is handled from then on).
        w.model
            .silence()
            .context("encoding the silent window of the reduced audio context")?;
    }

    let transcript = match &args.output {
        Some(p) => p.clone(),
        None => default_transcript()?,
    };
    if let Some(parent) = transcript.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = File::options()
        .create(true)
        .append(true)
        .open(&transcript)
        .with_context(|| format!("opening transcript {}", transcript.display()))?;

    let final_opts = TranscribeOptions {
        beam_size: args.beam,
        // Each utterance stands alone: no prompt from the previous one.
        condition_on_previous_text: false,
        without_timestamps: args.no_timestamps,
        ..Default::default()
    };
    let final_pause_ms = args.final_pause_ms.unwrap_or(match facts.family {
        Family::Whisper => DEFAULT_FINAL_PAUSE_MS,
        // A conformer trained with chunk masks reads the letters before a pause without
        // the audio after it; one trained at full context misreads them.
        Family::ConformerAed if model.is_streaming() => DEFAULT_FINAL_PAUSE_MS,
        Family::ConformerAed => 0,
    });
    let mut seg_cfg = SegmenterConfig {
        partial_every_ms: args.partial_every_ms.max(50),
        max_utterance_s: args.max_utterance_s,
        endpoint_ms: args.endpoint_ms,
        // Continuing a decode after final text needs a forced prefix (Whisper's
        // decoder; a conformer-AED model's CTC prefix search).
        final_pause_ms: (model.accepts_prefix() && final_pause_ms > 0).then_some(final_pause_ms),
        final_min_ms: args.final_min_ms,
        ..Default::default()
    };
    seg_cfg.vad.hangover_ms = args.hangover_ms;
    let pipeline = Pipeline::start(
        source_factory(&args),
        Box::new(model),
        final_opts,
        audio_ctx_margin,
        seg_cfg,
    )?;

    let mut stats = Stats::default();
    stats.begin();
    // Appends text as it becomes final (the pieces of an utterance on one line).
    let mut sink = |text: &str| -> std::io::Result<()> {
        write!(file, "{text}")?;
        file.flush()
    };
    if args.no_tui {
        eprintln!("hark: listening; transcript: {}", transcript.display());
        let controls = pipeline.controls.clone();
        let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let h = hits.clone();
        // First Ctrl-C: finish the current utterance; second: leave at once.
        let _ = ctrlc::set_handler(move || {
            if h.fetch_add(1, Ordering::SeqCst) >= 1 {
                std::process::exit(130);
            }
            controls.stop.store(true, Ordering::Relaxed);
        });
        let stdout = std::io::stdout();
        let mut lines = crate::listen::TranscriptLines::default();
        // (utterance, pieces printed) for the `part` field.
        let mut parts: (u64, u64) = (u64::MAX, 0);
        for ev in pipeline.events.iter() {
            stats.observe(&ev);
            if let Some(text) = lines.text_for(&ev) {
                sink(&text).with_context(|| format!("writing {}", transcript.display()))?;
            }
            match &ev {
                Event::Final {
                    id,
                    text,
                    start_s,
                    end_s,
                    latency_ms,
                    ..
                } if !text.is_empty() => {
                    parts = if parts.0 == *id {
                        (*id, parts.1 + 1)
                    } else {
                        (*id, 0)
                    };
                    let line = serde_json::json!({
                        "type": "final",
                        "id": id,
                        "part": parts.1,
                        "text": text,
                        "start": round_ms(*start_s),
                        "end": round_ms(*end_s),
                        "latency_ms": latency_ms.round(),
                    });
                    let mut out = stdout.lock();
                    writeln!(out, "{line}").ok();
                    out.flush().ok();
                }
                Event::Partial {
                    id,
                    start_s,
                    end_s,
                    committed,
                    tentative,
                } if args.partials => {
                    let text = [committed.as_str(), tentative.as_str()]
                        .into_iter()
                        .filter(|t| !t.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ");
                    let line = serde_json::json!({
                        "type": "partial",
                        "id": id,
                        "text": text,
                        "committed": committed,
                        "start": round_ms(*start_s),
                        "end": round_ms(*end_s),
                        "latency_ms": null,
                    });
                    let mut out = stdout.lock();
                    writeln!(out, "{line}").ok();
                    out.flush().ok();
                }
                Event::Warning(w) => eprintln!("hark: warning: {w}"),
                Event::Error(e) => eprintln!("hark: error: {e}"),
                Event::Finished => break,
                _ => {}
            }
        }
    } else {
        let app = App {
            model: args.model.clone(),
            precision: precision.to_string(),
            threads,
            transcript_path: transcript.display().to_string(),
            ..Default::default()
        };
        crate::listen::ui::run(app, &pipeline, &mut sink, &mut stats, &transcript)?;
    }
    pipeline.join();
    if args.stats {
        eprintln!("hark: stats: {}", stats.summary());
    }
    eprintln!("hark: transcript saved to {}", transcript.display());
    Ok(ExitCode::SUCCESS)
}
