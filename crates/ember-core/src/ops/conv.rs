//! Convolution (`conv1d`, `conv2d`) as PyTorch's, composed as im2col: each kernel offset is a
//! strided slice of the padded input, the slices are stacked, and one batched `matmul` per
//! group multiplies them by the weight. Gradients come from those ops' rules, and the product
//! runs on the matmul kernels.

use super::arrange::PadMode;
use crate::{Error, Result, Tensor};

/// Stride, zero padding, dilation and groups of a convolution over `D` spatial dims, as the
/// keyword arguments of `torch.nn.functional.conv{D}d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvOpts<const D: usize> {
    /// step between windows per spatial dim (default 1)
    pub stride: [usize; D],
    /// zeros added on both sides per spatial dim (default 0)
    pub padding: [usize; D],
    /// spacing of kernel taps per spatial dim (default 1)
    pub dilation: [usize; D],
    /// channel groups: input and output channels are split into this many blocks (default 1)
    pub groups: usize,
}

impl<const D: usize> Default for ConvOpts<D> {
    fn default() -> Self {
        ConvOpts {
            stride: [1; D],
            padding: [0; D],
            dilation: [1; D],
            groups: 1,
        }
    }
}

/// One spatial dim of a sliding window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Window {
    /// Output length over an input of length `n`.
    fn out_len(&self, op: &'static str, n: usize, dims: &[usize]) -> Result<usize> {
        let span = self.dilation * (self.kernel - 1) + 1;
        let padded = n + 2 * self.padding;
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 || padded < span {
            return Err(Error::shape(
                op,
                &[dims],
                format!(
                    "a window of kernel {} (dilation {}, stride {}) does not fit a length of {n} \
                     padded by {}",
                    self.kernel, self.dilation, self.stride, self.padding
                ),
            ));
        }
        Ok((padded - span) / self.stride + 1)
    }
}

/// Every kernel offset of `x (N, C, *spatial)` stacked after the channels: `(N, C, K,
/// *out)` with `K` the product of the kernel sizes (row-major over offsets), the border filled
/// with `fill`. Returns the output spatial sizes too.
pub(crate) fn windows(
    op: &'static str,
    x: &Tensor,
    wins: &[Window],
    fill: f64,
) -> Result<(Tensor, Vec<usize>)> {
    let lead = x.rank() - wins.len();
    let mut out = Vec::with_capacity(wins.len());
    for (i, w) in wins.iter().enumerate() {
        out.push(w.out_len(op, x.dims()[lead + i], x.dims())?);
    }
    let mut pads = Vec::new();
    for w in wins.iter().rev() {
        pads.extend([w.padding as isize, w.padding as isize]);
    }
    let mut taps = out.clone();
    taps.splice(0..0, x.dims()[..lead].iter().copied());
    taps.insert(lead, wins.iter().map(|w| w.kernel).product());
    crate::base::shape::checked_numel(op, &taps)?;
    let padded = if pads.iter().any(|&p| p > 0) {
        x.pad(&pads, PadMode::Constant(fill))?
    } else {
        x.clone()
    };
    let mut slices = Vec::new();
    let mut offset = vec![0usize; wins.len()];
    loop {
        let mut s = padded.clone();
        for (i, w) in wins.iter().enumerate() {
            let start = offset[i] * w.dilation;
            let end = start + (out[i] - 1) * w.stride + 1;
            s = s.slice(
                (lead + i) as isize,
                Some(start as isize),
                Some(end as isize),
                w.stride,
            )?;
        }
        slices.push(s);
        // Next offset, last dim fastest.
        let mut i = wins.len();
        loop {
            if i == 0 {
                let refs: Vec<&Tensor> = slices.iter().collect();
                return Ok((Tensor::stack(&refs, lead as isize)?, out));
            }
            i -= 1;
            offset[i] += 1;
            if offset[i] < wins[i].kernel {
                break;
            }
            offset[i] = 0;
        }
    }
}

impl Tensor {
    /// 1-D convolution of `self (N, C, L)` (or `(C, L)`) with `weight (O, C/groups, k)`, as
    /// `torch.nn.functional.conv1d`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType, ConvOpts};
    /// let x = Tensor::arange(0.0, 5.0, 1.0, DType::F32, Device::Cpu)?.reshape(&[1, 1, 5])?;
    /// let w = Tensor::ones(&[1, 1, 2], DType::F32, Device::Cpu)?;
    /// let y = x.conv1d(&w, None, ConvOpts::default())?; // (1, 1, 4)
    /// assert_eq!(y.to_vec::<f32>()?, vec![1.0, 3.0, 5.0, 7.0]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn conv1d(&self, weight: &Tensor, bias: Option<&Tensor>, o: ConvOpts<1>) -> Result<Tensor> {
        self.conv(
            "conv1d",
            weight,
            bias,
            &o.stride,
            &o.padding,
            &o.dilation,
            o.groups,
        )
    }

    /// 2-D convolution of `self (N, C, H, W)` (or `(C, H, W)`) with `weight (O, C/groups, kh,
    /// kw)`, as `torch.nn.functional.conv2d`.
    pub fn conv2d(&self, weight: &Tensor, bias: Option<&Tensor>, o: ConvOpts<2>) -> Result<Tensor> {
        self.conv(
            "conv2d",
            weight,
            bias,
            &o.stride,
            &o.padding,
            &o.dilation,
            o.groups,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        op: &'static str,
        weight: &Tensor,
        bias: Option<&Tensor>,
        stride: &[usize],
        padding: &[usize],
        dilation: &[usize],
        groups: usize,
    ) -> Result<Tensor> {
        let d = stride.len();
        if self.rank() == d + 1 {
            let y = self.unsqueeze(0)?;
            return y
                .conv(op, weight, bias, stride, padding, dilation, groups)?
                .squeeze(0);
        }
        check_conv(op, self, weight, bias, d, groups)?;
        let (n, c, o) = (self.dims()[0], self.dims()[1], weight.dims()[0]);
        let wins: Vec<Window> = (0..d)
            .map(|i| Window {
                kernel: weight.dims()[2 + i],
                stride: stride[i],
                padding: padding[i],
                dilation: dilation[i],
            })
            .collect();
        let (cols, out) = windows(op, self, &wins, 0.0)?; // (N, C, K, *out)
        let k: usize = wins.iter().map(|w| w.kernel).product();
        let l: usize = out.iter().product();
        let cg = c / groups;
        let cols = cols.reshape_to(&[n, groups, cg * k, l])?;
        let w = weight.reshape_to(&[1, groups, o / groups, cg * k])?;
        let mut shape = vec![n, o];
        shape.extend(&out);
        let y = w.matmul(&cols)?.reshape_to(&shape)?; // (N, O, *out)
        match bias {
            Some(b) => {
                let mut bshape = vec![o];
                bshape.extend(vec![1; d]);
                y.add(&b.reshape_to(&bshape)?)
            }
            None => Ok(y),
        }
    }
}

fn check_conv(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    d: usize,
    groups: usize,
) -> Result<()> {
    let shape_err = |msg: String| Error::shape(op, &[x.dims(), w.dims()], msg);
    if x.rank() != d + 2 || w.rank() != d + 2 {
        return Err(shape_err(format!(
            "expects an input of rank {} or {} and a weight of rank {}, got {:?} and {:?}",
            d + 1,
            d + 2,
            d + 2,
            x.dims(),
            w.dims()
        )));
    }
    let (c, o) = (x.dims()[1], w.dims()[0]);
    if groups == 0
        || !c.is_multiple_of(groups)
        || !o.is_multiple_of(groups)
        || w.dims()[1] * groups != c
    {
        return Err(shape_err(format!(
            "input channels {c}, weight {:?} and groups {groups} do not match: the weight must \
             be (out, in / groups, ..) with in and out divisible by groups",
            w.dims()
        )));
    }
    if let Some(b) = bias
        && b.dims() != [o]
    {
        return Err(shape_err(format!("bias {:?} must be ({o},)", b.dims())));
    }
    for t in std::iter::once(w).chain(bias) {
        x.same_device(op, t)?;
        if t.dtype() != x.dtype() || !x.dtype().is_float() {
            return Err(Error::dtype(
                op,
                &[x.dtype(), t.dtype()],
                format!(
                    "expected float operands of one dtype, got {} and {}",
                    x.dtype(),
                    t.dtype()
                ),
            ));
        }
    }
    Ok(())
}
