//! Basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout, activations, MLPs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ember_core::{Error, Result, Tensor};

use crate::Module;
use crate::builder::VarBuilder;
use crate::store::{Init, Param, WeightRole};

/// `y = x Wᵀ + b` with `weight` `[out, in]` and optional `bias` `[out]`, as `nn.Linear`
/// (initialized as PyTorch: uniform in ±1/√in).
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out, in]`
    pub weight: Param,
    /// `[out]`
    pub bias: Option<Param>,
}

impl Linear {
    /// Creates `weight` (and `bias`) under `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let weight = vb.get("weight", &[out_dim, in_dim], Init::KaimingUniform)?;
        weight.set_role(WeightRole::Linear);
        let bias = if bias {
            let b = 1.0 / (in_dim as f64).sqrt();
            Some(vb.get("bias", &[out_dim], Init::Uniform { lo: -b, hi: b })?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear_with(x, &self.weight, self.bias.as_ref()) // (.., out)
    }
}

/// `x Wᵀ + b` for a weight parameter `(out, in)` (a [`Linear`] weight, or an embedding table
/// used as a tied head), multiplying its blocks when it is quantized.
pub fn linear_with(x: &Tensor, weight: &Param, bias: Option<&Param>) -> Result<Tensor> {
    check_input(x, weight, 1)?;
    let bias = bias.map(Param::tensor);
    let y = match weight.quantized() {
        Some(q) if !q.transposed => x.linear_q(&q.q, bias.as_ref())?,
        _ => x.linear(&weight.tensor(), bias.as_ref())?,
    };
    crate::lora::add_adapter(x, y, weight)
}

/// Hugging Face's `Conv1D` (GPT-2): a linear layer whose `weight` is stored `[in, out]`,
/// `y = x W + b`. Not a convolution, despite the name.
#[derive(Debug, Clone)]
pub struct Conv1D {
    /// `[in, out]`
    pub weight: Param,
    /// `[out]`
    pub bias: Param,
}

impl Conv1D {
    /// Creates `weight` (normal, std 0.02 as GPT-2) and `bias` (zeros) under `vb`.
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Conv1D> {
        let weight = vb.get(
            "weight",
            &[in_dim, out_dim],
            Init::Normal {
                mean: 0.0,
                std: 0.02,
            },
        )?;
        weight.set_role(WeightRole::Conv1D);
        Ok(Conv1D {
            weight,
            bias: vb.get("bias", &[out_dim], Init::Zeros)?,
        })
    }
}

impl Module for Conv1D {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        check_input(x, &self.weight, 0)?;
        let y = match self.weight.quantized() {
            Some(q) if q.transposed => x.linear_q(&q.q, Some(&self.bias.tensor()))?,
            _ => x.addmm(&self.weight.tensor(), &self.bias.tensor())?, // (.., out)
        };
        crate::lora::add_adapter(x, y, &self.weight)
    }
}

/// Checks that `x` ends in the layer's input width (`weight.dims()[in_dim]`), naming the
/// layer (its weight's name without `.weight`) when it does not.
pub(crate) fn check_input(x: &Tensor, weight: &Param, in_dim: usize) -> Result<()> {
    let width = weight.dim(in_dim).unwrap_or(0);
    if x.dims().last() == Some(&width) {
        return Ok(()); // the per-call path: no shape copied
    }
    let dims = weight.dims();
    let layer = weight
        .name()
        .strip_suffix(".weight")
        .unwrap_or(weight.name());
    Err(Error::shape(
        "Linear",
        &[x.dims(), &dims],
        format!(
            "{layer}: input {:?} does not end in the layer's {width} inputs (weight {dims:?})",
            x.dims()
        ),
    ))
}

/// A linear projection in either layout that checkpoints use: [`Linear`] (`[out, in]`, most
/// models) or [`Conv1D`] (`[in, out]`, GPT-2).
#[derive(Debug, Clone)]
pub enum Projection {
    /// `x Wᵀ + b`, weight `[out, in]`.
    Linear(Linear),
    /// `x W + b`, weight `[in, out]`.
    Conv1D(Conv1D),
}

impl Projection {
    /// The output width.
    pub fn out_dim(&self) -> usize {
        match self {
            Projection::Linear(l) => l.weight.dims()[0],
            Projection::Conv1D(c) => c.weight.dims()[1],
        }
    }
}

impl From<Linear> for Projection {
    fn from(l: Linear) -> Self {
        Projection::Linear(l)
    }
}

impl From<Conv1D> for Projection {
    fn from(c: Conv1D) -> Self {
        Projection::Conv1D(c)
    }
}

impl Module for Projection {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Projection::Linear(l) => l.forward(x),
            Projection::Conv1D(c) => c.forward(x),
        }
    }
}

/// A lookup table `weight` `[num, dim]`: ids of shape `S` give `(S.., dim)`.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `[num_embeddings, dim]`
    pub weight: Param,
}

impl Embedding {
    /// Creates `weight` under `vb` (standard normal, as `nn.Embedding`).
    pub fn new(vb: VarBuilder, num: usize, dim: usize) -> Result<Embedding> {
        let weight = vb.get(
            "weight",
            &[num, dim],
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )?;
        weight.set_role(WeightRole::Embedding);
        Ok(Embedding { weight })
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self.weight.quantized() {
            // Only the rows looked up are dequantized.
            Some(q) if !q.transposed => {
                let device = ids.device();
                q.q.embedding(ids, self.weight.dtype(), device)
            }
            _ => self.weight.tensor().embedding(ids),
        }
    }
}

/// Layer normalization over the last dim with `weight` and optional `bias`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[dim]`, ones at init
    pub weight: Param,
    /// `[dim]`, zeros at init
    pub bias: Option<Param>,
    /// added to the variance
    pub eps: f64,
}

impl LayerNorm {
    /// Creates `weight` and `bias` under `vb` (HF names; BERT's `LayerNorm` prefix is the
    /// caller's `pp("LayerNorm")`).
    pub fn new(vb: VarBuilder, dim: usize, eps: f64, bias: bool) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get("weight", &[dim], Init::Ones)?,
            bias: if bias {
                Some(vb.get("bias", &[dim], Init::Zeros)?)
            } else {
                None
            },
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = self.bias.as_ref().map(Param::tensor);
        x.layer_norm(Some(&self.weight.tensor()), b.as_ref(), self.eps)
    }
}

/// RMS normalization over the last dim (Llama's `LlamaRMSNorm`).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// `[dim]`, ones at init (zeros with a unit offset)
    pub weight: Param,
    /// added to the mean square
    pub eps: f64,
    /// scale by `1 + weight` instead of `weight` (Gemma's norms)
    pub unit_offset: bool,
}

impl RmsNorm {
    /// Creates `weight` under `vb`.
    pub fn new(vb: VarBuilder, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get("weight", &[dim], Init::Ones)?,
            eps,
            unit_offset: false,
        })
    }

    /// Gemma's RMSNorm: scales by `1 + weight`, `weight` zeros at init.
    pub fn with_unit_offset(vb: VarBuilder, dim: usize, eps: f64) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: vb.get("weight", &[dim], Init::Zeros)?,
            eps,
            unit_offset: true,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.tensor();
        let w = if self.unit_offset {
            w.add_scalar(1.0)?
        } else {
            w
        };
        x.rms_norm(Some(&w), self.eps)
    }
}

/// Zeroes elements with probability `p` in training mode and scales the rest by `1/(1-p)`;
/// the identity in eval mode (follows the store's `train()` / `eval()`).
#[derive(Debug, Clone)]
pub struct Dropout {
    /// Drop probability.
    pub p: f64,
    training: Arc<AtomicBool>,
}

impl Dropout {
    /// A dropout layer tied to `vb`'s store mode.
    pub fn new(vb: VarBuilder, p: f64) -> Result<Dropout> {
        Dropout::with_flag(p, vb.store().training_flag())
    }

    /// A dropout layer with its own mode, as `nn.Dropout(p)` (no parameters, no store),
    /// training until [`Dropout::eval`].
    pub fn standalone(p: f64) -> Result<Dropout> {
        Dropout::with_flag(p, Arc::new(AtomicBool::new(true)))
    }

    fn with_flag(p: f64, training: Arc<AtomicBool>) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::data("Dropout", format!("p = {p} is outside [0, 1)")));
        }
        Ok(Dropout { p, training })
    }

    /// Training mode (drops). For a layer made by [`Dropout::new`] this is its store's mode.
    pub fn train(&self) {
        self.training.store(true, Ordering::Relaxed);
    }

    /// Eval mode (the identity). For a layer made by [`Dropout::new`] this is its store's
    /// mode.
    pub fn eval(&self) {
        self.training.store(false, Ordering::Relaxed);
    }

    /// True when a forward drops elements (training mode and `p > 0`).
    pub fn is_active(&self) -> bool {
        self.p > 0.0 && self.training.load(Ordering::Relaxed)
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.p == 0.0 || !self.training.load(Ordering::Relaxed) {
            return Ok(x.clone());
        }
        let keep = x.detach().full_like(1.0 - self.p)?.bernoulli()?;
        x.mul(&keep)?.div_scalar(1.0 - self.p)
    }
}

/// Elementwise activations by their Hugging Face `hidden_act` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `relu`
    Relu,
    /// `gelu` (erf form)
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh` (tanh form)
    GeluTanh,
    /// `silu` / `swish`
    Silu,
    /// `tanh`
    Tanh,
    /// `sigmoid`
    Sigmoid,
}

impl Activation {
    /// Parses HF's `hidden_act` strings.
    pub fn from_hf(name: &str) -> Result<Activation> {
        Ok(match name {
            "relu" => Activation::Relu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            other => {
                return Err(Error::data(
                    "Activation",
                    format!("hidden_act {other:?} is not supported"),
                ));
            }
        })
    }
}

impl Module for Activation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu(),
            Activation::GeluTanh => x.gelu_tanh(),
            Activation::Silu => x.silu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}

/// `down(act(up(x)))`, with the two projections' names chosen by the model (`c_fc`/`c_proj`,
/// `fc1`/`fc2`, ...).
#[derive(Debug, Clone)]
pub struct Mlp {
    /// `dim → hidden`
    pub up: Linear,
    /// `hidden → dim`
    pub down: Linear,
    /// The activation between them.
    pub act: Activation,
}

impl Mlp {
    /// Creates both projections under `vb.pp(names.0)` and `vb.pp(names.1)`.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: usize,
        act: Activation,
        bias: bool,
        names: (&str, &str),
    ) -> Result<Mlp> {
        Ok(Mlp {
            up: Linear::new(vb.pp(names.0), dim, hidden, bias)?,
            down: Linear::new(vb.pp(names.1), hidden, dim, bias)?,
            act,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.down.forward(&self.act.forward(&self.up.forward(x)?)?)
    }
}

/// The gated MLP of Llama (SwiGLU): `down_proj(act(gate_proj(x)) · up_proj(x))`.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    /// `gate_proj`: dim → hidden
    pub gate: Linear,
    /// `up_proj`: dim → hidden
    pub up: Linear,
    /// `down_proj`: hidden → dim
    pub down: Linear,
    /// The gate's activation (SiLU in Llama).
    pub act: Activation,
}

impl GatedMlp {
    /// Creates `gate_proj`, `up_proj`, `down_proj` under `vb`.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        hidden: usize,
        act: Activation,
        bias: bool,
    ) -> Result<GatedMlp> {
        Ok(GatedMlp {
            gate: Linear::new(vb.pp("gate_proj"), dim, hidden, bias)?,
            up: Linear::new(vb.pp("up_proj"), dim, hidden, bias)?,
            down: Linear::new(vb.pp("down_proj"), hidden, dim, bias)?,
            act,
        })
    }
}

impl Module for GatedMlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate.forward(x)?, self.up.forward(x)?); // (.., hidden)
        if self.act == Activation::Silu {
            return self.down.forward(&gate.silu_mul(&up)?); // SwiGLU in one op
        }
        self.down.forward(&self.act.forward(&gate)?.mul(&up)?)
    }
}
