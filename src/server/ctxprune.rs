//! `POST /v1/ctxprune/compress`: ctxprune's `Compressor.compress` over HTTP. The body is
//! `{"text": str, ...}` plus any of the call's keyword arguments (`rate`, `threshold`,
//! `force_protected`, `keep_structure`, `unit`) and kompress's `measure` (a counter's name: ctxprune's
//! `measure` callable) and `target_tokens`, and `model`, the served model to run on (the default one
//! when absent); the answer is ctxprune's result dict `{text, kept, total}`. Any token classifier
//! serves it; its forward passes go through the server's batcher.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use serde_json::{Map, Value};

use super::admission::Ticket;
use super::api::Asked;
use super::error::ApiError;
use super::{ModelId, Shared};
use crate::ctxprune::Options;
use crate::method::Call;

/// A request: its text and the call's options.
#[derive(serde::Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub(crate) struct CtxpruneBody {
    model: Option<String>,
    text: String,
    options: Options,
    #[serde(skip)]
    id: ModelId,
}

impl TryFrom<Map<String, Value>> for CtxpruneBody {
    type Error = String;

    fn try_from(mut body: Map<String, Value>) -> Result<Self, String> {
        let model = super::options::model_field(&mut body)?;
        let text = match body.remove("text") {
            Some(Value::String(s)) => s,
            Some(_) => return Err("\"text\" must be a string".into()),
            None => return Err("missing field `text`".into()),
        };
        let options: Options = super::options::method_options(body)?;
        options.validate().map_err(|e| e.to_string())?;
        Ok(Self { model, text, options, id: ModelId::default() })
    }
}

impl super::api::Work for CtxpruneBody {
    /// One admission unit per 350 words (at least one): about one window of 510 tokens.
    fn admit(&mut self, s: &Shared, _: &Asked) -> Result<usize, ApiError> {
        self.id = s.pick_in_body(self.model.as_deref())?;
        Ok(super::api::windows(&self.text))
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let engine = s.engine(self.id);
        let scorer = s.batcher()?.scorer(&engine.model, ticket.clone())?;
        let result =
            engine.methods.run(&scorer, Call::Ctxprune { text: &self.text, options: &self.options })?;
        Ok(serde_json::to_value(result).expect("a result serialises"))
    }
}

/// The route's handler (routes of their own module: `api` knows no method's body).
pub(crate) async fn route(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    super::api::handle::<CtxpruneBody>(s, headers, body).await
}
