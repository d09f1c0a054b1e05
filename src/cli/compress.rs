//! `kompress compress`: drop the words the model finds unimportant, keeping the layout, protected
//! words, code blocks, tables and JSON intact.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kompress::pipeline::words::words;
use kompress::pipeline::{
    compress_stream, default_batch_size, Compat, Event, Mode, Passthrough, Progress, Reason, TokenCounter,
    WordDecision,
};
use kompress::{CompressOptions, CompressResult, Kompress};
use serde_json::{json, Value};

use super::args::{corpus_text, input_name, open, read_input};
use super::compress_args::CompressArgs;

/// [`default_batch_size`] for a loaded model.
fn model_batch_size(model: &Kompress) -> usize {
    default_batch_size(!model.device().is_cpu(), model.precision().linears)
}

pub fn run(mut args: CompressArgs) -> anyhow::Result<()> {
    args.model.follow_compat(args.flags.compat.as_deref());
    let args = &args;
    match args.flags.compat.as_deref() {
        Some("llmlingua2") => return super::llmlingua2::run(args),
        Some("ctxprune") => return super::ctxprune::run(args),
        _ => {}
    }
    if let Some(flag) = args.llmlingua2.set_flag() {
        anyhow::bail!("{flag} needs --compat llmlingua2");
    }
    if let Some(flag) = args.ctxprune.set_flag() {
        anyhow::bail!("{flag} needs --compat ctxprune");
    }
    // Checked before the model loads; the batch size then follows its device.
    let counter = args.flags.options(args.explain, 1)?.count_tokens;
    let inputs = args.inputs();
    if args.jsonl {
        return run_jsonl(args, &inputs, counter);
    }
    let mut read = Vec::new();
    let mut unreadable = 0;
    for path in inputs.iter().copied() {
        match read_input(path, Some(args.lossy)) {
            Ok(text) => read.push((input_name(path), text)),
            Err(e) => {
                unreadable += 1;
                eprintln!("kompress: {}", super::one_line(&e));
            }
        }
    }
    if !read.is_empty() {
        let model = load_counting(args, counter)?;
        let opts = args.flags.options(args.explain, model_batch_size(&model))?;
        let mut printer = Printer::new(args, &opts, &model, &read, inputs.len() > 1);
        let refs: Vec<&str> = read.iter().map(|(_, t)| t.as_str()).collect();
        compress_stream(&model, &refs, &opts, |event| printer.event(event).map_err(stdout_error))?;
        printer.out.flush().map_err(stdout_error)?;
        printer.budgets.report(&opts, args.say());
    }
    match unreadable {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} inputs could not be read", inputs.len()),
    }
}

/// Loads the model while another thread builds the token counter's vocabulary (else built at the
/// first count, after the model's work); with `-v`, says how long that took.
fn load_counting(args: &CompressArgs, counter: TokenCounter) -> anyhow::Result<Kompress> {
    let counter_built = std::thread::spawn(move || {
        let started = Instant::now();
        counter.preload();
        started.elapsed().as_secs_f64()
    });
    let model = args.model.load()?;
    let seconds = counter_built.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    if args.model.verbose {
        eprintln!("kompress: {counter} token counter built in {seconds:.3} s on its own thread");
    }
    Ok(model)
}

fn stdout_error(source: std::io::Error) -> kompress::Error {
    kompress::Error::Io { path: "standard output".into(), source }
}

/// Writes results as they come: plain output piece by piece, or one JSON object per text.
struct Printer<'r> {
    args: &'r CompressArgs,
    opts: &'r CompressOptions,
    model: &'r Kompress,
    inputs: &'r [(String, String)],
    headers: bool,
    /// The text whose header was written.
    started: Option<usize>,
    /// Whether the output so far ends with a line ending (or is empty).
    at_line_start: bool,
    out: std::io::StdoutLock<'static>,
    bar: ProgressBar,
    started_at: Instant,
    budgets: Budgets,
}

impl<'r> Printer<'r> {
    fn new(
        args: &'r CompressArgs,
        opts: &'r CompressOptions,
        model: &'r Kompress,
        inputs: &'r [(String, String)],
        headers: bool,
    ) -> Self {
        Self {
            args,
            opts,
            model,
            inputs,
            headers,
            started: None,
            at_line_start: true,
            out: std::io::stdout().lock(),
            bar: ProgressBar::new(opts.chunk_words.saturating_mul(opts.batch_size)),
            started_at: Instant::now(),
            budgets: Budgets::default(),
        }
    }

    fn event(&mut self, event: Event<'_>) -> std::io::Result<()> {
        match event {
            Event::Progress(p) => self.bar.show(p),
            // --explain shows every word once the text is done; --json prints the whole result.
            Event::Output { .. } if self.args.explain || self.args.json => {}
            Event::Output { text, piece } => {
                self.start(text)?;
                self.write(piece)?;
            }
            Event::Done { text, result } => self.done(text, &result)?,
        }
        Ok(())
    }

    /// Writes the `==> name <==` header before a text's first output, when there are several.
    fn start(&mut self, text: usize) -> std::io::Result<()> {
        if self.started == Some(text) {
            return Ok(());
        }
        self.started = Some(text);
        if self.headers {
            self.bar.clear();
            if !self.at_line_start {
                writeln!(self.out)?;
            }
            // As `head` does: a blank line before every header but the first.
            if text > 0 {
                writeln!(self.out)?;
            }
            writeln!(self.out, "==> {} <==", self.inputs[text].0)?;
        }
        Ok(())
    }

    fn write(&mut self, piece: &str) -> std::io::Result<()> {
        self.bar.clear();
        self.out.write_all(piece.as_bytes())?;
        self.at_line_start = piece.ends_with('\n') || (piece.is_empty() && self.at_line_start);
        Ok(())
    }

    fn done(&mut self, text: usize, result: &CompressResult) -> std::io::Result<()> {
        self.bar.clear();
        let name = &self.inputs[text].0;
        notes(name, result, self.opts, self.args.say(), self.started_at.elapsed().as_secs_f64());
        self.budgets.count(name, result);
        if self.args.json {
            let line = json_line(self.args, self.opts, self.model, result, &[("input", json!(name))]);
            return writeln!(self.out, "{line}");
        }
        self.start(text)?;
        if let (Some(words), true) = (&result.words, self.args.explain) {
            let shown = explained(&self.inputs[text].1, words, std::io::stdout().is_terminal());
            self.write(&shown)?;
        }
        // The output ends with a line ending exactly when the input does; an annotated view, Headroom's
        // output (which never ends with one) and a header to come get one.
        let more = text + 1 < self.inputs.len() && self.headers;
        if !self.at_line_start && (self.args.explain || self.opts.compat == Compat::Headroom || more) {
            self.write("\n")?;
        }
        Ok(())
    }
}

/// Streams a corpus: every line is one text; results are printed as their batch completes, so memory
/// holds one batch of texts. A file that cannot be opened is reported and skipped.
fn run_jsonl(args: &CompressArgs, inputs: &[Option<&PathBuf>], counter: TokenCounter) -> anyhow::Result<()> {
    let model = load_counting(args, counter)?;
    let opts = &args.flags.options(args.explain, model_batch_size(&model))?;
    let mut out = std::io::stdout().lock();
    let mut unreadable = 0;
    let mut passed = PassedThrough::default();
    let mut budgets = Budgets::default();
    for &path in inputs {
        let name = input_name(path);
        let reader = match open(path) {
            Ok(r) => r,
            Err(e) => {
                unreadable += 1;
                eprintln!("kompress: {}", super::one_line(&e));
                continue;
            }
        };
        let mut lines = reader.split(b'\n').enumerate().peekable();
        while lines.peek().is_some() {
            let batch: Vec<(usize, Vec<u8>)> = lines
                .by_ref()
                .take(opts.batch_size)
                .map(|(i, line)| line.map(|l| (i + 1, l)).with_context(|| format!("cannot read {name}")))
                .collect::<anyhow::Result<_>>()?;
            let texts = batch
                .iter()
                .map(|(n, line)| corpus_text(line, args.lossy).with_context(|| format!("{name}, line {n}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let started = Instant::now();
            let results = kompress::compress_batch(&model, &refs, opts)?;
            // The texts of a batch share its forward passes, so each is done when the batch is.
            let seconds = started.elapsed().as_secs_f64();
            for ((n, _), result) in batch.iter().zip(&results) {
                let say = if args.say() == Say::Verbose { Say::Verbose } else { Say::Quiet };
                let text = format!("{name}, line {n}");
                notes(&text, result, opts, say, seconds);
                budgets.count(&text, result);
                passed.count(result);
                let extra = [("input", json!(name)), ("line", json!(n))];
                writeln!(out, "{}", json_line(args, opts, &model, result, &extra))?;
            }
        }
    }
    out.flush()?;
    if args.say() == Say::Passthrough {
        passed.report();
    }
    budgets.report(opts, args.say());
    match unreadable {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} inputs could not be read", inputs.len()),
    }
}

/// A corpus's texts that passed through, by reason: one line at the end, not one per text.
#[derive(Default)]
struct PassedThrough {
    texts: usize,
    by_reason: std::collections::BTreeMap<&'static str, usize>,
}

impl PassedThrough {
    fn count(&mut self, r: &CompressResult) {
        self.texts += 1;
        let why = match r.passthrough_reason {
            None => return,
            Some(Passthrough::Short) => "under --min-words",
            Some(Passthrough::NothingKept) => "nothing kept",
            Some(Passthrough::Structured) => "JSON",
            Some(Passthrough::FitsBudget) => "within --target-tokens",
        };
        *self.by_reason.entry(why).or_default() += 1;
    }

    fn report(&self) {
        let passed: usize = self.by_reason.values().sum();
        if passed > 0 {
            let why: Vec<String> = self.by_reason.iter().map(|(why, n)| format!("{n} {why}")).collect();
            eprintln!(
                "kompress: {passed} of {} texts passed through unchanged ({}; -q: say nothing)",
                self.texts,
                why.join(", ")
            );
        }
    }
}

/// One line of --json or --jsonl: the result as the library writes it, with the run's model and
/// device and `extra` fields.
fn json_line(
    args: &CompressArgs,
    opts: &CompressOptions,
    model: &Kompress,
    result: &CompressResult,
    extra: &[(&str, Value)],
) -> String {
    let mut v = result.to_json_with_model(opts, &args.model.model, model);
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    v.to_string()
}

/// The budgets a run's texts could not meet, and the texts the time budget cut short: one line each
/// at the end of the run, however many texts (a corpus must not flood stderr).
#[derive(Default)]
struct Budgets {
    texts: usize,
    /// Texts over --ratio / --target-tokens: the first's name and result, and how many.
    over: Option<(String, CompressResult)>,
    over_texts: usize,
    /// The largest min_ratio / min_target_tokens among them.
    worst_ratio: f64,
    worst_tokens: usize,
    /// Texts the time budget cut short: the first's name, how many, and their words.
    cut: Option<String>,
    cut_texts: usize,
    /// Words scored and words in all, over every text of the run.
    scored_words: usize,
    words: usize,
}

impl Budgets {
    fn count(&mut self, name: &str, r: &CompressResult) {
        self.texts += 1;
        self.scored_words += r.scored_words;
        self.words += r.original_words;
        if r.over_budget {
            self.over_texts += 1;
            self.worst_ratio = self.worst_ratio.max(r.min_ratio.unwrap_or(0.0));
            self.worst_tokens = self.worst_tokens.max(r.min_target_tokens.unwrap_or(0));
            if self.over.is_none() {
                let mut first = r.clone();
                first.compressed = String::new();
                first.words = None;
                self.over = Some((name.to_string(), first));
            }
        }
        if r.unscored_reason.is_some() {
            self.cut_texts += 1;
            self.cut.get_or_insert_with(|| name.to_string());
        }
    }

    /// The notes: over budget always, the time budget but with -q.
    fn report(&self, opts: &CompressOptions, say: Say) {
        if let Some((name, r)) = &self.over {
            eprintln!("kompress: {}", self.over_note(name, r, opts));
        }
        if let (Some(name), Some(budget), false) = (&self.cut, opts.time_budget, say == Say::Quiet) {
            let ms = budget.as_millis();
            let what = match self.cut_texts {
                1 if self.texts == 1 => format!("{name}: "),
                1 => format!("{name} (1 of {} texts): ", self.texts),
                n => format!("{n} of {} texts, from {name}: ", self.texts),
            };
            eprintln!(
                "kompress: {what}--time-budget-ms {ms} ran out: {} of {} words scored, the rest kept as they are (-q: say nothing)",
                self.scored_words, self.words
            );
        }
    }

    fn over_note(&self, name: &str, r: &CompressResult, opts: &CompressOptions) -> String {
        let several = match self.over_texts {
            1 => String::new(),
            n => format!(" (and {} more of {} texts)", n - 1, self.texts),
        };
        match opts.mode {
            Mode::TargetTokens(n) => {
                let what = match r.passthrough_reason {
                    Some(Passthrough::Structured) => "the JSON input, passed through,",
                    _ => "its protected text alone",
                };
                let worst = match self.over_texts {
                    1 => String::new(),
                    _ => format!("; the largest min_target_tokens is {}", self.worst_tokens),
                };
                format!(
                    "{name}{several}: {what} has {} {} tokens, more than --target-tokens {n} (min_target_tokens {}{worst})",
                    r.compressed_tokens, r.token_counter, r.compressed_tokens
                )
            }
            Mode::Ratio(ratio) => {
                let what = match r.passthrough_reason {
                    Some(Passthrough::Structured) => "the JSON input, passed through whole,",
                    _ if r.unscored_reason.is_some() => "what it keeps whatever the model says (protected, or unscored for --time-budget-ms)",
                    _ => "what it keeps whatever the model says (protected words, code, code-like and table lines, markup)",
                };
                let min = r.min_ratio.unwrap_or(1.0);
                let worst = match self.over_texts {
                    1 => String::new(),
                    _ => format!("; the largest min_ratio is {:.3}", self.worst_ratio),
                };
                format!(
                    "{name}{several}: {what} is {:.1}% of its words, more than --ratio {ratio} (min_ratio {min:.3}{worst})",
                    100.0 * min
                )
            }
            _ => format!("{name}{several}: over budget"),
        }
    }
}

/// What stderr says about a result, with -v, and when it passed through (over-budget and time-budget
/// notes come once per run, from [`Budgets`]).
fn notes(name: &str, r: &CompressResult, opts: &CompressOptions, say: Say, seconds: f64) {
    match say {
        Say::Verbose => eprintln!("kompress: {}", summary(name, r, seconds)),
        Say::Passthrough => {
            if let Some(why) = passed_through(r, opts) {
                eprintln!("kompress: {name}: passed through unchanged: {why} (-q: say nothing)");
            }
        }
        Say::Quiet => {}
    }
}

/// What stderr says about each text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Say {
    /// Nothing but errors and over-budget notes (`-q`).
    Quiet,
    /// One line for a text that passes through unchanged (the default).
    Passthrough,
    /// A summary line for every text, passthrough included (`-v`).
    Verbose,
}

impl CompressArgs {
    fn say(&self) -> Say {
        match (self.quiet, self.model.verbose) {
            (true, _) => Say::Quiet,
            (false, true) => Say::Verbose,
            (false, false) => Say::Passthrough,
        }
    }
}

/// Why a text came back unchanged, in the flags' words; `None` when it did not.
fn passed_through(r: &CompressResult, opts: &CompressOptions) -> Option<String> {
    Some(match r.passthrough_reason? {
        Passthrough::Short => {
            format!("{} words, fewer than --min-words {}", r.original_words, opts.min_words)
        }
        Passthrough::NothingKept => "the model kept no word".to_string(),
        Passthrough::Structured => "the whole input is JSON (--no-protect-json compresses it)".to_string(),
        Passthrough::FitsBudget => {
            let budget = match opts.mode {
                Mode::TargetTokens(n) => n,
                _ => r.original_tokens,
            };
            format!("{} {} tokens already fit --target-tokens {budget}", r.original_tokens, r.token_counter)
        }
    })
}

fn summary(name: &str, r: &CompressResult, seconds: f64) -> String {
    let why = match r.passthrough_reason {
        None => "",
        Some(Passthrough::Short) => ", passed through (under --min-words)",
        Some(Passthrough::NothingKept) => ", passed through (nothing kept)",
        Some(Passthrough::Structured) => {
            ", passed through (the whole input is JSON; --no-protect-json compresses it)"
        }
        Some(Passthrough::FitsBudget) => ", passed through (fits --target-tokens)",
    };
    let cut = match r.unscored_reason {
        Some(_) => ", the time budget ran out",
        None => "",
    };
    let over = match (r.min_ratio, r.min_target_tokens) {
        (Some(min), _) => format!(", over --ratio (min_ratio {min:.3})"),
        (None, Some(min)) => format!(", over --target-tokens (min_target_tokens {min})"),
        (None, None) => String::new(),
    };
    format!(
        "{name}: {} -> {} words, {} -> {} {} tokens ({:.1}% kept, {} saved), {} {}, {} words scored{cut}, {} unscored{why}{over} in {seconds:.2} s",
        r.original_words,
        r.kept_words,
        r.original_tokens,
        r.compressed_tokens,
        r.token_counter,
        100.0 * r.compression_ratio,
        r.tokens_saved,
        r.chunks,
        if r.chunks == 1 { "chunk" } else { "chunks" },
        r.scored_words,
        r.unscored_words,
    )
}

/// The input with every word marked with its fate: ANSI colors on a terminal (dropped words struck
/// through in red, protected yellow, table cyan, code blue, markup green, unscored magenta), else
/// `[-dropped-]`.
/// What lies between words (indentation, alignment, blank lines, line endings) is the input's own.
fn explained(text: &str, decisions: &[WordDecision], color: bool) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut from = 0;
    for (w, d) in words(text).zip(decisions) {
        let at = w.text.as_ptr() as usize - text.as_ptr() as usize;
        out.push_str(&text[from..at]);
        from = at + w.text.len();
        let style = match d.reason {
            Reason::Dropped => "9;31",
            Reason::Protected => "33",
            Reason::Table => "36",
            Reason::Code | Reason::CodeLine => "34",
            Reason::Markdown => "32",
            Reason::Unscored => "35",
            Reason::Model | Reason::Passthrough | Reason::Structured => "",
        };
        match (color, d.reason) {
            (true, _) if !style.is_empty() => out.push_str(&format!("\x1b[{style}m{}\x1b[0m", d.word)),
            (false, Reason::Dropped) => out.push_str(&format!("[-{}-]", d.word)),
            _ => out.push_str(&d.word),
        }
    }
    out.push_str(&text[from..]);
    out
}

/// A one-line progress bar on stderr, drawn only on a terminal and for inputs needing several passes.
struct ProgressBar {
    enabled: bool,
    min_words: usize,
    drawn: bool,
}

impl ProgressBar {
    fn new(words_per_pass: usize) -> Self {
        Self { enabled: std::io::stderr().is_terminal(), min_words: words_per_pass, drawn: false }
    }

    fn show(&mut self, p: Progress) {
        if !self.enabled || p.words_total <= self.min_words || p.words_done >= p.words_total {
            return;
        }
        let done = p.words_done * 30 / p.words_total.max(1);
        eprint!("\r[{}{}] {}/{} words", "#".repeat(done), ".".repeat(30 - done), p.words_done, p.words_total);
        self.drawn = true;
    }

    fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}
