use candle_core::{Device, Tensor};

use super::bf16::{round, Bf16Weight, Kernel};
use super::int8::Int8WoWeight;
use super::*;
use crate::kernels::int8::quantise_row;
use crate::kernels::isa::supported;

fn randn(n: usize) -> Vec<f32> {
    Tensor::randn(0f32, 1.0, n, &Device::Cpu).unwrap().to_vec1().unwrap()
}

fn run(weight: &WoWeight, x: &[f32], residual: Option<&[f32]>, isa: Isa) -> Vec<f32> {
    product(weight, x, residual.map(<[f32]>::to_vec), isa, Planes::ONE)
}

/// Every kernel level this CPU runs (the bf16 product has its `vdpbf16ps` path above AVX2).
fn paths() -> impl Iterator<Item = Isa> {
    Isa::ALL.into_iter().filter(|&i| supported(i))
}

/// Shapes ragged in every direction: rows not a multiple of any tile or of the row block, columns not
/// of the panel, `in` odd and not of the group.
const SHAPES: [(usize, usize, usize); 6] =
    [(1, 7, 5), (37, 50, 130), (135, 64, 17), (260, 33, 64), (13, 300, 40), (3, 1, 33)];

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

/// Weight-only int8, written out naively: per output and group, the chain of fused products of the
/// quantised values, then the scaled sum into the total.
fn naive_int8(w: &[f32], x: &[f32], inner: usize, group: usize, residual: Option<&[f32]>) -> Vec<f32> {
    let out = w.len() / inner;
    let quantised: Vec<Vec<(Vec<f32>, f32)>> = w
        .chunks(inner)
        .map(|row| {
            row.chunks(group)
                .map(|part| {
                    let mut q = vec![0u8; part.len()];
                    let s = quantise_row(part, &mut q, 0);
                    (q.iter().map(|&v| f32::from(v as i8)).collect(), s)
                })
                .collect()
        })
        .collect();
    let mut result = Vec::new();
    for (r, xr) in x.chunks(inner).enumerate() {
        for (o, groups) in quantised.iter().enumerate() {
            let mut total = 0f32;
            for (g, (q, s)) in groups.iter().enumerate() {
                let part = q.iter().enumerate().fold(0f32, |p, (i, &q)| xr[g * group + i].mul_add(q, p));
                total = part.mul_add(*s, total);
            }
            result.push(residual.map_or(total, |res| res[r * out + o] + total));
        }
    }
    result
}

/// The bf16 arithmetic written out naively, step by step as the module documents it.
fn naive_bf16(w: &[f32], x: &[f32], inner: usize, residual: Option<&[f32]>) -> Vec<f32> {
    let out = w.len() / inner;
    let widen = |v: f32| f32::from_bits(u32::from(round(v)) << 16);
    let flush = |v: f32| if v.abs() < f32::MIN_POSITIVE { 0.0f32.copysign(v) } else { v };
    let mut result = Vec::new();
    for (r, xr) in x.chunks(inner).enumerate() {
        for (o, wr) in w.chunks(inner).enumerate() {
            let term = |k: usize| if k < inner { flush(widen(xr[k]) * widen(wr[k])) } else { 0.0 };
            let mut acc = 0f32;
            for k in (0..inner).step_by(2) {
                acc = flush(acc + term(k + 1));
                acc = flush(acc + term(k));
            }
            result.push(residual.map_or(acc, |res| res[r * out + o] + acc));
        }
    }
    result
}

/// Every int8-wo path gives the naive product's bits, per channel and per group, with and without a
/// residual.
#[test]
fn int8_wo_paths_equal_the_naive_product_bit_for_bit() {
    for (rows, inner, out) in SHAPES {
        let (x, w, residual) = (randn(rows * inner), randn(out * inner), randn(rows * out));
        for group in [None, Some(16), Some(128)] {
            let weight = WoWeight::Int8(Int8WoWeight::new(&w, out, inner, group));
            for residual in [None, Some(residual.as_slice())] {
                let want = naive_int8(&w, &x, inner, group.unwrap_or(inner).min(inner), residual);
                for isa in paths() {
                    let got = run(&weight, &x, residual, isa);
                    assert!(same_bits(&got, &want), "{rows}x{inner}x{out} group {group:?} on {isa:?}");
                }
            }
        }
    }
}

/// Every exact bf16 path (`vdpbf16ps` where the CPU has it, the plain-Rust one at every level) gives
/// the naive arithmetic's bits, with and without a residual; values spread over many binades so that
/// sums round and cancel. AMX tiles, which sum otherwise, stay within a few roundings of each sum, and
/// of the residual's addition: `|got - want| <= inner 2^-23 sum |x w| + 2^-22 |want|` (measured: at
/// most 0.65 of the first term without a residual; a wrong tile errs by whole products).
#[test]
fn bf16_paths_equal_the_naive_product() {
    eprintln!("bf16 kernels here: {:?}", paths().map(Kernel::for_cap).collect::<Vec<_>>());
    for (rows, inner, out) in SHAPES {
        let spread = |v: Vec<f32>| -> Vec<f32> { v.iter().map(|&v| v * v.abs().powi(3) * 1e-3).collect() };
        let (x, w, residual) = (spread(randn(rows * inner)), randn(out * inner), randn(rows * out));
        let weight = WoWeight::Bf16(Bf16Weight::new(&w, out, inner));
        let magnitude: Vec<f32> = x
            .chunks(inner)
            .flat_map(|xr| {
                w.chunks(inner).map(move |wr| xr.iter().zip(wr).map(|(a, b)| (a * b).abs()).sum::<f32>())
            })
            .collect();
        for residual in [None, Some(residual.as_slice())] {
            let want = naive_bf16(&w, &x, inner, residual);
            for isa in paths() {
                let (got, kernel) = (run(&weight, &x, residual, isa), Kernel::for_cap(isa));
                #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                if kernel == Kernel::Amx {
                    let ulps = inner as f32 * f32::EPSILON;
                    let over = got.iter().zip(&want).zip(&magnitude);
                    let bound = |w: f32, m: f32| ulps * m + 2.0 * f32::EPSILON * w.abs() + 1e-30;
                    let over = over.filter(|((g, w), m)| (*g - *w).abs() > bound(**w, **m)).count();
                    assert_eq!(over, 0, "{rows}x{inner}x{out} on AMX");
                    continue;
                }
                assert!(
                    same_bits(&got, &want),
                    "{rows}x{inner}x{out} on {isa:?} ({kernel:?}): {got:?} vs {want:?}"
                );
            }
        }
    }
}

/// Both forms are the f32 product up to their rounding: a wrong kernel errs by the product's whole size.
#[test]
fn weight_only_forms_track_the_f32_product() {
    let (rows, inner, out) = (37, 300, 70);
    let (x, w) = (randn(rows * inner), randn(out * inner));
    let exact: Vec<f32> = x
        .chunks(inner)
        .flat_map(|xr| w.chunks(inner).map(move |wr| xr.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>()))
        .collect();
    let forms = [
        ("bf16", WoWeight::Bf16(Bf16Weight::new(&w, out, inner)), 0.02),
        ("int8-wo", WoWeight::Int8(Int8WoWeight::new(&w, out, inner, None)), 0.1),
        ("int8-wo-g128", WoWeight::Int8(Int8WoWeight::new(&w, out, inner, Some(128))), 0.1),
    ];
    for (name, weight, tolerance) in forms {
        let got = run(&weight, &x, None, isa());
        let worst = got.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let bound = tolerance * (inner as f32).sqrt();
        assert!(worst < bound, "{name}: {worst} >= {bound}");
    }
}

/// Rounding to bf16: ties to even, overflow to infinity, tiny values to signed zero, NaN stays NaN.
#[test]
fn bf16_rounding_edges() {
    assert_eq!(round(1.0), 0x3f80);
    assert_eq!(round(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even below
    assert_eq!(round(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, even above
    assert_eq!(round(f32::from_bits(0x3f80_8001)), 0x3f81);
    assert_eq!(round(f32::MAX), 0x7f80);
    assert_eq!(round(-1e-39), 0x8000);
    assert_eq!(round(f32::MIN_POSITIVE), 0x0080);
    assert!(f32::from_bits(u32::from(round(f32::NAN)) << 16).is_nan());
    assert_eq!(round(f32::NEG_INFINITY), 0xff80);
}

/// Planes are the output cut by columns, as for the other kernels.
#[test]
fn planes_cut_the_output_by_columns() {
    let (rows, inner, out) = (19, 40, 96);
    let (x, w) = (randn(rows * inner), randn(out * inner));
    for weight in [
        WoWeight::Bf16(Bf16Weight::new(&w, out, inner)),
        WoWeight::Int8(Int8WoWeight::new(&w, out, inner, None)),
    ] {
        let whole = run(&weight, &x, None, isa());
        let planes = product(&weight, &x, None, isa(), Planes { count: 3 });
        let width = out / 3;
        for p in 0..3 {
            for r in 0..rows {
                let got = &planes[(p * rows + r) * width..][..width];
                assert!(same_bits(got, &whole[r * out + p * width..][..width]), "plane {p} row {r}");
            }
        }
    }
}

/// The vendor check behind `auto`'s choice of bf16 on AMD reads CPUID as the kernel does
/// (`/proc/cpuinfo`'s `vendor_id`).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn the_vendor_check_agrees_with_the_kernel() {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let vendor = info.lines().find_map(|l| l.strip_prefix("vendor_id")).unwrap();
    let vendor = vendor.trim_start_matches([' ', '\t', ':']).trim();
    assert_eq!(super::bf16::amd(), vendor == "AuthenticAMD", "vendor_id {vendor}");
    let kernel = Kernel::for_cap(isa());
    let want = kernel == Kernel::Amx || (kernel == Kernel::Dot && vendor == "AuthenticAMD");
    assert_eq!(super::bf16::beats_f32(), want);
}

/// The one case where bf16's widened AVX2 path leaves the definition (see `bf16::widened`): a product
/// below f32's normal range, added unflushed to a sum smaller than 2^-102. Here `x1 w1 = 2^-104` and
/// `x0 w0 = 1.5 * 2^-127`: the definition flushes the second product to zero, the FMA adds it.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_widened_path_differs_only_below_the_normal_range() {
    if !supported(Isa::Avx2) {
        return;
    }
    let (x, w) = ([1.5 * 2f32.powi(-64), 2f32.powi(-52)], [2f32.powi(-63), 2f32.powi(-52)]);
    let weight = WoWeight::Bf16(Bf16Weight::new(&w, 1, 2));
    let want = naive_bf16(&w, &x, 2, None);
    assert_eq!(want, [2f32.powi(-104)]);
    assert_eq!(Kernel::for_cap(Isa::Avx2), Kernel::Widened);
    let got = run(&weight, &x, None, Isa::Avx2);
    assert_eq!(got, [2f32.powi(-104).mul_add(1.0, 1.5 * 2f32.powi(-127))]);
    assert_ne!(got, want);
    // Scaled into the normal range, the same values agree.
    let (x, w) = (x.map(|v| v * 2f32.powi(60)), w);
    let weight = WoWeight::Bf16(Bf16Weight::new(&w, 1, 2));
    assert_eq!(run(&weight, &x, None, Isa::Avx2), naive_bf16(&w, &x, 2, None));
}
