//! Keep rules: from per-token scores to per-word model decisions.

use crate::TokenScores;

/// How the model's scores become keep decisions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mode {
    /// The model card's rule (`get_keep_mask`): keep a token if `l1 > l0`, or if it is borderline
    /// (`0.3 < p <= 0.5`) and its span score is above 0.5. Without a span head: `l1 > l0`.
    #[default]
    Card,
    /// Keep a token whose final score is above the threshold (0.5 is Headroom's ONNX rule).
    Threshold(f64),
    /// Keep `max(1, floor(n * ratio))` of the text's `n` words: protected words count first, the
    /// words with the highest max-token score fill the rest, across chunks. Under
    /// [`Compat::Headroom`](super::Compat::Headroom): per chunk, on top of the protected words.
    Ratio(f64),
    /// Fit the output in this many tokens of [`CompressOptions::count_tokens`](super::CompressOptions):
    /// protected and verbatim text first, then words by score across the text.
    TargetTokens(usize),
}

impl Mode {
    /// Whether decisions need every chunk's scores first (a budget over the whole text).
    pub(crate) fn global(self, headroom: bool) -> bool {
        matches!(self, Mode::TargetTokens(_)) || (matches!(self, Mode::Ratio(_)) && !headroom)
    }
}

impl std::fmt::Display for Mode {
    /// `card`, `threshold:T`, `ratio:R` or `target-tokens:N`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Card => write!(f, "card"),
            Mode::Threshold(t) => write!(f, "threshold:{t}"),
            Mode::Ratio(r) => write!(f, "ratio:{r}"),
            Mode::TargetTokens(n) => write!(f, "target-tokens:{n}"),
        }
    }
}

/// The model's view of one word of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct WordVerdict {
    pub keep: bool,
    /// The highest final score among the word's tokens; `None` if no token was scored.
    pub score: Option<f32>,
}

/// Decisions for the first `n_words` words of a scored chunk; tokens of later words (a carried
/// word's prefix) and special tokens take no part. A word is kept when any of its tokens is kept.
/// Under a budget over the whole text ([`Mode::global`]) only the scores are filled in.
pub(crate) fn decide(scores: &TokenScores, n_words: usize, mode: Mode, headroom: bool) -> Vec<WordVerdict> {
    let mut out = vec![WordVerdict::default(); n_words];
    for (t, wid) in scores.word_ids.iter().enumerate() {
        let (Some(v), Some(&s)) = (wid.and_then(|w| out.get_mut(w as usize)), scores.score.get(t)) else {
            continue;
        };
        v.score = Some(v.score.map_or(s, |best| best.max(s)));
        v.keep |= token_kept(scores, t, mode);
    }
    if let (Mode::Ratio(ratio), true) = (mode, headroom) {
        keep_top(&mut out, ratio);
    }
    out
}

fn token_kept(s: &TokenScores, t: usize, mode: Mode) -> bool {
    match mode {
        Mode::Card => {
            let Some(&[l0, l1]) = s.logits.get(t) else { return false };
            let p = s.token_prob.get(t).copied().unwrap_or(0.0);
            let span = s.span_score.as_ref().and_then(|v| v.get(t)).copied().unwrap_or(0.0);
            l1 > l0 || (p > 0.3 && p <= 0.5 && span > 0.5)
        }
        Mode::Threshold(threshold) => s.score.get(t).is_some_and(|&x| f64::from(x) > threshold),
        Mode::Ratio(_) | Mode::TargetTokens(_) => false,
    }
}

/// Keeps the best-scored words; ties go to the earlier word (the reference's stable sort).
fn keep_top(words: &mut [WordVerdict], ratio: f64) {
    let mut ranked: Vec<(usize, f32)> =
        words.iter().enumerate().filter_map(|(i, v)| Some((i, v.score?))).collect();
    if ranked.is_empty() {
        return;
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n = ((ranked.len() as f64 * ratio).floor() as usize).max(1);
    for &(i, _) in &ranked[..n.min(ranked.len())] {
        words[i].keep = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three words: word 0 has tokens 1-2, word 1 token 3, word 2 token 4; tokens 0 and 5 are special.
    fn scores(logits: [[f32; 2]; 6], prob: [f32; 6], span: Option<[f32; 6]>, score: [f32; 6]) -> TokenScores {
        TokenScores {
            input_ids: vec![0; 6],
            word_ids: vec![None, Some(0), Some(0), Some(1), Some(2), None],
            logits: logits.to_vec(),
            token_prob: prob.to_vec(),
            span_score: span.map(|s| s.to_vec()),
            score: score.to_vec(),
        }
    }

    fn kept(v: &[WordVerdict]) -> Vec<bool> {
        v.iter().map(|w| w.keep).collect()
    }

    #[test]
    fn card_rule_uses_argmax_and_borderline_span() {
        let s = scores(
            [[0., 1.], [1., 0.], [0., -1.], [1., 0.], [1., 0.], [0., 1.]],
            [0.9, 0.2, 0.4, 0.4, 0.45, 0.9],
            Some([1., 0.9, 0.9, 0.4, 0.6, 1.]),
            [0.; 6],
        );
        // Word 0: token 2 is borderline with span 0.9. Word 1: span too low. Word 2: borderline, span 0.6.
        assert_eq!(kept(&decide(&s, 3, Mode::Card, true)), [true, false, true]);
        let no_span = TokenScores { span_score: None, ..s };
        assert_eq!(kept(&decide(&no_span, 3, Mode::Card, true)), [false, false, false]);
    }

    #[test]
    fn threshold_is_strict_and_any_token_keeps_the_word() {
        let s = scores([[0.; 2]; 6], [0.; 6], None, [0.9, 0.1, 0.7, 0.5, 0.51, 0.9]);
        assert_eq!(kept(&decide(&s, 3, Mode::Threshold(0.5), true)), [true, false, true]);
        assert_eq!(decide(&s, 3, Mode::Threshold(0.5), true)[0].score, Some(0.7));
    }

    #[test]
    fn ratio_keeps_at_least_one_and_breaks_ties_by_order() {
        let s = scores([[0.; 2]; 6], [0.; 6], None, [0., 0.3, 0.2, 0.3, 0.3, 0.]);
        assert_eq!(kept(&decide(&s, 3, Mode::Ratio(0.1), true)), [true, false, false]);
        assert_eq!(kept(&decide(&s, 3, Mode::Ratio(0.7), true)), [true, true, false]);
        assert_eq!(kept(&decide(&s, 3, Mode::Ratio(1.0), true)), [true, true, true]);
    }

    #[test]
    fn a_budget_over_the_text_only_fills_scores() {
        let s = scores([[0., 1.]; 6], [0.9; 6], None, [0., 0.3, 0.2, 0.3, 0.3, 0.]);
        for mode in [Mode::Ratio(1.0), Mode::TargetTokens(9)] {
            let v = decide(&s, 3, mode, false);
            assert_eq!(kept(&v), [false, false, false]);
            assert_eq!(v.iter().map(|w| w.score).collect::<Vec<_>>(), [Some(0.3), Some(0.3), Some(0.3)]);
        }
    }

    #[test]
    fn words_past_the_decided_ones_are_ignored() {
        let s = scores([[0.; 2]; 6], [0.; 6], None, [0., 0.1, 0.1, 0.1, 0.9, 0.]);
        assert_eq!(kept(&decide(&s, 2, Mode::Ratio(0.5), true)), [true, false]);
    }
}
