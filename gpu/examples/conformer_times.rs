//! Prints the GPU conformer encoder's per-phase times for inputs of several lengths (how
//! the time scales with frames tells per-dispatch overhead from per-frame work):
//! `cargo run --release -p hark-gpu --example conformer_times -- models/builtin/an4-conformer [runs]`

use std::path::PathBuf;

use hark_gpu::conformer::ConformerEncoderDelegate;
use hark_gpu::{DevicePreference, GpuContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: conformer_times <model dir> [runs]")?,
    );
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(2);
    let ctx = GpuContext::new(DevicePreference::Any)?;
    println!("adapter: {:?}", ctx.adapter());
    let enc = ConformerEncoderDelegate::load(ctx, &dir)?;
    let idim = enc.dims().idim;
    for frames in [100usize, 400, 1600] {
        // A deterministic pseudo-signal in the CMVN-normalised range.
        let feats: Vec<f32> = (0..frames * idim)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        for run in 0..runs {
            let (_, t, _, times) = enc.encode_timed(&feats)?;
            println!(
                "{frames} frames -> {t} encoder frames, run {run}: upload {:.2?}, kernels {:.2?}, download {:.2?}",
                times.upload, times.kernels, times.download
            );
        }
    }
    Ok(())
}
