//! `kompress compress --compat llmlingua2`: llmlingua's `compress_prompt_llmlingua2`, output for output.

use std::io::{BufRead, Write};

use anyhow::Context;
use kompress::llmlingua2::Options;
use kompress::method::{Call, Methods};
use serde_json::{json, Value};

use super::args::{decode, open, read_input};
use super::compress_args::CompressArgs;

/// `--force-tokens`' list: split on unescaped commas, escapes resolved.
pub fn force_tokens(list: &str) -> anyhow::Result<Vec<String>> {
    let (mut out, mut current, mut chars) = (Vec::new(), String::new(), list.chars());
    while let Some(c) = chars.next() {
        match c {
            ',' => out.push(std::mem::take(&mut current)),
            '\\' => current.push(match chars.next() {
                Some('n') => '\n',
                Some('t') => '\t',
                Some(',') => ',',
                Some('\\') => '\\',
                other => anyhow::bail!(
                    "--force-tokens {list:?}: unknown escape \\{} (use \\n, \\t, \\, or \\\\)",
                    other.map_or(String::new(), String::from)
                ),
            }),
            c => current.push(c),
        }
    }
    out.push(current);
    if out.iter().any(String::is_empty) {
        anyhow::bail!("--force-tokens {list:?}: an empty token");
    }
    Ok(out)
}

fn options(args: &CompressArgs) -> anyhow::Result<Options> {
    let (flags, ll) = (&args.flags, &args.llmlingua2);
    let unsupported = [
        ("--mode", flags.mode.is_some()),
        ("--threshold", flags.threshold.is_some()),
        ("--count-tokens", flags.count_tokens.is_some()),
        ("--explain", args.explain),
        ("--time-budget-ms", flags.time_budget_ms.is_some()),
    ];
    if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
        anyhow::bail!("{name} has no LLMLingua-2 equivalent: leave it out with --compat llmlingua2");
    }
    let mut opts = Options {
        force_tokens: ll.force_tokens.as_deref().map(force_tokens).transpose()?.unwrap_or_default(),
        force_reserve_digit: ll.force_reserve_digit,
        drop_consecutive: ll.drop_consecutive,
        token_to_word: ll.token_to_word.unwrap_or_default(),
        use_context_level_filter: ll.context_level_filter,
        ..Options::default()
    };
    if let Some(rate) = flags.ratio {
        opts.rate = rate;
    }
    if let Some(n) = flags.target_tokens {
        opts.target_token = i64::try_from(n).context("--target-tokens is too large")?;
    }
    if let Some(rate) = ll.context_level_rate {
        if !(rate > 0.0 && rate <= 1.0) {
            anyhow::bail!("--context-level-rate {rate}: not in (0, 1]");
        }
        opts.context_level_rate = rate;
    }
    Ok(opts)
}

/// The model as every command loads it (`-v`, download progress, the hub's remedies), checked to run
/// LLMLingua-2; `compress::run` has made `auto` f32 for `--compat llmlingua2`.
fn load(args: &CompressArgs) -> anyhow::Result<Methods> {
    let methods = args.model.load_methods(args.flags.batch_size)?;
    methods.llmlingua2().with_context(|| format!("cannot load model {}", args.model.model))?;
    Ok(methods)
}

/// Plain inputs: every input is one context of a single call; prints `compressed_prompt` (or, with
/// --json, llmlingua's result dict). --jsonl: every line is one call, printed as its result dict.
pub fn run(args: &CompressArgs) -> anyhow::Result<()> {
    let opts = options(args)?;
    let inputs = args.inputs();
    if args.jsonl {
        return run_jsonl(args, &opts, &inputs);
    }
    let texts =
        inputs.iter().map(|&path| read_input(path, Some(args.lossy))).collect::<anyhow::Result<Vec<_>>>()?;
    let methods = load(args)?;
    let contexts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let result = methods.compress(Call::LlmLingua2 { contexts: &contexts, options: &opts })?;
    let out = match args.json {
        true => format!("{}\n", serde_json::to_string(&result)?),
        false => result.texts().concat(),
    };
    super::args::print(&out)
}

fn run_jsonl(
    args: &CompressArgs,
    opts: &Options,
    inputs: &[Option<&std::path::PathBuf>],
) -> anyhow::Result<()> {
    let methods = load(args)?;
    let mut out = std::io::stdout().lock();
    for &path in inputs {
        let name = path.map_or("-".to_string(), |p| p.display().to_string());
        for (i, line) in open(path)?.split(b'\n').enumerate() {
            let line = line.with_context(|| format!("cannot read {name}"))?;
            let where_ = || format!("{name}, line {}", i + 1);
            let contexts = contexts(&line, args.lossy).with_context(where_)?;
            let contexts: Vec<&str> = contexts.iter().map(String::as_str).collect();
            let call = Call::LlmLingua2 { contexts: &contexts, options: opts };
            let result = methods.compress(call).with_context(where_)?;
            let mut v = serde_json::to_value(&result)?;
            v["input"] = json!(name);
            v["line"] = json!(i + 1);
            writeln!(out, "{v}")?;
        }
    }
    Ok(out.flush()?)
}

/// A --jsonl line's contexts: a JSON string, a list of strings, an object whose `context` (or `text`)
/// is either, or the raw line.
fn contexts(line: &[u8], lossy: bool) -> anyhow::Result<Vec<String>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let raw = decode(line.to_vec(), "the line", Some(lossy))?;
    let value = match serde_json::from_str::<Value>(&raw) {
        Ok(Value::Object(mut o)) => o
            .remove("context")
            .or_else(|| o.remove("text"))
            .context("a JSON object without a \"context\" field")?,
        Ok(v @ (Value::String(_) | Value::Array(_))) => v,
        _ => return Ok(vec![raw]),
    };
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => anyhow::bail!("\"context\" holds something other than strings"),
            })
            .collect(),
        _ => anyhow::bail!("\"context\" is neither a string nor a list of strings"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_token_lists() {
        assert_eq!(force_tokens(r"\n,?,.,\,").unwrap(), ["\n", "?", ".", ","]);
        assert!(force_tokens("a,,b").is_err());
        assert!(force_tokens(r"\q").is_err());
    }
}
