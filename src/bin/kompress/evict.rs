//! The SuperCompress commands: `evict`, `compare`, `train-evict` and `evict-bench`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use kompress::evict::{
    compare_policies, compress_detailed, run_benchmark, split_lines, train, EvictionNetwork, PolicyKind,
    TrainConfig,
};

use crate::args::read_text;

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
    /// numbered from 1, as editors and `grep -n` number them).
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
    let text = read_text(ctx.input.as_ref())?;
    let network = load_network(ctx.checkpoint.as_ref())?;
    let policy = args.policy.build(&ctx.question, &network, ctx.seed);
    let (result, annotations) = compress_detailed(&text, &ctx.question, ctx.budget, policy.as_ref())?;
    let mut out = String::new();
    if ctx.json {
        let mut value = serde_json::to_value(&result)?;
        if args.annotate {
            value["annotations"] = serde_json::to_value(&annotations)?;
        }
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
    emit(&out)?;
    if !ctx.json {
        eprintln!(
            "kompress evict: {} policy kept {}/{} tokens ({:.1}% KV saved); output has {} tokens ({:.1}% saved)",
            result.policy,
            result.kept_tokens,
            result.original_tokens,
            result.kv_savings_pct,
            result.output_tokens,
            result.text_savings_pct
        );
    }
    Ok(())
}

fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let ctx = &args.context;
    let text = read_text(ctx.input.as_ref())?;
    let network = load_network(ctx.checkpoint.as_ref())?;
    let rows = compare_policies(&text, &ctx.question, ctx.budget, &PolicyKind::ALL, &network, ctx.seed)?;
    if ctx.json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
    }
    let mut out = String::new();
    writeln!(
        out,
        "{:<15} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8}",
        "policy", "tokens", "kept", "KV saved", "text saved", "oracle", "entity", "quality"
    )?;
    for row in &rows {
        let (r, m) = (&row.result, &row.metrics);
        writeln!(
            out,
            "{:<15} {:>8} {:>8} {:>8.1}% {:>9.1}% {:>8.3} {:>8.3} {:>8.3}",
            row.policy,
            r.original_tokens,
            r.kept_tokens,
            r.kv_savings_pct,
            r.text_savings_pct,
            m.oracle_recall,
            m.entity_recall,
            m.answer_quality
        )?;
    }
    emit(&out)
}

fn train_evict(args: TrainArgs) -> anyhow::Result<()> {
    let config = TrainConfig { seed: args.seed, steps: args.steps, batch: args.batch, lr: args.lr };
    let trained = train(&config, |step, loss| {
        if step == 0 || (step + 1) % 20 == 0 || step + 1 == config.steps {
            eprintln!("step {:>4}/{}: masked BCE {loss:.5}", step + 1, config.steps);
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
        return emit(&format!("{}\n", serde_json::to_string_pretty(&rows)?));
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
    emit(&out)
}

/// Writes a command's output; a reader that closes the pipe early (`| head`) ends it quietly.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.context("cannot write to standard output"),
    }
}
