//! The `Tensor` record and its accessors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::kernels::prim::{self, Prim};
use crate::{DType, Device, Element, Error, Result};

use crate::autograd::{Op, Track};

/// A unique identity for a tensor value; clones of a handle share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    /// A new identity, greater than every earlier one.
    pub(crate) fn fresh() -> TensorId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// An n-dimensional array on a device, with a run-time dtype.
///
/// `Tensor` is a cheap handle (`Arc`) over an immutable record: cloning it never copies data.
/// Every op returns a new tensor. Methods return `Result<_, ember::Error>`; the operator
/// overloads (`&a + &b`) panic with the same message instead, for quick scripts.
#[derive(Clone)]
pub struct Tensor(Arc<Record>);

// A record never changes through a shared reference (in-place kernels write into a buffer only
// when they hold its sole reference), so a panic cannot leave a tensor half-written for code
// after `catch_unwind`. The compiler cannot see that through the primitive's boxed allocation
// controller, hence the assertion.
impl std::panic::UnwindSafe for Tensor {}
impl std::panic::RefUnwindSafe for Tensor {}

struct Record {
    id: TensorId,
    /// The burn primitive; its shape equals `shape`, except rank 0 which is stored as `[1]`.
    prim: Prim,
    shape: Vec<usize>,
    device: Device,
    /// Whether and how autograd tracks this value.
    track: Track,
    /// A graph handle: the identity and graph node of a value whose data it does not hold
    /// (its primitive is a one-element placeholder).
    graph_only: bool,
}

/// A one-element primitive of `dtype` on `device`, made once per pair and thread (no lock
/// on the recording path).
fn placeholder(dtype: DType, device: Device) -> Option<Prim> {
    thread_local! {
        static MADE: std::cell::RefCell<Vec<((DType, Device), Prim)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    if let Some(p) = MADE.with_borrow(|m| {
        m.iter()
            .find(|(k, _)| *k == (dtype, device))
            .map(|(_, p)| p.clone())
    }) {
        return Some(p);
    }
    let p = Tensor::zeros(&[1], dtype, device).ok()?.prim();
    MADE.with_borrow_mut(|m| m.push(((dtype, device), p.clone())));
    Some(p)
}

impl Tensor {
    /// Wraps a primitive whose element count matches `shape` (rank-0 shapes hold a `[1]`).
    pub(crate) fn from_prim(prim: Prim, shape: Vec<usize>, device: Device) -> Tensor {
        debug_assert_eq!(
            prim.dims().iter().product::<usize>(),
            shape.iter().product::<usize>(),
            "primitive {:?} vs logical {:?}",
            prim.dims(),
            shape
        );
        Tensor(Arc::new(Record {
            id: TensorId::fresh(),
            prim,
            shape,
            device,
            track: Track::None,
            graph_only: false,
        }))
    }

    /// The same value in a new record with another autograd role (a fresh identity).
    pub(crate) fn with_track(&self, track: Track) -> Tensor {
        Tensor(Arc::new(Record {
            id: TensorId::fresh(),
            prim: self.prim(),
            shape: self.shape(),
            device: self.device(),
            track,
            graph_only: false,
        }))
    }

    /// This value's identity, shape, dtype and graph node without its data: what an op
    /// records for an input whose backward rule needs only its shape and dtype (`add`'s
    /// operands, `mul_scalar`'s input, a cast's source), so the data is freed when nothing
    /// else holds it. Falls back to the value itself if the placeholder cannot be made.
    pub(crate) fn graph_handle(&self) -> Tensor {
        if self.0.graph_only {
            return self.clone();
        }
        // The backward of an op that reads its own output needs this value's data.
        if let Track::Op(cell) = &self.0.track {
            let op = cell.lock().unwrap_or_else(|e| e.into_inner());
            if op.as_ref().is_none_or(crate::autograd::reads_output) {
                return self.clone();
            }
        }
        match placeholder(self.dtype(), self.device()) {
            Some(prim) => Tensor(Arc::new(Record {
                id: self.0.id,
                prim,
                shape: self.shape(),
                device: self.device(),
                track: self.0.track.clone(),
                graph_only: true,
            })),
            None => self.clone(),
        }
    }

    /// True for a [`Tensor::graph_handle`] (no data).
    pub(crate) fn is_graph_only(&self) -> bool {
        self.0.graph_only
    }

    pub(crate) fn track(&self) -> &Track {
        &self.0.track
    }

    /// A leaf that requires a gradient (`true`), or an untracked copy of the value (`false`),
    /// as `torch.Tensor.requires_grad_`. The result is a new tensor with its own identity;
    /// only float tensors can require gradients.
    pub fn requires_grad(&self, requires: bool) -> Result<Tensor> {
        if !requires {
            return Ok(self.detach());
        }
        if !self.dtype().is_float() {
            return Err(Error::dtype(
                "requires_grad",
                &[self.dtype()],
                format!(
                    "only float tensors can require gradients, got {}",
                    self.dtype()
                ),
            ));
        }
        Ok(self.with_track(Track::Leaf))
    }

    /// The same value, cut from the graph: no gradient flows through the result.
    pub fn detach(&self) -> Tensor {
        if self.is_tracked() {
            self.with_track(Track::None)
        } else {
            self.clone()
        }
    }

    /// A new tensor on this tensor's device, from a primitive (shape read from the primitive
    /// unless given).
    pub(crate) fn wrap(&self, prim: Prim, shape: Vec<usize>) -> Tensor {
        Tensor::from_prim(prim, shape, self.device())
    }

    /// The primitive, reshaped to `rank` dims with leading ones (rank >= 1).
    pub(crate) fn prim_rank(&self, rank: usize) -> Prim {
        let rank = rank.max(1);
        let p = self.prim();
        if self.rank() == rank {
            return p;
        }
        let mut dims = vec![1; rank - self.rank()];
        dims.extend_from_slice(self.dims());
        crate::kernels::layout::reshape(p, &dims)
    }

    /// The primitive, borrowed.
    pub(crate) fn prim_ref(&self) -> &Prim {
        &self.0.prim
    }

    /// The primitive handle (a cheap clone).
    pub(crate) fn prim(&self) -> Prim {
        self.0.prim.clone()
    }

    /// The primitive, without a second handle when this is the record's only one (so the
    /// storage may be written in place).
    pub(crate) fn into_prim(self) -> Prim {
        match Arc::try_unwrap(self.0) {
            Ok(record) => record.prim,
            Err(shared) => shared.prim.clone(),
        }
    }

    /// This tensor's identity: equal for clones of one handle, distinct for every op result.
    pub fn id(&self) -> TensorId {
        self.0.id
    }

    /// The shape, e.g. `[2, 3]`; `[]` for a scalar.
    pub fn dims(&self) -> &[usize] {
        &self.0.shape
    }

    /// The shape as a vector.
    pub fn shape(&self) -> Vec<usize> {
        self.0.shape.clone()
    }

    /// Size of one dimension (negative counts from the end).
    pub fn size(&self, dim: isize) -> Result<usize> {
        let d = crate::base::shape::norm_dim("size", dim, self.rank())?;
        Ok(self.0.shape[d])
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.shape.iter().product()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.0.prim.dtype()
    }

    /// The device the data lives on.
    pub fn device(&self) -> Device {
        self.0.device
    }

    /// Reads the values back in row-major order, converting to `T` first if the dtype differs.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::arange(0.0, 3.0, 1.0, DType::I64, Device::Cpu)?;
    /// assert_eq!(t.to_vec::<i64>()?, vec![0, 1, 2]);
    /// assert_eq!(t.to_vec::<f32>()?, vec![0.0, 1.0, 2.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if self.dtype() != T::DTYPE && !self.device().supports(T::DTYPE) {
            // e.g. reading f32 from wgpu as f64: convert on the host side instead.
            return self.detach().to_device(Device::Cpu)?.to_vec::<T>();
        }
        prim::download::<T>(self.detach().to_dtype(T::DTYPE)?.prim())
    }

    /// [`Tensor::to_vec`] for devices whose reads complete later: WebGPU in a browser, where
    /// a synchronous read is an error. Converts to `T` on the host. On other devices the
    /// future is ready at once.
    pub async fn to_vec_async<T: Element>(&self) -> Result<Vec<T>> {
        let t = if T::DTYPE == DType::Bool {
            self.detach().to_dtype(DType::Bool)? // x != 0, as `to_dtype`
        } else {
            self.detach()
        };
        prim::download_async::<T>(t.prim()).await
    }

    /// The single value of a one-element tensor.
    pub fn to_scalar<T: Element>(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "to_scalar",
                &[self.dims()],
                format!(
                    "tensor of shape {:?} has {} elements, expected 1",
                    self.dims(),
                    self.numel()
                ),
            ));
        }
        Ok(self.to_vec::<T>()?[0])
    }

    /// Converts to another dtype (float to int truncates toward zero; anything to bool is
    /// `x != 0`), as `torch.Tensor.to(dtype)`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        self.device().check_dtype("to_dtype", dtype)?;
        let out = self.wrap(crate::kernels::cast::cast(self.prim(), dtype), self.shape());
        if dtype.is_float() {
            Ok(out.record(&[self], || Op::ToDtype(self.graph_handle())))
        } else {
            Ok(out.record_nondiff("to_dtype", self))
        }
    }

    /// Copies the tensor to another device.
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        device.check_dtype("to_device", self.dtype())?;
        let p = prim::to_device(self.prim(), device)?;
        let out = Tensor::from_prim(p, self.shape(), device);
        Ok(out.record(&[self], || Op::ToDevice(self.clone())))
    }

    /// A tensor with the same values. burn's kernels handle strided layouts themselves, so
    /// this returns the same handle; it exists for PyTorch-shaped code.
    pub fn contiguous(&self) -> Result<Tensor> {
        Ok(self.clone())
    }

    /// Checks that `other` is on this tensor's device.
    pub(crate) fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: other.device(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor {{ shape: {:?}, dtype: {}, device: {}{} }}",
            self.dims(),
            self.dtype(),
            self.device(),
            if self.is_tracked() { ", tracked" } else { "" }
        )
    }
}
