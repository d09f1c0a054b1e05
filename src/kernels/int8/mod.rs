//! Int8 linear layers for the CPU (`--dtype int8`): weights quantised once at load, symmetric per
//! output channel; activations quantised per call, symmetric per row (token); products accumulated
//! exactly in i32, then `out = out + acc as f32 * (sx[row] * sw[col])`.
//!
//! Every path ([`Isa`]: `amx`, `vnni` (AVX-512), `avxvnni`, `avx2`, `neon`, `portable`) computes the same i32
//! accumulators and hands them to the one dequantising function [`dequantise`], so their outputs are
//! bit-identical; the tests check it, and check the portable path against a naive product of the
//! quantised values.

/// Runs a kernel's micro-tile over the rows of a [`Block`]: `$call` (an expression in the block `$bv`
/// and the row count `$mv`, a const) on each whole tile of `$full` rows, then once on the `M` rows left,
/// each `M` of `$rest` (which must list `1..$full`) its own monomorphised copy.
macro_rules! row_tiles {
    ($b:expr, $full:ident, [$($rest:literal),*], |$bv:ident, $mv:ident| $call:expr) => {{
        let b: Block = $b;
        let mut r = 0;
        while r + $full <= b.rows {
            const $mv: usize = $full;
            let $bv = b.rows_from(r);
            $call;
            r += $full;
        }
        let left = b.rows_from(r);
        match left.rows {
            0 => {}
            $($rest => {
                const $mv: usize = $rest;
                let $bv = left;
                $call;
            })*
            n => unreachable!("{n} rows left after tiles of {}", $full),
        }
    }};
}

pub(crate) mod amx;
mod avx2;
mod avxvnni;
mod neon;
mod portable;
mod vnni;

use std::sync::Arc;

use candle_core::{CpuStorage, Layout, Shape};
use rayon::prelude::*;

use super::isa::{isa, Isa};
use super::{f32_input, Planes, SharedOut};

/// Output columns per packed panel: two AVX-512 registers of i32 accumulators (four AVX2 ones).
pub(crate) const PANEL: usize = 32;

/// Inner (k) values per 32-bit lane of a packed panel: `vpdpbusd` sums 4 byte products (the AVX2 kernel
/// widens a lane to two 32-bit lanes of 2).
const GROUP: usize = 4;

/// Bytes of one packed group row: `PANEL` columns of `GROUP` weights.
const GROUP_BYTES: usize = PANEL * GROUP;

/// Inner values per k block: the group rows of a panel, and the bytes of a quantised activation row, are
/// padded with zeros to whole k blocks, so that AMX tiles (16 group rows of 64 bytes) need no tails.
/// The model's widths (768, 1152, 3072 ...) are whole blocks already.
const K_BLOCK: usize = 64;

/// Bytes of quantised activations per row block: they stay in L2 while the panels stream past them,
/// and the fewer the blocks the fewer times the weights stream from memory (once per block: 85 MB for
/// kompress-base).
const ROW_BLOCK_BYTES: usize = 512 * 1024;

/// Rows per row block for rows `stride` bytes long: a whole number of AMX row pairs, at least one.
fn row_block(stride: usize) -> usize {
    (ROW_BLOCK_BYTES / stride / (2 * ROW_TILE)).max(1) * 2 * ROW_TILE
}

/// Quantised activation rows are allocated in whole tiles of this many rows (the extra rows are
/// padding), so that an AMX tile load never reads past them.
const ROW_TILE: usize = 16;

/// The largest quantised magnitude: symmetric, so -128 never occurs (`x + 128` stays within a byte's
/// 1..=255, and products within 127 * 127).
const QMAX: f32 = 127.0;

/// A weight `[out, in]` quantised per output channel and packed for the kernels: `ceil(out / PANEL)`
/// panels, each `groups` (`in` rounded up to whole [`K_BLOCK`]s, over `GROUP`) group rows of `PANEL`
/// columns x `GROUP` consecutive k values (one 32-bit lane per column), k past `in` and columns past
/// `out` zero.
pub(crate) struct Int8Weight {
    out: usize,
    inner: usize,
    data: Vec<i8>,
    /// Per column, padded to whole panels with zeros.
    scales: Vec<f32>,
    /// Per column `128 * sum_k w[col][k]`: the VNNI kernel feeds activations as `x + 128` (unsigned)
    /// and subtracts this, exactly.
    offsets: Vec<i32>,
}

impl Int8Weight {
    /// Quantises a row-major `[out, inner]` f32 weight.
    pub(crate) fn new(w: &[f32], out: usize, inner: usize) -> Self {
        let (panels, groups) = (out.div_ceil(PANEL), groups(inner));
        let mut data = vec![0i8; panels * groups * GROUP_BYTES];
        let mut scales = vec![0f32; panels * PANEL];
        let mut offsets = vec![0i32; panels * PANEL];
        let mut row = vec![0u8; inner];
        for (o, src) in w.chunks_exact(inner).enumerate() {
            scales[o] = quantise_row(src, &mut row, 0);
            let (panel, col) = (o / PANEL, o % PANEL);
            let base = panel * groups * GROUP_BYTES + col * GROUP;
            for (k, &q) in row.iter().enumerate() {
                data[base + (k / GROUP) * GROUP_BYTES + k % GROUP] = q as i8;
            }
            offsets[o] = 128 * row.iter().map(|&q| i32::from(q as i8)).sum::<i32>();
        }
        Self { out, inner, data, scales, offsets }
    }

    fn groups(&self) -> usize {
        groups(self.inner)
    }
}

/// Group rows per panel for `inner` k values: whole [`K_BLOCK`]s.
fn groups(inner: usize) -> usize {
    inner.div_ceil(K_BLOCK) * (K_BLOCK / GROUP)
}

/// Quantises `src` into `dst[..src.len()]` (each value's i8 bit pattern xor `flip`) and returns the
/// scale `max|src| / 127`. Round half to even through the `1.5 * 2^23` trick: adding it leaves the
/// rounded value in the low mantissa bits, integer-only work that LLVM vectorises on any x86 level
/// (`round_ties_even` is a libm call below SSE4.1). `|v| <= 127 (1 + 2^-22)` here, far inside the
/// trick's `2^22` range, and never rounds past 127. An all-zero row gets scale 0 and zeros.
///
/// Compiled for this CPU's widest level ([`isa`]), not for the baseline (SSE2): it quantises every
/// activation row of every int8 product and every weight at load. Every level does the same
/// operations, so the bits agree.
pub(crate) fn quantise_row(src: &[f32], dst: &mut [u8], flip: u8) -> f32 {
    quantise_wide(isa(), src, dst, flip)
}

wide! {
    fn quantise_wide(src: &[f32], dst: &mut [u8], flip: u8) -> f32 => quantise_in
}

#[inline(always)]
fn quantise_in(src: &[f32], dst: &mut [u8], flip: u8) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    // Through the bits: an integer max vectorises, `f32::max` (NaN rules) does not.
    let amax = f32::from_bits(src.iter().map(|v| v.to_bits() & 0x7fff_ffff).max().unwrap_or(0));
    let inv = if amax > 0.0 { QMAX / amax } else { 0.0 };
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = ((v * inv + MAGIC).to_bits() as u8) ^ flip;
    }
    amax / QMAX
}

/// A table quantised per row (the token embeddings under `--dtype int8`: a quarter of f32's memory), read
/// back a row at a time as `q as f32 * scale`.
pub(crate) struct Int8Rows {
    /// The i8 values' bit patterns, as [`quantise_row`] writes them.
    data: Vec<u8>,
    scales: Vec<f32>,
    width: usize,
}

impl Int8Rows {
    /// Quantises a row-major table of rows `width` long (`width > 0`).
    pub(crate) fn new(table: &[f32], width: usize) -> Self {
        let mut data = vec![0u8; table.len()];
        let scales = table
            .chunks_exact(width)
            .zip(data.chunks_exact_mut(width))
            .map(|(r, q)| quantise_row(r, q, 0))
            .collect();
        Self { data, scales, width }
    }

    /// Appends rows quantised from a row-major block (`width` long each): a table quantised block by
    /// block is [`new`](Self::new)'s, bit for bit (each row is quantised alone), without the whole f32
    /// table in memory at once.
    pub(crate) fn extend(&mut self, block: &[f32]) {
        let start = self.data.len();
        self.data.resize(start + block.len(), 0);
        let rows = block.chunks_exact(self.width).zip(self.data[start..].chunks_exact_mut(self.width));
        self.scales.extend(rows.map(|(r, q)| quantise_row(r, q, 0)));
    }

    /// An empty table of rows `width` long, with room for `rows` rows.
    pub(crate) fn with_capacity(width: usize, rows: usize) -> Self {
        Self { data: Vec::with_capacity(width * rows), scales: Vec::with_capacity(rows), width }
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The rows `ids`, dequantised, one after another; an id out of range is the error.
    pub(crate) fn gather(&self, ids: &[u32]) -> std::result::Result<Vec<f32>, u32> {
        let mut out = Vec::with_capacity(ids.len() * self.width);
        for &id in ids {
            let scale = *self.scales.get(id as usize).ok_or(id)?;
            let row = &self.data[id as usize * self.width..][..self.width];
            out.extend(row.iter().map(|&q| f32::from(q as i8) * scale));
        }
        Ok(out)
    }
}

/// How a kernel takes its quantised activations.
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// i8 (the portable and NEON kernels).
    Signed,
    /// `x + 128` as u8, for `vpdpbusd` and `tdpbusd` (which multiply unsigned by signed bytes).
    Unsigned,
    /// i8 values widened to i16, for `vpmaddwd` (the AVX2 kernel).
    Wide,
}

/// Activations quantised per row, each row `stride` bytes (`in` padded to whole k blocks, one or two
/// bytes a value), in whole [`ROW_TILE`]s of rows. Padding holds the quantised value 0 in every form.
struct QuantRows {
    data: QuantData,
    scales: Vec<f32>,
    stride: usize,
}

enum QuantData {
    Bytes(Vec<u8>),
    Wide(Vec<i16>),
}

impl QuantRows {
    fn new(x: &[f32], inner: usize, groups: usize, form: Form) -> Self {
        let (rows, width) = (x.len() / inner, groups * GROUP);
        let len = rows.next_multiple_of(ROW_TILE) * width;
        if form != Form::Wide {
            let flip = if form == Form::Unsigned { 0x80 } else { 0 };
            let mut data = vec![flip; len];
            let rows = x.chunks_exact(inner).zip(data.chunks_exact_mut(width));
            let scales = rows.map(|(x, d)| quantise_row(x, d, flip)).collect();
            return Self { data: QuantData::Bytes(data), scales, stride: width };
        }
        // Written once, row by row (no zeroing pass first): the values, then the row's padding.
        let mut data = Vec::with_capacity(len);
        let mut q = vec![0u8; inner];
        let mut quantise = |x| {
            let scale = quantise_row(x, &mut q, 0);
            data.extend(q.iter().map(|&v| i16::from(v as i8)));
            data.resize(data.len() + width - inner, 0);
            scale
        };
        let scales = x.chunks_exact(inner).map(&mut quantise).collect();
        data.resize(len, 0);
        Self { data: QuantData::Wide(data), scales, stride: 2 * width }
    }

    fn ptr(&self) -> *const u8 {
        match &self.data {
            QuantData::Bytes(d) => d.as_ptr(),
            QuantData::Wide(d) => d.as_ptr().cast(),
        }
    }
}

/// One task's operands: `rows` quantised activation rows (`stride` bytes apart, in the kernel's
/// [`Form`], readable up to whole [`ROW_TILE`]s) against one packed panel, stored into `out`
/// (`rows x cols`, rows `ldc` apart), or added to it when `add`.
#[derive(Clone, Copy)]
struct Block {
    x: *const u8,
    stride: usize,
    sx: *const f32,
    rows: usize,
    panel: *const i8,
    groups: usize,
    sw: *const f32,
    /// `128 * colsum` per column, for the kernels that take `x + 128` (x86 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    offsets: *const i32,
    out: *mut f32,
    ldc: usize,
    cols: usize,
    add: bool,
}

impl Block {
    /// The block's rows `first..` (for the row tiles of a kernel).
    ///
    /// # Safety
    /// `first` must be at most `rows`.
    unsafe fn rows_from(self, first: usize) -> Self {
        Self {
            x: self.x.add(first * self.stride),
            sx: self.sx.add(first),
            out: self.out.add(first * self.ldc),
            rows: self.rows - first,
            ..self
        }
    }
}

/// `out[c] = acc[c] as f32 * (sx * sw[c])`, or `out[c] + ...` when `add`, for `cols` columns: the one
/// dequantising expression of every path (no FMA), so that their outputs are bit-identical. Inlined
/// into each kernel, where LLVM vectorises it with that kernel's instruction set.
///
/// # Safety
/// `out` must address `cols` floats (initialised when `add`), `sw` at least `cols`.
#[inline(always)]
unsafe fn dequantise(acc: &[i32; PANEL], sx: f32, sw: *const f32, out: *mut f32, cols: usize, add: bool) {
    let sw = std::slice::from_raw_parts(sw, cols);
    // Raw writes: without `add`, `out` may be uninitialised.
    let values = acc.iter().zip(sw).map(|(&a, &s)| a as f32 * (sx * s));
    for (c, v) in values.enumerate() {
        let o = out.add(c);
        o.write(if add { o.read() + v } else { v });
    }
}

/// `x @ W^T` laid out as `planes`, or `residual + x @ W^T` (one plane), for `x` `[rows, in]`
/// row-major (`residual` `[rows, out]`), on the best kernels this CPU has at or under `cap`.
fn product(w: &Int8Weight, x: &[f32], residual: Option<Vec<f32>>, cap: Isa, planes: Planes) -> Vec<f32> {
    let kernel = cap.best_supported();
    let form = match kernel {
        Isa::Amx | Isa::Avx512Vnni | Isa::AvxVnni => Form::Unsigned,
        Isa::Avx512 | Isa::Avx2 => Form::Wide,
        Isa::NeonDot | Isa::Portable => Form::Signed,
    };
    let (groups, cols, rows) = (w.groups(), w.out, x.len() / w.inner);
    let panels = cols.div_ceil(PANEL);
    let add = residual.is_some();
    // Without a residual the kernels store every element: no zeroing pass, no reads of the output.
    let mut out = residual.unwrap_or_else(|| Vec::with_capacity(rows * cols));
    let ptr = SharedOut(out.as_mut_ptr());
    // A task per row block quantises its rows (so the quantised activations are never all held: 9 MB
    // at 8192 tokens) and runs them against every panel, as nested tasks that the other threads steal.
    let row_block = row_block(groups * GROUP);
    (0..rows.div_ceil(row_block)).into_par_iter().for_each(|block| {
        let first_row = block * row_block;
        let n_rows = row_block.min(rows - first_row);
        let q = QuantRows::new(&x[first_row * w.inner..][..n_rows * w.inner], w.inner, groups, form);
        (0..panels).into_par_iter().for_each(|panel| {
            let first_col = panel * PANEL;
            let (at, ldc) = planes.place(rows, cols, first_row, first_col);
            // SAFETY: q holds n_rows (rounded up to ROW_TILE) x stride bytes and n_rows scales, w.data panels x groups x
            // GROUP_BYTES, scales and offsets panels x PANEL, out rows x cols; this task writes rows
            // first_row.. + n_rows of columns first_col.. + PANEL of out only (a panel lies within one plane).
            unsafe {
                let b = Block {
                    x: q.ptr(),
                    stride: q.stride,
                    sx: q.scales.as_ptr(),
                    rows: n_rows,
                    panel: w.data.as_ptr().add(panel * groups * GROUP_BYTES),
                    groups,
                    sw: w.scales.as_ptr().add(first_col),
                    offsets: w.offsets.as_ptr().add(first_col),
                    out: ptr.at(at),
                    ldc,
                    cols: PANEL.min(cols - first_col),
                    add,
                };
                match kernel {
                    Isa::Amx => amx::panel_product(b),
                    Isa::Avx512Vnni => vnni::panel_product(b),
                    Isa::AvxVnni => avxvnni::panel_product(b),
                    Isa::Avx512 | Isa::Avx2 => avx2::panel_product(b),
                    Isa::NeonDot => neon::panel_product(b),
                    Isa::Portable => portable::panel_product(b),
                }
            }
        });
    });
    // SAFETY: the tasks above covered every row block and panel, so all rows x cols are written.
    unsafe { out.set_len(rows * cols) };
    out
}

/// `x @ W^T` (as a [`CustomOp1`]) or `residual + x @ W^T` (as a [`CustomOp2`] on `(x, residual)`, added
/// as the product is stored), `x` a contiguous f32 `[rows, in]`, on the kernels [`isa`] chooses.
#[derive(Clone)]
pub(crate) struct Int8Linear {
    pub weight: Arc<Int8Weight>,
    /// The output's layout (one plane when adding a residual).
    pub planes: Planes,
}

impl Int8Linear {
    fn run(
        &self,
        x: (&CpuStorage, &Layout),
        residual: Option<Vec<f32>>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x_data = f32_input(x.0, x.1, "int8 linear")?;
        let w = &self.weight;
        let &[rows, inner] = x.1.dims() else { candle_core::bail!("int8 linear: expects [rows, in]") };
        let planes = self.planes;
        if inner != w.inner
            || inner == 0
            || residual.as_ref().is_some_and(|r| r.len() != rows * w.out || planes != Planes::ONE)
            || !planes.fit(w.out, PANEL)
        {
            candle_core::bail!("int8 linear: [{rows}, {inner}] @ [{}, {}]^T into {planes:?}", w.out, w.inner)
        }
        let out = product(w, x_data, residual, isa(), planes);
        Ok((CpuStorage::F32(out), planes.shape(rows, w.out)))
    }
}

held_weight_ops!(Int8Linear, "kompress-int8-linear", "int8 linear");

#[cfg(test)]
mod tests;
