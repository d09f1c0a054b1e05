//! The compression options by name, each optional: the one mapping from what a user typed (the CLI's
//! flags, a JSON request's fields) to [`CompressOptions`], so both front ends read options alike.

use serde::Deserialize;

use super::{Compat, CompressOptions, Mode, TokenCounter};

/// The options of `kompress compress`, named after its flags (`no_protect_words` for
/// `--no-protect-words`); an absent field takes the default it is applied over.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressFields {
    /// `card`, `threshold` or `ratio`.
    pub mode: Option<ModeName>,
    /// Final-score threshold; implies `threshold` mode.
    pub threshold: Option<f64>,
    /// Share of the words to keep; implies `ratio` mode.
    pub ratio: Option<f64>,
    /// Fit the output in this many tokens of `count_tokens`.
    pub target_tokens: Option<usize>,
    /// `cl100k`, `o200k` or `words`.
    pub count_tokens: Option<String>,
    /// `headroom` (Headroom 0.42's output) or `off`.
    pub compat: Option<String>,
    pub chunk_words: Option<usize>,
    pub chunk_tokens: Option<usize>,
    /// Chunks handed to the model at a time.
    pub batch_size: Option<usize>,
    pub min_words: Option<usize>,
    /// Let the model drop must-keep words, table rows, code and Markdown markup, and compress JSON.
    pub no_protect: Option<bool>,
    pub no_protect_words: Option<bool>,
    pub no_protect_tables: Option<bool>,
    pub no_protect_code: Option<bool>,
    pub no_protect_code_lines: Option<bool>,
    pub no_protect_markdown: Option<bool>,
    pub no_protect_json: Option<bool>,
    /// Record every word's decision.
    pub explain: Option<bool>,
    /// Stop scoring after this many milliseconds ([`CompressOptions::time_budget`]).
    pub time_budget_ms: Option<u64>,
}

/// The keep rules by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    Card,
    Threshold,
    Ratio,
}

impl std::str::FromStr for ModeName {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        serde_json::from_value(serde_json::Value::from(s))
            .map_err(|_| crate::Error::Invalid(format!("unknown mode `{s}` (card, threshold or ratio)")))
    }
}

impl CompressFields {
    /// These fields over `defaults`. An error names the field at fault.
    ///
    /// ```
    /// use kompress::pipeline::{CompressFields, Mode};
    /// let fields = CompressFields { ratio: Some(0.4), ..Default::default() };
    /// assert_eq!(fields.apply(&Default::default())?.mode, Mode::Ratio(0.4));
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn apply(&self, defaults: &CompressOptions) -> crate::Result<CompressOptions> {
        self.resolve(defaults)
            .map_err(|(field, message)| crate::Error::Invalid(format!("{field}: {message}")))
    }

    /// [`apply`](Self::apply), with the field at fault and the message apart; the message quotes the
    /// fields it names in backticks, so a front end can name them as its users typed them.
    pub fn resolve(&self, defaults: &CompressOptions) -> Result<CompressOptions, (&'static str, String)> {
        let compat = match self.compat.as_deref() {
            None => defaults.compat,
            Some("headroom") => Compat::Headroom,
            Some("off") => Compat::Off,
            Some(other) => return Err(("compat", format!("unknown compat `{other}` (headroom or off)"))),
        };
        let count_tokens = match &self.count_tokens {
            None => defaults.count_tokens,
            Some(name) => name.parse::<TokenCounter>().map_err(|e| ("count_tokens", e.to_string()))?,
        };
        let time_budget = match self.time_budget_ms {
            None => defaults.time_budget,
            Some(ms) => {
                let budget = std::time::Duration::from_millis(ms);
                super::check_time_budget(budget).map_err(|m| ("time_budget_ms", m))?;
                Some(budget)
            }
        };
        let no_protect = self.no_protect.unwrap_or(false);
        let protect = |flag: Option<bool>, default: bool| match (no_protect, flag) {
            (true, _) => false,
            (false, Some(off)) => !off,
            (false, None) => default,
        };
        Ok(CompressOptions {
            mode: self.mode(defaults.mode)?,
            chunk_words: self.chunk_words.unwrap_or(defaults.chunk_words),
            chunk_tokens: self.chunk_tokens.unwrap_or(defaults.chunk_tokens),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            min_words: self.min_words.unwrap_or(defaults.min_words),
            protect_words: protect(self.no_protect_words, defaults.protect_words),
            protect_tables: protect(self.no_protect_tables, defaults.protect_tables),
            protect_code: protect(self.no_protect_code, defaults.protect_code),
            protect_code_lines: protect(self.no_protect_code_lines, defaults.protect_code_lines),
            protect_markdown: protect(self.no_protect_markdown, defaults.protect_markdown),
            protect_json: protect(self.no_protect_json, defaults.protect_json),
            count_tokens,
            compat,
            explain: self.explain.unwrap_or(defaults.explain),
            time_budget,
        })
    }

    fn mode(&self, default: Mode) -> Result<Mode, (&'static str, String)> {
        let excl = |field, m: &str| Err((field, m.to_string()));
        match (self.mode, self.threshold, self.ratio, self.target_tokens) {
            (None, None, None, Some(n)) => Ok(Mode::TargetTokens(n)),
            (_, _, _, Some(_)) => {
                excl("target_tokens", "`target_tokens` excludes `mode`, `threshold` and `ratio`")
            }
            (_, Some(_), Some(_), _) => excl("ratio", "`threshold` and `ratio` exclude each other"),
            (None | Some(ModeName::Ratio), None, Some(r), _) => Ok(Mode::Ratio(r)),
            (None | Some(ModeName::Threshold), Some(t), None, _) => Ok(Mode::Threshold(t)),
            (Some(ModeName::Threshold), None, None, _) => Ok(Mode::Threshold(0.5)),
            (Some(ModeName::Card), None, None, _) => Ok(Mode::Card),
            (None, None, None, _) => Ok(default),
            (Some(ModeName::Ratio), None, None, _) => excl("ratio", "mode ratio needs a `ratio`"),
            (Some(_), ..) => excl("mode", "`threshold` goes with mode threshold, `ratio` with mode ratio"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(json: &str) -> Result<CompressOptions, (&'static str, String)> {
        serde_json::from_str::<CompressFields>(json).unwrap().resolve(&CompressOptions::default())
    }

    #[test]
    fn fields_override_defaults_as_the_flags_do() {
        let d = CompressOptions::default();
        assert_eq!(apply("{}").unwrap(), d);
        assert_eq!(apply(r#"{"ratio":0.3}"#).unwrap().mode, Mode::Ratio(0.3));
        assert_eq!(apply(r#"{"mode":"threshold"}"#).unwrap().mode, Mode::Threshold(0.5));
        assert_eq!(apply(r#"{"target_tokens":40}"#).unwrap().mode, Mode::TargetTokens(40));
        let o = apply(r#"{"no_protect":true,"no_protect_tables":false,"chunk_words":9}"#).unwrap();
        assert_eq!(
            (o.protect_words, o.protect_tables, o.protect_code, o.chunk_words),
            (false, false, false, 9)
        );
        let o = apply(r#"{"no_protect_words":true,"no_protect_json":true}"#).unwrap();
        assert_eq!((o.protect_words, o.protect_json, o.protect_code), (false, false, true));
        let o = apply(r#"{"no_protect_code_lines":true}"#).unwrap();
        assert_eq!((o.protect_code_lines, o.protect_markdown, o.protect_code), (false, true, true));
        let o = apply(r#"{"no_protect_markdown":true}"#).unwrap();
        assert_eq!((o.protect_code_lines, o.protect_markdown), (true, false));
        let o = apply(r#"{"no_protect":true}"#).unwrap();
        assert_eq!((o.protect_code_lines, o.protect_markdown), (false, false));
        let o = apply(r#"{"compat":"headroom","count_tokens":"words"}"#).unwrap();
        assert_eq!((o.compat, o.count_tokens), (Compat::Headroom, TokenCounter::Words));
        assert_eq!(apply(r#"{"ratio":0.3,"threshold":0.2}"#).unwrap_err().0, "ratio");
        assert_eq!(apply(r#"{"mode":"card","ratio":0.3}"#).unwrap_err().0, "mode");
        assert_eq!(apply(r#"{"mode":"ratio"}"#).unwrap_err().0, "ratio");
        assert_eq!(apply(r#"{"ratio":0.3,"target_tokens":9}"#).unwrap_err().0, "target_tokens");
        assert_eq!(apply(r#"{"compat":"pytorch"}"#).unwrap_err().0, "compat");
        assert_eq!(apply(r#"{"count_tokens":"gpt2"}"#).unwrap_err().0, "count_tokens");
        let o = apply(r#"{"time_budget_ms":2000}"#).unwrap();
        assert_eq!(o.time_budget, Some(std::time::Duration::from_secs(2)));
        assert_eq!(apply(r#"{"time_budget_ms":0}"#).unwrap_err().0, "time_budget_ms");
        assert_eq!(apply(r#"{"time_budget_ms":86400001}"#).unwrap_err().0, "time_budget_ms");
    }

    #[test]
    fn an_explicit_false_turns_a_protection_back_on() {
        let off = CompressOptions { protect_words: false, ..Default::default() };
        let fields: CompressFields = serde_json::from_str(r#"{"no_protect_words":false}"#).unwrap();
        assert!(fields.resolve(&off).unwrap().protect_words);
    }
}
