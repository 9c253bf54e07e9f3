//! Errors of the Whisper model and its decoding.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a Whisper model.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// A file of the model directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// the file
        path: PathBuf,
        /// the cause
        source: std::io::Error,
    },
    /// `config.json` is not a valid hark Whisper configuration.
    #[error("invalid Whisper config {path}: {msg}")]
    Config {
        /// the file
        path: PathBuf,
        /// what is wrong
        msg: String,
    },
    /// Loading weights from `model.safetensors` or running an engine op failed (the
    /// engine's message names the file, tensor or op).
    #[error("whisper: {0}")]
    Engine(#[from] hark_engine::Error),
    /// The tokenizer could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Invalid decoding/transcription options or inputs.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The caller's cancellation flag was set: the transcription stopped early (at an
    /// encoder layer, a decoder step or a window boundary) and returns no result.
    #[error("transcription cancelled")]
    Cancelled,
    /// Audio decoding failed.
    #[error("audio: {0}")]
    Audio(String),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, WhisperError>;
