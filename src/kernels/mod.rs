//! CPU kernels as candle custom ops, for f32 on the CPU, where candle's generic ops leave speed on
//! the table. Every caller keeps the plain candle-ops formulation beside them for other devices and
//! dtypes, and tests check each kernel against it.

/// Defines `fn $name(isa: Isa, args..) -> ret` running `$body(args..)` compiled for the widest
/// vectors `isa` allows on this CPU (AVX-512, AVX2 with FMA, else the build's baseline, which on
/// x86_64 is SSE2: 4 lanes). `$body` must be `#[inline(always)]` so that each version compiles its own
/// copy. Every version gives the same bits: they run the same f32 operations in the same order (Rust
/// never fuses a multiply and an add by itself), only more lanes at a time.
macro_rules! wide {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $body:path) => {
        $(#[$meta])*
        $vis fn $name(isa: $crate::kernels::isa::Isa, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::isa::{detected, Isa};
                #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                // SAFETY: capped at what the CPU has, whatever the caller asked for.
                match isa.min(detected()) {
                    Isa::Avx512 | Isa::Avx512Vnni | Isa::Amx => return unsafe { avx512($($arg),*) },
                    Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2($($arg),*) },
                    Isa::Portable | Isa::NeonDot => {}
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = isa;
            $body($($arg),*)
        }
    };
}

/// The candle ops of a linear layer whose weight the op holds, given its `run(x, residual)`: a
/// [`candle_core::CustomOp1`] on `x` (named `$name`) and a [`candle_core::CustomOp2`] on `(x, residual)`
/// that adds the product to the residual as it is stored (`$name-residual`). `$label` names the op in
/// errors.
macro_rules! held_weight_ops {
    ($ty:ty, $name:literal, $label:literal) => {
        impl candle_core::CustomOp1 for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                s: &candle_core::CpuStorage,
                l: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                self.run((s, l), None)
            }
        }

        impl candle_core::CustomOp2 for $ty {
            fn name(&self) -> &'static str {
                concat!($name, "-residual")
            }

            fn cpu_fwd(
                &self,
                x_s: &candle_core::CpuStorage,
                x_l: &candle_core::Layout,
                r_s: &candle_core::CpuStorage,
                r_l: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                let residual = $crate::kernels::f32_input(r_s, r_l, concat!($label, " residual"))?.to_vec();
                self.run((x_s, x_l), Some(residual))
            }
        }
    };
}

pub(crate) mod attention;
pub(crate) mod bias;
pub(crate) mod gelu;
pub(crate) mod int8;
pub(crate) mod isa;
pub(crate) mod linear;
pub(crate) mod weight_only;

use candle_core::{CpuStorage, Layout};

/// The values of a contiguous f32 CPU tensor.
fn f32_input<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{op}: expects a contiguous f32 tensor"),
    }
}

/// How a product's `rows x cols` output is laid out: `planes` equal planes `[planes, rows, cols /
/// planes]` (1: plain row-major). Attention's QKV projection writes q, k and v as three planes, so
/// that they need no split into a copy (75 MB at 8192 tokens). A plane must hold whole panels of
/// `panel` columns, which the kernels write as a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planes {
    pub count: usize,
}

impl Planes {
    pub(crate) const ONE: Planes = Planes { count: 1 };

    /// Whether `cols` columns cut into these planes, each of whole panels.
    fn fit(self, cols: usize, panel: usize) -> bool {
        self.count == 1
            || (self.count > 1
                && cols.is_multiple_of(self.count)
                && (cols / self.count).is_multiple_of(panel))
    }

    /// The offset of output element (`row`, `col`) and the distance between its rows.
    fn place(self, rows: usize, cols: usize, row: usize, col: usize) -> (usize, usize) {
        let width = cols / self.count;
        ((col / width) * rows * width + row * width + col % width, width)
    }

    /// The output's shape.
    fn shape(self, rows: usize, cols: usize) -> candle_core::Shape {
        match self.count {
            1 => (rows, cols).into(),
            n => (n, rows, cols / n).into(),
        }
    }
}

/// An output buffer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the kernels give every task its own rows or columns of the buffer.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// A method, so that closures capture the whole (Send) wrapper rather than its raw field.
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}
