//! `hark`: the command-line front end.
//!
//! `main` only turns flags into a validated command and reports errors; each
//! subcommand lives in its own module under `cmd/` and owns its `Args`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod batch;
mod cmd;
mod device;
mod listen;

/// hark: fast, exact local speech recognition.
#[derive(Debug, Parser)]
#[command(name = "hark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compute acoustic features (Kaldi fbank or Whisper log-mel) of an audio file.
    Features(cmd::features::Args),
    /// List audio input devices and compute devices.
    Devices(cmd::devices::Args),
    /// Transcribe audio files or directories.
    Transcribe(cmd::transcribe::Args),
    /// Manage models: list, pull, info, rm, import.
    Models(cmd::models::Args),
    /// Evaluate a model on a test set (WER/CER).
    Eval(cmd::eval::Args),
    /// Live dictation from a microphone (or a file replayed at real time).
    Listen(cmd::listen::Args),
    /// Benchmark hark against faster-whisper on the same files (time, memory, ratios).
    Bench(cmd::bench::Args),
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Features(a) => cmd::features::run(a),
        Command::Devices(a) => cmd::devices::run(a),
        Command::Transcribe(a) => cmd::transcribe::run(a),
        Command::Models(a) => cmd::models::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Listen(a) => cmd::listen::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    }
}

fn main() -> ExitCode {
    quiet_vulkan_device_select();
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hark: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan device-select layer (loaded whenever Mesa's drivers are installed)
/// connects to the Wayland display to rank GPUs, and libwayland prints "error:
/// XDG_RUNTIME_DIR is invalid or not set" on headless machines and in CI, on every run
/// that probes for a GPU. hark ranks adapters itself (`device.rs`), so the layer is
/// disabled (its documented `NODEVICE_SELECT` switch) unless the user set it.
fn quiet_vulkan_device_select() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // Called first thing in main, before any thread exists.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}
