//! Shape ops: reshape, permute, squeeze, expand, slicing, concatenation, splitting, tril/triu.

use crate::kernels::prim;
use crate::{DType, Error, Result};

use super::create::upload_f64;
use super::elementwise::out_p;
use super::reduce::reshape_to;
use crate::autograd::Op;
use crate::base::shape::{broadcasts_to, infer_shape, norm_dim};
use crate::tensor::Tensor;

impl Tensor {
    /// A tensor with the same values in a new shape; one dim may be `-1` (inferred).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::arange(0.0, 6.0, 1.0, DType::F32, Device::Cpu)?;
    /// assert_eq!(t.reshape(&[2, -1])?.dims(), &[2, 3]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let out = infer_shape("reshape", shape, self.dims())?;
        Ok(self.reshaped(out))
    }

    /// A reshape to a validated shape, recorded for autograd.
    fn reshaped(&self, out: Vec<usize>) -> Tensor {
        let y = self.wrap(reshape_to(self.prim(), &out), out);
        y.record(&[self], || Op::Reshape(self.graph_handle()))
    }

    /// [`Tensor::reshape`] with an exact shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Tensor> {
        let spec: Vec<isize> = shape.iter().map(|&s| s as isize).collect();
        self.reshape(&spec)
    }

    /// The elements in reverse order along `dims`, as `torch.flip` (a copy).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1i64, 2, 3, 4, 5, 6], &[2, 3], Device::Cpu)?;
    /// assert_eq!(x.flip(&[-1])?.to_vec::<i64>()?, vec![3, 2, 1, 6, 5, 4]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn flip(&self, dims: &[isize]) -> Result<Tensor> {
        const OP: &str = "flip";
        let mut axes = Vec::with_capacity(dims.len());
        for &d in dims {
            let d = norm_dim(OP, d, self.rank().max(1))?;
            if axes.contains(&d) {
                return Err(Error::shape(
                    OP,
                    &[self.dims()],
                    format!("dims {dims:?} repeat dim {d}"),
                ));
            }
            axes.push(d);
        }
        if self.rank() == 0 || axes.is_empty() {
            return Ok(self.clone());
        }
        axes.sort_unstable();
        let y = self.wrap(prim::flip(self.prim(), &axes), self.shape());
        Ok(y.record(&[self], || Op::Flip(self.clone(), axes)))
    }

    /// Reorders dims: output dim `i` is input dim `axes[i]`.
    pub fn permute(&self, axes: &[isize]) -> Result<Tensor> {
        const OP: &str = "permute";
        if axes.len() != self.rank() {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "{} axes {axes:?} given for a tensor of rank {}",
                    axes.len(),
                    self.rank()
                ),
            ));
        }
        let mut perm = Vec::with_capacity(axes.len());
        for &a in axes {
            let d = norm_dim(OP, a, self.rank())?;
            if perm.contains(&d) {
                return Err(Error::shape(
                    OP,
                    &[self.dims()],
                    format!("axes {axes:?} repeat dim {d}"),
                ));
            }
            perm.push(d);
        }
        if self.rank() <= 1 {
            return Ok(self.clone());
        }
        let out: Vec<usize> = perm.iter().map(|&d| self.dims()[d]).collect();
        let y = self.wrap(prim::permute(self.prim(), &perm), out);
        Ok(y.record(&[self], || Op::Permute(self.graph_handle(), perm)))
    }

    /// Swaps two dims.
    pub fn transpose(&self, d0: isize, d1: isize) -> Result<Tensor> {
        let r = self.rank().max(1);
        let (a, b) = (norm_dim("transpose", d0, r)?, norm_dim("transpose", d1, r)?);
        let mut axes: Vec<isize> = (0..self.rank() as isize).collect();
        if self.rank() > 0 {
            axes.swap(a, b);
        }
        self.permute(&axes)
    }

    /// Removes `dim` if its size is 1 (otherwise returns the tensor unchanged, as PyTorch).
    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            norm_dim("squeeze", dim, 1)?;
            return Ok(self.clone());
        }
        let d = norm_dim("squeeze", dim, self.rank())?;
        if self.dims()[d] != 1 {
            return Ok(self.clone());
        }
        let mut out = self.shape();
        out.remove(d);
        Ok(self.reshaped(out))
    }

    /// Removes every size-1 dim.
    pub fn squeeze_all(&self) -> Result<Tensor> {
        let out: Vec<usize> = self.dims().iter().copied().filter(|&s| s != 1).collect();
        Ok(self.reshaped(out))
    }

    /// Inserts a size-1 dim at `dim` (in `[-rank-1, rank]`).
    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = norm_dim("unsqueeze", dim, self.rank() + 1)?;
        let mut out = self.shape();
        out.insert(d, 1);
        Ok(self.reshaped(out))
    }

    /// Merges dims `start..=end` into one.
    pub fn flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.reshape(&[1]);
        }
        let s = norm_dim("flatten", start, self.rank())?;
        let e = norm_dim("flatten", end, self.rank())?;
        if s > e {
            return Err(Error::shape(
                "flatten",
                &[self.dims()],
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut out: Vec<usize> = self.dims()[..s].to_vec();
        out.push(self.dims()[s..=e].iter().product());
        out.extend_from_slice(&self.dims()[e + 1..]);
        Ok(self.reshaped(out))
    }

    /// Broadcasts to `shape` (NumPy rules; new dims are prepended), as `broadcast_to`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if !broadcasts_to(self.dims(), shape) {
            return Err(Error::Broadcast {
                op: "broadcast_to",
                lhs: self.shape(),
                rhs: shape.to_vec(),
            });
        }
        if shape == self.dims() {
            return Ok(self.clone());
        }
        crate::base::shape::checked_numel("broadcast_to", shape)?;
        let p = prim::expand(self.prim_rank(shape.len()), &out_p(shape));
        let y = self.wrap(p, shape.to_vec());
        Ok(y.record(&[self], || Op::Expand(self.graph_handle())))
    }

    /// `torch.Tensor.expand`: like `broadcast_to`, where `-1` keeps a dim's size.
    pub fn expand(&self, shape: &[isize]) -> Result<Tensor> {
        let lead = shape.len().saturating_sub(self.rank());
        let mut target = Vec::with_capacity(shape.len());
        for (i, &s) in shape.iter().enumerate() {
            target.push(match s {
                -1 if i >= lead => self.dims()[i - lead],
                s if s < 0 => {
                    return Err(Error::shape(
                        "expand",
                        &[self.dims()],
                        format!("invalid size {s} in {shape:?} for shape {:?}", self.dims()),
                    ));
                }
                s => s as usize,
            });
        }
        self.broadcast_to(&target)
    }

    /// `len` elements of `dim` starting at `start`, as `torch.narrow`.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = norm_dim("narrow", dim, self.rank())?;
        let size = self.dims()[d];
        if len == 0 || start + len > size {
            return Err(Error::index(
                "narrow",
                (start + len) as i64,
                size,
                format!(
                    "range {start}..{} is empty or outside dim {d} of size {size} (shape {:?})",
                    start + len,
                    self.dims()
                ),
            ));
        }
        self.slice_dims(d, start, start + len, 1)
    }

    /// Python slicing `x[.., start:end:step]` on one dim (`None` for an omitted bound);
    /// negative bounds count from the end and out-of-range bounds are clamped, as in PyTorch.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::arange(0.0, 10.0, 1.0, DType::I64, Device::Cpu)?;
    /// // t[1:-1:3]
    /// assert_eq!(t.slice(0, Some(1), Some(-1), 3)?.to_vec::<i64>()?, vec![1, 4, 7]);
    /// // t[-2:]
    /// assert_eq!(t.slice(0, Some(-2), None, 1)?.to_vec::<i64>()?, vec![8, 9]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn slice(
        &self,
        dim: isize,
        start: Option<isize>,
        end: Option<isize>,
        step: usize,
    ) -> Result<Tensor> {
        const OP: &str = "slice";
        let d = norm_dim(OP, dim, self.rank())?;
        if step == 0 {
            return Err(Error::data(OP, "step must be at least 1"));
        }
        let size = self.dims()[d] as isize;
        let clampi = |v: isize| -> isize {
            let v = if v < 0 { v + size } else { v };
            v.clamp(0, size)
        };
        let start = start.map_or(0, clampi);
        let end = end.map_or(size, clampi);
        if end <= start {
            return Err(Error::index(
                OP,
                start as i64,
                size as usize,
                format!(
                    "slice {start}..{end} of dim {d} (size {size}) is empty; empty tensors are \
                     not supported"
                ),
            ));
        }
        self.slice_dims(d, start as usize, end as usize, step)
    }

    fn slice_dims(&self, d: usize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let mut ranges: Vec<(usize, usize, usize)> =
            self.dims().iter().map(|&s| (0, s, 1)).collect();
        ranges[d] = (start, end, step);
        let mut out = self.shape();
        out[d] = (end - start).div_ceil(step);
        let y = self.wrap(prim::slice(self.prim(), &ranges), out);
        Ok(y.record(&[self], || Op::Slice {
            x: self.graph_handle(),
            dim: d,
            start,
            end,
            step,
        }))
    }

    /// Concatenates along `dim`; all other dims must match (dtypes are promoted).
    pub fn cat(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        const OP: &str = "cat";
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape(OP, &[], "needs at least one tensor"))?;
        if first.rank() == 0 {
            return Err(Error::shape(
                OP,
                &[first.dims()],
                "zero-dimensional tensors cannot be concatenated",
            ));
        }
        let d = norm_dim(OP, dim, first.rank())?;
        let dtype = tensors
            .iter()
            .fold(first.dtype(), |acc, t| DType::promote(acc, t.dtype()));
        let mut out = first.shape();
        out[d] = 0;
        let mut parts = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            first.same_device(OP, t)?;
            let same_rest = t.rank() == first.rank()
                && (0..t.rank()).all(|j| j == d || t.dims()[j] == first.dims()[j]);
            if !same_rest {
                return Err(Error::shape(
                    OP,
                    &[t.dims(), first.dims()],
                    format!(
                        "tensor {i} has shape {:?}, tensor 0 has {:?}; they must match except in dim {d}",
                        t.dims(),
                        first.dims()
                    ),
                ));
            }
            out[d] += t.dims()[d];
            parts.push(t.to_dtype(dtype)?);
        }
        if parts.len() == 1 {
            return first.to_dtype(dtype);
        }
        let y = first.wrap(prim::cat(parts.iter().map(Tensor::prim).collect(), d), out);
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(y.record(&refs, || {
            Op::Cat(parts.iter().map(Tensor::graph_handle).collect(), d)
        }))
    }

    /// Stacks equal-shaped tensors along a new dim.
    pub fn stack(tensors: &[&Tensor], dim: isize) -> Result<Tensor> {
        const OP: &str = "stack";
        let first = tensors
            .first()
            .ok_or_else(|| Error::shape(OP, &[], "needs at least one tensor"))?;
        let d = norm_dim(OP, dim, first.rank() + 1)?;
        let mut lifted = Vec::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if t.dims() != first.dims() {
                return Err(Error::shape(
                    OP,
                    &[t.dims(), first.dims()],
                    format!(
                        "tensor {i} has shape {:?}, tensor 0 has {:?}; stack needs equal shapes",
                        t.dims(),
                        first.dims()
                    ),
                ));
            }
            lifted.push(t.unsqueeze(d as isize)?);
        }
        let refs: Vec<&Tensor> = lifted.iter().collect();
        Tensor::cat(&refs, d as isize)
    }

    /// Splits `dim` into pieces of `size` (the last may be smaller), as `torch.split`.
    pub fn split(&self, size: usize, dim: isize) -> Result<Vec<Tensor>> {
        let d = norm_dim("split", dim, self.rank())?;
        if size == 0 {
            return Err(Error::data("split", "split size must be at least 1"));
        }
        let total = self.dims()[d];
        let sizes: Vec<usize> = (0..total)
            .step_by(size)
            .map(|s| size.min(total - s))
            .collect();
        self.split_sizes(&sizes, dim)
    }

    /// Splits `dim` into pieces of the given sizes (which must sum to the dim's size).
    pub fn split_sizes(&self, sizes: &[usize], dim: isize) -> Result<Vec<Tensor>> {
        let d = norm_dim("split", dim, self.rank())?;
        let total = self.dims()[d];
        if sizes.iter().sum::<usize>() != total || sizes.contains(&0) {
            return Err(Error::shape(
                "split",
                &[self.dims()],
                format!(
                    "sizes {sizes:?} do not split dim {d} of size {total} into non-empty parts"
                ),
            ));
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(d as isize, start, s)?);
            start += s;
        }
        Ok(out)
    }

    /// Splits `dim` into `chunks` near-equal pieces, as `torch.chunk`.
    pub fn chunk(&self, chunks: usize, dim: isize) -> Result<Vec<Tensor>> {
        if chunks == 0 {
            return Err(Error::data("chunk", "needs at least one chunk"));
        }
        let d = norm_dim("chunk", dim, self.rank())?;
        self.split(self.dims()[d].div_ceil(chunks), dim)
    }

    /// Keeps the lower triangle (`j - i <= diagonal`) of the last two dims, zeroing the rest.
    pub fn tril(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("tril", diagonal, true)
    }

    /// Keeps the upper triangle (`j - i >= diagonal`) of the last two dims, zeroing the rest.
    pub fn triu(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("triu", diagonal, false)
    }

    fn triangle(&self, op: &'static str, diagonal: i64, lower: bool) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::shape(
                op,
                &[self.dims()],
                format!("needs at least 2 dims, got shape {:?}", self.dims()),
            ));
        }
        let (r, c) = (self.dims()[self.rank() - 2], self.dims()[self.rank() - 1]);
        let drop: Vec<f64> = (0..r * c)
            .map(|k| {
                let off = (k % c) as i64 - (k / c) as i64;
                let keep = if lower {
                    off <= diagonal
                } else {
                    off >= diagonal
                };
                if keep { 0.0 } else { 1.0 }
            })
            .collect();
        let mask = upload_f64(drop, &[r, c], DType::Bool, self.device())?;
        self.masked_fill(&mask, 0.0)
    }
}
