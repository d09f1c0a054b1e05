//! transformers' `ModernBertForTokenClassification` (ctxprune's model, any fine-tuned ModernBERT / mmBERT
//! token classifier): keep probabilities within 2e-5 of PyTorch (tests/fixtures/ctxprune/scores.json, made
//! by scripts/ctxprune_model_fixture.py) alone and in a padded batch, for the default head and one with
//! every bias and the tanh GELU; both config dialects and `architectures` present, null or left out give
//! the same bits; a misshaped or missing head tensor, or another `ModernBertFor*` head, is a one-line
//! error naming it; the mmBERT-style tokenizer (byte-fallback BPE, `Replace(" ", "▁")`) encodes words
//! with their space marker and whole texts with offsets; and `kompress compress` runs on the model.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::*;
use kompress::{DTypeChoice, Error, Kompress, LoadOptions, WordEncoding};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    texts: BTreeMap<String, String>,
    models: BTreeMap<String, ModelScores>,
}

#[derive(Deserialize)]
struct ModelScores {
    singles: Vec<Single>,
    batch: Vec<Single>,
}

#[derive(Deserialize)]
struct Single {
    text: String,
    input_ids: Vec<u32>,
    #[serde(default)]
    tokens: Vec<String>,
    token_prob: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = fixtures().join("ctxprune/scores.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The recorded models: the default head, and the variant with every bias and `gelu_pytorch_tanh`.
fn models() -> [(&'static str, PathBuf); 2] {
    [("ctxprune-tiny", model_dir("ctxprune-tiny")), ("variant", fixtures().join("ctxprune/variant"))]
}

fn load(dir: &Path, dtype: DTypeChoice) -> kompress::Result<Kompress> {
    Kompress::from_dir(dir, &LoadOptions { device: test_device(), dtype, ..Default::default() })
}

/// Token ids as one sequence, the way a caller that adds its own specials scores them.
fn ids_only(ids: &[u32]) -> WordEncoding {
    WordEncoding { input_ids: ids.to_vec(), word_ids: vec![None; ids.len()] }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

/// PyTorch's probabilities are f32 sums in another order: 2e-5 bounds that rounding here; a wrong
/// activation, a missing bias or a wrong window is off by 1e-2 or more.
const TOLERANCE: f32 = 2e-5;

#[test]
fn keep_probabilities_match_pytorch() {
    let fixture = fixture();
    for (name, dir) in models() {
        let model = load(&dir, DTypeChoice::F32).unwrap();
        assert_eq!(model.scorer().architecture(), "ModernBertForTokenClassification");
        assert!(!model.has_span_head());
        let tokenizer = model.tokenizer().inner();
        let want = &fixture.models[name];
        for single in &want.singles {
            let text = &fixture.texts[&single.text];
            let enc = tokenizer.encode(text.as_str(), true).unwrap();
            assert_eq!(enc.get_ids(), single.input_ids, "{name}/{}: ids", single.text);
            let tokens: Vec<String> =
                enc.get_ids().iter().map(|&id| tokenizer.id_to_token(id).unwrap()).collect();
            assert_eq!(tokens, single.tokens, "{name}/{}: tokens", single.text);
            let got = model.score_encodings(&[ids_only(&single.input_ids)]).unwrap().remove(0);
            let diff = max_diff(&got.token_prob, &single.token_prob);
            assert!(diff < TOLERANCE, "{name}/{}: token_prob differs by {diff}", single.text);
            // Without a span head the score is the keep probability itself.
            assert_eq!(got.score, got.token_prob);
            assert!(got.word_ids.iter().all(Option::is_none));
        }
        // The longest text is longer than the sliding window (16), so local layers mask keys.
        assert!(want.singles.iter().any(|s| s.input_ids.len() > 64), "{name}");
        // Probabilities spread over (0, 1): a head that collapsed them would make the check weak.
        let every: Vec<f32> = want.singles.iter().flat_map(|s| s.token_prob.iter().copied()).collect();
        assert!(every.iter().any(|&p| p < 0.1) && every.iter().any(|&p| p > 0.9), "{name}");
    }
}

#[test]
fn a_padded_batch_matches_pytorch() {
    let fixture = fixture();
    for (name, dir) in models() {
        let model = load(&dir, DTypeChoice::F32).unwrap();
        let rows = &fixture.models[name].batch;
        let encodings: Vec<WordEncoding> = rows.iter().map(|r| ids_only(&r.input_ids)).collect();
        let got = model.score_encodings(&encodings).unwrap();
        for (row, got) in rows.iter().zip(&got) {
            let diff = max_diff(&got.token_prob, &row.token_prob);
            assert!(diff < TOLERANCE, "{name}/{} in the batch: token_prob differs by {diff}", row.text);
        }
    }
}

/// The narrow forms run the same model (the embedding table as int8 rows under int8 and int8-wo) and stay
/// near f32. The fixture's weights are scaled up so that its probabilities spread, which also magnifies
/// rounding (bf16 moves some probabilities by 0.04): the bounds are on the mean difference, a few times
/// what each form gives; a wrong row or tensor in a form moves the mean by 0.2 or more.
#[test]
fn narrow_forms_stay_near_f32() {
    let fixture = fixture();
    let dir = model_dir("ctxprune-tiny");
    let f32_model = load(&dir, DTypeChoice::F32).unwrap();
    for (dtype, bound) in [("int8", 0.05), ("int8-wo", 0.04), ("bf16", 0.015)] {
        let model = load(&dir, dtype.parse().unwrap()).unwrap();
        let (mut sum, mut n) = (0f32, 0);
        for single in &fixture.models["ctxprune-tiny"].singles {
            let input = [ids_only(&single.input_ids)];
            let (got, want) =
                (model.score_encodings(&input).unwrap(), f32_model.score_encodings(&input).unwrap());
            sum += got[0].token_prob.iter().zip(&want[0].token_prob).map(|(a, b)| (a - b).abs()).sum::<f32>();
            n += want[0].token_prob.len();
        }
        let mean = sum / n as f32;
        assert!(mean < bound, "{dtype}: token_prob differs from f32 by {mean} on average");
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kompress-tc-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A model directory beside the fixture: its tokenizer and weights linked, `config` written.
fn with_config(tag: &str, config: &serde_json::Value) -> PathBuf {
    with_files(tag, config, &model_dir("ctxprune-tiny").join("model.safetensors"))
}

fn with_files(tag: &str, config: &serde_json::Value, weights: &Path) -> PathBuf {
    let dir = temp_dir(tag);
    let source = model_dir("ctxprune-tiny");
    std::fs::copy(source.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    std::os::unix::fs::symlink(std::fs::canonicalize(weights).unwrap(), dir.join("model.safetensors"))
        .unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    dir
}

fn config() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(model_dir("ctxprune-tiny").join("config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The probabilities of every recorded text, as bits.
fn bits(model: &Kompress) -> Vec<Vec<u32>> {
    fixture().models["ctxprune-tiny"]
        .singles
        .iter()
        .map(|s| {
            let got = model.score_encodings(&[ids_only(&s.input_ids)]).unwrap().remove(0);
            got.token_prob.iter().map(|p| p.to_bits()).collect()
        })
        .collect()
}

/// transformers 4.x wrote `global_attn_every_n_layers`, `global_rope_theta` and `local_rope_theta`
/// where 5.x writes `layer_types` and `rope_parameters`: both read to the same model. `architectures`
/// present, `null` (transformers 5 for a model made from a config) or left out, and every optional head
/// field `null` or left out, change nothing: the tensor names tell the token-classification form.
#[test]
fn config_dialects_and_absent_fields_give_the_same_bits() {
    let want = bits(&load(&model_dir("ctxprune-tiny"), DTypeChoice::F32).unwrap());
    let v5 = config();
    let mut v4 = v5.clone();
    for field in ["layer_types", "rope_parameters"] {
        v4.remove(field).unwrap();
    }
    v4.insert("global_attn_every_n_layers".into(), 3.into());
    v4.insert("global_rope_theta".into(), 160000.0.into());
    v4.insert("local_rope_theta".into(), 10000.0.into());
    v4.insert("transformers_version".into(), "4.48.0".into());
    let mut variants = vec![("v4", v4.clone())];
    for (tag, base) in [("v5", &v5), ("v4", &v4)] {
        let mut nulled = base.clone();
        let mut removed = base.clone();
        for field in ["architectures", "classifier_activation", "classifier_bias", "norm_bias", "model_type"]
        {
            nulled.insert(field.into(), serde_json::Value::Null);
            removed.remove(field);
        }
        variants.push((if tag == "v5" { "v5-null" } else { "v4-null" }, nulled));
        variants.push((if tag == "v5" { "v5-absent" } else { "v4-absent" }, removed));
    }
    let mut named = v5.clone();
    named.insert("architectures".into(), serde_json::json!(["ModernBertForTokenClassification"]));
    variants.push(("named", named));
    for (tag, config) in variants {
        let dir = with_config(tag, &serde_json::Value::Object(config));
        let model = load(&dir, DTypeChoice::F32).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(model.config().sliding_window, 8, "{tag}");
        assert_eq!(bits(&model), want, "{tag}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A different activation or head bias setting does change the output: the fields are read, not ignored.
#[test]
fn head_fields_are_read() {
    let want = bits(&load(&model_dir("ctxprune-tiny"), DTypeChoice::F32).unwrap());
    let mut silu = config();
    silu.insert("classifier_activation".into(), "silu".into());
    let dir = with_config("act", &serde_json::Value::Object(silu));
    assert_ne!(bits(&load(&dir, DTypeChoice::F32).unwrap()), want, "classifier_activation");
    let _ = std::fs::remove_dir_all(dir);
    // Biases the checkpoint does not have are missing tensors, named.
    for (field, tensor) in
        [("classifier_bias", "head.dense.bias"), ("norm_bias", "model.embeddings.norm.bias")]
    {
        let mut config = config();
        config.insert(field.into(), true.into());
        let dir = with_config(field, &serde_json::Value::Object(config));
        let msg = one_line(&load(&dir, DTypeChoice::F32).err().expect("loads"));
        assert!(msg.contains(&format!("`{tensor}` is missing")), "{field}: {msg}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn one_line(err: &Error) -> String {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    msg
}

/// The fixture's tensors, with `edit` applied, saved as a new checkpoint.
fn edited_weights(tag: &str, edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> PathBuf {
    let path = model_dir("ctxprune-tiny").join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    edit(&mut tensors);
    let out = temp_dir(&format!("{tag}-weights")).join("model.safetensors");
    candle_core::safetensors::save(&tensors, &out).unwrap();
    out
}

#[test]
fn a_misshaped_or_missing_head_is_a_one_line_error_naming_the_tensor() {
    // (tag, tensor, its replacement's shape or `None` to remove it, the message).
    let cases: [(&str, &str, Option<&[usize]>, &str); 5] = [
        (
            "labels",
            "classifier.weight",
            Some(&[3, 64]),
            "tensor `classifier.weight` has shape [3, 64], expected [2, 64]",
        ),
        ("bias", "classifier.bias", Some(&[3]), "tensor `classifier.bias` has shape [3], expected [2]"),
        (
            "dense",
            "head.dense.weight",
            Some(&[32, 64]),
            "tensor `head.dense.weight` has shape [32, 64], expected [64, 64]",
        ),
        ("norm", "head.norm.weight", None, "tensor `head.norm.weight` is missing"),
        ("classifier", "classifier.weight", None, "tensor `classifier.weight` is missing"),
    ];
    for (tag, name, shape, needle) in cases {
        let weights = edited_weights(tag, |tensors| match shape {
            Some(shape) => {
                tensors.insert(
                    name.into(),
                    Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap(),
                );
            }
            None => {
                tensors.remove(name).unwrap();
            }
        });
        let dir = with_files(tag, &serde_json::Value::Object(config()), &weights);
        let msg = one_line(&load(&dir, DTypeChoice::F32).err().expect("loads"));
        assert!(msg.contains(needle), "{tag}: {msg}");
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(weights.parent().unwrap());
    }
}

#[test]
fn other_heads_and_activations_are_refused_by_name() {
    for (field, value, needle) in [
        (
            "architectures",
            serde_json::json!(["ModernBertForSequenceClassification"]),
            "architectures names ModernBertForSequenceClassification",
        ),
        (
            "classifier_activation",
            serde_json::json!("xielu"),
            "classifier_activation \"xielu\" is not supported",
        ),
    ] {
        let mut config = config();
        config.insert(field.into(), value);
        let dir = with_config(field, &serde_json::Value::Object(config));
        let msg = one_line(&load(&dir, DTypeChoice::F32).err().expect("loads"));
        assert!(msg.contains(needle) && msg.contains("config.json"), "{msg}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Kompress checkpoints keep loading as Kompress's dual-head model.
#[test]
fn kompress_checkpoints_stay_kompress() {
    for name in MODELS {
        let model = load(&model_dir(name), DTypeChoice::F32).unwrap();
        assert_eq!(model.scorer().architecture(), "KompressForTokenClassification", "{name}");
    }
}

/// The mmBERT-style tokenizer: pre-split words after the first carry their `▁` (as in the text they came
/// from, and as XLM-R's Metaspace gives them), with the right word ids; the other families' tokenizers
/// encode words as the references do (no space added).
#[test]
fn words_carry_their_space_marker() {
    let model = load(&model_dir("ctxprune-tiny"), DTypeChoice::F32).unwrap();
    let tokenizer = model.tokenizer();
    assert!(tokenizer.spaces_words());
    let words = ["Permission", "is", "hereby", "granted,", "/var/lib/app", "机器学习"];
    let enc = tokenizer.encode_words(&words).unwrap();
    let whole = tokenizer.inner().encode(words.join(" "), true).unwrap();
    // The same pieces as the text with single spaces, each tagged with its word.
    assert_eq!(enc.input_ids, whole.get_ids());
    assert_eq!(enc.word_ids.first(), Some(&None));
    assert_eq!(enc.word_ids.last(), Some(&None));
    let inner = tokenizer.inner();
    for (w, word) in words.iter().enumerate().skip(1) {
        let first = enc.word_ids.iter().position(|&id| id == Some(w as u32)).unwrap();
        let piece = inner.id_to_token(enc.input_ids[first]).unwrap();
        assert!(piece.starts_with('▁'), "{word}: first piece {piece:?}");
    }
    let tagged: Vec<u32> = enc.word_ids.iter().flatten().copied().collect();
    assert!(tagged.windows(2).all(|w| w[0] <= w[1]) && tagged.last() == Some(&5), "{tagged:?}");
    for name in ["v5", "llmlingua-2-xlm-roberta-large-tiny", "llmlingua-2-bert-base-multilingual-cased-tiny"]
    {
        assert!(!load(&model_dir(name), DTypeChoice::F32).unwrap().tokenizer().spaces_words(), "{name}");
    }
}

/// Whole texts with offsets (what ctxprune's atoms need): the pieces map back to the text, byte-fallback
/// pieces of one character share its range, specials get `(0, 0)`; an empty or blank text gives only the
/// specials; text of only CJK punctuation scores.
#[test]
fn texts_encode_with_offsets_and_edge_texts_score() {
    let fixture = fixture();
    let model = load(&model_dir("ctxprune-tiny"), DTypeChoice::F32).unwrap();
    let tokenizer = model.tokenizer();
    for single in &fixture.models["ctxprune-tiny"].singles {
        let text = &fixture.texts[&single.text];
        let enc = tokenizer.encode_text(text, true).unwrap();
        assert_eq!(enc.input_ids, single.input_ids, "{}", single.text);
        let n = enc.input_ids.len();
        assert_eq!(enc.special, (0..n).map(|i| i == 0 || i == n - 1).collect::<Vec<_>>());
        let mut end = 0;
        for (&(s, e), &special) in enc.offsets.iter().zip(&enc.special) {
            if special {
                assert_eq!((s, e), (0, 0));
                continue;
            }
            assert!(s < e && text.is_char_boundary(s) && text.is_char_boundary(e), "{}", single.text);
            end = end.max(e);
        }
        assert_eq!(end, text.len(), "{}", single.text);
        let bare = tokenizer.encode_text(text, false).unwrap();
        assert_eq!(bare.input_ids, enc.input_ids[1..n - 1], "{}", single.text);
    }
    for text in ["", " ", "\n\t  \n"] {
        let enc = tokenizer.encode_text(text, true).unwrap();
        assert!(enc.input_ids.len() <= 2 + text.len(), "{text:?}: {:?}", enc.input_ids);
        assert_eq!(model.score_text(text).unwrap(), kompress::TokenScores::default(), "{text:?}");
    }
    assert!(model.score_encodings(&[]).unwrap().is_empty());
    let got = model.score_text("。，！？、「」").unwrap();
    assert!(got.token_prob.iter().all(|p| (0.0..=1.0).contains(p)) && got.token_prob.len() > 2);
}

fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let model = model_dir("ctxprune-tiny");
    let mut full = vec!["compress", "--device", "cpu", "--model", model.to_str().unwrap()];
    full.extend_from_slice(args);
    run_kompress(&full, &[], stdin)
}

/// Kompress's own pipeline on the token classifier: it runs, keeps words whole and in order, keeps the
/// line layout, honours the ratio roughly, and handles empty input.
#[test]
fn the_default_pipeline_runs_on_the_model() {
    let fixture = fixture();
    let text = format!("{}\n\n{}\n", fixture.texts["licence"], fixture.texts["english"]);
    let out = run(&["--ratio", "0.5", "--json"], text.as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let compressed = json["compressed"].as_str().unwrap_or_else(|| panic!("{json}"));
    let (kept, all): (Vec<&str>, Vec<&str>) =
        (compressed.split_whitespace().collect(), text.split_whitespace().collect());
    assert!(!kept.is_empty() && kept.len() < all.len(), "{compressed:?}");
    // Every kept word is a word of the input, in order.
    let mut rest = all.iter();
    for word in &kept {
        assert!(rest.any(|w| w == word), "{word:?} is not a word of the input in order");
    }
    // The paragraphs stay apart: the licence's own blank line, then the one before the log line.
    assert_eq!(compressed.matches("\n\n").count(), text.matches("\n\n").count(), "{compressed:?}");
    for stdin in [&b""[..], b"   \n", "。，！".as_bytes()] {
        let out = run(&[], stdin);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
