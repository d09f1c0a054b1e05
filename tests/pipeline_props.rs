//! Invariants of the compression pipeline, checked on generated texts with model doubles (no model):
//! never a word lost, invented, reordered or moved to another line; keep-all reproduces the input;
//! protections hold; batching and chunk grouping change nothing; results are deterministic.

use std::cell::RefCell;

use kompress::pipeline::words::words;
use kompress::pipeline::{
    compress, compress_batch, protect::must_keep, table::TableLines, ChunkScorer, Mode, Reason,
};
use kompress::{CompressOptions, CompressResult, Result, TokenScores, WordEncoding};
use proptest::prelude::*;
use proptest::sample::select;

const MAX_TOKENS: usize = 512;
/// The largest token cap generated: small, so that caps cut chunks often.
const MAX_CAP: usize = 64;

/// What the double's model says about each token.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    KeepAll,
    KeepNone,
    /// A pseudo-random score from the token, its position and the sequence length, so that a
    /// token scored in another chunk, row or offset would (almost always) get another score.
    Hashed,
}

/// A model double: a toy tokenizer (one token per 3 characters, `[CLS]`=1 ... `[SEP]`=2) and
/// per-token outputs from [`Verdict`]; it records the batch sizes it was called with.
struct Double {
    verdict: Verdict,
    batches: RefCell<Vec<usize>>,
}

impl Double {
    fn new(verdict: Verdict) -> Self {
        Self { verdict, batches: RefCell::new(Vec::new()) }
    }
}

fn tokens_of(word: &str) -> usize {
    word.chars().count().div_ceil(3)
}

fn hash(x: u64) -> u64 {
    let mut x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f32 {
    (hash(x) >> 40) as f32 / (1u64 << 24) as f32
}

impl ChunkScorer for Double {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        let mut enc = WordEncoding { input_ids: vec![1], word_ids: vec![None] };
        for (w, word) in words.iter().enumerate() {
            let chars: Vec<char> = word.chars().collect();
            for piece in chars.chunks(3) {
                let id = piece.iter().fold(7u64, |h, &c| hash(h ^ c as u64));
                enc.input_ids.push(4 + (id % 1000) as u32);
                enc.word_ids.push(Some(w as u32));
            }
        }
        enc.input_ids.push(2);
        enc.word_ids.push(None);
        Ok(enc)
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        self.batches.borrow_mut().push(chunks.len());
        Ok(chunks.iter().map(|enc| self.outputs(enc)).collect())
    }

    fn max_tokens(&self) -> usize {
        MAX_TOKENS
    }
}

impl Double {
    fn outputs(&self, enc: &WordEncoding) -> TokenScores {
        let n = enc.len();
        let score: Vec<f32> = (0..n)
            .map(|t| match self.verdict {
                Verdict::KeepAll => 1.0,
                Verdict::KeepNone => 0.0,
                Verdict::Hashed => unit((enc.input_ids[t] as u64) << 32 | (t as u64) << 16 | n as u64),
            })
            .collect();
        let span: Vec<f32> = score.iter().map(|&s| unit(s.to_bits() as u64)).collect();
        TokenScores {
            input_ids: enc.input_ids.clone(),
            word_ids: enc.word_ids.clone(),
            logits: score.iter().map(|&s| [0.0, 4.0 * (s - 0.6)]).collect(),
            token_prob: score.iter().map(|&s| 1.0 / (1.0 + (-4.0 * (s - 0.6)).exp())).collect(),
            span_score: Some(span),
            score,
        }
    }
}

/// Texts with long and short lines, empty lines, CRLF, tabs, tables, must-keep words, Unicode and
/// words longer than the token cap.
fn text() -> impl Strategy<Value = String> {
    let vocab = vec![
        "the",
        "a",
        "model",
        "keeps",
        "words",
        "not",
        "or",
        "42",
        "3.14",
        "0x7f",
        "HTTP",
        "os.path",
        "/etc/hosts",
        "--verbose",
        "IndexError",
        "file.json",
        "naïve",
        "日本語",
        "x",
        "don't",
        "(see",
        "it)",
        "v2",
    ];
    let long = proptest::collection::vec(select(vec!['a', 'b', 'é', '-', '7']), 20..250)
        .prop_map(|c| c.into_iter().collect::<String>());
    let word = prop_oneof![8 => select(vocab).prop_map(String::from), 1 => long];
    let sep = select(vec![" ", " ", " ", "  ", "\t", "   "]);
    let line =
        (proptest::collection::vec((word, sep), 0..12), select(vec!["", "\r", " ", "  \r"]), any::<bool>())
            .prop_map(|(words, end, lead)| {
                let body: String = words.into_iter().map(|(w, s)| w + s).collect();
                format!("{}{}{end}", if lead { " " } else { "" }, body.trim_end())
            });
    let table = proptest::collection::vec(select(vec!["ab  cd  ef", "1  2  3", "-rw  root  x.txt"]), 3..5)
        .prop_map(|rows| rows.join("\n"));
    proptest::collection::vec(prop_oneof![6 => line, 1 => table], 0..30).prop_map(|lines| lines.join("\n"))
}

fn options() -> impl Strategy<Value = CompressOptions> {
    (1usize..40, 4usize..=MAX_CAP, 1usize..5, any::<bool>(), any::<bool>(), 0u8..3).prop_map(
        |(chunk_words, chunk_tokens, batch_size, protect_words, protect_tables, mode)| CompressOptions {
            mode: match mode {
                0 => Mode::Card,
                1 => Mode::Threshold(0.5),
                _ => Mode::Ratio(0.4),
            },
            chunk_words,
            chunk_tokens,
            batch_size,
            min_words: 0,
            protect_words,
            protect_tables,
            explain: true,
        },
    )
}

/// The input's words, line by line, as a keep-everything pipeline must print them: lines without
/// words vanish, every other line keeps its own ending (`\n` or `\r\n`).
fn words_line_by_line(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').filter(|l| l.split_whitespace().next().is_some()).collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
        if i + 1 < lines.len() {
            out.push_str(if line.ends_with('\r') { "\r\n" } else { "\n" });
        }
    }
    out
}

/// The output is the kept input words, in order, each output line holding words of one input line,
/// a new output line exactly where the input line changes.
fn check_line_true(text: &str, r: &CompressResult) {
    let decisions = r.words.as_ref().expect("explain is on");
    let input: Vec<_> = words(text).collect();
    assert_eq!(decisions.len(), input.len(), "one decision per input word");
    for (d, w) in decisions.iter().zip(&input) {
        assert_eq!((d.word.as_str(), d.line), (w.text, w.line), "decisions follow the input");
        assert_eq!(d.kept, d.reason != Reason::Dropped);
    }
    if r.passthrough {
        assert_eq!(r.compressed, text);
        assert!(decisions.iter().all(|d| d.reason == Reason::Passthrough));
        return;
    }
    let kept: Vec<_> = decisions.iter().filter(|d| d.kept).collect();
    let out: Vec<_> = words(&r.compressed).collect();
    assert_eq!(out.len(), kept.len(), "output words are the kept words");
    assert_eq!(r.kept_words, kept.len());
    assert_eq!(r.tokens_saved, r.original_words - r.kept_words);
    for (i, (o, k)) in out.iter().zip(&kept).enumerate() {
        assert_eq!(o.text, k.word, "word {i}");
        if i > 0 {
            let new_input_line = k.line != kept[i - 1].line;
            assert_eq!(o.line != out[i - 1].line, new_input_line, "line break before word {i}");
            assert_eq!(o.line, out[i - 1].line + usize::from(new_input_line), "one line ending at a time");
        }
    }
}

fn run(double: &Double, text: &str, opts: &CompressOptions) -> CompressResult {
    compress(double, text, opts).unwrap_or_else(|e| panic!("compress failed: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn output_is_the_kept_words_on_their_lines(text in text(), opts in options()) {
        let r = run(&Double::new(Verdict::Hashed), &text, &opts);
        check_line_true(&text, &r);
        prop_assert_eq!(r.original_words, words(&text).count());
    }

    #[test]
    fn every_word_is_scored_once_or_kept_unscored(text in text(), opts in options()) {
        let r = run(&Double::new(Verdict::Hashed), &text, &CompressOptions { protect_words: false, protect_tables: false, ..opts.clone() });
        // A word is unscored when it fills the token room alone: surely when it is longer, maybe
        // when it fills the room exactly (the reference then carries it and keeps it unscored).
        let room = opts.chunk_tokens - 2;
        for d in r.words.unwrap().iter().filter(|d| d.reason != Reason::Passthrough || d.score.is_some()) {
            let tokens = tokens_of(&d.word);
            prop_assert_eq!(d.score.is_some(), d.reason != Reason::Unscored, "{:?}", d);
            if tokens != room {
                prop_assert_eq!(d.score.is_some(), tokens < room, "{:?}", d);
            }
        }
    }

    #[test]
    fn keep_all_reproduces_the_input_line_by_line(text in text(), opts in options()) {
        // Ratio mode keeps a share whatever the scores: only the mask modes can keep everything.
        let opts = match opts.mode {
            Mode::Ratio(_) => CompressOptions { mode: Mode::Card, ..opts },
            _ => opts,
        };
        let r = run(&Double::new(Verdict::KeepAll), &text, &opts);
        check_line_true(&text, &r);
        let expected = if r.original_words == 0 { text.clone() } else { words_line_by_line(&text) };
        prop_assert_eq!(r.compressed, expected);
    }

    #[test]
    fn protected_words_and_table_rows_survive(text in text(), opts in options()) {
        let opts = CompressOptions { protect_words: true, protect_tables: true, mode: Mode::Threshold(0.5), ..opts };
        let r = run(&Double::new(Verdict::KeepNone), &text, &opts);
        check_line_true(&text, &r);
        let tables = TableLines::find(&text);
        for d in r.words.as_ref().unwrap() {
            if must_keep(&d.word) || tables.contains(d.line) {
                prop_assert!(d.kept, "{:?}", d);
            } else if !r.passthrough {
                prop_assert!(!d.kept || d.reason == Reason::Unscored, "{:?}", d);
            }
        }
    }

    #[test]
    fn batching_changes_nothing(texts in proptest::collection::vec(text(), 1..4), opts in options()) {
        let double = Double::new(Verdict::Hashed);
        let alone: Vec<CompressResult> = texts
            .iter()
            .map(|t| run(&double, t, &CompressOptions { batch_size: 1, ..opts.clone() }))
            .collect();
        prop_assert!(double.batches.borrow().iter().all(|&b| b == 1));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for batch_size in [2, 3, 16] {
            let together = compress_batch(&double, &refs, &CompressOptions { batch_size, ..opts.clone() }).unwrap();
            prop_assert_eq!(&together, &alone);
        }
    }

    #[test]
    fn deterministic(text in text(), opts in options()) {
        let double = Double::new(Verdict::Hashed);
        prop_assert_eq!(run(&double, &text, &opts), run(&double, &text, &opts));
    }
}

#[test]
fn batches_are_full_except_the_last() {
    let double = Double::new(Verdict::Hashed);
    let text = "word ".repeat(100);
    let opts = CompressOptions { chunk_words: 10, batch_size: 4, min_words: 0, ..Default::default() };
    let r = run(&double, &text, &opts);
    assert_eq!(r.chunks, 10);
    assert_eq!(*double.batches.borrow(), [4, 4, 2]);
}

#[test]
fn a_word_cut_by_the_token_cap_starts_the_next_chunk() {
    let double = Double::new(Verdict::Hashed);
    // Each word has 2 tokens; 7 tokens leave room for 5 content tokens: 2 whole words per chunk.
    let opts = CompressOptions {
        chunk_words: 10,
        chunk_tokens: 7,
        min_words: 0,
        explain: true,
        ..Default::default()
    };
    let r = run(&double, "abcdef ghijkl mnopqr stuvwx yzabcd", &opts);
    assert_eq!((r.chunks, r.unscored_words), (3, 0));
    assert!(r.words.unwrap().iter().all(|d| d.score.is_some()));
}

#[test]
fn short_texts_pass_through_untouched() {
    let double = Double::new(Verdict::KeepNone);
    let text = "  only   a few\r\n words\n";
    let r = run(&double, text, &CompressOptions::default());
    assert!(r.passthrough);
    assert_eq!((r.compressed.as_str(), r.original_words, r.kept_words, r.chunks), (text, 4, 4, 0));
    assert!(double.batches.borrow().is_empty(), "no model call under min_words");
}

#[test]
fn nothing_kept_means_passthrough() {
    let text = "the a the a ".repeat(20);
    let r = run(&Double::new(Verdict::KeepNone), &text, &CompressOptions::default());
    assert!(r.passthrough);
    assert_eq!((r.compressed, r.kept_words, r.compression_ratio), (text, 80, 1.0));
}

#[test]
fn invalid_options_are_errors() {
    let double = Double::new(Verdict::KeepAll);
    let bad = [
        CompressOptions { chunk_tokens: MAX_TOKENS + 1, ..Default::default() },
        CompressOptions { chunk_words: 0, ..Default::default() },
        CompressOptions { batch_size: 0, ..Default::default() },
        CompressOptions { chunk_tokens: 2, min_words: 0, ..Default::default() },
        CompressOptions { mode: Mode::Ratio(0.0), ..Default::default() },
        CompressOptions { mode: Mode::Threshold(f64::NAN), ..Default::default() },
    ];
    for opts in bad {
        assert!(
            matches!(compress(&double, "some words here", &opts), Err(kompress::Error::Invalid(_))),
            "{opts:?}"
        );
    }
}

#[test]
fn a_ten_megabyte_line_loses_no_word() {
    let line: String = (0..1_250_000).map(|i| if i % 7 == 0 { "42 " } else { "word " }).collect();
    let text = line.repeat(2);
    assert!(text.len() >= 10_000_000 && !text.contains('\n'));
    let r =
        run(&Double::new(Verdict::Hashed), &text, &CompressOptions { explain: false, ..Default::default() });
    assert_eq!(r.original_words, 2_500_000);
    assert_eq!(words(&r.compressed).count(), r.kept_words);
    assert!(r.kept_words < r.original_words && !r.compressed.contains('\n'));
    assert_eq!(r.compressed.matches("42").count(), text.matches("42").count(), "protected numbers survive");
}

#[test]
fn words_without_spaces_of_any_length_are_kept_unscored() {
    let double = Double::new(Verdict::KeepNone);
    let giant = "é".repeat(100_000);
    let text = format!("{} {giant} {}", "the ".repeat(40), "a ".repeat(40));
    let opts = CompressOptions { explain: true, ..Default::default() };
    let r = run(&double, &text, &opts);
    assert_eq!((r.unscored_words, r.kept_words, r.compressed.as_str()), (1, 1, giant.as_str()));
    let alone = run(&double, &giant, &CompressOptions { min_words: 1, ..opts });
    assert_eq!((alone.compressed.as_str(), alone.passthrough), (giant.as_str(), false));
}

#[test]
fn empty_whitespace_and_single_words_pass_through() {
    for text in ["", " ", "\n\n", " \r\n\t ", "word", "\u{feff}"] {
        for min_words in [0, 1, 64] {
            let opts = CompressOptions { min_words, explain: true, ..Default::default() };
            let r = run(&Double::new(Verdict::KeepNone), text, &opts);
            assert_eq!((r.compressed.as_str(), r.passthrough), (text, true), "{text:?} {min_words}");
            assert_eq!(r.words.unwrap().len(), r.original_words);
        }
    }
}
