//! The precision a training run computes in: f32, or mixed precision (autocast) with f32
//! master weights.

use ember_core::{DType, Error, Result};

/// The precision a run trains in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in f32 (the default).
    #[default]
    F32,
    /// bf16 autocast over the forward pass and the loss; f32 master weights, gradients and
    /// optimizer state (`torch.autocast("cpu", torch.bfloat16)`).
    Bf16Mixed,
    /// f16 autocast with dynamic loss scaling ([`GradScaler`](ember_optim::GradScaler)); steps whose gradients
    /// overflow are skipped and the scale backs off, as `torch.amp.GradScaler`.
    F16Mixed,
}

impl Precision {
    /// The autocast dtype, `None` for f32.
    pub fn autocast_dtype(self) -> Option<DType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16Mixed => Some(DType::BF16),
            Precision::F16Mixed => Some(DType::F16),
        }
    }

    /// The name `FromStr` reads: `f32`, `bf16-mixed`, `f16-mixed`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16Mixed => "bf16-mixed",
            Precision::F16Mixed => "f16-mixed",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Precision> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16-mixed" => Ok(Precision::Bf16Mixed),
            "f16-mixed" => Ok(Precision::F16Mixed),
            other => Err(Error::data(
                "precision",
                format!("unknown precision {other:?} (expected f32, bf16-mixed or f16-mixed)"),
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
