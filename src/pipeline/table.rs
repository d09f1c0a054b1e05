//! Tables: rows kept byte for byte, so that fields are not dropped inconsistently from row to row and
//! columns stay aligned.
//!
//! [`headroom_tables`] is Headroom 0.42's rule (`_tabular_protected_line_ids`); [`tables`] adds
//! Markdown pipe tables, tab-separated rows and command output with single-space columns (`ls -l`,
//! `ps aux`, `df -h`, `kubectl get pods`). docs/COMPRESS.md gives the measured false positives.

use std::ops::Range;

use super::lines::LineSet;

/// Rows a table needs, in every rule.
const MIN_ROWS: usize = 3;
/// Columns (split on 2+ whitespace characters) a row of Headroom's rule needs.
const MIN_COLUMNS: usize = 3;
/// Whitespace fields a row of command output needs.
const MIN_FIELDS: usize = 5;
/// Columns of command output that must be numeric on every row.
const MIN_NUMERIC_COLUMNS: u32 = 2;

/// Headroom's rule: runs of at least 3 consecutive lines that split (on 2+ whitespace characters)
/// into the same number, at least 3, of columns.
///
/// ```
/// use kompress::pipeline::table::headroom_tables;
/// let text = "files:\na  1  x\nb  2  y\nc  3  z\ndone";
/// let t = headroom_tables(text);
/// assert_eq!((0..5).map(|l| t.contains(l)).collect::<Vec<_>>(), [false, true, true, true, false]);
/// ```
pub fn headroom_tables(text: &str) -> LineSet {
    same_count_runs(text, columns, MIN_COLUMNS)
}

/// Every table rule: Headroom's (but a box drawn around prose, `*  text  *` on every line, is not a
/// table: the columns of a line framed by the same symbol are counted inside the frame), Markdown pipe
/// tables, tab-separated rows (at least 3 consecutive
/// lines with the same number, at least 2, of tab-separated fields) and command output.
///
/// Command output: at least 3 consecutive lines of at least 5 whitespace-separated fields, a quarter
/// of them numbers (`1234`, `0.5`, `12:00`, `1/1`, `45%`, `7.8G`, `3d`), where at least 2 of the same
/// columns (after the first) are numbers on every line; the line just before is its header when most
/// of its fields start with a capital or a symbol (`USER PID %CPU`, `Filesystem Size Used`). Prose
/// with numbers fails the quarter (this README's own prose had three such lines in a row).
///
/// ```
/// use kompress::pipeline::table::tables;
/// let text = "Files:\n-rw-r--r-- 1 root root 496 Apr 27 2026 Mcrt1.o\n\
///             -rw-r--r-- 1 root root 1632 Apr 27 2026 Scrt1.o\n\
///             drwxr-xr-x 2 root root 4096 May 20 2026 audit\nThat is all.";
/// assert_eq!(tables(text).runs(), [1..4]);
/// ```
pub fn tables(text: &str) -> LineSet {
    same_count_runs(text, unboxed_columns, MIN_COLUMNS)
        .union(same_count_runs(text, tab_fields, 2))
        .union(pipe_tables(text))
        .union(command_output(text))
}

/// Runs of at least [`MIN_ROWS`] consecutive lines with the same `count`, at least `min`.
fn same_count_runs(text: &str, count: fn(&str) -> usize, min: usize) -> LineSet {
    let mut runs = Vec::new();
    let (mut start, mut prev) = (0, None);
    let mut lines = 0;
    for (line, n) in text.split('\n').map(count).enumerate() {
        if prev != Some(n) {
            push_run(&mut runs, prev.is_some_and(|c| c >= min), start..line);
            (start, prev) = (line, Some(n));
        }
        lines = line + 1;
    }
    push_run(&mut runs, prev.is_some_and(|c| c >= min), start..lines);
    LineSet::from_runs(runs)
}

fn push_run(runs: &mut Vec<Range<usize>>, wide: bool, lines: Range<usize>) {
    if wide && lines.len() >= MIN_ROWS {
        runs.push(lines);
    }
}

/// Python's `len(re.split(r"\s{2,}", line.strip())) if line.strip() else 0`: one column plus one per
/// run of two or more whitespace characters inside the stripped line.
fn columns(line: &str) -> usize {
    let line = line.trim();
    if line.is_empty() {
        return 0;
    }
    let mut cols = 1;
    let mut run = 0;
    for c in line.chars() {
        run = if c.is_whitespace() { run + 1 } else { 0 };
        if run == 2 {
            cols += 1;
        }
    }
    cols
}

/// [`columns`] inside a frame: a line that starts and ends with the same symbol (`*`, `#`, `|`, `│`).
fn unboxed_columns(line: &str) -> usize {
    let t = line.trim();
    let mut chars = t.chars();
    match (chars.next(), chars.next_back()) {
        (Some(a), Some(b)) if a == b && !a.is_alphanumeric() && !a.is_whitespace() => columns(chars.as_str()),
        _ => columns(line),
    }
}

/// Tab-separated fields of the stripped line (0 for a blank line).
fn tab_fields(line: &str) -> usize {
    let line = line.trim();
    if line.is_empty() {
        0
    } else {
        line.split('\t').count()
    }
}

/// The cells of a pipe-table row, without the optional outer pipes; `None` for a line without a pipe.
fn pipe_cells(line: &str) -> Option<Vec<&str>> {
    let line = line.trim();
    if !line.contains('|') {
        return None;
    }
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    Some(inner.split('|').map(str::trim).collect())
}

/// A delimiter row (`|---|:--:|`): every cell is dashes with optional colons at either end.
fn is_delimiter(cells: &[&str]) -> bool {
    cells.iter().all(|c| {
        let c = c.strip_prefix(':').unwrap_or(c);
        let c = c.strip_suffix(':').unwrap_or(c);
        !c.is_empty() && c.bytes().all(|b| b == b'-')
    })
}

/// GitHub-flavoured Markdown tables: a header row, a delimiter row with as many cells, then the rows
/// holding a pipe up to a line without one.
fn pipe_tables(text: &str) -> LineSet {
    let mut runs = Vec::new();
    let mut prev: Option<Vec<&str>> = None;
    let mut open: Option<usize> = None;
    let mut lines = 0;
    for (i, line) in text.split('\n').enumerate() {
        lines = i + 1;
        let cells = pipe_cells(line);
        match (open, &cells) {
            (Some(_), Some(_)) => {}
            (Some(start), None) => {
                runs.push(start..i);
                open = None;
            }
            (None, Some(c)) if is_delimiter(c) && prev.as_ref().is_some_and(|p| p.len() == c.len()) => {
                open = Some(i - 1);
            }
            (None, _) => {}
        }
        prev = cells;
    }
    if let Some(start) = open {
        runs.push(start..lines);
    }
    LineSet::from_runs(runs)
}

/// Whether a field reads as a number, with an optional unit: `1234`, `0.5`, `12:00`, `1/1`, `45%`,
/// `2024-01-01`, `7.8G`, `1.5Gi`, `3d`.
fn numeric(field: &str) -> bool {
    let digits = field.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    field.len() - digits.len() <= 2
        && digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b".,:/%-".contains(&b))
}

/// Bit `c` set when field `c` (1 to 16) is numeric.
fn numeric_columns(fields: &[&str]) -> u32 {
    fields.iter().enumerate().skip(1).take(16).filter(|(_, f)| numeric(f)).fold(0, |m, (c, _)| m | 1 << c)
}

/// A header line of command output: at least 3 fields, most starting with a capital or a symbol.
fn is_header(fields: &[&str]) -> bool {
    let capital = fields.iter().filter(|f| !f.starts_with(|c: char| c.is_lowercase())).count();
    fields.len() >= MIN_ROWS && capital * 4 >= fields.len() * 3
}

/// Command output with single-space columns; see [`tables`].
fn command_output(text: &str) -> LineSet {
    let mut runs = Vec::new();
    // (first row, columns numeric on every row so far, whether the line before is a header)
    let mut open: Option<(usize, u32, bool)> = None;
    let mut prev_header = false;
    let mut lines = 0;
    let close = |runs: &mut Vec<Range<usize>>, open: Option<(usize, u32, bool)>, end: usize| {
        if let Some((start, _, header)) = open.filter(|&(start, ..)| end - start >= MIN_ROWS) {
            runs.push(start - usize::from(header)..end);
        }
    };
    for (i, line) in text.split('\n').enumerate() {
        lines = i + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dense = fields.iter().filter(|f| numeric(f)).count() * 4 >= fields.len();
        let mask = if fields.len() >= MIN_FIELDS && dense { numeric_columns(&fields) } else { 0 };
        open = match open {
            Some((start, m, h)) if (m & mask).count_ones() >= MIN_NUMERIC_COLUMNS => {
                Some((start, m & mask, h))
            }
            _ => {
                close(&mut runs, open, i);
                (mask.count_ones() >= MIN_NUMERIC_COLUMNS).then_some((i, mask, prev_header))
            }
        };
        prev_header = is_header(&fields);
    }
    close(&mut runs, open, lines);
    LineSet::from_runs(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(find: fn(&str) -> LineSet, text: &str) -> Vec<usize> {
        let t = find(text);
        (0..text.split('\n').count()).filter(|&l| t.contains(l)).collect()
    }

    #[test]
    fn columns_split_on_two_or_more_spaces() {
        assert_eq!(columns(""), 0);
        assert_eq!(columns("  \t "), 0);
        assert_eq!(columns("a b c"), 1);
        assert_eq!(columns("  a  b \t c\r"), 3);
        assert_eq!(columns("a     b"), 2);
    }

    #[test]
    fn headroom_runs_need_three_rows_of_three_columns() {
        let h = headroom_tables;
        assert_eq!(rows(h, "a  b  c\nd  e  f\ng  h  i"), [0, 1, 2]);
        assert_eq!(rows(h, "a  b  c\nd  e  f\nplain\ng  h  i"), Vec::<usize>::new());
        assert_eq!(rows(h, "a  b\nc  d\ne  f"), Vec::<usize>::new());
        assert_eq!(
            rows(h, "x\na  b  c\nd  e  f\ng  h  i\nj  k  l  m\nn  o  p  q\nr  s  t  u"),
            [1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn a_box_around_prose_is_not_a_table() {
        let boxed = "*  6. Disclaimer of Warranty     *\n*  Covered Software is provided  *\n*  basis, without warranty of    *";
        assert_eq!(rows(headroom_tables, boxed), [0, 1, 2]);
        assert_eq!(rows(tables, boxed), Vec::<usize>::new());
        assert_eq!(rows(tables, "|  a  b  c  |\n|  d  e  f  |\n|  g  h  i  |"), [0, 1, 2]);
    }

    #[test]
    fn tab_separated_rows() {
        assert_eq!(rows(tables, "intro\na\tb\n1\t2\n3\t4\nend"), [1, 2, 3]);
        assert_eq!(rows(tables, "\tindented\n\tcode\n\there"), Vec::<usize>::new());
    }

    #[test]
    fn pipe_tables_need_a_matching_delimiter_row() {
        let md = "Intro | text\n| a | b |\n|---|:-:|\n| 1 | 2 |\n3 | 4\n\nafter | pipe";
        assert_eq!(rows(tables, md), [1, 2, 3, 4]);
        assert_eq!(rows(tables, "a | b\n|---|---|---|\nc | d"), Vec::<usize>::new());
        assert_eq!(rows(tables, "x | y\n--- | ---"), [0, 1]);
    }

    #[test]
    fn command_output_needs_two_numeric_columns_on_every_row() {
        let ps = "USER PID %CPU %MEM COMMAND\nroot 1 0.0 0.1 /sbin/init splash\nroot 2 0.0 0.0 [kthreadd]\n\
                  alice 2231 12.5 4.0 python train.py --epochs 20\ndone";
        assert_eq!(rows(tables, ps), [0, 1, 2, 3]);
        let pods = "NAME READY STATUS RESTARTS AGE\napi 1/1 Running 0 3d\nworker 1/1 Running 2 3d\n\
                    sched 0/1 CrashLoopBackOff 14 47m";
        assert_eq!(rows(tables, pods), [0, 1, 2, 3]);
        // Two rows are not a table; a prose header is not a header.
        assert_eq!(rows(tables, "a 1 2 x y\nb 3 4 x y"), Vec::<usize>::new());
        assert_eq!(rows(tables, "the files are these ones:\na 1 2 x y\nb 3 4 x y\nc 5 6 x y"), [1, 2, 3]);
    }

    #[test]
    fn numbers_with_units() {
        for f in ["1234", "0.5", "12:00", "1/1", "45%", "2024-01-01", "7.8G", "1.5Gi", "3d", "47m"] {
            assert!(numeric(f), "{f}");
        }
        for f in ["", "v2", "Nov30", "0.0.0.0:80->80/tcp", "12days", "abc", "-1"] {
            assert!(!numeric(f), "{f}");
        }
    }

    #[test]
    fn prose_with_numbers_in_the_same_columns_is_not_a_table() {
        let prose = "Medians of 20 runs at 128 and 512 (the third of three runs in a row), 5 at\n\
                     2048 and the slower of 2 at 8192 (separate runs the same hour); the eager column\n\
                     command, in which kompress took 146 / 395 / 2289 ms. The machine is shared and noisy";
        assert_eq!(rows(tables, prose), Vec::<usize>::new());
    }

    #[test]
    fn prose_with_numbers_is_not_a_table() {
        let prose = "In 2019 we shipped 3 releases and fixed 120 bugs in total,\n\
                     then in 2020 the team grew to 12 people across 4 offices and\n\
                     by 2021 over 9000 users relied on it every day of the week.";
        assert_eq!(rows(tables, prose), Vec::<usize>::new());
    }
}
