//! Plain Rust over the same packing, for CPUs without AVX2 (and every non-x86 CPU): i32 loops that
//! LLVM vectorises for the build's baseline.

use super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

/// Rows per micro-tile: each row's 32 accumulators reuse one load of a panel's group row.
const TILE: usize = 4;

/// # Safety
/// `b` must address its extents (see [`Block`]).
pub(super) unsafe fn panel_product(b: Block) {
    let mut r = 0;
    while r + TILE <= b.rows {
        tile::<TILE>(b.rows_from(r));
        r += TILE;
    }
    let b = b.rows_from(r);
    match b.rows {
        0 => {}
        1 => tile::<1>(b),
        2 => tile::<2>(b),
        _ => tile::<3>(b),
    }
}

/// The first `M` rows of `b`.
///
/// # Safety
/// As [`panel_product`], with at least `M` rows.
unsafe fn tile<const M: usize>(b: Block) {
    let panel = std::slice::from_raw_parts(b.panel, b.groups * GROUP_BYTES);
    let x: [&[u8]; M] = std::array::from_fn(|i| std::slice::from_raw_parts(b.x.add(i * b.stride), b.stride));
    let mut acc = [[0i32; PANEL]; M];
    for (g, w) in panel.chunks_exact(GROUP_BYTES).enumerate() {
        for (acc, x) in acc.iter_mut().zip(&x) {
            let a: [i32; GROUP] = std::array::from_fn(|j| i32::from(x[g * GROUP + j] as i8));
            for (acc, w) in acc.iter_mut().zip(w.chunks_exact(GROUP)) {
                *acc += (0..GROUP).map(|j| a[j] * i32::from(w[j])).sum::<i32>();
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        dequantise(acc, *b.sx.add(i), b.sw, b.out.add(i * b.ldc), b.cols, b.add);
    }
}
