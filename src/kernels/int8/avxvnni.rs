//! AVX-VNNI (AVX2 CPUs from Alder Lake on, Zen 5): the 256-bit `vpdpbusd`, as the AVX-512 VNNI path
//! (`x + 128` unsigned, `128 * colsum(w)` subtracted) on half a panel at a time.

#[cfg(target_arch = "x86_64")]
pub(super) use imp::panel_product;

/// Never called: [`super::product`] runs this path only where the CPU has it.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn panel_product(_: super::Block) {
    unreachable!("AVX-VNNI kernels exist on x86_64 only")
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

    /// Rows per micro-tile over half a panel (16 columns): 6 x 2 accumulators, two weight vectors and
    /// the broadcast within the 16 registers.
    const TILE: usize = 6;

    /// # Safety
    /// AVX2 and AVX-VNNI must be available; `b` must address its extents (see [`Block`]).
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn panel_product(b: Block) {
        for half in 0..2 {
            row_tiles!(b, TILE, [1, 2, 3, 4, 5], |b, M| tile::<M>(b, half));
        }
    }

    /// The first `M` rows of `b`, columns `16 * half..` of its panel.
    #[target_feature(enable = "avx2,avxvnni")]
    #[inline]
    unsafe fn tile<const M: usize>(b: Block, half: usize) {
        const HALF: usize = PANEL / 2;
        if half * HALF >= b.cols {
            return;
        }
        let mut acc = [[_mm256_setzero_si256(); 2]; M];
        for g in 0..b.groups {
            let w = b.panel.add(g * GROUP_BYTES + half * GROUP_BYTES / 2);
            let w0 = _mm256_loadu_si256(w.cast());
            let w1 = _mm256_loadu_si256(w.add(GROUP_BYTES / 4).cast());
            for (i, acc) in acc.iter_mut().enumerate() {
                // The row's 4 bytes of this group, in every lane.
                let a = _mm256_set1_epi32(b.x.add(i * b.stride + g * GROUP).cast::<i32>().read_unaligned());
                acc[0] = _mm256_dpbusd_avx_epi32(acc[0], a, w0);
                acc[1] = _mm256_dpbusd_avx_epi32(acc[1], a, w1);
            }
        }
        let offsets = b.offsets.add(half * HALF);
        let off0 = _mm256_loadu_si256(offsets.cast());
        let off1 = _mm256_loadu_si256(offsets.add(8).cast());
        let mut sums = [0i32; PANEL];
        let (sw, cols) = (b.sw.add(half * HALF), HALF.min(b.cols - half * HALF));
        for (i, acc) in acc.iter().enumerate() {
            _mm256_storeu_si256(sums.as_mut_ptr().cast(), _mm256_sub_epi32(acc[0], off0));
            _mm256_storeu_si256(sums.as_mut_ptr().add(8).cast(), _mm256_sub_epi32(acc[1], off1));
            dequantise(&sums, *b.sx.add(i), sw, b.out.add(i * b.ldc + half * HALF), cols, b.add);
        }
    }
}
