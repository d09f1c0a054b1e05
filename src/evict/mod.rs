//! SuperCompress: question-aware eviction of context tokens, scored by a 4,993-parameter MLP.
//!
//! A re-implementation of the `supercompress` 0.5.0 Python package on candle. A context is cut into
//! lines and tokens ([`Records`]); every token gets deterministic attention proxies and 9 features; a
//! policy ([`PolicyKind`]) keeps a budget of tokens; every line holding a kept token comes back, plus
//! the first 2 and last 8 lines ([`compress_context`]).
//!
//! ```
//! use kompress::evict::{compress_context, EvictionNetwork, PolicyKind};
//! let net = EvictionNetwork::embedded()?;
//! let context = "import os\n\ndef fetch(row):\n    return None\n".repeat(10);
//! let question = "What does fetch return?";
//! let policy = PolicyKind::Learned.build(question, &net, 0);
//! let result = compress_context(&context, question, 0.35, policy.as_ref())?;
//! assert!(result.compressed_text.contains("def fetch"));
//! # Ok::<(), kompress::Error>(())
//! ```

mod compress;
mod metrics;
mod network;
mod oracle;
mod policies;
mod pytext;
mod records;
mod rng;
mod simulator;
mod train;

pub use compress::{
    compare_policies, compress_context, compress_detailed, compress_for_turn, CompressResult, LineAnnotation,
    PolicyComparison, Reason, BLOCK_SEPARATOR,
};
pub use metrics::{
    answer_quality_score, entity_recall, oracle_recall, run_benchmark, BenchmarkRow, Metrics,
    SustainabilityAssumptions, SustainabilityEstimate,
};
pub use network::{EvictionNetwork, HIDDEN_DIM, TENSOR_SHAPES};
pub use oracle::{mark_important, oracle_labels};
pub use policies::{
    AttentionHeuristic, EvictionPolicy, Fifo, H2o, Learned, Lru, Oracle, PolicyKind, RandomPolicy,
    SlidingWindow, SnapKv, Summarization, Truncation,
};
pub use records::{
    question_entities, tokenize_lines, Records, SemanticType, TokenRecord, FEATURE_DIM, PROXY_LAYER_FACTOR,
    PROXY_NOISE,
};
pub use rng::{NumpyRng, PyRandom};
pub use simulator::generate_long_context;
pub use train::{train, TrainConfig, Trained};

/// Splits text into lines exactly as the reference does (Python's `str.splitlines`).
pub fn split_lines(text: &str) -> Vec<&str> {
    pytext::splitlines(text)
}
