//! LLM token counts equal Python tiktoken's (`len(encode_ordinary(text))`), recorded by
//! `scripts/tiktoken_fixtures.py` for cl100k_base and o200k_base on the corners of their
//! pre-tokenizers, the real-text fixtures and the model fixtures' inputs.

#![cfg(feature = "llm-tokens")]

mod common;

use common::*;
use kompress::pipeline::TokenCounter;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    text: Option<String>,
    file: Option<String>,
    input: Option<String>,
    cl100k: usize,
    o200k: usize,
}

#[test]
fn counts_match_tiktoken() {
    let path = fixtures().join("tokens.json");
    let recorded: Recorded<Case> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let inputs: std::collections::HashMap<String, String> = inputs().into_iter().collect();
    assert!(recorded.cases.len() >= 20);
    for case in &recorded.cases {
        let text = match (&case.text, &case.file, &case.input) {
            (Some(t), ..) => t.clone(),
            (_, Some(f), _) => std::fs::read_to_string(fixtures().join(f)).unwrap(),
            (.., Some(i)) => inputs[i].clone(),
            _ => panic!("{}: no text", case.name),
        };
        let ours = (TokenCounter::Cl100k.count(&text).unwrap(), TokenCounter::O200k.count(&text).unwrap());
        assert_eq!(ours, (case.cl100k, case.o200k), "{}", case.name);
    }
}
