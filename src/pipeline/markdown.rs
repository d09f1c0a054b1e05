//! Markdown markup the model must not touch: heading markers, list markers, block quotes and links.
//! Unlike code and tables these are not whole lines: only the marker's word (or a link's words) is
//! kept whatever the model says, the rest of the line is the model's. A heading without its `#`, a list
//! item without its `-` or a link without its `](url)` is a different document; the marker costs a
//! token or two.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// Inline links and images, `[text](url)` and `![alt](src "title")`, on one line: text without
/// brackets, a destination without spaces or parentheses, an optional quoted title. Reference
/// definitions (`[id]: url`) too.
static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r#"!?\[[^\[\]\n]*\]\([^()\s]*(?:[ \t]+"[^"\n]*")?\)"#,
        r#"|(?m:^[ \t]{0,3}\[[^\[\]\n]+\]:[ \t]+\S+)"#,
    ))
    .expect("the link pattern is valid")
});

/// Byte ranges of a text whose words are kept: sorted, disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    spans: Vec<Range<usize>>,
}

impl Spans {
    /// Whether the byte range `bytes` overlaps a span.
    pub fn overlaps(&self, bytes: Range<usize>) -> bool {
        let i = self.spans.partition_point(|s| s.end <= bytes.start);
        self.spans.get(i).is_some_and(|s| s.start < bytes.end)
    }

    /// The spans, sorted.
    pub fn spans(&self) -> &[Range<usize>] {
        &self.spans
    }

    /// Whether there is no span.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The markup of `text`, as byte ranges:
/// - at the start of a line (after any indentation), any nesting of block-quote markers (`>`) and
///   list markers (`-`, `*` or `+`, or 1 to 9 digits and `.` or `)`, followed by whitespace or the
///   end of the line), then an ATX heading marker (1 to 6 `#`, followed by whitespace or the end);
/// - inline links and images on one line, and reference definitions.
///
/// ```
/// use kompress::pipeline::markdown::markup;
/// let text = "# Title\n- item\n> 1. quoted\nsee [the docs](https://x.dev/a) now";
/// let spans: Vec<&str> = markup(text).spans().iter().map(|s| &text[s.clone()]).collect();
/// assert_eq!(spans, ["#", "-", ">", "1.", "[the docs](https://x.dev/a)"]);
/// ```
pub fn markup(text: &str) -> Spans {
    let mut spans = Vec::new();
    let mut start = 0;
    for line in text.split('\n') {
        line_markers(line, start, &mut spans);
        start += line.len() + 1;
    }
    spans.extend(LINK.find_iter(text).map(|m| m.range()));
    spans.sort_by_key(|s| s.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(last) if s.start < last.end => last.end = last.end.max(s.end),
            _ => merged.push(s),
        }
    }
    Spans { spans: merged }
}

/// The block markers at the start of `line`, which starts at byte `base` of the text.
fn line_markers(line: &str, base: usize, out: &mut Vec<Range<usize>>) {
    let mut at = line.len() - line.trim_start().len();
    loop {
        let rest = &line[at..];
        let Some(n) = quote_marker(rest).or_else(|| list_marker(rest)) else { break };
        out.push(base + at..base + at + n);
        at += n;
        at += line[at..].len() - line[at..].trim_start().len();
    }
    if let Some(n) = heading_marker(&line[at..]) {
        out.push(base + at..base + at + n);
    }
}

/// Whether `rest` holds only whitespace up to its end, from byte `n` on (a marker ends there).
fn ends_marker(rest: &str, n: usize) -> bool {
    rest[n..].chars().next().is_none_or(char::is_whitespace)
}

fn quote_marker(rest: &str) -> Option<usize> {
    rest.starts_with('>').then_some(1)
}

fn list_marker(rest: &str) -> Option<usize> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let n = match rest.as_bytes().get(digits) {
        Some(b'-' | b'*' | b'+') if digits == 0 => 1,
        Some(b'.' | b')') if (1..=9).contains(&digits) => digits + 1,
        _ => return None,
    };
    ends_marker(rest, n).then_some(n)
}

fn heading_marker(rest: &str) -> Option<usize> {
    let n = rest.bytes().take_while(|&b| b == b'#').count();
    ((1..=6).contains(&n) && ends_marker(rest, n)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(text: &str) -> Vec<&str> {
        markup(text).spans().iter().map(|s| &text[s.clone()]).collect()
    }

    #[test]
    fn headings_lists_and_quotes_at_the_line_start() {
        assert_eq!(marked("## Install\n###### six\n#"), ["##", "######", "#"]);
        assert_eq!(marked("- a\n  * b\n\t+ c\n1. d\n  12) e\n-"), ["-", "*", "+", "1.", "12)", "-"]);
        assert_eq!(
            marked("> quote\n>> nested\n> - item\n- > quoted item\n> # heading"),
            [">", ">", ">", ">", "-", "-", ">", ">", "#"]
        );
        assert_eq!(marked(">no space\r\n- x\r"), [">", "-"]);
    }

    #[test]
    fn look_alikes_are_not_markers() {
        for text in [
            "####### seven",
            "#hashtag",
            "a - b",
            "-flag",
            "--- rule",
            "**bold**",
            "1234567890. too long",
            "3.14 is pi",
            "v1. x",
            "a > b",
            "x # y",
            "2024-01-01",
        ] {
            assert!(marked(text).is_empty(), "{text}: {:?}", marked(text));
        }
    }

    #[test]
    fn links_images_and_definitions() {
        let text = "See [the guide](https://a.dev/g \"Guide\") and ![logo](img/l.png).\n[1]: https://x.dev";
        assert_eq!(
            marked(text),
            ["[the guide](https://a.dev/g \"Guide\")", "![logo](img/l.png)", "[1]: https://x.dev"]
        );
        // No destination, a space in it, or a line break: not a link.
        assert!(marked("[a] (b)\n[a](b c)\n[a\nb](c)\nf(x)[0]").is_empty());
    }

    #[test]
    fn overlaps_finds_the_words_of_a_span() {
        let text = "- [a b](u) c";
        let m = markup(text);
        assert_eq!(m.spans(), [0..1, 2..10]);
        assert!(m.overlaps(0..1) && m.overlaps(2..4) && m.overlaps(5..10));
        assert!(!m.overlaps(11..12) && !m.overlaps(1..2) && !Spans::default().overlaps(0..9));
    }
}
