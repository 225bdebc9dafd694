//! Ember from Python: the `ember._ember` extension module under the `ember` package
//! (`python/`), built by maturin (`pip install ./python`).
//!
//! | file | what |
//! |---|---|
//! | `tensor` | `ember.Tensor`: properties, conversions, operators, autograd |
//! | `methods` | its shape and layout methods, a few ops outside the tables, NumPy |
//! | `ops` | the op tables (unary, binary, compare, reduce) by PyTorch's names |
//! | `index` | `t[...]` |
//! | `creation` | `ember.tensor`, `zeros`, `randn`, `arange`, `cat`, ... |
//! | `share` | zero-copy NumPy: read-only views of tensors, tensors over arrays |
//! | `functional` | the fused ops of layers and losses, the AdamW step with its moments |
//! | `heads` | `AutoModelForSequenceClassification`, `…TokenClassification`, `…MaskedLM`: one `TaskModel` |
//! | `models` | `AutoModelForCausalLM`, tokenizers, chat templates, generation and streaming |
//! | `files` | safetensors save and load |
//! | `train` | the Rust GPT, batch sampler, schedule, store AdamW and clipping (runs equal to the Rust example) |
//! | `convert` | dtypes, devices, Python data ⇄ tensors |
//! | `grad` | `.grad` on leaves, `no_grad`, `autocast` |
//! | `errors` | Ember's errors as Python exceptions; the GIL released around Ember's work |
//!
//! Every call into Ember runs with the GIL released and under `catch_unwind`, and every
//! `ember::Error` becomes a Python exception of the fitting type: no input from Python takes
//! the interpreter down.

mod conv;
mod convert;
mod creation;
mod errors;
mod files;
mod functional;
mod grad;
mod heads;
mod index;
mod methods;
mod models;
mod more_ops;
mod ops;
mod share;
mod tensor;
mod train;

use pyo3::prelude::*;

use convert::{DTYPE_NAMES, PyDType};

/// The extension module `ember._ember`.
#[pymodule]
fn _ember(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tensor::PyTensor>()?;
    m.add_class::<PyDType>()?;
    m.add_class::<ops::BoundOp>()?;
    m.add_class::<grad::PyNoGrad>()?;
    m.add_class::<grad::PyAutocast>()?;
    m.add_class::<share::Keeper>()?;
    m.add_class::<functional::AdamState>()?;
    m.add_class::<models::PyTokenizer>()?;
    m.add_class::<models::PyCausalLm>()?;
    m.add_class::<models::PyAutoModel>()?;
    m.add_class::<heads::TaskModel>()?;
    m.add_class::<heads::TaskOutput>()?;
    m.add_class::<models::TextPieces>()?;
    m.add_class::<train::PyGpt>()?;
    m.add_class::<train::PyGradients>()?;
    m.add_class::<train::PyStoreOptimizer>()?;
    m.add_class::<train::PyGenerator>()?;
    m.add_class::<train::PyTokenStream>()?;
    m.add_class::<train::PySchedule>()?;
    for (d, name) in DTYPE_NAMES {
        m.add(name, PyDType { d })?;
    }
    m.add_function(wrap_pyfunction!(ops::table_ops, m)?)?;
    m.add_function(wrap_pyfunction!(ops::scalar_ops, m)?)?;
    m.add_function(wrap_pyfunction!(grad::is_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(grad::checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(creation::tensor, m)?)?;
    m.add_function(wrap_pyfunction!(creation::zeros, m)?)?;
    m.add_function(wrap_pyfunction!(creation::ones, m)?)?;
    m.add_function(wrap_pyfunction!(creation::randn, m)?)?;
    m.add_function(wrap_pyfunction!(creation::rand, m)?)?;
    m.add_function(wrap_pyfunction!(creation::full, m)?)?;
    m.add_function(wrap_pyfunction!(creation::arange, m)?)?;
    m.add_function(wrap_pyfunction!(creation::eye, m)?)?;
    m.add_function(wrap_pyfunction!(creation::zeros_like, m)?)?;
    m.add_function(wrap_pyfunction!(creation::ones_like, m)?)?;
    m.add_function(wrap_pyfunction!(creation::full_like, m)?)?;
    m.add_function(wrap_pyfunction!(creation::manual_seed, m)?)?;
    m.add_function(wrap_pyfunction!(creation::cat, m)?)?;
    m.add_function(wrap_pyfunction!(creation::stack, m)?)?;
    m.add_function(wrap_pyfunction!(creation::matmul, m)?)?;
    m.add_function(wrap_pyfunction!(share::from_numpy, m)?)?;
    for f in [
        wrap_pyfunction!(functional::linear, m)?,
        wrap_pyfunction!(functional::layer_norm, m)?,
        wrap_pyfunction!(functional::rms_norm, m)?,
        wrap_pyfunction!(functional::embedding, m)?,
        wrap_pyfunction!(functional::cross_entropy, m)?,
        wrap_pyfunction!(functional::scaled_dot_product_attention, m)?,
        wrap_pyfunction!(functional::gelu, m)?,
        wrap_pyfunction!(functional::multinomial, m)?,
        wrap_pyfunction!(conv::conv1d, m)?,
        wrap_pyfunction!(more_ops::where_, m)?,
        wrap_pyfunction!(more_ops::einsum, m)?,
        wrap_pyfunction!(more_ops::one_hot, m)?,
        wrap_pyfunction!(more_ops::pad, m)?,
        wrap_pyfunction!(more_ops::adaptive_max_pool1d, m)?,
        wrap_pyfunction!(more_ops::adaptive_max_pool2d, m)?,
        wrap_pyfunction!(conv::conv2d, m)?,
        wrap_pyfunction!(conv::max_pool1d, m)?,
        wrap_pyfunction!(conv::max_pool2d, m)?,
        wrap_pyfunction!(conv::avg_pool1d, m)?,
        wrap_pyfunction!(conv::avg_pool2d, m)?,
        wrap_pyfunction!(conv::adaptive_avg_pool1d, m)?,
        wrap_pyfunction!(conv::adaptive_avg_pool2d, m)?,
        wrap_pyfunction!(files::save_file, m)?,
        wrap_pyfunction!(files::load_file, m)?,
        wrap_pyfunction!(train::grad, m)?,
        wrap_pyfunction!(train::cosine_with_warmup_schedule, m)?,
    ] {
        m.add_function(f)?;
    }
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
