//! Acoustic features: Kaldi-compatible fbank/spectrogram/MFCC with CMVN, and
//! Whisper's log-mel spectrogram.
//!
//! Layouts differ on purpose, each following its consumer: Kaldi features are
//! `[n_frames, dim]` row-major (one frame per row, as in Kaldi archives), Whisper
//! log-mel is `[n_mels, n_frames]` row-major (the encoder's conv input layout).

pub mod cmvn;
pub mod fbank;
pub mod output;
mod srfft;
pub mod whisper;

pub use cmvn::GlobalCmvn;
pub use fbank::{Fbank, FbankOptions, Features, FrameComputer, OnlineFeatures};
pub use whisper::{log_mel_spectrogram, LogMel, WhisperMel};
