//! Where memory goes during training: bytes of parameters, gradients, optimizer state and
//! activations saved for backward, sampled per device, with the peak since
//! [`reset_peak`].
//!
//! These are Ember's own tensors, counted by their shapes and dtypes (a tensor's bytes once,
//! however many handles share it; views of one buffer are counted each). The process's
//! resident memory (RSS) is larger: it adds the allocator's free-but-kept pages, temporary
//! buffers inside kernels, code and the Rust runtime.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::{Device, Tensor, TensorId};

/// Bytes by what they hold, on one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// model parameters (quantized ones at their block size)
    pub parameters: u64,
    /// gradients held between backward and the optimizer step
    pub gradients: u64,
    /// the optimizer's state (Adam's moments, momentum)
    pub optimizer: u64,
    /// tensors the recorded graph keeps for the backward pass
    pub activations: u64,
}

impl Usage {
    /// The sum of the categories.
    pub fn total(&self) -> u64 {
        self.parameters + self.gradients + self.optimizer + self.activations
    }
}

#[derive(Default)]
struct Samples {
    live: HashMap<Device, Usage>,
    peak: HashMap<Device, Usage>,
}

static SAMPLES: Mutex<Option<Samples>> = Mutex::new(None);

fn with_samples<T>(f: impl FnOnce(&mut Samples) -> T) -> T {
    let mut guard = SAMPLES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Samples::default))
}

/// Records `usage` as `device`'s live memory; the peak keeps the sample with the largest
/// total.
pub fn record(device: Device, usage: Usage) {
    with_samples(|s| {
        s.live.insert(device, usage);
        let peak = s.peak.entry(device).or_default();
        if usage.total() >= peak.total() {
            *peak = usage;
        }
    });
}

/// The last recorded usage of `device` (zeros before any).
pub fn live(device: Device) -> Usage {
    with_samples(|s| s.live.get(&device).copied().unwrap_or_default())
}

/// The recorded sample with the largest total since the last [`reset_peak`].
pub fn peak(device: Device) -> Usage {
    with_samples(|s| s.peak.get(&device).copied().unwrap_or_default())
}

/// Forgets `device`'s peak (the next sample starts it again).
pub fn reset_peak(device: Device) {
    with_samples(|s| {
        s.peak.remove(&device);
    });
}

/// Bytes of a tensor's elements.
pub fn tensor_bytes(t: &Tensor) -> u64 {
    (t.numel() * t.dtype().size_in_bytes()) as u64
}

/// Bytes of distinct tensors (by identity) among `tensors`.
pub fn distinct_bytes<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> u64 {
    let mut seen = HashSet::new();
    tensors
        .into_iter()
        .filter(|t| seen.insert(t.id()))
        .map(tensor_bytes)
        .sum()
}

/// Bytes the recorded graph of `root` keeps for its backward pass: every tensor an op
/// recorded with its data (inputs and intermediate results, once each), leaves that require
/// a gradient (parameters, counted as such) excluded.
pub fn saved_for_backward(root: &Tensor) -> u64 {
    // A value may be reached as a data-less graph handle and as itself (same identity):
    // its bytes count once, when seen with data.
    let (mut expanded, mut counted): (HashSet<TensorId>, HashSet<TensorId>) = Default::default();
    let mut stack = vec![root.clone()];
    let mut bytes = 0;
    while let Some(t) = stack.pop() {
        if !t.is_leaf_param() && !t.is_graph_only() && counted.insert(t.id()) {
            bytes += tensor_bytes(&t);
        }
        if !expanded.insert(t.id()) {
            continue;
        }
        if let Some(op) = t.grad_op() {
            stack.extend(op.inputs().into_iter().cloned());
        }
    }
    bytes
}
