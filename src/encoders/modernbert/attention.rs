//! Multi-head attention for global (full) and local (sliding-window) layers.
//!
//! Local layers never build an `n x n` matrix: queries are cut into blocks of `w` (the half window),
//! and each block attends to the `3w` keys around it (`[start - w, start + 2w)`), which hold every key
//! within distance `w` of any query in the block. Scores, masks and key windows are therefore linear
//! in the sequence length. Global layers process queries in chunks so that one chunk's scores stay
//! under [`SCORE_BUDGET`] elements.

use std::cell::OnceCell;

use candle_core::{DType, Device, Tensor};

use super::rope::RopeTables;
use super::Linear;
use crate::encoders::config::{Config, LayerKind};
use crate::encoders::device::{gpu_matmul, Precision};
use crate::encoders::weights::Weights;
use crate::kernels::attention::{CpuAttention, Rope};
use crate::Result;

/// Largest number of f32 attention scores materialised at once (32 MiB): on the CPU, larger chunks
/// only cost memory.
const SCORE_BUDGET: usize = 8 << 20;

/// [`SCORE_BUDGET`] on a GPU (128 MiB): each chunk is a handful of kernel launches, so fewer, larger
/// chunks keep the GPU busy (a global layer of 32 x 512 tokens runs in 4 chunks instead of 13, a local
/// one in 2 groups instead of 8) while scores, probabilities and their cast stay under 350 MiB.
const GPU_SCORE_BUDGET: usize = 32 << 20;

/// A masked-out score: finite, so that a row with every key masked (a padding query) stays NaN-free.
const MASKED: f32 = -1e30;

/// Everything the attention layers share within one forward pass, built once per input shape.
pub struct AttentionContext {
    pub batch: usize,
    pub seq_len: usize,
    lengths: Vec<usize>,
    /// Where each sequence starts in the packed layout (the real tokens one after another).
    offsets: Vec<usize>,
    /// Each packed row's position in its sequence.
    positions: Vec<usize>,
    /// Present when the batch is ragged: the layers then run on the real tokens only.
    packing: Option<Packing>,
    pub global_rope: RopeTables,
    pub local_rope: RopeTables,
    /// The half window of local layers.
    window: usize,
    device: Device,
    /// Built on first use by the candle-ops path.
    masks: OnceCell<Masks>,
}

/// The masks of the local layers.
enum LocalMask {
    /// Short sequences: one `[batch, 1, seq, seq]` band mask.
    Full(Tensor),
    /// Long sequences: `[batch, 1, blocks, w, 3w]` masks of the blocked layout.
    Blocked { mask: Tensor, blocks: usize },
}

impl AttentionContext {
    /// Builds the RoPE tables and row maps for sequences padded to `seq_len`, with real `lengths`.
    /// The masks of the candle-ops path are built on first use: the fused CPU kernel needs none.
    pub fn new(
        cfg: &Config,
        lengths: &[usize],
        seq_len: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let hd = cfg.head_dim();
        Ok(Self {
            batch: lengths.len(),
            seq_len,
            lengths: lengths.to_vec(),
            offsets: lengths
                .iter()
                .scan(0, |next, &len| Some(std::mem::replace(next, *next + len)))
                .collect(),
            positions: lengths.iter().flat_map(|&len| 0..len).collect(),
            window: cfg.sliding_window,
            device: device.clone(),
            packing: Packing::new(lengths, seq_len, device)?,
            global_rope: RopeTables::new(cfg.global_rope_theta, hd, seq_len, dtype, device)?,
            local_rope: RopeTables::new(cfg.local_rope_theta, hd, seq_len, dtype, device)?,
            masks: OnceCell::new(),
        })
    }

    fn masks(&self) -> Result<&Masks> {
        if let Some(masks) = self.masks.get() {
            return Ok(masks);
        }
        let masks = Masks::new(&self.lengths, self.seq_len, self.window, &self.device)?;
        Ok(self.masks.get_or_init(|| masks))
    }
}

/// The additive masks of the candle-ops attention path.
struct Masks {
    /// `[batch, 1, 1, seq]` key-padding mask, absent when no sequence is padded.
    global: Option<Tensor>,
    local: LocalMask,
}

impl Masks {
    fn new(lengths: &[usize], seq_len: usize, w: usize, device: &Device) -> Result<Self> {
        let global = if lengths.iter().all(|&l| l == seq_len) {
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
        Ok(Self { global, local })
    }
}

/// Row maps between the packed layout (the real tokens of every sequence, one after another) and the
/// padded `[batch * seq]` layout of the model's input and output and of candle-ops attention. Linear
/// layers, norms, the MLP and the fused CPU attention run packed, so padding costs them nothing.
pub(crate) struct Packing {
    /// For each padded row, its packed row, or the extra zero row past the end for padding.
    to_padded: Tensor,
    /// For each packed row, its padded row.
    to_packed: Tensor,
}

impl Packing {
    pub(crate) fn new(lengths: &[usize], seq_len: usize, device: &Device) -> Result<Option<Self>> {
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
    pub(crate) fn pad(&self, x: &Tensor) -> Result<Tensor> {
        let zero = Tensor::zeros((1, x.dim(1)?), x.dtype(), x.device())?;
        Ok(Tensor::cat(&[x, &zero], 0)?.index_select(&self.to_padded, 0)?)
    }

    /// `[batch * seq, n]` -> `[packed, n]`.
    pub(crate) fn pack(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.index_select(&self.to_packed, 0)?)
    }
}

impl AttentionContext {
    /// Rows of the layers' (packed) layout -> the padded `[batch * seq, n]` layout.
    pub fn padded(&self, x: Tensor) -> Result<Tensor> {
        match &self.packing {
            Some(packing) => packing.pad(&x),
            None => Ok(x),
        }
    }

    /// Rows of the padded `[batch * seq, n]` layout -> the layers' (packed) layout.
    pub fn packed(&self, x: Tensor) -> Result<Tensor> {
        match &self.packing {
            Some(packing) => packing.pack(&x),
            None => Ok(x),
        }
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
    wqkv: Linear,
    wo: Linear,
    kind: LayerKind,
    heads: usize,
    head_dim: usize,
    window: usize,
    /// [`SCORE_BUDGET`] or [`GPU_SCORE_BUDGET`], lowered by tests to exercise the chunked paths.
    score_budget: usize,
    /// Use the fused kernel for f32 on the CPU (switched off by tests to check it against the ops).
    fused: bool,
}

impl Attention {
    pub fn new(cfg: &Config, kind: LayerKind, w: &Weights, prefix: &str, p: Precision) -> Result<Self> {
        let h = cfg.hidden_size;
        let wqkv = w.get(&[3 * h, h], &format!("{prefix}.Wqkv.weight"), p.dtype)?;
        // 1/sqrt(head_dim) folded into the query rows: RoPE is linear, so this equals scaling the
        // scores, without a pass over them (exact for power-of-two head sizes). Int8 quantises after.
        let scale = 1.0 / (cfg.head_dim() as f64).sqrt();
        let wqkv = Tensor::cat(&[(wqkv.narrow(0, 0, h)? * scale)?, wqkv.narrow(0, h, 2 * h)?], 0)?;
        let wqkv = Linear::new(&wqkv, p.linears)?;
        let score_budget = if w.device().is_cpu() { SCORE_BUDGET } else { GPU_SCORE_BUDGET };
        Ok(Self {
            wqkv,
            wo: Linear::new(&w.get(&[h, h], &format!("{prefix}.Wo.weight"), p.dtype)?, p.linears)?,
            kind,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            window: cfg.sliding_window,
            score_budget,
            fused: true,
        })
    }

    /// `residual + attention(x)`. `x`: `[rows, hidden]`, packed when `ctx.packing` is set, else
    /// `[batch * seq, hidden]`; `residual` has the same shape.
    /// `x` is taken by value so that the fused path can free it once projected (at 8192 tokens, 25 MB
    /// less while QKV is held).
    pub fn forward(&self, x: Tensor, residual: &Tensor, ctx: &AttentionContext) -> Result<Tensor> {
        if self.fused && x.device().is_cpu() && x.dtype() == DType::F32 {
            return self.fused_cpu(x, residual, ctx);
        }
        let (q, k, v) = self.project(&x, ctx)?;
        let hidden = x.dim(1)?;
        drop(x);
        let masks = ctx.masks()?;
        let out = match (self.kind, &masks.local) {
            (LayerKind::Global, _) => self.global(&q, &k, &v, masks.global.as_ref())?,
            (LayerKind::Local, LocalMask::Full(mask)) => attend(&q, &k, &v, Some(mask))?,
            (LayerKind::Local, LocalMask::Blocked { mask, blocks }) => {
                self.blocked(&q, &k, &v, mask, *blocks)?
            }
        };
        drop((q, k, v));
        let out = out.transpose(1, 2)?.reshape((ctx.batch * ctx.seq_len, hidden))?;
        self.wo.forward_add(&ctx.packed(out)?, residual)
    }

    /// f32 on the CPU: the fused kernels, in the packed layout from projection to projection.
    fn fused_cpu(&self, x: Tensor, residual: &Tensor, ctx: &AttentionContext) -> Result<Tensor> {
        let rope = self.rope(ctx);
        let rope =
            Rope { heads: self.heads, positions: &ctx.positions, cos: &rope.cos_f32, sin: &rope.sin_f32 };
        let dims = x.dims().to_vec();
        let qkv = self.wqkv.forward_planes(&x, 3)?;
        drop(x);
        qkv.inplace_op1(&rope)?;
        let qkv = qkv.reshape((3, dims[0], self.heads, self.head_dim))?;
        let window = (self.kind == LayerKind::Local).then_some(self.window);
        let attention = CpuAttention { lengths: &ctx.lengths, offsets: &ctx.offsets, window };
        let out = qkv.get(0)?.apply_op3_no_bwd(&qkv.get(1)?, &qkv.get(2)?, &attention)?;
        drop(qkv);
        self.wo.forward_add(&out.reshape(dims)?, residual)
    }

    fn rope<'a>(&self, ctx: &'a AttentionContext) -> &'a RopeTables {
        match self.kind {
            LayerKind::Global => &ctx.global_rope,
            LayerKind::Local => &ctx.local_rope,
        }
    }

    /// q, k, v as `[batch, heads, seq, head_dim]`, RoPE applied to q and k. Each temporary is
    /// dropped as soon as it is used: at 8192 tokens one of them is 75 MB.
    fn project(&self, x: &Tensor, ctx: &AttentionContext) -> Result<(Tensor, Tensor, Tensor)> {
        let shape = (ctx.batch, ctx.seq_len, 3, self.heads, self.head_dim);
        let qkv =
            ctx.padded(self.wqkv.forward(x)?)?.reshape(shape)?.permute((2, 0, 3, 1, 4))?.contiguous()?;
        let rope = self.rope(ctx);
        // v is copied out on its own so that the q/k part of the buffer can be freed (`copy` would clone
        // the whole buffer on the CPU and share it on Metal).
        Ok((rope.apply(&qkv.get(0)?)?, rope.apply(&qkv.get(1)?)?, qkv.get(2)?.force_contiguous()?))
    }

    fn global(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, h, t, _) = q.dims4()?;
        let chunk = (self.score_budget / (b * h * t)).max(1);
        if chunk >= t {
            return attend(q, k, v, mask);
        }
        // Written in place chunk by chunk: no list of parts plus a concatenated copy.
        let out = Tensor::zeros(q.shape(), q.dtype(), q.device())?;
        for start in (0..t).step_by(chunk) {
            let part = attend(&q.narrow(2, start, chunk.min(t - start))?.contiguous()?, k, v, mask)?;
            out.slice_set(&part, 2, start)?;
        }
        Ok(out)
    }

    /// Sliding-window attention in blocks of `w` queries against their `3w` surrounding keys, a group
    /// of blocks at a time so that scores and key windows stay within [`SCORE_BUDGET`].
    fn blocked(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, blocks: usize) -> Result<Tensor> {
        let (b, h, t, d) = q.dims4()?;
        let w = self.window;
        let padded = blocks * w;
        // Keys get w zero rows in front, and enough behind for the last block's window.
        let (k, v) = (k.pad_with_zeros(2, w, padded + w - t)?, v.pad_with_zeros(2, w, padded + w - t)?);
        let q = q.pad_with_zeros(2, 0, padded - t)?;
        let group = (self.score_budget / (b * h * w * 3 * w)).max(1);
        let out = Tensor::zeros((b, h, padded, d), q.dtype(), q.device())?;
        for first in (0..blocks).step_by(group) {
            let n = group.min(blocks - first);
            let windows = |x: &Tensor| -> Result<Tensor> {
                let parts = (first..first + n)
                    .map(|i| x.narrow(2, i * w, 3 * w))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Ok(Tensor::stack(&parts, 2)?.contiguous()?)
            };
            let q_blocks = q.narrow(2, first * w, n * w)?.reshape((b, h, n, w, d))?;
            let part = attend(&q_blocks, &windows(&k)?, &windows(&v)?, Some(&mask.narrow(2, first, n)?))?;
            out.slice_set(&part.reshape((b, h, n * w, d))?, 2, first * w)?;
        }
        Ok(out.narrow(2, 0, t)?)
    }
}

/// softmax(q k^T + mask) v over the last two dims of tensors of any rank (leading dims are batch);
/// scores and softmax in f32 whatever the dtype.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let lead = &q.dims()[..q.rank() - 2];
    let scores = gpu_matmul(&fold(q)?, &fold(k)?.t()?)?;
    let mut shape = lead.to_vec();
    shape.extend(&scores.dims()[1..]);
    let scores = scores.reshape(shape)?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    let out = gpu_matmul(&fold(&probs)?, &fold(v)?)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunked global attention, grouped local blocks and the fused CPU kernel give what one-shot
    /// attention gives, on a ragged batch. Heads of 16 take the fused kernel's `gemm` path; heads of 64
    /// (kompress-base's) its AVX-512 panel path where the CPU has it, with several query blocks, key
    /// panels cut short, windows clipped at both ends and (window 40) starting inside a key panel.
    #[test]
    fn chunking_does_not_change_results() {
        let shapes = [(32, 8, 37, [37, 29]), (128, 64, 150, [150, 97]), (128, 40, 150, [150, 97])];
        for (hidden, window, t, lengths) in shapes {
            let cfg = Config::from_json(&format!(
                r#"{{"hidden_size": {hidden}, "num_attention_heads": 2, "num_hidden_layers": 2, "local_attention": {window}}}"#
            ))
            .unwrap();
            let w = Weights::random(3, &Device::Cpu);
            let ctx = AttentionContext::new(&cfg, &lengths, t, DType::F32, &Device::Cpu).unwrap();
            let x = Tensor::randn(0f32, 1.0, (lengths.iter().sum::<usize>(), hidden), &Device::Cpu).unwrap();
            for kind in [LayerKind::Global, LayerKind::Local] {
                let mut attn = Attention::new(&cfg, kind, &w, "layer", DType::F32.into()).unwrap();
                let fused = attn.forward(x.clone(), &x, &ctx).unwrap();
                attn.fused = false;
                let whole = attn.forward(x.clone(), &x, &ctx).unwrap();
                attn.score_budget = 1; // one query (global) or one block (local) at a time
                let chunked = attn.forward(x.clone(), &x, &ctx).unwrap();
                for (what, other) in [("chunked", chunked), ("fused", fused)] {
                    let diff = (&whole - other)
                        .unwrap()
                        .abs()
                        .unwrap()
                        .max_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    assert!(diff < 1e-5, "hidden {hidden}, {kind:?} {what}: {diff}");
                }
            }
        }
    }
}
