//! Words with the line they come from: the unit the pipeline keeps or drops.

/// One whitespace-separated word of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<'a> {
    pub text: &'a str,
    /// Index of the `\n`-separated line holding the word.
    pub line: usize,
    /// Whether that line ends with `\r` (a CRLF line ending), so output can keep it.
    pub crlf: bool,
}

/// The words of `text` in order, split on `\n` then on whitespace, like
/// [`crate::encoders::tokenize::words`] but remembering each word's line.
///
/// ```
/// use kompress::pipeline::words::words;
/// let w: Vec<_> = words("a b\r\n\n c").map(|w| (w.text, w.line, w.crlf)).collect();
/// assert_eq!(w, [("a", 0, true), ("b", 0, true), ("c", 2, false)]);
/// ```
pub fn words(text: &str) -> impl Iterator<Item = Word<'_>> + '_ {
    text.split('\n').enumerate().flat_map(|(line, s)| {
        let crlf = s.ends_with('\r');
        s.split_whitespace().map(move |text| Word { text, line, crlf })
    })
}

/// Rebuilds text from kept words: one space inside a line, the earlier line's own ending (`\n` or
/// `\r\n`) where the line changes, so words from different lines are never glued together.
#[derive(Debug, Default)]
pub(crate) struct LineJoiner {
    text: String,
    words: usize,
    last: Option<(usize, bool)>,
}

impl LineJoiner {
    pub(crate) fn push(&mut self, word: &Word<'_>) {
        match self.last {
            Some((line, _)) if line == word.line => self.text.push(' '),
            Some((_, true)) => self.text.push_str("\r\n"),
            Some((_, false)) => self.text.push('\n'),
            None => {}
        }
        self.text.push_str(word.text);
        self.words += 1;
        self.last = Some((word.line, word.crlf));
    }

    /// The number of words pushed.
    pub(crate) fn words(&self) -> usize {
        self.words
    }

    /// The text so far.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn into_string(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(text: &str, keep: impl Fn(usize) -> bool) -> String {
        let mut j = LineJoiner::default();
        words(text).enumerate().filter(|(i, _)| keep(*i)).for_each(|(_, w)| j.push(&w));
        j.into_string()
    }

    #[test]
    fn never_glues_lines_and_keeps_crlf() {
        let text = "one two\r\nthree\n\nfour five\r\n";
        assert_eq!(join(text, |_| true), "one two\r\nthree\nfour five");
        assert_eq!(join(text, |i| i != 2), "one two\r\nfour five");
        assert_eq!(join(text, |i| i == 1 || i == 4), "two\r\nfive");
    }
}
