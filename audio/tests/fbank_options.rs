//! Option behaviour that has no Kaldi reference file: defaults, dither, errors.

use hark_audio::features::fbank::{FbankOptions, FrameComputer};

fn tone() -> Vec<f32> {
    (0..8000)
        .map(|i| 3000.0 * (i as f32 * 0.07).sin())
        .collect()
}

#[test]
fn default_fbank_options_are_kaldis_defaults() {
    let o = FbankOptions::default();
    assert_eq!(o, FbankOptions::kaldi());
    assert!(o.raw_energy && o.use_log_fbank && o.use_power && !o.use_energy);
    assert_eq!(o.mel_opts.num_bins, 23);
    assert_eq!(o.frame_opts.dither, 0.0, "dither is off by default");
    assert!(o.frame_opts.snip_edges);
}

#[test]
fn dither_is_seedable_reproducible_and_small() {
    let x = tone();
    let run = |dither: f32, seed: u64| {
        let mut o = FbankOptions::with_bins(40);
        o.frame_opts.dither = dither;
        o.frame_opts.dither_seed = seed;
        FrameComputer::new(o)
            .expect("fbank")
            .compute(&x)
            .expect("compute")
            .data
    };
    let clean = run(0.0, 0);
    let a = run(1.0, 42);
    assert_eq!(a, run(1.0, 42), "same seed, same output");
    assert_ne!(a, run(1.0, 43), "different seed, different output");
    assert_ne!(a, clean, "dither changes the output");
    // Unit-variance noise on a 3000-amplitude tone moves strong bins very little.
    let strong_max = clean
        .iter()
        .zip(&a)
        .filter(|(c, _)| **c > 15.0)
        .map(|(c, d)| (c - d).abs())
        .fold(0.0f32, f32::max);
    assert!(
        strong_max < 0.05,
        "dither moved strong bins by {strong_max}"
    );
}

#[test]
fn impossible_options_are_rejected_with_a_reason() {
    let mut o = FbankOptions::with_bins(200);
    o.mel_opts.low_freq = 0.0;
    let msg = FrameComputer::new(o)
        .expect_err("too many bins")
        .to_string();
    assert!(msg.contains("mel bin") && msg.contains("empty"), "{msg}");
    let mut o = FbankOptions::kaldi();
    o.mel_opts.high_freq = 9000.0;
    let msg = FrameComputer::new(o)
        .expect_err("high freq above nyquist")
        .to_string();
    assert!(msg.contains("frequency range"), "{msg}");
    let mut o = FbankOptions::kaldi();
    o.frame_opts.frame_shift_ms = 0.0;
    assert!(FrameComputer::new(o).is_err());
}

#[test]
fn signal_shorter_than_a_frame_gives_no_frames_with_snip_edges() {
    let fb = FrameComputer::new(FbankOptions::kaldi()).expect("fbank");
    assert_eq!(fb.compute(&[1.0; 399]).expect("compute").n_frames, 0);
    let mut o = FbankOptions::kaldi();
    o.frame_opts.snip_edges = false;
    let fb = FrameComputer::new(o).expect("fbank");
    assert_eq!(fb.compute(&[1.0; 399]).expect("compute").n_frames, 2);
}
