//! Every op's forward against values PyTorch computed (`scripts/make_fixtures.py`), on every
//! built device.

use ember_testing as common;
use ember_testing::on_every_device;

use common::{apply_view, dtype_named, run};
use ember_core::{Device, Error, Tensor};
use safetensors::SafeTensors;
use serde_json::Value;

fn ops_match_pytorch(device: Device) {
    let st_bytes = common::read_fixture("ops.safetensors");
    let st = SafeTensors::deserialize(&st_bytes).expect("ops.safetensors");
    let spec: Value = serde_json::from_slice(&common::read_fixture("ops.json")).expect("ops.json");
    let cases = spec["cases"].as_array().expect("cases");

    let covered: std::collections::BTreeSet<&str> =
        cases.iter().map(|c| c["op"].as_str().unwrap()).collect();
    // Every op of Ember's op tables and of the test dispatch: a new op without a fixture
    // case fails here.
    let required = common::required_ops();
    let missing: Vec<&&str> = required.iter().filter(|o| !covered.contains(**o)).collect();
    assert!(
        missing.is_empty(),
        "ops without a PyTorch fixture: {missing:?}"
    );

    let (mut passed, mut refused, mut failures) = (0, 0, Vec::new());
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let op = c["op"].as_str().unwrap();
        let dtype = dtype_named(c["dtype"].as_str().unwrap());
        let (rtol, atol) = (c["rtol"].as_f64().unwrap(), c["atol"].as_f64().unwrap());
        if !device.supports(dtype) {
            // The device must refuse the dtype with a clear error, never compute garbage.
            match common::load(&st, &format!("{name}/in0"), device)
                .and_then(|_| Tensor::zeros(&[1], dtype, device))
            {
                Err(Error::UnsupportedDType { .. }) => refused += 1,
                other => failures.push(format!("{name}: expected a dtype refusal, got {other:?}")),
            }
            continue;
        }
        let mut inputs = Vec::new();
        for k in 0..c["n_in"].as_u64().unwrap() as usize {
            let t = common::load(&st, &format!("{name}/in{k}"), device).unwrap();
            inputs.push(apply_view(t, &c["views"][k]).unwrap());
        }
        let outs = match run(op, &inputs, &c["args"], device) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{name}: Ember returned an error: {e}"));
                continue;
            }
        };
        let n_out = c["n_out"].as_u64().unwrap() as usize;
        if outs.len() != n_out {
            failures.push(format!("{name}: {} outputs, PyTorch {n_out}", outs.len()));
            continue;
        }
        let mut ok = true;
        for (j, ours) in outs.iter().enumerate() {
            let theirs = common::load(&st, &format!("{name}/out{j}"), Device::Cpu).unwrap();
            let ours = ours.to_device(Device::Cpu).unwrap();
            if let Err(msg) = common::assert_close(&ours, &theirs, rtol, atol) {
                failures.push(format!("{name} (output {j}): {msg}"));
                ok = false;
            }
        }
        if ok {
            passed += 1;
        }
    }
    eprintln!(
        "{device}: {passed} fixture cases match PyTorch, {refused} refused (dtype unsupported \
         on this device), {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from PyTorch on {device}:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

on_every_device!(ops, ops_match_pytorch);
