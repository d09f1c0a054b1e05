//! Linear layers for f32 on the CPU. [`PackedLinear`] (AVX-512) reads weights packed once at load;
//! elsewhere [`CpuLinear`] splits the product by output columns: each task runs a single-threaded
//! GEMM on its own slice of the weight, so the weight is packed once per call in all (not once per
//! thread) and the threads never wait on each other inside a product. At 128 rows candle's threaded
//! GEMM spent a quarter of its time packing and spinning. Both store attention's q, k and v as planes
//! and add a residual as they store, so no pass over an output is spent on layout or addition.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use rayon::prelude::*;

use super::isa::{isa, Isa};
use super::{f32_input, gemm_into, Planes, SharedOut};

/// The candle ops of a product type whose `accumulate((x, w), residual)` does the work: a
/// [`CustomOp2`] on `(x, w)` (named `$name`), and a [`CustomOp3`] on `(x, w, residual)` that adds the
/// product to the residual (`$name-residual`). `$label` names the op in errors.
macro_rules! product_ops {
    ($ty:ty, $name:literal, $label:literal) => {
        impl CustomOp2 for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                x_s: &CpuStorage,
                x_l: &Layout,
                w_s: &CpuStorage,
                w_l: &Layout,
            ) -> candle_core::Result<(CpuStorage, Shape)> {
                self.accumulate((x_s, x_l), (w_s, w_l), None)
            }
        }

        impl CustomOp3 for $ty {
            fn name(&self) -> &'static str {
                concat!($name, "-residual")
            }

            fn cpu_fwd(
                &self,
                x_s: &CpuStorage,
                x_l: &Layout,
                w_s: &CpuStorage,
                w_l: &Layout,
                r_s: &CpuStorage,
                r_l: &Layout,
            ) -> candle_core::Result<(CpuStorage, Shape)> {
                let residual = f32_input(r_s, r_l, concat!($label, " residual"))?.to_vec();
                self.accumulate((x_s, x_l), (w_s, w_l), Some(residual))
            }
        }
    };
}

product_ops!(CpuLinear, "kompress-cpu-linear", "cpu linear");
product_ops!(PackedLinear, "kompress-packed-linear", "packed linear");

/// Output columns per task (of 48, 96 and 192, the fastest at 128 and 2048 rows).
const COLUMNS: usize = 48;

/// `[rows, in] @ [in, out]`, both contiguous (as a [`CustomOp2`] on `(x, w)`), laid out as `planes`;
/// or `residual + x @ w` (as a [`CustomOp3`] on `(x, w, residual)`, one plane), the product added to
/// the residual as it is stored (no separate pass over the output).
pub struct CpuLinear {
    pub planes: Planes,
}

impl CpuLinear {
    /// `residual + x @ w`, `residual` being `[rows, cols]`, or `x @ w` without one.
    fn accumulate(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        residual: Option<Vec<f32>>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x_l, w_l) = (x.1, w.1);
        let (x, w) = (f32_input(x.0, x_l, "cpu linear")?, f32_input(w.0, w_l, "cpu linear")?);
        let (&[rows, inner], &[inner_w, cols]) = (x_l.dims(), w_l.dims()) else {
            candle_core::bail!("cpu linear: expects 2-d operands")
        };
        let planes = self.planes;
        let add = residual.is_some();
        if inner != inner_w
            || !planes.fit(cols, 1)
            || residual.as_ref().is_some_and(|r| r.len() != rows * cols || planes != Planes::ONE)
        {
            candle_core::bail!("cpu linear: [{rows}, {inner}] @ [{inner_w}, {cols}] into {planes:?}")
        }
        // `gemm` stores every element without reading it unless adding (`read_dst`), so the output
        // needs no zeroing pass, except when there is nothing to multiply.
        let mut out = match residual {
            Some(residual) => residual,
            None if inner == 0 => vec![0f32; rows * cols],
            None => Vec::with_capacity(rows * cols),
        };
        let ptr = SharedOut(out.as_mut_ptr());
        // Tasks of COLUMNS columns within each plane, so that a task writes one plane.
        let width = cols / planes.count;
        let per_plane = width.div_ceil(COLUMNS);
        (0..planes.count * per_plane).into_par_iter().for_each(|task| {
            let first = (task / per_plane) * width + (task % per_plane) * COLUMNS;
            let n = COLUMNS.min(width - (task % per_plane) * COLUMNS);
            let (at, ldc) = planes.place(rows, cols, 0, first);
            // SAFETY: x is [rows, inner], w is [inner, cols], out is rows x cols (initialised when
            // adding); this task reads and writes columns first..first + n only, which lie in one plane.
            unsafe {
                gemm_into(
                    rows,
                    n,
                    inner,
                    (ptr.at(at), ldc as isize, 1),
                    (x.as_ptr(), inner as isize, 1),
                    (w.as_ptr().add(first), cols as isize, 1),
                    add,
                )
            }
        });
        // SAFETY: the tasks covered every column of every plane (inner > 0), or out was initialised.
        unsafe { out.set_len(rows * cols) };
        Ok((CpuStorage::F32(out), planes.shape(rows, cols)))
    }
}

/// Output columns per panel of a packed weight: two AVX-512 registers of f32.
pub const PANEL: usize = 32;

/// Rows per parallel task of [`PackedLinear`]: their activations (at most 128 x 1152 floats, 590 KB)
/// stay in a core's L2 while the task's weight panels stream past them.
const ROW_BLOCK: usize = 128;

/// Whether this CPU runs [`PackedLinear`]: AVX-512 detected at run time and not capped below it by
/// `KOMPRESS_CPU_KERNELS` (see [`isa`]).
pub fn packed_supported() -> bool {
    isa() >= Isa::Avx512
}

/// A weight `[out, in]` (row-major `w`) as [`PackedLinear`] reads it: `ceil(out / PANEL)` panels, each
/// `in x PANEL` row-major, columns past `out` zero. Packing once at load replaces the per-call packing
/// a general GEMM does (13% of CPU samples of a 128-token forward, perf).
pub fn pack(w: &[f32], out: usize, inner: usize) -> Vec<f32> {
    let panels = out.div_ceil(PANEL);
    let mut packed = vec![0f32; panels * inner * PANEL];
    for (o, row) in w.chunks_exact(inner).enumerate() {
        let (panel, col) = (o / PANEL, o % PANEL);
        for (k, &v) in row.iter().enumerate() {
            packed[(panel * inner + k) * PANEL + col] = v;
        }
    }
    packed
}

/// `[rows, in] @ W^T` with `W` packed by [`pack`] (a `[panels, in, PANEL]` tensor); `cols` is `out`.
/// Activations are read in place (broadcast one value at a time), so nothing is packed per call. As a
/// [`CustomOp3`] it adds the product to a third operand `[rows, out]` (a residual connection) without
/// a pass of its own. Only for CPUs where [`packed_supported`] holds.
pub struct PackedLinear {
    pub cols: usize,
    /// The output's layout (one plane when adding a residual).
    pub planes: Planes,
}

impl PackedLinear {
    /// `residual + x @ W^T`, `residual` being `[rows, cols]`, or `x @ W^T` without one. The kernel
    /// exists on x86_64 only; elsewhere `packed_supported()` refuses before any task runs.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    fn accumulate(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        residual: Option<Vec<f32>>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x_l, w_l) = (x.1, w.1);
        let (x, w) = (f32_input(x.0, x_l, "packed linear")?, f32_input(w.0, w_l, "packed linear")?);
        let (&[rows, inner], &[panels, inner_w, PANEL]) = (x_l.dims(), w_l.dims()) else {
            candle_core::bail!("packed linear: expects [rows, in] and [panels, in, {PANEL}]")
        };
        let cols = self.cols;
        let add = residual.is_some();
        // Without a residual the kernel stores every element without reading it: no zeroing pass
        // (memset and page clearing took 4% of a 512-token forward).
        let mut out = residual.unwrap_or_else(|| Vec::with_capacity(rows * cols));
        let planes = self.planes;
        if inner != inner_w
            || panels != cols.div_ceil(PANEL)
            || (add && (out.len() != rows * cols || planes != Planes::ONE))
            || !planes.fit(cols, PANEL)
            || !packed_supported()
        {
            candle_core::bail!("packed linear: [{rows}, {inner}] @ {:?} for {cols} columns", w_l.dims())
        }
        let ptr = SharedOut(out.as_mut_ptr());
        let blocks = rows.div_ceil(ROW_BLOCK);
        // Row-block-major order: rayon hands each thread a contiguous range of tasks, so a thread
        // keeps one block of activations while the panels change.
        (0..blocks * panels).into_par_iter().for_each(|task| {
            let (block, panel) = (task / panels, task % panels);
            let first_row = block * ROW_BLOCK;
            let n_rows = ROW_BLOCK.min(rows - first_row);
            let first_col = panel * PANEL;
            let (at, ldc) = planes.place(rows, cols, first_row, first_col);
            // SAFETY: packed_supported() was checked; x holds rows x inner, w panels x inner x PANEL,
            // out rows x cols; this task writes rows first_row.. + n_rows of columns first_col.. only
            // (a panel lies within one plane).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::panel_product(
                    (x.as_ptr().add(first_row * inner), inner),
                    n_rows,
                    inner,
                    (w.as_ptr().add(panel * inner * PANEL), PANEL),
                    (ptr.at(at), ldc),
                    PANEL.min(cols - first_col),
                    add,
                )
            }
        });
        // SAFETY: the tasks covered every row block and panel, so all rows x cols values are written.
        unsafe { out.set_len(rows * cols) };
        Ok((CpuStorage::F32(out), planes.shape(rows, cols)))
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    /// Rows per micro-tile: 12 x 2 accumulators (24 of the 32 registers), enough independent FMA chains
    /// to hide the FMA latency and few B loads per FMA (single-thread 128-row products ran 2-5% faster
    /// than with 8).
    const TILE: usize = 12;

    /// Panel rows fetched ahead.
    const PREFETCH: usize = 8;

    /// `out[rows, ..cols] = x[rows, inner] @ panel[inner, PANEL]`, plus what `out` held when `add`
    /// (else `out` may be uninitialised: it is only written). Each operand is a pointer and the
    /// distance (in floats) between its rows: the weight products pass packed panels (`PANEL` apart),
    /// attention passes its q/v rows in place.
    ///
    /// # Safety
    /// AVX-512F must be available; the pointers must address the extents above, every panel row
    /// `PANEL` floats wide (readable even past `cols`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn panel_product(
        x: (*const f32, usize),
        rows: usize,
        inner: usize,
        panel: (*const f32, usize),
        out: (*mut f32, usize),
        cols: usize,
        add: bool,
    ) {
        let ((x, lda), (out, ldc)) = (x, out);
        let mut r = 0;
        while r + TILE <= rows {
            tile::<TILE>((x.add(r * lda), lda), inner, panel, (out.add(r * ldc), ldc), cols, add);
            r += TILE;
        }
        let (x, out) = ((x.add(r * lda), lda), (out.add(r * ldc), ldc));
        match rows - r {
            0 => {}
            1 => tile::<1>(x, inner, panel, out, cols, add),
            2 => tile::<2>(x, inner, panel, out, cols, add),
            3 => tile::<3>(x, inner, panel, out, cols, add),
            4 => tile::<4>(x, inner, panel, out, cols, add),
            5 => tile::<5>(x, inner, panel, out, cols, add),
            6 => tile::<6>(x, inner, panel, out, cols, add),
            7 => tile::<7>(x, inner, panel, out, cols, add),
            8 => tile::<8>(x, inner, panel, out, cols, add),
            9 => tile::<9>(x, inner, panel, out, cols, add),
            10 => tile::<10>(x, inner, panel, out, cols, add),
            _ => tile::<11>(x, inner, panel, out, cols, add),
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const M: usize>(
        (x, lda): (*const f32, usize),
        inner: usize,
        (panel, ldb): (*const f32, usize),
        (out, ldc): (*mut f32, usize),
        cols: usize,
        add: bool,
    ) {
        let mask = |n: usize| -> __mmask16 { ((1u32 << n.min(16)) - 1) as __mmask16 };
        let (m0, m1) = (mask(cols), mask(cols.saturating_sub(16)));
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        for (i, acc) in acc.iter_mut().enumerate().filter(|_| add) {
            acc[0] = _mm512_maskz_loadu_ps(m0, out.add(i * ldc));
            // Masked off entirely when the panel has at most 16 columns: then the address may lie
            // past the buffer, which `add` must not produce; it is never dereferenced.
            acc[1] = _mm512_maskz_loadu_ps(m1, out.wrapping_add(i * ldc + 16));
        }
        for k in 0..inner {
            // The panel row PREFETCH rows ahead, both cache lines, into L1.
            let ahead = panel.wrapping_add((k + PREFETCH) * ldb).cast::<i8>();
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            let b0 = _mm512_loadu_ps(panel.add(k * ldb));
            let b1 = _mm512_loadu_ps(panel.add(k * ldb + 16));
            for (i, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*x.add(i * lda + k));
                acc[0] = _mm512_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(a, b1, acc[1]);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(out.add(i * ldc), m0, acc[0]);
            _mm512_mask_storeu_ps(out.wrapping_add(i * ldc + 16), m1, acc[1]);
        }
    }
}
