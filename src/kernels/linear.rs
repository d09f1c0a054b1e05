//! Linear layers for f32 on the CPU: [`PackedLinear`] reads weights packed once at load into panels
//! of [`PANEL`] output columns and multiplies them with [`panel_product`], whose arithmetic is defined
//! once and run the same way on every path (AVX-512, AVX2 with FMA, plain Rust): per output,
//! `acc = fma(x[k], w[k], acc)` for k in order, from zero or from the residual being added. So a row's
//! result depends on nothing but that row and the weight: not on the other rows of the batch, their
//! number or padding, nor on the CPU (a general GEMM's blocking changes its sums with the operands'
//! shapes and the cache sizes: on a Zen 3 that made a batched text's scores differ from its own in the
//! last bits). Outputs can be stored as attention's q, k and v planes, and a residual is added as
//! they are stored, so no pass over an output is spent on layout or addition.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::isa::detected;
use super::isa::{isa, Isa};
use super::{f32_input, Planes, SharedOut};

impl CustomOp2 for PackedLinear {
    fn name(&self) -> &'static str {
        "kompress-packed-linear"
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

impl CustomOp3 for PackedLinear {
    fn name(&self) -> &'static str {
        "kompress-packed-linear-residual"
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
        let residual = f32_input(r_s, r_l, "packed linear residual")?.to_vec();
        self.accumulate((x_s, x_l), (w_s, w_l), Some(residual))
    }
}

/// Output columns per panel of a packed weight: two AVX-512 registers of f32.
pub const PANEL: usize = 32;

/// Rows per parallel task of [`PackedLinear`]: their activations (at most 128 x 1152 floats, 590 KB)
/// stay in a core's L2 while the task's weight panels stream past them.
const ROW_BLOCK: usize = 128;

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
/// a pass of its own.
pub struct PackedLinear {
    pub cols: usize,
    /// The output's layout (one plane when adding a residual).
    pub planes: Planes,
}

impl PackedLinear {
    /// `residual + x @ W^T`, `residual` being `[rows, cols]`, or `x @ W^T` without one.
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
        let (cols, planes) = (self.cols, self.planes);
        if inner != inner_w
            || panels != cols.div_ceil(PANEL)
            || residual.as_ref().is_some_and(|r| r.len() != rows * cols || planes != Planes::ONE)
            || !planes.fit(cols, PANEL)
        {
            candle_core::bail!("packed linear: [{rows}, {inner}] @ {:?} for {cols} columns", w_l.dims())
        }
        let out = product(x, w, (rows, inner, cols), residual, planes, isa());
        Ok((CpuStorage::F32(out), planes.shape(rows, cols)))
    }
}

/// `x @ W^T` for `x` `[rows, inner]` and `w` packed by [`pack`] (`cols` outputs), laid out as `planes`,
/// or `residual + x @ W^T` (one plane), on the paths `cap` allows on this CPU.
fn product(
    x: &[f32],
    w: &[f32],
    (rows, inner, cols): (usize, usize, usize),
    residual: Option<Vec<f32>>,
    planes: Planes,
    cap: Isa,
) -> Vec<f32> {
    let panels = cols.div_ceil(PANEL);
    let add = residual.is_some();
    // Without a residual the kernels store every element without reading it: no zeroing pass
    // (memset and page clearing took 4% of a 512-token forward).
    let mut out = residual.unwrap_or_else(|| Vec::with_capacity(rows * cols));
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
        // SAFETY: x holds rows x inner, w panels x inner x PANEL, out rows x cols (initialised when
        // adding); this task writes rows first_row.. + n_rows of columns first_col.. only (a panel
        // lies within one plane).
        unsafe {
            panel_product(
                cap,
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
    out
}

/// `out[rows, ..cols] = x[rows, inner] @ panel[inner, PANEL]`, plus what `out` held when `add` (else
/// `out` may be uninitialised: it is only written), on the widest path `cap` allows on this CPU. Each
/// operand is a pointer and the distance (in floats) between its rows: the weight products pass
/// packed panels (`PANEL` apart), attention passes its q/v rows in place. Every path computes, per
/// output, `acc = fma(x[k], panel[k], acc)` for k in order from zero (or from `out`'s value), so all
/// give the same bits.
///
/// # Safety
/// The pointers must address the extents above, every panel row `PANEL` floats wide (readable even
/// past `cols`), and `out` must not be written by another thread meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn panel_product(
    cap: Isa,
    x: (*const f32, usize),
    rows: usize,
    inner: usize,
    panel: (*const f32, usize),
    out: (*mut f32, usize),
    cols: usize,
    add: bool,
) {
    #[cfg(target_arch = "x86_64")]
    match cap.min(detected()) {
        // SAFETY: the level is detected, and the caller keeps the extents.
        level if level >= Isa::Avx512 => return avx512::panel_product(x, rows, inner, panel, out, cols, add),
        level if level >= Isa::Avx2 => return avx2::panel_product(x, rows, inner, panel, out, cols, add),
        _ => {}
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = cap;
    portable::panel_product(x, rows, inner, panel, out, cols, add)
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

/// The body of a half-panel kernel's `panel_product` (see [`panel_product`]'s arguments): each half
/// panel of `HALF` columns, its rows in tiles of `$full` and the rows left as one tile of `1..$full`
/// rows (`$rest` listing `1..$full - 1`, `$last` the largest), each run by the caller's `tile::<M>`.
macro_rules! half_panels {
    ($full:ident, [$($rest:literal),*], $last:literal, $x:expr, $rows:expr, $inner:expr, $panel:expr, $out:expr, $cols:expr, $add:expr) => {{
        let (((x, lda), (w, ldb), (out, ldc)), rows, inner, cols, add) = (($x, $panel, $out), $rows, $inner, $cols, $add);
        for half in (0..cols.min(PANEL)).step_by(HALF) {
            let (w, n) = (w.add(half), (cols - half).min(HALF));
            let mut r = 0;
            while r < rows {
                let m = $full.min(rows - r);
                let (x, out) = ((x.add(r * lda), lda), (out.add(r * ldc + half), ldc));
                match m {
                    $full => tile::<$full>(x, inner, (w, ldb), out, n, add),
                    $($rest => tile::<$rest>(x, inner, (w, ldb), out, n, add),)*
                    _ => tile::<$last>(x, inner, (w, ldb), out, n, add),
                }
                r += m;
            }
        }
    }};
}

/// [`panel_product`] on AVX2 with FMA: tiles of 6 rows x 16 columns (12 of the 16 registers), each
/// panel in two halves.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// Rows per micro-tile.
    const TILE: usize = 6;

    /// Columns per half panel: two AVX2 registers.
    const HALF: usize = 16;

    /// See [`super::panel_product`].
    ///
    /// # Safety
    /// AVX2 and FMA must be available; the extents as for [`super::panel_product`].
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn panel_product(
        x: (*const f32, usize),
        rows: usize,
        inner: usize,
        panel: (*const f32, usize),
        out: (*mut f32, usize),
        cols: usize,
        add: bool,
    ) {
        half_panels!(TILE, [1, 2, 3, 4], 5, x, rows, inner, panel, out, cols, add)
    }

    /// Lanes `0..n` of 8 set, for masked loads and stores.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn lanes(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// `M` rows against `n <= HALF` columns of the half panel at `w`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const M: usize>(
        (x, lda): (*const f32, usize),
        inner: usize,
        (w, ldb): (*const f32, usize),
        (out, ldc): (*mut f32, usize),
        n: usize,
        add: bool,
    ) {
        let (m0, m1) = (lanes(n), lanes(n.saturating_sub(8)));
        let mut acc = [[_mm256_setzero_ps(); 2]; M];
        for (i, acc) in acc.iter_mut().enumerate().filter(|_| add) {
            // Masked: lanes past `n` are not read (the second register's address may lie past the
            // buffer when n <= 8; masked-off lanes never fault).
            acc[0] = _mm256_maskload_ps(out.add(i * ldc), m0);
            acc[1] = _mm256_maskload_ps(out.wrapping_add(i * ldc + 8), m1);
        }
        for k in 0..inner {
            let b0 = _mm256_loadu_ps(w.add(k * ldb));
            let b1 = _mm256_loadu_ps(w.add(k * ldb + 8));
            for (i, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*x.add(i * lda + k));
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            if n == HALF {
                _mm256_storeu_ps(out.add(i * ldc), acc[0]);
                _mm256_storeu_ps(out.add(i * ldc + 8), acc[1]);
            } else {
                _mm256_maskstore_ps(out.add(i * ldc), m0, acc[0]);
                _mm256_maskstore_ps(out.wrapping_add(i * ldc + 8), m1, acc[1]);
            }
        }
    }
}

/// [`panel_product`] in plain Rust: tiles of 4 rows x 16 columns, which LLVM keeps in 16 NEON
/// registers. Each product is `fma(x[k], w[k], acc)` rounded once, as on every other path: one
/// instruction on AArch64 and on x86 CPUs with FMA (the same Rust compiled a second time with FMA
/// enabled, chosen at run time); on x86 CPUs without FMA, [`soft_fma`]'s exact emulation in f64.
pub(crate) mod portable {
    use super::PANEL;

    /// Rows per micro-tile.
    const TILE: usize = 4;

    /// Columns per half panel.
    const HALF: usize = 16;

    /// See [`super::panel_product`].
    ///
    /// # Safety
    /// The extents as for [`super::panel_product`].
    pub(crate) unsafe fn panel_product(
        x: (*const f32, usize),
        rows: usize,
        inner: usize,
        panel: (*const f32, usize),
        out: (*mut f32, usize),
        cols: usize,
        add: bool,
    ) {
        // An x86 CPU below AVX2 (or one capped there by `KOMPRESS_CPU_KERNELS`) may still have FMA.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            return fused(x, rows, inner, panel, out, cols, add);
        }
        baseline(x, rows, inner, panel, out, cols, add)
    }

    /// One build of the tiles: a function `$name` with `$attrs`, its products with [`soft_fma`] when
    /// `$soft` (the builds differ only in these; `#[target_feature]` needs a function of its own).
    macro_rules! tiles {
        ($(#[$attr:meta])* $name:ident, $soft:expr) => {
            $(#[$attr])*
            pub(crate) unsafe fn $name(
                x: (*const f32, usize),
                rows: usize,
                inner: usize,
                panel: (*const f32, usize),
                out: (*mut f32, usize),
                cols: usize,
                add: bool,
            ) {
                #[inline(always)]
                unsafe fn tile<const M: usize>(
                    x: (*const f32, usize),
                    inner: usize,
                    w: (*const f32, usize),
                    out: (*mut f32, usize),
                    n: usize,
                    add: bool,
                ) {
                    tile_with::<M, { $soft }>(x, inner, w, out, n, add)
                }
                half_panels!(TILE, [1, 2], 3, x, rows, inner, panel, out, cols, add)
            }
        };
    }

    tiles!(
        /// The tiles compiled for the baseline ISA: x86-64's SSE2, with [`soft_fma`] (`f32::mul_add`
        /// there is a call into libm per product: a 128-token forward of kompress-base took 72 s), or
        /// AArch64's NEON, whose `fmadd` is `mul_add`.
        ///
        /// # Safety
        /// The extents as for [`super::panel_product`].
        baseline,
        cfg!(target_arch = "x86_64")
    );

    tiles!(
        /// The same tiles compiled with FMA, so that `mul_add` is an instruction.
        ///
        /// # Safety
        /// FMA must be available; the extents as for [`super::panel_product`].
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "fma")]
        fused,
        false
    );

    /// `M` rows against `n <= HALF` columns of the half panel at `w`; `SOFT`: with [`soft_fma`].
    #[inline(always)]
    unsafe fn tile_with<const M: usize, const SOFT: bool>(
        (x, lda): (*const f32, usize),
        inner: usize,
        (w, ldb): (*const f32, usize),
        (out, ldc): (*mut f32, usize),
        n: usize,
        add: bool,
    ) {
        let mut acc = [[0f32; HALF]; M];
        for (i, acc) in acc.iter_mut().enumerate().filter(|_| add) {
            std::ptr::copy_nonoverlapping(out.add(i * ldc), acc.as_mut_ptr(), n);
        }
        for k in 0..inner {
            // A half panel row is readable in full (panel rows are PANEL wide).
            let b = w.add(k * ldb).cast::<[f32; HALF]>().read_unaligned();
            for (i, acc) in acc.iter_mut().enumerate() {
                let a = *x.add(i * lda + k);
                for (acc, &b) in acc.iter_mut().zip(&b) {
                    *acc = match SOFT {
                        true => soft_fma(a, b, *acc),
                        false => a.mul_add(b, *acc),
                    };
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            std::ptr::copy_nonoverlapping(acc.as_ptr(), out.add(i * ldc), n);
        }
    }

    /// `a * b + c` rounded once to f32, exactly as `f32::mul_add`, in f64 arithmetic without an FMA
    /// instruction and without branches (so that it vectorizes): the product of two f32 is exact in
    /// f64; the sum is rounded to f64 and its error found exactly (Knuth's two-sum); setting the
    /// sum's last bit when that error is not zero (rounding to odd) leaves 29 spare bits that make the
    /// final rounding to f32 the correct one (Boldo and Melquiond, "Emulation of FMA and correctly
    /// rounded sums: proved algorithms using rounding to odd", 2008).
    #[inline(always)]
    pub(crate) fn soft_fma(a: f32, b: f32, c: f32) -> f32 {
        let (p, c) = (f64::from(a) * f64::from(b), f64::from(c));
        let s = p + c;
        let v = s - p;
        let e = (p - (s - v)) + (c - v);
        let bits = s.to_bits();
        // Inexact and even: the odd neighbour on the side of the exact value (one ulp away in the
        // bits: up in magnitude when the error has the sum's sign, down otherwise).
        let nudge = match e != 0.0 && bits & 1 == 0 {
            true => match (e > 0.0) == (s > 0.0) {
                true => 1,
                false => u64::MAX,
            },
            false => 0,
        };
        f64::from_bits(bits.wrapping_add(nudge)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::isa::supported;

    /// A deterministic spread of values over several binades, so that sums round and cancel.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                unit * (1 << (state % 7)) as f32
            })
            .collect()
    }

    /// The defined arithmetic, written out: per output, `fma(x[k], w[k], acc)` for k in order, from
    /// zero or from the residual.
    fn naive(x: &[f32], w: &[f32], inner: usize, residual: Option<&[f32]>) -> Vec<f32> {
        let out = w.len() / inner;
        let mut result = Vec::new();
        for (r, xr) in x.chunks(inner).enumerate() {
            for (o, wr) in w.chunks(inner).enumerate() {
                let start = residual.map_or(0.0, |res| res[r * out + o]);
                result.push(xr.iter().zip(wr).fold(start, |acc, (&x, &w)| x.mul_add(w, acc)));
            }
        }
        result
    }

    fn same_bits(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
    }

    /// Every path this CPU runs (capped with the level passed down, as `KOMPRESS_CPU_KERNELS` does)
    /// gives the defined arithmetic's bits, on shapes ragged in every direction (rows not a multiple
    /// of any tile or of the row block, columns not of a half panel or a panel), with and without a
    /// residual, and in planes.
    #[test]
    fn every_path_gives_the_defined_bits() {
        let paths: Vec<Isa> = Isa::ALL.into_iter().filter(|&i| supported(i)).collect();
        eprintln!("f32 panel paths here: {paths:?}");
        let shapes =
            [(1, 7, 5), (37, 50, 130), (135, 64, 17), (260, 33, 64), (7, 300, 40), (3, 1, 33), (13, 9, 8)];
        for (i, (rows, inner, out)) in shapes.into_iter().enumerate() {
            let seed = i as u64 * 3;
            let (x, w, residual) =
                (values(rows * inner, seed), values(out * inner, seed + 1), values(rows * out, seed + 2));
            let packed = pack(&w, out, inner);
            for residual in [None, Some(residual.as_slice())] {
                let want = naive(&x, &w, inner, residual);
                for &isa in &paths {
                    let got = product(
                        &x,
                        &packed,
                        (rows, inner, out),
                        residual.map(<[f32]>::to_vec),
                        Planes::ONE,
                        isa,
                    );
                    assert!(
                        same_bits(&got, &want),
                        "{rows}x{inner}x{out} on {isa:?}, residual {}",
                        residual.is_some()
                    );
                }
            }
        }
    }

    /// The emulated FMA is `f32::mul_add` bit for bit: on values over 40 binades with their sums
    /// rounding, cancelling to zero and to subnormals, ties of every kind, and infinities.
    #[test]
    fn the_emulated_fma_is_the_fused_one() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for _ in 0..2_000_000 {
            let r = next();
            let f = |bits: u64, binade: u64| {
                let v = f32::from_bits(0x3f80_0000 | (bits as u32 & 0x007f_ffff)) - 1.5;
                v * 2f32.powi((binade % 40) as i32 - 20)
            };
            let (a, b) = (f(r, r >> 23), f(r >> 29, r >> 52));
            // c near -a*b half the time, so that the sum cancels.
            let c = match r & 1 {
                0 => f(next(), next()),
                _ => -(a * b) * (1.0 + f32::EPSILON * ((r >> 5) % 7) as f32 - f32::EPSILON * 3.0),
            };
            let (want, got) = (a.mul_add(b, c), portable::soft_fma(a, b, c));
            assert_eq!(got.to_bits(), want.to_bits(), "fma({a:e}, {b:e}, {c:e}): {got:e} != {want:e}");
            checked += 1;
        }
        // a * b = 2^-24 + 2^-60 exactly, so 1 + a * b lies just above the midpoint between 1 and the
        // next f32: rounded to f64 first it lands on the midpoint, and then to even, 1.0 (wrong).
        let (a, b) = ((2.0 - 4095.0 * 2f32.powi(-23)) * 2f32.powi(-25), 1.0 + 2f32.powi(-12));
        assert_eq!((f64::from(a) * f64::from(b) + 1.0) as f32, 1.0, "the case rounds twice");
        assert_eq!(a.mul_add(b, 1.0), 1.0 + f32::EPSILON);
        assert_eq!(portable::soft_fma(a, b, 1.0), 1.0 + f32::EPSILON);
        assert_eq!(portable::soft_fma(-a, b, -1.0), -1.0 - f32::EPSILON);
        let tiny = f32::from_bits(1);
        for (a, b, c) in [
            (tiny, 0.5, 0.0),
            (tiny, 1.5, -tiny),
            (1e-20, 1e-20, 1e-38),
            (f32::MAX, 2.0, -f32::MAX),
            (f32::INFINITY, 1.0, 1.0),
            (1.0 + f32::EPSILON, 1.0 - f32::EPSILON, -1.0),
            (3.0, 1.0 / 3.0, -1.0),
            (-0.0, 1.0, 0.0),
            (0.0, -1.0, -0.0),
        ] {
            let (want, got) = (a.mul_add(b, c), portable::soft_fma(a, b, c));
            assert_eq!(got.to_bits(), want.to_bits(), "fma({a:e}, {b:e}, {c:e})");
            checked += 1;
        }
        assert!(checked > 2_000_000);
    }

    /// The plain-Rust tiles give the defined bits whichever way they are compiled: for the baseline
    /// ISA (on x86 a correctly rounded library call per product) and, where the CPU has FMA, with it.
    #[test]
    fn the_portable_tiles_give_the_defined_bits_with_and_without_fma() {
        type Tiles =
            unsafe fn((*const f32, usize), usize, usize, (*const f32, usize), (*mut f32, usize), usize, bool);
        let mut builds: Vec<(&str, Tiles)> = vec![("baseline", portable::baseline)];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("fma") {
            builds.push(("fused", portable::fused));
        }
        for (rows, inner, cols) in [(7, 50, 16), (4, 33, 13), (3, 1, 9), (5, 20, 32)] {
            let (x, w, residual) =
                (values(rows * inner, 4), values(cols * inner, 5), values(rows * PANEL, 6));
            // One panel of columns, laid out k by k as `pack` lays a panel.
            let mut panel = vec![0f32; inner * PANEL];
            for k in 0..inner {
                for c in 0..cols {
                    panel[k * PANEL + c] = w[c * inner + k];
                }
            }
            let start: Vec<f32> = (0..rows).flat_map(|r| residual[r * PANEL..][..cols].to_vec()).collect();
            for add in [false, true] {
                let want = naive(&x, &w, inner, add.then_some(start.as_slice()));
                for (name, tiles) in &builds {
                    let mut out = residual.clone();
                    // SAFETY: x is rows x inner, the panel inner x PANEL, out rows x PANEL.
                    unsafe {
                        tiles(
                            (x.as_ptr(), inner),
                            rows,
                            inner,
                            (panel.as_ptr(), PANEL),
                            (out.as_mut_ptr(), PANEL),
                            cols,
                            add,
                        )
                    };
                    let got: Vec<f32> = (0..rows).flat_map(|r| out[r * PANEL..][..cols].to_vec()).collect();
                    assert!(same_bits(&got, &want), "{name} {rows}x{inner}x{cols}, add {add}");
                }
            }
        }
    }

    /// A row's result does not depend on the rows beside it: the same rows alone, in a batch of other
    /// rows, at any position, give the same bits on every path.
    #[test]
    fn a_row_is_the_same_whatever_shares_its_product() {
        let (inner, out) = (300, 70);
        let w = pack(&values(out * inner, 7), out, inner);
        let mine = values(5 * inner, 8);
        for isa in Isa::ALL.into_iter().filter(|&i| supported(i)) {
            let alone = product(&mine, &w, (5, inner, out), None, Planes::ONE, isa);
            for before in [1, 6, 130] {
                let mut batch = values(before * inner, before as u64);
                batch.extend_from_slice(&mine);
                batch.extend(values(3 * inner, 9));
                let rows = before + 8;
                let got = product(&batch, &w, (rows, inner, out), None, Planes::ONE, isa);
                assert!(same_bits(&got[before * out..][..5 * out], &alone), "{isa:?}, {before} rows before");
            }
        }
    }
}
