//! Budgets over the whole text (`--ratio`, `--target-tokens`): protected words count first, then the
//! model's best-scored words fill what is left, across chunks.

use crate::Result;

/// Indices of the candidates (index, score), best score first; ties go to the earlier word (a stable
/// sort, as the reference's ratio rule breaks them).
pub(crate) fn ranked(candidates: impl Iterator<Item = (usize, f32)>) -> Vec<usize> {
    let mut c: Vec<(usize, f32)> = candidates.collect();
    c.sort_by(|a, b| b.1.total_cmp(&a.1));
    c.into_iter().map(|(i, _)| i).collect()
}

/// How many words `--ratio` keeps in all: `max(1, floor(words * ratio))`.
pub(crate) fn ratio_words(words: usize, ratio: f64) -> usize {
    ((words as f64 * ratio).floor() as usize).max(1)
}

/// How many model-chosen words `--ratio` adds: [`ratio_words`], less the `forced` ones already kept.
pub(crate) fn ratio_room(words: usize, ratio: f64, forced: usize) -> usize {
    ratio_words(words, ratio).saturating_sub(forced)
}

/// The largest `k` in `0..=n` for which `fits(k)` holds, searching as if `fits` were monotone (token
/// counts nearly are: a kept word can change how its neighbours merge), so the `k` returned always
/// fits; `None` when not even `fits(0)` holds.
pub(crate) fn largest_fitting(
    n: usize,
    mut fits: impl FnMut(usize) -> Result<bool>,
) -> Result<Option<usize>> {
    if !fits(0)? {
        return Ok(None);
    }
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_is_stable() {
        assert_eq!(ranked([(0, 0.1), (1, 0.5), (2, 0.5), (3, 0.9)].into_iter()), [3, 1, 2, 0]);
    }

    #[test]
    fn ratio_counts_forced_words_first() {
        assert_eq!(ratio_room(100, 0.4, 10), 30);
        assert_eq!(ratio_room(100, 0.4, 50), 0);
        assert_eq!(ratio_room(3, 0.1, 0), 1);
    }

    #[test]
    fn the_search_returns_a_fitting_k() {
        assert_eq!(largest_fitting(10, |k| Ok(k <= 7)).unwrap(), Some(7));
        assert_eq!(largest_fitting(10, |_| Ok(true)).unwrap(), Some(10));
        assert_eq!(largest_fitting(10, |_| Ok(false)).unwrap(), None);
        // Not monotone: whatever it returns fits.
        let fits = |k: usize| Ok(k % 3 != 1);
        assert!(fits(largest_fitting(20, fits).unwrap().unwrap()).unwrap());
    }
}
