//! Evaluation: WER/CER scoring, text normalisers, dataset readers and the
//! evaluation loop behind `hark eval`.
//!
//! - [`score`]: Levenshtein alignment with jiwer's (rapidfuzz's) tie-breaking, so
//!   substitution/deletion/insertion counts equal jiwer's, not only the totals.
//! - [`normalize`]: `none`, `basic`, `upper` and `whisper-en` (a port of
//!   openai-whisper's `EnglishTextNormalizer`; character classes come from tables
//!   generated from Python's `unicodedata` so both classify alike).
//! - [`dataset`]: Kaldi data dirs, LibriSpeech trees and JSONL manifests; problems
//!   are counted in a summary rather than silently dropped.
//! - [`runner`]: [`evaluate`] drives a transcription closure and returns a
//!   serialisable [`EvalReport`].

pub mod dataset;
mod english;
mod english_numbers;
pub mod normalize;
mod pyre;
pub mod runner;
pub mod score;
pub mod spelled;
mod unicode;
mod unicode_tables;

use std::path::PathBuf;

pub use dataset::{
    detect_format, load_dataset, Dataset, DatasetFormat, DatasetSummary, Segment, Utterance,
};
pub use english::whisper_english;
pub use normalize::Normalizer;
pub use runner::{
    evaluate, peak_memory_bytes, score_utterance, EvalOptions, EvalReport, Progress,
    TranscribeError, Transcription, UtteranceResult,
};
pub use score::{
    align, aligned_tokens, chars, render_alignment, score_pair, words, AlignedToken,
    AlignmentChunk, EditOp, ErrorCounts, PairScore,
};

/// Errors of the evaluation module.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The dataset path does not exist.
    #[error("dataset {0} does not exist")]
    NotFound(PathBuf),
    /// No known layout was recognised.
    #[error(
        "{0}: no dataset layout recognised (expected a Kaldi dir with wav.scp, a .jsonl manifest or a dir with manifest.jsonl, or a LibriSpeech tree with *.trans.txt)"
    )]
    UnknownLayout(PathBuf),
    /// A line of a dataset file is malformed.
    #[error("{path}:{line}: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// `wav.scp` uses a command pipe, which hark does not run.
    #[error("{path}:{line}: piped wav.scp entries are not supported ({entry:?}); convert the audio to files first")]
    PipedCommand {
        /// The wav.scp file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The entry.
        entry: String,
    },
    /// Unknown normaliser name.
    #[error("unknown normaliser {0:?} (expected none, basic, upper or whisper-en)")]
    UnknownNormalizer(String),
    /// Unknown dataset format name.
    #[error("unknown dataset format {0:?} (expected auto, kaldi, librispeech or jsonl)")]
    UnknownFormat(String),
}
