//! `ember.models`: Hugging Face checkpoints and GGUF files as models from Python
//! (`AutoModelForCausalLM.from_pretrained`), their tokenizers and chat templates, and
//! generation, whole or streamed as text pieces.
//!
//! Generation runs with the GIL released. `generate` looks for Ctrl-C between tokens (taking
//! the GIL for a moment) and stops with `KeyboardInterrupt`; `stream` runs generation on a
//! thread of its own, hands text pieces to the Python iterator through a bounded channel,
//! and stops when the iterator is dropped or interrupted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use ember::models::{
    AutoModel, AutoModelForCausalLM, ChatTemplate, Flow, GenerateOpts, TextStream, Tokenizer,
    generate_text, generate_with,
};
use ember::{DType, Device, GgufFile};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{device_arg, dtype_arg};
use crate::errors::{OrPy, run};
use crate::tensor::PyTensor;

/// A tokenizer with its chat template (`tokenizer.json` and `tokenizer_config.json` of a
/// directory, or a GGUF file's).
#[pyclass(name = "Tokenizer", module = "ember.models", frozen)]
pub(crate) struct PyTokenizer {
    tok: Arc<Tokenizer>,
    chat: Option<Arc<ChatTemplate>>,
}

fn load_tokenizer(py: Python<'_>, path: &Path) -> PyResult<PyTokenizer> {
    let path = path.to_path_buf();
    let (tok, chat) = run(py, move || {
        if path.extension().is_some_and(|e| e == "gguf") {
            let g = GgufFile::open(&path)?;
            Ok((Tokenizer::from_gguf(&g)?, ChatTemplate::from_gguf(&g)?))
        } else {
            let tok = Tokenizer::from_file(path.join("tokenizer.json"))?;
            let config = path.join("tokenizer_config.json");
            let chat = if config.exists() {
                ChatTemplate::from_tokenizer_config(config)?
            } else {
                None
            };
            Ok((tok, chat))
        }
    })?;
    Ok(PyTokenizer {
        tok: Arc::new(tok),
        chat: chat.map(Arc::new),
    })
}

#[pymethods]
impl PyTokenizer {
    /// The tokenizer of a Hugging Face directory or a GGUF file.
    #[staticmethod]
    fn from_pretrained(py: Python<'_>, path: PathBuf) -> PyResult<PyTokenizer> {
        load_tokenizer(py, &path)
    }

    /// Token ids of `text`.
    #[pyo3(signature = (text, add_special_tokens = true))]
    fn encode(&self, py: Python<'_>, text: String, add_special_tokens: bool) -> PyResult<Vec<i64>> {
        let tok = self.tok.clone();
        run(py, move || tok.encode(&text, add_special_tokens))
    }

    /// The text of `ids`.
    #[pyo3(signature = (ids, skip_special_tokens = true))]
    fn decode(&self, py: Python<'_>, ids: Vec<i64>, skip_special_tokens: bool) -> PyResult<String> {
        let tok = self.tok.clone();
        run(py, move || tok.decode(&ids, skip_special_tokens))
    }

    /// The prompt of `messages` (dicts with `role` and `content`) by the model's chat
    /// template (ChatML when it has none), rendered on a budget; token ids with `tokenize`.
    #[pyo3(signature = (messages, add_generation_prompt = true, tokenize = false))]
    fn apply_chat_template<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        add_generation_prompt: bool,
        tokenize: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut pairs = Vec::with_capacity(messages.len());
        for m in messages.iter() {
            let d = m.cast::<PyDict>().map_err(|_| {
                PyValueError::new_err("messages must be dicts with 'role' and 'content'")
            })?;
            let get = |k: &str| -> PyResult<String> {
                d.get_item(k)?
                    .ok_or_else(|| PyValueError::new_err(format!("a message has no '{k}'")))?
                    .extract()
            };
            pairs.push((get("role")?, get("content")?));
        }
        let (tok, chat) = (self.tok.clone(), self.chat.clone());
        let text = run(py, move || {
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(r, c)| (r.as_str(), c.as_str()))
                .collect();
            ember::models::chat_prompt(chat.as_deref(), &refs, add_generation_prompt)
        })?;
        if tokenize {
            let ids = run(py, move || tok.encode(&text, false))?;
            Ok(ids.into_pyobject(py)?.into_any())
        } else {
            Ok(text.into_pyobject(py)?.into_any())
        }
    }

    #[getter]
    fn has_chat_template(&self) -> bool {
        self.chat.is_some()
    }

    /// Several texts encoded and padded to the longest with `pad_id`: ids and the attention
    /// mask, both `(B, T)` int64.
    #[pyo3(signature = (texts, add_special_tokens = true, pad_id = 0))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        add_special_tokens: bool,
        pad_id: i64,
    ) -> PyResult<(PyTensor, PyTensor)> {
        let tok = self.tok.clone();
        let (ids, mask) = run(py, move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            tok.encode_batch(&refs, add_special_tokens, pad_id, Device::Cpu)
        })?;
        Ok((PyTensor::new(ids), PyTensor::new(mask)))
    }
}

/// The tokenizer of a Hugging Face directory, when it has a `tokenizer.json`.
pub(crate) fn dir_tokenizer(py: Python<'_>, dir: &Path) -> PyResult<Option<Py<PyTokenizer>>> {
    if !dir.join("tokenizer.json").exists() {
        return Ok(None);
    }
    Ok(Some(Py::new(py, load_tokenizer(py, dir)?)?))
}

/// An encoder (today BERT: `bert`, e.g. MiniLM) from a Hugging Face directory, with its
/// tokenizer.
#[pyclass(name = "AutoModel", module = "ember.models", frozen)]
pub(crate) struct PyAutoModel {
    model: Arc<AutoModel>,
    tokenizer: Option<Py<PyTokenizer>>,
}

#[pymethods]
impl PyAutoModel {
    #[staticmethod]
    #[pyo3(signature = (path, dtype = None, device = None))]
    fn from_pretrained(
        py: Python<'_>,
        path: PathBuf,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyAutoModel> {
        let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
        let device = device_arg(device)?;
        let p = path.clone();
        let model = run(py, move || AutoModel::from_pretrained(&p, device, dtype))?;
        let tokenizer = dir_tokenizer(py, &path)?;
        Ok(PyAutoModel {
            model: Arc::new(model),
            tokenizer,
        })
    }

    /// Sentence embeddings `(B, C)`: the mean over real tokens (not padding), L2-normalized,
    /// as sentence-transformers' pooling.
    fn embed(
        &self,
        py: Python<'_>,
        input_ids: PyRef<'_, PyTensor>,
        attention_mask: PyRef<'_, PyTensor>,
    ) -> PyResult<PyTensor> {
        let (m, ids, mask) = (
            self.model.clone(),
            input_ids.t.clone(),
            attention_mask.t.clone(),
        );
        Ok(PyTensor::new(run(py, move || m.embed(&ids, &mask))?))
    }

    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Option<Py<PyTokenizer>> {
        self.tokenizer.as_ref().map(|t| t.clone_ref(py))
    }
}

/// A causal language model loaded from a Hugging Face directory or a GGUF file (quantized
/// tensors kept in their blocks), with its tokenizer when the files have one.
#[pyclass(name = "AutoModelForCausalLM", module = "ember.models", frozen)]
pub(crate) struct PyCausalLm {
    model: Arc<AutoModelForCausalLM>,
    tokenizer: Option<Py<PyTokenizer>>,
    device: Device,
}

/// Generation options (transformers' names; `sequence_bias` maps token tuples to biases),
/// validated by Ember before anything runs.
#[allow(clippy::too_many_arguments)]
fn opts(
    max_new_tokens: usize,
    min_new_tokens: usize,
    temperature: f64,
    top_k: usize,
    top_p: f64,
    repetition_penalty: f64,
    no_repeat_ngram_size: usize,
    sequence_bias: Option<HashMap<Vec<i64>, f32>>,
    stop_tokens: Option<Vec<i64>>,
    stop_strings: Option<Vec<String>>,
    seed: u64,
    eos: Vec<i64>,
) -> PyResult<GenerateOpts> {
    let mut sequence_bias: Vec<(Vec<i64>, f32)> =
        sequence_bias.unwrap_or_default().into_iter().collect();
    sequence_bias.sort_by(|a, b| a.0.cmp(&b.0));
    let o = GenerateOpts {
        max_new_tokens,
        min_new_tokens,
        temperature,
        top_k,
        top_p,
        repetition_penalty,
        no_repeat_ngram_size,
        sequence_bias,
        stop_tokens: stop_tokens.unwrap_or(eos),
        stop_strings: stop_strings.unwrap_or_default(),
        seed,
    };
    o.validate().or_py()?;
    Ok(o)
}

fn prompt_ids(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return t
            .borrow()
            .t
            .reshape(&[-1])
            .and_then(|t| t.to_vec::<i64>())
            .or_py();
    }
    obj.extract::<Vec<i64>>()
        .map_err(|_| PyValueError::new_err("input_ids must be a list of ints or an int64 tensor"))
}

#[pymethods]
impl PyCausalLm {
    /// Loads `path` (a directory with `config.json`, or a `.gguf` file).
    #[staticmethod]
    #[pyo3(signature = (path, dtype = None, device = None))]
    fn from_pretrained(
        py: Python<'_>,
        path: PathBuf,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyCausalLm> {
        let dtype = dtype.map(dtype_arg).transpose()?.unwrap_or(DType::F32);
        let device = device_arg(device)?;
        let p = path.clone();
        let model = run(py, move || {
            AutoModelForCausalLM::from_path(&p, device, dtype)
        })?;
        let has_tokenizer = if path.extension().is_some_and(|e| e == "gguf") {
            true
        } else {
            path.join("tokenizer.json").exists()
        };
        let tokenizer = if has_tokenizer {
            Some(Py::new(py, load_tokenizer(py, &path)?)?)
        } else {
            None
        };
        Ok(PyCausalLm {
            model: Arc::new(model),
            tokenizer,
            device,
        })
    }

    /// Logits `(B, T, V)` of ids `(B, T)`.
    fn __call__(&self, py: Python<'_>, input_ids: PyRef<'_, PyTensor>) -> PyResult<PyTensor> {
        let (m, x) = (self.model.clone(), input_ids.t.clone());
        Ok(PyTensor::new(run(py, move || m.forward(&x))?))
    }

    #[getter]
    fn model_type(&self) -> String {
        self.model.model_type().to_string()
    }

    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Option<Py<PyTokenizer>> {
        self.tokenizer.as_ref().map(|t| t.clone_ref(py))
    }

    /// Every parameter by its Hugging Face name (quantized ones dequantized).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, p) in self.model.store().named_parameters() {
            d.set_item(name, PyTensor::new(p.tensor()))?;
        }
        Ok(d)
    }

    /// New token ids after `input_ids` (greedy unless `temperature` > 0); stops at the
    /// model's end-of-sequence ids unless `stop_tokens` says otherwise. Ctrl-C stops it.
    #[pyo3(signature = (input_ids, max_new_tokens = 64, temperature = 0.0, top_k = 0, top_p = 1.0, repetition_penalty = 1.0, stop_tokens = None, seed = 0, min_new_tokens = 0, no_repeat_ngram_size = 0, sequence_bias = None, stop_strings = None))]
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        py: Python<'_>,
        input_ids: &Bound<'_, PyAny>,
        max_new_tokens: usize,
        temperature: f64,
        top_k: usize,
        top_p: f64,
        repetition_penalty: f64,
        stop_tokens: Option<Vec<i64>>,
        seed: u64,
        min_new_tokens: usize,
        no_repeat_ngram_size: usize,
        sequence_bias: Option<HashMap<Vec<i64>, f32>>,
        stop_strings: Option<Vec<String>>,
    ) -> PyResult<Vec<i64>> {
        let prompt = prompt_ids(input_ids)?;
        let o = opts(
            max_new_tokens,
            min_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            no_repeat_ngram_size,
            sequence_bias,
            stop_tokens,
            stop_strings,
            seed,
            self.model.eos_ids(),
        )?;
        let (m, device) = (self.model.clone(), self.device);
        let tok = self.tokenizer.as_ref().map(|t| t.get().tok.clone());
        let mut interrupted = None;
        let out = run(py, || {
            let on_token = |_| match Python::attach(|py| py.check_signals()) {
                Ok(()) => Ok(Flow::Continue),
                Err(e) => {
                    interrupted = Some(e);
                    Ok(Flow::Stop)
                }
            };
            match &tok {
                Some(t) => generate_text(m.as_ref(), t, &prompt, device, &o, on_token),
                None => generate_with(m.as_ref(), &prompt, device, &o, on_token),
            }
        });
        match interrupted {
            Some(e) => Err(e),
            None => out,
        }
    }

    /// Generation as an iterator of text pieces (the prompt a string, or token ids), decoded
    /// with the model's tokenizer as tokens arrive.
    #[pyo3(signature = (prompt, max_new_tokens = 64, temperature = 0.0, top_k = 0, top_p = 1.0, repetition_penalty = 1.0, stop_tokens = None, seed = 0, min_new_tokens = 0, no_repeat_ngram_size = 0, sequence_bias = None, stop_strings = None))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        prompt: &Bound<'_, PyAny>,
        max_new_tokens: usize,
        temperature: f64,
        top_k: usize,
        top_p: f64,
        repetition_penalty: f64,
        stop_tokens: Option<Vec<i64>>,
        seed: u64,
        min_new_tokens: usize,
        no_repeat_ngram_size: usize,
        sequence_bias: Option<HashMap<Vec<i64>, f32>>,
        stop_strings: Option<Vec<String>>,
    ) -> PyResult<TextPieces> {
        let tok = match &self.tokenizer {
            Some(t) => t.get().tok.clone(),
            None => {
                return Err(PyValueError::new_err(
                    "stream needs the model's tokenizer; this model has none",
                ));
            }
        };
        let ids = match prompt.extract::<String>() {
            Ok(text) => {
                let t = tok.clone();
                run(py, move || t.encode(&text, true))?
            }
            Err(_) => prompt_ids(prompt)?,
        };
        let o = opts(
            max_new_tokens,
            min_new_tokens,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            no_repeat_ngram_size,
            sequence_bias,
            stop_tokens,
            stop_strings,
            seed,
            self.model.eos_ids(),
        )?;
        let (m, device) = (self.model.clone(), self.device);
        let (tx, rx) = sync_channel::<ember::Result<String>>(16);
        std::thread::Builder::new()
            .name("ember-stream".into())
            .spawn(move || {
                let mut text = TextStream::new(&tok);
                let r = generate_text(m.as_ref(), &tok, &ids, device, &o, |id| {
                    let piece = text.push(id)?;
                    if piece.is_empty() || tx.send(Ok(piece)).is_ok() {
                        Ok(Flow::Continue)
                    } else {
                        Ok(Flow::Stop) // the iterator is gone
                    }
                });
                let last = r.and_then(|_| text.finish());
                match last {
                    Ok(rest) if !rest.is_empty() => {
                        let _ = tx.send(Ok(rest));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| PyValueError::new_err(format!("stream: could not start a thread: {e}")))?;
        Ok(TextPieces {
            rx: std::sync::Mutex::new(Some(rx)),
        })
    }
}

/// The iterator `stream` returns: text pieces as the model produces them.
#[pyclass(name = "TextStream", module = "ember.models")]
pub(crate) struct TextPieces {
    rx: std::sync::Mutex<Option<Receiver<ember::Result<String>>>>,
}

#[pymethods]
impl TextPieces {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let mut guard = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut rx) = guard.take() else {
            return Ok(None);
        };
        loop {
            let (got, back) = py.detach(move || (rx.recv_timeout(Duration::from_millis(50)), rx));
            rx = back;
            match got {
                Ok(Ok(piece)) => {
                    *guard = Some(rx);
                    return Ok(Some(piece));
                }
                Ok(Err(e)) => return Err(crate::errors::to_py(e)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    // Ctrl-C: the receiver is dropped here, which stops the generating thread.
                    py.check_signals()?;
                }
            }
        }
    }
}
