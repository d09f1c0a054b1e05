//! `kompress serve`: the compression service over HTTP (a thin layer over `kompress::server`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use candle_core::Device;
use clap::Args;
use kompress::evict::EvictionNetwork;
use kompress::pipeline::{default_batch_size, TokenCounter};
use kompress::server::{is_model_name, BatchLimits, Server, ServerConfig, CONNECTION_RESERVE};
use kompress::Linears;

use super::args::LoadArgs;
use super::compress_args::CompressFlags;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A model to serve: a local model directory (config.json, tokenizer.json, and merged.pt,
    /// model.safetensors or pytorch_model.bin) or a Hugging Face repo id. Repeat it as NAME=DIR (or
    /// NAME=ORG/MODEL) to serve several, each loaded once and picked by its name (the `model` field of
    /// /v1/compress, /v1/llmlingua2/compress and /v1/ctxprune/compress, the NAME of the serving
    /// engines' routes); the first is the default. A bare value is named by --model-name.
    #[arg(long = "model", short = 'm', value_name = "[NAME=]DIR_OR_HUB_ID", default_value = kompress::hub::DEFAULT_MODEL)]
    pub models: Vec<String>,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Address to listen on: loopback unless told otherwise (0.0.0.0 for every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Token every route but the health checks (/healthz, /readyz, /ping, /v2/health/*) and the
    /// playground page (/) needs, as `Authorization: Bearer <token>` or `X-API-Key: <token>`.
    #[arg(long, env = "KOMPRESS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Most padded tokens (chunks x longest) in one forward pass shared by requests
    /// [default: 512 on CPU, 8192 on a GPU].
    #[arg(long)]
    pub batch_tokens: Option<usize>,
    /// How long a chunk waits for other requests' chunks before its pass starts, in ms
    /// [default: 0 on CPU, 2 on a GPU].
    #[arg(long)]
    pub batch_wait_ms: Option<u64>,
    /// Admission queue capacity in chunks; a full queue answers 503 with Retry-After at once.
    #[arg(long, default_value_t = ServerConfig::default().queue_chunks)]
    pub queue_chunks: usize,
    /// Largest request body in bytes; larger ones get 413 before they are read.
    #[arg(long, default_value_t = ServerConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most request-body bytes held in memory at once; beyond it, 503.
    #[arg(long, default_value_t = ServerConfig::default().body_bytes_in_flight)]
    pub body_bytes_in_flight: usize,
    /// Longest a request may take, in ms (`X-Kompress-Deadline-Ms` can shorten it); then 504.
    #[arg(long, default_value_t = ServerConfig::default().deadline.as_millis() as u64)]
    pub deadline_ms: u64,
    /// Most texts, blocks, KServe instances or eviction lines in one request; beyond it, 413.
    #[arg(long, default_value_t = ServerConfig::default().max_items)]
    pub max_items: usize,
    /// How long a new connection has to send a request head (and any connection the rest of a head
    /// once it began), in ms; then it is closed.
    #[arg(long, default_value_t = ServerConfig::default().header_timeout.as_millis() as u64)]
    pub header_timeout_ms: u64,
    /// How long a connection may stay idle between requests, in ms; then it is closed.
    #[arg(long, default_value_t = ServerConfig::default().keep_alive.as_millis() as u64)]
    pub keep_alive_ms: u64,
    /// Most connections served at once; at the cap a new one closes the one idle the longest, and
    /// with none idle up to 32 more get the health routes only. Lowered to fit the open-file limit
    /// (raised to its hard limit at start).
    #[arg(long, default_value_t = ServerConfig::default().max_connections)]
    pub max_connections: usize,
    /// After SIGTERM/SIGINT, how long requests in flight may still take, in ms.
    #[arg(long, default_value_t = ServerConfig::default().grace.as_millis() as u64)]
    pub grace_ms: u64,
    /// The name of the model given by a bare --model, in the serving engines' routes: /predictions/NAME
    /// (TorchServe), /v1/models/NAME:predict (KServe v1), /v2/models/NAME/infer (KServe v2), and in
    /// the `model` field of kompress's own routes; another name is 404.
    #[arg(long, default_value = "kompress", value_parser = model_name)]
    pub model_name: String,
    /// Weights of the eviction routes' learned policy (default: the built-in weights).
    #[arg(long)]
    pub evict_checkpoint: Option<PathBuf>,
    /// The compression options of a request that names none (the flags of `kompress compress`).
    #[command(flatten, next_help_heading = "Compression defaults")]
    pub compress: CompressFlags,
}

/// `--model-name`: one path segment (letters, digits, `-`, `_`, `.`), as the routes need it.
fn model_name(s: &str) -> Result<String, String> {
    match is_model_name(s) {
        true => Ok(s.to_string()),
        false => Err("not a name of letters, digits, `-`, `_` and `.`".into()),
    }
}

impl ServeArgs {
    /// Each `--model` as (name, directory or hub id), in order: `NAME=SOURCE` when what comes before
    /// the first `=` is a name (a path such as `./a=b` is not), else `--model-name` for the source. A
    /// name given twice, or two models without a name, is an error.
    fn named_models(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut named: Vec<(String, String)> = Vec::with_capacity(self.models.len());
        for value in &self.models {
            let (name, source) = match value.split_once('=') {
                Some((name, source)) if is_model_name(name) => (name.to_string(), source.to_string()),
                _ => (self.model_name.clone(), value.clone()),
            };
            if source.is_empty() {
                anyhow::bail!("--model {value}: no model directory or hub id after `{name}=`");
            }
            if let Some((_, first)) = named.iter().find(|(n, _)| *n == name) {
                match value.contains('=') {
                    true => anyhow::bail!("--model {value}: the name `{name}` is taken by --model {first}"),
                    false => anyhow::bail!(
                        "--model {value}: a second model without a name (`{name}` is --model {first}); give each \
                         as NAME=DIR"
                    ),
                }
            }
            named.push((name, source));
        }
        Ok(named)
    }

    /// The server's settings; `gpu` picks the batching defaults.
    fn config(&self, gpu: bool) -> anyhow::Result<ServerConfig> {
        let base = ServerConfig::default();
        // Settings under which no request could ever be served are refused at start.
        if self.queue_chunks == 0 {
            anyhow::bail!("--queue-chunks 0: the queue must hold at least 1 chunk");
        }
        if self.body_bytes_in_flight < self.max_body_bytes {
            anyhow::bail!(
                "--body-bytes-in-flight {} is less than --max-body-bytes {}: a request body of the largest size could never be read",
                self.body_bytes_in_flight,
                self.max_body_bytes
            );
        }
        if self.deadline_ms == 0 {
            anyhow::bail!("--deadline-ms 0: every request would be past its deadline");
        }
        for (flag, value) in [
            ("--max-items", self.max_items as u64),
            ("--header-timeout-ms", self.header_timeout_ms),
            ("--keep-alive-ms", self.keep_alive_ms),
            ("--max-connections", self.max_connections as u64),
        ] {
            if value == 0 {
                anyhow::bail!("{flag} 0: no request could ever be served");
            }
        }
        let linears = self.load.dtype.precision(&Device::Cpu).map_or(Linears::Native, |p| p.linears);
        let defaults = self
            .compress
            .options(false, default_batch_size(gpu, linears))
            .context("invalid default options")?;
        let batch = BatchLimits {
            tokens: self.batch_tokens.unwrap_or(if gpu { 8192 } else { base.batch.tokens }),
            wait: Duration::from_millis(self.batch_wait_ms.unwrap_or(if gpu { 2 } else { 0 })),
        };
        Ok(ServerConfig {
            token: self.token.clone().filter(|t| !t.is_empty()),
            defaults,
            batch,
            queue_chunks: self.queue_chunks,
            max_body_bytes: self.max_body_bytes,
            body_bytes_in_flight: self.body_bytes_in_flight,
            deadline: Duration::from_millis(self.deadline_ms),
            max_items: self.max_items,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            keep_alive: Duration::from_millis(self.keep_alive_ms),
            max_connections: fit_connections(self.max_connections, raise_open_files()),
            grace: Duration::from_millis(self.grace_ms),
            release_memory: Some(release_memory),
            model_names: self.named_models()?.into_iter().map(|(name, _)| name).collect(),
        })
    }
}

/// Hands the heap's free memory back to the system: `main` raised glibc's trim threshold so that the
/// forward passes reuse their buffers, which also kept, after a burst of 3,000 slow connections, their
/// 126 MB for good. Called only while the server is idle.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Descriptors kept for everything but client connections: the listener, the model's files while it
/// loads, the runtime's own, logs.
const SPARE_FILES: u64 = 128;

/// `asked` connections, lowered so that they, the health reserve and [`SPARE_FILES`] fit in the
/// open-file limit: past it every `accept` fails with `EMFILE`, probes included.
fn fit_connections(asked: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files else { return asked };
    let fit = limit.saturating_sub(SPARE_FILES + CONNECTION_RESERVE as u64).max(1);
    match asked as u64 > fit {
        true => {
            tracing::warn!(
                "--max-connections {asked} lowered to {fit}: the open-file limit is {limit} (raise it with `ulimit -n`)"
            );
            fit as usize
        }
        false => asked,
    }
}

/// Raises the soft limit on open files to the hard one (a server's connections are files; the soft
/// limit is often 1024 while the hard one is far above), and answers the soft limit now.
fn raise_open_files() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct given.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

pub fn run(mut args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    args.load.follow_compat(args.compress.compat.as_deref());
    let device = args.load.open_device()?;
    let config = args.config(!device.is_cpu())?;
    let network = match &args.evict_checkpoint {
        Some(path) => EvictionNetwork::load(path)?,
        None => EvictionNetwork::embedded()?,
    };
    // Request work runs on blocking threads, at most one per admitted request; idle ones end after
    // 2 s, so a burst leaves no threads behind.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(config.queue_chunks.clamp(1, 1024) + 32)
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .context("cannot start the async runtime")?;
    let counter = config.defaults.count_tokens;
    let server = Server::with_network(config, network)?;
    runtime.block_on(serve(server, args, device, counter))
}

async fn serve(server: Server, args: ServeArgs, device: Device, counter: TokenCounter) -> anyhow::Result<()> {
    let addr = SocketAddr::new(args.host, args.port);
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr().context("cannot read the listening address")?;
    tracing::info!("listening on http://{addr} (the model loads in the background; /readyz says when)");
    // Loads off the async threads, so /healthz answers meanwhile; a failure stops the server.
    let (loaded_tx, loaded) = tokio::sync::oneshot::channel();
    let loader = server.clone();
    // The default token counter's vocabulary beside it, else the first request builds it.
    std::thread::spawn(move || counter.preload());
    std::thread::spawn(move || {
        let loaded = load_models(&args, &device).and_then(|models| Ok(loader.set_models(models)?));
        let _ = loaded_tx.send(loaded);
    });
    // The load's failure, if it fails; a loader that panicked drops its sender, which is one too.
    let load_failure = async move {
        match loaded.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(anyhow::anyhow!("the model loader stopped without a model")),
        }
    };
    let (stop, mut load_error) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        tokio::select! {
            () = signal() => {}
            // A load that succeeds disables this branch; the server then runs until a signal.
            Some(e) = load_failure => { let _ = stop.send(e); }
        }
    };
    server.run(listener, shutdown).await?;
    if let Ok(e) = load_error.try_recv() {
        return Err(e);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Every `--model`, one after another (each load uses every core), each with its source.
fn load_models(args: &ServeArgs, device: &Device) -> anyhow::Result<Vec<(kompress::Kompress, String)>> {
    let mut models = Vec::new();
    for (name, source) in args.named_models()? {
        let started = std::time::Instant::now();
        let model = args.load.load_on(&source, device)?;
        tracing::info!("model `{name}` ({source}) ready in {:.2} s", started.elapsed().as_secs_f64());
        models.push((model, source));
    }
    Ok(models)
}

/// SIGTERM or SIGINT.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Logs on stderr; `KOMPRESS_LOG` (e.g. `debug`, `kompress=info,tower_http=debug`) filters them.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KOMPRESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
