//! ctxprune's atoms (`ctxprune/atoms.py`): the units it keeps or drops, and the rebuild of the kept text.
//!
//! An atom is a word that glues identifier characters together (paths, URLs, versions, IPs, snake_case,
//! hashes), one CJK character, or one other non-space character; each remembers the whitespace before
//! it, so that [`detok`] rebuilds kept text with the source's own spacing.
//!
//! Python's character classes are reproduced, not Rust's: `\w` is a letter, a number or `_` (Python
//! 3.11's Unicode 14 tables and the regex crate's newer ones differ only on characters assigned since),
//! `\s` is `str.isspace` (which, unlike Rust's `char::is_whitespace`, counts `\x1c`-`\x1f`), and
//! `isdigit`/`isupper` follow `str.isdigit`/`str.isupper`.

use std::sync::LazyLock;

use regex::Regex;

use crate::{Error, Result};

/// Python's `\s` for `str` patterns: the characters for which `str.isspace()` is true.
const SPACE: &str =
    r"\t\n\x0B\x0C\r\x1C-\x1F \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";
/// Scripts written without spaces (kana, Han): one atom per character.
const CJK: &str = r"\x{3040}-\x{30FF}\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}\x{F900}-\x{FAFF}";

/// `(\s*)(WORD|[CJK]|[^\s])` with `WORD = (?:--?|[/~.$@#])?W(?:(?:W|[.:/@%+#~=?&'\-])*W)?` and `W` a
/// word character that is not CJK. The regex crate's leftmost-first matching reports what Python's
/// backtracking `re` does for a pattern without back-references.
static ATOM: LazyLock<Regex> = LazyLock::new(|| {
    let w = format!(r"[[\p{{L}}\p{{N}}_]--[{CJK}]]");
    let word = format!(r"(?:--?|[/~.$@#])?{w}(?:(?:{w}|[.:/@%+#~=?&'\-])*{w})?");
    Regex::new(&format!(r"([{SPACE}]*)({word}|[{CJK}]|[^{SPACE}])")).expect("the atom pattern is valid")
});

/// The characters `str.isdigit()` accepts beyond the decimal digits (`\p{Nd}`): superscripts,
/// subscripts, circled and other digit forms (Python 3.11, Unicode 14).
static OTHER_DIGIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^[\p{Nd}\x{B2}\x{B3}\x{B9}\x{1369}-\x{1371}\x{19DA}\x{2070}\x{2074}-\x{2079}\x{2080}-\x{2089}",
        r"\x{2460}-\x{2468}\x{2474}-\x{247C}\x{2488}-\x{2490}\x{24EA}\x{24F5}-\x{24FD}\x{24FF}",
        r"\x{2776}-\x{277E}\x{2780}-\x{2788}\x{278A}-\x{2792}\x{10A40}-\x{10A43}\x{10E60}-\x{10E68}",
        r"\x{11052}-\x{1105A}\x{1F100}-\x{1F10A}]$"
    ))
    .expect("the digit class is valid")
});

static TITLECASE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\p{Lt}$").expect("valid"));
static ALNUM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[\p{L}\p{N}]$").expect("valid"));

/// All-caps English that is prose, not an identifier (licence headers, shouting).
const CAPS_WORDS: &[&str] = &[
    "THE",
    "AND",
    "FOR",
    "ANY",
    "NOT",
    "BUT",
    "ARE",
    "WAS",
    "YOU",
    "ALL",
    "WITH",
    "FROM",
    "THIS",
    "THAT",
    "WITHOUT",
    "WARRANTIES",
    "WARRANTY",
    "SOFTWARE",
    "KIND",
    "IMPLIED",
    "INCLUDING",
    "LIMITED",
    "COPYRIGHT",
    "OTHER",
    "LIABILITY",
    "USE",
    "BASIS",
    "CONDITIONS",
    "SUCH",
    "EVENT",
    "SHALL",
    "HOLDERS",
    "CONTRIBUTORS",
    "DAMAGES",
    "PURPOSE",
    "PARTICULAR",
    "FITNESS",
    "MERCHANTABILITY",
    "EXPRESS",
    "OUT",
    "CONNECTION",
    "ARISING",
    "WHETHER",
    "CONTRACT",
    "TORT",
    "OTHERWISE",
    "PROVIDED",
    "LICENSE",
    "NOTICE",
    "NOTE",
    "IMPORTANT",
];

/// One atom: the whitespace before it in the source, and its own text (empty only for the trailing
/// whitespace of a text, which rides on an atom of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Atom<'t> {
    pub ws: &'t str,
    pub text: &'t str,
}

/// `atomize(text)`: the atoms of `text`, in order; their `ws + text` concatenate back to `text`.
///
/// ```
/// use kompress::ctxprune::atoms::atomize;
/// let atoms: Vec<&str> = atomize("see /etc/hosts v1.2.3, now")?.iter().map(|a| a.text).collect();
/// assert_eq!(atoms, ["see", "/etc/hosts", "v1.2.3", ",", "now"]);
/// # Ok::<(), kompress::Error>(())
/// ```
pub fn atomize(text: &str) -> Result<Vec<Atom<'_>>> {
    let mut atoms = Vec::new();
    let mut pos = 0;
    for m in ATOM.captures_iter(text) {
        let (all, ws, atom) =
            (m.get(0).expect("match"), m.get(1).expect("group 1"), m.get(2).expect("group 2"));
        if all.start() != pos {
            // Unreachable by construction (every non-space character starts an atom), as in ctxprune.
            return Err(Error::Invalid(format!("ctxprune's atomizer skipped {:?}", &text[pos..all.start()])));
        }
        atoms.push(Atom { ws: ws.as_str(), text: atom.as_str() });
        pos = all.end();
    }
    let tail = &text[pos..];
    if !tail.is_empty() {
        atoms.push(Atom { ws: tail, text: "" });
    }
    Ok(atoms)
}

/// `detok(atoms, keep)`: the kept atoms with their own whitespace; where atoms were dropped before a
/// kept one, the run's whitespace is merged (a newline wins over a space) so line structure survives.
/// The first kept atom starts the text without whitespace.
pub fn detok(atoms: &[Atom<'_>], keep: &[bool]) -> String {
    let mut out = String::new();
    let mut started = false;
    let mut pending: Option<&str> = None;
    for (a, &k) in atoms.iter().zip(keep) {
        if k {
            let ws = match pending.take() {
                Some(run) => merge_ws(run, a.ws),
                None => a.ws,
            };
            if started {
                out.push_str(ws);
            }
            out.push_str(a.text);
            started = true;
        } else {
            pending = Some(match pending {
                Some(run) => merge_ws(run, a.ws),
                None if a.ws.is_empty() => " ",
                None => a.ws,
            });
        }
    }
    out
}

/// `_merge_ws`: a newline if either holds one, else a space if either is not empty.
fn merge_ws<'a>(a: &'a str, b: &'a str) -> &'static str {
    if a.contains('\n') || b.contains('\n') {
        "\n"
    } else if !a.is_empty() || !b.is_empty() {
        " "
    } else {
        ""
    }
}

/// `is_protected(atom)`: atoms an agent likely needs verbatim later (identifiers, numbers, paths, flags).
///
/// ```
/// use kompress::ctxprune::atoms::is_protected;
/// assert!(is_protected("v1.2.3") && is_protected("--force") && is_protected("getUserName"));
/// assert!(!is_protected("hello") && !is_protected("LICENSE") && !is_protected(","));
/// ```
pub fn is_protected(atom: &str) -> bool {
    if atom.is_empty() || !atom.chars().any(is_alnum) {
        return false;
    }
    if atom.chars().any(is_digit) {
        return true;
    }
    let core = atom.trim_start_matches(['-', '/', '~', '.', '$', '@', '#']);
    if core.contains(['_', '/', '.', ':', '@', '=']) {
        return true;
    }
    if core.len() >= 7 && core.bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    if core.chars().count() >= 3 && is_upper(core) && !CAPS_WORDS.contains(&core) {
        return true;
    }
    if camel(core) {
        return true;
    }
    atom != core
}

fn is_alnum(c: char) -> bool {
    ALNUM.is_match(c.encode_utf8(&mut [0; 4]))
}

fn is_digit(c: char) -> bool {
    OTHER_DIGIT.is_match(c.encode_utf8(&mut [0; 4]))
}

/// `str.isupper()`: at least one cased character, and none lowercase or titlecase.
fn is_upper(s: &str) -> bool {
    let mut cased = false;
    for c in s.chars() {
        if c.is_lowercase() || TITLECASE.is_match(c.encode_utf8(&mut [0; 4])) {
            return false;
        }
        cased |= c.is_uppercase();
    }
    cased
}

/// `[a-z][A-Z]|[A-Z]{2}[a-z]` anywhere in `s`.
fn camel(s: &str) -> bool {
    let b = s.as_bytes();
    let lower_upper = b.windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    lower_upper
        || b.windows(3)
            .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase() && w[2].is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(String, String)> {
        atomize(s).unwrap().iter().map(|a| (a.ws.to_string(), a.text.to_string())).collect()
    }

    #[test]
    fn atoms_glue_identifiers_and_split_cjk() {
        // Values from ctxprune 0.2.1's `atomize`.
        let got: Vec<String> = texts("run --dry-run ./a_b.py 東京都 x").into_iter().map(|p| p.1).collect();
        assert_eq!(got, ["run", "--dry-run", ".", "/a_b.py", "東", "京", "都", "x"]);
        // A trailing identifier character is not part of the word; `\x1c` is Python whitespace.
        assert_eq!(
            texts("v1.\x1cok \n"),
            [
                ("".into(), "v1".into()),
                ("".into(), ".".into()),
                ("\x1c".into(), "ok".into()),
                (" \n".into(), "".into())
            ]
        );
    }

    #[test]
    fn detok_merges_dropped_whitespace() {
        let atoms = atomize("a b\nc d e").unwrap();
        assert_eq!(detok(&atoms, &[true, false, false, true, true]), "a\nd e");
        assert_eq!(detok(&atoms, &[false, true, true, false, true]), "b\nc e");
        assert_eq!(detok(&atoms, &[false; 5]), "");
    }
}
