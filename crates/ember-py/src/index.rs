//! `t[key]` as in PyTorch: ints, slices with steps, `None`, `...`, tuples of them; an int64
//! tensor or list of ints picks positions along its dim (`index_select`), a bool tensor picks
//! the elements where it is true (`masked_select`).

use ember::{DType, Ix, Tensor};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyEllipsis, PyList, PySlice, PyTuple};

use crate::errors::run;
use crate::tensor::PyTensor;

/// One item of a key.
enum Item {
    Basic(Ix),
    Positions(Tensor),
}

fn item(py: Python<'_>, k: &Bound<'_, PyAny>) -> PyResult<Item> {
    if k.is_none() {
        return Ok(Item::Basic(Ix::NewAxis));
    }
    if k.is_instance_of::<PyEllipsis>() {
        return Ok(Item::Basic(Ix::Ellipsis));
    }
    if let Ok(s) = k.cast::<PySlice>() {
        let get = |name: &str| -> PyResult<Option<isize>> {
            let v = s.getattr(name)?;
            if v.is_none() {
                Ok(None)
            } else {
                v.extract().map(Some)
            }
        };
        let step = get("step")?.unwrap_or(1);
        if step <= 0 {
            return Err(PyValueError::new_err(
                "slice steps must be positive (as in PyTorch)",
            ));
        }
        return Ok(Item::Basic(Ix::step(
            get("start")?,
            get("stop")?,
            step as usize,
        )));
    }
    if let Ok(t) = k.cast::<PyTensor>() {
        return Ok(Item::Positions(t.borrow().t.clone()));
    }
    if k.is_instance_of::<PyList>() {
        let ids: Vec<i64> = k
            .extract()
            .map_err(|_| PyTypeError::new_err("a list index must hold ints"))?;
        let n = ids.len();
        let t = py.detach(|| Tensor::from_vec(ids, &[n], ember::Device::Cpu));
        return Ok(Item::Positions(t.map_err(crate::errors::to_py)?));
    }
    if let Ok(i) = k.extract::<isize>() {
        return Ok(Item::Basic(Ix::At(i)));
    }
    Err(PyTypeError::new_err(format!(
        "tensor indices must be ints, slices, None, ..., int64/bool tensors or lists of ints, not {}",
        k.get_type().name()?
    )))
}

pub(crate) fn getitem(py: Python<'_>, t: &Tensor, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let items: Vec<Item> = match key.cast::<PyTuple>() {
        Ok(tuple) => tuple
            .iter()
            .map(|k| item(py, &k))
            .collect::<PyResult<_>>()?,
        Err(_) => vec![item(py, key)?],
    };
    let tensors = items
        .iter()
        .filter(|i| matches!(i, Item::Positions(_)))
        .count();
    if tensors > 1 {
        return Err(PyIndexError::new_err(
            "at most one tensor or list in an index (advanced indexing with several is not supported)",
        ));
    }
    // Basic indexing first, the tensor's place kept as a full slice; then where it lands.
    let consuming = items
        .iter()
        .filter(|i| {
            matches!(
                i,
                Item::Basic(Ix::At(_) | Ix::Slice { .. }) | Item::Positions(_)
            )
        })
        .count();
    let mut basic = Vec::with_capacity(items.len());
    let (mut at_dim, mut pick) = (0usize, None);
    for i in items {
        match i {
            Item::Basic(ix) => {
                if pick.is_none() {
                    at_dim += match ix {
                        Ix::At(_) => 0,
                        Ix::Ellipsis => t.rank().saturating_sub(consuming),
                        _ => 1,
                    };
                }
                basic.push(ix);
            }
            Item::Positions(p) => {
                pick = Some(p);
                basic.push(Ix::step(None, None, 1));
            }
        }
    }
    let t = t.clone();
    let out = run(py, move || {
        let picked = t.i(basic)?;
        match pick {
            None => Ok(picked),
            Some(p) if p.dtype() == DType::Bool => {
                if at_dim != 0 || p.rank() != picked.rank() {
                    return Err(ember::Error::shape(
                        "index",
                        &[p.dims(), picked.dims()],
                        "a bool mask indexes the whole tensor, shape for shape",
                    ));
                }
                picked.masked_select(&p)
            }
            Some(p) => {
                let flat = p.reshape(&[-1])?;
                let chosen = picked.index_select(at_dim as isize, &flat)?;
                let mut dims: Vec<isize> = chosen.dims().iter().map(|&d| d as isize).collect();
                dims.splice(at_dim..at_dim + 1, p.dims().iter().map(|&d| d as isize));
                chosen.reshape(&dims)
            }
        }
    })?;
    Ok(PyTensor::new(out))
}
