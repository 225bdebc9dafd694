//! Module functions that make tensors: `ember.tensor`, `zeros`, `ones`, `full`, `arange`,
//! `randn`, `rand`, `eye`, the `*_like` forms, `from_numpy`, and `manual_seed`; and the ones
//! that combine several tensors (`cat`, `stack`, `where`, `matmul`).

use ember::{DType, Device, Tensor};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{device_arg, dtype_arg, from_python};
use crate::errors::{OrPy, run};
use crate::tensor::{PyTensor, dims_arg};

/// The most elements a creation function makes from a shape alone (2^34, 64 GiB of f32):
/// a shape beyond it is refused before anything is allocated.
const MAX_NUMEL: usize = 1 << 34;

fn shape_of(args: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    let dims = dims_arg(args)?;
    let mut numel: usize = 1;
    let mut out = Vec::with_capacity(dims.len());
    for d in dims {
        let d = usize::try_from(d)
            .map_err(|_| PyValueError::new_err(format!("negative dimension {d} in a shape")))?;
        numel = numel
            .checked_mul(d)
            .filter(|&n| n <= MAX_NUMEL)
            .ok_or_else(|| {
                PyValueError::new_err(format!("a shape of more than {MAX_NUMEL} elements"))
            })?;
        out.push(d);
    }
    Ok(out)
}

/// Makes `t` a leaf requiring a gradient when asked.
pub(crate) fn finish(t: Tensor, requires_grad: bool) -> PyResult<PyTensor> {
    if requires_grad {
        Ok(PyTensor::leaf(t.requires_grad(true).or_py()?))
    } else {
        Ok(PyTensor::new(t))
    }
}

/// `ember.tensor(data, dtype=None, device=None, requires_grad=False)`.
pub(crate) fn tensor_from(
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let dtype = dtype.map(dtype_arg).transpose()?;
    let device = device_arg(device)?;
    let t = if let Ok(src) = data.cast::<PyTensor>() {
        let t = src.borrow().t.detach();
        let t = match dtype {
            Some(d) if d != t.dtype() => t.to_dtype(d).or_py()?,
            _ => t,
        };
        t.to_device(device).or_py()?
    } else {
        from_python(data, dtype, device)?
    };
    finish(t, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (data, *, dtype = None, device = None, requires_grad = false))]
pub(crate) fn tensor(
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    tensor_from(data, dtype, device, requires_grad)
}

fn made(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    f: impl FnOnce(&[usize], DType, Device) -> ember::Result<Tensor> + Send,
) -> PyResult<PyTensor> {
    let shape = shape_of(args)?;
    let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    let device = device_arg(device)?;
    let t = run(py, move || f(&shape, dtype, device))?;
    finish(t, requires_grad)
}

macro_rules! shaped {
    ($(#[$doc:meta])* $name:ident, |$s:ident, $d:ident, $dev:ident| $body:expr) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = (*size, dtype = None, device = None, requires_grad = false))]
        pub(crate) fn $name(
            py: Python<'_>,
            size: &Bound<'_, PyTuple>,
            dtype: Option<&Bound<'_, PyAny>>,
            device: Option<&Bound<'_, PyAny>>,
            requires_grad: bool,
        ) -> PyResult<PyTensor> {
            made(py, size, dtype, device, requires_grad, |$s, $d, $dev| $body)
        }
    };
}

shaped!(
    /// `ember.zeros(2, 3)` or `ember.zeros((2, 3))`.
    zeros, |s, d, dev| Tensor::zeros(s, d, dev)
);
shaped!(
    /// `ember.ones(2, 3)`.
    ones, |s, d, dev| Tensor::ones(s, d, dev)
);
shaped!(
    /// Standard normal samples from the global generator (`ember.manual_seed`).
    randn, |s, d, dev| Tensor::randn(s, d, dev)
);
shaped!(
    /// Uniform samples in `[0, 1)` from the global generator.
    rand, |s, d, dev| Tensor::rand(s, d, dev)
);

/// `ember.full((2, 3), 7.0)`.
#[pyfunction]
#[pyo3(signature = (size, fill_value, *, dtype = None, device = None, requires_grad = false))]
pub(crate) fn full(
    py: Python<'_>,
    size: &Bound<'_, PyAny>,
    fill_value: f64,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let args = PyTuple::new(py, [size])?;
    made(py, &args, dtype, device, requires_grad, move |s, d, dev| {
        Tensor::full(s, fill_value, d, dev)
    })
}

/// `ember.arange(end)`, `arange(start, end)`, `arange(start, end, step)`: int64 when every
/// bound is an int, else float32, as PyTorch.
#[pyfunction]
#[pyo3(signature = (start, end = None, step = None, *, dtype = None, device = None, requires_grad = false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn arange(
    py: Python<'_>,
    start: &Bound<'_, PyAny>,
    end: Option<&Bound<'_, PyAny>>,
    step: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<PyTensor> {
    let ints = [Some(start), end, step]
        .iter()
        .flatten()
        .all(|x| x.is_instance_of::<pyo3::types::PyInt>());
    let (s, e) = match end {
        Some(e) => (start.extract::<f64>()?, e.extract::<f64>()?),
        None => (0.0, start.extract::<f64>()?),
    };
    let step = step.map(|x| x.extract::<f64>()).transpose()?.unwrap_or(1.0);
    if step == 0.0 || !step.is_finite() || !s.is_finite() || !e.is_finite() {
        return Err(PyValueError::new_err(
            "arange: bounds must be finite and step non-zero",
        ));
    }
    if ((e - s) / step).abs() > MAX_NUMEL as f64 {
        return Err(PyValueError::new_err(format!(
            "arange: more than {MAX_NUMEL} elements"
        )));
    }
    let default = if ints { DType::I64 } else { DType::F32 };
    let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(default);
    let device = device_arg(device)?;
    let t = run(py, move || Tensor::arange(s, e, step, dtype, device))?;
    finish(t, requires_grad)
}

/// The `n × n` identity.
#[pyfunction]
#[pyo3(signature = (n, *, dtype = None, device = None))]
pub(crate) fn eye(
    py: Python<'_>,
    n: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    if n.checked_mul(n).is_none_or(|e| e > MAX_NUMEL) {
        return Err(PyValueError::new_err(format!(
            "eye: {n} x {n} is too large"
        )));
    }
    let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
    let device = device_arg(device)?;
    Ok(PyTensor::new(run(py, move || {
        Tensor::eye(n, dtype, device)
    })?))
}

/// Zeros, ones or a value in the shape, dtype and device of `t`.
#[pyfunction]
pub(crate) fn zeros_like(py: Python<'_>, t: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
    let t = t.t.clone();
    Ok(PyTensor::new(run(py, move || t.zeros_like())?))
}

#[pyfunction]
pub(crate) fn ones_like(py: Python<'_>, t: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
    let t = t.t.clone();
    Ok(PyTensor::new(run(py, move || t.ones_like())?))
}

#[pyfunction]
pub(crate) fn full_like(
    py: Python<'_>,
    t: PyRef<'_, PyTensor>,
    fill_value: f64,
) -> PyResult<PyTensor> {
    let t = t.t.clone();
    Ok(PyTensor::new(run(py, move || t.full_like(fill_value))?))
}

/// Seeds the global generator (`randn`, `rand`, dropout, sampling).
#[pyfunction]
pub(crate) fn manual_seed(seed: u64) {
    ember::manual_seed(seed);
}

fn tensors(seq: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Tensor>> {
    let items: Vec<Bound<'_, PyAny>> = seq
        .try_iter()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a sequence of tensors")))?
        .collect::<PyResult<_>>()?;
    items
        .iter()
        .map(|x| {
            x.cast::<PyTensor>()
                .map(|t| t.borrow().t.clone())
                .map_err(|_| {
                    PyTypeError::new_err(format!("{what}: expected a sequence of tensors"))
                })
        })
        .collect()
}

/// Joins tensors along an existing dim.
#[pyfunction]
#[pyo3(signature = (tensors, dim = 0))]
pub(crate) fn cat(py: Python<'_>, tensors: &Bound<'_, PyAny>, dim: isize) -> PyResult<PyTensor> {
    let ts = self::tensors(tensors, "cat")?;
    Ok(PyTensor::new(run(py, move || {
        Tensor::cat(&ts.iter().collect::<Vec<_>>(), dim)
    })?))
}

/// Joins tensors along a new dim.
#[pyfunction]
#[pyo3(signature = (tensors, dim = 0))]
pub(crate) fn stack(py: Python<'_>, tensors: &Bound<'_, PyAny>, dim: isize) -> PyResult<PyTensor> {
    let ts = self::tensors(tensors, "stack")?;
    Ok(PyTensor::new(run(py, move || {
        Tensor::stack(&ts.iter().collect::<Vec<_>>(), dim)
    })?))
}

/// `a @ b`.
#[pyfunction]
pub(crate) fn matmul(
    py: Python<'_>,
    a: PyRef<'_, PyTensor>,
    b: PyRef<'_, PyTensor>,
) -> PyResult<PyTensor> {
    let (a, b) = (a.t.clone(), b.t.clone());
    Ok(PyTensor::new(run(py, move || a.matmul(&b))?))
}
