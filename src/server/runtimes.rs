//! The endpoint shapes of model-serving engines, so kompress drops into them as a custom runtime:
//! TorchServe (`POST /predictions/{name}`), KServe v1 (`POST /v1/models/{name}:predict`, also with
//! its `{"instances": [...]}` envelope) and SageMaker (`POST /invocations`, `GET /ping`) answer
//! Headroom's `/compress` contract. KServe's Open Inference Protocol v2 is in [`super::oip`]. A
//! route's `{name}` picks one of [`ServerConfig::model_names`](super::ServerConfig::model_names);
//! another name is a 404 that lists them (`/invocations` runs the default model).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::admission::Ticket;
use super::api::{check_items, chunks, handle_for, headroom_options, run_pipeline, Asked, Headroom, Work};
use super::error::ApiError;
use super::options::HeadroomBody;
use super::{render, ModelId, Shared};
use crate::CompressOptions;

/// Runs `W` on the model `name` names (a 404 unless the server serves one so named, before the body
/// is read).
pub(crate) async fn for_model<W: Work>(
    s: Arc<Shared>,
    name: &str,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match s.named(name) {
        Ok(_) => handle_for::<W>(s, Some(name.to_string()), headers, body).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /predictions/{name}`: TorchServe's inference route.
pub(crate) async fn torchserve(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    for_model::<Headroom>(s, &name, headers, body).await
}

/// `POST /v1/models/{name}:predict`: KServe's v1 protocol.
pub(crate) async fn kserve_v1(
    State(s): State<Arc<Shared>>,
    Path(verb): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(name) = verb.strip_suffix(":predict") else {
        return ApiError::new(StatusCode::NOT_FOUND, "no such route (KServe v1: /v1/models/{name}:predict)")
            .into_response();
    };
    for_model::<KServeV1>(s, name, headers, body).await
}

/// `GET /ping`: SageMaker's health check, healthy once the models are loaded.
pub(crate) async fn ping(State(s): State<Arc<Shared>>) -> Response {
    match s.loaded.get() {
        Some(_) => Json(json!({ "status": "healthy" })).into_response(),
        None => ApiError::busy("the model is loading", 1).into_response(),
    }
}

/// One KServe v1 instance: a text, or Headroom's body.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or an object with a `content` string")]
enum Instance {
    Text(String),
    Body(HeadroomBody),
}

impl Instance {
    fn parts(&self) -> (&str, Option<f64>) {
        match self {
            Instance::Text(t) => (t, None),
            Instance::Body(b) => (&b.content, b.target_ratio),
        }
    }
}

/// KServe v1's body: `{"instances": [...]}`, or Headroom's body as it is.
#[derive(Deserialize)]
pub(crate) struct KServeV1 {
    #[serde(default)]
    instances: Option<Vec<Instance>>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    target_ratio: Option<f64>,
    /// Each text's options, once admitted.
    #[serde(skip)]
    opts: Vec<CompressOptions>,
    #[serde(skip)]
    id: ModelId,
}

impl KServeV1 {
    /// The texts with their target ratios.
    fn texts(&self) -> Result<Vec<(&str, Option<f64>)>, ApiError> {
        match (&self.instances, &self.content) {
            (Some(list), None) => Ok(list.iter().map(Instance::parts).collect()),
            (None, Some(content)) => Ok(vec![(content.as_str(), self.target_ratio)]),
            (Some(_), Some(_)) => {
                Err(ApiError::field("instances", "give `instances` or `content`, not both"))
            }
            (None, None) => Err(ApiError::field("instances", "the body needs `instances` (or `content`)")),
        }
    }
}

impl Work for KServeV1 {
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
        let id = s.pick(asked.model.as_deref())?;
        let texts = self.texts()?;
        check_items(s, texts.len(), "instances", "instances")?;
        let mut opts = Vec::with_capacity(texts.len());
        for &(text, ratio) in &texts {
            opts.push(headroom_options(s, id, asked, text, ratio)?.0);
        }
        // Counted over all the instances at once (their options differ only in the ratio, which does
        // not change their chunks): a hundred short instances share a unit, as a list of texts does.
        let all: Vec<&str> = texts.iter().map(|(t, _)| *t).collect();
        let cost = opts.first().map_or(0, |o| chunks(&all, o));
        (self.opts, self.id) = (opts, id);
        Ok(cost)
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let texts = self.texts().expect("admitted");
        let engine = s.engine(self.id);
        let mut answers = Vec::with_capacity(texts.len());
        // Texts with the same options share forward passes.
        let paired: Vec<_> = texts.iter().map(|(t, _)| *t).zip(&self.opts).collect();
        for group in paired.chunk_by(|a, b| a.1 == b.1) {
            let texts: Vec<&str> = group.iter().map(|(t, _)| *t).collect();
            let results = run_pipeline(s, self.id, ticket, &texts, group[0].1)?;
            answers.extend(results.iter().map(|r| render::headroom(r, engine)));
        }
        Ok(match self.instances.is_some() {
            true => json!({ "predictions": answers }),
            false => answers.pop().expect("one text"),
        })
    }
}
