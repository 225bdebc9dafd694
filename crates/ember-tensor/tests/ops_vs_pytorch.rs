//! Every op's forward against values PyTorch computed (`scripts/make_fixtures.py`), on every
//! built device.

mod common;

use ember_tensor::{DType, Device, Error, Result, Tensor};
use safetensors::SafeTensors;
use serde_json::Value;

/// Every op the fixtures must cover: a new op without a fixture case fails the suite.
const REQUIRED_OPS: &[&str] = &[
    "neg",
    "abs",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "gelu",
    "gelu_tanh",
    "silu",
    "powf",
    "clamp",
    "recip",
    "square",
    "erf",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "add_scalar",
    "sub_scalar",
    "mul_scalar",
    "div_scalar",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "eq_scalar",
    "ne_scalar",
    "lt_scalar",
    "le_scalar",
    "gt_scalar",
    "ge_scalar",
    "where",
    "masked_fill",
    "sum",
    "mean",
    "max",
    "min",
    "argmax",
    "argmin",
    "var",
    "logsumexp",
    "softmax",
    "log_softmax",
    "matmul",
    "reshape",
    "permute",
    "transpose",
    "squeeze",
    "unsqueeze",
    "flatten",
    "expand",
    "broadcast_to",
    "narrow",
    "slice",
    "cat",
    "stack",
    "split",
    "chunk",
    "index_select",
    "gather",
    "scatter_add",
    "embedding",
    "tril",
    "triu",
    "to_dtype",
    "arange",
    "eye",
];

fn i(args: &Value, k: &str) -> isize {
    args[k]
        .as_i64()
        .unwrap_or_else(|| panic!("arg {k} in {args}")) as isize
}

fn f(args: &Value, k: &str) -> f64 {
    args[k]
        .as_f64()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
}

fn opt_f(args: &Value, k: &str) -> Option<f64> {
    args.get(k).and_then(Value::as_f64)
}

fn b(args: &Value, k: &str) -> bool {
    args[k]
        .as_bool()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
}

fn list(args: &Value, k: &str) -> Vec<isize> {
    args[k]
        .as_array()
        .unwrap_or_else(|| panic!("arg {k} in {args}"))
        .iter()
        .map(|v| v.as_i64().unwrap() as isize)
        .collect()
}

fn dtype_named(name: &str) -> DType {
    match name {
        "f32" => DType::F32,
        "f64" => DType::F64,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        "i64" => DType::I64,
        "bool" => DType::Bool,
        other => panic!("unknown dtype {other}"),
    }
}

/// Replays a view recorded by the generator (`["transpose", d0, d1]`, `["narrow", d, s, n]`).
fn apply_view(t: Tensor, view: &Value) -> Result<Tensor> {
    let Some(v) = view.as_array() else {
        return Ok(t);
    };
    let n = |k: usize| v[k].as_i64().unwrap() as isize;
    match v[0].as_str().unwrap() {
        "transpose" => t.transpose(n(1), n(2)),
        "narrow" => t.narrow(n(1), n(2) as usize, n(3) as usize),
        other => panic!("unknown view {other}"),
    }
}

/// Runs one case's op in Ember.
fn run(op: &str, x: &[Tensor], a: &Value, device: Device) -> Result<Vec<Tensor>> {
    let one = |r: Result<Tensor>| r.map(|t| vec![t]);
    match op {
        "neg" => one(x[0].neg()),
        "abs" => one(x[0].abs()),
        "exp" => one(x[0].exp()),
        "log" => one(x[0].log()),
        "sqrt" => one(x[0].sqrt()),
        "rsqrt" => one(x[0].rsqrt()),
        "sin" => one(x[0].sin()),
        "cos" => one(x[0].cos()),
        "tanh" => one(x[0].tanh()),
        "sigmoid" => one(x[0].sigmoid()),
        "relu" => one(x[0].relu()),
        "gelu" => one(x[0].gelu()),
        "gelu_tanh" => one(x[0].gelu_tanh()),
        "silu" => one(x[0].silu()),
        "recip" => one(x[0].recip()),
        "square" => one(x[0].square()),
        "erf" => one(x[0].erf()),
        "powf" => one(x[0].powf(f(a, "exponent"))),
        "clamp" => one(x[0].clamp(opt_f(a, "min"), opt_f(a, "max"))),
        "add" => one(x[0].add(&x[1])),
        "sub" => one(x[0].sub(&x[1])),
        "mul" => one(x[0].mul(&x[1])),
        "div" => one(x[0].div(&x[1])),
        "pow" => one(x[0].pow(&x[1])),
        "maximum" => one(x[0].maximum(&x[1])),
        "minimum" => one(x[0].minimum(&x[1])),
        "add_scalar" => one(x[0].add_scalar(f(a, "scalar"))),
        "sub_scalar" => one(x[0].sub_scalar(f(a, "scalar"))),
        "mul_scalar" => one(x[0].mul_scalar(f(a, "scalar"))),
        "div_scalar" => one(x[0].div_scalar(f(a, "scalar"))),
        "eq" => one(x[0].eq(&x[1])),
        "ne" => one(x[0].ne(&x[1])),
        "lt" => one(x[0].lt(&x[1])),
        "le" => one(x[0].le(&x[1])),
        "gt" => one(x[0].gt(&x[1])),
        "ge" => one(x[0].ge(&x[1])),
        "eq_scalar" => one(x[0].eq_scalar(f(a, "scalar"))),
        "ne_scalar" => one(x[0].ne_scalar(f(a, "scalar"))),
        "lt_scalar" => one(x[0].lt_scalar(f(a, "scalar"))),
        "le_scalar" => one(x[0].le_scalar(f(a, "scalar"))),
        "gt_scalar" => one(x[0].gt_scalar(f(a, "scalar"))),
        "ge_scalar" => one(x[0].ge_scalar(f(a, "scalar"))),
        "where" => one(Tensor::where_(&x[0], &x[1], &x[2])),
        "masked_fill" => one(x[0].masked_fill(&x[1], f(a, "value"))),
        "sum" => one(x[0].sum(&list(a, "dims"), b(a, "keepdim"))),
        "mean" => one(x[0].mean(&list(a, "dims"), b(a, "keepdim"))),
        "max" => one(x[0].max(&list(a, "dims"), b(a, "keepdim"))),
        "min" => one(x[0].min(&list(a, "dims"), b(a, "keepdim"))),
        "logsumexp" => one(x[0].logsumexp(&list(a, "dims"), b(a, "keepdim"))),
        "argmax" => one(x[0].argmax(i(a, "dim"), b(a, "keepdim"))),
        "argmin" => one(x[0].argmin(i(a, "dim"), b(a, "keepdim"))),
        "var" => one(x[0].var(
            &list(a, "dims"),
            i(a, "correction") as usize,
            b(a, "keepdim"),
        )),
        "softmax" => one(x[0].softmax(i(a, "dim"))),
        "log_softmax" => one(x[0].log_softmax(i(a, "dim"))),
        "matmul" => one(x[0].matmul(&x[1])),
        "reshape" => one(x[0].reshape(&list(a, "shape"))),
        "permute" => one(x[0].permute(&list(a, "axes"))),
        "transpose" => one(x[0].transpose(i(a, "d0"), i(a, "d1"))),
        "squeeze" => one(x[0].squeeze(i(a, "dim"))),
        "unsqueeze" => one(x[0].unsqueeze(i(a, "dim"))),
        "flatten" => one(x[0].flatten(i(a, "start"), i(a, "end"))),
        "expand" => one(x[0].expand(&list(a, "shape"))),
        "broadcast_to" => {
            let s: Vec<usize> = list(a, "shape").iter().map(|&v| v as usize).collect();
            one(x[0].broadcast_to(&s))
        }
        "narrow" => one(x[0].narrow(i(a, "dim"), i(a, "start") as usize, i(a, "len") as usize)),
        "slice" => {
            let start = a["start"].as_i64().map(|v| v as isize);
            let end = a["end"].as_i64().map(|v| v as isize);
            let (d, step) = (i(a, "dim"), i(a, "step") as usize);
            one(x[0].slice(d, start, end, step))
        }
        "cat" => one(Tensor::cat(&x.iter().collect::<Vec<_>>(), i(a, "dim"))),
        "stack" => one(Tensor::stack(&x.iter().collect::<Vec<_>>(), i(a, "dim"))),
        "split" => x[0].split(i(a, "size") as usize, i(a, "dim")),
        "chunk" => x[0].chunk(i(a, "chunks") as usize, i(a, "dim")),
        "index_select" => one(x[0].index_select(i(a, "dim"), &x[1])),
        "gather" => one(x[0].gather(i(a, "dim"), &x[1])),
        "scatter_add" => one(x[0].scatter_add(i(a, "dim"), &x[1], &x[2])),
        "embedding" => one(x[0].embedding(&x[1])),
        "tril" => one(x[0].tril(i(a, "diagonal") as i64)),
        "triu" => one(x[0].triu(i(a, "diagonal") as i64)),
        "to_dtype" => one(x[0].to_dtype(dtype_named(a["to"].as_str().unwrap()))),
        "arange" => {
            let out = if a["start"].is_i64() {
                DType::I64
            } else {
                DType::F32
            };
            one(Tensor::arange(
                f(a, "start"),
                f(a, "end"),
                f(a, "step"),
                out,
                device,
            ))
        }
        "eye" => one(Tensor::eye(i(a, "n") as usize, DType::F32, device)),
        other => panic!("the fixture op {other} has no Ember dispatch in this test"),
    }
}

fn ops_match_pytorch(device: Device) {
    let st_bytes = common::read_fixture("ops.safetensors");
    let st = SafeTensors::deserialize(&st_bytes).expect("ops.safetensors");
    let spec: Value = serde_json::from_slice(&common::read_fixture("ops.json")).expect("ops.json");
    let cases = spec["cases"].as_array().expect("cases");

    let covered: std::collections::BTreeSet<&str> =
        cases.iter().map(|c| c["op"].as_str().unwrap()).collect();
    let missing: Vec<&&str> = REQUIRED_OPS
        .iter()
        .filter(|o| !covered.contains(**o))
        .collect();
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
