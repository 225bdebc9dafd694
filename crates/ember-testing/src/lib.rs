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

mod dispatch;
pub mod gguf;
pub mod hostile;
pub mod kernels;
pub mod rng;

pub use dispatch::{apply_view, dtype_named, first_week_ops, required_ops, run};

use std::path::PathBuf;

pub use ember_core::Device;
use ember_core::{DType, Result, Tensor, bf16, f16};
use safetensors::{Dtype, SafeTensors};

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
    rerun_with_simd(this_test, &["avx2", "baseline"]);
}

/// Runs the current test binary again once per `EMBER_SIMD` value in `levels` (skipping the
/// test `this_test`), e.g. `amx-emulated` to run the AMX products on the tile emulator on a
/// CPU without AMX; panics with their output when a run fails. Returns at once inside a
/// re-run.
pub fn rerun_with_simd(this_test: &str, levels: &[&str]) {
    if std::env::var_os("EMBER_SIMD").is_some() {
        return; // this is the re-run
    }
    let exe = std::env::current_exe().expect("the test binary");
    for level in levels {
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
