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
    /// Fetching a model from the Hugging Face hub failed.
    #[error("hub: {0}")]
    Hub(String),
    /// A hub model's file cannot be fetched (offline, or the hub cannot be listed) and is not in the
    /// local cache either.
    #[error("hub: {repo}: {reason}, and the HF cache {} holds no {file} of it", cache.display())]
    NotCached {
        /// `owner/name@revision`.
        repo: String,
        /// The file (or the alternatives) that is missing.
        file: String,
        /// The cache that was looked in.
        cache: PathBuf,
        /// Whether offline mode was asked for (else the hub could not be reached).
        offline: bool,
        /// Why the hub was not asked: `offline`, or the hub's error.
        reason: String,
    },
    /// Invalid input or argument to a library call.
    #[error("{0}")]
    Invalid(String),
    /// A service cannot take the work now (shutting down, its model worker gone, the work cancelled):
    /// not the caller's fault, and worth retrying elsewhere or later.
    #[error("{0}")]
    Unavailable(String),
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
    /// An error raised by candle while computing (without the backtrace candle attaches when
    /// `RUST_BACKTRACE` is set: a message stays one line).
    #[error("tensor computation: {0}")]
    Candle(#[source] candle_core::Error),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(without_backtrace(e))
    }
}

/// `e` with every backtrace candle wrapped into it removed, and its contexts (which candle prints on
/// lines of their own) joined to their cause on one line.
fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => without_backtrace(*inner),
        E::Context { inner, context } => E::Msg(format!("{context}: {}", without_backtrace(*inner))),
        E::WrappedContext { wrapped, context } => E::Msg(format!("{context}: {wrapped}")),
        E::WithPath { inner, path } => E::WithPath { inner: Box::new(without_backtrace(*inner)), path },
        other => other,
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().display().to_string(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candle_backtrace_never_reaches_the_message() {
        let traced = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("index out of range".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let e = Error::from(traced.with_path("model.safetensors").context("embeddings"));
        assert_eq!(
            e.to_string(),
            "tensor computation: embeddings: path: \"model.safetensors\" index out of range"
        );
    }
}
