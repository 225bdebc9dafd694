//! Access to burn-flex's f32 storage: reading, writing in place when nothing else holds a
//! buffer, views that burn-flex would copy, and bounds-checked strides.

use burn_backend::{Shape, TensorData};
use burn_dispatch::{BackendTensor, DispatchTensor, DispatchTensorKind};
use burn_flex::FlexTensor;

use crate::DType;
use crate::kernels::prim::Prim;

pub(crate) fn flex(p: &Prim) -> Option<&FlexTensor> {
    flex_of(p, DType::F32)
}

/// The burn-flex tensor of a CPU primitive of `dtype`.
pub(crate) fn flex_of(p: &Prim, dtype: DType) -> Option<&FlexTensor> {
    if p.dtype() != dtype {
        return None;
    }
    #[allow(unreachable_patterns)]
    match &p.inner_ref().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => Some(t),
        _ => None,
    }
}

/// The burn-flex tensor of a bf16 CPU primitive.
pub(crate) fn flex_bf16(p: &Prim) -> Option<&FlexTensor> {
    flex_of(p, DType::BF16)
}

/// The values of a contiguous f32 CPU primitive, in row-major order.
pub(crate) fn values(p: &Prim) -> Option<&[f32]> {
    flex(p)?.as_slice::<f32>()
}

/// The storage a CPU primitive of any dtype views: its address and length in bytes (views
/// of one buffer give the same pair); `None` off the CPU.
pub(crate) fn buffer(p: &Prim) -> Option<(usize, u64)> {
    #[allow(unreachable_patterns)]
    let t = match &p.inner_ref().kind {
        DispatchTensorKind::Flex(
            BackendTensor::Float(t) | BackendTensor::Int(t) | BackendTensor::Bool(t),
        ) => t,
        _ => return None,
    };
    let bytes = t.bytes();
    Some((bytes.as_ptr() as usize, bytes.len() as u64))
}

/// Takes the burn-flex tensor out of an f32 CPU primitive, or gives the primitive back.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn take_flex(p: Prim) -> Result<FlexTensor, Prim> {
    take_flex_of(p, DType::F32)
}

/// Takes the burn-flex tensor out of a CPU primitive of `dtype`, or gives the primitive back.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn take_flex_of(p: Prim, dtype: DType) -> Result<FlexTensor, Prim> {
    if p.dtype() != dtype {
        return Err(p);
    }
    let inner = p.into_inner();
    #[allow(unreachable_patterns)]
    match inner.kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => Ok(t),
        kind => Err(Prim::from_parts(
            DispatchTensor {
                kind,
                autodiff: inner.autodiff,
            },
            dtype,
        )),
    }
}

pub(crate) fn wrap(t: FlexTensor) -> Prim {
    wrap_as(t, DType::F32)
}

/// A CPU primitive of `dtype` (the float dtype `t` holds) around `t`.
pub(crate) fn wrap_as(t: FlexTensor, dtype: DType) -> Prim {
    let inner = DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: Default::default(),
    };
    Prim::from_parts(inner, dtype)
}

/// A new CPU primitive of shape `dims` holding `values`.
pub(crate) fn from_vec(values: Vec<f32>, dims: Vec<usize>) -> Prim {
    wrap(FlexTensor::from_data(TensorData::new(
        values,
        Shape::from(dims),
    )))
}

/// The storage of `t` for writing in place: `None` unless it is contiguous from offset 0 and
/// no other handle shares it.
pub(crate) fn unique_values(t: &mut FlexTensor) -> Option<&mut [f32]> {
    let n = t.layout().num_elements();
    if t.layout().contiguous_offsets() != Some((0, n)) {
        return None;
    }
    Some(&mut t.try_storage_mut::<f32>()?[..n])
}

/// The burn-flex tensor of an f32 CPU primitive, ready to be written in place: itself when
/// nothing else holds its storage and it is contiguous from offset 0, else a private
/// contiguous copy. The primitive comes back in `Err` when it is not an f32 CPU tensor.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn owned(p: Prim) -> Result<FlexTensor, Prim> {
    let mut t = take_flex(p)?;
    if unique_values(&mut t).is_some() {
        return Ok(t);
    }
    let Some(copy) = t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec) else {
        return Err(wrap(t));
    };
    let dims = t.layout().shape().clone();
    Ok(FlexTensor::from_data(TensorData::new(copy, dims)))
}

/// True for a 2-D f32 or bf16 CPU primitive that is the transpose of a row-major matrix
/// (strides `[1, rows]`), as `w.transpose(0, 1)` of a weight.
pub(crate) fn is_transposed(p: &Prim) -> bool {
    let dims = p.dims();
    flex(p).or_else(|| flex_bf16(p)).is_some_and(|t| {
        dims.len() == 2 && dims[1] > 1 && t.layout().strides() == [1, dims[0] as isize]
    })
}

/// True for an f32 primitive on the CPU, whatever its layout.
pub(crate) fn is_cpu_f32(p: &Prim) -> bool {
    flex(p).is_some()
}

/// True when every primitive is a contiguous f32 tensor on the CPU, so the kernels apply.
pub(crate) fn applies(prims: &[&Prim]) -> bool {
    prims.iter().all(|p| values(p).is_some())
}

// ---------------------------------------------------------------- views

/// Strides that give `new` the same elements as a tensor of shape `old` and strides
/// `strides`, without copying, when they exist (PyTorch's `view` rule: each run of old dims
/// that is contiguous in memory must map onto a run of new dims with the same element count).
pub(crate) fn view_strides(old: &[usize], strides: &[isize], new: &[usize]) -> Option<Vec<isize>> {
    if old.is_empty() || old.contains(&0) || new.contains(&0) {
        return None;
    }
    let mut out = vec![0isize; new.len()];
    let mut view_d = new.len() as isize - 1;
    let mut base = *strides.last()?;
    let (mut old_count, mut new_count) = (1usize, 1usize);
    for d in (0..old.len()).rev() {
        old_count *= old[d];
        let run_ends = d == 0 || (old[d - 1] != 1 && strides[d - 1] != old_count as isize * base);
        if run_ends {
            while view_d >= 0 && (new_count < old_count || new[view_d as usize] == 1) {
                out[view_d as usize] = new_count as isize * base;
                new_count *= new[view_d as usize];
                view_d -= 1;
            }
            if new_count != old_count {
                return None;
            }
            if d > 0 {
                base = strides[d - 1];
                old_count = 1;
                new_count = 1;
            }
        }
    }
    (view_d == -1).then_some(out)
}

/// `p` reshaped to `dims` as a view of the same storage, for a strided f32 CPU tensor whose
/// layout allows it (splitting the last dim of a column slice, as the heads of a fused QKV
/// projection); burn-flex copies every non-contiguous tensor it reshapes. `None` when a copy
/// is needed or the tensor is contiguous already (burn-flex's reshape is free then).
pub(crate) fn reshape_view(p: &Prim, dims: &[usize]) -> Option<Prim> {
    let t = flex(p)?;
    let layout = t.layout();
    if layout.is_contiguous() {
        return None;
    }
    let strides = view_strides(&p.dims(), layout.strides(), dims)?;
    let view = burn_flex::Layout::new(Shape::from(dims.to_vec()), strides, layout.start_offset());
    Some(wrap(FlexTensor::from_arc(t.data_arc(), view, t.dtype())))
}

/// `src` copied into `buf` in place at position `at` along `dim` (a KV cache growing by one
/// token): `buf` must be a contiguous f32 CPU tensor that nothing else holds, with `src`'s
/// dims except along `dim`, where `at + src_len` must fit. `buf` comes back in `Err` otherwise.
#[allow(clippy::result_large_err)] // the primitive goes back by value, as it came
pub(crate) fn write_along(buf: Prim, dim: usize, at: usize, src: &Prim) -> Result<Prim, Prim> {
    let (bd, sd) = (buf.dims(), src.dims());
    let fits = bd.len() == sd.len()
        && dim < bd.len()
        && (0..bd.len()).all(|d| d == dim || bd[d] == sd[d])
        && at.checked_add(sd[dim]).is_some_and(|end| end <= bd[dim]);
    let Some(src) = flex(src).filter(|_| fits && values(&buf).is_some()) else {
        return Err(buf);
    };
    let src = src.to_contiguous();
    let Some(sv) = src.as_slice::<f32>() else {
        return Err(buf);
    };
    let mut t = take_flex(buf)?;
    let Some(dst) = unique_values(&mut t) else {
        return Err(wrap(t));
    };
    let inner: usize = bd[dim + 1..].iter().product();
    let (cap, len) = (bd[dim] * inner, sd[dim] * inner); // per outer index
    for (o, block) in sv.chunks_exact(len.max(1)).enumerate() {
        dst[o * cap + at * inner..o * cap + at * inner + len].copy_from_slice(block);
    }
    Ok(wrap(t))
}

/// The element strides of `t` when all are non-negative and every element its layout reaches
/// lies inside its storage (so pointer arithmetic over them stays in bounds).
pub(crate) fn checked_strides(t: &FlexTensor) -> Option<Vec<isize>> {
    strides_within(t, t.storage::<f32>().len())
}

/// The element strides of `t` when all are non-negative and every element its layout reaches
/// lies below `len`, the number of elements of its storage (of any dtype).
pub(crate) fn strides_within(t: &FlexTensor, len: usize) -> Option<Vec<isize>> {
    let layout = t.layout();
    let strides = layout.strides().to_vec();
    let dims = layout.shape();
    if strides.iter().any(|&s| s < 0) || dims.iter().any(|&d| d == 0) {
        return None;
    }
    let mut last = layout.start_offset();
    for (&d, &s) in dims.iter().zip(&strides) {
        last = last.checked_add((d - 1).checked_mul(s as usize)?)?;
    }
    (last < len).then_some(strides)
}

/// A new CPU primitive of shape `dims` whose elements lie in `values` at the given strides
/// (a permuted view of a fresh buffer, e.g. `(B, H, T, D)` over `(B, T, H, D)` storage).
/// The strides must address exactly the buffer's elements.
pub(crate) fn from_vec_strided(values: Vec<f32>, dims: Vec<usize>, strides: Vec<isize>) -> Prim {
    let n = values.len();
    let t = FlexTensor::from_data(TensorData::new(values, Shape::from(vec![n])));
    let layout = burn_flex::Layout::new(Shape::from(dims), strides, 0);
    wrap(FlexTensor::from_arc(t.data_arc(), layout, t.dtype()))
}

/// A rank-4 f32 CPU tensor read in place: rows of its last dim are contiguous, the other
/// dims have any non-negative strides inside the storage.
pub(crate) struct Rows4<'a> {
    data: &'a [f32],
    offset: usize,
    strides: [usize; 3],
    /// The tensor's shape.
    pub dims: [usize; 4],
}

impl<'a> Rows4<'a> {
    /// The view of `p`, when it is an f32 CPU tensor of rank 4 with a contiguous last dim.
    pub(crate) fn of(p: &'a Prim) -> Option<Rows4<'a>> {
        let t = flex(p)?;
        let dims: [usize; 4] = p.dims().try_into().ok()?;
        let s = checked_strides(t)?;
        if s[3] != 1 && dims[3] > 1 {
            return None;
        }
        Some(Rows4 {
            data: t.storage::<f32>(),
            offset: t.layout().start_offset(),
            strides: [s[0] as usize, s[1] as usize, s[2] as usize],
            dims,
        })
    }

    /// Row `[i0, i1, i2, ..]` (in bounds: `checked_strides` bounded every element).
    #[inline(always)]
    pub(crate) fn row(&self, i0: usize, i1: usize, i2: usize) -> &'a [f32] {
        let [s0, s1, s2] = self.strides;
        let at = self.offset + i0 * s0 + i1 * s1 + i2 * s2;
        &self.data[at..at + self.dims[3]]
    }
}
