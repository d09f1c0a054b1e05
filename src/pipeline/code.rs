//! Fenced code blocks (Markdown's ``` and ~~~ fences): the model must not touch code, so their lines,
//! fences included, are kept byte for byte.

use super::lines::LineSet;

/// The lines of fenced code blocks, fences included, as CommonMark reads them: an opening fence is a
/// run of at least 3 backticks or tildes (a backtick fence's info string has no backtick); the block
/// ends at a line holding only a run of the same character at least as long, or at the end of the
/// text. Fences may be indented by any whitespace (code in list items is).
///
/// ```
/// use kompress::pipeline::code::fenced_code;
/// let text = "Run:\n```sh\ncargo test\n\n```\nDone.";
/// let code = fenced_code(text);
/// assert_eq!((0..6).map(|l| code.contains(l)).collect::<Vec<_>>(), [false, true, true, true, true, false]);
/// ```
pub fn fenced_code(text: &str) -> LineSet {
    let mut runs = Vec::new();
    let mut open: Option<(usize, char, usize)> = None;
    let mut lines = 0;
    for (i, line) in text.split('\n').enumerate() {
        lines = i + 1;
        let fence = fence(line);
        match (open, fence) {
            (None, Some((c, n, info))) if c == '~' || !info.contains('`') => open = Some((i, c, n)),
            (Some((start, c, n)), Some((c2, n2, info))) if c2 == c && n2 >= n && info.trim().is_empty() => {
                runs.push(start..i + 1);
                open = None;
            }
            _ => {}
        }
    }
    if let Some((start, ..)) = open {
        runs.push(start..lines);
    }
    LineSet::from_runs(runs)
}

/// A fence line's character, run length and the rest of the line.
fn fence(line: &str) -> Option<(char, usize, &str)> {
    let body = line.trim_start();
    let c = body.chars().next().filter(|&c| c == '`' || c == '~')?;
    let n = body.chars().take_while(|&x| x == c).count();
    (n >= 3).then(|| (c, n, &body[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        let code = fenced_code(text);
        (0..text.split('\n').count()).filter(|&l| code.contains(l)).collect()
    }

    #[test]
    fn fences_close_on_the_same_character_and_at_least_the_same_length() {
        assert_eq!(lines("a\n````\n```\nx\n````\nb"), [1, 2, 3, 4]);
        assert_eq!(lines("~~~\n```\n~~~\nb"), [0, 1, 2]);
        assert_eq!(lines("```python\nx = 1\n```  \r\nafter"), [0, 1, 2]);
        assert_eq!(lines("  ```\n  code\n  ```"), [0, 1, 2]);
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        assert_eq!(lines("prose\n```\ncode\nmore"), [1, 2, 3]);
    }

    #[test]
    fn inline_backticks_and_short_runs_are_not_fences() {
        assert_eq!(lines("use ``` in text\n`` x\n```a`b\nplain"), Vec::<usize>::new());
        assert_eq!(lines("```\nx\n``` not a close\n```"), [0, 1, 2, 3]);
    }
}
