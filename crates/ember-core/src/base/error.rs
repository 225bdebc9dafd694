//! The one error type of Ember.

use std::path::Path;
use std::sync::Arc;

use crate::{DType, Device};

/// Every fallible Ember call returns this error.
///
/// Each variant names the operation that failed and the offending shapes, dtypes or devices,
/// so that the message alone tells a user what went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Shapes that the operation cannot combine or accept.
    #[error("{op}: {msg}")]
    Shape {
        /// The operation, e.g. `"matmul"`.
        op: &'static str,
        /// The offending shapes, in argument order.
        shapes: Vec<Vec<usize>>,
        /// What is wrong, naming the shapes.
        msg: String,
    },
    /// Two shapes that do not broadcast against each other.
    #[error("{op}: shapes {lhs:?} and {rhs:?} cannot be broadcast together")]
    Broadcast {
        /// The operation.
        op: &'static str,
        /// The left shape.
        lhs: Vec<usize>,
        /// The right shape.
        rhs: Vec<usize>,
    },
    /// A dimension index outside `[-rank, rank)`.
    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank}")]
    DimOutOfRange {
        /// The operation.
        op: &'static str,
        /// The dimension asked for (possibly negative).
        dim: isize,
        /// The tensor's rank.
        rank: usize,
    },
    /// An index (into a dimension, or a gathered index) out of range.
    #[error("{op}: {msg}")]
    Index {
        /// The operation.
        op: &'static str,
        /// The offending index (or range end).
        index: i64,
        /// The size it must stay below.
        size: usize,
        /// What is out of range.
        msg: String,
    },
    /// A dtype the operation does not accept.
    #[error("{op}: {msg}")]
    DType {
        /// The operation.
        op: &'static str,
        /// The offending dtypes, in argument order.
        dtypes: Vec<DType>,
        /// What is wrong, naming the dtypes.
        msg: String,
    },
    /// A dtype the device cannot compute with correctly.
    #[error("{op}: dtype {dtype} is not supported on {device} ({adapter}): {reason}")]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// The refused dtype.
        dtype: DType,
        /// The device.
        device: Device,
        /// The device's adapter or backend name.
        adapter: String,
        /// Why it is refused.
        reason: String,
    },
    /// Tensors on different devices given to one operation.
    #[error("{op}: tensors are on different devices ({lhs} and {rhs}); move one with to_device")]
    DeviceMismatch {
        /// The operation.
        op: &'static str,
        /// The first device.
        lhs: Device,
        /// The second device.
        rhs: Device,
    },
    /// A device that was not built or cannot be opened on this machine.
    #[error("device {device} is not available: {reason}")]
    DeviceUnavailable {
        /// The device asked for.
        device: Device,
        /// Why it cannot be used.
        reason: String,
    },
    /// A value the operation does not accept: host data that does not fit the requested
    /// tensor, an argument outside its domain, a configuration that contradicts itself.
    #[error("{op}: {msg}")]
    Data {
        /// The operation.
        op: &'static str,
        /// What is wrong with the data.
        msg: String,
    },
    /// An allocation that cannot succeed: more bytes than the machine has, or more than a
    /// size can express. Returned before anything is allocated.
    #[error("{op}: {what} would need {}, but {device} has {} of memory", fmt_bytes(*bytes), fmt_bytes(Some(*available)))]
    TooLarge {
        /// The operation.
        op: &'static str,
        /// What was to be allocated (`a tensor of shape [..] f32`, `the parameters of ...`).
        what: String,
        /// The bytes needed; `None` when the count overflows 128 bits.
        bytes: Option<u128>,
        /// The device.
        device: Device,
        /// The memory the device has, in bytes.
        available: u128,
    },
    /// An operation that has no derivative was reached by a tensor that needs a gradient.
    #[error("{op} is not differentiable, but one of its inputs requires a gradient")]
    NotDifferentiable {
        /// The operation.
        op: &'static str,
    },
    /// A backward pass that cannot run (untracked or non-scalar root, consumed graph, ...).
    #[error("backward: {msg}")]
    Autograd {
        /// What is wrong.
        msg: String,
    },
    /// A file that could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error: its [`kind`](IoError::kind) tells a missing file
        /// from a permission problem.
        source: IoError,
    },
    /// A file whose contents break its format (truncated, lying sizes, unknown types, ...).
    #[error("{format} file {path}: {msg}")]
    Format {
        /// `"safetensors"`, `"gguf"`, `"config.json"`, ...
        format: &'static str,
        /// The file.
        path: String,
        /// What is wrong, with the offending offset, name or value.
        msg: String,
    },
    /// The backend reported a failure while executing or reading back.
    #[error("{op}: backend error: {msg}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The backend's message.
        msg: String,
    },
    /// An invariant inside Ember did not hold: a bug in Ember, not in the caller's input.
    #[error("{op}: internal error (a bug in Ember; please report it): {msg}")]
    Internal {
        /// The operation.
        op: &'static str,
        /// What did not hold.
        msg: String,
    },
}

/// `1234567` as `1.2 MB (1234567 bytes)`; `None` as "more than 2^128 bytes".
fn fmt_bytes(b: Option<u128>) -> String {
    let Some(b) = b else {
        return "more than 2^128 bytes".into();
    };
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} bytes")
    } else {
        format!("{v:.1} {} ({b} bytes)", units[u])
    }
}

/// The [`std::io::Error`] inside an [`Error::Io`], shared so that [`Error`] stays `Clone`;
/// two are equal when their kinds and messages are.
#[derive(Debug, Clone)]
pub struct IoError(Arc<std::io::Error>);

impl IoError {
    /// The kind of failure (`NotFound`, `PermissionDenied`, ...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The operating system's error itself.
    pub fn get_ref(&self) -> &std::io::Error {
        &self.0
    }
}

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        IoError(Arc::new(e))
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_string() == other.0.to_string()
    }
}

/// Shorthand for `Result<T, ember::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Shape`] naming the offending shapes and what is wrong with them.
    pub fn shape(op: &'static str, shapes: &[&[usize]], msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            shapes: shapes.iter().map(|s| s.to_vec()).collect(),
            msg: msg.into(),
        }
    }

    /// A [`Error::DType`] naming the offending dtypes and what is wrong with them.
    pub fn dtype(op: &'static str, dtypes: &[DType], msg: impl Into<String>) -> Self {
        Error::DType {
            op,
            dtypes: dtypes.to_vec(),
            msg: msg.into(),
        }
    }

    /// A [`Error::Index`]: `index` is out of range for a size of `size`.
    pub fn index(op: &'static str, index: i64, size: usize, msg: impl Into<String>) -> Self {
        Error::Index {
            op,
            index,
            size,
            msg: msg.into(),
        }
    }

    /// A [`Error::Data`] with a formatted message.
    pub fn data(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Data {
            op,
            msg: msg.into(),
        }
    }

    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source: source.into(),
        }
    }

    /// An [`Error::Internal`]: an invariant of Ember's own did not hold.
    pub fn internal(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Internal {
            op,
            msg: msg.into(),
        }
    }
}
