//! Zero-copy exchange with NumPy: `t.numpy()` / `numpy.asarray(t)` view the tensor's memory
//! read-only, and `ember.from_numpy(a)` makes a tensor over the array's memory.
//!
//! Export: a contiguous CPU tensor of float32, float64, float16 or int64 is handed out as a
//! read-only array over its bytes, kept alive by a [`Keeper`] holding a handle of the tensor
//! (Ember writes a buffer in place only when nothing else holds it, so the values never change
//! under the array). Strided views, bf16 (NumPy has no bf16; float32 values) and bool are
//! copied. Import: a C-contiguous array of one of those dtypes is shared (the array stays
//! alive while the tensor or any view of it does; writes through the array show in the
//! tensor, as with `torch.from_numpy`; Ember itself copies before it would write); any other
//! array is copied.

use ember::{DType, Device, Tensor};
use numpy::ndarray::{ArrayView, IxDyn};
use numpy::{PyArray, PyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::array_to_tensor;
use crate::errors::OrPy;
use crate::tensor::PyTensor;

/// Holds a tensor's storage alive for the NumPy arrays that view it.
#[pyclass(name = "_Keeper", module = "ember", frozen)]
pub(crate) struct Keeper {
    _t: Tensor,
}

/// `t`'s values as a read-only NumPy array over its memory when it can be (see the module
/// docs), else `None`.
pub(crate) fn shared_array<'py>(
    py: Python<'py>,
    t: &Tensor,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    if !matches!(t.dtype(), DType::F32 | DType::F64 | DType::F16 | DType::I64) {
        return Ok(None);
    }
    let Some(bytes) = t.cpu_bytes() else {
        return Ok(None);
    };
    let (ptr, dims) = (bytes.as_ptr(), IxDyn(t.dims()));
    let keeper = Bound::new(py, Keeper { _t: t.clone() })?.into_any();
    macro_rules! view {
        ($ty:ty) => {{
            // SAFETY: `ptr` is the start of `t`'s contiguous elements of `$ty` (cpu_bytes:
            // `numel · size` bytes, aligned to the element, row-major for `dims`); the keeper
            // holds a handle of `t`, so the storage outlives the array, and Ember never
            // writes a buffer that another handle shares.
            // Exercised by python/tests/test_numpy.py (pointer equality, lifetimes).
            let view = unsafe { ArrayView::from_shape_ptr(dims, ptr.cast::<$ty>()) };
            // SAFETY: as above: the container keeps the memory alive.
            unsafe { PyArray::borrow_from_array(&view, keeper) }.into_any()
        }};
    }
    let arr = match t.dtype() {
        DType::F32 => view!(f32),
        DType::F64 => view!(f64),
        DType::F16 => view!(half::f16),
        _ => view!(i64),
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("write", false)?;
    arr.call_method("setflags", (), Some(&kwargs))?;
    Ok(Some(arr))
}

/// A NumPy buffer as the owner of shared bytes: the array stays referenced while Ember uses
/// its memory.
struct ArrayOwner {
    _array: Py<PyAny>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the owner only reads the array's memory through `as_ref` and drops its reference
// (pyo3 defers that decref to a thread holding the GIL); the memory is valid for the owner's
// life since the array is referenced (NumPy refuses to resize a referenced array).
unsafe impl Send for ArrayOwner {}
// SAFETY: as above; reads only.
unsafe impl Sync for ArrayOwner {}

impl AsRef<[u8]> for ArrayOwner {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is the array's data, alive while `_array` is referenced.
        // Exercised by python/tests/test_numpy.py.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// `ember.from_numpy(a)`: a tensor over a C-contiguous array's memory (float32/64, float16,
/// int64), or a copy of any other array.
#[pyfunction]
pub(crate) fn from_numpy(py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let untyped = array.cast::<PyUntypedArray>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("from_numpy expects a numpy.ndarray")
    })?;
    let shape = untyped.shape().to_vec();
    let dtype = if array.cast::<PyArrayDyn<f32>>().is_ok() {
        Some(DType::F32)
    } else if array.cast::<PyArrayDyn<f64>>().is_ok() {
        Some(DType::F64)
    } else if array.cast::<PyArrayDyn<half::f16>>().is_ok() {
        Some(DType::F16)
    } else if array.cast::<PyArrayDyn<i64>>().is_ok() {
        Some(DType::I64)
    } else {
        None
    };
    match dtype {
        Some(d) if untyped.is_c_contiguous() => {
            let numel: usize = shape.iter().product();
            let len = numel * d.size_in_bytes();
            // The address NumPy reports for the array's first element.
            let interface = array.getattr("__array_interface__")?;
            let (addr, _readonly): (usize, bool) = interface.get_item("data")?.extract()?;
            let ptr = addr as *const u8;
            let owner = ArrayOwner {
                _array: array.clone().unbind(),
                ptr,
                len,
            };
            let bytes = bytes::Bytes::from_owner(owner);
            let t = py
                .detach(|| Tensor::from_shared_bytes(bytes, &shape, d))
                .or_py()?;
            Ok(PyTensor::new(t))
        }
        _ => Ok(PyTensor::new(array_to_tensor(array, Device::Cpu)?)),
    }
}

/// The address of a tensor's first element in memory, when it has one in place.
pub(crate) fn data_ptr(t: &Tensor) -> Option<usize> {
    t.cpu_bytes().map(|b| b.as_ptr() as usize)
}
