//! `ember.Tensor`: an Ember tensor with PyTorch's Python surface (properties, conversions,
//! operators, autograd). The op tables' methods (`t.exp()`, `t.sum(dim=1)`, ...) are looked up
//! by name in `ops`.

use std::sync::Arc;

use ember::{Backward, DType, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyTuple, PyType};

use crate::convert::{PyDType, device_arg, dtype_arg, dtype_name, to_python};
use crate::errors::{OrPy, run};
use crate::grad::{GradSlot, deposit, new_slot};
use crate::ops::{BoundOp, TableOp, binary_with};

/// A tensor (`ember.Tensor`): values on a device, a dtype, and its place in the autograd
/// graph.
#[pyclass(name = "Tensor", module = "ember", subclass)]
pub(crate) struct PyTensor {
    pub(crate) t: Tensor,
    /// The `.grad` of a leaf made from Python with `requires_grad=True`.
    pub(crate) slot: Option<Arc<GradSlot>>,
}

impl PyTensor {
    /// An op's result (no gradient slot of its own).
    pub(crate) fn new(t: Tensor) -> Self {
        PyTensor { t, slot: None }
    }

    /// A leaf: with a gradient slot when it requires a gradient.
    pub(crate) fn leaf(t: Tensor) -> Self {
        let slot = t.is_tracked().then(|| new_slot(t.clone()));
        PyTensor { t, slot }
    }
}

/// A tensor argument, or a Python number as a 0-d tensor of `like`'s dtype.
pub(crate) enum Operand {
    Tensor(Tensor),
    Scalar(f64),
}

/// `obj` as an operand of a binary op.
pub(crate) fn operand(obj: &Bound<'_, PyAny>) -> PyResult<Operand> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(Operand::Tensor(t.borrow().t.clone()));
    }
    if let Ok(x) = obj.extract::<f64>() {
        return Ok(Operand::Scalar(x));
    }
    Err(PyTypeError::new_err(format!(
        "expected an ember.Tensor or a number, got {}",
        obj.get_type().name()?
    )))
}

/// Dims given as `f(2, 3)`, `f((2, 3))` or `f([2, 3])`.
pub(crate) fn dims_arg(args: &Bound<'_, PyTuple>) -> PyResult<Vec<isize>> {
    if args.len() == 1 && !args.get_item(0)?.is_instance_of::<pyo3::types::PyInt>() {
        return args.get_item(0)?.extract::<Vec<isize>>();
    }
    args.extract::<Vec<isize>>()
}

fn wrap(py: Python<'_>, f: impl FnOnce() -> ember::Result<Tensor> + Send) -> PyResult<PyTensor> {
    Ok(PyTensor::new(run(py, f)?))
}

#[pymethods]
impl PyTensor {
    /// `ember.Tensor(data)` is `ember.tensor(data)`.
    #[new]
    #[pyo3(signature = (data, dtype = None, device = None, requires_grad = false))]
    fn py_new(
        data: &Bound<'_, PyAny>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
        requires_grad: bool,
    ) -> PyResult<Self> {
        crate::creation::tensor_from(data, dtype, device, requires_grad)
    }

    /// The shape as a tuple of ints.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.t.dims())
    }

    /// `t.size()` is the shape; `t.size(d)` one dim (negative counts from the end).
    #[pyo3(signature = (dim = None))]
    fn size<'py>(&self, py: Python<'py>, dim: Option<isize>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(self.shape(py)?.into_any()),
            Some(d) => Ok(self.t.size(d).or_py()?.into_pyobject(py)?.into_any()),
        }
    }

    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType { d: self.t.dtype() }
    }

    #[getter]
    fn device(&self) -> String {
        self.t.device().to_string()
    }

    #[getter]
    fn ndim(&self) -> usize {
        self.t.rank()
    }

    fn dim(&self) -> usize {
        self.t.rank()
    }

    fn numel(&self) -> usize {
        self.t.numel()
    }

    fn __len__(&self) -> PyResult<usize> {
        self.t
            .dims()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }

    #[getter]
    fn requires_grad(&self) -> bool {
        self.t.is_tracked()
    }

    #[getter]
    fn is_leaf(&self) -> bool {
        !self.t.is_tracked() || self.slot.is_some()
    }

    /// Makes this tensor a leaf that requires a gradient (or stops it), in place.
    #[pyo3(signature = (requires_grad = true))]
    fn requires_grad_(
        mut slf: PyRefMut<'_, Self>,
        requires_grad: bool,
    ) -> PyResult<PyRefMut<'_, Self>> {
        if slf.t.is_tracked() && slf.slot.is_none() {
            return Err(PyRuntimeError::new_err(
                "requires_grad_ can only change leaves; use detach() for an op's result",
            ));
        }
        let t = slf.t.requires_grad(requires_grad).or_py()?;
        *slf = PyTensor::leaf(t);
        Ok(slf)
    }

    /// The gradient a backward pass left on this leaf (`None` before one, or for results).
    #[getter]
    fn grad(&self) -> Option<PyTensor> {
        let slot = self.slot.as_ref()?;
        let g = slot.grad.lock().unwrap_or_else(|e| e.into_inner()).clone();
        g.map(PyTensor::new)
    }

    #[setter]
    fn set_grad(&self, g: Option<PyRef<'_, PyTensor>>) -> PyResult<()> {
        let Some(slot) = &self.slot else {
            return Err(PyRuntimeError::new_err(
                "only leaves with requires_grad=True hold .grad",
            ));
        };
        if let Some(g) = g.as_ref().filter(|g| g.t.dims() != self.t.dims()) {
            return Err(PyValueError::new_err(format!(
                "assigned grad has shape {:?}, the tensor {:?}",
                g.t.dims(),
                self.t.dims()
            )));
        }
        *slot.grad.lock().unwrap_or_else(|e| e.into_inner()) = g.map(|g| g.t.detach());
        Ok(())
    }

    /// Gradients of this tensor (a single element, or seeded with `gradient`) added to the
    /// `.grad` of every leaf it depends on.
    #[pyo3(signature = (gradient = None, retain_graph = false))]
    fn backward(
        &self,
        py: Python<'_>,
        gradient: Option<PyRef<'_, PyTensor>>,
        retain_graph: bool,
    ) -> PyResult<()> {
        let t = self.t.clone();
        let g = gradient.map(|g| g.t.clone());
        run(py, move || {
            let grads = match (g, retain_graph) {
                (None, false) => t.backward()?,
                (Some(g), false) => t.backward_with(&g)?,
                (g, true) => {
                    let g = match g {
                        Some(g) => g,
                        None => t.ones_like()?,
                    };
                    t.backward_retain(&g)?
                }
            };
            deposit(&grads)
        })
    }

    /// The same values, cut from the graph.
    fn detach(&self) -> PyTensor {
        PyTensor::new(self.t.detach())
    }

    /// A copy (in the graph: gradients flow back through it).
    fn clone(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.mul_scalar(1.0))
    }

    /// `t.to(ember.bfloat16)`, `t.to("wgpu")`, `t.to(device, dtype)`.
    #[pyo3(signature = (*args, dtype = None, device = None))]
    fn to(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let (mut want_dtype, mut want_device) = (dtype.map(dtype_arg).transpose()?, None);
        if let Some(d) = device {
            want_device = Some(device_arg(Some(d))?);
        }
        for a in args.iter() {
            if a.cast::<PyDType>().is_ok() {
                want_dtype = Some(dtype_arg(&a)?);
            } else {
                want_device = Some(device_arg(Some(&a))?);
            }
        }
        let t = self.t.clone();
        wrap(py, move || {
            let t = match want_device {
                Some(d) if d != t.device() => t.to_device(d)?,
                _ => t,
            };
            match want_dtype {
                Some(d) if d != t.dtype() => t.to_dtype(d),
                _ => Ok(t),
            }
        })
    }

    fn float(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::F32)
    }
    fn double(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::F64)
    }
    fn half(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::F16)
    }
    fn bfloat16(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::BF16)
    }
    fn long(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::I64)
    }
    fn bool(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.cast(py, DType::Bool)
    }
    fn cpu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.to_device(ember::Device::Cpu))
    }
    fn contiguous(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.contiguous())
    }

    /// The single value as a Python number.
    fn item(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.t.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "item() needs a tensor of one element, this one has {} (shape {:?})",
                self.t.numel(),
                self.t.dims()
            )));
        }
        let flat = self.t.reshape(&[]).or_py()?;
        to_python(py, &flat)
    }

    /// The values as nested lists.
    fn tolist(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.t)
    }

    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        self.item(py)?.extract(py)
    }

    fn __int__(&self, py: Python<'_>) -> PyResult<i64> {
        let x: f64 = self.item(py)?.extract(py)?;
        Ok(x as i64)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        let x: f64 = self.item(py)?.extract(py)?;
        Ok(x != 0.0)
    }

    fn __repr__(&self) -> String {
        let text = self.t.to_string();
        // Ember prints `dtype=f64`; Python names the dtype as `ember.float64`.
        let mut text = match text.rfind(", dtype=") {
            Some(at) => format!(
                "{}, dtype=ember.{})",
                &text[..at],
                dtype_name(self.t.dtype())
            ),
            None => text,
        };
        if self.t.is_tracked() {
            text.truncate(text.len() - 1);
            text.push_str(", requires_grad=True)");
        }
        text
    }

    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    fn __getattr__(slf: &Bound<'_, Self>, name: &str) -> PyResult<BoundOp> {
        match TableOp::from_name(name) {
            Some(op) => Ok(BoundOp::new(slf.borrow().t.clone(), op)),
            None => Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                "'ember.Tensor' object has no attribute '{name}'"
            ))),
        }
    }

    fn __dir__(slf: &Bound<'_, Self>) -> PyResult<Vec<String>> {
        let ty: Bound<'_, PyType> = slf.get_type();
        let mut names: Vec<String> = ty.dir()?.extract()?;
        names.extend(TableOp::names().into_iter().map(String::from));
        names.sort();
        names.dedup();
        Ok(names)
    }

    // Operators: the binary table, with Python numbers on either side.
    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "add", operand(o)?, false)
    }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "add", operand(o)?, true)
    }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "sub", operand(o)?, false)
    }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "sub", operand(o)?, true)
    }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "mul", operand(o)?, false)
    }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "mul", operand(o)?, true)
    }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "div", operand(o)?, false)
    }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "div", operand(o)?, true)
    }
    fn __pow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: &Bound<'_, PyAny>,
    ) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "pow", operand(o)?, false)
    }
    fn __rpow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        _modulo: &Bound<'_, PyAny>,
    ) -> PyResult<PyTensor> {
        binary_with(py, &self.t, "pow", operand(o)?, true)
    }
    fn __matmul__(&self, py: Python<'_>, o: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (a, b) = (self.t.clone(), o.t.clone());
        wrap(py, move || a.matmul(&b))
    }
    fn __rmatmul__(&self, py: Python<'_>, o: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (a, b) = (o.t.clone(), self.t.clone());
        wrap(py, move || a.matmul(&b))
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.neg())
    }
    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.abs())
    }
    fn __invert__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(py, move || t.logical_not())
    }

    fn __richcmp__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<PyTensor> {
        let name = match op {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        };
        binary_with(py, &self.t, name, operand(o)?, false)
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        crate::index::getitem(py, &self.t, key)
    }

    fn __setitem__(&self, _key: &Bound<'_, PyAny>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "ember tensors are not assigned into by index; build the new value with ember.where, masked_fill or cat",
        ))
    }
}

impl PyTensor {
    /// Gives this tensor a new value in place, as `p.data = value` (an optimizer's step,
    /// `module.to(dtype)`): a leaf requiring a gradient stays one (a new leaf of the same
    /// object, its `.grad` kept). The shape must stay; the dtype may change (floats only for
    /// a leaf).
    pub(crate) fn assign(&mut self, value: Tensor) -> PyResult<()> {
        if value.dims() != self.t.dims() {
            return Err(PyValueError::new_err(format!(
                "assigning {} {:?} to a tensor of {} {:?}",
                dtype_name(value.dtype()),
                value.dims(),
                dtype_name(self.t.dtype()),
                self.t.dims()
            )));
        }
        match &self.slot {
            Some(old) => {
                let grad = old.grad.lock().unwrap_or_else(|e| e.into_inner()).take();
                let leaf = value.detach().requires_grad(true).or_py()?;
                let slot = new_slot(leaf.clone());
                *slot.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
                self.t = leaf;
                self.slot = Some(slot);
            }
            None => self.t = value.detach(),
        }
        Ok(())
    }

    fn cast(&self, py: Python<'_>, d: DType) -> PyResult<PyTensor> {
        let t = self.t.clone();
        wrap(
            py,
            move || if t.dtype() == d { Ok(t) } else { t.to_dtype(d) },
        )
    }
}
