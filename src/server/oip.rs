//! KServe's Open Inference Protocol (v2), the REST form: `POST /v2/models/{name}/infer` takes one
//! `BYTES` input tensor of texts and answers Headroom's fields as output tensors (`compressed`,
//! `original_tokens`, `compressed_tokens`, `compression_ratio`: words, as `/compress` counts them);
//! the health, server and model metadata routes tell KServe (or Triton's clients) what is served.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admission::Ticket;
use super::api::{check_items, chunks, headroom_options, run_pipeline, Asked, Work};
use super::error::ApiError;
use super::runtimes::for_model;
use super::{render, ModelId, Shared};
use crate::CompressOptions;

/// The header of the binary tensor data extension (the JSON part's length).
const BINARY_HEADER: &str = "inference-header-content-length";

/// The output tensors, in answer order, with their datatypes.
const OUTPUTS: [(&str, &str); 4] = [
    ("compressed", "BYTES"),
    ("original_tokens", "INT64"),
    ("compressed_tokens", "INT64"),
    ("compression_ratio", "FP64"),
];

/// `GET /v2`: the server's metadata.
pub(crate) async fn server_metadata() -> Response {
    Json(json!({ "name": "kompress", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
        .into_response()
}

/// `GET /v2/health/live`.
pub(crate) async fn live() -> Response {
    Json(json!({ "live": true })).into_response()
}

/// `GET /v2/health/ready`: 503 until the models are loaded.
pub(crate) async fn ready(State(s): State<Arc<Shared>>) -> Response {
    match s.loaded.get() {
        Some(_) => Json(json!({ "ready": true })).into_response(),
        None => ApiError::busy("the model is loading", 1).into_response(),
    }
}

/// `GET /v2/models/{name}/ready`: 503 until the models are loaded.
pub(crate) async fn model_ready(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if let Err(e) = s.named(&name) {
        return e.into_response();
    }
    match s.loaded.get() {
        Some(_) => Json(json!({ "name": name, "ready": true })).into_response(),
        None => ApiError::busy("the model is loading", 1).into_response(),
    }
}

/// `GET /v2/models/{name}`: the model's metadata (its tensors), loaded or not.
pub(crate) async fn model_metadata(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if let Err(e) = s.named(&name) {
        return e.into_response();
    }
    let outputs: Vec<Value> =
        OUTPUTS.iter().map(|(n, t)| json!({ "name": n, "datatype": t, "shape": [-1] })).collect();
    Json(json!({
        "name": name,
        "versions": [],
        "platform": "kompress",
        "inputs": [{ "name": "text", "datatype": "BYTES", "shape": [-1] }],
        "outputs": outputs,
    }))
    .into_response()
}

/// `POST /v2/models/{name}/infer`.
pub(crate) async fn infer(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The binary tensor extension puts raw bytes after the JSON: say so, not "trailing characters".
    if headers.contains_key(BINARY_HEADER) {
        let message = "binary tensor data is not supported: send the texts as JSON (`binary_data=False`)";
        return ApiError::field("Inference-Header-Content-Length", message).into_response();
    }
    for_model::<Infer>(s, &name, headers, body).await
}

/// Request parameters: Headroom's `target_ratio`; KServe's own `content_type` and `headers`, and
/// Triton's client's `binary_data_output` (answers are JSON, which its client reads as well), are
/// accepted and have no effect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Parameters {
    #[serde(default)]
    target_ratio: Option<f64>,
    #[serde(default, rename = "binary_data_output")]
    _binary_data_output: Option<IgnoredAny>,
    #[serde(default, rename = "content_type")]
    _content_type: Option<IgnoredAny>,
    #[serde(default, rename = "headers")]
    _headers: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputTensor {
    /// Any name is taken: there is one input.
    #[serde(rename = "name")]
    _name: String,
    shape: Vec<i64>,
    datatype: String,
    /// KServe's `content_type` (`str`) and the like: BYTES are texts here.
    #[serde(default, rename = "parameters")]
    _parameters: Option<IgnoredAny>,
    data: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestedOutput {
    name: String,
    /// `binary_data` and the like: answers are JSON.
    #[serde(default, rename = "parameters")]
    _parameters: Option<IgnoredAny>,
}

/// The inference request, with its texts and options once admitted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Infer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Parameters,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
    #[serde(skip)]
    admitted: Option<(ModelId, Vec<String>, CompressOptions)>,
}

/// A BYTES tensor's elements, row-major (nested arrays flattened): strings only.
fn texts(data: Value, out: &mut Vec<String>) -> Result<(), ApiError> {
    match data {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.into_iter().try_for_each(|v| texts(v, out))?,
        other => {
            return Err(ApiError::field(
                "inputs[0].data",
                format!("BYTES data must be strings; element {} is {other}", out.len()),
            ))
        }
    }
    Ok(())
}

impl Infer {
    /// The input tensor's texts, checked against its declared shape and datatype.
    fn take_texts(&mut self) -> Result<Vec<String>, ApiError> {
        if self.inputs.len() != 1 {
            let n = self.inputs.len();
            return Err(ApiError::field(
                "inputs",
                format!("needs exactly one input tensor (of texts), not {n}"),
            ));
        }
        let input = &mut self.inputs[0];
        if input.datatype != "BYTES" {
            return Err(ApiError::field(
                "inputs[0].datatype",
                format!("is `{}`; the texts are a BYTES tensor", input.datatype),
            ));
        }
        let mut out = Vec::new();
        texts(input.data.take(), &mut out)?;
        let elements =
            input.shape.iter().try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)));
        if elements != Some(out.len() as u64) {
            return Err(ApiError::field(
                "inputs[0].shape",
                format!("{:?} does not hold the {} texts of `data`", input.shape, out.len()),
            ));
        }
        Ok(out)
    }

    /// The output tensors asked for (all of them when the request names none), in answer order.
    fn wanted(&self) -> Result<Vec<(&'static str, &'static str)>, ApiError> {
        let Some(asked) = &self.outputs else { return Ok(OUTPUTS.to_vec()) };
        for (i, o) in asked.iter().enumerate() {
            if !OUTPUTS.iter().any(|(n, _)| *n == o.name) {
                let names: Vec<&str> = OUTPUTS.iter().map(|(n, _)| *n).collect();
                return Err(ApiError::field(
                    format!("outputs[{i}].name"),
                    format!("no output `{}` (outputs: {})", o.name, names.join(", ")),
                ));
            }
        }
        Ok(OUTPUTS.into_iter().filter(|(n, _)| asked.iter().any(|o| o.name == *n)).collect())
    }
}

impl Work for Infer {
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
        self.wanted()?;
        let texts = self.take_texts()?;
        check_items(s, texts.len(), "texts", "inputs[0].data")?;
        let id = s.pick(asked.model.as_deref())?;
        let (opts, _) = headroom_options(s, id, asked, "", self.parameters.target_ratio)?;
        let cost = chunks(&texts.iter().map(String::as_str).collect::<Vec<_>>(), &opts);
        self.admitted = Some((id, texts, opts));
        Ok(cost)
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let wanted = self.wanted().expect("admitted");
        let &(id, ref texts, ref opts) = self.admitted.as_ref().expect("admitted");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let results = run_pipeline(s, id, ticket, &refs, opts)?;
        let engine = s.engine(id);
        let answers: Vec<Value> = results.iter().map(|r| render::headroom(r, engine)).collect();
        let outputs: Vec<Value> = wanted
            .into_iter()
            .map(|(name, datatype)| {
                let data: Vec<&Value> = answers.iter().map(|a| &a[name]).collect();
                json!({ "name": name, "datatype": datatype, "shape": [answers.len()], "data": data })
            })
            .collect();
        let mut answer = json!({ "model_name": engine.name, "outputs": outputs });
        if let Some(id) = self.id {
            answer["id"] = json!(id);
        }
        Ok(answer)
    }
}
