//! `--dtype bf16` on the CPU: weights rounded to bf16 at load, activations rounded to bf16 once per
//! product, products accumulated in f32.
//!
//! The arithmetic is that of AVX-512 BF16's `vdpbf16ps`, which every path reproduces bit for bit: the
//! inputs are taken in pairs `(k, k + 1)`; for each pair, `acc = acc + x[k+1] w[k+1]`, then `acc = acc +
//! x[k] w[k]`, each product exact in f32 (8-bit significands) and each sum rounded to nearest even,
//! results below f32's normal range flushed to signed zero (the instruction's FTZ), bf16 inputs below
//! it read as zero (its DAZ: [`round`] never produces them). A CPU whose `vdpbf16ps` gives other bits
//! than this (checked once, on edge cases, before its first use) runs the plain-Rust path instead.

use super::{Out, PANEL};
use crate::kernels::isa::{detected, Isa};

/// Rows per tile of the plain-Rust kernel.
const TILE: usize = 6;

/// `v` rounded to bf16 (nearest, ties to even), as its bit pattern; a result below bf16's normal
/// range becomes a zero of its sign, a NaN stays a (quiet) NaN.
#[inline(always)]
pub(crate) fn round(v: f32) -> u16 {
    let bits = v.to_bits();
    let rounded = (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16;
    let flushed = if rounded & 0x7f80 == 0 { rounded & 0x8000 } else { rounded };
    if v.is_nan() {
        (bits >> 16) as u16 | 0x40
    } else {
        flushed
    }
}

/// A bf16 bit pattern as the f32 it denotes.
#[inline(always)]
fn widen(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `v`, or a zero of its sign when below f32's normal range.
#[inline(always)]
fn flush(v: f32) -> f32 {
    let bits = v.to_bits();
    f32::from_bits(if bits & 0x7f80_0000 == 0 { bits & 0x8000_0000 } else { bits })
}

/// One step of the arithmetic: the pair `(x0, x1) . (w0, w1)` added to `acc`, odd term first.
#[inline(always)]
fn step(acc: f32, x0: f32, x1: f32, w0: f32, w1: f32) -> f32 {
    let acc = flush(acc + flush(x1 * w1));
    flush(acc + flush(x0 * w0))
}

/// Input pairs for `inner` inputs (an odd `inner` is padded with a zero).
fn pairs(inner: usize) -> usize {
    inner.div_ceil(2)
}

/// Pairs stored per weight panel and activation row: whole AMX tiles of [`AMX_PAIRS`], zeros past
/// `pairs(inner)` (which only the AMX path reads).
fn stored_pairs(inner: usize) -> usize {
    pairs(inner).next_multiple_of(AMX_PAIRS)
}

/// Input pairs per AMX tile row (64 bytes), and rows per tile.
const AMX_PAIRS: usize = 16;

/// Activation rows rounded to bf16 for the path `cap` runs: as bit patterns ([`round_rows`]), or, for
/// [`Kernel::Widened`], as the f32 values they denote with each pair's odd input first (that path's
/// order), `2 * pairs(inner)` per row. Made once per row block, shared by its panels.
pub(crate) enum Rows {
    Bits(Vec<u16>),
    #[cfg(target_arch = "x86_64")]
    Swapped(Vec<f32>),
}

impl Rows {
    pub(crate) fn new(x: &[f32], inner: usize, cap: Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        if Kernel::for_cap(cap) == Kernel::Widened {
            let used = 2 * pairs(inner);
            let mut out = vec![0f32; x.len() / inner.max(1) * used];
            for (dst, row) in out.chunks_exact_mut(used).zip(x.chunks_exact(inner)) {
                swapped_wide(cap, row, dst);
            }
            return Self::Swapped(out);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = cap;
        Self::Bits(round_rows(x, inner))
    }
}

wide! {
    #[cfg(target_arch = "x86_64")]
    /// One row for [`Rows::Swapped`]: each pair rounded, widened and odd input first (an odd last
    /// input paired with a zero), compiled for the level's vectors (every level gives the same bits:
    /// integer operations and selects only). `dst` holds `2 * pairs(row.len())` values.
    fn swapped_wide(row: &[f32], dst: &mut [f32]) => swapped_in
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn swapped_in(row: &[f32], dst: &mut [f32]) {
    let (whole, last) = row.split_at(row.len() & !1);
    for (d, p) in dst.chunks_exact_mut(2).zip(whole.chunks_exact(2)) {
        d[0] = widen(round(p[1]));
        d[1] = widen(round(p[0]));
    }
    if let [v] = last {
        dst[whole.len()] = 0.0;
        dst[whole.len() + 1] = widen(round(*v));
    }
}

/// `x` (`[rows, inner]`) rounded by [`round`], each row `2 * stored_pairs(inner)` values, in whole
/// tiles of [`AMX_PAIRS`] rows, padded with zeros.
fn round_rows(x: &[f32], inner: usize) -> Vec<u16> {
    let (rows, stride) = (x.len() / inner.max(1), 2 * stored_pairs(inner));
    let mut out = vec![0u16; rows.next_multiple_of(AMX_PAIRS) * stride];
    for (dst, src) in out.chunks_exact_mut(stride).zip(x.chunks_exact(inner)) {
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = round(v));
    }
    out
}

/// A weight `[out, in]` in bf16, packed as `ceil(out / PANEL)` panels of `stored_pairs(in)` rows,
/// each `PANEL` columns of an input pair (even input in the low half of the 32 bits): the operand
/// layout of `vdpbf16ps`, and, a half panel at a time, of an AMX tile. Columns past `out` and pairs
/// past `in` are zero.
pub(crate) struct Bf16Weight {
    pub out: usize,
    pub inner: usize,
    data: Vec<u16>,
}

impl Bf16Weight {
    /// Rounds and packs a row-major `[out, inner]` f32 weight.
    pub(crate) fn new(w: &[f32], out: usize, inner: usize) -> Self {
        let pairs = stored_pairs(inner);
        let mut data = vec![0u16; out.div_ceil(PANEL) * pairs * 2 * PANEL];
        for (o, row) in w.chunks_exact(inner).enumerate() {
            let (panel, col) = (o / PANEL, o % PANEL);
            for (k, &v) in row.iter().enumerate() {
                data[((panel * pairs + k / 2) * PANEL + col) * 2 + k % 2] = round(v);
            }
        }
        Self { out, inner, data }
    }

    /// Runs `rows` rows of `x` (prepared by [`Rows::new`] for the same `cap`) against panel `panel`
    /// into `out`.
    ///
    /// # Safety
    /// `out` must address `rows` rows of the panel's columns.
    // One variant of `Rows` exists off x86_64.
    #[cfg_attr(not(target_arch = "x86_64"), allow(clippy::infallible_destructuring_match))]
    pub(crate) unsafe fn panel_product(&self, x: &Rows, rows: usize, panel: usize, out: Out, cap: Isa) {
        let (width, used) = (2 * stored_pairs(self.inner), 2 * pairs(self.inner));
        let weights = &self.data[panel * width * PANEL..][..width * PANEL];
        let mut acc = vec![0f32; rows.next_multiple_of(2 * AMX_PAIRS) * PANEL];
        let x = match x {
            #[cfg(target_arch = "x86_64")]
            Rows::Swapped(x) => {
                widened::block(&x[..rows * used], used, &weights[..used * PANEL], &mut acc[..rows * PANEL]);
                return out.store(&acc[..rows * PANEL]);
            }
            Rows::Bits(x) => x,
        };
        let exact = (&x[..rows * width], &weights[..used * PANEL], &mut acc[..rows * PANEL]);
        match Kernel::for_cap(cap) {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Kernel::Amx => {
                amx::block(&x[..rows.next_multiple_of(AMX_PAIRS) * width], width, weights, &mut acc)
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Dot => dot::block(exact.0, width, exact.1, exact.2),
            // Rows::new makes swapped rows for this kernel (handled above); bit patterns prepared for
            // another cap run the plain-Rust path, which gives the same bits.
            #[cfg(target_arch = "x86_64")]
            Kernel::Widened => block(Isa::Portable, exact.0, width, exact.1, exact.2),
            Kernel::Wide(isa) => block(isa, exact.0, width, exact.1, exact.2),
        }
        out.store(&acc[..rows * PANEL]);
    }
}

/// The paths of the bf16 product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AMX-BF16 tiles (Sapphire Rapids and later Xeons, Linux): not the module's exact arithmetic
    /// (see [`amx`]).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    Amx,
    /// `vdpbf16ps` (AVX-512 BF16: Cooper Lake, Sapphire Rapids and later, Zen 4 and later).
    #[cfg(target_arch = "x86_64")]
    Dot,
    /// The weights widened to f32 and run through the f32 products' AVX2 tiles (see [`widened`]): CPUs
    /// with AVX2 but no exact `vdpbf16ps`.
    #[cfg(target_arch = "x86_64")]
    Widened,
    /// Plain Rust compiled for this level's vectors.
    Wide(Isa),
}

impl Kernel {
    /// The path a cap on the kernels allows: AMX tiles at the AMX level where the CPU has AMX-BF16;
    /// `vdpbf16ps` from the AVX-512 level up where the CPU has it and it gives this module's bits.
    pub(crate) fn for_cap(cap: Isa) -> Self {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if cap.min(detected()) >= Isa::Amx && amx::available() {
            return Kernel::Amx;
        }
        #[cfg(target_arch = "x86_64")]
        if cap.min(detected()) >= Isa::Avx512 && dot_exact() {
            return Kernel::Dot;
        }
        #[cfg(target_arch = "x86_64")]
        if cap.min(detected()) >= Isa::Avx2 {
            return Kernel::Widened;
        }
        Kernel::Wide(cap.min(detected()))
    }
}

/// Whether bf16 products run faster than f32's here, which makes bf16 the CPU's `auto` dtype
/// (docs/NUMERICS.md): on AMX-BF16 tiles, or on `vdpbf16ps` of an AMD CPU. Zen 4 executes
/// `vdpbf16ps` at twice the FMA's multiply-add rate (228 against 116 G/s on 2 cores,
/// `scripts/cpu_peak.rs`), and a bf16 forward took 0.56-0.71x f32's on a Zen 4 EPYC (two runs); on Intel's AVX-512
/// cores it ran at 1.3-1.5x f32's time, so there only AMX counts. `KOMPRESS_CPU_KERNELS` applies.
pub(crate) fn beats_f32() -> bool {
    #[cfg(target_arch = "x86_64")]
    return match Kernel::for_cap(crate::kernels::isa::isa()) {
        #[cfg(target_os = "linux")]
        Kernel::Amx => true,
        Kernel::Dot => amd(),
        Kernel::Widened | Kernel::Wide(_) => false,
    };
    #[allow(unreachable_code)]
    false
}

/// Whether the CPU's vendor string (CPUID leaf 0) is `AuthenticAMD`. Asked once: CPUID traps to the
/// hypervisor in a VM.
#[cfg(target_arch = "x86_64")]
pub(crate) fn amd() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        let leaf = std::arch::x86_64::__cpuid(0);
        // "Auth", "enti", "cAMD" in EBX, EDX, ECX.
        (leaf.ebx, leaf.edx, leaf.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163)
    })
}

/// Whether this CPU has `vdpbf16ps` and it computes what [`step`] does, on edge cases: sums that tie,
/// cancel below the normal range, and products that fall below it. Checked once.
#[cfg(target_arch = "x86_64")]
pub(crate) fn dot_exact() -> bool {
    static EXACT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXACT.get_or_init(|| {
        if !(std::arch::is_x86_feature_detected!("avx512bf16") && detected() >= Isa::Avx512) {
            return false;
        }
        let (rows, width) = (13, 256);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut bits = |n: usize| -> Vec<u16> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Exponents 2^-70 .. 2^33: normal inputs whose products and sums reach below f32's
                    // normal range; a few zeros.
                    let exp = 57 + (state >> 8) % 104;
                    let value = ((state & 0x8000) as u16) | ((exp as u16) << 7) | (state >> 24) as u16 & 0x7f;
                    if state.is_multiple_of(17) {
                        0
                    } else {
                        value
                    }
                })
                .collect()
        };
        let (x, w) = (bits(rows * width), bits(width * PANEL));
        let (mut dot, mut wide) = (vec![0f32; rows * PANEL], vec![0f32; rows * PANEL]);
        // SAFETY: AVX-512 BF16 was detected above.
        unsafe { dot::block(&x, width, &w, &mut dot) };
        block(Isa::Portable, &x, width, &w, &mut wide);
        dot.iter().zip(&wide).all(|(a, b)| a.to_bits() == b.to_bits())
    })
}

wide! {
    /// `acc[r] = x[r] @ panel` for every row of `x` (rows `width` values apart), `PANEL` values per row.
    fn block(x: &[u16], width: usize, weights: &[u16], acc: &mut [f32]) => block_in
}

#[inline(always)]
fn block_in(x: &[u16], width: usize, weights: &[u16], acc: &mut [f32]) {
    for (x, acc) in x.chunks(TILE * width).zip(acc.chunks_mut(TILE * PANEL)) {
        match x.len() / width {
            TILE => tile::<TILE>(x, width, weights, acc),
            1 => tile::<1>(x, width, weights, acc),
            2 => tile::<2>(x, width, weights, acc),
            3 => tile::<3>(x, width, weights, acc),
            4 => tile::<4>(x, width, weights, acc),
            _ => tile::<5>(x, width, weights, acc),
        }
    }
}

#[inline(always)]
fn tile<const M: usize>(x: &[u16], width: usize, weights: &[u16], acc: &mut [f32]) {
    let x: &[u16] = &x[..M * width];
    let mut total = [[0f32; PANEL]; M];
    for (p, pair) in weights.chunks_exact(2 * PANEL).enumerate() {
        let w0: [f32; PANEL] = std::array::from_fn(|c| widen(pair[2 * c]));
        let w1: [f32; PANEL] = std::array::from_fn(|c| widen(pair[2 * c + 1]));
        for (r, total) in total.iter_mut().enumerate() {
            let (x0, x1) = (widen(x[r * width + 2 * p]), widen(x[r * width + 2 * p + 1]));
            for ((t, &w0), &w1) in total.iter_mut().zip(&w0).zip(&w1) {
                *t = step(*t, x0, x1, w0, w1);
            }
        }
    }
    for (dst, total) in acc.chunks_exact_mut(PANEL).zip(&total) {
        dst.copy_from_slice(total);
    }
}

#[cfg(target_arch = "x86_64")]
mod dot {
    use std::arch::x86_64::*;

    use super::PANEL;

    /// Rows per tile: 12 x 2 accumulators, as the f32 packed kernel.
    const TILE: usize = 12;

    /// `acc[r] = x[r] @ panel` with `vdpbf16ps`, rows of `x` `width` values (whole pairs) apart, read
    /// a pair (32 bits, unaligned) at a time.
    ///
    /// # Safety
    /// AVX-512 F and BF16 must be available.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(x: &[u16], width: usize, weights: &[u16], acc: &mut [f32]) {
        let (rows, pairs) = (acc.len() / PANEL, weights.len() / (2 * PANEL));
        assert!(x.len() >= rows * width && 2 * pairs <= width, "bf16 block operands");
        let (x, w, out) = (x.as_ptr().cast::<u32>(), weights.as_ptr(), acc.as_mut_ptr());
        let stride = width / 2;
        let mut r = 0;
        while r + TILE <= rows {
            tile::<TILE>(x.add(r * stride), stride, pairs, w, out.add(r * PANEL));
            r += TILE;
        }
        let (x, out) = (x.add(r * stride), out.add(r * PANEL));
        match rows - r {
            0 => {}
            1 => tile::<1>(x, stride, pairs, w, out),
            2 => tile::<2>(x, stride, pairs, w, out),
            3 => tile::<3>(x, stride, pairs, w, out),
            4 => tile::<4>(x, stride, pairs, w, out),
            5 => tile::<5>(x, stride, pairs, w, out),
            6 => tile::<6>(x, stride, pairs, w, out),
            7 => tile::<7>(x, stride, pairs, w, out),
            8 => tile::<8>(x, stride, pairs, w, out),
            9 => tile::<9>(x, stride, pairs, w, out),
            10 => tile::<10>(x, stride, pairs, w, out),
            _ => tile::<11>(x, stride, pairs, w, out),
        }
    }

    /// `M` rows (`stride` pairs apart): per input pair, one broadcast of each row's pair against the
    /// panel's two registers.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn tile<const M: usize>(x: *const u32, stride: usize, pairs: usize, w: *const u16, out: *mut f32) {
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        for p in 0..pairs {
            let ahead = w.wrapping_add((p + 8) * 2 * PANEL).cast::<i8>();
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(p * 2 * PANEL).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(w.add(p * 2 * PANEL + PANEL).cast()));
            for (i, acc) in acc.iter_mut().enumerate() {
                let a: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(x.add(i * stride + p).read_unaligned() as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], a, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], a, b1);
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * PANEL), acc[0]);
            _mm512_storeu_ps(out.add(i * PANEL + 16), acc[1]);
        }
    }
}

/// The arithmetic on AVX2 without bf16 dot products: each chunk of the panel's input pairs widened to
/// f32 (a shift: bf16 is f32's upper half) in the order the arithmetic takes them, odd input first, and
/// run through the f32 products' AVX2 tiles (`kernels::linear::avx2`, FMAs); the activations come
/// widened in the same order ([`Rows::Swapped`], once per row block). A product of two bf16 values is
/// exact in f32 (8-bit significands), so `fma(x, w, acc)` rounds `acc + x w` once, as [`step`] does,
/// and MXCSR's flush-to-zero (set for the call, then restored) flushes sums below f32's normal range
/// to signed zero, as the instruction does. One case differs: a product below the normal range
/// (`|x w| < 2^-126`), which the definition flushes before adding, enters the FMA's sum unflushed;
/// that changes the sum only when it is not below half an ulp of it, i.e. when `|acc| < 2^-102`
/// (`the_widened_path_differs_only_below_the_normal_range` shows such a case). Activations and
/// weights of a model are nowhere near there, and the tests' values (spread over 40 binades) match the
/// definition bit for bit. A separate multiply and add would be exact there too, but ran 1.2-1.3x
/// f32's time on the Zen 4 (one more instruction and a register per product); FMAs run near f32's.
#[cfg(target_arch = "x86_64")]
mod widened {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::PANEL;
    use crate::kernels::linear::avx2::panel_product;

    /// Input pairs widened at a time: 128 inputs, 16 KB of f32 panel, in L1 with the tiles' rows.
    const CHUNK: usize = 64;

    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6).
    const FTZ_DAZ: u32 = 1 << 15 | 1 << 6;

    /// Sets FTZ and DAZ on this thread until dropped, then restores what MXCSR held.
    struct FlushToZero(u32);

    impl FlushToZero {
        fn on() -> Self {
            let mut old = 0u32;
            // SAFETY: stmxcsr and ldmxcsr read and write 4 bytes at the given addresses; SSE is part of
            // x86_64. Only this thread's floating-point mode changes, and Drop restores it.
            unsafe {
                asm!("stmxcsr [{}]", in(reg) &mut old, options(nostack));
                asm!("ldmxcsr [{}]", in(reg) &(old | FTZ_DAZ), options(nostack, readonly));
            }
            Self(old)
        }
    }

    impl Drop for FlushToZero {
        fn drop(&mut self) {
            // SAFETY: as in `on`.
            unsafe { asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack, readonly)) };
        }
    }

    /// `acc[r] = x[r] @ panel` (see [`super::block`]): `x` the rows as [`super::Rows::Swapped`]
    /// holds them, `used` values apart; `weights` the panel's `used / 2` pairs.
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block(x: &[f32], used: usize, weights: &[u16], acc: &mut [f32]) {
        let (rows, pairs) = (acc.len() / PANEL, used / 2);
        assert!(x.len() >= rows * used && weights.len() >= used * PANEL, "bf16 block operands");
        let mut panel = vec![0f32; 2 * CHUNK * PANEL];
        let _ftz = FlushToZero::on();
        let mut p0 = 0;
        while p0 < pairs {
            let n = CHUNK.min(pairs - p0);
            swapped_panel(weights.as_ptr().add(p0 * 2 * PANEL).cast(), n, panel.as_mut_ptr());
            panel_product(
                (x.as_ptr().add(2 * p0), used),
                rows,
                2 * n,
                (panel.as_ptr(), PANEL),
                (acc.as_mut_ptr(), PANEL),
                PANEL,
                p0 > 0,
            );
            p0 += n;
        }
    }

    /// `pairs` pair rows of a packed panel (`PANEL` pairs each) as `2 * pairs` f32 rows, the odd
    /// inputs' row first.
    #[target_feature(enable = "avx2")]
    unsafe fn swapped_panel(w: *const u32, pairs: usize, out: *mut f32) {
        for p in 0..pairs {
            for c in (0..PANEL).step_by(8) {
                // Each 32-bit lane a pair, even input low: the odd input is the upper half.
                let lanes = _mm256_loadu_si256(w.add(p * PANEL + c).cast());
                let odd =
                    _mm256_castsi256_ps(_mm256_and_si256(lanes, _mm256_set1_epi32(0xffff_0000u32 as i32)));
                let even = _mm256_castsi256_ps(_mm256_slli_epi32::<16>(lanes));
                _mm256_storeu_ps(out.add(2 * p * PANEL + c), odd);
                _mm256_storeu_ps(out.add((2 * p + 1) * PANEL + c), even);
            }
        }
    }
}

/// AMX-BF16: `tdpbf16ps` multiplies a tile of 16 activation rows x 16 input pairs by a tile of 16 pair
/// rows x 16 columns (a half panel, as packed) into 16 x 16 f32; a call runs 32 rows x 32 columns as
/// four accumulator tiles, so each loaded tile serves two products.
///
/// Its sums are not the module's arithmetic: `scripts/bf16_hardware_probe.rs` found no sequential
/// definition that it follows (at most 41.5% of outputs matched one, on a Sapphire Rapids), so its bits
/// may differ from the other paths' in the last places of a sum; the tests bound the difference.
/// `KOMPRESS_CPU_KERNELS=avx512` keeps the exact paths.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) mod amx {
    use std::arch::asm;
    use std::arch::x86_64::__cpuid_count;

    use super::{AMX_PAIRS, PANEL};

    /// Whether the CPU has AMX tiles with bf16 products and the OS grants this process their state
    /// (the same grant as the int8 kernels', asked once).
    pub(crate) fn available() -> bool {
        // Asked once: CPUID traps to the hypervisor in a VM (asked per product it took 18% of a bf16
        // forward's samples).
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            // CPUID leaf 7 EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
            let edx = __cpuid_count(7, 0).edx;
            edx & (1 << 22 | 1 << 24) == (1 << 22 | 1 << 24) && crate::kernels::int8::amx::granted()
        })
    }

    // Tiles 0-3 the accumulators, 4-5 two row tiles of activations, 6-7 the panel's two halves, every
    // one 16 rows of 64 bytes: the int8 kernels' configuration (16 pairs of bf16 per activation row, 16
    // columns of a pair per panel row).
    use crate::kernels::int8::amx::CONFIG;

    /// Bytes per tile row.
    const ROW_BYTES: usize = 64;

    /// `acc[r] = x[r] @ panel` for whole tiles of rows: `x` rows `width` values apart (whole tiles of
    /// pairs, zero-padded, whole [`AMX_PAIRS`] rows), `weights` the panel's `width / 2` pair rows,
    /// `acc` whole pairs of tiles of rows (`2 * AMX_PAIRS`).
    pub(super) fn block(x: &[u16], width: usize, weights: &[u16], acc: &mut [f32]) {
        let rows = x.len() / width;
        assert!(
            rows.is_multiple_of(AMX_PAIRS)
                && width.is_multiple_of(2 * AMX_PAIRS)
                && weights.len() == width * PANEL
                && acc.len() >= rows.next_multiple_of(2 * AMX_PAIRS) * PANEL,
            "bf16 AMX block operands"
        );
        // SAFETY: available() was checked by Kernel::for_cap; the asserts above keep every tile load
        // and store inside its buffer.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
            for r in (0..rows).step_by(2 * AMX_PAIRS) {
                tiles(
                    x.as_ptr().add(r * width),
                    width,
                    rows - r > AMX_PAIRS,
                    weights,
                    acc.as_mut_ptr().add(r * PANEL),
                );
            }
            asm!("tilerelease", options(nostack, nomem));
        }
    }

    /// 32 rows (16 unless `pair`) of `x` against the whole panel into `out` (rows `PANEL` apart).
    #[inline]
    unsafe fn tiles(x: *const u16, width: usize, pair: bool, weights: &[u16], out: *mut f32) {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        let (stride, x1) = (2 * width, x.add(AMX_PAIRS * width));
        for block in 0..width / (2 * AMX_PAIRS) {
            let (a, w) = (x.add(block * 2 * AMX_PAIRS), weights.as_ptr().add(block * AMX_PAIRS * 2 * PANEL));
            asm!(
                "tileloadd tmm6, [{w} + {ws} * 1]",
                "tileloadd tmm7, [{w} + {ws} * 1 + 64]",
                "tileloadd tmm4, [{a} + {xs} * 1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                w = in(reg) w,
                ws = in(reg) 2 * ROW_BYTES,
                a = in(reg) a,
                xs = in(reg) stride,
                options(nostack, readonly),
            );
            if pair {
                asm!(
                    "tileloadd tmm5, [{a} + {xs} * 1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a = in(reg) x1.add(block * 2 * AMX_PAIRS),
                    xs = in(reg) stride,
                    options(nostack, readonly),
                );
            }
        }
        asm!(
            "tilestored [{c} + {cs} * 1], tmm0",
            "tilestored [{c} + {cs} * 1 + 64], tmm1",
            "tilestored [{d} + {cs} * 1], tmm2",
            "tilestored [{d} + {cs} * 1 + 64], tmm3",
            c = in(reg) out,
            d = in(reg) out.add(AMX_PAIRS * PANEL),
            cs = in(reg) PANEL * 4,
            options(nostack),
        );
    }
}
