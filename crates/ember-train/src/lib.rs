//! Training: data, the loop, metrics, a loss-curve plot, and crash-safe checkpoints with
//! bit-exact resume.
//!
//! A run writes `out_dir/metrics.jsonl` (loss, perplexity, lr, grad-norm, tokens/s; validation
//! loss), `out_dir/loss.png`, and `out_dir/checkpoints/step-NNNNNNNN/` (model weights with HF
//! names, optimizer state, RNG states and step), each written atomically.
#![warn(missing_docs)]

pub mod checkpoint;
mod data;
mod plot;
mod trainer;

pub use data::{Batches, Dataset, Sampled, TokenStream};
pub use plot::loss_curve;
pub use trainer::{Summary, TrainConfig, Trainer};
