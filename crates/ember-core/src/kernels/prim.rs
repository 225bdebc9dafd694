//! The primitive op set: thin, typed calls onto burn's `Dispatch` backend.
//!
//! Every function here assumes its inputs were validated by the ops layer: same device, the
//! dtypes the op needs, equal ranks for binary ops, dims in range, non-empty results. burn
//! panics (or silently computes garbage on some backends) when those do not hold.
//! A [`Prim`] always has rank >= 1; Ember keeps rank-0 tensors as `[1]` primitives.

use burn_backend::ops::{ActivationOps, BoolTensorOps, FloatTensorOps, IntTensorOps};
use burn_backend::{Scalar, Shape, Slice, TensorMetadata};
use burn_dispatch::{Dispatch, DispatchTensor};
use burn_std::IndexingUpdateOp;

use crate::{DType, Device, Result};

type B = Dispatch;

/// A burn tensor primitive with Ember's dtype attached.
#[derive(Clone, Debug)]
pub struct Prim {
    inner: DispatchTensor,
    dtype: DType,
}

/// The kind-specific primitive: which family of burn ops applies.
enum Kind {
    Float,
    Int,
    Bool,
}

impl Prim {
    fn new(inner: DispatchTensor, dtype: DType) -> Prim {
        Prim { inner, dtype }
    }

    fn int(inner: DispatchTensor) -> Prim {
        Prim::new(inner, DType::I64)
    }

    fn bool(inner: DispatchTensor) -> Prim {
        Prim::new(inner, DType::Bool)
    }

    fn kind(&self) -> Kind {
        match self.dtype {
            DType::I64 => Kind::Int,
            DType::Bool => Kind::Bool,
            _ => Kind::Float,
        }
    }

    /// The Ember dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The primitive's shape (rank >= 1).
    pub fn dims(&self) -> Vec<usize> {
        self.inner.shape().iter().copied().collect()
    }

    /// Wraps a burn primitive holding values of `dtype`.
    pub(crate) fn from_parts(inner: DispatchTensor, dtype: DType) -> Prim {
        Prim::new(inner, dtype)
    }

    /// The burn primitive, borrowed.
    pub(crate) fn inner_ref(&self) -> &DispatchTensor {
        &self.inner
    }

    /// The burn primitive, for code that calls burn directly.
    pub fn into_inner(self) -> DispatchTensor {
        self.inner
    }
}

fn bool_store(device: &burn_dispatch::DispatchDevice) -> burn_backend::BoolDType {
    burn_backend::get_device_settings::<B>(device).bool_dtype
}

fn bool_store_of(p: &DispatchTensor) -> burn_backend::BoolDType {
    bool_store(&p.device())
}

// ---------------------------------------------------------------- host I/O and creation

mod host;
pub use host::from_data;
pub(crate) use host::{download, download_async, upload};
use host::{int_store, int_store_of, into_data};

/// A tensor filled with one value.
pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Prim> {
    let dev = device.dispatch()?;
    let shape = Shape::from(shape.to_vec());
    Ok(match dtype {
        DType::I64 => {
            let store = int_store(&dev);
            Prim::int(B::int_full(shape, Scalar::Int(value as i64), &dev, store))
        }
        DType::Bool => {
            let store = bool_store(&dev);
            let t = if value != 0.0 {
                B::bool_ones(shape, &dev, store)
            } else {
                B::bool_zeros(shape, &dev, store)
            };
            Prim::bool(t)
        }
        _ => Prim::new(
            B::float_full(
                shape,
                Scalar::Float(value),
                &dev,
                dtype.burn_float().unwrap(),
            ),
            dtype,
        ),
    })
}

// ---------------------------------------------------------------- layout and movement

/// Reshape to a shape with the same number of elements, by burn (which copies strided
/// tensors: `kernels::layout::reshape` makes views where it can).
pub fn reshape(p: Prim, shape: &[usize]) -> Prim {
    let s = Shape::from(shape.to_vec());
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_reshape(p.inner, s),
        Kind::Int => B::int_reshape(p.inner, s),
        Kind::Bool => B::bool_reshape(p.inner, s),
    };
    Prim::new(t, dtype)
}

/// Permute axes (`axes` is a permutation of `0..rank`).
pub fn permute(p: Prim, axes: &[usize]) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_permute(p.inner, axes),
        Kind::Int => B::int_permute(p.inner, axes),
        Kind::Bool => B::bool_permute(p.inner, axes),
    };
    Prim::new(t, dtype)
}

/// The elements in reverse order along `axes`.
pub fn flip(p: Prim, axes: &[usize]) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_flip(p.inner, axes),
        Kind::Int => B::int_flip(p.inner, axes),
        Kind::Bool => B::bool_flip(p.inner, axes),
    };
    Prim::new(t, dtype)
}

/// Running sums along `dim` of a float or integer primitive.
pub fn cumsum(p: Prim, dim: usize) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Int => B::int_cumsum(p.inner, dim),
        _ => B::float_cumsum(p.inner, dim),
    };
    Prim::new(t, dtype)
}

/// Running products along `dim` of a float or integer primitive.
pub fn cumprod(p: Prim, dim: usize) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Int => B::int_cumprod(p.inner, dim),
        _ => B::float_cumprod(p.inner, dim),
    };
    Prim::new(t, dtype)
}

/// Broadcast size-1 dims to `shape` (same rank).
pub fn expand(p: Prim, shape: &[usize]) -> Prim {
    if p.dims() == shape {
        return p;
    }
    let s = Shape::from(shape.to_vec());
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_expand(p.inner, s),
        Kind::Int => B::int_expand(p.inner, s),
        Kind::Bool => B::bool_expand(p.inner, s),
    };
    Prim::new(t, dtype)
}

/// Slice every dim with `(start, end, step)`, all in range, step >= 1, non-empty.
pub fn slice(p: Prim, ranges: &[(usize, usize, usize)]) -> Prim {
    let slices: Vec<Slice> = ranges
        .iter()
        .map(|&(s, e, st)| Slice::new(s as isize, Some(e as isize), st as isize))
        .collect();
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_slice(p.inner, &slices),
        Kind::Int => B::int_slice(p.inner, &slices),
        Kind::Bool => B::bool_slice(p.inner, &slices),
    };
    Prim::new(t, dtype)
}

/// Concatenate along `dim` (all same dtype, rank and other dims).
pub fn cat(ps: Vec<Prim>, dim: usize) -> Prim {
    let dtype = ps[0].dtype;
    let kind = ps[0].kind();
    let inner: Vec<DispatchTensor> = ps.into_iter().map(|p| p.inner).collect();
    let t = match kind {
        Kind::Float => B::float_cat(inner, dim),
        Kind::Int => B::int_cat(inner, dim),
        Kind::Bool => B::bool_cat(inner, dim),
    };
    Prim::new(t, dtype)
}

/// Rows of `p` along `dim` picked by an I64 index vector (indices in range).
pub fn select(p: Prim, dim: usize, idx: Prim) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_select(p.inner, dim, idx.inner),
        Kind::Int => B::int_select(p.inner, dim, idx.inner),
        Kind::Bool => B::bool_select(p.inner, dim, idx.inner),
    };
    Prim::new(t, dtype)
}

/// torch.gather with `idx` of the same shape as `p` (caller narrows `p` first).
pub fn gather(p: Prim, dim: usize, idx: Prim) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_gather(dim, p.inner, idx.inner),
        Kind::Int => B::int_gather(dim, p.inner, idx.inner),
        Kind::Bool => B::bool_gather(dim, p.inner, idx.inner),
    };
    Prim::new(t, dtype)
}

/// torch.scatter_add: `p[.., idx[i], ..] += src[i]` along `dim` (float or int).
pub fn scatter_add(p: Prim, dim: usize, idx: Prim, src: Prim) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Int => B::int_scatter(dim, p.inner, idx.inner, src.inner, IndexingUpdateOp::Add),
        _ => B::float_scatter(dim, p.inner, idx.inner, src.inner, IndexingUpdateOp::Add),
    };
    Prim::new(t, dtype)
}

/// `where(mask, value, p)`: elements of `value` where `mask` is true (all same shape).
pub fn mask_where(p: Prim, mask: Prim, value: Prim) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_mask_where(p.inner, mask.inner, value.inner),
        Kind::Int => B::int_mask_where(p.inner, mask.inner, value.inner),
        Kind::Bool => B::bool_mask_where(p.inner, mask.inner, value.inner),
    };
    Prim::new(t, dtype)
}

/// Fill elements where `mask` is true with a scalar (same shape).
pub fn mask_fill(p: Prim, mask: Prim, value: f64) -> Prim {
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_mask_fill(p.inner, mask.inner, Scalar::Float(value)),
        Kind::Int => B::int_mask_fill(p.inner, mask.inner, Scalar::Int(value as i64)),
        Kind::Bool => B::bool_mask_fill(p.inner, mask.inner, Scalar::Bool(value != 0.0)),
    };
    Prim::new(t, dtype)
}

/// Move to another device.
pub fn to_device(p: Prim, device: Device) -> Result<Prim> {
    let dev = device.dispatch()?;
    let dtype = p.dtype;
    let t = match p.kind() {
        Kind::Float => B::float_to_device(p.inner, &dev),
        Kind::Int if int_store_of(&p.inner) != int_store(&dev) => {
            // e.g. the CPU's i64 to WebGPU's i32: through the host, range-checked.
            return from_data(into_data(p)?, DType::I64, device);
        }
        Kind::Int => B::int_to_device(p.inner, &dev),
        // Bool storage differs between backends (native, u8, u32): move as i64.
        Kind::Bool => {
            let ints = to_device(cast(p, DType::I64), device)?;
            return Ok(cast(ints, DType::Bool));
        }
    };
    Ok(Prim::new(t, dtype))
}

/// Convert to another dtype (float→int truncates toward zero; x→bool is x != 0).
pub fn cast(p: Prim, to: DType) -> Prim {
    if p.dtype == to {
        return p;
    }
    match (p.kind(), to) {
        (Kind::Float, DType::I64) => {
            let store = int_store_of(&p.inner);
            Prim::int(B::float_into_int(p.inner, store))
        }
        (Kind::Float, DType::Bool) => {
            let store = bool_store_of(&p.inner);
            Prim::bool(B::float_not_equal_elem(p.inner, Scalar::Float(0.0), store))
        }
        (Kind::Float, f) => Prim::new(B::float_cast(p.inner, f.burn_float().unwrap()), f),
        (Kind::Int, DType::Bool) => {
            let store = bool_store_of(&p.inner);
            Prim::bool(B::int_not_equal_elem(p.inner, Scalar::Int(0), store))
        }
        (Kind::Int, f) => Prim::new(B::int_into_float(p.inner, f.burn_float().unwrap()), f),
        (Kind::Bool, DType::I64) => {
            let store = int_store_of(&p.inner);
            Prim::int(B::bool_into_int(p.inner, store))
        }
        (Kind::Bool, f) => Prim::new(B::bool_into_float(p.inner, f.burn_float().unwrap()), f),
    }
}

// ---------------------------------------------------------------- elementwise

/// A burn primitive of one tensor.
pub type Map = fn(DispatchTensor) -> DispatchTensor;
/// A burn primitive of two tensors.
pub type Zip = fn(DispatchTensor, DispatchTensor) -> DispatchTensor;
/// A burn primitive of a tensor and a scalar.
pub type ZipScalar = fn(DispatchTensor, Scalar) -> DispatchTensor;
/// A burn comparison of two tensors, into a Bool store.
pub type Cmp = fn(DispatchTensor, DispatchTensor, burn_backend::BoolDType) -> DispatchTensor;
/// A burn comparison of a tensor and a scalar, into a Bool store.
pub type CmpScalar = fn(DispatchTensor, Scalar, burn_backend::BoolDType) -> DispatchTensor;
/// A burn reduction along one dim (kept with size 1).
pub type AlongDim = fn(DispatchTensor, usize) -> DispatchTensor;

/// `int(p)` for I64 primitives, `float(p)` for float ones; the dtype is kept.
pub fn map(p: Prim, int: Map, float: Map) -> Prim {
    let dtype = p.dtype;
    let f = if dtype == DType::I64 { int } else { float };
    Prim::new(f(p.inner), dtype)
}

/// `a op b` for primitives of one dtype and equal rank (size-1 broadcasting allowed).
pub fn zip(a: Prim, b: Prim, int: Zip, float: Zip) -> Prim {
    let dtype = a.dtype;
    let f = if dtype == DType::I64 { int } else { float };
    Prim::new(f(a.inner, b.inner), dtype)
}

/// `a op s` with an integer scalar for I64 primitives, a float one otherwise.
pub fn zip_scalar(a: Prim, s: f64, int: ZipScalar, float: ZipScalar) -> Prim {
    let dtype = a.dtype;
    let t = if dtype == DType::I64 {
        int(a.inner, Scalar::Int(s as i64))
    } else {
        float(a.inner, Scalar::Float(s))
    };
    Prim::new(t, dtype)
}

/// An elementwise comparison of primitives of one dtype and equal rank, as Bool; `bool`
/// compares Bool primitives (only equality and inequality exist).
pub fn compare(a: Prim, b: Prim, bool: Option<Zip>, int: Cmp, float: Cmp) -> Prim {
    let store = bool_store_of(&a.inner);
    let (x, y) = (a.inner, b.inner);
    Prim::bool(match (a.dtype, bool) {
        (DType::Bool, Some(f)) => f(x, y),
        (DType::I64 | DType::Bool, _) => int(x, y, store),
        _ => float(x, y, store),
    })
}

/// An elementwise comparison with a scalar (integer or float primitives), as Bool.
pub fn compare_scalar(a: Prim, s: f64, int: CmpScalar, float: CmpScalar) -> Prim {
    let store = bool_store_of(&a.inner);
    Prim::bool(if a.dtype == DType::I64 {
        int(a.inner, Scalar::Int(s as i64), store)
    } else {
        float(a.inner, Scalar::Float(s), store)
    })
}

/// A reduction of `dim` to size 1 (integer or float primitives).
pub fn reduce_dim(p: Prim, dim: usize, int: AlongDim, float: AlongDim) -> Prim {
    let dtype = p.dtype;
    let f = if dtype == DType::I64 { int } else { float };
    Prim::new(f(p.inner, dim), dtype)
}

/// Clamp to `[min, max]` (either bound optional).
pub fn clamp(p: Prim, min: Option<f64>, max: Option<f64>) -> Prim {
    let dtype = p.dtype;
    let int = dtype == DType::I64;
    let sc = |v: f64| {
        if int {
            Scalar::Int(v as i64)
        } else {
            Scalar::Float(v)
        }
    };
    let mut t = p.inner;
    if let Some(lo) = min {
        t = if int {
            B::int_clamp_min(t, sc(lo))
        } else {
            B::float_clamp_min(t, sc(lo))
        };
    }
    if let Some(hi) = max {
        t = if int {
            B::int_clamp_max(t, sc(hi))
        } else {
            B::float_clamp_max(t, sc(hi))
        };
    }
    Prim::new(t, dtype)
}

/// Logical not of a Bool tensor.
pub fn logical_not(p: Prim) -> Prim {
    Prim::bool(B::bool_not(p.inner))
}

/// True where a float tensor is NaN.
pub fn is_nan(p: Prim) -> Prim {
    let store = bool_store_of(&p.inner);
    Prim::bool(B::float_is_nan(p.inner, store))
}

// ---------------------------------------------------------------- reductions and matmul

/// Index of the max (or min) along `dim`, kept with size 1, as I64.
pub fn arg_reduce(max: bool, p: Prim, dim: usize) -> Prim {
    let x = p.inner;
    let store = int_store_of(&x);
    let t = match (p.dtype == DType::I64, max) {
        (true, true) => B::int_cast(B::int_argmax(x, dim), store),
        (true, false) => B::int_cast(B::int_argmin(x, dim), store),
        (false, true) => B::float_argmax(x, dim, store),
        (false, false) => B::float_argmin(x, dim, store),
    };
    Prim::int(t)
}

/// Softmax along `dim` (float).
pub fn softmax(p: Prim, dim: usize) -> Prim {
    let dtype = p.dtype;
    Prim::new(B::softmax(p.inner, dim), dtype)
}

/// Batched matmul of equal-rank float tensors with identical batch dims: `[.., m, k] @ [.., k, n]`.
pub fn matmul(a: Prim, b: Prim) -> Prim {
    let dtype = a.dtype;
    Prim::new(B::float_matmul(a.inner, b.inner), dtype)
}
