//! Prints the GPU Whisper encoder's per-phase times for one 30 s window, next to the CPU
//! encoder's, until `hark bench --device gpu` exists:
//! `cargo run --release -p hark-gpu --example encoder_times -- ~/.cache/hark/models/tiny.en [runs]`

use std::path::PathBuf;
use std::time::Instant;

use hark_gpu::whisper::WhisperEncoderDelegate;
use hark_gpu::{DevicePreference, GpuContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: encoder_times <model dir> [runs]")?,
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(2);
    let ctx = GpuContext::new(DevicePreference::Any)?;
    println!("adapter: {:?}", ctx.adapter());
    let t0 = Instant::now();
    let enc = WhisperEncoderDelegate::load(ctx, &dir)?;
    println!(
        "load + upload: {:.2?} ({} MB of weights on the device)",
        t0.elapsed(),
        enc.weight_bytes() / 1_000_000
    );
    let dm = enc.dims();
    // A deterministic pseudo-signal in the log-mel range.
    let mel: Vec<f32> = (0..dm.n_mels * 2 * dm.n_audio_ctx)
        .map(|i| (i as f32 * 0.37).sin() * 0.5 - 0.2)
        .collect();
    for run in 0..runs {
        let (_, t) = enc.encode_timed(&mel)?;
        println!(
            "run {run}: upload {:.2?}, kernels {:.2?}, download {:.2?}",
            t.upload, t.kernels, t.download
        );
    }
    Ok(())
}
