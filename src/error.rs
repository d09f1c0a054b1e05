//! The library's typed errors.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Each variant's message is one line that names the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration file is missing a value, holds an unknown value, or contradicts itself.
    #[error("invalid model config {path}: {reason}")]
    Config { path: String, reason: String },
    /// A tensor the model needs is absent from the checkpoint.
    #[error("checkpoint {path}: tensor `{name}` is missing (expected shape {expected:?})")]
    MissingTensor { path: String, name: String, expected: Vec<usize> },
    /// A tensor in the checkpoint has the wrong shape.
    #[error("checkpoint {path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape { path: String, name: String, expected: Vec<usize>, found: Vec<usize> },
    /// A checkpoint file cannot be read or parsed.
    #[error("cannot read checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// A model directory lacks a file it needs.
    #[error("model directory {dir}: {reason}")]
    ModelDir { dir: PathBuf, reason: String },
    /// The tokenizer file cannot be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The input is longer than the model accepts.
    #[error("input has {tokens} tokens, more than the model's maximum of {max}")]
    TooLong { tokens: usize, max: usize },
    /// A device or dtype is unknown, unavailable, or not compiled into this build.
    #[error("{0}")]
    Device(String),
    /// Fetching a model from the Hugging Face hub failed, or a file is absent in offline mode.
    #[error("hub: {0}")]
    Hub(String),
    /// Invalid input or argument to a library call.
    #[error("{0}")]
    Invalid(String),
    /// An input/output error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A tensor layout that candle's GPU back ends refuse reached an op: a bug in this crate, caught on
    /// every device so that CPU tests find it.
    #[error("internal: {0}, a layout the GPU back ends refuse")]
    Layout(String),
    /// An error raised by candle while computing.
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}
