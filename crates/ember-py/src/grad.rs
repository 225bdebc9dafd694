//! Autograd as PyTorch users write it: `.grad` on leaves, filled by `backward()`, and the
//! `no_grad` / `enable_grad` / `autocast` context managers.
//!
//! Ember's `backward` returns the gradients keyed by tensor; Python keeps each leaf's `.grad` on
//! the leaf. Every leaf made from Python with `requires_grad=True` owns a [`GradSlot`], listed
//! weakly in a registry; after a backward pass each live slot adds its gradient (accumulating,
//! as PyTorch does until `grad = None` or an optimizer's `zero_grad`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use ember::{AutocastGuard, DType, EnableGradGuard, Gradients, NoGradGuard, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::convert::dtype_arg;
use crate::errors::OrPy;

/// A leaf's gradient, shared by the Python tensor that owns it and the registry.
pub(crate) struct GradSlot {
    /// The leaf, as the backward pass knows it.
    pub(crate) leaf: Tensor,
    /// Its accumulated gradient.
    pub(crate) grad: Mutex<Option<Tensor>>,
}

static SLOTS: Mutex<Vec<Weak<GradSlot>>> = Mutex::new(Vec::new());
/// The registry's length at which dead entries are swept next.
static PRUNE_AT: AtomicUsize = AtomicUsize::new(64);

/// A slot for `leaf`, registered so `deposit` finds it.
pub(crate) fn new_slot(leaf: Tensor) -> Arc<GradSlot> {
    let slot = Arc::new(GradSlot {
        leaf,
        grad: Mutex::new(None),
    });
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    // Dead entries are dropped when the list has doubled since the last sweep, so an
    // optimizer step (a new slot per parameter) costs amortized O(1) per parameter.
    if slots.len() >= PRUNE_AT.load(Ordering::Relaxed) {
        slots.retain(|w| w.strong_count() > 0);
        PRUNE_AT.store((2 * slots.len()).max(64), Ordering::Relaxed);
    }
    slots.push(Arc::downgrade(&slot));
    slot
}

/// Adds the gradients of a backward pass to the `.grad` of every live leaf they cover.
pub(crate) fn deposit(grads: &Gradients) -> ember::Result<()> {
    let live: Vec<Arc<GradSlot>> = {
        let slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter().filter_map(Weak::upgrade).collect()
    };
    for slot in live {
        if let Some(g) = grads.get(&slot.leaf) {
            let mut cur = slot.grad.lock().unwrap_or_else(|e| e.into_inner());
            *cur = Some(match cur.take() {
                Some(prev) => prev.add(g)?,
                None => g.detach(),
            });
        }
    }
    Ok(())
}

/// `with ember.no_grad():` (and `enable_grad`, with `enable=True`): operations inside record
/// no graph. Per thread, as in PyTorch.
#[pyclass(name = "no_grad", module = "ember", unsendable)]
pub(crate) struct PyNoGrad {
    guard: Option<GradGuard>,
    enable: bool,
}

/// The guard a `no_grad` or `enable_grad` block holds.
enum GradGuard {
    Off(#[allow(dead_code)] NoGradGuard),
    On(#[allow(dead_code)] EnableGradGuard),
}

#[pymethods]
impl PyNoGrad {
    #[new]
    #[pyo3(signature = (enable = false))]
    fn new(enable: bool) -> Self {
        PyNoGrad {
            guard: None,
            enable,
        }
    }

    fn __enter__(&mut self) -> PyResult<()> {
        if self.guard.is_some() {
            return Err(PyRuntimeError::new_err(
                "this no_grad context is already entered",
            ));
        }
        self.guard = Some(if self.enable {
            GradGuard::On(ember::enable_grad())
        } else {
            GradGuard::Off(ember::no_grad())
        });
        Ok(())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.guard = None;
        false
    }
}

/// `with ember.autocast("cpu", dtype=ember.bfloat16):` — products and most ops inside run in
/// the lower precision, as `torch.autocast`.
#[pyclass(name = "autocast", module = "ember", unsendable)]
pub(crate) struct PyAutocast {
    dtype: DType,
    enabled: bool,
    guard: Option<AutocastGuard>,
}

#[pymethods]
impl PyAutocast {
    #[new]
    #[pyo3(signature = (device_type = "cpu", dtype = None, enabled = true))]
    fn new(device_type: &str, dtype: Option<&Bound<'_, PyAny>>, enabled: bool) -> PyResult<Self> {
        if !matches!(device_type, "cpu" | "wgpu") {
            return Err(PyValueError::new_err(format!(
                "autocast: unknown device_type {device_type:?}: expected \"cpu\" or \"wgpu\""
            )));
        }
        let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::BF16);
        Ok(PyAutocast {
            dtype,
            enabled,
            guard: None,
        })
    }

    fn __enter__(&mut self) -> PyResult<()> {
        if self.enabled {
            self.guard = Some(ember::autocast::autocast(self.dtype).or_py()?);
        } else {
            self.guard = Some(ember::autocast::autocast_off());
        }
        Ok(())
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.guard = None;
        false
    }
}

/// Whether operations record a graph on this thread.
#[pyfunction]
pub(crate) fn is_grad_enabled() -> bool {
    ember::is_grad_enabled()
}

/// `ember.checkpoint(function, x)`, as `torch.utils.checkpoint.checkpoint`: `function(x)` with
/// its activations freed after the forward and recomputed (calling `function` again, with the
/// same random state, so dropout repeats) in the backward. `function` takes and returns an
/// `ember.Tensor` and may use parameters; a tracked non-leaf tensor from outside must come in
/// through `x`. An exception raised in the recomputation comes back from `backward()`.
#[pyfunction]
pub(crate) fn checkpoint(
    py: Python<'_>,
    function: Py<PyAny>,
    x: PyRef<'_, crate::tensor::PyTensor>,
) -> PyResult<crate::tensor::PyTensor> {
    use crate::tensor::PyTensor;
    let f = move |x: &Tensor| -> ember::Result<Tensor> {
        Python::attach(|py| {
            let fail = |msg: String| ember::Error::data("checkpoint", msg);
            let out = function
                .call1(py, (PyTensor::new(x.clone()),))
                .map_err(|e| fail(format!("the checkpointed function raised: {e}")))?;
            let t = out
                .bind(py)
                .cast::<PyTensor>()
                .map_err(|_| fail("the checkpointed function must return an ember.Tensor".into()))?
                .borrow()
                .t
                .clone();
            Ok(t)
        })
    };
    let x = x.t.clone();
    Ok(PyTensor::new(crate::errors::run(py, move || {
        ember::checkpoint(f, &x)
    })?))
}
