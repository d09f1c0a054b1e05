//! Chunk planning: at most `chunk_words` words and `chunk_tokens` tokens per chunk. Words the token
//! cap cuts off are carried to the next chunk, so every word is scored exactly once, or kept unscored
//! when it alone does not fit.

use std::collections::VecDeque;

use super::words::Word;
use super::ChunkScorer;
use crate::{Error, Result, WordEncoding};

/// The next piece of a text, in order.
#[derive(Debug)]
pub(crate) enum Planned<'a> {
    /// Words the model decides, and the token sequence they are scored in (which may end with the
    /// first tokens of a word carried to the next chunk, as the reference's truncation leaves them).
    Chunk { words: Vec<Word<'a>>, encoding: WordEncoding },
    /// A word longer than the token cap by itself: the model cannot see it, so it is kept.
    Unscored(Word<'a>),
}

/// Pulls words from a text lazily and cuts them into chunks; holds at most one chunk of words.
pub(crate) struct Planner<'a, I> {
    source: I,
    carry: VecDeque<Word<'a>>,
    chunk_words: usize,
    chunk_tokens: usize,
}

impl<'a, I: Iterator<Item = Word<'a>>> Planner<'a, I> {
    /// `chunk_words` is at most [`words_per_chunk`].
    pub(crate) fn new(source: I, chunk_words: usize, chunk_tokens: usize) -> Self {
        Self {
            source,
            carry: VecDeque::new(),
            chunk_words: words_per_chunk(chunk_words, chunk_tokens),
            chunk_tokens,
        }
    }

    /// The next chunk, or `None` once every word was planned.
    pub(crate) fn next<S: ChunkScorer + ?Sized>(&mut self, scorer: &S) -> Result<Option<Planned<'a>>> {
        let missing = self.chunk_words.saturating_sub(self.carry.len());
        self.carry.extend(self.source.by_ref().take(missing));
        if self.carry.is_empty() {
            return Ok(None);
        }
        let texts = match scorer.max_token_bytes() {
            Some(bytes) => bounded(&self.carry, self.chunk_tokens, bytes),
            None => self.carry.iter().map(|w| w.text).collect(),
        };
        let (encoding, whole) = truncate(scorer.encode(&texts)?, self.chunk_tokens, texts.len())?;
        Ok(Some(match whole {
            0 => Planned::Unscored(self.carry.pop_front().expect("carry is not empty")),
            n => Planned::Chunk { words: self.carry.drain(..n).collect(), encoding },
        }))
    }
}

impl<'a, I: Iterator<Item = Word<'a>>> Planner<'a, I> {
    /// The words not planned yet, in order, without tokenizing them.
    pub(crate) fn rest(self) -> impl Iterator<Item = Word<'a>> {
        self.carry.into_iter().chain(self.source)
    }
}

/// What of the leading words the tokenizer needs to see to cut a chunk of `cap` tokens, when one
/// token stands for at most `token_bytes` bytes: a word of `n` bytes has at least `n / token_bytes`
/// tokens, so the words stop once those surely pass the cap (the words after them fall past the cut),
/// and a word is cut to its first `2 * (cap + 1) * token_bytes` bytes (more tokens than the cap, so
/// it is not seen whole; the chunk before it keeps its first tokens, which lie far before where it
/// is cut). So memory and work per chunk stay bounded whatever the words' lengths.
fn bounded<'a>(words: &VecDeque<Word<'a>>, cap: usize, token_bytes: usize) -> Vec<&'a str> {
    let limit = 2 * (cap + 1) * token_bytes.max(1);
    let mut tokens = 0;
    let mut texts = Vec::new();
    for w in words {
        if tokens > cap {
            break;
        }
        texts.push(prefix(w.text, limit));
        tokens += w.text.len().div_ceil(token_bytes.max(1)).max(1);
    }
    texts
}

/// The first `limit` bytes of `s` at most, ending on a character boundary.
fn prefix(s: &str, limit: usize) -> &str {
    let mut end = limit.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The most words a chunk pulls in. Every word has a token, so a chunk never sees more than
/// `chunk_tokens` words whole: pulling more only tokenizes the rest of the text again for each chunk.
/// With at least `chunk_tokens` words the encoding still overflows the cap, so the cut (and every
/// score) is the same as with more.
pub(crate) fn words_per_chunk(chunk_words: usize, chunk_tokens: usize) -> usize {
    chunk_words.min(chunk_tokens).max(1)
}

/// Cuts an encoding to `cap` tokens as the reference tokenizer's truncation does (leading and
/// trailing special tokens stay), and counts the leading words the model sees whole (Headroom's
/// `_words_seen_whole`).
fn truncate(enc: WordEncoding, cap: usize, n_words: usize) -> Result<(WordEncoding, usize)> {
    if enc.len() <= cap {
        return Ok((enc, n_words));
    }
    let prefix = enc.word_ids.iter().take_while(|w| w.is_none()).count();
    let suffix = enc.word_ids[prefix..].iter().rev().take_while(|w| w.is_none()).count();
    let room = cap.checked_sub(prefix + suffix).filter(|&r| r > 0).ok_or_else(|| {
        Error::Invalid(format!("chunk_tokens {cap} leaves no room beside {} special tokens", prefix + suffix))
    })?;
    let end = enc.len() - suffix;
    // The word of the last token before the cut may be cut short, so it is carried to the next chunk.
    // The reference carries it even when the cut falls exactly at its end; so do we, so that chunks
    // (and so every score) stay the same as the reference's.
    let whole = enc.word_ids[prefix..prefix + room].iter().flatten().next_back().map_or(0, |&w| w as usize);
    let input_ids = cut(&enc.input_ids, prefix + room, end);
    Ok((WordEncoding { input_ids, word_ids: cut(&enc.word_ids, prefix + room, end) }, whole.min(n_words)))
}

/// `v` without `v[head..tail]`.
fn cut<T: Clone>(v: &[T], head: usize, tail: usize) -> Vec<T> {
    v[..head].iter().chain(&v[tail..]).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[CLS] tokens [SEP]` where word `i` has `lens[i]` tokens.
    fn enc(lens: &[usize]) -> WordEncoding {
        let mut word_ids = vec![None];
        for (w, &n) in lens.iter().enumerate() {
            word_ids.extend(std::iter::repeat_n(Some(w as u32), n));
        }
        word_ids.push(None);
        WordEncoding { input_ids: (0..word_ids.len() as u32).collect(), word_ids }
    }

    #[test]
    fn fitting_chunks_are_untouched() {
        let (e, whole) = truncate(enc(&[1, 2, 3]), 8, 3).unwrap();
        assert_eq!((e, whole), (enc(&[1, 2, 3]), 3));
    }

    #[test]
    fn a_cut_word_is_carried_but_its_prefix_stays_in_context() {
        // 1 + 6 content tokens + 1: room for 5 content tokens; word 2 is cut after 2 of its 3 tokens.
        let (e, whole) = truncate(enc(&[1, 2, 3]), 7, 3).unwrap();
        assert_eq!(whole, 2);
        assert_eq!(e.word_ids, [None, Some(0), Some(1), Some(1), Some(2), Some(2), None]);
        assert_eq!(e.input_ids, [0, 1, 2, 3, 4, 5, 7]);
    }

    #[test]
    fn a_cut_on_a_word_boundary_still_carries_the_last_word() {
        let (e, whole) = truncate(enc(&[1, 2, 3]), 5, 3).unwrap();
        assert_eq!((e.len(), whole), (5, 1));
    }

    #[test]
    fn an_over_long_first_word_is_not_seen_whole() {
        assert_eq!(truncate(enc(&[9, 1]), 6, 2).unwrap().1, 0);
        assert_eq!(truncate(enc(&[4, 1]), 6, 2).unwrap().1, 0);
        assert_eq!(truncate(enc(&[4]), 6, 1).unwrap().1, 1);
    }

    #[test]
    fn a_cap_without_room_is_an_error() {
        assert!(matches!(truncate(enc(&[3]), 2, 1), Err(Error::Invalid(_))));
    }
}
