//! Source code, diffs, stack traces and log lines outside code fences: a line-by-line heuristic. The
//! model reads prose; `x -> y`, `a = b;` or a frame's `(Main.java:12)` lose their meaning with one
//! token gone, so these lines are kept whole, byte for byte, like fenced code.

use std::sync::LazyLock;

use regex::Regex;

use super::lines::LineSet;

/// Lines that are code-like on their own: diff file headers, stack-trace lines, log lines that start
/// with a timestamp.
static ALONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        // Diffs.
        r"^(?:diff --git |index [0-9a-f]{7,}\.\.[0-9a-f]{7,})",
        // Python, Java/JavaScript/C#, Rust, Go frames and headers.
        r#"|^Traceback \(most recent call last\):"#,
        r#"|^\s*File "[^"]+", line \d+"#,
        r"|^\s+at \S+ ?\(.*:\d+\)\s*$",
        r"|^\s+at \S+:\d+(?::\d+)?\s*$",
        r"|^\s+\.\.\. \d+ more\s*$",
        r"|^Caused by: [\w.$]+(?:Exception|Error)",
        r"|^[\w.]+(?:Exception|Error)(?::|\s*$)",
        r"|^thread '[^']*' panicked at ",
        r"|^\s*\d+: \S*::",
        r"|^goroutine \d+ \[",
        // Log lines: a date and time (ISO or slashes), a bare time, or syslog's month and day.
        r"|^\[?\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}",
        r"|^\[?\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]? ",
        r"|^(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2} ",
    ))
    .expect("the code-line pattern is valid")
});

/// A diff hunk's header; its lines follow.
static HUNK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@").expect("the hunk pattern is valid"));

/// One code signal each: brackets; an operator; a call or an index; a line ending as statements and
/// blocks end (a `;` after a symbol or digit: prose ends clauses with a word and `;`); a keyword or
/// comment that starts a line.
static SIGNALS: LazyLock<[Regex; 5]> = LazyLock::new(|| {
    [
        r"[{}]",
        r"==|!=|<=|>=|->|=>|::|&&|\|\||[-+*/:]=|\+\+|\s=\s|\w=[\w'(\[]",
        r"[A-Za-z_][\w.]*\((?:[^()s][^()]*|s[^()]+)?\)|\w\[[^\]\s]*\]",
        r"(?:[^\sA-Za-z];|[{(\[])\s*$",
        concat!(
            r"^\s*(?:(?:def|fn|let|const|var|import|pub|func|function|elif|struct|impl|package|using|",
            r"public|private|protected|static|void|async|await|typedef|namespace|template)\s|",
            r"#include|#define|#!/|//|/\*|\*/|from \S+ import )",
        ),
    ]
    .map(|p| Regex::new(p).expect("the signal patterns are valid"))
});

/// Whether the trimmed line is brackets and punctuation only (`}`, `});`, `]`).
fn closer(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.chars().all(|c| matches!(c, '{' | '}' | '(' | ')' | '[' | ']' | ';' | ','))
}

/// Inline code spans (`` `x = 1` ``): prose that quotes code is still prose.
static INLINE_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`[^`]*`").expect("the inline-code pattern is valid"));

/// How many code signals `line` has, outside inline code spans.
fn signals(line: &str) -> usize {
    let line = INLINE_CODE.replace_all(line, "");
    SIGNALS.iter().filter(|re| re.is_match(&line)).count()
}

/// The code-like lines of a text:
/// - a line that is code-like alone (diff file headers, stack-trace frames, exception
///   lines, log lines starting with a timestamp);
/// - a Python traceback: its header, its indented lines and the exception line after them;
/// - a diff hunk: its `@@ -a,b +c,d @@` header and the lines after it that start with a space, `+`,
///   `-` or `\` (or are empty);
/// - a `--- ` line followed by a `+++ ` line (a diff's file names);
/// - a run of consecutive lines, each with at least one code signal (a brace, an
///   operator such as `==`, `->`, `::`, ` = `, a call `f(x)` or an index `a[i]`, a line ending in
///   `{`, `(`, `[` or a `;` after a symbol or digit, a leading keyword or comment; inline code spans
///   do not count) or brackets only, where at least one line has two signals or is brackets only.
///
/// ```
/// use kompress::pipeline::code_lines::code_lines;
/// let text = "Call it like this:\n    let x = parse(input)?;\n    x.run();\nand it runs.";
/// let code = code_lines(text);
/// assert_eq!((0..4).map(|l| code.contains(l)).collect::<Vec<_>>(), [false, true, true, false]);
/// ```
pub fn code_lines(text: &str) -> LineSet {
    let mut runs = Vec::new();
    let mut run: Option<(usize, bool)> = None; // start of a run of signal lines, whether one is strong
    let mut hunk = false;
    let mut trace = false;
    let mut previous: Option<&str> = None;
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        hunk = HUNK.is_match(line) || (hunk && (line.is_empty() || line.starts_with([' ', '+', '-', '\\'])));
        // A Python traceback: its indented lines, then the unindented exception line.
        let in_trace = trace && !line.trim().is_empty();
        trace = line.starts_with("Traceback (most recent call last):")
            || (in_trace && line.starts_with([' ', '\t']));
        let file_names = line.starts_with("+++ ") && previous.is_some_and(|p| p.starts_with("--- "));
        if hunk || in_trace || ALONE.is_match(line) {
            runs.push(i..i + 1);
        }
        if file_names {
            runs.push(i - 1..i + 1);
        }
        let n = if closer(line) { 2 } else { signals(line) };
        run = match (run, n) {
            (_, 0) => None,
            (None, n) => Some((i, n >= 2)),
            (Some((start, strong)), n) => Some((start, strong || n >= 2)),
        };
        if let Some((start, true)) = run {
            runs.push(start..i + 1);
        }
        previous = Some(line);
    }
    LineSet::from_runs(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        let code = code_lines(text);
        (0..text.split('\n').count()).filter(|&l| code.contains(l)).collect()
    }

    #[test]
    fn source_code_runs() {
        let rust = "Here:\nfn main() {\n    let v = vec![1, 2];\n    println!(\"{v:?}\")\n}\nThat is all.";
        assert_eq!(lines(rust), [1, 2, 3, 4]);
        let python = "def f(x):\n    return x -> y\n\nimport os\ncwd = os.getcwd()";
        assert_eq!(lines(python), [0, 1, 3, 4]);
        // One signal alone is prose with a symbol in it; beside a strong line it is code.
        assert_eq!(lines("Use a == b to compare.\n\ntotal += x;\nif (a == b) {\n  go(a)"), [2, 3, 4]);
        assert_eq!(lines("  });\n"), [0]);
    }

    #[test]
    fn diffs_traces_and_logs() {
        let diff = "diff --git a/x b/x\nindex 1234567..89abcde 100644\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old line\n+new line\n context\n\nAfter the diff.";
        assert_eq!(lines(diff), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let py = "Traceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    main()\nValueError: bad input";
        assert_eq!(lines(py), [0, 1, 2, 3]);
        let java = "Exception in thread \"main\" java.lang.IllegalStateException: x\n\tat com.a.B.c(B.java:12)\n\tat com.a.B.main(B.java:5)\n\t... 3 more";
        assert_eq!(lines(java), [1, 2, 3]);
        let js = "    at Object.<anonymous> (/app/index.js:3:9)\n    at node:internal/main:1:2";
        assert_eq!(lines(js), [0, 1]);
        let logs = "2024-05-01T12:00:03Z INFO started the server\n[2024-05-01 12:00:04] error: it failed\n12:00:05.123 retrying\nMay  1 12:00:06 host sshd[1]: accepted";
        assert_eq!(lines(logs), [0, 1, 2, 3]);
    }

    #[test]
    fn prose_is_not_code() {
        for text in [
            "The licensee(s) may copy the work(s) (see section 2); no other use is allowed.",
            "You may not impose any further restrictions;\nthat is -- not at all.",
            "Return the Program to the licensor (for example, by mail), and keep a copy.",
            "On 2024-05-01 we met; it was fine.\nAt 12:00 we left.",
            "If you want a > b, write it down; then stop.",
            "Error handling is described below.\n  at the end of the day",
            "@@ is not a hunk\n-not a diff line",
            "`Kompress::from_dir(path)` loads a model; `x = 1;` sets it;\nrates went 1.18 -> 1.02 in all;",
            "--- a dashed rule\nplain text",
        ] {
            assert!(lines(text).is_empty(), "{text}: {:?}", lines(text));
        }
    }
}
