//! The `evict`, `compare`, `train-evict` and `evict-bench` commands, end to end.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::run_kompress;
use serde_json::Value;

fn kompress(args: &[&str], stdin: &[u8]) -> Output {
    run_kompress(args, &[], stdin)
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/evict").join(name).display().to_string()
}

/// A failure: non-zero exit and exactly one line on stderr containing `needle`.
fn assert_one_line_error(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err}");
    assert!(err.matches("(os error").count() <= 1, "a cause quoted twice: {err}");
}

const CONTEXT: &str = "import os\n\nclass Store:\n    def fetch(self, key):\n        return None\n";

#[test]
fn evict_json_has_the_documented_fields() {
    let text = CONTEXT.to_string() + &"# padding line\n".repeat(30);
    let out = kompress(&["evict", "-", "--question", "What does fetch return?", "--json"], text.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "policy",
        "compressed_text",
        "kept_positions",
        "kept_lines",
        "original_tokens",
        "kept_tokens",
        "kv_savings_pct",
        "text_savings_pct",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["policy"], "Learned Policy");
    assert!(v["compressed_text"].as_str().unwrap().contains("def fetch"));
}

#[test]
fn evict_with_a_pytorch_checkpoint_matches_its_safetensors_twin() {
    let run = |ckpt: &str| {
        let args = ["evict", "-", "-q", "fetch", "--json", "--checkpoint", ckpt];
        let out = kompress(&args, CONTEXT.repeat(8).as_bytes());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    assert_eq!(run(&fixture("net.pt")), run(&fixture("net.safetensors")));
}

#[test]
fn annotate_marks_every_line() {
    let text = CONTEXT.repeat(5);
    let out = kompress(
        &["evict", "-", "-q", "fetch", "--annotate", "--policy", "fifo", "-b", "0.2"],
        text.as_bytes(),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 25);
    // Lines count from 1, as editors and `grep -n` count them.
    assert!(stdout.lines().next().unwrap().starts_with("+     1 attention sink"));
    assert!(stdout.lines().any(|l| l.starts_with('-') && l.contains("evicted")));
}

#[test]
fn bad_input_gives_one_line_errors() {
    assert_one_line_error(&kompress(&["evict", "-", "-q", "x", "--budget", "1.5"], b"a b"), "budget ratio");
    assert_one_line_error(&kompress(&["evict", "-", "-q", "x", "--budget", "0"], b"a b"), "budget ratio");
    assert_one_line_error(&kompress(&["evict", "-", "-q", "x"], b"ok \xff\xfe"), "not valid UTF-8");
    assert_one_line_error(&kompress(&["evict", "/nonexistent/file", "-q", "x"], b""), "cannot read");
    for checkpoint in ["/nonexistent.pt", "/nonexistent.safetensors"] {
        let missing = kompress(&["evict", "-", "-q", "x", "--checkpoint", checkpoint], b"a b");
        assert_one_line_error(&missing, checkpoint);
    }
    let corrupt = kompress(&["evict", "-", "-q", "x", "--checkpoint", &fixture("network.json")], b"a b");
    assert_one_line_error(&corrupt, "cannot read checkpoint");
    let policy = kompress(&["evict", "-", "-q", "x", "--policy", "lifo"], b"a b");
    assert!(!policy.status.success());
    assert!(String::from_utf8_lossy(&policy.stderr).contains("unknown policy `lifo`"));
}

#[test]
fn compare_lists_every_policy() {
    let out = kompress(&["compare", "-", "-q", "fetch", "--json"], CONTEXT.repeat(6).as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 11);
    assert!(names.contains(&"h2o") && names.contains(&"learned"));
    assert!(v[0]["metrics"]["oracle_recall"].is_f64());
    let table = kompress(&["compare", "-", "-q", "fetch"], CONTEXT.repeat(6).as_bytes());
    assert_eq!(String::from_utf8(table.stdout).unwrap().lines().count(), 12);
}

#[test]
fn train_evict_writes_loadable_weights() {
    let dir = std::env::temp_dir().join(format!("kompress-evict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_path = dir.join("w.safetensors");
    let out = kompress(
        &["train-evict", "--seed", "1", "--steps", "2", "--batch", "1", "--out", out_path.to_str().unwrap()],
        b"",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bench =
        kompress(&["evict-bench", "--seeds", "1", "--json", "--checkpoint", out_path.to_str().unwrap()], b"");
    assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));
    let rows: Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 11);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn verbose_summary_names_the_policy_and_shows_no_false_100_percent() {
    let text = CONTEXT.to_string() + &"# padding line\n".repeat(30);
    let out = kompress(&["evict", "-", "-q", "What does fetch return?", "-v"], text.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.starts_with("kompress evict: policy learned kept "), "{err}");
    assert!(
        err.contains("% of the KV cache saved); the output has ") && !err.contains("Policy policy"),
        "{err}"
    );
    // Without -v nothing goes to stderr.
    let quiet = kompress(&["evict", "-", "-q", "What does fetch return?"], text.as_bytes());
    assert!(quiet.status.success() && quiet.stderr.is_empty());
    // One token of thousands saves 99.98%: not shown as 100.0%.
    let long = "alpha beta gamma delta\n".repeat(1000);
    let out =
        kompress(&["evict", "-", "-q", "x", "-v", "--budget", "0.0001", "--policy", "fifo"], long.as_bytes());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kept 1 of ") && err.contains("(99.98% of the KV cache saved)"), "{err}");
    let blank = kompress(&["evict", "-", "-q", "x", "-v"], b"  \n");
    let err = String::from_utf8_lossy(&blank.stderr);
    assert_eq!(err.trim_end(), "kompress evict: the input is blank: nothing to evict, returned unchanged");
    let compare = kompress(&["compare", "-", "-q", "fetch", "-v"], CONTEXT.repeat(6).as_bytes());
    let err = String::from_utf8_lossy(&compare.stderr);
    assert!(err.starts_with("kompress compare: 11 policies on "), "{err}");
}

#[test]
fn lossy_and_verbose_are_offered_by_evict_and_compare() {
    for cmd in ["evict", "compare"] {
        let help = String::from_utf8(kompress(&[cmd, "--help"], b"").stdout).unwrap();
        for flag in ["-v, --verbose", "--lossy", "--threads <N>"] {
            assert!(help.contains(flag), "{cmd} --help lacks {flag}");
        }
        let out = kompress(&[cmd, "-", "-q", "x", "--lossy"], b"ok \xff\xfe done\nmore\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = kompress(&["evict", "-", "-q", "x", "--lossy"], b"ok \xff done");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "ok \u{fffd} done\n");
}
