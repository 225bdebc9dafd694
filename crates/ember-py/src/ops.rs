//! The op tables of `ember-core` (unary, binary, compare, reduce) in Python, from the tables
//! themselves: `t.exp()`, `t.add(u)`, `t.gt(0.5)`, `t.sum(dim=1, keepdim=True)`, ... are looked
//! up by PyTorch's name in `UnaryFn::ALL` and friends, so an op added to a table in Rust is a
//! method (and an `ember.<name>` function) in Python with nothing else to write.

use ember::Tensor;
use ember::{BinaryFn, CompareFn, ReduceFn, UnaryFn};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::errors::run;
use crate::tensor::{Operand, PyTensor, operand};

/// One op of the tables.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TableOp {
    Unary(UnaryFn),
    Binary(BinaryFn),
    Compare(CompareFn),
    Reduce(ReduceFn),
}

impl TableOp {
    /// The op with PyTorch's name `name`.
    pub(crate) fn from_name(name: &str) -> Option<TableOp> {
        UnaryFn::from_name(name)
            .map(TableOp::Unary)
            .or_else(|| BinaryFn::from_name(name).map(TableOp::Binary))
            .or_else(|| CompareFn::from_name(name).map(TableOp::Compare))
            .or_else(|| ReduceFn::from_name(name).map(TableOp::Reduce))
    }

    /// Every table op's name, table by table.
    pub(crate) fn names() -> Vec<&'static str> {
        UnaryFn::ALL
            .iter()
            .map(|f| f.name())
            .chain(BinaryFn::ALL.iter().map(|f| f.name()))
            .chain(CompareFn::ALL.iter().map(|f| f.name()))
            .chain(ReduceFn::ALL.iter().map(|f| f.name()))
            .collect()
    }

    /// PyTorch's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TableOp::Unary(f) => f.name(),
            TableOp::Binary(f) => f.name(),
            TableOp::Compare(f) => f.name(),
            TableOp::Reduce(f) => f.name(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            TableOp::Unary(_) => "unary",
            TableOp::Binary(_) => "binary",
            TableOp::Compare(_) => "compare",
            TableOp::Reduce(_) => "reduce",
        }
    }
}

/// `(kind, name)` of every table op: what `ember/__init__.py` makes module functions of.
#[pyfunction]
pub(crate) fn table_ops() -> Vec<(&'static str, &'static str)> {
    TableOp::names()
        .into_iter()
        .filter_map(|n| TableOp::from_name(n).map(|op| (op.kind(), n)))
        .collect()
}

/// `(scalar name, name)` of the binary and comparison ops with a scalar form (`add_scalar`,
/// `powf`, ...): the fixtures' names for `t.add(1.5)`, `t.pow(2.5)`, ...
#[pyfunction]
pub(crate) fn scalar_ops() -> Vec<(&'static str, &'static str)> {
    BinaryFn::ALL
        .iter()
        .map(|f| (f.scalar_name(), f.name()))
        .chain(CompareFn::ALL.iter().map(|f| (f.scalar_name(), f.name())))
        .collect()
}

/// `t <name> o` (or `o <name> t` when `reversed`) for a binary or comparison op of the tables,
/// `o` a tensor or a Python number.
pub(crate) fn binary_with(
    py: Python<'_>,
    t: &Tensor,
    name: &str,
    o: Operand,
    reversed: bool,
) -> PyResult<PyTensor> {
    let t = t.clone();
    let op = TableOp::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("no binary op named {name}")))?;
    let out = run(py, move || {
        let scalar_left = |s: f64| t.full_like(s);
        match (op, o, reversed) {
            (TableOp::Binary(f), Operand::Tensor(u), false) => t.binary(f, &u),
            (TableOp::Binary(f), Operand::Tensor(u), true) => u.binary(f, &t),
            (TableOp::Binary(f), Operand::Scalar(s), false) => t.binary_scalar(f, s),
            (TableOp::Binary(f), Operand::Scalar(s), true) => scalar_left(s)?.binary(f, &t),
            (TableOp::Compare(f), Operand::Tensor(u), false) => t.compare(f, &u),
            (TableOp::Compare(f), Operand::Tensor(u), true) => u.compare(f, &t),
            (TableOp::Compare(f), Operand::Scalar(s), false) => t.compare_scalar(f, s),
            (TableOp::Compare(f), Operand::Scalar(s), true) => scalar_left(s)?.compare(f, &t),
            _ => Err(ember::Error::Internal {
                op: "binary",
                msg: format!("{name} is not a binary op"),
            }),
        }
    })?;
    Ok(PyTensor::new(out))
}

/// A table op bound to its tensor: what `t.exp`, `t.sum`, ... return.
#[pyclass(name = "_BoundOp", module = "ember")]
pub(crate) struct BoundOp {
    t: Tensor,
    op: TableOp,
}

impl BoundOp {
    pub(crate) fn new(t: Tensor, op: TableOp) -> Self {
        BoundOp { t, op }
    }
}

/// The dims of a reduction: `None` (all), an int, or a sequence of ints.
fn reduce_dims(dim: Option<&Bound<'_, PyAny>>, rank: usize) -> PyResult<(Vec<isize>, bool)> {
    match dim {
        None => Ok(((0..rank as isize).collect(), false)),
        Some(d) if d.is_none() => Ok(((0..rank as isize).collect(), false)),
        Some(d) => match d.extract::<isize>() {
            Ok(one) => Ok((vec![one], true)),
            Err(_) => Ok((
                d.extract::<Vec<isize>>().map_err(|_| {
                    PyTypeError::new_err("dim must be an int, a sequence of ints, or None")
                })?,
                false,
            )),
        },
    }
}

#[pymethods]
impl BoundOp {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let kw = |k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            match kwargs {
                Some(d) => d.get_item(k),
                None => Ok(None),
            }
        };
        let name = self.op.name();
        let known: &[&str] = match self.op {
            TableOp::Unary(_) => &[],
            TableOp::Binary(_) | TableOp::Compare(_) => &["other"],
            TableOp::Reduce(_) => &["dim", "keepdim"],
        };
        if let Some(d) = kwargs {
            for k in d.keys() {
                let k: String = k.extract()?;
                if !known.contains(&k.as_str()) {
                    return Err(PyTypeError::new_err(format!(
                        "{name}() got an unexpected keyword argument '{k}'"
                    )));
                }
            }
        }
        let arg = |i: usize, k: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
            if args.len() > i {
                Ok(Some(args.get_item(i)?))
            } else {
                kw(k)
            }
        };
        if args.len() > known.len() {
            return Err(PyTypeError::new_err(format!(
                "{name}() takes {} positional arguments but {} were given",
                known.len(),
                args.len()
            )));
        }
        let t = self.t.clone();
        let out = match self.op {
            TableOp::Unary(f) => PyTensor::new(run(py, move || t.unary(f))?),
            TableOp::Binary(_) | TableOp::Compare(_) => {
                let other = arg(0, "other")?.ok_or_else(|| {
                    PyTypeError::new_err(format!("{name}() missing argument 'other'"))
                })?;
                binary_with(py, &t, name, operand(&other)?, false)?
            }
            TableOp::Reduce(f) => {
                let dim = arg(0, "dim")?;
                let keepdim = match arg(1, "keepdim")? {
                    Some(k) => k.extract::<bool>()?,
                    None => false,
                };
                let (dims, single) = reduce_dims(dim.as_ref(), t.rank())?;
                // torch.max(t, dim) / torch.min(t, dim) give (values, indices).
                if single && matches!(f, ReduceFn::Max | ReduceFn::Min) {
                    let d = dims[0];
                    let (v, i) = run(py, move || {
                        let v = t.reduce(f, &[d], keepdim)?;
                        let i = if f == ReduceFn::Max {
                            t.argmax(d, keepdim)?
                        } else {
                            t.argmin(d, keepdim)?
                        };
                        Ok((v, i))
                    })?;
                    let pair = (PyTensor::new(v), PyTensor::new(i));
                    return Ok(pair.into_pyobject(py)?.into_any().unbind());
                }
                PyTensor::new(run(py, move || t.reduce(f, &dims, keepdim))?)
            }
        };
        Ok(out.into_pyobject(py)?.into_any().unbind())
    }

    fn __repr__(&self) -> String {
        format!(
            "<bound method Tensor.{} of a tensor of shape {:?}>",
            self.op.name(),
            self.t.dims()
        )
    }
}
