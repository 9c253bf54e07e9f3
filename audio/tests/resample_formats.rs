//! The same speech at 8, 22.05, 44.1 and 48 kHz, mono and stereo, as WAV
//! (8/16/24/32-bit int and 32-bit float, written here from the FLAC), FLAC, MP3
//! and OGG/Vorbis, all decode and resample to 16 kHz; each result is compared with
//! a reference made by ffmpeg (decode) + sox `rate -v` (resample) by SNR >= 60 dB
//! in the passband (below 0.9 x the lower Nyquist frequency).
//! Fixtures and generator: `tests/fixtures/resample/`, `scripts/audio/gen_resample_fixtures.py`.

mod common;

use std::path::Path;

use rustfft::{num_complex::Complex, FftPlanner};

const RATES: [u32; 4] = [8000, 22050, 44100, 48000];

/// Power spectrum (f64) of `x` under a Hann window, zero-padded to a power of two.
fn windowed_power(x: &[f64]) -> Vec<f64> {
    let n = (x.len() * 2).next_power_of_two();
    let len = x.len() as f64;
    let mut buf: Vec<Complex<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * (i as f64 + 0.5) / len).cos();
            Complex::new(v * w, 0.0)
        })
        .collect();
    buf.resize(n, Complex::new(0.0, 0.0));
    FftPlanner::<f64>::new()
        .plan_fft_forward(n)
        .process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm_sqr()).collect()
}

/// SNR (dB) of `ours` against `reference` in the passband (below 0.9 x the lower
/// Nyquist frequency), from Hann-windowed spectra of the clip interior (20 ms
/// trimmed at each end, where two resamplers legitimately differ on a cut clip).
fn passband_snr(ours: &[f32], reference: &[f32], src_rate: u32) -> f64 {
    let cutoff = 0.9 * (src_rate.min(16000) as f64 / 2.0);
    let n = ours.len().min(reference.len());
    let edge = 320;
    let b: Vec<f64> = reference[edge..n - edge]
        .iter()
        .map(|&v| v as f64)
        .collect();
    let d: Vec<f64> = ours[edge..n - edge]
        .iter()
        .zip(&reference[edge..n - edge])
        .map(|(&o, &r)| o as f64 - r as f64)
        .collect();
    let (pb, pd) = (windowed_power(&b), windowed_power(&d));
    let bins = pb.len() * 2;
    let k_max = (cutoff / 16000.0 * bins as f64) as usize;
    let sig: f64 = pb[..k_max].iter().sum();
    let err: f64 = pd[..k_max].iter().sum();
    10.0 * (sig / err.max(1e-30)).log10()
}

fn reference(dir: &Path, rate: u32, ch: &str, fmt: &str) -> Vec<f32> {
    let p = dir.join(format!("ref/r{rate}_{ch}_{fmt}.flac"));
    hark_audio::decode_file(&p).expect("reference").samples
}

fn check(path: &Path, want: &[f32], rate: u32, min_snr: f64) {
    let got = hark_audio::load_audio(path).unwrap_or_else(|e| panic!("{e}"));
    // Vorbis/MP3 decoders may keep a few hundred samples of end padding that
    // ffmpeg trims; the start must be aligned and the clip complete.
    let lossy = path.extension().is_some_and(|e| e == "ogg" || e == "mp3");
    let slack = if lossy { 800 } else { 2 };
    assert!(
        got.len() + 2 >= want.len() && got.len() <= want.len() + slack,
        "{}: {} samples at 16 kHz, reference {}",
        path.display(),
        got.len(),
        want.len()
    );
    let snr = passband_snr(&got, want, rate);
    eprintln!(
        "{}: SNR {snr:.1} dB",
        path.file_name().expect("name").to_string_lossy()
    );
    assert!(
        snr >= min_snr,
        "{}: passband SNR {snr:.1} dB < {min_snr} dB",
        path.display()
    );
}

#[test]
fn flac_mp3_ogg_at_all_rates_resample_to_16k_within_60db_of_sox() {
    let dir = common::fixtures().join("resample");
    for rate in RATES {
        for ch in ["mono", "stereo"] {
            for fmt in ["flac", "mp3", "ogg"] {
                let want = reference(&dir, rate, ch, fmt);
                check(&dir.join(format!("r{rate}_{ch}.{fmt}")), &want, rate, 60.0);
            }
        }
    }
}

#[test]
fn wav_of_every_sample_format_at_all_rates_resamples_to_16k_within_60db_of_sox() {
    let dir = common::fixtures().join("resample");
    let tmp = tempfile::tempdir().expect("tmp");
    for rate in RATES {
        for ch in ["mono", "stereo"] {
            let src =
                hark_audio::decode_file(&dir.join(format!("r{rate}_{ch}.flac"))).expect("flac");
            let want = reference(&dir, rate, ch, "flac");
            for (bits, float) in [
                (8u16, false),
                (16, false),
                (24, false),
                (32, false),
                (32, true),
            ] {
                let p = tmp.path().join(format!(
                    "r{rate}_{ch}_{bits}{}.wav",
                    if float { "f" } else { "" }
                ));
                let spec = hound::WavSpec {
                    channels: src.channels as u16,
                    sample_rate: src.sample_rate,
                    bits_per_sample: bits,
                    sample_format: if float {
                        hound::SampleFormat::Float
                    } else {
                        hound::SampleFormat::Int
                    },
                };
                let mut w = hound::WavWriter::create(&p, spec).expect("create");
                for &s in &src.samples {
                    if float {
                        w.write_sample(s).expect("w");
                    } else {
                        let scale = (1i64 << (bits - 1)) as f64;
                        let v = (s as f64 * scale).round().clamp(-scale, scale - 1.0) as i32;
                        w.write_sample(v).expect("w");
                    }
                }
                w.finalize().expect("finalize");
                // 8-bit PCM carries its own quantisation noise (~25 dB under this quiet
                // speech): check it decodes and resamples, against that floor.
                check(&p, &want, rate, if bits == 8 { 20.0 } else { 60.0 });
            }
        }
    }
}

#[test]
fn streaming_resampler_equals_whole_signal_resampler() {
    use hark_audio::resample::{resample, StreamResampler};
    let x: Vec<f32> = (0..44100)
        .map(|i| ((i as f32) * 0.013).sin() * 0.4)
        .collect();
    let whole = resample(&x, 44100, 16000).expect("whole");
    assert_eq!(whole.len(), 16000);
    let mut r = StreamResampler::new(44100, 16000).expect("r");
    let mut out = Vec::new();
    let mut pos = 0;
    let mut step = 1;
    while pos < x.len() {
        let end = (pos + step).min(x.len());
        r.push(&x[pos..end], &mut out).expect("push");
        pos = end;
        step = step * 7 % 997 + 1;
    }
    r.finish(&mut out).expect("finish");
    assert_eq!(out, whole);
}

#[test]
fn resampler_output_is_time_aligned_with_input() {
    use hark_audio::resample::resample;
    for (from, to) in [
        (8000u32, 16000u32),
        (48000, 16000),
        (44100, 16000),
        (22050, 16000),
    ] {
        let mut x = vec![0.0f32; from as usize];
        let at = from as usize / 2; // 0.5 s
        x[at] = 1.0;
        let y = resample(&x, from, to).expect("resample");
        let peak = y
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().partial_cmp(&b.1.abs()).expect("finite"))
            .map(|(i, _)| i)
            .expect("peak");
        let want = to as usize / 2;
        assert!(
            (peak as i64 - want as i64).abs() <= 1,
            "{from}->{to}: impulse at 0.5 s came out at sample {peak}, expected {want}"
        );
    }
}

#[test]
fn resampler_has_zero_delay_at_common_rates() {
    // Fit the phase of a 440 Hz sine after resampling: output sample m must be the
    // input at time m / to (delay within 0.02 output samples).
    for (from, to) in [
        (8000u32, 16000u32),
        (22050, 16000),
        (44100, 16000),
        (48000, 16000),
        (16000, 8000),
        (11025, 16000),
    ] {
        let f = 440.0f64;
        let x: Vec<f32> = (0..from)
            .map(|n| (2.0 * std::f64::consts::PI * f * n as f64 / from as f64).sin() as f32)
            .collect();
        let y = hark_audio::resample(&x, from, to).expect("resample");
        assert_eq!(y.len(), to as usize);
        let (mut ss, mut sc, mut cc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let margin = to as usize / 8;
        for (m, &v) in y.iter().enumerate().take(y.len() - margin).skip(margin) {
            let t = 2.0 * std::f64::consts::PI * f * m as f64 / to as f64;
            let (s, c) = (t.sin(), t.cos());
            ss += s * s;
            sc += s * c;
            cc += c * c;
            ys += v as f64 * s;
            yc += v as f64 * c;
        }
        let det = ss * cc - sc * sc;
        let a = (ys * cc - yc * sc) / det;
        let b = (yc * ss - ys * sc) / det;
        let delay_out = -b.atan2(a) / (2.0 * std::f64::consts::PI * f) * to as f64;
        assert!(
            delay_out.abs() < 0.02,
            "{from}->{to}: delay {delay_out:.4} output samples"
        );
        assert!(
            (a.hypot(b) - 1.0).abs() < 1e-3,
            "{from}->{to}: gain {}",
            a.hypot(b)
        );
    }
}

#[test]
fn mu_law_wav_and_aac_mp4_decode_through_symphonia() {
    let dir = common::fixtures().join("resample");
    // G.711 decoding is exact: only the 16-bit reference quantisation remains.
    let got = hark_audio::load_audio(&dir.join("ulaw.wav")).expect("mu-law wav");
    let want = hark_audio::decode_file(&dir.join("ref/ulaw.flac"))
        .expect("ref")
        .samples;
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max <= 1.0 / 32768.0 + 1e-6,
        "mu-law differs from ffmpeg by {max}"
    );
    // AAC in MP4: symphonia 0.5 does not apply the MP4 edit list, so the 1024
    // encoder-priming samples ffmpeg trims are still at the start (known limitation,
    // 64 ms of leading near-silence). After them the waveform must match ffmpeg's.
    let got = hark_audio::load_audio(&dir.join("aac.m4a")).expect("aac");
    let want = hark_audio::decode_file(&dir.join("ref/aac.flac"))
        .expect("ref")
        .samples;
    assert_eq!(got.len(), want.len() + 1024, "aac: priming samples");
    let snr = passband_snr(&got[1024..], &want, 16000);
    eprintln!("aac.m4a: SNR {snr:.1} dB after the 1024 priming samples");
    assert!(snr >= 40.0, "aac: SNR {snr:.1} dB against ffmpeg's decode");
}
