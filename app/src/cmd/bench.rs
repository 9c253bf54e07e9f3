//! `hark bench`: hark against a peer engine on the same files, in one run.
//!
//! hark runs in this process (so its peak memory is this process's `VmHWM`, read before
//! the peer starts) with per-stage timings from [`TranscriptionInfo`]; the peer runs as a
//! child under `/usr/bin/time -v` (its peak RSS is the child's maximum resident set), on
//! the same files with the same beam and threads. The report gives both, their ratios
//! (hark / peer: below 1 is better for hark) and how many transcripts are identical.
//!
//! The peer is faster-whisper through `../shared/peers/run_faster_whisper.py` (the
//! project's peer runner; `--peer-script` or `$HARK_PEERS` point elsewhere) with a
//! CTranslate2 model directory (`--peer-model`). Without `--peer-model` only hark runs.
//! Timing figures mean something only on an otherwise idle machine; the report prints the
//! load average at the start so a busy machine is visible.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context};
use hark_engine::delegate::Executor;
use hark_models::recognizer::Recognizer;
use hark_models::whisper::{Precision, TranscribeOptions};

use super::transcribe::collect_inputs;
use crate::device::{delegates_timed, Device, PhaseTimes};

/// Arguments of `hark bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio files or directories.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model name or directory.
    #[arg(long, default_value = "tiny.en")]
    pub model: String,
    /// Weight precision at run time (default: as stored).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Beam size (1 = greedy).
    #[arg(long, default_value_t = 5)]
    pub beam: usize,
    /// Compute threads (hark and the peer).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use at most N files.
    #[arg(long)]
    pub limit: Option<usize>,
    /// CTranslate2 model directory for faster-whisper (the same model as `--model`).
    #[arg(long)]
    pub peer_model: Option<PathBuf>,
    /// faster-whisper compute type (default: int8 for an int8 run, else float32, since
    /// CTranslate2 has no float16 on CPU).
    #[arg(long)]
    pub peer_compute_type: Option<String>,
    /// The peer runner script (default: `$HARK_PEERS/run_faster_whisper.py`, else
    /// `../shared/peers/run_faster_whisper.py`).
    #[arg(long)]
    pub peer_script: Option<PathBuf>,
    /// Python interpreter for the peer.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Where the heavy stages run (auto: a hardware GPU if present).
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// hark's side of the run.
#[derive(Debug, Default)]
struct HarkRun {
    load_s: f64,
    decode_audio_s: f64,
    features_s: f64,
    encoder_s: f64,
    decoder_s: f64,
    total_s: f64,
    audio_s: f64,
    peak_rss: Option<u64>,
    texts: Vec<String>,
    /// Where the encoder ran ("cpu" or the delegate's name).
    encoder_on: String,
    /// Where the decoder steps ran ("cpu" or the delegate's name).
    decoder_on: String,
    /// Per-phase times of the GPU encoder stages (upload / kernels / download), when any ran.
    gpu: Option<PhaseTimes>,
    /// Per-phase times of the decoder steps run on the GPU, when any ran.
    gpu_decoder: Option<PhaseTimes>,
}

/// The peer's side of the run.
#[derive(Debug, Default)]
struct PeerRun {
    name: String,
    load_s: f64,
    total_s: f64,
    peak_rss: Option<u64>,
    texts: Vec<String>,
}

fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn run_hark(args: &Args, files: &[PathBuf]) -> anyhow::Result<(HarkRun, String, String)> {
    let mut r = HarkRun::default();
    let t = Instant::now();
    let progress = crate::cmd::models::BarProgress::default();
    let dir = hark_models::store::ensure_model(&args.model, &progress)
        .with_context(|| format!("resolving model `{}`", args.model))?;
    let mut rec = Recognizer::load(&dir, args.precision)
        .with_context(|| format!("loading model {}", dir.display()))?;
    let (delegates, clock) = delegates_timed(&dir, args.device)?;
    rec.set_delegates(delegates);
    let precision = args.precision.unwrap_or(
        hark_models::recognizer::model_facts(&dir)
            .map(|f| f.stored_precision)
            .unwrap_or(Precision::F32),
    );
    r.load_s = t.elapsed().as_secs_f64();
    let opts = TranscribeOptions {
        beam_size: args.beam,
        ..Default::default()
    };
    let t_all = Instant::now();
    for f in files {
        let t = Instant::now();
        let samples =
            hark_audio::load_audio(f).with_context(|| format!("decoding {}", f.display()))?;
        r.decode_audio_s += t.elapsed().as_secs_f64();
        r.audio_s += samples.len() as f64 / f64::from(hark_audio::TARGET_SAMPLE_RATE);
        let mut texts = Vec::new();
        let info = rec
            .transcribe(&samples, &opts, &mut |s| {
                let t = s.text.trim();
                if !t.is_empty() {
                    texts.push(t.to_string());
                }
            })
            .with_context(|| format!("transcribing {}", f.display()))?;
        r.features_s += info.features_s;
        r.encoder_s += info.encoder_s;
        r.decoder_s += info.decoder_s;
        r.texts.push(texts.join(" "));
    }
    r.total_s = t_all.elapsed().as_secs_f64();
    r.peak_rss = peak_rss_bytes();
    r.gpu = clock.read().filter(|p| p.stages > 0);
    r.gpu_decoder = clock.read_decoder().filter(|p| p.stages > 0);
    let on = |e: Option<Executor>| match e {
        Some(Executor::Delegate(name)) => name,
        _ => "cpu".to_string(),
    };
    r.encoder_on = on(rec.last_encoder_executor());
    r.decoder_on = on(rec.last_decoder_executor());
    Ok((r, rec.family().to_string(), precision.to_string()))
}

fn peer_script(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.peer_script {
        return Ok(p.clone());
    }
    let candidates = [
        std::env::var_os("HARK_PEERS").map(|d| PathBuf::from(d).join("run_faster_whisper.py")),
        Some(PathBuf::from("../shared/peers/run_faster_whisper.py")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .context("the faster-whisper runner was not found: pass --peer-script PATH or set HARK_PEERS to the directory holding run_faster_whisper.py")
}

/// `Maximum resident set size (kbytes): N` from `/usr/bin/time -v`, in bytes.
fn parse_time_v_rss(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find(|l| l.trim_start().starts_with("Maximum resident set size"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn run_peer(
    args: &Args,
    files: &[PathBuf],
    model: &Path,
    precision: &str,
) -> anyhow::Result<PeerRun> {
    let script = peer_script(args)?;
    let compute = args.peer_compute_type.clone().unwrap_or_else(|| {
        if precision == "int8" {
            "int8".into()
        } else {
            "float32".into()
        }
    });
    let threads = args
        .threads
        .unwrap_or_else(hark_engine::threads::default_threads);
    let time_v = Path::new("/usr/bin/time");
    let mut cmd = if time_v.is_file() {
        let mut c = Command::new(time_v);
        c.arg("-v").arg(&args.python);
        c
    } else {
        Command::new(&args.python)
    };
    cmd.arg(&script)
        .arg("--model")
        .arg(model)
        .args(["--compute-type", &compute])
        .args(["--beam", &args.beam.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(files);
    let out = cmd
        .output()
        .with_context(|| format!("running {} {}", args.python, script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        bail!(
            "faster-whisper failed ({}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let mut run = PeerRun {
        name: format!("faster-whisper {compute}"),
        peak_rss: parse_time_v_rss(&stderr),
        ..Default::default()
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(s) = v.get("summary") {
            run.load_s = s.get("load_s").and_then(|x| x.as_f64()).unwrap_or(0.0);
        } else if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
            run.texts.push(t.trim().to_string());
            run.total_s += v.get("seconds").and_then(|x| x.as_f64()).unwrap_or(0.0);
        }
    }
    if run.texts.len() != files.len() {
        bail!(
            "faster-whisper returned {} transcripts for {} files",
            run.texts.len(),
            files.len()
        );
    }
    Ok(run)
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)))
        .unwrap_or_else(|| "?".into())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("x{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// Run `hark bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.beam == 0 {
        bail!("--beam must be at least 1");
    }
    if let Some(n) = args.threads {
        hark_models::whisper::set_threads(n).context("setting --threads")?;
    }
    let mut files = collect_inputs(&args.inputs)?;
    if let Some(n) = args.limit {
        files.truncate(n);
    }
    if files.is_empty() {
        bail!("no audio files to benchmark");
    }
    let load = load_average();
    let (hark, family, precision) = run_hark(&args, &files)?;
    let peer = match &args.peer_model {
        Some(m) => Some(run_peer(&args, &files, m, &precision)?),
        None => None,
    };
    let threads = hark_engine::threads::pool().threads();
    let identical = peer.as_ref().map(|p| {
        hark.texts
            .iter()
            .zip(&p.texts)
            .filter(|(a, b)| a == b)
            .count()
    });
    if args.json {
        let v = serde_json::json!({
            "files": files.len(), "audio_s": hark.audio_s, "model": args.model,
            "family": family, "precision": precision, "beam": args.beam, "threads": threads,
            "load_average": load,
            "hark": {
                "load_s": hark.load_s, "decode_audio_s": hark.decode_audio_s,
                "features_s": hark.features_s, "encoder_s": hark.encoder_s,
                "decoder_s": hark.decoder_s, "total_s": hark.total_s,
                "rtf": hark.total_s / hark.audio_s.max(1e-9), "peak_rss_bytes": hark.peak_rss,
                "encoder_on": hark.encoder_on, "decoder_on": hark.decoder_on,
                "gpu": hark.gpu.map(phase_json),
                "gpu_decoder": hark.gpu_decoder.map(phase_json),
            },
            "peer": peer.as_ref().map(|p| serde_json::json!({
                "name": p.name, "load_s": p.load_s, "total_s": p.total_s,
                "rtf": p.total_s / hark.audio_s.max(1e-9), "peak_rss_bytes": p.peak_rss,
                "time_ratio": hark.total_s / p.total_s.max(1e-9),
                "rss_ratio": match (hark.peak_rss, p.peak_rss) {
                    (Some(a), Some(b)) if b > 0 => Some(a as f64 / b as f64), _ => None },
                "identical_transcripts": identical,
            })),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "hark bench: {} files, {:.1} s of audio; model {} ({family}), {precision}, beam {}, {threads} threads; load average {}",
        files.len(),
        hark.audio_s,
        args.model,
        args.beam,
        load.as_deref().unwrap_or("?")
    );
    println!(
        "hark stages (s), encoder on {}, decoder on {}:",
        hark.encoder_on, hark.decoder_on
    );
    for (name, v) in [
        ("model load", hark.load_s),
        ("audio decode", hark.decode_audio_s),
        ("features", hark.features_s),
        ("encoder", hark.encoder_s),
        ("decoder", hark.decoder_s),
        ("total (no load)", hark.total_s),
    ] {
        println!("  {name:<16} {v:>9.3}");
    }
    for (g, what) in [
        (&hark.gpu, "GPU encoder, {} stages (part of \"encoder\"):"),
        (
            &hark.gpu_decoder,
            "GPU decoder, {} steps (part of \"decoder\"):",
        ),
    ] {
        let Some(g) = g else { continue };
        println!("  {}", what.replace("{}", &g.stages.to_string()));
        for (name, v) in [
            ("upload", g.upload_s),
            ("kernels", g.kernels_s),
            ("download", g.download_s),
        ] {
            println!("    {name:<14} {v:>9.3}");
        }
    }
    println!(
        "  {:<16} {:>9.3}\n  {:<16} {:>9}",
        "RTF",
        hark.total_s / hark.audio_s.max(1e-9),
        "peak RSS (MiB)",
        mib(hark.peak_rss)
    );
    match &peer {
        Some(p) => {
            println!("\nhark vs {} (ratio = hark / peer)", p.name);
            println!(
                "{:<22} {:>10} {:>10} {:>8}",
                "", "hark", "peer", "ratio"
            );
            println!(
                "{:<22} {:>10.3} {:>10.3} {:>8}",
                "time, s (no load)",
                hark.total_s,
                p.total_s,
                ratio(hark.total_s, p.total_s)
            );
            println!(
                "{:<22} {:>10.3} {:>10.3} {:>8}",
                "model load, s",
                hark.load_s,
                p.load_s,
                ratio(hark.load_s, p.load_s)
            );
            let r = match (hark.peak_rss, p.peak_rss) {
                (Some(a), Some(b)) => ratio(a as f64, b as f64),
                _ => "-".into(),
            };
            println!(
                "{:<22} {:>10} {:>10} {:>8}",
                "peak RSS, MiB",
                mib(hark.peak_rss),
                mib(p.peak_rss),
                r
            );
            println!(
                "identical transcripts: {}/{}",
                identical.unwrap_or(0),
                files.len()
            );
        }
        None => println!(
            "\n(no peer: pass --peer-model DIR, a CTranslate2 copy of the same model, to compare with faster-whisper)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON form of one [`PhaseTimes`].
fn phase_json(g: PhaseTimes) -> serde_json::Value {
    serde_json::json!({
        "stages": g.stages, "upload_s": g.upload_s, "kernels_s": g.kernels_s,
        "download_s": g.download_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_v_rss_is_parsed_in_bytes() {
        let s = "\tCommand being timed: \"python3 x\"\n\tMaximum resident set size (kbytes): 123456\n\tExit status: 0\n";
        assert_eq!(parse_time_v_rss(s), Some(123456 * 1024));
        assert_eq!(parse_time_v_rss("nothing here"), None);
    }
}
