//! Parameters, the store that names them, the builder that creates them, and loading a
//! checkpoint into them (strict by default, as `load_state_dict`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ember_core::quant::QFormat;
use ember_core::{DType, Device, Error, Generator, Result, Tensor};

pub use crate::param::{Init, Param, QuantizedWeight, WeightRole};
use crate::source::{PlanLimits, WeightSource};
use ember_weights::{Checkpoint, save_safetensors};

/// What [`VarStore::load`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Parameters the checkpoint lacks (they keep their initial values).
    pub missing: Vec<String>,
    /// Checkpoint tensors no parameter asked for (ignored patterns excluded).
    pub unexpected: Vec<String>,
    /// `(name, checkpoint shape, parameter shape)` for shapes that differ.
    pub mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Parameters loaded.
    pub loaded: usize,
}

impl LoadReport {
    /// True when every parameter loaded and nothing was left over.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

/// Options of [`VarStore::load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Refuse (with one error listing every problem) unless the report is clean.
    pub strict: bool,
    /// Checkpoint names to ignore: exact names, or patterns with `*` (e.g. `*.attn.bias`,
    /// `embeddings.position_ids`).
    pub ignore: Vec<String>,
    /// Rename checkpoint keys before matching: strip this prefix when present (e.g. `bert.`).
    pub strip_prefix: Option<String>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: true,
            ignore: Vec::new(),
            strip_prefix: None,
        }
    }
}

/// `*` matches any run of characters.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

/// Where a store's new parameters come from.
enum Mode {
    /// Drawn by their initializers from the store's generator.
    Init,
    /// Recorded (name, shape, bytes) against limits and, when planning a load, checked
    /// against the source's index as each is created; each parameter is a one-element
    /// placeholder broadcast to its shape, so nothing of its size is allocated.
    Plan {
        limits: PlanLimits,
        bytes: u128,
        expect: Option<Expected>,
        /// The one-element tensor every placeholder is a view of.
        one: Option<Tensor>,
    },
    /// Read from a source, each name and shape checked before the read.
    Load(Box<dyn WeightSource>),
}

/// A source's index and description, for a plan to check each parameter against.
struct Expected {
    index: BTreeMap<String, Vec<usize>>,
    what: String,
}

/// Owns every parameter of a model by name, its default device and dtype, the generator for
/// initialization, and the train/eval flag.
pub struct VarStore {
    params: RwLock<BTreeMap<String, Param>>,
    device: Device,
    dtype: DType,
    training: Arc<AtomicBool>,
    rng: Mutex<Generator>,
    mode: Mutex<Mode>,
}

impl VarStore {
    /// An empty store creating parameters of `dtype` on `device` (init seed 0).
    pub fn new(device: Device, dtype: DType) -> VarStore {
        VarStore::with_seed(device, dtype, 0)
    }

    /// An empty store whose initializers draw from a generator seeded with `seed`.
    pub fn with_seed(device: Device, dtype: DType, seed: u64) -> VarStore {
        VarStore::with_mode(device, dtype, seed, Mode::Init)
    }

    fn with_mode(device: Device, dtype: DType, seed: u64, mode: Mode) -> VarStore {
        VarStore {
            params: RwLock::new(BTreeMap::new()),
            device,
            dtype,
            training: Arc::new(AtomicBool::new(true)),
            rng: Mutex::new(Generator::new(seed)),
            mode: Mutex::new(mode),
        }
    }

    /// A new empty store on this store's device whose train/eval mode is this store's (one
    /// switch for both): adapters and other add-ons beside a model.
    pub fn beside(&self, dtype: DType, seed: u64) -> VarStore {
        let store = VarStore::with_seed(self.device, dtype, seed);
        VarStore {
            training: self.training.clone(),
            ..store
        }
    }

    /// A planning store: building a model on it records every parameter's name and shape and
    /// their total bytes, stopping with an error past `limits`, and allocates nothing (each
    /// parameter is a one-element placeholder broadcast to its shape). See
    /// [`crate::build_from`].
    pub fn plan(dtype: DType, limits: PlanLimits) -> VarStore {
        let mode = Mode::Plan {
            limits,
            bytes: 0,
            expect: None,
            one: None,
        };
        VarStore::with_mode(Device::Cpu, dtype, 0, mode)
    }

    /// A planning store that also checks each parameter's name and shape against `source`
    /// as it is created, so the first one the source does not hold is the error (before a
    /// model with a hostile config creates the rest).
    pub fn plan_for(dtype: DType, limits: PlanLimits, source: &dyn WeightSource) -> VarStore {
        let expect = Expected {
            index: source.index().into_iter().collect(),
            what: source.describe(),
        };
        let mode = Mode::Plan {
            limits,
            bytes: 0,
            expect: Some(expect),
            one: None,
        };
        VarStore::with_mode(Device::Cpu, dtype, 0, mode)
    }

    /// A store whose parameters are read from `source` as a model creates them, each name and
    /// shape checked against the source first; call [`VarStore::finish_load`] when the model
    /// is built. Parameters created afterwards are initialized as usual.
    pub fn from_source(device: Device, dtype: DType, source: Box<dyn WeightSource>) -> VarStore {
        VarStore::with_mode(device, dtype, 0, Mode::Load(source))
    }

    /// Checks, after a model was planned against `source` (each parameter's name and shape
    /// were checked as it was created), that nothing in the source is left untaken but what
    /// it ignores.
    pub fn check_plan(&self, source: &dyn WeightSource) -> Result<()> {
        check_all_taken(source, &self.names())
    }

    /// Ends loading from a source: checks that every tensor it offers was taken (but what it
    /// ignores), releases it, and returns the store to initializing new parameters.
    pub fn finish_load(&self) -> Result<()> {
        let mut mode = self.mode.lock().unwrap_or_else(|e| e.into_inner());
        if let Mode::Load(source) = &*mode {
            check_all_taken(source.as_ref(), &self.names())?;
        }
        *mode = Mode::Init;
        Ok(())
    }

    /// Bytes a planning store's parameters would take (0 for other stores).
    pub fn planned_bytes(&self) -> u128 {
        match &*self.mode.lock().unwrap_or_else(|e| e.into_inner()) {
            Mode::Plan { bytes, .. } => *bytes,
            _ => 0,
        }
    }

    /// The device new parameters live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The dtype of new parameters.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Every parameter, sorted by name.
    pub fn named_parameters(&self) -> Vec<(String, Param)> {
        let p = self.params.read().unwrap_or_else(|e| e.into_inner());
        p.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The parameters that currently receive gradients.
    pub fn trainable_parameters(&self) -> Vec<Param> {
        self.named_parameters()
            .into_iter()
            .map(|(_, p)| p)
            .filter(Param::is_trainable)
            .collect()
    }

    /// Parameter names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.named_parameters()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// A parameter by name.
    pub fn get(&self, name: &str) -> Option<Param> {
        self.params
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> usize {
        self.named_parameters()
            .iter()
            .map(|(_, p)| p.dims().iter().product::<usize>())
            .sum()
    }

    /// Freezes every parameter whose name matches `pattern` (`*` wildcards); returns how many.
    pub fn freeze(&self, pattern: &str) -> Result<usize> {
        self.set_trainable(pattern, false)
    }

    /// Unfreezes every parameter whose name matches `pattern`; returns how many.
    pub fn unfreeze(&self, pattern: &str) -> Result<usize> {
        self.set_trainable(pattern, true)
    }

    fn set_trainable(&self, pattern: &str, on: bool) -> Result<usize> {
        let mut n = 0;
        for (name, p) in self.named_parameters() {
            if glob(pattern, &name) {
                p.set_trainable(on)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Training mode (dropout active), as `model.train()`.
    pub fn train(&self) {
        self.training.store(true, Ordering::Relaxed);
    }

    /// Evaluation mode (dropout off), as `model.eval()`.
    pub fn eval(&self) {
        self.training.store(false, Ordering::Relaxed);
    }

    /// Quantizes every matrix that a layer marked as a weight ([`WeightRole`]: linear and
    /// `Conv1D` weights, embedding tables) to `format`, in place: layers then multiply the
    /// blocks ([`Tensor::linear_q`]) and look rows up from them; the quantized parameters are
    /// frozen. Matrices whose rows are not whole blocks stay dense. Returns the names of the
    /// parameters quantized.
    pub fn quantize(&self, format: QFormat) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (name, p) in self.named_parameters() {
            if p.quantized().is_none() && p.quantize(format)? {
                done.push(name);
            }
        }
        Ok(done)
    }

    /// Bytes the parameters take: blocks for quantized ones, dense bytes for the others.
    pub fn nbytes(&self) -> usize {
        self.named_parameters()
            .iter()
            .map(|(_, p)| match p.quantized() {
                Some(q) => q.q.nbytes(),
                None => p.dims().iter().product::<usize>() * p.dtype().size_in_bytes(),
            })
            .sum()
    }

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    pub(crate) fn training_flag(&self) -> Arc<AtomicBool> {
        self.training.clone()
    }

    pub(crate) fn create(
        &self,
        name: String,
        shape: &[usize],
        init: Init,
        share: bool,
    ) -> Result<Param> {
        let mut params = self.params.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = params.get(&name) {
            if !share {
                return Err(Error::data(
                    "VarBuilder::get",
                    format!(
                        "{name} already exists: two layers under one name would share their \
                         weights (use another name, or VarBuilder::get_shared to share on purpose)"
                    ),
                ));
            }
            if p.dims() != shape {
                return Err(Error::shape(
                    "VarBuilder::get",
                    &[&p.dims(), shape],
                    format!(
                        "{name} exists with shape {:?}, asked for {shape:?}",
                        p.dims()
                    ),
                ));
            }
            return Ok(p.clone());
        }
        let value = match &mut *self.mode.lock().unwrap_or_else(|e| e.into_inner()) {
            Mode::Init => {
                let mut g = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                init.make(shape, self.dtype, self.device, &mut g)?
            }
            Mode::Plan {
                limits,
                bytes,
                expect,
                one,
            } => {
                if let Some(e) = expect {
                    check_entry(&|| e.what.clone(), e.index.get(&name), &name, shape)?;
                }
                plan_one(&name, shape, self.dtype, params.len(), limits, bytes)?;
                let one = match one {
                    Some(t) => t.clone(),
                    None => one
                        .insert(Tensor::zeros(&[1], self.dtype, Device::Cpu)?)
                        .clone(),
                };
                match shape.is_empty() {
                    true => one.reshape_to(&[])?,
                    false => one.broadcast_to(shape)?,
                }
            }
            Mode::Load(source) => {
                let found = source.shape(&name);
                check_entry(&|| source.describe(), found.as_ref(), &name, shape)?;
                if let Some(q) = source.load_quantized(&name)? {
                    let [r, c] = [q.q.dims()[0], q.q.dims()[1]];
                    let qshape = if q.transposed { [c, r] } else { [r, c] };
                    if qshape != shape {
                        return Err(Error::internal(
                            "load",
                            format!("{name}: read {qshape:?} blocks for an index shape {shape:?}"),
                        ));
                    }
                    q.q.prepare();
                    let p = Param::new_quantized(name.clone(), q, shape, self.dtype, self.device)?;
                    params.insert(name, p.clone());
                    return Ok(p);
                }
                let t = source.load(&name, self.device, self.dtype)?;
                if t.dims() != shape {
                    return Err(Error::internal(
                        "load",
                        format!("{name}: read {:?} for an index shape {shape:?}", t.dims()),
                    ));
                }
                t
            }
        };
        let p = Param::new(name.clone(), value)?;
        params.insert(name, p.clone());
        Ok(p)
    }

    /// Copies a checkpoint's tensors into the parameters of the same names (converted to each
    /// parameter's dtype and device), as `load_state_dict`. Strict by default: one error lists
    /// every missing key, unexpected key and shape mismatch.
    pub fn load(&self, ckpt: &Checkpoint, opts: &LoadOptions) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        let mut by_key: BTreeMap<String, String> = BTreeMap::new(); // param-space name -> ckpt name
        for raw in ckpt.names() {
            let key = match &opts.strip_prefix {
                Some(p) => raw.strip_prefix(p.as_str()).unwrap_or(raw),
                None => raw,
            };
            by_key.insert(key.to_string(), raw.to_string());
        }
        let mut to_load = Vec::new();
        for (name, p) in self.named_parameters() {
            let Some(raw) = by_key.remove(&name) else {
                report.missing.push(name);
                continue;
            };
            let shape = ckpt.shape(&raw).unwrap_or(&[]).to_vec();
            let cur = p.dims();
            if shape != cur {
                report.mismatched.push((name, shape, cur));
                continue;
            }
            to_load.push((p, raw));
        }
        report.unexpected = by_key
            .into_keys()
            .filter(|k| !opts.ignore.iter().any(|pat| glob(pat, k)))
            .collect();
        if opts.strict && !report.is_clean() {
            let mut msg = String::from("checkpoint does not match the model:");
            for m in &report.missing {
                msg.push_str(&format!("\n  missing: {m}"));
            }
            for u in &report.unexpected {
                msg.push_str(&format!("\n  unexpected: {u}"));
            }
            for (n, a, b) in &report.mismatched {
                msg.push_str(&format!(
                    "\n  shape mismatch: {n}: checkpoint {a:?}, model {b:?}"
                ));
            }
            return Err(Error::Data { op: "load", msg });
        }
        // Nothing is changed unless the whole load is accepted.
        for (p, raw) in to_load {
            let cur = p.tensor();
            p.set(&ckpt.load(&raw, cur.device(), Some(cur.dtype()))?)?;
            report.loaded += 1;
        }
        Ok(report)
    }

    /// Saves every parameter (HF names) to a safetensors file, atomically.
    pub fn save(&self, path: &Path, dtype: Option<DType>) -> Result<()> {
        let params = self.named_parameters();
        let values: Vec<(String, Tensor)> = params
            .iter()
            .map(|(n, p)| (n.clone(), p.tensor()))
            .collect();
        let refs: Vec<(&str, &Tensor)> = values.iter().map(|(n, t)| (n.as_str(), t)).collect();
        save_safetensors(path, &refs, dtype, None)
    }
}

/// The first tensor of `source` that is neither among `taken` nor ignored, as an error.
fn check_all_taken(source: &dyn WeightSource, taken: &[String]) -> Result<()> {
    let taken: std::collections::BTreeSet<&str> = taken.iter().map(String::as_str).collect();
    match source
        .index()
        .into_iter()
        .find(|(k, _)| !taken.contains(k.as_str()) && !source.ignored(k))
    {
        Some((extra, _)) => Err(Error::data(
            "load",
            format!(
                "{}: tensor {extra} belongs to no parameter of the model its configuration \
                 describes",
                source.describe()
            ),
        )),
        None => Ok(()),
    }
}

/// `name` as the source holds it (`found`) against the shape the model asks for; `source`
/// describes the source, for the error only.
fn check_entry(
    source: &dyn Fn() -> String,
    found: Option<&Vec<usize>>,
    name: &str,
    want: &[usize],
) -> Result<()> {
    match found {
        None => Err(Error::data(
            "load",
            format!(
                "{}: has no tensor {name} (the model's configuration implies one of shape \
                 {want:?})",
                source()
            ),
        )),
        Some(have) if have.as_slice() != want => Err(Error::shape(
            "load",
            &[have, want],
            format!(
                "{}: tensor {name} has shape {have:?}, the model's configuration implies \
                 {want:?}",
                source()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Records one parameter in a planning store, checked against its limits.
fn plan_one(
    name: &str,
    shape: &[usize],
    dtype: DType,
    count: usize,
    limits: &PlanLimits,
    total: &mut u128,
) -> Result<()> {
    if count >= limits.max_params {
        return Err(Error::data(
            "load",
            format!(
                "the configuration implies more than {} parameter tensors ({name} is one too \
                 many)",
                limits.max_params
            ),
        ));
    }
    if shape.contains(&0) {
        return Err(Error::shape(
            "VarBuilder::get",
            &[shape],
            format!("{name}: shape {shape:?} has a zero-sized dimension"),
        ));
    }
    let bytes = shape
        .iter()
        .try_fold(dtype.size_in_bytes() as u128, |acc, &d| {
            acc.checked_mul(d as u128)
        })
        .and_then(|b| b.checked_add(*total));
    match bytes {
        Some(b) if b <= limits.max_bytes => *total = b,
        _ => {
            return Err(Error::TooLarge {
                op: "load",
                what: format!("the parameters up to {name} (shape {shape:?}, {dtype})"),
                bytes,
                device: Device::Cpu,
                available: limits.max_bytes,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globbing() {
        assert!(glob("*.bias", "layer.0.bias"));
        assert!(glob("embeddings.position_ids", "embeddings.position_ids"));
        assert!(glob("h.*.attn.bias", "h.11.attn.bias"));
        assert!(!glob("*.bias", "layer.weight"));
        assert!(glob("*", "anything"));
    }
}
