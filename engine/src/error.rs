//! Engine error type.
//!
//! Every variant names the operation, file or tensor involved and what was expected,
//! so that a caller (a model loader, a CLI) can print it as is.

use std::path::PathBuf;

use crate::dtype::DType;

/// Errors returned by hark-engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error while reading or writing a file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("open", "mmap", "write").
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A safetensors file is malformed or truncated.
    #[error("safetensors file {path}: {reason}")]
    SafetensorsFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the caller asked for is not in the weights.
    #[error("tensor '{name}' not found in {source_desc}")]
    MissingTensor {
        /// Full tensor name.
        name: String,
        /// Where it was looked up (file name(s)).
        source_desc: String,
    },
    /// A tensor or buffer has a shape other than the one expected.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    ShapeMismatch {
        /// Tensor name or operation and argument ("layer_norm: gamma").
        what: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Actual shape.
        got: Vec<usize>,
    },
    /// A tensor has a dtype other than the one expected.
    #[error("{what}: expected dtype {expected}, got {got}")]
    DTypeMismatch {
        /// Tensor name or operation and argument.
        what: String,
        /// Expected dtype (or list of accepted dtypes).
        expected: String,
        /// Actual dtype.
        got: DType,
    },
    /// A buffer passed to an operation has the wrong length.
    #[error("{op}: buffer '{arg}' has length {got}, expected {expected}")]
    BufferLength {
        /// Operation name.
        op: &'static str,
        /// Argument name.
        arg: &'static str,
        /// Expected length (or minimum length).
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// An operation was given arguments it cannot handle.
    #[error("{op}: {reason}")]
    InvalidArgument {
        /// Operation name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A view or reshape is not possible with this layout.
    #[error("{op}: {reason}")]
    Layout {
        /// Operation name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A KV cache has no room for more positions or beams.
    #[error("kv cache: {reason}")]
    KvCache {
        /// What is wrong.
        reason: String,
    },
    /// A delegate failed while running a stage it had accepted.
    #[error("delegate '{delegate}' failed on stage {stage}: {reason}")]
    Delegate {
        /// Delegate name.
        delegate: String,
        /// Stage name.
        stage: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that a buffer has exactly `expected` elements.
pub(crate) fn check_len(
    op: &'static str,
    arg: &'static str,
    got: usize,
    expected: usize,
) -> Result<()> {
    if got != expected {
        return Err(Error::BufferLength {
            op,
            arg,
            expected,
            got,
        });
    }
    Ok(())
}
