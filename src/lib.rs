//! kompress: make LLM context smaller before it reaches the model.
//!
//! Two engines live here:
//! - **Kompress**, a dual-head ModernBERT token classifier ([`Kompress`]) that scores every token of a
//!   text, re-implemented on candle and loading the published `chopratejas/kompress-*` checkpoints;
//! - **SuperCompress**, a question-aware eviction policy scored by a 5K-parameter MLP.
//!
//! The same engine runs LLMLingua-2's BERT and XLM-RoBERTa token classifiers ([`bert`]: the family comes
//! from `config.json`), in Kompress's pipeline or through LLMLingua-2's own algorithm ([`llmlingua2`]).

pub mod bert;
pub mod config;
pub mod ctxprune;
pub mod device;
pub mod error;
pub mod evict;
pub mod heads;
pub mod hub;
mod kernels;
pub mod llmlingua2;
pub mod method;
pub mod model;
pub mod modernbert;
pub mod pipeline;
#[cfg(feature = "server")]
pub mod server;
pub mod tokenize;
pub mod weights;

pub use config::{Config, LayerKind};
pub use device::{DTypeChoice, DeviceChoice, Linears, Precision};
pub use error::{Error, Result};
pub use hub::{HubOptions, ModelFiles};
pub use model::{Kompress, LoadOptions, LoadTimes, Scorer, TokenScores};
pub use pipeline::{compress, compress_batch, CompressOptions, CompressResult};
pub use tokenize::{TextEncoding, WordEncoding, WordTokenizer};

/// The README's Rust examples, compiled as doctests so that they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
