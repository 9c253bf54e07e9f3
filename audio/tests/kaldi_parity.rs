//! Kaldi parity: our fbank / spectrogram / MFCC against the outputs of Kaldi's own
//! `compute-*-feats` in `../shared/data/kaldi-fbank-reference/` (see its README).
//!
//! Tolerance (issue #2): 1e-4 absolute on every log-energy value whose energy lies
//! within 60 dB of the frame's strongest bin (and on the log-energy column), 0.05
//! on everything else (very weak bins, where float rounding in the FFT dominates).
//! The spectrogram is held to more: because our FFT rounds exactly as Kaldi's
//! split-radix FFT does, every bin, down to 150 dB under the peak, must match
//! within 1e-4 (we measure 6e-6, the printed precision), and so does every fbank
//! value; MFCC within 2e-4.

mod common;

use hark_audio::features::fbank::{
    FbankOptions, FrameComputer, FrameExtractionOptions, MfccOptions, SpectrogramOptions,
};

/// ln(10^6): 60 dB in power.
const SIXTY_DB: f32 = 13.815_511;

fn load(name: &str) -> Option<(Vec<f32>, Vec<Vec<f32>>)> {
    let dir = common::shared_dir()?.join("data/kaldi-fbank-reference");
    let wav = common::read_wav_i16(&dir.join("test.wav"));
    let text = std::fs::read_to_string(dir.join(name)).expect("reference file");
    Some((wav, common::parse_kaldi_text(&text)))
}

/// Compares, treating columns in `energy_cols` as always strict and the rest as
/// log energies subject to the 60 dB rule.
fn compare(
    name: &str,
    ours: &hark_audio::features::Features,
    reference: &[Vec<f32>],
    energy_cols: &[usize],
) {
    compare_within(name, ours, reference, energy_cols, f32::INFINITY, 1e-4)
}

/// As [`compare`], but the 0.05 bound only applies to values within `loose_range`
/// (natural-log units) of the frame peak.
fn compare_within(
    name: &str,
    ours: &hark_audio::features::Features,
    reference: &[Vec<f32>],
    energy_cols: &[usize],
    loose_range: f32,
    strict_tol: f32,
) {
    assert_eq!(ours.n_frames, reference.len(), "{name}: frame count");
    let mut max_strict = 0.0f32;
    let mut max_all = 0.0f32;
    for (t, want) in reference.iter().enumerate() {
        let got = ours.frame(t);
        assert_eq!(got.len(), want.len(), "{name}: dim");
        let peak = want
            .iter()
            .enumerate()
            .filter(|(c, _)| !energy_cols.contains(c))
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        for (c, (&g, &w)) in got.iter().zip(want).enumerate() {
            let d = (g - w).abs();
            max_all = max_all.max(d);
            let strict = energy_cols.contains(&c) || w >= peak - SIXTY_DB;
            if strict {
                max_strict = max_strict.max(d);
                assert!(
                    d <= strict_tol,
                    "{name}: frame {t} col {c}: ours {g} kaldi {w} (|d| = {d})"
                );
            }
            if w >= peak - loose_range {
                assert!(
                    d <= 0.05,
                    "{name}: frame {t} col {c}: ours {g} kaldi {w} (|d| = {d})"
                );
            }
        }
    }
    eprintln!("{name}: max |diff| strict {max_strict:.2e}, all {max_all:.2e}");
}

/// Every value within `tol` of Kaldi's, weak bins included. Our FFT rounds as
/// Kaldi's split-radix FFT does (`features::srfft`), so even bins 100-150 dB under
/// the frame peak (float32 FFT noise) agree to Kaldi's printed precision.
fn assert_all_within(
    name: &str,
    ours: &hark_audio::features::Features,
    reference: &[Vec<f32>],
    tol: f32,
) {
    assert_eq!(ours.n_frames, reference.len(), "{name}: frame count");
    let mut max = 0.0f32;
    for (t, want) in reference.iter().enumerate() {
        assert_eq!(ours.frame(t).len(), want.len(), "{name}: dim");
        for (c, (&g, &w)) in ours.frame(t).iter().zip(want).enumerate() {
            let d = (g - w).abs();
            max = max.max(d);
            assert!(
                d <= tol,
                "{name}: frame {t} col {c}: ours {g} kaldi {w} (|d| = {d} > {tol})"
            );
        }
    }
    eprintln!("{name}: max |diff| over every value {max:.2e}");
}

fn fbank(name: &str, opts: FbankOptions, energy_cols: &[usize]) {
    let Some((wav, reference)) = load(name) else {
        return;
    };
    let f = FrameComputer::new(opts).expect("options");
    let ours = f.compute(&wav).expect("fbank");
    compare(name, &ours, &reference, energy_cols);
    assert_all_within(name, &ours, &reference, 1e-4);
}

#[test]
fn fbank_matches_kaldi_23_bins() {
    fbank("test.txt", FbankOptions::kaldi(), &[]);
}

#[test]
fn fbank_matches_kaldi_40_bins() {
    fbank("test-40.txt", FbankOptions::with_bins(40), &[]);
}

#[test]
fn fbank_matches_kaldi_40_bins_without_snip_edges() {
    let mut o = FbankOptions::with_bins(40);
    o.frame_opts.snip_edges = false;
    fbank("test-40-no-snip-edges.txt", o, &[]);
}

#[test]
fn fbank_matches_kaldi_with_energy() {
    let mut o = FbankOptions::kaldi();
    o.use_energy = true;
    fbank("test-with-energy.txt", o, &[0]);
}

#[test]
fn fbank_matches_kaldi_htk_compat() {
    let mut o = FbankOptions::kaldi();
    o.use_energy = true;
    o.htk_compat = true;
    fbank("test-htk.txt", o, &[23]);
}

fn spectrogram(name: &str, snip_edges: bool) {
    let Some((wav, reference)) = load(name) else {
        return;
    };
    let opts = SpectrogramOptions {
        frame_opts: FrameExtractionOptions {
            snip_edges,
            ..Default::default()
        },
        ..Default::default()
    };
    let f = FrameComputer::spectrogram(opts).expect("options");
    let ours = f.compute(&wav).expect("spectrogram");
    // The rule: 1e-4 within 60 dB of the peak, 0.05 everywhere.
    compare(name, &ours, &reference, &[0]);
    // Stronger: every bin, including the float32 noise 100-150 dB under the peak.
    assert_all_within(name, &ours, &reference, 1e-4);
}

#[test]
fn spectrogram_matches_kaldi() {
    spectrogram("test-spectrogram.txt", true);
}

#[test]
fn spectrogram_matches_kaldi_without_snip_edges() {
    spectrogram("test-spectrogram-no-snip-edges.txt", false);
}

#[test]
fn mfcc_matches_kaldi() {
    let Some((wav, reference)) = load("test-mfcc.txt") else {
        return;
    };
    let f = FrameComputer::mfcc(MfccOptions::default()).expect("options");
    let ours = f.compute(&wav).expect("mfcc");
    // Cepstra mix all bins, so there is no per-bin 60 dB rule. With Kaldi's FFT
    // rounding reproduced, every coefficient agrees to within Kaldi's printed
    // precision (7 digits of values up to ~60, liftered up to 12x): 2e-4.
    assert_all_within("test-mfcc.txt", &ours, &reference, 2e-4);
}

/// Options Kaldi's reference files do not cover (window types, 80/128 bins, raw
/// frames, energy floor, high-freq offset, no power-of-two rounding), against
/// kaldi-native-fbank (C++ port of Kaldi's feature code). Fixture generator:
/// `scripts/audio/gen_knf_fbank_fixture.py`.
#[test]
fn fbank_matches_kaldi_native_fbank_for_other_windows_bins_and_options() {
    use hark_audio::features::fbank::WindowType;
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let wav = common::read_wav_i16(&shared.join("data/kaldi-fbank-reference/test.wav"));
    let text = std::fs::read_to_string(common::fixtures().join("knf_fbank.json")).expect("fixture");
    let fx: serde_json::Value = serde_json::from_str(&text).expect("json");
    for e in fx["entries"].as_array().expect("entries") {
        let name = e["name"].as_str().expect("name");
        let mut o = FbankOptions::with_bins(e["num_bins"].as_u64().expect("bins") as usize);
        o.frame_opts.window_type = e["window_type"]
            .as_str()
            .expect("window")
            .parse::<WindowType>()
            .expect("window");
        o.frame_opts.snip_edges = e
            .get("snip_edges")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        o.frame_opts.remove_dc_offset = e
            .get("remove_dc_offset")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        o.frame_opts.preemph_coeff = e
            .get("preemph_coeff")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.97) as f32;
        o.frame_opts.round_to_power_of_two = e
            .get("round_to_power_of_two")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        o.mel_opts.low_freq = e.get("low_freq").and_then(|v| v.as_f64()).unwrap_or(20.0) as f32;
        o.mel_opts.high_freq = e.get("high_freq").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
        o.use_energy = e
            .get("use_energy")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        o.energy_floor = e
            .get("energy_floor")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as f32;
        let energy_cols: Vec<usize> = if o.use_energy { vec![0] } else { vec![] };
        let ours = FrameComputer::new(o)
            .expect("options")
            .compute(&wav)
            .expect("fbank");
        assert_eq!(
            ours.n_frames as u64,
            e["n_frames"].as_u64().expect("n"),
            "{name}: frame count"
        );
        let frames: Vec<usize> = e["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|v| v.as_u64().expect("t") as usize)
            .collect();
        let reference: Vec<Vec<f32>> = e["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("v") as f32)
                    .collect()
            })
            .collect();
        let picked = hark_audio::features::Features {
            data: frames
                .iter()
                .flat_map(|&t| ours.frame(t).to_vec())
                .collect(),
            n_frames: frames.len(),
            dim: ours.dim,
        };
        // kaldi-native-fbank has its own real FFT, whose rounding differs from
        // Kaldi's by up to ~1e-4 in the weakest bins of the 60 dB range: 2e-4 here.
        // With 128 narrow bins some hold one or two FFT bins >100 dB under the
        // peak, pure float noise where knf's FFT rounds differently from Kaldi's
        // (and ours): 0.05 is checked above that.
        compare_within(name, &picked, &reference, &energy_cols, 23.03, 2e-4);
    }
}
