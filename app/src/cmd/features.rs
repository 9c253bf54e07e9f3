//! `hark features FILE`: Kaldi fbank or Whisper log-mel of an audio file, written
//! as a Kaldi text archive (`copy-feats ark,t:` layout, key = file stem) or `.npy`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hark_audio::features::fbank::{FbankOptions, FrameComputer};
use hark_audio::features::output::{write_kaldi_text, write_npy};
use hark_audio::features::whisper::{log_mel_spectrogram, FASTER_WHISPER_PADDING};

/// Feature kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Kaldi filter bank (`compute-fbank-feats`), int16-scale input.
    Fbank,
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
    /// HTK compatibility: energy last (fbank only).
    #[arg(long)]
    pub htk_compat: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "kaldi-text")]
    pub format: Format,
    /// Output file (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Run the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let samples = hark_audio::load_audio(&args.file)?;
    let (data, rows, cols) = match args.kind {
        Kind::Fbank => {
            let mut o = FbankOptions::with_bins(args.num_mel_bins.unwrap_or(23));
            o.frame_opts.dither = args.dither;
            o.frame_opts.snip_edges = args.snip_edges;
            o.use_energy = args.use_energy;
            o.htk_compat = args.htk_compat;
            let fb = FrameComputer::new(o)?;
            // Kaldi reads WAV samples as int16-scale values.
            let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
            let f = fb.compute(&scaled)?;
            if f.n_frames == 0 {
                anyhow::bail!(
                    "{}: signal of {} samples is shorter than one frame",
                    args.file.display(),
                    samples.len()
                );
            }
            (f.data, f.n_frames, f.dim)
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
