//! Quality and sustainability metrics, and the multi-seed policy benchmark (reference:
//! `benchmarks/metrics.py`, `benchmarks/runner.py`).
//!
//! The reference rounds each metric to 4 decimals before averaging; these functions return exact
//! values and leave rounding to display.

use serde::Serialize;

use super::compress::{compress_context, CompressResult};
use super::oracle::oracle_labels;
use super::policies::PolicyKind;
use super::pytext;
use super::records::question_entities;
use super::rng::PyRandom;
use super::simulator::generate_long_context;
use super::EvictionNetwork;
use crate::Result;

/// Share of the question's entities present (as substrings) in the compressed text; 1 without entities.
pub fn entity_recall(compressed: &str, question: &str) -> f64 {
    let entities = question_entities(question);
    if entities.is_empty() {
        return 1.0;
    }
    entities.iter().filter(|e| compressed.contains(*e)).count() as f64 / entities.len() as f64
}

/// Share of the oracle-important tokens whose positions were kept; 1 when none is important.
pub fn oracle_recall(lines: &[&str], kept_positions: &[usize], question: &str) -> f64 {
    let labels = oracle_labels(lines, question);
    let important = labels.iter().filter(|l| **l).count();
    if important == 0 {
        return 1.0;
    }
    let kept = kept_positions.iter().filter(|&&p| labels.get(p).copied().unwrap_or(false)).count();
    kept as f64 / important as f64
}

/// Answer-quality proxy without an LLM: `0.65 * entity recall + 0.35 * pattern score`, where the
/// pattern score counts, per entity, `def <entity>`, `<entity> =` and the entity itself.
///
/// ```
/// let q = kompress::evict::answer_quality_score("def fetch(x):\n  fetch = 1", "fetch");
/// assert!((q - 1.0).abs() < 1e-12);
/// ```
pub fn answer_quality_score(compressed: &str, question: &str) -> f64 {
    let entities = question_entities(question);
    let recall = entity_recall(compressed, question);
    if entities.is_empty() {
        return 0.65 * recall + 0.35;
    }
    let hits: usize = entities
        .iter()
        .map(|e| {
            usize::from(has_definition(compressed, e))
                + usize::from(has_assignment(compressed, e))
                + usize::from(compressed.contains(e))
        })
        .sum();
    let pattern = (hits as f64 / (entities.len() * 3) as f64).min(1.0);
    0.65 * recall + 0.35 * pattern
}

/// Starts of the occurrences of `needle` that begin at a word boundary (`\bneedle`, needle starting
/// with a word character).
fn word_starts<'h>(hay: &'h str, needle: &'h str) -> impl Iterator<Item = usize> + 'h {
    hay.match_indices(needle)
        .map(|(i, _)| i)
        .filter(move |&i| !hay[..i].chars().next_back().is_some_and(pytext::is_word))
}

/// `\bdef\s+<entity>\b`.
fn has_definition(text: &str, entity: &str) -> bool {
    word_starts(text, "def").any(|i| {
        let rest = &text[i + 3..];
        let name = rest.trim_start_matches(pytext::is_space);
        name.len() < rest.len()
            && name
                .strip_prefix(entity)
                .is_some_and(|after| !after.chars().next().is_some_and(pytext::is_word))
    })
}

/// `\b<entity>\s*=`.
fn has_assignment(text: &str, entity: &str) -> bool {
    word_starts(text, entity)
        .any(|i| text[i + entity.len()..].trim_start_matches(pytext::is_space).starts_with('='))
}

/// The reference's documented (illustrative, not measured) sustainability assumptions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SustainabilityAssumptions {
    /// Prefill throughput.
    pub tokens_per_gpu_second: f64,
    /// GPU power draw.
    pub gpu_watts: f64,
    /// Grid carbon intensity.
    pub grid_kg_co2_per_kwh: f64,
    /// Share of prefill cost attributed to the KV cache.
    pub kv_share_of_prefill: f64,
}

impl Default for SustainabilityAssumptions {
    fn default() -> Self {
        Self {
            tokens_per_gpu_second: 2500.0,
            gpu_watts: 150.0,
            grid_kg_co2_per_kwh: 0.417,
            kv_share_of_prefill: 0.55,
        }
    }
}

/// Compute and emissions avoided by not prefilling some tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SustainabilityEstimate {
    /// Tokens not sent.
    pub tokens_saved: usize,
    /// GPU seconds avoided.
    pub gpu_seconds_avoided: f64,
    /// Energy avoided.
    pub watt_hours_saved: f64,
    /// Emissions avoided.
    pub co2_kg_avoided: f64,
}

impl SustainabilityEstimate {
    /// The estimate for `tokens_saved` under assumptions `a`.
    ///
    /// ```
    /// use kompress::evict::{SustainabilityAssumptions, SustainabilityEstimate};
    /// let e = SustainabilityEstimate::new(1000, &SustainabilityAssumptions::default());
    /// assert!((e.gpu_seconds_avoided - 0.22).abs() < 1e-12);
    /// ```
    pub fn new(tokens_saved: usize, a: &SustainabilityAssumptions) -> Self {
        let gpu_seconds = tokens_saved as f64 * a.kv_share_of_prefill / a.tokens_per_gpu_second.max(1.0);
        let watt_hours = gpu_seconds * a.gpu_watts / 3600.0;
        Self {
            tokens_saved,
            gpu_seconds_avoided: gpu_seconds,
            watt_hours_saved: watt_hours,
            co2_kg_avoided: watt_hours * a.grid_kg_co2_per_kwh / 1000.0,
        }
    }
}

/// All metrics of one compression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// See [`oracle_recall`].
    pub oracle_recall: f64,
    /// See [`entity_recall`].
    pub entity_recall: f64,
    /// See [`answer_quality_score`].
    pub answer_quality: f64,
    /// Savings of the KV budget (`original_tokens - kept_tokens`), as the reference counts them.
    pub sustainability: SustainabilityEstimate,
}

impl Metrics {
    /// Scores `result`, the compression of the context cut into `lines`, for `question`.
    pub fn new(lines: &[&str], result: &CompressResult, question: &str) -> Self {
        Self {
            oracle_recall: oracle_recall(lines, &result.kept_positions, question),
            entity_recall: entity_recall(&result.compressed_text, question),
            answer_quality: answer_quality_score(&result.compressed_text, question),
            sustainability: SustainabilityEstimate::new(
                result.original_tokens - result.kept_tokens,
                &SustainabilityAssumptions::default(),
            ),
        }
    }
}

/// One policy's averages over the benchmark's seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchmarkRow {
    /// Policy command-line name.
    pub policy: String,
    /// Mean oracle recall.
    pub oracle_recall: f64,
    /// Mean entity recall.
    pub entity_recall: f64,
    /// Mean answer-quality proxy.
    pub answer_quality: f64,
    /// Mean KV savings as the reference reports them (%).
    pub kv_savings_pct: f64,
    /// Mean savings of the returned text (%).
    pub text_savings_pct: f64,
}

/// The reference's benchmark (`run_policy_benchmarks`): for seeds `0..seeds`, the simulator's context
/// of about 600 words and its question (drawn with `random.Random(seed)`, reproduced exactly), each
/// policy compressed at `budget_ratio`, metrics averaged per policy.
pub fn run_benchmark(
    seeds: u32,
    budget_ratio: f64,
    policies: &[PolicyKind],
    network: &EvictionNetwork,
) -> Result<Vec<BenchmarkRow>> {
    if seeds == 0 {
        return Err(crate::Error::Invalid("the benchmark needs at least one seed".into()));
    }
    let mut sums = vec![[0.0f64; 5]; policies.len()];
    for seed in 0..seeds {
        let (lines, question) = generate_long_context(&mut PyRandom::new(u64::from(seed)), 600);
        let text = lines.join("\n");
        let line_refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        for (sum, &kind) in sums.iter_mut().zip(policies) {
            let policy = kind.build(question, network, seed);
            let r = compress_context(&text, question, budget_ratio, policy.as_ref())?;
            let m = Metrics::new(&line_refs, &r, question);
            let row =
                [m.oracle_recall, m.entity_recall, m.answer_quality, r.kv_savings_pct, r.text_savings_pct];
            sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
    }
    let mean = |s: f64| s / f64::from(seeds);
    Ok(policies
        .iter()
        .zip(sums)
        .map(|(kind, s)| BenchmarkRow {
            policy: kind.to_string(),
            oracle_recall: mean(s[0]),
            entity_recall: mean(s[1]),
            answer_quality: mean(s[2]),
            kv_savings_pct: mean(s[3]),
            text_savings_pct: mean(s[4]),
        })
        .collect())
}
