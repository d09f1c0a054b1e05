//! BERT and XLM-RoBERTa encoders (`BertModel` / `XLMRobertaModel` without pooling), the encoders of the
//! LLMLingua-2 checkpoints: word + absolute position + token-type embeddings, post-LayerNorm layers of
//! biased multi-head attention and an exact-erf GELU MLP. XLM-RoBERTa differs only in its weight prefix
//! (`roberta.`) and in its position ids, which start at `pad_token_id + 1`.
//!
//! The linear layers are the crate's own (`modernbert::Linear`: packed f32 panels on AVX-512 CPUs, int8 under
//! `--dtype int8`, weight-only panels under `bf16` and `int8-wo`, candle's matmul on GPUs), so every precision and device of the ModernBERT encoder
//! serves these too. With f32 activations on the CPU (f32 and the narrow forms) the layers run on the real tokens only (packed), attention is
//! the fused kernel of the ModernBERT encoder and every bias add is fused with the GELU or LayerNorm after
//! it (`kernels::bias`); other devices and dtypes run candle's ops (docs/LLMLINGUA2.md).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::encoders::config::{at_path, invalid, required, Config, LayerKind};
use crate::encoders::device::Precision;
use crate::encoders::modernbert::{Linear, Packing};
use crate::encoders::weights::Weights;
use crate::kernels::attention::CpuAttention;
use crate::kernels::bias::{AddBias, BiasLayerNorm};
use crate::kernels::isa;
use crate::kernels::linear::PANEL;
use crate::{Error, Result};

/// Rows appended to the word-embedding table for llmlingua's 100 `[NEW{i}]` force tokens. llmlingua's
/// `resize_token_embeddings` draws them at random around the table's mean; kompress gives them the mean.
pub const ADDED_ROWS: usize = 100;

/// Which encoder a checkpoint holds, from `config.json`'s `model_type` (or, without one, its
/// `architectures`): see [`Family::from_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Kompress's ModernBERT (`modernbert`, `kompress_v2`, or no `model_type`).
    ModernBert,
    /// `BertForTokenClassification` (mBERT: LLMLingua-2's base model).
    Bert,
    /// `XLMRobertaForTokenClassification` (XLM-R: LLMLingua-2's large model).
    XlmRoberta,
}

/// The text of a `config.json`; an error names the file.
fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Config { path: path.display().to_string(), reason: e.to_string() })
}

/// The fields the family is read from; `null` is the same as left out (see `config::RawConfig`).
#[derive(Deserialize)]
struct FamilyFields {
    model_type: Option<String>,
    architectures: Option<Vec<String>>,
}

impl Family {
    /// The family's `model_type` name (`modernbert`, `bert`, `xlm-roberta`).
    pub fn name(self) -> &'static str {
        match self {
            Self::ModernBert => "modernbert",
            Self::Bert => "bert",
            Self::XlmRoberta => "xlm-roberta",
        }
    }

    /// The family a `config.json` `model_type` names, if it names one this crate runs.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "modernbert" => Some(Self::ModernBert),
            "bert" => Some(Self::Bert),
            "xlm-roberta" | "roberta" => Some(Self::XlmRoberta),
            _ => None,
        }
    }

    /// Reads the family from a `config.json`: its `model_type` decides ([`Family::from_model_type`];
    /// any other value, such as `kompress_v2`, is Kompress's ModernBERT). Only without a `model_type`
    /// (left out or `null`) do the `architectures` decide: a `BertFor...` entry is BERT, an
    /// `XLMRobertaFor...` or `RobertaFor...` entry XLM-RoBERTa, and anything else (or no
    /// `architectures`, or `null`) ModernBERT.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json(&read(path)?).map_err(at_path(path))
    }

    /// [`Family::from_file`] on the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let fields: FamilyFields = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let architectures = fields.architectures.unwrap_or_default();
        let arch = |prefix: &str| architectures.iter().any(|a| a.starts_with(prefix));
        Ok(match fields.model_type.as_deref() {
            Some(named) => Self::from_model_type(named).unwrap_or(Self::ModernBert),
            None if arch("BertFor") => Self::Bert,
            None if arch("XLMRobertaFor") || arch("RobertaFor") => Self::XlmRoberta,
            None => Self::ModernBert,
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

/// The fields of a BERT / XLM-RoBERTa `config.json` this crate reads, resolved: the sizes are
/// required, the rest default to transformers' values.
#[derive(Debug, Clone)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// Default 2.
    pub type_vocab_size: usize,
    /// Default 1e-12.
    pub layer_norm_eps: f64,
    /// Default 0.
    pub pad_token_id: u32,
    /// Default `gelu`, the only one supported.
    pub hidden_act: String,
    /// Default `absolute`, the only one supported.
    pub position_embedding_type: String,
}

/// [`BertConfig`] as written: every field an `Option`, so that `null` is the same as left out.
#[derive(Deserialize)]
struct RawBertConfig {
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    intermediate_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    layer_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    hidden_act: Option<String>,
    position_embedding_type: Option<String>,
}

impl BertConfig {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_json(&read(path)?).map_err(at_path(path))
    }

    /// Parses and checks the text of a `config.json`.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawBertConfig = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let cfg = Self {
            vocab_size: required("vocab_size", raw.vocab_size)?,
            hidden_size: required("hidden_size", raw.hidden_size)?,
            num_hidden_layers: required("num_hidden_layers", raw.num_hidden_layers)?,
            num_attention_heads: required("num_attention_heads", raw.num_attention_heads)?,
            intermediate_size: required("intermediate_size", raw.intermediate_size)?,
            max_position_embeddings: required("max_position_embeddings", raw.max_position_embeddings)?,
            type_vocab_size: raw.type_vocab_size.unwrap_or(2),
            layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-12),
            pad_token_id: raw.pad_token_id.unwrap_or(0),
            hidden_act: raw.hidden_act.unwrap_or_else(|| "gelu".into()),
            position_embedding_type: raw.position_embedding_type.unwrap_or_else(|| "absolute".into()),
        };
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
            norm_bias: true,
            // Not used: the LLMLingua-2 head is a bare `classifier`.
            classifier_bias: true,
            classifier_activation: self.hidden_act.clone(),
        }
    }
}

/// `LayerNorm(x + bias)`, with LayerNorm's weight and bias: every LayerNorm of these encoders follows
/// a bias add (of the linear layer before it, or the token-type row after the embeddings), which runs
/// in the same pass on the CPU.
struct BiasNorm {
    /// `[3, hidden]`: the bias added first, the LayerNorm weight, the LayerNorm bias.
    params: Tensor,
    eps: f32,
}

impl BiasNorm {
    fn new(bias: &Tensor, w: &Weights, prefix: &str, size: usize, eps: f64, dtype: DType) -> Result<Self> {
        let weight = w.get(&[size], &format!("{prefix}.weight"), dtype)?;
        let beta = w.get(&[size], &format!("{prefix}.bias"), dtype)?;
        Ok(Self { params: Tensor::stack(&[bias, &weight, &beta], 0)?, eps: eps as f32 })
    }

    /// `x` is taken by value: on the CPU (f32) it is normalised in place, so it must not share its
    /// storage with a tensor still in use (the outputs of the linear layers never do).
    fn forward(&self, x: Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        if cpu_f32(&x) {
            x.inplace_op2(&self.params, &BiasLayerNorm { eps: self.eps })?;
            return Ok(x);
        }
        let (bias, weight, beta) = (self.params.get(0)?, self.params.get(1)?, self.params.get(2)?);
        Ok(candle_nn::ops::layer_norm(&x.broadcast_add(&bias)?.contiguous()?, &weight, &beta, self.eps)?)
    }
}

/// Whether `x` runs on the fused CPU kernels: f32 on the CPU.
fn cpu_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// `x W^T + b`, then GELU when asked, the bias and GELU added in place on the CPU (f32).
fn biased(linear: &Linear, bias: &Tensor, x: &Tensor, gelu: bool) -> Result<Tensor> {
    let y = linear.forward(x)?;
    if cpu_f32(&y) {
        y.inplace_op2(bias, &AddBias { gelu })?;
        return Ok(y);
    }
    let y = y.broadcast_add(bias)?;
    Ok(if gelu { y.gelu_erf()? } else { y })
}

/// A linear layer's weight (`[out, inner]`) and bias, checked and read.
fn dense(w: &Weights, prefix: &str, out: usize, inner: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
    Ok((
        w.get(&[out, inner], &format!("{prefix}.weight"), dtype)?,
        w.get(&[out], &format!("{prefix}.bias"), dtype)?,
    ))
}

/// The rows of one forward pass: the real tokens of every sequence one after another (packed), which
/// the linear layers, norms and the fused CPU attention run on, so padding costs nothing; and, for the
/// candle-ops attention (other devices and dtypes), the maps to and from the padded layout and its mask.
struct Batch {
    lengths: Vec<usize>,
    /// Where each sequence starts among the packed rows.
    offsets: Vec<usize>,
    seq_len: usize,
    /// Present when the batch is ragged.
    packing: Option<Packing>,
    /// `[batch, 1, 1, seq]`: 0 for real keys, a large negative value for padding (candle-ops path only).
    mask: Option<Tensor>,
}

impl Batch {
    fn new(lengths: &[usize], seq_len: usize, fused: bool, dtype: DType, device: &Device) -> Result<Self> {
        let mask = match fused {
            true => None,
            false => {
                let mask = lengths
                    .iter()
                    .flat_map(|&len| (0..seq_len).map(move |i| if i < len { 0f32 } else { f32::MIN }));
                let mask = Tensor::from_iter(mask, device)?.reshape((lengths.len(), 1, 1, seq_len))?;
                Some(mask.to_dtype(dtype)?)
            }
        };
        Ok(Self {
            lengths: lengths.to_vec(),
            offsets: lengths
                .iter()
                .scan(0, |next, &len| Some(std::mem::replace(next, *next + len)))
                .collect(),
            seq_len,
            packing: Packing::new(lengths, seq_len, device)?,
            mask,
        })
    }

    /// Packed rows -> `[batch * seq, n]`, zeros at padding.
    fn padded(&self, x: Tensor) -> Result<Tensor> {
        match &self.packing {
            Some(packing) => packing.pad(&x),
            None => Ok(x),
        }
    }

    /// `[batch * seq, n]` -> packed rows.
    fn packed(&self, x: Tensor) -> Result<Tensor> {
        match &self.packing {
            Some(packing) => packing.pack(&x),
            None => Ok(x),
        }
    }
}

/// `LayerNorm(dense(x) + residual)`: the block closing attention and the MLP (`BertSelfOutput`,
/// `BertOutput`), the residual added by the product's store and the dense bias by the norm.
struct Output {
    dense: Linear,
    norm: BiasNorm,
}

impl Output {
    /// `prefix.dense` (`[hidden, inner]`) and `prefix.LayerNorm`.
    fn new(cfg: &BertConfig, w: &Weights, prefix: &str, inner: usize, p: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let (weight, bias) = dense(w, &format!("{prefix}.dense"), h, inner, p.dtype)?;
        let norm = BiasNorm::new(&bias, w, &format!("{prefix}.LayerNorm"), h, cfg.layer_norm_eps, p.dtype)?;
        Ok(Self { dense: Linear::new(&weight, p.linears)?, norm })
    }

    fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.norm.forward(self.dense.forward_add(x, residual)?)
    }
}

/// Multi-head self-attention (q, k and v in one projection, the query rows scaled by
/// `1/sqrt(head_dim)` at load) with its output projection and post-LayerNorm.
struct Attention {
    qkv: Linear,
    /// `[3 * hidden]`: the q (scaled), k and v biases.
    qkv_bias: Tensor,
    output: Output,
    heads: usize,
}

impl Attention {
    fn new(cfg: &BertConfig, w: &Weights, prefix: &str, p: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let dense = |name: &str| dense(w, &format!("{prefix}.{name}"), h, h, p.dtype);
        let ((q, qb), (k, kb), (v, vb)) = (dense("self.query")?, dense("self.key")?, dense("self.value")?);
        // Scaling q's rows and bias equals scaling the scores (exactly for power-of-two head sizes,
        // 64 in both published models), without a pass over them; int8 quantises after.
        let scale = 1.0 / ((h / cfg.num_attention_heads) as f64).sqrt();
        let qkv = Linear::new(&Tensor::cat(&[&(q * scale)?, &k, &v], 0)?, p.linears)?;
        Ok(Self {
            qkv,
            qkv_bias: Tensor::cat(&[&(qb * scale)?, &kb, &vb], 0)?,
            output: Output::new(cfg, w, &format!("{prefix}.output"), h, p)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x`: packed rows `[rows, hidden]`.
    fn forward(&self, x: &Tensor, batch: &Batch) -> Result<Tensor> {
        let (rows, h) = x.dims2()?;
        let ctx = match batch.mask {
            None => {
                let qkv = self.qkv.forward_planes(x, 3)?;
                qkv.inplace_op2(&self.qkv_bias, &AddBias { gelu: false })?;
                let qkv = qkv.reshape((3, rows, self.heads, h / self.heads))?;
                let attention =
                    CpuAttention { lengths: &batch.lengths, offsets: &batch.offsets, window: None };
                qkv.get(0)?.apply_op3_no_bwd(&qkv.get(1)?, &qkv.get(2)?, &attention)?.reshape((rows, h))?
            }
            Some(ref mask) => self.with_ops(x, batch, mask)?,
        };
        self.output.forward(&ctx, x)
    }

    /// The attention through candle's ops, on the padded layout: `[rows, hidden]` packed.
    fn with_ops(&self, x: &Tensor, batch: &Batch, mask: &Tensor) -> Result<Tensor> {
        let (b, t, h) = (batch.lengths.len(), batch.seq_len, x.dim(1)?);
        let d = h / self.heads;
        let qkv = batch.padded(self.qkv.forward(x)?.broadcast_add(&self.qkv_bias)?)?;
        let qkv = qkv.reshape((b, t, 3, self.heads, d))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b * t, h))?;
        batch.packed(ctx)
    }
}

/// One post-LayerNorm encoder layer.
struct Layer {
    attention: Attention,
    intermediate: Linear,
    intermediate_bias: Tensor,
    output: Output,
}

impl Layer {
    fn new(cfg: &BertConfig, w: &Weights, prefix: &str, p: Precision) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (intermediate, intermediate_bias) =
            dense(w, &format!("{prefix}.intermediate.dense"), i, h, p.dtype)?;
        Ok(Self {
            attention: Attention::new(cfg, w, &format!("{prefix}.attention"), p)?,
            intermediate: Linear::new(&intermediate, p.linears)?,
            intermediate_bias,
            output: Output::new(cfg, w, &format!("{prefix}.output"), i, p)?,
        })
    }

    fn forward(&self, x: &Tensor, batch: &Batch) -> Result<Tensor> {
        let x = self.attention.forward(x, batch)?;
        let inner = biased(&self.intermediate, &self.intermediate_bias, &x, true)?;
        self.output.forward(&inner, &x)
    }
}

/// The word-embedding table and the row of llmlingua's [`ADDED_ROWS`] force tokens (the table's
/// mean), kept apart: appending them would copy the table (1 GB for XLM-R large) at load.
struct WordEmbeddings {
    table: Tensor,
    /// `[1, hidden]`.
    added: Tensor,
}

impl WordEmbeddings {
    /// The rows of `ids` (each below the table's rows plus [`ADDED_ROWS`]): `[ids, hidden]`.
    fn lookup(&self, ids: &[u32], device: &Device) -> Result<Tensor> {
        let rows = self.table.dim(0)? as u32;
        let clamped = ids.iter().map(|&id| id.min(rows - 1));
        let x = self.table.index_select(&Tensor::from_iter(clamped, device)?, 0)?;
        if ids.iter().all(|&id| id < rows) {
            return Ok(x);
        }
        let added = Tensor::from_iter(ids.iter().map(|&id| u8::from(id >= rows)), device)?;
        let shape = x.shape();
        Ok(added.unsqueeze(1)?.broadcast_as(shape)?.where_cond(&self.added.broadcast_as(shape)?, &x)?)
    }

    /// Rows addressable by ids.
    fn rows(&self) -> Result<usize> {
        Ok(self.table.dim(0)? + ADDED_ROWS)
    }
}

/// A BERT or XLM-RoBERTa encoder: ids -> last hidden state.
pub struct Bert {
    word: WordEmbeddings,
    position: Tensor,
    /// LayerNorm(word + position + the token-type-0 row).
    embed_norm: BiasNorm,
    layers: Vec<Layer>,
    family: Family,
    cfg: BertConfig,
    summary: Config,
    precision: Precision,
    device: Device,
    /// Use the fused CPU kernels for f32 on the CPU (switched off by tests to check them against the ops).
    fused: bool,
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
        p.check(device)?;
        let (pre, h) = (family.prefix(), cfg.hidden_size);
        let emb =
            |name: &str, rows: usize| w.get(&[rows, h], &format!("{pre}.embeddings.{name}.weight"), p.dtype);
        let table = emb("word_embeddings", cfg.vocab_size)?;
        let added = table.to_dtype(DType::F32)?.mean_keepdim(0)?.to_dtype(p.dtype)?;
        let token_type = emb("token_type_embeddings", cfg.type_vocab_size)?.get(0)?;
        Ok(Self {
            word: WordEmbeddings { table, added },
            position: emb("position_embeddings", cfg.max_position_embeddings)?,
            embed_norm: BiasNorm::new(
                &token_type,
                w,
                &format!("{pre}.embeddings.LayerNorm"),
                h,
                cfg.layer_norm_eps,
                p.dtype,
            )?,
            layers: crate::encoders::weights::build_layers(cfg.num_hidden_layers, device, |i| {
                Layer::new(cfg, w, &format!("{pre}.encoder.layer.{i}"), p)
            })?,
            family,
            cfg: cfg.clone(),
            summary: cfg.summary(family),
            precision: p,
            device: device.clone(),
            fused: true,
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
    /// Returns `[batch, seq, hidden]`, with zeros past each sequence's length.
    pub fn forward(&self, input_ids: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if lengths.len() != b || lengths.iter().any(|&len| len > t) {
            return Err(Error::Invalid(format!("lengths {lengths:?} for a batch of {b} x {t} ids")));
        }
        let all = input_ids.flatten_all()?.to_vec1::<u32>()?;
        let rows = self.word.rows()?;
        if let Some(id) = all.iter().find(|&&id| id as usize >= rows) {
            return Err(Error::Invalid(format!("token id {id} is past the vocabulary ({rows} rows)")));
        }
        // XLM-R numbers real tokens from pad + 1; BERT from 0.
        let first = match self.family {
            Family::XlmRoberta => self.cfg.pad_token_id + 1,
            _ => 0,
        };
        let ids: Vec<u32> =
            lengths.iter().enumerate().flat_map(|(row, &len)| all[row * t..][..len].to_vec()).collect();
        let positions = lengths.iter().flat_map(|&len| first..first + len as u32);
        let positions = Tensor::from_iter(positions, &self.device)?;
        let h = self.cfg.hidden_size;
        // The fused kernels write q, k and v as planes of whole panels.
        let fused =
            self.fused && self.device.is_cpu() && self.dtype() == DType::F32 && h.is_multiple_of(PANEL);
        let batch = Batch::new(lengths, t, fused, self.dtype(), &self.device)?;
        let x = (self.word.lookup(&ids, &self.device)? + self.position.index_select(&positions, 0)?)?;
        let mut x = self.embed_norm.forward(x)?;
        for layer in &self.layers {
            x = layer.forward(&x, &batch)?;
        }
        Ok(batch.padded(x)?.reshape((b, t, h))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Linears;

    /// The family, for `model_type` present (several values), `null` or left out, and `architectures`
    /// present (several values), `null` or left out: `model_type` decides; only without one do the
    /// `architectures` (ModernBERT without either).
    #[test]
    fn a_familys_name_reads_back_as_its_model_type() {
        for family in [Family::ModernBert, Family::Bert, Family::XlmRoberta] {
            assert_eq!(Family::from_model_type(family.name()), Some(family));
        }
    }

    #[test]
    fn family_from_model_type_then_architectures() {
        use Family::*;
        let model_types: [(Option<&str>, Option<Family>); 7] = [
            (Some(r#""bert""#), Some(Bert)),
            (Some(r#""xlm-roberta""#), Some(XlmRoberta)),
            (Some(r#""roberta""#), Some(XlmRoberta)),
            (Some(r#""modernbert""#), Some(ModernBert)),
            (Some(r#""kompress_v2""#), Some(ModernBert)),
            (Some("null"), None),
            (None, None),
        ];
        let architectures: [(Option<&str>, Family); 6] = [
            (Some(r#"["BertForTokenClassification"]"#), Bert),
            (Some(r#"["XLMRobertaForTokenClassification"]"#), XlmRoberta),
            (Some(r#"["RobertaForMaskedLM"]"#), XlmRoberta),
            (Some(r#"["ModernBertModel"]"#), ModernBert),
            (Some("null"), ModernBert),
            (None, ModernBert),
        ];
        for (model_type, by_model_type) in model_types {
            for (arch, by_arch) in architectures {
                let fields: Vec<String> = [("model_type", model_type), ("architectures", arch)]
                    .iter()
                    .filter_map(|(k, v)| v.map(|v| format!(r#""{k}": {v}"#)))
                    .collect();
                let json = format!("{{{}}}", fields.join(", "));
                assert_eq!(Family::from_json(&json).unwrap(), by_model_type.unwrap_or(by_arch), "{json}");
            }
        }
    }

    const BERT: &str = r#"{"vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 80}"#;

    /// Every optional field reads `null` as left out (its default); a required one `null` is the
    /// error of one left out, naming it.
    #[test]
    fn bert_config_null_is_left_out() {
        let with = |extra: &str| BertConfig::from_json(&BERT.replace('}', &format!(", {extra}}}"))).unwrap();
        let optional =
            ["type_vocab_size", "layer_norm_eps", "pad_token_id", "hidden_act", "position_embedding_type"];
        let nulls: Vec<String> = optional.iter().map(|f| format!(r#""{f}": null"#)).collect();
        let (nulled, plain) = (with(&nulls.join(", ")), BertConfig::from_json(BERT).unwrap());
        assert_eq!(format!("{nulled:?}"), format!("{plain:?}"));
        assert_eq!((plain.type_vocab_size, plain.layer_norm_eps, plain.pad_token_id), (2, 1e-12, 0));
        assert_eq!(
            format!("{:?}", with(r#""architectures": null, "model_type": null"#)),
            format!("{plain:?}")
        );
        for field in [
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        ] {
            for json in [
                BERT.replace(&format!(r#""{field}": "#), &format!(r#""{field}": null, "x": "#)),
                BERT.replace(&format!(r#""{field}": "#), r#""x": "#),
            ] {
                let msg = BertConfig::from_json(&json).unwrap_err().to_string();
                assert!(msg.contains(&format!("missing field `{field}` (absent or null)")), "{msg}");
            }
        }
    }

    /// The fused CPU path (packed rows, fused attention with its AVX-512 panel kernel at heads of 64,
    /// in-place bias, GELU and LayerNorm) gives the candle-ops path's hidden states, on a ragged batch
    /// holding one of llmlingua's added ids, for both families, in f32 and every narrow form.
    #[test]
    fn fused_path_matches_candle_ops() -> Result<()> {
        let cfg = BertConfig::from_json(
            r#"{"vocab_size": 50, "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                "intermediate_size": 256, "max_position_embeddings": 80, "pad_token_id": 1}"#,
        )
        .unwrap();
        let (lengths, t) = ([37, 20], 37);
        let ids: Vec<u32> =
            (0..2 * t as u32).map(|i| if i == 5 { 50 + 7 } else { (i * 7 + 3) % 50 }).collect();
        let ids = Tensor::from_vec(ids, (2, t), &Device::Cpu)?;
        for family in [Family::Bert, Family::XlmRoberta] {
            for linears in
                [Linears::Native, Linears::Int8, Linears::Bf16, Linears::Int8WeightOnly { group: None }]
            {
                let w = Weights::random(5, &Device::Cpu);
                let p = Precision { dtype: DType::F32, linears };
                let mut bert = Bert::new(&cfg, family, &w, p, &Device::Cpu)?;
                let fused = bert.forward(&ids, &lengths)?;
                bert.fused = false;
                let ops = bert.forward(&ids, &lengths)?;
                for (row, &len) in lengths.iter().enumerate() {
                    let (a, b) = (fused.get(row)?.narrow(0, 0, len)?, ops.get(row)?.narrow(0, 0, len)?);
                    let diff = (a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    let size = b.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(
                        size > 0.5 && diff < 1e-4 * size,
                        "{family:?} {linears:?} row {row}: {diff} of {size}"
                    );
                }
            }
        }
        Ok(())
    }
}
