//! The ModernBERT encoder configuration, read from a Hugging Face `config.json` in either dialect.
//!
//! - transformers 4.x: `global_attn_every_n_layers`, `global_rope_theta`, `local_rope_theta`,
//!   `local_attention`, `norm_eps` (or `layer_norm_eps`);
//! - transformers 5.x: `layer_types`, `rope_parameters`, `sliding_window` (half window), `local_attention`.
//!
//! When a file carries both dialects, every value they both describe must agree: a contradiction is
//! an error rather than a silent choice. The one exception is the reference's own rule: an explicit
//! `layer_types` list wins over `global_attn_every_n_layers`, because transformers 5.x writes that
//! legacy field (default 3) into every config it saves, beside irregular lists such as kompress-small's.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The attention pattern of one encoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Full bidirectional attention, RoPE with the global theta.
    Global,
    /// Sliding-window attention (|i - j| <= window / 2), RoPE with the local theta.
    Local,
}

/// A resolved, validated ModernBERT configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub norm_eps: f64,
    /// One entry per layer, in order.
    pub layer_types: Vec<LayerKind>,
    pub global_rope_theta: f64,
    pub local_rope_theta: f64,
    /// Half of `local_attention`: a token attends to keys with |i - j| <= this.
    pub sliding_window: usize,
    pub pad_token_id: u32,
    /// Whether every LayerNorm (the encoder's, and a prediction head's `head.norm`) has a bias.
    /// ModernBERT's and mmBERT's have none (the default).
    pub norm_bias: bool,
    /// Whether a `ModernBertForTokenClassification`'s `head.dense` has a bias (default false).
    pub classifier_bias: bool,
    /// The activation between `head.dense` and `head.norm` of a `ModernBertForTokenClassification`, as
    /// transformers' `ACT2FN` names it (default `gelu`, the exact erf form); checked when that head is
    /// built ([`crate::heads::Activation::from_name`]), since Kompress checkpoints never use it.
    pub classifier_activation: String,
}

/// The fields of `config.json` this crate reads, in both dialects; everything is optional here and
/// resolved (with defaults and consistency checks) by [`Config::from_raw`].
///
/// Every field read from a `config.json` (here, in `rope_parameters`' entries, and in `bert.rs`) is an
/// `Option`, so that `null` reads as the field left out: transformers 5.x writes `null` for unset
/// fields (`"architectures": null` for a model made from a config). A field without a default is
/// resolved by [`required`].
#[derive(Debug, Default, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    norm_eps: Option<f64>,
    layer_norm_eps: Option<f64>,
    hidden_activation: Option<String>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    norm_bias: Option<bool>,
    global_attn_every_n_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
    global_rope_theta: Option<f64>,
    local_rope_theta: Option<f64>,
    /// An entry may be `null` too, the same as left out.
    rope_parameters: Option<BTreeMap<String, Option<RopeParameters>>>,
    local_attention: Option<usize>,
    sliding_window: Option<usize>,
    pad_token_id: Option<u32>,
    classifier_bias: Option<bool>,
    classifier_activation: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RopeParameters {
    rope_type: Option<String>,
    rope_theta: Option<f64>,
}

/// ModernBERT-base's values, used where a file leaves a field out (as transformers does).
mod defaults {
    pub const VOCAB: usize = 50368;
    pub const HIDDEN: usize = 768;
    pub const INTERMEDIATE: usize = 1152;
    pub const LAYERS: usize = 22;
    pub const HEADS: usize = 12;
    pub const MAX_POSITIONS: usize = 8192;
    pub const NORM_EPS: f64 = 1e-5;
    pub const GLOBAL_EVERY: usize = 3;
    pub const GLOBAL_THETA: f64 = 160_000.0;
    pub const LOCAL_THETA: f64 = 10_000.0;
    pub const LOCAL_ATTENTION: usize = 128;
    pub const PAD: u32 = 50283;
}

impl Config {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(at_path(path))
    }

    /// Parses and validates the text of a `config.json`.
    ///
    /// ```
    /// let cfg = kompress::Config::from_json(r#"{"num_hidden_layers": 4, "global_attn_every_n_layers": 3}"#)?;
    /// assert_eq!(cfg.num_layers(), 4);
    /// assert_eq!(cfg.layer_types[3], kompress::LayerKind::Global);
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// The number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.layer_types.len()
    }

    /// The dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    fn from_raw(raw: RawConfig) -> Result<Self> {
        if let Some(kind) = &raw.model_type {
            if kind != "modernbert" {
                return Err(invalid(format!("model_type is \"{kind}\", expected \"modernbert\"")));
            }
        }
        check_unsupported(&raw)?;
        let hidden_size = positive("hidden_size", raw.hidden_size.unwrap_or(defaults::HIDDEN))?;
        let num_attention_heads =
            positive("num_attention_heads", raw.num_attention_heads.unwrap_or(defaults::HEADS))?;
        if hidden_size % num_attention_heads != 0 || (hidden_size / num_attention_heads) % 2 != 0 {
            return Err(invalid(format!(
                "hidden_size {hidden_size} must split into {num_attention_heads} heads of even size"
            )));
        }
        let (global_rope_theta, local_rope_theta) = rope_thetas(&raw)?;
        Ok(Config {
            vocab_size: positive("vocab_size", raw.vocab_size.unwrap_or(defaults::VOCAB))?,
            hidden_size,
            intermediate_size: positive(
                "intermediate_size",
                raw.intermediate_size.unwrap_or(defaults::INTERMEDIATE),
            )?,
            num_attention_heads,
            max_position_embeddings: positive(
                "max_position_embeddings",
                raw.max_position_embeddings.unwrap_or(defaults::MAX_POSITIONS),
            )?,
            norm_eps: norm_eps(&raw)?,
            layer_types: layer_types(&raw)?,
            global_rope_theta,
            local_rope_theta,
            sliding_window: sliding_window(&raw)?,
            pad_token_id: raw.pad_token_id.unwrap_or(defaults::PAD),
            norm_bias: raw.norm_bias.unwrap_or(false),
            classifier_bias: raw.classifier_bias.unwrap_or(false),
            classifier_activation: raw.classifier_activation.unwrap_or_else(|| "gelu".into()),
        })
    }
}

/// A config error of a text not yet tied to a file (`<json>`; see [`at_path`]).
pub(crate) fn invalid(reason: impl Into<String>) -> Error {
    Error::Config { path: "<json>".into(), reason: reason.into() }
}

/// Names `path` as the file of a config error from a `from_json`.
pub(crate) fn at_path(path: &Path) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Config { reason, .. } => Error::Config { path: path.display().to_string(), reason },
        other => other,
    }
}

/// The value of a `config.json` field that has no default: `None` (the field left out or `null`) is
/// an error naming the field.
pub(crate) fn required<T>(name: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| invalid(format!("missing field `{name}` (absent or null)")))
}

fn positive(name: &str, value: usize) -> Result<usize> {
    if value == 0 {
        return Err(invalid(format!("{name} must be positive")));
    }
    Ok(value)
}

/// Both values of a setting that two dialects describe, checked for agreement.
fn agree<T: PartialEq + std::fmt::Debug + Copy>(
    a: (&str, Option<T>),
    b: (&str, Option<T>),
) -> Result<Option<T>> {
    match (a.1, b.1) {
        (Some(x), Some(y)) if x != y => Err(invalid(format!("{} = {x:?} contradicts {} = {y:?}", a.0, b.0))),
        (x, y) => Ok(x.or(y)),
    }
}

fn check_unsupported(raw: &RawConfig) -> Result<()> {
    if let Some(act) = &raw.hidden_activation {
        if act != "gelu" {
            return Err(invalid(format!(
                "hidden_activation \"{act}\" is not supported (only the exact \"gelu\")"
            )));
        }
    }
    // LayerNorm biases (`norm_bias`) are read where present; linear-layer biases would need the
    // kernels' bias paths, and neither ModernBERT nor mmBERT (nor any checkpoint this crate runs) has them.
    for (name, value) in [("attention_bias", raw.attention_bias), ("mlp_bias", raw.mlp_bias)] {
        if value == Some(true) {
            return Err(invalid(format!(
                "{name} = true is not supported (ModernBERT and mmBERT checkpoints have no linear biases)"
            )));
        }
    }
    Ok(())
}

fn norm_eps(raw: &RawConfig) -> Result<f64> {
    let eps = agree(("norm_eps", raw.norm_eps), ("layer_norm_eps", raw.layer_norm_eps))?
        .unwrap_or(defaults::NORM_EPS);
    if !(eps > 0.0 && eps.is_finite()) {
        return Err(invalid(format!("norm_eps must be a positive number, got {eps}")));
    }
    Ok(eps)
}

fn layer_types(raw: &RawConfig) -> Result<Vec<LayerKind>> {
    let from_every = |layers: usize, every: usize| -> Result<Vec<LayerKind>> {
        let every = positive("global_attn_every_n_layers", every)?;
        Ok((0..layers).map(|i| if i % every == 0 { LayerKind::Global } else { LayerKind::Local }).collect())
    };
    let Some(names) = &raw.layer_types else {
        let layers = positive("num_hidden_layers", raw.num_hidden_layers.unwrap_or(defaults::LAYERS))?;
        return from_every(layers, raw.global_attn_every_n_layers.unwrap_or(defaults::GLOBAL_EVERY));
    };
    let kinds = names
        .iter()
        .map(|name| match name.as_str() {
            "full_attention" => Ok(LayerKind::Global),
            "sliding_attention" => Ok(LayerKind::Local),
            other => Err(invalid(format!(
                "unknown layer type \"{other}\" (expected \"full_attention\" or \"sliding_attention\")"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    if kinds.is_empty() {
        return Err(invalid("layer_types is empty"));
    }
    agree(("num_hidden_layers", raw.num_hidden_layers), ("the length of layer_types", Some(kinds.len())))?;
    Ok(kinds)
}

fn rope_thetas(raw: &RawConfig) -> Result<(f64, f64)> {
    let param = |kind: &str| -> Result<Option<f64>> {
        let Some(p) = raw.rope_parameters.as_ref().and_then(|m| m.get(kind)).and_then(Option::as_ref) else {
            return Ok(None);
        };
        if let Some(t) = p.rope_type.as_deref().filter(|t| *t != "default") {
            return Err(invalid(format!("rope_type \"{t}\" for {kind} is not supported (only \"default\")")));
        }
        Ok(p.rope_theta)
    };
    if let Some(map) = &raw.rope_parameters {
        let mut present = map.iter().filter(|(_, p)| p.is_some()).map(|(k, _)| k);
        if let Some(other) = present.find(|k| *k != "full_attention" && *k != "sliding_attention") {
            return Err(invalid(format!("unknown rope_parameters entry \"{other}\"")));
        }
    }
    let global = agree(
        ("rope_parameters.full_attention.rope_theta", param("full_attention")?),
        ("global_rope_theta", raw.global_rope_theta),
    )?
    .unwrap_or(defaults::GLOBAL_THETA);
    let local = agree(
        ("rope_parameters.sliding_attention.rope_theta", param("sliding_attention")?),
        ("local_rope_theta", raw.local_rope_theta),
    )?
    .unwrap_or(defaults::LOCAL_THETA);
    for (name, theta) in [("global", global), ("local", local)] {
        if !(theta > 0.0 && theta.is_finite()) {
            return Err(invalid(format!("{name} rope theta must be positive, got {theta}")));
        }
    }
    Ok((global, local))
}

fn sliding_window(raw: &RawConfig) -> Result<usize> {
    let from_local = raw.local_attention.map(|w| w / 2);
    let half = agree(("sliding_window", raw.sliding_window), ("local_attention / 2", from_local))?
        .unwrap_or(defaults::LOCAL_ATTENTION / 2);
    positive("sliding_window", half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_modernbert_base() {
        let cfg = Config::from_json("{}").unwrap();
        assert_eq!(cfg.num_layers(), 22);
        assert_eq!(cfg.head_dim(), 64);
        assert_eq!(cfg.sliding_window, 64);
        let globals: Vec<usize> = cfg
            .layer_types
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == LayerKind::Global)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(globals, vec![0, 3, 6, 9, 12, 15, 18, 21]);
        assert_eq!((cfg.global_rope_theta, cfg.local_rope_theta), (160_000.0, 10_000.0));
    }

    #[test]
    fn v5_dialect_with_irregular_layers() {
        let cfg = Config::from_json(
            r#"{"num_hidden_layers": 6, "sliding_window": 32,
                "layer_types": ["full_attention","sliding_attention","sliding_attention","full_attention","sliding_attention","full_attention"],
                "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1000.0},
                                    "sliding_attention": {"rope_theta": 50.0}}}"#,
        )
        .unwrap();
        use LayerKind::*;
        assert_eq!(cfg.layer_types, vec![Global, Local, Local, Global, Local, Global]);
        assert_eq!((cfg.global_rope_theta, cfg.local_rope_theta, cfg.sliding_window), (1000.0, 50.0, 32));
    }

    #[test]
    fn explicit_layer_types_win_over_the_legacy_period() {
        // As transformers 5.x saves kompress-small: the stale default period beside the real list.
        let cfg = Config::from_json(
            r#"{"global_attn_every_n_layers": 3,
                "layer_types": ["full_attention","sliding_attention","sliding_attention","full_attention","sliding_attention","full_attention"]}"#,
        )
        .unwrap();
        assert_eq!(cfg.layer_types[5], LayerKind::Global);
    }

    #[test]
    fn layer_norm_eps_alias() {
        assert_eq!(Config::from_json(r#"{"layer_norm_eps": 1e-6}"#).unwrap().norm_eps, 1e-6);
    }

    /// Every field `RawConfig` reads.
    const FIELDS: [&str; 23] = [
        "model_type",
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "max_position_embeddings",
        "norm_eps",
        "layer_norm_eps",
        "hidden_activation",
        "attention_bias",
        "mlp_bias",
        "norm_bias",
        "global_attn_every_n_layers",
        "layer_types",
        "global_rope_theta",
        "local_rope_theta",
        "rope_parameters",
        "local_attention",
        "sliding_window",
        "pad_token_id",
        "classifier_bias",
        "classifier_activation",
    ];

    /// `json` with each of `names` set to `null` (added where absent) and, separately, removed.
    fn nulled_and_removed(json: &str, names: &[&str]) -> (String, String) {
        let mut nulled: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        let mut removed = nulled.clone();
        for name in names {
            nulled.insert(name.to_string(), serde_json::Value::Null);
            removed.remove(*name);
        }
        (serde_json::Value::from(nulled).to_string(), serde_json::Value::from(removed).to_string())
    }

    /// transformers 5.x writes `null` for unset fields (`"architectures": null`, issue 29): every
    /// field, of either dialect, reads `null` as left out, alone and all at once.
    #[test]
    fn null_is_the_same_as_left_out() {
        let v4 = r#"{"model_type": "modernbert", "architectures": ["ModernBertModel"], "num_hidden_layers": 4,
            "hidden_size": 32, "num_attention_heads": 2, "global_attn_every_n_layers": 3,
            "global_rope_theta": 1000.0, "local_rope_theta": 50.0, "local_attention": 16, "norm_eps": 1e-6}"#;
        let v5 = r#"{"model_type": "modernbert", "num_hidden_layers": 3, "sliding_window": 8, "layer_norm_eps": 1e-6,
            "global_attn_every_n_layers": 3, "layer_types": ["full_attention", "sliding_attention", "full_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1000.0},
                                "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}}}"#;
        for base in ["{}", v4, v5] {
            let (nulled, removed) = nulled_and_removed(base, &FIELDS);
            assert_eq!(Config::from_json(&nulled).unwrap(), Config::from_json(&removed).unwrap(), "{nulled}");
            assert_eq!(Config::from_json(&removed).unwrap(), Config::from_json("{}").unwrap());
            // One field at a time: the same config, or (hidden_size without its heads) the same error.
            let read = |json: &str| Config::from_json(json).map_err(|e| e.to_string());
            for name in FIELDS.iter().chain(&["architectures"]) {
                let (nulled, removed) = nulled_and_removed(base, &[name]);
                assert_eq!(read(&nulled), read(&removed), "{nulled}");
            }
        }
        let with_arch = |arch: &str| Config::from_json(&format!(r#"{{"architectures": {arch}}}"#)).unwrap();
        assert_eq!(with_arch("null"), with_arch(r#"["ModernBertModel"]"#));
        // Inside rope_parameters: a null entry, or a null field of one, is left out too.
        let rope = |params: &str| Config::from_json(&format!(r#"{{"rope_parameters": {params}}}"#)).unwrap();
        assert_eq!(rope(r#"{"full_attention": null, "sliding_attention": null, "other": null}"#), rope("{}"));
        assert_eq!(
            rope(r#"{"full_attention": {"rope_type": null, "rope_theta": null}}"#),
            rope(r#"{"full_attention": {}}"#)
        );
        assert_eq!(
            rope(r#"{"full_attention": {"rope_type": null, "rope_theta": 7.0}}"#).global_rope_theta,
            7.0
        );
    }

    fn error_of(json: &str) -> String {
        Config::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn contradictions_and_unknowns_are_errors() {
        assert!(error_of(r#"{"norm_eps": 1e-5, "layer_norm_eps": 1e-6}"#).contains("contradicts"));
        assert!(error_of(r#"{"sliding_window": 32, "local_attention": 128}"#).contains("contradicts"));
        assert!(error_of(r#"{"num_hidden_layers": 3, "layer_types": ["full_attention"]}"#)
            .contains("contradicts"));
        assert!(error_of(r#"{"layer_types": ["full_attention", "chunked"]}"#).contains("chunked"));
        assert!(
            error_of(r#"{"rope_parameters": {"full_attention": {"rope_type": "yarn"}}}"#).contains("yarn")
        );
        assert!(error_of(
            r#"{"global_rope_theta": 1.0, "rope_parameters": {"full_attention": {"rope_theta": 2.0}}}"#
        )
        .contains("contradicts"));
        assert!(error_of(r#"{"model_type": "bert"}"#).contains("bert"));
        assert!(error_of(r#"{"hidden_activation": "silu"}"#).contains("silu"));
        assert!(error_of(r#"{"mlp_bias": true}"#).contains("mlp_bias"));
        assert!(error_of(r#"{"hidden_size": 100, "num_attention_heads": 12}"#).contains("heads"));
        assert!(error_of("[1, 2]").contains("invalid"));
    }
}
