//! Training the eviction network after the reference's recipe: synthetic contexts from the
//! simulator, oracle labels, binary cross-entropy with logits averaged over the tokens, AdamW at lr 1e-3.
//!
//! The MLP's forward and backward passes are written out here as plain f32 loops instead of candle's
//! autograd, so that the same seed gives the same bytes on every CPU. candle's matrix products go
//! through `gemm`, which picks AVX2 or AVX-512 kernels at run time, and those sum in different
//! orders: the weights differed by up to 1.2e-7 between the two kinds of x86-64 CPU. Here every sum
//! runs in one fixed order whatever the CPU and the thread count (loops vectorise across independent
//! outputs only, and Rust never fuses a multiply and an add by itself), and the transcendental
//! functions come from the `libm` crate rather than the platform's C library.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::network::{EvictionNetwork, HIDDEN_DIM, TENSOR_SHAPES};
use super::records::{Records, FEATURE_DIM};
use super::rng::PyRandom;
use super::simulator::generate_long_context;
use crate::kernels::gelu::{erf, gelu};
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

/// A trained network and its weights.
pub struct Trained {
    /// The network.
    pub network: EvictionNetwork,
    /// The weights, named like the PyTorch `state_dict`.
    tensors: HashMap<String, Tensor>,
}

impl Trained {
    /// Writes the weights as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.tensors, path)
            .map_err(|e| Error::Checkpoint { path: path.display().to_string(), reason: e.to_string() })
    }
}

/// The network's LayerNorm epsilon, in the f32 these loops compute in.
const LN_EPS: f32 = super::network::LN_EPS as f32;
// Indices of the tensors in [`TENSOR_SHAPES`] (and in [`Params`]).
const W0: usize = 0;
const B0: usize = 1;
const GAMMA: usize = 2;
const BETA: usize = 3;
const W3: usize = 4;
const B3: usize = 5;
const W5: usize = 6;
const B5: usize = 7;

/// One flat f32 array per tensor of [`TENSOR_SHAPES`], in that order: the weights, their gradients or
/// an AdamW moment. Matrices are row-major `[out][in]`, as PyTorch stores them.
#[derive(Clone, Debug, PartialEq)]
struct Params(Vec<Vec<f32>>);

impl Params {
    fn zeros() -> Self {
        Self(TENSOR_SHAPES.iter().map(|(_, s)| vec![0.0; s.iter().product()]).collect())
    }

    /// `self += other`, element by element.
    fn add(&mut self, other: &Params) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    fn tensors(&self) -> Result<HashMap<String, Tensor>> {
        TENSOR_SHAPES
            .iter()
            .zip(&self.0)
            .map(|((name, shape), v)| Ok((name.to_string(), Tensor::from_slice(v, *shape, &Device::Cpu)?)))
            .collect()
    }
}

/// PyTorch's default initialisation, drawn from `rng`: `nn.Linear` weights and biases uniform in
/// `±1/sqrt(fan_in)`, `nn.LayerNorm` weight 1 and bias 0.
fn init_params(rng: &mut PyRandom) -> Params {
    Params(
        TENSOR_SHAPES
            .iter()
            .map(|(name, shape)| {
                let len: usize = shape.iter().product();
                if name.starts_with("net.1.") {
                    return vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; len];
                }
                // Weight and bias of a layer share its weight's fan-in ("net.K." prefixes both).
                let layer = &name[..name.rfind('.').map_or(0, |i| i + 1)];
                let fan_in = TENSOR_SHAPES
                    .iter()
                    .find(|(n, _)| n.starts_with(layer))
                    .map_or(1, |(_, s)| s[s.len() - 1]);
                let bound = 1.0 / (fan_in as f64).sqrt();
                (0..len).map(|_| rng.uniform(-bound, bound) as f32).collect()
            })
            .collect(),
    )
}

/// One training batch: every context's tokens one after the other (the network scores each token on
/// its own, so nothing is padded), with their oracle labels.
struct Batch {
    features: Vec<f32>,
    labels: Vec<f32>,
}

/// Draws `size` simulator contexts, as the reference's `generate_dataset` does.
fn draw_batch(rng: &mut PyRandom, size: usize) -> Batch {
    let mut batch = Batch { features: Vec::new(), labels: Vec::new() };
    for _ in 0..size {
        let target = 600 + rng.randint(0, 400);
        let (lines, question) = generate_long_context(rng, target);
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let records = Records::for_training(&refs, question, rng);
        batch.features.extend(records.features());
        batch.labels.extend(records.records.iter().map(|r| f32::from(u8::from(r.oracle_important))));
    }
    batch
}

/// The derivative of [`gelu`]: `Φ(x) + x φ(x)`.
fn gelu_grad(x: f32) -> f32 {
    let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    let pdf =
        libm::expf(-0.5 * x * x) * (0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2);
    cdf + x * pdf
}

/// `log(1 + exp(-|x|)) + max(x, 0) - x y`: binary cross-entropy with logits, in its stable form.
fn bce_with_logits(x: f32, y: f32) -> f32 {
    libm::log1pf(libm::expf(-x.abs())) + x.max(0.0) - x * y
}

fn sigmoid(x: f32) -> f32 {
    match x >= 0.0 {
        true => 1.0 / (1.0 + libm::expf(-x)),
        false => {
            let e = libm::expf(x);
            e / (1.0 + e)
        }
    }
}

/// The weights with their two matrices also transposed (`[in][out]`), so that the forward pass runs
/// along contiguous rows.
struct Weights<'p> {
    p: &'p Params,
    w0t: Vec<f32>,
    w3t: Vec<f32>,
}

impl<'p> Weights<'p> {
    fn new(p: &'p Params) -> Self {
        let transpose = |m: &[f32], rows: usize, cols: usize| {
            (0..cols * rows).map(|i| m[(i % rows) * cols + i / rows]).collect()
        };
        Self {
            w0t: transpose(&p.0[W0], HIDDEN_DIM, FEATURE_DIM),
            w3t: transpose(&p.0[W3], HIDDEN_DIM, HIDDEN_DIM),
            p,
        }
    }
}

/// `out = bias + sum_k x[k] * wt[k]`, adding the terms in the order of `k`.
fn affine(bias: &[f32], wt: &[f32], x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(bias);
    for (&xk, row) in x.iter().zip(wt.chunks_exact(out.len())) {
        out.iter_mut().zip(row).for_each(|(o, &w)| *o += xk * w);
    }
}

/// One token's activations.
struct Forward {
    /// The normalised first layer, before the LayerNorm's affine step.
    xhat: [f32; HIDDEN_DIM],
    /// 1 / standard deviation of the first layer.
    rstd: f32,
    /// The LayerNorm's output (GELU's input) and GELU of it.
    y: [f32; HIDDEN_DIM],
    a1: [f32; HIDDEN_DIM],
    /// The second layer, and GELU of it.
    z2: [f32; HIDDEN_DIM],
    a2: [f32; HIDDEN_DIM],
    /// The keep logit.
    logit: f32,
}

fn forward(w: &Weights, x: &[f32]) -> Forward {
    let p = &w.p.0;
    let mut f = Forward {
        xhat: [0.0; HIDDEN_DIM],
        rstd: 0.0,
        y: [0.0; HIDDEN_DIM],
        a1: [0.0; HIDDEN_DIM],
        z2: [0.0; HIDDEN_DIM],
        a2: [0.0; HIDDEN_DIM],
        logit: 0.0,
    };
    affine(&p[B0], &w.w0t, x, &mut f.xhat);
    let n = HIDDEN_DIM as f32;
    let mean = f.xhat.iter().sum::<f32>() / n;
    f.xhat.iter_mut().for_each(|v| *v -= mean);
    let var = f.xhat.iter().map(|v| v * v).sum::<f32>() / n;
    let rstd = 1.0 / (var + LN_EPS).sqrt();
    f.rstd = rstd;
    let affine_ln = p[GAMMA].iter().zip(&p[BETA]);
    for (((xhat, y), a1), (&gamma, &beta)) in f.xhat.iter_mut().zip(&mut f.y).zip(&mut f.a1).zip(affine_ln) {
        *xhat *= rstd;
        *y = *xhat * gamma + beta;
        *a1 = gelu(*y);
    }
    affine(&p[B3], &w.w3t, &f.a1, &mut f.z2);
    f.a2.iter_mut().zip(&f.z2).for_each(|(a, &z)| *a = gelu(z));
    f.logit = p[B5][0] + f.a2.iter().zip(&p[W5]).fold(0.0, |acc, (a, w)| acc + a * w);
    f
}

/// Adds one token's gradient, scaled by `scale` (1 / tokens in the batch), to `g`.
fn backward(w: &Weights, x: &[f32], f: &Forward, label: f32, scale: f32, g: &mut Params) {
    let p = &w.p.0;
    let g = &mut g.0;
    let dlogit = (sigmoid(f.logit) - label) * scale;
    g[B5][0] += dlogit;
    let mut dz2 = [0f32; HIDDEN_DIM];
    for j in 0..HIDDEN_DIM {
        g[W5][j] += dlogit * f.a2[j];
        dz2[j] = dlogit * p[W5][j] * gelu_grad(f.z2[j]);
        g[B3][j] += dz2[j];
    }
    let mut da1 = [0f32; HIDDEN_DIM];
    for (j, &d) in dz2.iter().enumerate() {
        let rows = j * HIDDEN_DIM..(j + 1) * HIDDEN_DIM;
        g[W3][rows.clone()].iter_mut().zip(&f.a1).for_each(|(gw, &a)| *gw += d * a);
        da1.iter_mut().zip(&p[W3][rows]).for_each(|(da, &wv)| *da += d * wv);
    }
    let mut dxhat = [0f32; HIDDEN_DIM];
    for j in 0..HIDDEN_DIM {
        let dy = da1[j] * gelu_grad(f.y[j]);
        g[GAMMA][j] += dy * f.xhat[j];
        g[BETA][j] += dy;
        dxhat[j] = dy * p[GAMMA][j];
    }
    let n = HIDDEN_DIM as f32;
    let mean = dxhat.iter().sum::<f32>() / n;
    let mean_x = dxhat.iter().zip(&f.xhat).map(|(d, x)| d * x).sum::<f32>() / n;
    for j in 0..HIDDEN_DIM {
        let dz1 = f.rstd * (dxhat[j] - mean - f.xhat[j] * mean_x);
        g[B0][j] += dz1;
        let row = &mut g[W0][j * FEATURE_DIM..(j + 1) * FEATURE_DIM];
        row.iter_mut().zip(x).for_each(|(gw, &xk)| *gw += dz1 * xk);
    }
}

/// Tokens per slice of a batch whose gradient is summed on its own (in parallel); the slices'
/// gradients are then added in slice order, so nothing depends on the thread count.
const SLICE: usize = 256;

/// The batch's mean loss and its gradient.
fn loss_and_grad(p: &Params, batch: &Batch) -> (f32, Params) {
    let w = Weights::new(p);
    let scale = 1.0 / batch.labels.len().max(1) as f32;
    let slices: Vec<(f32, Params)> = batch
        .features
        .par_chunks(SLICE * FEATURE_DIM)
        .zip(batch.labels.par_chunks(SLICE))
        .map(|(xs, labels)| {
            let (mut loss, mut g) = (0f32, Params::zeros());
            for (x, &label) in xs.chunks_exact(FEATURE_DIM).zip(labels) {
                let f = forward(&w, x);
                loss += bce_with_logits(f.logit, label);
                backward(&w, x, &f, label, scale, &mut g);
            }
            (loss, g)
        })
        .collect();
    let (mut loss, mut grad) = (0f32, Params::zeros());
    for (l, g) in &slices {
        loss += l;
        grad.add(g);
    }
    (loss * scale, grad)
}

/// AdamW as PyTorch and candle define it (betas 0.9 and 0.999, eps 1e-8, weight decay 0.01).
struct AdamW {
    lr: f32,
    m: Params,
    v: Params,
    /// beta1^t and beta2^t after t steps.
    beta_pow: (f32, f32),
}

impl AdamW {
    const BETAS: (f32, f32) = (0.9, 0.999);
    const EPS: f32 = 1e-8;
    const WEIGHT_DECAY: f32 = 0.01;

    fn new(lr: f64) -> Self {
        Self { lr: lr as f32, m: Params::zeros(), v: Params::zeros(), beta_pow: (1.0, 1.0) }
    }

    fn step(&mut self, params: &mut Params, grad: &Params) {
        let (b1, b2) = Self::BETAS;
        self.beta_pow = (self.beta_pow.0 * b1, self.beta_pow.1 * b2);
        let (c1, c2) = (1.0 - self.beta_pow.0, 1.0 - self.beta_pow.1);
        let decay = 1.0 - self.lr * Self::WEIGHT_DECAY;
        let tensors = params.0.iter_mut().zip(&grad.0).zip(self.m.0.iter_mut().zip(self.v.0.iter_mut()));
        for ((theta, g), (m, v)) in tensors {
            for i in 0..theta.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let (m_hat, v_hat) = (m[i] / c1, v[i] / c2);
                theta[i] = theta[i] * decay - self.lr * m_hat / (v_hat.sqrt() + Self::EPS);
            }
        }
    }
}

/// Trains a network from scratch; `progress(step, loss)` is called after every step with the mean
/// binary cross-entropy over the tokens of that step's batch.
pub fn train(config: &TrainConfig, mut progress: impl FnMut(usize, f32)) -> Result<Trained> {
    if config.steps == 0 || config.batch == 0 || !config.lr.is_finite() || config.lr <= 0.0 {
        return Err(Error::Invalid(
            "training needs steps >= 1, batch >= 1 and a positive learning rate".into(),
        ));
    }
    let mut rng = PyRandom::new(config.seed);
    let mut params = init_params(&mut rng);
    let mut opt = AdamW::new(config.lr);
    for step in 0..config.steps {
        let batch = draw_batch(&mut rng, config.batch);
        let (loss, grad) = loss_and_grad(&params, &batch);
        opt.step(&mut params, &grad);
        progress(step, loss);
    }
    let tensors = params.tensors()?;
    let network = EvictionNetwork::from_tensors(tensors.clone(), "<trained weights>")?;
    Ok(Trained { network, tensors })
}

#[cfg(test)]
mod tests {
    use candle_core::Var;

    use super::*;

    /// A small batch of real training tokens.
    fn sample_batch(tokens: usize) -> Batch {
        let mut batch = draw_batch(&mut PyRandom::new(5), 1);
        batch.features.truncate(tokens * FEATURE_DIM);
        batch.labels.truncate(tokens);
        batch
    }

    /// The same loss built from candle's differentiable ops (its autograd is the reference the
    /// hand-written backward pass is checked against).
    fn candle_loss(vars: &[Var], batch: &Batch) -> candle_core::Result<Tensor> {
        let n = batch.labels.len();
        let xs = Tensor::from_slice(&batch.features, (n, FEATURE_DIM), &Device::Cpu)?;
        let labels = Tensor::from_slice(&batch.labels, n, &Device::Cpu)?;
        let linear = |x: &Tensor, w: &Var, b: &Var| x.matmul(&w.t()?)?.broadcast_add(b);
        let h = linear(&xs, &vars[W0], &vars[B0])?;
        let h = candle_nn::ops::layer_norm_slow(&h, &vars[GAMMA], &vars[BETA], LN_EPS)?.gelu_erf()?;
        let h = linear(&h, &vars[W3], &vars[B3])?.gelu_erf()?;
        let logits = linear(&h, &vars[W5], &vars[B5])?.squeeze(1)?;
        let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        ((logits.relu()? - (&logits * &labels)?)? + softplus)?.mean_all()
    }

    #[test]
    fn hand_written_gradients_match_candle_autograd() -> Result<()> {
        let params = init_params(&mut PyRandom::new(2));
        let batch = sample_batch(300);
        let (loss, grad) = loss_and_grad(&params, &batch);
        let tensors = params.tensors()?;
        let vars: Vec<Var> = TENSOR_SHAPES
            .iter()
            .map(|(name, _)| Var::from_tensor(&tensors[*name]))
            .collect::<candle_core::Result<_>>()?;
        let reference = candle_loss(&vars, &batch)?;
        assert!((loss - reference.to_scalar::<f32>()?).abs() < 1e-5, "{loss} vs {reference}");
        let grads = reference.backward()?;
        for ((name, _), (var, ours)) in TENSOR_SHAPES.iter().zip(vars.iter().zip(&grad.0)) {
            let want =
                grads.get(var).expect("every weight has a gradient").flatten_all()?.to_vec1::<f32>()?;
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (a, b) in ours.iter().zip(&want) {
                assert!((a - b).abs() <= 2e-4 * scale, "{name}: {a} vs {b} (largest {scale})");
            }
        }
        Ok(())
    }

    #[test]
    fn training_forward_matches_the_network() -> Result<()> {
        let trained = train(&TrainConfig { seed: 1, steps: 2, batch: 1, lr: 1e-2 }, |_, _| {})?;
        let params = Params(
            TENSOR_SHAPES
                .iter()
                .map(|(n, _)| trained.tensors[*n].flatten_all().unwrap().to_vec1().unwrap())
                .collect(),
        );
        let batch = sample_batch(50);
        let w = Weights::new(&params);
        let ours: Vec<f32> = batch.features.chunks_exact(FEATURE_DIM).map(|x| forward(&w, x).logit).collect();
        let network = trained.network.logits(&batch.features)?;
        for (a, b) in ours.iter().zip(&network) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
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

    #[test]
    fn seed_0_rebuilds_the_shipped_weights() -> Result<()> {
        use sha2::Digest;
        let trained = train(&TrainConfig::default(), |_, _| {})?;
        let path = std::env::temp_dir().join(format!("kompress-train-{}.safetensors", std::process::id()));
        trained.save(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let readme = include_str!("../../weights/README.md");
        assert!(readme.contains(&digest), "weights/README.md does not give the sha256 {digest}");
        assert!(bytes == include_bytes!("../../weights/evict-default.safetensors"), "not the shipped bytes");
        Ok(())
    }

    #[test]
    fn the_gradient_does_not_depend_on_the_thread_count() -> Result<()> {
        let params = init_params(&mut PyRandom::new(4));
        let batch = sample_batch(3 * SLICE + 17);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a pool");
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().expect("a pool");
        let (loss1, grad1) = one.install(|| loss_and_grad(&params, &batch));
        let (loss3, grad3) = three.install(|| loss_and_grad(&params, &batch));
        assert_eq!((loss1.to_bits(), &grad1), (loss3.to_bits(), &grad3));
        Ok(())
    }
}
