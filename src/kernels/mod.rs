//! CPU kernels as candle custom ops, for f32 on the CPU, where candle's generic ops leave speed on
//! the table. Every caller keeps the plain candle-ops formulation beside them for other devices and
//! dtypes, and tests check each kernel against it.

pub(crate) mod attention;
pub(crate) mod gelu;
pub(crate) mod linear;

use candle_core::{CpuStorage, Layout};

/// The values of a contiguous f32 CPU tensor.
fn f32_input<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("{op}: expects a contiguous f32 tensor"),
    }
}
