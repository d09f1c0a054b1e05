//! The CPU thread count: `--threads` or `RAYON_NUM_THREADS`, checked once for every command.

use anyhow::Context;

/// The variable rayon and candle read for their pool sizes.
const ENV: &str = "RAYON_NUM_THREADS";
/// Threads allowed per core: more only adds switching (and thousands exhaust the process's memory
/// for stacks and guard pages, which aborts the program instead of failing).
const PER_CORE: usize = 4;

/// Checks the thread count the user asked for (the flag wins over the variable) and starts the
/// worker pool with it; without either, rayon's default of one thread per core stands.
pub fn configure(flag: Option<usize>) -> anyhow::Result<()> {
    let requested = match (flag, std::env::var(ENV)) {
        (Some(n), _) => Some(check(n, "--threads")?),
        (None, Ok(value)) => Some(check(parse_env(&value)?, ENV)?),
        (None, Err(_)) => None,
    };
    let Some(n) = requested else { return Ok(()) };
    // candle's element-wise pool reads the variable when it starts; nothing has started yet.
    std::env::set_var(ENV, n.to_string());
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().context("cannot start the worker threads")
}

fn parse_env(value: &str) -> anyhow::Result<usize> {
    value.trim().parse().map_err(|_| anyhow::anyhow!("{ENV}={value:?} is not a number of threads"))
}

/// `n` if it is between 1 and [`max_threads`]; `what` names where it came from.
fn check(n: usize, what: &str) -> anyhow::Result<usize> {
    let cores = cores();
    let max = max_threads(cores);
    let shown = if what == ENV { format!("{ENV}={n}") } else { format!("{what} {n}") };
    anyhow::ensure!(n >= 1, "{shown}: the thread count must be at least 1");
    anyhow::ensure!(
        n <= max,
        "{shown}: at most {max} threads on this machine ({PER_CORE} per core, {cores} core{})",
        if cores == 1 { "" } else { "s" }
    );
    Ok(n)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The largest thread count accepted: [`PER_CORE`] per core, and never more than 1024.
fn max_threads(cores: usize) -> usize {
    (PER_CORE * cores).min(1024)
}
