//! AVX2 (and AVX-512 CPUs without VNNI): `vpmaddwd` on i16, activations widened once when they are
//! quantised and each group row's weights sign-extended as it is loaded. A lane's pair sum is at most
//! 2 * 127 * 127, exact in i32. Two `vpmaddwd` per 32 products, against three saturation-free
//! `vpsignb` + `vpmaddubsw` + `vpmaddwd` for the byte form, on the same two multiply ports.
//!
//! A lane holds one column's two k pairs of a group (`c0 k01, c0 k23, c1 k01 ...`), so a register
//! covers 4 columns; the pairs are summed by `vphaddd` at the end.

#[cfg(target_arch = "x86_64")]
pub(super) use imp::panel_product;

/// Never called: [`super::product`] runs this path only where the CPU has it.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn panel_product(_: super::Block) {
    unreachable!("AVX2 kernels exist on x86_64 only")
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

    /// Columns per micro-tile: two registers of 4 columns' pair sums.
    const COLS: usize = 8;

    /// Rows per micro-tile: 6 x 2 accumulators, two weight vectors and the broadcast within the 16
    /// registers.
    const TILE: usize = 6;

    /// # Safety
    /// AVX2 must be available; `b` must address its extents (see [`Block`]), its rows widened to i16.
    #[target_feature(enable = "avx2")]
    pub unsafe fn panel_product(b: Block) {
        for quarter in 0..PANEL / COLS {
            let mut r = 0;
            while r + TILE <= b.rows {
                tile::<TILE>(b.rows_from(r), quarter);
                r += TILE;
            }
            let b = b.rows_from(r);
            match b.rows {
                0 => {}
                1 => tile::<1>(b, quarter),
                2 => tile::<2>(b, quarter),
                3 => tile::<3>(b, quarter),
                4 => tile::<4>(b, quarter),
                _ => tile::<5>(b, quarter),
            }
        }
    }

    /// The first `M` rows of `b`, columns `8 * quarter..` of its panel.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const M: usize>(b: Block, quarter: usize) {
        let first = quarter * COLS;
        if first >= b.cols {
            return;
        }
        let mut acc = [[_mm256_setzero_si256(); 2]; M];
        for g in 0..b.groups {
            let w = b.panel.add(g * GROUP_BYTES + first * GROUP);
            let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
            let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16).cast()));
            for (i, acc) in acc.iter_mut().enumerate() {
                // The row's 4 i16 of this group, in every 64-bit lane.
                let x = b.x.add(i * b.stride + 2 * g * GROUP);
                let a = _mm256_set1_epi64x(x.cast::<i64>().read_unaligned());
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(a, w0));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(a, w1));
            }
        }
        let mut sums = [0i32; PANEL];
        let (sw, cols) = (b.sw.add(first), COLS.min(b.cols - first));
        for (i, acc) in acc.iter().enumerate() {
            // [c0 c1 c4 c5 | c2 c3 c6 c7], put in column order.
            let pairs = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(acc[0], acc[1]));
            _mm256_storeu_si256(sums.as_mut_ptr().cast(), pairs);
            dequantise(&sums, *b.sx.add(i), sw, b.out.add(i * b.ldc + first), cols, b.add);
        }
    }
}
