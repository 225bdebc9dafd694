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
/// recorded with its data (inputs, intermediate results and what fused ops keep besides, once
/// each), except parameters: leaves that require a gradient, `params` (frozen weights, counted
/// as parameters by the caller) and views of either.
pub fn saved_for_backward(root: &Tensor, params: &[Tensor]) -> u64 {
    saved_by_op(root, params)
        .iter()
        .map(|(_, bytes)| bytes)
        .sum()
}

/// [`saved_for_backward`] split by the op that produced each kept tensor (`"input"` for
/// tensors made outside the graph), largest first: where a step's activation memory goes.
/// A buffer that several views read is counted once, under the first op found holding it.
///
/// ```
/// use ember_core::{DType, Device, Tensor, usage};
/// let w = Tensor::ones(&[4, 4], DType::F32, Device::Cpu)?.requires_grad(true)?;
/// let x = Tensor::ones(&[2, 4], DType::F32, Device::Cpu)?;
/// let y = x.matmul(&w)?.relu()?.sum(&[], false)?;
/// let split = usage::saved_by_op(&y, &[]);
/// assert_eq!(split.iter().map(|(_, b)| b).sum::<u64>(), usage::saved_for_backward(&y, &[]));
/// # Ok::<(), ember_core::Error>(())
/// ```
pub fn saved_by_op(root: &Tensor, params: &[Tensor]) -> Vec<(&'static str, u64)> {
    let mut reached = vec![];
    let (mut expanded, mut kept) = (HashSet::new(), vec![]);
    let mut stack = vec![root.clone()];
    while let Some(t) = stack.pop() {
        if !expanded.insert(t.id()) {
            reached.push(t); // a graph handle and its value share an identity: keep both
            continue;
        }
        if let Some(op) = t.grad_op() {
            stack.extend(op.inputs().into_iter().cloned());
            kept.extend(op.kept().into_iter().map(|k| (op.name(), k.clone())));
        }
        reached.push(t);
    }
    // Views of one buffer count it once, where the buffer is known (the CPU); parameters'
    // buffers not at all.
    let param_ids: HashSet<TensorId> = params.iter().map(Tensor::id).collect();
    // A parameter, or a view of one (a transposed weight: the parameter's own buffer).
    let is_param = |t: &Tensor| {
        let mut t = t.clone();
        loop {
            if t.is_leaf_param() || param_ids.contains(&t.id()) {
                return true;
            }
            match t.grad_op() {
                Some(op) if op.is_view() => t = op.inputs()[0].clone(),
                _ => return false,
            }
        }
    };
    let (params_reached, others): (Vec<Tensor>, Vec<Tensor>) =
        reached.into_iter().partition(|t| is_param(t));
    let mut buffers: HashSet<usize> = params_reached
        .iter()
        .chain(params)
        .filter(|t| !t.is_graph_only())
        .filter_map(|t| crate::kernels::layout::buffer(&t.prim()).map(|(address, _)| address))
        .collect();
    let mut counted = HashSet::new();
    let mut by_op: HashMap<&'static str, u64> = HashMap::new();
    for t in others.iter().rev() {
        if t.is_graph_only() || !counted.insert(t.id()) {
            continue;
        }
        let bytes = match crate::kernels::layout::buffer(&t.prim()) {
            Some((address, len)) => u64::from(buffers.insert(address)) * len,
            None => tensor_bytes(t),
        };
        let name = t.grad_op().map_or("input", |op| op.name());
        *by_op.entry(name).or_default() += bytes;
    }
    for (name, t) in &kept {
        if counted.insert(t.id()) {
            *by_op.entry(name).or_default() += tensor_bytes(t);
        }
    }
    let mut split: Vec<_> = by_op.into_iter().collect();
    split.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    split
}
