//! Reading checkpoints: the v1 `model.safetensors` layout (memory-mapped) and the kompress-v2
//! `merged.pt` torch pickle, both seen through the v1 tensor names (`encoder.*`, `token_head.*`,
//! `span_conv.*`).
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
    /// One lazily read state dict per part of `MERGED_PARTS`.
    Pth(Vec<PthTensors>),
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
    /// Opens `*.safetensors` (memory-mapped) or a kompress-v2 `*.pt`/`*.pth` pickle.
    pub fn open(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let fail = |reason: String| Error::Checkpoint { path: shown.clone(), reason };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        let is_pickle = matches!(path.extension().and_then(|e| e.to_str()), Some("pt" | "pth" | "bin"));
        let (store, entries) =
            if is_pickle { open_merged(path) } else { open_safetensors(path) }.map_err(fail)?;
        Ok(Self { store, entries, path: shown, device: device.clone() })
    }

    /// The checkpoint's path, as given.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the checkpoint holds a tensor of this (v1) name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The stored shape of a tensor, if present.
    pub fn shape_of(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Reads a tensor, checking its shape, converted to `dtype` on the model's device.
    pub fn get(&self, shape: &[usize], name: &str, dtype: DType) -> Result<Tensor> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            name: name.into(),
            expected: shape.to_vec(),
        })?;
        if entry.shape != shape {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: name.into(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        let read = match &self.store {
            Store::Safetensors(st) => st.load(&entry.name, &Device::Cpu),
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

fn open_merged(path: &Path) -> std::result::Result<(Store, HashMap<String, Entry>), String> {
    let mut parts = Vec::new();
    let mut entries = HashMap::new();
    for (key, prefix) in MERGED_PARTS {
        let part = match PthTensors::new(path, Some(key)) {
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
