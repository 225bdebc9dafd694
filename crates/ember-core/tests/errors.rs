//! Every validation path returns the right `Err`, with a message a user understands, on every
//! built device. No input here may panic.

use ember_testing::on_every_device;

use ember_core::{DType, Device, Error, Tensor};

fn t(shape: &[usize], device: Device) -> Tensor {
    Tensor::ones(shape, DType::F32, device).unwrap()
}

fn msg(r: ember_core::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("expected an error").to_string()
}

fn validation_errors(d: Device) {
    // Creation.
    assert_eq!(
        msg(Tensor::from_vec(vec![1.0f32; 5], &[2, 3], d)),
        "from_vec: 5 values do not fill shape [2, 3] (6 elements)"
    );
    assert!(msg(Tensor::zeros(&[2, 0], DType::F32, d)).contains("zero-sized dimension"));
    assert!(msg(Tensor::arange(0.0, 1.0, 0.0, DType::F32, d)).contains("invalid range"));
    assert!(msg(Tensor::arange(1.0, 0.0, 1.0, DType::F32, d)).contains("is empty"));
    assert!(msg(Tensor::rand(&[2], DType::I64, d)).contains("needs a float dtype"));

    // Broadcasting and matmul.
    let e = t(&[2, 3], d).add(&t(&[4], d)).unwrap_err();
    assert!(matches!(e, Error::Broadcast { op: "add", .. }));
    assert_eq!(
        e.to_string(),
        "add: shapes [2, 3] and [4] cannot be broadcast together"
    );
    assert_eq!(
        msg(t(&[2, 3], d).matmul(&t(&[4, 5], d))),
        "matmul: shapes [2, 3] and [4, 5] are not compatible (3 != 4)"
    );
    assert!(msg(t(&[2, 3, 4], d).matmul(&t(&[5, 4, 2], d))).contains("cannot be broadcast"));
    assert!(msg(Tensor::scalar(1.0f32, d).unwrap().matmul(&t(&[2], d))).contains("at least 1 dim"));
    // Products do not promote, as PyTorch: f32 @ f16 and an f16 input to f32 weights fail.
    let half = Tensor::ones(&[3, 4], DType::F16, d).unwrap();
    assert_eq!(
        msg(t(&[2, 3], d).matmul(&half)),
        "matmul: expected both operands to have the same dtype, got f32 and f16"
    );
    assert!(msg(half.linear(&t(&[5, 4], d), None)).contains("same dtype, got f16 and f32"));
    let ints = Tensor::ones(&[2, 2], DType::I64, d).unwrap();
    assert!(msg(ints.matmul(&ints)).contains("needs float operands"));

    // Dims.
    let e = t(&[2, 3], d).sum(&[2], false).unwrap_err();
    assert_eq!(
        e,
        Error::DimOutOfRange {
            op: "sum",
            dim: 2,
            rank: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "sum: dimension 2 is out of range for a tensor of rank 2"
    );
    assert!(msg(t(&[2, 3], d).softmax(-3)).contains("out of range"));
    assert!(msg(t(&[2, 3], d).sum(&[0, -2], false)).contains("more than once"));
    assert!(msg(t(&[2, 3], d).permute(&[0])).contains("2"));
    assert!(msg(t(&[2, 3], d).permute(&[0, 0])).contains("repeat"));
    assert!(msg(t(&[2, 3], d).flatten(1, 0)).contains("comes after"));
    assert!(msg(t(&[2, 3], d).unsqueeze(3)).contains("out of range"));

    // Reshape, expand, slicing.
    assert!(
        msg(t(&[2, 3], d).reshape(&[4, -1])).contains("is invalid for a tensor of shape [2, 3]")
    );
    assert!(msg(t(&[2, 3], d).reshape(&[-1, -1])).contains("only one -1"));
    assert!(msg(t(&[2, 3], d).broadcast_to(&[3, 3])).contains("cannot be broadcast"));
    assert!(msg(t(&[2, 3], d).expand(&[2, -2])).contains("invalid size"));
    assert!(msg(t(&[2, 3], d).narrow(1, 2, 2)).contains("outside dim 1 of size 3"));
    assert!(msg(t(&[2, 3], d).slice(1, Some(2), Some(2), 1)).contains("is empty"));
    assert!(msg(t(&[2, 3], d).slice(1, None, None, 0)).contains("step"));
    assert!(msg(t(&[2, 3], d).split_sizes(&[1, 1], 1)).contains("do not split"));
    assert!(msg(t(&[2, 3], d).chunk(0, 1)).contains("at least one"));
    assert!(msg(t(&[3], d).tril(0)).contains("at least 2 dims"));

    // Concatenation.
    assert!(msg(Tensor::cat(&[], 0)).contains("at least one"));
    assert!(
        msg(Tensor::cat(&[&t(&[2, 3], d), &t(&[2, 4], d)], 0))
            .contains("must match except in dim 0")
    );
    assert!(msg(Tensor::stack(&[&t(&[2, 3], d), &t(&[3, 2], d)], 0)).contains("equal shapes"));

    // Indices are checked before burn sees them.
    let table = t(&[5, 4], d);
    let bad = Tensor::from_vec(vec![0i64, 5], &[2], d).unwrap();
    assert_eq!(
        msg(table.embedding(&bad)),
        "embedding: index 5 is out of range for a dimension of size 5"
    );
    let neg = Tensor::from_vec(vec![-1i64], &[1], d).unwrap();
    assert!(msg(table.index_select(0, &neg)).contains("index -1 is out of range"));
    let float_idx = t(&[2], d);
    assert!(msg(table.index_select(0, &float_idx)).contains("indices must be i64"));
    let idx = Tensor::from_vec(vec![0i64, 9], &[1, 2], d).unwrap();
    assert!(msg(table.gather(1, &idx)).contains("out of range"));
    let idx3 = Tensor::from_vec(vec![0i64; 3], &[3], d).unwrap();
    assert!(msg(table.gather(1, &idx3)).contains("does not fit"));
    let src = t(&[1, 3], d);
    assert!(msg(table.scatter_add(1, &idx, &src)).contains("must be equal"));

    // Dtypes.
    let mask = Tensor::ones(&[2, 3], DType::Bool, d).unwrap();
    assert!(msg(mask.add(&mask)).contains("bool tensors do not support arithmetic"));
    assert!(msg(t(&[2, 3], d).masked_fill(&t(&[2, 3], d), 0.0)).contains("mask must be bool"));
    assert!(
        msg(t(&[2, 3], d).masked_fill(&Tensor::ones(&[4], DType::Bool, d).unwrap(), 0.0))
            .contains("cannot be broadcast")
    );
    assert!(
        msg(Tensor::where_(&t(&[2], d), &t(&[2], d), &t(&[2], d))).contains("mask must be bool")
    );
    assert!(msg(ints.mean(&[], false)).contains("needs a float dtype"));
    // logical_not takes any dtype, as PyTorch (non-zero is true).
    let not = t(&[2, 3], d).logical_not().unwrap();
    assert_eq!(not.dtype(), DType::Bool);
    assert!(msg(mask.neg()).contains("not defined for bool"));
    assert!(msg(t(&[2], d).clamp(Some(1.0), Some(0.0))).contains("greater than max"));
    assert!(msg(t(&[2], d).var(&[], 2, false)).contains("degrees of freedom"));
    assert!(msg(t(&[2], d).to_scalar::<f32>()).contains("expected 1"));
    let probs = Tensor::full(&[2], 1.5, DType::F32, d).unwrap();
    assert!(msg(probs.bernoulli()).contains("outside [0, 1]"));
}

on_every_device!(validation, validation_errors);

#[test]
fn missing_or_mixed_devices_are_errors() {
    let cpu = t(&[2], Device::Cpu);
    #[cfg(not(feature = "wgpu"))]
    {
        let e = cpu.to_device(Device::wgpu(0)).unwrap_err();
        assert!(matches!(e, Error::DeviceUnavailable { .. }));
        assert!(
            e.to_string().contains("built without the `wgpu` feature"),
            "{e}"
        );
        assert_eq!(Device::available(), vec![Device::Cpu]);
    }
    #[cfg(feature = "wgpu")]
    if let Some(gpu) = ember_testing::wgpu_device() {
        let g = cpu.to_device(gpu).unwrap();
        let e = cpu.add(&g).unwrap_err();
        assert_eq!(
            e.to_string(),
            "add: tensors are on different devices (cpu and wgpu:0); move one with to_device"
        );
        assert!(cpu.matmul(&g).is_err());
        assert!(Tensor::cat(&[&cpu, &g], 0).is_err());
        assert!(Tensor::where_(&cpu.gt_scalar(0.0).unwrap(), &g, &cpu).is_err());
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_refuses_dtypes_it_cannot_compute() {
    let Some(gpu) = ember_testing::wgpu_device() else {
        return;
    };
    // f64 is refused on every wgpu adapter (burn's wgpu exp/softmax are wrong in f64).
    let e = Tensor::zeros(&[2], DType::F64, gpu).unwrap_err();
    let text = e.to_string();
    assert!(matches!(
        e,
        Error::UnsupportedDType {
            dtype: DType::F64,
            ..
        }
    ));
    assert!(text.contains("f64") && text.contains("wgpu:0"), "{text}");
    let cpu64 = Tensor::zeros(&[2], DType::F64, Device::Cpu).unwrap();
    assert!(matches!(
        cpu64.to_device(gpu),
        Err(Error::UnsupportedDType { .. })
    ));
    // bf16: refused exactly where the adapter does not report arithmetic support
    // (lavapipe), and then every path that would create one says so.
    if !gpu.supports(DType::BF16) {
        let e = Tensor::ones(&[2], DType::BF16, gpu).unwrap_err();
        assert!(e.to_string().contains("bf16"), "{e}");
        let f = Tensor::ones(&[2], DType::F32, gpu).unwrap();
        assert!(matches!(
            f.to_dtype(DType::BF16),
            Err(Error::UnsupportedDType { .. })
        ));
        eprintln!("bf16 refused on {}", gpu.adapter_name());
    }
}
