//! This CPU's peak multiply-add throughput per instruction kind, on 1 and on N threads: the roofline
//! that a speed target can be checked against (docs/LLMLINGUA2.md). Each thread runs independent
//! chains of one instruction on registers only (no memory traffic), enough chains to hide latency,
//! for a fixed wall time; the figure is multiply-adds per second (one FMA lane = 1, one `vpdpbusd`
//! lane = 4 byte products, one `vdpbf16ps` lane = 2), summed over the threads.
//!
//! The 256-bit kinds are the AVX2 kernels' instruction mixes (docs/PERFORMANCE.md): the f32 tile's
//! FMA, and the three exact-or-not ways to multiply int8 without VNNI, each step as its kernel runs it
//! (with the loads for the AVX2 int8 kernel's own mix), so that a kernel's speed can be stated as a
//! share of its mix's peak.
//!
//!     rustc -O scripts/cpu_peak.rs -o /tmp/cpu_peak && /tmp/cpu_peak [threads]
//!
//! x86_64 only; an instruction this CPU lacks is reported as such.
use std::arch::asm;
use std::time::{Duration, Instant};

/// Loop iterations per timing check: each runs 12 instructions.
const BATCH: u64 = 1 << 16;

/// How long each thread runs one instruction kind.
const RUN: Duration = Duration::from_millis(1500);

/// One batch of `BATCH * 12` independent-chain instructions (steps); `$ins` is the AT&T-free Intel mnemonic
/// taking `zmm_acc, zmm_a, zmm_b`.
macro_rules! chains {
    ($name:ident, $ins:literal, $feat:literal) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(iters: u64) {
            asm!(
                "vpxord zmm0, zmm0, zmm0", "vpxord zmm1, zmm1, zmm1", "vpxord zmm2, zmm2, zmm2",
                "vpxord zmm3, zmm3, zmm3", "vpxord zmm4, zmm4, zmm4", "vpxord zmm5, zmm5, zmm5",
                "vpxord zmm6, zmm6, zmm6", "vpxord zmm7, zmm7, zmm7", "vpxord zmm8, zmm8, zmm8",
                "vpxord zmm9, zmm9, zmm9", "vpxord zmm10, zmm10, zmm10", "vpxord zmm11, zmm11, zmm11",
                "vpxord zmm12, zmm12, zmm12", "vpxord zmm13, zmm13, zmm13",
                "2:",
                concat!($ins, " zmm0, zmm12, zmm13"), concat!($ins, " zmm1, zmm12, zmm13"),
                concat!($ins, " zmm2, zmm12, zmm13"), concat!($ins, " zmm3, zmm12, zmm13"),
                concat!($ins, " zmm4, zmm12, zmm13"), concat!($ins, " zmm5, zmm12, zmm13"),
                concat!($ins, " zmm6, zmm12, zmm13"), concat!($ins, " zmm7, zmm12, zmm13"),
                concat!($ins, " zmm8, zmm12, zmm13"), concat!($ins, " zmm9, zmm12, zmm13"),
                concat!($ins, " zmm10, zmm12, zmm13"), concat!($ins, " zmm11, zmm12, zmm13"),
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                out("zmm0") _, out("zmm1") _, out("zmm2") _, out("zmm3") _, out("zmm4") _,
                out("zmm5") _, out("zmm6") _, out("zmm7") _, out("zmm8") _, out("zmm9") _,
                out("zmm10") _, out("zmm11") _, out("zmm12") _, out("zmm13") _,
                options(nostack, nomem),
            );
        }
    };
}

chains!(fma_f32, "vfmadd231ps", "avx512f");
chains!(dpbusd, "vpdpbusd", "avx512f,avx512vnni");
chains!(dpbf16, "vdpbf16ps", "avx512f,avx512bf16");

/// The 256-bit kinds: `$steps` (12 steps, each one multiply-add unit of the mix) per iteration, on
/// accumulators ymm0-ymm11 and the operands ymm12-ymm15 (ymm15 all ones where a step widens by it);
/// `{p}` addresses 128 readable bytes.
macro_rules! mix {
    ($name:ident, $feat:literal, [$($step:expr),* $(,)?]) => {
        #[target_feature(enable = $feat)]
        unsafe fn $name(iters: u64) {
            let buf = [1u64; 16];
            asm!(
                "vpxor ymm0, ymm0, ymm0", "vpxor ymm1, ymm1, ymm1", "vpxor ymm2, ymm2, ymm2",
                "vpxor ymm3, ymm3, ymm3", "vpxor ymm4, ymm4, ymm4", "vpxor ymm5, ymm5, ymm5",
                "vpxor ymm6, ymm6, ymm6", "vpxor ymm7, ymm7, ymm7", "vpxor ymm8, ymm8, ymm8",
                "vpxor ymm9, ymm9, ymm9", "vpxor ymm10, ymm10, ymm10", "vpxor ymm11, ymm11, ymm11",
                "vpxor ymm12, ymm12, ymm12", "vpxor ymm13, ymm13, ymm13", "vpcmpeqw ymm15, ymm15, ymm15",
                "vpsrlw ymm15, ymm15, 15",
                "2:",
                $($step,)*
                "/* {p} */",
                "dec {n}",
                "jnz 2b",
                n = inout(reg) iters => _,
                p = in(reg) buf.as_ptr(),
                out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _,
                out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _,
                out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _,
                out("ymm15") _,
                options(nostack, readonly),
            );
        }
    };
}

/// Twelve one-instruction steps `$ins acc, ymm12, ymm13`.
macro_rules! ymm_chains {
    ($name:ident, $ins:literal, $feat:literal) => {
        mix!(
            $name,
            $feat,
            [
                concat!($ins, " ymm0, ymm12, ymm13"),
                concat!($ins, " ymm1, ymm12, ymm13"),
                concat!($ins, " ymm2, ymm12, ymm13"),
                concat!($ins, " ymm3, ymm12, ymm13"),
                concat!($ins, " ymm4, ymm12, ymm13"),
                concat!($ins, " ymm5, ymm12, ymm13"),
                concat!($ins, " ymm6, ymm12, ymm13"),
                concat!($ins, " ymm7, ymm12, ymm13"),
                concat!($ins, " ymm8, ymm12, ymm13"),
                concat!($ins, " ymm9, ymm12, ymm13"),
                concat!($ins, " ymm10, ymm12, ymm13"),
                concat!($ins, " ymm11, ymm12, ymm13"),
            ]
        );
    };
}

ymm_chains!(fma_f32_ymm, "vfmadd231ps", "avx2,fma");
ymm_chains!(dpbusd_ymm, "{{vex}} vpdpbusd", "avx2,avxvnni");

/// One step of the AVX2 int8 kernel on accumulator `$acc`: `vpmaddwd` of the broadcast (ymm14) and a
/// widened weight register, added.
macro_rules! wide_step {
    ($w:literal, $acc:literal) => {
        concat!("vpmaddwd ymm12, ymm14, ", $w, "\nvpaddd ", $acc, ", ", $acc, ", ymm12")
    };
}

// The AVX2 int8 kernel (src/kernels/int8/avx2.rs), one group row of a 6 x 8 tile per iteration: two
// weight loads widened, six row broadcasts, twelve `vpmaddwd` + `vpaddd` (16 products each).
mix!(
    int8_avx2_kernel,
    "avx2",
    [
        "vpmovsxbw ymm13, [{p}]\nvpmovsxbw ymm15, [{p} + 16]\nvpbroadcastq ymm14, [{p} + 32]",
        wide_step!("ymm13", "ymm0"),
        wide_step!("ymm15", "ymm1"),
        "vpbroadcastq ymm14, [{p} + 40]",
        wide_step!("ymm13", "ymm2"),
        wide_step!("ymm15", "ymm3"),
        "vpbroadcastq ymm14, [{p} + 48]",
        wide_step!("ymm13", "ymm4"),
        wide_step!("ymm15", "ymm5"),
        "vpbroadcastq ymm14, [{p} + 56]",
        wide_step!("ymm13", "ymm6"),
        wide_step!("ymm15", "ymm7"),
        "vpbroadcastq ymm14, [{p} + 64]",
        wide_step!("ymm13", "ymm8"),
        wide_step!("ymm15", "ymm9"),
        "vpbroadcastq ymm14, [{p} + 72]",
        wide_step!("ymm13", "ymm10"),
        wide_step!("ymm15", "ymm11"),
    ]
);

/// Twelve steps of the macro `$step`, one on each accumulator.
macro_rules! per_accumulator {
    ($name:ident, $feat:literal, $step:ident) => {
        mix!(
            $name,
            $feat,
            [
                $step!("ymm0"),
                $step!("ymm1"),
                $step!("ymm2"),
                $step!("ymm3"),
                $step!("ymm4"),
                $step!("ymm5"),
                $step!("ymm6"),
                $step!("ymm7"),
                $step!("ymm8"),
                $step!("ymm9"),
                $step!("ymm10"),
                $step!("ymm11"),
            ]
        );
    };
}

/// One step of the sign trick (the AVX2 kernel before): `vpmaddubsw(|x|, sign(w, x))`, widened by
/// `vpmaddwd` with ones, added (32 products).
macro_rules! sign_step {
    ($acc:literal) => {
        concat!(
            "vpsignb ymm14, ymm13, ymm12\nvpmaddubsw ymm14, ymm12, ymm14\n",
            "vpmaddwd ymm14, ymm14, ymm15\nvpaddd ",
            $acc,
            ", ",
            $acc,
            ", ymm14"
        )
    };
}

per_accumulator!(int8_sign, "avx2", sign_step);

/// One step of ONNX Runtime's MLAS form: `vpmaddubsw(x + 128, w)`, widened, added (32 products). Not
/// exact: a pair sum can reach 2 * 255 * 127 and saturate i16.
macro_rules! mlas_step {
    ($acc:literal) => {
        concat!(
            "vpmaddubsw ymm14, ymm12, ymm13\nvpmaddwd ymm14, ymm14, ymm15\n",
            "vpaddd ",
            $acc,
            ", ",
            $acc,
            ", ymm14"
        )
    };
}

per_accumulator!(int8_mlas, "avx2", mlas_step);

struct Kind {
    name: &'static str,
    /// Multiply-adds per step (12 steps a loop iteration): for the one-instruction kinds, lanes x
    /// products per lane.
    per_ins: f64,
    available: bool,
    run: unsafe fn(u64),
}

/// Instructions per second of one thread running `kind` for [`RUN`].
fn one_thread(kind: &Kind) -> f64 {
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < RUN {
        // SAFETY: `available` was checked by the caller.
        unsafe { (kind.run)(BATCH) };
        batches += 1;
    }
    (batches * BATCH * 12) as f64 / start.elapsed().as_secs_f64()
}

fn kind(name: &'static str, per_ins: f64, available: bool, run: unsafe fn(u64)) -> Kind {
    Kind { name, per_ins, available, run }
}

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |t| t.parse().expect("threads: a number"));
    // (name, multiply-adds per step, available here, the loop)
    let kinds = [
        kind("f32 FMA (vfmadd231ps zmm)", 16.0, is_x86_feature_detected!("avx512f"), fma_f32),
        kind("int8 (vpdpbusd zmm)", 64.0, is_x86_feature_detected!("avx512vnni"), dpbusd),
        kind("bf16 (vdpbf16ps zmm)", 32.0, is_x86_feature_detected!("avx512bf16"), dpbf16),
        kind("f32 FMA (vfmadd231ps ymm)", 8.0, is_x86_feature_detected!("fma"), fma_f32_ymm),
        kind("int8 AVX-VNNI (vpdpbusd ymm)", 32.0, is_x86_feature_detected!("avxvnni"), dpbusd_ymm),
        kind(
            "int8 AVX2 kernel's mix (vpmaddwd on i16, exact)",
            16.0,
            is_x86_feature_detected!("avx2"),
            int8_avx2_kernel,
        ),
        kind(
            "int8 sign trick (vpsignb + vpmaddubsw + vpmaddwd, exact)",
            32.0,
            is_x86_feature_detected!("avx2"),
            int8_sign,
        ),
        kind(
            "int8 MLAS form (vpmaddubsw on x + 128 + vpmaddwd, can saturate)",
            32.0,
            is_x86_feature_detected!("avx2"),
            int8_mlas,
        ),
    ];
    println!("threads 1 and {threads}; multiply-adds per second (x2 for FLOP/s)");
    for kind in &kinds {
        if !kind.available {
            println!("{}: not on this CPU", kind.name);
            continue;
        }
        let single = one_thread(kind) * kind.per_ins;
        let all: f64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(|| one_thread(kind))).collect();
            handles.into_iter().map(|h| h.join().expect("probe thread")).sum::<f64>()
        }) * kind.per_ins;
        println!("{}: 1 thread {:.1} G/s, {threads} threads {:.1} G/s", kind.name, single / 1e9, all / 1e9);
    }
}
