//! Indexing ops: index_select, gather, scatter_add, embedding lookup.
//!
//! Index values are checked on the host before burn sees them: an out-of-range index is an
//! error, never an out-of-bounds read on a device.

use crate::kernels::prim;
use crate::{DType, Error, Result};

use crate::autograd::Op;
use crate::base::shape::norm_dim;
use crate::tensor::Tensor;

impl Tensor {
    /// Checks that `idx` is an I64 tensor on our device with every value in `0..bound`, and
    /// returns the indices to use. A device read only asynchronously (WebGPU in a browser)
    /// cannot be checked on the host without a read: there the indices are clamped into
    /// `0..bound` on the device instead, so a bad index reads a wrong row, never outside the
    /// tensor (callers there check their ids on the host before uploading them).
    fn check_indices(&self, op: &'static str, idx: &Tensor, bound: usize) -> Result<Tensor> {
        self.same_device(op, idx)?;
        if idx.dtype() != DType::I64 {
            return Err(Error::dtype(
                op,
                &[idx.dtype()],
                format!("indices must be i64, got {}", idx.dtype()),
            ));
        }
        if !idx.device().reads_synchronously() {
            let last = bound.saturating_sub(1) as f64;
            return idx.clamp(Some(0.0), Some(last));
        }
        let values = idx.to_vec::<i64>()?;
        if let Some(&bad) = values.iter().find(|&&v| v < 0 || v as usize >= bound) {
            return Err(Error::index(
                op,
                bad,
                bound,
                format!("index {bad} is out of range for a dimension of size {bound}"),
            ));
        }
        Ok(idx.clone())
    }

    /// Picks entries along `dim` by a 1-D I64 index tensor, as `torch.index_select`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::arange(0.0, 6.0, 1.0, DType::F32, Device::Cpu)?.reshape(&[3, 2])?;
    /// let i = Tensor::from_vec(vec![2i64, 0], &[2], Device::Cpu)?;
    /// assert_eq!(t.index_select(0, &i)?.to_vec::<f32>()?, vec![4.0, 5.0, 0.0, 1.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn index_select(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "index_select";
        let d = norm_dim(OP, dim, self.rank())?;
        if idx.rank() > 1 {
            return Err(Error::shape(
                OP,
                &[idx.dims()],
                format!("indices must be 1-D, got shape {:?}", idx.dims()),
            ));
        }
        let idx = self.check_indices(OP, idx, self.dims()[d])?;
        let mut out = self.shape();
        out[d] = idx.numel();
        Ok(self.select_rows(d, &idx, out))
    }

    /// `index_select` after validation, recorded for autograd.
    fn select_rows(&self, dim: usize, idx: &Tensor, out: Vec<usize>) -> Tensor {
        let y = self.wrap(prim::select(self.prim(), dim, idx.prim()), out);
        y.record(&[self], || Op::IndexSelect {
            x: self.clone(),
            dim,
            idx: idx.clone(),
        })
    }

    /// `torch.gather`: `out[i][j][k] = self[i][idx[i][j][k]][k]` for `dim = 1`. `idx` has the
    /// rank of `self` and no dim larger than `self`'s (except along `dim`).
    pub fn gather(&self, dim: isize, idx: &Tensor) -> Result<Tensor> {
        const OP: &str = "gather";
        let d = norm_dim(OP, dim, self.rank())?;
        self.check_index_shape(OP, d, idx)?;
        let idx = &self.check_indices(OP, idx, self.dims()[d])?;
        let src = self.narrow_to(d, idx.dims())?;
        let y = self.wrap(prim::gather(src.prim(), d, idx.prim()), idx.shape());
        Ok(y.record(&[&src], || Op::Gather {
            x: src.clone(),
            dim: d,
            idx: idx.clone(),
        }))
    }

    /// `torch.scatter_add`: a copy of `self` with `src` values added at `idx` along `dim`.
    /// `idx` and `src` have equal shapes, no larger than `self` outside `dim`.
    pub fn scatter_add(&self, dim: isize, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
        const OP: &str = "scatter_add";
        let d = norm_dim(OP, dim, self.rank())?;
        self.same_device(OP, src)?;
        if idx.dims() != src.dims() {
            return Err(Error::shape(
                OP,
                &[idx.dims(), src.dims()],
                format!(
                    "index shape {:?} and source shape {:?} must be equal",
                    idx.dims(),
                    src.dims()
                ),
            ));
        }
        if self.dtype() == DType::Bool {
            return Err(Error::dtype(
                OP,
                &[self.dtype()],
                "not defined for bool tensors",
            ));
        }
        self.check_index_shape(OP, d, idx)?;
        let idx = &self.check_indices(OP, idx, self.dims()[d])?;
        let src = src.to_dtype(self.dtype())?;
        if idx.dims() == self.dims() || self.rank() == 0 {
            return Ok(self.scattered(d, idx, &src));
        }
        // Pad idx/src to self's shape outside `dim` is not possible without a fill index, so
        // scatter into a zero tensor of the region's shape and add it back in place.
        let mut region = self.shape();
        for (i, r) in region.iter_mut().enumerate() {
            if i != d {
                *r = idx.dims()[i];
            }
        }
        let zeros = Tensor::zeros(&region, self.dtype(), self.device())?;
        let part = zeros.scattered(d, idx, &src);
        let pads: Vec<(usize, usize)> = (0..self.rank())
            .map(|i| (0, self.dims()[i] - region[i]))
            .collect();
        self.add(&part.zero_pad(&pads)?)
    }

    /// Rows of `self` (a `(num_embeddings, dim)` table) for each id: `ids` of shape `S` gives
    /// `(S.., dim)`, as `torch.nn.functional.embedding(ids, self)`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        const OP: &str = "embedding";
        if self.rank() != 2 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!("the table must be 2-D, got shape {:?}", self.dims()),
            ));
        }
        let ids = self.check_indices(OP, ids, self.dims()[0])?;
        let flat = ids.reshape(&[-1])?;
        let rows = self.select_rows(0, &flat, vec![flat.numel(), self.dims()[1]]);
        let mut out = ids.shape();
        out.push(self.dims()[1]);
        rows.reshape_to(&out)
    }

    /// `scatter_add` with `idx` and `src` of this tensor's shape, recorded for autograd.
    fn scattered(&self, dim: usize, idx: &Tensor, src: &Tensor) -> Tensor {
        let p = prim::scatter_add(self.prim(), dim, idx.prim(), src.prim());
        let y = self.wrap(p, self.shape());
        y.record(&[self, src], || Op::ScatterAdd {
            x: self.clone(),
            dim,
            idx: idx.clone(),
            src: src.clone(),
        })
    }

    fn check_index_shape(&self, op: &'static str, d: usize, idx: &Tensor) -> Result<()> {
        let ok = idx.rank() == self.rank()
            && (0..self.rank()).all(|i| i == d || idx.dims()[i] <= self.dims()[i]);
        if !ok {
            return Err(Error::shape(
                op,
                &[idx.dims(), self.dims()],
                format!(
                    "index shape {:?} does not fit input shape {:?} along dim {d}",
                    idx.dims(),
                    self.dims()
                ),
            ));
        }
        Ok(())
    }

    /// Narrows every dim except `keep` to the sizes in `shape`.
    fn narrow_to(&self, keep: usize, shape: &[usize]) -> Result<Tensor> {
        let mut t = self.clone();
        for (i, &s) in shape.iter().enumerate() {
            if i != keep && s != t.dims()[i] {
                t = t.narrow(i as isize, 0, s)?;
            }
        }
        Ok(t)
    }

    /// Zero padding `(before, after)` per dim.
    pub(crate) fn zero_pad(&self, pads: &[(usize, usize)]) -> Result<Tensor> {
        let mut t = self.clone();
        for (i, &(before, after)) in pads.iter().enumerate() {
            let mut parts = Vec::new();
            let mut shape = t.shape();
            if before > 0 {
                shape[i] = before;
                parts.push(Tensor::zeros(&shape, t.dtype(), t.device())?);
            }
            parts.push(t.clone());
            if after > 0 {
                shape[i] = after;
                parts.push(Tensor::zeros(&shape, t.dtype(), t.device())?);
            }
            let refs: Vec<&Tensor> = parts.iter().collect();
            t = Tensor::cat(&refs, i as isize)?;
        }
        Ok(t)
    }
}
