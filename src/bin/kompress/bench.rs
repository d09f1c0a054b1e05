//! `kompress bench`: times the full scoring forward (encoder + heads) on random token ids.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use kompress::weights::Weights;
use kompress::{Config, Scorer, WordEncoding};

use crate::args::ModelArgs;

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
    /// CPU threads (sets RAYON_NUM_THREADS; default: all cores, or RAYON_NUM_THREADS if set).
    #[arg(long)]
    pub threads: Option<usize>,
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
    if let Some(threads) = args.threads {
        // Read by rayon and candle when their pools start, which has not happened yet.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
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
    report(&args, &scorer, &batch, &times);
    Ok(())
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
    let dtype = args.model.dtype.resolve(&device);
    Scorer::new(&cfg, &Weights::random(0, &device), dtype).context("cannot build the random model")
}

/// Seeded ids in `[1000, vocab)`, framed by the config's special ids as real inputs are.
fn random_batch(args: &BenchArgs, cfg: &Config) -> Vec<WordEncoding> {
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
                    (1000 + (state >> 33) % (cfg.vocab_size as u64 - 1000).max(1)) as u32
                })
                .collect();
            WordEncoding { input_ids: ids, word_ids: vec![None; len] }
        })
        .collect()
}

fn report(args: &BenchArgs, scorer: &Scorer, batch: &[WordEncoding], times: &[f64]) {
    let median = times[times.len() / 2];
    let tokens: usize = batch.iter().map(WordEncoding::len).sum();
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let out = serde_json::json!({
        "seq_len": args.seq_len,
        "batch": args.batch,
        "tokens": tokens,
        "iters": args.iters,
        "ms_min": times[0],
        "ms_median": median,
        "tokens_per_s": tokens as f64 / (median / 1e3),
        "device": kompress::device::device_name(scorer.device()),
        "dtype": scorer.dtype().as_str(),
        "threads": threads,
        "layers": scorer.config().num_layers(),
        "hidden": scorer.config().hidden_size,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} x {} tokens: median {median:.1} ms, min {:.1} ms, {:.0} tokens/s ({} {}, {threads} threads)",
            args.batch,
            args.seq_len,
            times[0],
            out["tokens_per_s"].as_f64().unwrap_or(0.0),
            out["device"],
            out["dtype"]
        );
    }
}
