//! The ModernBERT encoder, written with candle ops: token embeddings + LayerNorm, pre-norm layers of
//! RoPE attention (global or sliding-window, per `Config::layer_types`) and a GeGLU MLP, and a final
//! LayerNorm. No linear biases, LayerNorm biases only under `norm_bias`, exact-erf GELU; the weights are
//! named as in the v1 checkpoints (`encoder.*`) or, for transformers' `ModernBertForTokenClassification`,
//! under `model.*` ([`ModernBert::with_prefix`]).

mod attention;
mod rope;

use candle_core::{DType, Device, Tensor};

use attention::Attention;
pub use attention::AttentionContext;
pub(crate) use attention::Packing;

use crate::config::Config;
use crate::device::{gpu_matmul, Linears, Precision};
use crate::kernels::gelu::GeGlu;
use crate::kernels::int8::{Int8Linear, Int8Rows, Int8Weight};
use crate::kernels::linear::{pack, PackedLinear, PANEL};
use crate::kernels::weight_only::{bf16::Bf16Weight, int8::Int8WoWeight, WoLinear, WoWeight};
use crate::kernels::{isa, Planes};
use crate::weights::Weights;
use crate::Result;

/// LayerNorm, through candle's fused kernel (which wants a bias: a zero one when the checkpoint has none).
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// `name`: the weight's; under `cfg.norm_bias` the bias is the tensor of the same name ending in
    /// `.bias` instead of `.weight`.
    pub fn new(cfg: &Config, w: &Weights, name: &str, dtype: DType) -> Result<Self> {
        let weight = w.get(&[cfg.hidden_size], name, dtype)?;
        let bias = match name.strip_suffix(".weight").filter(|_| cfg.norm_bias) {
            Some(base) => w.get(&[cfg.hidden_size], &format!("{base}.bias"), dtype)?,
            None => weight.zeros_like()?,
        };
        Ok(Self { weight, bias, eps: cfg.norm_eps as f32 })
    }

    /// Normalises over the last dim; the kernel accumulates in f32 for every dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(&x.contiguous()?, &self.weight, &self.bias, self.eps)?)
    }
}

/// Rows per pass of [`Mlp::forward`].
const MLP_ROWS: usize = 2048;

/// GeGLU: `Wo(gelu(input) * gate)` where `[input, gate] = Wi x`.
pub struct Mlp {
    wi: Linear,
    wo: Linear,
    intermediate: usize,
}

impl Mlp {
    pub fn new(cfg: &Config, w: &Weights, prefix: &str, p: impl Into<Precision>) -> Result<Self> {
        let (h, i, p) = (cfg.hidden_size, cfg.intermediate_size, p.into());
        let linear = |shape: &[usize], name: &str| {
            Linear::new(&w.get(shape, &format!("{prefix}.{name}"), p.dtype)?, p.linears)
        };
        Ok(Self { wi: linear(&[2 * i, h], "Wi.weight")?, wo: linear(&[h, i], "Wo.weight")?, intermediate: i })
    }

    /// `residual + mlp(x)`. Inputs `[rows, hidden]` longer than 2048 rows run in slices of rows
    /// (every operation is per row, so the values are the same), so that the intermediate, 3x the
    /// hidden width, is never held whole: 75 + 38 MB in f32 at 8192 tokens.
    pub fn forward(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        if x.rank() != 2 || rows <= MLP_ROWS {
            return self.forward_rows(x, residual);
        }
        let slices = (0..rows)
            .step_by(MLP_ROWS)
            .map(|start| {
                let n = MLP_ROWS.min(rows - start);
                self.forward_rows(&x.narrow(0, start, n)?, &residual.narrow(0, start, n)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&slices, 0)?)
    }

    fn forward_rows(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let wi = self.wi.forward(x)?;
        let hidden = match (wi.device(), wi.dtype()) {
            (Device::Cpu, DType::F32) => wi.apply_op1_no_bwd(&GeGlu)?,
            _ => {
                let last = wi.rank() - 1;
                // Contiguous halves: GPU kernels are not all written for strided inputs.
                let (input, gate) = (
                    wi.narrow(last, 0, self.intermediate)?.contiguous()?,
                    wi.narrow(last, self.intermediate, self.intermediate)?.contiguous()?,
                );
                (input.gelu_erf()? * gate)?
            }
        };
        drop(wi);
        self.wo.forward_add(&hidden, residual)
    }
}

/// One pre-norm encoder layer. Layer 0 has no `attn_norm` (its input is the embedding norm's output).
pub struct EncoderLayer {
    attn_norm: Option<LayerNorm>,
    attn: Attention,
    mlp_norm: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    /// Layer `index` of a v1 checkpoint (`encoder.layers.{index}.*`).
    pub fn new(cfg: &Config, index: usize, w: &Weights, precision: impl Into<Precision>) -> Result<Self> {
        Self::with_prefix(cfg, "encoder", index, w, precision)
    }

    /// Layer `index` under `{prefix}.layers.{index}.*`.
    pub fn with_prefix(
        cfg: &Config,
        prefix: &str,
        index: usize,
        w: &Weights,
        precision: impl Into<Precision>,
    ) -> Result<Self> {
        let precision = precision.into();
        let (p, dtype) = (format!("{prefix}.layers.{index}"), precision.dtype);
        let attn_norm = match index {
            0 => None,
            _ => Some(LayerNorm::new(cfg, w, &format!("{p}.attn_norm.weight"), dtype)?),
        };
        Ok(Self {
            attn_norm,
            attn: Attention::new(cfg, cfg.layer_types[index], w, &format!("{p}.attn"), precision)?,
            mlp_norm: LayerNorm::new(cfg, w, &format!("{p}.mlp_norm.weight"), dtype)?,
            mlp: Mlp::new(cfg, w, &format!("{p}.mlp"), precision)?,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &AttentionContext) -> Result<Tensor> {
        let normed = match &self.attn_norm {
            Some(norm) => norm.forward(x)?,
            None => x.clone(),
        };
        let x = self.attn.forward(normed, x, ctx)?;
        self.mlp.forward(&self.mlp_norm.forward(&x)?, &x)
    }
}

/// The token embedding table: f32 (or the model's dtype); under the int8 forms quantised per row
/// (kompress-base: 155 MB -> 39 MB, what brings int8's peak memory at 8192 tokens under half of f32's);
/// under bf16 on the CPU in bf16 (78 MB).
enum Embeddings {
    Plain(Tensor),
    Int8(Int8Rows),
}

impl Embeddings {
    fn new(cfg: &Config, w: &Weights, p: Precision, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.embeddings.tok_embeddings.weight");
        let table = w.get(&[cfg.vocab_size, cfg.hidden_size], &name, p.dtype)?;
        Ok(match p.linears {
            Linears::Int8 | Linears::Int8WeightOnly { .. } if cfg.hidden_size > 0 => {
                Self::Int8(with_values(&table, |t| Int8Rows::new(t, cfg.hidden_size))?)
            }
            Linears::Bf16 => Self::Plain(table.to_dtype(DType::BF16)?),
            _ => Self::Plain(table),
        })
    }

    /// The rows of `ids` (`[n]`, u32): `[n, hidden]`.
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Self::Plain(table) if table.dtype() == DType::BF16 => {
                Ok(table.index_select(ids, 0)?.to_dtype(DType::F32)?)
            }
            Self::Plain(table) => Ok(table.index_select(ids, 0)?),
            Self::Int8(table) => {
                let ids = ids.to_vec1::<u32>()?;
                let rows = table
                    .gather(&ids)
                    .map_err(|id| crate::Error::Invalid(format!("token id {id} is past the vocabulary")))?;
                let width = table.width();
                Ok(Tensor::from_vec(rows, (ids.len(), width), &Device::Cpu)?)
            }
        }
    }
}

/// `f` of the values of an f32 CPU tensor, read in place when it is contiguous: a copy of the embedding
/// table would be 155 MB more at load.
fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(data)), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    {
        return Ok(f(&data[start..end]));
    }
    drop(storage);
    Ok(f(&t.flatten_all()?.to_vec1::<f32>()?))
}

/// The ModernBERT encoder (`ModernBertModel` without pooling): ids -> last hidden state.
pub struct ModernBert {
    tok_embeddings: Embeddings,
    embed_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    final_norm: LayerNorm,
    cfg: Config,
    precision: Precision,
    device: Device,
}

impl ModernBert {
    /// Builds the encoder from `encoder.*` tensors, checking every name and shape. `precision`: a
    /// dtype, or a [`Precision`] with narrow linear layers (CPU only).
    pub fn new(cfg: &Config, w: &Weights, precision: impl Into<Precision>, device: &Device) -> Result<Self> {
        Self::with_prefix(cfg, w, precision, device, "encoder")
    }

    /// [`new`](Self::new) from the tensors under `{prefix}.` (`model` in transformers'
    /// `ModernBertFor*` checkpoints).
    pub fn with_prefix(
        cfg: &Config,
        w: &Weights,
        precision: impl Into<Precision>,
        device: &Device,
        prefix: &str,
    ) -> Result<Self> {
        let precision = precision.into();
        let dtype = precision.dtype;
        if device.is_cpu() {
            isa::check_variable()?;
        }
        precision.check(device)?;
        Ok(Self {
            tok_embeddings: Embeddings::new(cfg, w, precision, prefix)?,
            embed_norm: LayerNorm::new(cfg, w, &format!("{prefix}.embeddings.norm.weight"), dtype)?,
            layers: crate::weights::build_layers(cfg.num_layers(), device, |i| {
                EncoderLayer::with_prefix(cfg, prefix, i, w, precision)
            })?,
            final_norm: LayerNorm::new(cfg, w, &format!("{prefix}.final_norm.weight"), dtype)?,
            cfg: cfg.clone(),
            precision,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
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
        let ctx = AttentionContext::new(&self.cfg, lengths, t, self.dtype(), &self.device)?;
        let ids = ctx.packed(input_ids.flatten_all()?.unsqueeze(1)?)?.squeeze(1)?;
        let mut x = self.embed_norm.forward(&self.tok_embeddings.lookup(&ids)?)?;
        for layer in &self.layers {
            x = layer.forward(&x, &ctx)?;
        }
        Ok(ctx.padded(self.final_norm.forward(&x)?)?.reshape((b, t, self.cfg.hidden_size))?)
    }
}

/// A bias-free linear layer `x @ W^T`, its weight laid out once at load time for where it runs:
/// int8 panels for `--dtype int8`, weight-only panels for `bf16` (CPU) and `int8-wo`; packed f32 panels
/// for f32 on the CPU (no per-call packing, and each row's result independent of the others'); a
/// contiguous `[in, out]` on the GPU back ends, which take it as it is.
pub(crate) struct Linear {
    weight: LinearWeight,
    out: usize,
}

enum LinearWeight {
    /// `[in, out]`, for candle's matmul (GPUs).
    Plain(Tensor),
    /// `[panels, in, PANEL]`, for [`PackedLinear`].
    Packed(Tensor),
    Int8(Int8Linear),
    WeightOnly(WoLinear),
}

/// How [`Linear::laid_out`] lays a weight out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Plain,
    Packed,
    Int8,
    Bf16,
    Int8Wo(Option<usize>),
}

impl Linear {
    /// `weight`: `[out, in]`, as checkpoints store it (f32 on the CPU for the narrow forms, which
    /// convert it).
    pub fn new(weight: &Tensor, linears: Linears) -> Result<Self> {
        let layout = match linears {
            Linears::Int8 => Layout::Int8,
            Linears::Bf16 => Layout::Bf16,
            Linears::Int8WeightOnly { group } => Layout::Int8Wo(group),
            Linears::Native if weight.device().is_cpu() && weight.dtype() == DType::F32 => Layout::Packed,
            Linears::Native => Layout::Plain,
        };
        Self::laid_out(weight, layout)
    }

    /// [`new`](Self::new) with the layout chosen by the caller (tests run every layout on one machine).
    fn laid_out(weight: &Tensor, layout: Layout) -> Result<Self> {
        let (out, inner) = weight.dims2()?;
        let weight = match layout {
            Layout::Int8 | Layout::Bf16 | Layout::Int8Wo(_)
                if out == 0 || inner == 0 || !weight.device().is_cpu() =>
            {
                return Err(crate::Error::Invalid(format!(
                    "{layout:?} linear: weight [{out}, {inner}] on the CPU"
                )));
            }
            Layout::Bf16 => {
                Self::weight_only(with_values(weight, |w| WoWeight::Bf16(Bf16Weight::new(w, out, inner)))?)
            }
            Layout::Int8Wo(group) => Self::weight_only(with_values(weight, |w| {
                WoWeight::Int8(Int8WoWeight::new(w, out, inner, group))
            })?),
            Layout::Int8 => {
                let weight = with_values(weight, |w| Int8Weight::new(w, out, inner))?;
                LinearWeight::Int8(Int8Linear { weight: std::sync::Arc::new(weight), planes: Planes::ONE })
            }
            Layout::Packed => {
                let panels = with_values(weight, |w| pack(w, out, inner))?;
                LinearWeight::Packed(Tensor::from_vec(
                    panels,
                    (out.div_ceil(PANEL), inner, PANEL),
                    &Device::Cpu,
                )?)
            }
            Layout::Plain => LinearWeight::Plain(weight.t()?.contiguous()?),
        };
        Ok(Self { weight, out })
    }

    fn weight_only(weight: WoWeight) -> LinearWeight {
        LinearWeight::WeightOnly(WoLinear { weight: std::sync::Arc::new(weight), planes: Planes::ONE })
    }

    /// `x`: `[..., in]` of any rank, run as one 2-D product.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (x, shape) = self.flatten(x)?;
        let out = match &self.weight {
            LinearWeight::Int8(op) => x.contiguous()?.apply_op1_no_bwd(op)?,
            LinearWeight::WeightOnly(op) => x.contiguous()?.apply_op1_no_bwd(op)?,
            LinearWeight::Packed(w) => x.contiguous()?.apply_op2_no_bwd(w, &self.packed_op(Planes::ONE))?,
            LinearWeight::Plain(w) => gpu_matmul(&x, w)?,
        };
        Ok(out.reshape(shape)?)
    }

    /// `residual + forward(x)`; the CPU kernels add the product to the residual as they store it.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (flat, shape) = self.flatten(x)?;
        let rows = flat.dim(0)?;
        let (flat, cpu_residual) = (flat.contiguous()?, || residual.reshape((rows, self.out))?.contiguous());
        let out = match &self.weight {
            LinearWeight::Int8(op) => flat.apply_op2_no_bwd(&cpu_residual()?, op)?,
            LinearWeight::WeightOnly(op) => flat.apply_op2_no_bwd(&cpu_residual()?, op)?,
            LinearWeight::Packed(w) => {
                flat.apply_op3_no_bwd(w, &cpu_residual()?, &self.packed_op(Planes::ONE))?
            }
            LinearWeight::Plain(_) => return Ok((residual + self.forward(x)?)?),
        };
        Ok(out.reshape(shape)?)
    }

    /// `forward(x)` for `x` `[rows, in]`, its output columns cut into `planes` equal planes laid out
    /// `[planes, rows, out / planes]` (attention's q, k and v apart). The CPU kernels store it so;
    /// other layouts and devices copy.
    pub fn forward_planes(&self, x: &Tensor, planes: usize) -> Result<Tensor> {
        if planes == 0 || !self.out.is_multiple_of(planes) {
            return Err(crate::Error::Invalid(format!("linear: {} columns in {planes} planes", self.out)));
        }
        let (rows, width) = (x.dim(0)?, self.out / planes);
        let as_planes = Planes { count: planes };
        let out = match &self.weight {
            LinearWeight::Int8(op) => {
                x.contiguous()?.apply_op1_no_bwd(&Int8Linear { planes: as_planes, ..op.clone() })?
            }
            LinearWeight::WeightOnly(op) => {
                x.contiguous()?.apply_op1_no_bwd(&WoLinear { planes: as_planes, ..op.clone() })?
            }
            LinearWeight::Packed(w) => x.contiguous()?.apply_op2_no_bwd(w, &self.packed_op(as_planes))?,
            LinearWeight::Plain(_) => {
                self.forward(x)?.reshape((rows, planes, width))?.transpose(0, 1)?.contiguous()?
            }
        };
        Ok(out.reshape((planes, rows, width))?)
    }

    fn packed_op(&self, planes: Planes) -> PackedLinear {
        PackedLinear { cols: self.out, planes }
    }

    /// `x` as `[rows, in]`, and the shape of the output.
    fn flatten(&self, x: &Tensor) -> Result<(Tensor, Vec<usize>)> {
        let dims = x.dims();
        let (rows, inner) = (dims[..dims.len() - 1].iter().product::<usize>(), dims[dims.len() - 1]);
        let mut shape = dims.to_vec();
        shape[dims.len() - 1] = self.out;
        Ok((x.reshape((rows, inner))?, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts (packed panels on the CPU, `[in, out]` for the GPU back ends' matmul, run here on
    /// the CPU), and both entry points, agree with a plain product. Shapes are ragged in every
    /// direction: rows not a multiple of the packed kernels' tiles or row block, columns not a multiple
    /// of their panel. (`kernels::linear`'s tests hold every path to the defined arithmetic's bits.)
    #[test]
    fn linear_layouts_agree() -> Result<()> {
        for (rows, inner, out) in [(1, 7, 5), (37, 50, 130), (135, 64, 17), (260, 33, 64), (38, 40, 70)] {
            let x = Tensor::randn(0f32, 1.0, (2, rows, inner), &Device::Cpu)?;
            let w = Tensor::randn(0f32, 1.0, (out, inner), &Device::Cpu)?;
            let residual = Tensor::randn(0f32, 1.0, (2, rows, out), &Device::Cpu)?;
            let want = x.broadcast_matmul(&w.t()?)?;
            let with_residual = (&want + &residual)?;
            for layout in [Layout::Plain, Layout::Packed] {
                let linear = Linear::laid_out(&w, layout)?;
                for (got, want) in
                    [(linear.forward(&x)?, &want), (linear.forward_add(&x, &residual)?, &with_residual)]
                {
                    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(diff < 1e-4, "{rows}x{inner}x{out}, {layout:?}: {diff}");
                }
            }
            // The narrow forms are the f32 product up to their rounding (int8: about 1/127 of each
            // row's largest value, per element), which sums to a few % of sqrt(inner), the product's
            // typical size for unit normal operands; a wrong kernel errs by that whole size.
            let bound = 0.1 * (inner as f32).sqrt();
            for layout in [Layout::Int8, Layout::Bf16, Layout::Int8Wo(None), Layout::Int8Wo(Some(16))] {
                let linear = Linear::laid_out(&w, layout)?;
                for (got, want) in
                    [(linear.forward(&x)?, &want), (linear.forward_add(&x, &residual)?, &with_residual)]
                {
                    let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert!(diff < bound, "{rows}x{inner}x{out}, {layout:?}: {diff} >= {bound}");
                }
            }
        }
        Ok(())
    }

    /// Inputs longer than [`MLP_ROWS`] run in slices of rows and give one pass's values (f32 and int8).
    #[test]
    fn the_mlp_in_slices_equals_one_pass() -> Result<()> {
        let (hidden, inter, rows) = (16, 24, 2 * MLP_ROWS + 5);
        let randn = |shape: (usize, usize)| Tensor::randn(0f32, 1.0, shape, &Device::Cpu);
        let (wi, wo) = (randn((2 * inter, hidden))?, randn((hidden, inter))?);
        let (x, residual) = (randn((rows, hidden))?, randn((rows, hidden))?);
        for linears in
            [Linears::Native, Linears::Int8, Linears::Bf16, Linears::Int8WeightOnly { group: None }]
        {
            let mlp =
                Mlp { wi: Linear::new(&wi, linears)?, wo: Linear::new(&wo, linears)?, intermediate: inter };
            let (sliced, whole) = (mlp.forward(&x, &residual)?, mlp.forward_rows(&x, &residual)?);
            assert_eq!(sliced.dims(), whole.dims());
            let diff = (sliced - whole)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "{linears:?}: {diff}");
        }
        Ok(())
    }

    /// `forward_planes` gives `forward`'s values bit for bit, each plane a block of its columns, on
    /// every layout; planes that would split a panel, or do not divide the columns, are refused.
    #[test]
    fn planes_are_the_output_cut_by_columns() -> Result<()> {
        let layouts = [Layout::Plain, Layout::Int8, Layout::Bf16, Layout::Int8Wo(None), Layout::Packed];
        for (rows, inner, out, planes) in [(37, 50, 96, 3), (135, 64, 192, 3), (260, 33, 64, 2)] {
            let x = Tensor::randn(0f32, 1.0, (rows, inner), &Device::Cpu)?;
            let w = Tensor::randn(0f32, 1.0, (out, inner), &Device::Cpu)?;
            for &layout in &layouts {
                let linear = Linear::laid_out(&w, layout)?;
                let want = linear.forward(&x)?.reshape((rows, planes, out / planes))?.transpose(0, 1)?;
                let got = linear.forward_planes(&x, planes)?;
                assert_eq!(got.dims(), want.dims(), "{layout:?}");
                let same = got.flatten_all()?.to_vec1::<f32>()? == want.flatten_all()?.to_vec1::<f32>()?;
                assert!(same, "{rows}x{inner}x{out} in {planes} planes, {layout:?}");
            }
        }
        let (x, w) = (
            Tensor::ones((4, 8), DType::F32, &Device::Cpu)?,
            Tensor::ones((48, 8), DType::F32, &Device::Cpu)?,
        );
        for layout in layouts {
            let linear = Linear::laid_out(&w, layout)?;
            // 3 planes of 16 columns split the 32-column panels; 5 do not divide 48 columns.
            let refused = if layout == Layout::Plain { vec![5] } else { vec![3, 5] };
            for planes in refused {
                let err = linear.forward_planes(&x, planes).unwrap_err().to_string();
                assert!(err.contains("linear"), "{layout:?}, {planes} planes: {err}");
            }
        }
        Ok(())
    }
}
