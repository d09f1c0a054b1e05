//! Request bodies, and the one mapping from JSON fields to [`CompressOptions`] (the server's defaults
//! come through it too, from `kompress serve`'s flags).

use serde::Deserialize;

use crate::pipeline::Mode;
use crate::CompressOptions;

/// The options of `kompress compress`, as JSON fields named after its flags; an absent field takes
/// the server's default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressFields {
    /// `card`, `threshold` or `ratio`.
    pub mode: Option<ModeName>,
    /// Final-score threshold; implies `threshold` mode.
    pub threshold: Option<f64>,
    /// Share of each chunk's words to keep; implies `ratio` mode.
    pub ratio: Option<f64>,
    pub chunk_words: Option<usize>,
    pub chunk_tokens: Option<usize>,
    /// Chunks this request hands the model at a time.
    pub batch_size: Option<usize>,
    pub min_words: Option<usize>,
    /// Let the model drop must-keep words and table rows too.
    pub no_protect: Option<bool>,
    pub no_protect_words: Option<bool>,
    pub no_protect_tables: Option<bool>,
    /// Return every word's decision in `words`.
    pub explain: Option<bool>,
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
    /// use kompress::pipeline::Mode;
    /// use kompress::server::CompressFields;
    /// let fields = CompressFields { ratio: Some(0.4), ..Default::default() };
    /// assert_eq!(fields.apply(&Default::default())?.mode, Mode::Ratio(0.4));
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn apply(&self, defaults: &CompressOptions) -> crate::Result<CompressOptions> {
        self.resolve(defaults)
            .map_err(|(field, message)| crate::Error::Invalid(format!("{field}: {message}")))
    }

    pub(crate) fn resolve(
        &self,
        defaults: &CompressOptions,
    ) -> Result<CompressOptions, (&'static str, String)> {
        let mode = match (self.mode, self.threshold, self.ratio) {
            (_, Some(_), Some(_)) => return Err(("ratio", "threshold and ratio exclude each other".into())),
            (None | Some(ModeName::Ratio), None, Some(r)) => Mode::Ratio(r),
            (None | Some(ModeName::Threshold), Some(t), None) => Mode::Threshold(t),
            (Some(ModeName::Threshold), None, None) => Mode::Threshold(0.5),
            (Some(ModeName::Card), None, None) => Mode::Card,
            (None, None, None) => defaults.mode,
            (Some(ModeName::Ratio), None, None) => return Err(("ratio", "mode ratio needs a ratio".into())),
            (Some(_), _, _) => {
                return Err(("mode", "threshold goes with mode threshold, ratio with mode ratio".into()))
            }
        };
        let no_protect = self.no_protect.unwrap_or(false);
        let protect = |flag: Option<bool>, default: bool| match (no_protect, flag) {
            (true, _) => false,
            (false, Some(off)) => !off,
            (false, None) => default,
        };
        // Options without a JSON field here yet take the server's defaults.
        #[allow(clippy::needless_update)]
        Ok(CompressOptions {
            mode,
            chunk_words: self.chunk_words.unwrap_or(defaults.chunk_words),
            chunk_tokens: self.chunk_tokens.unwrap_or(defaults.chunk_tokens),
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            min_words: self.min_words.unwrap_or(defaults.min_words),
            protect_words: protect(self.no_protect_words, defaults.protect_words),
            protect_tables: protect(self.no_protect_tables, defaults.protect_tables),
            explain: self.explain.unwrap_or(defaults.explain),
            ..defaults.clone()
        })
    }
}

/// `POST /v1/compress`: one text or a list, and the options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompressBody {
    pub text: Texts,
    #[serde(default)]
    pub options: CompressFields,
}

/// A text or a list of texts.
#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
pub(crate) enum Texts {
    One(String),
    Many(Vec<String>),
}

/// `POST /compress`, Headroom's remote Kompress contract.
#[derive(Debug, Deserialize)]
pub(crate) struct HeadroomBody {
    pub content: String,
    #[serde(default)]
    pub target_ratio: Option<f64>,
}

fn default_query() -> String {
    // The SuperCompress service's own default.
    "Summarize this context.".into()
}

fn default_budget() -> f64 {
    0.35
}

/// `POST /api/v1/compress`, SuperCompress's client.
#[derive(Debug, Deserialize)]
pub(crate) struct SuperCompressBody {
    pub context: String,
    #[serde(default = "default_query")]
    pub query: String,
    #[serde(default = "default_budget")]
    pub budget_ratio: f64,
}

/// `POST /v1/compress/blocks`, SuperCompress's server route.
#[derive(Debug, Deserialize)]
pub(crate) struct BlocksBody {
    pub context_blocks: Vec<String>,
    #[serde(default = "default_query")]
    pub query: String,
    #[serde(default = "default_budget")]
    pub budget_ratio: f64,
}

/// `POST /v1/evict`: the options of `kompress evict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvictBody {
    pub context: String,
    pub question: String,
    #[serde(default = "default_budget")]
    pub budget: f64,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub seed: u32,
    #[serde(default)]
    pub annotate: bool,
}

/// The SuperCompress service's bounds on `budget_ratio` (its pydantic model: 0.05 to 1).
pub(crate) fn check_budget_ratio(r: f64) -> Result<(), (&'static str, String)> {
    match (0.05..=1.0).contains(&r) {
        true => Ok(()),
        false => Err(("budget_ratio", format!("{r} is not in [0.05, 1]"))),
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
        let o = apply(r#"{"no_protect":true,"no_protect_tables":false,"chunk_words":9}"#).unwrap();
        assert_eq!((o.protect_words, o.protect_tables, o.chunk_words), (false, false, 9));
        assert!(!apply(r#"{"no_protect_words":true}"#).unwrap().protect_words);
        assert_eq!(apply(r#"{"ratio":0.3,"threshold":0.2}"#).unwrap_err().0, "ratio");
        assert_eq!(apply(r#"{"mode":"card","ratio":0.3}"#).unwrap_err().0, "mode");
        assert_eq!(apply(r#"{"mode":"ratio"}"#).unwrap_err().0, "ratio");
    }
}
