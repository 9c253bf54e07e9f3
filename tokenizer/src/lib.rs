//! hark-tokenizer: Whisper byte-level BPE, SentencePiece BPE and unit lists.
//!
//! [`WhisperTokenizer`] loads a Hugging Face `tokenizer.json` (as shipped with
//! CTranslate2/faster-whisper models) and reproduces `tokenizers`' encoding and
//! decoding exactly, plus Whisper's special tokens, timestamp tokens and the
//! non-speech suppression list. No regex engine is used: GPT-2's pre-tokenisation
//! rule is implemented by hand (see `bytelevel.rs`), with a generated `\p{L}` table.
//!
//! [`sentencepiece`] reads SentencePiece BPE `.model` files and [`units`] token lists
//! (`dict.txt`/`units.txt`/`tokens.txt`), for the conformer-AED models.

#![deny(missing_docs)]

mod bpe;
mod bytelevel;
mod languages;
mod letters;
pub mod sentencepiece;
pub mod units;
mod whisper;

pub use languages::LANGUAGES;
pub use whisper::{Task, WhisperTokenizer, NUM_TIMESTAMP_TOKENS, TIMESTAMP_STEP_SECONDS};

/// Errors while loading or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The tokenizer file could not be read.
    #[error("reading tokenizer file {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The tokenizer JSON is malformed.
    #[error("parsing tokenizer JSON {origin}: {source}")]
    Json {
        /// File path or other origin.
        origin: String,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// The model is not a BPE model.
    #[error("tokenizer {origin}: model type {kind:?} is not supported (expected \"BPE\")")]
    UnsupportedModel {
        /// File path or other origin.
        origin: String,
        /// The `model.type` found.
        kind: String,
    },
    /// A token Whisper needs is absent.
    #[error("tokenizer {origin}: token {token:?} is missing")]
    MissingToken {
        /// File path or other origin.
        origin: String,
        /// The missing token.
        token: String,
    },
    /// The vocabulary, merges or special tokens contradict each other.
    #[error("tokenizer {origin}: {detail}")]
    Inconsistent {
        /// File path or other origin.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// A language code without a token in this vocabulary.
    #[error("language {0:?} has no token in this vocabulary")]
    UnknownLanguage(String),
}
