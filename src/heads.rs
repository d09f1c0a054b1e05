//! Kompress's two heads on the encoder's last hidden state, always computed in f32.
//!
//! - token head: `Linear(hidden, 2)`, `p = softmax(logits)[1]`;
//! - span head: `Conv1d(hidden -> C, k=5, pad 2) -> GELU -> Conv1d(C -> 1, k=3, pad 1) -> sigmoid`,
//!   run along the sequence (over `[CLS]`/`[SEP]` too);
//! - final score `p * (0.5 + 0.5 * s)`, or `p` for a checkpoint without a span head.
//!
//! The token classifiers (`*ForTokenClassification`) have one head: `classifier` (`Linear(hidden, 2)`, class
//! 1 = keep), after transformers' `ModernBertPredictionHead` for ModernBERT ones
//! (`head.norm(act(head.dense(h)))`, see [`PredictionHead`]).

use candle_core::{DType, Tensor, D};

use crate::config::{invalid, Config};
use crate::modernbert::{LayerNorm, Linear};
use crate::weights::Weights;
use crate::{Linears, Result};

/// An activation of transformers' `ACT2FN`, by the name a `config.json` gives it
/// (`classifier_activation`): the ones a ModernBERT classifier plausibly uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`, `gelu_python`: the exact erf form.
    Gelu,
    /// The tanh approximation `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`: `gelu_new`,
    /// `gelu_pytorch_tanh`, `gelu_python_tanh` and `gelu_fast` (the same formula, differently written).
    GeluTanh,
    /// `quick_gelu`: `x * sigmoid(1.702 x)`.
    QuickGelu,
    Relu,
    /// `silu`, `swish`: `x * sigmoid(x)`.
    Silu,
    Tanh,
    Sigmoid,
    /// `linear`: the identity.
    Identity,
}

impl Activation {
    /// The activation `ACT2FN[name]` computes; an error (naming it) for one not supported here.
    ///
    /// ```
    /// use kompress::heads::Activation;
    /// assert_eq!(Activation::from_name("gelu_pytorch_tanh")?, Activation::GeluTanh);
    /// assert!(Activation::from_name("xielu").is_err());
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" | "gelu_python" => Self::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_python_tanh" | "gelu_fast" => Self::GeluTanh,
            "quick_gelu" => Self::QuickGelu,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            "tanh" => Self::Tanh,
            "sigmoid" => Self::Sigmoid,
            "linear" => Self::Identity,
            other => {
                return Err(invalid(format!(
                    "classifier_activation \"{other}\" is not supported (gelu, gelu_python, gelu_new, \
                     gelu_pytorch_tanh, gelu_python_tanh, gelu_fast, quick_gelu, relu, silu, swish, tanh, \
                     sigmoid, linear)"
                )))
            }
        })
    }

    /// Applies it elementwise.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Gelu => x.gelu_erf()?,
            Self::GeluTanh => x.gelu()?,
            Self::QuickGelu => (x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?,
            Self::Relu => x.relu()?,
            Self::Silu => x.silu()?,
            Self::Tanh => x.tanh()?,
            Self::Sigmoid => candle_nn::ops::sigmoid(x)?,
            Self::Identity => x.clone(),
        })
    }
}

/// transformers' `ModernBertPredictionHead`: `head.norm(act(head.dense(h)))`, `head.dense` with a bias
/// only under `classifier_bias`, `head.norm` a LayerNorm with the encoder's eps and a bias only under
/// `norm_bias`. In f32, as the other heads.
pub struct PredictionHead {
    dense: Linear,
    dense_bias: Option<Tensor>,
    act: Activation,
    norm: LayerNorm,
}

impl PredictionHead {
    /// Loads `head.*`, checking names and shapes.
    pub fn new(cfg: &Config, w: &Weights) -> Result<Self> {
        let h = cfg.hidden_size;
        let dense_bias = match cfg.classifier_bias {
            true => Some(w.get(&[h], "head.dense.bias", DType::F32)?),
            false => None,
        };
        Ok(Self {
            dense: Linear::new(&w.get(&[h, h], "head.dense.weight", DType::F32)?, Linears::Native)?,
            dense_bias,
            act: Activation::from_name(&cfg.classifier_activation)?,
            norm: LayerNorm::new(cfg, w, "head.norm.weight", DType::F32)?,
        })
    }

    /// `[batch, seq, hidden]` (f32) -> the same shape.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let mut x = self.dense.forward(hidden)?;
        if let Some(bias) = &self.dense_bias {
            x = x.broadcast_add(bias)?;
        }
        self.norm.forward(&self.act.forward(&x)?)
    }
}

/// Per-token head outputs of a batch, each `[batch, seq]` (logits `[batch, seq, 2]`).
pub struct HeadOutputs {
    pub logits: Tensor,
    pub token_prob: Tensor,
    pub span_score: Option<Tensor>,
    pub score: Tensor,
}

/// The token head and the optional span head.
pub struct Heads {
    /// A `ModernBertForTokenClassification`'s prediction head, run before the token head.
    prediction: Option<PredictionHead>,
    token_w: Linear,
    token_b: Tensor,
    span: Option<SpanHead>,
}

impl Heads {
    /// Loads `token_head.*` and, when the checkpoint has it, `span_conv.*`.
    pub fn new(hidden: usize, w: &Weights) -> Result<Self> {
        let span = match w.contains("span_conv.0.weight") {
            true => Some(SpanHead::new(hidden, w)?),
            false => None,
        };
        Ok(Self {
            prediction: None,
            token_w: Linear::new(&w.get(&[2, hidden], "token_head.weight", DType::F32)?, Linears::Native)?,
            token_b: w.get(&[2], "token_head.bias", DType::F32)?,
            span,
        })
    }

    /// The token classifier of a `*ForTokenClassification` checkpoint (LLMLingua-2): `classifier.*`,
    /// no span head.
    pub fn classifier(hidden: usize, w: &Weights) -> Result<Self> {
        Ok(Self {
            prediction: None,
            token_w: Linear::new(&w.get(&[2, hidden], "classifier.weight", DType::F32)?, Linears::Native)?,
            token_b: w.get(&[2], "classifier.bias", DType::F32)?,
            span: None,
        })
    }

    /// The heads of transformers' `ModernBertForTokenClassification` (ctxprune's model, any fine-tuned
    /// ModernBERT / mmBERT token classifier): [`PredictionHead`] (`head.*`), then `classifier.*` with 2
    /// labels (class 1 = keep); no span head.
    pub fn modernbert_classifier(cfg: &Config, w: &Weights) -> Result<Self> {
        Ok(Self { prediction: Some(PredictionHead::new(cfg, w)?), ..Self::classifier(cfg.hidden_size, w)? })
    }

    /// Whether a prediction head (`head.*`) runs before the token head.
    pub fn has_prediction_head(&self) -> bool {
        self.prediction.is_some()
    }

    /// Whether a span head was loaded.
    pub fn has_span(&self) -> bool {
        self.span.is_some()
    }

    /// `hidden`: `[batch, seq, hidden]`; `valid`: `[batch, seq, 1]` with 1 on real tokens, 0 on padding.
    pub fn forward(&self, hidden: &Tensor, valid: &Tensor) -> Result<HeadOutputs> {
        let mut hidden = hidden.to_dtype(DType::F32)?;
        if let Some(head) = &self.prediction {
            hidden = head.forward(&hidden)?;
        }
        let logits = self.token_w.forward(&hidden)?.broadcast_add(&self.token_b)?;
        let token_prob =
            candle_nn::ops::softmax_last_dim(&logits)?.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?;
        let (span_score, score) = match &self.span {
            Some(span) => {
                let s = span.forward(&hidden, valid)?;
                let score = (&token_prob * ((&s * 0.5)? + 0.5)?)?;
                (Some(s), score)
            }
            None => (None, token_prob.clone()),
        };
        Ok(HeadOutputs { logits, token_prob, span_score, score })
    }
}

/// The span CNN. Each convolution runs as `k` matrix products, one per kernel tap, over the
/// zero-padded sequence shifted by that tap: no unfolded `k x` copy of the hidden state is made
/// (126 MB at 8192 tokens).
struct SpanHead {
    /// One `[in] -> [out]` product per tap.
    w1: Vec<Linear>,
    b1: Tensor,
    w2: Vec<Linear>,
    b2: Tensor,
}

impl SpanHead {
    fn new(hidden: usize, w: &Weights) -> Result<Self> {
        let channels = w.shape_of("span_conv.0.weight").map_or(256, |s| s[0]);
        Ok(Self {
            w1: taps(&w.get(&[channels, hidden, 5], "span_conv.0.weight", DType::F32)?)?,
            b1: w.get(&[channels], "span_conv.0.bias", DType::F32)?,
            w2: taps(&w.get(&[1, channels, 3], "span_conv.2.weight", DType::F32)?)?,
            b2: w.get(&[1], "span_conv.2.bias", DType::F32)?,
        })
    }

    /// `[batch, seq, hidden]` -> `[batch, seq]`. Padding positions are zeroed before each
    /// convolution so that a padded row sees exactly the zero padding it would see alone.
    fn forward(&self, hidden: &Tensor, valid: &Tensor) -> Result<Tensor> {
        let x = conv(&hidden.broadcast_mul(valid)?, &self.w1, &self.b1)?.gelu_erf()?;
        let x = conv(&x.broadcast_mul(valid)?, &self.w2, &self.b2)?;
        Ok(candle_nn::ops::sigmoid(&x.squeeze(D::Minus1)?)?)
    }
}

/// Conv1d weight `[out, in, k]` -> `k` linear layers `[out, in]`.
fn taps(weight: &Tensor) -> Result<Vec<Linear>> {
    (0..weight.dim(2)?).map(|j| Linear::new(&weight.narrow(2, j, 1)?.squeeze(2)?, Linears::Native)).collect()
}

/// Same-padded Conv1d along dim 1 of `[batch, seq, in]`: `sum_j x[t + j - k/2] W_j^T + bias`.
fn conv(x: &Tensor, taps: &[Linear], bias: &Tensor) -> Result<Tensor> {
    let (t, k) = (x.dim(1)?, taps.len());
    let padded = x.pad_with_zeros(1, k / 2, k / 2)?;
    let mut acc = taps[0].forward(&padded.narrow(1, 0, t)?)?;
    for (j, tap) in taps.iter().enumerate().skip(1) {
        acc = (acc + tap.forward(&padded.narrow(1, j, t)?)?)?;
    }
    Ok(acc.broadcast_add(bias)?)
}
