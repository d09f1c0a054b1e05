//! `--dtype bf16` (CPU), `int8-wo` and `int8-wo-g128` against their reference:
//! scripts/weight_only_fixtures.py runs the PyTorch model with each scheme emulated (bf16-rounded
//! weights and activations, or int8 weights read as q * scale, in f32 products) and records the scores
//! in tests/fixtures/expected/weight_only.json.
//!
//! int8-wo quantises nothing per call, so no rounding boundary can flip: its scores agree to f32
//! rounding (measured when recorded, 2026-12-06: at most 4.8e-6 over the 16 (model, input) cases).
//! bf16 rounds every activation entering a linear layer, and a last-bit difference of f32 rounding now
//! and then moves an activation across a bf16 rounding boundary (one bf16 step: 2^-8 of its value),
//! which moves every later score a little, as for `--dtype int8` (tests/int8_parity.rs): 6 of the 16
//! cases agreed to 1e-5, the largest difference was 8.8e-3. The test asserts both classes.

mod common;

use std::collections::BTreeMap;

use common::*;
use kompress::{DTypeChoice, DeviceChoice, Kompress, LoadOptions};
use serde::Deserialize;

/// f32 rounding of products summed in another order, through 6 layers.
const TOLERANCE: f32 = 1e-5;

/// The largest bf16 score difference allowed in a case with rounding-boundary flips (measured: 8.8e-3).
const FLIPPED: f32 = 2.5e-2;

#[derive(Deserialize)]
struct Case {
    token_prob: Vec<f32>,
    score: Vec<f32>,
}

type Reference = BTreeMap<String, BTreeMap<String, BTreeMap<String, Case>>>;

fn load(name: &str, dtype: DTypeChoice) -> Kompress {
    let opts = LoadOptions { device: DeviceChoice::Cpu, dtype, ..Default::default() };
    Kompress::from_dir(model_dir(name), &opts).unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

#[test]
fn weight_only_scores_match_the_emulated_reference() {
    let path = fixtures().join("expected/weight_only.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (form, dtype) in [
        ("bf16", DTypeChoice::BF16),
        ("int8-wo", DTypeChoice::Int8Wo),
        ("int8-wo-g128", DTypeChoice::Int8WoG128),
    ] {
        let (mut worst, mut cases, mut exact) = (0f32, 0, 0);
        for name in MODELS {
            let model = load(name, dtype);
            assert_eq!(model.precision().name(), form);
            for (key, text) in inputs() {
                let want = &reference[form][name][&key];
                let got = model.score_text(&text).unwrap();
                let diff = max_abs_diff(&got.score, &want.score)
                    .max(max_abs_diff(&got.token_prob, &want.token_prob));
                println!("{form} {name}/{key}: {diff:e}");
                let bound = if form == "bf16" { FLIPPED } else { TOLERANCE };
                assert!(diff <= bound, "{form} {name}/{key}: scores differ by {diff}");
                (worst, cases, exact) = (worst.max(diff), cases + 1, exact + usize::from(diff <= TOLERANCE));
            }
        }
        println!("{form}: {exact} of {cases} cases within {TOLERANCE:e}, the largest difference {worst:e}");
        assert!(4 * exact >= cases, "{form}: only {exact} of {cases} cases within {TOLERANCE:e}");
    }
}

/// The emulated reference is not f32's: bf16 and int8-wo move the fixture models' scores by far more
/// than the tolerance above, so the test above tells the forms apart from f32 (and from each other).
#[test]
fn the_forms_differ_from_f32_by_more_than_the_tolerance() {
    let text = inputs().into_iter().map(|(_, t)| t).max_by_key(String::len).unwrap();
    for name in MODELS {
        let f32 = load(name, DTypeChoice::F32).score_text(&text).unwrap();
        for dtype in [DTypeChoice::BF16, DTypeChoice::Int8Wo] {
            let got = load(name, dtype).score_text(&text).unwrap();
            let diff = max_abs_diff(&got.score, &f32.score);
            assert!(diff > 10.0 * TOLERANCE, "{dtype:?} {name}: only {diff} from f32");
        }
    }
}
