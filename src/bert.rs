//! BERT and XLM-RoBERTa encoders (`BertModel` / `XLMRobertaModel` without pooling), the encoders of the
//! LLMLingua-2 checkpoints: word + absolute position + token-type embeddings, post-LayerNorm layers of
//! biased multi-head attention and an exact-erf GELU MLP. XLM-RoBERTa differs only in its weight prefix
//! (`roberta.`) and in its position ids, which start at `pad_token_id + 1`.
//!
//! The linear layers are the crate's own (`modernbert::Linear`: packed f32 panels on AVX-512 CPUs, int8 under
//! `--dtype int8`, candle's matmul on GPUs), so every precision and device of the ModernBERT encoder
//! serves these too.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use serde::Deserialize;

use crate::config::{Config, LayerKind};
use crate::device::Precision;
use crate::kernels::isa;
use crate::modernbert::Linear;
use crate::weights::Weights;
use crate::{Error, Result};

/// Rows appended to the word-embedding table for llmlingua's 100 `[NEW{i}]` force tokens. llmlingua's
/// `resize_token_embeddings` draws them at random around the table's mean; kompress gives them the mean.
pub const ADDED_ROWS: usize = 100;

/// Which encoder a checkpoint holds, from `config.json`'s `model_type` (or `architectures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Kompress's ModernBERT (`modernbert`, `kompress_v2`, or no `model_type`).
    ModernBert,
    /// `BertForTokenClassification` (mBERT: LLMLingua-2's base model).
    Bert,
    /// `XLMRobertaForTokenClassification` (XLM-R: LLMLingua-2's large model).
    XlmRoberta,
}

#[derive(Deserialize)]
struct FamilyFields {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
}

impl Family {
    /// Reads the family from a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let invalid = |reason: String| Error::Config { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let fields: FamilyFields = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let arch = |prefix: &str| fields.architectures.iter().any(|a| a.starts_with(prefix));
        Ok(match fields.model_type.as_deref() {
            Some("bert") => Self::Bert,
            Some("xlm-roberta" | "roberta") => Self::XlmRoberta,
            None if arch("BertFor") => Self::Bert,
            None if arch("XLMRobertaFor") || arch("RobertaFor") => Self::XlmRoberta,
            _ => Self::ModernBert,
        })
    }

    /// The weight-name prefix of the encoder.
    fn prefix(self) -> &'static str {
        match self {
            Self::XlmRoberta => "roberta",
            _ => "bert",
        }
    }
}

/// The fields of a BERT / XLM-RoBERTa `config.json` this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: u32,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let invalid = |reason: String| Error::Config { path: path.display().to_string(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if cfg.hidden_act != "gelu" {
            return Err(invalid(format!(
                "hidden_act \"{}\" is not supported (only \"gelu\")",
                cfg.hidden_act
            )));
        }
        if cfg.position_embedding_type != "absolute" {
            return Err(invalid(format!(
                "position_embedding_type \"{}\" is not supported (only \"absolute\")",
                cfg.position_embedding_type
            )));
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return Err(invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        Ok(cfg)
    }

    /// The longest sequence the position table allows (XLM-R's first `pad + 1` rows are not positions).
    pub fn max_tokens(&self, family: Family) -> usize {
        match family {
            Family::XlmRoberta => self.max_position_embeddings.saturating_sub(self.pad_token_id as usize + 1),
            _ => self.max_position_embeddings,
        }
    }

    /// The same sizes as a [`Config`], for callers that read the shared summary (all layers global).
    pub fn summary(&self, family: Family) -> Config {
        Config {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            num_attention_heads: self.num_attention_heads,
            max_position_embeddings: self.max_tokens(family),
            norm_eps: self.layer_norm_eps,
            layer_types: vec![LayerKind::Global; self.num_hidden_layers],
            global_rope_theta: 0.0,
            local_rope_theta: 0.0,
            sliding_window: 0,
            pad_token_id: self.pad_token_id,
        }
    }
}

/// LayerNorm with weight and bias (fused kernel).
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn new(w: &Weights, prefix: &str, size: usize, eps: f64, dtype: DType) -> Result<Self> {
        Ok(Self {
            weight: w.get(&[size], &format!("{prefix}.weight"), dtype)?,
            bias: w.get(&[size], &format!("{prefix}.bias"), dtype)?,
            eps: eps as f32,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)?)
    }
}

/// A linear layer with a bias, on the crate's kernels.
struct Dense {
    linear: Linear,
    bias: Tensor,
}

impl Dense {
    fn new(w: &Weights, prefix: &str, out: usize, inner: usize, p: Precision) -> Result<Self> {
        Ok(Self {
            linear: Linear::new(&w.get(&[out, inner], &format!("{prefix}.weight"), p.dtype)?, p.int8)?,
            bias: w.get(&[out], &format!("{prefix}.bias"), p.dtype)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.linear.forward(x)?.broadcast_add(&self.bias)?)
    }
}

/// Multi-head self-attention with its output projection and post-LayerNorm.
struct Attention {
    query: Dense,
    key: Dense,
    value: Dense,
    output: Dense,
    norm: LayerNorm,
    heads: usize,
}

impl Attention {
    fn new(cfg: &BertConfig, w: &Weights, prefix: &str, p: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let dense = |name: &str| Dense::new(w, &format!("{prefix}.{name}"), h, h, p);
        Ok(Self {
            query: dense("self.query")?,
            key: dense("self.key")?,
            value: dense("self.value")?,
            output: dense("output.dense")?,
            norm: LayerNorm::new(w, &format!("{prefix}.output.LayerNorm"), h, cfg.layer_norm_eps, p.dtype)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x`: `[b, t, hidden]`; `mask`: `[b, 1, 1, t]`, 0 for keys to see and a large negative value for padding.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let d = h / self.heads;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((b, t, self.heads, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = (split(self.query.forward(x)?)? * (1.0 / (d as f64).sqrt()))?;
        let (k, v) = (split(self.key.forward(x)?)?, split(self.value.forward(x)?)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        self.norm.forward(&(self.output.forward(&ctx)? + x)?)
    }
}

/// One post-LayerNorm encoder layer.
struct Layer {
    attention: Attention,
    intermediate: Dense,
    output: Dense,
    norm: LayerNorm,
}

impl Layer {
    fn new(cfg: &BertConfig, w: &Weights, prefix: &str, p: Precision) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            attention: Attention::new(cfg, w, &format!("{prefix}.attention"), p)?,
            intermediate: Dense::new(w, &format!("{prefix}.intermediate.dense"), i, h, p)?,
            output: Dense::new(w, &format!("{prefix}.output.dense"), h, i, p)?,
            norm: LayerNorm::new(w, &format!("{prefix}.output.LayerNorm"), h, cfg.layer_norm_eps, p.dtype)?,
        })
    }

    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let x = self.attention.forward(x, mask)?;
        let inner = self.intermediate.forward(&x)?.gelu_erf()?;
        self.norm.forward(&(self.output.forward(&inner)? + x)?)
    }
}

/// A BERT or XLM-RoBERTa encoder: ids -> last hidden state.
pub struct Bert {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    family: Family,
    cfg: BertConfig,
    summary: Config,
    precision: Precision,
    device: Device,
}

impl Bert {
    /// Builds the encoder from `bert.*` or `roberta.*` tensors, checking every name and shape.
    pub fn new(
        cfg: &BertConfig,
        family: Family,
        w: &Weights,
        precision: impl Into<Precision>,
        device: &Device,
    ) -> Result<Self> {
        let p: Precision = precision.into();
        if device.is_cpu() {
            isa::check_variable()?;
        }
        if p.int8 && (!device.is_cpu() || p.dtype != DType::F32) {
            return Err(Error::Device("--dtype int8 runs on the CPU only, with f32 activations".into()));
        }
        let (pre, h) = (family.prefix(), cfg.hidden_size);
        let word =
            w.get(&[cfg.vocab_size, h], &format!("{pre}.embeddings.word_embeddings.weight"), p.dtype)?;
        let mean = word.to_dtype(DType::F32)?.mean_keepdim(0)?.to_dtype(p.dtype)?;
        let word = Tensor::cat(&[&word, &mean.repeat((ADDED_ROWS, 1))?], 0)?;
        let emb =
            |name: &str, rows: usize| w.get(&[rows, h], &format!("{pre}.embeddings.{name}.weight"), p.dtype);
        Ok(Self {
            word,
            position: emb("position_embeddings", cfg.max_position_embeddings)?,
            token_type: emb("token_type_embeddings", cfg.type_vocab_size)?.narrow(0, 0, 1)?,
            embed_norm: LayerNorm::new(
                w,
                &format!("{pre}.embeddings.LayerNorm"),
                h,
                cfg.layer_norm_eps,
                p.dtype,
            )?,
            layers: crate::weights::build_layers(cfg.num_hidden_layers, device, |i| {
                Layer::new(cfg, w, &format!("{pre}.encoder.layer.{i}"), p)
            })?,
            family,
            cfg: cfg.clone(),
            summary: cfg.summary(family),
            precision: p,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.summary
    }

    pub fn bert_config(&self) -> &BertConfig {
        &self.cfg
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn dtype(&self) -> DType {
        self.precision.dtype
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `input_ids`: `[batch, seq]` (u32), right-padded; `lengths`: the real length of each row.
    /// Returns `[batch, seq, hidden]` (rows past a sequence's length are unspecified).
    pub fn forward(&self, input_ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let rows = self.word.dim(0)?;
        if let Some(id) =
            input_ids.flatten_all()?.to_vec1::<u32>()?.into_iter().find(|&id| id as usize >= rows)
        {
            return Err(Error::Invalid(format!("token id {id} is past the vocabulary ({rows} rows)")));
        }
        // XLM-R numbers real tokens from pad + 1 (padding keeps position `pad`); BERT from 0.
        let first = match self.family {
            Family::XlmRoberta => self.cfg.pad_token_id + 1,
            _ => 0,
        };
        let mut positions = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for &len in lengths {
            positions.extend((0..t as u32).map(|i| {
                if (i as usize) < len {
                    first + i
                } else {
                    first.saturating_sub(1)
                }
            }));
            mask.extend((0..t).map(|i| if i < len { 0f32 } else { f32::MIN }));
        }
        let positions = Tensor::from_vec(positions, (b, t), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, 1, 1, t), &self.device)?.to_dtype(self.dtype())?;
        let x = (self.word.embedding_rows(input_ids)? + self.position.embedding_rows(&positions)?)?;
        let mut x = self.embed_norm.forward(&x.broadcast_add(&self.token_type)?)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask)?;
        }
        Ok(x)
    }
}

/// Row lookup of `[b, t]` ids in a `[rows, hidden]` table: `[b, t, hidden]`.
trait EmbeddingRows {
    fn embedding_rows(&self, ids: &Tensor) -> Result<Tensor>;
}

impl EmbeddingRows for Tensor {
    fn embedding_rows(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = self.index_select(&ids.flatten_all()?, 0)?;
        Ok(rows.reshape((b, t, self.dim(D::Minus1)?))?)
    }
}
