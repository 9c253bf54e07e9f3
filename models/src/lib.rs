//! hark-models: model families (Whisper, conformer-AED), decoding, the model store,
//! and evaluation (WER/CER, text normalisers, dataset readers).

pub mod conformer_aed;
pub mod eval;
pub mod recognizer;
pub mod store;
pub mod streaming;
pub mod whisper;
