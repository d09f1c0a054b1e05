//! Multi-head attention for global (full) and local (sliding-window) layers.
//!
//! Local layers never build an `n x n` matrix: queries are cut into blocks of `w` (the half window),
//! and each block attends to the `3w` keys around it (`[start - w, start + 2w)`), which hold every key
//! within distance `w` of any query in the block. Scores, masks and key windows are therefore linear
//! in the sequence length. Global layers process queries in chunks so that one chunk's scores stay
//! under [`SCORE_BUDGET`] elements.

use candle_core::{DType, Device, Tensor};

use super::linear;
use super::rope::RopeTables;
use crate::config::{Config, LayerKind};
use crate::weights::Weights;
use crate::Result;

/// Largest number of f32 attention scores materialised at once by a global layer (64 MiB).
const SCORE_BUDGET: usize = 16 << 20;

/// A masked-out score: finite, so that a row with every key masked (a padding query) stays NaN-free.
const MASKED: f32 = -1e30;

/// Everything the attention layers share within one forward pass, built once per input shape.
pub struct AttentionContext {
    pub batch: usize,
    pub seq_len: usize,
    /// Present when the batch is ragged: the layers then run on the real tokens only.
    pub packing: Option<Packing>,
    pub global_rope: RopeTables,
    pub local_rope: RopeTables,
    /// `[batch, 1, 1, seq]` additive key-padding mask, absent when no sequence is padded.
    global_mask: Option<Tensor>,
    local: LocalMask,
}

/// The masks of the local layers.
enum LocalMask {
    /// Short sequences: one `[batch, 1, seq, seq]` band mask.
    Full(Tensor),
    /// Long sequences: `[batch, 1, blocks, w, 3w]` masks of the blocked layout.
    Blocked { mask: Tensor, blocks: usize },
}

impl AttentionContext {
    /// Builds the tables and masks for sequences padded to `seq_len`, with real `lengths`.
    pub fn new(
        cfg: &Config,
        lengths: &[usize],
        seq_len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let hd = cfg.head_dim();
        let w = cfg.sliding_window;
        let global_mask = if lengths.iter().all(|&l| l == seq_len) {
            None
        } else {
            let mask = build_mask(lengths, 1, seq_len, |_, k, len| k < len);
            Some(Tensor::from_vec(mask, (lengths.len(), 1, 1, seq_len), device)?)
        };
        let local = if seq_len <= 3 * w {
            let mask = build_mask(lengths, seq_len, seq_len, |q, k, len| k < len && q.abs_diff(k) <= w);
            LocalMask::Full(Tensor::from_vec(mask, (lengths.len(), 1, seq_len, seq_len), device)?)
        } else {
            let blocks = seq_len.div_ceil(w);
            // Row r of block b is query b*w + r; column c is key b*w + c - w.
            let mask = build_mask(lengths, blocks * w, 3 * w, |q, c, len| {
                let key = (q / w) * w + c;
                key >= w && key - w < len && q.abs_diff(key - w) <= w
            });
            LocalMask::Blocked {
                mask: Tensor::from_vec(mask, (lengths.len(), 1, blocks, w, 3 * w), device)?,
                blocks,
            }
        };
        Ok(Self {
            batch: lengths.len(),
            seq_len,
            packing: Packing::new(lengths, seq_len, device)?,
            global_rope: RopeTables::new(cfg.global_rope_theta, hd, seq_len, dtype, device)?,
            local_rope: RopeTables::new(cfg.local_rope_theta, hd, seq_len, dtype, device)?,
            global_mask,
            local,
        })
    }
}

/// Row maps between the packed layout (the real tokens of every sequence, one after another) and the
/// padded `[batch * seq]` layout that attention needs. Linear layers, norms and the MLP run packed, so
/// padding costs them nothing.
pub struct Packing {
    /// For each padded row, its packed row, or the extra zero row past the end for padding.
    to_padded: Tensor,
    /// For each packed row, its padded row.
    to_packed: Tensor,
}

impl Packing {
    fn new(lengths: &[usize], seq_len: usize, device: &Device) -> Result<Option<Self>> {
        if lengths.iter().all(|&l| l == seq_len) {
            return Ok(None);
        }
        let total: usize = lengths.iter().sum();
        let mut to_padded = Vec::with_capacity(lengths.len() * seq_len);
        let mut to_packed = Vec::with_capacity(total);
        let mut next = 0u32;
        for (row, &len) in lengths.iter().enumerate() {
            for pos in 0..seq_len {
                if pos < len {
                    to_packed.push((row * seq_len + pos) as u32);
                    to_padded.push(next);
                    next += 1;
                } else {
                    to_padded.push(total as u32);
                }
            }
        }
        Ok(Some(Self {
            to_padded: Tensor::from_vec(to_padded, lengths.len() * seq_len, device)?,
            to_packed: Tensor::from_vec(to_packed, total, device)?,
        }))
    }

    /// `[packed, n]` -> `[batch * seq, n]`, zeros at padding.
    pub fn pad(&self, x: &Tensor) -> Result<Tensor> {
        let zero = Tensor::zeros((1, x.dim(1)?), x.dtype(), x.device())?;
        Ok(Tensor::cat(&[x, &zero], 0)?.index_select(&self.to_padded, 0)?)
    }

    /// `[batch * seq, n]` -> `[packed, n]`.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.index_select(&self.to_packed, 0)?)
    }
}

/// `rows x cols` additive f32 mask per sequence; `allowed(row, col, length)` decides each entry.
fn build_mask(
    lengths: &[usize],
    rows: usize,
    cols: usize,
    allowed: impl Fn(usize, usize, usize) -> bool,
) -> Vec<f32> {
    let mut mask = Vec::with_capacity(lengths.len() * rows * cols);
    for &len in lengths {
        for r in 0..rows {
            mask.extend((0..cols).map(|c| if allowed(r, c, len) { 0.0 } else { MASKED }));
        }
    }
    mask
}

/// Fused-QKV attention with RoPE, pre-normed by the caller.
pub struct Attention {
    wqkv: Tensor,
    wo: Tensor,
    kind: LayerKind,
    heads: usize,
    head_dim: usize,
    window: usize,
}

impl Attention {
    pub fn new(cfg: &Config, kind: LayerKind, w: &Weights, prefix: &str, dtype: DType) -> Result<Self> {
        let h = cfg.hidden_size;
        let wqkv = w.get(&[3 * h, h], &format!("{prefix}.Wqkv.weight"), dtype)?;
        // 1/sqrt(head_dim) folded into the query rows: RoPE is linear, so this equals scaling the
        // scores, without a pass over them (exact for power-of-two head sizes).
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        let wqkv = Tensor::cat(&[(wqkv.narrow(0, 0, h)? * scale)?, wqkv.narrow(0, h, 2 * h)?], 0)?;
        Ok(Self {
            wqkv,
            wo: w.get(&[h, h], &format!("{prefix}.Wo.weight"), dtype)?,
            kind,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            window: cfg.sliding_window,
        })
    }

    /// `x`: `[rows, hidden]`, packed when `ctx.packing` is set, else `[batch * seq, hidden]`.
    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext) -> Result<Tensor> {
        let (b, t, hidden) = (ctx.batch, ctx.seq_len, x.dim(1)?);
        let mut qkv = linear(x, &self.wqkv)?;
        if let Some(packing) = &ctx.packing {
            qkv = packing.pad(&qkv)?;
        }
        let qkv =
            qkv.reshape((b, t, 3, self.heads, self.head_dim))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
        let rope = match self.kind {
            LayerKind::Global => &ctx.global_rope,
            LayerKind::Local => &ctx.local_rope,
        };
        let q = rope.apply(&qkv.get(0)?)?;
        let k = rope.apply(&qkv.get(1)?)?;
        let v = qkv.get(2)?;
        let out = match (self.kind, &ctx.local) {
            (LayerKind::Global, _) => self.global(&q, &k, &v, ctx.global_mask.as_ref())?,
            (LayerKind::Local, LocalMask::Full(mask)) => attend(&q, &k, &v, Some(mask))?,
            (LayerKind::Local, LocalMask::Blocked { mask, blocks }) => {
                self.blocked(&q, &k, &v, mask, *blocks)?
            }
        };
        let mut out = out.transpose(1, 2)?.reshape((b * t, hidden))?;
        if let Some(packing) = &ctx.packing {
            out = packing.pack(&out)?;
        }
        linear(&out, &self.wo)
    }

    fn global(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, h, t, _) = q.dims4()?;
        let chunk = (SCORE_BUDGET / (b * h * t)).max(1);
        if chunk >= t {
            return attend(q, k, v, mask);
        }
        let parts = (0..t)
            .step_by(chunk)
            .map(|start| attend(&q.narrow(2, start, chunk.min(t - start))?.contiguous()?, k, v, mask))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 2)?)
    }

    /// Sliding-window attention in blocks of `w` queries against their `3w` surrounding keys.
    fn blocked(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, blocks: usize) -> Result<Tensor> {
        let (b, h, t, d) = q.dims4()?;
        let w = self.window;
        let padded = blocks * w;
        let q = q.pad_with_zeros(2, 0, padded - t)?.reshape((b, h, blocks, w, d))?;
        let windows = |x: &Tensor| -> Result<Tensor> {
            let x = x.pad_with_zeros(2, w, padded + w - t)?;
            let parts =
                (0..blocks).map(|i| x.narrow(2, i * w, 3 * w)).collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::stack(&parts, 2)?.contiguous()?)
        };
        let out = attend(&q, &windows(k)?, &windows(v)?, Some(mask))?;
        Ok(out.reshape((b, h, padded, d))?.narrow(2, 0, t)?)
    }
}

/// softmax(q k^T + mask) v over the last two dims of tensors of any rank (leading dims are batch);
/// scores and softmax in f32 whatever the dtype.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let lead = &q.dims()[..q.rank() - 2];
    let scores = fold(q)?.matmul(&fold(k)?.t()?)?;
    let mut shape = lead.to_vec();
    shape.extend(&scores.dims()[1..]);
    let scores = scores.reshape(shape)?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    let out = fold(&probs)?.matmul(&fold(v)?)?;
    let mut shape = lead.to_vec();
    shape.extend(&out.dims()[1..]);
    Ok(out.reshape(shape)?)
}

/// Folds all leading dims into one: candle's matmul takes at most two batch dims.
fn fold(x: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let n = dims.len();
    Ok(x.reshape((dims[..n - 2].iter().product::<usize>(), dims[n - 2], dims[n - 1]))?)
}
