//! The `kompress` command line: a thin layer over the library.

mod args;
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Score(args) => score::run(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
