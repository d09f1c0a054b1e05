//! `kompress compress --compat llmlingua2` against llmlingua 0.2.2's recorded results.

mod common;

use common::*;
use serde_json::Value;

const BERT: &str = "llmlingua-2-bert-base-multilingual-cased-tiny";

fn case(name: &str) -> Value {
    let path = fixtures().join(format!("llmlingua2/{BERT}.json"));
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fixture["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone()
}

fn text(key: &str) -> String {
    let texts: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("llmlingua2/texts.json")).unwrap())
            .unwrap();
    texts[key].as_str().unwrap().to_string()
}

fn run(args: &[&str], stdin: &str) -> (String, String, bool) {
    let model = model_dir(BERT);
    let mut all = vec!["compress", "--compat", "llmlingua2", "-m", model.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_kompress(&all, &[], stdin.as_bytes());
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap(), out.status.success())
}

#[test]
fn plain_output_is_llmlingua_compressed_prompt() {
    let want = case("english_force");
    let (out, err, ok) = run(&["--ratio", "0.4", "--force-tokens", r"\n,?,.,\,"], &text("english"));
    assert!(ok, "{err}");
    assert_eq!(out, want["compressed_prompt"].as_str().unwrap());
    let (out, err, ok) = run(&["--target-tokens", "40", "--json"], &text("english"));
    assert!(ok, "{err}");
    let got: Value = serde_json::from_str(&out).unwrap();
    let want = case("english_target");
    for field in ["compressed_prompt", "origin_tokens", "compressed_tokens", "rate", "ratio"] {
        assert_eq!(got[field], want[field], "{field}");
    }
}

#[test]
fn jsonl_lines_are_calls_with_their_contexts() {
    let want = case("contexts_filter");
    let contexts = ["english", "code", "chinese", "dots"].map(text);
    let line = serde_json::json!({ "context": contexts }).to_string();
    let (out, err, ok) =
        run(&["--jsonl", "--ratio", "0.5", "--context-level-filter"], &format!("{line}\n\"one context.\"\n"));
    assert!(ok, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["compressed_prompt"], want["compressed_prompt"]);
    assert_eq!(lines[0]["compressed_tokens"], want["compressed_tokens"]);
    assert_eq!(lines[1]["line"], 2);
}

#[test]
fn bad_flags_are_named() {
    for (args, needle) in [
        (vec!["--mode", "card"], "--mode has no LLMLingua-2 equivalent"),
        (vec!["--force-tokens", r"a,\q"], "unknown escape"),
        (vec!["--ratio", "0"], "--ratio"),
        (vec!["--token-to-word", "last"], "token_to_word \"last\""),
    ] {
        let (_, err, ok) = run(&args, "some text.");
        assert!(!ok && err.contains(needle), "{args:?}: {err}");
    }
    let out =
        run_kompress(&["compress", "--drop-consecutive", "-m", model_dir(BERT).to_str().unwrap()], &[], b"x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--drop-consecutive needs --compat llmlingua2"));
}

/// `--compat` promises llmlingua's output, so `auto` runs f32 there (not bf16, `auto`'s choice on
/// CPUs where it beats f32); an explicit dtype is kept.
#[test]
fn compat_runs_auto_as_f32() {
    let model = model_dir(BERT);
    let model = model.to_str().unwrap();
    let want = case("english_force");
    for (dtype, shown) in [("auto", "as f32"), ("int8", "as int8")] {
        let args = ["compress", "-v", "--compat", "llmlingua2", "-m", model, "--ratio", "0.4"];
        let out = run_kompress(
            &[&args[..], &["--force-tokens", r"\n,?,.,\,"]].concat(),
            &[("KOMPRESS_DTYPE", dtype)],
            text("english").as_bytes(),
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success() && err.contains(shown), "{dtype}: {err}");
        if dtype == "auto" {
            assert_eq!(String::from_utf8(out.stdout).unwrap(), want["compressed_prompt"].as_str().unwrap());
        }
    }
    let v5 = model_dir("v5");
    let args = ["compress", "-v", "--compat", "headroom", "-m", v5.to_str().unwrap()];
    let out = run_kompress(&args, &[("KOMPRESS_DTYPE", "auto")], text("english").as_bytes());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success() && err.contains(" as f32,"), "{err}");
}
