//! hark-audio: file decoding, microphone capture, resampling, feature extraction.
//!
//! Map:
//! - [`decode`]: files -> samples (hound for WAV, symphonia for the rest);
//!   [`load_audio`] gives mono f32 at 16 kHz, what every model consumes.
//! - [`reader`]: [`FileReader`], the same samples as [`load_audio`] streamed
//!   chunk by chunk in bounded memory (hours-long files).
//! - [`mod@resample`]: rubato sinc resampler usable chunk by chunk (live input) or on
//!   whole signals; both paths give identical output.
//! - [`capture`]: cpal microphone capture; the callback only pushes into a
//!   lock-free SPSC ring buffer, a consumer thread downmixes and resamples.
//! - [`source`]: [`AudioSource`], one interface over microphone and file (a file
//!   can be paced at real time so streaming tests take the live path).
//! - [`features`]: Kaldi fbank/spectrogram/MFCC + CMVN, Whisper log-mel.
//!
//! The crate depends on nothing else of hark's; errors are one [`AudioError`] enum.
#![deny(missing_docs)]

pub mod capture;
pub mod decode;
pub mod error;
pub mod features;
pub mod reader;
pub mod resample;
pub mod source;
pub mod vad;

pub use decode::{
    decode_file, downmix, load_audio, load_audio_at, DecodedAudio, TARGET_SAMPLE_RATE,
};
pub use error::AudioError;
pub use reader::FileReader;
pub use resample::{resample, StreamResampler};
pub use source::{AudioSource, FileSource, MicSource};
