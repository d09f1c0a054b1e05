//! Kompress's two heads on the encoder's last hidden state, always computed in f32.
//!
//! - token head: `Linear(hidden, 2)`, `p = softmax(logits)[1]`;
//! - span head: `Conv1d(hidden -> C, k=5, pad 2) -> GELU -> Conv1d(C -> 1, k=3, pad 1) -> sigmoid`,
//!   run along the sequence (over `[CLS]`/`[SEP]` too);
//! - final score `p * (0.5 + 0.5 * s)`, or `p` for a checkpoint without a span head.

use candle_core::{DType, Tensor, D};

use crate::modernbert::Linear;
use crate::weights::Weights;
use crate::{Linears, Result};

/// Per-token head outputs of a batch, each `[batch, seq]` (logits `[batch, seq, 2]`).
pub struct HeadOutputs {
    pub logits: Tensor,
    pub token_prob: Tensor,
    pub span_score: Option<Tensor>,
    pub score: Tensor,
}

/// The token head and the optional span head.
pub struct Heads {
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
            token_w: Linear::new(&w.get(&[2, hidden], "token_head.weight", DType::F32)?, Linears::Native)?,
            token_b: w.get(&[2], "token_head.bias", DType::F32)?,
            span,
        })
    }

    /// The token classifier of a `*ForTokenClassification` checkpoint (LLMLingua-2): `classifier.*`,
    /// no span head.
    pub fn classifier(hidden: usize, w: &Weights) -> Result<Self> {
        Ok(Self {
            token_w: Linear::new(&w.get(&[2, hidden], "classifier.weight", DType::F32)?, Linears::Native)?,
            token_b: w.get(&[2], "classifier.bias", DType::F32)?,
            span: None,
        })
    }

    /// Whether a span head was loaded.
    pub fn has_span(&self) -> bool {
        self.span.is_some()
    }

    /// `hidden`: `[batch, seq, hidden]`; `valid`: `[batch, seq, 1]` with 1 on real tokens, 0 on padding.
    pub fn forward(&self, hidden: &Tensor, valid: &Tensor) -> Result<HeadOutputs> {
        let hidden = hidden.to_dtype(DType::F32)?;
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
