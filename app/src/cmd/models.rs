//! `hark models`: list, pull, info, rm, import.
//!
//! All work happens in `hark_models::store`; this module parses flags, renders progress
//! with indicatif on stderr and prints results on stdout.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use hark_models::store::{self, ModelConfig, ModelStore, Progress, Unit};
use hark_models::whisper::config::Precision;

/// Arguments of `hark models`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List installed models and the built-in models that can be pulled.
    List,
    /// Download a built-in model (tiny.en, base) and convert it to hark's format.
    Pull {
        /// Built-in model name.
        name: String,
        /// Weight storage type: f32, f16 or int8 (default: as distributed, f16).
        #[arg(long, value_parser = parse_precision)]
        precision: Option<Precision>,
        /// Download and convert again even if the model is installed.
        #[arg(long)]
        force: bool,
    },
    /// Show an installed model's configuration and files.
    Info {
        /// Installed model name.
        name: String,
    },
    /// Delete an installed model.
    Rm {
        /// Installed model name.
        name: String,
    },
    /// Install a model directory into the store: a CTranslate2 or Hugging Face transformers
    /// Whisper directory (converted), or a hark model directory of any family (copied).
    Import {
        /// The directory (CT2: model.bin, config.json, tokenizer.json; transformers:
        /// model.safetensors, config.json, tokenizer.json; or a directory already in
        /// hark's format, e.g. a conformer written by scripts/convert_fireredasr.py or
        /// scripts/convert_wenet.py, installed as is).
        dir: PathBuf,
        /// Name in the store (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Weight storage type: f32, f16 or int8 (default: as in the source).
        #[arg(long, value_parser = parse_precision)]
        precision: Option<Precision>,
    },
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

/// Renders store progress as indicatif bars (bytes or tensors) or spinners on stderr.
#[derive(Default)]
pub struct BarProgress {
    bar: RefCell<Option<indicatif::ProgressBar>>,
}

impl Progress for BarProgress {
    fn begin(&self, step: &str, total: Option<u64>, unit: Unit) {
        let (bar, template) = match (total, unit) {
            (Some(t), Unit::Bytes) => (
                indicatif::ProgressBar::new(t),
                "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            ),
            (Some(t), Unit::Tensors) => (
                indicatif::ProgressBar::new(t),
                "{msg:32} [{bar:30}] {pos}/{len} tensors",
            ),
            (None, _) => (
                indicatif::ProgressBar::new_spinner(),
                "{spinner} {msg} ({elapsed})",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(step.to_string());
        if total.is_none() {
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        if let Some(old) = self.bar.replace(Some(bar)) {
            old.finish_and_clear();
        }
    }

    fn update(&self, done: u64) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.set_position(done);
        }
    }

    fn end(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Run `hark models`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = ModelStore::from_env()?;
    let progress = BarProgress::default();
    match args.command {
        Command::List => {
            let installed = store.list()?;
            println!("models in {}:", store.root().display());
            if installed.is_empty() {
                println!("  (none)");
            }
            for m in &installed {
                println!(
                    "  {:<16} {:<5} {:>10}  {}",
                    m.name,
                    m.config.precision().as_str(),
                    mib(m.size_bytes),
                    describe(&m.config),
                );
            }
            let available: Vec<(&str, &str)> = store::BUILTINS
                .iter()
                .map(|b| (b.name, b.description))
                .chain(
                    store::builtin::EMBEDDED
                        .iter()
                        .map(|e| (e.name, e.description)),
                )
                .filter(|(name, _)| !store.is_installed(name))
                .collect();
            if !available.is_empty() {
                println!("available (hark models pull NAME):");
                for (name, description) in available {
                    let default = if name == store::DEFAULT_MODEL {
                        " [default]"
                    } else {
                        ""
                    };
                    println!("  {name:<16} {description}{default}");
                }
            }
        }
        Command::Pull {
            name,
            precision,
            force,
        } => {
            let path = store
                .pull(&name, precision, force, &progress)
                .with_context(|| format!("pulling {name}"))?;
            println!("{name}: {}", path.display());
        }
        Command::Info { name } => {
            let m = store.info(&name)?;
            let c = match &m.config {
                ModelConfig::Whisper(c) => c,
                ModelConfig::ConformerAed(c) => {
                    println!("name:          {}", m.name);
                    println!("path:          {}", m.path.display());
                    println!("family:        conformer_aed (from {})", c.source);
                    println!("precision:     {}", m.config.precision());
                    println!("size:          {}", mib(m.size_bytes));
                    println!(
                        "encoder:       {} conformer blocks, {} heads, d={}, kernel {}, {} subsampling",
                        c.n_layers_enc, c.n_head, c.d_model, c.kernel_size, c.subsampling
                    );
                    println!("decoder:       {} layers, vocab {}", c.n_layers_dec, c.odim);
                    println!("features:      {}-bin Kaldi fbank + global CMVN", c.idim);
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let d = &c.dims;
            println!("name:          {}", m.name);
            println!("path:          {}", m.path.display());
            println!("family:        {} (format {})", c.family, c.format_version);
            println!("precision:     {}", c.precision);
            println!("size:          {}", mib(m.size_bytes));
            println!("multilingual:  {}", c.multilingual);
            println!(
                "encoder:       {} layers, {} heads, d={}, {} positions, {} mels",
                d.n_audio_layer, d.n_audio_head, d.n_audio_state, d.n_audio_ctx, d.n_mels
            );
            println!(
                "decoder:       {} layers, {} heads, d={}, {} positions, vocab {}",
                d.n_text_layer, d.n_text_head, d.n_text_state, d.n_text_ctx, d.n_vocab
            );
            println!(
                "source:        {} {} (sha256 {})",
                c.source.format, c.source.name, c.source.file_sha256
            );
            println!(
                "suppressed:    {} tokens (+{} at the first step)",
                c.suppress_tokens.len(),
                c.begin_suppress_tokens.len()
            );
            println!("languages:     {}", c.lang_ids.len());
            println!("align heads:   {}", c.alignment_heads.len());
        }
        Command::Rm { name } => {
            let path = store.remove(&name)?;
            println!("removed {}", path.display());
        }
        Command::Import {
            dir,
            name,
            precision,
        } => {
            let path = store
                .import(&dir, name.as_deref(), precision, &progress)
                .with_context(|| format!("importing {}", dir.display()))?;
            println!("imported {} -> {}", dir.display(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line describing a model's architecture, for `hark models list`.
fn describe(c: &ModelConfig) -> String {
    match c {
        ModelConfig::Whisper(c) => format!(
            "whisper {}x{} d={} vocab={}{}  ({} {})",
            c.dims.n_audio_layer,
            c.dims.n_text_layer,
            c.dims.n_audio_state,
            c.dims.n_vocab,
            if c.multilingual { " multilingual" } else { "" },
            c.source.format,
            c.source.name,
        ),
        ModelConfig::ConformerAed(c) => format!(
            "conformer_aed {}x{} d={} vocab={}  ({})",
            c.n_layers_enc, c.n_layers_dec, c.d_model, c.odim, c.source
        ),
    }
}
