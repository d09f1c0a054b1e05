//! Fused attention for f32 on the CPU: one task per (sequence, head, block of 64 queries), each
//! computing its scores, softmax and output with single-threaded GEMMs in a scratch buffer the size
//! of one block's scores.
//!
//! Compared with candle's ops (still used for other dtypes and devices, see `modernbert/attention.rs`) this
//! spreads small products over the cores instead of threading each one, never materialises more
//! than a block of scores per task, skips padded queries and keys entirely, and writes the output
//! directly in the `[batch, seq, heads, head_dim]` layout that the output projection reads.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape};
use rayon::prelude::*;

use super::{f32_input, gemm_into, SharedOut};

/// Queries per task.
const BLOCK: usize = 64;

/// Attention over `q`, `k`, `v` of shape `[batch, heads, seq, head_dim]` (contiguous f32, queries
/// already scaled), with key padding from `lengths` and, for local layers, a window of `|i - j| <= w`.
pub struct CpuAttention {
    pub lengths: Vec<usize>,
    pub window: Option<usize>,
}

impl CustomOp3 for CpuAttention {
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
        let &[b, h, t, d] = q_l.dims() else { candle_core::bail!("cpu attention: q must be 4-d") };
        if k_l.dims() != q_l.dims() || v_l.dims() != q_l.dims() || self.lengths.len() != b {
            candle_core::bail!("cpu attention: q, k, v and lengths disagree")
        }
        let mut out = vec![0f32; b * t * h * d];
        let ptr = SharedOut(out.as_mut_ptr());
        let blocks = t.div_ceil(BLOCK);
        (0..b * h * blocks).into_par_iter().for_each_init(Vec::new, |scores, task| {
            let (seq, head, block) = (task / (h * blocks), task / blocks % h, task % blocks);
            let base = (seq * h + head) * t * d;
            let head_of = |x: &'_ [f32]| x[base..base + t * d].as_ptr();
            let job = Job { len: self.lengths[seq], window: self.window, t, h, d, seq, head };
            // SAFETY: the slices hold [b, h, t, d] f32 values; the output rows of this task are its own.
            unsafe { job.run(block * BLOCK, head_of(q), head_of(k), head_of(v), ptr, scores) };
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, h, d))))
    }
}

/// One (sequence, head): `t` rows of `d` values each in q, k, v.
struct Job {
    len: usize,
    window: Option<usize>,
    t: usize,
    h: usize,
    d: usize,
    seq: usize,
    head: usize,
}

impl Job {
    /// Attention for queries `q0..q0 + BLOCK` (those past the sequence's length stay zero).
    unsafe fn run(
        &self,
        q0: usize,
        q: *const f32,
        k: *const f32,
        v: *const f32,
        out: SharedOut,
        scores: &mut Vec<f32>,
    ) {
        let q1 = (q0 + BLOCK).min(self.len);
        if q0 >= q1 {
            return;
        }
        let (k0, k1) = match self.window {
            None => (0, self.len),
            Some(w) => (q0.saturating_sub(w), (q1 + w).min(self.len)),
        };
        let (nq, nk, d) = (q1 - q0, k1 - k0, self.d);
        scores.resize(nq * nk, 0.0);
        let (nk_, d_) = (nk as isize, d as isize);
        // scores[i][j] = q[q0 + i] . k[k0 + j]
        gemm_into(nq, nk, d, (scores.as_mut_ptr(), nk_, 1), (q.add(q0 * d), d_, 1), (k.add(k0 * d), 1, d_));
        for (i, row) in scores.chunks_mut(nk).enumerate() {
            let (lo, hi) = match self.window {
                None => (0, nk),
                Some(w) => ((q0 + i).saturating_sub(w).max(k0) - k0, (q0 + i + w + 1).min(k1) - k0),
            };
            softmax_in(row, lo, hi);
        }
        // out[seq, q0 + i, head, :] = sum_j scores[i][j] v[k0 + j]
        let dst = out.at(((self.seq * self.t + q0) * self.h + self.head) * d);
        gemm_into(
            nq,
            d,
            nk,
            (dst, (self.h * d) as isize, 1),
            (scores.as_ptr(), nk_, 1),
            (v.add(k0 * d), d_, 1),
        );
    }
}

/// Softmax of `row[lo..hi]` in place; entries outside it become 0 (masked keys).
fn softmax_in(row: &mut [f32], lo: usize, hi: usize) {
    let max = row[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
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
