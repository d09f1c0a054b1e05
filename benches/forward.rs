//! Criterion benches of the Kompress forward on the CPU, with seeded random weights of kompress-base's
//! shape (22 layers, hidden 768): the full scoring forward at 128/512/2048 tokens, one global and one
//! local encoder layer at 2048 tokens, and the heads at 512 tokens.
//!
//! `cargo bench --bench forward` (set RAYON_NUM_THREADS to pin the thread count).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kompress::heads::Heads;
use kompress::modernbert::{AttentionContext, EncoderLayer};
use kompress::weights::Weights;
use kompress::{Config, Scorer, WordEncoding};

fn base() -> (Config, Weights) {
    (Config::from_json("{}").unwrap(), Weights::random(0, &Device::Cpu))
}

fn ids(len: usize) -> WordEncoding {
    WordEncoding {
        input_ids: (0..len as u32).map(|i| 1000 + (i * 7919) % 40000).collect(),
        word_ids: vec![None; len],
    }
}

fn forward(c: &mut Criterion) {
    let (cfg, w) = base();
    let scorer = Scorer::new(&cfg, &w, DType::F32).unwrap();
    let mut group = c.benchmark_group("forward");
    group.sample_size(10);
    for len in [128, 512, 2048] {
        let batch = [ids(len)];
        group.bench_with_input(BenchmarkId::from_parameter(len), &batch, |b, batch| {
            b.iter(|| scorer.score_encodings(batch).unwrap())
        });
    }
}

fn layers(c: &mut Criterion) {
    let (cfg, w) = base();
    let len = 2048;
    let ctx = AttentionContext::new(&cfg, &[len], len, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (len, cfg.hidden_size), &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("layer_2048");
    group.sample_size(10);
    // In ModernBERT-base layer 3 is global and layer 1 local (both have an attn_norm).
    for (name, index) in [("global", 3), ("local", 1)] {
        let layer = EncoderLayer::new(&cfg, index, &w, DType::F32).unwrap();
        group.bench_function(name, |b| b.iter(|| layer.forward(&x, &ctx).unwrap()));
    }
}

fn heads(c: &mut Criterion) {
    let (cfg, w) = base();
    let heads = Heads::new(cfg.hidden_size, &w).unwrap();
    let hidden = Tensor::randn(0f32, 1.0, (1, 512, cfg.hidden_size), &Device::Cpu).unwrap();
    let valid = Tensor::ones((1, 512, 1), DType::F32, &Device::Cpu).unwrap();
    c.bench_function("heads_512", |b| b.iter(|| heads.forward(&hidden, &valid).unwrap()));
}

criterion_group!(benches, forward, layers, heads);
criterion_main!(benches);
