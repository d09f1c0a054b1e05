//! Structured data that the model must not touch as a whole: Kompress is a natural-language model
//! (its card says structured data needs other tools), so a whole input that is JSON passes through.

/// Whether the whole text is one JSON object or array (surrounding whitespace allowed).
///
/// ```
/// use kompress::pipeline::structured::is_json;
/// assert!(is_json(" {\"a\": [1, 2]}\n") && is_json("[]"));
/// assert!(!is_json("42") && !is_json("{\"a\": 1} and more") && !is_json("[not json"));
/// ```
pub fn is_json(text: &str) -> bool {
    let t = text.trim_start();
    (t.starts_with('{') || t.starts_with('[')) && serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok()
}
