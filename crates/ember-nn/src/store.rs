//! Parameters, the store that names them, the builder that creates them, and loading a
//! checkpoint into them (strict by default, as `load_state_dict`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ember_core::{DType, Device, Error, Generator, Result, Tensor};
use ember_weights::{Checkpoint, save_safetensors};

/// How a new parameter is initialized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// A constant.
    Const(f64),
    /// Normal with mean and standard deviation.
    Normal {
        /// mean
        mean: f64,
        /// standard deviation
        std: f64,
    },
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// lower bound
        lo: f64,
        /// upper bound
        hi: f64,
    },
    /// Xavier/Glorot uniform: `U(±√(6 / (fan_in + fan_out)))`.
    XavierUniform,
    /// Kaiming uniform as `nn.Linear`'s default (`a = √5`): `U(±1/√fan_in)`.
    KaimingUniform,
}

fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

impl Init {
    fn make(
        self,
        shape: &[usize],
        dtype: DType,
        device: Device,
        g: &mut Generator,
    ) -> Result<Tensor> {
        let (fan_in, fan_out) = fans(shape);
        let uniform = |g: &mut Generator, lo: f64, hi: f64| -> Result<Tensor> {
            Tensor::rand_with(g, shape, DType::F32, device)?
                .mul_scalar(hi - lo)?
                .add_scalar(lo)?
                .to_dtype(dtype)
        };
        match self {
            Init::Zeros => Tensor::zeros(shape, dtype, device),
            Init::Ones => Tensor::ones(shape, dtype, device),
            Init::Const(v) => Tensor::full(shape, v, dtype, device),
            Init::Normal { mean, std } => Tensor::randn_with(g, shape, DType::F32, device)?
                .mul_scalar(std)?
                .add_scalar(mean)?
                .to_dtype(dtype),
            Init::Uniform { lo, hi } => uniform(g, lo, hi),
            Init::XavierUniform => {
                let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
                uniform(g, -b, b)
            }
            Init::KaimingUniform => {
                let b = 1.0 / (fan_in as f64).sqrt();
                uniform(g, -b, b)
            }
        }
    }
}

struct ParamInner {
    name: String,
    value: RwLock<Tensor>,
    trainable: AtomicBool,
}

/// A named parameter: a handle shared by the module that uses it and the store that owns it.
/// [`Param::tensor`] is the current value, a leaf that requires a gradient while the
/// parameter is trainable.
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}, {:?})", self.0.name, self.tensor())
    }
}

impl Param {
    fn new(name: String, value: Tensor) -> Result<Param> {
        let value = value.requires_grad(true)?;
        Ok(Param(Arc::new(ParamInner {
            name,
            value: RwLock::new(value),
            trainable: AtomicBool::new(true),
        })))
    }

    /// The full hierarchical name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value (a cheap handle).
    pub fn tensor(&self) -> Tensor {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value (same shape; converted to the parameter's dtype and device).
    pub fn set(&self, value: &Tensor) -> Result<()> {
        let cur = self.tensor();
        if value.dims() != cur.dims() {
            return Err(Error::shape(
                "Param::set",
                &[value.dims(), cur.dims()],
                format!(
                    "{}: new value has shape {:?}, the parameter {:?}",
                    self.name(),
                    value.dims(),
                    cur.dims()
                ),
            ));
        }
        let v = value
            .detach()
            .to_dtype(cur.dtype())?
            .to_device(cur.device())?
            .requires_grad(self.is_trainable())?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v;
        Ok(())
    }

    /// True while gradients flow to this parameter.
    pub fn is_trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes the parameter.
    pub fn set_trainable(&self, trainable: bool) -> Result<()> {
        self.0.trainable.store(trainable, Ordering::Relaxed);
        let v = self.tensor().detach().requires_grad(trainable)?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v;
        Ok(())
    }
}

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

/// Owns every parameter of a model by name, its default device and dtype, the generator for
/// initialization, and the train/eval flag.
pub struct VarStore {
    params: RwLock<BTreeMap<String, Param>>,
    device: Device,
    dtype: DType,
    training: Arc<AtomicBool>,
    rng: Mutex<Generator>,
}

impl VarStore {
    /// An empty store creating parameters of `dtype` on `device` (init seed 0).
    pub fn new(device: Device, dtype: DType) -> VarStore {
        VarStore::with_seed(device, dtype, 0)
    }

    /// An empty store whose initializers draw from a generator seeded with `seed`.
    pub fn with_seed(device: Device, dtype: DType, seed: u64) -> VarStore {
        VarStore {
            params: RwLock::new(BTreeMap::new()),
            device,
            dtype,
            training: Arc::new(AtomicBool::new(true)),
            rng: Mutex::new(Generator::new(seed)),
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
            .map(|(_, p)| p.tensor().numel())
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

    /// True in training mode.
    pub fn is_training(&self) -> bool {
        self.training.load(Ordering::Relaxed)
    }

    pub(crate) fn training_flag(&self) -> Arc<AtomicBool> {
        self.training.clone()
    }

    fn create(&self, name: String, shape: &[usize], init: Init) -> Result<Param> {
        let mut params = self.params.write().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = params.get(&name) {
            if p.tensor().dims() != shape {
                return Err(Error::shape(
                    "VarBuilder::get",
                    &[p.tensor().dims(), shape],
                    format!(
                        "{name} exists with shape {:?}, asked for {shape:?}",
                        p.tensor().dims()
                    ),
                ));
            }
            return Ok(p.clone());
        }
        let value = {
            let mut g = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            init.make(shape, self.dtype, self.device, &mut g)?
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
            let cur = p.tensor().shape();
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

/// Creates parameters in a [`VarStore`] under a name prefix.
#[derive(Clone)]
pub struct VarBuilder<'a> {
    store: &'a VarStore,
    prefix: String,
}

impl<'a> VarBuilder<'a> {
    /// A builder at the root of `store`.
    pub fn new(store: &'a VarStore) -> VarBuilder<'a> {
        VarBuilder {
            store,
            prefix: String::new(),
        }
    }

    /// A builder one level down: `vb.pp("layers").pp("0")` names `layers.0.*`.
    pub fn pp(&self, name: impl std::fmt::Display) -> VarBuilder<'a> {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        };
        VarBuilder {
            store: self.store,
            prefix,
        }
    }

    /// The parameter `prefix.name` with `shape`, created with `init` if new.
    pub fn get(&self, name: &str, shape: &[usize], init: Init) -> Result<Param> {
        self.store.create(self.path(name), shape, init)
    }

    /// The full name of `name` under this builder.
    pub fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The store.
    pub fn store(&self) -> &'a VarStore {
        self.store
    }
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
