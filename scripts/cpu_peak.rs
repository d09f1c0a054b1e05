//! This CPU's peak multiply-add throughput per instruction kind, on 1 and on N threads: the roofline
//! that a speed target can be checked against (docs/LLMLINGUA2.md). Each thread runs independent
//! chains of one instruction on registers only (no memory traffic), enough chains to hide latency,
//! for a fixed wall time; the figure is multiply-adds per second (one FMA lane = 1, one `vpdpbusd`
//! lane = 4 byte products, one `vdpbf16ps` lane = 2), summed over the threads.
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

/// One batch of `BATCH * 12` independent-chain instructions; `$ins` is the AT&T-free Intel mnemonic
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

struct Kind {
    name: &'static str,
    /// Multiply-adds per instruction: 16 lanes x products per lane.
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

fn main() {
    let threads: usize = std::env::args().nth(1).map_or(2, |t| t.parse().expect("threads: a number"));
    let kinds = [
        Kind {
            name: "f32 FMA (vfmadd231ps zmm)",
            per_ins: 16.0,
            available: is_x86_feature_detected!("avx512f"),
            run: fma_f32,
        },
        Kind {
            name: "int8 (vpdpbusd zmm)",
            per_ins: 64.0,
            available: is_x86_feature_detected!("avx512vnni"),
            run: dpbusd,
        },
        Kind {
            name: "bf16 (vdpbf16ps zmm)",
            per_ins: 32.0,
            available: is_x86_feature_detected!("avx512bf16"),
            run: dpbf16,
        },
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
