//! Test helpers shared by Ember's integration tests: the one macro that runs a test body on
//! every device that is built, and loading PyTorch fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

use ember_tensor::{DType, Device, Result, Tensor, bf16, f16};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// Defines a module `$name` with one `#[test]` per built device (`cpu` always, `wgpu` with the
/// `wgpu` feature) that calls `$body(device)`.
#[macro_export]
macro_rules! on_every_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(ember_tensor::Device::Cpu)
            }

            #[cfg(feature = "wgpu")]
            #[test]
            fn wgpu() {
                if let Some(device) = $crate::common::wgpu_device() {
                    super::$body(device)
                }
            }
        }
    };
}

/// The wgpu device. With the feature built, a missing adapter fails the test unless
/// `EMBER_ALLOW_NO_WGPU=1`, in which case it says loudly that it skipped.
pub fn wgpu_device() -> Option<Device> {
    let device = Device::wgpu(0);
    match device.check_available() {
        Ok(()) => Some(device),
        Err(e) if std::env::var("EMBER_ALLOW_NO_WGPU").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: wgpu test not run: {e} (EMBER_ALLOW_NO_WGPU=1)");
            None
        }
        Err(e) => panic!(
            "{e}. Install a Vulkan driver (apt-get install mesa-vulkan-drivers gives lavapipe) \
             or set EMBER_ALLOW_NO_WGPU=1 to skip wgpu tests"
        ),
    }
}

/// The repository's `tests/fixtures` folder.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Reads one fixture file.
pub fn read_fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (regenerate with scripts/make_fixtures.py)",
            path.display()
        )
    })
}

/// The Ember dtype of a safetensors dtype.
pub fn dtype_of(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::I64 => DType::I64,
        Dtype::BOOL => DType::Bool,
        other => panic!("fixture dtype {other:?} is not used by Ember"),
    }
}

/// Loads a fixture tensor onto `device` (an `Err` if the device refuses its dtype).
pub fn load(st: &SafeTensors, name: &str, device: Device) -> ember_tensor::Result<Tensor> {
    let v = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    let shape = v.shape().to_vec();
    let b = v.data();
    macro_rules! le {
        ($t:ty, $n:expr, $f:expr) => {
            b.chunks_exact($n)
                .map(|c| $f(c.try_into().unwrap()))
                .collect::<Vec<$t>>()
        };
    }
    match v.dtype() {
        Dtype::F32 => Tensor::from_vec(le!(f32, 4, f32::from_le_bytes), &shape, device),
        Dtype::F64 => Tensor::from_vec(le!(f64, 8, f64::from_le_bytes), &shape, device),
        Dtype::F16 => Tensor::from_vec(
            le!(f16, 2, |c: [u8; 2]| f16::from_bits(u16::from_le_bytes(c))),
            &shape,
            device,
        ),
        Dtype::BF16 => Tensor::from_vec(
            le!(bf16, 2, |c: [u8; 2]| bf16::from_bits(u16::from_le_bytes(c))),
            &shape,
            device,
        ),
        Dtype::I64 => Tensor::from_vec(le!(i64, 8, i64::from_le_bytes), &shape, device),
        Dtype::BOOL => Tensor::from_vec(b.iter().map(|&x| x != 0).collect(), &shape, device),
        other => panic!("fixture {name}: dtype {other:?} is not used by Ember"),
    }
}

/// `allclose`: same shape and dtype, `|a - b| <= atol + rtol * |b|`, NaN equal to NaN.
/// Returns the largest absolute error, or a description of the mismatch.
pub fn assert_close(ours: &Tensor, theirs: &Tensor, rtol: f64, atol: f64) -> Result<f64, String> {
    if ours.dims() != theirs.dims() {
        return Err(format!(
            "shape {:?}, PyTorch {:?}",
            ours.dims(),
            theirs.dims()
        ));
    }
    if ours.dtype() != theirs.dtype() {
        return Err(format!(
            "dtype {}, PyTorch {}",
            ours.dtype(),
            theirs.dtype()
        ));
    }
    let a = ours.to_vec::<f64>().map_err(|e| e.to_string())?;
    let b = theirs.to_vec::<f64>().map_err(|e| e.to_string())?;
    let mut worst = 0.0f64;
    for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
        if x.is_nan() && y.is_nan() || x == y {
            continue;
        }
        let err = (x - y).abs();
        if err.is_nan() || err > atol + rtol * y.abs() {
            return Err(format!(
                "element {i}: ours {x}, PyTorch {y} (|diff| {err:e} > atol {atol:e} + rtol {rtol:e} * |y|)"
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

// ---------------------------------------------------------------- fixture op dispatch

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

pub fn dtype_named(name: &str) -> DType {
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
pub fn apply_view(t: Tensor, view: &Value) -> Result<Tensor> {
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

/// Runs one fixture case's op in Ember.
pub fn run(op: &str, x: &[Tensor], a: &Value, device: Device) -> Result<Vec<Tensor>> {
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
        "layer_norm" => one(x[0].layer_norm(Some(&x[1]), Some(&x[2]), f(a, "eps"))),
        "rms_norm" => one(x[0].rms_norm(Some(&x[1]), f(a, "eps"))),
        "cross_entropy" => {
            let opts = ember_tensor::CrossEntropyOpts {
                reduction: match a["reduction"].as_str().unwrap() {
                    "sum" => ember_tensor::Reduction::Sum,
                    "none" => ember_tensor::Reduction::None,
                    _ => ember_tensor::Reduction::Mean,
                },
                label_smoothing: f(a, "smoothing"),
                ..Default::default()
            };
            one(x[0].cross_entropy(&x[1], opts))
        }
        "scaled_dot_product_attention" => {
            let opts = ember_tensor::AttentionOpts {
                mask: x.get(3).cloned(),
                causal: b(a, "causal"),
                scale: opt_f(a, "scale"),
            };
            one(x[0].scaled_dot_product_attention(&x[1], &x[2], &opts))
        }
        other => panic!("the fixture op {other} has no Ember dispatch in this test"),
    }
}
