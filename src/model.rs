//! The Kompress runner: load a model once, then score many texts.

use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

use crate::encoders::bert::{Bert, BertConfig, Family};
use crate::encoders::config::{at_path, invalid, Config};
use crate::encoders::device::{DTypeChoice, DeviceChoice, Precision};
use crate::encoders::heads::Heads;
use crate::encoders::hub::{HubOptions, ModelFiles};
use crate::encoders::modernbert::ModernBert;
use crate::encoders::tokenize::{words, WordEncoding, WordTokenizer};
use crate::encoders::weights::Weights;
use crate::{Error, Result};

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    pub dtype: DTypeChoice,
    /// Used when the model comes from the hub.
    pub hub: HubOptions,
}

impl LoadOptions {
    /// These options with `auto` as dtype made f32, for output identical to a reference's
    /// ([`DTypeChoice::for_parity`]): what the compat methods (LLMLingua-2, ctxprune) load with.
    pub fn for_parity(&self) -> Self {
        Self { dtype: self.dtype.for_parity(), ..self.clone() }
    }
}

/// Per-token outputs for one sequence; every vector has one entry per token, specials included.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct TokenScores {
    pub input_ids: Vec<u32>,
    pub word_ids: Vec<Option<u32>>,
    /// Token-head logits `(l0, l1)`: class 1 means keep.
    pub logits: Vec<[f32; 2]>,
    /// `softmax(logits)[1]`.
    pub token_prob: Vec<f32>,
    /// The span head's sigmoid output; `None` for a checkpoint without a span head.
    pub span_score: Option<Vec<f32>>,
    /// `token_prob * (0.5 + 0.5 * span_score)`, or `token_prob` without a span head.
    pub score: Vec<f32>,
}

/// A loaded Kompress model: encoder, heads and tokenizer on one device.
///
/// ```no_run
/// use kompress::{Kompress, LoadOptions};
/// let model = Kompress::from_pretrained("chopratejas/kompress-base", &LoadOptions::default())?;
/// let scores = model.score_text("Please make sure that you do not delete the file /etc/hosts.")?;
/// println!("{:?}", scores.score);
/// # Ok::<(), kompress::Error>(())
/// ```
pub struct Kompress {
    scorer: Scorer,
    tokenizer: WordTokenizer,
    load_times: LoadTimes,
}

/// How long the parts of loading a model took (`kompress -v` prints them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadTimes {
    /// Opening the checkpoint: its header (and the mapping, if it is mapped).
    pub open: Duration,
    /// Building encoder and heads: reading every tensor and laying it out (packing, quantising).
    pub network: Duration,
    /// Building the tokenizer, on a thread of its own while the network is built.
    pub tokenizer: Duration,
}

/// The network alone (encoder + heads): token ids in, per-token scores out.
pub struct Scorer {
    encoder: Encoder,
    heads: Heads,
}

/// The model family behind a [`Scorer`]: Kompress's ModernBERT, or an LLMLingua-2 BERT / XLM-RoBERTa.
enum Encoder {
    ModernBert(ModernBert),
    Bert(Bert),
}

impl Encoder {
    fn config(&self) -> &Config {
        match self {
            Self::ModernBert(e) => e.config(),
            Self::Bert(e) => e.config(),
        }
    }

    fn device(&self) -> &Device {
        match self {
            Self::ModernBert(e) => e.device(),
            Self::Bert(e) => e.device(),
        }
    }

    fn precision(&self) -> Precision {
        match self {
            Self::ModernBert(e) => e.precision(),
            Self::Bert(e) => e.precision(),
        }
    }

    fn forward(&self, ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        match self {
            Self::ModernBert(e) => e.forward(ids, lengths),
            Self::Bert(e) => e.forward(ids, lengths),
        }
    }
}

impl Kompress {
    /// Loads a local model directory (`config.json`, `tokenizer.json`, `model.safetensors` or
    /// `merged.pt`).
    ///
    /// ```
    /// use kompress::{Kompress, LoadOptions};
    /// let model = Kompress::from_dir("tests/fixtures/models/v5", &LoadOptions::default())?;
    /// let scores = model.score_text("Keep the numbers 42 and 0x7f.")?;
    /// assert_eq!(scores.score.len(), scores.input_ids.len());
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn from_dir(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        Self::from_files(&ModelFiles::from_dir(dir)?, opts)
    }

    /// Loads a Hugging Face repo (downloaded into the HF cache, or from the cache when offline).
    pub fn from_pretrained(repo_id: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_files(&ModelFiles::from_hub(repo_id, &opts.hub)?, opts)
    }

    /// A local directory if `model` names one, else a Hugging Face repo id.
    pub fn load(model: &str, opts: &LoadOptions) -> Result<Self> {
        Self::from_files(&ModelFiles::locate(model, &opts.hub)?, opts)
    }

    /// Loads from explicit files.
    pub fn from_files(files: &ModelFiles, opts: &LoadOptions) -> Result<Self> {
        Self::from_files_on(files, &opts.device.open()?, opts.dtype)
    }

    /// Loads from explicit files onto a device already opened (see [`DeviceChoice::open_explained`]).
    /// The tokenizer is built on a second thread while the network is.
    pub fn from_files_on(files: &ModelFiles, device: &Device, dtype: DTypeChoice) -> Result<Self> {
        let precision = dtype.precision(device)?;
        let started = Instant::now();
        // Every tensor is copied out of the file (packed, quantised, converted or moved to a device),
        // so reading them unmapped keeps the file's pages out of the peak memory (int8, kompress-base
        // shape at 512 tokens: 580 -> 151 MB; f32 345 MB lower; XLM-R large f32 5.4 -> 2.3 GB,
        // docs/LLMLINGUA2.md). The price: f32 loaded about 0.4 s slower from a cold page cache
        // (docs/PERFORMANCE.md, "The whole job").
        let weights = Weights::open_unmapped(&files.weights, device)?;
        let open = started.elapsed();
        let (scorer, tokenizer) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| timed(|| WordTokenizer::from_file(&files.tokenizer)));
            let scorer = timed(|| Scorer::from_config_file(&files.config, &weights, precision));
            (scorer, tokenizer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        let ((scorer, network), (tokenizer, tokenizer_time)) = (scorer?, tokenizer?);
        Ok(Self { scorer, tokenizer, load_times: LoadTimes { open, network, tokenizer: tokenizer_time } })
    }

    /// How long loading took, part by part.
    pub fn load_times(&self) -> LoadTimes {
        self.load_times
    }

    pub fn config(&self) -> &Config {
        self.scorer.config()
    }

    pub fn device(&self) -> &Device {
        self.scorer.device()
    }

    pub fn dtype(&self) -> DType {
        self.scorer.dtype()
    }

    /// The dtype, and whether the linear layers run in int8.
    pub fn precision(&self) -> Precision {
        self.scorer.precision()
    }

    /// The network without the tokenizer.
    pub fn scorer(&self) -> &Scorer {
        &self.scorer
    }

    /// Drops the tokenizer, keeping the network.
    pub fn into_scorer(self) -> Scorer {
        self.scorer
    }

    pub fn tokenizer(&self) -> &WordTokenizer {
        &self.tokenizer
    }

    /// Whether the checkpoint has a span head.
    pub fn has_span_head(&self) -> bool {
        self.scorer.heads.has_span()
    }

    /// The longest sequence (in tokens, specials included) the model accepts.
    pub fn max_tokens(&self) -> usize {
        self.scorer.max_tokens()
    }

    /// Scores the whitespace words of `text` (line by line) as one sequence. Text without any word
    /// gives an empty result.
    pub fn score_text(&self, text: &str) -> Result<TokenScores> {
        self.score_words(&words(text))
    }

    /// Scores words as one pre-split sequence; an error if it exceeds [`Self::max_tokens`].
    pub fn score_words<S: AsRef<str>>(&self, words: &[S]) -> Result<TokenScores> {
        if words.is_empty() {
            return Ok(TokenScores::default());
        }
        let enc = self.tokenizer.encode_words(words)?;
        Ok(self.score_encodings(std::slice::from_ref(&enc))?.remove(0))
    }

    /// Scores encoded sequences as one right-padded batch. Each result equals scoring that
    /// sequence alone (padding is masked in attention and in the span convolutions).
    pub fn score_encodings(&self, encodings: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        self.scorer.score_encodings(encodings)
    }

    /// The encoder's last hidden state for a padded batch (see [`Scorer::hidden_states`]).
    pub fn hidden_states(&self, encodings: &[WordEncoding]) -> Result<Option<Tensor>> {
        self.scorer.hidden_states(encodings)
    }
}

/// `f`'s result and how long it took.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let started = Instant::now();
    f().map(|t| (t, started.elapsed()))
}

impl Scorer {
    /// Builds encoder and heads from a checkpoint, checking every tensor's name and shape. `precision`:
    /// a dtype, or a [`Precision`] (see [`DTypeChoice::precision`]).
    pub fn new(cfg: &Config, weights: &Weights, precision: impl Into<Precision>) -> Result<Self> {
        let device = weights.device();
        Ok(Self {
            encoder: Encoder::ModernBert(ModernBert::new(cfg, weights, precision, device)?),
            heads: Heads::new(cfg.hidden_size, weights)?,
        })
    }

    /// Builds transformers' `ModernBertForTokenClassification` (ctxprune's model, or any fine-tuned
    /// ModernBERT / mmBERT token classifier): the encoder under `model.`, then `head.*` and
    /// `classifier.*` (2 labels, class 1 = keep; see [`Heads::modernbert_classifier`]).
    ///
    /// ```
    /// use kompress::{weights::Weights, Config, Scorer};
    /// let cfg = Config::from_file("tests/fixtures/models/ctxprune-tiny/config.json")?;
    /// let device = candle_core::Device::Cpu;
    /// let weights = Weights::open("tests/fixtures/models/ctxprune-tiny/model.safetensors", &device)?;
    /// let scorer = Scorer::new_token_classifier(&cfg, &weights, candle_core::DType::F32)?;
    /// assert_eq!(scorer.architecture(), "ModernBertForTokenClassification");
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn new_token_classifier(
        cfg: &Config,
        weights: &Weights,
        precision: impl Into<Precision>,
    ) -> Result<Self> {
        let device = weights.device();
        Ok(Self {
            encoder: Encoder::ModernBert(ModernBert::with_prefix(cfg, weights, precision, device, "model")?),
            heads: Heads::modernbert_classifier(cfg, weights)?,
        })
    }

    /// Builds a BERT or XLM-RoBERTa token classifier (an LLMLingua-2 checkpoint): `classifier.*` is its head.
    pub fn new_bert(
        cfg: &BertConfig,
        family: Family,
        weights: &Weights,
        precision: impl Into<Precision>,
    ) -> Result<Self> {
        let device = weights.device();
        Ok(Self {
            encoder: Encoder::Bert(Bert::new(cfg, family, weights, precision, device)?),
            heads: Heads::classifier(cfg.hidden_size, weights)?,
        })
    }

    /// Builds whichever family `config.json` names (its `model_type` / `architectures`). A ModernBERT is
    /// Kompress's (`encoder.*`, `token_head.*`, `span_conv.*`) when the checkpoint has
    /// `encoder.embeddings.tok_embeddings.weight`, else transformers' `ModernBertForTokenClassification`
    /// when it has `model.embeddings.tok_embeddings.weight` (the tensor names decide, since both say
    /// `model_type: modernbert` and a config made by transformers 5 may carry `"architectures": null`);
    /// `architectures` naming another `ModernBertFor*` head (sequence classification, masked LM...) is
    /// refused.
    pub fn from_config_file(
        config: &Path,
        weights: &Weights,
        precision: impl Into<Precision>,
    ) -> Result<Self> {
        match Family::from_file(config)? {
            Family::ModernBert => {
                let cfg = Config::from_file(config)?;
                if !weights.contains("encoder.embeddings.tok_embeddings.weight")
                    && weights.contains("model.embeddings.tok_embeddings.weight")
                {
                    check_token_classification(config)?;
                    return Self::new_token_classifier(&cfg, weights, precision).map_err(at_path(config));
                }
                Self::new(&cfg, weights, precision)
            }
            family => Self::new_bert(&BertConfig::from_file(config)?, family, weights, precision),
        }
    }

    /// What the checkpoint is, in transformers' terms: `KompressForTokenClassification` (Kompress's
    /// ModernBERT with its token head and, if present, span head), `ModernBertForTokenClassification`,
    /// `BertForTokenClassification` or `XLMRobertaForTokenClassification`.
    pub fn architecture(&self) -> &'static str {
        match (&self.encoder, self.heads.has_prediction_head()) {
            (Encoder::ModernBert(_), false) => "KompressForTokenClassification",
            (Encoder::ModernBert(_), true) => "ModernBertForTokenClassification",
            (Encoder::Bert(e), _) if e.family() == Family::Bert => "BertForTokenClassification",
            (Encoder::Bert(_), _) => "XLMRobertaForTokenClassification",
        }
    }

    /// The model family.
    pub fn family(&self) -> Family {
        match &self.encoder {
            Encoder::ModernBert(_) => Family::ModernBert,
            Encoder::Bert(e) => e.family(),
        }
    }

    /// The encoder's sizes (for BERT / XLM-R, the same sizes in ModernBERT's terms, all layers global).
    pub fn config(&self) -> &Config {
        self.encoder.config()
    }

    pub fn device(&self) -> &Device {
        self.encoder.device()
    }

    pub fn dtype(&self) -> DType {
        self.encoder.precision().dtype
    }

    /// The dtype, and whether the linear layers run in int8.
    pub fn precision(&self) -> Precision {
        self.encoder.precision()
    }

    /// The longest sequence (in tokens, specials included) the model accepts.
    pub fn max_tokens(&self) -> usize {
        self.config().max_position_embeddings
    }

    /// Scores encoded sequences as one right-padded batch.
    pub fn score_encodings(&self, encodings: &[WordEncoding]) -> Result<Vec<TokenScores>> {
        let Some(batch) = self.batch(encodings)? else { return Ok(Vec::new()) };
        let hidden = self.encoder.forward(&batch.ids, &batch.lengths)?;
        let out = self.heads.forward(&hidden, &batch.valid)?;
        let rows = |t: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(t.to_dtype(DType::F32)?.to_vec2()?) };
        let (prob, score) = (rows(&out.token_prob)?, rows(&out.score)?);
        let span = out.span_score.as_ref().map(rows).transpose()?;
        let logits: Vec<Vec<Vec<f32>>> = out.logits.to_vec3()?;
        Ok(encodings
            .iter()
            .enumerate()
            .map(|(i, enc)| {
                let n = enc.len();
                TokenScores {
                    input_ids: enc.input_ids.clone(),
                    word_ids: enc.word_ids.clone(),
                    logits: logits[i][..n].iter().map(|l| [l[0], l[1]]).collect(),
                    token_prob: prob[i][..n].to_vec(),
                    span_score: span.as_ref().map(|s| s[i][..n].to_vec()),
                    score: score[i][..n].to_vec(),
                }
            })
            .collect())
    }

    /// The encoder's last hidden state for a padded batch, `[batch, seq, hidden]` in the model's
    /// dtype (rows past a sequence's length are unspecified); `None` for an empty batch.
    pub fn hidden_states(&self, encodings: &[WordEncoding]) -> Result<Option<Tensor>> {
        self.batch(encodings)?.map(|b| self.encoder.forward(&b.ids, &b.lengths)).transpose()
    }

    fn batch(&self, encodings: &[WordEncoding]) -> Result<Option<Batch>> {
        let Some(t) = encodings.iter().map(WordEncoding::len).max().filter(|&t| t > 0) else {
            return Ok(None);
        };
        if t > self.max_tokens() {
            return Err(Error::TooLong { tokens: t, max: self.max_tokens() });
        }
        let pad = self.config().pad_token_id;
        let mut ids = Vec::with_capacity(encodings.len() * t);
        let mut valid = Vec::with_capacity(encodings.len() * t);
        for enc in encodings {
            ids.extend(enc.input_ids.iter().copied().chain(std::iter::repeat(pad)).take(t));
            valid.extend((0..t).map(|i| if i < enc.len() { 1f32 } else { 0f32 }));
        }
        let device = self.device();
        let b = encodings.len();
        Ok(Some(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            valid: Tensor::from_vec(valid, (b, t, 1), device)?,
            lengths: encodings.iter().map(WordEncoding::len).collect(),
        }))
    }
}

/// Refuses a `model.`-prefixed ModernBERT checkpoint whose `architectures` name another transformers head
/// than token classification: its `classifier` (if any) scores the whole sequence, not each token.
fn check_token_classification(config: &Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Fields {
        architectures: Option<Vec<String>>,
    }
    let text = std::fs::read_to_string(config).map_err(|e| Error::io(config, e))?;
    let fields: Fields = serde_json::from_str(&text).map_err(|e| at_path(config)(invalid(e.to_string())))?;
    let other = fields
        .architectures
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.starts_with("ModernBertFor") && a != "ModernBertForTokenClassification");
    match other {
        Some(arch) => Err(at_path(config)(invalid(format!(
            "architectures names {arch}: only ModernBertForTokenClassification (a keep probability per \
             token) can score tokens"
        )))),
        None => Ok(()),
    }
}

/// A right-padded batch on the device.
struct Batch {
    ids: Tensor,
    valid: Tensor,
    lengths: Vec<usize>,
}
