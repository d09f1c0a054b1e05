//! The compression pipeline: words with their lines, chunks under a word and a token cap, the model's
//! keep decisions, protections, and line-true reconstruction.
//!
//! Guarantees: the output's words are a subsequence of the input's words, on the same lines, in order
//! (one space within a line, the line's own ending between lines); every word is scored by the model
//! exactly once or kept unscored; the text is processed chunk by chunk, so memory holds the text, the
//! output and one batch of chunks.
//!
//! ```
//! use kompress::pipeline::{compress, CompressOptions, Mode};
//! use kompress::{Kompress, LoadOptions};
//!
//! let model = Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
//! let text = "Please note that you must not delete /etc/hosts before the backup has finished. ".repeat(8);
//! let opts = CompressOptions { mode: Mode::Threshold(0.5), ..Default::default() };
//! let result = compress(&model, &text, &opts)?;
//! assert_eq!(result.original_words, 104);
//! assert!(result.compressed.contains("/etc/hosts") && result.compressed.contains("not"));
//! # Ok::<(), kompress::Error>(())
//! ```

mod chunk;
pub mod explain;
mod keep;
pub mod protect;
pub mod table;
pub mod words;

pub use explain::{Reason, WordDecision};
pub use keep::Mode;

use chunk::{Planned, Planner};
use keep::{decide, WordVerdict};
use table::TableLines;
use words::{words, LineJoiner, Word};

use crate::{Error, Kompress, Result, TokenScores, WordEncoding};

/// What the pipeline needs from a model: pre-split encoding, padded-batch scoring, a length limit.
/// [`Kompress`] implements it; tests use doubles.
pub trait ChunkScorer {
    /// Encodes words as one pre-split sequence, special tokens included.
    fn encode(&self, words: &[&str]) -> Result<WordEncoding>;
    /// Scores sequences as one batch; one result per sequence, in order.
    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>>;
    /// The longest sequence the model accepts, in tokens.
    fn max_tokens(&self) -> usize;
}

impl ChunkScorer for Kompress {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        self.tokenizer().encode_words(words)
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        self.score_encodings(chunks)
    }

    fn max_tokens(&self) -> usize {
        Kompress::max_tokens(self)
    }
}

/// Pipeline settings; the defaults are Headroom 0.42's, with the model card's keep rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressOptions {
    pub mode: Mode,
    /// Most words per chunk.
    pub chunk_words: usize,
    /// Most tokens per chunk, special tokens included (at most the model's maximum).
    pub chunk_tokens: usize,
    /// Chunks per forward pass.
    pub batch_size: usize,
    /// Texts with fewer words pass through unchanged.
    pub min_words: usize,
    /// Keep must-keep words ([`protect::must_keep`]) whatever the model says.
    pub protect_words: bool,
    /// Keep table rows ([`table::TableLines`]) whole.
    pub protect_tables: bool,
    /// Record every word's decision in [`CompressResult::words`].
    pub explain: bool,
}

impl Default for CompressOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Card,
            chunk_words: 350,
            chunk_tokens: 512,
            batch_size: 8,
            min_words: 64,
            protect_words: true,
            protect_tables: true,
            explain: false,
        }
    }
}

impl CompressOptions {
    fn validate(&self, max_tokens: usize) -> Result<()> {
        let invalid = |m: String| Err(Error::Invalid(m));
        match self.mode {
            Mode::Threshold(t) if !t.is_finite() => return invalid(format!("threshold {t} is not a number")),
            Mode::Ratio(r) if !(r > 0.0 && r <= 1.0) => {
                return invalid(format!("ratio {r} is not in (0, 1]"))
            }
            _ => {}
        }
        if self.chunk_words == 0 || self.batch_size == 0 {
            return invalid("chunk_words and batch_size must be at least 1".into());
        }
        if self.chunk_tokens > max_tokens {
            return invalid(format!(
                "chunk_tokens {} exceeds the model's maximum of {max_tokens}",
                self.chunk_tokens
            ));
        }
        Ok(())
    }
}

/// The outcome for one text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompressResult {
    /// The kept words, line by line; the input itself when it passed through.
    pub compressed: String,
    pub original_words: usize,
    pub kept_words: usize,
    /// `kept_words / original_words` (1 for an empty text).
    pub compression_ratio: f64,
    /// `original_words - kept_words`.
    pub tokens_saved: usize,
    /// Chunks the model scored.
    pub chunks: usize,
    /// Words kept because they alone exceed the token cap.
    pub unscored_words: usize,
    /// Whether the text came back unchanged (fewer than `min_words` words, or nothing kept).
    pub passthrough: bool,
    /// Every word's decision, when [`CompressOptions::explain`] is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<WordDecision>>,
}

/// How far a batch has come, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub words_done: usize,
    pub words_total: usize,
}

/// Compresses one text. See the [module docs](self) for an example.
pub fn compress<S: ChunkScorer + ?Sized>(
    scorer: &S,
    text: &str,
    opts: &CompressOptions,
) -> Result<CompressResult> {
    Ok(compress_batch(scorer, &[text], opts)?.remove(0))
}

/// Compresses several texts, sharing forward passes between their chunks; one result per text, each
/// the same as compressing that text alone.
pub fn compress_batch<S: ChunkScorer + ?Sized>(
    scorer: &S,
    texts: &[&str],
    opts: &CompressOptions,
) -> Result<Vec<CompressResult>> {
    compress_batch_with_progress(scorer, texts, opts, |_| {})
}

/// [`compress_batch`], reporting progress after every forward pass.
pub fn compress_batch_with_progress<S: ChunkScorer + ?Sized>(
    scorer: &S,
    texts: &[&str],
    opts: &CompressOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<CompressResult>> {
    opts.validate(scorer.max_tokens())?;
    let mut states: Vec<TextState> = texts.iter().map(|t| TextState::new(t, opts)).collect();
    let words_total = states.iter().map(|s| s.original_words).sum();
    let mut queue = Queue::default();
    let mut report = |states: &[TextState]| {
        progress(Progress { words_done: states.iter().map(|s| s.words_done).sum(), words_total })
    };
    for i in 0..states.len() {
        while let Some(item) = states[i].plan(scorer)? {
            queue.push(i, item);
            if queue.chunks == opts.batch_size {
                queue.flush(scorer, &mut states, opts)?;
                report(&states);
            }
        }
    }
    queue.flush(scorer, &mut states, opts)?;
    report(&states);
    Ok(states.into_iter().map(TextState::finish).collect())
}

/// Planned pieces of any text, waiting for one forward pass; applied in order.
#[derive(Default)]
struct Queue<'a> {
    /// (text index, piece), in planning order.
    items: Vec<(usize, Planned<'a>)>,
    /// How many items are chunks for the model.
    chunks: usize,
}

impl<'a> Queue<'a> {
    fn push(&mut self, text: usize, item: Planned<'a>) {
        self.chunks += usize::from(matches!(item, Planned::Chunk { .. }));
        self.items.push((text, item));
    }

    fn flush<S: ChunkScorer + ?Sized>(
        &mut self,
        scorer: &S,
        states: &mut [TextState<'a>],
        opts: &CompressOptions,
    ) -> Result<()> {
        let encodings: Vec<WordEncoding> = self
            .items
            .iter_mut()
            .filter_map(|(_, p)| match p {
                Planned::Chunk { encoding, .. } => Some(std::mem::take(encoding)),
                Planned::Unscored(_) => None,
            })
            .collect();
        let scored = if encodings.is_empty() { Vec::new() } else { scorer.score(&encodings)? };
        if scored.len() != encodings.len() {
            return Err(Error::Invalid(format!(
                "scorer returned {} results for {} chunks",
                scored.len(),
                encodings.len()
            )));
        }
        let mut scored = scored.into_iter();
        self.chunks = 0;
        for (i, item) in self.items.drain(..) {
            match item {
                Planned::Chunk { words, .. } => {
                    let verdicts =
                        decide(&scored.next().expect("one result per chunk"), words.len(), opts.mode);
                    states[i].apply_chunk(&words, &verdicts);
                }
                Planned::Unscored(word) => states[i].apply(&word, Reason::Unscored, None),
            }
        }
        Ok(())
    }
}

/// One text in progress: its planner, its output so far and its counts.
struct TextState<'a> {
    text: &'a str,
    /// `None` for a text that passes through without the model.
    planner: Option<Planner<'a, Box<dyn Iterator<Item = Word<'a>> + 'a>>>,
    tables: TableLines,
    protect_words: bool,
    out: LineJoiner,
    original_words: usize,
    words_done: usize,
    chunks: usize,
    unscored: usize,
    decisions: Option<Vec<WordDecision>>,
}

impl<'a> TextState<'a> {
    fn new(text: &'a str, opts: &CompressOptions) -> Self {
        let original_words = words(text).count();
        let scored = original_words >= opts.min_words;
        let planner = scored.then(|| {
            let source: Box<dyn Iterator<Item = Word<'a>> + 'a> = Box::new(words(text));
            Planner::new(source, opts.chunk_words, opts.chunk_tokens)
        });
        Self {
            text,
            tables: if opts.protect_tables && scored {
                TableLines::find(text)
            } else {
                TableLines::default()
            },
            planner,
            protect_words: opts.protect_words,
            out: LineJoiner::default(),
            original_words,
            words_done: if scored { 0 } else { original_words },
            chunks: 0,
            unscored: 0,
            decisions: opts.explain.then(Vec::new),
        }
    }

    fn plan<S: ChunkScorer + ?Sized>(&mut self, scorer: &S) -> Result<Option<Planned<'a>>> {
        match &mut self.planner {
            Some(planner) => planner.next(scorer),
            None => Ok(None),
        }
    }

    fn apply_chunk(&mut self, words: &[Word<'a>], verdicts: &[WordVerdict]) {
        self.chunks += 1;
        for (word, v) in words.iter().zip(verdicts) {
            let reason = match v.keep {
                true => Reason::Model,
                false if self.protect_words && protect::must_keep(word.text) => Reason::Protected,
                false if self.tables.contains(word.line) => Reason::Table,
                false => Reason::Dropped,
            };
            self.apply(word, reason, v.score);
        }
    }

    fn apply(&mut self, word: &Word<'a>, reason: Reason, score: Option<f32>) {
        self.words_done += 1;
        if reason == Reason::Unscored {
            self.unscored += 1;
        }
        if reason.kept() {
            self.out.push(word);
        }
        if let Some(d) = &mut self.decisions {
            d.push(WordDecision {
                word: word.text.to_string(),
                line: word.line,
                kept: reason.kept(),
                reason,
                score,
            });
        }
    }

    fn finish(self) -> CompressResult {
        let n = self.original_words;
        let passthrough = self.out.words() == 0;
        let (compressed, kept) = match passthrough {
            true => (self.text.to_string(), n),
            false => {
                let kept = self.out.words();
                (self.out.into_string(), kept)
            }
        };
        let words = match passthrough {
            true => self.decisions.map(|d| passthrough_decisions(self.text, &d)),
            false => self.decisions,
        };
        CompressResult {
            compressed,
            original_words: n,
            kept_words: kept,
            compression_ratio: if n == 0 { 1.0 } else { kept as f64 / n as f64 },
            tokens_saved: n - kept,
            chunks: self.chunks,
            unscored_words: self.unscored,
            passthrough,
            words,
        }
    }
}

/// Every word kept as `Passthrough`, with the scores the model gave (if it ran).
fn passthrough_decisions(text: &str, scored: &[WordDecision]) -> Vec<WordDecision> {
    let scores = scored.iter().map(|d| d.score).chain(std::iter::repeat(None));
    words(text)
        .zip(scores)
        .map(|(w, score)| WordDecision {
            word: w.text.to_string(),
            line: w.line,
            kept: true,
            reason: Reason::Passthrough,
            score,
        })
        .collect()
}
