//! transformers' task-head auto classes from Python: `ember.models.
//! AutoModelForSequenceClassification`, `AutoModelForTokenClassification` and
//! `AutoModelForMaskedLM` (`python/ember/models.py`) load a [`TaskModel`] of the kind they
//! name; calling it gives a [`TaskOutput`] with `logits` and `loss`, as transformers' outputs.

use std::path::PathBuf;
use std::sync::Arc;

use ember::models::{
    AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoModelForTokenClassification,
    HeadOutput,
};
use ember::{Error, Tensor};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{device_arg, dtype_arg};
use crate::errors::run;
use crate::models::{PyTokenizer, dir_tokenizer};
use crate::tensor::PyTensor;

/// The three heads.
enum Head {
    Sequence(AutoModelForSequenceClassification),
    Token(AutoModelForTokenClassification),
    Masked(AutoModelForMaskedLM),
}

impl Head {
    fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        types: Option<&Tensor>,
        labels: Option<&Tensor>,
    ) -> ember::Result<HeadOutput> {
        match self {
            Head::Sequence(AutoModelForSequenceClassification::Bert(m)) => {
                m.forward(ids, mask, types, labels)
            }
            Head::Sequence(AutoModelForSequenceClassification::Causal(m)) => match types {
                Some(_) => Err(Error::data(
                    "AutoModelForSequenceClassification",
                    "token_type_ids are BERT's; this causal model takes none",
                )),
                None => m.forward(ids, mask, labels),
            },
            Head::Token(m) => m.forward(ids, mask, types, labels),
            Head::Masked(m) => m.forward(ids, mask, types, labels),
        }
    }

    fn labels(&self) -> Vec<String> {
        match self {
            Head::Sequence(m) => m.labels().to_vec(),
            Head::Token(m) => m.labels.clone(),
            Head::Masked(_) => Vec::new(),
        }
    }

    fn named_parameters(&self) -> Vec<(String, ember::nn::Param)> {
        match self {
            Head::Sequence(m) => m.named_parameters(),
            Head::Token(m) => m.named_parameters(),
            Head::Masked(m) => m.named_parameters(),
        }
    }

    fn save_pretrained(&self, dir: &std::path::Path) -> ember::Result<()> {
        match self {
            Head::Sequence(m) => m.save_pretrained(dir),
            Head::Token(m) => m.save_pretrained(dir),
            Head::Masked(m) => m.save_pretrained(dir),
        }
    }
}

/// A model with a task head, loaded by one of `ember.models`' `AutoModelFor…` classes.
#[pyclass(name = "TaskModel", module = "ember.models", frozen)]
pub(crate) struct TaskModel {
    head: Arc<Head>,
    tokenizer: Option<Py<PyTokenizer>>,
}

/// What a [`TaskModel`] call gives: `logits`, and `loss` when labels were passed.
#[pyclass(name = "TaskOutput", module = "ember.models", frozen, get_all)]
pub(crate) struct TaskOutput {
    /// `(B, num_labels)`, `(B, T, num_labels)` or `(B, T, vocab)`.
    logits: Py<PyTensor>,
    /// The loss transformers computes for these labels, or None.
    loss: Option<Py<PyTensor>>,
}

#[pymethods]
impl TaskModel {
    /// Loads `path` with the head `task` names (`"sequence"`, `"token"`, `"masked"`); a
    /// checkpoint without that head gets a new one, with `num_labels` labels when given.
    #[staticmethod]
    #[pyo3(signature = (task, path, num_labels = None, dtype = None, device = None))]
    fn load(
        py: Python<'_>,
        task: &str,
        path: PathBuf,
        num_labels: Option<usize>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<TaskModel> {
        let dtype = dtype
            .map(dtype_arg)
            .transpose()?
            .unwrap_or(ember::DType::F32);
        let device = device_arg(device)?;
        if !matches!(task, "sequence" | "token" | "masked") {
            return Err(PyValueError::new_err(format!(
                "unknown task {task:?}: expected \"sequence\", \"token\" or \"masked\""
            )));
        }
        if task == "masked" && num_labels.is_some() {
            return Err(PyValueError::new_err(
                "AutoModelForMaskedLM takes no num_labels (its logits are over the vocabulary)",
            ));
        }
        let (task, p) = (task.to_string(), path.clone());
        let head = run(py, move || {
            Ok(match (task.as_str(), num_labels) {
                ("sequence", None) => Head::Sequence(
                    AutoModelForSequenceClassification::from_pretrained(&p, device, dtype)?,
                ),
                ("sequence", Some(n)) => Head::Sequence(
                    AutoModelForSequenceClassification::from_pretrained_with_labels(
                        &p, n, device, dtype,
                    )?,
                ),
                ("token", None) => Head::Token(AutoModelForTokenClassification::from_pretrained(
                    &p, device, dtype,
                )?),
                ("token", Some(n)) => Head::Token(
                    AutoModelForTokenClassification::from_pretrained_with_labels(
                        &p, n, device, dtype,
                    )?,
                ),
                _ => Head::Masked(AutoModelForMaskedLM::from_pretrained(&p, device, dtype)?),
            })
        })?;
        Ok(TaskModel {
            head: Arc::new(head),
            tokenizer: dir_tokenizer(py, &path)?,
        })
    }

    /// Logits of `input_ids (B, T)`, and the loss of `labels` when given (the labels each
    /// head takes in transformers: class ids or multi-label floats, per-token ids, masked
    /// token ids with -100 elsewhere).
    #[pyo3(signature = (input_ids, attention_mask = None, token_type_ids = None, labels = None))]
    fn __call__(
        &self,
        py: Python<'_>,
        input_ids: PyRef<'_, PyTensor>,
        attention_mask: Option<PyRef<'_, PyTensor>>,
        token_type_ids: Option<PyRef<'_, PyTensor>>,
        labels: Option<PyRef<'_, PyTensor>>,
    ) -> PyResult<TaskOutput> {
        let head = self.head.clone();
        let ids = input_ids.t.clone();
        let [mask, types, labels] =
            [attention_mask, token_type_ids, labels].map(|t| t.map(|t| t.t.clone()));
        let out = run(py, move || {
            head.forward(&ids, mask.as_ref(), types.as_ref(), labels.as_ref())
        })?;
        Ok(TaskOutput {
            logits: Py::new(py, PyTensor::new(out.logits))?,
            loss: out
                .loss
                .map(|l| Py::new(py, PyTensor::new(l)))
                .transpose()?,
        })
    }

    /// Label names by id (`config.json`'s `id2label`); empty for the masked LM.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.head.labels()
    }

    /// Every parameter by its Hugging Face name.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, p) in self.head.named_parameters() {
            d.set_item(name, PyTensor::new(p.tensor()))?;
        }
        Ok(d)
    }

    /// Writes the directory transformers' `from_pretrained` loads.
    fn save_pretrained(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let head = self.head.clone();
        run(py, move || head.save_pretrained(&path))
    }

    #[getter]
    fn tokenizer(&self, py: Python<'_>) -> Option<Py<PyTokenizer>> {
        self.tokenizer.as_ref().map(|t| t.clone_ref(py))
    }
}
