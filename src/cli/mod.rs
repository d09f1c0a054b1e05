//! The `kompress` command line as a library function, [`run`]: the body of the `kompress` binary
//! and of the Python wheel's `kompress` console script, so that both are one program (the same
//! flags, output bytes, exit statuses and error lines). Behind the `cli` feature; `serve` also needs
//! `server`.
//!
//! Unlike the rest of the library, this module reports its errors with `anyhow`: they end as the
//! program's one `error: ...` line and never cross its public surface, which is [`run`] alone (an
//! exit status in, out). The library's typed errors ([`crate::Error`]) are what it wraps.

mod args;
mod bench;
mod compress;
mod compress_args;
mod ctxprune;
mod evict;
mod llmlingua2;
mod score;
#[cfg(feature = "server")]
mod serve;
mod threads;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kompress", version, about = "Make LLM context smaller before it reaches the model")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for the model and policy work (default: RAYON_NUM_THREADS if set, else one per
    /// core); at most 4 per core.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Score every token of a text with the Kompress model (the raw per-token view for parity checks).
    Score(score::ScoreArgs),
    /// Compress a text: drop the words the model finds unimportant, keeping lines, protected words
    /// (numbers, paths, identifiers, negations) and tables intact.
    Compress(compress_args::CompressArgs),
    /// Time the full scoring forward (encoder + heads) on random token ids.
    Bench(bench::BenchArgs),
    #[command(flatten)]
    Evict(evict::EvictCommand),
    /// Serve compression over HTTP: Headroom's and SuperCompress's contracts and our own API.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
}

/// Runs the `kompress` command line on `args` (the program's name first, as `std::env::args_os`
/// gives them) and returns the process's exit status: 0 on success and when the reader of standard
/// output went away (`| head`), 1 after an `error: ...` line on standard error, 2 for a usage error
/// (clap's message on standard error); `--help` and `--version` print on standard output and give 0.
///
/// This is the whole program: the `kompress` binary is `std::process::ExitCode::from(run(std::env::args_os()))`,
/// and the Python wheel's `kompress` console script calls it with `sys.argv`. It writes to the
/// process's standard output and error (file descriptors 1 and 2), reads standard input where a
/// command does, and tunes the process as the binary always has: glibc's allocator thresholds (and,
/// for `serve`, its arena count), candle's idle workers (`CANDLE_BARRIER_POOL_SPIN_LIMIT=0` unless
/// set), rayon's global pool (`--threads`) and, for `serve`, handlers for SIGTERM and SIGINT. So call
/// it once, as a process's main work, not from inside another program.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    keep_freed_memory();
    park_idle_candle_workers();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // What clap's `exit` does, less the exit: the message (help and version on standard
            // output, errors on standard error; a closed pipe ignored) and its status (0 or 2).
            let _ = err.print();
            return u8::try_from(err.exit_code()).unwrap_or(2);
        }
    };
    #[cfg(feature = "server")]
    if matches!(cli.command, Command::Serve(_)) {
        few_heaps();
    }
    let result = threads::configure(cli.threads).and_then(|()| match cli.command {
        Command::Score(args) => score::run(args),
        Command::Compress(args) => compress::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Evict(cmd) => cmd.run(),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(args),
    });
    match result {
        Ok(()) => 0,
        // The reader of our output went away (`| head`): what it wanted it has, so stop quietly and
        // successfully, as ripgrep does.
        Err(err) if is_broken_pipe(&err) => 0,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            1
        }
    }
}

/// Whether a write to standard output failed because its reader closed the pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error and its causes on one line, leaving out a cause that the message before it already
/// quotes (the library's messages name their cause, which is also their `source`).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if line.contains(&cause) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&cause);
    }
    line
}

/// candle runs element-wise ops (the residual adds) on its own worker pool, whose workers spin for
/// 25,000 iterations after each op before parking. The encoder's kernels run on rayon's pool meanwhile,
/// so on a small machine those spinning workers take cores from them: 13% of CPU samples at 128
/// tokens on 2 cores, and parking at once made the forward 15-20% faster (`kompress bench`, 2 threads,
/// 128 and 512 tokens). A value the user set is kept.
fn park_idle_candle_workers() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        // Before any thread exists: candle reads it when its pool starts, at the first parallel op.
        std::env::set_var(SPIN_LIMIT, "0");
    }
}

/// The server's request threads each take a glibc heap (arena) of their own, and with the thresholds
/// of [`keep_freed_memory`] each keeps its peak: four concurrent 10 MB requests peaked at 287 MiB with
/// the default arenas and 190 MiB with two (`scripts/giant_word_rss.sh`, issue 23). One heap, not two:
/// `malloc_trim` (the server's idle release) trims only the main heap's top, so a second heap kept its
/// top's pages for good, 30 MB of them after a minute of hostile clients (`scripts/serve_hostile.py
/// --soak`: 46 -> 91 MB with two heaps, 43 -> 50 MB with one; issue 32). `MALLOC_ARENA_MAX`, when set,
/// is left to decide. Called before the request threads exist.
#[cfg(feature = "server")]
fn few_heaps() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets allocator parameters.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// A forward pass allocates and frees multi-megabyte activations per op. glibc hands such blocks back
/// to the kernel on free, so every op pays page faults to zero fresh pages (about a tenth of CPU
/// time, measured with perf). Raising the mmap and trim thresholds keeps them in the heap for reuse;
/// peak memory is unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters (under glibc's arena lock, so also when a host
    // process, Python for the console script, has started threads already).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
