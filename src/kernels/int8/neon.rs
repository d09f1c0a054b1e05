//! AArch64 with the dot-product extension (Apple M1 and later, Neoverse N1 and later, Cortex-A76 and
//! later): `sdot` multiplies signed by signed bytes and sums each 32-bit lane's 4 products into i32,
//! so the activations go in as they are quantised (no `+ 128` offset, no sign trick). Its indexed
//! form takes the 4 activation bytes from one lane of a register: one 16-byte load of a row serves 4
//! group rows.
//!
//! Written with `asm!` because Rust's `vdotq_laneq_s32` is unstable (`stdarch_neon_dotprod`) in the
//! project's toolchain; the loads and stores are the stable NEON intrinsics.

#[cfg(target_arch = "aarch64")]
pub(super) use imp::panel_product;

/// Never called: [`super::product`] runs this path only where the CPU has it.
#[cfg(not(target_arch = "aarch64"))]
pub(super) unsafe fn panel_product(_: super::Block) {
    unreachable!("NEON dot-product kernels exist on aarch64 only")
}

#[cfg(target_arch = "aarch64")]
mod imp {
    use std::arch::aarch64::*;
    use std::arch::asm;

    use super::super::{dequantise, Block, GROUP, GROUP_BYTES, PANEL};

    /// Rows per micro-tile over half a panel (16 columns, 4 registers): 4 x 4 accumulators, the rows'
    /// activations and two sets of weights within the 32 registers.
    const TILE: usize = 4;

    /// Columns per half panel.
    const HALF: usize = PANEL / 2;

    /// Group rows per activation load (one per lane of the indexed `sdot`). Panels hold whole 64-k
    /// blocks (16 group rows), so the group count is a multiple of it.
    const LANES: usize = 4;

    /// # Safety
    /// NEON and the dot-product extension must be available; `b` must address its extents (see
    /// [`Block`]).
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn panel_product(b: Block) {
        for half in 0..2 {
            row_tiles!(b, TILE, [1, 2, 3], |b, M| tile::<M>(b, half));
        }
    }

    /// The first `M` rows of `b`, columns `16 * half..` of its panel.
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn tile<const M: usize>(b: Block, half: usize) {
        if half * HALF >= b.cols {
            return;
        }
        let mut acc = [[vdupq_n_s32(0); HALF / 4]; M];
        let panel = b.panel.add(half * GROUP_BYTES / 2);
        for g in (0..b.groups).step_by(LANES) {
            // Each row's next 16 bytes: group rows g..g + 4, one per lane.
            let a: [int8x16_t; M] =
                std::array::from_fn(|i| vld1q_s8(b.x.add(i * b.stride + g * GROUP).cast()));
            let w = |l: usize| panel.add((g + l) * GROUP_BYTES);
            lane::<0, M>(&mut acc, &a, w(0));
            lane::<1, M>(&mut acc, &a, w(1));
            lane::<2, M>(&mut acc, &a, w(2));
            lane::<3, M>(&mut acc, &a, w(3));
        }
        let mut sums = [0i32; PANEL];
        let (sw, cols) = (b.sw.add(half * HALF), HALF.min(b.cols - half * HALF));
        for (i, acc) in acc.iter().enumerate() {
            for (j, &v) in acc.iter().enumerate() {
                vst1q_s32(sums.as_mut_ptr().add(4 * j), v);
            }
            dequantise(&sums, *b.sx.add(i), sw, b.out.add(i * b.ldc + half * HALF), cols, b.add);
        }
    }

    /// One group row (lane `L` of each row's activations) against 16 columns of weights at `w`.
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    unsafe fn lane<const L: i32, const M: usize>(
        acc: &mut [[int32x4_t; HALF / 4]; M],
        a: &[int8x16_t; M],
        w: *const i8,
    ) {
        let w: [int8x16_t; HALF / 4] = std::array::from_fn(|j| vld1q_s8(w.add(16 * j)));
        for (acc, &a) in acc.iter_mut().zip(a) {
            for (acc, &w) in acc.iter_mut().zip(&w) {
                *acc = sdot::<L>(*acc, w, a);
            }
        }
    }

    /// `acc[c] += sum_j w[4c + j] * a[4L + j]` for the 4 lanes `c`: `sdot` by element.
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    unsafe fn sdot<const L: i32>(mut acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
        asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[{l}]",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            a = in(vreg) a,
            l = const L,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }
}
