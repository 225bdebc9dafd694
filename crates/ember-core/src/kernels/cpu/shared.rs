//! CPU storage shared with other libraries (NumPy, DLPack): the bytes of a contiguous tensor
//! read in place, and primitives over foreign bytes without a copy.
//!
//! A primitive over foreign bytes is copy-on-write (burn's shared `Bytes`): an in-place
//! kernel that wants to write it gets a private copy first, so Ember never writes into memory
//! it did not allocate.

use burn_backend::Shape;
use burn_dispatch::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn_flex::{FlexTensor, Layout};
use burn_std::{AllocationProperty, Bytes};

use super::storage::wrap_as;
use crate::DType;
use crate::kernels::prim::Prim;

/// The bytes of a contiguous CPU primitive of a float or int64 dtype, in place (bool storage
/// differs per backend: `None`, as for strided views and other devices).
pub(crate) fn contiguous_bytes(p: &Prim) -> Option<&[u8]> {
    #[allow(unreachable_patterns)]
    let t = match (&p.inner_ref().kind, p.dtype()) {
        (DispatchTensorKind::Flex(BackendTensor::Float(t)), d) if d.is_float() => t,
        (DispatchTensorKind::Flex(BackendTensor::Int(t)), DType::I64) => t,
        _ => return None,
    };
    if t.dtype().size() != p.dtype().size_in_bytes() {
        return None;
    }
    let (start, end) = t.layout().contiguous_offsets()?;
    let size = p.dtype().size_in_bytes();
    t.bytes().get(start * size..end * size)
}

/// A CPU primitive of `dtype` and shape `dims` over `bytes` (exactly the elements' bytes),
/// without a copy; `None` for bool, or when the bytes are not aligned to the element size
/// (the kernels read them as typed slices).
pub(crate) fn over_bytes(bytes: bytes::Bytes, dims: &[usize], dtype: DType) -> Option<Prim> {
    let size = dtype.size_in_bytes();
    let numel: usize = dims.iter().product();
    if dtype == DType::Bool
        || numel.checked_mul(size) != Some(bytes.len())
        || !(bytes.as_ptr() as usize).is_multiple_of(size)
    {
        return None;
    }
    let burn_dtype = match dtype {
        DType::F32 => burn_backend::DType::F32,
        DType::F64 => burn_backend::DType::F64,
        DType::F16 => burn_backend::DType::F16,
        DType::BF16 => burn_backend::DType::BF16,
        DType::I64 => burn_backend::DType::I64,
        DType::Bool => return None,
    };
    let storage = Bytes::from_shared(bytes, AllocationProperty::Other);
    let t = FlexTensor::new(
        storage,
        Layout::contiguous(Shape::from(dims.to_vec())),
        burn_dtype,
    );
    Some(if dtype == DType::I64 {
        let inner = DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Int(t)),
            autodiff: Default::default(),
        };
        Prim::from_parts(inner, DType::I64)
    } else {
        wrap_as(t, dtype)
    })
}
