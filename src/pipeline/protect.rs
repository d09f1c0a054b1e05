//! Must-keep words: tokens whose loss the reader cannot undo (numbers, paths, identifiers) or that
//! invert a sentence (negations, directives, connectives). Same classes as Headroom 0.42's
//! `_KOMPRESS_MUST_KEEP_RE`, matched anywhere in the word.

use std::sync::LazyLock;

use regex::Regex;

/// Headroom's pattern, rewritten for the linear-time `regex` crate. Only its standalone-number class
/// used look-around (`(?<![\w.])\d+(?:\.\d+)?(?![\w.])`); since we only ask whether a match exists,
/// consuming the boundary character instead (`(?:^|[^\w.])` ... `(?:$|[^\w.])`) accepts exactly the
/// same words.
static MUST_KEEP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\b0x[0-9A-Fa-f]+\b",
        r"|(?:^|[^\w.])\d+(?:\.\d+)?(?:$|[^\w.])",
        r"|[A-Z_]{2,}",
        r"|[a-z_][a-z0-9_]*\.[a-z0-9_]+",
        r"|/[a-z0-9/._-]{2,}",
        r"|\.[a-z]{2,4}\b",
        r"|--?[a-z][\w-]*",
        r"|\b[A-Z][a-z]+[A-Z]\w*",
        r"|(?i:\b(?:not|never|none|cannot|can't|don't|doesn't|didn't|won't|shouldn't",
        r"|mustn't|isn't|aren't|avoid|refuse|prohibited|forbidden|disallow|unless",
        r"|except|without|must|should|shall|required|always|only|mandatory)\b)",
        r"|(?i:\b(?:and|or|nor|xor)\b)",
    ))
    .expect("the must-keep pattern is valid")
});

/// Whether a word must survive compression whatever the model says.
///
/// ```
/// use kompress::pipeline::protect::must_keep;
/// for w in ["0x7f", "42,", "HTTP", "os.path", "/etc/hosts", "a.json", "--verbose", "IndexError", "Don't", "or"] {
///     assert!(must_keep(w), "{w}");
/// }
/// for w in ["the", "v2", "1.2.3", "Hello", "orange"] {
///     assert!(!must_keep(w), "{w}");
/// }
/// ```
pub fn must_keep(word: &str) -> bool {
    MUST_KEEP.is_match(word)
}

#[cfg(test)]
mod tests {
    use super::must_keep;

    #[test]
    fn standalone_numbers_match_python_lookaround() {
        // Python: (?<![\w.])\d+(?:\.\d+)?(?![\w.])
        for w in ["42", "3.14", "(7)", "x=5", "-1", "1,000", "٣"] {
            assert!(must_keep(w), "{w}");
        }
        for w in ["v2", "2b", "1.2.3", "3.", ".5", "a1", "1_"] {
            assert!(!must_keep(w), "{w}");
        }
    }

    #[test]
    fn words_of_each_class() {
        for w in ["0xDEADbeef", "__init__", "libsystem_kernel.dylib", "/usr/lib", ".py", "-n", "CamelCase"] {
            assert!(must_keep(w), "{w}");
        }
        for w in ["NEVER", "cannot.", "(unless", "Without", "XOR", "nor"] {
            assert!(must_keep(w), "{w}");
        }
        for w in ["", "a", "notable", "andor", "Camel", "/a", "x_y"] {
            assert!(!must_keep(w), "{w}");
        }
    }

    #[test]
    fn long_words_are_matched_in_linear_time() {
        let long = "1".repeat(200_000) + "x";
        assert!(!must_keep(&long));
        assert!(must_keep(&("a".repeat(200_000) + ".py")));
    }
}
