//! `kompress serve` on loopback: every route and error code, the token, concurrency, a full queue,
//! deadlines, a disconnecting client, graceful shutdown, and the binary's signals and idle CPU.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kompress::evict::{compress_detailed, compress_for_turn, EvictionNetwork, PolicyKind};
use kompress::pipeline::Mode;
use kompress::server::{BatchLimits, Server, ServerConfig};
use kompress::{compress_batch, CompressOptions, DTypeChoice, Kompress, LoadOptions};
use serde_json::{json, Value};

fn model() -> Kompress {
    let opts = LoadOptions { device: common::test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    Kompress::from_dir(common::model_dir("v5"), &opts).unwrap()
}

/// A server on an ephemeral loopback port, on its own runtime.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<kompress::Result<()>>>,
}

fn start(config: ServerConfig) -> Running {
    let server = Server::new(config).unwrap();
    server.set_model(model(), "v5").unwrap();
    start_with(server)
}

fn start_with(server: Server) -> Running {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            server
                .run(listener, async {
                    stopped.await.ok();
                })
                .await
        })
    });
    Running { addr: addr_rx.recv().unwrap(), stop: Some(stop), thread: Some(thread) }
}

impl Running {
    /// Signals shutdown and waits for `run` to return.
    fn shutdown(&mut self) -> kompress::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread.take().map_or(Ok(()), |t| t.join().unwrap())
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        request(self.addr, "GET", path, headers, b"")
    }

    fn post(&self, path: &str, body: &Value) -> Answer {
        request(self.addr, "POST", path, &[], body.to_string().as_bytes())
    }

    /// One sample of a metric (the first line that starts with `name`).
    fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics", &[]).body;
        let line =
            text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Waits (bounded) until `/metrics` shows `name` satisfying `ok`; returns how long it took.
    fn wait_for(&self, name: &str, ok: impl Fn(f64) -> bool, within: Duration) -> Duration {
        let started = Instant::now();
        while !ok(self.metric(name)) {
            assert!(started.elapsed() < within, "{name} stayed at {} for {within:?}", self.metric(name));
            std::thread::sleep(Duration::from_millis(5));
        }
        started.elapsed()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The error's field, after checking the error body is one line of JSON with a `detail`.
    fn field(&self) -> Option<String> {
        assert!(!self.body.contains('\n'), "{}", self.body);
        let v = self.json();
        assert!(v["detail"].is_string() && v["error"] == v["detail"], "{v}");
        v["field"].as_str().map(String::from)
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream
}

/// Sends `head` (request line and headers, without the final blank line) and `body`; reads the answer.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).unwrap();
    // The server may answer (413) and close before the body is all sent.
    let _ = s.write_all(body);
    read_answer(&mut s)
}

fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    exchange(addr, &head, body)
}

fn read_answer(s: &mut TcpStream) -> Answer {
    try_read_answer(s).expect("an answer")
}

/// The answer, or `None` when the connection closed without one.
fn try_read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Answer { status, headers, body: body.to_string() })
}

/// Prose of `words` words with numbers, paths and negations, varied by `seed`.
fn prose(words: usize, seed: usize) -> String {
    let vocab = [
        "the",
        "quick",
        "brown",
        "fox",
        "must",
        "not",
        "jump",
        "over",
        "/etc/hosts",
        "and",
        "42",
        "lazy",
        "dogs.",
        "Parsing",
        "config",
        "files",
        "carefully",
        "never",
        "fails",
        "today",
    ];
    let mut out = String::new();
    for i in 0..words {
        out.push_str(vocab[(i * 7 + seed * 13 + i / 5) % vocab.len()]);
        out.push(if i % 17 == 16 { '\n' } else { ' ' });
    }
    out
}

/// A text that keeps the v5 model busy for about a second on 2 cores.
fn slow_text() -> String {
    prose(15_000, 3)
}

fn defaults() -> CompressOptions {
    ServerConfig::default().defaults
}

/// The fields of a library result as the server answers them.
fn expected(r: &kompress::CompressResult, mode: &str) -> Value {
    let mut v = serde_json::to_value(r).unwrap();
    v["mode"] = json!(mode);
    v["model"] = json!("v5");
    v["device"] = json!("cpu");
    v["dtype"] = json!("f32");
    wire(v)
}

/// `v` as it reads back from the wire (serde_json's default float parsing can be one ulp off; the
/// answers themselves carry the shortest exact form).
fn wire(v: Value) -> Value {
    serde_json::from_str(&v.to_string()).unwrap()
}

#[test]
fn a_passthrough_says_why_in_the_answer() {
    let server = start(ServerConfig::default());
    let text = prose(300, 1);
    // A passthrough says why, in a field Headroom's client does not read; a compressed text has none.
    let short = server.post("/compress", &json!({ "content": "Please keep the backup." })).json();
    assert_eq!(short["compressed"], "Please keep the backup.");
    assert_eq!(short["passthrough_reason"], "short", "{short}");
    let doc = format!("{{\"notes\": {}}}", json!(text));
    let structured = server.post("/v1/compress", &json!({ "text": doc })).json();
    assert_eq!(
        (structured["passthrough"].as_bool(), structured["passthrough_reason"].as_str()),
        (Some(true), Some("structured"))
    );
}

#[test]
fn every_route_answers_its_contract() {
    let server = start(ServerConfig::default());
    let model = model();
    let text = prose(300, 1);

    let alone = |opts: &CompressOptions| compress_batch(&model, &[&text], opts).unwrap().remove(0);
    let card = alone(&defaults());
    let headroom = server.post("/compress", &json!({ "content": text, "target_ratio": null }));
    assert_eq!(headroom.status, 200, "{}", headroom.body);
    assert_eq!(
        headroom.json(),
        wire(
            json!({ "compressed": card.compressed, "original_tokens": 300, "compressed_tokens": card.kept_words,
                "compression_ratio": card.kept_words as f64 / 300.0, "model_used": "v5" })
        )
    );
    let half = alone(&CompressOptions { mode: Mode::Ratio(0.5), ..defaults() });
    let answer = server.post("/compress", &json!({ "content": text, "target_ratio": 0.5 })).json();
    assert_eq!(answer["compressed"], json!(half.compressed));
    assert_ne!(half.compressed, card.compressed);

    let one = server.post("/v1/compress", &json!({ "text": text, "options": { "ratio": 0.5 } }));
    assert_eq!(one.json(), expected(&half, &Mode::Ratio(0.5).to_string()));
    let opts =
        CompressOptions { mode: Mode::Threshold(0.4), explain: true, protect_tables: false, ..defaults() };
    let many = server.post(
        "/v1/compress",
        &json!({ "text": [text, "too short", prose(90, 2)],
                 "options": { "threshold": 0.4, "explain": true, "no_protect_tables": true } }),
    );
    let library = compress_batch(&model, &[&text, "too short", &prose(90, 2)], &opts).unwrap();
    let results: Vec<Value> = library.iter().map(|r| expected(r, &opts.mode.to_string())).collect();
    assert_eq!(many.json(), wire(json!({ "results": results })));

    let network = EvictionNetwork::embedded().unwrap();
    let context = "import os\n\ndef fetch(row):\n    return None\n".repeat(12);
    let question = "What does fetch return?";
    let learned = PolicyKind::Learned.build(question, &network, 0);
    let r = compress_for_turn(&[&context], question, 0.35, learned.as_ref()).unwrap();
    let sc = server.post("/api/v1/compress", &json!({ "context": context, "query": question }));
    let sc = sc.json();
    assert_eq!(sc["compressed_text"], json!(r.compressed_text));
    assert_eq!(
        (sc["original_tokens"].as_u64(), sc["kept_tokens"].as_u64()),
        (Some(r.original_tokens as u64), Some(r.kept_tokens as u64))
    );
    assert_eq!(sc["policy_name"], json!(r.policy));
    assert_eq!(sc["budget_ratio"], json!(0.35));
    assert!((sc["kv_savings_pct"].as_f64().unwrap() - r.kv_savings_pct).abs() <= 0.005);
    let lines = context.lines().count() as f64;
    assert!((sc["kept_line_ratio"].as_f64().unwrap() - r.kept_lines.len() as f64 / lines).abs() <= 0.0005);

    let blocks = ["import os", "  ", "def fetch(row):\n    return None"];
    let r = compress_for_turn(&blocks, question, 0.5, learned.as_ref()).unwrap();
    let b = server.post(
        "/v1/compress/blocks",
        &json!({ "context_blocks": blocks, "query": question, "budget_ratio": 0.5 }),
    );
    let b = b.json();
    assert_eq!(b["compressed_text"], json!(r.compressed_text));
    assert!(r.compressed_text.contains("import os\n\n---\n\ndef fetch"), "{}", r.compressed_text);
    assert_eq!(b["stats"]["original_tokens"], json!(r.original_tokens));
    assert_eq!(b["stats"]["kept_tokens"], json!(r.kept_tokens));

    let h2o = PolicyKind::H2o.build(question, &network, 0);
    let (r, annotations) = compress_detailed(&context, question, 0.2, h2o.as_ref()).unwrap();
    let mut want = serde_json::to_value(&r).unwrap();
    want["annotations"] = serde_json::to_value(&annotations).unwrap();
    let e = server.post(
        "/v1/evict",
        &json!({ "context": context, "question": question, "budget": 0.2, "policy": "h2o", "annotate": true }),
    );
    assert_eq!(e.json(), wire(want));

    assert_eq!(server.get("/healthz", &[]).json(), json!({ "status": "ok" }));
    assert_eq!(
        server.get("/readyz", &[]).json(),
        json!({ "status": "ready", "model": "v5", "models": ["kompress"], "methods": ["kompress", "headroom", "ctxprune"] })
    );
    let metrics = server.get("/metrics", &[]);
    assert!(metrics.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    for needle in [
        "kompress_requests_total{route=\"/compress\",status=\"200\"} 2",
        "kompress_requests_total{route=\"/v1/evict\",status=\"200\"} 1",
        "kompress_request_duration_seconds_bucket{route=\"/v1/compress\",le=\"+Inf\"} 2",
        "kompress_batch_chunks_count",
        "kompress_queue_chunks 0",
        "kompress_model_ready 1",
    ] {
        assert!(metrics.body.contains(needle), "{needle} not in\n{}", metrics.body);
    }
    let words_in = server.metric("kompress_words_in_total");
    assert_eq!(words_in, (300 * 4 + 2 + 90) as f64);
}

#[test]
fn readyz_waits_for_the_model_and_eviction_does_not() {
    let server = Server::new(ServerConfig::default()).unwrap();
    let running = start_with(server.clone());
    assert_eq!(running.get("/healthz", &[]).status, 200);
    assert_eq!(running.get("/readyz", &[]).status, 503);
    let early = running.post("/compress", &json!({ "content": prose(100, 0) }));
    assert_eq!((early.status, early.headers["retry-after"].as_str()), (503, "1"));
    let evict = json!({ "context": "a\nb\nc", "question": "b?" });
    assert_eq!(running.post("/v1/evict", &evict).status, 200);
    assert_eq!(running.metric("kompress_model_ready"), 0.0);
    server.set_model(model(), "v5").unwrap();
    assert!(server.set_model(model(), "again").is_err());
    assert_eq!(running.get("/readyz", &[]).status, 200);
    assert_eq!(running.post("/compress", &json!({ "content": prose(100, 0) })).status, 200);
}

#[test]
fn bad_requests_get_their_status_and_a_one_line_error() {
    let limit = 64 << 10;
    let server = start(ServerConfig { max_body_bytes: limit, ..Default::default() });
    let raw = |path: &str, body: &[u8]| request(server.addr, "POST", path, &[], body);

    let bad = raw("/v1/compress", b"{\"text\": ");
    assert_eq!((bad.status, bad.field().as_deref()), (400, Some("text")));
    let bad = raw("/v1/compress", b"{\"text\": \"a\",\n  \"options\": }");
    assert_eq!((bad.status, bad.field().as_deref()), (400, Some("options")));
    assert_eq!(
        (bad.json()["line"].as_u64(), bad.json()["column"].as_u64()),
        (Some(2), Some(14)),
        "{}",
        bad.body
    );
    assert!(bad.json()["detail"].as_str().unwrap().contains("line 2 column 14"), "{}", bad.body);
    let bad = raw("/v1/compress", b"42");
    assert_eq!((bad.status, bad.field()), (400, None));
    let bad = raw("/v1/compress", b"{\"text\": \"a\"} trailing");
    assert_eq!((bad.status, bad.field()), (400, None));
    assert_eq!(
        (bad.json()["line"].as_u64(), bad.json()["column"].as_u64()),
        (Some(1), Some(15)),
        "{}",
        bad.body
    );
    let bad = raw("/v1/compress", b"{\"text\" \"a\"}");
    assert_eq!((bad.status, bad.field()), (400, None), "{}", bad.body);
    assert!(bad.json()["line"].is_u64(), "{}", bad.body);
    let wrong_type = server.post("/v1/compress", &json!({ "text": "a", "options": { "ratio": "half" } }));
    assert_eq!((wrong_type.status, wrong_type.field().as_deref()), (400, Some("options.ratio")));
    let typo = server.post("/v1/compress", &json!({ "text": "a", "option": {} }));
    assert_eq!((typo.status, typo.field().as_deref()), (400, Some("option")));
    let missing = server.post("/compress", &json!({ "target_ratio": 0.5 }));
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("content"), "{}", missing.body);
    let not_utf8 = raw("/compress", b"{\"content\": \"caf\xe9\"}");
    assert_eq!((not_utf8.status, not_utf8.field().as_deref()), (400, Some("content")));
    let out_of_range =
        server.post("/v1/compress", &json!({ "text": prose(100, 0), "options": { "ratio": 1.5 } }));
    assert_eq!(out_of_range.status, 400);
    assert!(out_of_range.body.contains("ratio 1.5"), "{}", out_of_range.body);
    let policy = server.post("/v1/evict", &json!({ "context": "x", "question": "y", "policy": "lifo" }));
    assert_eq!((policy.status, policy.field().as_deref()), (400, Some("policy")));
    let budget = server.post("/api/v1/compress", &json!({ "context": "x", "budget_ratio": 0.01 }));
    assert_eq!((budget.status, budget.field().as_deref()), (400, Some("budget_ratio")));
    let empty = server.post("/api/v1/compress", &json!({ "context": "" }));
    assert_eq!((empty.status, empty.field().as_deref()), (400, Some("context")));
    let header = request(server.addr, "POST", "/compress", &[("X-Kompress-Deadline-Ms", "soon")], b"{}");
    assert_eq!((header.status, header.field().as_deref()), (400, Some("X-Kompress-Deadline-Ms")));

    // Over the limit by its Content-Length: refused without the body being sent at all.
    let started = Instant::now();
    let head = format!("POST /compress HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n", 1u64 << 40);
    let big = exchange(server.addr, &head, b"");
    assert_eq!((big.status, big.field()), (413, None));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Over the limit without a length (chunked): refused once the limit is passed.
    let mut body = String::new();
    let chunk = "x".repeat(4096);
    for _ in 0..(limit / 4096 + 2) {
        body.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    body.push_str("0\r\n\r\n");
    let chunked = exchange(
        server.addr,
        "POST /compress HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n",
        body.as_bytes(),
    );
    assert_eq!(chunked.status, 413);
    // More chunks than the whole queue: 413 too, before any work.
    let queue = ServerConfig::default().queue_chunks;
    let huge = server.post("/compress", &json!({ "content": prose(350 * (queue + 1), 0) }));
    assert_eq!(huge.status, 413, "{}", huge.body);

    assert_eq!(server.get("/nowhere", &[]).status, 404);
    assert_eq!(server.get("/nowhere", &[]).field(), None);
    let wrong_method = server.get("/compress", &[]);
    assert_eq!((wrong_method.status, wrong_method.field()), (405, None));
    assert_eq!(request(server.addr, "POST", "/healthz", &[], b"").status, 405);
    // The server is still well after all of that.
    assert_eq!(server.post("/compress", &json!({ "content": "fine" })).status, 200);
    assert_eq!(server.metric("kompress_requests_total{route=\"/compress\",status=\"413\"}"), 3.0);
}

#[test]
fn a_token_guards_every_route_but_the_probes() {
    let server = start(ServerConfig { token: Some("s3cret".into()), ..Default::default() });
    let body = json!({ "content": "hello there" }).to_string();
    let post = |headers: &[(&str, &str)]| request(server.addr, "POST", "/compress", headers, body.as_bytes());
    assert_eq!(post(&[]).status, 401);
    assert_eq!(post(&[]).field(), None);
    assert_eq!(post(&[("Authorization", "Bearer wrong")]).status, 401);
    assert_eq!(post(&[("Authorization", "Bearer s3cre")]).status, 401);
    assert_eq!(post(&[("Authorization", "s3cret")]).status, 401);
    assert_eq!(post(&[("X-API-Key", "s3cret!")]).status, 401);
    assert_eq!(post(&[("Authorization", "Bearer s3cret")]).status, 200);
    assert_eq!(post(&[("authorization", "bearer s3cret")]).status, 200);
    assert_eq!(post(&[("X-API-Key", "s3cret")]).status, 200);
    assert_eq!(server.get("/metrics", &[]).status, 401);
    assert_eq!(server.get("/metrics", &[("X-API-Key", "s3cret")]).status, 200);
    assert_eq!(server.get("/nowhere", &[]).status, 401);
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert_eq!(server.get("/readyz", &[]).status, 200);
    let both = [("X-API-Key", "stale"), ("Authorization", "Bearer s3cret")];
    assert_eq!(server.get("/metrics", &both).status, 200, "a right Bearer token beside a wrong key");
    let empty = ServerConfig { token: Some(" ".into()), ..Default::default() };
    assert!(Server::new(empty).is_err(), "an empty token is refused");
}

#[test]
fn concurrent_clients_get_the_answers_of_compressing_alone() {
    // A long wait and room for many chunks, so that requests do share forward passes.
    let batch = BatchLimits { tokens: 16 * 512, wait: Duration::from_millis(40) };
    let server = start(ServerConfig { batch, ..Default::default() });
    let model = model();
    let texts: Vec<String> = (0..24).map(|i| prose(100 + 37 * i, i)).collect();
    let alone: Vec<_> = texts.iter().map(|t| kompress::compress(&model, t, &defaults()).unwrap()).collect();
    let server = &server;
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .iter()
            .map(|t| scope.spawn(move || server.post("/v1/compress", &json!({ "text": t })).json()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (answer, r) in answers.iter().zip(&alone) {
        assert_eq!(answer, &expected(r, "card"));
    }
    let (passes, chunks) =
        (server.metric("kompress_batch_chunks_count"), server.metric("kompress_batch_chunks_sum"));
    let scored: usize = alone.iter().map(|r| r.chunks).sum();
    assert_eq!(chunks, scored as f64);
    assert!(passes < chunks, "no forward pass was shared: {passes} passes for {chunks} chunks");
}

/// Starts `body` on `path` in the background; its answer comes from the handle.
fn in_background(addr: SocketAddr, path: &'static str, body: Value) -> JoinHandle<Answer> {
    std::thread::spawn(move || request(addr, "POST", path, &[], body.to_string().as_bytes()))
}

#[test]
fn a_full_queue_answers_503_at_once_then_recovers() {
    let server = start(ServerConfig { queue_chunks: 50, ..Default::default() });
    let slow = slow_text();
    let busy = in_background(server.addr, "/compress", json!({ "content": slow }));
    server.wait_for("kompress_queue_chunks", |n| n > 0.0, Duration::from_secs(10));
    let started = Instant::now();
    let refused = server.post("/compress", &json!({ "content": prose(350 * 10, 1) }));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.headers["retry-after"], "1");
    assert!(started.elapsed() < Duration::from_millis(500), "503 took {:?}", started.elapsed());
    // Probes stay fast meanwhile.
    let started = Instant::now();
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(busy.join().unwrap().status, 200);
    assert_eq!(server.metric("kompress_queue_chunks"), 0.0);
    assert_eq!(server.post("/compress", &json!({ "content": prose(350 * 10, 1) })).status, 200);
}

#[test]
fn a_deadline_answers_504_and_drops_the_work() {
    let server = start(ServerConfig::default());
    let body = json!({ "content": slow_text() }).to_string();
    let started = Instant::now();
    let late =
        request(server.addr, "POST", "/compress", &[("X-Kompress-Deadline-Ms", "100")], body.as_bytes());
    assert_eq!(late.status, 504, "{}", late.body);
    assert!(late.body.contains("X-Kompress-Deadline-Ms"), "{}", late.body);
    assert!(started.elapsed() < Duration::from_millis(800), "504 took {:?}", started.elapsed());
    // The work stops at its next chunk rather than running on.
    server.wait_for("kompress_queue_chunks", |n| n == 0.0, Duration::from_millis(500));
    // The server's own deadline applies without the header.
    let strict = start(ServerConfig { deadline: Duration::from_millis(100), ..Default::default() });
    let late = request(strict.addr, "POST", "/compress", &[], body.as_bytes());
    assert_eq!(late.status, 504);
    assert!(late.body.contains("server's deadline"), "{}", late.body);
}

#[test]
fn a_time_budget_answers_200_with_what_it_did_before_the_deadline() {
    // Room in the queue for a text in chunks of 8 words.
    let server = start(ServerConfig { queue_chunks: 4096, ..Default::default() });
    let text = slow_text();
    let total = kompress::pipeline::words::words(&text).count() as u64;
    let check = |a: &Answer, budget: u64| {
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        assert_eq!(
            (v["unscored_reason"].as_str(), v["original_words"].as_u64()),
            (Some("time_budget"), Some(total))
        );
        assert!(v["scored_words"].as_u64().unwrap() < total, "{}", v["scored_words"]);
        assert!(v["time_budget_ms"].as_u64().unwrap() <= budget, "{}", v["time_budget_ms"]);
        // Every word is still there, in order: the model's choices, then the rest as it was.
        let out = v["compressed"].as_str().unwrap();
        assert!(text
            .split_whitespace()
            .collect::<Vec<_>>()
            .ends_with(&out.split_whitespace().collect::<Vec<_>>()[out.split_whitespace().count() - 100..]));
    };
    let body = json!({ "text": text }).to_string();
    let post = |headers: &[(&str, &str)], body: &str| {
        request(server.addr, "POST", "/v1/compress", headers, body.as_bytes())
    };
    // The header's budget, well within the deadline: about a second of work answers in about 100 ms.
    let started = Instant::now();
    let a = post(&[("X-Kompress-Time-Budget-Ms", "100"), ("X-Kompress-Deadline-Ms", "5000")], &body);
    check(&a, 100);
    assert_eq!(a.json()["time_budget_ms"], 100);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    // A budget past the deadline is cut to 80% of it: 200, never 504. Chunks of 8 words make about two
    // seconds of work in passes of a millisecond or so, well inside the deadline's last 200 ms.
    let small = json!({ "text": slow_text(), "options": { "chunk_words": 8 } }).to_string();
    let a = post(&[("X-Kompress-Time-Budget-Ms", "60000"), ("X-Kompress-Deadline-Ms", "1000")], &small);
    check(&a, 800);
    // The body's field wins over the header.
    let with_field = json!({ "text": slow_text(), "options": { "time_budget_ms": 50 } }).to_string();
    let a = post(&[("X-Kompress-Time-Budget-Ms", "20000")], &with_field);
    check(&a, 50);
    assert_eq!(a.json()["time_budget_ms"], 50);
    // Headroom's contract takes the header, and says what the budget did beside its five fields.
    let headroom = json!({ "content": slow_text() }).to_string();
    let a = request(
        server.addr,
        "POST",
        "/compress",
        &[("X-Kompress-Time-Budget-Ms", "100")],
        headroom.as_bytes(),
    );
    assert_eq!((a.status, a.json()["unscored_reason"].as_str()), (200, Some("time_budget")), "{}", a.body);
    assert!(a.json()["scored_words"].as_u64().unwrap() < total);
    // Without a budget, the deadline still answers 504.
    let a = post(&[("X-Kompress-Deadline-Ms", "100")], &body);
    assert_eq!(a.status, 504, "{}", a.body);

    // The server's default applies to a request that names none; a header overrides it.
    let budgeted = CompressOptions { time_budget: Some(Duration::from_millis(100)), ..defaults() };
    let server = start(ServerConfig { defaults: budgeted, ..Default::default() });
    let a = request(server.addr, "POST", "/v1/compress", &[], body.as_bytes());
    check(&a, 100);
    assert_eq!(a.json()["time_budget_ms"], 100);
    let short = json!({ "text": prose(100, 0) }).to_string();
    let a = request(
        server.addr,
        "POST",
        "/v1/compress",
        &[("X-Kompress-Time-Budget-Ms", "60000")],
        short.as_bytes(),
    );
    // Cut to 80% of the 30 s deadline's time left when the work starts.
    let ms = a.json()["time_budget_ms"].as_u64().unwrap();
    assert!(a.status == 200 && (23_000..=24_000).contains(&ms), "{}", a.body);
    assert!(a.json().get("unscored_reason").is_none(), "{}", a.body);
}

#[test]
fn bad_time_budgets_are_400s_naming_the_header_or_the_field() {
    let server = start(ServerConfig::default());
    let body = json!({ "content": "a few words" }).to_string();
    for bad in ["0", "-5", "soon", "1.5", "86400001"] {
        let a =
            request(server.addr, "POST", "/compress", &[("X-Kompress-Time-Budget-Ms", bad)], body.as_bytes());
        assert_eq!(
            (a.status, a.field().as_deref()),
            (400, Some("X-Kompress-Time-Budget-Ms")),
            "{bad}: {}",
            a.body
        );
    }
    for bad in [json!(0), json!(-5), json!("soon"), json!(1.5), json!(86_400_001)] {
        let a = server.post("/v1/compress", &json!({ "text": "a", "options": { "time_budget_ms": bad } }));
        assert_eq!(
            (a.status, a.field().as_deref()),
            (400, Some("options.time_budget_ms")),
            "{bad}: {}",
            a.body
        );
    }
}

/// Sends a slow request and returns its open connection once its work is queued.
fn send_slow(server: &Running) -> TcpStream {
    let body = json!({ "content": slow_text() }).to_string();
    let mut s = connect(server.addr);
    let head = format!("POST /compress HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    server.wait_for("kompress_queue_chunks", |n| n > 0.0, Duration::from_secs(10));
    s
}

#[test]
fn a_client_that_disconnects_cancels_its_work() {
    let server = start(ServerConfig::default());
    drop(send_slow(&server));
    // Well before the ~1 s the work would take, it is gone.
    server.wait_for("kompress_queue_chunks", |n| n == 0.0, Duration::from_millis(500));
    let scored = server.metric("kompress_batch_chunks_sum");
    let needed = kompress::compress(&model(), &slow_text(), &defaults()).unwrap().chunks as f64;
    assert!(scored < needed, "all {needed} chunks were scored");
}

#[test]
fn shutdown_finishes_requests_in_flight() {
    let mut server = start(ServerConfig::default());
    let slow = slow_text();
    let busy = in_background(server.addr, "/compress", json!({ "content": slow }));
    server.wait_for("kompress_queue_chunks", |n| n > 0.0, Duration::from_secs(10));
    let addr = server.addr;
    server.shutdown().unwrap();
    let answer = busy.join().unwrap();
    assert_eq!(answer.status, 200);
    let alone = kompress::compress(&model(), &slow, &defaults()).unwrap();
    assert_eq!(answer.json()["compressed"], json!(alone.compressed));
    assert!(TcpStream::connect(addr).is_err(), "still accepting after shutdown");
}

#[test]
fn the_grace_period_bounds_shutdown() {
    let mut server = start(ServerConfig { grace: Duration::from_millis(100), ..Default::default() });
    let mut s = send_slow(&server);
    let started = Instant::now();
    server.shutdown().unwrap();
    assert!(started.elapsed() < Duration::from_millis(600), "shutdown took {:?}", started.elapsed());
    // The cut request gets its 503, whole, never a closed connection or a hang.
    let a = try_read_answer(&mut s).expect("an answer");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.json()["detail"].as_str().unwrap().contains("shutting down"), "{}", a.body);
}

#[test]
fn every_request_cut_by_the_grace_period_gets_a_whole_503() {
    // Issue 23: with 24 requests in flight, some clients got an empty reply. Each request needs 10
    // chunks and passes interleave, so none finishes before the grace period ends.
    const CLIENTS: usize = 24;
    for round in 0..5 {
        let config =
            ServerConfig { grace: Duration::from_millis(100), queue_chunks: 1000, ..Default::default() };
        let mut server = start(config);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| in_background(server.addr, "/compress", json!({ "content": prose(3500, i) })))
            .collect();
        server.wait_for("kompress_queue_chunks", |n| n >= (CLIENTS * 10) as f64, Duration::from_secs(20));
        server.shutdown().unwrap();
        let statuses: Vec<u16> = clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .map(|a| {
                // `request` panics on an empty or cut answer; a 503 is whole JSON.
                if a.status == 503 {
                    assert_eq!(a.headers["content-length"], a.body.len().to_string(), "{}", a.body);
                    a.field();
                }
                a.status
            })
            .collect();
        assert!(statuses.iter().all(|&s| s == 200 || s == 503), "round {round}: {statuses:?}");
        assert!(statuses.contains(&503), "round {round}: nothing was cut: {statuses:?}");
    }
}

/// CPU time (user + system, in clock ticks) of a process, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Threads of a process, from /proc.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().count()
}

#[test]
fn the_binary_serves_idles_at_zero_cpu_leaks_no_thread_and_exits_0_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kompress"))
        .env("KOMPRESS_DTYPE", "f32")
        .args(["serve", "--port", "0", "--device", "cpu", "-m"])
        .arg(common::model_dir("v5"))
        .env("KOMPRESS_TOKEN", "t0k")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        addr = line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()?.parse().ok());
        line.clear();
    }
    let addr: SocketAddr = addr.expect("the server printed its address");
    assert!(addr.ip().is_loopback(), "bound to {addr} by default");
    let started = Instant::now();
    while request(addr, "GET", "/readyz", &[], b"").status != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = json!({ "content": prose(500, 4) }).to_string();
    let auth = [("Authorization", "Bearer t0k")];
    assert_eq!(request(addr, "POST", "/compress", &auth, body.as_bytes()).status, 200);
    assert_eq!(request(addr, "POST", "/compress", &[], body.as_bytes()).status, 401);
    // Idle: no thread spins, and the request's threads have ended.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(child.id()) - before;
    assert!(spent <= 1, "{spent} ticks of CPU in 2 s of idle");
    let idle_threads = threads(child.id());
    // A burst of concurrent requests leaves no thread behind once idle again.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| assert_eq!(request(addr, "POST", "/compress", &auth, body.as_bytes()).status, 200));
        }
    });
    let started = Instant::now();
    while threads(child.id()) > idle_threads {
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{} threads, {idle_threads} before",
            threads(child.id())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM with a request in flight: it is answered, then the process exits 0.
    let busy = std::thread::spawn(move || {
        let body = json!({ "content": slow_text() }).to_string();
        request(addr, "POST", "/compress", &[("X-API-Key", "t0k")], body.as_bytes())
    });
    std::thread::sleep(Duration::from_millis(300));
    let killed =
        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    assert_eq!(busy.join().unwrap().status, 200);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_body_that_never_arrives_is_dropped_at_the_deadline() {
    let server = start(ServerConfig::default());
    let mut s = connect(server.addr);
    let head =
        "POST /compress HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\nX-Kompress-Deadline-Ms: 200\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(b"{\"content\": \"only the start").unwrap();
    let started = Instant::now();
    let answer = read_answer(&mut s);
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert!(started.elapsed() < Duration::from_secs(2), "408 took {:?}", started.elapsed());
    // Its share of the body budget came back: a whole request goes through.
    assert_eq!(server.post("/compress", &json!({ "content": prose(100, 2) })).status, 200);
}

#[test]
fn admission_counts_what_a_request_really_costs() {
    let server = start(ServerConfig { queue_chunks: 4, ..Default::default() });
    // Huge chunks do not make a long text cheap: a chunk holds at most its token cap of words.
    let long = json!({ "text": prose(3000, 1), "options": { "chunk_words": 1_000_000_000u64 } });
    let answer = server.post("/v1/compress", &long);
    assert_eq!(answer.status, 413, "{}", answer.body);
    // Nor does cutting it into many texts too short to compress.
    let tiny: Vec<String> = (0..3000).map(|i| format!("w{i}")).collect();
    let answer = server.post("/v1/compress", &json!({ "text": tiny }));
    assert_eq!(answer.status, 413, "{}", answer.body);
    // A request within the queue is served, whatever batch size it asks for, in passes of at most
    // what --batch-tokens allows (512 tokens: one chunk).
    let ok = json!({ "text": prose(400, 3), "options": { "batch_size": 1_000_000u64 } });
    assert_eq!(server.post("/v1/compress", &ok).status, 200);
    let passes = server.metric("kompress_batch_chunks_count");
    assert!(passes >= 2.0, "{passes} passes: the text must need several chunks");
    assert_eq!(server.metric("kompress_batch_chunks_bucket{le=\"1\"}"), passes, "every pass held one chunk");
}

#[test]
fn serve_refuses_settings_that_could_serve_nothing() {
    for (flag, value, says) in [
        ("--queue-chunks", "0", "--queue-chunks 0"),
        ("--deadline-ms", "0", "--deadline-ms 0"),
        ("--body-bytes-in-flight", "10", "less than --max-body-bytes"),
        ("--max-items", "0", "--max-items 0"),
        ("--header-timeout-ms", "0", "--header-timeout-ms 0"),
        ("--keep-alive-ms", "0", "--keep-alive-ms 0"),
        ("--max-connections", "0", "--max-connections 0"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kompress"))
            .env("KOMPRESS_DTYPE", "f32")
            .args(["serve", "--port", "0", "--device", "cpu", flag, value, "-m"])
            .arg(common::model_dir("v5"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{flag} {value}: {err}");
    }
}

/// An LLMLingua-2 model serves every route, and `/v1/llmlingua2/compress` answers llmlingua's result
/// dict, identical to llmlingua 0.2.2's recorded results; a ModernBERT server refuses that route.
#[test]
fn llmlingua2_models_serve_every_route_and_the_llmlingua_route() {
    let name = "llmlingua-2-bert-base-multilingual-cased-tiny";
    let opts = LoadOptions { device: common::test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    let server = Server::new(ServerConfig::default()).unwrap();
    server.set_model(Kompress::from_dir(common::model_dir(name), &opts).unwrap(), name).unwrap();
    let mut running = start_with(server);
    let read = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(common::fixtures().join(p)).unwrap()).unwrap()
    };
    let texts = read("llmlingua2/texts.json");
    let fixture = read(&format!("llmlingua2/{name}.json"));
    let case =
        |n: &str| fixture["cases"].as_array().unwrap().iter().find(|c| c["name"] == n).unwrap().clone();
    let contexts: Vec<Value> =
        ["english", "code", "chinese", "dots"].iter().map(|k| texts[*k].clone()).collect();
    for (n, body) in [
        (
            "english_force",
            json!({ "context": texts["english"], "rate": 0.4, "force_tokens": ["\n", "?", ".", ","] }),
        ),
        (
            "contexts_filter",
            json!({ "context": contexts,
                    "rate": 0.5, "use_context_level_filter": true }),
        ),
    ] {
        let got = running.post("/v1/llmlingua2/compress", &body);
        assert_eq!(got.status, 200, "{n}: {}", got.body);
        let (got, want) = (got.json(), case(n));
        for field in [
            "compressed_prompt",
            "compressed_prompt_list",
            "origin_tokens",
            "compressed_tokens",
            "rate",
            "ratio",
        ] {
            assert_eq!(got[field], want[field], "{n}: {field}");
        }
    }
    let typo = running.post("/v1/llmlingua2/compress", &json!({ "context": "a b c", "ratee": 0.5 }));
    assert!(typo.status == 400 && typo.body.contains("ratee"), "{}", typo.body);
    let missing = running.post("/v1/llmlingua2/compress", &json!({ "rate": 0.5 }));
    assert!(missing.status == 400 && missing.body.contains("context"), "{}", missing.body);
    let zero = running.post("/v1/llmlingua2/compress", &json!({ "context": "a b c", "rate": 0 }));
    assert!(zero.status == 400 && zero.body.contains("rate"), "{}", zero.body);
    let headroom = running.post("/compress", &json!({ "content": texts["english"], "target_ratio": 0.5 }));
    assert_eq!(headroom.status, 200, "{}", headroom.body);
    assert!(headroom.json()["compressed"].as_str().unwrap().len() < texts["english"].as_str().unwrap().len());
    running.shutdown().unwrap();

    let mut modernbert = start(ServerConfig::default());
    let refused = modernbert.post("/v1/llmlingua2/compress", &json!({ "context": "a b c" }));
    assert!(refused.status == 400 && refused.body.contains("LLMLingua-2"), "{}", refused.body);
    modernbert.shutdown().unwrap();
}

/// `POST path` with `headers`.
fn post_with(server: &Running, path: &str, headers: &[(&str, &str)], body: &Value) -> Answer {
    request(server.addr, "POST", path, headers, body.to_string().as_bytes())
}

#[test]
fn serving_engine_routes_answer_the_headroom_contract() {
    let server = start(ServerConfig::default());
    let (text, other) = (prose(120, 3), prose(80, 4));
    let half = server.post("/compress", &json!({ "content": text, "target_ratio": 0.5 })).json();
    let card = server.post("/compress", &json!({ "content": text })).json();
    let card2 = server.post("/compress", &json!({ "content": other })).json();
    assert_ne!(half, card);
    for path in ["/predictions/kompress", "/v1/models/kompress:predict", "/invocations"] {
        let a = server.post(path, &json!({ "content": text, "target_ratio": 0.5 }));
        assert_eq!((a.status, a.json()), (200, half.clone()), "{path}");
    }
    let instances =
        json!({ "instances": [{ "content": text, "target_ratio": 0.5 }, text, { "content": other }] });
    let v1 = server.post("/v1/models/kompress:predict", &instances);
    assert_eq!(v1.json(), json!({ "predictions": [half, card, card2] }));

    let infer = server.post(
        "/v2/models/kompress/infer",
        &json!({ "id": "r1", "parameters": { "target_ratio": 0.5, "content_type": "str", "binary_data_output": true },
                 "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": [text],
                              "parameters": { "content_type": "str" } }] }),
    );
    assert_eq!(infer.status, 200, "{}", infer.body);
    let outputs: Vec<Value> = [
        ("compressed", "BYTES"),
        ("original_tokens", "INT64"),
        ("compressed_tokens", "INT64"),
        ("compression_ratio", "FP64"),
    ]
    .iter()
    .map(|(n, t)| json!({ "name": n, "datatype": t, "shape": [1], "data": [half[n]] }))
    .collect();
    assert_eq!(infer.json(), json!({ "model_name": "kompress", "id": "r1", "outputs": outputs }));
    let two = server.post(
        "/v2/models/kompress/infer",
        &json!({ "inputs": [{ "name": "t", "shape": [2, 1], "datatype": "BYTES", "data": [[text], [other]] }],
                 "outputs": [{ "name": "compressed" }] }),
    );
    assert_eq!(
        two.json()["outputs"],
        json!([{ "name": "compressed", "datatype": "BYTES", "shape": [2],
                 "data": [card["compressed"], card2["compressed"]] }])
    );

    assert_eq!(server.get("/ping", &[]).json(), json!({ "status": "healthy" }));
    assert_eq!(server.get("/v2/health/live", &[]).json(), json!({ "live": true }));
    assert_eq!(server.get("/v2/health/ready", &[]).json(), json!({ "ready": true }));
    assert_eq!(
        server.get("/v2/models/kompress/ready", &[]).json(),
        json!({ "name": "kompress", "ready": true })
    );
    let meta = server.get("/v2/models/kompress", &[]).json();
    assert_eq!((&meta["name"], &meta["inputs"][0]["datatype"]), (&json!("kompress"), &json!("BYTES")));
    assert_eq!(meta["outputs"].as_array().unwrap().len(), 4);
    assert_eq!(server.get("/v2", &[]).json()["name"], "kompress");

    for (method, path) in [
        ("POST", "/predictions/other"),
        ("POST", "/v1/models/other:predict"),
        ("POST", "/v1/models/kompress"),
        ("POST", "/v2/models/other/infer"),
        ("GET", "/v2/models/other"),
        ("GET", "/v2/models/other/ready"),
    ] {
        let a = request(server.addr, method, path, &[], json!({ "content": text }).to_string().as_bytes());
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        assert_eq!(a.field(), None);
    }
    let metrics = server.get("/metrics", &[]).body;
    for needle in [
        "kompress_requests_total{route=\"/predictions/{name}\",status=\"200\"} 1",
        "kompress_requests_total{route=\"/v1/models/{name}:predict\",status=\"200\"} 2",
        "kompress_requests_total{route=\"/v2/models/{name}/infer\",status=\"200\"} 2",
        "kompress_requests_total{route=\"/invocations\",status=\"200\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
}

#[test]
fn serving_engine_routes_refuse_bad_input_with_the_field() {
    let server = start(ServerConfig::default());
    let text = prose(70, 5);
    let tensor = |shape: Value, datatype: &str, data: Value| json!({ "inputs": [{ "name": "text", "shape": shape, "datatype": datatype, "data": data }] });
    let cases = [
        ("/v1/models/kompress:predict", json!({}), Some("instances")),
        ("/v1/models/kompress:predict", json!({ "instances": [7] }), Some("instances[0]")),
        ("/v1/models/kompress:predict", json!({ "instances": [text], "content": text }), Some("instances")),
        (
            "/v1/models/kompress:predict",
            json!({ "instances": [{ "content": text, "target_ratio": 0 }] }),
            None,
        ),
        ("/predictions/kompress", json!({ "text": text }), None),
        ("/invocations", json!({ "content": 5 }), Some("content")),
        ("/v2/models/kompress/infer", json!({ "inputs": [] }), Some("inputs")),
        ("/v2/models/kompress/infer", json!({}), None),
        ("/v2/models/kompress/infer", tensor(json!([1]), "FP32", json!([text])), Some("inputs[0].datatype")),
        ("/v2/models/kompress/infer", tensor(json!([3]), "BYTES", json!([text])), Some("inputs[0].shape")),
        ("/v2/models/kompress/infer", tensor(json!([-1]), "BYTES", json!([text])), Some("inputs[0].shape")),
        ("/v2/models/kompress/infer", tensor(json!([1]), "BYTES", json!([1])), Some("inputs[0].data")),
    ];
    for (path, body, field) in cases {
        let a = server.post(path, &body);
        assert_eq!(a.status, 400, "{path} {body}: {}", a.body);
        assert_eq!(a.field().as_deref(), field, "{path} {body}: {}", a.body);
    }
    let mut asked = tensor(json!([1]), "BYTES", json!([text]));
    asked["outputs"] = json!([{ "name": "logits" }]);
    assert_eq!(server.post("/v2/models/kompress/infer", &asked).field().as_deref(), Some("outputs[0].name"));
    let mut unknown = tensor(json!([1]), "BYTES", json!([text]));
    unknown["parameters"] = json!({ "ratio": 0.5 });
    let a = server.post("/v2/models/kompress/infer", &unknown);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("ratio"), "{}", a.body);
    let mut zero = tensor(json!([1]), "BYTES", json!([text]));
    zero["parameters"] = json!({ "target_ratio": 0 });
    assert_eq!(server.post("/v2/models/kompress/infer", &zero).status, 400);
    let raw = request(server.addr, "POST", "/v2/models/kompress/infer", &[], b"{\"inputs\": [");
    assert_eq!(raw.status, 400);
    let binary = tensor(json!([1]), "BYTES", json!([text])).to_string();
    let header = [("Inference-Header-Content-Length", "12")];
    let a = request(server.addr, "POST", "/v2/models/kompress/infer", &header, binary.as_bytes());
    assert_eq!(
        (a.status, a.field().as_deref()),
        (400, Some("Inference-Header-Content-Length")),
        "{}",
        a.body
    );
    assert_eq!(server.get("/invocations", &[]).status, 405);
}

#[test]
fn serving_engine_probes_wait_for_the_model_and_need_no_token() {
    let config =
        ServerConfig { token: Some("s3cret".into()), model_names: vec!["km".into()], ..Default::default() };
    let server = Server::new(config).unwrap();
    let running = start_with(server.clone());
    let auth = [("Authorization", "Bearer s3cret")];
    let body = json!({ "content": prose(70, 6) });
    let infer =
        json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": [prose(70, 6)] }] });
    assert_eq!(running.get("/v2/health/live", &[]).status, 200);
    for path in ["/ping", "/v2/health/ready"] {
        let a = running.get(path, &[]);
        assert_eq!((a.status, a.headers["retry-after"].as_str()), (503, "1"), "{path}");
    }
    assert_eq!(running.get("/v2/models/km/ready", &[]).status, 401);
    assert_eq!(running.get("/v2/models/km/ready", &auth).status, 503);
    assert_eq!(running.get("/v2/models/km", &auth).status, 200, "metadata needs no model");
    for (path, b) in
        [("/predictions/km", &body), ("/v1/models/km:predict", &body), ("/v2/models/km/infer", &infer)]
    {
        assert_eq!(post_with(&running, path, &[], b).status, 401, "{path}");
        assert_eq!(post_with(&running, path, &[("X-API-Key", "wrong")], b).status, 401, "{path}");
        let early = post_with(&running, path, &auth, b);
        assert_eq!((early.status, early.headers["retry-after"].as_str()), (503, "1"), "{path}");
    }
    server.set_model(model(), "v5").unwrap();
    assert_eq!(running.get("/ping", &[]).status, 200);
    assert_eq!(running.get("/v2/health/ready", &[]).status, 200);
    assert_eq!(running.get("/v2/models/km/ready", &auth).status, 200);
    for (path, b) in
        [("/predictions/km", &body), ("/v1/models/km:predict", &body), ("/v2/models/km/infer", &infer)]
    {
        assert_eq!(post_with(&running, path, &auth, b).status, 200, "{path}");
    }
    assert_eq!(post_with(&running, "/predictions/kompress", &auth, &body).status, 404);
    assert_eq!(running.get("/v2/models/kompress", &auth).status, 404);
}

/// Any token classifier serves `/v1/ctxprune/compress`, answering ctxprune's result dict identical to
/// ctxprune 0.2.1's recorded results; bad arguments are named.
#[test]
fn ctxprune_route_answers_ctxprunes_results() {
    let name = "llmlingua-2-bert-base-multilingual-cased-tiny";
    let opts = LoadOptions { device: common::test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    let server = Server::new(ServerConfig::default()).unwrap();
    server.set_model(Kompress::from_dir(common::model_dir(name), &opts).unwrap(), name).unwrap();
    let mut running = start_with(server);
    let path = common::fixtures().join(format!("ctxprune/{name}.json"));
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in
        fixture["cases"].as_array().unwrap().iter().filter(|c| c["text"] == "paths" || c["text"] == "json")
    {
        let mut body = case["options"].clone();
        body["text"] = fixture["texts"][case["text"].as_str().unwrap()]["text"].clone();
        body["max_len"] = fixture["max_len"].clone();
        let got = running.post("/v1/ctxprune/compress", &body);
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.json(), case["result"], "{}", case["options"]);
    }
    for (body, says) in [
        (json!({ "text": "a b", "rate": 2 }), "rate 2: not in [0, 1]"),
        (json!({ "text": "a b", "rate": "0.5" }), "rate"),
        (json!({ "text": "a b", "unit": "bytes" }), "bytes"),
        (json!({ "rate": 0.5 }), "text"),
        (json!({ "text": "a b", "max_len": 100000 }), "max_len 100000"),
    ] {
        let got = running.post("/v1/ctxprune/compress", &body);
        assert!(got.status == 400 && got.body.contains(says), "{body}: {} {}", got.status, got.body);
    }
    let lone = request(running.addr, "POST", "/v1/ctxprune/compress", &[], br#"{"text": "a \ud800 b"}"#);
    assert!(lone.status == 400 && lone.body.contains("outside a surrogate pair"), "{}", lone.body);
    let rate = running.post("/v1/llmlingua2/compress", &json!({ "context": "a b c", "rate": 2 }));
    assert!(rate.status == 400 && rate.body.contains("rate 2: not in (0, 1]"), "{}", rate.body);
    running.shutdown().unwrap();
}

// Issue 32: hostile or careless clients. Each test is a scaled-down row of the issue's table.

/// The answer to one request on an open connection, read by its `Content-Length` (the connection
/// may stay open).
fn read_one(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before a whole answer: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.trim().parse::<usize>().unwrap());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// Whether the server closed `s` within `within` (end of stream or a reset).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
            }
        }
    }
}

/// A connection that declared a body of `length` bytes and sent only its start.
fn slow_body(addr: SocketAddr, length: usize) -> TcpStream {
    let mut s = connect(addr);
    let head = format!("POST /compress HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&[b'a'; 64]).unwrap();
    s
}

/// A slow body as [`slow_body`], returned once the server is reading it: the head asks for `100
/// Continue`, which hyper sends when the handler first reads the body, so the request is in flight
/// (its connection busy) by then, however loaded the machine.
fn slow_body_in_flight(addr: SocketAddr, length: usize) -> TcpStream {
    let mut s = connect(addr);
    let head = format!(
        "POST /compress HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "closed before 100 Continue: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.push(byte[0]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&seen));
    s.write_all(&[b'a'; 64]).unwrap();
    s
}

fn small() -> Value {
    json!({ "content": prose(60, 1) })
}

#[test]
fn items_are_bounded_by_count_and_each_costs_admission() {
    let server = start(ServerConfig { max_items: 100, ..Default::default() });
    let oip = |n: usize| json!({ "inputs": [{ "name": "t", "shape": [n], "datatype": "BYTES", "data": vec![""; n] }] });
    let cases = [
        ("/v1/compress", json!({ "text": vec![""; 101] }), "text"),
        ("/v1/compress/blocks", json!({ "context_blocks": vec!["a"; 101], "query": "q" }), "context_blocks"),
        ("/v1/models/kompress:predict", json!({ "instances": vec![""; 101] }), "instances"),
        ("/v2/models/kompress/infer", oip(101), "inputs[0].data"),
        ("/v1/evict", json!({ "context": "a\n".repeat(101), "question": "q" }), "context"),
        ("/api/v1/compress", json!({ "context": "a\n".repeat(101), "query": "q" }), "context"),
        (
            "/v1/compress/blocks",
            json!({ "context_blocks": ["a\n".repeat(101)], "query": "q" }),
            "context_blocks",
        ),
    ];
    for (path, body, field) in cases {
        let a = server.post(path, &body);
        assert_eq!((a.status, a.field().as_deref()), (413, Some(field)), "{path}: {}", a.body);
        assert!(a.body.contains("limit of 100 (--max-items)"), "{}", a.body);
    }
    // Far more than the limit is refused before the body is parsed (a million took 100 MB to parse).
    let many = json!({ "inputs": [{ "name": "t", "shape": [5000, 1], "datatype": "BYTES", "data": vec![[""]; 5000] }] });
    for (path, body) in
        [("/v1/compress", json!({ "text": vec![""; 5000] })), ("/v2/models/kompress/infer", many)]
    {
        let a = server.post(path, &body);
        assert_eq!(a.status, 413, "{}", a.body);
        assert!(a.body.contains("more than 1124 elements") && a.body.contains("(--max-items)"), "{}", a.body);
    }
    for (path, body) in [
        ("/v1/compress", json!({ "text": vec![""; 100] })),
        ("/v1/models/kompress:predict", json!({ "instances": vec![""; 100] })),
        ("/v2/models/kompress/infer", oip(100)),
        ("/v1/evict", json!({ "context": "a\n".repeat(100), "question": "q" })),
    ] {
        assert_eq!(server.post(path, &body).status, 200, "{path}");
    }
    // Empty texts, blocks and eviction lines take places in the queue like any other item: 3,000 of
    // them need 9 units of 350, more than a queue of 4.
    let server = start(ServerConfig { queue_chunks: 4, ..Default::default() });
    for (path, body) in [
        ("/v1/compress", json!({ "text": vec![""; 3000] })),
        ("/v1/compress/blocks", json!({ "context_blocks": vec![""; 3000], "query": "q" })),
        ("/v1/evict", json!({ "context": "a\n".repeat(3000), "question": "q" })),
        ("/v2/models/kompress/infer", oip(3000)),
    ] {
        let a = server.post(path, &body);
        assert_eq!(a.status, 413, "{path}: {}", a.body);
        assert!(a.body.contains("more than the whole queue"), "{}", a.body);
    }
}

#[test]
fn a_deadline_stops_work_on_many_items_and_frees_its_place() {
    const N: usize = 200_000;
    let server = start(ServerConfig { max_items: N, queue_chunks: N, ..Default::default() });
    let body = json!({ "text": vec![""; N] }).to_string();
    // The whole request, for comparison.
    let started = Instant::now();
    assert_eq!(request(server.addr, "POST", "/v1/compress", &[], body.as_bytes()).status, 200);
    let whole = started.elapsed();
    let started = Instant::now();
    let a = request(server.addr, "POST", "/v1/compress", &[(DEADLINE, "100")], body.as_bytes());
    assert_eq!(a.status, 504, "{}", a.body);
    // The work stops between texts and gives its place back well before it would have finished.
    server.wait_for("kompress_queue_chunks", |n| n == 0.0, whole.max(Duration::from_secs(1)));
    let freed = started.elapsed();
    assert!(freed < whole, "freed after {freed:?}; the whole request took {whole:?}");
}

const DEADLINE: &str = "X-Kompress-Deadline-Ms";

#[test]
fn idle_connections_are_closed_first_and_never_block_requests() {
    let config = ServerConfig {
        max_connections: 8,
        header_timeout: Duration::from_millis(300),
        keep_alive: Duration::from_millis(300),
        ..Default::default()
    };
    let server = start(config);
    // Five times the cap in idle connections (the issue: 1,100 over a limit of 1,024).
    let mut idle: Vec<TcpStream> = (0..40).map(|_| connect(server.addr)).collect();
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(server.get("/healthz", &[]).status, 200);
        assert_eq!(server.post("/compress", &small()).status, 200);
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
    // Every idle one is closed: to make room, or by the header timeout.
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(5)));
    }
    // A head that never ends is closed by the header timeout too.
    let mut s = connect(server.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    // A kept-alive connection is closed once idle for the keep-alive timeout.
    let mut s = connect(server.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut s).status, 200);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_one(&mut s).status, 200, "kept alive");
    assert!(closed_within(&mut s, Duration::from_secs(5)));
    assert!(server.metric("kompress_connections") <= 2.0);
    // A head over 64 KiB is refused, not buffered (hyper's own bound was about 400 KiB).
    let mut s = connect(server.addr);
    let head = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n", "a".repeat(70_000));
    let _ = s.write_all(head.as_bytes());
    assert_eq!(try_read_answer(&mut s).map(|a| a.status), Some(431));
}

#[test]
fn with_every_connection_busy_probes_still_answer() {
    let server = start(ServerConfig { max_connections: 4, ..Default::default() });
    let slow: Vec<TcpStream> = (0..4).map(|_| slow_body_in_flight(server.addr, 100_000)).collect();
    let probe = server.get("/healthz", &[]);
    assert_eq!(probe.status, 200);
    assert_eq!(server.get("/readyz", &[]).status, 200);
    let refused = server.post("/compress", &small());
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("too many open connections"), "{}", refused.body);
    assert_eq!(refused.headers["connection"], "close");
    drop(slow);
    let started = Instant::now();
    while server.post("/compress", &small()).status != 200 {
        assert!(started.elapsed() < Duration::from_secs(5), "the slow clients' places never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_bodies_hold_only_what_they_sent() {
    let config =
        ServerConfig { max_body_bytes: 1 << 20, body_bytes_in_flight: 1 << 20, ..Default::default() };
    let server = start(config);
    // Each declares the largest body: before, four of them held the whole allowance (503 for all).
    let slow: Vec<TcpStream> = (0..4).map(|_| slow_body(server.addr, 1 << 20)).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let a = server.post("/compress", &small());
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let held = server.metric("kompress_body_bytes_in_flight");
    assert!(held <= 4.0 * 16384.0 + 1.0, "{held} bytes held for 256 sent");
    drop(slow);
}

#[test]
fn readyz_shows_the_models_name_not_its_path() {
    let server = Server::new(ServerConfig { token: Some("s3cret".into()), ..Default::default() }).unwrap();
    let dir = std::fs::canonicalize(common::model_dir("v5")).unwrap();
    server.set_model(model(), dir.to_str().unwrap()).unwrap();
    let server = start_with(server);
    let a = server.get("/readyz", &[]);
    assert_eq!((a.status, a.json()["model"].as_str()), (200, Some("v5")), "{}", a.body);
    assert!(!a.body.contains('/'), "{}", a.body);
}

#[test]
fn answers_before_the_body_is_read_say_connection_close_and_let_the_client_finish() {
    let config = ServerConfig { token: Some("t0k".into()), max_body_bytes: 1 << 20, ..Default::default() };
    let server = start(config);
    // Without the token (401), and over the size limit (413): the client sends its whole body, as
    // simple clients do before reading, and then reads the answer, not a reset.
    for (auth, body, status) in
        [("", vec![b'a'; 4 << 20], 401), ("X-API-Key: t0k\r\n", vec![b'a'; 8 << 20], 413)]
    {
        let mut s = connect(server.addr);
        let head =
            format!("POST /compress HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap_or_else(|e| panic!("{status}: the client could not send its body: {e}"));
        let a = read_answer(&mut s);
        assert_eq!((a.status, a.headers["connection"].as_str()), (status, "close"), "{}", a.body);
    }
    // A body that does not arrive before the deadline (408).
    let mut s = connect(server.addr);
    let head = "POST /compress HTTP/1.1\r\nHost: t\r\nX-API-Key: t0k\r\nX-Kompress-Deadline-Ms: 200\r\nContent-Length: 100\r\n\r\n{";
    s.write_all(head.as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!((a.status, a.headers["connection"].as_str()), (408, "close"), "{}", a.body);
    // An error after the whole body was read keeps the connection.
    let mut s = connect(server.addr);
    s.write_all(b"POST /compress HTTP/1.1\r\nHost: t\r\nX-API-Key: t0k\r\nContent-Length: 1\r\n\r\n{")
        .unwrap();
    let a = read_one(&mut s);
    assert_eq!(a.status, 400);
    assert!(!a.headers.contains_key("connection"), "{:?}", a.headers);
}

#[test]
fn shutdown_answers_a_slow_body_503_within_the_grace() {
    let mut server = start(ServerConfig { grace: Duration::from_millis(300), ..Default::default() });
    let mut s = slow_body_in_flight(server.addr, 100_000);
    let started = Instant::now();
    server.shutdown().unwrap();
    let a = try_read_answer(&mut s).expect("an answer");
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("shutting down"), "{}", a.body);
    // Before: no answer, and the server exited after the grace and 10 s more.
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[test]
fn a_client_reading_a_large_answer_slowly_is_not_closed_to_make_room() {
    let config =
        ServerConfig { max_connections: 1, max_items: 50_000, queue_chunks: 10_000, ..Default::default() };
    let server = start(config);
    // 50,000 short texts (passed through): an answer of about 15 MB, more than the sockets buffer.
    let body = json!({ "text": vec!["a b c"; 50_000] }).to_string();
    let mut slow = connect(server.addr);
    let head = format!("POST /v1/compress HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len());
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(body.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // The cap is reached and the slow reader's answer is still being written: it is not idle, so a
    // new connection gets the health routes only rather than closing it.
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert_eq!(server.post("/compress", &small()).status, 503);
    let answer = read_one(&mut slow);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["results"].as_array().unwrap().len(), 50_000);
}

// Issue 31: several models in one server.

const BERT: &str = "llmlingua-2-bert-base-multilingual-cased-tiny";

/// A server of v5 (the default, named `v5`) and the tiny LLMLingua-2 BERT (named `bert`).
fn start_two(config: ServerConfig) -> Running {
    let opts = LoadOptions { device: common::test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    let bert = Kompress::from_dir(common::model_dir(BERT), &opts).unwrap();
    let server =
        Server::new(ServerConfig { model_names: vec!["v5".into(), "bert".into()], ..config }).unwrap();
    server.set_models(vec![(model(), "v5".into()), (bert, BERT.into())]).unwrap();
    start_with(server)
}

/// Each model answers by name on every route that takes one, as that model alone answers; without a
/// name the first one does; `/v1/models` lists both with their families and methods.
#[test]
fn several_models_answer_by_name_each_as_alone() {
    let server = start_two(ServerConfig::default());
    let opts = LoadOptions { device: common::test_device(), dtype: DTypeChoice::F32, ..Default::default() };
    let bert = Kompress::from_dir(common::model_dir(BERT), &opts).unwrap();
    let text = prose(300, 2);
    let listed = server.get("/v1/models", &[]).json();
    assert_eq!(
        listed,
        json!({ "models": [
            { "name": "v5", "source": "v5", "family": "modernbert", "default": true,
              "methods": ["kompress", "headroom", "ctxprune"] },
            { "name": "bert", "source": BERT, "family": "bert", "default": false,
              "methods": ["kompress", "headroom", "llmlingua2", "ctxprune"] },
        ] })
    );
    let ready = server.get("/readyz", &[]).json();
    assert_eq!((ready["model"].as_str(), &ready["models"]), (Some("v5"), &json!(["v5", "bert"])));
    // The two models keep other words of this text, so a request run on the wrong one shows.
    let (a, b) = (
        compress_batch(&model(), &[text.as_str()], &defaults()).unwrap(),
        compress_batch(&bert, &[text.as_str()], &defaults()).unwrap(),
    );
    assert_ne!(a[0].compressed, b[0].compressed);
    for (name, lone) in [(None, model()), (Some("v5"), model()), (Some("bert"), bert)] {
        let r = compress_batch(&lone, &[text.as_str()], &defaults()).unwrap().remove(0);
        let mut body = json!({ "text": text });
        if let Some(name) = name {
            body["model"] = json!(name);
        }
        let got = server.post("/v1/compress", &body);
        assert_eq!(got.status, 200, "{}", got.body);
        let got = got.json();
        assert_eq!(got["compressed"].as_str(), Some(r.compressed.as_str()), "{name:?}");
        assert_eq!(got["model"].as_str(), Some(if name == Some("bert") { BERT } else { "v5" }));
        // The serving engines' routes pick the model by their path's name.
        let route = name.unwrap_or("v5");
        let torchserve = server.post(&format!("/predictions/{route}"), &json!({ "content": text })).json();
        assert_eq!(torchserve["compressed"].as_str(), Some(r.compressed.as_str()), "{route}");
        let infer =
            json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": [text] }] });
        let oip = server.post(&format!("/v2/models/{route}/infer"), &infer).json();
        assert_eq!(oip["model_name"].as_str(), Some(route));
        assert_eq!(oip["outputs"][0]["data"][0].as_str(), Some(r.compressed.as_str()), "{route}");
    }
    // Methods follow the model: LLMLingua-2 on the BERT one only; ctxprune on both.
    let lingua = server.post("/v1/llmlingua2/compress", &json!({ "context": text, "model": "bert" }));
    assert_eq!(lingua.status, 200, "{}", lingua.body);
    let refused = server.post("/v1/llmlingua2/compress", &json!({ "context": text }));
    assert!(refused.status == 400 && refused.body.contains("`v5`"), "{}", refused.body);
    for name in ["v5", "bert"] {
        let got = server.post("/v1/ctxprune/compress", &json!({ "text": text, "model": name }));
        assert_eq!(got.status, 200, "{name}: {}", got.body);
    }
}

/// A name the server does not serve is a 404 that lists the names served, in every route that takes
/// one; a `model` that is not a string is a 400 naming the field.
#[test]
fn an_unknown_model_is_a_404_listing_the_served_names() {
    let server = start_two(ServerConfig::default());
    let says = "no model named `nope`: this server serves `v5`, `bert`";
    let infer = json!({ "inputs": [{ "name": "text", "shape": [1], "datatype": "BYTES", "data": ["a b"] }] });
    for (path, body) in [
        ("/v1/compress", json!({ "text": "a b", "model": "nope" })),
        ("/v1/llmlingua2/compress", json!({ "context": "a b", "model": "nope" })),
        ("/v1/ctxprune/compress", json!({ "text": "a b", "model": "nope" })),
        ("/predictions/nope", json!({ "content": "a b" })),
        ("/v1/models/nope:predict", json!({ "content": "a b" })),
        ("/v2/models/nope/infer", infer),
    ] {
        let got = server.post(path, &body);
        assert_eq!(got.status, 404, "{path}: {}", got.body);
        assert_eq!(got.json()["detail"].as_str(), Some(says), "{path}");
    }
    let got = server.get("/v2/models/nope", &[]);
    assert_eq!((got.status, got.json()["detail"].as_str()), (404, Some(says)));
    for (path, body) in [
        ("/v1/compress", json!({ "text": "a b", "model": 3 })),
        ("/v1/ctxprune/compress", json!({ "text": "a b", "model": ["v5"] })),
    ] {
        let got = server.post(path, &body);
        assert!(got.status == 400 && got.body.contains("model"), "{path}: {}", got.body);
    }
}

/// The models share one admission queue: a long text on one fills it for the other.
#[test]
fn several_models_share_the_admission_queue() {
    let server = start_two(ServerConfig { queue_chunks: 50, ..Default::default() });
    let busy = in_background(server.addr, "/v1/compress", json!({ "text": slow_text(), "model": "v5" }));
    server.wait_for("kompress_queue_chunks", |n| n > 0.0, Duration::from_secs(10));
    let refused = server.post("/v1/compress", &json!({ "text": prose(350 * 10, 1), "model": "bert" }));
    assert_eq!((refused.status, refused.headers["retry-after"].as_str()), (503, "1"), "{}", refused.body);
    assert_eq!(busy.join().unwrap().status, 200);
    let after = server.post("/v1/compress", &json!({ "text": prose(350 * 10, 1), "model": "bert" }));
    assert_eq!(after.status, 200, "{}", after.body);
}

/// Models are installed one per configured name, names are path segments given once, and a model
/// named before it is loaded answers 503, not 404.
#[test]
fn model_names_are_checked_and_a_loading_model_is_a_503() {
    for (names, says) in [
        (vec![], "at least one model name"),
        (vec!["a/b".to_string()], "model name `a/b`"),
        (vec!["a".into(), "a".into()], "`a` given twice"),
    ] {
        let err = Server::new(ServerConfig { model_names: names, ..Default::default() }).err().unwrap();
        assert!(err.to_string().contains(says), "{err}");
    }
    let two = ServerConfig { model_names: vec!["a".into(), "b".into()], ..Default::default() };
    let server = Server::new(two).unwrap();
    let err = server.set_model(model(), "v5").unwrap_err();
    assert!(err.to_string().contains("1 models given for 2 names (a, b)"), "{err}");
    let running = start_with(server.clone());
    let early = running.post("/v1/compress", &json!({ "text": "a b", "model": "b" }));
    assert_eq!(early.status, 503, "{}", early.body);
    assert_eq!(running.post("/v1/compress", &json!({ "text": "a b", "model": "c" })).status, 404);
    server.set_models(vec![(model(), "v5".into()), (model(), "v5-again".into())]).unwrap();
    assert_eq!(running.post("/v1/compress", &json!({ "text": "a b", "model": "b" })).status, 200);
}

/// `--model NAME=DIR` repeats; a bare value is named by `--model-name`; two unnamed models, a name
/// given twice and an empty source are refused at start, naming the flag.
#[test]
fn serve_names_its_models_from_the_flags() {
    let v5 = common::model_dir("v5").display().to_string();
    for (models, says) in [
        (vec![v5.clone(), v5.clone()], "a second model without a name (`kompress` is --model"),
        (vec![format!("a={v5}"), format!("a={v5}")], "the name `a` is taken by --model"),
        (vec!["a=".to_string()], "no model directory or hub id after `a=`"),
        (vec![format!("kompress={v5}"), v5.clone()], "a second model without a name"),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kompress"));
        cmd.args(["serve", "--port", "0", "--device", "cpu"]);
        for m in &models {
            cmd.args(["--model", m]);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{models:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn playground_page_is_open_small_offline_and_strict() {
    let server = start(ServerConfig { token: Some("s3cret".into()), ..Default::default() });
    // Open without the token (it holds no data), unlike the data routes it calls.
    let page = server.get("/", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    assert_eq!(page.headers["cache-control"], "no-cache");
    let csp = &page.headers["content-security-policy"];
    for part in ["default-src 'self'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'"] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(page.body.len() < 150_000, "{} bytes", page.body.len());
    // Self-contained: nothing fetched from elsewhere (no CDN, works offline).
    for needle in ["http://", "https://", "src=", "@import", "url("] {
        assert!(!page.body.contains(needle), "the page refers to {needle}");
    }
    assert!(page.body.split("href=").skip(1).all(|h| h.starts_with("\"data:")), "only data: links");
    let no_token =
        post_with(&server, "/v1/playground/compress", &[], &json!({ "method": "kompress", "text": "a b" }));
    assert_eq!(no_token.status, 401, "{}", no_token.body);
    assert_eq!(server.get("/v1/models", &[]).status, 401, "the page's model list needs the token");
    assert_eq!(request(server.addr, "POST", "/", &[], b"").status, 405);
    assert!(server
        .get("/metrics", &[("authorization", "Bearer s3cret")])
        .body
        .contains("route=\"/\",status=\"200\"} 1"));
}

#[test]
fn playground_route_shows_every_words_fate_as_the_api_compresses() {
    let server = start(ServerConfig::default());
    let text = format!("{} See /etc/hosts at 10.5 s.", prose(200, 7));
    let api = server.post("/v1/compress", &json!({ "text": text, "options": { "ratio": 0.4 } })).json();
    // The model by the name it is served under (a bare `--model` is `kompress`), not its source.
    let unknown = json!({ "method": "kompress", "text": text, "model": "v5" });
    let refused = server.post("/v1/playground/compress", &unknown);
    assert_eq!((refused.status, refused.field().as_deref()), (404, Some("model")), "{}", refused.body);
    for model in [None, Some("kompress")] {
        let mut body = json!({ "method": "kompress", "text": text, "options": { "ratio": 0.4 } });
        if let Some(m) = model {
            body["model"] = json!(m);
        }
        let a = server.post("/v1/playground/compress", &body);
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        assert_eq!(v["compressed"], api["compressed"]);
        assert_eq!((v["method"].as_str(), v["model"].as_str()), (Some("kompress"), Some("kompress")));
        let words = v["words"].as_array().unwrap();
        let dropped = words.iter().filter(|w| w["kept"] == false).count() as u64;
        let (original, kept) = (api["original_words"].as_u64().unwrap(), api["kept_words"].as_u64().unwrap());
        assert!(dropped > 0);
        assert_eq!(dropped, original - kept);
        assert_eq!(v["counts"]["words"], api["original_words"]);
        assert_eq!(v["counts"]["kept_words"], api["kept_words"]);
        assert_eq!(v["counts"]["tokens"], api["original_tokens"]);
        assert_eq!(v["counts"]["compressed_tokens"], api["compressed_tokens"]);
        assert_eq!(v["counts"]["token_counter"], "cl100k");
        let reason = |w: &str| words.iter().find(|x| x["text"] == w).map(|x| x["reason"].clone());
        assert_eq!(reason("/etc/hosts"), Some(json!("path")));
        assert_eq!(reason("10.5"), Some(json!("number")));
        assert!(v["elapsed_ms"].as_f64().is_some());
    }
    // Headroom's output, and ctxprune's, as their own routes give them.
    let headroom =
        server.post("/v1/compress", &json!({ "text": text, "options": { "compat": "headroom" } })).json();
    let h = server.post("/v1/playground/compress", &json!({ "method": "headroom", "text": text })).json();
    assert_eq!(h["compressed"], headroom["compressed"]);
    let ctx = server.post("/v1/ctxprune/compress", &json!({ "text": text, "rate": 0.3 })).json();
    let c = server.post(
        "/v1/playground/compress",
        &json!({ "method": "ctxprune", "text": text, "options": { "rate": 0.3 } }),
    );
    let c = c.json();
    assert_eq!(c["compressed"], ctx["text"]);
    let tokens = kompress::pipeline::TokenCounter::Cl100k;
    assert_eq!(c["counts"]["tokens"], tokens.count(&text).unwrap());
    assert_eq!(c["counts"]["compressed_tokens"], tokens.count(ctx["text"].as_str().unwrap()).unwrap());
}

#[test]
fn playground_route_refuses_bad_requests_naming_the_field() {
    let server = start(ServerConfig::default());
    let post = |body: Value| server.post("/v1/playground/compress", &body);
    for (body, status, field) in [
        (json!({ "method": "kompress", "text": "  \n" }), 400, Some("text")),
        (json!({ "method": "kompress", "text": "a b", "model": "other" }), 404, Some("model")),
        (json!({ "method": "llmlingua2", "text": "a b" }), 400, Some("method")),
        (
            json!({ "method": "kompress", "text": "a b", "options": { "ratio": "half" } }),
            400,
            Some("options.ratio"),
        ),
        (json!({ "method": "kompress", "text": "a b", "options": { "ratio": 2.0 } }), 400, None),
        (json!({ "method": "ctxprune", "text": "a b", "options": { "rate": 2.0 } }), 400, Some("options")),
        (
            json!({ "method": "ctxprune", "text": "a b", "options": { "bogus": 1 } }),
            400,
            Some("options.bogus"),
        ),
    ] {
        let a = post(body.clone());
        assert_eq!((a.status, a.field().as_deref()), (status, field), "{body}: {}", a.body);
    }
    for (body, needle) in [
        (json!({ "method": "zip", "text": "a" }), "expected kompress, headroom, llmlingua2 or ctxprune"),
        (json!({ "text": "a" }), "missing field `method`"),
        (json!({ "method": "kompress" }), "missing field `text`"),
        (json!({ "method": "kompress", "text": "a", "extra": 1 }), "unknown field `extra`"),
        (json!({ "method": "kompress", "text": "a", "options": [] }), "options: must be an object"),
    ] {
        let a = post(body.clone());
        assert!(a.status == 400 && a.body.contains(needle), "{body}: {}", a.body);
    }
}
