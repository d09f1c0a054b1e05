//! The playground: `GET /` serves one self-contained page (`index.html`: HTML, CSS and plain JS, no
//! network but this server's own routes), open without the token like the health routes, since it
//! holds no data; the page sends the token (entered in it) to every data route it calls. Its own data
//! route, `POST /v1/playground/compress`, runs one method on one text and answers the compressed text,
//! its counts and every word's fate ([`crate::method::words`]).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::admission::Ticket;
use super::api::{self, Asked};
use super::error::ApiError;
use super::{ModelId, Shared};
use crate::method::{Call, Method, Output};
use crate::pipeline::{words::words, Compat, CompressFields, TokenCounter};
use crate::{ctxprune, llmlingua2, CompressOptions};

/// The page's path.
pub(crate) const PATH: &str = "/";

/// The page, embedded in the binary.
pub(crate) const PAGE: &str = include_str!("index.html");

/// The SHA-256 (base64) of the page's inline script and style: `scripts/playground_csp.py --write`
/// sets them after an edit of `index.html`; `tests/browser/test_playground.py` recomputes them from
/// the page served and fails when they are stale (the browser would refuse to run the page).
const SCRIPT_SHA256: &str = "s2/z923vyLKbfkS/8n5CbBooI301RSHar2Cml1n/85s=";
const STYLE_SHA256: &str = "corhhrhhReuqDAcOUkT6tBDQFxDWkE25dGig7QHEZxQ=";

/// The page's policy: its own inline script and style only (by their hashes, so no other inline code
/// runs, and no `eval`), fetches to this server only, nothing else loaded, no framing.
fn csp() -> String {
    format!(
        "default-src 'self'; script-src 'sha256-{SCRIPT_SHA256}'; style-src 'sha256-{STYLE_SHA256}'; \
         img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
         object-src 'none'"
    )
}

/// `GET /`: the page.
pub(crate) async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_str(&csp()).expect("an ASCII policy")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    (StatusCode::OK, headers, PAGE).into_response()
}

/// `POST /v1/playground/compress`.
pub(crate) async fn compress(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    api::handle::<PlaygroundBody>(s, headers, body).await
}

/// A method's options, parsed for its method.
enum Options {
    Pipeline(Box<CompressOptions>),
    LlmLingua2(Box<llmlingua2::Options>),
    Ctxprune(Box<ctxprune::Options>),
}

/// `{"model"?, "method", "text", "options"?}`.
#[derive(serde::Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub(crate) struct PlaygroundBody {
    model: Option<String>,
    method: Method,
    text: String,
    /// The options as sent: parsed against the server's defaults at admission.
    raw: Map<String, Value>,
    options: Option<Options>,
    id: ModelId,
}

impl TryFrom<Map<String, Value>> for PlaygroundBody {
    type Error = String;

    fn try_from(mut body: Map<String, Value>) -> Result<Self, String> {
        let model = super::options::model_field(&mut body)?;
        let method = match body.remove("method") {
            Some(Value::String(s)) => s.parse::<Method>().map_err(|e| format!("method: {e}"))?,
            Some(_) => return Err("method: must be a string".into()),
            None => return Err("missing field `method` (kompress, headroom, llmlingua2 or ctxprune)".into()),
        };
        let text = match body.remove("text") {
            Some(Value::String(s)) => s,
            Some(_) => return Err("text: must be a string".into()),
            None => return Err("missing field `text`".into()),
        };
        let raw = match body.remove("options") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(o)) => o,
            Some(_) => return Err("options: must be an object".into()),
        };
        if let Some(field) = body.keys().next() {
            return Err(format!("unknown field `{field}` (expected model, method, text, options)"));
        }
        Ok(Self { model, method, text, raw, options: None, id: ModelId::default() })
    }
}

impl api::Work for PlaygroundBody {
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
        self.id = s.pick_in_body(self.model.as_deref())?;
        let engine = s.engine(self.id);
        if self.text.trim().is_empty() {
            return Err(ApiError::field("text", "is empty: paste or drop a text to compress"));
        }
        engine.methods.check(self.method).map_err(|e| ApiError::field("method", e.to_string()))?;
        let raw = std::mem::take(&mut self.raw);
        let bad = |m: String| match m.split_once(": ") {
            Some((field, rest)) if !field.contains(' ') => ApiError::field(format!("options.{field}"), rest),
            _ => ApiError::field("options", m),
        };
        let (options, cost) = match self.method {
            Method::Kompress | Method::Headroom => {
                let fields: CompressFields = super::options::method_options(raw).map_err(bad)?;
                let mut opts = fields
                    .resolve(&api::defaults(s, asked))
                    .map_err(|(f, m)| ApiError::field(format!("options.{f}"), m))?;
                opts.compat = match self.method {
                    Method::Headroom => Compat::Headroom,
                    _ => Compat::Off,
                };
                api::bounded_batch(&mut opts, s);
                api::checked(&opts, engine)?;
                let cost = api::chunks(&[&self.text], &opts);
                (Options::Pipeline(Box::new(opts)), cost)
            }
            Method::LlmLingua2 => {
                let opts: llmlingua2::Options = super::options::method_options(raw).map_err(bad)?;
                (Options::LlmLingua2(Box::new(opts)), api::windows(&self.text))
            }
            Method::Ctxprune => {
                let opts: ctxprune::Options = super::options::method_options(raw).map_err(bad)?;
                opts.validate().map_err(|e| ApiError::field("options", e.to_string()))?;
                (Options::Ctxprune(Box::new(opts)), api::windows(&self.text))
            }
        };
        self.options = Some(options);
        Ok(cost)
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let engine = s.engine(self.id);
        let scorer = s.batcher()?.scorer(&engine.model, ticket.clone())?;
        let started = Instant::now();
        let text = self.text.as_str();
        let (output, views) = match self.options.expect("admitted") {
            Options::Pipeline(opts) => {
                let opts = api::within_deadline(&opts, ticket);
                engine.methods.words_with(&scorer, Call::Pipeline { texts: &[text], options: &opts })?
            }
            Options::LlmLingua2(opts) => {
                engine.methods.words_with(&scorer, Call::LlmLingua2 { contexts: &[text], options: &opts })?
            }
            Options::Ctxprune(opts) => {
                engine.methods.words_with(&scorer, Call::Ctxprune { text, options: &opts })?
            }
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let compressed = output.texts().concat();
        // The pipeline counts its own tokens (its `count_tokens`); the other methods' are counted here
        // with the project's default counter (cl100k with the `llm-tokens` feature).
        let (counter, tokens, compressed_tokens) = match &output {
            Output::Pipeline(r) => (r[0].token_counter, r[0].original_tokens, r[0].compressed_tokens),
            _ => {
                let counter = TokenCounter::default();
                (counter, counter.count(text)?, counter.count(&compressed)?)
            }
        };
        let detail = match &output {
            Output::Pipeline(r) => json!({
                "passthrough_reason": r[0].passthrough_reason,
                "over_budget": r[0].over_budget,
                "unscored_reason": r[0].unscored_reason,
            }),
            _ => json!({}),
        };
        let words_in = words(text).count();
        Ok(json!({
            "method": self.method,
            "model": engine.name,
            "compressed": compressed,
            "counts": {
                "words": words_in,
                "kept_words": words(&compressed).count(),
                "token_counter": counter.to_string(),
                "tokens": tokens,
                "compressed_tokens": compressed_tokens,
                "saved_tokens": tokens.saturating_sub(compressed_tokens),
            },
            "detail": detail,
            "words": views,
            "elapsed_ms": (elapsed_ms * 10.0).round() / 10.0,
        }))
    }
}
