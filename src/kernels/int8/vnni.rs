//! AVX-512 VNNI: `vpdpbusd` multiplies unsigned by signed bytes and sums each lane's 4 products into
//! i32. Activations come as `x + 128` (unsigned); `128 * colsum(w)` is subtracted at the end, which is
//! exact, so the accumulators equal the signed product's.

#[cfg(target_arch = "x86_64")]
pub(super) use imp::panel_product;

/// Never called: [`super::product`] runs this path only where the CPU has it.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn panel_product(_: super::Block) {
    unreachable!("VNNI kernels exist on x86_64 only")
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

    /// Rows per micro-tile: 12 x 2 accumulators (24 of the 32 registers), as the f32 kernel.
    const TILE: usize = 12;

    /// Group rows fetched ahead (as the f32 kernel: 12% of a 512-token f32 forward on a Xeon with AMX).
    const PREFETCH: usize = 8;

    /// # Safety
    /// AVX-512 F, BW and VNNI must be available; `b` must address its extents (see [`Block`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn panel_product(b: Block) {
        row_tiles!(b, TILE, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], |b, M| tile::<M>(b));
    }

    /// The first `M` rows of `b`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn tile<const M: usize>(b: Block) {
        let mut acc = [[_mm512_setzero_si512(); 2]; M];
        for g in 0..b.groups {
            // The group row PREFETCH rows ahead, both cache lines, into L1.
            let ahead = b.panel.wrapping_add((g + PREFETCH) * GROUP_BYTES);
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            let w = b.panel.add(g * GROUP_BYTES);
            let w0 = _mm512_loadu_si512(w.cast());
            let w1 = _mm512_loadu_si512(w.add(GROUP_BYTES / 2).cast());
            for (i, acc) in acc.iter_mut().enumerate() {
                // The row's 4 bytes of this group, in every lane.
                let a = _mm512_set1_epi32(b.x.add(i * b.stride + g * GROUP).cast::<i32>().read_unaligned());
                acc[0] = _mm512_dpbusd_epi32(acc[0], a, w0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], a, w1);
            }
        }
        let off0 = _mm512_loadu_si512(b.offsets.cast());
        let off1 = _mm512_loadu_si512(b.offsets.add(PANEL / 2).cast());
        let mut sums = [0i32; PANEL];
        for (i, acc) in acc.iter().enumerate() {
            _mm512_storeu_si512(sums.as_mut_ptr().cast(), _mm512_sub_epi32(acc[0], off0));
            _mm512_storeu_si512(sums.as_mut_ptr().add(PANEL / 2).cast(), _mm512_sub_epi32(acc[1], off1));
            dequantise(&sums, *b.sx.add(i), b.sw, b.out.add(i * b.ldc), b.cols, b.add);
        }
    }
}
