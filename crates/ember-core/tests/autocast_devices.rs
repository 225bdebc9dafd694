//! Autocast on every device: f16 where the device computes f16 (the CPU; wgpu adapters that
//! report it, lavapipe among them), bf16 where it computes bf16 and a clear error where it
//! does not (lavapipe), with f32 gradients at the f32 parameters either way.

use ember_core::{Backward, DType, Device, Error, Result, Tensor, autocast, manual_seed};
use ember_testing::on_every_device;

fn mixed(device: Device) {
    run(device).unwrap()
}

fn run(device: Device) -> Result<()> {
    manual_seed(21);
    let x = Tensor::randn(&[8, 16], DType::F32, device)?;
    let w = Tensor::randn(&[16, 4], DType::F32, device)?.requires_grad(true)?;
    let exact = x.matmul(&w)?.to_vec::<f32>()?;
    for dtype in [DType::F16, DType::BF16] {
        let supported = Tensor::zeros(&[1], dtype, device).is_ok();
        let y = {
            let _scope = autocast(dtype)?;
            x.matmul(&w)
        };
        if !supported {
            match y {
                Err(Error::UnsupportedDType { .. }) => {
                    eprintln!("{device}: {dtype} autocast refused (the device lacks {dtype})");
                    continue;
                }
                other => panic!("{device}: {dtype} autocast must be refused, got {other:?}"),
            }
        }
        let y = y?;
        assert_eq!(y.dtype(), dtype, "{device}");
        let tol = if dtype == DType::F16 { 2e-2 } else { 8e-2 };
        for (a, b) in y.to_vec::<f32>()?.iter().zip(&exact) {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "{device} {dtype}: {a} vs {b}"
            );
        }
        let loss = y.to_dtype(DType::F32)?.square()?.sum(&[], false)?;
        let grads = loss.backward()?;
        assert_eq!(
            grads.get(&w).unwrap().dtype(),
            DType::F32,
            "{device} {dtype}"
        );
        eprintln!("{device}: {dtype} autocast ran");
    }
    Ok(())
}

on_every_device!(autocast_per_device, mixed);
