//! The compression pipeline: words with their lines, structure the model must not touch (code blocks,
//! code-like lines, tables, Markdown markup, JSON), chunks under a word and a token cap, the model's keep decisions, budgets, and output
//! that keeps the text's layout.
//!
//! Guarantees: the output's words are a subsequence of the input's words, on the same lines, in order;
//! every output line is one input line's leading whitespace and its kept words joined by single spaces,
//! or a verbatim line (code block, code-like line, table row) byte for byte (see [`layout`](Compat::Off)); every word
//! is scored by the model exactly once, or kept unscored, or kept verbatim without the model; the text
//! is processed chunk by chunk, so memory holds the text, the output and one batch of chunks (plus one
//! score per word under a budget over the whole text). [`Compat::Headroom`] gives Headroom 0.42's
//! output instead, word for word.
//!
//! ```
//! use kompress::pipeline::{compress, CompressOptions, Mode};
//! use kompress::{Kompress, LoadOptions};
//!
//! let model = Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
//! let text = "Please note that you must not delete /etc/hosts before the backup has finished.\n".repeat(8);
//! let opts = CompressOptions { mode: Mode::Threshold(0.5), ..Default::default() };
//! let result = compress(&model, &text, &opts)?;
//! assert_eq!((result.original_words, result.original_tokens), (104, 136));
//! assert!(result.compressed.contains("/etc/hosts") && result.compressed.contains("not"));
//! assert_eq!(result.compressed.lines().count(), 8);
//! # Ok::<(), kompress::Error>(())
//! ```

mod budget;
mod chunk;
pub mod code;
pub mod code_lines;
pub mod explain;
mod fields;
mod keep;
mod layout;
pub mod lines;
pub mod markdown;
pub mod protect;
pub mod structured;
pub mod table;
pub mod tokens;
pub mod words;

// The server sizes its admission by it.
#[cfg(feature = "server")]
pub(crate) use chunk::words_per_chunk;
pub use explain::{Reason, Unscored, WordDecision};
pub use fields::{CompressFields, ModeName};
pub use keep::Mode;
pub use lines::LineSet;
pub use tokens::TokenCounter;

use std::iter::Peekable;
use std::time::{Duration, Instant};

use chunk::{Planned, Planner};
use keep::{decide, WordVerdict};
use layout::Output;
use words::{words, Word};

use crate::{Error, Kompress, Linears, Result, TokenScores, WordEncoding};

/// What the pipeline needs from a model: pre-split encoding, padded-batch scoring, a length limit.
/// [`Kompress`] implements it; tests use doubles.
pub trait ChunkScorer {
    /// Encodes words as one pre-split sequence, special tokens included.
    fn encode(&self, words: &[&str]) -> Result<WordEncoding>;
    /// Scores sequences as one batch; one result per sequence, in order.
    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>>;
    /// The longest sequence the model accepts, in tokens.
    fn max_tokens(&self) -> usize;
    /// The most bytes of a word one token stands for, if bounded
    /// ([`WordTokenizer::max_token_bytes`](crate::WordTokenizer::max_token_bytes)): then words too
    /// long for any chunk are never tokenized whole, which bounds memory. `None`: every word is.
    fn max_token_bytes(&self) -> Option<usize> {
        None
    }
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

    fn max_token_bytes(&self) -> Option<usize> {
        self.tokenizer().max_token_bytes()
    }
}

/// Whose output to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// This crate's: the layout is kept, code, tables, Markdown markup and JSON are left alone, ratios
    /// and budgets count over the whole text.
    #[default]
    Off,
    /// Headroom 0.42's, word for word: one space within a line, the line's ending where the line
    /// changes, its table rule only, `Mode::Ratio` per chunk on top of the protected words.
    Headroom,
}

/// Pipeline settings; the chunking defaults are Headroom 0.42's, with the model card's keep rule.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressOptions {
    pub mode: Mode,
    /// Most words per chunk.
    pub chunk_words: usize,
    /// Most tokens per chunk, special tokens included (at most the model's maximum).
    pub chunk_tokens: usize,
    /// Chunks per forward pass.
    pub batch_size: usize,
    /// Texts with fewer words pass through unchanged (not under [`Mode::TargetTokens`], where a text
    /// passes through when it fits the budget).
    pub min_words: usize,
    /// Keep must-keep words ([`protect::must_keep`]) whatever the model says.
    pub protect_words: bool,
    /// Keep table rows ([`table::tables`]; [`table::headroom_tables`] under [`Compat::Headroom`]).
    pub protect_tables: bool,
    /// Keep fenced code blocks ([`code::fenced_code`]) byte for byte (not under [`Compat::Headroom`]).
    pub protect_code: bool,
    /// Keep code-like lines outside fences ([`code_lines::code_lines`]: source code, diffs, stack
    /// traces, log lines) byte for byte (not under [`Compat::Headroom`]).
    pub protect_code_lines: bool,
    /// Keep Markdown's heading, list and quote markers and links ([`markdown::markup`]) whatever the
    /// model says (not under [`Compat::Headroom`]).
    pub protect_markdown: bool,
    /// Pass a whole input that is JSON ([`structured::is_json`]) through (not under [`Compat::Headroom`]).
    pub protect_json: bool,
    /// What the result's `*_tokens` count, and what [`Mode::TargetTokens`] budgets.
    pub count_tokens: TokenCounter,
    pub compat: Compat,
    /// Record every word's decision in [`CompressResult::words`].
    pub explain: bool,
    /// Stop scoring once this much time has passed since the call began ([`compress_stream`] and the
    /// functions over it): the clock is read before every forward pass, the first included, and no
    /// pass starts once the budget is spent (a pass already running finishes); the words not scored
    /// are kept unscored, in the text's layout ([`CompressResult::unscored_reason`]). It covers the
    /// call's own work (counting the input's tokens, finding protected structure, tokenizing chunks,
    /// the forward passes and any wait for them), not reading the input or loading the model, and not
    /// what follows the last pass (a budget over the whole text, counting the output's tokens).
    /// `None`: no budget. Between 1 ms and [`MAX_TIME_BUDGET`].
    pub time_budget: Option<Duration>,
}

/// The largest [`CompressOptions::time_budget`]: one day. A larger value is almost surely a unit
/// mistake (microseconds or nanoseconds given as milliseconds).
pub const MAX_TIME_BUDGET: Duration = Duration::from_secs(24 * 60 * 60);

/// Whether `budget` is a valid [`CompressOptions::time_budget`]; the message (without the option's
/// name) says why not.
pub fn check_time_budget(budget: Duration) -> std::result::Result<(), String> {
    if budget < Duration::from_millis(1) {
        return Err("must be at least 1 ms".into());
    }
    if budget > MAX_TIME_BUDGET {
        return Err(format!(
            "{} ms is more than the most allowed, {} ms (one day)",
            budget.as_millis(),
            MAX_TIME_BUDGET.as_millis()
        ));
    }
    Ok(())
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
            protect_code: true,
            protect_code_lines: true,
            protect_markdown: true,
            protect_json: true,
            count_tokens: TokenCounter::default(),
            compat: Compat::Off,
            explain: false,
            time_budget: None,
        }
    }
}

impl CompressOptions {
    pub(crate) fn validate(&self, max_tokens: usize) -> Result<()> {
        let invalid = |m: String| Err(Error::Invalid(m));
        match self.mode {
            Mode::Threshold(t) if !(0.0..=1.0).contains(&t) => {
                return invalid(format!("threshold {t} is not in [0, 1]"))
            }
            Mode::Ratio(r) if !(r > 0.0 && r <= 1.0) => {
                return invalid(format!("ratio {r} is not in (0, 1]"))
            }
            Mode::TargetTokens(0) => return invalid("target_tokens must be at least 1".into()),
            Mode::TargetTokens(_) if self.compat == Compat::Headroom => {
                return invalid("a token budget has no Headroom 0.42 equivalent".into())
            }
            _ => {}
        }
        if self.chunk_words == 0 {
            return invalid("chunk_words must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if let Some(budget) = self.time_budget {
            check_time_budget(budget).map_err(|m| Error::Invalid(format!("time_budget_ms: {m}")))?;
        }
        if self.chunk_tokens > max_tokens {
            return invalid(format!(
                "chunk_tokens {} exceeds the model's maximum of {max_tokens}",
                self.chunk_tokens
            ));
        }
        self.count_tokens.check()
    }

    fn headroom(&self) -> bool {
        self.compat == Compat::Headroom
    }
}

/// Chunks per forward pass, by measurement (full kompress-base shape, `--mode threshold`, 2 threads):
/// - int8 on the CPU: one. On a Zen 4 EPYC (AVX-512 VNNI, 2026-12-02, GPL-3, 5,644 words) 1, 4 and 8
///   chunks a pass took 15.0, 15.5 and 16.4 s, peak RSS 172, 213 and 268 MB.
/// - f32 on an AVX-512 CPU: eight. There the measurements split: 22.9/23.2 s with 8 against 24.2/25.2 s
///   with 1 (3,200 words, one EPYC), 33.1 against 31.9 s (GPL-3, the Zen 4); batches of short texts
///   (`--jsonl`) gain most: 160 against 142 words/s.
/// - f32 on other CPUs: one (AVX2-only EPYC: 15.3 s with 1 against 19.9 s with 8, 3,196 words;
///   unmeasured elsewhere, e.g. Apple Silicon).
/// - GPUs: eight.
pub fn default_batch_size(gpu: bool, linears: Linears) -> usize {
    match (gpu, linears) {
        (true, _) => 8,
        (false, Linears::Int8) => 1,
        (false, Linears::Bf16 | Linears::Int8WeightOnly { .. }) => 8,
        #[cfg(target_arch = "x86_64")]
        (false, Linears::Native) if std::arch::is_x86_feature_detected!("avx512f") => 8,
        (false, Linears::Native) => 1,
    }
}

/// Why a text came back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Passthrough {
    /// Fewer than [`CompressOptions::min_words`] words.
    Short,
    /// The model kept no word, and nothing was protected.
    NothingKept,
    /// The whole input is JSON ([`CompressOptions::protect_json`]).
    Structured,
    /// It fits [`Mode::TargetTokens`]'s budget already.
    FitsBudget,
}

impl Passthrough {
    /// Why, in a few words: "fewer words than min_words", ...
    pub fn describe(self) -> &'static str {
        match self {
            Passthrough::Short => "fewer words than min_words",
            Passthrough::NothingKept => "the model kept no word",
            Passthrough::Structured => "the whole input is JSON",
            Passthrough::FitsBudget => "it fits target_tokens already",
        }
    }
}

/// The outcome for one text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompressResult {
    /// The output; the input itself when it passed through.
    pub compressed: String,
    pub original_words: usize,
    /// Words of the output.
    pub kept_words: usize,
    /// What the `*_tokens` fields count.
    pub token_counter: TokenCounter,
    pub original_tokens: usize,
    pub compressed_tokens: usize,
    /// `original_tokens - compressed_tokens` (0 if the output has more).
    pub tokens_saved: usize,
    /// `compressed_tokens / original_tokens` (1 for an empty text).
    pub compression_ratio: f64,
    /// Chunks the model scored.
    pub chunks: usize,
    /// Words kept because they alone exceed the token cap.
    pub unscored_words: usize,
    /// Words whose chunk the model scored. Words it never needs to score (verbatim code, code-like and
    /// table lines, a text that passes through before the model, words longer than the token cap) are
    /// not counted, so this is `original_words` only for a text of prose scored whole.
    pub scored_words: usize,
    /// Why some words that the model would have scored were kept unscored: [`Unscored::TimeBudget`]
    /// when [`CompressOptions::time_budget`] ran out first (those words are kept as they are, in the
    /// text's layout). `None` when every such word was scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unscored_reason: Option<Unscored>,
    /// Whether the text came back unchanged.
    pub passthrough: bool,
    /// Why it did, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough_reason: Option<Passthrough>,
    /// The budget of [`Mode::Ratio`] or [`Mode::TargetTokens`] cannot be met: the words kept whatever
    /// the model says (protected words, code, code-like and table lines, Markdown markup, words left
    /// unscored, or a JSON input passed through) alone exceed it, so the output is those words, over
    /// the budget; [`min_ratio`](Self::min_ratio) or [`min_target_tokens`](Self::min_target_tokens)
    /// says how far. Never under [`Compat::Headroom`], whose ratio applies per chunk on top of them.
    pub over_budget: bool,
    /// When [`over_budget`](Self::over_budget) under [`Mode::Ratio`]: the smallest ratio these words
    /// allow, their share of `original_words` (the unit of `--ratio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ratio: Option<f64>,
    /// When [`over_budget`](Self::over_budget) under [`Mode::TargetTokens`]: the smallest token budget
    /// these words allow, their tokens of `token_counter` (the output's `compressed_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_target_tokens: Option<usize>,
    /// Every word's decision, when [`CompressOptions::explain`] is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<WordDecision>>,
}

impl CompressResult {
    /// The result as `kompress compress --json` prints it: its fields, with the settings' `mode` (and
    /// `compat` under [`Compat::Headroom`], `time_budget_ms` when [`CompressOptions::time_budget`] is
    /// set).
    ///
    /// ```
    /// # use kompress::pipeline::{CompressOptions, CompressResult, TokenCounter};
    /// # fn show(result: &CompressResult) {
    /// let v = result.to_json(&CompressOptions::default());
    /// println!("{} of {} tokens: {}", v["compressed_tokens"], v["original_tokens"], v["mode"]);
    /// # }
    /// ```
    pub fn to_json(&self, opts: &CompressOptions) -> serde_json::Value {
        self.clone().into_json(opts)
    }

    /// [`to_json`](Self::to_json), moving the output and the words into the value instead of copying
    /// them (a server answering a large text holds it once less).
    pub fn into_json(mut self, opts: &CompressOptions) -> serde_json::Value {
        let compressed = std::mem::take(&mut self.compressed);
        let words = self.words.take();
        let mut v = serde_json::to_value(&self).expect("results serialize");
        v["compressed"] = serde_json::Value::String(compressed);
        if let Some(words) = words {
            v["words"] = serde_json::to_value(words).expect("decisions serialize");
        }
        v["mode"] = serde_json::json!(opts.mode.to_string());
        if opts.headroom() {
            v["compat"] = serde_json::json!("headroom");
        }
        if let Some(budget) = opts.time_budget {
            v["time_budget_ms"] = serde_json::json!(budget.as_millis() as u64);
        }
        v
    }

    /// [`to_json`](Self::to_json) with the model that scored it, named `model_name`, and its device and
    /// dtype: what `kompress compress --json` prints, less its `input`.
    pub fn to_json_with_model(
        &self,
        opts: &CompressOptions,
        model_name: &str,
        model: &crate::Kompress,
    ) -> serde_json::Value {
        self.clone().into_json_with_model(opts, model_name, model)
    }

    /// [`to_json_with_model`](Self::to_json_with_model), moving the output into the value.
    pub fn into_json_with_model(
        self,
        opts: &CompressOptions,
        model_name: &str,
        model: &crate::Kompress,
    ) -> serde_json::Value {
        let mut v = self.into_json(opts);
        v["model"] = serde_json::json!(model_name);
        v["device"] = serde_json::json!(crate::encoders::device::device_name(model.device()));
        v["dtype"] = serde_json::json!(model.precision().name());
        v
    }
}

/// How far a batch has come, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub words_done: usize,
    pub words_total: usize,
}

/// What [`compress_stream`] reports, in order.
#[derive(Debug)]
pub enum Event<'r> {
    /// After every forward pass.
    Progress(Progress),
    /// More of text `text`'s output: its pieces, in order, make its [`CompressResult::compressed`].
    /// Under [`Mode::Card`] and [`Mode::Threshold`] they come as chunks are decided; under a budget
    /// over the whole text, once the text is done.
    Output { text: usize, piece: &'r str },
    /// Text `text` is done; texts finish in order.
    Done { text: usize, result: CompressResult },
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
    let mut results = Vec::with_capacity(texts.len());
    compress_stream(scorer, texts, opts, |event| {
        if let Event::Done { result, .. } = event {
            results.push(result);
        }
        Ok(())
    })?;
    Ok(results)
}

/// [`compress_batch`], reporting progress, output as it is decided, and each result as its text is
/// done. An error from `sink` (say, a closed output) stops the work at once and is returned.
///
/// [`CompressOptions::time_budget`] counts from this call's start, over all its texts: once it is
/// spent, no forward pass starts, and every word not scored yet, in this text and the texts after it,
/// is kept unscored.
pub fn compress_stream<S: ChunkScorer + ?Sized>(
    scorer: &S,
    texts: &[&str],
    opts: &CompressOptions,
    mut sink: impl FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    opts.validate(scorer.max_tokens())?;
    let ends = opts.time_budget.and_then(|b| started.checked_add(b));
    let spent = || ends.is_some_and(|end| Instant::now() >= end);
    let mut states = texts.iter().map(|t| TextState::new(t, opts)).collect::<Result<Vec<_>>>()?;
    let words_total = states.iter().map(|s| s.original_words).sum();
    let mut queue = Queue::default();
    let mut next = 0;
    let report =
        |states: &mut [TextState], next: &mut usize, sink: &mut dyn FnMut(Event<'_>) -> Result<()>| {
            sink(Event::Progress(Progress {
                words_done: states.iter().map(|s| s.words_done).sum(),
                words_total,
            }))?;
            emit(states, next, sink)
        };
    // Once the budget is spent: what is queued and every word not planned yet is kept unscored.
    let mut cut = false;
    for i in 0..states.len() {
        while !cut {
            let Some(item) = states[i].plan(scorer)? else { break };
            queue.push(i, item, &mut states);
            if queue.chunks == opts.batch_size {
                cut = spent();
                queue.flush(scorer, &mut states, opts, cut)?;
                report(&mut states, &mut next, &mut sink)?;
            }
        }
        if cut {
            states[i].pass_rest();
        }
        states[i].planned = true;
    }
    cut = cut || (queue.chunks > 0 && spent());
    queue.flush(scorer, &mut states, opts, cut)?;
    // Every word is decided now, whichever way it went (the words of kept table rows are not counted
    // on the way): the last report reaches the total.
    sink(Event::Progress(Progress { words_done: words_total, words_total }))?;
    emit(&mut states, &mut next, &mut sink)
}

/// Sends the output decided so far of the first unfinished texts, in order, and the result of each
/// text that is done.
fn emit(
    states: &mut [TextState],
    next: &mut usize,
    sink: &mut dyn FnMut(Event<'_>) -> Result<()>,
) -> Result<()> {
    while let Some(state) = states.get_mut(*next) {
        if !state.complete() {
            let piece = state.fresh();
            if !piece.is_empty() {
                sink(Event::Output { text: *next, piece })?;
            }
            return Ok(());
        }
        let (result, sent) = state.finish()?;
        if result.compressed.len() > sent {
            sink(Event::Output { text: *next, piece: &result.compressed[sent..] })?;
        }
        sink(Event::Done { text: *next, result })?;
        *next += 1;
    }
    Ok(())
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
    fn push(&mut self, text: usize, item: Planned<'a>, states: &mut [TextState<'a>]) {
        self.chunks += usize::from(matches!(item, Planned::Chunk { .. }));
        states[text].pending += 1;
        self.items.push((text, item));
    }

    /// One forward pass over the queued chunks, applied in order; with `cut` (the time budget is
    /// spent), no pass: their words are kept unscored.
    fn flush<S: ChunkScorer + ?Sized>(
        &mut self,
        scorer: &S,
        states: &mut [TextState<'a>],
        opts: &CompressOptions,
        cut: bool,
    ) -> Result<()> {
        if cut {
            self.chunks = 0;
            for (i, item) in self.items.drain(..) {
                match item {
                    Planned::Chunk { words, .. } => words
                        .iter()
                        .for_each(|w| states[i].apply(w, Reason::Unscored, None, Some(Unscored::TimeBudget))),
                    Planned::Unscored(word) => {
                        states[i].apply(&word, Reason::Unscored, None, Some(Unscored::TooLong))
                    }
                }
                states[i].pending -= 1;
            }
            return Ok(());
        }
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
                    let scores = scored.next().expect("one result per chunk");
                    let verdicts = decide(&scores, words.len(), opts.mode, opts.headroom());
                    states[i].apply_chunk(&words, &verdicts);
                }
                Planned::Unscored(word) => {
                    states[i].apply(&word, Reason::Unscored, None, Some(Unscored::TooLong))
                }
            }
            states[i].pending -= 1;
        }
        Ok(())
    }
}

type Words<'a> = Box<dyn Iterator<Item = Word<'a>> + 'a>;

/// A word whose fate waits for a budget over the whole text: `reason` is where it stands before the
/// budget (kept for a protection, or `Dropped` until the model's score wins it a place).
struct Staged<'a> {
    word: Word<'a>,
    reason: Reason,
    score: Option<f32>,
    unscored: Option<Unscored>,
}

/// One text in progress: its planner, its output so far and its counts.
struct TextState<'a> {
    text: &'a str,
    mode: Mode,
    counter: TokenCounter,
    /// `None` for a text that passes through without the model.
    planner: Option<Planner<'a, Words<'a>>>,
    /// Every word, in order: the words of verbatim lines are applied as the model's words pass them.
    all: Peekable<Words<'a>>,
    /// Lines of fenced code, kept byte for byte without the model.
    code: LineSet,
    /// Table lines, kept byte for byte without the model.
    tables: LineSet,
    /// Every line kept byte for byte without the model: code, table and code-like lines.
    verbatim: LineSet,
    /// Markdown markup: its words are scored, but kept whatever the model says.
    markup: markdown::Spans,
    /// Headroom's table rows: scored, but kept whatever the model says.
    headroom_tables: LineSet,
    protect_words: bool,
    out: Output<'a>,
    /// Words waiting for a budget over the whole text.
    staged: Option<Vec<Staged<'a>>>,
    decisions: Option<Vec<WordDecision>>,
    passthrough: Option<Passthrough>,
    original_words: usize,
    original_tokens: usize,
    words_done: usize,
    chunks: usize,
    /// Words kept unscored for their length, and for the time budget.
    unscored: usize,
    cut: usize,
    /// Words of the chunks the model scored.
    scored: usize,
    /// Items queued and not applied yet; whether every item was planned.
    pending: usize,
    planned: bool,
    /// Bytes of the output already sent.
    sent: usize,
}

impl<'a> TextState<'a> {
    fn new(text: &'a str, opts: &CompressOptions) -> Result<Self> {
        let original_words = words(text).count();
        let original_tokens = opts.count_tokens.count(text)?;
        let headroom = opts.headroom();
        let passthrough = if !headroom && opts.protect_json && structured::is_json(text) {
            Some(Passthrough::Structured)
        } else if let Mode::TargetTokens(n) = opts.mode {
            (original_tokens <= n).then_some(Passthrough::FitsBudget)
        } else {
            (original_words < opts.min_words).then_some(Passthrough::Short)
        };
        let scored = passthrough.is_none();
        let find = |on: bool, f: fn(&str) -> LineSet| if on && scored { f(text) } else { LineSet::default() };
        let code = find(!headroom && opts.protect_code, code::fenced_code);
        let tables = find(!headroom && opts.protect_tables, table::tables);
        let headroom_tables = find(headroom && opts.protect_tables, table::headroom_tables);
        let code_lines = find(!headroom && opts.protect_code_lines, code_lines::code_lines);
        let markup = match !headroom && opts.protect_markdown && scored {
            true => markdown::markup(text),
            false => markdown::Spans::default(),
        };
        let verbatim = code.clone().union(tables.clone()).union(code_lines);
        let planner = scored.then(|| {
            let v = verbatim.clone();
            let source: Words<'a> = Box::new(words(text).filter(move |w| !v.contains(w.line)));
            Planner::new(source, opts.chunk_words, opts.chunk_tokens)
        });
        let all: Words<'a> = Box::new(words(text));
        Ok(Self {
            text,
            mode: opts.mode,
            counter: opts.count_tokens,
            planner,
            all: all.peekable(),
            code,
            tables,
            markup,
            out: Output::new(text, headroom, verbatim.clone()),
            verbatim,
            headroom_tables,
            protect_words: opts.protect_words,
            staged: opts.mode.global(headroom).then(Vec::new),
            decisions: opts.explain.then(Vec::new),
            passthrough,
            original_words,
            original_tokens,
            words_done: if scored { 0 } else { original_words },
            chunks: 0,
            unscored: 0,
            cut: 0,
            scored: 0,
            pending: 0,
            planned: false,
            sent: 0,
        })
    }

    fn plan<S: ChunkScorer + ?Sized>(&mut self, scorer: &S) -> Result<Option<Planned<'a>>> {
        match &mut self.planner {
            Some(planner) => planner.next(scorer),
            None => Ok(None),
        }
    }

    /// Keeps every word not planned yet unscored, for the time budget: none is tokenized or scored.
    fn pass_rest(&mut self) {
        let Some(planner) = self.planner.take() else { return };
        for word in planner.rest() {
            self.apply(&word, Reason::Unscored, None, Some(Unscored::TimeBudget));
        }
    }

    fn complete(&self) -> bool {
        self.planned && self.pending == 0
    }

    fn apply_chunk(&mut self, words: &[Word<'a>], verdicts: &[WordVerdict]) {
        self.chunks += 1;
        self.scored += words.len();
        for (word, v) in words.iter().zip(verdicts) {
            let reason = match v.keep {
                true => Reason::Model,
                false if self.protect_words && protect::must_keep(word.text) => Reason::Protected,
                false if self.markup.overlaps(self.offset(word)) => Reason::Markdown,
                false if self.headroom_tables.contains(word.line) => Reason::Table,
                false => Reason::Dropped,
            };
            self.apply(word, reason, v.score, None);
        }
    }

    /// Applies a word the model saw (or could not see: `unscored` says why), after the verbatim words
    /// before it.
    fn apply(&mut self, word: &Word<'a>, reason: Reason, score: Option<f32>, unscored: Option<Unscored>) {
        while let Some(w) = self.all.next_if(|w| w.text.as_ptr() != word.text.as_ptr()) {
            self.apply_verbatim(w);
        }
        self.all.next();
        self.stage(*word, reason, score, unscored);
    }

    /// The bytes of the text that `word` spans.
    fn offset(&self, word: &Word<'a>) -> std::ops::Range<usize> {
        let start = word.text.as_ptr() as usize - self.text.as_ptr() as usize;
        start..start + word.text.len()
    }

    fn apply_verbatim(&mut self, word: Word<'a>) {
        let reason = match (self.code.contains(word.line), self.tables.contains(word.line)) {
            (true, _) => Reason::Code,
            (false, true) => Reason::Table,
            (false, false) => Reason::CodeLine,
        };
        self.stage(word, reason, None, None);
    }

    fn stage(&mut self, word: Word<'a>, reason: Reason, score: Option<f32>, unscored: Option<Unscored>) {
        self.words_done += 1;
        match &mut self.staged {
            Some(staged) => staged.push(Staged { word, reason, score, unscored }),
            None => self.record(&word, reason, score, unscored),
        }
    }

    fn record(&mut self, word: &Word<'a>, reason: Reason, score: Option<f32>, unscored: Option<Unscored>) {
        match unscored {
            Some(Unscored::TooLong) => self.unscored += 1,
            Some(Unscored::TimeBudget) => self.cut += 1,
            None => {}
        }
        self.out.push(word, reason.kept());
        if let Some(d) = &mut self.decisions {
            d.push(WordDecision {
                word: word.text.to_string(),
                line: word.line + 1,
                kept: reason.kept(),
                reason,
                unscored,
                score,
            });
        }
    }

    /// The output decided since the last call.
    fn fresh(&mut self) -> &str {
        let from = self.sent;
        self.sent = self.out.text().len();
        &self.out.text()[from..]
    }

    /// Decides what is left, and the result with how many of its output bytes were sent already.
    fn finish(&mut self) -> Result<(CompressResult, usize)> {
        // The verbatim words after the model's last (a text that passes through has none applied).
        if self.passthrough.is_none() {
            while let Some(w) = self.all.next() {
                self.apply_verbatim(w);
            }
        }
        // The words kept whatever the model says, when they alone exceed a budget over the text.
        let forced = match self.staged.take() {
            Some(staged) => self.spend_budget(staged)?,
            None => None,
        };
        self.out.finish();
        let target = matches!(self.mode, Mode::TargetTokens(_));
        let passthrough =
            self.passthrough.or((self.out.words() == 0 && !target).then_some(Passthrough::NothingKept));
        let out = std::mem::replace(&mut self.out, Output::new("", true, LineSet::default()));
        let n = self.original_words;
        let (compressed, kept, tokens) = match passthrough {
            Some(_) => (self.text.to_string(), n, self.original_tokens),
            None => {
                let kept = out.words();
                let compressed = out.into_string();
                let tokens = self.counter.count(&compressed)?;
                (compressed, kept, tokens)
            }
        };
        let decisions = self.decisions.take();
        let words = match passthrough {
            Some(why) => decisions.map(|d| passthrough_decisions(self.text, &d, why)),
            None => decisions,
        };
        // A JSON input passed through whole is over a budget it does not fit.
        let forced = match (self.mode, passthrough) {
            (Mode::TargetTokens(b), Some(Passthrough::Structured)) if tokens > b => Some(n),
            (Mode::Ratio(r), Some(Passthrough::Structured)) if budget::ratio_words(n, r) < n => Some(n),
            _ => forced,
        };
        let (min_ratio, min_target_tokens) = match (forced, self.mode) {
            (Some(words), Mode::Ratio(_)) => (Some(words as f64 / n.max(1) as f64), None),
            (Some(_), Mode::TargetTokens(_)) => (None, Some(tokens)),
            _ => (None, None),
        };
        let sent = if passthrough.is_some() { 0 } else { self.sent };
        let result = CompressResult {
            compressed,
            original_words: n,
            kept_words: kept,
            token_counter: self.counter,
            original_tokens: self.original_tokens,
            compressed_tokens: tokens,
            tokens_saved: self.original_tokens.saturating_sub(tokens),
            compression_ratio: if self.original_tokens == 0 {
                1.0
            } else {
                tokens as f64 / self.original_tokens as f64
            },
            chunks: self.chunks,
            unscored_words: self.unscored,
            scored_words: self.scored,
            unscored_reason: (self.cut > 0).then_some(Unscored::TimeBudget),
            passthrough: passthrough.is_some(),
            passthrough_reason: passthrough,
            over_budget: forced.is_some(),
            min_ratio,
            min_target_tokens,
            words,
        };
        Ok((result, sent))
    }

    /// Spends a budget over the whole text, then records every word; returns how many words are kept
    /// whatever the model says when they alone exceed the budget.
    fn spend_budget(&mut self, mut staged: Vec<Staged<'a>>) -> Result<Option<usize>> {
        let ranked = budget::ranked(
            staged
                .iter()
                .enumerate()
                .filter(|(_, s)| s.reason == Reason::Dropped)
                .filter_map(|(i, s)| Some((i, s.score?))),
        );
        let forced = staged.iter().filter(|s| s.reason != Reason::Dropped).count();
        let (take, over) = match self.mode {
            Mode::Ratio(r) => (
                budget::ratio_room(self.original_words, r, forced).min(ranked.len()),
                forced > budget::ratio_words(self.original_words, r),
            ),
            Mode::TargetTokens(n) => {
                let fits = |k: usize| -> Result<bool> {
                    Ok(self.counter.count(&self.render(&staged, &ranked[..k]))? <= n)
                };
                match budget::largest_fitting(ranked.len(), fits)? {
                    Some(k) => (k, false),
                    None => (0, true),
                }
            }
            Mode::Card | Mode::Threshold(_) => (0, false),
        };
        for &i in &ranked[..take] {
            staged[i].reason = Reason::Model;
        }
        for s in staged {
            self.record(&s.word, s.reason, s.score, s.unscored);
        }
        Ok(over.then_some(forced))
    }

    /// The output with the protected words and the `chosen` ones kept.
    fn render(&self, staged: &[Staged<'a>], chosen: &[usize]) -> String {
        let mut keep: Vec<bool> = staged.iter().map(|s| s.reason.kept()).collect();
        chosen.iter().for_each(|&i| keep[i] = true);
        let mut out = Output::new(self.text, false, self.verbatim.clone());
        for (s, k) in staged.iter().zip(keep) {
            out.push(&s.word, k);
        }
        out.finish();
        out.into_string()
    }
}

/// Every word kept as passed through, with the scores the model gave (if it ran).
fn passthrough_decisions(text: &str, scored: &[WordDecision], why: Passthrough) -> Vec<WordDecision> {
    let reason = if why == Passthrough::Structured { Reason::Structured } else { Reason::Passthrough };
    let scores = scored.iter().map(|d| d.score).chain(std::iter::repeat(None));
    words(text)
        .zip(scores)
        .map(|(w, score)| WordDecision {
            word: w.text.to_string(),
            line: w.line + 1,
            kept: true,
            reason,
            unscored: None,
            score,
        })
        .collect()
}
