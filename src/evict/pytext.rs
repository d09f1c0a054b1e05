//! The few Python `str` and `re` behaviours the reference relies on, reproduced exactly where it
//! matters for parity (whitespace, line splitting, identifiers).

/// Python's `str.isspace` and `re`'s `\s` on `str` patterns: Rust's `White_Space` property plus the
/// four ASCII information separators U+001C..U+001F, which Python counts as whitespace.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `re`'s `\w` on `str` patterns (alphanumeric or underscore). Rust's `Alphabetic` is a little wider
/// than Python's `isalpha` (it adds a few combining marks); only exotic text can tell them apart.
pub(crate) fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Python's `str.strip()`.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Python's `str.split()` without arguments: runs of whitespace separate, empty parts are dropped.
pub(crate) fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|p| !p.is_empty())
}

/// Python's `str.splitlines()`: every line boundary Python knows, `\r\n` as one, no trailing empty line.
pub(crate) fn splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\u{b}'
                | '\u{c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' && chars.peek().map(|&(_, n)| n) == Some('\n') {
            chars.next();
            end += 1;
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The reference's token regex `[A-Za-z_][A-Za-z0-9_]*|[^\s]` applied to one line.
pub(crate) fn tokens(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = line;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(is_space);
        let first = rest.chars().next()?;
        let len = if first.is_ascii_alphabetic() || first == '_' {
            rest.bytes().position(|b| !(b.is_ascii_alphanumeric() || b == b'_')).unwrap_or(rest.len())
        } else {
            first.len_utf8()
        };
        let (tok, tail) = rest.split_at(len);
        rest = tail;
        Some(tok)
    })
}

/// Whether `s` begins with the word `word` followed by a regex word boundary (`^word\b`).
pub(crate) fn starts_with_word(s: &str, word: &str) -> bool {
    s.strip_prefix(word).is_some_and(|rest| !rest.chars().next().is_some_and(is_word))
}

/// Identifiers (`[A-Za-z_][A-Za-z0-9_]*`) of a text, in order, as `re.findall` returns them.
pub(crate) fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    tokens(text).filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        // Expected values from Python: "a\r\nb\rc\n\nd\x1ce\u2028".splitlines()
        assert_eq!(splitlines("a\r\nb\rc\n\nd\u{1c}e\u{2028}"), ["a", "b", "c", "", "d", "e"]);
        assert_eq!(splitlines("x\n"), ["x"]);
        assert!(splitlines("").is_empty());
    }

    #[test]
    fn tokens_follow_the_reference_regex() {
        let toks: Vec<_> = tokens("  def foo_1(x): # é9").collect();
        assert_eq!(toks, ["def", "foo_1", "(", "x", ")", ":", "#", "é", "9"]);
        assert_eq!(tokens("a\u{1f}b").collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn word_boundary_and_split() {
        assert!(starts_with_word("def(x)", "def"));
        assert!(!starts_with_word("define", "def"));
        assert_eq!(split(" a \t b\u{a0}c ").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(strip("\u{1c} x \n"), "x");
    }
}
