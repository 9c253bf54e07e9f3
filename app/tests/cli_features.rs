//! `hark features` through the real binary: Kaldi text and `.npy` outputs equal
//! the library's features (and Kaldi's own reference outputs when `../shared` is
//! there); bad options and bad files fail with a clear message, exit code 1
//! (2 for flags clap rejects), and never panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hark_audio::features::fbank::{
    FbankOptions, FrameComputer, FrameExtractionOptions, MfccOptions, SpectrogramOptions,
};
use hark_audio::features::output::format_g7;
use hark_audio::features::whisper::{log_mel_spectrogram, FASTER_WHISPER_PADDING};

const HARK: &str = env!("CARGO_BIN_EXE_hark");

fn hark(args: &[&str]) -> Output {
    Command::new(HARK).args(args).output().expect("run hark")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 0, nothing on stderr about panics.
fn assert_ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstderr: {}",
        o.status.code(),
        stderr(o)
    );
}

/// A failure with exit code `code`, a message containing every `needles`
/// (case-insensitive), and no panic.
fn assert_fails(o: &Output, code: i32, needles: &[&str], what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{what}: stderr: {err}");
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    for n in needles {
        assert!(
            err.to_lowercase().contains(&n.to_lowercase()),
            "{what}: stderr lacks {n:?}: {err}"
        );
    }
}

fn shared_ref_dir() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/kaldi-fbank-reference"
    ));
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: ../shared not found");
        None
    }
}

/// Parses a one-utterance Kaldi text archive: (key, rows of tokens).
fn parse_text_archive(text: &str) -> (String, Vec<Vec<String>>) {
    let open = text.find('[').expect("'[' in archive");
    let close = text.rfind(']').expect("']' in archive");
    let key = text[..open].trim().to_string();
    let rows = text[open + 1..close]
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|r| !r.is_empty())
        .collect();
    (key, rows)
}

/// Reads a `.npy` written by `hark features`: (shape, data).
fn read_npy(path: &Path) -> ((usize, usize), Vec<f32>) {
    let b = std::fs::read(path).expect("npy");
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00", "npy magic");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "npy header alignment");
    let header = std::str::from_utf8(&b[10..10 + hlen]).expect("header");
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = &header[header.find("'shape': (").expect("shape") + 10..];
    let shape = &shape[..shape.find(')').expect(")")];
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("dim"))
        .collect();
    assert_eq!(dims.len(), 2, "{header}");
    let data: Vec<f32> = b[10 + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), dims[0] * dims[1], "npy payload");
    ((dims[0], dims[1]), data)
}

/// A scratch directory removed on drop (app has no dev-dependencies, so no
/// `tempfile`).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("hark-cli-features-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a 16-bit mono WAV: a chirp with a little deterministic noise.
fn write_test_wav(path: &Path, rate: u32, secs: f64) {
    let n = (secs * rate as f64) as usize;
    let data_len = (n * 2) as u32;
    let mut b = Vec::with_capacity(44 + n * 2);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let v = 0.4 * (2.0 * std::f64::consts::PI * (300.0 + 1500.0 * t) * t).sin()
            + 0.02 * (((i * 7919) % 1000) as f64 / 500.0 - 1.0);
        b.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, b).expect("write wav");
}

/// The library's Kaldi features of `path`, as `hark features` computes them.
fn library_kaldi(path: &Path, fc: FrameComputer) -> hark_audio::features::Features {
    let samples = hark_audio::load_audio(path).expect("load");
    let scaled: Vec<f32> = samples.iter().map(|s| s * 32768.0).collect();
    fc.compute(&scaled).expect("features")
}

/// Every printed value equals the library's value printed the same way.
fn assert_text_equals_library(text: &str, lib: &[f32], rows: usize, cols: usize, key: &str) {
    let (k, got) = parse_text_archive(text);
    assert_eq!(k, key);
    assert_eq!(got.len(), rows, "rows");
    for (r, row) in got.iter().enumerate() {
        assert_eq!(row.len(), cols, "row {r} length");
        for (c, tok) in row.iter().enumerate() {
            assert_eq!(
                tok,
                &format_g7(lib[r * cols + c]),
                "row {r} col {c}: printed value differs from the library's"
            );
        }
    }
}

#[test]
fn features_fbank_kaldi_text_and_npy_equal_the_library() {
    let d = TempDir::new("fbank");
    let wav = d.path().join("chirp.wav");
    write_test_wav(&wav, 16_000, 0.73);
    let wav_s = wav.to_str().expect("utf8");
    let lib = library_kaldi(
        &wav,
        FrameComputer::new(FbankOptions::kaldi()).expect("fbank"),
    );
    assert_eq!((lib.n_frames, lib.dim), (71, 23));

    // Kaldi text on stdout (the default format).
    let o = hark(&["features", wav_s]);
    assert_ok(&o, "fbank text");
    assert_text_equals_library(&stdout(&o), &lib.data, lib.n_frames, lib.dim, "chirp");

    // .npy into a file: bit-identical f32.
    let npy = d.path().join("chirp.npy");
    let o = hark(&[
        "features",
        wav_s,
        "--format",
        "npy",
        "-o",
        npy.to_str().expect("utf8"),
    ]);
    assert_ok(&o, "fbank npy");
    assert!(o.stdout.is_empty(), "npy to a file prints nothing");
    let (shape, data) = read_npy(&npy);
    assert_eq!(shape, (lib.n_frames, lib.dim));
    assert_eq!(data, lib.data);
}

#[test]
fn features_options_reach_the_library() {
    let d = TempDir::new("opts");
    let wav = d.path().join("opts.wav");
    write_test_wav(&wav, 16_000, 0.5);
    let wav_s = wav.to_str().expect("utf8");
    let npy = d.path().join("out.npy");
    let npy_s = npy.to_str().expect("utf8");
    let run = |extra: &[&str]| {
        let mut a = vec!["features", wav_s, "--format", "npy", "-o", npy_s];
        a.extend_from_slice(extra);
        let o = hark(&a);
        assert_ok(&o, &format!("{extra:?}"));
        read_npy(&npy)
    };
    let frame = |snip_edges: bool, dither: f32| FrameExtractionOptions {
        snip_edges,
        dither,
        ..Default::default()
    };

    // 40 bins, no snip-edges, energy, HTK layout.
    let mut o = FbankOptions::with_bins(40);
    o.frame_opts = frame(false, 0.0);
    o.use_energy = true;
    o.htk_compat = true;
    let lib = library_kaldi(&wav, FrameComputer::new(o).expect("fbank"));
    let (shape, data) = run(&[
        "--num-mel-bins",
        "40",
        "--snip-edges",
        "false",
        "--use-energy",
        "--htk-compat",
    ]);
    assert_eq!(shape, (50, 41));
    assert_eq!(data, lib.data);

    // Dither is seeded: reproducible, and equal to the library's.
    let mut o = FbankOptions::kaldi();
    o.frame_opts = frame(true, 1.0);
    let lib = library_kaldi(&wav, FrameComputer::new(o).expect("fbank"));
    let (_, a) = run(&["--dither", "1"]);
    let (_, b) = run(&["--dither", "1"]);
    assert_eq!(a, b);
    assert_eq!(a, lib.data);
    let (_, plain) = run(&[]);
    assert_ne!(a, plain, "dither changes the output");

    // Spectrogram and MFCC kinds.
    let lib = library_kaldi(
        &wav,
        FrameComputer::spectrogram(SpectrogramOptions::default()).expect("spec"),
    );
    let (shape, data) = run(&["--kind", "spectrogram"]);
    assert_eq!(shape, (48, 257));
    assert_eq!(data, lib.data);
    let lib = library_kaldi(
        &wav,
        FrameComputer::mfcc(MfccOptions::default()).expect("mfcc"),
    );
    let (shape, data) = run(&["--kind", "mfcc"]);
    assert_eq!(shape, (48, 13));
    assert_eq!(data, lib.data);
}

#[test]
fn features_whisper_mel_equals_the_library() {
    let d = TempDir::new("mel");
    // 44.1 kHz input: hark resamples to 16 kHz first, like the library's load_audio.
    let wav = d.path().join("speechlike.wav");
    write_test_wav(&wav, 44_100, 1.2);
    let wav_s = wav.to_str().expect("utf8");
    let samples = hark_audio::load_audio(&wav).expect("load");
    for n_mels in [80usize, 128] {
        let lib = log_mel_spectrogram(&samples, n_mels, FASTER_WHISPER_PADDING).expect("mel");
        let npy = d.path().join(format!("mel{n_mels}.npy"));
        let bins = n_mels.to_string();
        let o = hark(&[
            "features",
            wav_s,
            "--kind",
            "whisper-mel",
            "--num-mel-bins",
            &bins,
            "--format",
            "npy",
            "-o",
            npy.to_str().expect("utf8"),
        ]);
        assert_ok(&o, "whisper-mel npy");
        let (shape, data) = read_npy(&npy);
        assert_eq!(shape, (n_mels, lib.n_frames));
        assert_eq!(data, lib.data);
    }
    let lib = log_mel_spectrogram(&samples, 80, FASTER_WHISPER_PADDING).expect("mel");
    let o = hark(&["features", wav_s, "--kind", "whisper-mel"]);
    assert_ok(&o, "whisper-mel text");
    assert_text_equals_library(&stdout(&o), &lib.data, 80, lib.n_frames, "speechlike");
}

/// `hark features` on Kaldi's own test signal reproduces `compute-fbank-feats`
/// and `compute-spectrogram-feats` (text archives in ../shared) within 1e-4.
#[test]
fn features_cli_matches_kaldi_reference_files() {
    let Some(dir) = shared_ref_dir() else {
        return;
    };
    let wav = dir.join("test.wav");
    let wav_s = wav.to_str().expect("utf8");
    for (reference, extra) in [
        ("test.txt", &[][..]),
        (
            "test-40-no-snip-edges.txt",
            &["--num-mel-bins", "40", "--snip-edges", "false"][..],
        ),
        ("test-htk.txt", &["--use-energy", "--htk-compat"][..]),
        ("test-spectrogram.txt", &["--kind", "spectrogram"][..]),
        ("test-mfcc.txt", &["--kind", "mfcc"][..]),
    ] {
        let mut args = vec!["features", wav_s];
        args.extend_from_slice(extra);
        let o = hark(&args);
        assert_ok(&o, reference);
        let (key, ours) = parse_text_archive(&stdout(&o));
        assert_eq!(key, "test");
        let (_, want) =
            parse_text_archive(&std::fs::read_to_string(dir.join(reference)).expect("ref"));
        assert_eq!(ours.len(), want.len(), "{reference}: frames");
        let tol = if reference == "test-mfcc.txt" {
            2e-4
        } else {
            1e-4
        };
        let mut max = 0.0f32;
        for (t, (a, b)) in ours.iter().zip(&want).enumerate() {
            assert_eq!(a.len(), b.len(), "{reference}: frame {t} dim");
            for (c, (x, y)) in a.iter().zip(b).enumerate() {
                let (x, y): (f32, f32) = (x.parse().expect("num"), y.parse().expect("num"));
                let d = (x - y).abs();
                max = max.max(d);
                assert!(
                    d <= tol,
                    "{reference}: frame {t} col {c}: hark {x} kaldi {y}"
                );
            }
        }
        eprintln!("{reference}: max |hark - kaldi| {max:.2e}");
    }
}

#[test]
fn features_bad_options_fail_cleanly() {
    let d = TempDir::new("badopts");
    let wav = d.path().join("ok.wav");
    write_test_wav(&wav, 16_000, 0.3);
    let w = wav.to_str().expect("utf8");
    // Flags clap rejects: exit code 2 with a usage message.
    let o = hark(&["features", w, "--kind", "cepstrum"]);
    assert_fails(&o, 2, &["invalid value", "cepstrum"], "unknown kind");
    let o = hark(&["features", w, "--format", "csv"]);
    assert_fails(&o, 2, &["invalid value", "csv"], "unknown format");
    let o = hark(&["features", w, "--num-mel-bins", "many"]);
    assert_fails(&o, 2, &["invalid value"], "non-numeric bins");
    let o = hark(&["features", w, "--snip-edges", "maybe"]);
    assert_fails(&o, 2, &["invalid value"], "non-boolean snip-edges");
    let o = hark(&["features"]);
    assert_fails(&o, 2, &["FILE"], "missing file argument");
    // Values the feature code rejects: exit code 1, the problem named.
    let o = hark(&["features", w, "--num-mel-bins", "1"]);
    assert_fails(&o, 1, &["num-mel-bins must be >= 3"], "1 mel bin");
    let o = hark(&["features", w, "--dither=-1"]);
    assert_fails(&o, 1, &["dither"], "negative dither");
    let o = hark(&[
        "features",
        w,
        "--kind",
        "whisper-mel",
        "--num-mel-bins",
        "0",
    ]);
    assert_fails(&o, 1, &["n_mels must be positive"], "whisper with 0 bins");
    let o = hark(&["features", w, "--kind", "whisper-mel", "--use-energy"]);
    assert_fails(
        &o,
        1,
        &["--use-energy", "whisper-mel"],
        "energy with whisper",
    );
    let o = hark(&[
        "features",
        w,
        "--kind",
        "spectrogram",
        "--num-mel-bins",
        "40",
    ]);
    assert_fails(
        &o,
        1,
        &["--num-mel-bins", "spectrogram"],
        "bins with spectrogram",
    );
    let o = hark(&["features", w, "-o", "/nonexistent/dir/out.ark"]);
    assert_fails(
        &o,
        1,
        &["cannot create", "/nonexistent/dir/out.ark"],
        "bad output path",
    );
}

#[test]
fn features_bad_files_fail_with_the_file_named() {
    let d = TempDir::new("badfiles");
    let write = |name: &str, bytes: &[u8]| {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    };
    let missing = d.path().join("missing.flac");
    let empty = write("empty.wav", b"");
    let junk = write("junk.mp3", b"definitely not an mp3 stream, only text bytes");
    // Header of a 16 kHz mono 16-bit WAV, cut in the middle of the fmt chunk.
    let mut hdr = Vec::new();
    hdr.extend_from_slice(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00");
    let truncated = write("truncated.wav", &hdr);
    let short = d.path().join("short.wav");
    write_test_wav(&short, 16_000, 0.01); // 160 samples < one 400-sample frame
    for (path, needles) in [
        (&missing, &["cannot open", "missing.flac"][..]),
        (&empty, &["empty", "empty.wav"][..]),
        (&junk, &["not a readable audio file", "junk.mp3"][..]),
        (&truncated, &["truncated.wav"][..]),
        (&short, &["shorter than one frame", "short.wav"][..]),
    ] {
        let o = hark(&["features", path.to_str().expect("utf8")]);
        assert_fails(&o, 1, needles, &path.display().to_string());
        assert!(o.stdout.is_empty(), "{}: nothing on stdout", path.display());
    }
}

#[test]
fn features_help_lists_kinds_and_formats() {
    let o = hark(&["features", "--help"]);
    assert_ok(&o, "--help");
    let out = stdout(&o);
    for needle in [
        "Usage: hark features",
        "fbank",
        "spectrogram",
        "mfcc",
        "whisper-mel",
        "kaldi-text",
        "npy",
        "--num-mel-bins",
        "--snip-edges",
        "--use-energy",
        "--htk-compat",
        "--dither",
    ] {
        assert!(out.contains(needle), "help lacks {needle:?}:\n{out}");
    }
}
