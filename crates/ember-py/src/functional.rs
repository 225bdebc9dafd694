//! `ember.nn.functional`'s Rust side: the fused ops behind layers and losses (`linear`,
//! `layer_norm`, `rms_norm`, `embedding`, `cross_entropy`, `scaled_dot_product_attention`,
//! `gelu`, `multinomial`), and the AdamW step that `ember.optim` runs with its moments kept
//! here, owned, so the kernel updates them in place.

use ember::fused::{AdamStep, adamw_step};
use ember::{AttentionOpts, CrossEntropyOpts, Reduction, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::run;
use crate::tensor::PyTensor;

fn t(x: &PyRef<'_, PyTensor>) -> Tensor {
    x.t.clone()
}

/// `x @ weightᵀ + bias`, as `torch.nn.functional.linear`.
#[pyfunction]
#[pyo3(signature = (input, weight, bias = None))]
pub(crate) fn linear(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    weight: PyRef<'_, PyTensor>,
    bias: Option<PyRef<'_, PyTensor>>,
) -> PyResult<PyTensor> {
    let (x, w, b) = (t(&input), t(&weight), bias.as_ref().map(t));
    Ok(PyTensor::new(run(py, move || x.linear(&w, b.as_ref()))?))
}

/// Layer norm over the last dim (`normalized_shape` must be that dim).
#[pyfunction]
#[pyo3(signature = (input, normalized_shape, weight = None, bias = None, eps = 1e-5))]
pub(crate) fn layer_norm(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    normalized_shape: Vec<usize>,
    weight: Option<PyRef<'_, PyTensor>>,
    bias: Option<PyRef<'_, PyTensor>>,
    eps: f64,
) -> PyResult<PyTensor> {
    let x = t(&input);
    last_dim_only("layer_norm", &x, &normalized_shape)?;
    let (w, b) = (weight.as_ref().map(t), bias.as_ref().map(t));
    Ok(PyTensor::new(run(py, move || {
        x.layer_norm(w.as_ref(), b.as_ref(), eps)
    })?))
}

/// RMS norm over the last dim.
#[pyfunction]
#[pyo3(signature = (input, normalized_shape, weight = None, eps = 1e-6))]
pub(crate) fn rms_norm(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    normalized_shape: Vec<usize>,
    weight: Option<PyRef<'_, PyTensor>>,
    eps: f64,
) -> PyResult<PyTensor> {
    let x = t(&input);
    last_dim_only("rms_norm", &x, &normalized_shape)?;
    let w = weight.as_ref().map(t);
    Ok(PyTensor::new(run(py, move || x.rms_norm(w.as_ref(), eps))?))
}

fn last_dim_only(op: &str, x: &Tensor, shape: &[usize]) -> PyResult<()> {
    if shape.len() != 1 || x.dims().last() != Some(&shape[0]) {
        return Err(PyValueError::new_err(format!(
            "{op}: normalized_shape {shape:?} must be the input's last dim (input {:?}); Ember normalizes over one dim",
            x.dims()
        )));
    }
    Ok(())
}

/// Rows of `weight` for each id, as `torch.nn.functional.embedding(input, weight)`.
#[pyfunction]
pub(crate) fn embedding(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    weight: PyRef<'_, PyTensor>,
) -> PyResult<PyTensor> {
    let (ids, w) = (t(&input), t(&weight));
    Ok(PyTensor::new(run(py, move || w.embedding(&ids))?))
}

/// Cross-entropy of logits `(N, C)` against class ids `(N,)`.
#[pyfunction]
#[pyo3(signature = (input, target, ignore_index = -100, reduction = "mean", label_smoothing = 0.0))]
pub(crate) fn cross_entropy(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    target: PyRef<'_, PyTensor>,
    ignore_index: i64,
    reduction: &str,
    label_smoothing: f64,
) -> PyResult<PyTensor> {
    let reduction = match reduction {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => {
            return Err(PyValueError::new_err(format!(
                "cross_entropy: reduction {other:?} is not one of 'mean', 'sum', 'none'"
            )));
        }
    };
    let opts = CrossEntropyOpts {
        ignore_index,
        reduction,
        label_smoothing,
    };
    let (x, y) = (t(&input), t(&target));
    Ok(PyTensor::new(run(py, move || x.cross_entropy(&y, opts))?))
}

/// Attention of `(.., T, D)` queries over keys and values, as
/// `torch.nn.functional.scaled_dot_product_attention`.
#[pyfunction]
#[pyo3(signature = (query, key, value, attn_mask = None, dropout_p = 0.0, is_causal = false, scale = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn scaled_dot_product_attention(
    py: Python<'_>,
    query: PyRef<'_, PyTensor>,
    key: PyRef<'_, PyTensor>,
    value: PyRef<'_, PyTensor>,
    attn_mask: Option<PyRef<'_, PyTensor>>,
    dropout_p: f64,
    is_causal: bool,
    scale: Option<f64>,
) -> PyResult<PyTensor> {
    let opts = AttentionOpts {
        mask: attn_mask.as_ref().map(t),
        causal: is_causal,
        scale,
        dropout_p,
    };
    let (q, k, v) = (t(&query), t(&key), t(&value));
    Ok(PyTensor::new(run(py, move || {
        q.scaled_dot_product_attention(&k, &v, &opts)
    })?))
}

/// GELU, exact (`approximate="none"`) or the tanh form (`"tanh"`).
#[pyfunction]
#[pyo3(signature = (input, approximate = "none"))]
pub(crate) fn gelu(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    approximate: &str,
) -> PyResult<PyTensor> {
    let x = t(&input);
    let tanh = match approximate {
        "none" => false,
        "tanh" => true,
        other => {
            return Err(PyValueError::new_err(format!(
                "gelu: approximate must be 'none' or 'tanh', not {other:?}"
            )));
        }
    };
    Ok(PyTensor::new(run(py, move || {
        if tanh { x.gelu_tanh() } else { x.gelu() }
    })?))
}

/// Samples class ids from the rows of `input` (non-negative weights), as `torch.multinomial`.
#[pyfunction]
#[pyo3(signature = (input, num_samples, replacement = false))]
pub(crate) fn multinomial(
    py: Python<'_>,
    input: PyRef<'_, PyTensor>,
    num_samples: usize,
    replacement: bool,
) -> PyResult<PyTensor> {
    let p = t(&input);
    Ok(PyTensor::new(run(py, move || {
        p.multinomial(num_samples, replacement)
    })?))
}

/// One parameter's Adam moments, owned here so the fused step updates them in place.
#[pyclass(name = "_AdamState", module = "ember")]
pub(crate) struct AdamState {
    m: Option<Tensor>,
    v: Option<Tensor>,
    /// Steps taken.
    #[pyo3(get)]
    step: u64,
}

#[pymethods]
impl AdamState {
    #[new]
    fn new() -> Self {
        AdamState {
            m: None,
            v: None,
            step: 0,
        }
    }

    /// One Adam(W) step of `param` with `grad` (PyTorch's formula and defaults); the
    /// parameter's new value is written into it (same object, new storage).
    #[pyo3(signature = (param, grad, lr, beta1, beta2, eps, weight_decay, decoupled))]
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        py: Python<'_>,
        mut param: PyRefMut<'_, PyTensor>,
        grad: PyRef<'_, PyTensor>,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
    ) -> PyResult<()> {
        let (w, g) = (param.t.detach(), grad.t.clone());
        let (m, v) = match (self.m.take(), self.v.take()) {
            (Some(m), Some(v)) => (m, v),
            _ => (run(py, || w.zeros_like())?, run(py, || w.zeros_like())?),
        };
        self.step += 1;
        let n = self.step as i32;
        let step = AdamStep {
            lr,
            betas: (beta1, beta2),
            eps,
            weight_decay,
            decoupled,
            bias_correction1: 1.0 - beta1.powi(n),
            bias_correction2: 1.0 - beta2.powi(n),
        };
        let (w, m, v) = run(py, move || adamw_step(&w, &g, m, v, &step))?;
        self.m = Some(m);
        self.v = Some(v);
        param.assign(w)
    }
}
