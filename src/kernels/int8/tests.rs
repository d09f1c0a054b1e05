use candle_core::{Device, Tensor};

use super::*;
use crate::kernels::isa::supported;

fn randn(n: usize) -> Vec<f32> {
    Tensor::randn(0f32, 1.0, n, &Device::Cpu).unwrap().to_vec1().unwrap()
}

/// The quantised product computed naively: i64 sums of the quantised values, then the dequantising
/// expression of [`dequantise`].
fn naive(w: &[f32], x: &[f32], inner: usize, residual: Option<&[f32]>) -> Vec<f32> {
    let quantise = |m: &[f32]| -> Vec<(Vec<i64>, f32)> {
        m.chunks(inner)
            .map(|row| {
                let mut q = vec![0u8; inner];
                let s = quantise_row(row, &mut q, 0);
                (q.iter().map(|&v| i64::from(v as i8)).collect(), s)
            })
            .collect()
    };
    let (qw, qx) = (quantise(w), quantise(x));
    let out = qw.len();
    qx.iter()
        .enumerate()
        .flat_map(|(r, (xr, sx))| {
            qw.iter().enumerate().map(move |(o, (wr, sw))| {
                let acc: i64 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
                let v = acc as i32 as f32 * (sx * sw);
                residual.map_or(v, |res| res[r * out + o] + v)
            })
        })
        .collect()
}

fn run(weight: &Int8Weight, x: &[f32], residual: Option<&[f32]>, isa: Isa) -> Vec<f32> {
    product(weight, x, residual.map(<[f32]>::to_vec), isa, Planes::ONE)
}

fn paths() -> impl Iterator<Item = Isa> {
    Isa::ALL.into_iter().filter(|&i| supported(i))
}

/// Every path the CPU has gives the portable path's bits, and the portable path the naive product's,
/// with and without a residual, on shapes ragged in every direction (rows not a multiple of any tile
/// or of the row block, columns not of the panel, `in` not of the group).
#[test]
fn every_path_equals_the_naive_product_bit_for_bit() {
    for (rows, inner, out) in [(1, 7, 5), (37, 50, 130), (135, 64, 17), (260, 33, 64), (13, 768, 40)] {
        let (x, w) = (randn(rows * inner), randn(out * inner));
        let weight = Int8Weight::new(&w, out, inner);
        let residual = randn(rows * out);
        for residual in [None, Some(residual.as_slice())] {
            let want = naive(&w, &x, inner, residual);
            for isa in paths() {
                let got = run(&weight, &x, residual, isa);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{rows}x{inner}x{out} on {isa:?}");
            }
        }
    }
}

/// Zero rows give zeros (no NaN from a zero scale), a row with one huge value keeps the rest at 0, and
/// rows and weights at +-127 everywhere with equal signs (the largest pair sums the AVX2 path forms,
/// 2 * 127 * 127) give the exact `127 * 127 * in`.
#[test]
fn extremes_are_exact() {
    let (rows, inner, out) = (6, 100, 35);
    let signs: Vec<f32> = (0..inner).map(|k| if k % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let mut x = vec![0f32; rows * inner];
    x[inner..2 * inner].copy_from_slice(&signs);
    x[2 * inner..3 * inner].iter_mut().zip(&signs).for_each(|(x, s)| *x = -s * 1e30);
    x[3 * inner + 5] = 1e30;
    x[3 * inner + 6] = 1.0;
    let w: Vec<f32> = (0..out).flat_map(|o| signs.iter().map(move |s| s * (o + 1) as f32)).collect();
    let weight = Int8Weight::new(&w, out, inner);
    let want = naive(&w, &x, inner, None);
    for isa in paths() {
        let got = run(&weight, &x, None, isa);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{isa:?} at {i}: {g} != {w}");
        }
        for o in 0..out {
            let sw = (o + 1) as f32 / 127.0;
            assert_eq!(got[o], 0.0, "zero row, {isa:?}");
            assert_eq!(got[out + o], (127 * 127 * inner) as f32 * (1.0 / 127.0 * sw), "{isa:?}");
            assert_eq!(got[2 * out + o], -((127 * 127 * inner) as f32) * (1e30 / 127.0 * sw), "{isa:?}");
        }
        // The huge value's row: only its column survives quantisation (1.0 rounds to 0).
        assert_eq!(got[3 * out], 127.0 * 127.0 * (1e30 / 127.0 * (1.0 / 127.0)), "{isa:?}");
        assert!(got.iter().all(|v| v.is_finite()), "{isa:?}");
    }
}

/// Round half to even, the row's largest magnitude at exactly +-127, zeros for a zero row, and the
/// unsigned form `q + 128` under `flip`.
#[test]
fn the_quantiser_rounds_half_to_even() {
    let src = [127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 63.5, -126.5, 3.2];
    let mut q = [0u8; 9];
    assert_eq!(quantise_row(&src, &mut q, 0), 1.0);
    assert_eq!(q.map(|v| v as i8), [127, 0, 2, 2, 0, -2, 64, -126, 3]);
    let mut q = [0u8; 3];
    assert_eq!(quantise_row(&[-3.0, 1.0, 1.5], &mut q, 0), 3.0 / 127.0);
    assert_eq!(q.map(|v| v as i8), [-127, 42, 64]);
    quantise_row(&[-3.0, 1.0, 1.5], &mut q, 0x80);
    assert_eq!(q, [1, 170, 192]);
    let mut q = [9u8; 4];
    assert_eq!(quantise_row(&[0.0, -0.0, 0.0, 0.0], &mut q, 0), 0.0);
    assert_eq!(q, [0; 4]);
}

/// The packing puts `w[o][k]` at panel `o / 32`, group row `k / 4`, lane `o % 32`, byte `k % 4`, pads
/// each panel to a whole k block of zeros, and the offsets are `128 * colsum`.
#[test]
fn the_packing_and_offsets() {
    let (out, inner) = (33, 6);
    let groups = K_BLOCK / GROUP;
    let w: Vec<f32> = (0..out * inner).map(|i| (i % 7) as f32 - 3.0).collect();
    let weight = Int8Weight::new(&w, out, inner);
    assert_eq!(weight.data.len(), 2 * groups * GROUP_BYTES);
    let at = |o: usize, k: usize| {
        (o / PANEL) * groups * GROUP_BYTES + (k / GROUP) * GROUP_BYTES + (o % PANEL) * GROUP + k % GROUP
    };
    let mut real = vec![false; weight.data.len()];
    for o in 0..out {
        let row = &w[o * inner..(o + 1) * inner];
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (k, v) in row.iter().enumerate() {
            assert_eq!(f32::from(weight.data[at(o, k)]), (v * (127.0 / amax)).round_ties_even());
            real[at(o, k)] = true;
        }
        let sum: i32 = (0..inner).map(|k| i32::from(weight.data[at(o, k)])).sum();
        assert_eq!(weight.offsets[o], 128 * sum);
    }
    let mut padding = weight.data.iter().zip(&real).filter(|(_, &r)| !r);
    assert!(padding.clone().count() > 0 && padding.all(|(&v, _)| v == 0), "padding");
}
