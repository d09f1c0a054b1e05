//! `EvictionPolicyNetwork`: Linear(9,64) -> LayerNorm(64) -> GELU -> Linear(64,64) -> GELU ->
//! Linear(64,1), one keep logit per token (reference: `model.py`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};

use super::records::FEATURE_DIM;
use crate::encoders::weights::{check_tensor, is_pickle};
use crate::kernels::gelu::GeluErf;
use crate::{Error, Result};

/// Hidden width of the network.
pub const HIDDEN_DIM: usize = 64;
/// PyTorch's `nn.LayerNorm` default epsilon.
pub(super) const LN_EPS: f64 = 1e-5;

/// This crate's trained weights (see `weights/README.md` for the command and seed).
const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../weights/evict-default.safetensors");

/// The names and shapes of the `state_dict`, in PyTorch's `nn.Sequential` numbering.
pub const TENSOR_SHAPES: [(&str, &[usize]); 8] = [
    ("net.0.weight", &[HIDDEN_DIM, FEATURE_DIM]),
    ("net.0.bias", &[HIDDEN_DIM]),
    ("net.1.weight", &[HIDDEN_DIM]),
    ("net.1.bias", &[HIDDEN_DIM]),
    ("net.3.weight", &[HIDDEN_DIM, HIDDEN_DIM]),
    ("net.3.bias", &[HIDDEN_DIM]),
    ("net.5.weight", &[1, HIDDEN_DIM]),
    ("net.5.bias", &[1]),
];

/// The 4,993-parameter keep-score MLP.
#[derive(Debug, Clone)]
pub struct EvictionNetwork {
    input: Linear,
    norm: LayerNorm,
    hidden: Linear,
    output: Linear,
}

impl EvictionNetwork {
    /// Builds the network from a var builder holding the `net.*` tensors (f32).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp("net");
        let linear = |i: usize, o: usize, name: &str| candle_nn::linear(i, o, vb.pp(name));
        let norm = vb.pp("1");
        Ok(Self {
            input: linear(FEATURE_DIM, HIDDEN_DIM, "0")?,
            norm: LayerNorm::new(norm.get(HIDDEN_DIM, "weight")?, norm.get(HIDDEN_DIM, "bias")?, LN_EPS),
            hidden: linear(HIDDEN_DIM, HIDDEN_DIM, "3")?,
            output: linear(HIDDEN_DIM, 1, "5")?,
        })
    }

    /// Keep logits for f32 features of shape `(..., 9)` on the CPU; the result drops the last
    /// dimension. Inference only: the fused layer norm and GELU kernels have no gradient.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(&self.input.forward(features)?)?;
        let h = self.hidden.forward(&h.apply_op1_no_bwd(&GeluErf)?)?.apply_op1_no_bwd(&GeluErf)?;
        Ok(self.output.forward(&h)?.squeeze(candle_core::D::Minus1)?)
    }

    /// The weights shipped with this crate, trained by `kompress train-evict`.
    ///
    /// ```
    /// let net = kompress::evict::EvictionNetwork::embedded()?;
    /// let logits = net.logits(&[0.5, 0.5, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])?;
    /// assert_eq!(logits.len(), 1);
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn embedded() -> Result<Self> {
        Self::from_safetensors_bytes(EMBEDDED_WEIGHTS, "<embedded weights>")
    }

    /// Loads a checkpoint: a PyTorch `state_dict` (`.pt`/`.pth`/`.bin`, as the reference saves it) or
    /// safetensors (any other extension).
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        if is_pickle(path) {
            let tensors = candle_core::pickle::read_all(path)
                .map_err(|e| Error::Checkpoint { path: name.clone(), reason: e.to_string() })?;
            Self::from_tensors(tensors.into_iter().collect(), &name)
        } else {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            Self::from_safetensors_bytes(&bytes, &name)
        }
    }

    /// Loads safetensors bytes; `name` only labels errors.
    pub fn from_safetensors_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| Error::Checkpoint { path: name.to_string(), reason: e.to_string() })?;
        Self::from_tensors(tensors, name)
    }

    /// Checks every expected tensor's presence and shape, then builds the network in f32.
    pub(super) fn from_tensors(tensors: HashMap<String, Tensor>, name: &str) -> Result<Self> {
        for (key, shape) in TENSOR_SHAPES {
            check_tensor(name, key, shape, tensors.get(key).map(Tensor::dims))?;
        }
        Self::new(VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu))
    }

    /// Keep logits of one context's row-major `n x 9` feature matrix.
    pub fn logits(&self, features: &[f32]) -> Result<Vec<f32>> {
        if !features.len().is_multiple_of(FEATURE_DIM) {
            return Err(Error::Invalid(format!(
                "feature matrix has {} values, not a multiple of {FEATURE_DIM}",
                features.len()
            )));
        }
        let n = features.len() / FEATURE_DIM;
        if n == 0 {
            return Ok(Vec::new());
        }
        let xs = Tensor::from_slice(features, (n, FEATURE_DIM), &Device::Cpu)?;
        Ok(self.forward(&xs)?.to_vec1()?)
    }

    /// Keep logits of many contexts in one forward pass. The network scores each token on its own, so
    /// the contexts are stacked row-wise rather than padded: no work is spent on padding.
    pub fn logits_batch(&self, contexts: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if contexts.iter().any(|c| c.len() % FEATURE_DIM != 0) {
            return Err(Error::Invalid(format!(
                "a feature matrix is not a multiple of {FEATURE_DIM} values"
            )));
        }
        let all: Vec<f32> = contexts.concat();
        let flat = self.logits(&all)?;
        let mut out = Vec::with_capacity(contexts.len());
        let mut start = 0;
        for ctx in contexts {
            let n = ctx.len() / FEATURE_DIM;
            out.push(flat[start..start + n].to_vec());
            start += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_shapes_and_missing_tensors_are_named() {
        let mut tensors = HashMap::new();
        for (name, shape) in TENSOR_SHAPES {
            tensors.insert(name.to_string(), Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap());
        }
        tensors.insert("net.3.weight".into(), Tensor::zeros((64, 63), DType::F32, &Device::Cpu).unwrap());
        let err = EvictionNetwork::from_tensors(tensors.clone(), "x").unwrap_err().to_string();
        assert!(err.contains("net.3.weight") && err.contains("[64, 63]"), "{err}");
        tensors.remove("net.1.bias");
        let err = EvictionNetwork::from_tensors(tensors, "x").unwrap_err().to_string();
        assert!(err.contains("`net.1.bias` is missing"), "{err}");
    }
}
