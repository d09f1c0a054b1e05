//! LLMLingua-2 parity on the tiny fixture models of `scripts/llmlingua_fixtures.py` (a BERT with a
//! WordPiece tokenizer, an XLM-RoBERTa with a Unigram one): token ids identical and class-1
//! probabilities within 1e-4 of PyTorch; `compress_prompt_llmlingua2` results (compressed text, token
//! counts, rate and ratio strings) identical to llmlingua 0.2.2's.

mod common;

use std::collections::BTreeMap;

use common::*;
use kompress::llmlingua2::{LlmLingua2, Options};
use kompress::{DTypeChoice, Kompress, Linears, LoadOptions, WordEncoding};
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

/// A flat PyTorch state dict (`pytorch_model.bin`, scripts/state_dict_fixture.py) loads to the same
/// bits as the model's safetensors, in f32 and int8, and it is found in a model directory.
#[test]
fn pytorch_model_bin_reads_as_the_safetensors() {
    let safetensors = model_dir(LL_MODELS[0]);
    // The fixture's config and tokenizer beside the state dict, as a directory of its own.
    let bin = std::env::temp_dir().join(format!("kompress-test-state-dict-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(fixtures().join("state_dict/pytorch_model.bin"), bin.join("pytorch_model.bin")).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(safetensors.join(file), bin.join(file)).unwrap();
    }
    assert_eq!(kompress::ModelFiles::from_dir(&bin).unwrap().weights, bin.join("pytorch_model.bin"));
    for dtype in [DTypeChoice::F32, DTypeChoice::Int8] {
        let (a, b) = (
            Kompress::from_dir(&safetensors, &options(dtype)).unwrap(),
            Kompress::from_dir(&bin, &options(dtype)).unwrap(),
        );
        for want in fixture(LL_MODELS[0]).scores {
            let input = WordEncoding {
                input_ids: want.input_ids.clone(),
                word_ids: vec![None; want.input_ids.len()],
            };
            let (x, y) = (
                a.score_encodings(std::slice::from_ref(&input)).unwrap().remove(0),
                b.score_encodings(&[input]).unwrap().remove(0),
            );
            let bits = |v: &[f32]| v.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&x.token_prob), bits(&y.token_prob), "{dtype:?} {}", want.text);
        }
    }
}

/// The library's LLMLingua-2 loaders promise llmlingua's output, so `auto` loads f32 (not bf16, its
/// choice on CPUs where that beats f32); an explicit dtype stays.
#[test]
fn llmlingua2_loads_auto_as_f32() {
    for (dtype, want) in [(DTypeChoice::Auto, Linears::Native), (DTypeChoice::Int8, Linears::Int8)] {
        let compressor = LlmLingua2::from_dir(model_dir(LL_MODELS[0]), &options(dtype)).unwrap();
        assert_eq!(compressor.model().precision().linears, want, "{dtype:?}");
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
        (Options { rate: 0.0, ..Default::default() }, "rate 0: not in (0, 1]"),
        (Options { rate: 1e308, ..Default::default() }, "rate 100000000"),
        (Options { force_tokens: vec!["x".into(); 101], ..Default::default() }, "101 force tokens"),
    ] {
        let err = compressor.compress(&["some text"], &opts).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
    let err = LlmLingua2::from_dir(model_dir("v5"), &options(DTypeChoice::F32)).err().unwrap().to_string();
    assert!(err.contains("ModernBERT"), "{err}");
}

/// A context with no word to rank (only tokens the vocabulary lacks) keeps its text, where llmlingua
/// raises (`IndexError` in its percentile) and kompress used to return it empty.
#[test]
fn a_context_without_words_is_kept() {
    let compressor = LlmLingua2::from_dir(model_dir(LL_MODELS[0]), &options(DTypeChoice::F32)).unwrap();
    let out = compressor.compress(&["😀 🎉 🚀", "The meeting starts at nine."], &Options::default()).unwrap();
    assert_eq!(out.compressed_prompt_list[0], "😀 🎉 🚀");
    assert!(out.compressed_prompt_list[1].len() < "The meeting starts at nine.".len());
}

const MULTILINGUAL: [&str; 5] = ["chinese", "japanese", "arabic", "mixed", "code"];

/// Whether the non-whitespace characters of `part` appear in `whole` in order.
fn is_char_subsequence(part: &str, whole: &str) -> bool {
    let mut rest = whole.chars().filter(|c| !c.is_whitespace());
    part.chars().filter(|c| !c.is_whitespace()).all(|c| rest.any(|w| w == c))
}

/// Through the LLMLingua-2 algorithm, CJK, Arabic, mixed-script and emoji text only loses characters
/// (whole words, or pieces the tokenizer does not know): nothing is invented or reordered, up to the
/// tokenizer's own normalisation (NFKC for the Unigram one, as XLM-R's). (At a rate of
/// 1, llmlingua returns the decoded tokenization instead, `[UNK]` included: matched, and documented in
/// docs/LLMLINGUA2.md.)
#[test]
fn llmlingua2_multilingual_output_invents_nothing() {
    let texts = texts();
    for model in LL_MODELS {
        let compressor = LlmLingua2::from_dir(model_dir(model), &options(DTypeChoice::F32)).unwrap();
        let tokenizer = tokenizers::Tokenizer::from_file(model_dir(model).join("tokenizer.json")).unwrap();
        for key in MULTILINGUAL {
            let mut normalized = tokenizers::NormalizedString::from(texts[key].as_str());
            if let Some(n) = tokenizer.get_normalizer() {
                tokenizers::Normalizer::normalize(n, &mut normalized).unwrap();
            }
            for rate in [0.3, 0.6, 0.9] {
                let out =
                    compressor.compress(&[&texts[key]], &Options { rate, ..Default::default() }).unwrap();
                assert!(
                    is_char_subsequence(&out.compressed_prompt, normalized.get()),
                    "{model}/{key}/{rate}: {:?}",
                    out.compressed_prompt
                );
            }
        }
    }
}

/// Kompress's own pipeline with LLMLingua-2 models: whole words kept verbatim, in order, on their
/// lines; at ratio 1 the text comes back byte for byte.
#[test]
fn pipeline_with_llmlingua2_models_keeps_words_and_layout() {
    use kompress::pipeline::Mode;
    let texts = texts();
    for model in LL_MODELS {
        let kompress = Kompress::from_dir(model_dir(model), &options(DTypeChoice::F32)).unwrap();
        for key in MULTILINGUAL {
            let text = &texts[key];
            for ratio in [0.5, 1.0] {
                let opts = kompress::CompressOptions {
                    mode: Mode::Ratio(ratio),
                    min_words: 0,
                    ..Default::default()
                };
                let out = kompress::compress(&kompress, text, &opts).unwrap().compressed;
                let (lines_in, lines_out): (Vec<&str>, Vec<&str>) =
                    (text.lines().collect(), out.lines().collect());
                assert!(lines_out.len() <= lines_in.len(), "{model}/{key}: {out:?}");
                let mut words = text.split_whitespace();
                for w in out.split_whitespace() {
                    assert!(
                        words.any(|x| x == w),
                        "{model}/{key}: {w:?} is not an input word in order: {out:?}"
                    );
                }
                if ratio == 1.0 {
                    // Every word on its line (the pipeline writes one space between words).
                    assert_eq!(line_words(&out), line_words(text), "{model}/{key}");
                }
            }
        }
    }
}

fn line_words(text: &str) -> Vec<Vec<&str>> {
    text.lines().map(|l| l.split_whitespace().collect()).collect()
}
