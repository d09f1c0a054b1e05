//! The answers of the Headroom and SuperCompress contracts; our own routes answer with the results'
//! own JSON (`to_json_with_model`, `evict::CompressResult::to_json`), as the CLI prints it.

use serde_json::{json, Value};

use super::Engine;
use crate::evict;
use crate::CompressResult;

/// Headroom's remote Kompress answer; its counts and ratio are words, as Headroom's own compressor
/// reports them (the result's own ratio counts LLM tokens), with `passthrough_reason` when the text
/// passed through.
pub(crate) fn headroom(r: &CompressResult, engine: &Engine) -> Value {
    let ratio = match r.original_words {
        0 => 1.0,
        n => r.kept_words as f64 / n as f64,
    };
    let mut v = json!({
        "compressed": r.compressed,
        "original_tokens": r.original_words,
        "compressed_tokens": r.kept_words,
        "compression_ratio": ratio,
        "model_used": engine.source,
    });
    // An extra field, only when the text came back unchanged: Headroom's client reads the five above
    // and ignores the rest.
    if let Some(why) = r.passthrough_reason {
        v["passthrough_reason"] = json!(why);
    }
    // Likewise when the time budget ran out, or `target_ratio` could not be met.
    if let Some(why) = r.unscored_reason {
        v["unscored_reason"] = json!(why);
        v["scored_words"] = json!(r.scored_words);
    }
    if let Some(min) = r.min_ratio {
        v["over_budget"] = json!(true);
        v["min_ratio"] = json!(min);
    }
    v
}

/// SuperCompress's `/api/v1/compress` answer, rounded as its service rounds.
pub(crate) fn supercompress(r: &evict::CompressResult, lines: usize, budget_ratio: f64) -> Value {
    // A blank context comes back whole (the reference's `noop` result says 1.0).
    let kept_line_ratio = match r.policy.as_str() {
        "noop" => 1.0,
        _ => r.kept_lines.len() as f64 / lines.max(1) as f64,
    };
    json!({
        "compressed_text": r.compressed_text,
        "original_tokens": r.original_tokens,
        "kept_tokens": r.kept_tokens,
        "kv_savings_pct": round(r.kv_savings_pct, 2),
        "kept_line_ratio": round(kept_line_ratio, 3),
        "policy_name": r.policy,
        "budget_ratio": budget_ratio,
    })
}

/// SuperCompress's `/v1/compress/blocks` answer.
pub(crate) fn blocks(r: &evict::CompressResult, budget_ratio: f64) -> Value {
    json!({
        "compressed_text": r.compressed_text,
        "stats": {
            "original_tokens": r.original_tokens,
            "kept_tokens": r.kept_tokens,
            "kv_savings_pct": round(r.kv_savings_pct, 2),
            "policy_name": r.policy,
            "budget_ratio": budget_ratio,
        },
    })
}

/// Python's `round(x, digits)` for the magnitudes here (half-to-even differs only on exact ties).
fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}
