//! The Rust training pieces from Python, for runs that must equal `examples/train_gpt.rs` bit
//! for bit: `ember.models.Gpt` (nanoGPT on a seeded parameter store), `ember.train.TokenStream`
//! and `Generator` (the Trainer's batch sampler), `cosine_with_warmup`, the store's AdamW with
//! torch-style decay groups, gradient clipping, and `ember.train.grad(loss)` (a backward pass
//! whose gradients stay keyed by the store's parameters).

use std::panic::{AssertUnwindSafe, catch_unwind};

use ember::models::{Gpt, GptConfig};
use ember::nn::VarStore;
use ember::optim::{
    AdamW, AdamWConfig, Optimizer, Schedule, clip_grad_norm, cosine_with_warmup, decay_groups,
};
use ember::train::{Batches, TokenStream};
use ember::{Backward, DType, Device, Generator, Gradients};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::{OrPy, run};
use crate::tensor::PyTensor;

/// Runs `f` holding the GIL (its values are not `Send`), a panic turned into a `RuntimeError`.
fn guarded<T>(f: impl FnOnce() -> ember::Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.or_py(),
        Err(_) => Err(PyRuntimeError::new_err(
            "internal error in Ember (a bug; please report it)",
        )),
    }
}

/// nanoGPT (`ember::models::Gpt`) on a parameter store seeded with `seed`, as
/// `examples/train_gpt.rs` builds it.
#[pyclass(name = "Gpt", module = "ember.models", unsendable)]
pub(crate) struct PyGpt {
    store: VarStore,
    gpt: Gpt,
}

#[pymethods]
impl PyGpt {
    #[new]
    #[pyo3(signature = (vocab_size, block_size, n_layer, n_head, n_embd, bias = false, seed = 1337))]
    fn new(
        vocab_size: usize,
        block_size: usize,
        n_layer: usize,
        n_head: usize,
        n_embd: usize,
        bias: bool,
        seed: u64,
    ) -> PyResult<Self> {
        let cfg = GptConfig {
            vocab_size,
            block_size,
            n_layer,
            n_head,
            n_embd,
            bias,
        };
        guarded(|| {
            cfg.validate()?;
            let store = VarStore::with_seed(Device::Cpu, DType::F32, seed);
            let gpt = Gpt::checked(&store, cfg)?;
            Ok(PyGpt { store, gpt })
        })
    }

    /// Logits `(B, T, V)`.
    fn __call__(&self, idx: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let x = idx.t.clone();
        Ok(PyTensor::new(guarded(|| self.gpt.forward(&x))?))
    }

    /// Mean cross-entropy of the next token at every position.
    fn loss(&self, idx: PyRef<'_, PyTensor>, targets: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (x, y) = (idx.t.clone(), targets.t.clone());
        Ok(PyTensor::new(guarded(|| self.gpt.loss(&x, &y))?))
    }

    fn num_parameters(&self) -> usize {
        self.store.num_parameters()
    }

    /// AdamW over the trainable parameters, weight decay on matrices only.
    #[pyo3(signature = (lr, betas = (0.9, 0.999), weight_decay = 0.01))]
    fn adamw(&self, lr: f64, betas: (f64, f64), weight_decay: f64) -> PyStoreOptimizer {
        let groups = decay_groups(self.store.trainable_parameters(), weight_decay);
        let cfg = AdamWConfig {
            lr,
            betas,
            ..Default::default()
        };
        PyStoreOptimizer {
            opt: Box::new(AdamW::with_groups(groups, cfg)),
        }
    }

    /// Scales `grads` so their joint 2-norm is at most `max_norm`; the norm before.
    fn clip_grad_norm(&self, mut grads: PyRefMut<'_, PyGradients>, max_norm: f64) -> PyResult<f64> {
        let params = self.store.trainable_parameters();
        guarded(|| clip_grad_norm(&mut grads.g, &params, max_norm))
    }
}

/// Gradients of a backward pass, keyed by the tensors they belong to.
#[pyclass(name = "Gradients", module = "ember.train", unsendable)]
pub(crate) struct PyGradients {
    g: Gradients,
}

/// The gradients of a scalar `loss` with respect to every leaf it depends on, kept as Ember
/// returns them (for the store optimizers); Python leaves' `.grad` are not touched.
#[pyfunction]
pub(crate) fn grad(loss: PyRef<'_, PyTensor>) -> PyResult<PyGradients> {
    let t = loss.t.clone();
    Ok(PyGradients {
        g: guarded(|| t.backward())?,
    })
}

/// An optimizer of a Rust parameter store.
#[pyclass(name = "StoreOptimizer", module = "ember.train", unsendable)]
pub(crate) struct PyStoreOptimizer {
    opt: Box<dyn Optimizer>,
}

#[pymethods]
impl PyStoreOptimizer {
    fn set_lr(&mut self, lr: f64) {
        self.opt.set_lr(lr);
    }

    fn step(&mut self, grads: PyRef<'_, PyGradients>) -> PyResult<()> {
        guarded(|| self.opt.step(&grads.g))
    }
}

/// A seeded random generator (the one the Trainer samples batches with).
#[pyclass(name = "Generator", module = "ember.train", unsendable)]
pub(crate) struct PyGenerator {
    g: Generator,
}

#[pymethods]
impl PyGenerator {
    #[new]
    fn new(seed: u64) -> Self {
        PyGenerator {
            g: Generator::new(seed),
        }
    }
}

/// Token ids cut into training windows of `block` tokens.
#[pyclass(name = "TokenStream", module = "ember.train", unsendable)]
pub(crate) struct PyTokenStream {
    ts: Option<TokenStream>,
}

impl PyTokenStream {
    fn get(&self) -> PyResult<&TokenStream> {
        self.ts
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("this TokenStream was split; use its parts"))
    }
}

#[pymethods]
impl PyTokenStream {
    #[new]
    fn new(py: Python<'_>, tokens: Vec<i64>, block: usize) -> PyResult<Self> {
        let ts = run(py, move || TokenStream::new(tokens, block))?;
        Ok(PyTokenStream { ts: Some(ts) })
    }

    /// The first `fraction` of the tokens and the rest (this stream is used up).
    fn split(&mut self, fraction: f64) -> PyResult<(PyTokenStream, PyTokenStream)> {
        let ts = self
            .ts
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this TokenStream was split already"))?;
        let (a, b) = guarded(|| ts.split(fraction))?;
        Ok((PyTokenStream { ts: Some(a) }, PyTokenStream { ts: Some(b) }))
    }

    /// A batch of `batch` random windows: inputs and next-token targets, `(batch, block)`.
    fn sample(
        &self,
        mut g: PyRefMut<'_, PyGenerator>,
        batch: usize,
    ) -> PyResult<(PyTensor, PyTensor)> {
        let ts = self.get()?;
        let (x, y) = guarded(|| ts.sample(&mut g.g, batch, Device::Cpu))?;
        Ok((PyTensor::new(x), PyTensor::new(y)))
    }
}

/// Linear warmup to `lr` over `warmup` steps, then cosine decay to `min_lr` at `total`.
#[pyclass(name = "Schedule", module = "ember.train", frozen)]
pub(crate) struct PySchedule {
    s: Schedule,
}

#[pymethods]
impl PySchedule {
    /// The learning rate of step `step` (from 0).
    fn lr(&self, step: u64) -> f64 {
        self.s.lr(step)
    }
}

#[pyfunction]
pub(crate) fn cosine_with_warmup_schedule(
    lr: f64,
    warmup: u64,
    total: u64,
    min_lr: f64,
) -> PyResult<PySchedule> {
    let s = cosine_with_warmup(lr, warmup, total, min_lr);
    s.validate().or_py()?;
    Ok(PySchedule { s })
}
