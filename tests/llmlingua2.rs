//! LLMLingua-2 parity on the tiny fixture models of `scripts/llmlingua_fixtures.py` (a BERT with a
//! WordPiece tokenizer, an XLM-RoBERTa with a Unigram one): token ids identical and class-1
//! probabilities within 1e-4 of PyTorch; `compress_prompt_llmlingua2` results (compressed text, token
//! counts, rate and ratio strings) identical to llmlingua 0.2.2's.

mod common;

use std::collections::BTreeMap;

use common::*;
use kompress::llmlingua2::{LlmLingua2, Options};
use kompress::{DTypeChoice, Kompress, LoadOptions, WordEncoding};
use serde::Deserialize;

const LL_MODELS: [&str; 2] =
    ["llmlingua-2-bert-base-multilingual-cased-tiny", "llmlingua-2-xlm-roberta-large-tiny"];

#[derive(Deserialize)]
struct Fixture {
    scores: Vec<Scores>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Scores {
    text: String,
    input_ids: Vec<u32>,
    tokens: Vec<String>,
    token_prob: Vec<f32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Case {
    name: String,
    context: Keys,
    options: Options,
    compressed_prompt: String,
    compressed_prompt_list: Vec<String>,
    origin_tokens: usize,
    compressed_tokens: usize,
    ratio: String,
    rate: String,
}

fn fixture(model: &str) -> Fixture {
    let path = fixtures().join("llmlingua2").join(format!("{model}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

pub fn texts() -> BTreeMap<String, String> {
    let path = fixtures().join("llmlingua2/texts.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn options(dtype: DTypeChoice) -> LoadOptions {
    LoadOptions { device: test_device(), dtype, ..Default::default() }
}

#[test]
fn token_probabilities_match_pytorch() {
    let texts = texts();
    for model in LL_MODELS {
        let dir = model_dir(model);
        let kompress = Kompress::from_dir(&dir, &options(DTypeChoice::F32)).unwrap();
        let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
        for want in fixture(model).scores {
            let enc = tokenizer.encode(texts[&want.text].as_str(), true).unwrap();
            assert_eq!(enc.get_ids(), want.input_ids, "{model}/{}: ids", want.text);
            // `convert_ids_to_tokens`: an unknown piece reads as the unknown token.
            let tokens: Vec<String> =
                enc.get_ids().iter().map(|&id| tokenizer.id_to_token(id).unwrap()).collect();
            assert_eq!(tokens, want.tokens, "{model}/{}: tokens", want.text);
            let input = WordEncoding {
                input_ids: want.input_ids.clone(),
                word_ids: vec![None; want.input_ids.len()],
            };
            let got = kompress.score_encodings(&[input]).unwrap().remove(0);
            let diff =
                got.token_prob.iter().zip(&want.token_prob).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{model}/{}: token_prob differs by {diff}", want.text);
        }
    }
}

/// Int8 moves probabilities by quantisation only: far less than the spread the fixtures have.
#[test]
fn int8_probabilities_stay_close() {
    for model in LL_MODELS {
        let kompress = Kompress::from_dir(model_dir(model), &options(DTypeChoice::Int8)).unwrap();
        for want in fixture(model).scores {
            let input = WordEncoding {
                input_ids: want.input_ids.clone(),
                word_ids: vec![None; want.input_ids.len()],
            };
            let got = kompress.score_encodings(&[input]).unwrap().remove(0);
            let diff =
                got.token_prob.iter().zip(&want.token_prob).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 0.05, "{model}/{}: int8 token_prob differs by {diff}", want.text);
        }
    }
}

#[test]
fn compress_prompt_llmlingua2_matches_llmlingua() {
    let texts = texts();
    let mut failures = Vec::new();
    for model in LL_MODELS {
        let compressor = LlmLingua2::from_dir(model_dir(model), &options(DTypeChoice::F32)).unwrap();
        for case in fixture(model).cases {
            let context: Vec<&str> = match &case.context {
                Keys::One(k) => vec![texts[k].as_str()],
                Keys::Many(ks) => ks.iter().map(|k| texts[k].as_str()).collect(),
            };
            let got = compressor.compress(&context, &case.options).unwrap();
            let same = got.compressed_prompt == case.compressed_prompt
                && got.compressed_prompt_list == case.compressed_prompt_list
                && got.origin_tokens == case.origin_tokens
                && got.compressed_tokens == case.compressed_tokens
                && got.ratio == case.ratio
                && got.rate == case.rate;
            if !same {
                failures.push(format!(
                    "{model}/{}:\n  got  {:?} ({} -> {}, {}, {})\n  want {:?} ({} -> {}, {}, {})",
                    case.name,
                    got.compressed_prompt,
                    got.origin_tokens,
                    got.compressed_tokens,
                    got.ratio,
                    got.rate,
                    case.compressed_prompt,
                    case.origin_tokens,
                    case.compressed_tokens,
                    case.ratio,
                    case.rate
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}

/// Batching chunks gives the same result as one chunk per pass (the long text has several chunks).
#[test]
fn batch_size_does_not_change_the_output() {
    let texts = texts();
    let opts = Options { rate: 0.4, ..Default::default() };
    for model in LL_MODELS {
        let mut compressor = LlmLingua2::from_dir(model_dir(model), &options(DTypeChoice::F32)).unwrap();
        compressor.batch_size = 1;
        let single = compressor.compress(&[&texts["long"]], &opts).unwrap();
        compressor.batch_size = 16;
        assert_eq!(compressor.compress(&[&texts["long"]], &opts).unwrap(), single, "{model}");
    }
}

#[test]
fn bad_options_are_refused() {
    let compressor = LlmLingua2::from_dir(model_dir(LL_MODELS[0]), &options(DTypeChoice::F32)).unwrap();
    for (opts, needle) in [
        (Options { rate: 0.0, ..Default::default() }, "rate 0"),
        (Options { force_tokens: vec!["x".into(); 101], ..Default::default() }, "101 force tokens"),
    ] {
        let err = compressor.compress(&["some text"], &opts).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let err = LlmLingua2::from_dir(model_dir("v5"), &options(DTypeChoice::F32)).err().unwrap().to_string();
    assert!(err.contains("ModernBERT"), "{err}");
}
