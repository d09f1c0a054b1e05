//! Fused attention for f32 on the CPU: one task per (sequence, head, block of queries), each
//! computing its scores, softmax and output with single-threaded GEMMs in a scratch buffer the size
//! of one block's scores.
//!
//! Compared with candle's ops (still used for other dtypes and devices, see `modernbert/attention.rs`) this
//! spreads small products over the cores instead of threading each one, never materialises more
//! than a block of scores per task, and works in the packed layout the linear layers use (the real
//! tokens of every sequence one after another): no padding is copied in or out and no padded query
//! or key is touched. [`Rope`] prepares its inputs in place in the fused QKV projection.

use candle_core::{CpuStorage, CustomOp3, InplaceOp1, Layout, Shape};
use rayon::prelude::*;

use super::isa::{isa, Isa};
use super::linear::{panel_product, PANEL};
use super::{f32_input, SharedOut};

/// Queries per task of a global layer.
const BLOCK: usize = 64;

/// Queries per task of a local layer: a block of `b` queries scores `b + 2w` keys of which each
/// query needs `2w + 1`, so smaller blocks compute fewer masked scores (at w = 64: 1.24x the needed
/// products with 32 queries, 1.49x with 64).
const LOCAL_BLOCK: usize = 32;

/// Attention over `q`, `k`, `v` of shape `[rows, heads, head_dim]` (contiguous f32, queries already
/// scaled), where sequence `i` is rows `offsets[i]..offsets[i] + lengths[i]`; for local layers, keys
/// within `|i - j| <= w` only. The output has the same layout.
pub struct CpuAttention<'a> {
    pub lengths: &'a [usize],
    pub offsets: &'a [usize],
    pub window: Option<usize>,
}

impl CustomOp3 for CpuAttention<'_> {
    fn name(&self) -> &'static str {
        "kompress-cpu-attention"
    }

    fn cpu_fwd(
        &self,
        q_s: &CpuStorage,
        q_l: &Layout,
        k_s: &CpuStorage,
        k_l: &Layout,
        v_s: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = "cpu attention";
        let (q, k, v) = (f32_input(q_s, q_l, name)?, f32_input(k_s, k_l, name)?, f32_input(v_s, v_l, name)?);
        let &[rows, h, d] = q_l.dims() else { candle_core::bail!("cpu attention: q must be 3-d") };
        let fits = self.lengths.iter().zip(self.offsets).all(|(&len, &start)| start + len <= rows);
        if k_l.dims() != q_l.dims()
            || v_l.dims() != q_l.dims()
            || self.lengths.len() != self.offsets.len()
            || !fits
        {
            candle_core::bail!("cpu attention: q, k, v, lengths and offsets disagree")
        }
        let mut out = vec![0f32; rows * h * d];
        let ptr = SharedOut(out.as_mut_ptr());
        let block_len = if self.window.is_some() { LOCAL_BLOCK } else { BLOCK };
        let blocks = self.lengths.iter().max().map_or(0, |&t| t.div_ceil(block_len));
        let isa = isa();
        let keys = d.is_multiple_of(PANEL).then(|| KeyPanels::new(k, self.lengths, self.offsets, h, d));
        (0..self.lengths.len() * h * blocks).into_par_iter().for_each_init(Vec::new, |scores, task| {
            let (seq, head, block) = (task / (h * blocks), task / blocks % h, task % blocks);
            let first = (self.offsets[seq] * h + head) * d;
            let job = Job {
                len: self.lengths[seq],
                window: self.window,
                stride: h * d,
                d,
                block: block_len,
                keys: keys.as_ref().map(|keys| keys.of(seq, head)),
                isa,
            };
            // SAFETY: q, k, v hold rows x h x d values, and this sequence's rows are in range (checked
            // above); the output rows of this task (its queries, its head) are its own.
            unsafe {
                let at = |x: &[f32]| x.as_ptr().add(first);
                job.run(block * block_len, at(q), at(k), at(v), ptr.at(first), scores)
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, h, d))))
    }
}

/// Rotates q and k in place (rotate-half RoPE) at each row's position in its sequence, in the fused
/// QKV projection laid out as planes `[3, rows, heads * head_dim]` (q, k, v: see
/// [`Planes`](super::Planes)), so no split copy is made.
pub struct Rope<'a> {
    pub heads: usize,
    /// Each row's position in its own sequence.
    pub positions: &'a [usize],
    /// `cos` and `sin` tables, `[positions, head_dim / 2]` row-major.
    pub cos: &'a [f32],
    pub sin: &'a [f32],
}

impl InplaceOp1 for Rope<'_> {
    fn name(&self) -> &'static str {
        "kompress-rope"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(data), Some((start, end)), &[3, rows, width]) =
            (s, l.contiguous_offsets(), l.dims())
        else {
            candle_core::bail!("rope: expects a contiguous f32 [3, rows, hidden]")
        };
        let h = self.heads;
        let d = width / h;
        let half = d / 2;
        let isa = isa();
        let max_pos = self.positions.iter().max().map_or(0, |&p| p + 1);
        if width != h * d
            || !d.is_multiple_of(2)
            || self.positions.len() != rows
            || self.cos.len() < max_pos * half
            || self.sin.len() < max_pos * half
        {
            candle_core::bail!("rope: [3, {rows}, {width}] for {h} heads disagrees with the tables")
        }
        // The q and k planes, one row at a time.
        data[start..end][..2 * rows * width].par_chunks_mut(width).enumerate().for_each(|(row, x)| {
            let pos = self.positions[row % rows];
            rotate(isa, x, &self.cos[pos * half..][..half], &self.sin[pos * half..][..half]);
        });
        Ok(())
    }
}

wide! {
    /// Rotate-half RoPE of each `d`-wide head of `x`, in place: `x1 cos - x2 sin`, `x2 cos + x1 sin`.
    fn rotate(x: &mut [f32], cos: &[f32], sin: &[f32]) => rotate_in
}

#[inline(always)]
fn rotate_in(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(2 * half) {
        let (x1, x2) = head.split_at_mut(half);
        for i in 0..half {
            let (a, b) = (x1[i], x2[i]);
            x1[i] = a * cos[i] - b * sin[i];
            x2[i] = b * cos[i] + a * sin[i];
        }
    }
}

/// Every sequence's keys, transposed once per layer into the panels the panel kernels read: per
/// head, per sequence, `ceil(len / PANEL)` panels of `[d][PANEL]` (keys past the length zero). Packed
/// per query block instead, each key was transposed once for every block that reads it (8 times at
/// 512 tokens in a global layer), a twentieth of an int8 forward.
struct KeyPanels {
    data: Vec<f32>,
    /// Per sequence, its first panel within a head.
    first: Vec<usize>,
    /// Panels per head.
    panels: usize,
    d: usize,
}

impl KeyPanels {
    fn new(k: &[f32], lengths: &[usize], offsets: &[usize], h: usize, d: usize) -> Self {
        let mut first = Vec::with_capacity(lengths.len());
        let mut panels = 0;
        for &len in lengths {
            first.push(panels);
            panels += len.div_ceil(PANEL);
        }
        let mut data = vec![0f32; h * panels * d * PANEL];
        data.par_chunks_mut(panels * d * PANEL).enumerate().for_each(|(head, dst)| {
            for ((&len, &start), &first) in lengths.iter().zip(offsets).zip(&first) {
                for j in 0..len {
                    let key = &k[((start + j) * h + head) * d..][..d];
                    let panel = &mut dst[(first + j / PANEL) * d * PANEL..][..d * PANEL];
                    for (dd, &x) in key.iter().enumerate() {
                        panel[dd * PANEL + j % PANEL] = x;
                    }
                }
            }
        });
        Self { data, first, panels, d }
    }

    /// One head's panels from one sequence's first key on.
    fn of(&self, seq: usize, head: usize) -> &[f32] {
        let per_panel = self.d * PANEL;
        &self.data[(head * self.panels + self.first[seq]) * per_panel..]
            [..(self.panels - self.first[seq]) * per_panel]
    }
}

/// One (sequence, head): `len` rows of `d` values each in q, k, v and the output, `stride` apart.
struct Job<'a> {
    len: usize,
    window: Option<usize>,
    stride: usize,
    d: usize,
    /// Queries per task.
    block: usize,
    /// This sequence's keys for this head as [`KeyPanels`], when the panel kernels run the products
    /// (heads a multiple of [`PANEL`] wide, as in every published model; else the `gemm` crate).
    keys: Option<&'a [f32]>,
    isa: Isa,
}

impl Job<'_> {
    /// Attention for queries `q0..q0 + block` (those past the sequence's length stay zero).
    unsafe fn run(
        &self,
        q0: usize,
        q: *const f32,
        k: *const f32,
        v: *const f32,
        out: *mut f32,
        scores: &mut Vec<f32>,
    ) {
        let q1 = (q0 + self.block).min(self.len);
        if q0 >= q1 {
            return;
        }
        let (k0, k1) = match self.window {
            None => (0, self.len),
            Some(w) => (q0.saturating_sub(w), (q1 + w).min(self.len)),
        };
        // The panel kernel starts at a panel boundary: the keys before the window are masked.
        let k0 = if self.keys.is_some() { k0 / PANEL * PANEL } else { k0 };
        let (nq, nk) = (q1 - q0, k1 - k0);
        let (q, k, v, out) = (
            q.add(q0 * self.stride),
            k.add(k0 * self.stride),
            v.add(k0 * self.stride),
            out.add(q0 * self.stride),
        );
        scores.resize(nq * nk, 0.0);
        self.scores(nq, nk, q, k0, k, scores);
        for (i, row) in scores.chunks_mut(nk).enumerate() {
            let (lo, hi) = match self.window {
                None => (0, nk),
                Some(w) => ((q0 + i).saturating_sub(w).max(k0) - k0, (q0 + i + w + 1).min(k1) - k0),
            };
            softmax_in(self.isa, row, lo, hi);
        }
        self.values(nq, nk, scores, v, out);
    }

    /// `scores[i][j] = q[i] . k[j]`, `k` pointing at key `k0`.
    unsafe fn scores(
        &self,
        nq: usize,
        nk: usize,
        q: *const f32,
        k0: usize,
        k: *const f32,
        scores: &mut [f32],
    ) {
        if let Some(keys) = self.keys {
            return self.scores_by_panels(nq, nk, q, &keys[k0 / PANEL * self.d * PANEL..], scores);
        }
        self.scores_by_gemm(nq, nk, q, k, scores)
    }

    /// `out[i] = sum_j scores[i][j] v[j]`.
    unsafe fn values(&self, nq: usize, nk: usize, scores: &[f32], v: *const f32, out: *mut f32) {
        if self.keys.is_some() {
            return self.values_by_panels(nq, nk, scores, v, out);
        }
        self.values_by_gemm(nq, nk, scores, v, out)
    }

    /// [`scores`](Self::scores) through the `gemm` crate (which packs both operands per call).
    unsafe fn scores_by_gemm(&self, nq: usize, nk: usize, q: *const f32, k: *const f32, scores: &mut [f32]) {
        let (nk_, s_) = (nk as isize, self.stride as isize);
        gemm_into(nq, nk, self.d, (scores.as_mut_ptr(), nk_, 1), (q, s_, 1), (k, 1, s_));
    }

    /// [`values`](Self::values) through the `gemm` crate.
    unsafe fn values_by_gemm(&self, nq: usize, nk: usize, scores: &[f32], v: *const f32, out: *mut f32) {
        let (nk_, s_) = (nk as isize, self.stride as isize);
        gemm_into(nq, self.d, nk, (out, s_, 1), (scores.as_ptr(), nk_, 1), (v, s_, 1));
    }

    /// [`scores`](Self::scores) through the weight products' panel kernels: the keys come as
    /// [`KeyPanels`] (from the block's first key on), the queries are read in place. At 64 x 192 x 64
    /// the `gemm` crate spent about a third of its time packing.
    unsafe fn scores_by_panels(&self, nq: usize, nk: usize, q: *const f32, keys: &[f32], scores: &mut [f32]) {
        let (d, stride) = (self.d, self.stride);
        let panels = nk.div_ceil(PANEL);
        debug_assert!(keys.len() >= panels * d * PANEL);
        for panel in 0..panels {
            panel_product(
                self.isa,
                (q, stride),
                nq,
                d,
                (keys.as_ptr().add(panel * d * PANEL), PANEL),
                (scores.as_mut_ptr().add(panel * PANEL), nk),
                PANEL.min(nk - panel * PANEL),
                false,
            );
        }
    }

    /// [`values`](Self::values) through the panel kernels, reading each `PANEL` columns of the
    /// values in place (`d` is a multiple of `PANEL`).
    unsafe fn values_by_panels(&self, nq: usize, nk: usize, scores: &[f32], v: *const f32, out: *mut f32) {
        for panel in 0..self.d / PANEL {
            let col = panel * PANEL;
            panel_product(
                self.isa,
                (scores.as_ptr(), nk),
                nq,
                nk,
                (v.add(col), self.stride),
                (out.add(col), self.stride),
                PANEL,
                false,
            );
        }
    }
}

/// A row-major view for [`gemm_into`]: first element, then the strides (in elements) between rows
/// and between columns.
type View<P> = (P, isize, isize);

/// `dst = lhs @ rhs` for an `m x k` by `k x n` product, single-threaded (attention parallelises over
/// its own tasks): the products of heads not a multiple of [`PANEL`] wide. `dst` is only written (it
/// may be uninitialised) when `k > 0`.
///
/// # Safety
/// Each view must address `m x k`, `k x n` and `m x n` valid f32 elements; `dst` must not overlap the
/// inputs nor be written by another thread meanwhile.
unsafe fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: View<*mut f32>,
    lhs: View<*const f32>,
    rhs: View<*const f32>,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2,
        dst.1,
        false,
        lhs.0,
        lhs.2,
        lhs.1,
        rhs.0,
        rhs.2,
        rhs.1,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

wide! {
    /// Softmax of `row[lo..hi]` in place; entries outside it become 0 (masked keys).
    fn softmax_in(row: &mut [f32], lo: usize, hi: usize) => softmax
}

#[inline(always)]
fn softmax(row: &mut [f32], lo: usize, hi: usize) {
    // The maximum over 16 independent lanes, so that it vectorises too (max is exact in any order).
    let mut maxes = [f32::NEG_INFINITY; 16];
    let chunks = row[lo..hi].chunks_exact(16);
    let max = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        maxes.iter_mut().zip(chunk).for_each(|(m, &x)| *m = m.max(x));
    }
    let max = maxes.into_iter().fold(max, f32::max);
    // Separate passes with independent lanes, so that each one vectorises.
    row[lo..hi].iter_mut().for_each(|x| *x = exp(*x - max));
    let mut lanes = [0f32; 8];
    let chunks = row[lo..hi].chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, x)| *l += x);
    }
    let inv = 1.0 / (lanes.iter().sum::<f32>() + tail);
    row[lo..hi].iter_mut().for_each(|x| *x *= inv);
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
}

/// `e^x` for `x <= 0` (softmax arguments), within 2 ulp: Cephes' polynomial on `x - n ln 2`, with
/// branch-free rounding so that loops over it vectorise (the libm call took a tenth of the forward).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer in the low bits
    let x = x.max(-87.0);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    let pow2n = f32::from_bits(
        (shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i32 + 127).wrapping_shl(23) as u32,
    );
    y * pow2n
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_accurate() {
        let mut worst = 0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (ours, std) = (super::exp(x), x.exp());
            if std > 1e-30 {
                worst = worst.max(((ours - std) / std).abs());
            }
        }
        assert!(worst < 3e-7, "max relative error {worst}");
    }
}
