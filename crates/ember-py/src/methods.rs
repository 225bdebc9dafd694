//! `ember.Tensor`'s shape and layout methods (`reshape`, `view`, `transpose`, `permute`, ...),
//! the few ops outside the tables that most code calls as methods (`softmax`, `matmul`,
//! `clamp`, `masked_fill`, ...), and NumPy conversion.

use ember::{DType, Tensor};
use numpy::{PyArray, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::errors::run;
use crate::tensor::{PyTensor, dims_arg};

fn op(
    py: Python<'_>,
    t: &Tensor,
    f: impl FnOnce(Tensor) -> ember::Result<Tensor> + Send,
) -> PyResult<PyTensor> {
    let t = t.clone();
    Ok(PyTensor::new(run(py, move || f(t))?))
}

#[pymethods]
impl PyTensor {
    /// The same values in a new shape (`-1` once: inferred).
    #[pyo3(signature = (*shape))]
    fn reshape(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = dims_arg(shape)?;
        op(py, &self.t, move |t| t.reshape(&dims))
    }

    /// As `reshape` (Ember's views never share writes, so the two agree).
    #[pyo3(signature = (*shape))]
    fn view(&self, py: Python<'_>, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        self.reshape(py, shape)
    }

    fn transpose(&self, py: Python<'_>, dim0: isize, dim1: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.transpose(dim0, dim1))
    }

    /// The transpose of a matrix (`t.T` for 2-D).
    #[getter(T)]
    fn big_t(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let rank = self.t.rank() as isize;
        op(py, &self.t, move |t| {
            let axes: Vec<isize> = (0..rank).rev().collect();
            t.permute(&axes)
        })
    }

    #[pyo3(signature = (*dims))]
    fn permute(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = dims_arg(dims)?;
        op(py, &self.t, move |t| t.permute(&dims))
    }

    fn unsqueeze(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.unsqueeze(dim))
    }

    #[pyo3(signature = (dim = None))]
    fn squeeze(&self, py: Python<'_>, dim: Option<isize>) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| match dim {
            Some(d) => t.squeeze(d),
            None => t.squeeze_all(),
        })
    }

    #[pyo3(signature = (start_dim = 0, end_dim = -1))]
    fn flatten(&self, py: Python<'_>, start_dim: isize, end_dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.flatten(start_dim, end_dim))
    }

    #[pyo3(signature = (*sizes))]
    fn expand(&self, py: Python<'_>, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = dims_arg(sizes)?;
        op(py, &self.t, move |t| t.expand(&dims))
    }

    fn narrow(
        &self,
        py: Python<'_>,
        dim: isize,
        start: usize,
        length: usize,
    ) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.narrow(dim, start, length))
    }

    #[pyo3(signature = (dim))]
    fn softmax(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.softmax(dim))
    }

    #[pyo3(signature = (dim))]
    fn log_softmax(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.log_softmax(dim))
    }

    fn matmul(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let b = other.t.clone();
        op(py, &self.t, move |t| t.matmul(&b))
    }

    #[pyo3(signature = (min = None, max = None))]
    fn clamp(&self, py: Python<'_>, min: Option<f64>, max: Option<f64>) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.clamp(min, max))
    }

    fn masked_fill(
        &self,
        py: Python<'_>,
        mask: PyRef<'_, PyTensor>,
        value: f64,
    ) -> PyResult<PyTensor> {
        let m = mask.t.clone();
        op(py, &self.t, move |t| t.masked_fill(&m, value))
    }

    #[pyo3(signature = (dim = None, keepdim = false))]
    fn argmax(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| match dim {
            Some(d) => t.argmax(d, keepdim),
            None => t.reshape(&[-1])?.argmax(0, false),
        })
    }

    #[pyo3(signature = (dim = None, keepdim = false))]
    fn argmin(&self, py: Python<'_>, dim: Option<isize>, keepdim: bool) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| match dim {
            Some(d) => t.argmin(d, keepdim),
            None => t.reshape(&[-1])?.argmin(0, false),
        })
    }

    fn square(&self, py: Python<'_>) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.square())
    }

    /// The values as a NumPy array: a read-only view of this tensor's memory for a
    /// contiguous CPU tensor of float32, float64, float16 or int64; a copy otherwise (strided
    /// views, bool, and bf16, which NumPy lacks: float32 values).
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(shared) = crate::share::shared_array(py, &self.t)? {
            return Ok(shared);
        }
        let dims = self.t.dims().to_vec();
        let t = self.t.clone();
        macro_rules! out {
            ($ty:ty) => {{
                let v = run(py, move || t.to_vec::<$ty>())?;
                Ok(PyArray::from_vec(py, v).reshape(dims)?.into_any())
            }};
        }
        match self.t.dtype() {
            DType::F32 | DType::BF16 => out!(f32),
            DType::F64 => out!(f64),
            DType::F16 => out!(half::f16),
            DType::I64 => out!(i64),
            DType::Bool => out!(bool),
        }
    }

    /// The values without the graph (`p.data`); assigning replaces them in place (see
    /// `assign`: a leaf stays a leaf, its `.grad` kept).
    #[getter]
    fn data(&self) -> PyTensor {
        PyTensor::new(self.t.detach())
    }

    #[setter]
    fn set_data(&mut self, value: PyRef<'_, PyTensor>) -> PyResult<()> {
        let v = value.t.clone();
        drop(value);
        self.assign(v)
    }

    /// The address of the first element, for a tensor whose values lie in place in CPU
    /// memory (contiguous, not bool); 0 otherwise.
    fn data_ptr(&self) -> usize {
        crate::share::data_ptr(&self.t).unwrap_or(0)
    }

    /// DLPack export (`torch.from_dlpack(t)`, `numpy.from_dlpack(t)`): the read-only NumPy
    /// view of this tensor's memory exported as a DLPack 1.x capsule, which marks it
    /// read-only, so the consumer shares the memory. A consumer that asks for the old
    /// protocol (no `max_version`, which cannot mark read-only) gets a copy; so do tensors
    /// `numpy()` copies (strided views, bool, bf16 as float32).
    #[pyo3(signature = (*, stream = None, max_version = None, dl_device = None, copy = None))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        stream: Option<Bound<'py, PyAny>>,
        max_version: Option<Bound<'py, PyAny>>,
        dl_device: Option<Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = stream; // CPU memory: no stream to order against
        let arr = self.numpy(py)?;
        let kwargs = pyo3::types::PyDict::new(py);
        if let Some(v) = &max_version {
            kwargs.set_item("max_version", v)?;
        }
        if let Some(d) = &dl_device {
            kwargs.set_item("dl_device", d)?;
        }
        if let Some(c) = copy {
            kwargs.set_item("copy", c)?;
        }
        match arr.call_method("__dlpack__", (), Some(&kwargs)) {
            Ok(capsule) => Ok(capsule),
            Err(e)
                if e.is_instance_of::<pyo3::exceptions::PyBufferError>(py)
                    && copy != Some(false) =>
            {
                arr.call_method0("copy")?
                    .call_method("__dlpack__", (), Some(&kwargs))
            }
            Err(e) => Err(e),
        }
    }

    /// `(1, 0)`: DLPack's CPU device (Ember's tensors export from host memory).
    fn __dlpack_device__(&self) -> (i32, i32) {
        (1, 0)
    }

    /// NumPy's array protocol: `numpy.asarray(t)`.
    #[pyo3(signature = (dtype = None, copy = None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let shared = crate::share::shared_array(py, &self.t)?;
        if copy == Some(false) && shared.is_none() {
            return Err(PyValueError::new_err(
                "this tensor cannot be shared without a copy (a strided view, bool or bf16); copy=False cannot be honoured",
            ));
        }
        let a = match shared {
            Some(a) if copy != Some(true) => a,
            Some(a) => a.call_method0("copy")?,
            None => self.numpy(py)?,
        };
        match dtype {
            Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
            _ => Ok(a),
        }
    }
}
