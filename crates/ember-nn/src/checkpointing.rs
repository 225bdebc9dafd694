//! A model's gradient-checkpointing switch (as transformers' `gradient_checkpointing_enable`):
//! when on, each block's activations are freed after its forward and recomputed in the
//! backward ([`ember_core::checkpoint`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ember_core::{Result, Tensor};

/// Off by default; clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct Checkpointing(Arc<AtomicBool>);

impl Checkpointing {
    /// Turns checkpointing on or off.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// True while on.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// True when a forward now checkpoints: on, and recording gradients.
    pub fn applies(&self) -> bool {
        self.is_on() && ember_core::is_grad_enabled()
    }

    /// `f(x)`, checkpointed when [`Checkpointing::applies`].
    pub fn run(
        &self,
        f: impl Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
        x: &Tensor,
    ) -> Result<Tensor> {
        if self.applies() {
            ember_core::checkpoint(f, x)
        } else {
            f(x)
        }
    }
}
