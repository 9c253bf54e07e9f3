//! `hark features FILE`: Kaldi fbank (or spectrogram/MFCC) or Whisper log-mel of an
//! audio file, written as a Kaldi text archive (`copy-feats ark,t:` layout, key =
//! file stem) or `.npy`. Options that do not apply to the chosen kind are
//! rejected rather than silently ignored.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hark_audio::features::fbank::{
    FbankOptions, FrameComputer, FrameExtractionOptions, MfccOptions, SpectrogramOptions,
};
use hark_audio::features::output::{write_kaldi_text, write_npy};
use hark_audio::features::whisper::{log_mel_spectrogram, FASTER_WHISPER_PADDING};

/// Feature kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Kaldi filter bank (`compute-fbank-feats`), int16-scale input.
    Fbank,
    /// Kaldi log power spectrogram (`compute-spectrogram-feats`), bin 0 = log energy.
    Spectrogram,
    /// Kaldi MFCC (`compute-mfcc-feats`, 13 cepstra, C0 = log energy).
    Mfcc,
    /// Whisper log-mel (faster-whisper's FeatureExtractor), `[n_mels, n_frames]`.
    WhisperMel,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Kaldi text archive, one row per frame (Whisper: one row per mel bin).
    KaldiText,
    /// NumPy `.npy` f32 (fbank `[frames, bins]`, Whisper `[n_mels, frames]`).
    Npy,
}

/// Arguments of `hark features`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audio file (WAV, FLAC, MP3, OGG, ...).
    pub file: PathBuf,
    /// Feature kind.
    #[arg(long, value_enum, default_value = "fbank")]
    pub kind: Kind,
    /// Number of mel bins (fbank default 23, Whisper default 80).
    #[arg(long)]
    pub num_mel_bins: Option<usize>,
    /// Dither (fbank only; 0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub dither: f32,
    /// Snip edges (fbank only).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub snip_edges: bool,
    /// Add log energy (fbank only).
    #[arg(long)]
    pub use_energy: bool,
    /// HTK compatibility: energy last (fbank and MFCC).
    #[arg(long)]
    pub htk_compat: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "kaldi-text")]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Rejects options that do not apply to the chosen kind (clap cannot express it).
fn check_options(args: &Args) -> anyhow::Result<()> {
    let kind = match args.kind {
        Kind::Fbank => return Ok(()),
        Kind::Spectrogram => "spectrogram",
        Kind::Mfcc => "mfcc",
        Kind::WhisperMel => "whisper-mel",
    };
    let mut bad = Vec::new();
    if args.use_energy {
        bad.push("--use-energy");
    }
    if args.kind == Kind::Spectrogram {
        if args.htk_compat {
            bad.push("--htk-compat");
        }
        if args.num_mel_bins.is_some() {
            bad.push("--num-mel-bins");
        }
    }
    if args.kind == Kind::WhisperMel {
        if args.htk_compat {
            bad.push("--htk-compat");
        }
        if args.dither != 0.0 {
            bad.push("--dither");
        }
        if !args.snip_edges {
            bad.push("--snip-edges");
        }
    }
    if !bad.is_empty() {
        anyhow::bail!("{} not valid with --kind {kind}", bad.join(", "));
    }
    Ok(())
}

/// Kaldi framing options from the flags.
fn frame_opts(args: &Args) -> FrameExtractionOptions {
    FrameExtractionOptions {
        dither: args.dither,
        snip_edges: args.snip_edges,
        ..Default::default()
    }
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_options(&args)?;
    let samples = hark_audio::load_audio(&args.file)?;
    let kaldi = |fc: FrameComputer| -> anyhow::Result<(Vec<f32>, usize, usize)> {
        // Kaldi reads WAV samples as int16-scale values.
        let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
        let f = fc.compute(&scaled)?;
        if f.n_frames == 0 {
            anyhow::bail!(
                "{}: signal of {} samples ({:.3} s) is shorter than one frame",
                args.file.display(),
                samples.len(),
                samples.len() as f64 / hark_audio::TARGET_SAMPLE_RATE as f64
            );
        }
        Ok((f.data, f.n_frames, f.dim))
    };
    let (data, rows, cols) = match args.kind {
        Kind::Fbank => {
            let mut o = FbankOptions::with_bins(args.num_mel_bins.unwrap_or(23));
            o.frame_opts = frame_opts(&args);
            o.use_energy = args.use_energy;
            o.htk_compat = args.htk_compat;
            kaldi(FrameComputer::new(o)?)?
        }
        Kind::Spectrogram => kaldi(FrameComputer::spectrogram(SpectrogramOptions {
            frame_opts: frame_opts(&args),
            ..Default::default()
        })?)?,
        Kind::Mfcc => {
            let mut o = MfccOptions {
                frame_opts: frame_opts(&args),
                htk_compat: args.htk_compat,
                ..Default::default()
            };
            if let Some(n) = args.num_mel_bins {
                o.mel_opts.num_bins = n;
            }
            kaldi(FrameComputer::mfcc(o)?)?
        }
        Kind::WhisperMel => {
            let m = log_mel_spectrogram(
                &samples,
                args.num_mel_bins.unwrap_or(80),
                FASTER_WHISPER_PADDING,
            )?;
            (m.data, m.n_mels, m.n_frames)
        }
    };
    let key = args
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "utt".into());
    let mut sink: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = match args.format {
        Format::KaldiText => write_kaldi_text(&mut sink, &key, &data, rows, cols),
        Format::Npy => write_npy(&mut sink, &data, rows, cols),
    }
    .and_then(|_| sink.flush());
    match written {
        // `hark features x.wav | head` closes the pipe early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("writing features")?,
    }
    Ok(ExitCode::SUCCESS)
}
