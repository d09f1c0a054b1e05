//! Output that keeps the text's shape: every output line comes from one input line, in order, as that
//! line's leading whitespace (byte for byte) and its kept words joined by single spaces, or, for a
//! verbatim line (code, table row), the input line itself. A line with no kept word is left out; a run
//! of blank lines becomes one blank line between output lines; every line keeps its own ending, and the
//! output ends with one exactly when the input does.

use std::iter::{Enumerate, Peekable};
use std::str::Split;

use super::lines::LineSet;
use super::words::{LineJoiner, Word};

/// Builds the output word by word, appending only: what is written is final.
#[derive(Debug)]
pub(crate) enum Output<'a> {
    /// Headroom 0.42's: kept words joined by one space, the line's ending where the line changes.
    Headroom(LineJoiner),
    Layout(Box<LayoutWriter<'a>>),
}

impl<'a> Output<'a> {
    pub(crate) fn new(text: &'a str, headroom: bool, verbatim: LineSet) -> Self {
        match headroom {
            true => Output::Headroom(LineJoiner::default()),
            false => Output::Layout(Box::new(LayoutWriter::new(text, verbatim))),
        }
    }

    /// Adds the next input word (every word comes, kept or not, in order).
    pub(crate) fn push(&mut self, word: &Word<'a>, kept: bool) {
        match self {
            Output::Headroom(j) if kept => j.push(word),
            Output::Headroom(_) => {}
            Output::Layout(w) => w.push(word, kept),
        }
    }

    /// The number of kept words so far.
    pub(crate) fn words(&self) -> usize {
        match self {
            Output::Headroom(j) => j.words(),
            Output::Layout(w) => w.words,
        }
    }

    /// The output so far: it only grows, so any part of it already read is final.
    pub(crate) fn text(&self) -> &str {
        match self {
            Output::Headroom(j) => j.text(),
            Output::Layout(w) => &w.out,
        }
    }

    /// Writes what is left once every word was pushed.
    pub(crate) fn finish(&mut self) {
        if let Output::Layout(w) = self {
            w.finish();
        }
    }

    pub(crate) fn into_string(self) -> String {
        match self {
            Output::Headroom(j) => j.into_string(),
            Output::Layout(w) => w.out,
        }
    }
}

/// The layout-keeping output; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct LayoutWriter<'a> {
    text: &'a str,
    lines: Peekable<Enumerate<Split<'a, char>>>,
    verbatim: LineSet,
    /// The input line being collected: its index, text and whether it has an ending.
    current: Option<(usize, &'a str, bool)>,
    /// Byte range in `out` where the current line's kept words start, once one was kept.
    kept_from: Option<usize>,
    out: String,
    /// The ending of the last written line, written once more output follows (or at the end).
    owed: Option<&'static str>,
    /// The ending of the first blank line since the last written line.
    blank: Option<&'static str>,
    words: usize,
}

impl<'a> LayoutWriter<'a> {
    fn new(text: &'a str, verbatim: LineSet) -> Self {
        Self {
            text,
            lines: text.split('\n').enumerate().peekable(),
            verbatim,
            current: None,
            kept_from: None,
            // The output is at most the text: one allocation, not a doubling's two copies at the end
            // (pages never written cost no memory).
            out: String::with_capacity(text.len()),
            owed: None,
            blank: None,
            words: 0,
        }
    }

    fn push(&mut self, word: &Word<'a>, kept: bool) {
        self.advance_to(word.line);
        if !kept {
            return;
        }
        self.words += 1;
        let (line, raw, _) = self.current.expect("advance_to sets the line");
        if self.verbatim.contains(line) {
            return;
        }
        match self.kept_from {
            Some(_) => self.out.push(' '),
            None => {
                self.start_line();
                self.kept_from = Some(self.out.len());
                self.out.push_str(&raw[..raw.len() - raw.trim_start().len()]);
            }
        }
        self.out.push_str(word.text);
    }

    /// Ends every line before `line` and makes `line` the current one.
    fn advance_to(&mut self, line: usize) {
        while self.current.is_none_or(|(l, ..)| l < line) {
            self.end_line();
            let Some((l, raw)) = self.lines.next() else { return };
            self.current = Some((l, raw, self.lines.peek().is_some()));
        }
    }

    /// Writes the owed ending (and a blank line, if the input had some) before a new output line.
    fn start_line(&mut self) {
        if let Some(owed) = self.owed.take() {
            self.out.push_str(owed);
            if let Some(blank) = self.blank.take() {
                self.out.push_str(blank);
            }
        }
        self.blank = None;
    }

    /// Ends the current line: a verbatim line is written whole; a line of kept words is done; a blank
    /// line may separate the next output from the last.
    fn end_line(&mut self) {
        let Some((line, raw, has_end)) = self.current.take() else { return };
        let crlf = has_end && raw.ends_with('\r');
        let ending = match (has_end, crlf) {
            (false, _) => "",
            (true, true) => "\r\n",
            (true, false) => "\n",
        };
        if self.verbatim.contains(line) {
            self.start_line();
            self.out.push_str(if crlf { &raw[..raw.len() - 1] } else { raw });
            self.owed = Some(ending);
        } else if self.kept_from.take().is_some() {
            self.owed = Some(ending);
        } else if raw.trim().is_empty() && self.owed.is_some() && self.blank.is_none() {
            self.blank = Some(ending);
        }
    }

    fn finish(&mut self) {
        self.advance_to(usize::MAX);
        self.end_line();
        if self.text.ends_with('\n') {
            if let Some(owed) = self.owed.take() {
                self.out.push_str(owed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::words::words;
    use super::*;

    fn layout(text: &str, verbatim: LineSet, keep: impl Fn(&str) -> bool) -> String {
        let mut out = Output::new(text, false, verbatim);
        for w in words(text) {
            out.push(&w, keep(w.text));
        }
        out.finish();
        out.into_string()
    }

    #[test]
    fn indentation_blank_runs_and_endings_are_kept() {
        let text = "def f(x):\n    if x:\r\n\n\n        return  x\n\n";
        assert_eq!(
            layout(text, LineSet::default(), |_| true),
            "def f(x):\n    if x:\r\n\n        return x\n"
        );
        assert_eq!(
            layout(text, LineSet::default(), |w| w != "if" && w != "x:"),
            "def f(x):\n\n        return x\n"
        );
        assert_eq!(layout("a\n\n\nb", LineSet::default(), |w| w == "b"), "b");
        assert_eq!(layout("  a  b  ", LineSet::default(), |_| true), "  a b");
    }

    #[test]
    fn a_blank_line_needs_output_on_both_sides() {
        let text = "\n\none\n\ntwo three\n\nfour\n";
        assert_eq!(layout(text, LineSet::default(), |w| w != "two" && w != "three"), "one\n\nfour\n");
        assert_eq!(layout(text, LineSet::default(), |w| w == "one"), "one\n");
    }

    #[test]
    fn verbatim_lines_are_written_whole() {
        let text = "intro words\n```\n  a   b \r\n\n```\nrest";
        let code = LineSet::from_runs(vec![1..3, 3..5]);
        assert_eq!(
            layout(text, code, |w| w == "rest" || w == "```" || w == "a" || w == "b"),
            "```\n  a   b \r\n\n```\nrest"
        );
    }
}
