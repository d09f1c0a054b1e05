//! `kompress bench`: times the full scoring forward (encoder + heads) on random token ids.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use kompress::weights::Weights;
use kompress::{Config, Scorer, WordEncoding};

use super::args::{print, ModelArgs};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Tokens per sequence, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Use seeded random weights of the model's shape instead of loading a checkpoint: the shape of
    /// `--model`'s config.json when it is a local directory, else ModernBERT-base's (kompress-base).
    #[arg(long)]
    pub random_weights: bool,
    /// Make the sequences ragged: lengths spread evenly from half of --seq-len up to it.
    #[arg(long)]
    pub ragged: bool,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let scorer = load(&args)?;
    anyhow::ensure!(args.seq_len >= 2, "--seq-len must be at least 2 ([CLS] and [SEP])");
    anyhow::ensure!(args.batch >= 1 && args.iters >= 1, "--batch and --iters must be at least 1");
    anyhow::ensure!(
        args.seq_len <= scorer.max_tokens(),
        "--seq-len {} exceeds the model's {} positions",
        args.seq_len,
        scorer.max_tokens()
    );
    let batch = random_batch(&args, scorer.config());
    for _ in 0..args.warmup {
        scorer.score_encodings(&batch)?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let start = Instant::now();
        scorer.score_encodings(&batch)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    report(&args, &scorer, &batch, &times)
}

fn load(args: &BenchArgs) -> anyhow::Result<Scorer> {
    if !args.random_weights {
        return Ok(args.model.load()?.into_scorer());
    }
    let dir = Path::new(&args.model.model);
    let cfg = match dir.is_dir() {
        true => Config::from_file(dir.join("config.json"))?,
        false => Config::from_json("{}")?,
    };
    let device = args.model.open_device()?;
    let precision = args.model.dtype.precision(&device)?;
    Scorer::new(&cfg, &Weights::random(0, &device), precision).context("cannot build the random model")
}

/// Seeded ids from the model's vocabulary: above the first 1000 (special and byte-level tokens) when
/// the vocabulary is larger than that, as in real text, else anywhere in it.
fn random_batch(args: &BenchArgs, cfg: &Config) -> Vec<WordEncoding> {
    let vocab = cfg.vocab_size as u64;
    let low = if vocab > 2000 { 1000 } else { 0 };
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..args.batch)
        .map(|row| {
            let len = match args.ragged && args.batch > 1 {
                true => args.seq_len / 2 + (args.seq_len - args.seq_len / 2) * row / (args.batch - 1),
                false => args.seq_len,
            };
            let ids = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (low + (state >> 33) % (vocab - low)) as u32
                })
                .collect();
            WordEncoding { input_ids: ids, word_ids: vec![None; len] }
        })
        .collect()
}

fn report(args: &BenchArgs, scorer: &Scorer, batch: &[WordEncoding], times: &[f64]) -> anyhow::Result<()> {
    let median = times[times.len() / 2];
    let tokens: usize = batch.iter().map(WordEncoding::len).sum();
    let tokens_per_s = tokens as f64 / (median / 1e3);
    let threads = rayon::current_num_threads();
    let device = kompress::device::device_name(scorer.device());
    let value = serde_json::json!({
        "seq_len": args.seq_len,
        "batch": args.batch,
        "tokens": tokens,
        "iters": args.iters,
        "ms_min": times[0],
        "ms_median": median,
        "tokens_per_s": tokens_per_s,
        "device": device,
        "dtype": scorer.precision().name(),
        "threads": threads,
        "layers": scorer.config().num_layers(),
        "hidden": scorer.config().hidden_size,
    });
    let line = match args.json {
        true => value.to_string(),
        false => format!(
            "{} x {} tokens: median {median:.1} ms, min {:.1} ms, {:.0} tokens/s ({device} {}, {threads} thread{})",
            args.batch,
            args.seq_len,
            times[0],
            tokens_per_s,
            scorer.precision().name(),
            if threads == 1 { "" } else { "s" }
        ),
    };
    print(&format!("{line}\n"))
}
