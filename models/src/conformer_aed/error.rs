//! Errors of the conformer_aed family: each names the file, tensor or option at fault.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a conformer_aed model.
#[derive(Debug, thiserror::Error)]
pub enum ConformerError {
    /// Reading a file failed.
    #[error("conformer_aed: cannot read {path}: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON or has an unknown / ill-typed option.
    #[error("conformer_aed: {path}: invalid config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What serde or the validator reported (names the option).
        message: String,
    },
    /// A config option has a value this implementation does not support.
    #[error("conformer_aed: config option `{option}` = {value}: {message}")]
    Unsupported {
        /// Option name as in config.json.
        option: &'static str,
        /// The offending value.
        value: String,
        /// Why it is rejected.
        message: String,
    },
    /// The safetensors file is malformed.
    #[error("conformer_aed: {path}: malformed safetensors: {message}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor the config requires is absent.
    #[error("conformer_aed: missing tensor `{name}` in {path}")]
    MissingTensor {
        /// Tensor name.
        name: String,
        /// The weights file.
        path: PathBuf,
    },
    /// The file holds tensors the config does not explain.
    #[error("conformer_aed: unexpected tensor(s) {names} in {path}")]
    UnexpectedTensors {
        /// Comma-separated tensor names.
        names: String,
        /// The weights file.
        path: PathBuf,
    },
    /// A tensor has the wrong shape for the config.
    #[error("conformer_aed: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// Shape found.
        got: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
    },
    /// Input features do not fit the model.
    #[error("conformer_aed: input features: {0}")]
    Input(String),
    /// An engine op (KV cache, attention) rejected its arguments.
    #[error("conformer_aed: engine: {0}")]
    Engine(#[from] hark_engine::Error),
    /// A delegate's decoder session failed (the engine error names the delegate).
    #[error("conformer_aed: decoder session ({call}): {source}")]
    Session {
        /// The session call (`begin`, `step`, `logits`, `reorder`, opening).
        call: &'static str,
        /// The delegate's error.
        source: hark_engine::Error,
    },
    /// Tokenizer files failed to load.
    #[error("conformer_aed: tokenizer: {0}")]
    Tokenizer(String),
}
