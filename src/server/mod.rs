//! `kompress serve`: the compression service (feature `server`).
//!
//! One model or several, shared by every request; the chunks of concurrent requests meet in shared forward
//! passes ([`BatchLimits`]); a bounded admission queue answers `503` with `Retry-After` at once
//! when full; every request has a deadline (`504`, its work dropped) and a client that leaves
//! cancels its queued work. Routes:
//!
//! | route | contract |
//! | --- | --- |
//! | `POST /compress` | Headroom 0.42's remote Kompress (`{"content", "target_ratio"}`) |
//! | `POST /api/v1/compress` | SuperCompress 0.5.0's client (`{"context", "query", "budget_ratio"}`) |
//! | `POST /v1/compress/blocks` | SuperCompress's server route (`{"context_blocks", "query", "budget_ratio"}`) |
//! | `POST /v1/compress` | ours: `{"text": str or [str], "options": {...}}`, results as `kompress compress --json` |
//! | `POST /v1/evict` | ours: the options of `kompress evict`, results as its `--json` |
//! | `GET /v1/models` | the models served, each with its family and methods; the first is the default |
//! | `GET /healthz`, `/readyz`, `/metrics` | alive, models loaded, Prometheus text |
//! | `GET /`, `POST /v1/playground/compress` | the playground page (open, static) and its route: one method on one text, every word's fate |
//! | `POST /predictions/{name}` (TorchServe), `/v1/models/{name}:predict` (KServe v1), `/invocations` (SageMaker) | Headroom's contract; KServe v1 also `{"instances": [...]}` -> `{"predictions": [...]}` |
//! | `GET /ping` (SageMaker) | model loaded |
//! | `POST /v2/models/{name}/infer`, `GET /v2`, `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}`, `/v2/models/{name}/ready` | KServe's Open Inference Protocol v2 |
//!
//! Several models can be served at once ([`ServerConfig::model_names`], [`Server::set_models`]): a
//! `{name}` in a route picks one, as does the `model` field of kompress's own routes (`/v1/compress`,
//! `/v1/llmlingua2/compress`, `/v1/ctxprune/compress`); without one a request runs on the first. A
//! name the server does not serve is a `404` that lists the names. The models share the admission
//! queue and one worker for their forward passes (so the CPU's threads), in the order work arrives.
//!
//! ```no_run
//! use kompress::server::{Server, ServerConfig};
//! use kompress::{Kompress, LoadOptions};
//!
//! # async fn serve() -> kompress::Result<()> {
//! let server = Server::new(ServerConfig::default())?;
//! server.set_model(Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?, "v5")?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.map_err(|e| kompress::Error::Io {
//!     path: "127.0.0.1:8080".into(),
//!     source: e,
//! })?;
//! server.run(listener, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```

mod admission;
mod api;
mod auth;
mod batcher;
mod burst;
mod conn;
mod ctxprune;
mod error;
mod llmlingua2;
mod metrics;
mod oip;
mod options;
mod playground;
mod render;
mod runtimes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::trace::TraceLayer;

pub use api::{DEADLINE_HEADER, TIME_BUDGET_HEADER};
pub use batcher::BatchLimits;
pub use conn::CONNECTION_RESERVE;

use admission::Pool;
use batcher::Batcher;
use metrics::{Gauges, Metrics};

use crate::evict::EvictionNetwork;
use crate::method::{Method, Methods};
use crate::{CompressOptions, Error, Kompress, Result};

/// How the server behaves; the defaults suit a CPU (see the README's measurements).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Every route but the health routes and the playground page (`GET /`) needs this token, when set.
    pub token: Option<String>,
    /// The compression options of a request that names none.
    pub defaults: CompressOptions,
    /// How chunks of concurrent requests share forward passes.
    pub batch: BatchLimits,
    /// Admission queue capacity, in chunks of at most `chunk_words` words (an evict request counts 1).
    pub queue_chunks: usize,
    /// Largest request body; a larger one is refused with `413` before it is read.
    pub max_body_bytes: usize,
    /// Most request-body bytes held in memory by requests in flight (a body without a length counts
    /// as `max_body_bytes`); beyond it, `503`. Bounds memory under a flood of large bodies.
    pub body_bytes_in_flight: usize,
    /// Longest time a request may take; `X-Kompress-Deadline-Ms` can only shorten it. A body still
    /// arriving then is `408`.
    pub deadline: Duration,
    /// Most texts, blocks, instances or eviction lines in one request; beyond it, `413`. Each costs
    /// memory and time whether empty or not.
    pub max_items: usize,
    /// How long a new connection has to send its first request head, and any connection the rest of a
    /// head once its first byte came; then it is closed.
    pub header_timeout: Duration,
    /// How long a connection may stay idle between requests; then it is closed.
    pub keep_alive: Duration,
    /// Most connections served at once (a new one closes the one idle the longest; with none idle, up
    /// to [`CONNECTION_RESERVE`] more are served the health routes only). Keep it below the process's
    /// open-file limit: `kompress serve` lowers it to fit.
    pub max_connections: usize,
    /// After a shutdown signal, how long requests in flight may still take.
    pub grace: Duration,
    /// Called (on a blocking thread) when the server has fallen idle after work, at most every
    /// [`RELEASE_EVERY`]: `kompress serve` hands freed heap memory back to the system there (glibc
    /// keeps it, with the thresholds the binary sets for the forward passes' speed), so that memory
    /// returns after a burst of connections or large requests.
    pub release_memory: Option<fn()>,
    /// The names of the models served, in order, the first being the default: a request picks one by
    /// name in the serving engines' routes (`/predictions/{name}`, `/v2/models/{name}/infer`...) and
    /// with the `model` field of kompress's own routes. [`Server::set_models`] installs one model per
    /// name.
    pub model_names: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            token: None,
            // Batch 1: on CPU a forward pass of 8 chunks was measured 30% slower than 8 of one.
            defaults: CompressOptions { batch_size: 1, ..Default::default() },
            batch: BatchLimits { tokens: 512, wait: Duration::ZERO },
            queue_chunks: 64,
            max_body_bytes: 16 << 20,
            body_bytes_in_flight: 64 << 20,
            deadline: Duration::from_secs(30),
            max_items: 10_000,
            // Browsers and HTTP libraries send a head in one packet: 10 s is generous, and short enough
            // that slow-header clients cannot hold connections (hyper's default is 30 s, nginx's 60 s).
            header_timeout: Duration::from_secs(10),
            // nginx's default, above the 60 s idle timeout of the common load balancers (AWS ALB,
            // GCP), so that the balancer, not the server, closes an idle connection.
            keep_alive: Duration::from_secs(75),
            max_connections: 1024,
            grace: Duration::from_secs(10),
            release_memory: None,
            model_names: vec!["kompress".into()],
        }
    }
}

/// How long cancelled requests have, after the grace period, to write their `503`s (a forward pass in
/// progress finishes first; a body still arriving waits for its deadline, cut here).
const DRAIN: Duration = Duration::from_secs(10);

/// How often an idle server may call [`ServerConfig::release_memory`].
pub const RELEASE_EVERY: Duration = Duration::from_secs(5);

/// One served model: its name, where it came from, and the methods it runs.
pub(crate) struct Engine {
    /// The name requests pick it by ([`ServerConfig::model_names`]).
    name: String,
    /// Where it was loaded from (a directory or a hub id), which answers report as the model used.
    source: String,
    /// The source as the open routes (`/readyz`) show it: a local path's last part, so that a caller
    /// without the token learns nothing of the server's files.
    public_source: String,
    model: Arc<Kompress>,
    /// The compression methods the model runs (LLMLingua-2 on a BERT / XLM-RoBERTa checkpoint).
    methods: Methods,
}

impl Engine {
    fn model(&self) -> &Kompress {
        &self.model
    }
}

/// Which served model a request runs on: an index into [`Loaded::engines`], picked at admission.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ModelId(usize);

/// The served models and the worker that runs their forward passes.
pub(crate) struct Loaded {
    engines: Vec<Engine>,
    batcher: Batcher,
}

/// What every route shares.
pub(crate) struct Shared {
    config: ServerConfig,
    loaded: OnceLock<Loaded>,
    network: EvictionNetwork,
    queue: Pool,
    bodies: Pool,
    metrics: Arc<Metrics>,
    /// Refusals of a full queue, and of too many bodies in memory, logged once per burst.
    queue_full: burst::Burst,
    bodies_full: burst::Burst,
    /// Set when the grace period is over, or once the server has stopped: all work ends.
    stopping: Arc<AtomicBool>,
    /// The server's phase, for what waits on the client (a body arriving) rather than the model.
    phase: tokio::sync::watch::Sender<conn::Phase>,
    connections: Arc<conn::Registry>,
}

impl Shared {
    fn gauges(&self) -> Gauges {
        Gauges {
            queue_chunks: self.queue.in_use(),
            queue_capacity: self.queue.capacity(),
            body_bytes: self.bodies.in_use(),
            connections: self.connections.open(),
            model_ready: self.loaded.get().is_some(),
        }
    }

    /// The model named `name`, loaded or not: `404` naming the served models for a name the server
    /// does not serve.
    pub(crate) fn named(&self, name: &str) -> std::result::Result<ModelId, error::ApiError> {
        let names = &self.config.model_names;
        names.iter().position(|n| n == name).map(ModelId).ok_or_else(|| {
            let served: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            error::ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no model named `{name}`: this server serves {}", served.join(", ")),
            )
        })
    }

    /// The model `name` names, the default (first) one for `None`, once the models are loaded: `404`
    /// as [`named`](Self::named), `503` while they load.
    pub(crate) fn pick(&self, name: Option<&str>) -> std::result::Result<ModelId, error::ApiError> {
        let id = name.map_or(Ok(ModelId(0)), |n| self.named(n))?;
        match self.loaded.get() {
            Some(_) => Ok(id),
            None => Err(error::ApiError::busy("the model is loading; retry shortly", 1)),
        }
    }

    /// [`pick`](Self::pick) for a body's `model` field: an error names the field.
    pub(crate) fn pick_in_body(&self, name: Option<&str>) -> std::result::Result<ModelId, error::ApiError> {
        self.pick(name).map_err(|e| e.in_field("model"))
    }

    /// A model [`pick`](Self::pick)ed for an admitted request.
    pub(crate) fn engine(&self, id: ModelId) -> &Engine {
        &self.loaded.get().expect("admitted with the models loaded").engines[id.0]
    }

    /// The batcher, once the models are loaded.
    pub(crate) fn batcher(&self) -> crate::Result<&Batcher> {
        let loaded = self.loaded.get().ok_or_else(|| Error::Unavailable("the model is not loaded".into()))?;
        Ok(&loaded.batcher)
    }
}

/// The compression service. Cheap to clone: clones share one state, so a model can be set from
/// another thread while [`Server::run`] serves (`/readyz` says when).
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl Server {
    /// A server without a model yet; eviction uses the built-in SuperCompress weights.
    pub fn new(config: ServerConfig) -> Result<Self> {
        Self::with_network(config, EvictionNetwork::embedded()?)
    }

    /// A server whose eviction routes use `network`.
    pub fn with_network(config: ServerConfig, network: EvictionNetwork) -> Result<Self> {
        if config.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            // Headers are trimmed, so an empty token would open the server to `Bearer ` alone.
            return Err(Error::Invalid("the server's token is empty: give a token or none".into()));
        }
        check_model_names(&config.model_names)?;
        let shared = Shared {
            queue: Pool::new(config.queue_chunks),
            bodies: Pool::new(config.body_bytes_in_flight),
            config,
            loaded: OnceLock::new(),
            network,
            metrics: Arc::default(),
            queue_full: burst::Burst::new("the queue is full"),
            bodies_full: burst::Burst::new("too many request bodies in memory"),
            stopping: Arc::default(),
            phase: tokio::sync::watch::Sender::new(conn::Phase::Serving),
            connections: Arc::new(conn::Registry::new()),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Installs the one model of a server with one name in [`ServerConfig::model_names`] (once);
    /// `source` (a directory or a hub id) is what answers report as the model used.
    pub fn set_model(&self, model: Kompress, source: impl Into<String>) -> Result<()> {
        self.set_models(vec![(model, source.into())])
    }

    /// Installs the models (once): one per name of [`ServerConfig::model_names`], in that order, each
    /// with its source (a directory or a hub id), which answers report as the model used. Checks the
    /// default options against each first. Every model's forward passes run on one worker, so they
    /// share the CPU's threads in the order their work arrives.
    pub fn set_models(&self, models: Vec<(Kompress, String)>) -> Result<()> {
        let names = &self.shared.config.model_names;
        if models.len() != names.len() {
            return Err(Error::Invalid(format!(
                "{} models given for {} names ({})",
                models.len(),
                names.len(),
                names.join(", ")
            )));
        }
        let mut engines = Vec::with_capacity(models.len());
        for ((model, source), name) in models.into_iter().zip(names) {
            // Validates the defaults (an empty batch scores nothing).
            crate::compress_batch(&model, &[], &self.shared.config.defaults)?;
            let model = Arc::new(model);
            // Every method the model runs is built now, so that one that cannot be fails here, not in a
            // request.
            let methods = Methods::new(model.clone());
            if methods.supported().contains(&Method::LlmLingua2) {
                methods.llmlingua2()?;
            }
            methods.ctxprune()?;
            let public_source = public_name(&source);
            engines.push(Engine { name: name.clone(), source, public_source, model, methods });
        }
        let batcher = Batcher::start(self.shared.config.batch, self.shared.metrics.clone());
        let loaded = Loaded { engines, batcher };
        self.shared.loaded.set(loaded).map_err(|_| Error::Invalid("the server already has its models".into()))
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish for up to the grace period, cancels what is left (a body still arriving is answered
    /// `503`), and stops the model worker.
    pub async fn run(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let c = &self.shared.config;
        let limits = conn::Limits {
            header: c.header_timeout,
            keep_alive: c.keep_alive,
            max: c.max_connections.max(1),
        };
        let (alive, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
        let phase = &self.shared.phase;
        let registry = self.shared.connections.clone();
        let releasing = self
            .shared
            .config
            .release_memory
            .map(|release| tokio::spawn(release_when_idle(self.shared.clone(), release)));
        conn::accept(listener, self.router(), limits, registry, phase.subscribe(), alive, shutdown).await;
        if let Some(task) = releasing {
            task.abort();
        }
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        phase.send_replace(conn::Phase::Draining);
        let grace = self.shared.config.grace;
        // `recv` answers `None` once every connection task has dropped its sender.
        if tokio::time::timeout(grace, all_closed.recv()).await.is_err() {
            tracing::warn!("grace period of {grace:?} over: cancelling the requests still in flight");
            self.shared.stopping.store(true, Ordering::Relaxed);
            phase.send_replace(conn::Phase::Cut);
            // Cancelled work stops at its next step and answers 503: every accepted request gets its
            // whole answer before the connections close.
            if tokio::time::timeout(DRAIN, all_closed.recv()).await.is_err() {
                tracing::warn!("connections still open {DRAIN:?} after the grace period: closing them");
                phase.send_replace(conn::Phase::Closed);
            }
        }
        phase.send_replace(conn::Phase::Closed);
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.shared.queue_full.ended();
        self.shared.bodies_full.ended();
        let shared = self.shared.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            if let Some(loaded) = shared.loaded.get() {
                loaded.batcher.stop();
            }
        });
        stopped.await.map_err(|e| Error::Unavailable(format!("model worker: {e}")))
    }

    fn router(&self) -> Router {
        let s = self.shared.clone();
        Router::new()
            .route(playground::PATH, get(playground::page))
            .route("/v1/playground/compress", post(playground::compress))
            .route("/compress", post(api::headroom))
            .route("/api/v1/compress", post(api::supercompress))
            .route("/v1/compress/blocks", post(api::blocks))
            .route("/v1/compress", post(api::compress))
            .route("/v1/evict", post(api::evict))
            .route("/v1/llmlingua2/compress", post(llmlingua2::route))
            .route("/v1/ctxprune/compress", post(ctxprune::route))
            .route("/v1/models", get(api::models))
            .route("/healthz", get(api::healthz))
            .route("/readyz", get(api::readyz))
            .route("/metrics", get(api::metrics))
            .route("/predictions/{name}", post(runtimes::torchserve))
            .route("/v1/models/{verb}", post(runtimes::kserve_v1))
            .route("/invocations", post(api::headroom))
            .route("/ping", get(runtimes::ping))
            .route("/v2", get(oip::server_metadata))
            .route("/v2/health/live", get(oip::live))
            .route("/v2/health/ready", get(oip::ready))
            .route("/v2/models/{name}", get(oip::model_metadata))
            .route("/v2/models/{name}/ready", get(oip::model_ready))
            .route("/v2/models/{name}/infer", post(oip::infer))
            .fallback(api::not_found)
            .method_not_allowed_fallback(api::method_not_allowed)
            .layer(from_fn_with_state(s.clone(), auth::require_token))
            .layer(from_fn_with_state(s.clone(), track))
            .layer(TraceLayer::new_for_http().on_failure(log_failure))
            .with_state(s)
    }
}

/// Calls `release` when the server is idle (no request in flight, no queued work) and has had
/// connections since the last call.
async fn release_when_idle(s: Arc<Shared>, release: fn()) {
    let mut seen = s.connections.opened();
    let mut every = tokio::time::interval(RELEASE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let opened = s.connections.opened();
        if opened != seen && s.connections.idle() && s.queue.in_use() == 0 && s.bodies.in_use() == 0 {
            seen = opened;
            let _ = tokio::task::spawn_blocking(release).await;
        }
    }
}

/// At least one name, each one path segment (letters, digits, `-`, `_`, `.`: the routes put it in a
/// path), none twice.
fn check_model_names(names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Err(Error::Invalid("the server needs at least one model name".into()));
    }
    for (i, name) in names.iter().enumerate() {
        if !is_model_name(name) {
            return Err(Error::Invalid(format!(
                "model name `{name}`: use letters, digits, `-`, `_` and `.` (it is part of the routes' paths)"
            )));
        }
        if names[..i].contains(name) {
            return Err(Error::Invalid(format!("model name `{name}` given twice")));
        }
    }
    Ok(())
}

/// Whether `name` can name a model: one path segment of letters, digits, `-`, `_` and `.`.
pub fn is_model_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `name` as the open routes show it: a local path (absolute, relative from `.`, or one that exists)
/// shows its last part only; a hub id (`org/model`) shows as it is.
fn public_name(name: &str) -> String {
    let path = std::path::Path::new(name);
    let local = path.is_absolute() || name.starts_with('.') || name.contains('\\') || path.exists();
    match (local, path.file_name().and_then(|n| n.to_str())) {
        (true, Some(last)) => last.to_string(),
        (true, None) => "local model".to_string(),
        (false, _) => name.to_string(),
    }
}

/// A failed answer at ERROR, but for `503`: a busy server's refusals are counted per burst
/// ([`burst::Burst`]), and the others (loading, shutting down) are expected.
fn log_failure(class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span) {
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {}
        class => tracing::error!(classification = %class, latency = ?latency, "response failed"),
    }
}

/// Counts every answer by route and status, with its latency.
async fn track(State(s): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/") => "/",
        Some("/v1/playground/compress") => "/v1/playground/compress",
        Some("/compress") => "/compress",
        Some("/api/v1/compress") => "/api/v1/compress",
        Some("/v1/compress/blocks") => "/v1/compress/blocks",
        Some("/v1/compress") => "/v1/compress",
        Some("/v1/evict") => "/v1/evict",
        Some("/v1/llmlingua2/compress") => "/v1/llmlingua2/compress",
        Some("/v1/ctxprune/compress") => "/v1/ctxprune/compress",
        Some("/v1/models") => "/v1/models",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        Some("/predictions/{name}") => "/predictions/{name}",
        Some("/v1/models/{verb}") => "/v1/models/{name}:predict",
        Some("/invocations") => "/invocations",
        Some("/ping") => "/ping",
        Some("/v2") => "/v2",
        Some("/v2/health/live") => "/v2/health/live",
        Some("/v2/health/ready") => "/v2/health/ready",
        Some("/v2/models/{name}") => "/v2/models/{name}",
        Some("/v2/models/{name}/ready") => "/v2/models/{name}/ready",
        Some("/v2/models/{name}/infer") => "/v2/models/{name}/infer",
        _ => "unmatched",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    s.metrics.request(route, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use super::public_name;

    #[test]
    fn open_routes_show_a_local_paths_last_part_and_a_hub_id_whole() {
        assert_eq!(public_name("/srv/models/kompress-base"), "kompress-base");
        assert_eq!(public_name("./models/v5/"), "v5");
        assert_eq!(public_name("chopratejas/kompress-base"), "chopratejas/kompress-base");
        assert_eq!(public_name("/"), "local model");
    }
}
