//! Fuzzes the pipeline without a model: arbitrary bytes become options and a text (invalid UTF-8
//! replaced, as `--lossy` does), a deterministic model double scores chunks, and every result must
//! hold the pipeline's guarantees: no panic, the output is the kept words in order, verbatim lines
//! (code, tables) and protected words kept, every output line with its input line's indentation,
//! no blank run, a final line ending exactly when the input has one, a token budget kept unless the
//! protected text alone exceeds it, and a passthrough returns the input unchanged. Headroom's output
//! (`Compat::Headroom`) has one line ending where the input line changes.
//!
//! The tokenizer boundary: the same text is compressed again with every word tokenized whole (the
//! double not telling `max_token_bytes`), and with the fixture model's real tokenizer in place of the
//! toy one, bounded and whole; each pair of results must be equal, so cutting over-long words and
//! leaving out the words past the cap before tokenizing changes no decision.

#![no_main]

use kompress::pipeline::words::words;
use kompress::pipeline::{
    code, code_lines::code_lines, compress, protect, table, ChunkScorer, Compat, CompressOptions, LineSet,
    Mode, Reason, TokenCounter,
};
use kompress::{Result, TokenScores, WordEncoding, WordTokenizer};
use libfuzzer_sys::fuzz_target;

/// One token per 3 bytes of a word (so long words exceed small token caps), `[CLS]` ... `[SEP]`, or
/// `tokenizer`'s tokens; scores from a hash of the token and its position. `bounded`: it tells the
/// pipeline how many bytes a token stands for at most.
struct Double {
    tokenizer: Option<&'static WordTokenizer>,
    bounded: bool,
}

/// The `v5` fixture model's tokenizer (a byte-level BPE), loaded once.
fn fixture_tokenizer() -> &'static WordTokenizer {
    static TOKENIZER: std::sync::OnceLock<WordTokenizer> = std::sync::OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/v5/tokenizer.json");
        WordTokenizer::from_file(path).expect("the fixture tokenizer loads")
    })
}

fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

impl ChunkScorer for Double {
    fn encode(&self, words: &[&str]) -> Result<WordEncoding> {
        if let Some(t) = self.tokenizer {
            return t.encode_words(words);
        }
        let mut enc = WordEncoding { input_ids: vec![1], word_ids: vec![None] };
        for (w, word) in words.iter().enumerate() {
            for piece in word.as_bytes().chunks(3) {
                enc.input_ids
                    .push(4 + piece.iter().fold(0u32, |h, &b| h.wrapping_mul(31) ^ u32::from(b)) % 1000);
                enc.word_ids.push(Some(w as u32));
            }
        }
        enc.input_ids.push(2);
        enc.word_ids.push(None);
        Ok(enc)
    }

    fn score(&self, chunks: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        Ok(chunks
            .iter()
            .map(|enc| {
                let score: Vec<f32> = (0..enc.len())
                    .map(|t| (mix(u64::from(enc.input_ids[t]) << 20 | t as u64) % 1000) as f32 / 1000.0)
                    .collect();
                TokenScores {
                    input_ids: enc.input_ids.clone(),
                    word_ids: enc.word_ids.clone(),
                    logits: score.iter().map(|&s| [0.5, s]).collect(),
                    token_prob: score.clone(),
                    span_score: Some(score.iter().map(|&s| 1.0 - s).collect()),
                    score,
                }
            })
            .collect())
    }

    fn max_tokens(&self) -> usize {
        512
    }

    fn max_token_bytes(&self) -> Option<usize> {
        match (self.bounded, self.tokenizer) {
            (false, _) => None,
            (true, Some(t)) => t.max_token_bytes(),
            (true, None) => Some(3),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b, c, d, e], rest)) = data.split_first_chunk::<5>() else { return };
    let text = String::from_utf8_lossy(rest);
    let headroom = e & 1 != 0;
    let opts = CompressOptions {
        mode: match a % 4 {
            0 => Mode::Card,
            1 => Mode::Threshold(f64::from(b) / 255.0),
            3 if !headroom => Mode::TargetTokens(usize::from(b).max(1)),
            _ => Mode::Ratio(f64::from(b.max(1)) / 255.0),
        },
        chunk_words: 1 + usize::from(c % 64),
        chunk_tokens: 3 + usize::from(d % 64),
        batch_size: 1 + usize::from(a / 4 % 4),
        min_words: usize::from(b % 8),
        protect_words: c & 0x80 != 0,
        protect_tables: d & 0x80 != 0,
        protect_code: e & 2 != 0,
        protect_json: e & 4 != 0,
        protect_code_lines: e & 16 != 0,
        protect_markdown: e & 32 != 0,
        count_tokens: if e & 8 != 0 { TokenCounter::Cl100k } else { TokenCounter::Words },
        compat: if headroom { Compat::Headroom } else { Compat::Off },
        explain: true,
        time_budget: None,
    };
    let run = |tokenizer, bounded| {
        compress(&Double { tokenizer, bounded }, &text, &opts).expect("valid options never fail")
    };
    let r = run(None, true);
    assert_eq!(r, run(None, false), "bounded tokenization changed a result");
    let real = fixture_tokenizer();
    assert!(real.max_token_bytes().is_some(), "a byte-level BPE bounds its tokens");
    assert_eq!(run(Some(real), true), run(Some(real), false), "bounded tokenization changed a result");
    let decisions = r.words.as_ref().unwrap();
    let input: Vec<_> = words(&text).collect();
    assert_eq!(decisions.len(), input.len());
    assert_eq!(r.original_words, input.len());
    for (d, w) in decisions.iter().zip(&input) {
        assert_eq!((d.word.as_str(), d.line), (w.text, w.line + 1));
    }
    assert_eq!(r.compressed_tokens, opts.count_tokens.count(&r.compressed).unwrap());
    if r.passthrough {
        assert_eq!(r.compressed, text);
        return;
    }
    let kept: Vec<_> = decisions.iter().filter(|d| d.kept).collect();
    let out: Vec<_> = words(&r.compressed).collect();
    assert_eq!(out.len(), kept.len());
    assert_eq!(r.kept_words, kept.len());
    for (o, k) in out.iter().zip(&kept) {
        assert_eq!(o.text, k.word);
    }
    let (tables, code, code_like) = match headroom {
        true => (table::headroom_tables(&text), LineSet::default(), LineSet::default()),
        false => (table::tables(&text), code::fenced_code(&text), code_lines(&text)),
    };
    for d in decisions {
        let verbatim = !headroom
            && ((opts.protect_tables && tables.contains(d.line - 1))
                || (opts.protect_code && code.contains(d.line - 1))
                || (opts.protect_code_lines && code_like.contains(d.line - 1)));
        let protected = (opts.protect_words && protect::must_keep(&d.word))
            || (opts.protect_tables && tables.contains(d.line - 1))
            || verbatim;
        assert!(d.kept || !protected, "{d:?}");
        assert_eq!(d.score.is_none(), d.reason == Reason::Unscored || verbatim, "{d:?}");
    }
    if headroom {
        // One space within a line, one line ending where the input line changes.
        for (i, (o, k)) in out.iter().zip(&kept).enumerate().skip(1) {
            assert_eq!(o.line != out[i - 1].line, k.line != kept[i - 1].line);
        }
        return;
    }
    // Every output line is an input line whole (verbatim), or its leading whitespace and kept words.
    let lines: Vec<&str> = text.split('\n').collect();
    for (o, k) in out.iter().zip(&kept) {
        let line = r.compressed.split('\n').nth(o.line).unwrap();
        let source = lines[k.line - 1];
        let lead = |l: &str| l.len() - l.trim_start().len();
        assert_eq!(&line[..lead(line)], &source[..lead(source)]);
    }
    // Blank runs collapse (code blocks keep theirs).
    assert!(opts.protect_code || !r.compressed.contains("\n\n\n"));
    assert!(!r.compressed.starts_with('\n'));
    assert_eq!(r.compressed.ends_with('\n'), text.ends_with('\n') && !r.compressed.is_empty());
    if let (Mode::TargetTokens(n), false) = (opts.mode, r.over_budget) {
        assert!(r.compressed_tokens <= n);
    }
});
