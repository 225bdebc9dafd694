//! Every differentiable op's input gradients against PyTorch's (fixtures written by
//! `scripts/make_fixtures.py`: a random upstream gradient per output and the gradients
//! `torch.autograd.backward` computed), on every built device.

use ember_testing as common;
use ember_testing::on_every_device;

use common::{apply_view, dtype_named, run};
use ember_core::Backward;
use ember_core::{Device, Tensor};
use safetensors::SafeTensors;
use serde_json::Value;

fn grads_match_pytorch(device: Device) {
    let bytes = common::read_fixture("ops.safetensors");
    let st = SafeTensors::deserialize(&bytes).expect("ops.safetensors");
    let spec: Value = serde_json::from_slice(&common::read_fixture("ops.json")).expect("ops.json");
    let (mut checked, mut skipped_dtype, mut failures) = (0, 0, Vec::new());
    let mut ops = std::collections::BTreeSet::new();
    for c in spec["cases"].as_array().unwrap() {
        let with_grad: Vec<usize> = c["grad_inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        if with_grad.is_empty() {
            continue;
        }
        let name = c["name"].as_str().unwrap();
        let op = c["op"].as_str().unwrap();
        if !device.supports(dtype_named(c["dtype"].as_str().unwrap())) {
            // The forward test already asserts the refusal error for these.
            skipped_dtype += 1;
            continue;
        }
        // Gradients accumulate rounding from several ops: twice the forward tolerance.
        let (rtol, atol) = (
            2.0 * c["rtol"].as_f64().unwrap(),
            2.0 * c["atol"].as_f64().unwrap(),
        );
        let mut leaves = Vec::new();
        let mut viewed = Vec::new();
        for k in 0..c["n_in"].as_u64().unwrap() as usize {
            let mut t = common::load(&st, &format!("{name}/in{k}"), device).unwrap();
            if with_grad.contains(&k) {
                t = t.requires_grad(true).unwrap();
            }
            viewed.push(apply_view(t.clone(), &c["views"][k]).unwrap());
            leaves.push(t);
        }
        let result = run(op, &viewed, &c["args"], device).and_then(|outs| {
            // One backward over all outputs: Σ_j <out_j, gout_j>.
            let mut total: Option<Tensor> = None;
            for (j, o) in outs.iter().enumerate() {
                if !o.dtype().is_float() {
                    continue; // integer outputs (sort's indices) carry no gradient
                }
                let g = common::load(&st, &format!("{name}/gout{j}"), device)?;
                let term = o.mul(&g)?.sum(&[], false)?;
                total = Some(match total {
                    Some(t) => t.add(&term)?,
                    None => term,
                });
            }
            total.expect("at least one output").backward()
        });
        let grads = match result {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for &k in &with_grad {
            let theirs = common::load(&st, &format!("{name}/gin{k}"), Device::Cpu).unwrap();
            let ours = match grads.get(&leaves[k]) {
                Some(g) => g.to_device(Device::Cpu).unwrap(),
                None => theirs.zeros_like().unwrap(),
            };
            if let Err(m) = common::assert_close(&ours, &theirs, rtol, atol) {
                failures.push(format!("{name} (gradient of input {k}): {m}"));
            }
        }
        checked += 1;
        ops.insert(op.to_string());
    }
    eprintln!(
        "{device}: gradients of {checked} cases ({} ops) checked against PyTorch, {skipped_dtype} \
         skipped for a dtype the device refuses, {} failed",
        ops.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "gradients differ from PyTorch on {device}:\n{}",
        failures.join("\n")
    );
}

on_every_device!(grads, grads_match_pytorch);
