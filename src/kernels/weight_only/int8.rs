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

/// Rows per tile of the plain-Rust kernel: `TILE x PANEL` accumulators, 16 AVX2 registers.
const TILE: usize = 4;

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
            level => block(level, x, inner, weights, scales, self.group, &mut acc),
        }
        #[cfg(not(target_arch = "x86_64"))]
        block(cap, x, inner, weights, scales, self.group, &mut acc);
        out.store(&acc);
    }
}

wide! {
    /// `acc[r] = x[r] @ panel` for every row of `x`, `acc` `PANEL` values per row.
    fn block(x: &[f32], inner: usize, weights: &[i8], scales: &[f32], group: usize, acc: &mut [f32]) => block_in
}

/// The plain-Rust path, in the AVX-512 path's order: per group, chunks widened to f32, each run through
/// tiles of [`TILE`] rows whose partial sums carry from chunk to chunk, then the scaled partial sums
/// fused into the totals.
#[inline(always)]
fn block_in(x: &[f32], inner: usize, weights: &[i8], scales: &[f32], group: usize, acc: &mut [f32]) {
    let rows = acc.len() / PANEL;
    let mut panel = vec![0f32; CHUNK * PANEL];
    let mut part = vec![0f32; rows * PANEL];
    for (g, scale) in scales.chunks_exact(PANEL).enumerate() {
        let (start, end) = (g * group, inner.min((g + 1) * group));
        for k0 in (start..end).step_by(CHUNK) {
            let n = CHUNK.min(end - k0);
            let chunk = &weights[k0 * PANEL..][..n * PANEL];
            panel.iter_mut().zip(chunk).for_each(|(w, &q)| *w = f32::from(q));
            let panel = &panel[..n * PANEL];
            for (r, part) in part.chunks_mut(TILE * PANEL).enumerate() {
                let x = &x[r * TILE * inner + k0..];
                let add = k0 > start;
                match part.len() / PANEL {
                    TILE => tile::<TILE>(x, inner, panel, part, add),
                    1 => tile::<1>(x, inner, panel, part, add),
                    2 => tile::<2>(x, inner, panel, part, add),
                    _ => tile::<3>(x, inner, panel, part, add),
                }
            }
        }
        for (total, part) in acc.chunks_exact_mut(PANEL).zip(part.chunks_exact(PANEL)) {
            for ((t, &p), &s) in total.iter_mut().zip(part).zip(scale) {
                *t = p.mul_add(s, *t);
            }
        }
    }
}

/// `M` rows (`inner` apart in `x`) against the widened panel rows, into `part` (added to it when
/// `add`): per k, `part = fma(x[k], w[k], part)`.
#[inline(always)]
fn tile<const M: usize>(x: &[f32], inner: usize, panel: &[f32], part: &mut [f32], add: bool) {
    let mut acc = [[0f32; PANEL]; M];
    if add {
        for (acc, part) in acc.iter_mut().zip(part.chunks_exact(PANEL)) {
            acc.copy_from_slice(part);
        }
    }
    for (k, w) in panel.chunks_exact(PANEL).enumerate() {
        let w: &[f32; PANEL] = w.try_into().expect("a panel row");
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = x[r * inner + k];
            for (p, &w) in acc.iter_mut().zip(w) {
                *p = a.mul_add(w, *p);
            }
        }
    }
    for (part, acc) in part.chunks_exact_mut(PANEL).zip(&acc) {
        part.copy_from_slice(acc);
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

    /// Rows per tile: 6 rows x 16 columns of accumulators (12 of the 16 registers), each panel in two
    /// halves.
    const TILE: usize = 6;

    /// [`super::block`] on AVX2 with FMA, in the same order as the other paths (see `avx512::block`).
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
                let x = x.as_ptr().add(k0);
                for half in [0, 16] {
                    let mut r = 0;
                    while r < rows {
                        let m = TILE.min(rows - r);
                        let (xr, pr, wr) =
                            (x.add(r * inner), p.add(r * PANEL + half), panel.as_ptr().add(half));
                        match m {
                            TILE => tile::<TILE>(xr, inner, wr, n, pr, k0 > start),
                            1 => tile::<1>(xr, inner, wr, n, pr, k0 > start),
                            2 => tile::<2>(xr, inner, wr, n, pr, k0 > start),
                            3 => tile::<3>(xr, inner, wr, n, pr, k0 > start),
                            4 => tile::<4>(xr, inner, wr, n, pr, k0 > start),
                            _ => tile::<5>(xr, inner, wr, n, pr, k0 > start),
                        }
                        r += m;
                    }
                }
                k0 += n;
            }
            for i in (0..rows * PANEL).step_by(8) {
                let s = _mm256_loadu_ps(scales.as_ptr().add(g * PANEL + i % PANEL));
                let total = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(i)), s, _mm256_loadu_ps(t.add(i)));
                _mm256_storeu_ps(t.add(i), total);
            }
        }
    }

    /// `M` rows of `x` (`lda` apart) times `n` panel rows (16 columns read, `PANEL` apart) into `part`
    /// (rows `PANEL` apart), added to what it holds when `add`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const M: usize>(
        x: *const f32,
        lda: usize,
        w: *const f32,
        n: usize,
        part: *mut f32,
        add: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        if add {
            for (i, acc) in acc.iter_mut().enumerate() {
                acc[0] = _mm256_loadu_ps(part.add(i * PANEL));
                acc[1] = _mm256_loadu_ps(part.add(i * PANEL + 8));
            }
        }
        for k in 0..n {
            let b0 = _mm256_loadu_ps(w.add(k * PANEL));
            let b1 = _mm256_loadu_ps(w.add(k * PANEL + 8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*x.add(i * lda + k));
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(part.add(i * PANEL), acc[0]);
            _mm256_storeu_ps(part.add(i * PANEL + 8), acc[1]);
        }
    }
}
