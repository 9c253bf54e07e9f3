//! Streaming equals offline: features computed chunk by chunk give the same frames
//! as on the whole signal; a file replayed at real time through the live ring-buffer
//! path gives the same samples as `load_audio`; opening a missing microphone fails
//! with a clear error.

use std::time::Duration;

use hark_audio::features::fbank::{
    FbankOptions, FrameComputer, OnlineFeatures, SpectrogramOptions,
};
use hark_audio::{AudioError, AudioSource, FileSource};
use proptest::prelude::*;

fn signal(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2000.0;
            noise + 8000.0 * (i as f32 * 0.031).sin()
        })
        .collect()
}

fn streamed(computer: FrameComputer, x: &[f32], chunks: &[usize]) -> Vec<f32> {
    let mut online = OnlineFeatures::new(computer);
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < x.len() {
        let n = chunks[i % chunks.len()].min(x.len() - pos);
        online
            .accept_waveform(&x[pos..pos + n], &mut out)
            .expect("accept");
        pos += n;
        i += 1;
    }
    online.input_finished(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn streaming_fbank_equals_offline_for_random_chunk_sizes(
        len in 1usize..6000,
        chunks in proptest::collection::vec(1usize..900, 1..8),
        snip_edges in any::<bool>(),
        dither in prop_oneof![Just(0.0f32), Just(1.0f32)],
        seed in any::<u64>(),
    ) {
        let x = signal(len, seed);
        let mut o = FbankOptions::with_bins(40);
        o.frame_opts.snip_edges = snip_edges;
        o.frame_opts.dither = dither;
        o.frame_opts.dither_seed = seed;
        o.use_energy = true;
        let fb = FrameComputer::new(o).expect("fbank");
        let offline = fb.compute(&x).expect("offline");
        let online = streamed(fb, &x, &chunks);
        prop_assert_eq!(online.len(), offline.data.len());
        prop_assert!(online == offline.data, "streamed frames differ from offline");
    }

    #[test]
    fn streaming_spectrogram_equals_offline_for_random_chunk_sizes(
        len in 1usize..4000,
        chunks in proptest::collection::vec(1usize..700, 1..6),
        snip_edges in any::<bool>(),
    ) {
        let x = signal(len, 7);
        let opts = SpectrogramOptions {
            frame_opts: hark_audio::features::fbank::FrameExtractionOptions { snip_edges, ..Default::default() },
            ..Default::default()
        };
        let c = FrameComputer::spectrogram(opts).expect("spec");
        let offline = c.compute(&x).expect("offline");
        prop_assert!(streamed(c, &x, &chunks) == offline.data);
    }
}

#[test]
fn realtime_file_source_takes_the_live_path_and_matches_load_audio() {
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/resample/r48000_stereo.flac"
    ));
    let want = hark_audio::load_audio(&path).expect("load");
    // 20x real time keeps the test short; pacing is the same code path as 1x.
    let mut src = FileSource::realtime(&path, 20.0, 10).expect("open");
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    while src.read(&mut got, Duration::from_millis(50)).expect("read") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "file source never finished"
        );
    }
    assert_eq!(src.overruns(), 0);
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max == 0.0, "live path differs from offline path by {max}");
    // Real-time pacing: 0.3 s at 20x must take at least ~15 ms.
    assert!(start.elapsed() >= Duration::from_millis(10));
}

#[test]
fn offline_file_source_matches_load_audio() {
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/resample/r22050_mono.ogg"
    ));
    let want = hark_audio::load_audio(&path).expect("load");
    let mut src = FileSource::open(&path).expect("open");
    let mut got = Vec::new();
    while src.read(&mut got, Duration::ZERO).expect("read") {}
    assert_eq!(got, want);
}

#[test]
fn ring_buffer_overruns_are_counted_not_silent() {
    let (mut prod, cons, stats) = hark_audio::capture::ring(100);
    let data = vec![0.25f32; 150];
    hark_audio::capture::push_counting(&mut prod, &stats, &data);
    let reader = hark_audio::capture::RingReader::new(cons, stats, 1, 16000).expect("reader");
    assert_eq!(reader.overruns(), 50);
}

#[test]
fn opening_a_missing_microphone_fails_with_the_device_list() {
    // This machine has no microphone; on one that has, ask for a name that cannot exist.
    match hark_audio::source::MicSource::open(Some("hark-test-no-such-device")) {
        Err(AudioError::DeviceNotFound {
            wanted, available, ..
        }) => {
            assert_eq!(wanted, "hark-test-no-such-device");
            assert!(!available.is_empty());
        }
        Err(other) => panic!("expected DeviceNotFound, got {other}"),
        Ok(_) => panic!("a device with this name cannot exist"),
    }
    if hark_audio::capture::list_input_devices()
        .map(|d| d.is_empty())
        .unwrap_or(true)
    {
        let err = hark_audio::source::MicSource::open(None).expect_err("no microphone here");
        let msg = err.to_string();
        assert!(msg.contains("available input devices"), "{msg}");
    }
}
