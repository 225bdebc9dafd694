//! The one error type of Ember.

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
        /// What is out of range.
        msg: String,
    },
    /// A dtype the operation does not accept.
    #[error("{op}: {msg}")]
    DType {
        /// The operation.
        op: &'static str,
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
    /// Host data that does not fit the requested tensor.
    #[error("{op}: {msg}")]
    Data {
        /// The operation.
        op: &'static str,
        /// What is wrong with the data.
        msg: String,
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
    #[error("{path}: {msg}")]
    Io {
        /// The file.
        path: String,
        /// The OS error or what was being done.
        msg: String,
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
}

/// Shorthand for `Result<T, ember::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A [`Error::Shape`] with a formatted message.
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }

    /// A [`Error::DType`] with a formatted message.
    pub fn dtype(op: &'static str, msg: impl Into<String>) -> Self {
        Error::DType {
            op,
            msg: msg.into(),
        }
    }

    /// A [`Error::Index`] with a formatted message.
    pub fn index(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Index {
            op,
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
}
