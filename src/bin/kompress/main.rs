//! The `kompress` command line: a thin layer over the library.

mod args;
mod bench;
mod compress;
mod evict;
mod score;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kompress", version, about = "Make LLM context smaller before it reaches the model")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score every token of a text with the Kompress model (the raw per-token view for parity checks).
    Score(score::ScoreArgs),
    /// Compress a text: drop the words the model finds unimportant, keeping lines, protected words
    /// (numbers, paths, identifiers, negations) and tables intact.
    Compress(compress::CompressArgs),
    /// Time the full scoring forward (encoder + heads) on random token ids.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Evict(evict::EvictCommand),
}

fn main() {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => score::run(args),
        Command::Compress(args) => compress::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Evict(cmd) => cmd.run(),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// A forward pass allocates and frees multi-megabyte activations per op. glibc hands such blocks back
/// to the kernel on free, so every op pays page faults to zero fresh pages (about a tenth of CPU
/// time, measured with perf). Raising the mmap and trim thresholds keeps them in the heap for reuse;
/// peak memory is unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
