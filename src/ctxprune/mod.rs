//! ctxprune's compression (`Compressor.compress` of `ctxprune` 0.2.1), reproduced so that its output is
//! byte-identical for the same model, text and options.
//!
//! The text is cut into [atoms]; it is tokenized with offsets (no special tokens) and cut into
//! windows of `max_len` less the specials, each cut moved back to where an atom starts; each window is
//! scored framed by the tokenizer's specials. An atom's score is the mean keep probability
//! (`softmax(logits)[..., 1]`) of every token touching it, and each token is charged to the first atom
//! it touches. Atoms are kept by a threshold, by a `measure` of the output (a binary search), or
//! greedily by score until `ceil(rate * total)` chars or tokens, and [`atoms::detok`] rebuilds the
//! text. ctxprune's arguments are checked here once, for every entry point (CLI, server, Python).
//!
//! ```
//! use kompress::ctxprune::{Ctxprune, Options};
//! use kompress::LoadOptions;
//! let compressor = Ctxprune::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
//! let out = compressor.compress("Run `cargo test` in /work/main before pushing.", &Options::default())?;
//! assert!(out.kept <= out.total);
//! # Ok::<(), kompress::Error>(())
//! ```

pub mod atoms;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::encoders::tokenize::{WordEncoding, WordTokenizer};
use crate::pipeline::{ChunkScorer, TokenCounter};
use crate::{Error, Kompress, LoadOptions, Result};
use atoms::{atomize, detok, is_protected, Atom};

/// ctxprune's default window length, specials included.
pub const MAX_LEN: usize = 512;
/// ctxprune's default number of windows per forward pass.
pub const BATCH_SIZE: usize = 16;

/// Atoms `keep_structure` always keeps.
const STRUCTURE: &[&str] = &["{", "}", "[", "]", "\"", ",", ":"];

/// What a budget counts (`unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// An atom's characters, plus one when whitespace precedes it.
    #[default]
    Chars,
    /// The model's tokens, each charged to the first atom it touches.
    Tokens,
}

impl std::str::FromStr for Unit {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "chars" => Ok(Self::Chars),
            "tokens" => Ok(Self::Tokens),
            other => Err(Error::Invalid(format!("unit \"{other}\": expected \"chars\" or \"tokens\""))),
        }
    }
}

/// `compress`'s arguments, with ctxprune's defaults.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// The share of the text to keep (`None`: all of it, unless a threshold decides).
    pub rate: Option<f64>,
    /// Keep every atom whose score reaches this; overrides `rate`.
    pub threshold: Option<f64>,
    /// Always keep identifiers, numbers, paths and flags ([`atoms::is_protected`]).
    pub force_protected: bool,
    /// Always keep JSON's structure characters (`{}[]",:`).
    pub keep_structure: bool,
    /// What `rate` counts when no `measure` is given.
    pub unit: Unit,
    /// ctxprune's `measure`: keep the most atoms whose output this counter counts at most
    /// `rate` times the text's count (a binary search over the atoms in score order).
    pub measure: Option<TokenCounter>,
    /// kompress's: instead of `rate`, the most tokens of the output by `measure` (which then defaults
    /// to [`TokenCounter::default`]).
    pub target_tokens: Option<usize>,
    /// ctxprune's `max_len` (a constructor argument there) for this call: the longest window,
    /// specials included; `None` keeps the compressor's ([`Ctxprune::set_max_len`]).
    pub max_len: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rate: Some(0.5),
            threshold: None,
            force_protected: false,
            keep_structure: false,
            unit: Unit::Chars,
            measure: None,
            target_tokens: None,
            max_len: None,
        }
    }
}

impl Options {
    /// Checks the values, naming the first that is wrong.
    pub fn validate(&self) -> Result<()> {
        let share = |name: &str, v: Option<f64>| match v {
            Some(v) if !(0.0..=1.0).contains(&v) => Err(Error::Invalid(format!("{name} {v}: not in [0, 1]"))),
            _ => Ok(()),
        };
        share("rate", self.rate)?;
        share("threshold", self.threshold)?;
        if let Some(counter) = self.measure {
            counter.check()?;
        }
        if self.target_tokens.is_some() && self.threshold.is_some() {
            return Err(Error::Invalid("target_tokens and threshold cannot both be set".into()));
        }
        Ok(())
    }
}

/// ctxprune's result dict, `{text, kept, total}`: `kept` and `total` are in `unit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compressed {
    pub text: String,
    pub kept: usize,
    pub total: usize,
}

/// ctxprune's callables: `unit` maps the atoms' texts (each with a space before it where whitespace
/// precedes it) to their costs, `measure` counts a text (`None`: [`Options`] decide).
#[derive(Default)]
pub struct Callables<'f> {
    pub unit: Option<&'f mut UnitFn<'f>>,
    pub measure: Option<&'f mut MeasureFn<'f>>,
}

/// ctxprune's `unit` callable: the atoms' texts in, their costs out.
pub type UnitFn<'f> = dyn FnMut(&[String]) -> Result<Vec<usize>> + 'f;
/// ctxprune's `measure` callable: a text in, its size out.
pub type MeasureFn<'f> = dyn FnMut(&str) -> Result<f64> + 'f;

/// Every atom of a text with its score and its tokens (`atom_scores`).
#[derive(Debug, Clone, PartialEq)]
pub struct AtomScores<'t> {
    pub atoms: Vec<Atom<'t>>,
    /// The mean keep probability of the tokens touching each atom (0 where none does).
    pub scores: Vec<f64>,
    /// The tokens charged to each atom.
    pub tokens: Vec<usize>,
}

/// A token classifier run as ctxprune runs it.
pub struct Ctxprune {
    model: Arc<Kompress>,
    /// The ids the tokenizer puts before and after a text (`special_wrap`).
    pre: Vec<u32>,
    post: Vec<u32>,
    max_len: usize,
    /// Windows scored per forward pass; the scores do not depend on it.
    pub batch_size: usize,
}

impl Ctxprune {
    /// Loads a local model directory; `auto` as dtype loads f32.
    pub fn from_dir(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Self::from_model(Arc::new(Kompress::from_dir(dir, &opts.for_parity())?))
    }

    /// A local directory if `model` names one, else a Hugging Face repo id; `auto` as dtype loads f32.
    pub fn load(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_model(Arc::new(Kompress::load(model, &opts.for_parity())?))
    }

    /// Wraps any loaded token classifier (shared: the server scores with it on other routes too);
    /// windows of [`MAX_LEN`] tokens, or the model's limit if shorter.
    pub fn from_model(model: Arc<Kompress>) -> Result<Self> {
        let (pre, post) = special_wrap(model.tokenizer())?;
        let max_len = MAX_LEN.min(model.max_tokens());
        let mut this = Self { model, pre, post, max_len: 0, batch_size: BATCH_SIZE };
        this.set_max_len(max_len)?;
        Ok(this)
    }

    /// ctxprune's `max_len`: the longest window, specials included.
    pub fn set_max_len(&mut self, max_len: usize) -> Result<()> {
        self.max_len = self.checked_max_len(max_len)?;
        Ok(())
    }

    /// `max_len` if its windows hold two tokens or more beside the specials and the model takes them.
    fn checked_max_len(&self, max_len: usize) -> Result<usize> {
        let specials = self.pre.len() + self.post.len();
        if max_len <= specials + 1 || max_len > self.model.max_tokens() {
            return Err(Error::Invalid(format!(
                "max_len {max_len}: must hold at least two tokens beside the {specials} specials and at \
                 most the model's {}",
                self.model.max_tokens()
            )));
        }
        Ok(max_len)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn model(&self) -> &Arc<Kompress> {
        &self.model
    }

    /// `compress(text, **opts)`.
    pub fn compress(&self, text: &str, opts: &Options) -> Result<Compressed> {
        self.compress_with(&*self.model, text, opts)
    }

    /// [`compress`](Self::compress), its forward passes run by `scorer` (the server's batcher).
    pub fn compress_with<C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        text: &str,
        opts: &Options,
    ) -> Result<Compressed> {
        self.compress_custom(scorer, text, opts, Callables::default())
    }

    /// [`compress_with`](Self::compress_with) with ctxprune's callables for `unit` and `measure`
    /// (the Python binding's): they win over `opts.unit` and `opts.measure`.
    pub fn compress_custom<C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        text: &str,
        opts: &Options,
        callables: Callables<'_>,
    ) -> Result<Compressed> {
        Ok(self.decide(scorer, text, opts, callables)?.compressed)
    }

    /// [`compress_with`](Self::compress_with) with every atom's score and fate: what the playground
    /// shows word by word. Its `compressed` is `compress_with`'s result.
    pub fn compress_detailed_with<'t, C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        text: &'t str,
        opts: &Options,
    ) -> Result<Detailed<'t>> {
        self.decide(scorer, text, opts, Callables::default())
    }

    fn decide<'t, C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        text: &'t str,
        opts: &Options,
        callables: Callables<'_>,
    ) -> Result<Detailed<'t>> {
        opts.validate()?;
        let max_len = self.checked_max_len(opts.max_len.unwrap_or(self.max_len))?;
        let scored = self.atom_scores_with(scorer, text, max_len)?;
        let costs = match callables.unit {
            Some(unit) => custom_costs(&scored, unit)?,
            None => costs(&scored, opts.unit),
        };
        let counter = opts.measure.or(opts.target_tokens.map(|_| TokenCounter::default()));
        let mut measure: Box<MeasureFn<'_>> = match (callables.measure, counter) {
            (Some(measure), _) => Box::new(measure),
            (None, Some(counter)) => Box::new(move |t: &str| counter.count(t).map(|n| n as f64)),
            (None, None) => return Ok(Detailed::new(scored, opts, &costs, |s| greedy_mask(s, opts, &costs))),
        };
        let target = match (opts.threshold, opts.target_tokens, opts.rate) {
            (Some(_), _, _) | (None, None, None) => {
                return Ok(Detailed::new(scored, opts, &costs, |s| greedy_mask(s, opts, &costs)))
            }
            (None, Some(n), _) => n as f64,
            (None, None, Some(rate)) => rate * measure(text)?,
        };
        let keep = measured_mask(&scored, opts, target, measure)?;
        Ok(Detailed::new(scored, opts, &costs, |_| keep))
    }

    /// `atom_scores(text)`: every atom's score and token count.
    pub fn atom_scores<'t>(&self, text: &'t str) -> Result<AtomScores<'t>> {
        self.atom_scores_with(&*self.model, text, self.max_len)
    }

    fn atom_scores_with<'t, C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        text: &'t str,
        max_len: usize,
    ) -> Result<AtomScores<'t>> {
        let atoms = atomize(text)?;
        let owner = owners(&atoms, text.len());
        // Byte offsets (Python's are characters): `owners` is by byte too, and every byte of a
        // character has the same owner, so the atoms a token touches are the same.
        let enc = self.model.tokenizer().encode_text(text, false)?;
        let touched: Vec<Vec<usize>> = enc.offsets.iter().map(|&(s, e)| touching(&owner, s, e)).collect();
        let probs = self.token_probs(scorer, &enc.input_ids, &touched, max_len)?;
        let (mut sums, mut hits, mut tokens) =
            (vec![0f64; atoms.len()], vec![0usize; atoms.len()], vec![0; atoms.len()]);
        for (set, p) in touched.iter().zip(probs) {
            if let Some(&first) = set.first() {
                tokens[first] += 1;
            }
            for &a in set {
                sums[a] += f64::from(p);
                hits[a] += 1;
            }
        }
        let scores = sums.iter().zip(&hits).map(|(&s, &h)| if h > 0 { s / h as f64 } else { 0.0 }).collect();
        Ok(AtomScores { atoms, scores, tokens })
    }

    /// Every token's keep probability, scored in windows cut where an atom starts.
    fn token_probs<C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        ids: &[u32],
        touched: &[Vec<usize>],
        max_len: usize,
    ) -> Result<Vec<f32>> {
        let first = |i: usize| touched[i].first().copied();
        let win = max_len - self.pre.len() - self.post.len();
        let mut windows = Vec::new();
        let mut start = 0;
        while start < ids.len() {
            let mut end = (start + win).min(ids.len());
            if end < ids.len() {
                let mut cut = end;
                while cut > start + 1 && first(cut) == first(cut - 1) {
                    cut -= 1;
                }
                if cut > start + 1 {
                    end = cut;
                }
            }
            windows.push((start, end));
            start = end;
        }
        let mut probs = vec![0f32; ids.len()];
        for batch in windows.chunks(self.batch_size.max(1)) {
            let encodings: Vec<WordEncoding> = batch
                .iter()
                .map(|&(s, e)| {
                    let input_ids: Vec<u32> = [&self.pre, &ids[s..e], &self.post].concat();
                    WordEncoding { word_ids: vec![None; input_ids.len()], input_ids }
                })
                .collect();
            for (&(s, e), scores) in batch.iter().zip(scorer.score(&encodings)?) {
                let k = self.pre.len();
                probs[s..e].copy_from_slice(&scores.token_prob[k..k + (e - s)]);
            }
        }
        Ok(probs)
    }
}

/// `special_wrap`: the ids a tokenizer puts before and after a text's own.
fn special_wrap(tokenizer: &WordTokenizer) -> Result<(Vec<u32>, Vec<u32>)> {
    let encode = |specials| tokenizer.encode_text("hello world", specials).map(|e| e.input_ids);
    let (plain, full) = (encode(false)?, encode(true)?);
    (0..=full.len().saturating_sub(plain.len()))
        .find(|&i| full[i..].starts_with(&plain))
        .map(|i| (full[..i].to_vec(), full[i + plain.len()..].to_vec()))
        .ok_or_else(|| Error::Tokenizer("cannot locate a text's tokens inside its special tokens".into()))
}

/// The atom owning each byte of the text (`char_to_atom`, by byte: a token's offsets are bytes here).
fn owners(atoms: &[Atom<'_>], len: usize) -> Vec<Option<usize>> {
    let mut owner = vec![None; len];
    let mut pos = 0;
    for (i, a) in atoms.iter().enumerate() {
        pos += a.ws.len();
        owner[pos..pos + a.text.len()].fill(Some(i));
        pos += a.text.len();
    }
    owner
}

/// The atoms a token's bytes touch, in order (`token_atom_sets`); the first is the one it is charged
/// to (`token_atoms`). Whitespace-only and special tokens touch none.
fn touching(owner: &[Option<usize>], start: usize, end: usize) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    for a in owner[start.min(owner.len())..end.min(owner.len())].iter().flatten() {
        if seen.last() != Some(a) {
            seen.push(*a);
        }
    }
    seen
}

/// What each atom costs in `unit`.
fn costs(scored: &AtomScores<'_>, unit: Unit) -> Vec<usize> {
    match unit {
        Unit::Chars => {
            scored.atoms.iter().map(|a| a.text.chars().count() + usize::from(!a.ws.is_empty())).collect()
        }
        Unit::Tokens => scored.tokens.clone(),
    }
}

/// The costs a `unit` callable gives, one per atom.
fn custom_costs(
    scored: &AtomScores<'_>,
    unit: &mut dyn FnMut(&[String]) -> Result<Vec<usize>>,
) -> Result<Vec<usize>> {
    let texts: Vec<String> = scored
        .atoms
        .iter()
        .map(|a| format!("{}{}", if a.ws.is_empty() { "" } else { " " }, a.text))
        .collect();
    let costs = unit(&texts)?;
    if costs.len() != texts.len() {
        return Err(Error::Invalid(format!("unit gave {} costs for {} atoms", costs.len(), texts.len())));
    }
    Ok(costs)
}

/// The atoms kept whatever their score.
fn forced(scored: &AtomScores<'_>, opts: &Options) -> Vec<bool> {
    scored
        .atoms
        .iter()
        .map(|a| {
            !a.text.is_empty()
                && ((opts.force_protected && is_protected(a.text))
                    || (opts.keep_structure && STRUCTURE.contains(&a.text)))
        })
        .collect()
}

/// Atom indices by descending score, ties in text order (Python's stable `sorted`).
fn by_score(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal));
    order
}

/// A call's result with every atom's score and fate ([`Ctxprune::compress_detailed_with`]).
#[derive(Debug, Clone)]
pub struct Detailed<'t> {
    /// What `compress` returns.
    pub compressed: Compressed,
    /// Every atom with its score.
    pub scored: AtomScores<'t>,
    /// Which atoms are in `compressed.text`, one per atom.
    pub keep: Vec<bool>,
    /// Which atoms were kept whatever their score (`force_protected`, `keep_structure`).
    pub forced: Vec<bool>,
}

impl<'t> Detailed<'t> {
    fn new(
        scored: AtomScores<'t>,
        opts: &Options,
        costs: &[usize],
        mask: impl FnOnce(&AtomScores<'t>) -> Vec<bool>,
    ) -> Self {
        let keep = mask(&scored);
        let forced = forced(&scored, opts);
        Self { compressed: result(&scored, costs, &keep), scored, keep, forced }
    }
}

fn result(scored: &AtomScores<'_>, costs: &[usize], keep: &[bool]) -> Compressed {
    Compressed {
        text: detok(&scored.atoms, keep),
        kept: costs.iter().zip(keep).filter(|(_, &k)| k).map(|(c, _)| c).sum(),
        total: costs.iter().sum(),
    }
}

/// Which atoms `compress` keeps when no `measure` or `target_tokens` is given (the threshold rule, or
/// the greedy one by `rate`), one decision per atom of [`Ctxprune::atom_scores`]: for comparing the
/// decisions of two forms of a model atom by atom (`examples/ctxprune_agreement.rs`).
pub fn keep_mask(scored: &AtomScores<'_>, opts: &Options) -> Vec<bool> {
    greedy_mask(scored, opts, &costs(scored, opts.unit))
}

fn greedy_mask(scored: &AtomScores<'_>, opts: &Options, costs: &[usize]) -> Vec<bool> {
    let mut keep = forced(scored, opts);
    if let Some(threshold) = opts.threshold {
        keep.iter_mut().zip(&scored.scores).for_each(|(k, &s)| *k |= s >= threshold);
        return keep;
    }
    let total: usize = costs.iter().sum();
    let budget = (opts.rate.unwrap_or(1.0) * total as f64).ceil();
    let mut used: usize = costs.iter().zip(&keep).filter(|(_, &k)| k).map(|(c, _)| c).sum();
    for i in by_score(&scored.scores) {
        if used as f64 >= budget {
            break;
        }
        if !keep[i] && !scored.atoms[i].text.is_empty() {
            keep[i] = true;
            used += costs[i];
        }
    }
    keep
}

/// The measured rule: the largest `k` such that the forced atoms and the `k` best others measure at
/// most `target` (a binary search, as ctxprune's; `measure` need not be monotonic in `k`).
fn measured_mask(
    scored: &AtomScores<'_>,
    opts: &Options,
    target: f64,
    mut measure: impl FnMut(&str) -> Result<f64>,
) -> Result<Vec<bool>> {
    let forced = forced(scored, opts);
    let order: Vec<usize> = by_score(&scored.scores)
        .into_iter()
        .filter(|&i| !scored.atoms[i].text.is_empty() && !forced[i])
        .collect();
    let with_top = |k: usize| {
        let mut keep = forced.clone();
        order[..k].iter().for_each(|&i| keep[i] = true);
        keep
    };
    let (mut lo, mut hi) = (0, order.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if measure(&detok(&scored.atoms, &with_top(mid)))? <= target {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(with_top(lo))
}
