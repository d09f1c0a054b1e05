//! The routes: every compute route reads its body under the size bound, parses it off the async
//! threads, takes its place in the admission queue, and runs on a blocking thread under a deadline.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::{json, Value};

use super::admission::{CancelOnDrop, Refused, Ticket};
use super::conn::Phase;
use super::error::ApiError;
use super::options::{
    check_budget_ratio, BlocksBody, CompressBody, EvictBody, HeadroomBody, SuperCompressBody, Texts,
};
use super::{render, Engine, ModelId, Shared};
use crate::evict::{compress_detailed, compress_for_turn, split_lines, PolicyKind};
use crate::pipeline::{check_time_budget, compress_stream, words::words, words_per_chunk, Event, Mode};
use crate::{CompressOptions, Error};

/// The request header that shortens the server's deadline for one request.
pub const DEADLINE_HEADER: &str = "x-kompress-deadline-ms";

/// The request header that sets one request's time budget (over the server's default; a
/// `time_budget_ms` in `/v1/compress`'s options wins over it).
pub const TIME_BUDGET_HEADER: &str = "x-kompress-time-budget-ms";

/// The share of the time left before a request's deadline that its time budget may take: the rest is
/// for the forward pass running when the budget ends and the answer.
const BUDGET_SHARE_OF_DEADLINE: f64 = 0.8;

/// What a request asks for in its headers and its route's path, beside its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct Asked {
    /// `X-Kompress-Time-Budget-Ms`.
    pub time_budget: Option<Duration>,
    /// The model the route's path names (`/v2/models/{name}/infer`...).
    pub model: Option<String>,
}

/// A parsed request body that knows its cost and how to run.
pub(crate) trait Work: DeserializeOwned + Send + 'static {
    /// Checks what serde cannot, and counts the admission units (chunks) the work needs.
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError>;
    /// Runs on a blocking thread; checks `ticket` between steps.
    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value>;
}

pub(crate) async fn headroom(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle::<Headroom>(s, headers, body).await
}

pub(crate) async fn supercompress(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle::<SuperCompressBody>(s, headers, body).await
}

pub(crate) async fn blocks(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle::<BlocksBody>(s, headers, body).await
}

pub(crate) async fn compress(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle::<Compress>(s, headers, body).await
}

pub(crate) async fn evict(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    handle::<EvictBody>(s, headers, body).await
}

pub(crate) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(crate) async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    match s.loaded.get() {
        // `methods`: what the default model runs (the playground's fallback reads it).
        Some(loaded) => Json(json!({
            "status": "ready",
            "model": loaded.engines[0].public_source,
            "models": s.config.model_names,
            "methods": loaded.engines[0].methods.supported(),
        }))
        .into_response(),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the model is loading").into_response(),
    }
}

/// `GET /v1/models`: the served models in order (the first is the default), each with its family
/// and the methods it runs.
pub(crate) async fn models(State(s): State<Arc<Shared>>) -> Response {
    let Some(loaded) = s.loaded.get() else {
        return ApiError::busy("the model is loading; retry shortly", 1).into_response();
    };
    let models: Vec<Value> = loaded
        .engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "name": e.name,
                "source": e.source,
                "family": e.model().scorer().family().name(),
                "methods": e.methods.supported(),
                "default": i == 0,
            })
        })
        .collect();
    Json(json!({ "models": models })).into_response()
}

pub(crate) async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let text = s.metrics.render(&s.gauges());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub(crate) async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "no such route").into_response()
}

pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route").into_response()
}

pub(crate) async fn handle<W: Work>(s: Arc<Shared>, headers: HeaderMap, body: Body) -> Response {
    handle_for::<W>(s, None, headers, body).await
}

/// [`handle`] for a route whose path names the model.
pub(crate) async fn handle_for<W: Work>(
    s: Arc<Shared>,
    model: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle_inner::<W>(s, model, headers, body).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `v` as JSON, written into a buffer of its exact size (measured first): a large answer is held
/// once, not in a growing buffer's two copies. Called on the work's blocking thread: serializing a
/// large answer on the async threads stalled `/healthz` (0.58 s for 347 MB).
fn json_bytes(v: &Value) -> Vec<u8> {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, v).expect("a JSON value serializes");
    let mut bytes = Vec::with_capacity(counter.0);
    serde_json::to_writer(&mut bytes, v).expect("a JSON value serializes");
    bytes
}

/// A writer that only counts bytes.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn handle_inner<W: Work>(
    s: Arc<Shared>,
    model: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let deadline = deadline(&headers, s.config.deadline)?;
    let asked = Asked { time_budget: time_budget(&headers)?, model };
    let max = s.config.max_body_bytes;
    let declared = declared_length(&headers)?;
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let (bytes, body_permit) = read_body(&s, body, declared, deadline).await?;
    let shared = s.clone();
    let (work, cost) = tokio::task::spawn_blocking(move || {
        too_many_items(&bytes, shared.config.max_items)?;
        let mut work = parse::<W>(&bytes)?;
        drop(bytes);
        let cost = work.admit(&shared, &asked)?;
        Ok::<_, ApiError>((work, cost))
    })
    .await
    .map_err(internal)??;
    let queue_permit = s.queue.try_take(cost).map_err(|r| match r {
        Refused::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request needs {cost} chunks, more than the whole queue ({}); split the text, or start \
                 the server with a larger --queue-chunks",
                s.queue.capacity()
            ),
        ),
        Refused::Full => {
            s.queue_full.refused();
            ApiError::busy("the queue is full; retry shortly", 1)
        }
    })?;
    s.queue_full.ended();
    let ticket = Arc::new(Ticket::new(deadline, s.stopping.clone()));
    // Dropped when this future ends, finished or abandoned by a disconnected client.
    let _cancel = CancelOnDrop(ticket.clone());
    let (shared, t) = (s.clone(), ticket.clone());
    let task = tokio::task::spawn_blocking(move || {
        let _held = (body_permit, queue_permit);
        let answer = work.run(&shared, &t)?;
        // A request cancelled meanwhile is not worth serializing.
        t.check()?;
        Ok(json_bytes(&answer))
    });
    match tokio::time::timeout_at(deadline.into(), task).await {
        Err(_) => Err(past_deadline(&headers, s.config.deadline)),
        Ok(Err(join)) => Err(internal(join)),
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) if ticket.is_cancelled() => Err(match Instant::now() >= ticket.deadline() {
            true => past_deadline(&headers, s.config.deadline),
            false => ApiError::busy(format!("the server is shutting down ({e})"), 1),
        }),
        Ok(Ok(Err(Error::Invalid(m)))) => Err(ApiError::new(StatusCode::BAD_REQUEST, m)),
        Ok(Ok(Err(Error::Unavailable(m)))) => Err(ApiError::busy(m, 1)),
        Ok(Ok(Err(e))) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// The request's deadline: its header's, at most the server's.
fn deadline(headers: &HeaderMap, server: Duration) -> Result<Instant, ApiError> {
    let asked = match headers.get(DEADLINE_HEADER) {
        None => server,
        Some(v) => {
            let ms = v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&ms| ms > 0);
            let ms = ms.ok_or_else(|| {
                ApiError::field("X-Kompress-Deadline-Ms", "must be a whole number of milliseconds above 0")
            })?;
            Duration::from_millis(ms).min(server)
        }
    };
    Ok(Instant::now() + asked)
}

/// The request's time budget header, checked as the library checks the option.
fn time_budget(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(v) = headers.get(TIME_BUDGET_HEADER) else { return Ok(None) };
    let bad = |m: String| ApiError::field("X-Kompress-Time-Budget-Ms", m);
    let ms = v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|&ms| ms > 0);
    let ms = ms.ok_or_else(|| bad("must be a whole number of milliseconds above 0".into()))?;
    let budget = Duration::from_millis(ms);
    check_time_budget(budget).map_err(bad)?;
    Ok(Some(budget))
}

fn past_deadline(headers: &HeaderMap, server: Duration) -> ApiError {
    let source = match headers.contains_key(DEADLINE_HEADER) {
        true => "the request's X-Kompress-Deadline-Ms",
        false => "the server's deadline",
    };
    let ms = server.as_millis();
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        format!("{source} passed (server maximum {ms} ms); the work was dropped"),
    )
}

fn declared_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.parse().ok()))
        .map(|n| n.ok_or_else(|| ApiError::field("Content-Length", "is not a number")))
        .transpose()
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is over the limit of {max} bytes"))
}

/// The least a growing body buffer takes at once.
const FIRST_BODY_BUFFER: usize = 16 << 10;

/// The whole body, refused as soon as it passes `--max-body-bytes`. Its share of
/// `--body-bytes-in-flight` is taken as its bytes arrive (the buffer's capacity: at most twice what
/// arrived, or its `Content-Length`), so a client that declares a large body and sends it slowly
/// holds only what it sent; past the allowance, `503`. A body not all there by the deadline is `408`,
/// and one still arriving when the grace period of a shutdown ends is `503`.
async fn read_body(
    s: &Shared,
    mut body: Body,
    declared: Option<usize>,
    deadline: Instant,
) -> Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let max = s.config.max_body_bytes;
    let busy = || {
        s.bodies_full.refused();
        ApiError::busy("too many request bodies in memory; retry shortly", 1)
    };
    // One unit, so that a request reading its body counts as in flight.
    let mut permit = s.bodies.try_take(1).map_err(|_| busy())?;
    let most = declared.unwrap_or(max).min(max);
    let mut bytes: Vec<u8> = Vec::new();
    let mut phase = s.phase.subscribe();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tokio::time::sleep_until(deadline.into()) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive before the deadline",
                ))
            }
            _ = phase.wait_for(|p| *p >= Phase::Cut) => {
                return Err(ApiError::busy("the server is shutting down; the request body did not arrive in time", 1))
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {e}"),
                ))
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                // Trailers: nothing to keep.
                Err(_) => continue,
            },
        };
        let need = bytes.len() + data.len();
        if need > max {
            return Err(too_large(max));
        }
        if need > bytes.capacity() {
            let capacity = (bytes.capacity() * 2).max(FIRST_BODY_BUFFER).min(most.max(need)).max(need);
            let more = capacity - permit.num_permits();
            s.bodies.try_add(&mut permit, more).map_err(|_| busy())?;
            bytes.reserve_exact(capacity - bytes.len());
        }
        bytes.extend_from_slice(&data);
    }
    s.bodies_full.ended();
    Ok((bytes, permit))
}

/// JSON into `W`; an error names the field (a dotted path) where serde stopped.
fn parse<W: DeserializeOwned>(bytes: &[u8]) -> Result<W, ApiError> {
    let invalid = |e: &serde_json::Error| format!("invalid JSON body: {e}");
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let work = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        match e.inner().classify() {
            // Malformed JSON has no field to name (serde_path_to_error says `?`): say where it broke.
            Category::Syntax | Category::Eof if path == "?" || path == "." => malformed(e.inner()),
            Category::Syntax | Category::Eof => malformed(e.inner()).in_field(path),
            _ if path == "." => ApiError::new(StatusCode::BAD_REQUEST, invalid(e.inner())),
            _ => ApiError::field(path, invalid(e.inner())),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(work)
}

/// Room for the lists that are not items (`shape`, `outputs`, `force_tokens`...) in
/// [`too_many_items`]'s count.
const OTHER_LIST_ELEMENTS: usize = 1024;

/// A `413` when the body's lists hold many more elements than `--max-items` allows, found by one
/// pass over the JSON that allocates nothing: parsing a body of a million empty strings first took
/// 100 MB (25 times its 4 MB), whatever the later check. The exact count, naming the field, is
/// each route's `admit`; malformed JSON is left to the parse, which says where it broke.
fn too_many_items(bytes: &[u8], max_items: usize) -> Result<(), ApiError> {
    use serde::de::DeserializeSeed;
    let limit = max_items.saturating_add(OTHER_LIST_ELEMENTS);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match (ListElements { limit, seen: &std::cell::Cell::new(0) }).deserialize(&mut de) {
        Err(e) if e.to_string().starts_with(TOO_MANY) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request's lists hold more than {limit} elements, over the server's limit of {max_items} items (--max-items)"),
        )),
        _ => Ok(()),
    }
}

const TOO_MANY: &str = "too many list elements";

/// Visits a JSON value, counting the elements of its lists that are not lists themselves (so a
/// tensor's nested rows count their texts once), and stops past `limit`. Its value: whether it was
/// a list.
struct ListElements<'a> {
    limit: usize,
    seen: &'a std::cell::Cell<usize>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ListElements<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ListElements<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while let Some(list) = seq.next_element_seed(ListElements { limit: self.limit, seen: self.seen })? {
            if !list {
                self.seen.set(self.seen.get() + 1);
                if self.seen.get() > self.limit {
                    return Err(serde::de::Error::custom(TOO_MANY));
                }
            }
        }
        Ok(true)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(ListElements { limit: self.limit, seen: self.seen })?;
        }
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A `400` for JSON that does not parse, naming the line and column (from 1) where it broke.
fn malformed(e: &serde_json::Error) -> ApiError {
    // serde_json reads `\ud800` as the first half of a pair and fails on what follows it.
    let hint = match e.to_string().contains("hex escape") || e.to_string().contains("surrogate") {
        true => " (a \\uD800-\\uDFFF escape outside a surrogate pair is not a character: text must be valid Unicode)",
        false => "",
    };
    ApiError::at(e.line(), e.column(), format!("malformed JSON body: {e}{hint}"))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}"))
}

fn field_error((field, message): (&'static str, String)) -> ApiError {
    ApiError::field(field, message)
}

/// What a request's texts cost in the admission queue: the chunks they need, at the planner's words
/// per chunk, and every word of the short texts that pass through too, an empty text counting as one
/// (so a list of many tiny or empty texts is not free: each has its result and its answer).
pub(crate) fn chunks(texts: &[&str], opts: &CompressOptions) -> usize {
    let per_chunk = words_per_chunk(opts.chunk_words, opts.chunk_tokens);
    let (mut scored, mut passed) = (0, 0);
    for text in texts {
        let n = words(text).count();
        match n < opts.min_words {
            true => passed += n.max(1),
            false => scored += n.div_ceil(per_chunk),
        }
    }
    scored + passed.div_ceil(per_chunk)
}

/// The admission units of a text for LLMLingua-2 and ctxprune: about one 510-token window per 350
/// words (at least one).
pub(crate) fn windows(text: &str) -> usize {
    text.split_whitespace().count().div_ceil(350).max(1)
}

/// Eviction lines (or blocks) per admission unit: the rate at which short texts are charged. A line
/// costs the eviction about 20 KB at its peak (100,000 lines of a log took 2.3 GB and 15 s, measured
/// on `/v1/evict` before this bound), so lines are bounded by `max_items` and charged to the queue.
const EVICT_LINES_PER_UNIT: usize = 350;

/// The admission units of an eviction over `lines` lines.
pub(crate) fn evict_units(lines: usize) -> usize {
    lines.div_ceil(EVICT_LINES_PER_UNIT).max(1)
}

/// A `413` unless `n` items (texts, blocks, instances, lines) are within `--max-items`; `what` names
/// them and `field` is where they are.
pub(crate) fn check_items(s: &Shared, n: usize, what: &str, field: &str) -> Result<(), ApiError> {
    let max = s.config.max_items;
    match n <= max {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request has {n} {what}, over the server's limit of {max} (--max-items)"),
        )
        .in_field(field)),
    }
}

/// Options the pipeline would refuse are a `400` before the request takes a place in the queue.
pub(crate) fn checked(opts: &CompressOptions, engine: &Engine) -> Result<(), ApiError> {
    let invalid = |e: Error| ApiError::new(StatusCode::BAD_REQUEST, e.to_string());
    opts.validate(engine.model().max_tokens()).map_err(invalid)
}

/// A request's batch size, at most what fits the server's tokens per forward pass (or its default):
/// one request cannot make a pass of unbounded size.
pub(crate) fn bounded_batch(opts: &mut CompressOptions, s: &Shared) {
    let cap = (s.config.batch.tokens / opts.chunk_tokens.max(1)).max(s.config.defaults.batch_size).max(1);
    opts.batch_size = opts.batch_size.min(cap);
}

/// Runs the pipeline for `texts` on the model `id`, counting words for `/metrics`.
pub(crate) fn run_pipeline(
    s: &Shared,
    id: ModelId,
    ticket: &Arc<Ticket>,
    texts: &[&str],
    opts: &CompressOptions,
) -> crate::Result<Vec<crate::CompressResult>> {
    let mut results = Vec::with_capacity(texts.len());
    run_each(s, id, ticket, texts, &within_deadline(opts, ticket), |r| results.push(r))?;
    Ok(results)
}

/// `opts` with its time budget at most [`BUDGET_SHARE_OF_DEADLINE`] of the time left before the
/// request's deadline (and at least 1 ms), so that a budget answers before the deadline would.
pub(crate) fn within_deadline(opts: &CompressOptions, ticket: &Ticket) -> CompressOptions {
    let mut opts = opts.clone();
    if let Some(budget) = opts.time_budget {
        let left = ticket.deadline().saturating_duration_since(Instant::now());
        let most = left.mul_f64(BUDGET_SHARE_OF_DEADLINE).max(Duration::from_millis(1));
        opts.time_budget = Some(budget.min(most));
    }
    opts
}

/// Runs the pipeline for `texts` under `opts` (already [`within_deadline`]), handing each result to
/// `each` as its text is done, so that a caller can render it and drop it. The ticket is checked at
/// every step, so a cancelled request stops between texts too (a list of empty texts never reaches
/// the scorer, where the other checks are).
fn run_each(
    s: &Shared,
    id: ModelId,
    ticket: &Arc<Ticket>,
    texts: &[&str],
    opts: &CompressOptions,
    mut each: impl FnMut(crate::CompressResult),
) -> crate::Result<()> {
    let scorer = s.batcher()?.scorer(&s.engine(id).model, ticket.clone())?;
    // One log line per request and kind, not one per text: a list of 10,000 short texts is one line.
    let (mut passed, mut passed_words, mut why) = (0usize, 0usize, None);
    let (mut cut, mut cut_words, mut cut_scored) = (0usize, 0usize, 0usize);
    compress_stream(&scorer, texts, opts, |event| {
        ticket.check()?;
        if let Event::Done { result: r, .. } = event {
            s.metrics.words(r.original_words, r.kept_words);
            if let Some(reason) = r.passthrough_reason {
                (passed, passed_words) = (passed + 1, passed_words + r.original_words);
                why.get_or_insert(reason);
            }
            if r.unscored_reason.is_some() {
                (cut, cut_words, cut_scored) =
                    (cut + 1, cut_words + r.original_words, cut_scored + r.scored_words);
            }
            each(r);
        }
        Ok(())
    })?;
    if let Some(why) = why {
        let texts = if passed == 1 { "a text" } else { "texts" };
        tracing::info!(
            texts = passed,
            words = passed_words,
            "{texts} passed through unchanged: {}",
            why.describe()
        );
    }
    if cut > 0 {
        tracing::info!(
            texts = cut,
            words = cut_words,
            scored = cut_scored,
            "the time budget ran out: the words not scored were kept as they are"
        );
    }
    Ok(())
}

/// The options of Headroom's contract for `text` on the model `id` (the server's defaults,
/// `target_ratio` as a ratio), and what it costs in the queue.
pub(crate) fn headroom_options(
    s: &Shared,
    id: ModelId,
    asked: &Asked,
    text: &str,
    target_ratio: Option<f64>,
) -> Result<(CompressOptions, usize), ApiError> {
    let engine = s.engine(id);
    let mut opts = defaults(s, asked);
    if let Some(r) = target_ratio {
        opts.mode = Mode::Ratio(r);
    }
    checked(&opts, engine)?;
    let cost = chunks(&[text], &opts);
    Ok((opts, cost))
}

/// The server's default options, with the request's headers over them.
pub(crate) fn defaults(s: &Shared, asked: &Asked) -> CompressOptions {
    let mut opts = s.config.defaults.clone();
    if let Some(budget) = asked.time_budget {
        opts.time_budget = Some(budget);
    }
    opts
}

/// Headroom's body with its resolved options, on the model its route names (the default one on
/// `/compress` and `/invocations`).
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct Headroom {
    body: HeadroomBody,
    #[serde(skip)]
    admitted: Option<(ModelId, CompressOptions)>,
}

impl Work for Headroom {
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
        let id = s.pick(asked.model.as_deref())?;
        let (opts, cost) = headroom_options(s, id, asked, &self.body.content, self.body.target_ratio)?;
        self.admitted = Some((id, opts));
        Ok(cost)
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        let (id, opts) = self.admitted.expect("admitted");
        let r = run_pipeline(s, id, ticket, &[&self.body.content], &opts)?;
        Ok(render::headroom(&r[0], s.engine(id)))
    }
}

/// Our own compress body with its resolved options and model.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct Compress {
    body: CompressBody,
    #[serde(skip)]
    opts: Option<CompressOptions>,
    #[serde(skip)]
    id: ModelId,
}

impl Compress {
    fn texts(&self) -> Vec<&str> {
        match &self.body.text {
            Texts::One(t) => vec![t.as_str()],
            Texts::Many(ts) => ts.iter().map(String::as_str).collect(),
        }
    }
}

impl Work for Compress {
    fn admit(&mut self, s: &Shared, asked: &Asked) -> Result<usize, ApiError> {
        self.id = s.pick_in_body(self.body.model.as_deref())?;
        let engine = s.engine(self.id);
        // The body's options over the headers' over the server's defaults.
        let mut opts = (self.body.options.resolve(&defaults(s, asked)))
            .map_err(|(f, m)| ApiError::field(format!("options.{f}"), m))?;
        bounded_batch(&mut opts, s);
        checked(&opts, engine)?;
        check_items(s, self.texts().len(), "texts", "text")?;
        let cost = chunks(&self.texts(), &opts);
        self.opts = Some(opts);
        Ok(cost)
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        // The answer shows the time budget it ran under.
        let opts = within_deadline(self.opts.as_ref().expect("admitted"), ticket);
        let engine = s.engine(self.id);
        // Each result is rendered as its text is done: the request holds the answer, not the results
        // as well.
        let mut rendered = Vec::new();
        let texts = self.texts();
        run_each(s, self.id, ticket, &texts, &opts, |r| {
            rendered.push(r.into_json_with_model(&opts, &engine.source, engine.model()))
        })?;
        let one = matches!(self.body.text, Texts::One(_));
        drop(texts);
        drop(self);
        Ok(match one {
            true => rendered.pop().expect("one result per text"),
            false => json!({ "results": rendered }),
        })
    }
}

impl Work for SuperCompressBody {
    fn admit(&mut self, s: &Shared, _: &Asked) -> Result<usize, ApiError> {
        if self.context.is_empty() {
            return Err(ApiError::field("context", "must not be empty"));
        }
        check_budget_ratio(self.budget_ratio).map_err(field_error)?;
        let lines = split_lines(&self.context).len();
        check_items(s, lines, "lines of context", "context")?;
        Ok(evict_units(lines))
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        ticket.check()?;
        // The reference service compresses `compress_for_turn([context])`: a blank context is dropped.
        let policy = PolicyKind::Learned.build(&self.query, &s.network, 0);
        let r = compress_for_turn(&[&self.context], &self.query, self.budget_ratio, policy.as_ref())?;
        s.metrics.evict_tokens(r.original_tokens, r.kept_tokens);
        Ok(render::supercompress(&r, split_lines(&self.context).len(), self.budget_ratio))
    }
}

impl Work for BlocksBody {
    fn admit(&mut self, s: &Shared, _: &Asked) -> Result<usize, ApiError> {
        check_budget_ratio(self.budget_ratio).map_err(field_error)?;
        check_items(s, self.context_blocks.len(), "blocks", "context_blocks")?;
        // Each block is at least one line, empty or not.
        let lines = self.context_blocks.iter().map(|b| split_lines(b).len().max(1)).sum();
        check_items(s, lines, "lines in its blocks", "context_blocks")?;
        Ok(evict_units(lines))
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        ticket.check()?;
        let blocks: Vec<&str> = self.context_blocks.iter().map(String::as_str).collect();
        let policy = PolicyKind::Learned.build(&self.query, &s.network, 0);
        let r = compress_for_turn(&blocks, &self.query, self.budget_ratio, policy.as_ref())?;
        s.metrics.evict_tokens(r.original_tokens, r.kept_tokens);
        Ok(render::blocks(&r, self.budget_ratio))
    }
}

impl Work for EvictBody {
    fn admit(&mut self, s: &Shared, _: &Asked) -> Result<usize, ApiError> {
        if let Some(p) = &self.policy {
            PolicyKind::from_str(p).map_err(|e| ApiError::field("policy", e.to_string()))?;
        }
        let lines = split_lines(&self.context).len();
        check_items(s, lines, "lines of context", "context")?;
        Ok(evict_units(lines))
    }

    fn run(self, s: &Shared, ticket: &Arc<Ticket>) -> crate::Result<Value> {
        ticket.check()?;
        let kind = self.policy.as_deref().map_or(Ok(PolicyKind::Learned), PolicyKind::from_str)?;
        let policy = kind.build(&self.question, &s.network, self.seed);
        let (r, annotations) =
            compress_detailed(&self.context, &self.question, self.budget, policy.as_ref())?;
        s.metrics.evict_tokens(r.original_tokens, r.kept_tokens);
        Ok(r.to_json(self.annotate.then_some(annotations.as_slice())))
    }
}
