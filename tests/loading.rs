//! Loading failures: each is a typed error with a one-line message that names the cause.

mod common;

use std::path::Path;

use candle_core::{DType, Device};
use common::*;
use kompress::weights::Weights;
use kompress::{Error, HubOptions, Kompress, LoadOptions, ModelFiles};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kompress-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of a fixture model directory, to be damaged by the test.
fn copy_model(name: &str, tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    for entry in std::fs::read_dir(model_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Replaces `from` by `to` in a copied model's config.json; `from` must be there.
fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "config.json has no {from}");
    std::fs::write(path, text.replace(from, to)).unwrap();
}

fn load_err(dir: &Path) -> Error {
    match Kompress::from_dir(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

fn one_line(err: &Error) -> String {
    let msg = err.to_string();
    assert!(!msg.contains('\n'), "multi-line error: {msg}");
    msg
}

#[test]
fn directory_without_weights() {
    let dir = copy_model("v4", "noweights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let msg = one_line(&load_err(&dir));
    assert!(msg.contains("no weights (merged.pt, model.safetensors or pytorch_model.bin)"), "{msg}");
}

#[test]
fn missing_directory_and_files() {
    assert!(one_line(&load_err(Path::new("/nonexistent/model"))).contains("does not exist"));
    let file = model_dir("v4").join("config.json");
    assert!(one_line(&load_err(&file)).contains("not a directory"));
    let dir = copy_model("v4", "notok");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert!(one_line(&load_err(&dir)).contains("no tokenizer.json"));
}

#[test]
fn a_missing_path_that_cannot_be_a_repo_id_is_a_missing_directory() {
    // Offline, so that a path mistaken for a repo id fails in the cache rather than on the network.
    let hub = HubOptions { offline: true, cache_dir: Some(temp_dir("emptycache")), ..Default::default() };
    for model in ["/nonexistent/model", "./no-such-model", "../no-such-model", "models/kompress/base"] {
        let err = ModelFiles::locate(model, &hub).unwrap_err();
        assert!(matches!(err, Error::ModelDir { .. }), "{model}: {err}");
        assert!(one_line(&err).contains("does not exist"), "{model}: {err}");
    }
    for repo in ["chopratejas/kompress-base", "bert-base-uncased", "org/model.v2_x"] {
        assert!(
            matches!(ModelFiles::locate(repo, &hub), Err(Error::NotCached { offline: true, .. })),
            "{repo}"
        );
    }
}

#[test]
fn truncated_and_corrupt_safetensors() {
    let dir = copy_model("v4", "truncated");
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let msg = one_line(&load_err(&dir));
    assert!(msg.contains("cannot read checkpoint") && msg.contains("model.safetensors"), "{msg}");

    std::fs::write(&file, b"this is not a safetensors file").unwrap();
    assert!(one_line(&load_err(&dir)).contains("cannot read checkpoint"));
}

#[test]
fn truncated_safetensors_read_unmapped_name_the_tensor() {
    let dir = copy_model("v4", "truncated-unmapped");
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let err = Weights::open_unmapped(&file, &Device::Cpu).err().expect("a truncated file opened");
    let msg = one_line(&err);
    assert!(msg.contains("model.safetensors") && msg.contains("a truncated file?"), "{msg}");
}

/// The CPU reads checkpoints with plain reads (f32 straight into the tensor's buffer): every tensor
/// is bit for bit what the memory-mapped reader gives.
#[test]
fn read_and_mapped_checkpoints_hold_the_same_tensors() {
    for name in ["v4", "v5"] {
        let file = model_dir(name).join("model.safetensors");
        let (mapped, read) = (
            Weights::open(&file, &Device::Cpu).unwrap(),
            Weights::open_unmapped(&file, &Device::Cpu).unwrap(),
        );
        let bytes = std::fs::read(&file).unwrap();
        let header = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(header.len() > 5);
        for (tensor, view) in header.tensors() {
            let get = |w: &Weights| {
                let t = w.get(view.shape(), &tensor, DType::F32).unwrap();
                t.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(get(&mapped), get(&read), "{name}: {tensor}");
        }
    }
}

#[test]
fn corrupt_merged_pt() {
    let dir = copy_model("v2", "badpt");
    std::fs::write(dir.join("merged.pt"), b"PK\x03\x04 garbage").unwrap();
    assert!(one_line(&load_err(&dir)).contains("cannot read checkpoint"));
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes() {
    // The config says 40 hidden units, the weights hold 32: every tensor mismatches, and the first
    // one checked is named.
    let dir = copy_model("v4", "shape");
    edit_config(&dir, "\"hidden_size\": 32", "\"hidden_size\": 40");
    match load_err(&dir) {
        Error::TensorShape { name, expected, found, .. } => {
            assert_eq!(name, "encoder.embeddings.tok_embeddings.weight");
            assert_eq!((expected[1], found[1]), (40, 32));
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_model("v4", "missing");
    edit_config(&dir, "\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5");
    let msg = one_line(&load_err(&dir));
    assert!(msg.contains("`encoder.layers.4.attn_norm.weight` is missing"), "{msg}");
}

#[test]
fn unknown_config_dialect() {
    let dir = copy_model("v5", "dialect");
    edit_config(&dir, "sliding_attention", "chunked_attention");
    let msg = one_line(&load_err(&dir));
    assert!(msg.contains("config.json") && msg.contains("chunked_attention"), "{msg}");
}

#[test]
fn too_long_input_is_an_error() {
    let model = Kompress::from_dir(model_dir("v4"), &LoadOptions::default()).unwrap();
    let words = vec!["word"; 600];
    match model.score_words(&words) {
        Err(Error::TooLong { max: 512, .. }) => {}
        other => panic!("unexpected {:?}", other.map(|s| s.input_ids.len())),
    }
}

/// Lays out a fake Hugging Face cache of chopratejas/kompress-base (`models--org--name/snapshots/<rev>/...`
/// plus `refs/main`).
fn fake_cache(files: &[(&str, &Path)]) -> std::path::PathBuf {
    fake_repo_cache("chopratejas/kompress-base", files)
}

/// The same for any repo, in a directory of its own (tests run in parallel).
fn fake_repo_cache(repo_id: &str, files: &[(&str, &Path)]) -> std::path::PathBuf {
    let cache = temp_dir(&format!("hfcache-{}", repo_id.replace('/', "--")));
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let snapshot = repo.join("snapshots/0123456789abcdef");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    for (name, src) in files {
        std::fs::copy(src, snapshot.join(name)).unwrap();
    }
    cache
}

#[test]
fn offline_hub_resolution_uses_the_cache_and_names_missing_files() {
    let src = model_dir("v4");
    let hub = |cache| HubOptions { offline: true, cache_dir: Some(cache), ..Default::default() };
    let cache = fake_cache(&[
        ("model.safetensors", &src.join("model.safetensors")),
        ("config.json", &src.join("config.json")),
        ("tokenizer.json", &src.join("tokenizer.json")),
    ]);
    let files = ModelFiles::from_hub("chopratejas/kompress-base", &hub(cache.clone())).unwrap();
    assert!(files.weights.ends_with("model.safetensors"));
    let opts = LoadOptions { hub: hub(cache), ..Default::default() };
    let model = Kompress::from_pretrained("chopratejas/kompress-base", &opts).unwrap();
    assert_eq!(model.config().num_layers(), 4);

    // Without tokenizer.json the fallback is ModernBERT-base at the pinned revision, absent here.
    let cache = fake_cache(&[
        ("model.safetensors", &src.join("model.safetensors")),
        ("config.json", &src.join("config.json")),
    ]);
    let err = ModelFiles::from_hub("chopratejas/kompress-base", &hub(cache)).unwrap_err();
    let msg = one_line(&err);
    let base = format!("answerdotai/ModernBERT-base@{}: offline", kompress::hub::BASE_REVISION);
    assert!(msg.contains(&base) && msg.ends_with("holds no tokenizer.json of it"), "{msg}");
}

/// An LLMLingua-2 repo's own `config.json` (BERT, XLM-R) is used, not swapped for ModernBERT-base's
/// (which a Kompress repo without an encoder config gets).
#[test]
fn offline_hub_resolution_keeps_llmlingua2_configs() {
    for (repo, tiny) in [
        (
            "microsoft/llmlingua-2-bert-base-multilingual-cased-meetingbank",
            "llmlingua-2-bert-base-multilingual-cased-tiny",
        ),
        ("microsoft/llmlingua-2-xlm-roberta-large-meetingbank", "llmlingua-2-xlm-roberta-large-tiny"),
    ] {
        // As saved, and with `"architectures": null` (transformers 5.x, issue 29).
        let nulled = copy_model(tiny, &format!("hub-arch-null-{tiny}"));
        edit_config(&nulled, "\"architectures\": [", "\"architectures\": null, \"was\": [");
        for src in [model_dir(tiny), nulled] {
            let files: Vec<(&str, std::path::PathBuf)> =
                ["model.safetensors", "config.json", "tokenizer.json"].map(|f| (f, src.join(f))).into();
            let files: Vec<(&str, &Path)> = files.iter().map(|(f, p)| (*f, p.as_path())).collect();
            let hub = HubOptions {
                offline: true,
                cache_dir: Some(fake_repo_cache(repo, &files)),
                ..Default::default()
            };
            let found = ModelFiles::from_hub(repo, &hub).unwrap();
            assert_eq!(
                std::fs::read(&found.config).unwrap(),
                std::fs::read(src.join("config.json")).unwrap(),
                "{repo}"
            );
            let opts = LoadOptions { hub, dtype: kompress::DTypeChoice::F32, ..Default::default() };
            let model = Kompress::from_pretrained(repo, &opts).unwrap();
            assert_eq!(model.config().num_layers(), 2, "{repo}");
        }
    }
}

/// Every fixture model: both ModernBERT dialects (v4 and v2: transformers 4.x's `global_attn_every_n_layers`
/// and `*_rope_theta`; v5 and nospan: 5.x's `layer_types` and `rope_parameters`), BERT and XLM-R.
const ALL_MODELS: [&str; 6] = [
    "v4",
    "v2",
    "v5",
    "nospan",
    "llmlingua-2-bert-base-multilingual-cased-tiny",
    "llmlingua-2-xlm-roberta-large-tiny",
];

type Fields = serde_json::Map<String, serde_json::Value>;

fn read_config(dir: &Path) -> Fields {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

fn write_config(dir: &Path, fields: &Fields) {
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(fields).unwrap()).unwrap();
}

/// What loading a model directory gives: its config and a short text's scores (every float as its
/// bits), or the error's message.
fn outcome(dir: &Path) -> Result<String, String> {
    let model = Kompress::from_dir(dir, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let s = model.score_text("The quick brown fox, 42 times: naïve café déjà vu.").unwrap();
    assert!(!s.score.is_empty());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let logits: Vec<f32> = s.logits.iter().flatten().copied().collect();
    Ok(format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        model.scorer().family(),
        model.config(),
        s.input_ids,
        s.word_ids,
        bits(&logits),
        bits(&s.token_prob),
        s.span_score.as_deref().map(bits),
        bits(&s.score),
    ))
}

/// Issue 29: transformers 5.x writes `"architectures": null` for a model made from a config; every
/// fixture loads with it and scores bit for bit as unmodified.
#[test]
fn architectures_null_loads() {
    for name in ALL_MODELS {
        let want = outcome(&model_dir(name)).unwrap();
        let dir = copy_model(name, &format!("arch-null-{name}"));
        let mut fields = read_config(&dir);
        fields.insert("architectures".into(), serde_json::Value::Null);
        write_config(&dir, &fields);
        assert_eq!(outcome(&dir).unwrap(), want, "{name}");
    }
}

/// Each field of each fixture's config.json set to `null` loads (or fails) exactly as with the field left
/// out; and every field the fixture can do without (the optional ones whose default is the fixture's
/// value, and those not read), set to `null` all at once, scores bit for bit as the unmodified fixture.
#[test]
fn null_config_fields_read_as_left_out() {
    for name in ALL_MODELS {
        let want = outcome(&model_dir(name)).unwrap();
        let dir = copy_model(name, &format!("nulls-{name}"));
        let original = read_config(&dir);
        let mut optional = Vec::new();
        for key in original.keys() {
            let (mut nulled, mut removed) = (original.clone(), original.clone());
            nulled.insert(key.clone(), serde_json::Value::Null);
            removed.remove(key);
            write_config(&dir, &removed);
            let without = outcome(&dir);
            write_config(&dir, &nulled);
            assert_eq!(outcome(&dir), without, "{name}: {key}: null");
            // model_type is kept: without it, the family would come from the architectures, nulled too.
            if without.as_ref() == Ok(&want) && key != "model_type" {
                optional.push(key.clone());
            }
        }
        assert!(optional.iter().any(|k| k == "architectures"), "{name}: {optional:?}");
        let mut nulled = original.clone();
        for key in &optional {
            nulled.insert(key.clone(), serde_json::Value::Null);
        }
        write_config(&dir, &nulled);
        assert_eq!(outcome(&dir), Ok(want), "{name}: all of {optional:?} null");
    }
}

/// A required field (BERT's sizes) `null` is the one-line error of the field left out, naming it and the file.
#[test]
fn required_config_field_null_is_named() {
    for name in ["llmlingua-2-bert-base-multilingual-cased-tiny", "llmlingua-2-xlm-roberta-large-tiny"] {
        let dir = copy_model(name, &format!("required-null-{name}"));
        edit_config(&dir, "\"hidden_size\": 32", "\"hidden_size\": null");
        let msg = one_line(&load_err(&dir));
        let path = dir.join("config.json").display().to_string();
        assert!(msg.contains(&path) && msg.contains("missing field `hidden_size` (absent or null)"), "{msg}");
    }
}
