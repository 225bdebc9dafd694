//! `ember.nn.functional`'s convolutions and pooling, with PyTorch's names and arguments: an
//! int or a tuple for each spatial size (`stride`, `padding`, `dilation`, `kernel_size`),
//! numeric padding only (Ember has no `"same"`/`"valid"` strings).

use ember::{ConvOpts, PoolOpts, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::run;
use crate::tensor::PyTensor;

/// `v` as [`sizes`], or `default` in every dim when absent (`None`).
fn sizes_or<const D: usize>(
    name: &str,
    v: Option<&Bound<'_, PyAny>>,
    default: usize,
    min: usize,
) -> PyResult<[usize; D]> {
    match v.filter(|v| !v.is_none()) {
        Some(v) => sizes::<D>(name, v, min),
        None => Ok([default; D]),
    }
}

/// An int for every spatial dim, or a tuple of `D` ints, each at least `min`.
fn sizes<const D: usize>(name: &str, v: &Bound<'_, PyAny>, min: usize) -> PyResult<[usize; D]> {
    let bad = || {
        PyValueError::new_err(format!(
            "{name} must be an int or a tuple of {D} ints, each at least {min}"
        ))
    };
    let out: [usize; D] = if let Ok(n) = v.extract::<i64>() {
        [usize::try_from(n).map_err(|_| bad())?; D]
    } else {
        let list: Vec<i64> = v.extract().map_err(|_| bad())?;
        let list: Vec<usize> = list
            .into_iter()
            .map(|n| usize::try_from(n).map_err(|_| bad()))
            .collect::<PyResult<_>>()?;
        list.try_into().map_err(|_| bad())?
    };
    if out.iter().any(|&n| n < min) {
        return Err(bad());
    }
    Ok(out)
}

/// The convolution options from PyTorch's arguments (numeric padding only).
fn conv_opts<const D: usize>(
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    groups: usize,
) -> PyResult<ConvOpts<D>> {
    if padding.is_some_and(|p| p.extract::<String>().is_ok()) {
        return Err(PyValueError::new_err(
            "padding must be numeric: Ember has no 'same'/'valid' padding (pad explicitly)",
        ));
    }
    Ok(ConvOpts {
        stride: sizes_or::<D>("stride", stride, 1, 1)?,
        padding: sizes_or::<D>("padding", padding, 0, 0)?,
        dilation: sizes_or::<D>("dilation", dilation, 1, 1)?,
        groups,
    })
}

macro_rules! convs {
    ($name:ident, $d:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyfunction]
        #[pyo3(signature = (input, weight, bias = None, stride = None, padding = None, dilation = None, groups = 1))]
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name(
            py: Python<'_>,
            input: PyRef<'_, PyTensor>,
            weight: PyRef<'_, PyTensor>,
            bias: Option<PyRef<'_, PyTensor>>,
            stride: Option<Bound<'_, PyAny>>,
            padding: Option<Bound<'_, PyAny>>,
            dilation: Option<Bound<'_, PyAny>>,
            groups: usize,
        ) -> PyResult<PyTensor> {
            let o = conv_opts::<$d>(stride.as_ref(), padding.as_ref(), dilation.as_ref(), groups)?;
            let (x, w, b) = (input.t.clone(), weight.t.clone(), bias.map(|b| b.t.clone()));
            Ok(PyTensor::new(run(py, move || x.$name(&w, b.as_ref(), o))?))
        }
    };
}

convs!(
    conv1d,
    1,
    "`torch.nn.functional.conv1d`: input `(N, C, L)`, weight `(O, C/groups, K)`."
);
convs!(
    conv2d,
    2,
    "`torch.nn.functional.conv2d`: input `(N, C, H, W)`, weight `(O, C/groups, KH, KW)`."
);

/// A pooling window from PyTorch's arguments (`stride` defaults to the kernel).
fn window<const D: usize>(
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
) -> PyResult<PoolOpts<D>> {
    let kernel = sizes::<D>("kernel_size", kernel_size, 1)?;
    let mut o = PoolOpts::new(kernel)
        .padding(sizes_or::<D>("padding", padding, 0, 0)?)
        .dilation(sizes_or::<D>("dilation", dilation, 1, 1)?);
    if let Some(s) = stride.filter(|s| !s.is_none()) {
        o = o.stride(sizes::<D>("stride", s, 1)?);
    }
    Ok(o)
}

macro_rules! pools {
    ($max:ident, $avg:ident, $adaptive:ident, $d:literal, $rmax:ident, $ravg:ident, $radaptive:ident) => {
        /// `torch.nn.functional.max_pool*d` (no `ceil_mode`, no `return_indices`).
        #[pyfunction]
        #[pyo3(signature = (input, kernel_size, stride = None, padding = None, dilation = None))]
        pub(crate) fn $max(
            py: Python<'_>,
            input: PyRef<'_, PyTensor>,
            kernel_size: Bound<'_, PyAny>,
            stride: Option<Bound<'_, PyAny>>,
            padding: Option<Bound<'_, PyAny>>,
            dilation: Option<Bound<'_, PyAny>>,
        ) -> PyResult<PyTensor> {
            let o = window::<$d>(&kernel_size, stride.as_ref(), padding.as_ref(), dilation.as_ref())?;
            let x: Tensor = input.t.clone();
            Ok(PyTensor::new(run(py, move || x.$rmax(o))?))
        }

        /// `torch.nn.functional.avg_pool*d` (no `ceil_mode`).
        #[pyfunction]
        #[pyo3(signature = (input, kernel_size, stride = None, padding = None, count_include_pad = true))]
        pub(crate) fn $avg(
            py: Python<'_>,
            input: PyRef<'_, PyTensor>,
            kernel_size: Bound<'_, PyAny>,
            stride: Option<Bound<'_, PyAny>>,
            padding: Option<Bound<'_, PyAny>>,
            count_include_pad: bool,
        ) -> PyResult<PyTensor> {
            let o = window::<$d>(&kernel_size, stride.as_ref(), padding.as_ref(), None)?;
            let x: Tensor = input.t.clone();
            Ok(PyTensor::new(run(py, move || x.$ravg(o, count_include_pad))?))
        }

        /// `torch.nn.functional.adaptive_avg_pool*d`.
        #[pyfunction]
        pub(crate) fn $adaptive(
            py: Python<'_>,
            input: PyRef<'_, PyTensor>,
            output_size: Bound<'_, PyAny>,
        ) -> PyResult<PyTensor> {
            let out = sizes::<$d>("output_size", &output_size, 1)?;
            let x: Tensor = input.t.clone();
            Ok(PyTensor::new(run(py, move || x.$radaptive(out))?))
        }
    };
}

pools!(
    max_pool1d,
    avg_pool1d,
    adaptive_avg_pool1d,
    1,
    max_pool1d,
    avg_pool1d,
    adaptive_avg_pool1d
);
pools!(
    max_pool2d,
    avg_pool2d,
    adaptive_avg_pool2d,
    2,
    max_pool2d,
    avg_pool2d,
    adaptive_avg_pool2d
);
