//! Encoding text as pre-split words, the way the reference tokenizes (`is_split_into_words=True`).

use std::path::Path;

use crate::{Error, Result};

/// The token ids of a sequence of words, with the word each token came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WordEncoding {
    /// `[CLS] ... [SEP]` as the tokenizer's post-processor adds them.
    pub input_ids: Vec<u32>,
    /// For each token, the index of its word; `None` for special tokens.
    pub word_ids: Vec<Option<u32>>,
}

impl WordEncoding {
    /// The number of tokens, special tokens included.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// Whether the encoding holds no token at all.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// A `tokenizer.json` (pure-Rust `tokenizers`, fancy-regex) used on pre-split words.
pub struct WordTokenizer {
    inner: tokenizers::Tokenizer,
    max_token_bytes: Option<usize>,
    /// Words after the first are encoded with the space before them: see [`WordTokenizer::encode_words`].
    space_before_words: bool,
}

impl WordTokenizer {
    /// Loads `tokenizer.json`. Its own truncation and padding settings are switched off: callers
    /// decide lengths, and every word must stay visible to them.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
        inner.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_padding(None);
        let max_token_bytes = max_token_bytes(&inner);
        let space_before_words = space_is_content(&inner);
        Ok(Self { inner, max_token_bytes, space_before_words })
    }

    /// The most bytes of a word one token can stand for, when the tokenizer bounds it: a BPE without
    /// an unknown token (which could stand for a word of any length) and without a normalizer (which
    /// could shrink the text). Then a word of `n` bytes has at least `n / max_token_bytes` tokens, so a
    /// word too long for any chunk is known without tokenizing it whole.
    pub fn max_token_bytes(&self) -> Option<usize> {
        self.max_token_bytes
    }

    /// The underlying `tokenizers` tokenizer (truncation and padding off).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Encodes words as one pre-split sequence, with special tokens.
    ///
    /// No space is inserted between words (transformers' `is_split_into_words=True`, the references'
    /// way for ModernBERT's ByteLevel BPE, BERT's WordPiece and XLM-R's Metaspace, whose pre-tokenizers
    /// mark word starts themselves or need no mark), except for a tokenizer whose normalizer makes the
    /// space a visible character (Gemma's and mmBERT's `Replace(" ", "▁")`, with no Metaspace to add it
    /// back): its pieces carry the space (`▁world`), so each word after the first is encoded with a
    /// space before it, as it reads in the text, and gets the pieces the model saw in training.
    pub fn encode_words<S: AsRef<str>>(&self, words: &[S]) -> Result<WordEncoding> {
        let spaced: Vec<String>;
        let words: Vec<&str> = if self.space_before_words {
            spaced = words
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 { w.as_ref().to_string() } else { format!(" {}", w.as_ref()) })
                .collect();
            spaced.iter().map(String::as_str).collect()
        } else {
            words.iter().map(AsRef::as_ref).collect()
        };
        let enc = self.inner.encode(words, true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(WordEncoding { input_ids: enc.get_ids().to_vec(), word_ids: enc.get_word_ids().to_vec() })
    }

    /// Whether [`encode_words`](Self::encode_words) puts a space before each word after the first.
    pub fn spaces_words(&self) -> bool {
        self.space_before_words
    }

    /// Encodes a whole text (not pre-split), with each token's byte range in `text`: what an algorithm
    /// that works on character spans (ctxprune's atoms) needs. `add_special_tokens`: whether the
    /// post-processor's specials (`<bos>`/`<eos>`, `[CLS]`/`[SEP]`) are added; theirs is the range
    /// `(0, 0)`. An empty text gives no token (specials aside). The ranges are checked (within the
    /// text, on character boundaries, in order): a tokenizer that cannot map its tokens back to the
    /// text is an error rather than wrong spans.
    pub fn encode_text(&self, text: &str, add_special_tokens: bool) -> Result<TextEncoding> {
        let enc = self.inner.encode(text, add_special_tokens).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let special: Vec<bool> = enc.get_special_tokens_mask().iter().map(|&s| s == 1).collect();
        let offsets = checked_offsets(text, enc.get_offsets(), &special).map_err(|(i, (start, end))| {
            Error::Tokenizer(format!(
                "token {i} ({:?}) has the offsets {start}..{end}, which do not point into the {}-byte \
                     text (a tokenizer without usable offsets)",
                enc.get_tokens()[i],
                text.len()
            ))
        })?;
        Ok(TextEncoding { input_ids: enc.get_ids().to_vec(), offsets, special })
    }
}

/// A byte range `(start, end)`.
type Span = (usize, usize);

/// The offsets of a whole text's tokens, specials' set to `(0, 0)`, if every other one is a range of
/// `text` on character boundaries, the starts in order; else the first bad token and its range.
fn checked_offsets(
    text: &str,
    offsets: &[(usize, usize)],
    special: &[bool],
) -> std::result::Result<Vec<Span>, (usize, Span)> {
    let mut last_start = 0;
    offsets
        .iter()
        .zip(special)
        .enumerate()
        .map(|(i, (&(start, end), &special))| {
            if special {
                return Ok((0, 0));
            }
            let inside = start <= end && end <= text.len() && start >= last_start;
            if !(inside && text.is_char_boundary(start) && text.is_char_boundary(end)) {
                return Err((i, (start, end)));
            }
            last_start = start;
            Ok((start, end))
        })
        .collect()
}

/// A whole text's tokens ([`WordTokenizer::encode_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextEncoding {
    pub input_ids: Vec<u32>,
    /// Each token's byte range in the text; `(0, 0)` for a special token. A character that the
    /// tokenizer's byte fallback spells in several tokens gives each of them the character's range.
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token is a special token added by the post-processor.
    pub special: Vec<bool>,
}

/// Whether the tokenizer's normalizer turns a space into a visible character (SentencePiece's `▁`
/// written by a `Replace` normalizer, as Gemma's and mmBERT's tokenizers do): then the space belongs to
/// the piece after it, and a word encoded alone would lose it.
fn space_is_content(t: &tokenizers::Tokenizer) -> bool {
    use tokenizers::Normalizer;
    let Some(normalizer) = t.get_normalizer() else { return false };
    let mut space = tokenizers::NormalizedString::from(" ");
    normalizer.normalize(&mut space).is_ok() && !space.get().trim().is_empty()
}

/// See [`WordTokenizer::max_token_bytes`]. A vocabulary entry's UTF-8 length is at least the bytes it
/// stands for (a byte-level BPE writes each byte as one character of one or two bytes).
fn max_token_bytes(t: &tokenizers::Tokenizer) -> Option<usize> {
    let tokenizers::ModelWrapper::BPE(bpe) = t.get_model() else { return None };
    if bpe.unk_token.is_some() || t.get_normalizer().is_some() {
        return None;
    }
    t.get_vocab(true).keys().map(String::len).max()
}

/// The whitespace-separated words of a text, line by line, in order.
///
/// ```
/// assert_eq!(kompress::tokenize::words("a b\n\n  c\td "), vec!["a", "b", "c", "d"]);
/// ```
pub fn words(text: &str) -> Vec<&str> {
    crate::pipeline::words::words(text).map(|w| w.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets that leave the text, split a character or go backwards name the token; specials' are
    /// `(0, 0)` whatever the tokenizer gave.
    #[test]
    fn offsets_are_checked() {
        let text = "a 机器";
        let special = [true, false, false, false, true];
        let good = [(0, 0), (0, 1), (2, 5), (5, 8), (8, 8)];
        assert_eq!(checked_offsets(text, &good, &special), Ok(vec![(0, 0), (0, 1), (2, 5), (5, 8), (0, 0)]));
        for (bad, at) in [((2, 4), 2), ((2, 9), 2), ((3, 2), 2)] {
            let offsets = [(0, 0), (0, 1), bad, (5, 8), (8, 8)];
            assert_eq!(checked_offsets(text, &offsets, &special), Err((at, bad)));
        }
        let backwards = [(0, 0), (2, 5), (0, 1), (5, 8), (8, 8)];
        assert_eq!(checked_offsets(text, &backwards, &special), Err((2, (0, 1))));
    }
}
