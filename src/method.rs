//! The compression methods behind one interface, for every entry point (the CLI, the server, the
//! Python binding): Kompress's pipeline ([`crate::pipeline`], Headroom's compatible output being its
//! [`Compat::Headroom`](crate::pipeline::Compat)), LLMLingua-2 ([`crate::llmlingua2`]) and ctxprune
//! ([`crate::ctxprune`]). A [`Methods`] holds one loaded token classifier and the methods it can run;
//! a [`Call`] names a method with its texts and its options; [`Methods::run`] checks the options, runs
//! the method with whoever does the forward passes (the model itself, or the server's batcher), and
//! returns the method's own result ([`Output`]).
//!
//! ```
//! use std::sync::Arc;
//! use kompress::method::{Call, Method, Methods, Output};
//! use kompress::{ctxprune, Kompress, LoadOptions};
//! let model = Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
//! let methods = Methods::new(Arc::new(model));
//! assert_eq!(methods.supported(), [Method::Kompress, Method::Headroom, Method::Ctxprune]);
//! let options = ctxprune::Options::default();
//! let out = methods.compress(Call::Ctxprune { text: "Keep /etc/hosts, drop the rest.", options: &options })?;
//! let Output::Ctxprune(result) = out else { unreachable!() };
//! assert!(result.kept <= result.total);
//! # Ok::<(), kompress::Error>(())
//! ```

pub mod words;

use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::ctxprune::{self, Ctxprune};
use crate::encoders::bert::Family;
use crate::llmlingua2::{self, LlmLingua2};
use crate::pipeline::{compress_batch, ChunkScorer, Compat};
use crate::{CompressOptions, CompressResult, Error, Kompress, Result};
pub use words::WordView;

/// A compression method, by the name every entry point uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Kompress's pipeline: protections, layout, tables, code, JSON, budgets.
    Kompress,
    /// Kompress's pipeline as Headroom 0.42 runs it, word for word.
    Headroom,
    /// llmlingua 0.2.2's `compress_prompt_llmlingua2`, byte for byte (BERT / XLM-R classifiers).
    LlmLingua2,
    /// ctxprune 0.2.1's `Compressor.compress`, byte for byte (any token classifier).
    Ctxprune,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kompress => "kompress",
            Self::Headroom => "headroom",
            Self::LlmLingua2 => "llmlingua2",
            Self::Ctxprune => "ctxprune",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Self::Kompress, Self::Headroom, Self::LlmLingua2, Self::Ctxprune]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!("method \"{s}\": expected kompress, headroom, llmlingua2 or ctxprune"))
            })
    }
}

/// One call: a method with its texts and its options.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// Kompress's pipeline on each text (`options.compat` picks Headroom's output).
    Pipeline { texts: &'a [&'a str], options: &'a CompressOptions },
    /// LLMLingua-2 on its contexts, as one call.
    LlmLingua2 { contexts: &'a [&'a str], options: &'a llmlingua2::Options },
    /// ctxprune on one text.
    Ctxprune { text: &'a str, options: &'a ctxprune::Options },
}

impl Call<'_> {
    /// The method this call runs.
    pub fn method(&self) -> Method {
        match self {
            Self::Pipeline { options, .. } if options.compat == Compat::Headroom => Method::Headroom,
            Self::Pipeline { .. } => Method::Kompress,
            Self::LlmLingua2 { .. } => Method::LlmLingua2,
            Self::Ctxprune { .. } => Method::Ctxprune,
        }
    }
}

/// A call's result: the method's own (one [`CompressResult`] per text for the pipeline, llmlingua's
/// result dict, ctxprune's).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Pipeline(Vec<CompressResult>),
    LlmLingua2(llmlingua2::Compressed),
    Ctxprune(ctxprune::Compressed),
}

impl Output {
    /// The compressed texts: one per input text for the pipeline, llmlingua's `compressed_prompt`,
    /// ctxprune's `text`.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Self::Pipeline(results) => results.iter().map(|r| r.compressed.as_str()).collect(),
            Self::LlmLingua2(result) => vec![result.compressed_prompt.as_str()],
            Self::Ctxprune(result) => vec![result.text.as_str()],
        }
    }
}

/// A loaded token classifier and the methods it can run, each built the first time it is used.
pub struct Methods {
    model: Arc<Kompress>,
    /// Sequences per forward pass for LLMLingua-2 and ctxprune (their own defaults when `None`).
    batch_size: Option<usize>,
    llmlingua2: OnceLock<LlmLingua2>,
    ctxprune: OnceLock<Ctxprune>,
}

impl Methods {
    pub fn new(model: Arc<Kompress>) -> Self {
        Self { model, batch_size: None, llmlingua2: OnceLock::new(), ctxprune: OnceLock::new() }
    }

    /// Sets how many chunks or windows LLMLingua-2 and ctxprune score per forward pass (the results
    /// do not depend on it; speed and memory do).
    pub fn with_batch_size(mut self, size: usize) -> Self {
        self.batch_size = Some(size.max(1));
        self.llmlingua2.take();
        self.ctxprune.take();
        self
    }

    pub fn model(&self) -> &Arc<Kompress> {
        &self.model
    }

    /// The methods this model runs: LLMLingua-2 needs a BERT or XLM-RoBERTa classifier.
    pub fn supported(&self) -> Vec<Method> {
        let mut out = vec![Method::Kompress, Method::Headroom];
        if self.model.scorer().family() != Family::ModernBert {
            out.push(Method::LlmLingua2);
        }
        out.push(Method::Ctxprune);
        out
    }

    /// An error naming the model's family unless it runs `method`.
    pub fn check(&self, method: Method) -> Result<()> {
        match self.supported().contains(&method) {
            true => Ok(()),
            false => Err(Error::Invalid(format!(
                "{method} needs a BERT or XLM-RoBERTa token classifier (an LLMLingua-2 checkpoint), not this \
                 {:?} model",
                self.model.scorer().family()
            ))),
        }
    }

    /// LLMLingua-2 on this model.
    pub fn llmlingua2(&self) -> Result<&LlmLingua2> {
        self.check(Method::LlmLingua2)?;
        get_or_try_init(&self.llmlingua2, || {
            let mut method = LlmLingua2::from_model(self.model.clone())?;
            method.batch_size = self.batch_size.unwrap_or(method.batch_size);
            Ok(method)
        })
    }

    /// ctxprune on this model.
    pub fn ctxprune(&self) -> Result<&Ctxprune> {
        get_or_try_init(&self.ctxprune, || {
            let mut method = Ctxprune::from_model(self.model.clone())?;
            method.batch_size = self.batch_size.unwrap_or(method.batch_size);
            Ok(method)
        })
    }

    /// Runs `call` with the model doing its own forward passes.
    pub fn compress(&self, call: Call<'_>) -> Result<Output> {
        self.run(&*self.model, call)
    }

    /// Runs `call`, its forward passes done by `scorer` (the server's batcher, or the model).
    /// Only LLMLingua-2 is refused by some models ([`Methods::llmlingua2`] says which).
    pub fn run<C: ChunkScorer + ?Sized>(&self, scorer: &C, call: Call<'_>) -> Result<Output> {
        Ok(match call {
            Call::Pipeline { texts, options } => Output::Pipeline(compress_batch(scorer, texts, options)?),
            Call::LlmLingua2 { contexts, options } => {
                Output::LlmLingua2(self.llmlingua2()?.compress_with(scorer, contexts, options)?)
            }
            Call::Ctxprune { text, options } => {
                Output::Ctxprune(self.ctxprune()?.compress_with(scorer, text, options)?)
            }
        })
    }
}

impl Methods {
    /// [`compress`](Self::compress) with every input word's fate ([`words`]).
    pub fn words(&self, call: Call<'_>) -> Result<(Output, Vec<WordView>)> {
        self.words_with(&*self.model, call)
    }

    /// [`run`](Self::run) with every input word's fate, in order, over all the call's texts: the
    /// method's own per-word record is switched on for the call (the pipeline's
    /// [`explain`](CompressOptions::explain), LLMLingua-2's `return_word_label`; ctxprune's atoms are
    /// always at hand), which changes no decision. The [`Output`] is the method's result (with that
    /// record in it).
    pub fn words_with<C: ChunkScorer + ?Sized>(
        &self,
        scorer: &C,
        call: Call<'_>,
    ) -> Result<(Output, Vec<WordView>)> {
        Ok(match call {
            Call::Pipeline { texts, options } => {
                let options = CompressOptions { explain: true, ..options.clone() };
                let results = compress_batch(scorer, texts, &options)?;
                let mut views = Vec::new();
                for (text, r) in texts.iter().zip(&results) {
                    views.extend(words::from_decisions(text, r.words.as_deref().unwrap_or_default()));
                }
                (Output::Pipeline(results), views)
            }
            Call::LlmLingua2 { contexts, options } => {
                let options = llmlingua2::Options { return_word_label: true, ..options.clone() };
                let result = self.llmlingua2()?.compress_with(scorer, contexts, &options)?;
                let views = words::from_labels(contexts, result.labeled_words.as_deref().unwrap_or_default());
                (Output::LlmLingua2(result), views)
            }
            Call::Ctxprune { text, options } => {
                let detailed = self.ctxprune()?.compress_detailed_with(scorer, text, options)?;
                let views = words::from_atoms(&detailed);
                (Output::Ctxprune(detailed.compressed), views)
            }
        })
    }
}

/// `cell`'s value, built by `init` if it has none (`OnceLock::get_or_try_init` is not stable yet); two
/// threads may both build it, and one result is kept.
fn get_or_try_init<T>(cell: &OnceLock<T>, init: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = init()?;
    Ok(cell.get_or_init(|| v))
}
