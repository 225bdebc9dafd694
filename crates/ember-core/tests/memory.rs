//! The graph is freed by backward: 1,000 forward/backward iterations of a small network keep
//! resident memory flat.

use ember_core::Backward;
use ember_core::{CrossEntropyOpts, DType, Device, Generator, Tensor};

/// Resident set size in KiB, from /proc (Linux); `None` elsewhere.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn resident_memory_stays_flat_over_1000_steps() {
    let d = Device::Cpu;
    let mut g = Generator::new(3);
    let mut w1 = Tensor::randn_with(&mut g, &[64, 32], DType::F32, d).unwrap();
    let mut w2 = Tensor::randn_with(&mut g, &[10, 64], DType::F32, d).unwrap();
    let x = Tensor::randn_with(&mut g, &[16, 32], DType::F32, d).unwrap();
    let t = Tensor::from_vec((0..16).map(|i| i % 10).collect::<Vec<i64>>(), &[16], d).unwrap();
    let step = |w1: &mut Tensor, w2: &mut Tensor| {
        let (p1, p2) = (
            w1.requires_grad(true).unwrap(),
            w2.requires_grad(true).unwrap(),
        );
        let h = x
            .matmul(&p1.transpose(0, 1).unwrap())
            .unwrap()
            .gelu()
            .unwrap();
        let logits = h.matmul(&p2.transpose(0, 1).unwrap()).unwrap();
        let loss = logits
            .cross_entropy(&t, CrossEntropyOpts::default())
            .unwrap();
        let grads = loss.backward().unwrap();
        // Plain SGD, outside the graph.
        *w1 = p1
            .detach()
            .sub(&grads.get(&p1).unwrap().mul_scalar(0.01).unwrap())
            .unwrap();
        *w2 = p2
            .detach()
            .sub(&grads.get(&p2).unwrap().mul_scalar(0.01).unwrap())
            .unwrap();
    };
    for _ in 0..100 {
        step(&mut w1, &mut w2);
    }
    let Some(before) = rss_kib() else {
        eprintln!("SKIPPED: no /proc/self/status on this OS, resident memory not measured");
        return;
    };
    for _ in 100..1000 {
        step(&mut w1, &mut w2);
    }
    let after = rss_kib().unwrap();
    let growth = after as i64 - before as i64;
    eprintln!(
        "resident memory: {before} KiB after 100 steps, {after} KiB after 1000 ({growth:+} KiB)"
    );
    assert!(
        growth < 8 * 1024,
        "resident memory grew by {growth} KiB over 900 steps"
    );
}

/// `usage::saved_by_op` counts a buffer once however many views read it, leaves parameters
/// (tracked leaves and the frozen weights named) out, and counts what a fused op keeps
/// besides its inputs (the fused head's gradients).
#[test]
fn saved_bytes_count_buffers_once_and_leave_parameters_out() {
    use ember_core::usage;
    let d = Device::Cpu;
    let mut g = Generator::new(5);
    let frozen = Tensor::randn_with(&mut g, &[8, 6], DType::F32, d).unwrap(); // (out, in)
    let x = Tensor::randn_with(&mut g, &[4, 8], DType::F32, d)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    // exp keeps its output; two views of it feed two ops that keep their inputs.
    let e = x.exp().unwrap(); // (4, 8): 128 bytes
    let a = e.reshape(&[8, 4]).unwrap().sigmoid().unwrap(); // sigmoid keeps its output
    let b = e.transpose(0, 1).unwrap().tanh().unwrap(); // tanh keeps its output
    let y = e.matmul(&frozen).unwrap().sum(&[], false).unwrap(); // keeps e and frozen
    let w = Tensor::randn_with(&mut g, &[6, 8], DType::F32, d)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    // keeps e and wᵀ, a view of a parameter (the parameter itself only as a graph handle)
    let z = e.matmul(&w.transpose(0, 1).unwrap()).unwrap();
    let root = z
        .sum(&[], false)
        .unwrap()
        .add(&y)
        .unwrap()
        .add(&a.sum(&[], false).unwrap())
        .unwrap()
        .add(&b.sum(&[], false).unwrap())
        .unwrap();
    let floats = |n: u64| 4 * n;
    // e once (its views share the buffer), sigmoid's and tanh's outputs and the root scalar;
    // not x or wᵀ (a parameter, a view of one), not the frozen weight when named, not the
    // sums' inputs (handles).
    let want = floats(32) * 3 + floats(1);
    assert_eq!(
        usage::saved_for_backward(&root, std::slice::from_ref(&frozen)),
        want
    );
    assert_eq!(
        usage::saved_for_backward(&root, &[]),
        want + floats(48),
        "an unnamed frozen weight counts as an activation"
    );

    // The fused head keeps the gradients of its inputs (taken in the forward), nothing else.
    let w = Tensor::randn_with(&mut g, &[7, 8], DType::F32, d)
        .unwrap()
        .requires_grad(true)
        .unwrap();
    let t = Tensor::from_vec(vec![0i64, 6, 2, 3], &[4], d).unwrap();
    let loss = x
        .linear_cross_entropy(&w, &t, CrossEntropyOpts::default())
        .unwrap();
    let split = usage::saved_by_op(&loss, &[]);
    let want = floats(4 * 8 + 7 * 8) + floats(1);
    assert_eq!(split, vec![("linear_cross_entropy", want)]);
}
