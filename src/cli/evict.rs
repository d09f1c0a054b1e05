//! The SuperCompress commands: `evict`, `compare`, `train-evict` and `evict-bench`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kompress::evict::{
    compare_policies, compress_detailed, run_benchmark, split_lines, train, CompressResult, EvictionNetwork,
    PolicyComparison, PolicyKind, TrainConfig,
};

use super::args::{print, read_input};

/// SuperCompress: question-aware eviction scored by a 5K-parameter MLP.
#[derive(Subcommand)]
pub enum EvictCommand {
    /// Compress a context for a question: keep a token budget, return whole lines.
    Evict(EvictArgs),
    /// Compress a context with every policy and print them side by side with quality metrics.
    Compare(CompareArgs),
    /// Train the eviction network on the synthetic contexts and write safetensors.
    TrainEvict(TrainArgs),
    /// The reference's multi-seed policy benchmark (oracle recall, entity recall, answer quality).
    EvictBench(BenchArgs),
}

impl EvictCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            EvictCommand::Evict(a) => evict(a),
            EvictCommand::Compare(a) => compare(a),
            EvictCommand::TrainEvict(a) => train_evict(a),
            EvictCommand::EvictBench(a) => bench(a),
        }
    }
}

/// The context, the question, the budget and the weights.
#[derive(Args)]
pub struct ContextArgs {
    /// Context file; `-` or nothing reads standard input.
    input: Option<PathBuf>,
    /// The question the compressed context must still answer.
    #[arg(long, short)]
    question: String,
    /// Share of tokens to keep, in (0, 1].
    #[arg(long, short, default_value_t = 0.35)]
    budget: f64,
    /// Weights for the learned policy: safetensors, or a PyTorch state_dict (.pt). Default: the
    /// weights built into this binary.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Seed of the random policy.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Replace invalid UTF-8 with U+FFFD instead of failing.
    #[arg(long)]
    lossy: bool,
    /// Print a summary on stderr: what the policy kept and what the output saves.
    #[arg(long, short)]
    verbose: bool,
}

impl ContextArgs {
    fn read(&self) -> anyhow::Result<String> {
        read_input(self.input.as_ref(), Some(self.lossy))
    }
}

/// The checkpoint's network, or the built-in one.
fn load_network(checkpoint: Option<&PathBuf>) -> anyhow::Result<EvictionNetwork> {
    Ok(match checkpoint {
        Some(path) => EvictionNetwork::load(path)?,
        None => EvictionNetwork::embedded()?,
    })
}

#[derive(Args)]
pub struct EvictArgs {
    #[command(flatten)]
    context: ContextArgs,
    /// learned, fifo, lru, sliding-window, truncation, summarization, h2o, snapkv, attention, random
    /// or oracle.
    #[arg(long, short, default_value = "learned")]
    policy: PolicyKind,
    /// Print every line with whether it was kept and why, instead of the compressed text (lines
    /// numbered from 1, as editors and `grep -n` number them; with --json, an "annotations" list
    /// whose "line" is a 0-based index, like the result's "kept_lines", as SuperCompress reports them).
    #[arg(long)]
    annotate: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    #[command(flatten)]
    context: ContextArgs,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Seed of initialisation, contexts and noise; the same seed gives the same weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
    /// Optimiser steps.
    #[arg(long, default_value_t = TrainConfig::default().steps)]
    steps: usize,
    /// Contexts per step.
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Number of simulator seeds (0..N).
    #[arg(long, default_value_t = 8)]
    seeds: u32,
    /// Share of tokens to keep, in (0, 1].
    #[arg(long, default_value_t = 0.35)]
    budget: f64,
    /// Weights for the learned policy (default: the built-in weights).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn evict(args: EvictArgs) -> anyhow::Result<()> {
    let ctx = &args.context;
    let text = ctx.read()?;
    let network = load_network(ctx.checkpoint.as_ref())?;
    let policy = args.policy.build(&ctx.question, &network, ctx.seed);
    let (result, annotations) = compress_detailed(&text, &ctx.question, ctx.budget, policy.as_ref())?;
    let mut out = String::new();
    if ctx.json {
        let value = result.to_json(args.annotate.then_some(annotations.as_slice()));
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else if args.annotate {
        let lines = split_lines(&text);
        for a in &annotations {
            let mark = if a.kept { '+' } else { '-' };
            writeln!(out, "{mark} {:>5} {:<22} {}", a.line + 1, a.reason.to_string(), lines[a.line])?;
        }
    } else {
        writeln!(out, "{}", result.compressed_text)?;
    }
    print(&out)?;
    if ctx.verbose {
        eprintln!("kompress evict: {}", summary(args.policy, &result));
    }
    Ok(())
}

/// What `-v` says about one eviction: the policy's budget, then what the whole-line output saves.
fn summary(policy: PolicyKind, r: &CompressResult) -> String {
    if r.original_tokens == 0 {
        return "the input is blank: nothing to evict, returned unchanged".into();
    }
    format!(
        "policy {policy} kept {} of {} tokens ({}% of the KV cache saved); the output has {} tokens in {} \
         line{} ({}% saved)",
        r.kept_tokens,
        r.original_tokens,
        percent(r.kv_savings_pct),
        r.output_tokens,
        r.kept_lines.len(),
        if r.kept_lines.len() == 1 { "" } else { "s" },
        percent(r.text_savings_pct)
    )
}

/// A percentage with one decimal, or as many more as it takes not to show a share that is not 0 or
/// 100 as exactly that (1 token kept of 6,696 saves 99.985%, not 100.0%).
fn percent(p: f64) -> String {
    let mut decimals = 1;
    loop {
        let shown = format!("{p:.decimals$}");
        let rounded: f64 = shown.parse().unwrap_or(p);
        let misleading = (rounded == 100.0 && p < 100.0) || (rounded == 0.0 && p > 0.0);
        if !misleading || decimals == 6 {
            return shown;
        }
        decimals += 1;
    }
}

fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let ctx = &args.context;
    let text = ctx.read()?;
    let network = load_network(ctx.checkpoint.as_ref())?;
    let started = std::time::Instant::now();
    let rows = compare_policies(&text, &ctx.question, ctx.budget, &PolicyKind::ALL, &network, ctx.seed)?;
    let seconds = started.elapsed().as_secs_f64();
    match ctx.json {
        true => print(&format!("{}\n", serde_json::to_string_pretty(&rows)?))?,
        false => print(&comparison_table(&rows)?)?,
    }
    if ctx.verbose {
        let tokens = rows.first().map_or(0, |r| r.result.original_tokens);
        eprintln!(
            "kompress compare: {} policies on {tokens} tokens at budget {} in {seconds:.2} s",
            rows.len(),
            ctx.budget
        );
    }
    Ok(())
}

fn comparison_table(rows: &[PolicyComparison]) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "{:<15} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "policy", "tokens", "kept", "KV saved", "text saved", "oracle", "entity", "quality"
    )?;
    for row in rows {
        let (r, m) = (&row.result, &row.metrics);
        writeln!(
            out,
            "{:<15} {:>8} {:>8} {:>8}% {:>9}% {:>8.3} {:>8.3} {:>8.3}",
            row.policy,
            r.original_tokens,
            r.kept_tokens,
            percent(r.kv_savings_pct),
            percent(r.text_savings_pct),
            m.oracle_recall,
            m.entity_recall,
            m.answer_quality
        )?;
    }
    Ok(out)
}

fn train_evict(args: TrainArgs) -> anyhow::Result<()> {
    let config = TrainConfig { seed: args.seed, steps: args.steps, batch: args.batch, lr: args.lr };
    let trained = train(&config, |step, loss| {
        if step == 0 || (step + 1) % 20 == 0 || step + 1 == config.steps {
            eprintln!("step {:>4}/{}: mean BCE {loss:.5}", step + 1, config.steps);
        }
    })?;
    trained.save(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let network = load_network(args.checkpoint.as_ref())?;
    let rows = run_benchmark(args.seeds, args.budget, &PolicyKind::ALL, &network)?;
    if args.json {
        return print(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = format!("{} seeds, budget {}\n", args.seeds, args.budget);
    writeln!(
        out,
        "{:<15} {:>13} {:>13} {:>14} {:>9} {:>11}",
        "policy", "oracle recall", "entity recall", "answer quality", "KV saved", "text saved"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<15} {:>13.3} {:>13.3} {:>14.3} {:>8.1}% {:>10.1}%",
            r.policy,
            r.oracle_recall,
            r.entity_recall,
            r.answer_quality,
            r.kv_savings_pct,
            r.text_savings_pct
        )?;
    }
    print(&out)
}
