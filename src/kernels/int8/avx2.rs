//! AVX2 (and AVX-512 CPUs without VNNI): `vpmaddwd` on 16-bit operands. The activations are quantised
//! to the same i8 values as on every path and stored widened to i16; each weight group row is widened
//! as it is loaded (`vpmovsxbw`, shared by the tile's rows). A `vpmaddwd` lane sums two products of
//! magnitude at most 127 * 127, so nothing saturates: the accumulators are the exact i32 sums, by
//! construction.
//!
//! Why not `vpmaddubsw`: it multiplies unsigned by signed bytes into saturating i16 pair sums. Fed
//! `x + 128` (as ONNX Runtime's MLAS does) a pair can reach 2 * 255 * 127 and saturate; kept exact with
//! the sign trick `maddubs(|x|, sign(w, x))` it needs a `vpsignb` per register, which shares the
//! multiply pipes: on this project's Zen 4 that form's mix peaked at 1.2x f32's FMA throughput, this
//! kernel's (loads and widening included) at 1.47x (docs/PERFORMANCE.md, `scripts/cpu_peak.rs`).

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

    /// Rows per micro-tile: 6 rows x 2 registers of accumulators (8 columns), two widened weight
    /// registers and the broadcast: 15 of the 16 registers.
    const TILE: usize = 6;

    /// Columns per pass of a tile: two registers of 4 columns x 2 lanes.
    const STEP: usize = 8;

    /// # Safety
    /// AVX2 must be available; `b` must address its extents (see [`Block`]), its activations as i16
    /// (`stride` bytes apart).
    #[target_feature(enable = "avx2")]
    pub unsafe fn panel_product(b: Block) {
        row_tiles!(b, TILE, [1, 2, 3, 4, 5], |b, M| tile::<M>(b));
    }

    /// The first `M` rows of `b`, every column of its panel, `STEP` columns at a time.
    ///
    /// A weight register holds 4 columns' group rows widened (column `c`'s k values `4g..4g + 4` in
    /// lanes `2c` and `2c + 1`, two per lane); the broadcast holds the row's 4 values of the group in
    /// each 64 bits, so `vpmaddwd` leaves column `c`'s partial sums in lanes `2c` and `2c + 1`, and one
    /// `vphaddd` of the two registers at the end joins them (in the order `vpermq` then restores).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const M: usize>(b: Block) {
        let mut sums = [[0i32; PANEL]; M];
        // One pointer per row, so that each broadcast addresses `row + 8 g` without arithmetic.
        let rows: [*const i64; M] = std::array::from_fn(|i| b.x.add(i * b.stride).cast());
        for first in (0..b.cols).step_by(STEP) {
            let mut acc = [[_mm256_setzero_si256(); 2]; M];
            for g in 0..b.groups {
                let w = b.panel.add(g * GROUP_BYTES + first * GROUP);
                let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.cast()));
                let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.add(16).cast()));
                for (acc, row) in acc.iter_mut().zip(&rows) {
                    // The row's 4 values of this group (i16), in every 64 bits.
                    let a = _mm256_set1_epi64x(row.add(g).read_unaligned());
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(a, w0));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(a, w1));
                }
            }
            for (sums, acc) in sums.iter_mut().zip(&acc) {
                // [c0 c1 c4 c5 | c2 c3 c6 c7] -> c0..c7
                let joined = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0], acc[1]), 0b11_01_10_00);
                _mm256_storeu_si256(sums.as_mut_ptr().add(first).cast(), joined);
            }
        }
        for (i, sums) in sums.iter().enumerate() {
            dequantise(sums, *b.sx.add(i), b.sw, b.out.add(i * b.ldc), b.cols, b.add);
        }
    }
}
