//! Data-dependent selection: `nonzero`, `masked_select`, `one_hot`. The positions are found on
//! the host (the result's size depends on the values); `masked_select`'s values are then an
//! `index_select` on the device, so its gradient is that op's.

use crate::base::shape::broadcast;
use crate::{DType, Error, Result, Tensor};

impl Tensor {
    /// The row-major positions of the non-zero elements as an `(n, rank)` I64 tensor, as
    /// `torch.nonzero`. No non-zero element is an error (empty tensors are not supported).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![0.0f32, 3.0, 0.0, 5.0], &[2, 2], Device::Cpu)?;
    /// assert_eq!(x.nonzero()?.to_vec::<i64>()?, vec![0, 1, 1, 1]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn nonzero(&self) -> Result<Tensor> {
        const OP: &str = "nonzero";
        let hits = self.flat_hits(OP)?;
        let rank = self.rank();
        let mut out = Vec::with_capacity(hits.len() * rank.max(1));
        for &flat in &hits {
            let mut rest = flat;
            let start = out.len();
            for &s in self.dims().iter().rev() {
                out.push((rest % s) as i64);
                rest /= s;
            }
            out[start..].reverse();
        }
        if rank == 0 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                "a 0-d tensor has no index columns; empty tensors are not supported",
            ));
        }
        let n = hits.len();
        Tensor::from_vec(out, &[n, rank], self.device())
    }

    /// Flat positions of the non-zero elements; none is an error.
    fn flat_hits(&self, op: &'static str) -> Result<Vec<usize>> {
        let truth = self.ne_scalar(0.0)?.to_vec::<bool>()?;
        let hits: Vec<usize> = (0..truth.len()).filter(|&i| truth[i]).collect();
        if hits.is_empty() {
            return Err(Error::shape(
                op,
                &[self.dims()],
                "no element is selected; empty tensors are not supported",
            ));
        }
        Ok(hits)
    }

    /// The elements where `mask` is true, as a 1-D tensor in row-major order, as
    /// `torch.masked_select` (`self` and `mask` broadcast together).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, -2.0, 3.0, -4.0], &[2, 2], Device::Cpu)?;
    /// let y = x.masked_select(&x.gt_scalar(0.0)?)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![1.0, 3.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn masked_select(&self, mask: &Tensor) -> Result<Tensor> {
        const OP: &str = "masked_select";
        if mask.dtype() != DType::Bool {
            return Err(Error::dtype(
                OP,
                &[mask.dtype()],
                format!("the mask must be bool, got {}", mask.dtype()),
            ));
        }
        self.same_device(OP, mask)?;
        let out = broadcast(OP, self.dims(), mask.dims())?;
        let mask = mask.broadcast_to(&out)?;
        let hits = mask.flat_hits(OP)?;
        let idx: Vec<i64> = hits.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_vec(idx, &[hits.len()], self.device())?;
        let flat = self.broadcast_to(&out)?.reshape(&[-1])?;
        flat.index_select(0, &idx)
    }

    /// Class indices (I64) as one-hot rows: shape `(.., num_classes)`, as
    /// `torch.nn.functional.one_hot`. `None` uses the largest index plus one.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let y = Tensor::from_vec(vec![2i64, 0], &[2], Device::Cpu)?;
    /// assert_eq!(y.one_hot(Some(3))?.to_vec::<i64>()?, vec![0, 0, 1, 1, 0, 0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn one_hot(&self, num_classes: Option<usize>) -> Result<Tensor> {
        const OP: &str = "one_hot";
        if self.dtype() != DType::I64 {
            return Err(Error::dtype(
                OP,
                &[self.dtype()],
                format!("class indices must be i64, got {}", self.dtype()),
            ));
        }
        let values = self.to_vec::<i64>()?;
        let top = values.iter().copied().max().unwrap_or(0);
        let classes = num_classes.unwrap_or((top.max(0) + 1) as usize);
        if let Some(&bad) = values.iter().find(|&&v| v < 0 || v as usize >= classes) {
            return Err(Error::index(
                OP,
                bad,
                classes,
                format!("class index {bad} is outside 0..{classes}"),
            ));
        }
        let mut shape = self.shape();
        shape.push(classes);
        crate::base::shape::checked_numel(OP, &shape)?;
        let range = Tensor::arange(0.0, classes as f64, 1.0, DType::I64, self.device())?;
        self.unsqueeze(-1)?.eq(&range)?.to_dtype(DType::I64)
    }
}
