//! `kompress compress`: drop the words the model finds unimportant, keeping the layout, protected
//! words, code blocks, tables and JSON intact.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use kompress::pipeline::words::words;
use kompress::pipeline::{
    compress_stream, default_batch_size, Compat, CompressFields, Event, Mode, ModeName as CompressMode,
    Passthrough, Progress, Reason, TokenCounter, WordDecision,
};
use kompress::{CompressOptions, CompressResult, Kompress};
use serde_json::{json, Value};

use crate::args::{decode, file_arg, read_input, ModelArgs};
use crate::llmlingua2::LlmLingua2Flags;

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
    /// says so and the output is that text.
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = at_least_one, conflicts_with_all = ["mode", "threshold", "ratio"])]
    pub target_tokens: Option<usize>,
    /// What token counts count (results, -v, --target-tokens): `cl100k` (OpenAI cl100k_base), `o200k`
    /// (o200k_base) or `words`.
    /// [default: cl100k]
    #[arg(long, value_name = "COUNTER")]
    pub count_tokens: Option<TokenCounter>,
    /// `headroom`: Headroom 0.42's output word for word (one space within a line, its table rule
    /// only, no code, code-line, Markdown or JSON protection, --ratio per chunk). `llmlingua2` (compress
    /// only): llmlingua 0.2.2's `compress_prompt_llmlingua2` output byte for byte, with an LLMLingua-2
    /// model (--ratio is its `rate`, --target-tokens its `target_token`).
    #[arg(long, value_parser = ["headroom", "llmlingua2", "off"])]
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

/// [`default_batch_size`] for a loaded model.
fn model_batch_size(model: &Kompress) -> usize {
    default_batch_size(!model.device().is_cpu(), model.precision().linears)
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

pub fn run(mut args: CompressArgs) -> anyhow::Result<()> {
    args.model.follow_compat(args.flags.compat.as_deref());
    let args = &args;
    if args.flags.compat.as_deref() == Some("llmlingua2") {
        return crate::llmlingua2::run(args);
    }
    if let Some(flag) = args.llmlingua2.set_flag() {
        anyhow::bail!("{flag} needs --compat llmlingua2");
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
                eprintln!("kompress: {}", crate::one_line(&e));
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
                eprintln!("kompress: {}", crate::one_line(&e));
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

pub(crate) fn open(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(match file_arg(path) {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    })
}

/// One corpus line as text: a JSON string, a JSON object's "text" string, or the raw line (a line that
/// is not a JSON string or object).
fn corpus_text(line: &[u8], lossy: bool) -> anyhow::Result<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let raw = decode(line.to_vec(), "the line", Some(lossy))?;
    Ok(match serde_json::from_str::<Value>(&raw) {
        Ok(Value::String(text)) => text,
        Ok(Value::Object(mut o)) => match o.remove("text") {
            Some(Value::String(text)) => text,
            Some(other) => anyhow::bail!("its \"text\" field is {}, not a string", json_kind(&other)),
            None => anyhow::bail!("a JSON object without a \"text\" field"),
        },
        _ => raw,
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn input_name(path: Option<&PathBuf>) -> String {
    file_arg(path).map_or("-".to_string(), |p| p.display().to_string())
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
