//! Evaluation during training: a [`Validation`] is what [`crate::Trainer::fit`] evaluates on.
//! Any [`Batches`] gives the mean loss of a few random batches; [`WholeSet`] runs over every
//! example of a [`Dataset`] once, with [`Metric`]s such as [`Accuracy`].

use web_time::Instant;

use ember_core::{Device, Error, Generator, Result, Tensor};

use crate::data::{Batches, Dataset};
use crate::loader::DataLoader;

/// The trainer's settings an evaluation uses.
#[derive(Debug, Clone, Copy)]
pub struct EvalSettings {
    /// where batches go
    pub device: Device,
    /// rows per batch
    pub batch_size: usize,
    /// random batches for a [`Batches`] validation
    pub batches: usize,
    /// seed of the random batches (the same batches at every evaluation)
    pub seed: u64,
}

/// What one evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// mean loss
    pub loss: f64,
    /// each metric's name and value
    pub metrics: Vec<(String, f64)>,
    /// rows evaluated
    pub rows: usize,
    /// rows per second
    pub rows_per_s: f64,
}

/// A loss function of `(inputs, targets)`.
pub type LossFn<'a> = dyn Fn(&Tensor, &Tensor) -> Result<Tensor> + 'a;

/// Something the trainer evaluates on. It runs under `no_grad`, with the store in eval mode
/// and the run's autocast (the trainer sets them).
pub trait Validation {
    /// One evaluation with the trainer's loss function.
    fn evaluate(&self, s: &EvalSettings, loss_fn: &LossFn) -> Result<EvalReport>;
}

impl<B: Batches + ?Sized> Validation for B {
    /// The mean loss of `s.batches` random batches (the same ones every time).
    fn evaluate(&self, s: &EvalSettings, loss_fn: &LossFn) -> Result<EvalReport> {
        let start = Instant::now();
        let mut g = Generator::new(s.seed);
        let n = s.batches.max(1);
        let mut total = 0.0;
        for _ in 0..n {
            let (x, y) = self.sample(&mut g, s.batch_size, s.device)?;
            total += loss_fn(&x, &y)?.to_scalar::<f32>()? as f64;
        }
        let rows = n * s.batch_size;
        Ok(EvalReport {
            loss: total / n as f64,
            metrics: Vec::new(),
            rows,
            rows_per_s: rows as f64 / start.elapsed().as_secs_f64().max(1e-9),
        })
    }
}

/// A score averaged over a whole validation set: each batch adds a sum and a count.
pub trait Metric {
    /// The name logged to `metrics.jsonl` (`"accuracy"`).
    fn name(&self) -> &str;
    /// `(sum of scores, number of scored items)` for one batch of model outputs.
    fn batch(&self, outputs: &Tensor, targets: &Tensor) -> Result<(f64, usize)>;
}

/// The fraction of rows (or tokens) whose arg-max over the last dim of the outputs equals
/// the I64 target; targets of `ignore_index` (PyTorch's -100) are not counted.
#[derive(Debug, Clone, Copy)]
pub struct Accuracy {
    /// targets skipped
    pub ignore_index: i64,
}

impl Default for Accuracy {
    fn default() -> Self {
        Accuracy { ignore_index: -100 }
    }
}

impl Metric for Accuracy {
    fn name(&self) -> &str {
        "accuracy"
    }

    fn batch(&self, outputs: &Tensor, targets: &Tensor) -> Result<(f64, usize)> {
        let pred = outputs.argmax(-1, false)?;
        if pred.dims() != targets.dims() {
            return Err(Error::shape(
                "Accuracy",
                &[outputs.dims(), targets.dims()],
                format!(
                    "outputs {:?} give predictions {:?}, the targets are {:?}",
                    outputs.dims(),
                    pred.dims(),
                    targets.dims()
                ),
            ));
        }
        let counted = targets.ne_scalar(self.ignore_index as f64)?;
        let hits = pred.eq(targets)?.logical_and(&counted)?;
        let hits = hits.sum(&[], false)?.to_scalar::<i64>()?;
        let total = counted.sum(&[], false)?.to_scalar::<i64>()?;
        Ok((hits as f64, total as usize))
    }
}

/// Every example of a dataset once, in order, in batches of the trainer's batch size: the
/// loss (`criterion` of the model's outputs, averaged over rows) and each metric.
///
/// The trainer's loss function is not used: `forward` gives the outputs the metrics need.
pub struct WholeSet<'a, D> {
    data: D,
    forward: &'a dyn Fn(&Tensor) -> Result<Tensor>,
    criterion: &'a LossFn<'a>,
    metrics: Vec<Box<dyn Metric + 'a>>,
}

impl<'a, D: Dataset> WholeSet<'a, D> {
    /// Evaluates `criterion(forward(inputs), targets)` over all of `data`.
    pub fn new(
        data: D,
        forward: &'a dyn Fn(&Tensor) -> Result<Tensor>,
        criterion: &'a LossFn<'a>,
    ) -> Self {
        WholeSet {
            data,
            forward,
            criterion,
            metrics: Vec::new(),
        }
    }

    /// Adds a metric.
    pub fn metric(mut self, m: impl Metric + 'a) -> Self {
        self.metrics.push(Box::new(m));
        self
    }
}

impl<D: Dataset> Validation for WholeSet<'_, D> {
    fn evaluate(&self, s: &EvalSettings, _: &LossFn) -> Result<EvalReport> {
        let start = Instant::now();
        let mut loader = DataLoader::new(&self.data, s.batch_size, s.device)?;
        let (mut loss_sum, mut rows) = (0.0, 0usize);
        let mut sums = vec![(0.0, 0usize); self.metrics.len()];
        while let Some((x, y)) = loader.next_batch()? {
            let out = (self.forward)(&x)?;
            let n = x.dims().first().copied().unwrap_or(1);
            loss_sum += (self.criterion)(&out, &y)?.to_scalar::<f32>()? as f64 * n as f64;
            rows += n;
            for (m, acc) in self.metrics.iter().zip(&mut sums) {
                let (s, c) = m.batch(&out, &y)?;
                acc.0 += s;
                acc.1 += c;
            }
        }
        let metrics = self
            .metrics
            .iter()
            .zip(sums)
            .map(|(m, (s, c))| (m.name().to_string(), s / c.max(1) as f64))
            .collect();
        Ok(EvalReport {
            loss: loss_sum / rows.max(1) as f64,
            metrics,
            rows,
            rows_per_s: rows as f64 / start.elapsed().as_secs_f64().max(1e-9),
        })
    }
}
