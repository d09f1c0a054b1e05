//! Context compression: budget, policy selection and line reconstruction (reference: `compress.py`).

use std::fmt;

use serde::Serialize;

use super::metrics::Metrics;
use super::oracle::mark_important;
use super::policies::{EvictionPolicy, PolicyKind};
use super::pytext;
use super::records::{question_entities, Records};
use super::EvictionNetwork;
use crate::{Error, Result};

/// Lines always kept at the start of the context (attention sinks).
const SINK_LINES: usize = 2;
/// Lines always kept at the end of the context (recent context).
const RECENT_LINES: usize = 8;
/// What `compress_for_turn` puts between context blocks.
pub const BLOCK_SEPARATOR: &str = "\n\n---\n\n";

/// The outcome of compressing one context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressResult {
    /// Display name of the policy (`noop` for a blank context).
    pub policy: String,
    /// The kept lines joined with `\n`.
    pub compressed_text: String,
    /// Token positions the policy kept (ascending).
    pub kept_positions: Vec<usize>,
    /// Indices of the lines in `compressed_text` (ascending).
    pub kept_lines: Vec<usize>,
    /// Tokens in the context.
    pub original_tokens: usize,
    /// Tokens the policy kept: the budget, as the reference reports it.
    pub kept_tokens: usize,
    /// `100 * (1 - kept_tokens / original_tokens)`: the reference's KV savings.
    pub kv_savings_pct: f64,
    /// Tokens actually in `compressed_text` (whole kept lines, sinks and recent lines included).
    pub output_tokens: usize,
    /// `100 * (1 - output_tokens / original_tokens)`: the savings of the text actually returned.
    pub text_savings_pct: f64,
    /// Characters in the context.
    pub original_chars: usize,
    /// Characters in `compressed_text`.
    pub output_chars: usize,
}

impl CompressResult {
    /// The result as `kompress evict --json` prints it, with every line's fate under `annotations`
    /// when given (`kompress evict --json --annotate`).
    pub fn to_json(&self, annotations: Option<&[LineAnnotation]>) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("results serialize");
        if let Some(a) = annotations {
            v["annotations"] = serde_json::to_value(a).expect("annotations serialize");
        }
        v
    }
}

/// Why a line is in the output, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// One of the first two lines.
    Sink,
    /// One of the last eight lines.
    Recent,
    /// The policy kept a token of it and it names a question entity.
    EntityMatch,
    /// The policy kept a token of it.
    PolicyScore,
    /// Dropped.
    Evicted,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Sink => "attention sink",
            Reason::Recent => "recent context",
            Reason::EntityMatch => "question entity match",
            Reason::PolicyScore => "policy score",
            Reason::Evicted => "evicted",
        })
    }
}

/// One line of the context with its fate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineAnnotation {
    /// 0-based line index, as in [`CompressResult::kept_lines`] (the reference's convention).
    pub line: usize,
    /// Whether the line is in the output.
    pub kept: bool,
    /// Why.
    pub reason: Reason,
}

/// Compresses `text` for `question`, keeping `budget_ratio` of its tokens by `policy`, then returning
/// every line that holds a kept token plus the first 2 and last 8 lines.
///
/// The budget is `max(1, min(n, floor(n * budget_ratio)))`; `budget_ratio` must be in (0, 1]. A blank
/// text comes back unchanged with policy `noop`.
///
/// ```
/// use kompress::evict::{compress_context, EvictionNetwork, PolicyKind};
/// let net = EvictionNetwork::embedded()?;
/// let text = (0..40).map(|i| format!("x{i} = {i}")).collect::<Vec<_>>().join("\n");
/// let policy = PolicyKind::Learned.build("what is x20", &net, 0);
/// let r = compress_context(&text, "what is x20", 0.35, policy.as_ref())?;
/// assert_eq!(r.original_tokens, 150); // `x12 = 12` is 4 tokens: digits stand alone
/// assert_eq!(r.kept_tokens, 52); // floor(35% of 150)
/// assert!(r.compressed_text.len() < text.len());
/// # Ok::<(), kompress::Error>(())
/// ```
pub fn compress_context(
    text: &str,
    question: &str,
    budget_ratio: f64,
    policy: &dyn EvictionPolicy,
) -> Result<CompressResult> {
    Ok(select_lines(text, question, budget_ratio, policy)?.result)
}

/// [`compress_context`] plus, for every line, whether it was kept and why.
pub fn compress_detailed(
    text: &str,
    question: &str,
    budget_ratio: f64,
    policy: &dyn EvictionPolicy,
) -> Result<(CompressResult, Vec<LineAnnotation>)> {
    let Selection { result, lines, by_policy } = select_lines(text, question, budget_ratio, policy)?;
    let entities = question_entities(question);
    let n_lines = lines.len();
    let annotations = (0..n_lines)
        .map(|l| {
            let reason = if l < SINK_LINES {
                Reason::Sink
            } else if l + RECENT_LINES >= n_lines {
                Reason::Recent
            } else if !by_policy[l] {
                Reason::Evicted
            } else if entities.iter().any(|e| lines[l].contains(e)) {
                Reason::EntityMatch
            } else {
                Reason::PolicyScore
            };
            LineAnnotation { line: l, kept: reason != Reason::Evicted, reason }
        })
        .collect();
    Ok((result, annotations))
}

/// A compression with what [`compress_detailed`] needs to explain it.
struct Selection<'a> {
    result: CompressResult,
    lines: Vec<&'a str>,
    /// Per line: whether the policy kept one of its tokens.
    by_policy: Vec<bool>,
}

fn select_lines<'a>(
    text: &'a str,
    question: &str,
    budget_ratio: f64,
    policy: &dyn EvictionPolicy,
) -> Result<Selection<'a>> {
    if !(budget_ratio > 0.0 && budget_ratio <= 1.0) {
        return Err(Error::Invalid(format!("budget ratio must be in (0, 1], got {budget_ratio}")));
    }
    let original_chars = text.chars().count();
    if pytext::strip(text).is_empty() {
        let result = CompressResult {
            policy: "noop".into(),
            compressed_text: text.into(),
            kept_positions: Vec::new(),
            kept_lines: Vec::new(),
            original_tokens: 0,
            kept_tokens: 0,
            kv_savings_pct: 0.0,
            output_tokens: 0,
            text_savings_pct: 0.0,
            original_chars,
            output_chars: original_chars,
        };
        return Ok(Selection { result, lines: Vec::new(), by_policy: Vec::new() });
    }
    let lines = pytext::splitlines(text);
    let mut records = Records::for_inference(&lines, question);
    if policy.needs_oracle_labels() {
        // The records' own tokens: no second tokenization.
        let labels = mark_important(&records.tokens, &lines, &question_entities(question));
        for (rec, label) in records.records.iter_mut().zip(labels) {
            rec.oracle_important = label;
        }
    }
    let n = records.len();
    let budget = ((n as f64 * budget_ratio) as usize).min(n).max(1);
    let kept_positions = policy.select(&records, budget)?;

    let n_lines = lines.len();
    let mut by_policy = vec![false; n_lines];
    for &p in &kept_positions {
        by_policy[records.records[p].line] = true;
    }
    let kept: Vec<bool> =
        (0..n_lines).map(|l| l < SINK_LINES || l + RECENT_LINES >= n_lines || by_policy[l]).collect();
    let kept_lines: Vec<usize> = (0..n_lines).filter(|&l| kept[l]).collect();
    let compressed_text = kept_lines.iter().map(|&l| lines[l]).collect::<Vec<_>>().join("\n");
    let output_tokens = records.records.iter().filter(|r| kept[r.line]).count();
    let output_chars = compressed_text.chars().count();

    let result = CompressResult {
        policy: policy.name().to_string(),
        compressed_text,
        kv_savings_pct: savings_pct(kept_positions.len(), n),
        kept_tokens: kept_positions.len(),
        kept_positions,
        kept_lines,
        original_tokens: n,
        output_tokens,
        text_savings_pct: savings_pct(output_tokens, n),
        original_chars,
        output_chars,
    };
    Ok(Selection { result, lines, by_policy })
}

fn savings_pct(kept: usize, total: usize) -> f64 {
    (1.0 - kept as f64 / total.max(1) as f64) * 100.0
}

/// Merges the non-blank context blocks of an agent turn with [`BLOCK_SEPARATOR`], then compresses.
///
/// ```
/// use kompress::evict::{compress_for_turn, EvictionNetwork, PolicyKind};
/// let net = EvictionNetwork::embedded()?;
/// let policy = PolicyKind::Learned.build("q", &net, 0);
/// let r = compress_for_turn(&["a = 1", "  ", "b = 2"], "q", 1.0, policy.as_ref())?;
/// assert_eq!(r.compressed_text, "a = 1\n\n---\n\nb = 2");
/// # Ok::<(), kompress::Error>(())
/// ```
pub fn compress_for_turn(
    blocks: &[&str],
    user_query: &str,
    budget_ratio: f64,
    policy: &dyn EvictionPolicy,
) -> Result<CompressResult> {
    let merged = blocks.iter().filter(|b| !pytext::strip(b).is_empty()).copied().collect::<Vec<_>>();
    compress_context(&merged.join(BLOCK_SEPARATOR), user_query, budget_ratio, policy)
}

/// One policy's outcome in [`compare_policies`].
#[derive(Debug, Clone, Serialize)]
pub struct PolicyComparison {
    /// The policy's command-line name.
    pub policy: String,
    /// Its compression.
    pub result: CompressResult,
    /// Its quality metrics.
    pub metrics: Metrics,
}

/// Compresses `text` with each of `policies` and scores each result.
pub fn compare_policies(
    text: &str,
    question: &str,
    budget_ratio: f64,
    policies: &[PolicyKind],
    network: &EvictionNetwork,
    seed: u32,
) -> Result<Vec<PolicyComparison>> {
    let lines = pytext::splitlines(text);
    policies
        .iter()
        .map(|&kind| {
            let policy = kind.build(question, network, seed);
            let result = compress_context(text, question, budget_ratio, policy.as_ref())?;
            let metrics = Metrics::new(&lines, &result, question);
            Ok(PolicyComparison { policy: kind.to_string(), result, metrics })
        })
        .collect()
}
