//! GELU in its exact (erf) form for f32 on the CPU, shared by the Kompress encoder (fused with the
//! GeGLU gate) and the SuperCompress MLP.
//!
//! candle's `gelu_erf` calls libm's `erff` per element; the rational erf below is what Eigen (and so
//! PyTorch's CPU kernels) use, branch-free so that the loops vectorise, and within 2e-6 of libm.

use super::f32_input;
use super::isa::isa;

/// `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// PyTorch's `nn.GELU()` on f32 CPU tensors (in the SuperCompress MLP, libm's `erff` made GELU a
/// third of the scoring time).
pub(crate) struct GeluErf;

impl candle_core::CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-rational"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let data = f32_input(storage, layout, "gelu")?;
        let mut out = vec![0f32; data.len()];
        gelu_all(isa(), data, &mut out);
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

wide! {
    /// `out[i] = gelu(xs[i])`.
    fn gelu_all(xs: &[f32], out: &mut [f32]) => gelu_all_in
}

#[inline(always)]
fn gelu_all_in(xs: &[f32], out: &mut [f32]) {
    out.iter_mut().zip(xs).for_each(|(o, &x)| *o = gelu(x));
}

wide! {
    /// `out[i] = gelu(input[i]) * gate[i]`.
    fn geglu_row(input: &[f32], gate: &[f32], out: &mut [f32]) => geglu_row_in
}

#[inline(always)]
fn geglu_row_in(input: &[f32], gate: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(input).zip(gate) {
        *o = gelu(x) * g;
    }
}

/// erf in f32 as Eigen computes it (`generic_fast_erf_float`): an odd rational function of the
/// input clamped to [-4, 4], beyond which erf is ±1 in single precision.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    for c in [-2.101_024e-6, -5.692_506_4e-5, -7.349_906_3e-4, -2.954_6e-3, -1.609_603_3e-2] {
        p = x2 * p + c;
    }
    let mut q = x2 * -1.456_607_2e-5 - 2.133_740_6e-4;
    for c in [-1.682_827e-3, -7.373_329e-3, -1.426_474e-2] {
        q = x2 * q + c;
    }
    x * p / q
}

/// `gelu(input) * gate` over `[.., 2 * n]` -> `[.., n]` in one pass on the CPU (f32): no strided
/// half-views, no intermediate GELU tensor (37 MB at 8192 tokens). Other devices and dtypes use the
/// same formula through candle's ops (libm's erf, within 2e-6).
pub(crate) struct GeGlu;

impl candle_core::CustomOp1 for GeGlu {
    fn name(&self) -> &'static str {
        "geglu"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let data = f32_input(storage, layout, "geglu")?;
        let mut dims = layout.dims().to_vec();
        let n = dims[dims.len() - 1] / 2;
        let mut out = vec![0f32; data.len() / 2];
        let isa = isa();
        out.par_chunks_mut(n).zip(data.par_chunks(2 * n)).for_each(|(out, row)| {
            let (input, gate) = row.split_at(n);
            geglu_row(isa, input, gate, out)
        });
        *dims.last_mut().expect("geglu input has a last dim") = n;
        Ok((candle_core::CpuStorage::F32(out), candle_core::Shape::from_dims(&dims)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Result, Tensor};

    use super::*;

    /// The AVX-512, AVX2 and baseline builds of the loops give the same bits.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        use crate::kernels::isa::{detected, Isa};
        let xs: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let gate: Vec<f32> = xs.iter().map(|x| 1.5 - x).collect();
        let run = |isa: Isa| {
            let (mut a, mut b) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
            gelu_all(isa, &xs, &mut a);
            geglu_row(isa, &xs, &gate, &mut b);
            (a, b)
        };
        let want = run(Isa::Portable);
        assert!(want.0.iter().zip(&xs).all(|(&g, &x)| g == gelu(x)));
        for isa in Isa::ALL.into_iter().filter(|&i| i <= detected()) {
            assert!(run(isa) == want, "{isa:?}");
        }
    }

    #[test]
    fn rational_gelu_matches_candle_gelu_erf() -> Result<()> {
        let xs = Tensor::arange(-12_000f32, 12_000.0, &Device::Cpu)?.affine(1e-3, 0.0)?;
        let ours: Vec<f32> = xs.apply_op1_no_bwd(&GeluErf)?.to_vec1()?;
        let libm: Vec<f32> = xs.gelu_erf()?.to_vec1()?;
        // Absolute error for small outputs, relative (a couple of ulps) for large ones.
        let worst = ours.iter().zip(&libm).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max);
        assert!(worst < 2e-6, "max |gelu - gelu_erf| / max(1, |gelu_erf|) = {worst}");
        Ok(())
    }
}
