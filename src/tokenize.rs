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
        Ok(Self { inner, max_token_bytes })
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

    /// Encodes words as one pre-split sequence (no space is inserted between words), with special
    /// tokens.
    pub fn encode_words<S: AsRef<str>>(&self, words: &[S]) -> Result<WordEncoding> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        let enc = self.inner.encode(words, true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(WordEncoding { input_ids: enc.get_ids().to_vec(), word_ids: enc.get_word_ids().to_vec() })
    }
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
