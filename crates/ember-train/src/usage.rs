//! The trainer's memory samples: parameters, gradients, optimizer state and activations,
//! taken after each forward (activations at their largest) and after each backward
//! (gradients), recorded in `ember_core::usage` and written to `metrics.jsonl`.

use ember_core::usage::{self, Usage};
use ember_core::{Device, Gradients, Tensor};
use ember_nn::VarStore;
use ember_optim::Optimizer;

/// Records the live usage: the stores' parameters, `loss`'s graph (when given) as
/// activations, `grads` as gradients.
pub(crate) fn sample(
    device: Device,
    stores: [Option<&VarStore>; 2],
    opt: &dyn Optimizer,
    loss: Option<&Tensor>,
    grads: &Gradients,
) -> Usage {
    let activations = loss.map_or(0, |l| {
        // Frozen weights the graph holds are parameters, not activations (trained ones are
        // tracked leaves, which `usage` knows as parameters).
        let frozen: Vec<Tensor> = stores
            .iter()
            .flatten()
            .flat_map(|s| s.named_parameters())
            .filter(|(_, p)| !p.is_trainable() && p.quantized().is_none())
            .map(|(_, p)| p.tensor())
            .collect();
        usage::saved_for_backward(l, &frozen)
    });
    let u = Usage {
        parameters: stores.iter().flatten().map(|s| s.nbytes() as u64).sum(),
        gradients: grads.nbytes(),
        optimizer: opt.state_bytes(),
        activations,
    };
    usage::record(device, u);
    u
}

/// The peak as `metrics.jsonl` fields (bytes).
pub(crate) fn peak_fields(device: Device) -> serde_json::Value {
    let p = usage::peak(device);
    serde_json::json!({
        "peak_mem_bytes": p.total(), "peak_params_bytes": p.parameters,
        "peak_grads_bytes": p.gradients, "peak_optim_bytes": p.optimizer,
        "peak_activations_bytes": p.activations,
    })
}
