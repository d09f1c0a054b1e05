//! The compression pipeline's own work, without the model: word splitting, structure detection (code
//! fences, tables, JSON), chunk planning, keep decisions, output (the layout or Headroom's) and token
//! counting, on a GPL-3-sized text (the fixture excerpt repeated: 5,700 words) with a scorer that
//! costs nothing. Compare with one forward pass of the model per chunk (`cargo bench --bench forward`).
//!
//! `cargo bench --bench pipeline`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use kompress::pipeline::{compress, ChunkScorer, Compat, CompressOptions, Mode, TokenCounter};
use kompress::{Result, TokenScores, WordEncoding};

/// One token per word, every token scored 0.6 (kept by `--mode threshold`) except every third.
struct Free;

impl ChunkScorer for Free {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        let mut word_ids: Vec<Option<u32>> = vec![None];
        word_ids.extend((0..words.len() as u32).map(Some));
        word_ids.push(None);
        Ok(WordEncoding { input_ids: vec![5; word_ids.len()], word_ids })
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        Ok(chunks
            .iter()
            .map(|e| {
                let score: Vec<f32> = (0..e.len()).map(|t| if t % 3 == 0 { 0.1 } else { 0.6 }).collect();
                TokenScores {
                    input_ids: e.input_ids.clone(),
                    word_ids: e.word_ids.clone(),
                    logits: vec![[0.0, 0.0]; e.len()],
                    token_prob: score.clone(),
                    span_score: None,
                    score,
                }
            })
            .collect())
    }

    fn max_tokens(&self) -> usize {
        512
    }
}

fn pipeline(c: &mut Criterion) {
    let excerpt = std::fs::read_to_string("tests/fixtures/texts/gpl3_excerpt.txt").unwrap();
    let text = excerpt.repeat(9);
    let mut group = c.benchmark_group("pipeline_without_model");
    group.sample_size(30);
    let runs = [
        ("layout+cl100k", Compat::Off, TokenCounter::Cl100k),
        ("layout+words", Compat::Off, TokenCounter::Words),
        ("headroom+words", Compat::Headroom, TokenCounter::Words),
    ];
    for (name, compat, count_tokens) in runs {
        let opts = CompressOptions { mode: Mode::Threshold(0.5), compat, count_tokens, ..Default::default() };
        group.bench_function(name, |b| b.iter(|| compress(&Free, black_box(&text), &opts).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
