//! The one error type of hark-audio.
//!
//! Every variant names the file (or the operation) and the problem, so that a
//! message printed by the CLI is enough to understand what went wrong.

use std::path::PathBuf;

/// Errors from decoding, resampling, capture and feature extraction.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The path does not exist or cannot be opened.
    #[error("cannot open audio file {path}: {io}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        io: std::io::Error,
    },
    /// The file exists but holds zero bytes.
    #[error("audio file {path} is empty (0 bytes)")]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a recognised audio container, or the header is truncated or corrupt.
    #[error("audio file {path} is not a readable audio file: {reason}")]
    UnrecognizedFormat {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The container is readable but the codec inside is not supported.
    #[error("audio file {path}: unsupported codec: {reason}")]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// Which codec / what the decoder said.
        reason: String,
    },
    /// The stream declares zero channels.
    #[error("audio file {path} declares zero channels")]
    ZeroChannels {
        /// The file.
        path: PathBuf,
    },
    /// The stream declares a zero (or missing) sample rate.
    #[error("audio file {path} has no valid sample rate")]
    BadSampleRate {
        /// The file.
        path: PathBuf,
    },
    /// Decoding failed part-way through the stream.
    #[error("audio file {path}: decode error after {frames_decoded} frames: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Frames successfully decoded before the failure.
        frames_decoded: usize,
        /// What the decoder said.
        reason: String,
    },
    /// The decoded stream holds no samples.
    #[error("audio file {path} contains no samples (0-length signal)")]
    NoSamples {
        /// The file.
        path: PathBuf,
    },
    /// A decoded sample is NaN or infinite.
    #[error("audio file {path}: sample {index} (channel {channel}) is not finite ({value})")]
    NonFiniteSample {
        /// The file.
        path: PathBuf,
        /// Frame index of the first bad sample.
        index: usize,
        /// Channel of the first bad sample.
        channel: usize,
        /// The value.
        value: f32,
    },
    /// A signal given to a processing step is empty.
    #[error("{op}: the input signal is empty (0 samples)")]
    EmptySignal {
        /// The operation.
        op: &'static str,
    },
    /// A signal given to a processing step contains NaN or infinity.
    #[error("{op}: input sample {index} is not finite ({value})")]
    NonFiniteInput {
        /// The operation.
        op: &'static str,
        /// Index of the first bad sample.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Invalid options for a processing step.
    #[error("{op}: invalid options: {reason}")]
    InvalidOptions {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The resampler failed.
    #[error("resampling {from_hz} Hz -> {to_hz} Hz failed: {reason}")]
    Resample {
        /// Input rate.
        from_hz: u32,
        /// Output rate.
        to_hz: u32,
        /// What rubato said.
        reason: String,
    },
    /// A CMVN statistics file could not be read.
    #[error("CMVN stats {path}: {reason}")]
    Cmvn {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The feature dimension does not match the CMVN dimension.
    #[error("CMVN: feature dimension {features} does not match statistics dimension {stats}")]
    CmvnDim {
        /// Feature dimension.
        features: usize,
        /// CMVN dimension.
        stats: usize,
    },
    /// No audio input device is available, or the named one does not exist.
    #[error("audio input device {wanted}: {reason}; available input devices: {available}")]
    DeviceNotFound {
        /// The device asked for ("default" for the default one).
        wanted: String,
        /// What went wrong.
        reason: String,
        /// Comma-separated list of available input devices, or "(none)".
        available: String,
    },
    /// The audio host or device failed.
    #[error("audio capture ({op}): {reason}")]
    Capture {
        /// The operation (enumerate, open, play...).
        op: &'static str,
        /// What cpal said.
        reason: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {io}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        io: std::io::Error,
    },
}

/// Fails with [`AudioError::NonFiniteInput`] naming the first NaN/inf sample of `x`.
pub(crate) fn check_finite(op: &'static str, x: &[f32]) -> Result<(), AudioError> {
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(AudioError::NonFiniteInput {
            op,
            index,
            value: x[index],
        }),
    }
}
