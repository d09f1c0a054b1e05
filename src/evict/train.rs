//! Training the eviction network in candle, after the reference's recipe: synthetic contexts from the
//! simulator, oracle labels, BCE-with-logits masked over padding, AdamW at lr 1e-3.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use super::network::{EvictionNetwork, TENSOR_SHAPES};
use super::records::{Records, FEATURE_DIM};
use super::rng::PyRandom;
use super::simulator::generate_long_context;
use crate::{Error, Result};

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// Seeds weight initialisation, the simulator and the attention noise: same seed, same weights.
    pub seed: u64,
    /// Optimiser steps (the reference: 40 fast, 200 full).
    pub steps: usize,
    /// Contexts per step (the reference: 8 fast, 16 full).
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
}

impl Default for TrainConfig {
    /// The reference's full recipe.
    fn default() -> Self {
        Self { seed: 0, steps: 200, batch: 16, lr: 1e-3 }
    }
}

/// A trained network and the variables holding its weights.
pub struct Trained {
    /// The network, sharing its weights with `vars`.
    pub network: EvictionNetwork,
    /// The weights, named like the PyTorch `state_dict`.
    pub vars: VarMap,
}

impl Trained {
    /// Writes the weights as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.vars
            .save(path)
            .map_err(|e| Error::Checkpoint { path: path.display().to_string(), reason: e.to_string() })
    }
}

/// PyTorch's default initialisation, drawn from `rng`: `nn.Linear` weights and biases uniform in
/// `±1/sqrt(fan_in)`, `nn.LayerNorm` weight 1 and bias 0. candle's own initialisers are not seedable.
fn init_vars(rng: &mut PyRandom) -> Result<VarMap> {
    let vars = VarMap::new();
    {
        let mut data = vars.data().lock().map_err(|_| Error::Invalid("poisoned variable map".into()))?;
        for (name, shape) in TENSOR_SHAPES {
            let len: usize = shape.iter().product();
            let values: Vec<f32> = if name.starts_with("net.1.") {
                vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; len]
            } else {
                // Weight and bias of a layer share its weight's fan-in ("net.K." prefixes both).
                let layer = &name[..name.rfind('.').map_or(0, |i| i + 1)];
                let fan_in = TENSOR_SHAPES
                    .iter()
                    .find(|(n, _)| n.starts_with(layer))
                    .map_or(1, |(_, s)| s[s.len() - 1]);
                let bound = 1.0 / (fan_in as f64).sqrt();
                (0..len).map(|_| rng.uniform(-bound, bound) as f32).collect()
            };
            let t = Tensor::from_vec(values, shape, &Device::Cpu)?;
            data.insert(name.to_string(), Var::from_tensor(&t)?);
        }
    }
    Ok(vars)
}

/// One training batch: padded features `(B, T, 9)`, labels and mask `(B, T)`.
struct Batch {
    features: Tensor,
    labels: Tensor,
    mask: Tensor,
}

/// Draws `size` simulator contexts, as the reference's `generate_dataset` does, and pads them.
fn draw_batch(rng: &mut PyRandom, size: usize) -> Result<Batch> {
    let mut samples = Vec::with_capacity(size);
    for _ in 0..size {
        let target = 600 + rng.randint(0, 400);
        let (lines, question) = generate_long_context(rng, target);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let records = Records::for_training(&refs, question, rng);
        let labels: Vec<f32> =
            records.records.iter().map(|r| f32::from(u8::from(r.oracle_important))).collect();
        samples.push((records.features(), labels));
    }
    let t = samples.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let (mut feats, mut labels, mut mask) =
        (vec![0f32; size * t * FEATURE_DIM], vec![0f32; size * t], vec![0f32; size * t]);
    for (b, (f, l)) in samples.iter().enumerate() {
        feats[b * t * FEATURE_DIM..][..f.len()].copy_from_slice(f);
        labels[b * t..][..l.len()].copy_from_slice(l);
        mask[b * t..][..l.len()].fill(1.0);
    }
    Ok(Batch {
        features: Tensor::from_vec(feats, (size, t, FEATURE_DIM), &Device::Cpu)?,
        labels: Tensor::from_vec(labels, (size, t), &Device::Cpu)?,
        mask: Tensor::from_vec(mask, (size, t), &Device::Cpu)?,
    })
}

/// Mean binary cross-entropy with logits over the positions where `mask` is 1, in the numerically
/// stable form `max(x, 0) - x * y + log(1 + exp(-|x|))`.
pub fn masked_bce_with_logits(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_token = ((logits.relu()? - (logits * labels)?)? + softplus_neg_abs)?;
    Ok(((per_token * mask)?.sum_all()? / mask.sum_all()?)?)
}

/// Trains a network from scratch; `progress(step, loss)` is called after every step.
pub fn train(config: &TrainConfig, mut progress: impl FnMut(usize, f32)) -> Result<Trained> {
    if config.steps == 0 || config.batch == 0 || !config.lr.is_finite() || config.lr <= 0.0 {
        return Err(Error::Invalid(
            "training needs steps >= 1, batch >= 1 and a positive learning rate".into(),
        ));
    }
    let mut rng = PyRandom::new(config.seed);
    let vars = init_vars(&mut rng)?;
    let network = EvictionNetwork::new(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu))?;
    let mut opt = AdamW::new(vars.all_vars(), ParamsAdamW { lr: config.lr, ..ParamsAdamW::default() })?;
    for step in 0..config.steps {
        let batch = draw_batch(&mut rng, config.batch)?;
        let logits = network.forward_train(&batch.features)?;
        let loss = masked_bce_with_logits(&logits, &batch.labels, &batch.mask)?;
        opt.backward_step(&loss)?;
        progress(step, loss.to_scalar::<f32>()?);
    }
    Ok(Trained { network, vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_bce_ignores_padding_and_matches_formula() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[2.0f32, -1.0, 50.0]], &dev)?;
        let labels = Tensor::new(&[[1.0f32, 0.0, 0.0]], &dev)?;
        let mask = Tensor::new(&[[1.0f32, 1.0, 0.0]], &dev)?;
        let loss = masked_bce_with_logits(&logits, &labels, &mask)?.to_scalar::<f32>()?;
        // -log(sigmoid(2)) and -log(1 - sigmoid(-1)), averaged; the padded 50 is ignored.
        let expected = ((1.0 + (-2.0f32).exp()).ln() + (1.0 + (-1.0f32).exp()).ln()) / 2.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
        Ok(())
    }

    #[test]
    fn a_few_steps_reduce_the_loss_and_repeat_exactly() -> Result<()> {
        let config = TrainConfig { seed: 3, steps: 12, batch: 2, lr: 1e-2 };
        let mut losses = Vec::new();
        let a = train(&config, |_, l| losses.push(l))?;
        assert!(losses[losses.len() - 1] < losses[0], "{losses:?}");
        let b = train(&config, |_, _| {})?;
        let f = [0.9f32, 0.9, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(a.network.logits(&f)?, b.network.logits(&f)?);
        Ok(())
    }
}
