//! What every command shares, end to end: `bench` on every fixture model, one thread-count check for
//! `--threads` and `RAYON_NUM_THREADS`, a closed standard output, and hub errors that name the remedy.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::Value;

fn kompress(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    run_kompress(args, env, stdin)
}

fn v5() -> String {
    model_dir("v5").display().to_string()
}

/// A failure with status 1 and exactly one stderr line, naming `needle`.
fn assert_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bench_runs_on_every_fixture_model() {
    for name in MODELS {
        let dir = model_dir(name);
        for seq_len in ["2", "64"] {
            let args =
                ["bench", "--model", dir.to_str().unwrap(), "--seq-len", seq_len, "--iters", "1", "--json"];
            let v = ok_json(&kompress(&args, &[], b""));
            assert_eq!(v["tokens"].to_string(), seq_len, "{name}");
        }
        let args =
            ["bench", "--model", dir.to_str().unwrap(), "--seq-len", "32", "--iters", "1", "--batch", "3"];
        let out = kompress(&[&args[..], &["--ragged", "--warmup", "0", "--threads", "1"]].concat(), &[], b"");
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(
            line.starts_with("3 x 32 tokens: median ") && line.ends_with("(cpu f32, 1 thread)\n"),
            "{line}"
        );
    }
}

/// Every command that does model or policy work, with its arguments and input.
fn commands() -> Vec<(Vec<String>, &'static [u8])> {
    let m = v5();
    let text: &[u8] = b"Do not delete /etc/hosts unless the backup finished.\n";
    let evict = |cmd: &str| vec![cmd.to_string(), "-".into(), "-q".into(), "hosts".into()];
    vec![
        (vec!["score".into(), "--model".into(), m.clone()], text),
        (vec!["compress".into(), "--model".into(), m.clone()], text),
        (
            vec![
                "bench".into(),
                "--model".into(),
                m,
                "--seq-len".into(),
                "8".into(),
                "--iters".into(),
                "1".into(),
            ],
            b"",
        ),
        (evict("evict"), text),
        (evict("compare"), text),
    ]
}

#[test]
fn thread_counts_are_checked_for_the_flag_and_the_variable_alike() {
    for (args, stdin) in commands() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let with = |extra: &[&str], env: &[(&str, &str)]| kompress(&[&args[..], extra].concat(), env, stdin);
        assert!(with(&["--threads", "1"], &[]).status.success(), "{args:?} --threads 1");
        assert_error(&with(&["--threads", "0"], &[]), "--threads 0: the thread count must be at least 1");
        assert_error(&with(&["--threads", "100000"], &[]), "--threads 100000: at most");
        assert_error(&with(&[], &[("RAYON_NUM_THREADS", "100000")]), "RAYON_NUM_THREADS=100000: at most");
        assert_error(&with(&[], &[("RAYON_NUM_THREADS", "0")]), "RAYON_NUM_THREADS=0: the thread count");
        assert_error(&with(&[], &[("RAYON_NUM_THREADS", "many")]), "\"many\" is not a number of threads");
        // The flag wins over the variable.
        assert!(with(&["--threads", "1"], &[("RAYON_NUM_THREADS", "100000")]).status.success());
    }
    let bench = ["bench", "--model", &v5(), "--seq-len", "8", "--iters", "1", "--json"];
    assert_eq!(ok_json(&kompress(&bench, &[("RAYON_NUM_THREADS", "1")], b""))["threads"], 1);
    assert_eq!(ok_json(&kompress(&[&bench[..], &["--threads", "2"]].concat(), &[], b""))["threads"], 2);
}

/// `--dtype int8` through the CLI: `bench` and `compress --json` say `int8`; `KOMPRESS_CPU_KERNELS`
/// caps the kernels without changing int8's scores beyond f32 rounding (the int8 paths compute the same
/// bits; the f32 heads switch between the packed kernel and the `gemm` split with the cap), and a value
/// it does not know is a one-line error naming it.
#[test]
fn int8_runs_and_the_kernel_variable_is_checked() {
    let bench = ["bench", "--model", &v5(), "--seq-len", "40", "--iters", "1", "--json", "--dtype", "int8"];
    assert_eq!(ok_json(&kompress(&bench, &[], b""))["dtype"], "int8");
    let compress = ["compress", "--model", &v5(), "--dtype", "int8", "--json"];
    let text = b"You must not delete the production database unless the backup has completed.";
    assert_eq!(ok_json(&kompress(&compress, &[], text))["dtype"], "int8");
    let score = |cap: &str| {
        let out = kompress(
            &["score", "--model", &v5(), "--dtype", "q8", "--json"],
            &[("KOMPRESS_CPU_KERNELS", cap)],
            text,
        );
        let scores: Vec<f32> = serde_json::from_value(ok_json(&out)["score"].clone()).unwrap();
        scores
    };
    let auto = score("auto");
    for cap in ["amx", "avx512", "avxvnni", "avx2", "neon", "portable"] {
        let diff = max_abs_diff(&score(cap), &auto);
        assert!(diff < 1e-6, "KOMPRESS_CPU_KERNELS={cap}: {diff}");
    }
    let bad = kompress(&bench, &[("KOMPRESS_CPU_KERNELS", "sse9")], b"");
    assert_error(&bad, "unknown KOMPRESS_CPU_KERNELS value \"sse9\"");
    // A flag's value is clap's error (status 2, with a hint line), naming the choices.
    let bad = kompress(&[&bench[..8], &["--dtype", "int4"]].concat(), &[], b"");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{err}");
    assert!(
        err.contains("unknown dtype \"int4\" (expected auto, f32, f16, bf16, int8, int8-wo or int8-wo-g128)"),
        "{err}"
    );
}

/// Runs a command whose reader closes standard output before it writes anything (the read end is
/// dropped before the input is sent, and every command reads its input first, or runs a model).
fn closed_before_output(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kompress"))
        .env("KOMPRESS_DTYPE", "f32")
        .args(args)
        .env_remove("HF_HUB_OFFLINE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn assert_quiet_success(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {err}");
    assert!(err.is_empty(), "{what}: {err}");
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    for (args, stdin) in commands() {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Its short input passes through, which stderr would say.
        if args[0] == "compress" {
            args.push("-q");
        }
        assert_quiet_success(&closed_before_output(&args, stdin), &args.join(" "));
        assert_quiet_success(&closed_before_output(&[&args[..], &["--json"]].concat(), stdin), "--json");
    }
    let m = v5();
    assert_quiet_success(
        &closed_before_output(&["compress", "--model", &m, "--jsonl"], b"one\ntwo\n"),
        "jsonl",
    );
    let train = std::env::temp_dir().join(format!("kompress-pipe-{}.safetensors", std::process::id()));
    assert_quiet_success(&closed_before_output(&["evict-bench", "--seeds", "1"], b""), "evict-bench");
    let out = train.to_str().unwrap();
    let args = ["train-evict", "--steps", "1", "--batch", "1", "--out", out];
    assert!(closed_before_output(&args, b"").status.success());
    std::fs::remove_file(&train).unwrap();
}

#[test]
fn a_reader_that_stops_after_one_line_ends_the_command_quietly() {
    // More output than a pipe holds, so that the command is still writing when the reader leaves.
    let context = "x = compute(value)\n".repeat(20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kompress"))
        .env("KOMPRESS_DTYPE", "f32")
        .args(["evict", "-", "-q", "value", "--budget", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(context.as_bytes()).unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "x = compute(value)\n");
    assert_quiet_success(&child.wait_with_output().unwrap(), "evict | head -1");
}

/// A Hugging Face cache holding the v5 fixture model as `org/cached` at `main`.
fn fake_cache(home: &Path) {
    let repo = home.join("hub/models--org--cached");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(model_dir("v5").join(file), snapshot.join(file)).unwrap();
    }
}

#[test]
fn hub_errors_name_the_remedy_and_a_cached_model_works_without_the_hub() {
    let home = std::env::temp_dir().join(format!("kompress-hf-{}", std::process::id()));
    fake_cache(&home);
    let home = home.to_str().unwrap();
    // Port 9 on loopback refuses connections at once: a hub that cannot be reached.
    let unreachable = [("HF_HOME", home), ("HF_ENDPOINT", "http://127.0.0.1:9")];
    let offline = [("HF_HOME", home), ("HF_HUB_OFFLINE", "1")];
    for env in [&unreachable, &offline] {
        let out = kompress(&["score", "--model", "org/cached", "--json"], env, b"a b c");
        assert_eq!(ok_json(&out)["input_ids"].as_array().unwrap().len(), 5);
    }
    let cache =
        format!("the HF cache {home}/hub holds no merged.pt, model.safetensors or pytorch_model.bin of it");
    let out = kompress(&["score", "--model", "org/missing"], &unreachable, b"x");
    assert_error(&out, "org/missing@main: cannot list it on the hub (request error: ");
    assert_error(&out, &cache);
    assert_error(&out, "use --model DIR for a local model directory");
    assert_error(&out, "or run again with network access to download it there");
    let out = kompress(&["score", "--model", "org/missing"], &offline, b"x");
    assert_error(&out, &format!("org/missing@main: offline, and {cache}; use --model DIR"));
    assert_error(&out, "run once online without --offline (and HF_HUB_OFFLINE unset)");
    std::fs::remove_dir_all(home).unwrap();
}

#[test]
fn compress_messages_and_help_speak_plainly() {
    let out =
        kompress(&["compress", "--model", &v5(), "-v", "--min-words", "1"], &[], b"one two three four\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("4 -> 3 words, ") && err.contains(", 1 chunk, "), "{err}");
    // -v breaks the load down (docs/PERFORMANCE.md, "The whole job").
    assert!(
        err.contains(" s (checkpoint open ")
            && err.contains(" s, layers read and laid out ")
            && err.contains(" s, tokenizer "),
        "{err}"
    );
    assert!(err.contains("kompress: cl100k token counter built in "), "{err}");
    let help = String::from_utf8(kompress(&["compress", "--help"], &[], b"").stdout).unwrap();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(help.contains("dropped red and struck through, protected yellow, table cyan"), "{help}");
    assert!(help.contains("--threads <N>"), "{help}");
}

#[test]
fn evict_usage_shows_its_input_as_optional() {
    let out = kompress(&["evict"], &[], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Usage: kompress evict --question <QUESTION> [INPUT]"), "{err}");
}
