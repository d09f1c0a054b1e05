//! SuperCompress scoring cost: records + features + MLP logits, for 1k- and 100k-token contexts
//! (the seed's claim: under 1 ms for ~1,000 tokens on one CPU core).
//!
//! `cargo bench --bench evict` (set RAYON_NUM_THREADS=1 for the single-core figure).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kompress::evict::{
    compress_context, generate_long_context, split_lines, EvictionNetwork, PolicyKind, PyRandom, Records,
};

/// The simulator's context, its lines cycled until there are at least `tokens` tokens.
fn context(tokens: usize) -> (String, &'static str) {
    let (lines, question) = generate_long_context(&mut PyRandom::new(0), 600);
    let mut text = String::new();
    let mut count = 0;
    for line in lines.iter().cycle() {
        count += kompress::evict::tokenize_lines(&[line.as_str()]).0.len();
        text.push_str(line);
        text.push('\n');
        if count >= tokens {
            break;
        }
    }
    (text, question)
}

fn scoring(c: &mut Criterion) {
    let net = EvictionNetwork::embedded().unwrap();
    let mut group = c.benchmark_group("evict_score");
    for tokens in [1_000, 100_000] {
        let (text, question) = context(tokens);
        let lines = split_lines(&text);
        group.throughput(Throughput::Elements(tokens as u64));
        group.sample_size(if tokens > 10_000 { 20 } else { 100 });
        group.bench_with_input(BenchmarkId::new("records+features+mlp", tokens), &lines, |b, lines| {
            b.iter(|| {
                let records = Records::for_inference(black_box(lines), question);
                net.logits(&records.features()).unwrap()
            })
        });
        let policy = PolicyKind::Learned.build(question, &net, 0);
        group.bench_with_input(BenchmarkId::new("compress_context", tokens), &text, |b, text| {
            b.iter(|| compress_context(black_box(text), question, 0.35, policy.as_ref()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
