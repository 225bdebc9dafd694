//! Tensors, autograd and a tiny model: `cargo run --release --example quickstart`.
use ember::nn::{Linear, loss::mse};
use ember::optim::{AdamW, AdamWConfig};
use ember::prelude::*;

#[derive(clap::Parser)]
struct Args {
    /// cpu, wgpu or wgpu:N (wgpu needs `--features embergrad/wgpu`)
    #[arg(long, default_value = "cpu")]
    device: Device,
}

fn main() {
    ember::cli::exit_on_error(run(<Args as clap::Parser>::parse().device));
}

fn run(device: Device) -> Result<()> {
    manual_seed(0);

    // Tensors: NumPy broadcasting, matmul, reductions; errors instead of panics.
    let x = Tensor::randn(&[4, 3], DType::F32, device)?; // (B, C)
    let bias = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3], device)?; // (C,)
    let probs = x.add(&bias)?.softmax(-1)?; // (B, C), rows sum to 1
    println!("softmax(x + bias) =\n{probs}");
    if let Err(e) = x.matmul(&x) {
        println!("error, not panic: {e}");
    }

    // Autograd: d/dw sum(tanh(x w)) for a tracked w.
    let w = Tensor::randn(&[3, 1], DType::F32, device)?.requires_grad(true)?; // (C, 1)
    let grads = x.matmul(&w)?.tanh()?.sum(&[], false)?.backward()?;
    if let Some(g) = grads.get(&w) {
        println!("d loss / d w =\n{g}");
    }

    // A tiny model: fit y = sin(3x) on [-1, 1] with a 2-layer MLP and AdamW.
    let store = VarStore::with_seed(device, DType::F32, 0);
    let vb = VarBuilder::new(&store);
    let l1 = Linear::new(vb.pp("fc1"), 1, 32, true)?; // 1 -> 32
    let l2 = Linear::new(vb.pp("fc2"), 32, 1, true)?; // 32 -> 1
    let xs = Tensor::arange(-1.0, 1.0, 0.02, DType::F32, device)?.unsqueeze(1)?; // (100, 1)
    let ys = xs.mul_scalar(3.0)?.sin()?; // (100, 1)
    let mut opt = AdamW::new(store.trainable_parameters(), AdamWConfig::with_lr(1e-2));
    for step in 0..=500 {
        let loss = mse(&l2.forward(&l1.forward(&xs)?.tanh()?)?, &ys)?;
        if step % 100 == 0 {
            println!("step {step:3}  mse {:.5}", loss.to_scalar::<f32>()?);
        }
        opt.step(&loss.backward()?)?;
    }
    Ok(())
}
