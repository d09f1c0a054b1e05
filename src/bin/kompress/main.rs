//! The `kompress` command line. Its body is the library's `kompress::cli` (behind the `cli` feature),
//! which the Python wheel's `kompress` console script runs too.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(kompress::cli::run(std::env::args_os()))
}
