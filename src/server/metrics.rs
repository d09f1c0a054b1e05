//! Counters and histograms, rendered in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds of the batch-size buckets, in chunks.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (c, b) in self.counts.iter_mut().zip(self.bounds) {
            *c += u64::from(v <= *b);
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Everything `/metrics` reports, besides the gauges read at render time.
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    batches: Mutex<Histogram>,
    forward_seconds: Mutex<f64>,
    tokens_scored: AtomicU64,
    dropped_chunks: AtomicU64,
    words_in: AtomicU64,
    words_out: AtomicU64,
    evict_tokens_in: AtomicU64,
    evict_tokens_out: AtomicU64,
}

/// Values sampled when `/metrics` is read.
pub(crate) struct Gauges {
    pub queue_chunks: usize,
    pub queue_capacity: usize,
    pub body_bytes: usize,
    pub connections: usize,
    pub model_ready: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batches: Mutex::new(Histogram::new(&BATCH_BUCKETS)),
            forward_seconds: Mutex::new(0.0),
            tokens_scored: AtomicU64::new(0),
            dropped_chunks: AtomicU64::new(0),
            words_in: AtomicU64::new(0),
            words_out: AtomicU64::new(0),
            evict_tokens_in: AtomicU64::new(0),
            evict_tokens_out: AtomicU64::new(0),
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn request(&self, route: &'static str, status: u16, took: Duration) {
        *self.requests.lock().expect("metrics lock").entry((route, status)).or_default() += 1;
        let mut latency = self.latency.lock().expect("metrics lock");
        latency.entry(route).or_insert_with(|| Histogram::new(&LATENCY_BUCKETS)).observe(took.as_secs_f64());
    }

    pub(crate) fn batch(&self, chunks: usize, tokens: usize, took: Duration) {
        self.batches.lock().expect("metrics lock").observe(chunks as f64);
        *self.forward_seconds.lock().expect("metrics lock") += took.as_secs_f64();
        add(&self.tokens_scored, tokens);
    }

    pub(crate) fn dropped_chunks(&self, n: usize) {
        add(&self.dropped_chunks, n);
    }

    pub(crate) fn words(&self, input: usize, output: usize) {
        add(&self.words_in, input);
        add(&self.words_out, output);
    }

    pub(crate) fn evict_tokens(&self, input: usize, output: usize) {
        add(&self.evict_tokens_in, input);
        add(&self.evict_tokens_out, output);
    }

    pub(crate) fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let n = family(&mut out, "kompress_requests_total", "counter", "HTTP requests by route and status.");
        for ((route, status), count) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "{n}{{route=\"{route}\",status=\"{status}\"}} {count}");
        }
        let n = family(&mut out, "kompress_request_duration_seconds", "histogram", "Time to the response.");
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            h.render(&mut out, n, &format!("route=\"{route}\""));
        }
        let n = family(&mut out, "kompress_batch_chunks", "histogram", "Chunks per forward pass.");
        self.batches.lock().expect("metrics lock").render(&mut out, n, "");
        let forward = *self.forward_seconds.lock().expect("metrics lock");
        let scalars: [(&str, &str, &str, String); 13] = [
            ("kompress_forward_seconds_total", "counter", "Time in forward passes.", forward.to_string()),
            ("kompress_tokens_scored_total", "counter", "Model tokens scored.", load(&self.tokens_scored)),
            (
                "kompress_dropped_chunks_total",
                "counter",
                "Chunks of cancelled requests, dropped unscored.",
                { load(&self.dropped_chunks) },
            ),
            (
                "kompress_words_in_total",
                "counter",
                "Words the compress routes received.",
                load(&self.words_in),
            ),
            (
                "kompress_words_out_total",
                "counter",
                "Words the compress routes returned.",
                load(&self.words_out),
            ),
            ("kompress_evict_tokens_in_total", "counter", "Tokens the evict routes received.", {
                load(&self.evict_tokens_in)
            }),
            ("kompress_evict_tokens_kept_total", "counter", "Tokens the evict routes kept.", {
                load(&self.evict_tokens_out)
            }),
            (
                "kompress_queue_chunks",
                "gauge",
                "Admitted work (chunks) not yet finished.",
                g.queue_chunks.to_string(),
            ),
            (
                "kompress_queue_capacity_chunks",
                "gauge",
                "Admission queue capacity.",
                g.queue_capacity.to_string(),
            ),
            (
                "kompress_body_bytes_in_flight",
                "gauge",
                "Request body bytes held in memory.",
                g.body_bytes.to_string(),
            ),
            ("kompress_connections", "gauge", "Open HTTP connections.", g.connections.to_string()),
            (
                "kompress_model_ready",
                "gauge",
                "1 once the model is loaded.",
                u8::from(g.model_ready).to_string(),
            ),
            ("kompress_up", "gauge", "1 while the server runs.", "1".into()),
        ];
        for (name, kind, help, value) in scalars {
            let n = family(&mut out, name, kind, help);
            let _ = writeln!(out, "{n} {value}");
        }
        out
    }
}

/// Writes a metric family's HELP and TYPE lines; returns its name.
fn family<'a>(out: &mut String, name: &'a str, kind: &str, help: &str) -> &'a str {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name
}

fn load(counter: &AtomicU64) -> String {
    counter.load(Ordering::Relaxed).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let mut h = Histogram::new(&BATCH_BUCKETS);
        for v in [1.0, 3.0, 3.0, 200.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "b", "");
        assert!(out.contains("b_bucket{le=\"1\"} 1\n"));
        assert!(out.contains("b_bucket{le=\"4\"} 3\n"));
        assert!(out.contains("b_bucket{le=\"128\"} 3\n"));
        assert!(out.contains("b_bucket{le=\"+Inf\"} 4\n"));
        assert!(out.contains("b_count 4\n"));
    }
}
