//! Ember's first steps: tensors, broadcasting, matmul, softmax, printing.
//!
//! Run with `cargo run --release --example quickstart` (add `--features wgpu -- wgpu` for the
//! GPU backend).

use ember::prelude::*;

fn main() -> Result<()> {
    let device = match std::env::args().nth(1).as_deref() {
        Some("wgpu") => Device::wgpu(0),
        _ => Device::Cpu,
    };
    println!(
        "devices available: {:?}; using {device}",
        Device::available()
    );
    manual_seed(42);

    // A batch of 4 rows with 3 features, and a bias that broadcasts over rows.
    let x = Tensor::randn(&[4, 3], DType::F32, device)?; // (B, C) = (4, 3)
    let bias = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3], device)?; // (C,)
    let shifted = x.add(&bias)?; // (4, 3): bias added to every row
    println!("x + bias =\n{shifted}");

    // A linear map to 5 classes, then probabilities per row.
    let w = Tensor::randn(&[3, 5], DType::F32, device)?; // (C, K)
    let logits = shifted.matmul(&w)?; // (4, 5)
    let probs = logits.softmax(-1)?; // (4, 5), each row sums to 1
    println!("softmax(x W) =\n{probs}");
    println!("row sums = {}", probs.sum(&[-1], false)?);
    println!("predicted class per row = {}", logits.argmax(-1, false)?);

    // Errors, not panics: a shape mistake is a value you can print.
    if let Err(e) = x.matmul(&x) {
        println!("as expected: {e}");
    }
    Ok(())
}
