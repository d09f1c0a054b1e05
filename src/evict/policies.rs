//! KV eviction policies: the reference's baselines and the learned policy (reference: `policies.py`).
//!
//! Every policy returns the kept token positions in ascending order.
//!
//! # Ties
//! The reference ranks with `np.argsort` (Learned, AttentionHeuristic), whose order among equal scores
//! is unspecified and differs between CPUs, and with Python's stable `sorted` (H2O, SnapKV,
//! Summarization). This crate fixes every order:
//! - Learned and AttentionHeuristic keep the highest scores and, among equal scores, the **later**
//!   positions: exactly what `np.argsort(scores, kind="stable")[-b:]` keeps.
//! - H2O and SnapKV heavy hitters and Summarization lines take, among equal scores, the **earlier**
//!   ones: exactly the reference's stable `sorted(..., reverse=True)`.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::network::EvictionNetwork;
use super::pytext;
use super::records::{Records, SemanticType};
use super::rng::NumpyRng;
use crate::{Error, Result};

/// Attention-sink tokens kept by H2O, Truncation and SnapKV (at most a tenth of the budget).
const SINK_TOKENS: usize = 4;
/// Share of the budget H2O gives to the most recent tokens.
const H2O_RECENT_RATIO: f64 = 0.2;

/// Chooses which tokens stay in the KV cache under a token budget.
pub trait EvictionPolicy {
    /// The policy's display name.
    fn name(&self) -> &str;
    /// Kept positions (ascending), at most `budget` of them.
    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>>;
    /// Whether the policy reads oracle labels, which [`compress_context`](super::compress_context) then
    /// computes with the reference's oracle.
    fn needs_oracle_labels(&self) -> bool {
        false
    }
}

/// The policies this crate offers, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Top tokens by the network's keep score.
    Learned,
    /// The most recent tokens.
    Fifo,
    /// Highest recency first (the same set as FIFO, as in the reference).
    Lru,
    /// First 5% of tokens plus a recent window.
    SlidingWindow,
    /// Attention sinks plus the tail.
    Truncation,
    /// Lines with the most overlap with the question.
    Summarization,
    /// Sinks, recent window and heavy hitters.
    H2o,
    /// Sinks plus the best observation-window scores.
    SnapKv,
    /// Highest attention mass.
    Attention,
    /// Uniformly random tokens (seeded, as numpy draws them).
    Random,
    /// Oracle-important tokens, then the most recent ones (needs labelled records).
    Oracle,
}

impl PolicyKind {
    /// Every policy, in the order tables list them.
    pub const ALL: [PolicyKind; 11] = [
        PolicyKind::Learned,
        PolicyKind::Fifo,
        PolicyKind::Lru,
        PolicyKind::SlidingWindow,
        PolicyKind::Truncation,
        PolicyKind::Summarization,
        PolicyKind::H2o,
        PolicyKind::SnapKv,
        PolicyKind::Attention,
        PolicyKind::Random,
        PolicyKind::Oracle,
    ];

    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Learned => "learned",
            PolicyKind::Fifo => "fifo",
            PolicyKind::Lru => "lru",
            PolicyKind::SlidingWindow => "sliding-window",
            PolicyKind::Truncation => "truncation",
            PolicyKind::Summarization => "summarization",
            PolicyKind::H2o => "h2o",
            PolicyKind::SnapKv => "snapkv",
            PolicyKind::Attention => "attention",
            PolicyKind::Random => "random",
            PolicyKind::Oracle => "oracle",
        }
    }

    /// Builds the policy. `question` feeds Summarization, `network` Learned, `seed` Random.
    ///
    /// ```
    /// use kompress::evict::{EvictionNetwork, PolicyKind};
    /// let net = EvictionNetwork::embedded()?;
    /// let policy = PolicyKind::H2o.build("where is foo", &net, 0);
    /// assert_eq!(policy.name(), "H2O");
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn build<'n>(
        self,
        question: &str,
        network: &'n EvictionNetwork,
        seed: u32,
    ) -> Box<dyn EvictionPolicy + 'n> {
        match self {
            PolicyKind::Learned => Box::new(Learned { network }),
            PolicyKind::Fifo => Box::new(Fifo),
            PolicyKind::Lru => Box::new(Lru),
            PolicyKind::SlidingWindow => Box::new(SlidingWindow),
            PolicyKind::Truncation => Box::new(Truncation),
            PolicyKind::Summarization => Box::new(Summarization::new(question)),
            PolicyKind::H2o => Box::new(H2o),
            PolicyKind::SnapKv => Box::new(SnapKv),
            PolicyKind::Attention => Box::new(AttentionHeuristic),
            PolicyKind::Random => Box::new(RandomPolicy { seed }),
            PolicyKind::Oracle => Box::new(Oracle),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        PolicyKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = PolicyKind::ALL.iter().map(|k| k.as_str()).collect();
            Error::Invalid(format!("unknown policy `{s}` (expected one of: {})", names.join(", ")))
        })
    }
}

/// Attention sinks: `min(4, max(1, b / 10))` as the reference computes them, and never more than the
/// budget (the reference's callers never ask for a budget of 0; a library caller may).
fn sink_count(b: usize) -> usize {
    SINK_TOKENS.min((b / 10).max(1)).min(b)
}

/// The first `sink` and the last `recent` of `n` positions (the fixed part of H2O, Truncation and
/// the sliding window).
fn head_and_tail(n: usize, sink: usize, recent: usize) -> BTreeSet<usize> {
    (0..sink.min(n)).chain(n.saturating_sub(recent)..n).collect()
}

/// The `b` best candidates, `better` ordering them best first; returned in ascending order.
fn top_positions(
    candidates: impl Iterator<Item = usize>,
    b: usize,
    better: impl Fn(&usize, &usize) -> Ordering,
) -> Vec<usize> {
    let mut idx: Vec<usize> = candidates.collect();
    if b < idx.len() {
        idx.select_nth_unstable_by(b, &better);
        idx.truncate(b);
    }
    idx.sort_unstable();
    idx
}

/// Best-first order for `np.argsort(..., kind="stable")[-b:]`: higher score, then later position.
fn high_then_late(scores: &[f64]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&i, &j| scores[j].total_cmp(&scores[i]).then(j.cmp(&i))
}

/// Best-first order for Python's stable `sorted(key, reverse=True)`: higher score, then earlier position.
fn high_then_early(scores: &[f64]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j))
}

/// Keeps the most recent `budget` tokens.
pub struct Fifo;

impl EvictionPolicy for Fifo {
    fn name(&self) -> &str {
        "FIFO"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        Ok((n - budget.min(n)..n).collect())
    }
}

/// Ranks by recency. Every token's recency is its position, so this keeps FIFO's set, as the
/// reference does.
pub struct Lru;

impl EvictionPolicy for Lru {
    fn name(&self) -> &str {
        "LRU"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        Fifo.select(records, budget)
    }
}

/// The first 5% of tokens (attention sinks) plus the most recent ones.
pub struct SlidingWindow;

impl EvictionPolicy for SlidingWindow {
    fn name(&self) -> &str {
        "Sliding Window"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        let b = budget.min(n);
        let sink = (n / 20).max(1);
        Ok(head_and_tail(n, sink, b.saturating_sub(sink)).into_iter().take(b).collect())
    }
}

/// Uniformly random tokens: exactly the set the reference's
/// `np.random.default_rng(seed).choice(n, b, replace=False)` draws. Each call starts from the seed
/// (the reference's policy object keeps its generator between calls; it is built afresh per
/// compression, so one call is what it does too).
pub struct RandomPolicy {
    /// Seed of the draw; the same seed and context give the same set.
    pub seed: u32,
}

impl EvictionPolicy for RandomPolicy {
    fn name(&self) -> &str {
        "Random"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        Ok(NumpyRng::new(self.seed).choice_set(records.len(), budget))
    }
}

/// Upper bound: every oracle-important token, then the most recent others. The reference runs it on
/// unlabelled inference records, where it degenerates to FIFO; here it asks for the oracle's labels.
pub struct Oracle;

impl EvictionPolicy for Oracle {
    fn name(&self) -> &str {
        "Oracle"
    }

    fn needs_oracle_labels(&self) -> bool {
        true
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let b = budget.min(records.len());
        let important: Vec<usize> =
            (0..records.len()).filter(|&i| records.records[i].oracle_important).collect();
        if important.len() >= b {
            return Ok(important[..b].to_vec());
        }
        let recent = (0..records.len()).rev().filter(|&i| !records.records[i].oracle_important);
        let mut kept: Vec<usize> =
            important.iter().copied().chain(recent.take(b - important.len())).collect();
        kept.sort_unstable();
        Ok(kept)
    }
}

/// Top tokens by the eviction network's keep score.
pub struct Learned<'n> {
    /// The scoring network.
    pub network: &'n EvictionNetwork,
}

impl EvictionPolicy for Learned<'_> {
    fn name(&self) -> &str {
        "Learned Policy"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        // Ranking logits equals ranking the reference's sigmoid scores, minus the float32 ties that
        // sigmoid saturation creates near 0 and 1.
        let logits: Vec<f64> = self.network.logits(&records.features())?.into_iter().map(f64::from).collect();
        Ok(top_positions(0..records.len(), budget.min(records.len()), high_then_late(&logits)))
    }
}

/// Non-learned baseline: highest attention mass.
pub struct AttentionHeuristic;

impl EvictionPolicy for AttentionHeuristic {
    fn name(&self) -> &str {
        "Attention Heuristic"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let mass: Vec<f64> = records.records.iter().map(|r| r.attention_mass).collect();
        Ok(top_positions(0..records.len(), budget.min(records.len()), high_then_late(&mass)))
    }
}

/// Heavy-Hitter Oracle (Zhang et al.): attention sinks, a recent window, then the best H2O scores.
pub struct H2o;

impl EvictionPolicy for H2o {
    fn name(&self) -> &str {
        "H2O"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        let b = budget.min(n);
        let sink = sink_count(b);
        let recent = ((b as f64 * H2O_RECENT_RATIO) as usize).max(1);
        let heavy_slots = b.saturating_sub(sink + recent);
        let scores: Vec<f64> = records.records.iter().map(|r| r.h2o_score).collect();
        let mut kept = head_and_tail(n, sink, recent);
        let candidates = (0..n).filter(|i| !kept.contains(i)).collect::<Vec<_>>();
        kept.extend(top_positions(candidates.into_iter(), heavy_slots, high_then_early(&scores)));
        if kept.len() > b {
            // Only a budget of one overflows (one sink plus one recent token): keep the best score,
            // the later position on a tie, as the reference's stable ascending sort does.
            return Ok(top_positions(kept.into_iter(), b, high_then_late(&scores)));
        }
        Ok(kept.into_iter().collect())
    }
}

/// Head plus tail: attention sinks and the most recent tokens.
pub struct Truncation;

impl EvictionPolicy for Truncation {
    fn name(&self) -> &str {
        "Truncation"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        let b = budget.min(n);
        let sink = sink_count(b);
        let recent = b.saturating_sub(sink);
        let kept = head_and_tail(n, sink, recent);
        Ok(kept.into_iter().collect())
    }
}

/// SnapKV (Li et al.): attention sinks plus the best observation-window scores.
pub struct SnapKv;

impl EvictionPolicy for SnapKv {
    fn name(&self) -> &str {
        "SnapKV"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        let b = budget.min(n);
        // b <= n, so the sinks are also at most n.
        let sink = sink_count(b);
        let scores: Vec<f64> = records.records.iter().map(|r| r.snapkv_score).collect();
        let mut kept = top_positions(sink..n, b - sink, high_then_early(&scores));
        kept.splice(0..0, 0..sink);
        Ok(kept)
    }
}

/// Extractive baseline: whole lines ranked by overlap with the question's words, then the tail.
pub struct Summarization {
    question_words: Vec<String>,
}

impl Summarization {
    /// A summariser for `question` (its lowercased whitespace-separated words count as overlap).
    pub fn new(question: &str) -> Self {
        let lower = question.to_lowercase();
        let words: BTreeSet<&str> = pytext::split(&lower).collect();
        Self { question_words: words.into_iter().map(str::to_string).collect() }
    }

    /// The reference's line scores, summed token by token in position order.
    fn line_scores(&self, records: &Records) -> Vec<f64> {
        let line_overlap: Vec<f64> = records
            .lines
            .iter()
            .map(|l| {
                let lower = l.to_lowercase();
                self.question_words.iter().filter(|w| lower.contains(w.as_str())).count() as f64
            })
            .collect();
        let mut scores = vec![0.0; records.lines.len()];
        for r in &records.records {
            let mut overlap = line_overlap[r.line];
            if r.oracle_important {
                overlap += 10.0;
            }
            if r.semantic == SemanticType::Code {
                overlap += 0.5;
            }
            scores[r.line] = scores[r.line] + overlap + r.attention_mass * 0.1;
        }
        scores
    }
}

impl EvictionPolicy for Summarization {
    fn name(&self) -> &str {
        "Summarization"
    }

    fn select(&self, records: &Records, budget: usize) -> Result<Vec<usize>> {
        let n = records.len();
        let b = budget.min(n);
        if n <= b {
            return Ok((0..n).collect());
        }
        let scores = self.line_scores(records);
        // Tokens of a line are contiguous: line -> token range.
        let mut spans = vec![(usize::MAX, 0); records.lines.len()];
        for (i, r) in records.records.iter().enumerate() {
            spans[r.line] = (spans[r.line].0.min(i), i + 1);
        }
        let mut ranked: Vec<usize> = (0..records.lines.len()).filter(|&l| spans[l].1 > 0).collect();
        ranked.sort_by(high_then_early(&scores));
        let mut kept = vec![false; n];
        let mut count = 0;
        for line in ranked {
            let (start, end) = spans[line];
            if count + (end - start) <= b {
                kept[start..end].fill(true);
                count += end - start;
            }
            if count >= b {
                break;
            }
        }
        for i in (0..n).rev() {
            if count >= b {
                break;
            }
            if !kept[i] {
                kept[i] = true;
                count += 1;
            }
        }
        Ok((0..n).filter(|&i| kept[i]).take(b).collect())
    }
}
