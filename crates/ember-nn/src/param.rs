//! Parameters and how they are initialized.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use ember_core::{DType, Device, Error, Generator, Result, Tensor};

/// How a new parameter is initialized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// A constant.
    Const(f64),
    /// Normal with mean and standard deviation.
    Normal {
        /// mean
        mean: f64,
        /// standard deviation
        std: f64,
    },
    /// Uniform in `[lo, hi)`.
    Uniform {
        /// lower bound
        lo: f64,
        /// upper bound
        hi: f64,
    },
    /// Xavier/Glorot uniform: `U(±√(6 / (fan_in + fan_out)))`.
    XavierUniform,
    /// Kaiming uniform as `nn.Linear`'s default (`a = √5`): `U(±1/√fan_in)`.
    KaimingUniform,
}

fn fans(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, rest @ ..] => {
            let field: usize = rest.iter().product();
            (inp * field, out * field)
        }
    }
}

impl Init {
    pub(crate) fn make(
        self,
        shape: &[usize],
        dtype: DType,
        device: Device,
        g: &mut Generator,
    ) -> Result<Tensor> {
        let (fan_in, fan_out) = fans(shape);
        let uniform = |g: &mut Generator, lo: f64, hi: f64| -> Result<Tensor> {
            Tensor::rand_with(g, shape, DType::F32, device)?
                .mul_scalar(hi - lo)?
                .add_scalar(lo)?
                .to_dtype(dtype)
        };
        match self {
            Init::Zeros => Tensor::zeros(shape, dtype, device),
            Init::Ones => Tensor::ones(shape, dtype, device),
            Init::Const(v) => Tensor::full(shape, v, dtype, device),
            Init::Normal { mean, std } => Tensor::randn_with(g, shape, DType::F32, device)?
                .mul_scalar(std)?
                .add_scalar(mean)?
                .to_dtype(dtype),
            Init::Uniform { lo, hi } => uniform(g, lo, hi),
            Init::XavierUniform => {
                let b = (6.0 / (fan_in + fan_out) as f64).sqrt();
                uniform(g, -b, b)
            }
            Init::KaimingUniform => {
                let b = 1.0 / (fan_in as f64).sqrt();
                uniform(g, -b, b)
            }
        }
    }
}

struct ParamInner {
    name: String,
    value: RwLock<Tensor>,
    trainable: AtomicBool,
}

/// A named parameter: a handle shared by the module that uses it and the store that owns it.
/// [`Param::tensor`] is the current value, a leaf that requires a gradient while the
/// parameter is trainable.
#[derive(Clone)]
pub struct Param(Arc<ParamInner>);

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({}, {:?})", self.0.name, self.tensor())
    }
}

impl Param {
    pub(crate) fn new(name: String, value: Tensor) -> Result<Param> {
        let value = value.requires_grad(true)?;
        Ok(Param(Arc::new(ParamInner {
            name,
            value: RwLock::new(value),
            trainable: AtomicBool::new(true),
        })))
    }

    /// The full hierarchical name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value (a cheap handle).
    pub fn tensor(&self) -> Tensor {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value (same shape; converted to the parameter's dtype and device).
    pub fn set(&self, value: &Tensor) -> Result<()> {
        let cur = self.tensor();
        if value.dims() != cur.dims() {
            return Err(Error::shape(
                "Param::set",
                &[value.dims(), cur.dims()],
                format!(
                    "{}: new value has shape {:?}, the parameter {:?}",
                    self.name(),
                    value.dims(),
                    cur.dims()
                ),
            ));
        }
        let v = value
            .detach()
            .to_dtype(cur.dtype())?
            .to_device(cur.device())?
            .requires_grad(self.is_trainable())?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v;
        Ok(())
    }

    /// True while gradients flow to this parameter.
    pub fn is_trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes the parameter.
    pub fn set_trainable(&self, trainable: bool) -> Result<()> {
        self.0.trainable.store(trainable, Ordering::Relaxed);
        let v = self.tensor().detach().requires_grad(trainable)?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v;
        Ok(())
    }
}
