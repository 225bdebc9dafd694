//! Checkpoint files from Python: `ember.save_file(tensors, path)` writes a safetensors file
//! atomically, `ember.load_file(path)` reads one (or a sharded directory) as a dict, as the
//! `safetensors` package's `torch` helpers do.

use std::collections::HashMap;
use std::path::PathBuf;

use ember::{Checkpoint, Device, Tensor, save_safetensors};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{device_arg, dtype_arg};
use crate::errors::run;
use crate::tensor::PyTensor;

/// Writes `tensors` (a dict of name → tensor) to `path` as safetensors, atomically; floats
/// cast to `dtype` when given; `metadata` a dict of strings.
#[pyfunction]
#[pyo3(signature = (tensors, filename, metadata = None, dtype = None))]
pub(crate) fn save_file(
    py: Python<'_>,
    tensors: &Bound<'_, PyDict>,
    filename: PathBuf,
    metadata: Option<HashMap<String, String>>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let dtype = dtype.map(dtype_arg).transpose()?;
    let mut named: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (k, v) in tensors.iter() {
        let name: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err("save_file: tensor names must be strings"))?;
        let t = v
            .cast::<PyTensor>()
            .map_err(|_| PyTypeError::new_err(format!("save_file: {name} is not an ember.Tensor")))?
            .borrow()
            .t
            .detach();
        named.push((name, t));
    }
    run(py, move || {
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        save_safetensors(&filename, &refs, dtype, metadata)
    })
}

/// The tensors of a safetensors file (or a directory of shards) as a dict, on `device`.
#[pyfunction]
#[pyo3(signature = (filename, device = None))]
pub(crate) fn load_file<'py>(
    py: Python<'py>,
    filename: PathBuf,
    device: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let device: Device = device_arg(device)?;
    let loaded = run(py, move || {
        let ck = Checkpoint::open(&filename)?;
        ck.names()
            .into_iter()
            .map(|n| Ok((n.to_string(), ck.load(n, device, None)?)))
            .collect::<ember::Result<Vec<_>>>()
    })?;
    let d = PyDict::new(py);
    for (name, t) in loaded {
        d.set_item(name, PyTensor::new(t))?;
    }
    Ok(d)
}
