//! `kompress compress`: drop the words the model finds unimportant, keeping lines, protected words
//! and tables intact.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kompress::pipeline::{compress_batch_with_progress, Mode, Progress, Reason, WordDecision};
use kompress::{CompressOptions, CompressResult, Kompress};
use serde_json::{json, Value};

use crate::args::{decode, file_arg, read_input, ModelArgs};

#[derive(Args, Debug)]
pub struct CompressArgs {
    /// Texts to compress: files, or `-`/nothing for standard input. Several files run as one batch.
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Keep rule: `card` (the model card's: token head argmax, or a borderline token in an important
    /// span), `threshold` (final score above --threshold), `ratio` (top --ratio words per chunk).
    #[arg(long, value_enum)]
    pub mode: Option<ModeName>,
    /// Final-score threshold of `--mode threshold` (0.5 is Headroom's ONNX rule); implies that mode.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Share of each chunk's words to keep, in (0, 1]; implies `--mode ratio`.
    #[arg(long)]
    pub ratio: Option<f64>,
    /// Most words per chunk.
    #[arg(long, default_value_t = 350)]
    pub chunk_words: usize,
    /// Most tokens per chunk, [CLS]/[SEP] included (at most the model's maximum).
    #[arg(long, default_value_t = 512)]
    pub chunk_tokens: usize,
    /// Chunks per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Texts with fewer words pass through unchanged.
    #[arg(long, default_value_t = 64)]
    pub min_words: usize,
    /// Let the model drop must-keep words and table rows too.
    #[arg(long)]
    pub no_protect: bool,
    /// Let the model drop must-keep words (numbers, paths, identifiers, negations, and/or...).
    #[arg(long)]
    pub no_protect_words: bool,
    /// Let the model drop words of table rows.
    #[arg(long)]
    pub no_protect_tables: bool,
    /// Print one JSON object per input: {compressed, original_words, kept_words, compression_ratio,
    /// tokens_saved, chunks, mode, model, device, dtype, ...}.
    #[arg(long, conflicts_with = "jsonl")]
    pub json: bool,
    /// Corpus mode: every input line is one text (a JSON string, a JSON object with a "text" field,
    /// or raw text); print one JSON result per line, streaming.
    #[arg(long)]
    pub jsonl: bool,
    /// Show every word with its fate: kept by the model, protected, table, unscored, or dropped
    /// (colored on a terminal, `[-dropped-]` otherwise; a "words" list with --json/--jsonl).
    /// Colors: dropped red and struck through, protected yellow, table cyan, unscored magenta, kept by
    /// the model or passed through plain.
    #[arg(long)]
    pub explain: bool,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    pub lossy: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeName {
    Card,
    Threshold,
    Ratio,
}

impl CompressArgs {
    fn options(&self) -> anyhow::Result<CompressOptions> {
        let mode = match (self.mode, self.threshold, self.ratio) {
            (_, Some(_), Some(_)) => anyhow::bail!("--threshold and --ratio exclude each other"),
            (None | Some(ModeName::Ratio), None, Some(r)) => Mode::Ratio(r),
            (None | Some(ModeName::Threshold), Some(t), None) => Mode::Threshold(t),
            (Some(ModeName::Threshold), None, None) => Mode::Threshold(0.5),
            (None | Some(ModeName::Card), None, None) => Mode::Card,
            (Some(ModeName::Ratio), None, None) => anyhow::bail!("--mode ratio needs --ratio R"),
            (Some(m), _, _) => anyhow::bail!(
                "--threshold goes with --mode threshold and --ratio with --mode ratio, not --mode {}",
                format!("{m:?}").to_lowercase()
            ),
        };
        Ok(CompressOptions {
            mode,
            chunk_words: self.chunk_words,
            chunk_tokens: self.chunk_tokens,
            batch_size: self.batch_size,
            min_words: self.min_words,
            protect_words: !(self.no_protect || self.no_protect_words),
            protect_tables: !(self.no_protect || self.no_protect_tables),
            explain: self.explain,
        })
    }
}

pub fn run(args: CompressArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let inputs: Vec<Option<&PathBuf>> = match args.inputs.is_empty() {
        true => vec![None],
        false => args.inputs.iter().map(Some).collect(),
    };
    if args.jsonl {
        return run_jsonl(&args, &opts, &inputs);
    }
    let texts =
        inputs.iter().map(|p| read_input(*p, Some(args.lossy))).collect::<anyhow::Result<Vec<_>>>()?;
    let model = args.model.load()?;
    let started = Instant::now();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut bar = ProgressBar::new(opts.chunk_words * opts.batch_size);
    let results = compress_batch_with_progress(&model, &refs, &opts, |p| bar.show(p))?;
    bar.clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    for (path, result) in inputs.iter().zip(&results) {
        let name = input_name(*path);
        if args.model.verbose {
            eprintln!("{}", summary(&name, result, seconds));
        }
        if args.json {
            writeln!(out, "{}", json_line(&args, &opts, &model, result, &[("input", json!(name))]))?;
            continue;
        }
        if inputs.len() > 1 {
            writeln!(out, "==> {name} <==")?;
        }
        let text = match (&result.words, args.explain) {
            (Some(words), true) => explained(words, std::io::stdout().is_terminal()),
            _ => result.compressed.clone(),
        };
        write!(out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Streams a corpus: every line is one text; results are printed as their batch completes, so memory
/// holds one batch of texts.
fn run_jsonl(args: &CompressArgs, opts: &CompressOptions, inputs: &[Option<&PathBuf>]) -> anyhow::Result<()> {
    let model = args.model.load()?;
    let mut out = std::io::stdout().lock();
    for &path in inputs {
        let name = input_name(path);
        let mut lines = open(path)?.split(b'\n').enumerate().peekable();
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
            let results = kompress::compress_batch(&model, &refs, opts)?;
            for ((n, _), result) in batch.iter().zip(&results) {
                let extra = [("input", json!(name)), ("line", json!(n))];
                writeln!(out, "{}", json_line(args, opts, &model, result, &extra))?;
            }
        }
    }
    Ok(())
}

fn open(path: Option<&PathBuf>) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(match file_arg(path) {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    })
}

/// One corpus line as text: a JSON string, a JSON object's "text", or the raw line.
fn corpus_text(line: &[u8], lossy: bool) -> anyhow::Result<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let raw = decode(line.to_vec(), "the line", Some(lossy))?;
    Ok(match serde_json::from_str::<Value>(&raw) {
        Ok(Value::String(text)) => text,
        Ok(Value::Object(mut o)) => match o.remove("text") {
            Some(Value::String(text)) => text,
            _ => raw,
        },
        _ => raw,
    })
}

fn input_name(path: Option<&PathBuf>) -> String {
    file_arg(path).map_or("-".to_string(), |p| p.display().to_string())
}

/// One line of --json or --jsonl: the result with the run's settings and `extra` fields.
fn json_line(
    args: &CompressArgs,
    opts: &CompressOptions,
    model: &Kompress,
    result: &CompressResult,
    extra: &[(&str, Value)],
) -> String {
    let mut v = serde_json::to_value(result).expect("results serialize");
    v["mode"] = json!(opts.mode.to_string());
    v["model"] = json!(args.model.model);
    v["device"] = json!(kompress::device::device_name(model.device()));
    v["dtype"] = json!(model.dtype().as_str());
    for (k, x) in extra {
        v[*k] = x.clone();
    }
    v.to_string()
}

fn summary(name: &str, r: &CompressResult, seconds: f64) -> String {
    format!(
        "kompress: {name}: {} -> {} words ({:.1}% kept, {} saved), {} chunk{}, {} unscored{} in {seconds:.2} s",
        r.original_words,
        r.kept_words,
        100.0 * r.compression_ratio,
        r.tokens_saved,
        r.chunks,
        if r.chunks == 1 { "" } else { "s" },
        r.unscored_words,
        if r.passthrough { ", passed through" } else { "" },
    )
}

/// Every input word, line by line, marked with its fate: ANSI colors on a terminal (dropped words
/// struck through in red, protected yellow, table cyan, unscored magenta), else `[-dropped-]`.
fn explained(words: &[WordDecision], color: bool) -> String {
    let mut out = String::new();
    for (i, d) in words.iter().enumerate() {
        if i > 0 {
            out.push(if d.line != words[i - 1].line { '\n' } else { ' ' });
        }
        let style = match d.reason {
            Reason::Dropped => "9;31",
            Reason::Protected => "33",
            Reason::Table => "36",
            Reason::Unscored => "35",
            Reason::Model | Reason::Passthrough => "",
        };
        match (color, d.reason) {
            (true, _) if !style.is_empty() => out.push_str(&format!("\x1b[{style}m{}\x1b[0m", d.word)),
            (false, Reason::Dropped) => out.push_str(&format!("[-{}-]", d.word)),
            _ => out.push_str(&d.word),
        }
    }
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
        if !self.enabled || p.words_total <= self.min_words {
            return;
        }
        let done = p.words_done * 30 / p.words_total.max(1);
        eprint!("\r[{}{}] {}/{} words", "#".repeat(done), ".".repeat(30 - done), p.words_done, p.words_total);
        self.drawn = true;
    }

    fn clear(&self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
        }
    }
}
