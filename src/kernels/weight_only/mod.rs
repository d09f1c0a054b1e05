//! Weight-only forms of the linear layers on the CPU: the weights stored narrow (bf16 for `--dtype
//! bf16`, int8 for `--dtype int8-wo`), the activations kept f32 (bf16 rounds them to bf16 once per
//! product), the products accumulated in f32. Unlike `--dtype int8` no activation is clipped to a
//! per-token scale, which is what costs dynamic int8 its agreement on ModernBERT's outlier channels.
//!
//! Both forms share the layout of the f32 packed kernel ([`PANEL`] output columns per panel) and one
//! driver: tasks over row blocks x panels, each running a form's row tiles. Every path of a form
//! (hand-written AVX-512 where it pays, else plain Rust compiled for the CPU's widest vectors) runs the
//! same f32 operations in the same order, so their outputs are bit-identical; the tests check it.

pub(crate) mod bf16;
pub(crate) mod int8;

use std::sync::Arc;

use candle_core::{CpuStorage, Layout, Shape};
use rayon::prelude::*;

use super::isa::{isa, Isa};
use super::{f32_input, Planes, SharedOut};

/// Output columns per panel: two AVX-512 registers of f32.
pub(crate) const PANEL: usize = 32;

/// Rows per row block: their activations stay in a core's L2 while a task's panels stream past.
const ROW_BLOCK: usize = 128;

/// A weight `[out, in]` in one of the weight-only forms.
pub(crate) enum WoWeight {
    Bf16(bf16::Bf16Weight),
    Int8(int8::Int8WoWeight),
}

impl WoWeight {
    fn dims(&self) -> (usize, usize) {
        match self {
            Self::Bf16(w) => (w.out, w.inner),
            Self::Int8(w) => (w.out, w.inner),
        }
    }
}

/// One task's output: `rows x cols` values `ldc` apart (`cols <= PANEL`), stored, or added to what
/// they hold when `add`.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub ptr: *mut f32,
    pub ldc: usize,
    pub cols: usize,
    pub add: bool,
}

impl Out {
    /// Stores rows of accumulators (`PANEL` apart in `acc`): `out[c] = acc[c]`, or `out[c] + acc[c]`
    /// when adding (a residual), for the task's columns.
    ///
    /// # Safety
    /// `acc.len() / PANEL` rows must be addressable, each `cols` floats, initialised when adding.
    pub(crate) unsafe fn store(self, acc: &[f32]) {
        for (r, acc) in acc.chunks_exact(PANEL).enumerate() {
            let o = self.ptr.add(r * self.ldc);
            if self.add {
                // The output is initialised (the residual): a slice over it is sound.
                let o = std::slice::from_raw_parts_mut(o, self.cols);
                o.iter_mut().zip(acc).for_each(|(o, &v)| *o += v);
            } else {
                // Raw copies: without `add`, the output may be uninitialised.
                std::ptr::copy_nonoverlapping(acc.as_ptr(), o, self.cols);
            }
        }
    }
}

/// `x @ W^T` laid out as `planes`, or `residual + x @ W^T` (one plane), `x` `[rows, in]` row-major,
/// on the best paths this CPU has at or under `cap`.
fn product(w: &WoWeight, x: &[f32], residual: Option<Vec<f32>>, cap: Isa, planes: Planes) -> Vec<f32> {
    let (cols, inner) = w.dims();
    let rows = x.len() / inner;
    let panels = cols.div_ceil(PANEL);
    let add = residual.is_some();
    // Without a residual the kernels store every element: no zeroing pass, no reads of the output.
    let mut out = residual.unwrap_or_else(|| Vec::with_capacity(rows * cols));
    let ptr = SharedOut(out.as_mut_ptr());
    // A task per row block prepares its rows (bf16 rounds them) and runs them against every panel,
    // as nested tasks that the other threads steal.
    (0..rows.div_ceil(ROW_BLOCK)).into_par_iter().for_each(|block| {
        let first_row = block * ROW_BLOCK;
        let n_rows = ROW_BLOCK.min(rows - first_row);
        let x = &x[first_row * inner..][..n_rows * inner];
        let rounded = match w {
            WoWeight::Bf16(_) => bf16::Rows::new(x, inner, cap),
            WoWeight::Int8(_) => bf16::Rows::Bits(Vec::new()),
        };
        (0..panels).into_par_iter().for_each(|panel| {
            let first_col = panel * PANEL;
            let (at, ldc) = planes.place(rows, cols, first_row, first_col);
            // SAFETY: this task writes rows first_row.. + n_rows of columns first_col.. + PANEL of
            // out only (a panel lies within one plane); out holds rows x cols (initialised when adding).
            let out = Out { ptr: unsafe { ptr.at(at) }, ldc, cols: PANEL.min(cols - first_col), add };
            // SAFETY: the operands hold n_rows rows of the weight's `inner` and the panel exists.
            unsafe {
                match w {
                    WoWeight::Bf16(w) => w.panel_product(&rounded, n_rows, panel, out, cap),
                    WoWeight::Int8(w) => w.panel_product(x, n_rows, panel, out, cap),
                }
            }
        });
    });
    // SAFETY: the tasks above covered every row block and panel, so all rows x cols are written.
    unsafe { out.set_len(rows * cols) };
    out
}

/// `x @ W^T` (as a [`CustomOp1`]) or `residual + x @ W^T` (as a [`CustomOp2`] on `(x, residual)`,
/// added as the product is stored), `x` a contiguous f32 `[rows, in]`, on the paths [`isa`] allows.
#[derive(Clone)]
pub(crate) struct WoLinear {
    pub weight: Arc<WoWeight>,
    /// The output's layout (one plane when adding a residual).
    pub planes: Planes,
}

impl WoLinear {
    fn run(
        &self,
        x: (&CpuStorage, &Layout),
        residual: Option<Vec<f32>>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x_data = f32_input(x.0, x.1, "weight-only linear")?;
        let (out, inner) = self.weight.dims();
        let &[rows, inner_x] = x.1.dims() else {
            candle_core::bail!("weight-only linear: expects [rows, in]")
        };
        let planes = self.planes;
        if inner_x != inner
            || inner == 0
            || residual.as_ref().is_some_and(|r| r.len() != rows * out || planes != Planes::ONE)
            || !planes.fit(out, PANEL)
        {
            candle_core::bail!("weight-only linear: [{rows}, {inner_x}] @ [{out}, {inner}]^T into {planes:?}")
        }
        let values = product(&self.weight, x_data, residual, isa(), planes);
        Ok((CpuStorage::F32(values), planes.shape(rows, out)))
    }
}

held_weight_ops!(WoLinear, "kompress-weight-only-linear", "weight-only linear");

#[cfg(test)]
mod tests;
