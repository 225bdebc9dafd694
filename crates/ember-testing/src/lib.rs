//! Test support shared by Ember's integration tests (a dev-dependency only): the one macro
//! that runs a test body on every device that is built, loading the PyTorch fixtures of
//! `tests/fixtures`, comparing with tolerances, and replaying fixture cases by op name.
//!
//! ```
//! use ember_core::{DType, Device, Tensor};
//! use ember_testing::on_every_device;
//!
//! fn adds(device: Device) {
//!     let x = Tensor::ones(&[2], DType::F32, device).unwrap();
//!     assert_eq!(x.add(&x).unwrap().to_vec::<f32>().unwrap(), vec![2.0, 2.0]);
//! }
//! on_every_device!(add, adds); // the tests add::cpu and, with the `wgpu` feature, add::wgpu
//! # fn main() { adds(Device::Cpu) }
//! ```
#![warn(missing_docs)]

pub mod gguf;
pub mod hostile;

use std::path::PathBuf;

pub use ember_core::Device;
use ember_core::{
    AttentionOpts, BinaryFn, CompareFn, CrossEntropyOpts, DType, ReduceFn, Reduction, Result,
    Tensor, UnaryFn, bf16, f16,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// Defines a module `$name` with one `#[test]` per built device (`cpu` always, `wgpu` when the
/// calling crate's `wgpu` feature is on) that calls `$body(device)`.
#[macro_export]
macro_rules! on_every_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body($crate::Device::Cpu)
            }

            #[cfg(feature = "wgpu")]
            #[test]
            fn wgpu() {
                if let Some(device) = $crate::wgpu_device() {
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

/// The worst `|a - b| / (atol + rtol·|b|)` over the elements of two tensors of one shape
/// (any dtypes); at most 1 means every element is within tolerance.
pub fn worst_error(a: &Tensor, b: &Tensor, rtol: f64, atol: f64) -> ember_core::Result<f64> {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec::<f64>()?, b.to_vec::<f64>()?);
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (atol + rtol * y.abs()))
        .fold(0.0, f64::max))
}

/// Runs the current test binary again with `EMBER_SIMD=avx2` and `EMBER_SIMD=baseline`
/// (skipping the test `this_test`), so the narrower kernels a wider CPU never picks pass the
/// same tests; panics with their output when a run fails. Returns at once inside a re-run.
pub fn rerun_with_narrower_simd(this_test: &str) {
    if std::env::var_os("EMBER_SIMD").is_some() {
        return; // this is the re-run
    }
    let exe = std::env::current_exe().expect("the test binary");
    for level in ["avx2", "baseline"] {
        let out = std::process::Command::new(&exe)
            .env("EMBER_SIMD", level)
            .args(["--skip", this_test])
            .output()
            .expect("re-running the tests");
        assert!(
            out.status.success(),
            "tests with EMBER_SIMD={level} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Says loudly that a test skipped for want of `what`, or panics instead when the variable
/// `required_by` is `1` (CI sets it, so a missing asset fails there).
pub fn skip_or_fail(what: String, required_by: &str) {
    if std::env::var(required_by).as_deref() == Ok("1") {
        panic!("{what} ({required_by}=1)");
    }
    eprintln!("SKIPPED: {what}");
}

/// The path of an asset of `scripts/fetch_assets.sh` (`$EMBER_ASSETS`, else
/// `~/.cache/ember/assets`), or `None` after saying loudly that it is missing (a failure under
/// `EMBER_REQUIRE_ASSETS=1`).
pub fn asset(rel: &str) -> Option<PathBuf> {
    let root = std::env::var("EMBER_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ember/assets")
        });
    let p = root.join(rel);
    if p.exists() {
        return Some(p);
    }
    let msg = format!(
        "asset {} is missing: run `bash scripts/fetch_assets.sh`",
        p.display()
    );
    skip_or_fail(msg, "EMBER_REQUIRE_ASSETS");
    None
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
pub fn load(st: &SafeTensors, name: &str, device: Device) -> ember_core::Result<Tensor> {
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

/// The dtype with the fixture generator's name (`"f32"`, `"bool"`, ...).
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

/// One op outside the tables, replayed from a fixture case: `(inputs, args, device)`.
type Runner = fn(&[Tensor], &Value, Device) -> Result<Vec<Tensor>>;

fn one(r: Result<Tensor>) -> Result<Vec<Tensor>> {
    r.map(|t| vec![t])
}

/// The ops the fixtures cover that are not in one of Ember's op tables, with how to run
/// each from a fixture case.
const OTHER_OPS: &[(&str, Runner)] = &[
    ("square", |x, _, _| one(x[0].square())),
    ("clamp", |x, a, _| {
        one(x[0].clamp(opt_f(a, "min"), opt_f(a, "max")))
    }),
    ("maximum", |x, _, _| one(x[0].maximum(&x[1]))),
    ("minimum", |x, _, _| one(x[0].minimum(&x[1]))),
    ("where", |x, _, _| one(Tensor::where_(&x[0], &x[1], &x[2]))),
    ("masked_fill", |x, a, _| {
        one(x[0].masked_fill(&x[1], f(a, "value")))
    }),
    ("argmax", |x, a, _| {
        one(x[0].argmax(i(a, "dim"), b(a, "keepdim")))
    }),
    ("argmin", |x, a, _| {
        one(x[0].argmin(i(a, "dim"), b(a, "keepdim")))
    }),
    ("var", |x, a, _| {
        let correction = i(a, "correction") as usize;
        one(x[0].var(&list(a, "dims"), correction, b(a, "keepdim")))
    }),
    ("std", |x, a, _| {
        let correction = i(a, "correction") as usize;
        one(x[0].std(&list(a, "dims"), correction, b(a, "keepdim")))
    }),
    ("lerp", |x, _, _| one(x[0].lerp(&x[1], &x[2]))),
    ("outer", |x, _, _| one(x[0].outer(&x[1]))),
    ("logsumexp", |x, a, _| {
        one(x[0].logsumexp(&list(a, "dims"), b(a, "keepdim")))
    }),
    ("softmax", |x, a, _| one(x[0].softmax(i(a, "dim")))),
    ("flip", |x, a, _| one(x[0].flip(&list(a, "dims")))),
    ("cumsum", |x, a, _| one(x[0].cumsum(i(a, "dim")))),
    ("log_softmax", |x, a, _| one(x[0].log_softmax(i(a, "dim")))),
    ("matmul", |x, _, _| one(x[0].matmul(&x[1]))),
    ("reshape", |x, a, _| one(x[0].reshape(&list(a, "shape")))),
    ("permute", |x, a, _| one(x[0].permute(&list(a, "axes")))),
    ("transpose", |x, a, _| {
        one(x[0].transpose(i(a, "d0"), i(a, "d1")))
    }),
    ("squeeze", |x, a, _| one(x[0].squeeze(i(a, "dim")))),
    ("unsqueeze", |x, a, _| one(x[0].unsqueeze(i(a, "dim")))),
    ("flatten", |x, a, _| {
        one(x[0].flatten(i(a, "start"), i(a, "end")))
    }),
    ("expand", |x, a, _| one(x[0].expand(&list(a, "shape")))),
    ("broadcast_to", |x, a, _| {
        let s: Vec<usize> = list(a, "shape").iter().map(|&v| v as usize).collect();
        one(x[0].broadcast_to(&s))
    }),
    ("narrow", |x, a, _| {
        one(x[0].narrow(i(a, "dim"), i(a, "start") as usize, i(a, "len") as usize))
    }),
    ("slice", |x, a, _| {
        let start = a["start"].as_i64().map(|v| v as isize);
        let end = a["end"].as_i64().map(|v| v as isize);
        one(x[0].slice(i(a, "dim"), start, end, i(a, "step") as usize))
    }),
    ("cat", |x, a, _| {
        one(Tensor::cat(&x.iter().collect::<Vec<_>>(), i(a, "dim")))
    }),
    ("stack", |x, a, _| {
        one(Tensor::stack(&x.iter().collect::<Vec<_>>(), i(a, "dim")))
    }),
    ("split", |x, a, _| {
        x[0].split(i(a, "size") as usize, i(a, "dim"))
    }),
    ("chunk", |x, a, _| {
        x[0].chunk(i(a, "chunks") as usize, i(a, "dim"))
    }),
    ("index_select", |x, a, _| {
        one(x[0].index_select(i(a, "dim"), &x[1]))
    }),
    ("gather", |x, a, _| one(x[0].gather(i(a, "dim"), &x[1]))),
    ("scatter_add", |x, a, _| {
        one(x[0].scatter_add(i(a, "dim"), &x[1], &x[2]))
    }),
    ("embedding", |x, _, _| one(x[0].embedding(&x[1]))),
    ("tril", |x, a, _| one(x[0].tril(i(a, "diagonal") as i64))),
    ("triu", |x, a, _| one(x[0].triu(i(a, "diagonal") as i64))),
    ("to_dtype", |x, a, _| {
        one(x[0].to_dtype(dtype_named(a["to"].as_str().unwrap_or_default())))
    }),
    ("arange", |_, a, device| {
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
    }),
    ("eye", |_, a, device| {
        one(Tensor::eye(i(a, "n") as usize, DType::F32, device))
    }),
    ("layer_norm", |x, a, _| {
        one(x[0].layer_norm(Some(&x[1]), Some(&x[2]), f(a, "eps")))
    }),
    ("rms_norm", |x, a, _| {
        one(x[0].rms_norm(Some(&x[1]), f(a, "eps")))
    }),
    ("cross_entropy", |x, a, _| {
        let opts = CrossEntropyOpts {
            reduction: match a["reduction"].as_str() {
                Some("sum") => Reduction::Sum,
                Some("none") => Reduction::None,
                _ => Reduction::Mean,
            },
            label_smoothing: f(a, "smoothing"),
            ..Default::default()
        };
        one(x[0].cross_entropy(&x[1], opts))
    }),
    ("scaled_dot_product_attention", |x, a, _| {
        let opts = AttentionOpts {
            mask: x.get(3).cloned(),
            causal: b(a, "causal"),
            scale: opt_f(a, "scale"),
        };
        one(x[0].scaled_dot_product_attention(&x[1], &x[2], &opts))
    }),
];

/// Every op the PyTorch fixtures must cover: the names of Ember's op tables (unary,
/// arithmetic with tensors and scalars, comparisons, reductions) and of the other ops above.
/// A new op without a fixture case fails the fixture suites.
pub fn required_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = UnaryFn::ALL.iter().map(|f| f.name()).collect();
    for f in BinaryFn::ALL {
        ops.extend([f.name(), f.scalar_name()]);
    }
    for f in CompareFn::ALL {
        ops.extend([f.name(), f.scalar_name()]);
    }
    ops.extend(ReduceFn::ALL.iter().map(|f| f.name()));
    ops.extend(OTHER_OPS.iter().map(|(name, _)| *name));
    ops
}

/// The scalar operand of a tensor–scalar case (`scalar`, or `exponent` for `powf`).
fn scalar_arg(a: &Value) -> f64 {
    a.get("scalar")
        .or_else(|| a.get("exponent"))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no scalar operand in {a}"))
}

/// Runs one fixture case's op in Ember: through the op tables by name, else the runners of the
/// other ops ([`required_ops`] lists both).
pub fn run(op: &str, x: &[Tensor], a: &Value, device: Device) -> Result<Vec<Tensor>> {
    if let Some(u) = UnaryFn::from_name(op) {
        return one(x[0].unary(u));
    }
    if let Some(f) = BinaryFn::from_name(op) {
        return one(x[0].binary(f, &x[1]));
    }
    if let Some(f) = BinaryFn::from_scalar_name(op) {
        return one(x[0].binary_scalar(f, scalar_arg(a)));
    }
    if let Some(c) = CompareFn::from_name(op) {
        return one(x[0].compare(c, &x[1]));
    }
    if let Some(c) = CompareFn::from_scalar_name(op) {
        return one(x[0].compare_scalar(c, scalar_arg(a)));
    }
    if let Some(r) = ReduceFn::from_name(op) {
        return one(x[0].reduce(r, &list(a, "dims"), b(a, "keepdim")));
    }
    match OTHER_OPS.iter().find(|(name, _)| *name == op) {
        Some((_, runner)) => runner(x, a, device),
        None => panic!("the fixture op {op} has no Ember dispatch in ember-testing"),
    }
}
