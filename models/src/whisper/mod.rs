//! Whisper: encoder, decoder, decoding (greedy, beam, timestamps, long-form).

pub mod config;
