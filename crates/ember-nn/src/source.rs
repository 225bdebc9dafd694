//! Where a model's parameters come from when it is built from a file: a [`WeightSource`]
//! offers named tensors with their shapes, and a store built on it ([`VarStore::from_source`])
//! checks each parameter's name and shape against the source before reading it, so nothing is
//! initialized only to be overwritten and no size from a config is trusted.
//!
//! [`build_from`] builds a model twice over: first on a planning store, which allocates
//! nothing and checks every name, shape and the total bytes against the source (naming the
//! first disagreeing tensor); then for real, each parameter read from the source as the model
//! creates it.

use std::collections::BTreeMap;

use ember_core::memory;
use ember_core::{DType, Device, Error, Result, Tensor};
use ember_weights::Checkpoint;

use crate::store::{LoadOptions, QuantizedWeight, VarStore, glob};

/// Named tensors a model can be built from, in the model's own parameter names.
pub trait WeightSource: Send + Sync {
    /// Every tensor offered, with its shape.
    fn index(&self) -> Vec<(String, Vec<usize>)>;
    /// The shape of one tensor of the index.
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.index()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
    /// Reads one tensor of the index, converted to `dtype` on `device`.
    fn load(&self, name: &str, device: Device, dtype: DType) -> Result<Tensor>;
    /// One tensor of the index kept in its block format, for a source that keeps them so
    /// (`None`: read it with [`WeightSource::load`]).
    fn load_quantized(&self, name: &str) -> Result<Option<QuantizedWeight>> {
        let _ = name;
        Ok(None)
    }
    /// True for tensors of the index that no parameter needs to take (buffers, a tied head).
    fn ignored(&self, name: &str) -> bool {
        let _ = name;
        false
    }
    /// The file(s) the tensors come from, for messages.
    fn describe(&self) -> String;
}

/// A safetensors checkpoint (single or sharded) as a [`WeightSource`], renamed and filtered as
/// [`LoadOptions`] says (`strip_prefix`, `ignore`).
pub struct CheckpointSource {
    ckpt: Checkpoint,
    /// Model name → checkpoint name.
    names: BTreeMap<String, String>,
    ignore: Vec<String>,
    what: String,
}

impl CheckpointSource {
    /// The checkpoint's tensors under the model's names.
    pub fn new(ckpt: Checkpoint, opts: &LoadOptions, what: impl Into<String>) -> CheckpointSource {
        let names = ckpt
            .names()
            .into_iter()
            .map(|raw| {
                let key = match &opts.strip_prefix {
                    Some(p) => raw.strip_prefix(p.as_str()).unwrap_or(raw),
                    None => raw,
                };
                (key.to_string(), raw.to_string())
            })
            .collect();
        CheckpointSource {
            ckpt,
            names,
            ignore: opts.ignore.clone(),
            what: what.into(),
        }
    }
}

impl WeightSource for CheckpointSource {
    fn index(&self) -> Vec<(String, Vec<usize>)> {
        self.names
            .iter()
            .map(|(k, raw)| (k.clone(), self.ckpt.shape(raw).unwrap_or(&[]).to_vec()))
            .collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let raw = self.names.get(name)?;
        Some(self.ckpt.shape(raw)?.to_vec())
    }

    fn load(&self, name: &str, device: Device, dtype: DType) -> Result<Tensor> {
        let raw = self.names.get(name).ok_or_else(|| {
            Error::internal(
                "CheckpointSource::load",
                format!("{name} is not in the index"),
            )
        })?;
        self.ckpt.load(raw, device, Some(dtype))
    }

    fn ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|p| glob(p, name))
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// How much a planning store may take before it stops with an error: the bounds that come
/// from what a source actually holds, or from the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanLimits {
    /// Parameter tensors.
    pub max_params: usize,
    /// Bytes of all parameters together.
    pub max_bytes: u128,
}

impl PlanLimits {
    /// Limits for a model built from `source` in `dtype` on `device`: as many tensors as the
    /// source holds, no more bytes than they take in `dtype`, and no more than the device has.
    pub fn of_source(
        source: &dyn WeightSource,
        dtype: DType,
        device: Device,
    ) -> Result<PlanLimits> {
        let index = source.index();
        let mut bytes: u128 = 0;
        for (_, shape) in &index {
            let b = shape
                .iter()
                .try_fold(dtype.size_in_bytes() as u128, |acc, &d| {
                    acc.checked_mul(d as u128)
                });
            bytes = b
                .and_then(|b| bytes.checked_add(b))
                .ok_or_else(|| Error::TooLarge {
                    op: "load",
                    what: format!("the tensors of {}", source.describe()),
                    bytes: None,
                    device,
                    available: memory::available(device),
                })?;
        }
        let what = || {
            format!(
                "the {} tensors of {} in {dtype}",
                index.len(),
                source.describe()
            )
        };
        memory::check_bytes("load", Some(bytes), device, what)?;
        Ok(PlanLimits {
            max_params: index.len(),
            max_bytes: bytes,
        })
    }

    /// Limits for a randomly initialized model of `dtype` on `device`: what fits in memory.
    pub fn of_memory(device: Device) -> PlanLimits {
        PlanLimits {
            max_params: 1 << 16,
            max_bytes: memory::available(device),
        }
    }
}

/// Builds a model with `build` from `source`: planned first on a store that allocates nothing
/// (every name, shape and the total size checked against the source, the first disagreement
/// named), then for real, every parameter read from the source as it is created and none left
/// over. `store_of` gives the model's store.
pub fn build_from<M>(
    source: Box<dyn WeightSource>,
    device: Device,
    dtype: DType,
    build: impl Fn(VarStore) -> Result<M>,
    store_of: impl Fn(&M) -> &VarStore,
) -> Result<M> {
    let limits = PlanLimits::of_source(source.as_ref(), dtype, device)?;
    {
        let planned = build(VarStore::plan_for(dtype, limits, source.as_ref()))?;
        store_of(&planned).check_plan(source.as_ref())?;
    }
    let model = build(VarStore::from_source(device, dtype, source))?;
    store_of(&model).finish_load()?;
    Ok(model)
}

/// Builds a randomly initialized model with `build`: planned first (nothing allocated; the
/// total size checked against the device's memory), then for real from `store`.
pub fn build_checked<M>(store: VarStore, build: impl Fn(VarStore) -> Result<M>) -> Result<M> {
    let limits = PlanLimits::of_memory(store.device());
    build(VarStore::plan(store.dtype(), limits))?;
    build(store)
}
