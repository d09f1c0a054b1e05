//! `--dtype int8` against its reference: scripts/int8_fixtures.py runs the PyTorch model with the same
//! int8 scheme emulated exactly (per-channel weights, per-token activations with round half to even,
//! integer products, the same dequantisation) and records the scores in
//! tests/fixtures/expected/int8.json.
//!
//! The integer products are exact on both sides, so what is left is f32 rounding elsewhere (norms,
//! attention, GELU: ~1e-7). Mostly that changes nothing: 10 of the 16 (model, input) cases matched to
//! 6e-7 when measured (2026-12-02). But now and then it moves an activation across a rounding boundary of
//! its quantisation; the flipped step (1/127 of its row's largest value) then moves that token's later
//! activations, and through global attention every token's: the other 6 cases differed by 1.3e-4 to
//! 1.2e-2 (the fixture models are 32 wide, so one value is a large share of a row). The test asserts both
//! classes: most cases exact, and every case within a flip's reach.

mod common;

use std::collections::BTreeMap;

use common::*;
use kompress::{DTypeChoice, DeviceChoice, Kompress, LoadOptions};
use serde::Deserialize;

/// A case that matched exactly: within f32 rounding of the scores (measured: at most 6e-7).
const EXACT: f32 = 1e-6;

/// The largest score difference allowed in a case with rounding-boundary flips (measured: 1.2e-2).
const FLIPPED: f32 = 2.5e-2;

#[derive(Deserialize)]
struct Case {
    token_prob: Vec<f32>,
    score: Vec<f32>,
}

fn load(name: &str, dtype: DTypeChoice) -> Kompress {
    let opts = LoadOptions { device: DeviceChoice::Cpu, dtype, ..Default::default() };
    Kompress::from_dir(model_dir(name), &opts).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

fn reference() -> BTreeMap<String, BTreeMap<String, Case>> {
    let path = fixtures().join("expected/int8.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Our int8 scores against the emulated reference: every case within [`FLIPPED`], and at least half of
/// them within [`EXACT`] on every token (10 of 16 measured).
#[test]
fn int8_scores_match_the_emulated_reference() {
    let reference = reference();
    let (mut cases, mut exact) = (0, 0);
    for name in MODELS {
        let model = load(name, DTypeChoice::Int8);
        assert_eq!(model.precision().name(), "int8");
        for (key, text) in inputs() {
            let want = &reference[name][&key];
            let got = model.score_text(&text).unwrap();
            let diff =
                max_abs_diff(&got.score, &want.score).max(max_abs_diff(&got.token_prob, &want.token_prob));
            let over = got.score.iter().zip(&want.score).filter(|(a, b)| (*a - *b).abs() > EXACT).count();
            println!(
                "{name}/{key}: max diff {diff:e}, {over} of {} tokens beyond {EXACT:e}",
                got.score.len()
            );
            assert!(diff <= FLIPPED, "{name}/{key}: scores differ by {diff}");
            cases += 1;
            exact += usize::from(diff <= EXACT);
        }
    }
    println!("{exact} of {cases} cases exact to {EXACT:e}");
    assert!(2 * exact >= cases, "only {exact} of {cases} cases exact to {EXACT:e}");
}

/// Keep decisions (score > 0.5) of int8 against f32, ours both: at least 97% agree on the fixtures
/// (measured: 2100 of 2140 tokens, 98.1%; the fixtures' random weights put many scores near 0.5).
#[test]
fn int8_keeps_what_f32_keeps() {
    let (mut tokens, mut agree, mut worst) = (0, 0, 0f32);
    for name in MODELS {
        let (int8, f32) = (load(name, DTypeChoice::Int8), load(name, DTypeChoice::F32));
        for (_, text) in inputs() {
            let (a, b) = (int8.score_text(&text).unwrap(), f32.score_text(&text).unwrap());
            tokens += a.score.len();
            agree += a.score.iter().zip(&b.score).filter(|(x, y)| (**x > 0.5) == (**y > 0.5)).count();
            worst = worst.max(max_abs_diff(&a.score, &b.score));
        }
    }
    println!("keep agreement int8 vs f32: {agree} of {tokens}, largest score difference {worst:e}");
    assert!(agree * 100 >= tokens * 97, "{agree} of {tokens} keep decisions agree");
}
