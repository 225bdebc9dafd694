//! Pooling as PyTorch's `max_pool{1,2}d`, `avg_pool{1,2}d` and `adaptive_{avg,max}_pool{1,2}d`,
//! composed of strided slices and reductions (so gradients come from `max`/`mean`'s rules;
//! the gradient of a tied maximum is shared, where PyTorch gives it to one element).

use super::conv::{Window, windows};
use crate::{Error, Result, Tensor};

/// Kernel, stride, padding and dilation of a pooling window over `D` spatial dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOpts<const D: usize> {
    /// window size per spatial dim
    pub kernel: [usize; D],
    /// step between windows (PyTorch's default: the kernel size)
    pub stride: [usize; D],
    /// border added on both sides (-inf for max pooling, 0 for average); at most half the
    /// kernel, as PyTorch
    pub padding: [usize; D],
    /// spacing of window taps (max pooling only; 1 for average pooling)
    pub dilation: [usize; D],
}

impl<const D: usize> PoolOpts<D> {
    /// A window of `kernel` with stride `kernel`, no padding, no dilation.
    pub fn new(kernel: [usize; D]) -> Self {
        PoolOpts {
            kernel,
            stride: kernel,
            padding: [0; D],
            dilation: [1; D],
        }
    }

    /// With another stride.
    pub fn stride(mut self, stride: [usize; D]) -> Self {
        self.stride = stride;
        self
    }

    /// With padding.
    pub fn padding(mut self, padding: [usize; D]) -> Self {
        self.padding = padding;
        self
    }

    /// With dilation.
    pub fn dilation(mut self, dilation: [usize; D]) -> Self {
        self.dilation = dilation;
        self
    }

    fn windows(&self, op: &'static str, x: &Tensor) -> Result<Vec<Window>> {
        if x.rank() < D + 1 || !x.dtype().is_float() {
            return Err(Error::shape(
                op,
                &[x.dims()],
                format!(
                    "expects a float input of rank {} or {}, got {:?} ({})",
                    D + 1,
                    D + 2,
                    x.dims(),
                    x.dtype()
                ),
            ));
        }
        (0..D)
            .map(|i| {
                if self.padding[i] * 2 > self.kernel[i] {
                    return Err(Error::shape(
                        op,
                        &[x.dims()],
                        format!(
                            "padding {:?} must be at most half the kernel {:?}",
                            self.padding, self.kernel
                        ),
                    ));
                }
                Ok(Window {
                    kernel: self.kernel[i],
                    stride: self.stride[i],
                    padding: self.padding[i],
                    dilation: self.dilation[i],
                })
            })
            .collect()
    }
}

impl Tensor {
    /// Max pooling over the last dim of `(N, C, L)` or `(C, L)`, as `F.max_pool1d`.
    pub fn max_pool1d(&self, o: PoolOpts<1>) -> Result<Tensor> {
        self.max_pool("max_pool1d", o)
    }

    /// Max pooling over the last two dims of `(N, C, H, W)` or `(C, H, W)`, as `F.max_pool2d`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType, PoolOpts};
    /// let x = Tensor::arange(0.0, 16.0, 1.0, DType::F32, Device::Cpu)?.reshape(&[1, 1, 4, 4])?;
    /// let y = x.max_pool2d(PoolOpts::new([2, 2]))?; // (1, 1, 2, 2)
    /// assert_eq!(y.to_vec::<f32>()?, vec![5.0, 7.0, 13.0, 15.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn max_pool2d(&self, o: PoolOpts<2>) -> Result<Tensor> {
        self.max_pool("max_pool2d", o)
    }

    fn max_pool<const D: usize>(&self, op: &'static str, o: PoolOpts<D>) -> Result<Tensor> {
        let wins = o.windows(op, self)?;
        let (w, _) = windows(op, self, &wins, f64::NEG_INFINITY)?;
        w.max(&[(self.rank() - D) as isize], false)
    }

    /// Average pooling over the last dim, as `F.avg_pool1d` (`count_include_pad` counts the
    /// zero border in the divisor, PyTorch's default).
    pub fn avg_pool1d(&self, o: PoolOpts<1>, count_include_pad: bool) -> Result<Tensor> {
        self.avg_pool("avg_pool1d", o, count_include_pad)
    }

    /// Average pooling over the last two dims, as `F.avg_pool2d`.
    pub fn avg_pool2d(&self, o: PoolOpts<2>, count_include_pad: bool) -> Result<Tensor> {
        self.avg_pool("avg_pool2d", o, count_include_pad)
    }

    fn avg_pool<const D: usize>(
        &self,
        op: &'static str,
        o: PoolOpts<D>,
        count_include_pad: bool,
    ) -> Result<Tensor> {
        if o.dilation != [1; D] {
            return Err(Error::data(op, "average pooling has no dilation"));
        }
        let wins = o.windows(op, self)?;
        let axis = (self.rank() - D) as isize;
        let (w, _) = windows(op, self, &wins, 0.0)?;
        let sum = w.sum(&[axis], false)?;
        if count_include_pad || o.padding == [0; D] {
            let k: usize = o.kernel.iter().product();
            return sum.div_scalar(k as f64);
        }
        let spatial = &self.dims()[self.rank() - D..];
        let ones = Tensor::ones(spatial, self.dtype(), self.device())?;
        let (cw, _) = windows(op, &ones, &wins, 0.0)?;
        sum.div(&cw.sum(&[0], false)?)
    }

    /// Average pooling to a fixed output length, as `F.adaptive_avg_pool1d`.
    pub fn adaptive_avg_pool1d(&self, out: [usize; 1]) -> Result<Tensor> {
        self.adaptive("adaptive_avg_pool1d", &out, false)
    }

    /// Average pooling to a fixed `(H, W)`, as `F.adaptive_avg_pool2d`: output cell `i` of a
    /// dim of length `n` covers `floor(i·n/out)..ceil((i+1)·n/out)`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let x = Tensor::arange(0.0, 16.0, 1.0, DType::F32, Device::Cpu)?.reshape(&[1, 4, 4])?;
    /// let y = x.adaptive_avg_pool2d([1, 1])?; // (1, 1, 1)
    /// assert_eq!(y.to_vec::<f32>()?, vec![7.5]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn adaptive_avg_pool2d(&self, out: [usize; 2]) -> Result<Tensor> {
        self.adaptive("adaptive_avg_pool2d", &out, false)
    }

    /// Max pooling to a fixed output length, as `F.adaptive_max_pool1d` (values only).
    pub fn adaptive_max_pool1d(&self, out: [usize; 1]) -> Result<Tensor> {
        self.adaptive("adaptive_max_pool1d", &out, true)
    }

    /// Max pooling to a fixed `(H, W)`, as `F.adaptive_max_pool2d` (values only).
    pub fn adaptive_max_pool2d(&self, out: [usize; 2]) -> Result<Tensor> {
        self.adaptive("adaptive_max_pool2d", &out, true)
    }

    /// Separable: the windows of a rectangle are pooled one spatial dim at a time.
    fn adaptive(&self, op: &'static str, out: &[usize], max: bool) -> Result<Tensor> {
        let d = out.len();
        if self.rank() < d + 1 || !self.dtype().is_float() || out.contains(&0) {
            return Err(Error::shape(
                op,
                &[self.dims()],
                format!(
                    "expects a float input of rank {} or {} and output sizes of at least 1, \
                     got {:?} ({}) and {out:?}",
                    d + 1,
                    d + 2,
                    self.dims(),
                    self.dtype()
                ),
            ));
        }
        let mut y = self.clone();
        for (i, &m) in out.iter().enumerate() {
            let axis = self.rank() - d + i;
            let n = self.dims()[axis];
            let mut cells = Vec::with_capacity(m);
            for j in 0..m {
                let start = j * n / m;
                let end = ((j + 1) * n).div_ceil(m);
                let win = y.narrow(axis as isize, start, end - start)?;
                let a = [axis as isize];
                cells.push(if max {
                    win.max(&a, true)?
                } else {
                    win.mean(&a, true)?
                });
            }
            let refs: Vec<&Tensor> = cells.iter().collect();
            y = Tensor::cat(&refs, axis as isize)?;
        }
        Ok(y)
    }
}
