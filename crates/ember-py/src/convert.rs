//! Python values ⇄ Ember: dtypes (`ember.float32`, ...), devices (`"cpu"`, `"wgpu:0"`), nested
//! lists, scalars and NumPy arrays into tensors, and tensors back into Python lists.

use ember::{DType, Device, Tensor};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};

use crate::errors::OrPy;

/// An Ember dtype as Python sees it: `ember.float32`, `ember.bfloat16`, ...
#[pyclass(name = "dtype", module = "ember", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyDType {
    pub(crate) d: DType,
}

/// Python's name of each dtype (PyTorch's).
pub(crate) const DTYPE_NAMES: [(DType, &str); 6] = [
    (DType::F32, "float32"),
    (DType::F64, "float64"),
    (DType::F16, "float16"),
    (DType::BF16, "bfloat16"),
    (DType::I64, "int64"),
    (DType::Bool, "bool"),
];

/// PyTorch's name of `d`.
pub(crate) fn dtype_name(d: DType) -> &'static str {
    DTYPE_NAMES
        .iter()
        .find(|(x, _)| *x == d)
        .map_or("?", |(_, n)| n)
}

#[pymethods]
impl PyDType {
    fn __repr__(&self) -> String {
        format!("ember.{}", dtype_name(self.d))
    }

    /// True for float32, float64, float16 and bfloat16.
    #[getter]
    fn is_floating_point(&self) -> bool {
        self.d.is_float()
    }

    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.d.size_in_bytes()
    }
}

/// A dtype argument: an `ember.dtype` or its name (`"float32"`, `"bf16"` is not accepted).
pub(crate) fn dtype_arg(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(d) = obj.cast::<PyDType>() {
        return Ok(d.get().d);
    }
    if let Ok(name) = obj.extract::<String>() {
        let name = name.strip_prefix("ember.").unwrap_or(&name);
        if let Some((d, _)) = DTYPE_NAMES.iter().find(|(_, n)| *n == name) {
            return Ok(*d);
        }
        return Err(PyValueError::new_err(format!(
            "unknown dtype {name:?}: expected one of float32, float64, float16, bfloat16, int64, bool"
        )));
    }
    Err(PyTypeError::new_err(format!(
        "dtype must be an ember.dtype such as ember.float32, not {}",
        obj.get_type().name()?
    )))
}

/// A device argument: `"cpu"`, `"wgpu"`, `"wgpu:N"` (`None`: the CPU).
pub(crate) fn device_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Device> {
    match obj {
        None => Ok(Device::Cpu),
        Some(o) if o.is_none() => Ok(Device::Cpu),
        Some(o) => {
            let s: String = o.extract().map_err(|_| {
                PyTypeError::new_err("device must be a string: \"cpu\", \"wgpu\" or \"wgpu:N\"")
            })?;
            s.parse::<Device>().map_err(PyValueError::new_err)
        }
    }
}

/// Values gathered from nested Python sequences, by the widest kind met.
enum Flat {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Float(Vec<f64>),
}

/// Walks nested lists and tuples of numbers: the shape and the values in order. Ragged
/// nesting and non-numbers are `ValueError`/`TypeError`.
fn gather(
    obj: &Bound<'_, PyAny>,
    depth: usize,
    shape: &mut Vec<usize>,
    out: &mut Flat,
) -> PyResult<()> {
    const MAX_DEPTH: usize = 64;
    let seq: Option<Vec<Bound<'_, PyAny>>> = if let Ok(l) = obj.cast::<PyList>() {
        Some(l.iter().collect())
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        Some(t.iter().collect())
    } else {
        None
    };
    match seq {
        Some(items) => {
            if depth >= MAX_DEPTH {
                return Err(PyValueError::new_err(
                    "tensor data nests deeper than 64 levels",
                ));
            }
            if shape.len() == depth {
                shape.push(items.len());
            } else if shape.len() < depth || shape[depth] != items.len() {
                return Err(PyValueError::new_err(format!(
                    "tensor data is ragged: a sequence of length {} at depth {depth} where {} was expected",
                    items.len(),
                    shape.get(depth).copied().unwrap_or(0)
                )));
            }
            for item in &items {
                gather(item, depth + 1, shape, out)?;
            }
            Ok(())
        }
        None => {
            if shape.len() != depth {
                return Err(PyValueError::new_err(format!(
                    "tensor data is ragged: a number at depth {depth} where sequences of depth {} were expected",
                    shape.len()
                )));
            }
            push_scalar(obj, out)
        }
    }
}

fn push_scalar(obj: &Bound<'_, PyAny>, out: &mut Flat) -> PyResult<()> {
    if obj.is_instance_of::<PyBool>() {
        let b: bool = obj.extract()?;
        match out {
            Flat::Bool(v) => v.push(b),
            Flat::Int(v) => v.push(b as i64),
            Flat::Float(v) => v.push(b as i64 as f64),
        }
    } else if obj.is_instance_of::<PyInt>() {
        let i: i64 = obj.extract().map_err(|_| {
            PyValueError::new_err("an integer in tensor data does not fit in int64")
        })?;
        match out {
            Flat::Bool(v) => {
                let mut w: Vec<i64> = v.iter().map(|&b| b as i64).collect();
                w.push(i);
                *out = Flat::Int(w);
            }
            Flat::Int(v) => v.push(i),
            Flat::Float(v) => v.push(i as f64),
        }
    } else if obj.is_instance_of::<PyFloat>() || obj.hasattr("__float__")? {
        let x: f64 = obj.extract().map_err(|_| {
            PyTypeError::new_err("tensor data must be numbers, bools or nested sequences of them")
        })?;
        match out {
            Flat::Bool(v) => {
                let mut w: Vec<f64> = v.iter().map(|&b| b as i64 as f64).collect();
                w.push(x);
                *out = Flat::Float(w);
            }
            Flat::Int(v) => {
                let mut w: Vec<f64> = v.iter().map(|&i| i as f64).collect();
                w.push(x);
                *out = Flat::Float(w);
            }
            Flat::Float(v) => v.push(x),
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "tensor data must be numbers, bools or nested sequences of them, not {}",
            obj.get_type().name()?
        )));
    }
    Ok(())
}

/// A tensor from nested sequences or a scalar, with PyTorch's dtype inference (floats →
/// float32, ints → int64, bools → bool) unless `dtype` is given.
pub(crate) fn from_python(
    obj: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    device: Device,
) -> PyResult<Tensor> {
    if obj.cast::<numpy::PyUntypedArray>().is_ok() {
        let t = array_to_tensor(obj, device).map_err(|_| {
            let dt = obj
                .getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_else(|_| "?".into());
            PyTypeError::new_err(format!(
                "NumPy arrays of dtype {dt} are not supported: use float32/64, float16, int64/32/16/8, uint8 or bool"
            ))
        })?;
        return match dtype {
            Some(d) if d != t.dtype() => t.to_dtype(d).or_py(),
            _ => Ok(t),
        };
    }
    let mut shape = Vec::new();
    let mut flat = Flat::Bool(Vec::new());
    gather(obj, 0, &mut shape, &mut flat)?;
    let t = match flat {
        Flat::Bool(v) if !v.is_empty() || dtype == Some(DType::Bool) => {
            Tensor::from_vec(v, &shape, device)
        }
        Flat::Bool(_) => Tensor::from_vec(Vec::<f32>::new(), &shape, device),
        Flat::Int(v) => Tensor::from_vec(v, &shape, device),
        Flat::Float(v) => {
            let want = dtype.filter(|d| d.is_float()).unwrap_or(DType::F32);
            if want == DType::F64 {
                Tensor::from_vec(v, &shape, device)
            } else {
                Tensor::from_vec(
                    v.into_iter().map(|x| x as f32).collect::<Vec<f32>>(),
                    &shape,
                    device,
                )
            }
        }
    }
    .or_py()?;
    match dtype {
        Some(d) if d != t.dtype() => t.to_dtype(d).or_py(),
        _ => Ok(t),
    }
}

/// A NumPy array (float32/64, float16, int64/32/16/8, uint8, bool) as a tensor, copied; an
/// error when `obj` is not one.
pub(crate) fn array_to_tensor(obj: &Bound<'_, PyAny>, device: Device) -> PyResult<Tensor> {
    macro_rules! try_as {
        ($t:ty, $conv:expr, $rt:ty) => {
            if let Ok(a) = obj.cast::<PyArrayDyn<$t>>() {
                let shape: Vec<usize> = a.shape().to_vec();
                let ro = a.readonly();
                let values: Vec<$rt> = ro.as_array().iter().map(|&x| $conv(x)).collect();
                return Tensor::from_vec(values, &shape, device).or_py();
            }
        };
    }
    try_as!(f32, |x| x, f32);
    try_as!(f64, |x| x, f64);
    try_as!(half::f16, |x| x, half::f16);
    try_as!(i64, |x| x, i64);
    try_as!(i32, |x| x as i64, i64);
    try_as!(i16, |x| x as i64, i64);
    try_as!(i8, |x| x as i64, i64);
    try_as!(u8, |x| x as i64, i64);
    try_as!(bool, |x| x, bool);
    Err(PyTypeError::new_err(
        "not a NumPy array of a supported dtype",
    ))
}

/// The tensor's values as nested Python lists (a number for a 0-d tensor).
pub(crate) fn to_python(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    let dims = t.dims().to_vec();
    fn nest<'py, T: Copy + IntoPyObjectExt<'py>>(
        py: Python<'py>,
        dims: &[usize],
        values: &[T],
    ) -> PyResult<Py<PyAny>> {
        if dims.is_empty() {
            return Ok(values[0].into_bound_py_any(py)?.unbind());
        }
        let step = values.len() / dims[0].max(1);
        let items = (0..dims[0])
            .map(|i| nest(py, &dims[1..], &values[i * step..(i + 1) * step]))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, items)?.into_any().unbind())
    }
    match t.dtype() {
        DType::Bool => nest(py, &dims, &t.to_vec::<bool>().or_py()?),
        DType::I64 => nest(py, &dims, &t.to_vec::<i64>().or_py()?),
        _ => nest(py, &dims, &t.to_vec::<f64>().or_py()?),
    }
}
