//! A `Tensor` can cross `std::panic::catch_unwind` (as a PyTorch user's code catches errors):
//! it is `UnwindSafe` and `RefUnwindSafe`, and so are the types that hold tensors.

use std::panic::{RefUnwindSafe, UnwindSafe};

use ember_core::{DType, Device, Tensor};

fn unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}

#[test]
fn tensors_cross_catch_unwind() {
    unwind_safe::<Tensor>();
    unwind_safe::<ember_core::Gradients>();
    let x = Tensor::ones(&[2], DType::F32, Device::Cpu).unwrap();
    let sum = std::panic::catch_unwind(|| x.sum(&[], false).unwrap().to_scalar::<f32>().unwrap());
    assert_eq!(sum.unwrap(), 2.0);
}
