//! Bias adds fused with what follows them, in place, for f32 on the CPU: the BERT-family encoders
//! (post-LayerNorm, every linear layer biased) otherwise spend a pass over each product adding its
//! bias (candle's broadcast add, a new tensor each time) and another for GELU or LayerNorm.
//! Other devices and dtypes keep candle's ops (`bert.rs`); tests check these against them.

use candle_core::{CpuStorage, InplaceOp2, Layout};
use rayon::prelude::*;

use super::f32_input;
use super::gelu::gelu;
use super::isa::isa;

/// `x += bias`, then `gelu(x)` when `gelu` is set, in place. `x` is contiguous `[..., width]`;
/// `bias` holds `planes * width` values: rows of plane `p` (x seen as `[planes, rows, width]`) get
/// `bias[p * width..]`, so the q, k and v planes of a fused projection take their own biases.
pub struct AddBias {
    pub gelu: bool,
}

impl InplaceOp2 for AddBias {
    fn name(&self) -> &'static str {
        "kompress-add-bias"
    }

    fn cpu_fwd(
        &self,
        s: &mut CpuStorage,
        l: &Layout,
        b_s: &CpuStorage,
        b_l: &Layout,
    ) -> candle_core::Result<()> {
        let bias = f32_input(b_s, b_l, "add bias")?;
        let (CpuStorage::F32(data), Some((start, end)), Some(&width)) =
            (s, l.contiguous_offsets(), l.dims().last())
        else {
            candle_core::bail!("add bias: expects a contiguous f32 tensor")
        };
        let x = &mut data[start..end];
        let planes = bias.len().checked_div(width).unwrap_or(0);
        if planes == 0 || bias.len() != planes * width || !x.len().is_multiple_of(planes * width) {
            candle_core::bail!("add bias: {} values for rows of {width} in {:?}", bias.len(), l.dims())
        }
        let per_plane = x.len() / planes;
        let (isa, gelu) = (isa(), self.gelu);
        x.par_chunks_mut(width).enumerate().for_each(|(row, x)| {
            let plane = row * width / per_plane;
            add_row(isa, x, &bias[plane * width..][..width], gelu)
        });
        Ok(())
    }
}

wide! {
    /// `x = x + b` (then GELU), element-wise.
    fn add_row(x: &mut [f32], b: &[f32], gelu: bool) => add_row_in
}

#[inline(always)]
fn add_row_in(x: &mut [f32], b: &[f32], with_gelu: bool) {
    match with_gelu {
        true => x.iter_mut().zip(b).for_each(|(x, &b)| *x = gelu(*x + b)),
        false => x.iter_mut().zip(b).for_each(|(x, &b)| *x += b),
    }
}

/// `x = LayerNorm(x + bias) * weight + beta` per row of `x` (contiguous `[..., width]`), in place;
/// `params` is `[3, width]`: the bias, the LayerNorm weight and its bias. Mean and variance are
/// taken in two passes (the variance of the centred values), as PyTorch does.
pub struct BiasLayerNorm {
    pub eps: f32,
}

impl InplaceOp2 for BiasLayerNorm {
    fn name(&self) -> &'static str {
        "kompress-bias-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s: &mut CpuStorage,
        l: &Layout,
        p_s: &CpuStorage,
        p_l: &Layout,
    ) -> candle_core::Result<()> {
        let params = f32_input(p_s, p_l, "bias layer norm")?;
        let (CpuStorage::F32(data), Some((start, end)), Some(&width)) =
            (s, l.contiguous_offsets(), l.dims().last())
        else {
            candle_core::bail!("bias layer norm: expects a contiguous f32 tensor")
        };
        if width == 0 || params.len() != 3 * width {
            candle_core::bail!("bias layer norm: {} parameters for rows of {width}", params.len())
        }
        let (bias, rest) = params.split_at(width);
        let (weight, beta) = rest.split_at(width);
        let (isa, eps) = (isa(), self.eps);
        data[start..end].par_chunks_mut(width).for_each(|x| norm_row(isa, x, bias, weight, beta, eps));
        Ok(())
    }
}

wide! {
    /// One row of [`BiasLayerNorm`].
    fn norm_row(x: &mut [f32], bias: &[f32], weight: &[f32], beta: &[f32], eps: f32) => norm_row_in
}

#[inline(always)]
fn norm_row_in(x: &mut [f32], bias: &[f32], weight: &[f32], beta: &[f32], eps: f32) {
    x.iter_mut().zip(bias).for_each(|(x, &b)| *x += b);
    let n = x.len() as f32;
    let mean = lane_sum(x, |v| v) / n;
    let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, &w), &b) in x.iter_mut().zip(weight).zip(beta) {
        *x = (*x - mean) * inv * w + b;
    }
}

/// `sum f(x[i])` over 16 independent lanes, so that it vectorises.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += f(v));
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Result, Tensor};

    use super::*;

    fn worst(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// Each op gives candle's ops' values: bias per plane, exact-erf GELU, LayerNorm with its bias.
    #[test]
    fn fused_ops_match_candle_ops() -> Result<()> {
        let dev = Device::Cpu;
        let (rows, width) = (37, 48);
        let x = Tensor::randn(0f32, 2.0, (3, rows, width), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 3 * width, &dev)?;
        let want = x.broadcast_add(&bias.reshape((3, 1, width))?)?;
        let got = x.copy()?;
        got.inplace_op2(&bias, &AddBias { gelu: false })?;
        assert!(worst(&got, &want)? == 0.0);

        let x = x.reshape((3 * rows, width))?;
        let bias = bias.narrow(0, 0, width)?;
        let want = x.broadcast_add(&bias)?.gelu_erf()?;
        let got = x.copy()?;
        got.inplace_op2(&bias, &AddBias { gelu: true })?;
        assert!(worst(&got, &want)? < 1e-5);

        let (weight, beta) = (Tensor::randn(1f32, 0.1, width, &dev)?, Tensor::randn(0f32, 0.1, width, &dev)?);
        let want = candle_nn::ops::layer_norm(&x.broadcast_add(&bias)?, &weight, &beta, 1e-5)?;
        let got = x.copy()?;
        got.inplace_op2(&Tensor::stack(&[&bias, &weight, &beta], 0)?, &BiasLayerNorm { eps: 1e-5 })?;
        assert!(worst(&got, &want)? < 1e-5);

        // A bias that fits no plane layout is refused, not read past.
        assert!(x
            .copy()?
            .inplace_op2(&Tensor::zeros(5, candle_core::DType::F32, &dev)?, &AddBias { gelu: false })
            .is_err());
        Ok(())
    }
}
