//! `hark devices`: list audio input devices (name, default marker, native rate/channels)
//! and the compute devices `--device` can pick.

use std::process::ExitCode;

/// Arguments of `hark devices`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the subcommand.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let devices = hark_audio::capture::list_input_devices()?;
    if devices.is_empty() {
        println!("No audio input devices found (no microphone is available to the audio host).");
        print_compute_devices();
        return Ok(ExitCode::SUCCESS);
    }
    println!("Audio input devices:");
    for d in &devices {
        println!(
            "  {} {}  ({} Hz, {} ch, {})",
            if d.is_default { "*" } else { " " },
            d.name,
            d.sample_rate,
            d.channels,
            d.sample_format
        );
    }
    println!("(* = default input device)");
    print_compute_devices();
    Ok(ExitCode::SUCCESS)
}

fn print_compute_devices() {
    println!("Compute devices (--device auto|cpu|gpu):");
    for d in crate::device::compute_devices() {
        println!("  {d}");
    }
}
