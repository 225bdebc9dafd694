//! Ember's errors as Python exceptions, and the guard every call into Ember runs under: the
//! GIL released, and a panic (a bug) turned into a `RuntimeError` instead of a
//! `PanicException` that `except Exception` would not catch.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ember::Error;
use pyo3::exceptions::{
    PyFileNotFoundError, PyIndexError, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError,
    PyValueError,
};
use pyo3::prelude::*;

/// The Python exception of the fitting type for `e`, with Ember's message.
pub(crate) fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Shape { .. } | Error::Broadcast { .. } | Error::Data { .. } => {
            PyValueError::new_err(msg)
        }
        Error::DimOutOfRange { .. } | Error::Index { .. } => PyIndexError::new_err(msg),
        Error::DType { .. } | Error::UnsupportedDType { .. } => PyTypeError::new_err(msg),
        Error::TooLarge { .. } => PyMemoryError::new_err(msg),
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::Format { .. } => PyValueError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// `Result<T, ember::Error>` → `PyResult<T>`.
pub(crate) trait OrPy<T> {
    /// The value, or the fitting Python exception.
    fn or_py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for ember::Result<T> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// Runs `f` (Ember's work) with the GIL released, so other Python threads go on meanwhile;
/// a panic inside becomes a `RuntimeError` naming it as a bug.
pub(crate) fn run<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> ember::Result<T> + Send,
) -> PyResult<T> {
    let out = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match out {
        Ok(r) => r.or_py(),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(PyRuntimeError::new_err(format!(
                "internal error in Ember (a bug; please report it): {what}"
            )))
        }
    }
}
