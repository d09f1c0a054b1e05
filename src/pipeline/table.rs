//! Tabular protection: rows of `ls -l`, `ps` or aligned tables are kept whole, so fields are not
//! dropped inconsistently from row to row (Headroom 0.42's `_tabular_protected_line_ids`).

use std::ops::Range;

/// Lines that belong to a table: runs of at least `MIN_ROWS` consecutive lines that split (on 2+
/// whitespace characters) into the same number, at least `MIN_COLUMNS`, of columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableLines {
    /// Sorted, disjoint ranges of line indices: memory grows with the number of tables, not lines.
    runs: Vec<Range<usize>>,
}

const MIN_ROWS: usize = 3;
const MIN_COLUMNS: usize = 3;

impl TableLines {
    /// Finds the tables of `text` (lines split on `\n`).
    ///
    /// ```
    /// use kompress::pipeline::table::TableLines;
    /// let text = "files:\na  1  x\nb  2  y\nc  3  z\ndone";
    /// let t = TableLines::find(text);
    /// assert_eq!((0..5).map(|l| t.contains(l)).collect::<Vec<_>>(), [false, true, true, true, false]);
    /// ```
    pub fn find(text: &str) -> Self {
        let mut runs = Vec::new();
        let (mut start, mut lines) = (0, 0);
        let mut prev = None;
        for (line, cols) in text.split('\n').map(columns).enumerate() {
            if prev != Some(cols) {
                push_run(&mut runs, prev, start..line);
                start = line;
                prev = Some(cols);
            }
            lines = line + 1;
        }
        push_run(&mut runs, prev, start..lines);
        Self { runs }
    }

    /// Whether line `line` is a table row.
    pub fn contains(&self, line: usize) -> bool {
        let i = self.runs.partition_point(|r| r.end <= line);
        self.runs.get(i).is_some_and(|r| r.contains(&line))
    }
}

fn push_run(runs: &mut Vec<Range<usize>>, cols: Option<usize>, lines: Range<usize>) {
    if cols.is_some_and(|c| c >= MIN_COLUMNS) && lines.len() >= MIN_ROWS {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<usize> {
        let t = TableLines::find(text);
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
    fn runs_need_three_rows_of_three_columns() {
        assert_eq!(rows("a  b  c\nd  e  f\ng  h  i"), [0, 1, 2]);
        assert_eq!(rows("a  b  c\nd  e  f\nplain\ng  h  i"), Vec::<usize>::new());
        assert_eq!(rows("a  b\nc  d\ne  f"), Vec::<usize>::new());
        assert_eq!(
            rows("x\na  b  c\nd  e  f\ng  h  i\nj  k  l  m\nn  o  p  q\nr  s  t  u"),
            [1, 2, 3, 4, 5, 6]
        );
    }
}
