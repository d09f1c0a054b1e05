//! Plain Rust over the same packing, for CPUs without AVX2 (and every non-x86 CPU): i32 loops that
//! LLVM vectorises for the build's baseline.

use super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

/// Rows per micro-tile: each row reuses the group row turned k-major.
const TILE: usize = 4;

/// # Safety
/// `b` must address its extents (see [`Block`]).
pub(super) unsafe fn panel_product(b: Block) {
    row_tiles!(b, TILE, [1, 2, 3], |b, M| tile::<M>(b));
}

/// The first `M` rows of `b`. Each group row is first turned k-major (one run of 32 columns per k),
/// so that the column loop reads contiguous values and vectorises; the products are paired in i16,
/// where a pair sum (at most 2 * 127 * 127 = 32258) is exact, before widening to i32.
///
/// # Safety
/// As [`panel_product`], with at least `M` rows.
unsafe fn tile<const M: usize>(b: Block) {
    let panel = std::slice::from_raw_parts(b.panel, b.groups * GROUP_BYTES);
    let x: [&[u8]; M] = std::array::from_fn(|i| std::slice::from_raw_parts(b.x.add(i * b.stride), b.stride));
    let mut acc = [[0i32; PANEL]; M];
    let mut wt = [[0i16; PANEL]; GROUP];
    for (g, w) in panel.chunks_exact(GROUP_BYTES).enumerate() {
        for (c, w) in w.chunks_exact(GROUP).enumerate() {
            for (j, &w) in w.iter().enumerate() {
                wt[j][c] = i16::from(w);
            }
        }
        for (acc, x) in acc.iter_mut().zip(&x) {
            let a: [i16; GROUP] = std::array::from_fn(|j| i16::from(x[g * GROUP + j] as i8));
            for (c, acc) in acc.iter_mut().enumerate() {
                let low = a[0] * wt[0][c] + a[1] * wt[1][c];
                let high = a[2] * wt[2][c] + a[3] * wt[3][c];
                *acc += i32::from(low) + i32::from(high);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        dequantise(acc, *b.sx.add(i), b.sw, b.out.add(i * b.ldc), b.cols, b.add);
    }
}
