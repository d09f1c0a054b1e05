//! Which arithmetic this CPU's bf16 dot-product instructions perform (docs/NUMERICS.md): AVX-512 BF16
//! `vdpbf16ps` and, where the OS grants AMX, `tdpbf16ps`, each against candidate sequential
//! definitions, on random bf16 operands (exponents spread over 2^-9..2^10) and f32 accumulators.
//!
//!     rustc -O scripts/bf16_hardware_probe.rs -o /tmp/bf16_probe && /tmp/bf16_probe
//!
//! x86_64 Linux only; a CPU without the instructions prints that and exits.
use std::arch::asm;
use std::arch::x86_64::*;

fn widen(v: u16) -> f32 {
    f32::from_bits(u32::from(v) << 16)
}

fn ftz(v: f32) -> f32 {
    let b = v.to_bits();
    f32::from_bits(if b & 0x7f80_0000 == 0 { b & 0x8000_0000 } else { b })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bf16(&mut self) -> u16 {
        let exp = 118 + (self.next() % 20) as u16;
        ((self.next() & 1) as u16) << 15 | exp << 7 | (self.next() % 128) as u16
    }
    fn acc(&mut self) -> f32 {
        (self.next() % 2_000_000) as f32 / 1e5 - 10.0
    }
}

/// Candidate definitions of `acc + sum over pairs of x[2i] w[2i] + x[2i+1] w[2i+1]`.
fn candidates(acc: f32, pairs: &[(f32, f32)]) -> [f32; 4] {
    let (mut odd_first, mut even_first, mut per_pair, mut whole) = (acc, acc, acc, acc as f64);
    for &(p0, p1) in pairs {
        odd_first = ftz(ftz(odd_first + p1) + p0);
        even_first = ftz(ftz(even_first + p0) + p1);
        per_pair = (per_pair as f64 + p0 as f64 + p1 as f64) as f32;
        whole += p0 as f64 + p1 as f64;
    }
    [odd_first, even_first, per_pair, whole as f32]
}

const NAMES: [&str; 4] = ["odd term first", "even term first", "one rounding per pair", "one rounding per instruction"];

fn report(what: &str, hits: [usize; 4], total: usize) {
    println!("{what}: {total} outputs");
    for (name, hit) in NAMES.iter().zip(hits) {
        println!("  {name}: {hit} ({:.1}%)", 100.0 * hit as f64 / total as f64);
    }
}

#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dot(acc: [f32; 16], a: [u16; 32], b: [u16; 32]) -> [f32; 16] {
    let r = _mm512_dpbf16_ps(std::mem::transmute(acc), std::mem::transmute(a), std::mem::transmute(b));
    std::mem::transmute(r)
}

fn probe_vdpbf16ps(rng: &mut Rng) {
    let (mut hits, mut total) = ([0; 4], 0);
    for _ in 0..100_000 {
        let (a, b): ([u16; 32], [u16; 32]) = (std::array::from_fn(|_| rng.bf16()), std::array::from_fn(|_| rng.bf16()));
        let acc: [f32; 16] = std::array::from_fn(|_| rng.acc());
        // SAFETY: the caller checked the feature.
        let got = unsafe { dot(acc, a, b) };
        for i in 0..16 {
            let p = |k: usize| widen(a[k]) * widen(b[k]);
            let c = candidates(acc[i], &[(p(2 * i), p(2 * i + 1))]);
            for (h, c) in hits.iter_mut().zip(c) {
                *h += usize::from(c.to_bits() == got[i].to_bits());
            }
            total += 1;
        }
    }
    report("vdpbf16ps", hits, total);
}

#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

fn amx_granted() -> bool {
    let ret: i64;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) only changes this process's permission.
    unsafe {
        asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023i64, in("rsi") 18i64,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

fn probe_tdpbf16ps(rng: &mut Rng) {
    let (mut colsb, mut rows) = ([0u16; 16], [0u8; 16]);
    for t in 0..8 {
        (colsb[t], rows[t]) = (64, 16);
    }
    let cfg = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], colsb, rows };
    let (mut hits, mut total) = ([0; 4], 0);
    for _ in 0..3000 {
        // A: 16 rows of 32 bf16 (16 pairs); B: 16 pair rows of 16 columns; C: 16 x 16 f32.
        let a: Vec<u16> = (0..16 * 32).map(|_| rng.bf16()).collect();
        let b: Vec<u16> = (0..16 * 32).map(|_| rng.bf16()).collect();
        let c0: Vec<f32> = (0..256).map(|_| rng.acc()).collect();
        let mut c = c0.clone();
        // SAFETY: AMX was granted; every tile is 16 rows of 64 bytes inside its buffer.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &cfg, options(nostack));
            asm!("tileloadd tmm0, [{c} + {s}*1]", "tileloadd tmm4, [{a} + {s}*1]", "tileloadd tmm6, [{b} + {s}*1]",
                 "tdpbf16ps tmm0, tmm4, tmm6", "tilestored [{c} + {s}*1], tmm0",
                 c = in(reg) c.as_mut_ptr(), a = in(reg) a.as_ptr(), b = in(reg) b.as_ptr(), s = in(reg) 64usize,
                 options(nostack));
            asm!("tilerelease", options(nostack));
        }
        for m in 0..16 {
            for n in 0..16 {
                let pairs: Vec<(f32, f32)> = (0..16)
                    .map(|k| {
                        let p = |j: usize| widen(a[m * 32 + 2 * k + j]) * widen(b[k * 32 + 2 * n + j]);
                        (p(0), p(1))
                    })
                    .collect();
                let cand = candidates(c0[m * 16 + n], &pairs);
                for (h, cand) in hits.iter_mut().zip(cand) {
                    *h += usize::from(cand.to_bits() == c[m * 16 + n].to_bits());
                }
                total += 1;
            }
        }
    }
    report("tdpbf16ps", hits, total);
}

fn main() {
    let mut rng = Rng(88_172_645_463_325_252);
    if is_x86_feature_detected!("avx512bf16") {
        probe_vdpbf16ps(&mut rng);
    } else {
        println!("vdpbf16ps: this CPU has no AVX-512 BF16");
    }
    let amx_bf16 = __cpuid_count(7, 0).edx & (1 << 22) != 0;
    if amx_bf16 && amx_granted() {
        probe_tdpbf16ps(&mut rng);
    } else {
        println!("tdpbf16ps: no AMX-BF16 here (or the OS withholds AMX)");
    }
}
