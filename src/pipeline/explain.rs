//! Why each word was kept or dropped, for `kompress compress --explain`.

/// The reason behind one word's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The model kept it.
    Model,
    /// A must-keep pattern kept it (number, path, identifier, negation...) against the model.
    Protected,
    /// It is a cell of a table row, kept byte for byte (under Headroom compatibility: kept whole,
    /// against the model).
    Table,
    /// It is on a line of a fenced code block, kept byte for byte.
    Code,
    /// It is on a code-like line outside fences (source code, a diff, a stack trace, a log line),
    /// kept byte for byte.
    #[serde(rename = "code_line")]
    CodeLine,
    /// It is Markdown markup (a heading, list or quote marker, a link or image), kept against the
    /// model.
    Markdown,
    /// The whole input is JSON: passed through unchanged.
    Structured,
    /// The model did not score it, so it is kept: it is longer than the token cap by itself, or the
    /// time budget ran out before its chunk ([`WordDecision::unscored`] says which).
    Unscored,
    /// The model dropped it.
    Dropped,
    /// The whole text passed through unchanged (too short, nothing would have been kept, or it fits
    /// the token budget already).
    Passthrough,
}

impl Reason {
    /// Whether the word is in the output.
    pub fn kept(self) -> bool {
        self != Reason::Dropped
    }
}

/// Why a word was kept without the model's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unscored {
    /// It has more tokens than a chunk holds (a word of more bytes than the chunk's tokens can stand
    /// for is not even tokenized whole): kept byte for byte.
    TooLong,
    /// [`CompressOptions::time_budget`](super::CompressOptions::time_budget) was spent before its chunk
    /// was scored: kept as it is, in the text's layout.
    TimeBudget,
}

/// One input word, in order, with its decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WordDecision {
    pub word: String,
    /// The input line holding the word, counted from 1 as editors and `grep -n` count (lines split on
    /// `\n`).
    pub line: usize,
    pub kept: bool,
    pub reason: Reason,
    /// Why the model did not score it, when [`Reason::Unscored`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unscored: Option<Unscored>,
    /// The highest final score among the word's tokens, when the model scored it.
    pub score: Option<f32>,
}
