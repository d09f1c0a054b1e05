//! kompress: make LLM context smaller before it reaches the model.
//!
//! Two engines live here:
//! - **Kompress**, a dual-head ModernBERT token classifier ([`Kompress`]) that scores every token of a
//!   text, re-implemented on candle and loading the published `chopratejas/kompress-*` checkpoints;
//! - **SuperCompress**, a question-aware eviction policy scored by a 5K-parameter MLP.
//!
//! The same engine runs LLMLingua-2's BERT and XLM-RoBERTa token classifiers ([`bert`]: the family comes
//! from `config.json`) and any `ModernBertForTokenClassification` (ctxprune's model), in Kompress's
//! pipeline or through their own algorithms ([`llmlingua2`], [`ctxprune`]).
//!
//! The layout follows the flow: [`method`] (the one interface every entry point calls) -> a method
//! ([`pipeline`] with its Headroom compat, [`llmlingua2`], [`ctxprune`]) -> the [`Scorer`] ([`model`])
//! -> an encoder with its loading pieces ([`encoders`]) -> the CPU kernels; [`evict`] is SuperCompress,
//! [`server`] the HTTP service, [`cli`] the `kompress` command line.

// The command line's modules (moved here from the binary, see `cli`) name the library `kompress::`,
// as they did there.
extern crate self as kompress;

#[cfg(feature = "cli")]
pub mod cli;
pub mod ctxprune;
pub mod encoders;
pub mod error;
pub mod evict;
mod kernels;
pub mod llmlingua2;
pub mod method;
pub mod model;
pub mod pipeline;
#[cfg(feature = "server")]
pub mod server;

pub use encoders::{bert, config, device, heads, hub, modernbert, tokenize, weights};

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
