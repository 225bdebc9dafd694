//! What autograd promises: recording by data flow, no_grad, detach, fan-out accumulation,
//! broadcast reduction, clear errors, freed graphs, and fused ops equal to their compositions.

use ember_testing::on_every_device;

use ember_core::{
    AttentionOpts, Backward, CrossEntropyOpts, DType, Device, Error, Generator, Reduction, Result,
    Tensor, no_grad,
};

/// `k` with each of its heads repeated `h / Hkv` times along dim 1 (grouped-query attention),
/// written out for the composed reference.
fn repeat_heads(k: &Tensor, h: usize) -> Result<Tensor> {
    let (b, hkv, t, d) = (k.dims()[0], k.dims()[1], k.dims()[2], k.dims()[3]);
    k.unsqueeze(2)?
        .broadcast_to(&[b, hkv, h / hkv, t, d])?
        .reshape_to(&[b, h, t, d])
}

fn param(v: Vec<f32>, shape: &[usize], d: Device) -> Tensor {
    Tensor::from_vec(v, shape, d)
        .unwrap()
        .requires_grad(true)
        .unwrap()
}

fn semantics(d: Device) {
    // Recording follows data flow: untracked inputs record nothing.
    let plain = Tensor::ones(&[2], DType::F32, d).unwrap();
    assert!(!plain.exp().unwrap().is_tracked());
    let w = param(vec![1.0, 2.0], &[2], d);
    assert!(w.exp().unwrap().is_tracked());

    // no_grad nests and restores.
    {
        let _a = no_grad();
        {
            let _b = no_grad();
            assert!(!w.exp().unwrap().is_tracked());
        }
        assert!(!w.exp().unwrap().is_tracked());
    }
    assert!(w.exp().unwrap().is_tracked());

    // Fan-out accumulates: y = w*w + 3w  =>  dy/dw = 2w + 3.
    let y = w.mul(&w).unwrap().add(&w.mul_scalar(3.0).unwrap()).unwrap();
    let g = y.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(g.get(&w).unwrap().to_vec::<f32>().unwrap(), vec![5.0, 7.0]);

    // Broadcast dims are reduced back to the input's shape.
    let b = param(vec![0.5], &[1], d);
    let m = param(vec![1.0; 6], &[2, 3], d);
    let g = m
        .add(&b)
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(g.get(&b).unwrap().dims(), &[1]);
    assert_eq!(g.get(&b).unwrap().to_vec::<f32>().unwrap(), vec![6.0]);

    // detach cuts the graph.
    let loss = w.detach().mul(&w).unwrap().sum(&[], false).unwrap();
    let g = loss.backward().unwrap();
    assert_eq!(g.get(&w).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 2.0]);

    // Gradients never reach integer inputs; an integer index carries none.
    let table = param(vec![1.0; 6], &[3, 2], d);
    let ids = Tensor::from_vec(vec![2i64, 2, 0], &[3], d).unwrap();
    let g = table
        .embedding(&ids)
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    assert!(g.get(&ids).is_none());
    assert_eq!(
        g.get(&table).unwrap().to_vec::<f32>().unwrap(),
        vec![1.0, 1.0, 0.0, 0.0, 2.0, 2.0]
    );
    assert!(
        Tensor::ones(&[2], DType::I64, d)
            .unwrap()
            .requires_grad(true)
            .is_err()
    );

    // Clear errors.
    let e = w.exp().unwrap().backward().unwrap_err();
    assert!(e.to_string().contains("backward_with"), "{e}");
    let e = plain.sum(&[], false).unwrap().backward().unwrap_err();
    assert!(e.to_string().contains("does not depend"), "{e}");
    let wrong = Tensor::ones(&[3], DType::F32, d).unwrap();
    assert!(w.exp().unwrap().backward_with(&wrong).is_err());
    let loss = w.square().unwrap().sum(&[], false).unwrap();
    loss.backward().unwrap();
    let e = loss.backward().unwrap_err();
    assert!(e.to_string().contains("already consumed"), "{e}");
    // ... unless the graph is retained.
    let loss = w.square().unwrap().sum(&[], false).unwrap();
    let one = Tensor::scalar(1.0f32, d).unwrap();
    let a = loss.backward_retain(&one).unwrap();
    let b = loss.backward_retain(&one).unwrap();
    assert_eq!(
        a.get(&w).unwrap().to_vec::<f32>().unwrap(),
        b.get(&w).unwrap().to_vec::<f32>().unwrap()
    );

    // A gradient that would flow through argmax or a comparison is an error, not silence.
    let through_argmax = w
        .argmax(0, false)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .mul(&w)
        .unwrap()
        .sum(&[], false)
        .unwrap();
    let e = through_argmax.backward().unwrap_err();
    assert_eq!(e, Error::NotDifferentiable { op: "argmax" });
    let through_cmp = w
        .gt_scalar(1.5)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .sum(&[], false)
        .unwrap();
    assert!(matches!(
        through_cmp.backward(),
        Err(Error::NotDifferentiable { op: "gt" })
    ));
    let q = param(vec![0.5; 4], &[1, 1, 2, 2], d);
    let tracked_mask = param(vec![0.0; 4], &[1, 1, 2, 2], d);
    let opts = AttentionOpts {
        mask: Some(tracked_mask),
        ..Default::default()
    };
    assert!(matches!(
        q.scaled_dot_product_attention(&q, &q, &opts),
        Err(Error::NotDifferentiable { .. })
    ));
    // ... while a mask that only selects is fine (no gradient needed through it).
    let masked = w.masked_fill(&w.gt_scalar(1.5).unwrap(), 0.0).unwrap();
    let g = masked.sum(&[], false).unwrap().backward().unwrap();
    assert_eq!(g.get(&w).unwrap().to_vec::<f32>().unwrap(), vec![1.0, 0.0]);
}

on_every_device!(autograd_semantics, semantics);

fn close(a: &Tensor, b: &Tensor, tol: f64) {
    let (a, b) = (a.to_vec::<f64>().unwrap(), b.to_vec::<f64>().unwrap());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst <= tol, "max |diff| {worst:e} > {tol:e}");
}

/// Forward values and every input gradient of `fused` equal those of `composed`.
fn same_as_composed(
    shapes: &[&[usize]],
    d: Device,
    fused: impl Fn(&[Tensor]) -> ember_core::Result<Tensor>,
    composed: impl Fn(&[Tensor]) -> ember_core::Result<Tensor>,
) {
    let mut g = Generator::new(11);
    let base: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::randn_with(&mut g, s, DType::F32, d).unwrap())
        .collect();
    let run = |f: &dyn Fn(&[Tensor]) -> ember_core::Result<Tensor>| {
        let xs: Vec<Tensor> = base
            .iter()
            .map(|t| t.requires_grad(true).unwrap())
            .collect();
        let y = f(&xs).unwrap();
        let up = Tensor::randn_with(&mut Generator::new(5), y.dims(), DType::F32, d).unwrap();
        let grads = y.backward_with(&up).unwrap();
        let gs: Vec<Tensor> = xs.iter().map(|x| grads.get(x).unwrap().clone()).collect();
        (y, gs)
    };
    let (yf, gf) = run(&fused);
    let (yc, gc) = run(&composed);
    close(&yf, &yc, 1e-5);
    for (a, b) in gf.iter().zip(&gc) {
        close(a, b, 1e-4);
    }
}

fn fused_ops(d: Device) {
    same_as_composed(
        &[&[3, 7]],
        d,
        |x| x[0].log_softmax(-1),
        |x| x[0].softmax(-1)?.log(),
    );
    same_as_composed(
        &[&[2, 3, 8], &[8], &[8]],
        d,
        |x| x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1e-5),
        |x| {
            let c = x[0].sub(&x[0].mean(&[-1], true)?)?;
            let v = c.square()?.mean(&[-1], true)?;
            c.div(&v.add_scalar(1e-5)?.sqrt()?)?.mul(&x[1])?.add(&x[2])
        },
    );
    same_as_composed(
        &[&[2, 3, 8], &[8]],
        d,
        |x| x[0].rms_norm(Some(&x[1]), 1e-6),
        |x| {
            let r = x[0].square()?.mean(&[-1], true)?.add_scalar(1e-6)?.sqrt()?;
            x[0].div(&r)?.mul(&x[1])
        },
    );
    let targets = Tensor::from_vec(vec![3i64, -100, 0, 6, 2], &[5], d).unwrap();
    for (reduction, smoothing) in [
        (Reduction::Mean, 0.0),
        (Reduction::Sum, 0.2),
        (Reduction::None, 0.0),
    ] {
        let t = targets.clone();
        let t2 = targets.clone();
        let opts = CrossEntropyOpts {
            reduction,
            label_smoothing: smoothing,
            ..Default::default()
        };
        same_as_composed(
            &[&[5, 7]],
            d,
            move |x| x[0].cross_entropy(&t, opts),
            move |x| {
                let keep = t2.ne_scalar(-100.0)?;
                let safe = t2.masked_fill(&keep.logical_not()?, 0.0)?;
                let lsm = x[0].softmax(-1)?.log()?;
                let nll = lsm.gather(1, &safe.unsqueeze(1)?)?.squeeze(1)?.neg()?;
                let smooth = lsm.mean(&[-1], false)?.neg()?;
                let row = nll
                    .mul_scalar(1.0 - smoothing)?
                    .add(&smooth.mul_scalar(smoothing)?)?
                    .mul(&keep.to_dtype(DType::F32)?)?;
                match reduction {
                    Reduction::None => Ok(row),
                    Reduction::Sum => row.sum(&[], false),
                    Reduction::Mean => row.sum(&[], false)?.div_scalar(4.0),
                }
            },
        );
    }
    let causal = AttentionOpts {
        causal: true,
        ..Default::default()
    };
    same_as_composed(
        &[&[2, 4, 5, 8], &[2, 2, 5, 8], &[2, 2, 5, 8]],
        d,
        move |x| x[0].scaled_dot_product_attention(&x[1], &x[2], &causal),
        |x| {
            let (k, v) = (repeat_heads(&x[1], 4)?, repeat_heads(&x[2], 4)?);
            let s = x[0]
                .matmul(&k.transpose(-1, -2)?)?
                .div_scalar(8f64.sqrt())?;
            let above = Tensor::ones(&[5, 5], DType::F32, x[0].device())?
                .triu(1)?
                .gt_scalar(0.0)?;
            s.masked_fill(&above, f64::NEG_INFINITY)?
                .softmax(-1)?
                .matmul(&v)
        },
    );
}

on_every_device!(fused_equal_composed, fused_ops);

/// Gradients flow back across a device move (the `ToDevice` rule), to the CPU leaf.
#[cfg(feature = "wgpu")]
#[test]
fn gradients_cross_devices() {
    let Some(gpu) = ember_testing::wgpu_device() else {
        return;
    };
    let w = param(vec![1.0, -2.0, 3.0], &[3], Device::Cpu);
    let on_gpu = w.to_device(gpu).unwrap();
    let loss = on_gpu.square().unwrap().sum(&[], false).unwrap(); // Σ w², computed on the GPU
    let g = loss.backward().unwrap();
    let gw = g.get(&w).expect("gradient of the CPU leaf");
    assert_eq!(gw.device(), Device::Cpu);
    assert_eq!(gw.to_vec::<f32>().unwrap(), vec![2.0, -4.0, 6.0]);
}
