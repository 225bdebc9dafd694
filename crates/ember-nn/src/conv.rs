//! Convolution and pooling layers as `torch.nn`'s (`Conv1d`, `Conv2d`, `MaxPool1d/2d`,
//! `AvgPool1d/2d`, `AdaptiveAvgPool1d/2d`), with PyTorch's parameter names (`weight`
//! `(out, in / groups, *kernel)`, `bias` `(out,)`) and initialization.

use ember_core::{ConvOpts, PoolOpts, Result, Tensor};

use crate::Module;
use crate::builder::VarBuilder;
use crate::store::{Init, Param};

/// A convolution over `D` spatial dims, as `nn.Conv1d` / `nn.Conv2d`; weight and bias are
/// uniform in ±1/√fan_in (PyTorch's default).
#[derive(Debug, Clone)]
pub struct Conv<const D: usize> {
    /// `(out, in / groups, *kernel)`
    pub weight: Param,
    /// `(out,)`
    pub bias: Option<Param>,
    /// stride, padding, dilation, groups
    pub opts: ConvOpts<D>,
}

/// `nn.Conv1d`: input `(N, C, L)`.
pub type Conv1d = Conv<1>;
/// `nn.Conv2d`: input `(N, C, H, W)`.
pub type Conv2d = Conv<2>;

impl<const D: usize> Conv<D> {
    /// Creates `weight` (and `bias`) under `vb`.
    ///
    /// ```
    /// use ember_nn::{Conv2d, Module, VarBuilder, VarStore};
    /// use ember_core::{ConvOpts, DType, Device, Tensor};
    /// let store = VarStore::new(Device::Cpu, DType::F32);
    /// let opts = ConvOpts { padding: [1, 1], ..ConvOpts::default() };
    /// let conv = Conv2d::new(VarBuilder::new(&store).pp("conv"), 3, 8, [3, 3], opts, true)?;
    /// let y = conv.forward(&Tensor::ones(&[2, 3, 5, 5], DType::F32, Device::Cpu)?)?;
    /// assert_eq!(y.dims(), &[2, 8, 5, 5]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; D],
        opts: ConvOpts<D>,
        bias: bool,
    ) -> Result<Self> {
        let groups = opts.groups.max(1);
        let mut shape = vec![out_channels, in_channels / groups];
        shape.extend(kernel);
        let weight = vb.get("weight", &shape, Init::KaimingUniform)?;
        let bias = if bias {
            let fan_in: usize = shape[1..].iter().product();
            let b = 1.0 / (fan_in.max(1) as f64).sqrt();
            Some(vb.get("bias", &[out_channels], Init::Uniform { lo: -b, hi: b })?)
        } else {
            None
        };
        Ok(Conv { weight, bias, opts })
    }
}

impl Module for Conv<1> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref().map(Param::tensor);
        x.conv1d(&self.weight.tensor(), bias.as_ref(), self.opts)
    }
}

impl Module for Conv<2> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref().map(Param::tensor);
        x.conv2d(&self.weight.tensor(), bias.as_ref(), self.opts)
    }
}

/// Max pooling, as `nn.MaxPool1d` / `nn.MaxPool2d`.
///
/// ```
/// use ember_core::{DType, Device, PoolOpts, Tensor};
/// use ember_nn::{MaxPool2d, Module};
/// let pool = MaxPool2d::new(PoolOpts::new([2, 2]));
/// let x = Tensor::ones(&[1, 3, 8, 8], DType::F32, Device::Cpu)?; // (N, C, H, W)
/// assert_eq!(pool.forward(&x)?.dims(), &[1, 3, 4, 4]);
/// # Ok::<(), ember_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MaxPool<const D: usize>(pub PoolOpts<D>);

impl<const D: usize> MaxPool<D> {
    /// Max pooling over `opts`' window (stride defaults to the window, as PyTorch).
    pub fn new(opts: PoolOpts<D>) -> Self {
        MaxPool(opts)
    }
}

/// Average pooling, as `nn.AvgPool1d` / `nn.AvgPool2d` (`count_include_pad` as PyTorch,
/// default true).
#[derive(Debug, Clone, Copy)]
pub struct AvgPool<const D: usize> {
    /// window
    pub opts: PoolOpts<D>,
    /// whether the zero border counts in the divisor
    pub count_include_pad: bool,
}

impl<const D: usize> AvgPool<D> {
    /// Average pooling with PyTorch's default `count_include_pad = true`.
    pub fn new(opts: PoolOpts<D>) -> Self {
        AvgPool {
            opts,
            count_include_pad: true,
        }
    }
}

/// Adaptive average pooling to a fixed output size, as `nn.AdaptiveAvgPool1d/2d`.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveAvgPool<const D: usize>(pub [usize; D]);

impl<const D: usize> AdaptiveAvgPool<D> {
    /// Pooling to `output_size` (`nn.AdaptiveAvgPool2d((h, w))`).
    pub fn new(output_size: [usize; D]) -> Self {
        AdaptiveAvgPool(output_size)
    }
}

/// `nn.MaxPool1d`.
pub type MaxPool1d = MaxPool<1>;
/// `nn.MaxPool2d`.
pub type MaxPool2d = MaxPool<2>;
/// `nn.AvgPool1d`.
pub type AvgPool1d = AvgPool<1>;
/// `nn.AvgPool2d`.
pub type AvgPool2d = AvgPool<2>;
/// `nn.AdaptiveAvgPool1d`.
pub type AdaptiveAvgPool1d = AdaptiveAvgPool<1>;
/// `nn.AdaptiveAvgPool2d`.
pub type AdaptiveAvgPool2d = AdaptiveAvgPool<2>;

impl Module for MaxPool<1> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool1d(self.0)
    }
}

impl Module for MaxPool<2> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.max_pool2d(self.0)
    }
}

impl Module for AvgPool<1> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool1d(self.opts, self.count_include_pad)
    }
}

impl Module for AvgPool<2> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.avg_pool2d(self.opts, self.count_include_pad)
    }
}

impl Module for AdaptiveAvgPool<1> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool1d(self.0)
    }
}

impl Module for AdaptiveAvgPool<2> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.adaptive_avg_pool2d(self.0)
    }
}
