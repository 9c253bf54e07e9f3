//! Bad input gives a clear error naming the file and the problem, never a panic.
//! One test per case; the files are written on the fly into a temp dir.

use std::path::{Path, PathBuf};

use hark_audio::{load_audio, AudioError};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// A canonical 44-byte PCM WAV header followed by `data`.
fn wav_bytes(format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels as u32 * bits as u32 / 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block).to_le_bytes());
    b.extend_from_slice(&(block as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn expect_err(path: &Path) -> (AudioError, String) {
    let err = load_audio(path).expect_err("bad input must fail");
    let msg = err.to_string();
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(msg.contains(&name), "message must name the file: {msg}");
    eprintln!("{msg}");
    (err, msg)
}

#[test]
fn empty_file_is_reported_as_empty() {
    let d = tempfile::tempdir().expect("tmp");
    let (e, _) = expect_err(&write(d.path(), "empty.wav", b""));
    assert!(matches!(e, AudioError::EmptyFile { .. }), "{e:?}");
}

#[test]
fn truncated_wav_header_is_reported() {
    let d = tempfile::tempdir().expect("tmp");
    let full = wav_bytes(1, 1, 16000, 16, &[0; 64]);
    let (e, msg) = expect_err(&write(d.path(), "trunc.wav", &full[..20]));
    assert!(matches!(e, AudioError::UnrecognizedFormat { .. }), "{e:?}");
    assert!(
        msg.contains("truncated") || msg.contains("invalid"),
        "{msg}"
    );
}

#[test]
fn non_audio_bytes_are_reported_as_unrecognized() {
    let d = tempfile::tempdir().expect("tmp");
    let (e, _) = expect_err(&write(
        d.path(),
        "notes.flac",
        b"this is a text file, not audio\n".repeat(20).as_slice(),
    ));
    assert!(matches!(e, AudioError::UnrecognizedFormat { .. }), "{e:?}");
}

#[test]
fn zero_channels_are_reported() {
    let d = tempfile::tempdir().expect("tmp");
    let (e, msg) = expect_err(&write(
        d.path(),
        "zero_ch.wav",
        &wav_bytes(1, 0, 16000, 16, &[0; 64]),
    ));
    assert!(matches!(e, AudioError::ZeroChannels { .. }), "{e:?}");
    assert!(msg.contains("zero channels"), "{msg}");
}

#[test]
fn unsupported_codec_is_reported() {
    let d = tempfile::tempdir().expect("tmp");
    // WAV with an unknown format tag (0x1234): neither hound nor symphonia decode it.
    let (e, msg) = expect_err(&write(
        d.path(),
        "odd_codec.wav",
        &wav_bytes(0x1234, 1, 16000, 16, &[0; 64]),
    ));
    assert!(
        matches!(
            e,
            AudioError::UnsupportedCodec { .. } | AudioError::UnrecognizedFormat { .. }
        ),
        "{e:?}"
    );
    assert!(msg.contains("unsupported"), "{msg}");
}

#[test]
fn nan_and_inf_samples_are_rejected() {
    let d = tempfile::tempdir().expect("tmp");
    for (name, bad) in [("nan.wav", f32::NAN), ("inf.wav", f32::INFINITY)] {
        let p = d.path().join(name);
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&p, spec).expect("create");
        for i in 0..200 {
            w.write_sample(if i == 77 { bad } else { 0.1f32 })
                .expect("write");
        }
        w.finalize().expect("finalize");
        let (e, msg) = expect_err(&p);
        match e {
            AudioError::NonFiniteSample { index, channel, .. } => {
                assert_eq!((index, channel), (38, 1), "{msg}");
            }
            other => panic!("expected NonFiniteSample, got {other:?}"),
        }
    }
}

#[test]
fn zero_length_signal_is_reported() {
    let d = tempfile::tempdir().expect("tmp");
    let (e, msg) = expect_err(&write(
        d.path(),
        "silence0.wav",
        &wav_bytes(1, 1, 16000, 16, &[]),
    ));
    assert!(matches!(e, AudioError::NoSamples { .. }), "{e:?}");
    assert!(msg.contains("no samples"), "{msg}");
}

#[test]
fn nonexistent_path_is_reported() {
    let p = PathBuf::from("/nonexistent/dir/missing.flac");
    let (e, msg) = expect_err(&p);
    assert!(matches!(e, AudioError::Open { .. }), "{e:?}");
    assert!(msg.contains("cannot open"), "{msg}");
}

#[test]
fn features_reject_empty_and_non_finite_signals() {
    use hark_audio::features::fbank::{FbankOptions, FrameComputer};
    use hark_audio::features::whisper::log_mel_spectrogram;
    let fb = FrameComputer::new(FbankOptions::kaldi()).expect("fbank");
    assert!(matches!(
        fb.compute(&[]),
        Err(AudioError::EmptySignal { .. })
    ));
    let mut x = vec![0.0f32; 1000];
    x[500] = f32::NAN;
    assert!(matches!(
        fb.compute(&x),
        Err(AudioError::NonFiniteInput { index: 500, .. })
    ));
    assert!(matches!(
        log_mel_spectrogram(&[], 80, 160),
        Err(AudioError::EmptySignal { .. })
    ));
    assert!(matches!(
        log_mel_spectrogram(&x, 80, 160),
        Err(AudioError::NonFiniteInput { index: 500, .. })
    ));
}
