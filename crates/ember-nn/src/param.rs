//! Parameters and how they are initialized.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ember_core::quant::{QFormat, QTensor};
use ember_core::{DType, Device, Error, Generator, Result, Tensor};

/// A tensor of `dims` that allocates one element (what a quantized parameter keeps).
fn placeholder(dims: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
    Tensor::zeros(&[1], dtype, device)?.broadcast_to(dims)
}

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

/// How a layer uses a matrix parameter, which says how it is quantized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightRole {
    /// A [`Linear`](crate::Linear) weight `(out, in)`: rows quantized along `in`.
    Linear,
    /// A [`Conv1D`](crate::Conv1D) weight `(in, out)`: quantized transposed, as `(out, in)`.
    Conv1D,
    /// An [`Embedding`](crate::Embedding) table `(num, dim)`: rows looked up, and products
    /// with it where a head is tied to it.
    Embedding,
}

/// A parameter held in a block format: the matrix as [`Tensor::linear_q`] takes it
/// (`(out, in)`; a [`Conv1D`](crate::Conv1D) weight transposed).
#[derive(Debug, Clone)]
pub struct QuantizedWeight {
    /// The blocks, `(out, in)`.
    pub q: QTensor,
    /// True when the parameter's own layout is the transpose of `q` (`(in, out)`).
    pub transposed: bool,
}

/// A LoRA adapter beside a weight (see [`crate::lora`]): the layer adds
/// `B(A(dropout(x))) · scale` to its output while the adapter is not merged.
#[derive(Debug, Clone)]
pub struct Adapter {
    /// `lora_A`: `(r, in)`
    pub a: Param,
    /// `lora_B`: `(out, r)`
    pub b: Param,
    /// `lora_alpha / r` (or `/ √r` with rsLoRA)
    pub scale: f64,
    /// `lora_dropout` on the adapter's input (follows the model's train/eval mode)
    pub dropout: Option<crate::Dropout>,
    /// True while `B A · scale` is added into the weight instead.
    pub merged: bool,
}

struct ParamInner {
    name: String,
    /// The dense value; while quantized, a placeholder of the right shape, dtype and device.
    value: RwLock<Tensor>,
    quantized: RwLock<Option<QuantizedWeight>>,
    adapter: RwLock<Option<Adapter>>,
    role: OnceLock<WeightRole>,
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
            quantized: RwLock::new(None),
            adapter: RwLock::new(None),
            role: OnceLock::new(),
            trainable: AtomicBool::new(true),
        })))
    }

    /// A frozen parameter holding `q` (shape `dims`, dense `dtype` on `device` when read).
    pub(crate) fn new_quantized(
        name: String,
        q: QuantizedWeight,
        dims: &[usize],
        dtype: DType,
        device: Device,
    ) -> Result<Param> {
        let p = Param::new(name, placeholder(dims, dtype, device)?)?;
        p.set_trainable(false)?;
        *p.0.quantized.write().unwrap_or_else(|e| e.into_inner()) = Some(q);
        Ok(p)
    }

    /// The shape, without dequantizing.
    pub fn dims(&self) -> Vec<usize> {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .shape()
    }

    /// Size of dim `i` (`None` past the rank), without copying the shape.
    pub(crate) fn dim(&self, i: usize) -> Option<usize> {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .dims()
            .get(i)
            .copied()
    }

    /// The dtype the value has when read (the dense dtype of a quantized parameter).
    pub fn dtype(&self) -> DType {
        self.0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .dtype()
    }

    /// How a layer uses this parameter, if one said so (set once, by the layer).
    pub fn role(&self) -> Option<WeightRole> {
        self.0.role.get().copied()
    }

    /// Marks how a layer uses this parameter (the first layer to say so wins).
    pub fn set_role(&self, role: WeightRole) {
        let _ = self.0.role.set(role);
    }

    /// The blocks, while the parameter is quantized.
    pub fn quantized(&self) -> Option<QuantizedWeight> {
        self.0
            .quantized
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the value by `format` blocks (as its [`WeightRole`] says: a `Conv1D` weight
    /// transposed) and freezes it: quantized weights get no gradients. Returns false, leaving
    /// the parameter as it is, when it has no role or its rows are not whole blocks.
    pub fn quantize(&self, format: QFormat) -> Result<bool> {
        let Some(role) = self.role() else {
            return Ok(false);
        };
        let dims = self.dims();
        let transposed = role == WeightRole::Conv1D;
        if dims.len() != 2 || !dims[usize::from(!transposed)].is_multiple_of(format.block_len()) {
            return Ok(false);
        }
        let dense = self.tensor().detach();
        let dense = if transposed {
            dense.transpose(0, 1)?
        } else {
            dense
        };
        let q = QTensor::quantize(&dense, format)?;
        q.prepare();
        self.set_trainable(false)?;
        let placeholder = placeholder(&dims, self.dtype(), dense.device())?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = placeholder;
        *self.0.quantized.write().unwrap_or_else(|e| e.into_inner()) =
            Some(QuantizedWeight { q, transposed });
        Ok(true)
    }

    /// The LoRA adapter beside this weight, if any.
    pub fn adapter(&self) -> Option<Adapter> {
        self.0
            .adapter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The adapter when it is applied beside the weight (attached and not merged into it).
    pub fn active_adapter(&self) -> Option<Adapter> {
        self.adapter().filter(|a| !a.merged)
    }

    /// Attaches (or with `None` removes) a LoRA adapter.
    pub fn set_adapter(&self, adapter: Option<Adapter>) {
        *self.0.adapter.write().unwrap_or_else(|e| e.into_inner()) = adapter;
    }

    /// The full hierarchical name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value: a cheap handle, or for a quantized parameter its blocks
    /// dequantized (a new tensor per call: layers use [`Param::quantized`] instead).
    pub fn tensor(&self) -> Tensor {
        if let Some(q) = self.quantized() {
            let cur = self
                .0
                .value
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let dense = q.q.dequantize(cur.dtype(), cur.device()).and_then(|t| {
                if q.transposed {
                    t.transpose(0, 1)
                } else {
                    Ok(t)
                }
            });
            // Dequantizing can fail only for want of memory; the placeholder keeps the shape.
            return dense.unwrap_or(cur);
        }
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
        // A dense value replaces the blocks.
        *self.0.quantized.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// True while gradients flow to this parameter.
    pub fn is_trainable(&self) -> bool {
        self.0.trainable.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes the parameter. A quantized parameter cannot be
    /// unfrozen (its blocks get no gradient): that is an error naming it.
    pub fn set_trainable(&self, trainable: bool) -> Result<()> {
        if trainable && self.quantized().is_some() {
            return Err(Error::data(
                "Param::set_trainable",
                format!(
                    "{} is quantized: its blocks get no gradients (dequantize it with \
                     `set(&param.tensor())` to train it, or train an adapter beside it)",
                    self.name()
                ),
            ));
        }
        self.0.trainable.store(trainable, Ordering::Relaxed);
        let cur = self
            .0
            .value
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let v = cur.detach().requires_grad(trainable)?;
        *self.0.value.write().unwrap_or_else(|e| e.into_inner()) = v;
        Ok(())
    }
}
