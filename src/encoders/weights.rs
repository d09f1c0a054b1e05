//! Reading checkpoints: the v1 `model.safetensors` layout (memory-mapped) and the kompress-v2
//! `merged.pt` torch pickle, both seen through the v1 tensor names (`encoder.*`, `token_head.*`,
//! `span_conv.*`), and any flat PyTorch state dict (`pytorch_model.bin`, as older `transformers`
//! wrote it) under its own names.
//!
//! Every tensor is looked up by name and shape when the model is built, so a missing or misshaped
//! tensor is reported (with both shapes) before any forward pass runs.

use std::collections::HashMap;
use std::path::Path;

use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// The sub-dictionaries of a kompress-v2 `merged.pt` and the v1 prefix each one maps to.
const MERGED_PARTS: [(&str, &str); 3] = [
    ("encoder_state_dict", "encoder."),
    ("token_head_state_dict", "token_head."),
    ("span_conv_state_dict", "span_conv."),
];

enum Store {
    Safetensors(MmapedSafetensors),
    /// A safetensors file read one tensor at a time with plain reads: nothing stays mapped, so a caller
    /// that converts each tensor (int8) holds only what it keeps. Each entry's dtype and byte range.
    #[cfg(unix)]
    SafetensorsRead {
        file: std::fs::File,
        ranges: HashMap<String, (DType, u64, usize)>,
    },
    /// One lazily read state dict per part of `MERGED_PARTS`.
    Pth(Vec<PthTensors>),
    /// Seeded random values of whatever shape is asked for (benchmarks without a download).
    Random {
        seed: u64,
    },
}

/// Where a v1-named tensor lives in the store.
struct Entry {
    shape: Vec<usize>,
    part: usize,
    name: String,
}

/// An opened checkpoint: tensor names and shapes are known up front, data is read on demand.
pub struct Weights {
    store: Store,
    entries: HashMap<String, Entry>,
    path: String,
    device: Device,
}

impl Weights {
    /// Opens `*.safetensors` (memory-mapped), a kompress-v2 `*.pt`/`*.pth` pickle or a flat PyTorch
    /// state dict (`*.bin`, `*.pt`, `*.pth`).
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let fail = |reason: String| Error::Checkpoint { path: shown.clone(), reason };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        let (store, entries) =
            if is_pickle(path) { open_pickle(path) } else { open_safetensors(path) }.map_err(fail)?;
        Ok(Self { store, entries, path: shown, device: device.clone() })
    }

    /// [`open`](Self::open), but a safetensors file is read a tensor at a time instead of memory-mapped.
    /// For a caller that keeps a converted copy of every tensor (`--dtype int8`): with the mapping, every
    /// page of the file would stay resident until loading ends, on top of that copy.
    /// Elsewhere than on Unix (no positioned reads), and for pickles, the same as [`open`](Self::open).
    pub fn open_unmapped(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        #[cfg(unix)]
        if path.is_file() && !is_pickle(path) {
            let shown = path.display().to_string();
            let (store, entries) = read_safetensors_header(path)
                .map_err(|reason| Error::Checkpoint { path: shown.clone(), reason })?;
            return Ok(Self { store, entries, path: shown, device: device.clone() });
        }
        Self::open(path, device)
    }

    /// A model-shaped stand-in for benchmarks: every tensor asked for exists with the asked shape and
    /// seeded random values (LayerNorm weights near 1, other weights with ModernBERT's init scale).
    ///
    /// ```
    /// use kompress::{weights::Weights, Config};
    /// let cfg = Config::from_json(r#"{"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2}"#)?;
    /// let w = Weights::random(7, &candle_core::Device::Cpu);
    /// let encoder = kompress::modernbert::ModernBert::new(&cfg, &w, candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// # Ok::<(), kompress::Error>(())
    /// ```
    pub fn random(seed: u64, device: &Device) -> Self {
        Self {
            store: Store::Random { seed },
            entries: HashMap::new(),
            path: "<random>".into(),
            device: device.clone(),
        }
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether the checkpoint holds a tensor of this (v1) name.
    pub fn contains(&self, name: &str) -> bool {
        matches!(self.store, Store::Random { .. }) || self.entries.contains_key(name)
    }

    /// The stored shape of a tensor, if present.
    pub fn shape_of(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Reads a tensor, checking its shape, converted to `dtype` on the model's device.
    pub fn get(&self, shape: &[usize], name: &str, dtype: DType) -> Result<Tensor> {
        if let Store::Random { seed } = self.store {
            return Ok(random_tensor(seed, shape, name)?.to_dtype(dtype)?.to_device(&self.device)?);
        }
        let entry = self.entries.get(name);
        check_tensor(&self.path, name, shape, entry.map(|e| e.shape.as_slice()))?;
        let entry = entry.expect("checked above");
        let read = match &self.store {
            Store::Safetensors(st) => st.load(&entry.name, &Device::Cpu),
            #[cfg(unix)]
            Store::SafetensorsRead { file, ranges } => read_tensor(file, ranges[&entry.name], &entry.shape),
            Store::Random { .. } => unreachable!("random weights return early"),
            Store::Pth(parts) => parts[entry.part].get(&entry.name).and_then(|t| {
                t.ok_or_else(|| candle_core::Error::Msg(format!("tensor {} vanished", entry.name)))
            }),
        };
        let tensor = read.map_err(|e| Error::Checkpoint {
            path: self.path.clone(),
            reason: format!("tensor `{name}`: {e}"),
        })?;
        Ok(tensor.to_dtype(dtype)?.contiguous()?.to_device(&self.device)?)
    }
}

impl Weights {
    /// Whether [`get_rows`](Self::get_rows) reads only the rows asked for of tensor `name` (f32 in an
    /// unmapped safetensors file); otherwise it reads the whole tensor each time, and a caller should
    /// read it once instead.
    pub fn reads_rows(&self, name: &str) -> bool {
        #[cfg(unix)]
        if let (Store::SafetensorsRead { ranges, .. }, Some(entry)) = (&self.store, self.entries.get(name)) {
            return ranges.get(&entry.name).is_some_and(|r| r.0 == DType::F32);
        }
        let _ = name;
        false
    }

    /// Rows `start..start + n` of a 2-D tensor of shape `shape` (checked as [`get`](Self::get) checks
    /// it), as f32 on the CPU. A file read unmapped ([`open_unmapped`](Self::open_unmapped)) with f32
    /// data gives just those rows' bytes, so that a caller converting a large table block by block
    /// (the int8 embedding rows: mmBERT's 256k x 384 table is 393 MB in f32) never holds all of it;
    /// other stores read the whole tensor and cut it.
    pub fn get_rows(&self, shape: &[usize], name: &str, start: usize, n: usize) -> Result<Tensor> {
        #[cfg(unix)]
        if let (Store::SafetensorsRead { file, ranges }, [rows, width]) = (&self.store, shape) {
            let entry = self.entries.get(name);
            check_tensor(&self.path, name, shape, entry.map(|e| e.shape.as_slice()))?;
            let (dtype, offset, _) = ranges[&entry.expect("checked above").name];
            if dtype == DType::F32 && start + n <= *rows {
                let bytes = (start * width * 4) as u64;
                let range = (dtype, offset + bytes, n * width * 4);
                return read_tensor(file, range, &[n, *width]).map_err(|e| Error::Checkpoint {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}`: {e}"),
                });
            }
        }
        Ok(self.get(shape, name, DType::F32)?.to_device(&Device::Cpu)?.narrow(0, start, n)?)
    }
}

/// Layers `0..n` built by `build`, on the CPU in parallel: each one reads its tensors and lays them
/// out (packing, quantising), which is most of a model's load time (about 0.5 s of CPU for
/// kompress-base in f32) and runs on every core this way. The error reported is the lowest layer's,
/// as when they were built in order.
pub(crate) fn build_layers<L: Send>(
    n: usize,
    device: &Device,
    build: impl Fn(usize) -> Result<L> + Sync,
) -> Result<Vec<L>> {
    use rayon::prelude::*;
    if !device.is_cpu() {
        return (0..n).map(build).collect();
    }
    let built: Vec<Result<L>> = (0..n).into_par_iter().map(&build).collect();
    built.into_iter().collect()
}

/// Whether a checkpoint is a PyTorch pickle (`.pt`, `.pth`, `.bin`) rather than safetensors.
pub(crate) fn is_pickle(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("pt" | "pth" | "bin"))
}

/// Checkpoint `path` holds tensor `name` (of shape `found`, `None` when absent) with shape `expected`.
pub(crate) fn check_tensor(
    path: &str,
    name: &str,
    expected: &[usize],
    found: Option<&[usize]>,
) -> Result<()> {
    let (path, name, expected) = (path.to_string(), name.to_string(), expected.to_vec());
    match found {
        None => Err(Error::MissingTensor { path, name, expected }),
        Some(found) if found != expected => {
            Err(Error::TensorShape { path, name, expected, found: found.to_vec() })
        }
        Some(_) => Ok(()),
    }
}

fn open_safetensors(path: &Path) -> std::result::Result<(Store, HashMap<String, Entry>), String> {
    // SAFETY: the file is mapped read-only; like every mmap-based loader we assume nobody truncates
    // it while the model is being built (tensors are copied out at load time).
    let st = unsafe { MmapedSafetensors::new(path) }.map_err(|e| e.to_string())?;
    let entries = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name.clone(), Entry { shape: view.shape().to_vec(), part: 0, name }))
        .collect();
    Ok((Store::Safetensors(st), entries))
}

#[cfg(unix)]
/// The header of a safetensors file (an 8-byte little-endian length, then JSON giving each tensor's
/// dtype, shape and byte range after the header), read without mapping the file.
fn read_safetensors_header(path: &Path) -> std::result::Result<(Store, HashMap<String, Entry>), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|e| format!("no safetensors header: {e}"))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(format!("safetensors header of {len} bytes"));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|e| format!("truncated safetensors header: {e}"))?;
    let header: safetensors::tensor::Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("safetensors header: {e}"))?;
    let data = file.metadata().map_err(|e| e.to_string())?.len().saturating_sub(8 + len);
    let (mut ranges, mut entries) = (HashMap::new(), HashMap::new());
    for (name, info) in header.tensors() {
        let dtype = DType::try_from(info.dtype).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let (start, end) = info.data_offsets;
        if end < start || end - start != info.shape.iter().product::<usize>() * dtype.size_in_bytes() {
            return Err(format!(
                "safetensors header: tensor `{name}`: {:?} bytes for {:?} {dtype:?}",
                info.data_offsets, info.shape
            ));
        }
        if end as u64 > data {
            return Err(format!(
                "tensor `{name}` ends at byte {end} of {data} bytes of data (a truncated file?)"
            ));
        }
        ranges.insert(name.clone(), (dtype, 8 + len + start as u64, end - start));
        entries.insert(name.clone(), Entry { shape: info.shape.clone(), part: 0, name });
    }
    Ok((Store::SafetensorsRead { file, ranges }, entries))
}

/// One tensor of a [`Store::SafetensorsRead`]: `len` bytes at `offset`, little-endian.
#[cfg(unix)]
fn read_tensor(
    file: &std::fs::File,
    (dtype, offset, len): (DType, u64, usize),
    shape: &[usize],
) -> candle_core::Result<Tensor> {
    use std::os::unix::fs::FileExt;
    // f32 (most checkpoints) is read straight into the tensor's buffer: no second copy.
    if dtype == DType::F32 && cfg!(target_endian = "little") {
        let mut values = vec![0f32; len / 4];
        file.read_exact_at(bytemuck::cast_slice_mut(&mut values), offset)?;
        return Tensor::from_vec(values, shape, &Device::Cpu);
    }
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, offset)?;
    Tensor::from_raw_buffer(&bytes, dtype, shape, &Device::Cpu)
}

/// A kompress-v2 `merged.pt` (a dict of state dicts, [`MERGED_PARTS`]) or a flat state dict.
fn open_pickle(path: &Path) -> std::result::Result<(Store, HashMap<String, Entry>), String> {
    if let Ok(first) = PthTensors::new(path, Some(MERGED_PARTS[0].0)) {
        return open_merged(path, first);
    }
    let dict = PthTensors::new(path, None).map_err(|e| format!("not a PyTorch checkpoint: {e}"))?;
    if dict.tensor_infos().is_empty() {
        return Err("holds no tensors (neither a state dict nor a kompress-v2 merged checkpoint)".into());
    }
    let entries = dict
        .tensor_infos()
        .iter()
        .map(|(name, info)| {
            let entry = Entry { shape: info.layout.shape().dims().to_vec(), part: 0, name: name.clone() };
            (name.clone(), entry)
        })
        .collect();
    Ok((Store::Pth(vec![dict]), entries))
}

/// The parts of a merged checkpoint, the first one (`encoder_state_dict`) already opened.
fn open_merged(
    path: &Path,
    first: PthTensors,
) -> std::result::Result<(Store, HashMap<String, Entry>), String> {
    let mut parts = Vec::new();
    let mut entries = HashMap::new();
    let mut first = Some(first);
    for (key, prefix) in MERGED_PARTS {
        let opened = first.take().map_or_else(|| PthTensors::new(path, Some(key)), Ok);
        let part = match opened {
            Ok(part) => part,
            // A checkpoint without a span head simply has no (or an empty) `span_conv_state_dict`.
            Err(_) if key == "span_conv_state_dict" => continue,
            Err(e) => return Err(format!("not a kompress-v2 merged checkpoint (reading `{key}`: {e})")),
        };
        for (name, info) in part.tensor_infos() {
            let entry =
                Entry { shape: info.layout.shape().dims().to_vec(), part: parts.len(), name: name.clone() };
            entries.insert(format!("{prefix}{name}"), entry);
        }
        parts.push(part);
    }
    Ok((Store::Pth(parts), entries))
}

/// Uniform values with the spread of ModernBERT's init (std 0.02), or near 1 for norm weights (`norm`,
/// `LayerNorm`); the
/// stream depends on the seed and the tensor's name only.
fn random_tensor(seed: u64, shape: &[usize], name: &str) -> candle_core::Result<Tensor> {
    let mut state =
        name.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let (center, half_width) =
        if name.to_lowercase().contains("norm") { (1.0, 0.1) } else { (0.0, 0.02 * 3f32.sqrt()) };
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            // xorshift64*: fast, and plenty for benchmark weights.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let unit = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
            center + half_width * (2.0 * unit - 1.0)
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_come_in_order_and_the_lowest_error_wins() {
        let built = build_layers(9, &Device::Cpu, |i| Ok(i * 10)).unwrap();
        assert_eq!(built, (0..9).map(|i| i * 10).collect::<Vec<_>>());
        for _ in 0..20 {
            let err = build_layers(9, &Device::Cpu, |i| match i {
                3 | 7 => Err(Error::Invalid(format!("layer {i}"))),
                _ => Ok(i),
            });
            assert_eq!(err.unwrap_err().to_string(), Error::Invalid("layer 3".into()).to_string());
        }
    }
}
