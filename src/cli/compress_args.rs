//! `kompress compress`'s arguments, for every method it runs (Kompress's pipeline, `--compat headroom`,
//! `--compat llmlingua2`, `--compat ctxprune`); `serve` shares [`CompressFlags`] as its defaults.

use std::path::PathBuf;

use clap::Args;
use kompress::ctxprune::Unit;
use kompress::llmlingua2::TokenToWord;
use kompress::pipeline::{CompressFields, ModeName as CompressMode, TokenCounter};
use kompress::CompressOptions;

use super::args::ModelArgs;

#[derive(Args, Debug)]
pub struct CompressArgs {
    /// Texts to compress: files, or `-`/nothing for standard input. Several files run as one batch; a
    /// file that cannot be read is reported and skipped, the others are still compressed, and the
    /// command then exits with status 1.
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub flags: CompressFlags,
    #[command(flatten)]
    pub llmlingua2: LlmLingua2Flags,
    #[command(flatten)]
    pub ctxprune: CtxpruneFlags,
    /// Print one JSON object per input: {compressed, original_words, kept_words, original_tokens,
    /// compressed_tokens, tokens_saved, compression_ratio, chunks, mode, model, device, dtype, ...}.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Corpus mode: every input line is one text (a JSON string, a JSON object with a "text" string
    /// field, or raw text); print one JSON result per line, streaming.
    #[arg(long)]
    pub jsonl: bool,
    /// Show every word with its fate: kept by the model, protected, table, code, code_line, markdown,
    /// unscored, or dropped (colored on a terminal, `[-dropped-]` otherwise; a "words" list with --json/--jsonl, whose
    /// "line" counts from 1).
    /// Colors: dropped red and struck through, protected yellow, table cyan, code and code lines
    /// blue, Markdown markup green, unscored magenta, kept by the model or passed through plain.
    #[arg(long)]
    pub explain: bool,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
    /// Say nothing on stderr about texts that pass through unchanged (too short, nothing kept, JSON,
    /// within --target-tokens); errors and over-budget notes are still printed.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// The compression options, shared by `compress` and `serve` (where they are the server's defaults).
#[derive(Args, Debug)]
pub struct CompressFlags {
    /// Keep rule: `card` (the model card's: token head argmax, or a borderline token in an important
    /// span), `threshold` (final score above --threshold), `ratio` (--ratio of the words).
    #[arg(long, value_parser = ["card", "threshold", "ratio"])]
    pub mode: Option<String>,
    /// Final-score threshold of `--mode threshold`, in [0, 1] (0.5 is Headroom's ONNX rule); implies
    /// that mode.
    #[arg(long, value_name = "T", allow_hyphen_values = true, value_parser = threshold)]
    pub threshold: Option<f64>,
    /// Share of the words to keep, in (0, 1]: protected words count first, the best-scored words fill
    /// the rest, across the whole text (per chunk, on top, with --compat headroom); implies
    /// `--mode ratio`.
    #[arg(long, value_name = "R", allow_hyphen_values = true, value_parser = ratio)]
    pub ratio: Option<f64>,
    /// Fit the output in N tokens of --count-tokens: protected text first, then words by score across
    /// the text. A text that fits passes through; when the protected text alone is larger, a note
    /// says so and the output is that text. With --compat llmlingua2 or ctxprune, --ratio may be given
    /// too, and N wins (llmlingua's `target_token` over its `rate`).
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = at_least_one, conflicts_with_all = ["mode", "threshold"])]
    pub target_tokens: Option<usize>,
    /// What token counts count (results, -v, --target-tokens): `cl100k` (OpenAI cl100k_base), `o200k`
    /// (o200k_base) or `words`.
    /// [default: cl100k]
    #[arg(long, value_name = "COUNTER")]
    pub count_tokens: Option<TokenCounter>,
    /// `headroom`: Headroom 0.42's output word for word (one space within a line, its table rule
    /// only, no code, code-line, Markdown or JSON protection, --ratio per chunk). `llmlingua2` (compress
    /// only): llmlingua 0.2.2's `compress_prompt_llmlingua2` output byte for byte, with an LLMLingua-2
    /// model (--ratio is its `rate`, --target-tokens its `target_token`). `ctxprune` (compress only):
    /// ctxprune 0.2.1's `Compressor.compress` output byte for byte, with any token classifier (--ratio
    /// is its `rate`, --threshold its `threshold`, --chunk-tokens its `max_len`, --batch-size its
    /// `batch_size`; --count-tokens makes that counter its `measure`, and --target-tokens N keeps the
    /// most atoms whose output counts at most N).
    #[arg(long, value_parser = ["headroom", "llmlingua2", "ctxprune", "off"])]
    pub compat: Option<String>,
    /// Most words per chunk.
    #[arg(long, default_value = "350", value_parser = at_least_one)]
    pub chunk_words: usize,
    /// Most tokens per chunk, [CLS]/[SEP] included (at most the model's maximum).
    #[arg(long, default_value_t = 512)]
    pub chunk_tokens: usize,
    /// Chunks per forward pass [default: 8 on a GPU and for f32 on an AVX-512 CPU, 1 for int8 and on
    /// other CPUs, where larger batches were measured slower].
    #[arg(long, value_parser = at_least_one)]
    pub batch_size: Option<usize>,
    /// Texts with fewer words pass through unchanged.
    #[arg(long, default_value_t = 64)]
    pub min_words: usize,
    /// Let the model drop must-keep words, table rows, code and Markdown markup, and compress JSON.
    #[arg(long)]
    pub no_protect: bool,
    /// Let the model drop must-keep words (numbers, paths, identifiers, negations, and/or...).
    #[arg(long)]
    pub no_protect_words: bool,
    /// Let the model drop words of table rows.
    #[arg(long)]
    pub no_protect_tables: bool,
    /// Let the model drop words of fenced code blocks.
    #[arg(long)]
    pub no_protect_code: bool,
    /// Let the model drop words of code-like lines outside fences (source code, diff hunks, stack
    /// traces, log lines with timestamps).
    #[arg(long)]
    pub no_protect_code_lines: bool,
    /// Let the model drop Markdown's heading, list and quote markers and links.
    #[arg(long)]
    pub no_protect_markdown: bool,
    /// Compress an input that is JSON as text, instead of passing it through.
    #[arg(long)]
    pub no_protect_json: bool,
    /// Stop scoring once MS milliseconds have passed since the compression began (after the model
    /// loads): the words not scored by then are kept as they are, in the text's layout, and the result
    /// says so (`scored_words`, `unscored_reason`). The clock is read before every forward pass, the
    /// first included; a pass already running finishes. Several inputs share one budget (--jsonl: each
    /// batch of --batch-size lines has its own). At most 86400000 (one day). For `serve`: the budget
    /// of a request that names none, cut to 80% of the time left before its deadline.
    #[arg(long, value_name = "MS", allow_hyphen_values = true, value_parser = milliseconds)]
    pub time_budget_ms: Option<u64>,
}

/// The flag of a [`CompressFields`] field: `chunk_words` is `--chunk-words`.
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// A [`CompressFields`] message with the fields it quotes (`` `ratio` ``) named as flags (`--ratio`).
fn flags_named(message: &str) -> String {
    let mut parts = message.split('`');
    let mut out = parts.next().unwrap_or_default().to_string();
    for (i, part) in parts.enumerate() {
        out.push_str(&if i % 2 == 0 { flag(part) } else { part.to_string() });
    }
    out
}

/// `--threshold`: a number in [0, 1].
fn threshold(s: &str) -> Result<f64, String> {
    let t: f64 = s.parse().map_err(|_| "not a number".to_string())?;
    (0.0..=1.0).contains(&t).then_some(t).ok_or_else(|| "not in [0, 1]".into())
}

/// `--ratio`: a number in (0, 1].
fn ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|_| "not a number".to_string())?;
    (r > 0.0 && r <= 1.0).then_some(r).ok_or_else(|| "not in (0, 1]".into())
}

/// `--time-budget-ms`: a whole number of milliseconds, at least 1 (the upper bound is the library's).
fn milliseconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 ms".into()),
        Ok(ms) => Ok(ms),
        Err(_) => Err("not a whole number of milliseconds (at least 1)".into()),
    }
}

/// A count that must not be zero (`--chunk-words`, `--batch-size`, `--target-tokens`).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".into()),
    }
}

impl CompressFlags {
    /// The options these flags give over the library's defaults, `batch` chunks a pass unless
    /// `--batch-size` says otherwise ([`default_batch_size`]).
    pub fn options(&self, explain: bool, batch: usize) -> anyhow::Result<CompressOptions> {
        if self.compat.as_deref() == Some("headroom") && self.target_tokens.is_some() {
            anyhow::bail!("--target-tokens has no Headroom 0.42 equivalent: leave out --compat headroom");
        }
        let on = |set: bool| set.then_some(true);
        let fields = CompressFields {
            mode: self.mode.as_deref().map(str::parse::<CompressMode>).transpose()?,
            threshold: self.threshold,
            ratio: self.ratio,
            target_tokens: self.target_tokens,
            count_tokens: self.count_tokens.map(|c| c.to_string()),
            compat: self.compat.clone(),
            chunk_words: Some(self.chunk_words),
            chunk_tokens: Some(self.chunk_tokens),
            batch_size: Some(self.batch_size.unwrap_or(batch)),
            min_words: Some(self.min_words),
            no_protect: on(self.no_protect),
            no_protect_words: on(self.no_protect_words),
            no_protect_tables: on(self.no_protect_tables),
            no_protect_code: on(self.no_protect_code),
            no_protect_code_lines: on(self.no_protect_code_lines),
            no_protect_markdown: on(self.no_protect_markdown),
            no_protect_json: on(self.no_protect_json),
            explain: Some(explain),
            time_budget_ms: self.time_budget_ms,
        };
        fields
            .resolve(&CompressOptions::default())
            .map_err(|(field, message)| anyhow::anyhow!("{}: {}", flag(field), flags_named(&message)))
    }
}

impl CompressArgs {
    pub(crate) fn inputs(&self) -> Vec<Option<&PathBuf>> {
        match self.inputs.is_empty() {
            true => vec![None],
            false => self.inputs.iter().map(Some).collect(),
        }
    }
}

/// The options of `--compat llmlingua2` that the rest of `compress` does not have.
#[derive(Args, Debug, Clone, Default)]
pub struct LlmLingua2Flags {
    /// With --compat llmlingua2: tokens always kept (llmlingua's `force_tokens`), comma-separated;
    /// `\n`, `\t`, `\,` and `\\` are escapes (e.g. '\n,?,.').
    #[arg(long, value_name = "LIST")]
    pub force_tokens: Option<String>,
    /// With --compat llmlingua2: keep every word holding a digit.
    #[arg(long)]
    pub force_reserve_digit: bool,
    /// With --compat llmlingua2: drop a force token repeated with no kept word in between.
    #[arg(long)]
    pub drop_consecutive: bool,
    /// With --compat llmlingua2: a word's probability from its tokens': `mean` or `first`.
    #[arg(long, value_name = "MODE")]
    pub token_to_word: Option<TokenToWord>,
    /// With --compat llmlingua2: drop whole contexts first (several inputs, or a --jsonl line's list),
    /// keeping those whose mean word probability reaches the percentile of --context-level-rate.
    #[arg(long)]
    pub context_level_filter: bool,
    /// With --context-level-filter: the share of contexts to keep [default: (rate + 1) / 2].
    #[arg(long, value_name = "R")]
    pub context_level_rate: Option<f64>,
}

impl LlmLingua2Flags {
    /// The first of these flags that is set.
    pub fn set_flag(&self) -> Option<&'static str> {
        [
            ("--force-tokens", self.force_tokens.is_some()),
            ("--force-reserve-digit", self.force_reserve_digit),
            ("--drop-consecutive", self.drop_consecutive),
            ("--token-to-word", self.token_to_word.is_some()),
            ("--context-level-filter", self.context_level_filter),
            ("--context-level-rate", self.context_level_rate.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}

/// The options of `--compat ctxprune` that the rest of `compress` does not have.
#[derive(Args, Debug, Clone, Default)]
pub struct CtxpruneFlags {
    /// With --compat ctxprune: always keep identifiers, numbers, paths and flags (its `force_protected`).
    #[arg(long)]
    pub force_protected: bool,
    /// With --compat ctxprune: always keep JSON's structure characters `{}[]",:` (its `keep_structure`).
    #[arg(long)]
    pub keep_structure: bool,
    /// With --compat ctxprune: what --ratio counts, `chars` (an atom's characters plus one for the space
    /// before it) or `tokens` (the model's) [default: chars].
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<Unit>,
}

impl CtxpruneFlags {
    /// The first of these flags that is set.
    pub fn set_flag(&self) -> Option<&'static str> {
        [
            ("--force-protected", self.force_protected),
            ("--keep-structure", self.keep_structure),
            ("--unit", self.unit.is_some()),
        ]
        .into_iter()
        .find_map(|(name, set)| set.then_some(name))
    }
}
