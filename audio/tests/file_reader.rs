//! `FileReader`: streamed chunks equal the whole-file path (`load_audio_at`)
//! sample for sample, for real speech (AN4 FLAC) and generated WAVs at 8, 22.05,
//! 44.1 and 48 kHz in stereo; memory stays bounded on a 2-hour file; errors name
//! the file.

mod common;

use std::io::Write;
use std::path::Path;

use hark_audio::{load_audio_at, AudioError, FileReader};

/// Streams `path` in chunks of the given sizes (cycled) and returns the samples,
/// checking the buffer bound after every read.
fn stream(path: &Path, rate: u32, sizes: &[usize]) -> Vec<f32> {
    let mut r = FileReader::open(path, rate).expect("open");
    let mut all = Vec::new();
    for &n in sizes.iter().cycle() {
        let before = all.len();
        let got = r.read(&mut all, n).expect("read");
        assert_eq!(all.len() - before, got);
        assert!(got <= n);
        assert!(
            r.buffered_samples() <= r.buffer_bound(),
            "buffered {} > bound {}",
            r.buffered_samples(),
            r.buffer_bound()
        );
        if got == 0 {
            break;
        }
        if got < n {
            // A short read only happens at the end: the next one returns 0.
            assert_eq!(r.read(&mut all, n).expect("read"), 0);
            break;
        }
    }
    assert_eq!(r.samples_read(), all.len() as u64);
    all
}

fn assert_same(name: &str, streamed: &[f32], whole: &[f32]) {
    assert_eq!(streamed.len(), whole.len(), "{name}: length");
    let max = streamed
        .iter()
        .zip(whole)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // Same decoder, downmix and resampler, chunked differently: bit-identical.
    assert_eq!(max, 0.0, "{name}: max |diff| {max}");
}

#[test]
fn reader_chunks_concatenate_to_load_audio_on_an4_speech() {
    let Some(shared) = common::shared_dir() else {
        return;
    };
    let path = shared.join("data/an4/test/an391-mjwl-b.flac");
    for rate in [16_000u32, 22_050, 8_000] {
        let whole = load_audio_at(&path, rate).expect("load");
        for sizes in [&[1usize, 7, 1000][..], &[160], &[4096, 333], &[1 << 20]] {
            let streamed = stream(&path, rate, sizes);
            assert_same(
                &format!("an4 -> {rate} Hz, chunks {sizes:?}"),
                &streamed,
                &whole,
            );
        }
        let r = FileReader::open(&path, rate).expect("open");
        let hint = r.duration_hint().expect("FLAC states its length");
        let secs = whole.len() as f64 / rate as f64;
        assert!((hint - secs).abs() < 1e-3, "hint {hint} vs {secs}");
    }
}

fn write_stereo_wav(path: &Path, rate: u32, secs: f64) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create");
    let n = (secs * rate as f64) as usize;
    for i in 0..n {
        let t = i as f64 / rate as f64;
        // A chirp on the left, a tone plus a little pseudo-noise on the right.
        let l = 0.4 * (2.0 * std::f64::consts::PI * (200.0 + 600.0 * t) * t).sin();
        let r = 0.3 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()
            + 0.01 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0);
        w.write_sample((l * 32767.0) as i16).expect("write");
        w.write_sample((r * 32767.0) as i16).expect("write");
    }
    w.finalize().expect("finalize");
}

#[test]
fn reader_chunks_concatenate_to_load_audio_for_stereo_wavs_at_common_rates() {
    let d = tempfile::tempdir().expect("tmp");
    for rate in [8_000u32, 22_050, 44_100, 48_000] {
        let p = d.path().join(format!("s{rate}.wav"));
        write_stereo_wav(&p, rate, 1.3);
        let whole = load_audio_at(&p, 16_000).expect("load");
        for sizes in [&[1usize, 999][..], &[16_000], &[512, 4097]] {
            let streamed = stream(&p, 16_000, sizes);
            assert_same(
                &format!("{rate} Hz stereo, chunks {sizes:?}"),
                &streamed,
                &whole,
            );
        }
        let mut r = FileReader::open(&p, 16_000).expect("open");
        assert_eq!((r.native_rate(), r.channels()), (rate, 2));
        let hint = r.duration_hint().expect("WAV states its length");
        assert!((hint - 1.3).abs() < 1.0 / rate as f64 + 1e-9, "{hint}");
        let mut all = Vec::new();
        r.read_to_end(&mut all).expect("read_to_end");
        assert_same(&format!("{rate} Hz read_to_end"), &all, &whole);
    }
}

/// Writes a 16-bit mono WAV of `frames` frames of a slow sine, in bulk.
fn write_long_wav(path: &Path, rate: u32, frames: u64) {
    let data_len = frames * 2;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&(rate * 2).to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&(data_len as u32).to_le_bytes());
    f.write_all(&h).unwrap();
    // One second of a 1 kHz square-ish pattern, repeated (the content does not matter).
    let second: Vec<u8> = (0..rate)
        .flat_map(|i| (((i / 8) % 2) as i16 * 2000 - 1000).to_le_bytes())
        .collect();
    let mut left = data_len as usize;
    while left > 0 {
        let n = left.min(second.len());
        f.write_all(&second[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

#[test]
fn two_hour_file_streams_in_bounded_memory() {
    const RATE: u32 = 16_000;
    const FRAMES: u64 = 2 * 3600 * RATE as u64;
    const CHUNK: usize = 30 * RATE as usize; // a Whisper window
    let d = tempfile::tempdir().expect("tmp");
    let p = d.path().join("two_hours.wav");
    write_long_wav(&p, RATE, FRAMES);
    let mut r = FileReader::open(&p, RATE).expect("open");
    assert_eq!(r.duration_hint(), Some(7200.0));
    let mut chunk = Vec::with_capacity(CHUNK);
    let (mut total, mut max_buffered, mut reads) = (0u64, 0usize, 0u64);
    let mut checksum = 0.0f64;
    loop {
        chunk.clear();
        let n = r.read(&mut chunk, CHUNK).expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
        reads += 1;
        checksum += chunk.iter().map(|&v| v as f64).sum::<f64>();
        max_buffered = max_buffered.max(r.buffered_samples());
        assert!(r.buffered_samples() <= r.buffer_bound());
    }
    assert_eq!(total, FRAMES);
    assert_eq!(reads, FRAMES.div_ceil(CHUNK as u64));
    // Buffers never exceed one request plus a few decoder blocks, whatever the
    // file length (the whole file would be 115 million samples).
    let fixed_bound = CHUNK + 8 * 4096;
    assert!(
        r.buffer_bound() <= fixed_bound,
        "bound {}",
        r.buffer_bound()
    );
    assert!(max_buffered <= fixed_bound, "buffered {max_buffered}");
    // The pattern is +/-1000 in equal halves: the mean is 0.
    assert!(checksum.abs() < 1.0, "checksum {checksum}");
    assert!((r.position_secs() - 7200.0).abs() < 1e-9);
}

#[test]
fn reader_errors_name_the_file_and_the_problem() {
    let d = tempfile::tempdir().expect("tmp");
    let missing = d.path().join("missing.flac");
    let e = FileReader::open(&missing, 16_000).expect_err("missing");
    assert!(matches!(e, AudioError::Open { .. }), "{e:?}");
    assert!(e.to_string().contains("missing.flac"), "{e}");

    let empty = d.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let e = FileReader::open(&empty, 16_000).expect_err("empty");
    assert!(matches!(e, AudioError::EmptyFile { .. }), "{e:?}");
    assert!(e.to_string().contains("empty.wav"), "{e}");

    let junk = d.path().join("junk.mp3");
    std::fs::write(&junk, b"this is certainly not audio, just some bytes").unwrap();
    let e = FileReader::open(&junk, 16_000).expect_err("junk");
    assert!(matches!(e, AudioError::UnrecognizedFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("junk.mp3"), "{e}");

    let silent = d.path().join("zero_len.wav");
    write_long_wav(&silent, 16_000, 0);
    let e = FileReader::open(&silent, 16_000).expect_err("no samples");
    assert!(matches!(e, AudioError::NoSamples { .. }), "{e:?}");

    // A NaN a few blocks into the file surfaces from read(), with its position.
    let nan = d.path().join("nan.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&nan, spec).unwrap();
    for i in 0..20_000 {
        w.write_sample(if i == 12_345 { f32::NAN } else { 0.1f32 })
            .unwrap();
    }
    w.finalize().unwrap();
    let mut r = FileReader::open(&nan, 16_000).expect("first block is fine");
    let mut out = Vec::new();
    let e = loop {
        match r.read(&mut out, 1000) {
            Ok(0) => panic!("NaN not reported"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(e, AudioError::NonFiniteSample { index: 12_345, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("nan.wav"), "{e}");
}
