//! The ops outside the tables that PyTorch users call by name, bound with PyTorch's names,
//! arguments and return values: elementwise pairs (`maximum`, `lerp`, `logical_and`, ...),
//! reductions with options (`var`, `std`, `norm`, `logsumexp`, `prod`, `any`, `all`), scans,
//! rearrangements (`flip`, `roll`, `repeat`, `tile`, `split`, `chunk`, `diagonal`), indexing
//! (`gather`, `index_select`, `scatter_add`, `masked_select`, `nonzero`), sorting (`sort`,
//! `argsort`, `topk`), `tril`/`triu`, `baddbmm`, the in-place updates (`add_`, `fill_`, ...),
//! and the module functions `where`, `einsum`, `one_hot`, `pad`, adaptive max pooling.

use ember::{Operand, PadMode, Tensor};
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

fn many(py: Python<'_>, ts: Vec<Tensor>) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, ts.into_iter().map(PyTensor::new))
}

/// `dim` as PyTorch takes it: None (every dim), an int or a tuple of ints.
fn dims_of(dim: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<isize>> {
    match dim.filter(|d| !d.is_none()) {
        None => Ok(Vec::new()),
        Some(d) => match d.extract::<isize>() {
            Ok(one) => Ok(vec![one]),
            Err(_) => d.extract::<Vec<isize>>(),
        },
    }
}

/// `var`/`std`'s correction from PyTorch's two spellings: `correction` (default 1, Bessel's)
/// or the older `unbiased` (`False` is 0); not both.
fn correction_of(correction: Option<usize>, unbiased: Option<bool>) -> PyResult<usize> {
    match (correction, unbiased) {
        (Some(_), Some(_)) => Err(PyValueError::new_err(
            "var/std: pass correction or unbiased, not both",
        )),
        (Some(c), None) => Ok(c),
        (None, u) => Ok(usize::from(u != Some(false))),
    }
}

/// Non-negative sizes.
fn usizes(v: Vec<isize>, what: &str) -> PyResult<Vec<usize>> {
    v.into_iter()
        .map(|s| {
            usize::try_from(s).map_err(|_| PyValueError::new_err(format!("{what} must be ≥ 0")))
        })
        .collect()
}

macro_rules! pairwise {
    ($($name:ident => $rust:ident),* $(,)?) => {
        #[pymethods]
        impl PyTensor {
            $(
                #[doc = concat!("`torch.", stringify!($name), "(self, other)`.")]
                fn $name(&self, py: Python<'_>, other: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
                    let o = other.t.clone();
                    op(py, &self.t, move |t| t.$rust(&o))
                }
            )*
        }
    };
}

pairwise!(
    maximum => maximum,
    minimum => minimum,
    outer => outer,
    logical_and => logical_and,
    logical_or => logical_or,
    logical_xor => logical_xor,
    masked_select => masked_select,
);

macro_rules! in_place {
    ($($name:ident),* $(,)?) => {
        #[pymethods]
        impl PyTensor {
            $(
                #[doc = concat!("`t.", stringify!($name), "(other)`: in place (refused on tensors autograd tracks).")]
                fn $name<'py>(mut slf: PyRefMut<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<PyRefMut<'py, Self>> {
                    let mut t = slf.t.clone();
                    let py = slf.py();
                    let new = match other.cast::<PyTensor>() {
                        Ok(o) => {
                            let o = o.borrow().t.clone();
                            run(py, move || { t.$name(&o)?; Ok(t) })?
                        }
                        Err(_) => {
                            let s: f64 = other.extract()?;
                            run(py, move || { t.$name(s)?; Ok(t) })?
                        }
                    };
                    slf.t = new;
                    Ok(slf)
                }
            )*
        }
    };
}

in_place!(add_, sub_, mul_, div_);

#[pymethods]
impl PyTensor {
    /// `t.copy_(src)`: src's values (broadcast) in place.
    fn copy_<'py>(
        mut slf: PyRefMut<'py, Self>,
        src: PyRef<'py, PyTensor>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let (mut t, s) = (slf.t.clone(), src.t.clone());
        slf.t = run(slf.py(), move || {
            t.copy_(&s)?;
            Ok(t)
        })?;
        Ok(slf)
    }

    /// `t.fill_(value)` in place.
    fn fill_<'py>(mut slf: PyRefMut<'py, Self>, value: f64) -> PyResult<PyRefMut<'py, Self>> {
        let mut t = slf.t.clone();
        slf.t = run(slf.py(), move || {
            t.fill_(value)?;
            Ok(t)
        })?;
        Ok(slf)
    }

    /// `torch.lerp(self, end, weight)` with a tensor weight.
    fn lerp(
        &self,
        py: Python<'_>,
        end: PyRef<'_, PyTensor>,
        weight: PyRef<'_, PyTensor>,
    ) -> PyResult<PyTensor> {
        let (e, w) = (end.t.clone(), weight.t.clone());
        op(py, &self.t, move |t| t.lerp(&e, &w))
    }

    fn logical_not(&self, py: Python<'_>) -> PyResult<PyTensor> {
        op(py, &self.t, |t| t.logical_not())
    }

    /// Variance over `dim` (all when None) with `correction` (1: Bessel's, as PyTorch;
    /// `unbiased=False` is 0).
    #[pyo3(signature = (dim = None, *, correction = None, unbiased = None, keepdim = false))]
    fn var(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        correction: Option<usize>,
        unbiased: Option<bool>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let (dims, c) = (dims_of(dim)?, correction_of(correction, unbiased)?);
        op(py, &self.t, move |t| t.var(&dims, c, keepdim))
    }

    /// Standard deviation, with `var`'s arguments.
    #[pyo3(signature = (dim = None, *, correction = None, unbiased = None, keepdim = false))]
    fn std(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        correction: Option<usize>,
        unbiased: Option<bool>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let (dims, c) = (dims_of(dim)?, correction_of(correction, unbiased)?);
        op(py, &self.t, move |t| t.std(&dims, c, keepdim))
    }

    #[pyo3(signature = (dim, keepdim = false))]
    fn logsumexp(
        &self,
        py: Python<'_>,
        dim: &Bound<'_, PyAny>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = dims_of(Some(dim))?;
        op(py, &self.t, move |t| t.logsumexp(&dims, keepdim))
    }

    #[pyo3(signature = (dim = None, keepdim = false))]
    fn prod(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = dims_of(dim)?;
        op(py, &self.t, move |t| t.prod(&dims, keepdim))
    }

    #[pyo3(signature = (dim = None, keepdim = false))]
    fn any(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = dims_of(dim)?;
        op(py, &self.t, move |t| t.any(&dims, keepdim))
    }

    #[pyo3(signature = (dim = None, keepdim = false))]
    fn all(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = dims_of(dim)?;
        op(py, &self.t, move |t| t.all(&dims, keepdim))
    }

    /// The p-norm over `dim` (all when None); `p` a number, `inf`, or `"fro"` (2).
    #[pyo3(signature = (p = None, dim = None, keepdim = false))]
    fn norm(
        &self,
        py: Python<'_>,
        p: Option<&Bound<'_, PyAny>>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let p = match p.filter(|p| !p.is_none()) {
            None => 2.0,
            Some(p) => match p.extract::<String>() {
                Ok(s) if s == "fro" => 2.0,
                Ok(s) => {
                    return Err(PyValueError::new_err(format!(
                        "norm: p {s:?} is not a number or 'fro'"
                    )));
                }
                Err(_) => p.extract::<f64>()?,
            },
        };
        let dims = dims_of(dim)?;
        op(py, &self.t, move |t| t.norm(p, &dims, keepdim))
    }

    fn cumsum(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.cumsum(dim))
    }

    fn cumprod(&self, py: Python<'_>, dim: isize) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.cumprod(dim))
    }

    #[pyo3(signature = (*dims))]
    fn flip(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = dims_arg(dims)?;
        op(py, &self.t, move |t| t.flip(&dims))
    }

    /// `torch.roll(self, shifts, dims)`; without `dims` the flattened tensor rolls.
    #[pyo3(signature = (shifts, dims = None))]
    fn roll(
        &self,
        py: Python<'_>,
        shifts: &Bound<'_, PyAny>,
        dims: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let s = dims_of(Some(shifts))?;
        let d = dims_of(dims)?;
        let shape = self.t.dims().to_vec();
        op(py, &self.t, move |t| match d.is_empty() {
            true => t
                .reshape(&[-1])?
                .roll(&s, &[0])?
                .reshape(&shape.iter().map(|&v| v as isize).collect::<Vec<_>>()),
            false => t.roll(&s, &d),
        })
    }

    #[pyo3(signature = (*sizes))]
    fn repeat(&self, py: Python<'_>, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let s = usizes(dims_arg(sizes)?, "repeat sizes")?;
        op(py, &self.t, move |t| t.repeat(&s))
    }

    #[pyo3(signature = (*dims))]
    fn tile(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let s = usizes(dims_arg(dims)?, "tile reps")?;
        op(py, &self.t, move |t| t.tile(&s))
    }

    #[pyo3(signature = (*size))]
    fn broadcast_to(&self, py: Python<'_>, size: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let s = usizes(dims_arg(size)?, "broadcast_to sizes")?;
        op(py, &self.t, move |t| t.broadcast_to(&s))
    }

    #[pyo3(signature = (offset = 0, dim1 = 0, dim2 = 1))]
    fn diagonal(
        &self,
        py: Python<'_>,
        offset: isize,
        dim1: isize,
        dim2: isize,
    ) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.diagonal(offset, dim1, dim2))
    }

    #[pyo3(signature = (diagonal = 0))]
    fn tril(&self, py: Python<'_>, diagonal: i64) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.tril(diagonal))
    }

    #[pyo3(signature = (diagonal = 0))]
    fn triu(&self, py: Python<'_>, diagonal: i64) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.triu(diagonal))
    }

    /// Pieces of `split_size` along `dim` (a list of sizes splits into those).
    #[pyo3(signature = (split_size, dim = 0))]
    fn split<'py>(
        &self,
        py: Python<'py>,
        split_size: &Bound<'py, PyAny>,
        dim: isize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let t = self.t.clone();
        let parts = match split_size.extract::<usize>() {
            Ok(n) => run(py, move || t.split(n, dim))?,
            Err(_) => {
                let sizes: Vec<usize> = split_size.extract()?;
                run(py, move || t.split_sizes(&sizes, dim))?
            }
        };
        many(py, parts)
    }

    #[pyo3(signature = (chunks, dim = 0))]
    fn chunk<'py>(
        &self,
        py: Python<'py>,
        chunks: usize,
        dim: isize,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let t = self.t.clone();
        many(py, run(py, move || t.chunk(chunks, dim))?)
    }

    fn index_select(
        &self,
        py: Python<'_>,
        dim: isize,
        index: PyRef<'_, PyTensor>,
    ) -> PyResult<PyTensor> {
        let i = index.t.clone();
        op(py, &self.t, move |t| t.index_select(dim, &i))
    }

    fn gather(&self, py: Python<'_>, dim: isize, index: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let i = index.t.clone();
        op(py, &self.t, move |t| t.gather(dim, &i))
    }

    fn scatter_add(
        &self,
        py: Python<'_>,
        dim: isize,
        index: PyRef<'_, PyTensor>,
        src: PyRef<'_, PyTensor>,
    ) -> PyResult<PyTensor> {
        let (i, s) = (index.t.clone(), src.t.clone());
        op(py, &self.t, move |t| t.scatter_add(dim, &i, &s))
    }

    fn nonzero(&self, py: Python<'_>) -> PyResult<PyTensor> {
        op(py, &self.t, |t| t.nonzero())
    }

    /// `(values, indices)` sorted along `dim` (stable).
    #[pyo3(signature = (dim = -1, descending = false))]
    fn sort<'py>(
        &self,
        py: Python<'py>,
        dim: isize,
        descending: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let t = self.t.clone();
        let (v, i) = run(py, move || t.sort(dim, descending))?;
        many(py, vec![v, i])
    }

    #[pyo3(signature = (dim = -1, descending = false))]
    fn argsort(&self, py: Python<'_>, dim: isize, descending: bool) -> PyResult<PyTensor> {
        op(py, &self.t, move |t| t.argsort(dim, descending))
    }

    /// `(values, indices)` of the `k` largest (or smallest) along `dim`, sorted.
    #[pyo3(signature = (k, dim = -1, largest = true))]
    fn topk<'py>(
        &self,
        py: Python<'py>,
        k: usize,
        dim: isize,
        largest: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let t = self.t.clone();
        let (v, i) = run(py, move || t.topk(k, dim, largest))?;
        many(py, vec![v, i])
    }

    /// `beta · self + alpha · batch1 @ batch2`.
    #[pyo3(signature = (batch1, batch2, *, beta = 1.0, alpha = 1.0))]
    fn baddbmm(
        &self,
        py: Python<'_>,
        batch1: PyRef<'_, PyTensor>,
        batch2: PyRef<'_, PyTensor>,
        beta: f64,
        alpha: f64,
    ) -> PyResult<PyTensor> {
        let (a, b) = (batch1.t.clone(), batch2.t.clone());
        op(py, &self.t, move |t| t.baddbmm(&a, &b, beta, alpha))
    }
}

/// `torch.where(condition, input, other)`: tensors or Python numbers.
#[pyfunction]
#[pyo3(name = "where")]
pub(crate) fn where_(
    py: Python<'_>,
    condition: PyRef<'_, PyTensor>,
    input: &Bound<'_, PyAny>,
    other: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    enum Arg {
        T(Tensor),
        F(f64),
        I(i64),
    }
    let arg = |v: &Bound<'_, PyAny>| -> PyResult<Arg> {
        if let Ok(t) = v.cast::<PyTensor>() {
            return Ok(Arg::T(t.borrow().t.clone()));
        }
        if v.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyValueError::new_err(
                "where: a bool operand must be a tensor",
            ));
        }
        match v.extract::<i64>() {
            Ok(i) if v.is_instance_of::<pyo3::types::PyInt>() => Ok(Arg::I(i)),
            _ => Ok(Arg::F(v.extract::<f64>()?)),
        }
    };
    let (a, b, c) = (arg(input)?, arg(other)?, condition.t.clone());
    Ok(PyTensor::new(run(py, move || {
        fn o(x: &Arg) -> Operand<'_> {
            match x {
                Arg::T(t) => Operand::Tensor(t),
                Arg::F(f) => Operand::Float(*f),
                Arg::I(i) => Operand::Int(*i),
            }
        }
        Tensor::where_(&c, o(&a), o(&b))
    })?))
}

/// `torch.einsum(equation, *operands)`.
#[pyfunction]
#[pyo3(signature = (equation, *operands))]
pub(crate) fn einsum(
    py: Python<'_>,
    equation: String,
    operands: &Bound<'_, PyTuple>,
) -> PyResult<PyTensor> {
    let items: Vec<Bound<'_, PyAny>> = match operands.len() {
        1 if !operands.get_item(0)?.is_instance_of::<PyTensor>() => {
            operands.get_item(0)?.try_iter()?.collect::<PyResult<_>>()?
        }
        _ => operands.iter().collect(),
    };
    let ts: Vec<Tensor> = items
        .iter()
        .map(|o| Ok(o.cast::<PyTensor>()?.borrow().t.clone()))
        .collect::<PyResult<_>>()?;
    Ok(PyTensor::new(run(py, move || {
        Tensor::einsum(&equation, &ts.iter().collect::<Vec<_>>())
    })?))
}

/// `torch.nn.functional.one_hot(tensor, num_classes=-1)`.
#[pyfunction]
#[pyo3(signature = (tensor, num_classes = -1))]
pub(crate) fn one_hot(
    py: Python<'_>,
    tensor: PyRef<'_, PyTensor>,
    num_classes: i64,
) -> PyResult<PyTensor> {
    let n = usize::try_from(num_classes).ok();
    op(py, &tensor.t, move |t| t.one_hot(n))
}

/// `torch.nn.functional.pad(input, pad, mode="constant", value=0)`.
#[pyfunction]
#[pyo3(signature = (input, pad, mode = "constant", value = None))]
pub(crate) fn pad(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    pad: Vec<isize>,
    mode: &str,
    value: Option<f64>,
) -> PyResult<PyTensor> {
    let mode = match mode {
        "constant" => PadMode::Constant(value.unwrap_or(0.0)),
        "reflect" => PadMode::Reflect,
        "replicate" => PadMode::Replicate,
        "circular" => PadMode::Circular,
        other => {
            return Err(PyValueError::new_err(format!(
                "pad: mode {other:?} is not constant, reflect, replicate or circular"
            )));
        }
    };
    op(py, &input.t, move |t| t.pad(&pad, mode))
}

/// `torch.nn.functional.adaptive_max_pool1d` (no indices).
#[pyfunction]
pub(crate) fn adaptive_max_pool1d(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    output_size: usize,
) -> PyResult<PyTensor> {
    op(py, &input.t, move |t| t.adaptive_max_pool1d([output_size]))
}

/// `torch.nn.functional.adaptive_max_pool2d` (no indices).
#[pyfunction]
pub(crate) fn adaptive_max_pool2d(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    output_size: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let out: [usize; 2] = match output_size.extract::<usize>() {
        Ok(n) => [n, n],
        Err(_) => output_size
            .extract::<(usize, usize)>()
            .map(|(a, b)| [a, b])?,
    };
    op(py, &input.t, move |t| t.adaptive_max_pool2d(out))
}
