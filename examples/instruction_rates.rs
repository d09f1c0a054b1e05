//! How many of the kernels' SIMD instructions one core retires per second, each in 12 or 24
//! independent chains with register operands only: the ceilings that docs/PERFORMANCE.md (Limits)
//! compares the kernels with. x86_64 only; instructions the CPU lacks are skipped.
//!
//! ```sh
//! cargo run --release --example instruction_rates
//! ```

#[cfg(target_arch = "x86_64")]
mod rates {
    use std::arch::x86_64::*;
    use std::hint::black_box;
    use std::time::Instant;

    const ITERS: u64 = 50_000_000;

    /// Runs `$step` (one instruction on each of `$chains` accumulators) `ITERS` times and prints the
    /// instructions per second. A macro, so that the loop is compiled inside the caller's
    /// `target_feature` function, where the intrinsics inline and the accumulators stay in registers.
    macro_rules! time {
        ($name:expr, $chains:literal, $init:expr, |$a:ident| $step:expr) => {{
            let mut $a = black_box([$init; $chains]);
            let start = Instant::now();
            for _ in 0..ITERS {
                $step;
            }
            let secs = start.elapsed().as_secs_f64();
            black_box($a);
            println!("{:<40} {:>6.2} G/s", $name, (ITERS * $chains) as f64 / secs / 1e9);
        }};
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2() {
        let (b, ones) = (_mm256_set1_epi8(3), _mm256_set1_epi16(1));
        let (x, y) = (_mm256_set1_ps(1.0001), _mm256_set1_ps(0.9999));
        time!("vfmadd231ps ymm (8 multiply-adds)", 12, x, |a| {
            a.iter_mut().for_each(|a| *a = _mm256_fmadd_ps(*a, x, y))
        });
        time!("vpmaddubsw ymm", 12, b, |a| a.iter_mut().for_each(|a| *a = _mm256_maddubs_epi16(*a, b)));
        time!("vpmaddwd ymm", 12, b, |a| a.iter_mut().for_each(|a| *a = _mm256_madd_epi16(*a, ones)));
        time!("vpsignb ymm", 12, b, |a| a.iter_mut().for_each(|a| *a = _mm256_sign_epi8(*a, b)));
        time!("vpmaddubsw + vpmaddwd ymm, half each", 12, b, |a| {
            let (l, h) = a.split_at_mut(6);
            l.iter_mut().for_each(|a| *a = _mm256_maddubs_epi16(*a, b));
            h.iter_mut().for_each(|a| *a = _mm256_madd_epi16(*a, ones));
        });
        time!("vpmaddubsw + vpsignb ymm, half each", 12, b, |a| {
            let (l, h) = a.split_at_mut(6);
            l.iter_mut().for_each(|a| *a = _mm256_maddubs_epi16(*a, b));
            h.iter_mut().for_each(|a| *a = _mm256_sign_epi8(*a, b));
        });
        time!("vpmaddubsw + vpabsb ymm, half each", 12, b, |a| {
            let (l, h) = a.split_at_mut(6);
            l.iter_mut().for_each(|a| *a = _mm256_maddubs_epi16(*a, b));
            h.iter_mut().for_each(|a| *a = _mm256_abs_epi8(*a));
        });
        time!("vpmaddubsw + vpaddd ymm, half each", 12, b, |a| {
            let (l, h) = a.split_at_mut(6);
            l.iter_mut().for_each(|a| *a = _mm256_maddubs_epi16(*a, b));
            h.iter_mut().for_each(|a| *a = _mm256_add_epi32(*a, b));
        });
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512() {
        let (x, y) = (_mm512_set1_ps(1.0001), _mm512_set1_ps(0.9999));
        time!("vfmadd231ps zmm (16 multiply-adds)", 24, x, |a| {
            a.iter_mut().for_each(|a| *a = _mm512_fmadd_ps(*a, x, y))
        });
    }

    pub fn main() {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            unsafe { avx2() }
        } else {
            println!("no AVX2 + FMA: nothing to time");
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: as above.
            unsafe { avx512() }
        }
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    rates::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("instruction_rates times x86_64 instructions only");
}
