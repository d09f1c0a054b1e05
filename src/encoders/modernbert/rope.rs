//! Rotary position tables (rotate-half, GPT-NeoX style), computed as transformers computes them.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// cos/sin tables for positions `0..len`, each `[len, head_dim / 2]`: as tensors for candle's `rope`,
/// and as f32 values for the fused CPU kernels.
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor,
    pub sin: Tensor,
    pub cos_f32: Vec<f32>,
    pub sin_f32: Vec<f32>,
}

impl RopeTables {
    /// Angles are formed in f32 exactly like transformers (`1 / theta^(2i/d)`, then `pos * inv_freq`)
    /// so that long positions round the same way; only the finished table is cast to `dtype`.
    pub fn new(theta: f64, head_dim: usize, len: usize, dtype: DType, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for f in &inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let table = |v: &[f32]| -> Result<Tensor> {
            Ok(Tensor::from_slice(v, (len, half), device)?.to_dtype(dtype)?)
        };
        Ok(Self { cos: table(&cos)?, sin: table(&sin)?, cos_f32: cos, sin_f32: sin })
    }

    /// Rotates `x` of shape `[batch, heads, seq, head_dim]` (contiguous).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::rotary_emb::rope(x, &self.cos, &self.sin)?)
    }
}
