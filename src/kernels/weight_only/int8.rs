//! `--dtype int8-wo`: int8 weights, symmetric per output channel or per group of `k` values of an
//! output channel, widened to f32 inside the kernel; f32 activations, f32 accumulation. Per group
//! `g` of an output: `acc = fma(sum_k x[k] * q[k], scale[g], acc)`, the sum itself a chain of
//! `fma(x[k], q[k] as f32, sum)` in k order, on every path.
//!
//! The panel is widened to f32 a chunk of k values at a time into a buffer that stays in L1, and f32
//! tiles run on it (on AVX-512 the f32 packed kernel's, [`crate::kernels::linear::avx512`]: the same
//! fused products in the same order), so the widening is paid once per row block, not once per tile.

use super::{Out, PANEL};
use crate::kernels::int8::quantise_row;
use crate::kernels::isa::Isa;
use crate::kernels::linear::portable;

/// k values per chunk widened at a time: 16 KB of f32, in L1 with the tiles' activations.
const CHUNK: usize = 128;

/// A weight `[out, in]` quantised per output channel (`group == in`) or per group of `group`
/// consecutive inputs of a channel, packed as `ceil(out / PANEL)` panels of `in` rows of `PANEL`
/// columns (columns past `out` zero), with the scales of each panel `groups` rows of `PANEL`.
pub(crate) struct Int8WoWeight {
    pub out: usize,
    pub inner: usize,
    group: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
}

impl Int8WoWeight {
    /// Quantises a row-major `[out, inner]` f32 weight; `group: None` is per channel.
    pub(crate) fn new(w: &[f32], out: usize, inner: usize, group: Option<usize>) -> Self {
        let group = group.unwrap_or(inner).clamp(1, inner.max(1));
        let (panels, groups) = (out.div_ceil(PANEL), inner.div_ceil(group));
        let mut data = vec![0i8; panels * inner * PANEL];
        let mut scales = vec![0f32; panels * groups * PANEL];
        let mut q = vec![0u8; group];
        for (o, row) in w.chunks_exact(inner).enumerate() {
            let (panel, col) = (o / PANEL, o % PANEL);
            for (g, part) in row.chunks(group).enumerate() {
                scales[(panel * groups + g) * PANEL + col] = quantise_row(part, &mut q, 0);
                for (i, &v) in q[..part.len()].iter().enumerate() {
                    data[(panel * inner + g * group + i) * PANEL + col] = v as i8;
                }
            }
        }
        Self { out, inner, group, data, scales }
    }

    fn groups(&self) -> usize {
        self.inner.div_ceil(self.group)
    }

    /// Runs `rows` rows of `x` (`[rows, inner]`) against panel `panel` into `out`.
    ///
    /// # Safety
    /// `out` must address `rows` rows of the panel's columns.
    pub(crate) unsafe fn panel_product(&self, x: &[f32], rows: usize, panel: usize, out: Out, cap: Isa) {
        let (inner, groups) = (self.inner, self.groups());
        let weights = &self.data[panel * inner * PANEL..][..inner * PANEL];
        let scales = &self.scales[panel * groups * PANEL..][..groups * PANEL];
        let mut acc = vec![0f32; rows * PANEL];
        let x = &x[..rows * inner];
        #[cfg(target_arch = "x86_64")]
        match cap.min(crate::kernels::isa::detected()) {
            // SAFETY: the level is detected.
            level if level >= Isa::Avx512 => unsafe {
                avx512::block(x, inner, weights, scales, self.group, &mut acc)
            },
            level if level >= Isa::Avx2 => unsafe {
                avx2::block(x, inner, weights, scales, self.group, &mut acc)
            },
            _ => block(x, inner, weights, scales, self.group, &mut acc),
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = cap;
        #[cfg(not(target_arch = "x86_64"))]
        block(x, inner, weights, scales, self.group, &mut acc);
        out.store(&acc);
    }
}

/// The plain-Rust path, in the other paths' order: per group, chunks widened to f32, each run through
/// the f32 panel kernel with the partial sums carried from chunk to chunk, then the scaled partial sums
/// fused into the totals.
fn block(x: &[f32], inner: usize, weights: &[i8], scales: &[f32], group: usize, acc: &mut [f32]) {
    let rows = acc.len() / PANEL;
    assert!(x.len() >= rows * inner && weights.len() >= inner * PANEL, "int8-wo block operands");
    let mut panel = vec![0f32; CHUNK * PANEL];
    let mut part = vec![0f32; rows * PANEL];
    for (g, scale) in scales.chunks_exact(PANEL).enumerate() {
        let (start, end) = (g * group, inner.min((g + 1) * group));
        for k0 in (start..end).step_by(CHUNK) {
            let n = CHUNK.min(end - k0);
            let chunk = &weights[k0 * PANEL..][..n * PANEL];
            panel.iter_mut().zip(chunk).for_each(|(w, &q)| *w = f32::from(q));
            // SAFETY: x holds rows x inner (columns k0..k0 + n are read), the panel n x PANEL, part
            // rows x PANEL.
            unsafe {
                portable::panel_product(
                    (x.as_ptr().add(k0), inner),
                    rows,
                    n,
                    (panel.as_ptr(), PANEL),
                    (part.as_mut_ptr(), PANEL),
                    PANEL,
                    k0 > start,
                )
            }
        }
        for (total, part) in acc.chunks_exact_mut(PANEL).zip(part.chunks_exact(PANEL)) {
            for ((t, &p), &s) in total.iter_mut().zip(part).zip(scale) {
                *t = p.mul_add(s, *t);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{CHUNK, PANEL};
    use crate::kernels::linear::avx512::panel_product;

    /// [`super::block`] on AVX-512: per group, its k values in chunks of [`CHUNK`], each widened into
    /// an f32 panel and run through the f32 tiles, the partial sums carried from chunk to chunk (stored
    /// and reloaded exactly); then the group's scaled partial sums fused into the totals. Intrinsics
    /// throughout: iterator adaptors would be compiled without the target features.
    ///
    /// # Safety
    /// AVX-512 F must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block(
        x: &[f32],
        inner: usize,
        weights: &[i8],
        scales: &[f32],
        group: usize,
        acc: &mut [f32],
    ) {
        let rows = acc.len() / PANEL;
        assert!(x.len() >= rows * inner && weights.len() >= inner * PANEL, "int8-wo block operands");
        assert!(scales.len() >= inner.div_ceil(group) * PANEL, "int8-wo block scales");
        let mut panel = vec![0f32; CHUNK * PANEL];
        let mut part = vec![0f32; rows * PANEL];
        let (w, p, t) = (weights.as_ptr(), part.as_mut_ptr(), acc.as_mut_ptr());
        for g in 0..inner.div_ceil(group) {
            let (start, end) = (g * group, inner.min((g + 1) * group));
            let mut k0 = start;
            while k0 < end {
                let n = CHUNK.min(end - k0);
                for i in (0..n * PANEL).step_by(16) {
                    let q = _mm_loadu_si128(w.add(k0 * PANEL + i).cast());
                    _mm512_storeu_ps(panel.as_mut_ptr().add(i), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
                }
                // x holds rows x inner (the tile reads columns k0..k0 + n of each row), the panel n x
                // PANEL, part rows x PANEL.
                panel_product(
                    (x.as_ptr().add(k0), inner),
                    rows,
                    n,
                    (panel.as_ptr(), PANEL),
                    (p, PANEL),
                    PANEL,
                    k0 > start,
                );
                k0 += n;
            }
            for i in (0..rows * PANEL).step_by(16) {
                let s = _mm512_loadu_ps(scales.as_ptr().add(g * PANEL + i % PANEL));
                let total = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(i)), s, _mm512_loadu_ps(t.add(i)));
                _mm512_storeu_ps(t.add(i), total);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{CHUNK, PANEL};
    use crate::kernels::linear::avx2::panel_product;

    /// [`super::block`] on AVX2 with FMA, in the same order as the other paths (see `avx512::block`),
    /// through the f32 products' AVX2 tiles.
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block(
        x: &[f32],
        inner: usize,
        weights: &[i8],
        scales: &[f32],
        group: usize,
        acc: &mut [f32],
    ) {
        let rows = acc.len() / PANEL;
        assert!(x.len() >= rows * inner && weights.len() >= inner * PANEL, "int8-wo block operands");
        assert!(scales.len() >= inner.div_ceil(group) * PANEL, "int8-wo block scales");
        let mut panel = vec![0f32; CHUNK * PANEL];
        let mut part = vec![0f32; rows * PANEL];
        let (w, p, t) = (weights.as_ptr(), part.as_mut_ptr(), acc.as_mut_ptr());
        for g in 0..inner.div_ceil(group) {
            let (start, end) = (g * group, inner.min((g + 1) * group));
            let mut k0 = start;
            while k0 < end {
                let n = CHUNK.min(end - k0);
                for i in (0..n * PANEL).step_by(8) {
                    let q = _mm_loadl_epi64(w.add(k0 * PANEL + i).cast());
                    _mm256_storeu_ps(panel.as_mut_ptr().add(i), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
                }
                panel_product(
                    (x.as_ptr().add(k0), inner),
                    rows,
                    n,
                    (panel.as_ptr(), PANEL),
                    (p, PANEL),
                    PANEL,
                    k0 > start,
                );
                k0 += n;
            }
            for i in (0..rows * PANEL).step_by(8) {
                let s = _mm256_loadu_ps(scales.as_ptr().add(g * PANEL + i % PANEL));
                let total = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(i)), s, _mm256_loadu_ps(t.add(i)));
                _mm256_storeu_ps(t.add(i), total);
            }
        }
    }
}
