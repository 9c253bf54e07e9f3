//! `hark eval`: word/character error rates of a model on a test set.
//!
//! The dataset is read and checked first (problems are printed, not hidden), then
//! every utterance is decoded to 16 kHz mono, transcribed, normalised and scored by
//! `hark_models::eval::evaluate`. Ctrl-C sets a flag the loop checks between
//! utterances, so an interrupted run still prints its summary and writes its
//! (partial, `"cancelled": true`) report; a second Ctrl-C exits at once.
//!
//! `--hypotheses FILE` scores existing transcripts (`<id> <text>` lines, or JSON lines
//! with `id` and `text`) instead of running a model, e.g. another system's output.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hark_models::eval::{
    evaluate, load_dataset, DatasetFormat, EvalOptions, EvalReport, Normalizer, TranscribeError,
    Transcription, Utterance,
};
use hark_models::recognizer::{model_facts, Recognizer};

use crate::device::Device;
use hark_models::whisper::{Precision, TranscribeOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `hark eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Test set: a Kaldi data dir (wav.scp + text [+ segments]), a LibriSpeech tree
    /// (*.trans.txt + *.flac), a JSONL manifest, or a dir with manifest.jsonl.
    pub dataset: PathBuf,
    /// Model to evaluate.
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    /// Text normaliser applied to references and hypotheses: whisper-en, basic,
    /// upper, spelled (letters and digits spelled as words, e.g. AN4) or none.
    #[arg(long, default_value = "whisper-en")]
    pub normalizer: Normalizer,
    /// Dataset layout: auto, kaldi, librispeech or jsonl.
    #[arg(long, default_value = "auto")]
    pub format: DatasetFormat,
    /// Write the full JSON report (per-utterance alignments included) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print a JSON summary (every report field except the per-utterance results) on
    /// stdout instead of the summary table; `--report` writes the full report.
    #[arg(long)]
    pub json: bool,
    /// Evaluate only the first N utterances.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Score these transcripts instead of running a model (`<id> <text>` lines or
    /// JSON lines with `id` and `text`).
    #[arg(long, value_name = "FILE")]
    pub hypotheses: Option<PathBuf>,
    /// Spoken language (e.g. en, fr); detected per utterance when omitted on
    /// multilingual models.
    #[arg(long)]
    pub language: Option<String>,
    /// Beam size (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Weight precision at run time (default: the precision the model is stored in).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the heavy stages run: auto (a hardware GPU if present, else the CPU), cpu, gpu.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Conformer-AED models: encode with a chunk attention mask of MS milliseconds (a
    /// multiple of 40), as chunk-by-chunk streaming would (WER of a streaming model at
    /// that latency). Default: full context.
    #[arg(long, value_name = "MS")]
    pub chunk_ms: Option<u32>,
}

/// How the model is run: the decoding flags of `hark eval`, validated.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Spoken language (`None`: detect on multilingual models).
    pub language: Option<String>,
    /// Beam size (1 = greedy).
    pub beam: usize,
    /// Run-time weight precision (`None`: as stored).
    pub precision: Option<Precision>,
    /// Compute threads (`None`: the engine default, all cores).
    pub threads: Option<usize>,
    /// Where the heavy stages run.
    pub device: Device,
    /// Chunk attention mask, ms (`None`: full context; conformer-AED only).
    pub chunk_ms: Option<u32>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            language: None,
            beam: 5,
            precision: None,
            threads: None,
            device: Device::Auto,
            chunk_ms: None,
        }
    }
}

/// A model turned into "16 kHz mono samples -> text".
pub type Transcriber = Box<dyn FnMut(&[f32]) -> anyhow::Result<String>>;

/// What the evaluation loop calls for each utterance.
type UtteranceTranscriber = Box<dyn FnMut(&Utterance) -> Result<Transcription, TranscribeError>>;

/// Model-side facts recorded in the report.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    /// Weight/compute precision.
    pub precision: String,
    /// Threads used.
    pub threads: usize,
    /// Decoding options.
    pub decoding: BTreeMap<String, String>,
    /// Seconds spent resolving and loading the model.
    pub load_seconds: f64,
}

/// Builds a transcriber for `model` (a store name, pulled on first use, or a model
/// directory) of any family: the model is loaded once and each call transcribes one
/// utterance with faster-whisper's default decoding options except for the flags in
/// `opts`; the segment texts are joined with single spaces.
pub fn load_transcriber(
    model: &str,
    opts: &ModelOptions,
) -> anyhow::Result<(Transcriber, ModelInfo)> {
    if opts.beam == 0 {
        anyhow::bail!("--beam must be at least 1");
    }
    if let Some(n) = opts.threads {
        if n == 0 {
            anyhow::bail!("--threads must be at least 1");
        }
        hark_models::whisper::set_threads(n).context("setting --threads")?;
    }
    let t_load = std::time::Instant::now();
    let progress = crate::cmd::models::BarProgress::default();
    let dir = hark_models::store::ensure_model(model, &progress)
        .with_context(|| format!("resolving model `{model}`"))?;
    let facts = model_facts(&dir)?;
    let precision = opts.precision.unwrap_or(facts.stored_precision);
    let mut recognizer = Recognizer::load(&dir, Some(precision))
        .with_context(|| format!("loading model {}", dir.display()))?;
    recognizer.set_delegates(crate::device::delegates_for(&dir, opts.device)?);
    if let Some(ms) = opts.chunk_ms {
        recognizer.set_chunk_ms(ms).context("--chunk-ms")?;
    }
    let topts = TranscribeOptions {
        language: opts.language.clone(),
        beam_size: opts.beam,
        ..Default::default()
    };
    let mut decoding = BTreeMap::new();
    decoding.insert("beam_size".to_string(), topts.beam_size.to_string());
    decoding.insert("best_of".to_string(), topts.best_of.to_string());
    decoding.insert("patience".to_string(), topts.patience.to_string());
    decoding.insert(
        "length_penalty".to_string(),
        topts.length_penalty.to_string(),
    );
    decoding.insert(
        "temperatures".to_string(),
        topts
            .temperatures
            .iter()
            .map(f32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    decoding.insert(
        "language".to_string(),
        topts.language.clone().unwrap_or_else(|| "auto".to_string()),
    );
    decoding.insert(
        "condition_on_previous_text".to_string(),
        topts.condition_on_previous_text.to_string(),
    );
    decoding.insert(
        "without_timestamps".to_string(),
        topts.without_timestamps.to_string(),
    );
    decoding.insert("model_dir".to_string(), dir.display().to_string());
    decoding.insert("family".to_string(), facts.family.to_string());
    if let Some(ms) = opts.chunk_ms {
        decoding.insert("chunk_ms".to_string(), ms.to_string());
    }
    let info = ModelInfo {
        precision: precision.to_string(),
        threads: hark_engine::threads::pool().threads(),
        decoding,
        load_seconds: t_load.elapsed().as_secs_f64(),
    };
    let f =
        move |samples: &[f32]| -> anyhow::Result<String> { Ok(recognizer.text(samples, &topts)?) };
    Ok((Box::new(f), info))
}

/// Run `hark eval`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dataset = load_dataset(&args.dataset, args.format)
        .with_context(|| format!("reading dataset {}", args.dataset.display()))?;
    report_dataset_problems(&dataset.summary);
    if dataset.utterances.is_empty() {
        anyhow::bail!(
            "dataset {} has no usable utterances",
            args.dataset.display()
        );
    }

    let (mut transcribe, info, model_name): (UtteranceTranscriber, ModelInfo, String) =
        match &args.hypotheses {
            Some(path) => {
                let hyps = read_hypotheses(path)?;
                let f = move |u: &Utterance| -> Result<Transcription, TranscribeError> {
                    let text = hyps
                        .get(&u.id)
                        .cloned()
                        .ok_or_else(|| format!("no hypothesis for utterance {:?}", u.id))?;
                    Ok(Transcription {
                        text,
                        audio_seconds: u.duration.unwrap_or(0.0),
                    })
                };
                (
                    Box::new(f),
                    ModelInfo::default(),
                    format!("hypotheses:{}", path.display()),
                )
            }
            None => {
                let mopts = ModelOptions {
                    language: args.language.clone(),
                    beam: args.beam,
                    precision: args.precision,
                    threads: args.threads,
                    device: args.device,
                    chunk_ms: args.chunk_ms,
                };
                let (mut model, info) = load_transcriber(&args.model, &mopts)?;
                let f = move |u: &Utterance| -> Result<Transcription, TranscribeError> {
                    let samples = load_utterance_audio(u)?;
                    let seconds = samples.len() as f64 / f64::from(hark_audio::TARGET_SAMPLE_RATE);
                    let text = model(&samples).map_err(|e| format!("{e:#}"))?;
                    Ok(Transcription {
                        text,
                        audio_seconds: seconds,
                    })
                };
                (Box::new(f), info, args.model.clone())
            }
        };

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = Arc::clone(&cancel);
        // A second Ctrl-C (or a handler that cannot be installed) falls back to the
        // default behaviour of exiting at once.
        let _ = ctrlc::set_handler(move || {
            if cancel.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!(
                "\nhark eval: stopping after the current utterance (Ctrl-C again to quit now)"
            );
        });
    }

    let total = args
        .limit
        .unwrap_or(usize::MAX)
        .min(dataset.utterances.len());
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let options = EvalOptions {
        normalizer: args.normalizer,
        limit: args.limit,
    };
    let mut report = evaluate(
        &dataset,
        &mut *transcribe,
        &options,
        &mut |p| {
            bar.set_position(p.done as u64);
            bar.set_message(format!("WER {:.2}%", 100.0 * p.wer));
        },
        &cancel,
    );
    bar.finish_and_clear();
    report.model = model_name;
    report.precision = info.precision;
    report.threads = info.threads;
    report.decoding = info.decoding;
    report.model_load_seconds = info.load_seconds;
    if args.hypotheses.is_none() {
        report.isa = hark_engine::kernels::kernels().isa.name().to_string();
    }

    if let Some(path) = &args.report {
        write_report(&report, path)?;
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &json_summary(&report)?)
            .context("writing the JSON summary")?;
        writeln!(out).context("writing the JSON report")?;
    } else {
        print!("{}", summary_table(&report));
        if let Some(path) = &args.report {
            println!("report: {}", path.display());
        }
    }
    Ok(if report.cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Decode an utterance's audio to 16 kHz mono, cutting its segment if it has one.
fn load_utterance_audio(u: &Utterance) -> Result<Vec<f32>, TranscribeError> {
    let samples = hark_audio::load_audio(&u.audio)?;
    let Some(seg) = u.segment else {
        return Ok(samples);
    };
    let sr = f64::from(hark_audio::TARGET_SAMPLE_RATE);
    let a = ((seg.start * sr).round().max(0.0) as usize).min(samples.len());
    let b = ((seg.end * sr).round().max(0.0) as usize).clamp(a, samples.len());
    Ok(samples[a..b].to_vec())
}

/// `<id> <text>` lines, or JSON lines with `id` and `text`.
fn read_hypotheses(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: invalid JSON", path.display(), n + 1))?;
            let id = match &v["id"] {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => anyhow::bail!("{}:{}: no \"id\"", path.display(), n + 1),
                other => other.to_string(),
            };
            let t = v["text"].as_str().unwrap_or_default().to_string();
            out.insert(id, t);
        } else {
            let (id, t) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            out.insert(id.to_string(), t.trim().to_string());
        }
    }
    Ok(out)
}

/// The report without its per-utterance results (their count stays, as
/// `utterance_count`).
fn json_summary(report: &EvalReport) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(report).context("serialising the report")?;
    if let Some(obj) = v.as_object_mut() {
        obj.remove("utterances");
        obj.insert(
            "utterance_count".into(),
            serde_json::Value::from(report.utterances.len()),
        );
    }
    Ok(v)
}

fn write_report(report: &EvalReport, path: &Path) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer_pretty(&mut w, report)
        .with_context(|| format!("writing {}", path.display()))?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn report_dataset_problems(s: &hark_models::eval::DatasetSummary) {
    let show = |what: &str, ids: &[String]| {
        if ids.is_empty() {
            return;
        }
        let head: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        let more = if ids.len() > 5 {
            format!(", ... ({} more)", ids.len() - 5)
        } else {
            String::new()
        };
        eprintln!(
            "hark eval: warning: {} {what}: {}{more}",
            ids.len(),
            head.join(", ")
        );
    };
    show("utterances with missing audio (skipped)", &s.missing_audio);
    show(
        "utterances without a transcript (skipped)",
        &s.missing_transcript,
    );
    show(
        "transcripts without audio (skipped)",
        &s.transcript_without_audio,
    );
    show("empty transcripts (scored)", &s.empty_transcript);
}

/// The human summary.
fn summary_table(r: &EvalReport) -> String {
    let mut s = String::new();
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    s.push_str(&format!(
        "dataset     {} ({}, {} utterances{})\n",
        r.dataset.display(),
        r.format,
        r.utterances.len(),
        if r.cancelled {
            ", CANCELLED: partial"
        } else {
            ""
        }
    ));
    s.push_str(&format!("model       {}", r.model));
    if !r.precision.is_empty() {
        s.push_str(&format!(
            " ({}, {} threads, {})",
            r.precision, r.threads, r.isa
        ));
    }
    s.push('\n');
    s.push_str(&format!("normalizer  {}\n", r.normalizer));
    s.push_str(&format!(
        "\n{:<6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}\n",
        "", "rate", "ref", "hits", "sub", "del", "ins"
    ));
    for (name, c, rate) in [("WER", &r.words, r.wer), ("CER", &r.chars, r.cer)] {
        s.push_str(&format!(
            "{:<6} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7}\n",
            name,
            pct(rate),
            c.reference_len(),
            c.hits,
            c.substitutions,
            c.deletions,
            c.insertions
        ));
    }
    let wrong = r
        .utterances
        .iter()
        .filter(|u| u.error.is_none() && u.words.errors() > 0)
        .count();
    s.push_str(&format!(
        "SER    {:>8} ({wrong}/{} utterances with errors)\n",
        pct(r.ser),
        r.scored
    ));
    if r.failed > 0 {
        s.push_str(&format!(
            "failed {:>8} utterances (transcription errors, not scored)\n",
            r.failed
        ));
    }
    s.push_str(&format!(
        "\naudio {:.1} s, wall {:.1} s (+ model load {:.1} s), RTF {:.3}",
        r.audio_seconds, r.wall_seconds, r.model_load_seconds, r.rtf
    ));
    if let Some(m) = r.peak_memory_bytes {
        s.push_str(&format!(
            ", peak memory {:.0} MiB",
            m as f64 / (1024.0 * 1024.0)
        ));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_summary_has_reproducibility_fields_and_no_utterances() {
        use hark_models::eval::{Dataset, DatasetSummary};
        let ds = Dataset {
            path: PathBuf::from("synthetic"),
            format: hark_models::eval::DatasetFormat::Jsonl,
            utterances: vec![Utterance {
                id: "u1".into(),
                audio: PathBuf::from("u1.wav"),
                text: "hello world".into(),
                segment: None,
                duration: Some(2.0),
            }],
            summary: DatasetSummary {
                utterances: 1,
                ..Default::default()
            },
        };
        let mut t = |_: &Utterance| -> Result<Transcription, TranscribeError> {
            Ok(Transcription {
                text: "hello word".into(),
                audio_seconds: 2.0,
            })
        };
        let opts = EvalOptions {
            normalizer: Normalizer::Basic,
            limit: None,
        };
        let mut r = evaluate(&ds, &mut t, &opts, &mut |_| {}, &AtomicBool::new(false));
        r.model = "m".into();
        r.precision = "int8".into();
        r.threads = 2;
        r.isa = "avx2".into();
        let v = json_summary(&r).expect("summary");
        for key in [
            "wer",
            "cer",
            "ser",
            "rtf",
            "audio_seconds",
            "wall_seconds",
            "peak_memory_bytes",
            "model",
            "precision",
            "threads",
            "decoding",
            "hark_version",
            "model_load_seconds",
            "isa",
            "cpus",
            "dataset_summary",
        ] {
            assert!(v.get(key).is_some(), "missing {key}: {v}");
        }
        assert!(v.get("utterances").is_none());
        assert_eq!(v["utterance_count"], 1);
        assert_eq!(v["wer"], 0.5);
    }

    #[test]
    fn hypotheses_file_accepts_kaldi_lines_and_json_lines() {
        let p = std::env::temp_dir().join(format!("hark-eval-hyp-{}.txt", std::process::id()));
        std::fs::write(
            &p,
            "a hello world\nb\n{\"id\": \"c\", \"text\": \"json text\"}\n{\"id\": 4, \"text\": \"num\"}\n",
        )
        .expect("write");
        let h = read_hypotheses(&p).expect("read");
        assert_eq!(h["a"], "hello world");
        assert_eq!(h["b"], "");
        assert_eq!(h["c"], "json text");
        assert_eq!(h["4"], "num");
        std::fs::write(&p, "{\"text\": \"no id\"}\n").expect("write");
        assert!(read_hypotheses(&p).is_err());
        let _ = std::fs::remove_file(&p);
    }
}
