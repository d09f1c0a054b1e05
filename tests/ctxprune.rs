//! ctxprune parity on the fixture token classifiers of `scripts/ctxprune_fixtures.py`: atoms identical to
//! ctxprune 0.2.1's `atomize`, atom scores within 1e-5 of its PyTorch run and token counts identical,
//! and every `compress` result (`{text, kept, total}`) identical, in f32.

mod common;

use std::collections::BTreeMap;

use common::*;
use kompress::ctxprune::atoms::is_protected;
use kompress::ctxprune::{Ctxprune, Options};
use kompress::LoadOptions;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    max_len: usize,
    texts: BTreeMap<String, Text>,
    cases: Vec<Case>,
    protected: BTreeMap<String, bool>,
}

#[derive(Deserialize)]
struct Text {
    text: String,
    atoms: Vec<(String, String)>,
    scores: Vec<f64>,
    tokens: Vec<usize>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    options: Options,
    result: Expected,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Expected {
    text: String,
    kept: usize,
    total: usize,
}

/// The models scripts/ctxprune_fixtures.py records, with their fixtures: ctxprune's own kind (a
/// ModernBertForTokenClassification with an mmBERT-style tokenizer) and a BERT, since ctxprune runs any
/// token classifier.
const MODELS: [&str; 2] = ["ctxprune-tiny", "llmlingua-2-bert-base-multilingual-cased-tiny"];

fn models() -> Vec<(String, Fixture)> {
    MODELS
        .iter()
        .map(|name| {
            let path = fixtures().join("ctxprune").join(format!("{name}.json"));
            (name.to_string(), serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap())
        })
        .collect()
}

fn compressor(model: &str, max_len: usize) -> Ctxprune {
    let mut c = Ctxprune::from_dir(fixtures().join("models").join(model), &LoadOptions::default()).unwrap();
    c.set_max_len(max_len).unwrap();
    c.batch_size = 4;
    c
}

#[test]
fn atoms_and_scores_are_ctxprunes() {
    for (model, fx) in models() {
        let c = compressor(&model, fx.max_len);
        for (name, t) in &fx.texts {
            let got = c.atom_scores(&t.text).unwrap();
            let atoms: Vec<(String, String)> =
                got.atoms.iter().map(|a| (a.ws.to_string(), a.text.to_string())).collect();
            assert_eq!(atoms, t.atoms, "{model}/{name}: atoms");
            assert_eq!(got.tokens, t.tokens, "{model}/{name}: tokens per atom");
            assert_eq!(got.scores.len(), t.scores.len());
            for (i, (a, b)) in got.scores.iter().zip(&t.scores).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{model}/{name}: atom {i} {:?} scores {a}, ctxprune {b}",
                    atoms[i]
                );
            }
        }
    }
}

#[test]
fn compress_is_ctxprunes() {
    for (model, fx) in models() {
        let c = compressor(&model, fx.max_len);
        for case in &fx.cases {
            let text = &fx.texts[&case.text].text;
            let got = c.compress(text, &case.options).unwrap();
            let got = Expected { text: got.text, kept: got.kept, total: got.total };
            assert_eq!(got, case.result, "{model}/{}: {:?}", case.text, case.options);
        }
    }
}

#[test]
fn protected_atoms_are_ctxprunes() {
    let (_, fx) = models().remove(0);
    for (atom, expected) in &fx.protected {
        assert_eq!(is_protected(atom), *expected, "is_protected({atom:?})");
    }
}

#[test]
fn bad_options_are_named() {
    let c = compressor("llmlingua-2-bert-base-multilingual-cased-tiny", 48);
    let err = |opts: Options| c.compress("some text", &opts).unwrap_err().to_string();
    assert_eq!(err(Options { rate: Some(1.5), ..Options::default() }), "rate 1.5: not in [0, 1]");
    assert_eq!(
        err(Options { threshold: Some(f64::NAN), ..Options::default() }),
        "threshold NaN: not in [0, 1]"
    );
    let mut c = c;
    assert!(c.set_max_len(2).unwrap_err().to_string().starts_with("max_len 2: must hold"));
}

/// `kompress compress --compat ctxprune` on the BERT fixture with the fixtures' window length.
fn cli(args: &[&str], stdin: &str) -> (String, String, bool) {
    let model = fixtures().join("models/llmlingua-2-bert-base-multilingual-cased-tiny");
    let mut all =
        vec!["compress", "--compat", "ctxprune", "-m", model.to_str().unwrap(), "--chunk-tokens", "48"];
    all.extend_from_slice(args);
    let out = run_kompress(&all, &[], stdin.as_bytes());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.success())
}

/// The recorded case of `text` with exactly `options`.
fn recorded(text: &str, options: serde_json::Value) -> (String, Expected) {
    let path = fixtures().join("ctxprune/llmlingua-2-bert-base-multilingual-cased-tiny.json");
    let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let case = fx["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"] == text && c["options"] == options)
        .unwrap();
    let result = serde_json::from_value(case["result"].clone()).unwrap();
    (fx["texts"][text]["text"].as_str().unwrap().to_string(), result)
}

#[test]
fn the_cli_prints_ctxprunes_results() {
    let (text, want) = recorded("paths", serde_json::json!({}));
    let (out, err, ok) = cli(&[], &text);
    assert!(ok, "{err}");
    assert_eq!(out, want.text);

    let options = serde_json::json!({"rate": 0.25, "measure": "cl100k", "force_protected": true});
    let (text, want) = recorded("paths", options);
    let (out, err, ok) =
        cli(&["--ratio", "0.25", "--count-tokens", "cl100k", "--force-protected", "--json"], &text);
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (got["text"].as_str().unwrap(), got["kept"].as_u64(), got["total"].as_u64()),
        (want.text.as_str(), Some(want.kept as u64), Some(want.total as u64))
    );

    let (text, want) = recorded(
        "json",
        serde_json::json!({"rate": 0.2, "force_protected": true, "keep_structure": true, "unit": "tokens"}),
    );
    let line = serde_json::json!({ "text": text }).to_string();
    let (out, err, ok) = cli(
        &["--jsonl", "--ratio", "0.2", "--force-protected", "--keep-structure", "--unit", "tokens"],
        &line,
    );
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!((got["text"].as_str().unwrap(), got["line"].as_u64()), (want.text.as_str(), Some(1)));
}

#[test]
fn target_tokens_keep_the_output_within_them() {
    let text = &models()[1].1.texts["licence"].text.clone();
    let (out, err, ok) = cli(&["--target-tokens", "40"], text);
    assert!(ok, "{err}");
    let n = kompress::pipeline::TokenCounter::Cl100k.count(&out).unwrap();
    assert!(n <= 40 && n > 20, "{n} tokens: {out:?}");
}

/// As llmlingua's `target_token` beats its `rate`, --target-tokens beats --ratio for the two methods
/// that take both; Kompress's pipeline refuses the pair, naming it.
#[test]
fn target_tokens_win_over_a_ratio() {
    let text = &models()[1].1.texts["licence"].text.clone();
    let (alone, _, _) = cli(&["--target-tokens", "40"], text);
    let (both, err, ok) = cli(&["--target-tokens", "40", "--ratio", "0.9"], text);
    assert!(ok, "{err}");
    assert_eq!(both, alone);
    let v5 = fixtures().join("models/v5");
    let out = run_kompress(
        &["compress", "-m", v5.to_str().unwrap(), "--target-tokens", "9", "--ratio", "0.5"],
        &[],
        b"x",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--target-tokens"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_cli_names_flags_ctxprune_has_not() {
    for (args, message) in [
        (&["--explain"][..], "--explain has no ctxprune equivalent"),
        (&["--drop-consecutive"][..], "--drop-consecutive needs --compat llmlingua2, not --compat ctxprune"),
        (&["--unit", "bytes"][..], "unit \"bytes\": expected \"chars\" or \"tokens\""),
    ] {
        let (_, err, ok) = cli(args, "some text");
        assert!(!ok && err.contains(message), "{args:?}: {err}");
    }
    let v5 = fixtures().join("models/v5");
    let out = run_kompress(&["compress", "-m", v5.to_str().unwrap(), "--keep-structure"], &[], b"x");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--keep-structure needs --compat ctxprune"));
}
