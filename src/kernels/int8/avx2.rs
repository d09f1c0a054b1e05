//! AVX2: `vpmaddubsw` multiplies unsigned by signed bytes into i16 pair sums, saturating. With the
//! sign trick `maddubs(|x|, sign(w, x))` both factors stay within 127 in magnitude, so a pair sum is at
//! most 2 * 127 * 127 = 32258 < 32767: never saturated, exact. `vpmaddwd` by ones widens to i32.
//! Also the path of AVX-512 CPUs without VNNI.

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

    /// Rows per micro-tile over half a panel (16 columns): 4 x 2 accumulators, with the two weight
    /// vectors, the ones and the temporaries within the 16 registers.
    const TILE: usize = 4;

    /// # Safety
    /// AVX2 must be available; `b` must address its extents (see [`Block`]).
    #[target_feature(enable = "avx2")]
    pub unsafe fn panel_product(b: Block) {
        for half in 0..2 {
            row_tiles!(b, TILE, [1, 2, 3], |b, M| tile::<M>(b, half));
        }
    }

    /// The first `M` rows of `b`, columns `16 * half..` of its panel.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile<const M: usize>(b: Block, half: usize) {
        const HALF: usize = PANEL / 2;
        if half * HALF >= b.cols {
            return;
        }
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); 2]; M];
        for g in 0..b.groups {
            let w = b.panel.add(g * GROUP_BYTES + half * GROUP_BYTES / 2);
            let w0 = _mm256_loadu_si256(w.cast());
            let w1 = _mm256_loadu_si256(w.add(GROUP_BYTES / 4).cast());
            for (i, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_set1_epi32(b.x.add(i * b.stride + g * GROUP).cast::<i32>().read_unaligned());
                let abs = _mm256_abs_epi8(a);
                let p0 = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(w0, a));
                let p1 = _mm256_maddubs_epi16(abs, _mm256_sign_epi8(w1, a));
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p0, ones));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(p1, ones));
            }
        }
        let mut sums = [0i32; PANEL];
        let (sw, cols) = (b.sw.add(half * HALF), HALF.min(b.cols - half * HALF));
        for (i, acc) in acc.iter().enumerate() {
            _mm256_storeu_si256(sums.as_mut_ptr().cast(), acc[0]);
            _mm256_storeu_si256(sums.as_mut_ptr().add(8).cast(), acc[1]);
            dequantise(&sums, *b.sx.add(i), sw, b.out.add(i * b.ldc + half * HALF), cols, b.add);
        }
    }
}
