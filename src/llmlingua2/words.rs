//! llmlingua's merging of subword tokens into words (`__merge_token_to_word`, and `utils.py`'s
//! `is_begin_of_new_word` / `get_pure_token`), with its quirks kept: BERT strips every leading `#`
//! (not just `##`), XLM-R starts a word at any token that is a substring of Python's
//! `string.punctuation`, and a continuation token's "unforced" probability repeats its word's first one.

use std::collections::HashSet;

use super::numpy::{mean, Prob};
use super::TokenToWord;

/// Python's `string.punctuation`; llmlingua tests `token in string.punctuation`, a substring test.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// How a tokenizer marks words: which llmlingua rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordRule {
    /// WordPiece: continuations start with `##` (mBERT).
    WordPiece,
    /// SentencePiece: word starts carry `▁` (XLM-R).
    SentencePiece,
}

/// Force tokens and their `[NEW{i}]` stand-ins (in llmlingua's `token_map` order).
pub struct Forced<'a> {
    pub tokens: &'a [String],
    pub map: &'a [(String, String)],
    pub reserve_digit: bool,
}

impl Forced<'_> {
    fn is_forced(&self, pure: &str) -> bool {
        self.tokens.iter().any(|t| t == pure) || self.map.iter().any(|(_, new)| new == pure)
    }

    /// `replace_added_token`: every stand-in back to its force token.
    pub fn restore(&self, text: &str) -> String {
        self.map.iter().fold(text.to_string(), |acc, (ori, new)| acc.replace(new.as_str(), ori))
    }
}

impl WordRule {
    fn pure(self, token: &str) -> &str {
        match self {
            Self::WordPiece => token.trim_start_matches('#'),
            Self::SentencePiece => token.trim_start_matches('▁'),
        }
    }

    fn begins_word(self, token: &str, forced: &Forced) -> bool {
        match self {
            Self::WordPiece => forced.is_forced(self.pure(token)) || !token.starts_with("##"),
            Self::SentencePiece => {
                PUNCTUATION.contains(token) || forced.is_forced(token) || token.starts_with('▁')
            }
        }
    }
}

/// Words of a chunk with each token's probability (forced values applied) and the unforced ones.
#[derive(Debug, Default)]
pub struct ChunkWords {
    pub words: Vec<String>,
    pub probs: Vec<Vec<Prob>>,
    pub probs_no_force: Vec<Vec<Prob>>,
}

/// `__merge_token_to_word`. A chunk starting with a continuation token (where llmlingua would fail on
/// an empty list) starts a word with it.
pub fn merge(
    rule: WordRule,
    tokens: &[String],
    probs: &[f32],
    special: &HashSet<String>,
    forced: &Forced,
) -> ChunkWords {
    let mut out = ChunkWords::default();
    let mut prob_no_force = Prob::f32(0.0);
    for (token, &p) in tokens.iter().zip(probs) {
        if special.contains(token) {
            continue;
        }
        let pure = rule.pure(token);
        let digit = forced.reserve_digit && has_digit(token);
        if rule.begins_word(token, forced) || out.words.is_empty() {
            prob_no_force = Prob::f32(p);
            let prob = if forced.is_forced(pure) { Prob::python(1.0) } else { Prob::f32(p) };
            out.words.push(forced.restore(token));
            out.probs.push(vec![if digit { Prob::python(1.0) } else { prob }]);
            out.probs_no_force.push(vec![prob_no_force]);
        } else {
            let last = out.words.len() - 1;
            out.words[last].push_str(pure);
            out.probs[last].push(if digit { Prob::python(1.0) } else { Prob::f32(p) });
            out.probs_no_force[last].push(prob_no_force);
        }
    }
    out
}

/// `re.search(r"\d", token)`: Python's `\d` in a `str` pattern is a Unicode decimal digit (category
/// Nd), as the `regex` crate's.
fn has_digit(token: &str) -> bool {
    static DIGIT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    DIGIT.get_or_init(|| regex::Regex::new(r"\d").expect("a valid pattern")).is_match(token)
}

/// `__token_prob_to_word_prob`.
pub fn word_probs(token_probs: &[Vec<Prob>], mode: TokenToWord) -> Vec<Prob> {
    token_probs
        .iter()
        .map(|p| match mode {
            TokenToWord::Mean => mean(p),
            TokenToWord::First => p[0],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quirks_are_kept() {
        let forced = Forced { tokens: &[], map: &[], reserve_digit: true };
        let tokens: Vec<String> =
            ["[CLS]", "ab", "##c", "###", "x9", "[SEP]"].iter().map(|s| s.to_string()).collect();
        let special: HashSet<String> = ["[CLS]", "[SEP]"].iter().map(|s| s.to_string()).collect();
        let w = merge(WordRule::WordPiece, &tokens, &[0.5, 0.25, 0.5, 0.75, 0.125, 0.5], &special, &forced);
        // "###" loses all its '#'s; the digit word is forced to 1.0.
        assert_eq!(w.words, ["abc", "x9"]);
        assert_eq!(w.probs_no_force[0], vec![Prob::f32(0.25); 3]);
        assert_eq!(w.probs[1], vec![Prob::python(1.0)]);
        assert!(WordRule::SentencePiece.begins_word("()", &forced));
        assert!(!WordRule::SentencePiece.begins_word("ab", &forced));
        assert!(has_digit("x٣") && has_digit("a7") && !has_digit("½"));
    }
}
