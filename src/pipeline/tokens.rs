//! Counting what users pay for: LLM tokens of OpenAI's `cl100k_base` or `o200k_base` encodings (as
//! Python `tiktoken`'s `encode_ordinary` counts them), or whitespace-separated words.
//!
//! The BPE comes from `bpe-openai` (feature `llm-tokens`, on by default): pure Rust, vocabularies
//! embedded, and a pre-tokenizer without backtracking, so counting is linear in the text (a fancy-regex
//! pre-tokenizer overflows its stack on a few megabytes of spaces).

use crate::{Error, Result};

/// What [`CompressResult`](super::CompressResult)'s `*_tokens` counts, and what
/// [`Mode::TargetTokens`](super::Mode::TargetTokens) budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCounter {
    /// OpenAI's `cl100k_base` (GPT-4, GPT-3.5).
    Cl100k,
    /// OpenAI's `o200k_base` (GPT-4o and later).
    O200k,
    /// Whitespace-separated words.
    Words,
}

impl Default for TokenCounter {
    /// `cl100k` when the crate has the `llm-tokens` feature, else `words`.
    fn default() -> Self {
        if cfg!(feature = "llm-tokens") {
            TokenCounter::Cl100k
        } else {
            TokenCounter::Words
        }
    }
}

impl TokenCounter {
    /// The number of tokens of `text`.
    ///
    /// ```
    /// use kompress::pipeline::TokenCounter;
    /// assert_eq!(TokenCounter::Words.count("two  words\n")?, 2);
    /// # #[cfg(feature = "llm-tokens")]
    /// assert_eq!(TokenCounter::Cl100k.count("Hello, world!")?, 4);
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn count(self, text: &str) -> Result<usize> {
        match self {
            TokenCounter::Words => Ok(text.split_whitespace().count()),
            #[cfg(feature = "llm-tokens")]
            TokenCounter::Cl100k => Ok(bpe_openai::cl100k_base().count(text)),
            #[cfg(feature = "llm-tokens")]
            TokenCounter::O200k => Ok(bpe_openai::o200k_base().count(text)),
            #[cfg(not(feature = "llm-tokens"))]
            TokenCounter::Cl100k | TokenCounter::O200k => Err(self.unavailable()),
        }
    }

    /// Builds this counter's vocabulary now (it is otherwise built at the first count: about 0.1 s
    /// for `cl100k`), so that a caller can do it on another thread while a model loads.
    ///
    /// ```
    /// use kompress::pipeline::TokenCounter;
    /// let counter = TokenCounter::default();
    /// let built = std::thread::spawn(move || counter.preload());
    /// // ... load a model here ...
    /// built.join().unwrap();
    /// assert_eq!(counter.count("two words")?, 2);
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn preload(self) {
        #[cfg(feature = "llm-tokens")]
        match self {
            TokenCounter::Cl100k => {
                bpe_openai::cl100k_base();
            }
            TokenCounter::O200k => {
                bpe_openai::o200k_base();
            }
            TokenCounter::Words => {}
        }
    }

    /// An error unless this build can count these tokens.
    pub fn check(self) -> Result<()> {
        match self {
            TokenCounter::Cl100k | TokenCounter::O200k if !cfg!(feature = "llm-tokens") => {
                Err(self.unavailable())
            }
            _ => Ok(()),
        }
    }

    fn unavailable(self) -> Error {
        Error::Invalid(format!("counting {self} tokens needs kompress built with the `llm-tokens` feature"))
    }
}

impl std::fmt::Display for TokenCounter {
    /// `cl100k`, `o200k` or `words`, as [`std::str::FromStr`] reads them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenCounter::Cl100k => "cl100k",
            TokenCounter::O200k => "o200k",
            TokenCounter::Words => "words",
        })
    }
}

impl std::str::FromStr for TokenCounter {
    type Err = Error;

    /// `cl100k` (or `cl100k_base`), `o200k` (or `o200k_base`), `words`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cl100k" | "cl100k_base" => Ok(TokenCounter::Cl100k),
            "o200k" | "o200k_base" => Ok(TokenCounter::O200k),
            "words" => Ok(TokenCounter::Words),
            _ => Err(Error::Invalid(format!("unknown token counter `{s}` (cl100k, o200k or words)"))),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TokenCounter {
    /// The names [`std::str::FromStr`] reads.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for TokenCounter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in [TokenCounter::Cl100k, TokenCounter::O200k, TokenCounter::Words] {
            assert_eq!(c.to_string().parse::<TokenCounter>().unwrap(), c);
        }
        assert!("gpt2".parse::<TokenCounter>().is_err());
    }

    #[cfg(feature = "llm-tokens")]
    #[test]
    fn huge_whitespace_runs_are_counted_quickly() {
        let text = " ".repeat(3_000_000) + "x";
        assert!(TokenCounter::Cl100k.count(&text).unwrap() > 0);
    }
}
