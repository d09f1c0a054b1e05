//! `POST /v1/llmlingua2/compress`: llmlingua's `compress_prompt_llmlingua2` over HTTP, for the clients
//! of the `llmlingua-api` wrappers. The body is `{"context": str | [str], ...}` plus any of the call's
//! keyword arguments (`rate`, `target_token`, `force_tokens`, ...) and `model`, the served model to run
//! on (the default one when absent); the answer is llmlingua's result dict.
//! Its forward passes go through the server's batcher like every other route's.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::admission::Ticket;
use super::api::Asked;
use super::error::ApiError;
use super::{ModelId, Shared};
use crate::llmlingua2::Options;
use crate::method::{Call, Method};

/// A request: its contexts and the call's options.
#[derive(serde::Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub(crate) struct LlmLingua2Body {
    model: Option<String>,
    context: Vec<String>,
    options: Options,
    #[serde(skip)]
    id: ModelId,
}

impl TryFrom<Map<String, Value>> for LlmLingua2Body {
    type Error = String;

    fn try_from(mut body: Map<String, Value>) -> Result<Self, String> {
        let model = super::options::model_field(&mut body)?;
        let context = match body.remove("context") {
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err("\"context\" must be a string or a list of strings".to_string()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("\"context\" must be a string or a list of strings".into()),
            None => return Err("missing field `context`".into()),
        };
        let options: Options = super::options::method_options(body)?;
        Ok(Self { model, context, options, id: ModelId::default() })
    }
}

impl super::api::Work for LlmLingua2Body {
    /// One admission unit per 350 words of each context (at least one each): about llmlingua's
    /// 510-token chunks.
    fn admit(&mut self, s: &Shared, _: &Asked) -> Result<usize, ApiError> {
        self.id = s.pick_in_body(self.model.as_deref())?;
        let engine = s.engine(self.id);
        if engine.methods.check(Method::LlmLingua2).is_err() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the server's model `{}` ({}) is not an LLMLingua-2 (BERT / XLM-RoBERTa) checkpoint",
                    engine.name, engine.source
                ),
            ));
        }
        super::api::check_items(s, self.context.len(), "contexts", "context")?;
        Ok(self.context.iter().map(|c| super::api::windows(c)).sum())
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let engine = s.engine(self.id);
        let scorer = s.batcher()?.scorer(&engine.model, ticket.clone())?;
        let contexts: Vec<&str> = self.context.iter().map(String::as_str).collect();
        let result =
            engine.methods.run(&scorer, Call::LlmLingua2 { contexts: &contexts, options: &self.options })?;
        Ok(serde_json::to_value(result).expect("a result serialises"))
    }
}

/// The route's handler (routes of their own module: `api` knows no method's body).
pub(crate) async fn route(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    super::api::handle::<LlmLingua2Body>(s, headers, body).await
}
