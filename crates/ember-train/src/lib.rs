//! Training: data, the loop, metrics, a loss-curve plot, and crash-safe checkpoints with
//! bit-exact resume.
//!
//! A run writes `out_dir/metrics.jsonl` (loss, perplexity, lr, grad-norm, tokens/s; validation
//! loss), `out_dir/loss.png`, and `out_dir/checkpoints/step-NNNNNNNN/` (model weights with HF
//! names, optimizer state, RNG states and step), each written atomically. The directory is
//! locked by the process writing it ([`RunDir`]); a resumed run truncates `metrics.jsonl` to
//! the step it resumes from, so the log of an interrupted and resumed run is the log of a
//! straight one, and its checkpoints are byte-identical to the straight run's.
#![warn(missing_docs)]

pub mod checkpoint;
mod data;
mod eval;
mod loader;
mod plot;
mod precision;
mod run_dir;
mod trainer;
mod usage;

pub use data::{Batches, Dataset, Sampled, TensorDataset, TokenStream};
pub use eval::{Accuracy, EvalReport, EvalSettings, LossFn, Metric, Validation, WholeSet};
pub use loader::DataLoader;
pub use plot::loss_curve;
pub use precision::Precision;
pub use run_dir::RunDir;
pub use trainer::{NonFinite, StepOutcome, StepReport, Summary, TrainConfig, Trainer};
