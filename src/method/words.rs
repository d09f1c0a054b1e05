//! One per-word view of every method's decision, for whoever shows it (the playground of
//! `kompress serve`, and any caller that wants to see which words a method dropped and why).
//!
//! [`Methods::words`](super::Methods::words) runs a [`Call`](super::Call) with the method's own
//! per-word record switched on (the pipeline's `explain`, LLMLingua-2's `return_word_label`, ctxprune's
//! atoms and keep decisions) and returns the method's [`Output`](super::Output) with a [`WordView`]
//! per input word, in order.
//!
//! ```
//! use std::sync::Arc;
//! use kompress::method::{Call, Methods};
//! use kompress::{ctxprune, Kompress, LoadOptions};
//! let model = Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
//! let methods = Methods::new(Arc::new(model));
//! let options = ctxprune::Options::default();
//! let (_, words) = methods.words(Call::Ctxprune { text: "Keep /etc/hosts, drop the rest.", options: &options })?;
//! assert_eq!(words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(), ["Keep", "/etc/hosts", ",", "drop", "the", "rest", "."]);
//! # Ok::<(), kompress::Error>(())
//! ```

use serde::Serialize;

use crate::ctxprune;
use crate::llmlingua2::LabeledWord;
use crate::pipeline::{Reason, WordDecision};

/// One input word and the method's decision on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WordView {
    /// The whitespace before the word in the input (`""` for the first word, or a word glued to the
    /// one before, such as ctxprune's `,`; `" "` where the method's words cannot be found in the input
    /// as they are, as LLMLingua-2's tokenizer may show them).
    pub ws: String,
    /// The word as the method sees it: a whitespace-separated word for the pipeline, a merged token
    /// word for LLMLingua-2, an atom for ctxprune.
    pub text: String,
    /// Whether the word is in the output.
    pub kept: bool,
    /// The model's score for the word where the method has one (the pipeline's highest final token
    /// score, LLMLingua-2's word probability, ctxprune's mean token probability).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Why the word was kept whatever its score, where it was: `number`, `path`, `must_keep` (another
    /// must-keep pattern: an identifier, a flag, a negation...), `table`, `code`, `code_line`, `markdown`, `structured` (a JSON input),
    /// `unscored`, `passthrough` (the pipeline's), `structure` (ctxprune's JSON characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The kind of must-keep word, as the playground names it: `number` (it holds a digit), `path` (a
/// slash or backslash), else `must_keep` (an identifier, a flag, a negation...).
pub fn protection_kind(word: &str) -> &'static str {
    if word.chars().any(|c| c.is_ascii_digit()) {
        "number"
    } else if word.contains(['/', '\\']) {
        "path"
    } else {
        "must_keep"
    }
}

/// Finds each word in `text` in order and gives the whitespace before it; a word not found there (as
/// the method shows it) gets `" "` and leaves the search where it was.
fn with_ws(
    text: &str,
    words: impl IntoIterator<Item = (String, bool, Option<f32>, Option<&'static str>)>,
) -> Vec<WordView> {
    let (mut pos, mut lost) = (0, false);
    let mut out = Vec::new();
    for (word, kept, score, reason) in words {
        let found = match word.is_empty() {
            true => None,
            false => text[pos..].find(word.as_str()),
        };
        let ws = match found {
            Some(at) if text[pos..pos + at].chars().all(char::is_whitespace) => {
                let ws = text[pos..pos + at].to_string();
                (pos, lost) = (pos + at + word.len(), false);
                ws
            }
            // After a word not found, the next one found is where the text picks up again.
            Some(at) if lost => {
                let gap = &text[pos..pos + at];
                (pos, lost) = (pos + at + word.len(), false);
                match gap.ends_with(char::is_whitespace) {
                    true => " ".to_string(),
                    false => String::new(),
                }
            }
            _ => {
                lost = true;
                match out.is_empty() {
                    true => String::new(),
                    false => " ".to_string(),
                }
            }
        };
        out.push(WordView { ws, text: word, kept, score, reason });
    }
    out
}

/// The pipeline's `explain` decisions of `text` as views.
pub(crate) fn from_decisions(text: &str, decisions: &[WordDecision]) -> Vec<WordView> {
    with_ws(
        text,
        decisions.iter().map(|d| {
            let reason = match d.reason {
                Reason::Model | Reason::Dropped => None,
                Reason::Protected => Some(protection_kind(&d.word)),
                Reason::Table => Some("table"),
                Reason::Code => Some("code"),
                Reason::CodeLine => Some("code_line"),
                Reason::Markdown => Some("markdown"),
                Reason::Structured => Some("structured"),
                Reason::Unscored => Some("unscored"),
                Reason::Passthrough => Some("passthrough"),
            };
            (d.word.clone(), d.kept, d.score, reason)
        }),
    )
}

/// LLMLingua-2's labelled words of `contexts` (joined by blank lines, as its output is) as views.
pub(crate) fn from_labels(contexts: &[&str], words: &[LabeledWord]) -> Vec<WordView> {
    let text = contexts.join("\n\n");
    with_ws(&text, words.iter().map(|w| (w.word.clone(), w.label == 1, w.prob, None)))
}

/// ctxprune's atoms and decisions as views (the trailing whitespace's empty atom left out).
pub(crate) fn from_atoms(detailed: &ctxprune::Detailed<'_>) -> Vec<WordView> {
    let scored = &detailed.scored;
    scored
        .atoms
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.text.is_empty())
        .map(|(i, a)| {
            let reason = match detailed.forced[i] {
                true if ctxprune::atoms::is_protected(a.text) => Some(protection_kind(a.text)),
                true => Some("structure"),
                false => None,
            };
            WordView {
                ws: a.ws.to_string(),
                text: a.text.to_string(),
                kept: detailed.keep[i],
                score: Some(scored.scores[i] as f32),
                reason,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_is_found_before_each_word() {
        let views = with_ws("a  b\nc", ["a", "b", "c"].map(|w| (w.to_string(), true, None, None)));
        let ws: Vec<&str> = views.iter().map(|v| v.ws.as_str()).collect();
        assert_eq!(ws, ["", "  ", "\n"]);
        // A word the method shows otherwise than the input holds: one space, the search unmoved.
        let views = with_ws("a b", ["a", "B", "b"].map(|w| (w.to_string(), true, None, None)));
        let ws: Vec<&str> = views.iter().map(|v| v.ws.as_str()).collect();
        assert_eq!(ws, ["", " ", " "]);
        // After a word not found, the next found one resumes the search wherever it is.
        let views =
            with_ws("café au lait", ["cafe", "au", "lait"].map(|w| (w.to_string(), true, None, None)));
        let ws: Vec<&str> = views.iter().map(|v| v.ws.as_str()).collect();
        assert_eq!(ws, ["", " ", " "]);
    }

    #[test]
    fn protections_are_named() {
        assert_eq!(protection_kind("3.14"), "number");
        assert_eq!(protection_kind("/etc/hosts"), "path");
        assert_eq!(protection_kind("NEVER"), "must_keep");
    }
}
