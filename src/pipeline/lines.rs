//! Sets of line indices, kept as sorted disjoint ranges: memory grows with the number of runs
//! (tables, code blocks), not with the number of lines.

use std::ops::Range;

/// A set of line indices (lines split on `\n`, counted from 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineSet {
    runs: Vec<Range<usize>>,
}

impl LineSet {
    /// The union of `runs`, in any order, overlapping or not.
    pub fn from_runs(mut runs: Vec<Range<usize>>) -> Self {
        runs.retain(|r| !r.is_empty());
        runs.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(runs.len());
        for r in runs {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        Self { runs: merged }
    }

    /// The union of two sets.
    pub fn union(self, other: LineSet) -> Self {
        Self::from_runs(self.runs.into_iter().chain(other.runs).collect())
    }

    /// Whether line `line` is in the set.
    pub fn contains(&self, line: usize) -> bool {
        let i = self.runs.partition_point(|r| r.end <= line);
        self.runs.get(i).is_some_and(|r| r.contains(&line))
    }

    /// The runs of consecutive lines, sorted.
    pub fn runs(&self) -> &[Range<usize>] {
        &self.runs
    }

    /// How many lines the set holds.
    pub fn len(&self) -> usize {
        self.runs.iter().map(ExactSizeIterator::len).sum()
    }

    /// Whether the set holds no line.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_merged_and_looked_up() {
        let s = LineSet::from_runs(vec![5..7, 0..2, 1..3, 7..8, 4..4]);
        assert_eq!(s.runs(), [0..3, 5..8]);
        assert_eq!((0..9).filter(|&l| s.contains(l)).collect::<Vec<_>>(), [0, 1, 2, 5, 6, 7]);
        assert_eq!(s.len(), 6);
        assert!(LineSet::default().is_empty() && !LineSet::default().contains(0));
    }
}
