//! Token records: the line tokenizer, question entities, semantic types, the attention proxies and the
//! 9 per-token features the eviction network reads (reference: `features.py`, `local.py`).

use std::collections::HashSet;

use super::pytext;
use super::rng::PyRandom;

/// Number of per-token features.
pub const FEATURE_DIM: usize = 9;

/// The reference's noise draw: `np.random.default_rng(0).normal(0, 0.06)`. The inference path seeds a
/// fresh generator for every token, so the "noise" is this one constant.
pub const PROXY_NOISE: f64 = 0.007543813265603597;
/// The reference's layer factor: the second draw of that generator, `uniform(0.85, 1.15)`.
pub const PROXY_LAYER_FACTOR: f64 = 0.930936014129161;

/// Question words that never count as entities (compared case-insensitively).
const STOP_WORDS: [&str; 16] = [
    "what", "how", "does", "the", "is", "are", "function", "return", "class", "def", "import", "from",
    "this", "that", "where", "when",
];

/// What kind of text a token sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemanticType {
    /// Program text.
    Code = 0,
    /// A comment token or a line holding `/*`.
    Comment = 1,
    /// Chat transcript markers.
    Chat = 2,
    /// Imports, licences, separators, blank lines.
    Boilerplate = 3,
}

impl SemanticType {
    /// The base attention mass the reference gives this type.
    fn base_mass(self) -> f64 {
        match self {
            SemanticType::Code => 0.55,
            SemanticType::Comment => 0.25,
            SemanticType::Chat => 0.35,
            SemanticType::Boilerplate => 0.08,
        }
    }
}

/// One token and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Index of the line holding the token.
    pub line: usize,
    /// Semantic type from the token and its line.
    pub semantic: SemanticType,
    /// Whether the oracle marks the token as needed (training data only; false at inference).
    pub oracle_important: bool,
    /// Attention mass proxy.
    pub attention_mass: f64,
    /// Mean attention over layers proxy.
    pub layer_attention_mean: f64,
    /// 1.0 when the token is a question entity.
    pub entity_match: f64,
    /// Heavy-hitter (H2O) score.
    pub h2o_score: f64,
    /// SnapKV observation-window score.
    pub snapkv_score: f64,
}

/// The tokens of a context with their records, borrowing the context's text.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    /// The context's lines, as Python's `str.splitlines` cuts them.
    pub lines: Vec<&'a str>,
    /// Token texts; an empty line yields the token `" "`.
    pub tokens: Vec<&'a str>,
    /// One record per token.
    pub records: Vec<TokenRecord>,
}

/// Question entities: identifiers of the question longer than 2 characters that are not stop words.
///
/// ```
/// let e = kompress::evict::question_entities("What does User.fetch return?");
/// assert!(e.contains("User") && e.contains("fetch") && !e.contains("return"));
/// ```
pub fn question_entities(question: &str) -> HashSet<&str> {
    pytext::identifiers(question)
        .filter(|id| id.len() > 2 && !STOP_WORDS.iter().any(|s| s.eq_ignore_ascii_case(id)))
        .collect()
}

/// Tokens of the lines with the index of each token's line (the reference's `tokenize_context_lines`).
pub fn tokenize_lines<'a>(lines: &[&'a str]) -> (Vec<&'a str>, Vec<usize>) {
    let mut tokens = Vec::new();
    let mut line_of = Vec::new();
    for (li, line) in lines.iter().enumerate() {
        let before = tokens.len();
        tokens.extend(pytext::tokens(line));
        if tokens.len() == before {
            tokens.push(" ");
        }
        line_of.resize(tokens.len(), li);
    }
    (tokens, line_of)
}

/// What the type classifier needs to know about a line, computed once per line.
struct LineFacts<'a> {
    has_block_comment: bool,
    boilerplate: bool,
    /// The stripped line starts with `def`, `class` or `async` as a word.
    structure_keyword: bool,
    /// The name after a whitespace-separated `def`, cut at `(`.
    def_name: Option<&'a str>,
}

impl<'a> LineFacts<'a> {
    fn new(line: &'a str) -> Self {
        let stripped = pytext::strip(line);
        Self {
            has_block_comment: line.contains("/*"),
            boilerplate: is_boilerplate(stripped),
            structure_keyword: ["def", "class", "async"]
                .iter()
                .any(|k| pytext::starts_with_word(stripped, k)),
            def_name: if line.contains("def ") { def_name(line) } else { None },
        }
    }

    /// `classify_token_semantic`: the token's own prefix first, then the line.
    fn semantic(&self, token: &str) -> SemanticType {
        let t = pytext::strip(token);
        if t.starts_with('#') || t.starts_with("//") || self.has_block_comment {
            SemanticType::Comment
        } else if t.starts_with("User:") || t.starts_with("Assistant:") || t.starts_with('>') {
            SemanticType::Chat
        } else if self.boilerplate {
            SemanticType::Boilerplate
        } else {
            SemanticType::Code
        }
    }

    /// Boost for definition structure: the keyword itself, or the defined function's name.
    fn struct_boost(&self, token: &str) -> f64 {
        if self.structure_keyword && matches!(token, "def" | "class" | "async") {
            0.35
        } else if self.def_name == Some(token) {
            0.3
        } else {
            0.0
        }
    }
}

/// The name following the first whitespace-separated `def` part, cut at its first `(`.
pub(crate) fn def_name(line: &str) -> Option<&str> {
    let mut parts = pytext::split(line).skip_while(|p| *p != "def");
    parts.next()?;
    parts.next().map(|p| p.split('(').next().unwrap_or(p))
}

/// The reference's boilerplate patterns, applied to a stripped line.
fn is_boilerplate(s: &str) -> bool {
    s.strip_prefix("import").is_some_and(|r| r.starts_with(pytext::is_space))
        || is_from_import(s)
        || ["# -*- coding", "LICENSE", "Copyright", "```"].iter().any(|p| s.starts_with(p))
        || s.is_empty()
        || s == "---"
}

/// `^from\s+\w+\s+import`.
fn is_from_import(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("from") else { return false };
    let after_space = rest.trim_start_matches(pytext::is_space);
    let after_word = after_space.trim_start_matches(pytext::is_word);
    let after_space2 = after_word.trim_start_matches(pytext::is_space);
    after_space.len() < rest.len()
        && after_word.len() < after_space.len()
        && after_space2.len() < after_word.len()
        && after_space2.starts_with("import")
}

fn clip(x: f64) -> f64 {
    x.clamp(0.01, 1.0)
}

/// The reference's `synthesize_attention_mass` given its two random draws.
fn synthesize(semantic: SemanticType, important: bool, recency: f64, noise: f64, factor: f64) -> (f64, f64) {
    let mut base = semantic.base_mass();
    if important {
        base += 0.35;
    }
    base += 0.15 * recency;
    let mass = clip(base + noise);
    (mass, clip(mass * factor))
}

/// H2O and SnapKV scores from the attention proxies and the normalised position.
fn window_scores(mass: f64, layer_mean: f64, recency: f64) -> (f64, f64) {
    (clip(layer_mean * (0.7 + 0.3 * (1.0 - recency))), clip(mass * (0.3 + 0.7 * recency)))
}

impl<'a> Records<'a> {
    /// Inference records of a context (`build_inference_records`): deterministic attention proxies from
    /// question entities and code structure; no oracle labels.
    ///
    /// ```
    /// use kompress::evict::Records;
    /// let r = Records::for_inference(&["def fetch(x):", "    return x"], "fetch?");
    /// assert_eq!(r.tokens, ["def", "fetch", "(", "x", ")", ":", "return", "x"]);
    /// assert_eq!(r.records[1].entity_match, 1.0);
    /// ```
    pub fn for_inference(lines: &[&'a str], question: &str) -> Self {
        let entities = question_entities(question);
        let (tokens, line_of) = tokenize_lines(lines);
        Self::build(lines, tokens, &line_of, |ctx| {
            let entity = if entities.contains(ctx.token) { 1.0 } else { 0.0 };
            let boost = ctx.facts.struct_boost(ctx.token);
            let important = entity > 0.0 || boost > 0.0;
            let (mass, layer) =
                synthesize(ctx.semantic, important, ctx.recency, PROXY_NOISE, PROXY_LAYER_FACTOR);
            let mass = clip(mass + 0.25 * entity + boost * 0.5);
            let layer = clip(layer + 0.15 * entity);
            (mass, layer, entity, false)
        })
    }

    /// Training records (`oracle.build_token_records`): oracle labels, and attention statistics drawn
    /// with random noise around a higher mean for oracle-important tokens.
    pub fn for_training(lines: &[&'a str], question: &str, rng: &mut PyRandom) -> Self {
        let entities = question_entities(question);
        let (tokens, line_of) = tokenize_lines(lines);
        let labels = super::oracle::mark_important(&tokens, lines, &entities);
        Self::build(lines, tokens, &line_of, |ctx| {
            let important = labels[ctx.position];
            let noise = rng.normal(0.0, 0.06);
            let factor = rng.uniform(0.85, 1.15);
            let (mass, layer) = synthesize(ctx.semantic, important, ctx.recency, noise, factor);
            let entity = if entities.contains(ctx.token) { 1.0 } else { 0.0 };
            (mass, layer, entity, important)
        })
    }

    /// Walks the tokens; `proxy` returns (attention mass, layer mean, entity match, oracle label).
    fn build(
        lines: &[&'a str],
        tokens: Vec<&'a str>,
        line_of: &[usize],
        mut proxy: impl FnMut(&TokenCtx) -> (f64, f64, f64, bool),
    ) -> Self {
        let facts: Vec<LineFacts> = lines.iter().map(|l| LineFacts::new(l)).collect();
        let denom = tokens.len().saturating_sub(1).max(1) as f64;
        let records = tokens
            .iter()
            .enumerate()
            .map(|(position, &token)| {
                let line = line_of[position];
                let semantic = facts[line].semantic(token);
                let recency = position as f64 / denom;
                let ctx = TokenCtx { token, position, semantic, recency, facts: &facts[line] };
                let (attention_mass, layer_attention_mean, entity_match, oracle_important) = proxy(&ctx);
                let (h2o_score, snapkv_score) = window_scores(attention_mass, layer_attention_mean, recency);
                TokenRecord {
                    line,
                    semantic,
                    oracle_important,
                    attention_mass,
                    layer_attention_mean,
                    entity_match,
                    h2o_score,
                    snapkv_score,
                }
            })
            .collect();
        Self { lines: lines.to_vec(), tokens, records }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The `n x 9` feature matrix, row-major: attention mass, layer mean, recency, entity match,
    /// one-hot semantic type (4), and a reserved zero.
    pub fn features(&self) -> Vec<f32> {
        let n = self.len();
        let mut feats = vec![0f32; n * FEATURE_DIM];
        for (i, (rec, row)) in self.records.iter().zip(feats.chunks_exact_mut(FEATURE_DIM)).enumerate() {
            let age = (n - 1 - i) as f64;
            row[0] = rec.attention_mass as f32;
            row[1] = rec.layer_attention_mean as f32;
            row[2] = (1.0 - age / n as f64) as f32;
            row[3] = rec.entity_match as f32;
            row[4 + rec.semantic as usize] = 1.0;
        }
        feats
    }
}

/// What the attention proxy sees of one token.
struct TokenCtx<'f, 'a> {
    token: &'a str,
    position: usize,
    semantic: SemanticType,
    recency: f64,
    facts: &'f LineFacts<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_drop_stop_words_and_short_ids() {
        let e = question_entities("How does get_user use kv_store and db? What is THE id");
        let mut v: Vec<_> = e.into_iter().collect();
        v.sort();
        assert_eq!(v, ["and", "get_user", "kv_store", "use"]);
    }

    #[test]
    fn semantic_types_follow_the_line() {
        let r = Records::for_inference(&["import os", "x = 1 # note", "> quoted", "from a import b", ""], "");
        let types: Vec<_> = r.records.iter().map(|r| r.semantic).collect();
        use SemanticType::*;
        assert_eq!(
            types,
            [
                Boilerplate,
                Boilerplate,
                Code,
                Code,
                Code,
                Comment,
                Code,
                Chat,
                Code,
                Boilerplate,
                Boilerplate,
                Boilerplate,
                Boilerplate,
                Boilerplate
            ]
        );
    }

    #[test]
    fn struct_boost_marks_def_and_name() {
        let facts = LineFacts::new("    def fetch(self):");
        assert_eq!(facts.struct_boost("fetch"), 0.3);
        assert_eq!(facts.struct_boost("def"), 0.35, "the keyword test strips the line");
        assert_eq!(facts.struct_boost("self"), 0.0);
        assert_eq!(LineFacts::new("x = undef (y)").struct_boost("y"), 0.0);
    }

    #[test]
    fn from_import_needs_each_part() {
        assert!(is_from_import("from x import y"));
        assert!(!is_from_import("fromx import y"));
        assert!(!is_from_import("from  import y"));
        assert!(!is_from_import("from x.y import z"));
    }
}
