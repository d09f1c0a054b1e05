//! `kompress._kompress`: the native half of the `kompress` Python package (distribution `kompress-rs`).
//!
//! A thin layer over the library: every result crosses as the JSON the CLI prints (so the Python
//! objects equal `kompress compress --json`, `kompress score --json` and `kompress evict --json` byte
//! for byte; `LlmLingua2Runner`'s, the dict of llmlingua's `compress_prompt_llmlingua2`), model work runs with the GIL released, and every failure, a panic included, becomes one
//! of the `kompress.KompressError` classes (defined in Python, `kompress/_errors.py`) with the
//! library's one-line message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kompress::ctxprune::{Callables, Ctxprune, Options as CtxpruneOptions};
use kompress::evict::{compare_policies, compress_detailed, EvictionNetwork, PolicyKind};
use kompress::llmlingua2::{LlmLingua2, Options as Llmlingua2Options};
use kompress::pipeline::{compress_stream, default_batch_size, CompressFields, CompressOptions, Event};
use kompress::{DTypeChoice, DeviceChoice, HubOptions, Kompress, LoadOptions, TokenScores};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// The Python exception classes, by name in `kompress._errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Base,
    ModelNotFound,
    InvalidOption,
    InvalidInput,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Base => "KompressError",
            Class::ModelNotFound => "ModelNotFoundError",
            Class::InvalidOption => "InvalidOptionError",
            Class::InvalidInput => "InvalidInputError",
        }
    }

    /// The class of a library error: a missing or uncached model, a bad device/dtype/option, an input
    /// the model cannot take, else the base class.
    fn of(e: &kompress::Error) -> Self {
        use kompress::Error as E;
        match e {
            E::ModelDir { .. } | E::NotCached { .. } | E::Hub(_) => Class::ModelNotFound,
            E::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Class::ModelNotFound,
            E::Device(_) | E::Invalid(_) => Class::InvalidOption,
            E::TooLong { .. } => Class::InvalidInput,
            _ => Class::Base,
        }
    }
}

/// A failure on its way to Python: one of our classes with its message, or an exception Python raised
/// (in a progress callback, or a pending KeyboardInterrupt).
enum Fail {
    Known(Class, String),
    Python(PyErr),
}

impl Fail {
    fn lib(e: kompress::Error) -> Self {
        Fail::Known(Class::of(&e), e.to_string())
    }

    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Fail::Python(e) => e,
            Fail::Known(class, message) => {
                let raised = py
                    .import("kompress._errors")
                    .and_then(|m| m.getattr(class.name()))
                    .and_then(|cls| cls.call1((message,)));
                match raised {
                    Ok(instance) => PyErr::from_value(instance),
                    Err(e) => e,
                }
            }
        }
    }
}

impl From<kompress::Error> for Fail {
    fn from(e: kompress::Error) -> Self {
        Fail::lib(e)
    }
}

type Outcome<T> = Result<T, Fail>;

/// Runs `work` without the GIL, on `pool` when there is one, turning a panic into a `KompressError`
/// (pyo3 would raise its `PanicException`, which is not an `Exception` subclass).
fn detached<T: Send>(
    py: Python<'_>,
    pool: Option<&rayon::ThreadPool>,
    work: impl FnOnce() -> Outcome<T> + Send,
) -> PyResult<T> {
    let guarded = || {
        let _quiet = QuietPanics::enter();
        match catch_unwind(AssertUnwindSafe(work)) {
            Ok(outcome) => outcome,
            Err(payload) => Err(Fail::Known(Class::Base, panic_message(payload.as_ref()))),
        }
    };
    let outcome = py.detach(|| match pool {
        Some(pool) => pool.install(guarded),
        None => guarded(),
    });
    outcome.map_err(|f| f.into_py(py))
}

/// Guarded calls in flight. While there is one, a panic (on its thread or a worker's) reaches Python as
/// a `KompressError` carrying the panic's message, so Rust's default hook does not print it on stderr.
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct QuietPanics;

impl QuietPanics {
    fn enter() -> Self {
        GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Wraps the panic hook: silent while a guarded call is in flight, the previous hook otherwise.
fn quiet_guarded_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if GUARDED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            previous(info);
        }
    }));
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    format!("internal error (a bug in kompress, please report it): {what}")
}

/// `obj` as text: a `str` of at most `max_bytes` UTF-8 bytes. `what` names the argument in messages.
fn text_arg(obj: &Bound<'_, PyAny>, what: &str, max_bytes: usize) -> Outcome<String> {
    let invalid = |m: String| Err(Fail::Known(Class::InvalidInput, m));
    let Ok(s) = obj.cast::<PyString>() else {
        let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        let hint =
            if obj.is_instance_of::<PyBytes>() { " (decode it first: data.decode(\"utf-8\"))" } else { "" };
        return invalid(format!("{what} must be str, not {kind}{hint}"));
    };
    let text = match s.to_cow() {
        Ok(t) => t,
        Err(_) => {
            return invalid(format!(
                "{what} is not valid Unicode: it holds a lone surrogate (U+D800..U+DFFF), which UTF-8 cannot encode"
            ))
        }
    };
    if text.len() > max_bytes {
        return invalid(format!(
            "{what} has {} bytes of UTF-8, more than max_text_bytes ({max_bytes}); split it, or raise the limit",
            text.len()
        ));
    }
    Ok(text.into_owned())
}

/// The compression options from the JSON of `kompress.CompressFields`' names, over the library's
/// defaults, with `batch` chunks a pass unless they say otherwise.
fn options(json: &str, batch: usize) -> Outcome<CompressOptions> {
    let fields: CompressFields = serde_json::from_str(json).map_err(|e| option_error(json, e))?;
    let fields = CompressFields { batch_size: fields.batch_size.or(Some(batch)), ..fields };
    Ok(fields.apply(&CompressOptions::default())?)
}

/// A one-line message for options that do not deserialize, naming the first option at fault.
fn option_error(json: &str, e: serde_json::Error) -> Fail {
    serde_error(json, e, |v| serde_json::from_value::<CompressFields>(v).map(drop))
}

/// [`option_error`] for the options `parse` reads (it tries each option alone to find the culprit).
fn serde_error(
    json: &str,
    e: serde_json::Error,
    parse: impl Fn(serde_json::Value) -> Result<(), serde_json::Error>,
) -> Fail {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let culprit = map.into_iter().find_map(|(k, v)| {
        let one = serde_json::Value::Object([(k.clone(), v)].into_iter().collect());
        parse(one).err().map(|e| (k, e))
    });
    let (name, e) = match culprit {
        Some((k, e)) => (k, e),
        None => ("options".to_string(), e),
    };
    // serde_json appends "at line 1 column N", which means nothing to a Python caller.
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or_default();
    Fail::Known(Class::InvalidOption, format!("{name}: {message}"))
}

/// A loaded Kompress model with its thread pool. Shared freely between Python threads: every method
/// takes `&self` and runs without the GIL.
#[pyclass(frozen, module = "kompress._kompress")]
struct Runner {
    model: Kompress,
    /// The name the model was given by, as `--model` prints it in results.
    name: String,
    pool: Option<rayon::ThreadPool>,
    threads: Option<usize>,
    max_text_bytes: usize,
}

#[pymethods]
impl Runner {
    #[new]
    #[pyo3(signature = (model, device="auto", dtype="auto", threads=None, offline=false, revision=None, max_text_bytes=MAX_TEXT_BYTES))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keywords
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: &str,
        threads: Option<i64>,
        offline: bool,
        revision: Option<String>,
        max_text_bytes: usize,
    ) -> PyResult<Self> {
        let (opts, pool) = load_setup(py, device, dtype, threads, offline, revision, None)?;
        let loaded =
            detached(py, pool.as_ref(), || Kompress::load(model, &opts).map_err(|e| load_error(model, e)))?;
        Ok(Self {
            model: loaded,
            name: model.to_string(),
            pool,
            threads: threads.map(|n| n as usize),
            max_text_bytes,
        })
    }

    /// Compresses `texts` as one batch (their chunks share forward passes). `options` is the JSON of
    /// `CompressFields`; `progress(words_done, words_total)` is called after each forward pass.
    /// Returns one JSON object per text, as `kompress compress --json` prints it (less `input`).
    #[pyo3(signature = (texts, options="{}", progress=None))]
    fn compress(
        &self,
        py: Python<'_>,
        texts: Vec<Bound<'_, PyAny>>,
        options: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let texts = texts
            .iter()
            .enumerate()
            .map(|(i, t)| text_arg(t, &format!("texts[{i}]"), self.max_text_bytes))
            .collect::<Outcome<Vec<_>>>()
            .map_err(|f| f.into_py(py))?;
        let model = &self.model;
        let batch = default_batch_size(!model.device().is_cpu(), model.precision().linears);
        let opts = options_or_raise(py, options, batch)?;
        detached(py, self.pool.as_ref(), || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let mut lines = Vec::with_capacity(refs.len());
            let mut raised = None;
            let outcome = compress_stream(model, &refs, &opts, |event| {
                match event {
                    Event::Progress(p) => {
                        if let Err(e) = report(progress.as_ref(), p.words_done, p.words_total) {
                            raised = Some(e);
                            return Err(kompress::Error::Unavailable("stopped by Python".into()));
                        }
                    }
                    Event::Done { result, .. } => {
                        lines.push(result.to_json_with_model(&opts, &self.name, model).to_string())
                    }
                    Event::Output { .. } => {}
                }
                Ok(())
            });
            match (outcome, raised) {
                (_, Some(e)) => Err(Fail::Python(e)),
                (Err(e), None) => Err(e.into()),
                (Ok(()), None) => Ok(lines),
            }
        })
    }

    /// Every token's scores, as `kompress score --json` prints them, with the arrays apart for numpy
    /// and each token's word as character offsets into `text`.
    fn score<'py>(&self, py: Python<'py>, text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let text = text_arg(text, "text", self.max_text_bytes).map_err(|f| f.into_py(py))?;
        let model = &self.model;
        let (scores, offsets) = detached(py, self.pool.as_ref(), || {
            let words = kompress::tokenize::words(&text);
            let scores = match words.is_empty() {
                true => {
                    TokenScores { span_score: model.has_span_head().then(Vec::new), ..Default::default() }
                }
                false => model.score_words(&words)?,
            };
            let offsets = token_offsets(&text, &words, &scores.word_ids);
            Ok((scores, offsets))
        })?;
        let out = PyDict::new(py);
        out.set_item("json", serde_json::to_string(&scores).expect("scores serialize"))?;
        out.set_item("input_ids", &scores.input_ids)?;
        let word_ids: Vec<i64> = scores.word_ids.iter().map(|w| w.map_or(-1, i64::from)).collect();
        out.set_item("word_ids", word_ids)?;
        out.set_item("offsets", offsets)?;
        out.set_item("logits", scores.logits.iter().map(|l| l.to_vec()).collect::<Vec<_>>())?;
        out.set_item("token_prob", &scores.token_prob)?;
        out.set_item("span_score", &scores.span_score)?;
        out.set_item("score", &scores.score)?;
        Ok(out)
    }

    /// The model's name as given.
    #[getter]
    fn model(&self) -> &str {
        &self.name
    }

    /// `cpu`, `cuda:N` or `metal`.
    #[getter]
    fn device(&self) -> String {
        kompress::device::device_name(self.model.device())
    }

    /// `f32`, `f16`, `bf16` or `int8`.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.model.precision().name()
    }

    /// The runner's own thread count, or None for rayon's global pool.
    #[getter]
    fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// The longest sequence the model accepts, in tokens.
    #[getter]
    fn max_tokens(&self) -> usize {
        self.model.max_tokens()
    }

    #[getter]
    fn max_text_bytes(&self) -> usize {
        self.max_text_bytes
    }
}

/// The load options and the worker pool of a constructor's keywords (the same for every model class).
fn load_setup(
    py: Python<'_>,
    device: &str,
    dtype: &str,
    threads: Option<i64>,
    offline: bool,
    revision: Option<String>,
    cache_dir: Option<String>,
) -> PyResult<(LoadOptions, Option<rayon::ThreadPool>)> {
    let bad = |m: String| Fail::Known(Class::InvalidOption, m).into_py(py);
    let device: DeviceChoice = device.parse().map_err(|e: kompress::Error| bad(format!("device: {e}")))?;
    let dtype: DTypeChoice = dtype.parse().map_err(|e: kompress::Error| bad(format!("dtype: {e}")))?;
    let pool = match threads {
        None => None,
        Some(n) if n < 1 => return Err(bad(format!("threads: {n}: the thread count must be at least 1"))),
        // As the CLI's --threads: more only adds switching, and thousands exhaust the process.
        Some(n) if n as usize > max_threads() => {
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            return Err(bad(format!(
                "threads: {n}: at most {} threads on this machine ({THREADS_PER_CORE} per core, {cores} core{})",
                max_threads(),
                if cores == 1 { "" } else { "s" }
            )));
        }
        Some(n) => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n as usize)
                .thread_name(|i| format!("kompress-{i}"))
                .build()
                .map_err(|e| bad(format!("threads: {n}: cannot start the worker threads: {e}")))?,
        ),
    };
    let hub = HubOptions { revision, offline, cache_dir: cache_dir.map(Into::into), progress: false };
    Ok((LoadOptions { device, dtype, hub }, pool))
}

/// Threads allowed per core, as the CLI's `--threads`.
const THREADS_PER_CORE: usize = 4;

/// The largest thread count accepted: [`THREADS_PER_CORE`] per core, and never more than 1024.
fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    (THREADS_PER_CORE * cores).min(1024)
}

fn load_error(model: &str, e: kompress::Error) -> Fail {
    Fail::Known(Class::of(&e), format!("cannot load model {model}: {e}"))
}

/// LLMLingua-2 (`llmlingua` 0.2.2's `compress_prompt_llmlingua2`) with a BERT or XLM-RoBERTa token
/// classifier: results byte-identical to llmlingua's. Shared freely between Python threads.
#[pyclass(frozen, module = "kompress._kompress")]
struct LlmLingua2Runner {
    inner: LlmLingua2,
    name: String,
    pool: Option<rayon::ThreadPool>,
    threads: Option<usize>,
    max_text_bytes: usize,
}

#[pymethods]
impl LlmLingua2Runner {
    #[new]
    #[pyo3(signature = (model, device="auto", dtype="auto", threads=None, offline=false, revision=None, cache_dir=None, batch_size=50, max_text_bytes=MAX_TEXT_BYTES))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keywords
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: &str,
        threads: Option<i64>,
        offline: bool,
        revision: Option<String>,
        cache_dir: Option<String>,
        batch_size: usize,
        max_text_bytes: usize,
    ) -> PyResult<Self> {
        if batch_size < 1 {
            let m = format!("batch_size: {batch_size}: at least one chunk a forward pass");
            return Err(Fail::Known(Class::InvalidOption, m).into_py(py));
        }
        let (opts, pool) = load_setup(py, device, dtype, threads, offline, revision, cache_dir)?;
        let mut inner =
            detached(py, pool.as_ref(), || LlmLingua2::load(model, &opts).map_err(|e| load_error(model, e)))?;
        inner.batch_size = batch_size;
        Ok(Self {
            inner,
            name: model.to_string(),
            pool,
            threads: threads.map(|n| n as usize),
            max_text_bytes,
        })
    }

    /// `compress_prompt_llmlingua2(context, **options)`: `options` is the JSON of the library's
    /// `llmlingua2::Options` (llmlingua's keyword names). Returns llmlingua's result dict as JSON.
    #[pyo3(signature = (context, options="{}"))]
    fn compress(&self, py: Python<'_>, context: Vec<Bound<'_, PyAny>>, options: &str) -> PyResult<String> {
        let context = context
            .iter()
            .enumerate()
            .map(|(i, t)| text_arg(t, &format!("context[{i}]"), self.max_text_bytes))
            .collect::<Outcome<Vec<_>>>()
            .map_err(|f| f.into_py(py))?;
        let opts: Llmlingua2Options = serde_json::from_str(options).map_err(|e| {
            serde_error(options, e, |v| serde_json::from_value::<Llmlingua2Options>(v).map(drop)).into_py(py)
        })?;
        detached(py, self.pool.as_ref(), || {
            let out = self.inner.compress(&context, &opts)?;
            Ok(serde_json::to_string(&out).expect("results serialize"))
        })
    }

    /// The model's name as given.
    #[getter]
    fn model(&self) -> &str {
        &self.name
    }

    /// `cpu`, `cuda:N` or `metal`.
    #[getter]
    fn device(&self) -> String {
        kompress::device::device_name(self.inner.model().device())
    }

    /// `f32`, `f16`, `bf16` or `int8`.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.model().precision().name()
    }

    /// The runner's own thread count, or None for rayon's global pool.
    #[getter]
    fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// Chunks scored per forward pass (llmlingua's `max_batch_size`).
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    #[getter]
    fn max_text_bytes(&self) -> usize {
        self.max_text_bytes
    }
}

/// ctxprune (`ctxprune` 0.2.1's `Compressor`) with any token classifier: results byte-identical to
/// ctxprune's. Shared freely between Python threads.
#[pyclass(frozen, module = "kompress._kompress")]
struct CtxpruneRunner {
    inner: Ctxprune,
    name: String,
    pool: Option<rayon::ThreadPool>,
    threads: Option<usize>,
    max_text_bytes: usize,
}

#[pymethods]
impl CtxpruneRunner {
    #[new]
    #[pyo3(signature = (model, device="auto", dtype="auto", threads=None, offline=false, revision=None, cache_dir=None, max_len=512, batch_size=16, max_text_bytes=MAX_TEXT_BYTES))]
    #[allow(clippy::too_many_arguments)] // the Python constructor's keywords
    fn new(
        py: Python<'_>,
        model: &str,
        device: &str,
        dtype: &str,
        threads: Option<i64>,
        offline: bool,
        revision: Option<String>,
        cache_dir: Option<String>,
        max_len: usize,
        batch_size: usize,
        max_text_bytes: usize,
    ) -> PyResult<Self> {
        if batch_size < 1 {
            let m = format!("batch_size: {batch_size}: at least one window a forward pass");
            return Err(Fail::Known(Class::InvalidOption, m).into_py(py));
        }
        let (opts, pool) = load_setup(py, device, dtype, threads, offline, revision, cache_dir)?;
        let mut inner =
            detached(py, pool.as_ref(), || Ctxprune::load(model, &opts).map_err(|e| load_error(model, e)))?;
        inner.set_max_len(max_len).map_err(|e| Fail::lib(e).into_py(py))?;
        inner.batch_size = batch_size;
        Ok(Self {
            inner,
            name: model.to_string(),
            pool,
            threads: threads.map(|n| n as usize),
            max_text_bytes,
        })
    }

    /// `compress(text, **options)`: `options` is the JSON of the library's `ctxprune::Options`
    /// (ctxprune's keyword names); `unit` and `measure` are ctxprune's callables, or None. Returns
    /// ctxprune's result dict as JSON.
    #[pyo3(signature = (text, options="{}", unit=None, measure=None))]
    fn compress(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        options: &str,
        unit: Option<Py<PyAny>>,
        measure: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let text = text_arg(text, "text", self.max_text_bytes).map_err(|f| f.into_py(py))?;
        let opts: CtxpruneOptions = serde_json::from_str(options).map_err(|e| {
            serde_error(options, e, |v| serde_json::from_value::<CtxpruneOptions>(v).map(drop)).into_py(py)
        })?;
        // Python's own exception from a callable, kept to be raised as it was.
        let raised: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
        let out = detached(py, self.pool.as_ref(), || {
            let keep = |e: PyErr| {
                *raised.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                kompress::Error::Invalid("a Python callable raised".into())
            };
            let mut unit_fn = |texts: &[String]| -> kompress::Result<Vec<usize>> {
                let call = |py: Python<'_>, f: &Py<PyAny>| f.call1(py, (texts.to_vec(),))?.extract(py);
                Python::attach(|py| call(py, unit.as_ref().expect("called only when given"))).map_err(keep)
            };
            let mut measure_fn = |t: &str| -> kompress::Result<f64> {
                let call = |py: Python<'_>, f: &Py<PyAny>| f.call1(py, (t,))?.extract(py);
                Python::attach(|py| call(py, measure.as_ref().expect("called only when given"))).map_err(keep)
            };
            type UnitFn<'a> = &'a mut dyn FnMut(&[String]) -> kompress::Result<Vec<usize>>;
            type MeasureFn<'a> = &'a mut dyn FnMut(&str) -> kompress::Result<f64>;
            let callables = Callables {
                unit: unit.is_some().then_some(&mut unit_fn as UnitFn<'_>),
                measure: measure.is_some().then_some(&mut measure_fn as MeasureFn<'_>),
            };
            let out = self.inner.compress_custom(&**self.inner.model(), &text, &opts, callables)?;
            Ok(serde_json::to_string(&out).expect("results serialize"))
        });
        match raised.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => out,
        }
    }

    /// `atom_scores(text)`: `([(whitespace, text)], scores, token counts)`, one entry per atom.
    #[allow(clippy::type_complexity)]
    fn atom_scores(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<(String, String)>, Vec<f64>, Vec<usize>)> {
        let text = text_arg(text, "text", self.max_text_bytes).map_err(|f| f.into_py(py))?;
        detached(py, self.pool.as_ref(), || {
            let s = self.inner.atom_scores(&text)?;
            let atoms = s.atoms.iter().map(|a| (a.ws.to_string(), a.text.to_string())).collect();
            Ok((atoms, s.scores, s.tokens))
        })
    }

    /// The model's name as given.
    #[getter]
    fn model(&self) -> &str {
        &self.name
    }

    /// `cpu`, `cuda:N` or `metal`.
    #[getter]
    fn device(&self) -> String {
        kompress::device::device_name(self.inner.model().device())
    }

    /// `f32`, `f16`, `bf16` or `int8`.
    #[getter]
    fn dtype(&self) -> &'static str {
        self.inner.model().precision().name()
    }

    /// The longest window, specials included (ctxprune's `max_len`).
    #[getter]
    fn max_len(&self) -> usize {
        self.inner.max_len()
    }

    /// Windows scored per forward pass.
    #[getter]
    fn batch_size(&self) -> usize {
        self.inner.batch_size
    }

    /// The runner's own thread count, or None for rayon's global pool.
    #[getter]
    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

fn options_or_raise(py: Python<'_>, json: &str, batch: usize) -> PyResult<CompressOptions> {
    options(json, batch).map_err(|f| f.into_py(py))
}

/// Calls the progress callback, if any, with the GIL; also lets a pending Ctrl-C stop the work.
fn report(callback: Option<&Py<PyAny>>, done: usize, total: usize) -> PyResult<()> {
    Python::attach(|py| {
        py.check_signals()?;
        if let Some(cb) = callback {
            cb.call1(py, (done, total))?;
        }
        Ok(())
    })
}

/// Per token, the character offsets `(start, end)` in `text` of the word it belongs to; `(0, 0)` for
/// the special tokens (as Hugging Face tokenizers report them).
fn token_offsets(text: &str, words: &[&str], word_ids: &[Option<u32>]) -> Vec<(usize, usize)> {
    let base = text.as_ptr() as usize;
    let char_at = |byte: usize| text[..byte].chars().count();
    let spans: Vec<(usize, usize)> = words
        .iter()
        .map(|w| {
            let start = w.as_ptr() as usize - base;
            let first = char_at(start);
            (first, first + w.chars().count())
        })
        .collect();
    word_ids.iter().map(|w| w.map_or((0, 0), |w| spans[w as usize])).collect()
}

/// The largest text accepted by default: the HTTP service's body limit.
const MAX_TEXT_BYTES: usize = 16 << 20;

/// The eviction network: the checkpoint's, or the built-in one.
fn network(checkpoint: Option<&str>) -> Outcome<EvictionNetwork> {
    Ok(match checkpoint {
        Some(path) => EvictionNetwork::load(std::path::Path::new(path))?,
        None => EvictionNetwork::embedded()?,
    })
}

fn policy_arg(name: &str) -> Outcome<PolicyKind> {
    name.parse().map_err(|e: kompress::Error| Fail::Known(Class::InvalidOption, format!("policy: {e}")))
}

/// SuperCompress on one context: the JSON `kompress evict --json [--annotate]` prints.
#[pyfunction]
#[pyo3(signature = (context, question, budget_ratio=0.35, policy="learned", seed=0, checkpoint=None, annotate=false))]
#[allow(clippy::too_many_arguments)] // the Python function's keywords
fn evict(
    py: Python<'_>,
    context: &Bound<'_, PyAny>,
    question: &Bound<'_, PyAny>,
    budget_ratio: f64,
    policy: &str,
    seed: u32,
    checkpoint: Option<&str>,
    annotate: bool,
) -> PyResult<String> {
    let (context, question) = context_args(py, context, question)?;
    let kind = policy_arg(policy).map_err(|f| f.into_py(py))?;
    detached(py, None, || {
        let network = network(checkpoint)?;
        let policy = kind.build(&question, &network, seed);
        let (result, annotations) = compress_detailed(&context, &question, budget_ratio, policy.as_ref())?;
        let value = result.to_json(annotate.then_some(annotations.as_slice()));
        Ok(serde_json::to_string_pretty(&value).expect("results serialize"))
    })
}

/// Every policy (or the ones named) on one context: the JSON `kompress compare --json` prints.
#[pyfunction]
#[pyo3(signature = (context, question, budget_ratio=0.35, policies=None, seed=0, checkpoint=None))]
fn compare(
    py: Python<'_>,
    context: &Bound<'_, PyAny>,
    question: &Bound<'_, PyAny>,
    budget_ratio: f64,
    policies: Option<Vec<String>>,
    seed: u32,
    checkpoint: Option<&str>,
) -> PyResult<String> {
    let (context, question) = context_args(py, context, question)?;
    let kinds = match policies {
        None => PolicyKind::ALL.to_vec(),
        Some(names) => {
            names.iter().map(|n| policy_arg(n)).collect::<Outcome<_>>().map_err(|f| f.into_py(py))?
        }
    };
    detached(py, None, || {
        let network = network(checkpoint)?;
        let rows = compare_policies(&context, &question, budget_ratio, &kinds, &network, seed)?;
        Ok(serde_json::to_string_pretty(&rows).expect("results serialize"))
    })
}

fn context_args(
    py: Python<'_>,
    context: &Bound<'_, PyAny>,
    question: &Bound<'_, PyAny>,
) -> PyResult<(String, String)> {
    let context = text_arg(context, "context", MAX_TEXT_BYTES).map_err(|f| f.into_py(py))?;
    let question = text_arg(question, "question", MAX_TEXT_BYTES).map_err(|f| f.into_py(py))?;
    Ok((context, question))
}

/// Panics inside the guard, so that tests can check that a panic reaches Python as a KompressError.
#[pyfunction]
fn _panic(py: Python<'_>, message: String) -> PyResult<()> {
    detached(py, None, || -> Outcome<()> { panic!("{message}") })
}

/// The `kompress` command line (the library's `kompress::cli::run`, the binary's whole body) on `argv`
/// (`sys.argv`: the program's name first), for the wheel's `kompress` console script
/// (`kompress._cli:main`). Returns the exit status. The GIL is released for the whole run, which
/// writes to file descriptors 1 and 2 as the binary does. A panic prints Rust's usual message (no
/// guard is in flight, so the hook is not quiet) and gives the status a panicking Rust program exits
/// with, 101, as the binary's.
#[pyfunction]
fn _cli_main(py: Python<'_>, argv: Vec<std::ffi::OsString>) -> u8 {
    py.detach(|| catch_unwind(AssertUnwindSafe(|| kompress::cli::run(argv))).unwrap_or(101))
}

#[pymodule]
fn _kompress(m: &Bound<'_, PyModule>) -> PyResult<()> {
    park_idle_candle_workers();
    quiet_guarded_panics();
    m.add_class::<Runner>()?;
    m.add_class::<LlmLingua2Runner>()?;
    m.add_class::<CtxpruneRunner>()?;
    m.add_function(wrap_pyfunction!(evict, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    m.add("DEFAULT_MODEL", kompress::hub::DEFAULT_MODEL)?;
    // The GPU back ends this build has (the `cuda` / `metal` features of the wheel's build).
    let gpus: Vec<&str> = [("cuda", cfg!(feature = "cuda")), ("metal", cfg!(feature = "metal"))]
        .iter()
        .filter(|g| g.1)
        .map(|g| g.0)
        .collect();
    m.add("GPU_BACKENDS", gpus)?;
    Ok(())
}

/// As the CLI does (src/cli/mod.rs): candle's element-wise workers spin after each op, taking
/// cores from the encoder's kernels on a small machine; parking them at once was measured 15-20%
/// faster. Set when the module loads, before candle's pool starts; a value the user set is kept.
fn park_idle_candle_workers() {
    const SPIN_LIMIT: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(SPIN_LIMIT).is_none() {
        std::env::set_var(SPIN_LIMIT, "0");
    }
}
