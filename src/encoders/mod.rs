//! The encoders and what loads them: ModernBERT (Kompress's, and transformers'
//! `ModernBertForTokenClassification`), BERT / XLM-RoBERTa (LLMLingua-2's), the heads on top of them,
//! and the loading pieces they share (the config, the checkpoint's weights, the hub, the tokenizer, the
//! device). [`crate::Scorer`] runs one of them; the methods ([`crate::method`]) run the scorer.
//!
//! The modules are also at the crate root (`kompress::bert`, `kompress::config`, ...), their paths
//! before this folder existed.

pub mod bert;
pub mod config;
pub mod device;
pub mod heads;
pub mod hub;
pub mod modernbert;
pub mod tokenize;
pub mod weights;
