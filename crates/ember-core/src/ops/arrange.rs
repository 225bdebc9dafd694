//! Rearranging ops composed of slices, concatenation, expansion and index selection (so their
//! gradients come from those ops' rules): `roll`, `repeat`, `tile`, `pad`, `diagonal`.

use crate::base::shape::norm_dim;
use crate::{Error, Result, Tensor};

/// How [`Tensor::pad`] fills the border, as `torch.nn.functional.pad`'s `mode`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant value (PyTorch's `"constant"`, default 0).
    Constant(f64),
    /// Mirror without repeating the edge: `[1 2 3]` padded by 2 is `3 2 [1 2 3] 2 1`.
    Reflect,
    /// Repeat the edge: `1 1 [1 2 3] 3 3`.
    Replicate,
    /// Wrap around: `2 3 [1 2 3] 1 2`.
    Circular,
}

impl Tensor {
    /// Rotates elements along `dims` by `shifts` (elements past the end come back at the
    /// start), as `torch.roll`; with no dims the flattened tensor is rolled.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1i64, 2, 3, 4, 5], &[5], Device::Cpu)?;
    /// assert_eq!(x.roll(&[2], &[0])?.to_vec::<i64>()?, vec![4, 5, 1, 2, 3]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn roll(&self, shifts: &[isize], dims: &[isize]) -> Result<Tensor> {
        const OP: &str = "roll";
        if dims.is_empty() {
            if shifts.len() != 1 {
                return Err(Error::shape(
                    OP,
                    &[self.dims()],
                    format!("without dims, takes one shift, got {shifts:?}"),
                ));
            }
            return self
                .flatten(0, -1)?
                .roll(shifts, &[0])?
                .reshape_to(self.dims());
        }
        if shifts.len() != dims.len() {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "{} shifts {shifts:?} for {} dims {dims:?}",
                    shifts.len(),
                    dims.len()
                ),
            ));
        }
        let mut y = self.clone();
        for (&shift, &dim) in shifts.iter().zip(dims) {
            let d = norm_dim(OP, dim, self.rank())?;
            let n = self.dims()[d] as isize;
            let s = shift.rem_euclid(n) as usize;
            if s == 0 {
                continue;
            }
            let n = n as usize;
            let di = d as isize;
            y = Tensor::cat(&[&y.narrow(di, n - s, s)?, &y.narrow(di, 0, n - s)?], di)?;
        }
        Ok(y)
    }

    /// The tensor tiled `sizes[i]` times along each dim, as `torch.Tensor.repeat` (`sizes`
    /// may be longer than the rank: new leading dims).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1i64, 2], &[2], Device::Cpu)?;
    /// let y = x.repeat(&[2, 2])?; // (2, 4)
    /// assert_eq!(y.to_vec::<i64>()?, vec![1, 2, 1, 2, 1, 2, 1, 2]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn repeat(&self, sizes: &[usize]) -> Result<Tensor> {
        const OP: &str = "repeat";
        if sizes.len() < self.rank() {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "{} repeat sizes {sizes:?} for a tensor of rank {}; give at least one per dim",
                    sizes.len(),
                    self.rank()
                ),
            ));
        }
        if sizes.contains(&0) {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                "a repeat of 0 makes an empty tensor; empty tensors are not supported",
            ));
        }
        let mut dims = vec![1; sizes.len() - self.rank()];
        dims.extend_from_slice(self.dims());
        // (1, s0, 1, s1, ..) expanded to (r0, s0, r1, s1, ..), then merged pairwise.
        let spread: Vec<usize> = dims.iter().flat_map(|&s| [1, s]).collect();
        let target: Vec<usize> = dims.iter().zip(sizes).flat_map(|(&s, &r)| [r, s]).collect();
        let out: Vec<usize> = dims.iter().zip(sizes).map(|(&s, &r)| s * r).collect();
        crate::base::shape::checked_numel(OP, &out)?;
        self.reshape_to(&spread)?
            .broadcast_to(&target)?
            .reshape_to(&out)
    }

    /// As [`Tensor::repeat`], but `reps` shorter than the rank is padded with leading ones,
    /// as `torch.tile`.
    pub fn tile(&self, reps: &[usize]) -> Result<Tensor> {
        let mut sizes = vec![1; self.rank().saturating_sub(reps.len())];
        sizes.extend_from_slice(reps);
        self.repeat(&sizes)
    }

    /// Pads the last dims, as `torch.nn.functional.pad`: `pads` holds (before, after) pairs
    /// starting from the last dim. Negative amounts crop (constant mode only).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, PadMode};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3], Device::Cpu)?;
    /// let y = x.pad(&[1, 2], PadMode::Constant(0.0))?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0]);
    /// let r = x.pad(&[2, 1], PadMode::Reflect)?;
    /// assert_eq!(r.to_vec::<f32>()?, vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn pad(&self, pads: &[isize], mode: PadMode) -> Result<Tensor> {
        const OP: &str = "pad";
        if !pads.len().is_multiple_of(2) || pads.len() / 2 > self.rank() {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "pads {pads:?} must be (before, after) pairs for at most the {} dims",
                    self.rank()
                ),
            ));
        }
        let mut y = self.clone();
        for (i, pair) in pads.chunks(2).enumerate() {
            let d = self.rank() - 1 - i;
            y = pad_dim(&y, d, pair[0], pair[1], mode)?;
        }
        Ok(y)
    }

    /// The diagonal of the `(dim1, dim2)` planes moved to a new last dim, as
    /// `torch.diagonal` (`offset` > 0 above the main diagonal, < 0 below).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let x = Tensor::arange(0.0, 9.0, 1.0, DType::I64, Device::Cpu)?.reshape(&[3, 3])?;
    /// assert_eq!(x.diagonal(0, 0, 1)?.to_vec::<i64>()?, vec![0, 4, 8]);
    /// assert_eq!(x.diagonal(1, 0, 1)?.to_vec::<i64>()?, vec![1, 5]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn diagonal(&self, offset: isize, dim1: isize, dim2: isize) -> Result<Tensor> {
        const OP: &str = "diagonal";
        let d1 = norm_dim(OP, dim1, self.rank())?;
        let d2 = norm_dim(OP, dim2, self.rank())?;
        if d1 == d2 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!("dim1 and dim2 are both {d1}"),
            ));
        }
        let (n1, n2) = (self.dims()[d1] as isize, self.dims()[d2] as isize);
        let (r0, c0) = if offset >= 0 {
            (0, offset)
        } else {
            (-offset, 0)
        };
        let len = (n1 - r0).min(n2 - c0);
        if len <= 0 {
            return Err(Error::shape(
                OP,
                &[self.dims()],
                format!(
                    "offset {offset} leaves an empty diagonal; empty tensors are not supported"
                ),
            ));
        }
        let mut perm: Vec<isize> = (0..self.rank())
            .filter(|&a| a != d1 && a != d2)
            .map(|a| a as isize)
            .collect();
        perm.extend([d1 as isize, d2 as isize]);
        let moved = self.permute(&perm)?; // (.., n1, n2)
        let lead = self.rank() - 2;
        let flat = moved.flatten(lead as isize, -1)?; // (.., n1·n2)
        let start = r0 * n2 + c0;
        let end = start + (len - 1) * (n2 + 1) + 1;
        flat.slice(-1, Some(start), Some(end), (n2 + 1) as usize)
    }
}

/// One dim of [`Tensor::pad`].
fn pad_dim(x: &Tensor, d: usize, before: isize, after: isize, mode: PadMode) -> Result<Tensor> {
    const OP: &str = "pad";
    let n = x.dims()[d];
    let di = d as isize;
    let PadMode::Constant(value) = mode else {
        return pad_by_index(x, d, before, after, mode);
    };
    let crop_lo = (-before).max(0) as usize;
    let crop_hi = (-after).max(0) as usize;
    if crop_lo + crop_hi >= n {
        return Err(Error::shape(
            OP,
            &[x.dims()],
            format!("pads ({before}, {after}) crop all {n} elements of dim {d}"),
        ));
    }
    let core = x.narrow(di, crop_lo, n - crop_lo - crop_hi)?;
    let side = |len: isize| -> Result<Option<Tensor>> {
        if len <= 0 {
            return Ok(None);
        }
        let mut shape = core.shape();
        shape[d] = len as usize;
        crate::base::shape::checked_numel(OP, &shape)?;
        Tensor::full(&shape, value, x.dtype(), x.device()).map(Some)
    };
    let (lo, hi) = (side(before)?, side(after)?);
    let parts: Vec<&Tensor> = lo.iter().chain([&core]).chain(hi.iter()).collect();
    Tensor::cat(&parts, di)
}

/// Reflect, replicate and circular padding as one `index_select` along `d`.
fn pad_by_index(
    x: &Tensor,
    d: usize,
    before: isize,
    after: isize,
    mode: PadMode,
) -> Result<Tensor> {
    const OP: &str = "pad";
    let n = x.dims()[d] as i64;
    let (lo, hi) = (before as i64, after as i64);
    let limit = match mode {
        PadMode::Reflect => n - 1,
        PadMode::Circular => n,
        _ => i64::MAX,
    };
    if lo < 0 || hi < 0 || lo > limit || hi > limit {
        return Err(Error::shape(
            OP,
            &[x.dims()],
            format!(
                "{mode:?} padding ({before}, {after}) of dim {d} (size {n}) must be \
                 non-negative and at most {limit}"
            ),
        ));
    }
    let source = |i: i64| -> i64 {
        match mode {
            PadMode::Reflect => {
                if i < 0 {
                    -i
                } else if i >= n {
                    2 * (n - 1) - i
                } else {
                    i
                }
            }
            PadMode::Replicate => i.clamp(0, n - 1),
            _ => i.rem_euclid(n),
        }
    };
    let idx: Vec<i64> = (-lo..n + hi).map(source).collect();
    let len = idx.len();
    let idx = Tensor::from_vec(idx, &[len], x.device())?;
    x.index_select(d as isize, &idx)
}
