//! Word-level parity with Headroom 0.42's compression pipeline (`KompressCompressor.compress`), run
//! by `scripts/headroom_parity.py` on the fixture models: the same chunks, carries over the token cap,
//! keep rules (`card` = PyTorch `get_keep_mask`, `threshold` = ONNX rule score > 0.5, `ratio`),
//! must-keep words, table rows and reconstruction, under `Compat::Headroom`.

mod common;

use common::*;
use kompress::pipeline::{compress, Compat, CompressOptions, Mode, TokenCounter};
use kompress::{DTypeChoice, DeviceChoice, Kompress, LoadOptions};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    mode: String,
    ratio: f64,
    text: String,
    chunk_words: usize,
    chunk_tokens: usize,
    kept: Vec<usize>,
    passthrough: bool,
    compressed: String,
    original_words: usize,
}

impl Case {
    fn options(&self) -> CompressOptions {
        let mode = match self.mode.as_str() {
            "card" => Mode::Card,
            "threshold" => Mode::Threshold(0.5),
            "ratio" => Mode::Ratio(self.ratio),
            other => panic!("unknown mode {other}"),
        };
        CompressOptions {
            mode,
            chunk_words: self.chunk_words,
            chunk_tokens: self.chunk_tokens,
            compat: Compat::Headroom,
            count_tokens: TokenCounter::Words,
            explain: true,
            ..Default::default()
        }
    }
}

/// Compares every recorded case of one model; returns (agreeing words, words).
fn agreement(model_name: &str) -> (usize, usize) {
    let opts = LoadOptions { device: DeviceChoice::Cpu, dtype: DTypeChoice::F32, ..Default::default() };
    let model = Kompress::from_dir(model_dir(model_name), &opts).unwrap();
    let path = fixtures().join("pipeline").join(format!("{model_name}.json"));
    let recorded: Recorded<Case> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut agree, mut total) = (0, 0);
    for case in &recorded.cases {
        let ours = compress(&model, &case.text, &case.options()).unwrap();
        let words = ours.words.as_ref().unwrap();
        assert_eq!(
            (ours.original_words, ours.passthrough),
            (case.original_words, case.passthrough),
            "{}",
            case.name
        );
        let mut theirs = vec![false; case.original_words];
        case.kept.iter().for_each(|&i| theirs[i] = true);
        let same = words.iter().zip(&theirs).filter(|(d, &k)| d.kept == k).count();
        println!("{model_name}/{}/{}: {same}/{} words agree", case.name, case.mode, words.len());
        if same == words.len() {
            assert_eq!(
                ours.compressed, case.compressed,
                "{model_name}/{}/{}: same words, other text",
                case.name, case.mode
            );
        }
        (agree, total) = (agree + same, total + words.len());
    }
    (agree, total)
}

#[test]
fn word_decisions_match_headroom() {
    let (mut agree, mut total) = (0, 0);
    for name in ["v5", "v4", "v2"] {
        let (a, t) = agreement(name);
        (agree, total) = (agree + a, total + t);
    }
    println!(
        "agreement with Headroom 0.42: {agree}/{total} words ({:.3}%)",
        100.0 * agree as f64 / total as f64
    );
    assert_eq!(agree, total);
}
