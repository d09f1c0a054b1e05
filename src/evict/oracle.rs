//! The reference's heuristic oracle (`oracle.mark_oracle_important`): which tokens a downstream
//! question needs. It labels training data and scores `oracle_recall`.

use std::collections::HashSet;

use super::pytext;
use super::records::{def_name, question_entities, tokenize_lines};

/// Oracle labels for the tokens of `lines`.
///
/// A token is important when it is a question entity, a `def`/`class`/`async` keyword on a line
/// starting with a definition, or the defined name when it stands as its own whitespace-separated part.
///
/// The reference finds a token's line by counting characters (`len(token) + 1` per token) rather than
/// by the tokenizer's real line; that drift is reproduced on purpose, since the labels and the
/// published recall figures depend on it.
pub fn mark_important(tokens: &[&str], lines: &[&str], entities: &HashSet<&str>) -> Vec<bool> {
    let facts: Vec<OracleLine> = lines.iter().map(|l| OracleLine::new(l)).collect();
    let mut line_idx = 0;
    let mut char_in_line = 0;
    tokens
        .iter()
        .map(|tok| {
            while line_idx < lines.len() && char_in_line >= facts[line_idx].chars {
                line_idx += 1;
                char_in_line = 0;
            }
            let line = facts.get(line_idx);
            let important = entities.contains(tok) || line.is_some_and(|l| l.marks(tok));
            char_in_line += tok.chars().count() + 1;
            if char_in_line > line.map_or(0, |l| l.chars) {
                line_idx += 1;
                char_in_line = 0;
            }
            important
        })
        .collect()
}

/// Oracle labels of a context for a question, tokenizing it first.
pub fn oracle_labels(lines: &[&str], question: &str) -> Vec<bool> {
    let (tokens, _) = tokenize_lines(lines);
    mark_important(&tokens, lines, &question_entities(question))
}

/// Per-line facts for the oracle, computed once per line.
struct OracleLine<'a> {
    chars: usize,
    /// `^(def|class|async\s+def)\b` on the raw (unstripped) line.
    starts_definition: bool,
    /// The defined name, when it also appears as a whole whitespace-separated part of the line.
    standalone_def_name: Option<&'a str>,
}

impl<'a> OracleLine<'a> {
    fn new(line: &'a str) -> Self {
        let starts_async_def = line
            .strip_prefix("async")
            .map(|r| r.trim_start_matches(pytext::is_space))
            .is_some_and(|r| r.len() < line.len() - 5 && pytext::starts_with_word(r, "def"));
        let standalone_def_name = if line.contains("def ") {
            def_name(line).filter(|name| pytext::split(line).any(|p| p == *name))
        } else {
            None
        };
        Self {
            chars: line.chars().count(),
            starts_definition: pytext::starts_with_word(line, "def")
                || pytext::starts_with_word(line, "class")
                || starts_async_def,
            standalone_def_name,
        }
    }

    fn marks(&self, tok: &str) -> bool {
        (self.starts_definition && matches!(tok, "def" | "class" | "async"))
            || self.standalone_def_name == Some(tok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_and_entities_are_marked() {
        let lines = ["def foo (x):", "    y = bar", "async  def baz():"];
        let flags = oracle_labels(&lines, "where is bar");
        let (tokens, _) = tokenize_lines(&lines);
        let marked: Vec<_> = tokens.iter().zip(&flags).filter(|(_, f)| **f).map(|(t, _)| *t).collect();
        assert_eq!(marked, ["def", "foo", "bar", "async", "def"]);
    }
}
