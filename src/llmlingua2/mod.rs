//! LLMLingua-2's compression (`PromptCompressor.compress_prompt_llmlingua2` of `llmlingua` 0.2.2),
//! reproduced so that its output is byte-identical for the same model, text and options.
//!
//! Per context: the text is tokenized and cut into chunks of at most 510 tokens, each cut back to its
//! last `.`/`\n` token; each chunk is decoded to text and scored as `[CLS] tokens [SEP]`; tokens are
//! merged into words; each word's class-1 probability (mean or first of its tokens) is repeated once
//! per `cl100k` token of the word; words above `np.percentile(probs, int(100 * (1 - rate) + 1))` are
//! kept and decoded back to text with the tokenizer's decoder. docs/LLMLINGUA2.md lists where this
//! departs from llmlingua (only where llmlingua raises).
//!
//! ```
//! use kompress::llmlingua2::{LlmLingua2, Options};
//! use kompress::LoadOptions;
//! let dir = "tests/fixtures/models/llmlingua-2-bert-base-multilingual-cased-tiny";
//! let compressor = LlmLingua2::from_dir(dir, &LoadOptions::default())?;
//! let out = compressor.compress(&["The meeting starts at nine. Bring the slides."], &Options::default())?;
//! assert!(out.compressed_tokens <= out.origin_tokens);
//! # Ok::<(), kompress::Error>(())
//! ```

pub mod numpy;
pub mod words;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tokenizers::{AddedToken, Tokenizer};

use crate::encoders::bert::{Family, ADDED_ROWS};
use crate::encoders::tokenize::WordEncoding;
use crate::pipeline::{ChunkScorer, TokenCounter};
use crate::{Error, Kompress, LoadOptions, Result};
use numpy::{percentile, Prob};
use words::{merge, word_probs, Forced, WordRule};

/// llmlingua's sequence length: chunks hold at most `MAX_SEQ - 2` tokens.
const MAX_SEQ: usize = 512;

/// How a word's probability comes from its tokens' (`token_to_word`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenToWord {
    #[default]
    Mean,
    First,
}

impl std::str::FromStr for TokenToWord {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Self::Mean),
            "first" => Ok(Self::First),
            other => {
                Err(Error::Invalid(format!("token_to_word \"{other}\": expected \"mean\" or \"first\"")))
            }
        }
    }
}

/// `compress_prompt_llmlingua2`'s arguments, with its defaults.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub rate: f64,
    /// Overrides `rate` when positive (`min(target_token / origin_tokens, 1)`).
    pub target_token: i64,
    pub use_context_level_filter: bool,
    pub use_token_level_filter: bool,
    pub target_context: i64,
    pub context_level_rate: f64,
    pub context_level_target_token: i64,
    pub force_context_ids: Vec<usize>,
    pub return_word_label: bool,
    pub word_sep: String,
    pub label_sep: String,
    pub token_to_word: TokenToWord,
    pub force_tokens: Vec<String>,
    pub force_reserve_digit: bool,
    pub drop_consecutive: bool,
    pub chunk_end_tokens: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rate: 0.5,
            target_token: -1,
            use_context_level_filter: false,
            use_token_level_filter: true,
            target_context: -1,
            context_level_rate: 1.0,
            context_level_target_token: -1,
            force_context_ids: Vec::new(),
            return_word_label: false,
            word_sep: "\t\t|\t\t".into(),
            label_sep: " ".into(),
            token_to_word: TokenToWord::Mean,
            force_tokens: Vec::new(),
            force_reserve_digit: false,
            drop_consecutive: false,
            chunk_end_tokens: vec![".".into(), "\n".into()],
        }
    }
}

/// llmlingua's result dict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compressed {
    pub compressed_prompt: String,
    pub compressed_prompt_list: Vec<String>,
    pub origin_tokens: usize,
    pub compressed_tokens: usize,
    /// `"{origin / compressed:.1f}x"`.
    pub ratio: String,
    /// `"{compressed / origin * 100:.1f}%"`.
    pub rate: String,
    pub saving: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fn_labeled_original_prompt: Option<String>,
    /// The words behind `fn_labeled_original_prompt`, with their labels and probabilities, when
    /// `return_word_label` is set (not in llmlingua's dict: the playground's per-word view).
    #[serde(skip)]
    pub labeled_words: Option<Vec<LabeledWord>>,
}

/// One word of a context as llmlingua labels it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabeledWord {
    /// The word as `fn_labeled_original_prompt` shows it.
    pub word: String,
    /// 1: kept, 0: dropped (by the token-level or the context-level filter).
    pub label: u8,
    /// The word's class-1 probability (the mean or first of its tokens', `token_to_word`), when the
    /// token-level filter ranked it: `None` for a context the context-level filter dropped, or with
    /// the token-level filter off.
    pub prob: Option<f32>,
}

/// An LLMLingua-2 model (BERT or XLM-RoBERTa token classifier) with its tokenizer.
pub struct LlmLingua2 {
    model: Arc<Kompress>,
    tokenizer: Tokenizer,
    rule: WordRule,
    special: HashSet<String>,
    added: Vec<String>,
    /// llmlingua frames every chunk with the ids of the strings `[CLS]` / `[SEP]` (its dataset class
    /// defaults to mBERT's names even for XLM-R, where both become `<unk>`).
    frame: (u32, u32),
    /// Chunks scored per forward pass.
    pub batch_size: usize,
}

impl LlmLingua2 {
    /// Loads a local model directory; `auto` as dtype loads f32 ([`DTypeChoice::for_parity`](crate::DTypeChoice::for_parity)).
    pub fn from_dir(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Self::from_model(Arc::new(Kompress::from_dir(dir, &opts.for_parity())?))
    }

    /// A local directory if `model` names one, else a Hugging Face repo id; `auto` as dtype loads f32.
    pub fn load(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_model(Arc::new(Kompress::load(model, &opts.for_parity())?))
    }

    /// Wraps a loaded BERT / XLM-R model (shared: the server scores with it on its other routes too).
    pub fn from_model(model: Arc<Kompress>) -> Result<Self> {
        TokenCounter::Cl100k.check()?;
        let rule =
            match model.scorer().family() {
                Family::Bert => WordRule::WordPiece,
                Family::XlmRoberta => WordRule::SentencePiece,
                Family::ModernBert => return Err(Error::Invalid(
                    "LLMLingua-2 compression needs a BERT or XLM-RoBERTa token classifier (an LLMLingua-2 \
                     checkpoint), not a ModernBERT Kompress model"
                        .into(),
                )),
            };
        let mut tok = model.tokenizer().inner().clone();
        let special: HashSet<String> = tok
            .get_added_tokens_decoder()
            .values()
            .filter(|t| t.special)
            .map(|t| t.content.clone())
            .collect();
        let added: Vec<String> = (0..ADDED_ROWS).map(|i| format!("[NEW{i}]")).collect();
        tok.add_special_tokens(added.iter().map(|t| AddedToken::from(t.clone(), true)))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let unk = ["[UNK]", "<unk>"].iter().find_map(|t| tok.token_to_id(t)).unwrap_or(0);
        let id = |t: &str| tok.token_to_id(t).unwrap_or(unk);
        let frame = (id("[CLS]"), id("[SEP]"));
        Ok(Self { model, tokenizer: tok, rule, special, added, frame, batch_size: 8 })
    }

    pub fn model(&self) -> &Arc<Kompress> {
        &self.model
    }

    /// `compress_prompt_llmlingua2(context, **opts)`.
    pub fn compress<S: AsRef<str>>(&self, context: &[S], opts: &Options) -> Result<Compressed> {
        self.compress_with(&*self.model, context, opts)
    }

    /// [`compress`](Self::compress), its forward passes run by `scorer` (the server's batcher).
    pub fn compress_with<C: ChunkScorer + ?Sized, S: AsRef<str>>(
        &self,
        scorer: &C,
        context: &[S],
        opts: &Options,
    ) -> Result<Compressed> {
        let run = Run { this: self, scorer };
        run.compress(context, opts)
    }
}

/// One call: the compressor and whoever runs its forward passes.
struct Run<'a, C: ?Sized> {
    this: &'a LlmLingua2,
    scorer: &'a C,
}

impl<C: ChunkScorer + ?Sized> std::ops::Deref for Run<'_, C> {
    type Target = LlmLingua2;
    fn deref(&self) -> &LlmLingua2 {
        self.this
    }
}

impl<C: ChunkScorer + ?Sized> Run<'_, C> {
    fn compress<S: AsRef<str>>(&self, context: &[S], opts: &Options) -> Result<Compressed> {
        validate(opts)?;
        let mut map: Vec<(String, String)> = Vec::new();
        for (i, t) in opts.force_tokens.iter().enumerate() {
            if self.tokenize(t)?.len() != 1 {
                match map.iter_mut().find(|(ori, _)| ori == t) {
                    Some(entry) => entry.1 = self.added[i].clone(),
                    None => map.push((t.clone(), self.added[i].clone())),
                }
            }
        }
        let mut chunk_end: HashSet<String> = opts.chunk_end_tokens.iter().cloned().collect();
        for c in &opts.chunk_end_tokens {
            if let Some((_, new)) = map.iter().find(|(ori, _)| ori == c) {
                chunk_end.insert(new.clone());
            }
        }
        let forced =
            Forced { tokens: &opts.force_tokens, map: &map, reserve_digit: opts.force_reserve_digit };
        let mut origin_tokens = 0;
        let mut chunked = Vec::with_capacity(context.len());
        for text in context {
            let text = text.as_ref();
            origin_tokens += count(text)?;
            let replaced =
                map.iter().fold(text.to_string(), |acc, (ori, new)| acc.replace(ori.as_str(), new));
            chunked.push(self.chunk(&replaced, &chunk_end)?);
        }
        let use_context_filter = opts.use_context_level_filter && context.len() > 1;
        let (kept_contexts, kept_flags, context_words, rate) = match use_context_filter {
            true => self.context_filter(&chunked, opts, origin_tokens, &forced)?,
            false => {
                let rate = match opts.target_token > 0 {
                    true => ratio_of(opts.target_token, origin_tokens, opts.rate),
                    false => opts.rate,
                };
                (chunked, vec![true; context.len()], Vec::new(), rate)
            }
        };
        let reduce = match opts.use_token_level_filter {
            true => (1.0 - rate).max(0.0),
            false => 0.0,
        };
        let (mut compressed, word_list, label_list, prob_list) =
            self.compress_chunks(kept_contexts, reduce, opts, &forced)?;
        // A context with text but no word to rank (only unknown tokens, such as emoji) would come out
        // empty (llmlingua raises there, taking the percentile of nothing): it is kept as it was.
        let kept_texts = context.iter().zip(&kept_flags).filter(|(_, &k)| k).map(|(t, _)| t.as_ref());
        for ((out, words), original) in compressed.iter_mut().zip(&word_list).zip(kept_texts) {
            if words.is_empty() && !original.trim().is_empty() {
                *out = original.to_string();
            }
        }
        let compressed_tokens = compressed.iter().map(|c| count(c)).sum::<Result<usize>>()?;
        let labeled = opts.return_word_label.then(|| {
            let mut kept = word_list.iter().zip(&label_list).zip(&prob_list);
            let mut out: Vec<LabeledWord> = Vec::new();
            for (i, &flag) in kept_flags.iter().enumerate() {
                match flag {
                    true => {
                        if let Some(((w, l), p)) = kept.next() {
                            out.extend(w.iter().zip(l).zip(p).map(|((w, &label), &prob)| LabeledWord {
                                word: w.clone(),
                                label,
                                prob,
                            }));
                        }
                    }
                    false => out.extend(context_words[i].iter().map(|w| LabeledWord {
                        word: w.clone(),
                        label: 0,
                        prob: None,
                    })),
                }
            }
            out
        });
        let labels = labeled.as_ref().map(|words| {
            let pairs: Vec<String> =
                words.iter().map(|w| format!("{}{}{}", w.word, opts.label_sep, w.label)).collect();
            pairs.join(&opts.word_sep)
        });
        let mut result = result(compressed, origin_tokens, compressed_tokens, labels);
        result.labeled_words = labeled;
        Ok(result)
    }

    /// The coarse step: keeps contexts whose mean word probability (unforced) reaches the percentile;
    /// returns them, which were kept, every context's words, and the token-level rate.
    #[allow(clippy::type_complexity)]
    fn context_filter(
        &self,
        chunked: &[Vec<String>],
        opts: &Options,
        origin_tokens: usize,
        forced: &Forced,
    ) -> Result<(Vec<Vec<String>>, Vec<bool>, Vec<Vec<String>>, f64)> {
        let mut level_rate = opts.context_level_rate;
        let mut level_target = opts.context_level_target_token;
        if opts.target_context <= 0 && level_rate >= 1.0 && level_target <= 0 {
            if opts.target_token < 0 && opts.rate < 1.0 {
                level_rate = if opts.use_token_level_filter { (opts.rate + 1.0) / 2.0 } else { opts.rate };
            }
            if opts.target_token >= 0 {
                level_target =
                    if opts.use_token_level_filter { opts.target_token * 2 } else { opts.target_token };
            }
        }
        if opts.target_context >= 0 {
            level_rate = (opts.target_context as f64 / chunked.len() as f64).min(1.0);
        }
        if level_target >= 0 {
            level_rate = ratio_of(level_target, origin_tokens, level_rate);
        }
        let mut context_probs = Vec::with_capacity(chunked.len());
        let mut context_words = Vec::with_capacity(chunked.len());
        for chunks in chunked {
            let (mut words, mut probs) = (Vec::new(), Vec::new());
            for scored in self.score_chunks(chunks)? {
                let merged = merge(self.rule, &scored.0, &scored.1, &self.special, forced);
                probs.extend(word_probs(&merged.probs_no_force, opts.token_to_word));
                words.extend(merged.words.into_iter().map(|w| self.display_word(w)));
            }
            if probs.is_empty() {
                return Err(Error::Invalid(
                    "a context without any word cannot be ranked by the context-level filter".into(),
                ));
            }
            context_probs.push(numpy::mean(&probs));
            context_words.push(words);
        }
        let threshold =
            percentile(&context_probs, (100.0 * (1.0 - level_rate)) as i64).expect("at least two contexts");
        let flags: Vec<bool> = context_probs
            .iter()
            .enumerate()
            .map(|(i, p)| p.as_f64() >= threshold || opts.force_context_ids.contains(&i))
            .collect();
        let kept: Vec<Vec<String>> =
            chunked.iter().zip(&flags).filter(|(_, &f)| f).map(|(c, _)| c.clone()).collect();
        let mut rate = opts.rate;
        if opts.target_token >= 0 {
            let reserved = kept.iter().flatten().map(|c| count(c)).sum::<Result<usize>>()?;
            rate = ratio_of(opts.target_token, reserved, rate);
        }
        Ok((kept, flags, context_words, rate))
    }

    /// `__compress`: each context's compressed text, words and labels.
    #[allow(clippy::type_complexity)]
    fn compress_chunks(
        &self,
        contexts: Vec<Vec<String>>,
        reduce: f64,
        opts: &Options,
        forced: &Forced,
    ) -> Result<(Vec<String>, Vec<Vec<String>>, Vec<Vec<u8>>, Vec<Vec<Option<f32>>>)> {
        if reduce <= 0.0 {
            let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for chunks in contexts {
                let restored: Vec<String> = chunks.iter().map(|c| forced.restore(c)).collect();
                let words: Vec<String> = restored.iter().flat_map(|c| python_words(c)).collect();
                out.2.push(vec![1; words.len()]);
                out.3.push(vec![None; words.len()]);
                out.1.push(words);
                out.0.push(restored.concat());
            }
            return Ok(out);
        }
        let q = (100.0 * reduce + 1.0) as i64;
        let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for chunks in contexts {
            let (mut text, mut words, mut labels) = (String::new(), Vec::new(), Vec::new());
            let mut word_probs_out: Vec<Option<f32>> = Vec::new();
            for (tokens, probs) in self.score_chunks(&chunks)? {
                let merged = merge(self.rule, &tokens, &probs, &self.special, forced);
                let mut probs = word_probs(&merged.probs, opts.token_to_word);
                if opts.drop_consecutive {
                    drop_consecutive(&merged.words, &mut probs, &opts.force_tokens, reduce);
                }
                let mut per_token = Vec::new();
                for (word, p) in merged.words.iter().zip(&probs) {
                    per_token.extend(std::iter::repeat_n(*p, count(word)?));
                }
                let threshold = percentile(&per_token, q);
                let mut keep: Vec<String> = Vec::new();
                for (word, p) in merged.words.iter().zip(&probs) {
                    let Some(threshold) = threshold else {
                        labels.push(0);
                        continue;
                    };
                    let above = p.as_f64() > threshold || (threshold == 1.0 && p.as_f64() == threshold);
                    let repeated = opts.drop_consecutive
                        && opts.force_tokens.contains(word)
                        && keep.last() == Some(word);
                    labels.push(u8::from(above && !repeated));
                    if above && !repeated {
                        keep.push(word.clone());
                    }
                }
                text.push_str(&self.decode(&keep)?);
                word_probs_out.extend(probs.iter().map(|p| Some(p.value)));
                words.extend(merged.words.into_iter().map(|w| self.display_word(w)));
            }
            out.0.push(text);
            out.1.push(words);
            out.2.push(labels);
            out.3.push(word_probs_out);
        }
        Ok(out)
    }

    /// Each chunk's tokens (as strings, specials included) and class-1 probabilities, in order.
    fn score_chunks(&self, chunks: &[String]) -> Result<Vec<(Vec<String>, Vec<f32>)>> {
        let mut encodings = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let enc =
                self.tokenizer.encode(chunk.as_str(), false).map_err(|e| Error::Tokenizer(e.to_string()))?;
            let mut ids = Vec::with_capacity(enc.get_ids().len() + 2);
            ids.push(self.frame.0);
            ids.extend_from_slice(enc.get_ids());
            ids.push(self.frame.1);
            ids.truncate(MAX_SEQ);
            encodings.push(WordEncoding { word_ids: vec![None; ids.len()], input_ids: ids });
        }
        let mut out = Vec::with_capacity(chunks.len());
        for batch in encodings.chunks(self.batch_size.max(1)) {
            for scores in self.scorer.score(batch)? {
                let tokens = scores
                    .input_ids
                    .iter()
                    .map(|&id| self.tokenizer.id_to_token(id).unwrap_or_default())
                    .collect();
                out.push((tokens, scores.token_prob));
            }
        }
        Ok(out)
    }
}

impl LlmLingua2 {
    /// llmlingua strips `▁` from the words it reports only for models named `xlm-roberta-large`, the
    /// XLM-R checkpoint: kompress does it for every XLM-R model.
    fn display_word(&self, word: String) -> String {
        match self.rule {
            WordRule::SentencePiece => word.trim_start_matches('▁').to_string(),
            WordRule::WordPiece => word,
        }
    }

    /// `tokenizer.tokenize(text)`: the tokens' strings, no special tokens added.
    fn tokenize(&self, text: &str) -> Result<Vec<String>> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_tokens().to_vec())
    }

    /// `tokenizer.convert_tokens_to_string(tokens)`: the tokenizer's decoder, or a space join.
    fn decode(&self, tokens: &[String]) -> Result<String> {
        match self.tokenizer.get_decoder() {
            Some(decoder) => {
                use tokenizers::Decoder;
                decoder.decode(tokens.to_vec()).map_err(|e| Error::Tokenizer(e.to_string()))
            }
            None => Ok(tokens.join(" ")),
        }
    }

    /// `__chunk_context`: chunks of at most 510 tokens, each cut after its last chunk-end token (the
    /// search never looks at a chunk's first token: a chunk without any end token holds 511 tokens).
    fn chunk(&self, text: &str, ends: &HashSet<String>) -> Result<Vec<String>> {
        let max = MAX_SEQ - 2;
        let tokens = self.tokenize(text)?;
        let n = tokens.len();
        let (mut out, mut st) = (Vec::new(), 0);
        while st < n {
            if st + max > n - 1 {
                out.push(self.decode(&tokens[st..n])?);
                break;
            }
            let mut ed = st + max;
            if let Some(j) = (0..ed - st).find(|j| ends.contains(&tokens[ed - j])) {
                ed -= j;
            }
            out.push(self.decode(&tokens[st..=ed])?);
            st = ed + 1;
        }
        Ok(out)
    }
}

/// The options llmlingua would reject (by an assertion or a numpy error) are refused up front.
fn validate(opts: &Options) -> Result<()> {
    if opts.force_tokens.len() > ADDED_ROWS {
        return Err(Error::Invalid(format!(
            "{} force tokens: LLMLingua-2 allows at most {ADDED_ROWS}",
            opts.force_tokens.len()
        )));
    }
    // The CLI's --ratio range, for every entry point: llmlingua keeps every word above 1 anyway.
    for (name, rate) in [("rate", opts.rate), ("context_level_rate", opts.context_level_rate)] {
        if !(rate > 0.0 && rate <= 1.0) {
            return Err(Error::Invalid(format!("{name} {rate}: not in (0, 1]")));
        }
    }
    Ok(())
}

/// `min(target / total, 1)`; `fallback` when `total` is 0 (where llmlingua divides by zero).
fn ratio_of(target: i64, total: usize, fallback: f64) -> f64 {
    match total {
        0 => fallback.min(1.0),
        _ => (target as f64 / total as f64).min(1.0),
    }
}

/// `drop_consecutive`: a force token repeated with no kept word since its last occurrence gets 0.
fn drop_consecutive(words: &[String], probs: &mut [Prob], force_tokens: &[String], reduce: f64) {
    let Some(threshold) = percentile(probs, (100.0 * reduce) as i64) else { return };
    let (mut between, mut prev): (bool, Option<&String>) = (false, None);
    for (i, word) in words.iter().enumerate() {
        if force_tokens.contains(word) {
            if between {
                between = false;
            } else if prev == Some(word) {
                probs[i] = Prob::python(0.0);
            }
            prev = Some(word);
        } else {
            between |= probs[i].as_f64() > threshold;
        }
    }
}

/// The LLM tokens llmlingua counts (`tiktoken`'s cl100k; special-token text counts as plain text here,
/// where tiktoken's `encode` raises).
fn count(text: &str) -> Result<usize> {
    TokenCounter::Cl100k.count(text)
}

/// `re.findall(r'\b\w+\b|[<>=/!@#$%^&*()?":{}|\\`~;_+-]', text)`: the words llmlingua reports when
/// nothing is compressed.
fn python_words(text: &str) -> Vec<String> {
    static WORDS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = WORDS.get_or_init(|| {
        regex::Regex::new(r#"\b\w+\b|[<>=/!@#$%^&*()?":{}|\\`~;_+\-]"#).expect("a valid pattern")
    });
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

/// The result dict, with llmlingua's formatting of `ratio`, `rate` and `saving`.
fn result(compressed: Vec<String>, origin: usize, kept: usize, labels: Option<String>) -> Compressed {
    let ratio = if kept == 0 { 1.0 } else { origin as f64 / kept as f64 };
    let saving = (origin as f64 - kept as f64) * 0.06 / 1000.0;
    Compressed {
        compressed_prompt: compressed.join("\n\n"),
        compressed_prompt_list: compressed,
        origin_tokens: origin,
        compressed_tokens: kept,
        ratio: format!("{}x", python_fixed1(ratio)),
        rate: format!("{}%", python_fixed1(1.0 / ratio * 100.0)),
        saving: format!(", Saving ${} in GPT-4.", python_fixed1(saving)),
        fn_labeled_original_prompt: labels,
        labeled_words: None,
    }
}

/// Python's `f"{x:.1f}"`: the exact binary value rounded half to even.
fn python_fixed1(x: f64) -> String {
    // Rust's `{:.1}` rounds the exact decimal expansion too; ties (exactly representable x.x5) are
    // settled here the way Python does, to even.
    let s = format!("{x:.1}");
    let scaled = x * 10.0;
    if scaled.fract().abs() == 0.5 && (scaled.trunc() as i64) % 2 == 0 {
        return format!("{:.1}", scaled.trunc() / 10.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_one_decimal_like_python() {
        // f"{2.25:.1f}" == "2.2", f"{2.35:.1f}" == "2.4" (2.35 is just above), f"{0.25:.1f}" == "0.2"
        assert_eq!(python_fixed1(2.25), "2.2");
        assert_eq!(python_fixed1(2.35), "2.4");
        assert_eq!(python_fixed1(0.25), "0.2");
        assert_eq!(python_fixed1(0.75), "0.8");
        assert_eq!(python_fixed1(100.0), "100.0");
    }

    #[test]
    fn python_words_match_the_regex() {
        assert_eq!(python_words("a-b (c) x_y 12"), ["a", "-", "b", "(", "c", ")", "x_y", "12"]);
    }
}
