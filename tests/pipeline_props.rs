//! Invariants of the compression pipeline, checked on generated texts with model doubles (no model):
//! never a word lost, invented, reordered or moved to another line; the layout rules (indentation,
//! verbatim code and table lines, blank runs, line endings) hold exactly; keep-all reproduces the input;
//! protections hold; budgets are spent as documented; streaming, batching and chunk grouping change
//! nothing; results are deterministic. `Compat::Headroom` keeps Headroom's one-space output.

use std::cell::{Cell, RefCell};

use kompress::pipeline::words::words;
use kompress::pipeline::WordDecision;
use kompress::pipeline::{
    code::fenced_code, code_lines::code_lines, compress, compress_batch, compress_stream, protect::must_keep,
    table, ChunkScorer, Compat, Event, LineSet, Mode, Passthrough, Reason, TokenCounter, Unscored,
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
/// per-token outputs from [`Verdict`]; it records the batch sizes it was called with and the longest
/// word it was asked to tokenize. A token stands for at most 12 bytes (3 characters), which it says
/// through `max_token_bytes` unless `token_bytes` is `None`.
struct Double {
    verdict: Verdict,
    batches: RefCell<Vec<usize>>,
    longest: Cell<usize>,
    token_bytes: Option<usize>,
}

impl Double {
    fn new(verdict: Verdict) -> Self {
        Self { verdict, batches: RefCell::new(Vec::new()), longest: Cell::new(0), token_bytes: Some(12) }
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
            self.longest.set(self.longest.get().max(word.len()));
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

    fn max_token_bytes(&self) -> Option<usize> {
        self.token_bytes
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
        "-",
        "#",
        "{",
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
    let indent = select(vec!["", " ", "    ", "\t", "  \t"]);
    let line = (indent, line).prop_map(|(i, l)| format!("{i}{l}"));
    let table = proptest::collection::vec(select(vec!["ab  cd  ef", "1  2  3", "-rw  root  x.txt"]), 3..5)
        .prop_map(|rows| rows.join("\n"));
    let command = proptest::collection::vec(
        select(vec![
            "-rw-r--r-- 1 root root 496 Apr 27 2026 a.o",
            "drwxr-xr-x 2 root root 4096 May 20 2026 audit",
        ]),
        2..5,
    )
    .prop_map(|rows| format!("USER PID SIZE NAME WHEN\n{}", rows.join("\n")));
    let pipes = select(vec!["| a | b |\n|---|:-:|\n| 1 | 2 |", "x | y\n--- | ---\nthe | model"])
        .prop_map(String::from);
    let fence =
        proptest::collection::vec(select(vec!["    x = 1  ", "", "  not or  and", "\tdef f():\r"]), 0..4)
            .prop_map(|body| format!("```py\n{}\n```", body.join("\n")));
    let unclosed = Just("~~~\nthe rest is code".to_string());
    let blanks = select(vec!["", "", "  ", "\r", "\n\n"]).prop_map(String::from);
    proptest::collection::vec(
        prop_oneof![12 => line, 2 => table, 1 => command, 1 => pipes, 2 => fence, 1 => unclosed, 3 => blanks],
        0..30,
    )
    .prop_map(|lines| lines.join("\n"))
}

/// Options of either output (Headroom's or the layout), every mode but a token budget.
fn options() -> impl Strategy<Value = CompressOptions> {
    (1usize..40, 4usize..=MAX_CAP, 1usize..5, any::<[bool; 7]>(), 0u8..3).prop_map(
        |(
            chunk_words,
            chunk_tokens,
            batch_size,
            [protect_words, protect_tables, protect_code, protect_json, headroom, protect_code_lines, protect_markdown],
            mode,
        )| {
            CompressOptions {
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
                protect_code,
                protect_code_lines,
                protect_markdown,
                protect_json,
                count_tokens: TokenCounter::Words,
                compat: if headroom { Compat::Headroom } else { Compat::Off },
                explain: true,
                time_budget: None,
            }
        },
    )
}

fn headroom(opts: CompressOptions) -> CompressOptions {
    CompressOptions { compat: Compat::Headroom, ..opts }
}

fn layout(opts: CompressOptions) -> CompressOptions {
    CompressOptions { compat: Compat::Off, ..opts }
}

/// The lines kept byte for byte under `opts` (layout output only).
fn verbatim(text: &str, opts: &CompressOptions) -> (LineSet, LineSet, LineSet) {
    let on = |b: bool, f: fn(&str) -> LineSet| {
        if b && opts.compat == Compat::Off {
            f(text)
        } else {
            LineSet::default()
        }
    };
    (
        on(opts.protect_code, fenced_code),
        on(opts.protect_tables, table::tables),
        on(opts.protect_code_lines, code_lines),
    )
}

/// The layout output, rebuilt from the decisions by the rules as documented, line by line: a verbatim
/// line whole; another line as its leading whitespace and its kept words joined by one space, left out
/// without a kept word; one blank line where blank input lines lie between two output lines; each line
/// its own ending; a final ending exactly when the input has one.
fn expected_layout(text: &str, r: &CompressResult, opts: &CompressOptions) -> String {
    let (code, tables, code_lines) = verbatim(text, opts);
    let decisions = r.words.as_ref().expect("explain is on");
    let pieces: Vec<&str> = text.split('\n').collect();
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut blank_before: Vec<bool> = Vec::new();
    let mut blank = false;
    for (i, raw) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let body = if last { *raw } else { raw.strip_suffix('\r').unwrap_or(raw) };
        let kept: Vec<&str> =
            decisions.iter().filter(|d| d.line == i + 1 && d.kept).map(|d| d.word.as_str()).collect();
        let content = if code.contains(i) || tables.contains(i) || code_lines.contains(i) {
            Some(body.to_string())
        } else if !kept.is_empty() {
            Some(format!("{}{}", &raw[..raw.len() - raw.trim_start().len()], kept.join(" ")))
        } else {
            blank |= raw.trim().is_empty() && !lines.is_empty();
            None
        };
        if let Some(c) = content {
            blank_before.push(blank);
            blank = false;
            lines.push((i, c));
        }
    }
    let ending = |i: usize| match (i + 1 < pieces.len(), pieces[i].ends_with('\r')) {
        (false, _) => "",
        (true, true) => "\r\n",
        (true, false) => "\n",
    };
    let mut out = String::new();
    for (k, (i, content)) in lines.iter().enumerate() {
        if k > 0 {
            out.push_str(ending(lines[k - 1].0));
            if blank_before[k] {
                let b = (lines[k - 1].0 + 1..*i)
                    .find(|&j| pieces[j].trim().is_empty() && !code.contains(j) && !tables.contains(j))
                    .unwrap();
                out.push_str(ending(b));
            }
        }
        out.push_str(content);
    }
    if let (Some((i, _)), true) = (lines.last(), text.ends_with('\n')) {
        out.push_str(ending(*i));
    }
    out
}

/// One decision per input word, in order, on its line (counted from 1); a passthrough is the input.
fn check_decisions<'r>(text: &str, r: &'r CompressResult) -> &'r [WordDecision] {
    let decisions = r.words.as_ref().expect("explain is on");
    let input: Vec<_> = words(text).collect();
    assert_eq!(decisions.len(), input.len(), "one decision per input word");
    for (d, w) in decisions.iter().zip(&input) {
        assert_eq!((d.word.as_str(), d.line), (w.text, w.line + 1), "decisions follow the input");
        assert_eq!(d.kept, d.reason != Reason::Dropped);
    }
    if r.passthrough {
        assert_eq!(r.compressed, text);
    }
    decisions
}

/// Layout output: decisions follow the input, verbatim lines are kept without the model, and the
/// output is exactly the documented layout of the kept words.
fn check_layout(text: &str, r: &CompressResult, opts: &CompressOptions) {
    let decisions = check_decisions(text, r);
    if r.passthrough {
        return;
    }
    let input: Vec<_> = words(text).collect();
    let (code, tables, code_lines) = verbatim(text, opts);
    for (d, w) in decisions.iter().zip(&input) {
        let expected = if code.contains(w.line) {
            Some(Reason::Code)
        } else if tables.contains(w.line) {
            Some(Reason::Table)
        } else if code_lines.contains(w.line) {
            Some(Reason::CodeLine)
        } else {
            None
        };
        if let Some(reason) = expected {
            assert_eq!((d.reason, d.score), (reason, None), "{d:?}");
        } else {
            assert!(!matches!(d.reason, Reason::Code | Reason::Table | Reason::CodeLine), "{d:?}");
        }
    }
    assert_eq!(r.compressed, expected_layout(text, r, opts));
    assert_eq!(r.kept_words, decisions.iter().filter(|d| d.kept).count());
    assert_eq!(words(&r.compressed).count(), r.kept_words);
}

/// Either output's checks.
fn check(text: &str, r: &CompressResult, opts: &CompressOptions) {
    match opts.compat {
        Compat::Headroom => check_line_true(text, r),
        Compat::Off => check_layout(text, r, opts),
    }
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
    let decisions = check_decisions(text, r);
    if r.passthrough {
        assert!(decisions.iter().all(|d| d.reason == Reason::Passthrough));
        return;
    }
    let kept: Vec<_> = decisions.iter().filter(|d| d.kept).collect();
    let out: Vec<_> = words(&r.compressed).collect();
    assert_eq!(out.len(), kept.len(), "output words are the kept words");
    assert_eq!(r.kept_words, kept.len());
    assert_eq!(
        (r.original_tokens, r.compressed_tokens),
        (r.original_words, r.kept_words),
        "counted in words"
    );
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
        check(&text, &r, &opts);
        prop_assert_eq!(r.original_words, words(&text).count());
    }

    #[test]
    fn headroom_output_is_one_space_within_a_line(text in text(), opts in options()) {
        let opts = headroom(opts);
        check_line_true(&text, &run(&Double::new(Verdict::Hashed), &text, &opts));
    }

    #[test]
    fn streamed_pieces_make_the_results(texts in proptest::collection::vec(text(), 1..4), opts in options()) {
        let double = Double::new(Verdict::Hashed);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut pieces = vec![String::new(); texts.len()];
        let mut done = Vec::new();
        compress_stream(&double, &refs, &opts, |e| {
            match e {
                Event::Output { text, piece } => {
                    assert_eq!(done.len(), text, "pieces come for the first unfinished text");
                    pieces[text].push_str(piece);
                }
                Event::Done { text, result } => {
                    assert_eq!(done.len(), text, "texts finish in order");
                    done.push(result);
                }
                Event::Progress(_) => {}
            }
            Ok(())
        }).unwrap();
        prop_assert_eq!(&done, &compress_batch(&double, &refs, &opts).unwrap());
        for (p, r) in pieces.iter().zip(&done) {
            prop_assert_eq!(p, &r.compressed);
        }
    }

    #[test]
    fn ratio_counts_protected_words_first(text in text(), opts in options(), ratio in 0.05f64..=1.0) {
        let opts = CompressOptions { mode: Mode::Ratio(ratio), ..layout(opts) };
        let r = run(&Double::new(Verdict::Hashed), &text, &opts);
        check_layout(&text, &r, &opts);
        if r.passthrough {
            return Ok(());
        }
        let d = r.words.unwrap();
        let forced = d.iter().filter(|d| d.kept && d.reason != Reason::Model).count();
        let chosen = d.iter().filter(|d| d.reason == Reason::Model).count();
        let candidates = d.iter().filter(|d| d.reason == Reason::Model || d.reason == Reason::Dropped).count();
        let budget = ((r.original_words as f64 * ratio).floor() as usize).max(1);
        prop_assert_eq!(chosen, budget.saturating_sub(forced).min(candidates));
        // The words kept whatever the model says over the ratio: said, with their share.
        prop_assert_eq!(r.over_budget, forced > budget);
        prop_assert_eq!(r.min_ratio, (forced > budget).then(|| forced as f64 / r.original_words as f64));
        prop_assert_eq!(r.scored_words + r.unscored_words, d.iter().filter(|d| d.score.is_some() || d.reason == Reason::Unscored).count());
        let worst_chosen = d.iter().filter(|d| d.reason == Reason::Model).filter_map(|d| d.score).fold(f32::INFINITY, f32::min);
        prop_assert!(d.iter().filter(|d| d.reason == Reason::Dropped).all(|d| d.score.unwrap() <= worst_chosen));
    }

    #[test]
    fn target_tokens_fit_whenever_they_can(text in text(), opts in options(), budget in 1usize..120, llm in any::<bool>()) {
        let count_tokens = if llm { TokenCounter::Cl100k } else { TokenCounter::Words };
        let opts = CompressOptions { mode: Mode::TargetTokens(budget), count_tokens, ..layout(opts) };
        let r = run(&Double::new(Verdict::Hashed), &text, &opts);
        check_layout(&text, &r, &opts);
        prop_assert_eq!(r.compressed_tokens, count_tokens.count(&r.compressed).unwrap());
        prop_assert_eq!(r.original_tokens, count_tokens.count(&text).unwrap());
        match r.passthrough_reason {
            Some(Passthrough::FitsBudget) => prop_assert!(r.original_tokens <= budget),
            Some(Passthrough::Structured) => prop_assert_eq!(r.over_budget, r.original_tokens > budget),
            Some(other) => prop_assert!(false, "{:?}", other),
            None if r.over_budget => {
                // Not achievable: the output is the protected text alone, and it is over the budget.
                prop_assert!(r.words.unwrap().iter().all(|d| d.reason != Reason::Model));
                prop_assert!(r.compressed_tokens > budget);
            }
            None => prop_assert!(r.compressed_tokens <= budget, "{} > {}", r.compressed_tokens, budget),
        }
    }

    #[test]
    fn every_word_is_scored_once_or_kept_unscored(text in text(), opts in options()) {
        let r = run(&Double::new(Verdict::Hashed), &text, &CompressOptions { protect_words: false, ..opts.clone() });
        // A word is unscored when it fills the token room alone: surely when it is longer, maybe
        // when it fills the room exactly (the reference then carries it and keeps it unscored).
        let room = opts.chunk_tokens - 2;
        let unseen = [Reason::Passthrough, Reason::Structured, Reason::Code, Reason::Table, Reason::CodeLine];
        for d in r.words.unwrap().iter().filter(|d| !unseen.contains(&d.reason) || d.score.is_some()) {
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
        let r = run(&Double::new(Verdict::KeepAll), &text, &headroom(opts.clone()));
        check_line_true(&text, &r);
        let expected = if r.original_words == 0 { text.clone() } else { words_line_by_line(&text) };
        prop_assert_eq!(r.compressed, expected);
        // The layout of a text with single spaces between words and no blank line is the text itself.
        let tidy = |l: &str| format!("{}{}", &l[..l.len() - l.trim_start().len()], l.split_whitespace().collect::<Vec<_>>().join(" "));
        let tidy: String = text.split('\n').filter(|l| !l.trim().is_empty()).map(tidy).collect::<Vec<_>>().join("\n");
        let r = run(&Double::new(Verdict::KeepAll), &tidy, &layout(opts));
        prop_assert_eq!(r.compressed, tidy);
    }

    #[test]
    fn protected_words_and_table_rows_survive(text in text(), opts in options()) {
        let opts = CompressOptions { protect_words: true, protect_tables: true, protect_code: true, mode: Mode::Threshold(0.5), ..opts };
        let r = run(&Double::new(Verdict::KeepNone), &text, &opts);
        check(&text, &r, &opts);
        let tables = match opts.compat {
            Compat::Headroom => table::headroom_tables(&text),
            Compat::Off => table::tables(&text).union(fenced_code(&text)).union(verbatim(&text, &opts).2),
        };
        for d in r.words.as_ref().unwrap() {
            if must_keep(&d.word) || tables.contains(d.line - 1) {
                prop_assert!(d.kept, "{:?}", d);
            } else if !r.passthrough {
                prop_assert!(!d.kept || matches!(d.reason, Reason::Unscored | Reason::Markdown), "{:?}", d);
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
    fn bounded_tokenization_changes_nothing(text in text(), opts in options()) {
        // Words are cut, and words past the cap left out, before tokenizing: every decision and
        // score is the same as with every word tokenized whole.
        let opts = CompressOptions { explain: true, ..opts };
        let whole = Double { token_bytes: None, ..Double::new(Verdict::Hashed) };
        prop_assert_eq!(run(&Double::new(Verdict::Hashed), &text, &opts), run(&whole, &text, &opts));
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
    assert_eq!(r.passthrough_reason, Some(Passthrough::NothingKept));
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
        CompressOptions { mode: Mode::Threshold(f64::INFINITY), ..Default::default() },
        CompressOptions { mode: Mode::Threshold(1.5), ..Default::default() },
        CompressOptions { mode: Mode::Threshold(-0.1), ..Default::default() },
        CompressOptions { mode: Mode::TargetTokens(10), compat: Compat::Headroom, ..Default::default() },
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
    let opts = CompressOptions { explain: false, count_tokens: TokenCounter::Cl100k, ..Default::default() };
    let r = run(&Double::new(Verdict::Hashed), &text, &opts);
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
fn an_over_long_word_is_not_tokenized_whole_and_comes_back_byte_identical_and_marked() {
    let double = Double::new(Verdict::KeepNone);
    let giant = "é".repeat(5_000_000);
    let text = format!("{}\n{giant}\n{}", "the ".repeat(70), "a ".repeat(70));
    let opts = CompressOptions { explain: true, protect_words: false, ..Default::default() };
    let r = run(&double, &text, &opts);
    assert_eq!((r.unscored_words, r.kept_words, r.compressed.as_str()), (1, 1, giant.as_str()));
    // At most a prefix of twice the cap's bytes, and the other words, reach the tokenizer.
    let limit = 2 * (opts.chunk_tokens + 1) * 12;
    assert!((1..=limit).contains(&double.longest.get()), "{}", double.longest.get());
    let marked: Vec<_> = r.words.unwrap().into_iter().filter(|d| d.reason == Reason::Unscored).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(
        (marked[0].word.len(), marked[0].unscored, marked[0].score),
        (giant.len(), Some(Unscored::TooLong), None)
    );
    let json = serde_json::to_value(&marked[0]).unwrap();
    assert_eq!((json["reason"].as_str(), json["unscored"].as_str()), (Some("unscored"), Some("too_long")));
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
