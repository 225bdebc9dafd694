//! Creating tensors: from host data, filled, ranges, identity, random.

use crate::kernels::prim;
use crate::{DType, Device, Element, Error, Result, bf16, f16};

use crate::base::memory;
use crate::base::random::{Generator, with_global};
use crate::base::shape::check_nonempty;
use crate::tensor::Tensor;

/// Uploads f64 host values as `dtype`.
pub(crate) fn upload_f64(
    values: Vec<f64>,
    shape: &[usize],
    dtype: DType,
    device: Device,
) -> Result<Tensor> {
    fn up<T: Element>(v: Vec<f64>, shape: &[usize], device: Device) -> Result<Tensor> {
        Tensor::from_vec(v.into_iter().map(T::from_f64).collect(), shape, device)
    }
    match dtype {
        DType::F32 => up::<f32>(values, shape, device),
        DType::F64 => up::<f64>(values, shape, device),
        DType::F16 => up::<f16>(values, shape, device),
        DType::BF16 => up::<bf16>(values, shape, device),
        DType::I64 => up::<i64>(values, shape, device),
        DType::Bool => up::<bool>(values, shape, device),
    }
}

impl Tensor {
    /// A tensor from row-major host values and a shape (`&[]` for a scalar).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1i64, 2, 3, 4], &[2, 2], Device::Cpu)?;
    /// assert_eq!(t.dims(), &[2, 2]);
    /// assert!(Tensor::from_vec(vec![1.0f32, 2.0], &[3], Device::Cpu).is_err());
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn from_vec<T: Element>(values: Vec<T>, shape: &[usize], device: Device) -> Result<Tensor> {
        let numel = crate::base::shape::checked_numel("from_vec", shape)?;
        if values.len() != numel {
            return Err(Error::data(
                "from_vec",
                format!(
                    "{} values do not fill shape {shape:?} ({numel} elements)",
                    values.len()
                ),
            ));
        }
        check_nonempty("from_vec", shape)?;
        device.check_dtype("from_vec", T::DTYPE)?;
        let pshape = if shape.is_empty() {
            vec![1]
        } else {
            shape.to_vec()
        };
        let p = prim::upload(values, &pshape, device)?;
        Ok(Tensor::from_prim(p, shape.to_vec(), device))
    }

    /// A tensor from a slice of host values and a shape.
    pub fn from_slice<T: Element>(values: &[T], shape: &[usize], device: Device) -> Result<Tensor> {
        Tensor::from_vec(values.to_vec(), shape, device)
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar<T: Element>(value: T, device: Device) -> Result<Tensor> {
        Tensor::from_vec(vec![value], &[], device)
    }

    /// A tensor filled with `value` (converted to `dtype`).
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::full(&[2, 2], 0.5, DType::F16, Device::Cpu)?;
    /// assert_eq!(t.to_vec::<f32>()?, vec![0.5; 4]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn full(shape: &[usize], value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::filled("full", shape, value, dtype, device)
    }

    /// [`Tensor::full`] with errors naming `op`.
    fn filled(
        op: &'static str,
        shape: &[usize],
        value: f64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        check_nonempty(op, shape)?;
        device.check_dtype(op, dtype)?;
        memory::check_tensor(op, shape, dtype, device)?;
        let pshape = if shape.is_empty() {
            vec![1]
        } else {
            shape.to_vec()
        };
        let p = prim::full(&pshape, value, dtype, device)?;
        Ok(Tensor::from_prim(p, shape.to_vec(), device))
    }

    /// A tensor of zeros.
    pub fn zeros(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::filled("zeros", shape, 0.0, dtype, device)
    }

    /// A tensor of ones.
    pub fn ones(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::filled("ones", shape, 1.0, dtype, device)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.dims(), self.dtype(), self.device())
    }

    /// Ones with this tensor's shape, dtype and device.
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.dims(), self.dtype(), self.device())
    }

    /// `value` with this tensor's shape, dtype and device.
    pub fn full_like(&self, value: f64) -> Result<Tensor> {
        Tensor::full(self.dims(), value, self.dtype(), self.device())
    }

    /// Values `start, start + step, ...` below `end` (above, for a negative step), as
    /// `torch.arange`.
    ///
    /// ```
    /// # use ember_core::{Tensor, Device, DType};
    /// let t = Tensor::arange(0.0, 1.0, 0.25, DType::F32, Device::Cpu)?;
    /// assert_eq!(t.to_vec::<f32>()?, vec![0.0, 0.25, 0.5, 0.75]);
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType, device: Device) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::data(
                "arange",
                format!("invalid range start={start}, end={end}, step={step}"),
            ));
        }
        let n = ((end - start) / step).ceil();
        if n < 1.0 {
            return Err(Error::data(
                "arange",
                format!("range start={start}, end={end}, step={step} is empty"),
            ));
        }
        if n >= usize::MAX as f64 {
            return Err(Error::TooLarge {
                op: "arange",
                what: format!("a range of {n} values"),
                bytes: None,
                device,
                available: memory::available(device),
            });
        }
        // Values are staged on the host as f64.
        memory::check_tensor("arange", &[n as usize], DType::F64, device)?;
        let values = (0..n as usize).map(|i| start + i as f64 * step).collect();
        upload_f64(values, &[n as usize], dtype, device)
    }

    /// The `n × n` identity matrix.
    pub fn eye(n: usize, dtype: DType, device: Device) -> Result<Tensor> {
        memory::check_tensor("eye", &[n, n], DType::F64, device)?;
        let values = (0..n * n)
            .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
            .collect();
        upload_f64(values, &[n, n], dtype, device)
    }

    /// Uniform samples in `[0, 1)` from the global generator (see [`crate::manual_seed`]).
    pub fn rand(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        with_global(|g| Tensor::rand_with(g, shape, dtype, device))
    }

    /// Uniform samples in `[0, 1)` from a given generator.
    pub fn rand_with(
        g: &mut Generator,
        shape: &[usize],
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        float_only("rand", dtype)?;
        memory::check_tensor("rand", shape, DType::F64, device)?; // staged on the host as f64
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| g.uniform()).collect();
        upload_f64(values, shape, dtype, device)
    }

    /// Standard normal samples from the global generator.
    pub fn randn(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
        with_global(|g| Tensor::randn_with(g, shape, dtype, device))
    }

    /// Standard normal samples from a given generator.
    pub fn randn_with(
        g: &mut Generator,
        shape: &[usize],
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        float_only("randn", dtype)?;
        memory::check_tensor("randn", shape, DType::F64, device)?; // staged on the host as f64
        let n: usize = shape.iter().product();
        let values = (0..n).map(|_| g.normal()).collect();
        upload_f64(values, shape, dtype, device)
    }

    /// Samples 0/1 with probability given by each element of `self` (as `torch.bernoulli`),
    /// from the global generator. Dropout masks are `full(shape, 1 - p).bernoulli()`.
    pub fn bernoulli(&self) -> Result<Tensor> {
        with_global(|g| self.bernoulli_with(g))
    }

    /// [`Tensor::bernoulli`] with a given generator.
    pub fn bernoulli_with(&self, g: &mut Generator) -> Result<Tensor> {
        float_only("bernoulli", self.dtype())?;
        let probs = self.to_vec::<f64>()?;
        if let Some(p) = probs.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(Error::data(
                "bernoulli",
                format!("probability {p} is outside [0, 1]"),
            ));
        }
        let values = probs
            .into_iter()
            .map(|p| if g.uniform() < p { 1.0 } else { 0.0 })
            .collect();
        let y = upload_f64(values, self.dims(), self.dtype(), self.device())?;
        Ok(y.record_nondiff("bernoulli", self))
    }
}

fn float_only(op: &'static str, dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::dtype(
            op,
            &[dtype],
            format!("needs a float dtype, got {dtype}"),
        ));
    }
    Ok(())
}
