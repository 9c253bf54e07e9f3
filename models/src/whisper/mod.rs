//! Whisper: encoder, decoder, decoding (greedy, beam, timestamps, long-form).
//!
//! - [`model`]: the network (immutable weights, `Arc`-shareable) and the per-stream
//!   [`DecoderState`] (in-place KV cache, cross-attention K/V once per window);
//! - [`decode`]: one window's decoding (greedy / beam / sampling + Whisper logit rules),
//!   following CTranslate2, which faster-whisper runs;
//! - [`transcribe`]: long-form loop (30 s window, seek, temperature fallback,
//!   no-speech skip, prompt conditioning), following faster-whisper.

pub mod config;
pub mod decode;
pub mod error;
pub mod import_ct2;
pub mod import_hf;
pub mod model;
pub mod transcribe;

pub use config::Precision;
pub use decode::{GenerateOptions, Generation, SpecialTokens};
pub use error::{Result, WhisperError};
pub use model::{DecodeRows, DecoderState, EncoderOutput, SilenceCache, WhisperModel};
pub use transcribe::{
    AudioCtxMode, FileSource, SampleSource, Segment, SliceSource, TranscribeOptions,
    TranscriptionInfo, Whisper,
};

/// Sets the number of compute threads used by the Whisper forward pass (hark-engine's
/// pool for the GEMMs and the rayon pool for attention heads). Call once, early.
pub fn set_threads(n: usize) -> Result<()> {
    let n = n.max(1);
    hark_engine::threads::set_threads(n)
        .map_err(|e| WhisperError::Invalid(format!("thread pool: {e}")))?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| WhisperError::Invalid(format!("thread pool: {e}")))
}
