//! The timed workloads. Each returns a [`Measured`]: a median throughput over `repeats`
//! timed runs after warmup, plus the phases that explain it.

use std::time::Instant;

use ember::models::{CausalLm, Gpt, Gpt2, Gpt2Config, GptConfig};
use ember::optim::{AdamW, AdamWConfig, decay_groups};
use ember::prelude::*;

/// One workload's figures.
pub struct Measured {
    /// Median of `runs`.
    pub value: f64,
    /// Every timed run's throughput.
    pub runs: Vec<f64>,
    /// Unit of `value`.
    pub unit: &'static str,
    /// Median milliseconds per phase (forward, backward, optimizer, ...).
    pub phases: Vec<(&'static str, f64)>,
}

/// The median of a non-empty list.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Waits for the device to finish the work behind `t` (reads one element back).
fn sync(t: &Tensor) -> Result<()> {
    if t.device() != Device::Cpu {
        t.reshape(&[-1])?.narrow(0, 0, 1)?.to_vec::<f32>()?;
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Square matrix product in `dtype` (f32 or bf16), GFLOP/s.
pub fn gemm(n: usize, dtype: DType, repeats: usize, device: Device) -> Result<Measured> {
    manual_seed(0);
    let a = Tensor::randn(&[n, n], DType::F32, device)?.to_dtype(dtype)?;
    let b = Tensor::randn(&[n, n], DType::F32, device)?.to_dtype(dtype)?;
    // Small sizes run several products per timing so a run lasts long enough to time.
    let inner = (1usize << 30).div_ceil(2 * n * n * n).clamp(1, 64);
    for _ in 0..2 {
        sync(&a.matmul(&b)?)?;
    }
    let mut runs = Vec::new();
    let mut times = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..inner {
            sync(&a.matmul(&b)?)?;
        }
        let secs = t.elapsed().as_secs_f64() / inner as f64;
        runs.push(2.0 * (n * n * n) as f64 / secs / 1e9);
        times.push(secs * 1e3);
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "GFLOP/s",
        phases: vec![("matmul", median(&times))],
    })
}

pub(crate) fn random_ids(
    b: usize,
    t: usize,
    vocab: usize,
    g: &mut Generator,
    device: Device,
) -> Result<Tensor> {
    let ids: Vec<i64> = (0..b * t)
        .map(|_| (g.next_u64() % vocab as u64) as i64)
        .collect();
    Tensor::from_vec(ids, &[b, t], device)
}

/// Times `steps` training steps of `loss_fn` with `opt`, after 2 warmup steps; the forward
/// pass and the loss under autocast to `amp` when given (mixed precision). Memory is sampled
/// into `ember::usage` after each forward and backward, as the trainer does (`param_bytes`:
/// every parameter, trained or frozen; `frozen`: the untrained weights, which the graph holds
/// but are not activations).
pub(crate) fn train_steps(
    repeats: usize,
    tokens: usize,
    mut batch: impl FnMut() -> Result<(Tensor, Tensor)>,
    loss_fn: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    opt: &mut AdamW,
    amp: Option<DType>,
    (param_bytes, frozen): (u64, &[Tensor]),
) -> Result<Measured> {
    use ember::optim::Optimizer;
    use ember::usage::{self, Usage};
    let sample = |opt: &AdamW, device: Device, activations: u64, gradients: u64| {
        let u = Usage {
            parameters: param_bytes,
            gradients,
            optimizer: opt.state_bytes(),
            activations,
        };
        usage::record(device, u);
    };
    let (mut runs, mut fwd, mut bwd, mut step) = (vec![], vec![], vec![], vec![]);
    for i in 0..repeats + 2 {
        let (x, y) = batch()?;
        let t0 = Instant::now();
        let loss = {
            let _scope = amp.map(autocast).transpose()?;
            loss_fn(&x, &y)?
        };
        sync(&loss)?;
        let f = ms(t0);
        sample(
            opt,
            loss.device(),
            usage::saved_for_backward(&loss, frozen),
            0,
        );
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let b = ms(t1);
        sample(opt, loss.device(), 0, grads.nbytes());
        let t2 = Instant::now();
        opt.step(&grads)?;
        let o = ms(t2);
        if i >= 2 {
            runs.push(tokens as f64 / ((f + b + o) / 1e3));
            fwd.push(f);
            bwd.push(b);
            step.push(o);
        }
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "tokens/s",
        phases: vec![
            ("forward", median(&fwd)),
            ("backward", median(&bwd)),
            ("optimizer", median(&step)),
        ],
    })
}

/// The nanoGPT char-level training step: 4 layers, 4 heads, width 128, vocab 65, AdamW (lr
/// 1e-3, betas 0.9/0.95, weight decay 0.1 on matrices), `batch` sequences of `block` tokens.
/// `amp`: the autocast dtype of a mixed-precision step.
pub fn nanogpt(
    block: usize,
    batch: usize,
    amp: Option<DType>,
    repeats: usize,
    device: Device,
) -> Result<Measured> {
    let vocab = 65;
    let store = VarStore::with_seed(device, DType::F32, 0);
    let cfg = GptConfig {
        vocab_size: vocab,
        block_size: block,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        bias: false,
    };
    let model = Gpt::new(VarBuilder::new(&store), cfg)?;
    let opt_cfg = AdamWConfig {
        lr: 1e-3,
        betas: (0.9, 0.95),
        ..Default::default()
    };
    let mut opt = AdamW::with_groups(decay_groups(store.trainable_parameters(), 0.1), opt_cfg);
    let mut g = Generator::new(1);
    let batches = || {
        let x = random_ids(batch, block, vocab, &mut g, device)?; // (B, T)
        let y = random_ids(batch, block, vocab, &mut g, device)?; // (B, T)
        Ok((x, y))
    };
    train_steps(
        repeats,
        batch * block,
        batches,
        |x, y| model.loss(x, y),
        &mut opt,
        amp,
        (store.nbytes() as u64, &[]),
    )
}

/// GPT-2 small (124M) as transformers' `GPT2Config()` (dropout 0.1 in training mode), random
/// initialization, weights in `dtype`, in eval mode (the inference workloads'; training ones
/// switch to train).
pub fn gpt2(device: Device, dtype: DType) -> Result<Gpt2> {
    gpt2_with_dropout(device, dtype, 0.1)
}

/// [`gpt2`] with every dropout probability `p`.
pub fn gpt2_with_dropout(device: Device, dtype: DType, p: f64) -> Result<Gpt2> {
    let cfg = Gpt2Config {
        vocab_size: 50257,
        n_positions: 1024,
        n_embd: 768,
        n_layer: 12,
        n_head: 12,
        n_inner: None,
        layer_norm_epsilon: 1e-5,
        activation_function: "gelu_new".into(),
        embd_pdrop: p,
        attn_pdrop: p,
        resid_pdrop: p,
    };
    let model = Gpt2::new(cfg, device, dtype, 0)?;
    model.eval();
    Ok(model)
}

/// GPT-2 124M forward over a 128-token prompt (batch 1), weights in `dtype`: tokens/s.
pub fn gpt2_prefill(dtype: DType, repeats: usize, device: Device) -> Result<Measured> {
    let model = gpt2(device, dtype)?;
    let _no_grad = no_grad();
    let ids = random_ids(1, 128, 50257, &mut Generator::new(3), device)?;
    let (mut runs, mut times) = (vec![], vec![]);
    for i in 0..repeats + 1 {
        let t = Instant::now();
        sync(&model.forward(&ids)?)?;
        if i >= 1 {
            times.push(ms(t));
            runs.push(128.0 / (ms(t) / 1e3));
        }
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "tokens/s",
        phases: vec![("prefill 128", median(&times))],
    })
}

/// GPT-2 124M decoding with the KV cache after a 128-token prompt (batch 1): tokens/s over
/// 32 new tokens, each chosen greedily from logits read back to the host; weights in `dtype`.
pub fn gpt2_decode(dtype: DType, repeats: usize, device: Device) -> Result<Measured> {
    let model = gpt2(device, dtype)?;
    let _no_grad = no_grad();
    let prompt = random_ids(1, 128, 50257, &mut Generator::new(4), device)?;
    let (mut runs, mut times) = (vec![], vec![]);
    for i in 0..repeats + 1 {
        let mut cache = model.new_cache();
        model.forward_cached(&prompt, &mut cache)?;
        let mut next = 0i64;
        let t = Instant::now();
        for _ in 0..32 {
            let x = Tensor::from_vec(vec![next], &[1, 1], device)?;
            let logits = model.forward_cached(&x, &mut cache)?.reshape(&[-1])?; // (V,)
            next = logits.argmax(0, false)?.to_scalar::<i64>()?;
        }
        if i >= 1 {
            times.push(ms(t) / 32.0);
            runs.push(32.0 / (ms(t) / 1e3));
        }
    }
    Ok(Measured {
        value: median(&runs),
        runs,
        unit: "tokens/s",
        phases: vec![("per token", median(&times))],
    })
}

/// GPT-2 124M training step, `batch` sequences of `seq` tokens, AdamW, autocast to `amp` when
/// given: tokens/s.
pub fn gpt2_train(
    seq: usize,
    batch: usize,
    amp: Option<DType>,
    repeats: usize,
    device: Device,
) -> Result<Measured> {
    let model = gpt2(device, DType::F32)?; // dropout 0.1 as PyTorch's GPT2Config()
    model.train();
    let mut opt = AdamW::new(
        model.store.trainable_parameters(),
        AdamWConfig::with_lr(1e-4),
    );
    let mut g = Generator::new(5);
    let batches = || {
        let ids = random_ids(batch, seq, 50257, &mut g, device)?;
        Ok((ids.clone(), ids))
    };
    train_steps(
        repeats,
        batch * seq,
        batches,
        |x, y| model.loss(x, y),
        &mut opt,
        amp,
        (model.store.nbytes() as u64, &[]),
    )
}
