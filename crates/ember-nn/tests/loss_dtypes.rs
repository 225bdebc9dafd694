//! The losses' dtype rules are PyTorch's (checked against torch 2.15 by hand, recorded here):
//! `mse_loss(f32, i64)` promotes to f32 and differentiates, `mse_loss(f64, f32)` gives f64,
//! `binary_cross_entropy_with_logits` refuses integer targets, `cross_entropy` takes I64 class
//! ids or float probabilities of the logits' shape and refuses float class ids.

use ember_core::{Backward, DType, Device, Tensor};
use ember_nn::loss;

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, Device::Cpu).unwrap()
}

#[test]
fn loss_dtypes_follow_pytorch() {
    let x = t(vec![0.5, -1.0, 2.0], &[3]).requires_grad(true).unwrap();
    let ints = Tensor::from_vec(vec![1i64, 2, 3], &[3], Device::Cpu).unwrap();
    // mse_loss(f32, i64): f32, with a gradient (torch: tensor(…, grad_fn=<MseLossBackward0>)).
    let l = loss::mse(&x, &ints).unwrap();
    assert_eq!(l.dtype(), DType::F32);
    let want = ((0.5f32 - 1.0).powi(2) + 9.0 + 1.0) / 3.0;
    assert!((l.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
    assert!(l.backward().unwrap().get(&x).is_some());
    // mse_loss(f64, f32): f64.
    let x64 = x.to_dtype(DType::F64).unwrap();
    assert_eq!(loss::mse(&x64, &x).unwrap().dtype(), DType::F64);
    // BCE with logits refuses integer targets (torch: "result type Float can't be cast to the
    // desired output type Long").
    assert!(loss::binary_cross_entropy_with_logits(&x, &ints).is_err());
    // cross_entropy: float class ids are refused (torch: "expected target dtype to be Long"),
    // probabilities of the logits' shape are soft targets.
    let logits = t(vec![1.0, 2.0, 3.0, 1.0, 0.0, -1.0], &[2, 3]);
    let float_ids = t(vec![1.0, 2.0], &[2]);
    assert!(loss::cross_entropy(&logits, &float_ids).is_err());
    let probs = t(vec![0.2, 0.3, 0.5, 1.0, 0.0, 0.0], &[2, 3]);
    let soft = loss::cross_entropy(&logits, &probs).unwrap();
    // torch.nn.functional.cross_entropy(logits, probs) = 0.7576 (rows 1.1076, 0.4076)
    let lsm = |row: [f32; 3]| {
        let m = row.iter().fold(f32::MIN, |a, &b| a.max(b));
        let z: f32 = row.iter().map(|v| (v - m).exp()).sum();
        row.map(|v| v - m - z.ln())
    };
    let (a, b) = (lsm([1.0, 2.0, 3.0]), lsm([1.0, 0.0, -1.0]));
    let want = (-(0.2 * a[0] + 0.3 * a[1] + 0.5 * a[2]) - b[0]) / 2.0;
    assert!((soft.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
    assert!((soft.to_scalar::<f32>().unwrap() - 0.757_606).abs() < 1e-5);
    let ids = Tensor::from_vec(vec![2i64, 0], &[2], Device::Cpu).unwrap();
    let one_hot = t(vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0], &[2, 3]);
    let hard = loss::cross_entropy(&logits, &ids).unwrap();
    let as_probs = loss::cross_entropy(&logits, &one_hot).unwrap();
    assert!((hard.to_scalar::<f32>().unwrap() - as_probs.to_scalar::<f32>().unwrap()).abs() < 1e-6);
}
