//! The `kompress score` command end to end: output shape, and bad input handled without a panic.

mod common;

use std::process::Output;

use common::*;

fn kompress(args: &[&str], stdin: &[u8]) -> Output {
    run_kompress(args, &[], stdin)
}

fn score_json(model: &str, text: &str) -> serde_json::Value {
    let dir = model_dir(model);
    let out =
        kompress(&["score", "--json", "--device", "cpu", "--model", dir.to_str().unwrap()], text.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_matches_the_reference() {
    let (key, text) = inputs().into_iter().find(|(k, _)| k == "code").unwrap();
    let want = &expected("v5")[&key];
    let got = score_json("v5", &text);
    let ids: Vec<u32> = serde_json::from_value(got["input_ids"].clone()).unwrap();
    let word_ids: Vec<Option<u32>> = serde_json::from_value(got["word_ids"].clone()).unwrap();
    let score: Vec<f32> = serde_json::from_value(got["score"].clone()).unwrap();
    assert_eq!((ids, word_ids), (want.input_ids.clone(), want.word_ids.clone()));
    assert!(max_abs_diff(&score, &want.score) <= 1e-4);
    assert!(got["word_ids"][0].is_null());
}

#[test]
fn no_span_head_prints_null() {
    assert!(score_json("nospan", "a b c")["span_score"].is_null());
}

#[test]
fn empty_and_whitespace_input_print_an_empty_result() {
    for text in ["", "  \n\t \r\n"] {
        let got = score_json("v4", text);
        assert_eq!(got["input_ids"].as_array().unwrap().len(), 0);
        assert_eq!(got["score"].as_array().unwrap().len(), 0);
        // A model with a span head gives an empty list of span scores, one without gives null.
        assert_eq!(got["span_score"], serde_json::json!([]));
        assert!(score_json("nospan", text)["span_score"].is_null());
    }
}

fn assert_clean_failure(out: &Output, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: ") && err.contains(needle), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(!err.contains("panicked"));
    assert!(err.matches("(os error").count() <= 1, "a cause quoted twice: {err}");
}

#[test]
fn bad_input_fails_cleanly() {
    let v4 = model_dir("v4");
    let v4 = v4.to_str().unwrap();
    assert_clean_failure(&kompress(&["score", "--model", v4], b"caf\xe9 au lait"), "not valid UTF-8");
    assert_clean_failure(&kompress(&["score", "--model", v4, "/nonexistent/file"], b""), "/nonexistent/file");
    assert_clean_failure(
        &kompress(&["score", "--model", "/nonexistent/dir"], b"x"),
        "/nonexistent/dir: does not exist",
    );
    let (env, repo) = ([("HF_HOME", "/nonexistent")], "org/not-cached");
    assert_clean_failure(&run_kompress(&["score", "--model", repo, "--offline"], &env, b"x"), "offline");
    let env = [("HF_HUB_OFFLINE", "1"), ("HF_HOME", "/nonexistent")];
    let out = run_kompress(&["score", "--model", "org/not-cached"], &env, b"x");
    assert_clean_failure(
        &out,
        "org/not-cached@main: offline, and the HF cache /nonexistent/hub holds no merged.pt, model.safetensors or pytorch_model.bin",
    );
    // A bad flag value is a usage error from clap: one error line, then its usual hint.
    let out = kompress(&["score", "--model", v4, "--device", "tpu"], b"x");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).lines().next().unwrap().contains("unknown device \"tpu\""));
    if !cfg!(feature = "cuda") {
        assert_clean_failure(
            &kompress(&["score", "--model", v4, "--device", "cuda"], b"x"),
            "--features cuda",
        );
    }
    let long = "word ".repeat(600);
    assert_clean_failure(
        &kompress(&["score", "--model", v4], long.as_bytes()),
        "more than the model's maximum",
    );
}

#[test]
fn the_table_names_its_columns_once_each() {
    let out = kompress(
        &["score", "--device", "cpu", "--model", model_dir("v5").to_str().unwrap()],
        b"Do not delete it.\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["token", "id", "word_id", "prob", "span", "score", "word"]);
}
