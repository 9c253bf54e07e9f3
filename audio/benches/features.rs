//! Throughput of the audio front end at real shapes: Kaldi fbank (80 bins, as
//! conformer models use), Whisper log-mel (80 and 128 bins, 30 s window), and the
//! resampler (44.1 and 48 kHz -> 16 kHz). Each benchmark processes 10 s of audio;
//! criterion's element throughput is frames (or output samples) per second, and
//! seconds of audio per CPU second = 10 s / time per iteration.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hark_audio::features::fbank::{FbankOptions, FrameComputer};
use hark_audio::features::whisper::{WhisperMel, FASTER_WHISPER_PADDING, N_SAMPLES};
use hark_audio::resample::resample;

const SECONDS: usize = 10;

fn speechlike(rate: usize, seconds: usize) -> Vec<f32> {
    let mut s = 12345u64;
    (0..rate * seconds)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.05;
            let t = i as f32 / rate as f32;
            noise + 0.3 * (2.0 * std::f32::consts::PI * (150.0 + 50.0 * (t * 3.0).sin()) * t).sin()
        })
        .collect()
}

fn fbank(c: &mut Criterion) {
    let x: Vec<f32> = speechlike(16000, SECONDS)
        .iter()
        .map(|v| v * 32768.0)
        .collect();
    let mut g = c.benchmark_group("fbank_10s");
    for bins in [23usize, 80] {
        let fb = FrameComputer::new(FbankOptions::with_bins(bins)).expect("fbank");
        let frames = fb.frame_opts().num_frames(x.len(), true);
        g.throughput(Throughput::Elements(frames as u64));
        g.bench_with_input(BenchmarkId::new("bins", bins), &x, |b, x| {
            b.iter(|| fb.compute(black_box(x)).expect("fbank"))
        });
    }
    g.finish();
}

fn whisper_mel(c: &mut Criterion) {
    let x = speechlike(16000, SECONDS);
    let mut g = c.benchmark_group("whisper_log_mel_10s");
    for n_mels in [80usize, 128] {
        let m = WhisperMel::new(n_mels).expect("mel");
        let frames = WhisperMel::num_frames(x.len(), FASTER_WHISPER_PADDING);
        g.throughput(Throughput::Elements(frames as u64));
        g.bench_with_input(BenchmarkId::new("n_mels", n_mels), &x, |b, x| {
            b.iter(|| {
                m.compute(black_box(x), FASTER_WHISPER_PADDING)
                    .expect("mel")
            })
        });
    }
    g.finish();
    // openai-whisper style: 30 s of zero padding appended (3000 extra frames).
    let m = WhisperMel::new(80).expect("mel");
    let mut g = c.benchmark_group("whisper_log_mel_10s_plus_30s_pad");
    g.throughput(Throughput::Elements(
        WhisperMel::num_frames(x.len(), N_SAMPLES) as u64,
    ));
    g.bench_function("n_mels/80", |b| {
        b.iter(|| m.compute(black_box(&x), N_SAMPLES).expect("mel"))
    });
    g.finish();
}

fn resampler(c: &mut Criterion) {
    let mut g = c.benchmark_group("resample_10s_to_16k");
    for rate in [44100usize, 48000, 8000] {
        let x = speechlike(rate, SECONDS);
        g.throughput(Throughput::Elements((16000 * SECONDS) as u64));
        g.bench_with_input(BenchmarkId::new("from_hz", rate), &x, |b, x| {
            b.iter(|| resample(black_box(x), rate as u32, 16000).expect("resample"))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

/// The generated group function has no doc comment of its own.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = config();
        targets = fbank, whisper_mel, resampler
    }
}
criterion_main!(group::benches);
