//! Test helpers shared by Ember's integration tests: the one macro that runs a test body on
//! every device that is built, and loading PyTorch fixtures.
#![allow(dead_code)]

use std::path::PathBuf;

use ember_tensor::{DType, Device, Tensor, bf16, f16};
use safetensors::{Dtype, SafeTensors};

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
