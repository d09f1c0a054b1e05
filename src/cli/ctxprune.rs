//! `kompress compress --compat ctxprune`: ctxprune's `Compressor.compress`, output for output.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use kompress::ctxprune::Options;
use kompress::method::{Call, Methods, Output};
use serde_json::{json, Value};

use super::args::{corpus_text, input_name, open, read_input};
use super::compress_args::CompressArgs;

/// ctxprune's arguments from the flags; the flags it has no equivalent of are refused by name.
fn options(args: &CompressArgs) -> anyhow::Result<Options> {
    let flags = &args.flags;
    let unsupported = [
        ("--mode", flags.mode.is_some()),
        ("--explain", args.explain),
        ("--time-budget-ms", flags.time_budget_ms.is_some()),
        ("--no-protect", flags.no_protect),
        ("--no-protect-words", flags.no_protect_words),
        ("--no-protect-tables", flags.no_protect_tables),
        ("--no-protect-code", flags.no_protect_code),
        ("--no-protect-code-lines", flags.no_protect_code_lines),
        ("--no-protect-markdown", flags.no_protect_markdown),
        ("--no-protect-json", flags.no_protect_json),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
        anyhow::bail!("{name} has no ctxprune equivalent: leave it out with --compat ctxprune");
    }
    if let Some(flag) = args.llmlingua2.set_flag() {
        anyhow::bail!("{flag} needs --compat llmlingua2, not --compat ctxprune");
    }
    let ctx = &args.ctxprune;
    let opts = Options {
        rate: Some(flags.ratio.unwrap_or(0.5)),
        threshold: flags.threshold,
        force_protected: ctx.force_protected,
        keep_structure: ctx.keep_structure,
        unit: ctx.unit.unwrap_or_default(),
        measure: flags.count_tokens,
        target_tokens: flags.target_tokens,
        // --chunk-tokens, set on the compressor when it loads.
        max_len: None,
    };
    opts.validate()?;
    Ok(opts)
}

/// The model as every command loads it, checked to run ctxprune; `compress::run` has made `auto` f32
/// for this compat. --chunk-tokens is ctxprune's `max_len`, at most the model's.
fn load(args: &CompressArgs, opts: &mut Options) -> anyhow::Result<Methods> {
    let methods = args.model.load_methods(args.flags.batch_size)?;
    methods.ctxprune().with_context(|| format!("cannot use model {}", args.model.model))?;
    opts.max_len = Some(args.flags.chunk_tokens.min(methods.model().max_tokens()));
    Ok(methods)
}

/// Every input is one text; prints its compressed text (or, with --json, ctxprune's result dict and
/// the input's name). --jsonl: every line is one text, printed as its result dict.
pub fn run(args: &CompressArgs) -> anyhow::Result<()> {
    let mut opts = options(args)?;
    let inputs = args.inputs();
    let methods = load(args, &mut opts)?;
    if args.jsonl {
        return run_jsonl(args, &methods, &opts, &inputs);
    }
    for &path in &inputs {
        let text = read_input(path, Some(args.lossy))?;
        let result = methods
            .compress(Call::Ctxprune { text: &text, options: &opts })
            .with_context(|| format!("cannot compress {}", input_name(path)))?;
        let out = match args.json {
            true => format!("{}\n", line(&result, path, None)?),
            false => result.texts().concat(),
        };
        super::args::print(&out)?;
    }
    Ok(())
}

fn run_jsonl(
    args: &CompressArgs,
    methods: &Methods,
    opts: &Options,
    inputs: &[Option<&PathBuf>],
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for &path in inputs {
        for (i, raw) in open(path)?.split(b'\n').enumerate() {
            let raw = raw.with_context(|| format!("cannot read {}", input_name(path)))?;
            let where_ = || format!("{}, line {}", input_name(path), i + 1);
            let text = corpus_text(&raw, args.lossy).with_context(where_)?;
            let result =
                methods.compress(Call::Ctxprune { text: &text, options: opts }).with_context(where_)?;
            writeln!(out, "{}", line(&result, path, Some(i + 1))?)?;
        }
    }
    Ok(out.flush()?)
}

/// ctxprune's result dict with where it came from.
fn line(result: &Output, path: Option<&PathBuf>, line: Option<usize>) -> anyhow::Result<Value> {
    let mut v = serde_json::to_value(result)?;
    v["input"] = json!(input_name(path));
    if let Some(n) = line {
        v["line"] = json!(n);
    }
    Ok(v)
}
