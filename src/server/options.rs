//! Request bodies; their compression options map through [`CompressFields`], as the CLI's flags do.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::pipeline::CompressFields;

/// `POST /v1/compress`: one text or a list, and the options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompressBody {
    /// The served model to run on (the default one when absent).
    #[serde(default)]
    pub model: Option<String>,
    pub text: Texts,
    #[serde(default)]
    pub options: CompressFields,
}

/// A text or a list of texts.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub(crate) enum Texts {
    One(String),
    Many(Vec<String>),
}

/// `POST /compress`, Headroom's remote Kompress contract.
#[derive(Debug, Deserialize)]
pub(crate) struct HeadroomBody {
    pub content: String,
    #[serde(default)]
    pub target_ratio: Option<f64>,
}

fn default_query() -> String {
    // The SuperCompress service's own default.
    "Summarize this context.".into()
}

fn default_budget() -> f64 {
    0.35
}

/// `POST /api/v1/compress`, SuperCompress's client.
#[derive(Debug, Deserialize)]
pub(crate) struct SuperCompressBody {
    pub context: String,
    #[serde(default = "default_query")]
    pub query: String,
    #[serde(default = "default_budget")]
    pub budget_ratio: f64,
}

/// `POST /v1/compress/blocks`, SuperCompress's server route.
#[derive(Debug, Deserialize)]
pub(crate) struct BlocksBody {
    pub context_blocks: Vec<String>,
    #[serde(default = "default_query")]
    pub query: String,
    #[serde(default = "default_budget")]
    pub budget_ratio: f64,
}

/// `POST /v1/evict`: the options of `kompress evict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvictBody {
    pub context: String,
    pub question: String,
    #[serde(default = "default_budget")]
    pub budget: f64,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub seed: u32,
    #[serde(default)]
    pub annotate: bool,
}

/// The SuperCompress service's bounds on `budget_ratio` (its pydantic model: 0.05 to 1).
pub(crate) fn check_budget_ratio(r: f64) -> Result<(), (&'static str, String)> {
    match (0.05..=1.0).contains(&r) {
        true => Ok(()),
        false => Err(("budget_ratio", format!("{r} is not in [0.05, 1]"))),
    }
}

/// A method's options from the rest of a request body; an error names the field (`rate: invalid type:
/// string "0.5", expected f64`), as [`parse`](super::api) does for whole bodies.
pub(crate) fn method_options<T: serde::de::DeserializeOwned>(rest: Map<String, Value>) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Object(rest)).map_err(|e| match e.path().to_string().as_str() {
        "." | "?" => e.inner().to_string(),
        path => format!("{path}: {}", e.inner()),
    })
}

/// A method body's `model` field, taken out of it: the served model to run on (`None`: the default).
pub(crate) fn model_field(body: &mut Map<String, Value>) -> Result<Option<String>, String> {
    match body.remove("model") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(name)) => Ok(Some(name)),
        Some(_) => Err("model: must be a model's name (a string)".into()),
    }
}
