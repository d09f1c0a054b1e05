//! `x @ w_t` for f32 on the CPU, split by output columns: each task runs a single-threaded GEMM on
//! its own slice of the weight, so the weight is packed once in all (not once per thread) and the
//! threads never wait on each other inside a product. At 128 rows candle's threaded GEMM spent a
//! quarter of its time packing and spinning.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use rayon::prelude::*;

use super::{f32_input, gemm_into, SharedOut};

/// Output columns per task (of 48, 96 and 192, the fastest at 128 and 2048 rows).
const COLUMNS: usize = 48;

/// `[rows, in] @ [in, out]`, both contiguous.
pub struct CpuLinear;

impl CustomOp2 for CpuLinear {
    fn name(&self) -> &'static str {
        "kompress-cpu-linear"
    }

    fn cpu_fwd(
        &self,
        x_s: &CpuStorage,
        x_l: &Layout,
        w_s: &CpuStorage,
        w_l: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = (f32_input(x_s, x_l, "cpu linear")?, f32_input(w_s, w_l, "cpu linear")?);
        let (&[rows, inner], &[inner_w, cols]) = (x_l.dims(), w_l.dims()) else {
            candle_core::bail!("cpu linear: expects 2-d operands")
        };
        if inner != inner_w {
            candle_core::bail!("cpu linear: [{rows}, {inner}] @ [{inner_w}, {cols}]")
        }
        let mut out = vec![0f32; rows * cols];
        let ptr = SharedOut(out.as_mut_ptr());
        (0..cols.div_ceil(COLUMNS)).into_par_iter().for_each(|task| {
            let first = task * COLUMNS;
            let n = COLUMNS.min(cols - first);
            // SAFETY: x is [rows, inner], w is [inner, cols], out is [rows, cols]; this task reads
            // and writes columns first..first + n only.
            unsafe {
                let (inner_, cols_) = (inner as isize, cols as isize);
                gemm_into(
                    rows,
                    n,
                    inner,
                    (ptr.at(first), cols_, 1),
                    (x.as_ptr(), inner_, 1),
                    (w.as_ptr().add(first), cols_, 1),
                )
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, cols))))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    #[test]
    fn matches_candle_matmul_with_ragged_column_tasks() {
        let x = Tensor::randn(0f32, 1.0, (37, 50), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 1.0, (50, 130), &Device::Cpu).unwrap();
        let ours = x.apply_op2_no_bwd(&w, &super::CpuLinear).unwrap();
        let diff = (ours - x.matmul(&w).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    }
}
