//! Helpers shared by the integration tests: fixture paths and the recorded reference outputs.

#![allow(dead_code)]

use std::path::PathBuf;

use serde::Deserialize;

/// `tests/fixtures` of this checkout, or of `KOMPRESS_REPO` for a test binary run on another machine.
pub fn fixtures() -> PathBuf {
    let repo = std::env::var_os("KOMPRESS_REPO").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(repo).join("tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// The device the model tests run on: `KOMPRESS_TEST_DEVICE` (e.g. `cuda`, from a test binary built
/// with `--features cuda`, see scripts/gpu_check.sh), else the CPU.
pub fn test_device() -> kompress::DeviceChoice {
    match std::env::var("KOMPRESS_TEST_DEVICE") {
        Ok(name) => name.parse().unwrap_or_else(|e| panic!("KOMPRESS_TEST_DEVICE: {e}")),
        Err(_) => kompress::DeviceChoice::Cpu,
    }
}

/// The fixture models: each is checked against its own recorded reference outputs.
pub const MODELS: [&str; 4] = ["v4", "v5", "nospan", "v2"];

/// Reference outputs recorded by `scripts/make_fixtures.py` for one input.
#[derive(Debug, Deserialize)]
pub struct Expected {
    pub input_ids: Vec<u32>,
    pub word_ids: Vec<Option<u32>>,
    pub hidden_shape: Vec<usize>,
    pub hidden: Vec<f32>,
    pub logits: Vec<f32>,
    pub token_prob: Vec<f32>,
    pub span_score: Option<Vec<f32>>,
    pub score: Vec<f32>,
}

/// A fixture file of recorded cases.
#[derive(Debug, Deserialize)]
pub struct Recorded<C> {
    pub cases: Vec<C>,
}

pub fn inputs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures().join("inputs.json")).unwrap();
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    map.into_iter().map(|(k, v)| (k, v.as_str().unwrap().to_string())).collect()
}

pub fn expected(model: &str) -> std::collections::BTreeMap<String, Expected> {
    let path = fixtures().join("expected").join(format!("{model}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Runs the `kompress` binary with `args`, extra environment and `stdin`, and collects its output.
/// HF_HUB_OFFLINE is cleared so that the caller's environment cannot change what is tested, and
/// KOMPRESS_DTYPE is f32 (the fixtures are f32's; `auto` is bf16 on CPUs with AMX-BF16) unless `env` or
/// `--dtype` says otherwise.
/// Only the tests that require the `cli` feature (Cargo.toml) call it: the binary exists only then.
#[cfg(feature = "cli")]
pub fn run_kompress(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kompress"))
        .args(args)
        .env_remove("HF_HUB_OFFLINE")
        .env("KOMPRESS_DTYPE", "f32")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kompress binary runs");
    // A command that fails on its arguments exits without reading its input: ignore the broken pipe.
    let _ = child.stdin.take().expect("stdin is piped").write_all(stdin);
    child.wait_with_output().expect("the kompress binary finishes")
}
