//! The fused f32 CPU kernels (`ember_tensor::ops::fast`, used by the forward ops, the autograd
//! rules and AdamW) against the composed definition computed in f64, over sizes that exercise
//! vector tails and several parallel chunks, and inputs up to the saturating range.
//! (PyTorch agreement of the same paths is checked by the fixture suites, which run f32.)

use ember_tensor::ops::fast::{self, AdamStep};
use ember_tensor::{DType, Device, Result, Tensor, manual_seed};

/// Worst `|a - b| / (atol + rtol·|b|)`; <= 1 passes.
fn worst(a: &Tensor, b: &Tensor, rtol: f64, atol: f64) -> Result<f64> {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec::<f64>()?, b.to_vec::<f64>()?);
    Ok(a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / (atol + rtol * y.abs()))
        .fold(0.0, f64::max))
}

fn check(name: &str, ours: &Tensor, reference: &Tensor, rtol: f64, atol: f64) -> Result<()> {
    let w = worst(ours, reference, rtol, atol)?;
    assert!(
        w <= 1.0,
        "{name}: error {w:.3} x tolerance (rtol {rtol}, atol {atol})"
    );
    Ok(())
}

/// Random normals scaled by `spread`, in f32 on the CPU.
fn input(dims: &[usize], spread: f64) -> Result<Tensor> {
    Tensor::randn(dims, DType::F32, Device::Cpu)?.mul_scalar(spread)
}

fn f64(t: &Tensor) -> Result<Tensor> {
    t.to_dtype(DType::F64)
}

/// Shapes: a vector tail (7), one row, and more than one 16K-element chunk.
const SHAPES: &[&[usize]] = &[&[7], &[3, 37], &[5, 129, 64]];

#[test]
fn gelu_forward_and_backward_match_f64() -> Result<()> {
    manual_seed(1);
    for dims in SHAPES {
        for spread in [1.0, 4.0, 30.0] {
            let x = input(dims, spread)?;
            let g = input(dims, 1.0)?;
            check("gelu", &x.gelu()?, &f64(&x)?.gelu()?, 1e-5, 1e-6)?;
            check(
                "gelu_tanh",
                &x.gelu_tanh()?,
                &f64(&x)?.gelu_tanh()?,
                1e-5,
                1e-6,
            )?;
            // d/dx gelu = Φ(x) + x φ(x)
            let xd = f64(&x)?;
            let cdf = xd
                .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
                .erf()?
                .add_scalar(1.0)?;
            let pdf = xd.square()?.mul_scalar(-0.5)?.exp()?;
            let want = f64(&g)?.mul(
                &cdf.mul_scalar(0.5)?.add(
                    &xd.mul(&pdf)?
                        .mul_scalar(1.0 / (2.0 * std::f64::consts::PI).sqrt())?,
                )?,
            )?;
            let ours = fast::gelu_backward(&x, &g).expect("the CPU f32 kernel applies");
            check("gelu backward", &ours, &want, 1e-5, 1e-6)?;
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = xd
                .add(&xd.powf(3.0)?.mul_scalar(0.044715)?)?
                .mul_scalar(k)?
                .tanh()?;
            let du = xd
                .square()?
                .mul_scalar(3.0 * 0.044715)?
                .add_scalar(1.0)?
                .mul_scalar(k)?;
            let sech2 = t.square()?.neg()?.add_scalar(1.0)?;
            let d = t
                .add_scalar(1.0)?
                .mul_scalar(0.5)?
                .add(&xd.mul(&sech2)?.mul(&du)?.mul_scalar(0.5)?)?;
            let ours = fast::gelu_tanh_backward(&x, &g).expect("the CPU f32 kernel applies");
            check("gelu_tanh backward", &ours, &f64(&g)?.mul(&d)?, 1e-5, 1e-6)?;
        }
    }
    Ok(())
}

#[test]
fn layer_norm_forward_and_backward_match_f64() -> Result<()> {
    manual_seed(2);
    for dims in SHAPES {
        let d = *dims.last().unwrap();
        let x = input(dims, 3.0)?.add_scalar(5.0)?; // an offset mean, as real activations
        let w = input(&[d], 1.0)?;
        let b = input(&[d], 1.0)?;
        let g = input(dims, 1.0)?;
        let (xd, wd, gd) = (f64(&x)?, f64(&w)?, f64(&g)?);
        let want = xd.layer_norm(Some(&wd), Some(&f64(&b)?), 1e-5)?;
        check(
            "layer_norm",
            &x.layer_norm(Some(&w), Some(&b), 1e-5)?,
            &want,
            1e-4,
            1e-5,
        )?;
        check(
            "layer_norm (no affine)",
            &x.layer_norm(None, None, 1e-5)?,
            &xd.layer_norm(None, None, 1e-5)?,
            1e-4,
            1e-5,
        )?;

        // Reference gradients from the composed formula in f64.
        let centered = xd.sub(&xd.mean(&[-1], true)?)?;
        let rstd = centered
            .square()?
            .mean(&[-1], true)?
            .add_scalar(1e-5)?
            .rsqrt()?;
        let xhat = centered.mul(&rstd)?;
        let gw = gd.mul(&wd)?;
        let gx = gw
            .sub(&gw.mean(&[-1], true)?)?
            .sub(&xhat.mul(&gw.mul(&xhat)?.mean(&[-1], true)?)?)?
            .mul(&rstd)?;
        // Sums over every dim but the last (none for a single row).
        let over_rows = |t: Tensor| -> Result<Tensor> {
            let rows: Vec<isize> = (0..dims.len() as isize - 1).collect();
            if rows.is_empty() {
                Ok(t)
            } else {
                t.sum(&rows, false)
            }
        };
        let (dx, dw, db) = fast::layer_norm_backward(&x, Some(&w), true, &g, 1e-5)
            .expect("the CPU f32 kernel applies");
        check("layer_norm dx", &dx, &gx, 1e-3, 1e-4)?;
        check(
            "layer_norm dweight",
            &dw.unwrap(),
            &over_rows(gd.mul(&xhat)?)?,
            1e-3,
            1e-3,
        )?;
        check(
            "layer_norm dbias",
            &db.unwrap(),
            &over_rows(gd.clone())?,
            1e-4,
            1e-4,
        )?;
        let (_, dw, db) = fast::layer_norm_backward(&x, None, false, &g, 1e-5).unwrap();
        assert!(dw.is_none() && db.is_none());
    }
    Ok(())
}

#[test]
fn softmax_backward_matches_f64() -> Result<()> {
    manual_seed(3);
    for dims in SHAPES {
        let p = input(dims, 2.0)?.softmax(-1)?;
        let gp = input(dims, 1.0)?;
        let (pd, gd) = (f64(&p)?, f64(&gp)?);
        let want = pd
            .mul(&gd.sub(&gd.mul(&pd)?.sum(&[-1], true)?)?)?
            .mul_scalar(0.125)?;
        let ours = fast::softmax_backward(&p, &gp, 0.125).expect("the CPU f32 kernel applies");
        check("softmax backward", &ours, &want, 1e-4, 1e-6)?;
    }
    Ok(())
}

#[test]
fn adamw_matches_f64_and_updates_state_in_place_semantics() -> Result<()> {
    manual_seed(4);
    for decoupled in [true, false] {
        let dims = [33, 1000];
        let w = input(&dims, 1.0)?;
        let mut m = input(&dims, 0.1)?;
        let mut v = input(&dims, 0.1)?.square()?;
        let (mut wr, mut mr, mut vr) = (f64(&w)?, f64(&m)?, f64(&v)?);
        let mut w = w;
        for t in 1..=3 {
            let g = input(&dims, 1.0)?;
            let (b1, b2, lr, eps, wd) = (0.9, 0.95, 1e-2, 1e-8, 0.1);
            let step = AdamStep {
                lr,
                betas: (b1, b2),
                eps,
                weight_decay: wd,
                decoupled,
                bias_correction1: 1.0 - f64::powi(b1, t),
                bias_correction2: 1.0 - f64::powi(b2, t),
            };
            let keep_m = m.clone(); // a second handle: the kernel must copy, not write through it
            let before = keep_m.to_vec::<f32>()?;
            (w, m, v) = fast::adamw(&w, &g, m, v, &step)
                .map_err(|_| ())
                .expect("kernel applies");
            assert_eq!(
                keep_m.to_vec::<f32>()?,
                before,
                "a shared moment buffer was overwritten"
            );

            let mut gd = f64(&g)?;
            if decoupled {
                wr = wr.mul_scalar(1.0 - lr * wd)?;
            } else {
                gd = gd.add(&wr.mul_scalar(wd)?)?;
            }
            mr = mr.add(&gd.sub(&mr)?.mul_scalar(1.0 - b1)?)?;
            vr = vr
                .mul_scalar(b2)?
                .add(&gd.square()?.mul_scalar(1.0 - b2)?)?;
            let denom = vr
                .sqrt()?
                .div_scalar(step.bias_correction2.sqrt())?
                .add_scalar(eps)?;
            wr = wr.sub(&mr.div(&denom)?.mul_scalar(lr / step.bias_correction1)?)?;
        }
        check("adamw w", &w, &wr, 1e-5, 1e-6)?;
        check("adamw m", &m, &mr, 1e-5, 1e-7)?;
        check("adamw v", &v, &vr, 1e-5, 1e-7)?;
    }
    Ok(())
}

#[test]
fn kernels_decline_other_dtypes_and_shapes_and_handle_views() -> Result<()> {
    manual_seed(5);
    let x = Tensor::randn(&[4, 8], DType::F64, Device::Cpu)?;
    assert!(
        fast::gelu_backward(&x, &x).is_none(),
        "f64 takes the composed path"
    );
    let g = input(&[4, 8], 1.0)?;
    let other = input(&[8, 4], 1.0)?;
    assert!(
        fast::softmax_backward(&g, &other, 1.0).is_none(),
        "shape mismatch"
    );
    // A transposed (strided) view: declined, or computed right.
    let y = input(&[8, 4], 2.0)?.transpose(0, 1)?;
    if let Some(ours) = fast::gelu_backward(&y, &g) {
        let yd = f64(&y)?;
        let cdf = yd
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
            .erf()?
            .add_scalar(1.0)?;
        let pdf = yd.square()?.mul_scalar(-0.5)?.exp()?;
        let d = cdf
            .mul_scalar(0.5)?
            .add(&yd.mul(&pdf)?.mul_scalar(0.398_942_280_401_432_7)?)?;
        check(
            "gelu backward of a view",
            &ours,
            &f64(&g)?.mul(&d)?,
            1e-5,
            1e-6,
        )?;
    }
    Ok(())
}

#[test]
fn few_row_matmul_matches_f64_for_row_major_and_transposed_weights() -> Result<()> {
    manual_seed(6);
    for m in 1..=5 {
        for (k, n) in [(1, 1), (7, 33), (100, 3), (768, 300), (50, 2000)] {
            let a = input(&[m, k], 1.0)?;
            let b = input(&[k, n], 1.0)?;
            let bt = input(&[n, k], 1.0)?.transpose(0, 1)?; // (k, n) view of a row-major (n, k)
            for (name, w) in [("row-major", &b), ("transposed", &bt)] {
                let want = f64(&a)?.matmul(&f64(w)?)?;
                check(
                    &format!("matmul {m}x{k} @ {name} {k}x{n}"),
                    &a.matmul(w)?,
                    &want,
                    1e-4,
                    1e-4,
                )?;
            }
            // The same rows inside a batch of one: (1, m, k) @ (k, n).
            let want = f64(&a)?.matmul(&f64(&b)?)?.unsqueeze(0)?;
            check(
                "batched rows",
                &a.unsqueeze(0)?.matmul(&b)?,
                &want,
                1e-4,
                1e-4,
            )?;
        }
    }
    Ok(())
}

#[test]
fn attention_probs_match_f64_with_and_without_the_causal_mask() -> Result<()> {
    manual_seed(7);
    for (tq, tk) in [(1, 1), (5, 5), (3, 9), (130, 130)] {
        let q = input(&[2, 3, tq, 16], 2.0)?;
        let k = input(&[2, 3, tk, 16], 2.0)?;
        for causal in [false, true] {
            let scale = 0.25;
            let s = f64(&q)?
                .matmul(&f64(&k)?.transpose(-1, -2)?)?
                .mul_scalar(scale)?;
            let s = if causal {
                // Query i sees keys j <= i (top-left aligned, as PyTorch's is_causal).
                let blocked = Tensor::ones(&[tq, tk], DType::F64, Device::Cpu)?
                    .triu(1)?
                    .gt_scalar(0.0)?;
                s.masked_fill(&blocked, f64::NEG_INFINITY)?
            } else {
                s
            };
            let want = s.softmax(-1)?;
            let ours =
                fast::attention_probs(&q, &k, causal, scale).expect("the CPU f32 kernel applies");
            check(
                &format!("attention probs {tq}x{tk} causal={causal}"),
                &ours,
                &want,
                1e-5,
                1e-7,
            )?;
        }
    }
    Ok(())
}

#[test]
fn cross_entropy_forward_and_backward_match_f64() -> Result<()> {
    use ember_tensor::{CrossEntropyOpts, Reduction};
    manual_seed(8);
    let (n, c) = (6, 1000);
    let logits = input(&[n, c], 4.0)?;
    let targets = Tensor::from_vec(vec![3i64, -100, 999, 0, 512, 3], &[n], Device::Cpu)?;
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        for label_smoothing in [0.0, 0.1] {
            let opts = CrossEntropyOpts {
                reduction,
                label_smoothing,
                ..Default::default()
            };
            // f64 takes the composed path: the reference.
            let want = f64(&logits)?.cross_entropy(&targets, opts)?;
            let ours = logits.cross_entropy(&targets, opts)?;
            check(
                &format!("cross_entropy {reduction:?} {label_smoothing}"),
                &ours,
                &want,
                1e-5,
                1e-5,
            )?;

            let g = if reduction == Reduction::None {
                input(&[n], 1.0)?
            } else {
                input(&[], 1.0)?
            };
            let p = f64(&logits)?.softmax(-1)?;
            let onehot = Tensor::zeros(&[n, c], DType::F64, Device::Cpu)?;
            let keep: Vec<f64> = targets
                .to_vec::<i64>()?
                .iter()
                .map(|&t| (t != -100) as i64 as f64)
                .collect();
            let safe = targets.clamp(Some(0.0), None)?.unsqueeze(1)?;
            let onehot =
                onehot.scatter_add(1, &safe, &Tensor::ones(&[n, 1], DType::F64, Device::Cpu)?)?;
            let target = onehot
                .mul_scalar(1.0 - label_smoothing)?
                .add_scalar(label_smoothing / c as f64)?;
            let keep = Tensor::from_vec(keep, &[n, 1], Device::Cpu)?;
            let kept = keep.sum(&[], false)?.to_scalar::<f64>()?;
            let scale = match reduction {
                Reduction::None => f64(&g)?.unsqueeze(1)?,
                Reduction::Sum => f64(&g)?,
                Reduction::Mean => f64(&g)?.div_scalar(kept)?,
            };
            let want = p.sub(&target)?.mul(&keep)?.mul(&scale)?;
            let ours = fast::cross_entropy_backward(&logits, &targets, &opts, &g)
                .expect("the CPU f32 kernel applies");
            check(
                &format!("cross_entropy backward {reduction:?} {label_smoothing}"),
                &ours,
                &want,
                1e-4,
                1e-7,
            )?;
        }
    }
    Ok(())
}

#[test]
fn embedding_backward_adds_repeated_rows() -> Result<()> {
    manual_seed(9);
    let g = input(&[5, 7], 1.0)?;
    let idx = Tensor::from_vec(vec![2i64, 0, 2, 9, 2], &[5], Device::Cpu)?;
    let ours = fast::index_rows_backward(10, &idx, &g).expect("the CPU f32 kernel applies");
    let spread = idx.unsqueeze(1)?.broadcast_to(&[5, 7])?;
    let want =
        Tensor::zeros(&[10, 7], DType::F64, Device::Cpu)?.scatter_add(0, &spread, &f64(&g)?)?;
    check("embedding backward", &ours, &want, 1e-6, 1e-6)?;
    let bad = Tensor::from_vec(vec![2i64, 0, 2, 10, 2], &[5], Device::Cpu)?;
    assert!(
        fast::index_rows_backward(10, &bad, &g).is_none(),
        "an index out of range declines"
    );
    Ok(())
}

#[test]
fn add_into_writes_in_place_only_when_unshared() -> Result<()> {
    let x = Tensor::from_vec(vec![1f32, 2.0, 3.0], &[3], Device::Cpu)?;
    let acc = Tensor::from_vec(vec![10f32, 20.0, 30.0], &[3], Device::Cpu)?;
    let sum = fast::add_into(acc, &x)
        .map_err(|_| ())
        .expect("a unique f32 buffer is added into");
    assert_eq!(sum.to_vec::<f32>()?, [11.0, 22.0, 33.0]);
    let shared = Tensor::from_vec(vec![10f32, 20.0, 30.0], &[3], Device::Cpu)?;
    let other = shared.clone();
    let back = fast::add_into(shared, &x)
        .map(|_| ())
        .expect_err("a shared buffer is declined");
    assert_eq!(back.to_vec::<f32>()?, [10.0, 20.0, 30.0]);
    assert_eq!(other.to_vec::<f32>()?, [10.0, 20.0, 30.0]);
    Ok(())
}

#[test]
fn batched_few_row_products_match_f64_for_kv_cache_layouts() -> Result<()> {
    manual_seed(10);
    // Decode attention: q (1, H, 1, D) against a cache k (1, H, T, D) and v (1, H, T, D).
    let (h, t, d) = (3, 37, 16);
    let q = input(&[1, h, 2, d], 1.0)?.narrow(2, 1, 1)?; // a strided view of one query row
    let k = input(&[1, h, t, d], 1.0)?;
    let v = input(&[1, h, t, d], 1.0)?;
    let scores = q.matmul(&k.transpose(-1, -2)?)?; // kᵀ: columns of k's rows
    let want = f64(&q)?.matmul(&f64(&k)?.transpose(-1, -2)?)?;
    check("q @ kᵀ (batched, one row)", &scores, &want, 1e-4, 1e-5)?;
    let p = scores.softmax(-1)?;
    let out = p.matmul(&v)?; // row-major v
    check(
        "p @ v (batched, one row)",
        &out,
        &f64(&p)?.matmul(&f64(&v)?)?,
        1e-4,
        1e-6,
    )?;
    Ok(())
}

#[test]
fn reshapes_of_strided_views_keep_their_values() -> Result<()> {
    manual_seed(11);
    let x = input(&[2, 3, 12], 1.0)?;
    let copy = |t: &Tensor| -> Result<Vec<f32>> { t.to_vec::<f32>() };
    // A column slice split into heads (a view), then moved around and merged back.
    for part in x.split(4, -1)? {
        let heads = part.reshape_to(&[2, 3, 2, 2])?;
        let want = Tensor::from_vec(copy(&part)?, &[2, 3, 2, 2], Device::Cpu)?;
        assert_eq!(copy(&heads)?, copy(&want)?);
        let back = heads.transpose(1, 2)?.reshape_to(&[2, 2, 6])?; // needs a copy
        let want_back = want.transpose(1, 2)?.reshape_to(&[2, 2, 6])?;
        assert_eq!(copy(&back)?, copy(&want_back)?);
        // Merging dims across the slice gap cannot be a view; the values still must match.
        assert_eq!(
            copy(&part.reshape_to(&[24])?)?,
            copy(&want.reshape_to(&[24])?)?
        );
        assert_eq!(
            copy(&heads.add_scalar(1.0)?)?,
            copy(&want.add_scalar(1.0)?)?
        );
    }
    // A transposed matrix reshaped with size-1 dims inserted (a view) and flattened (a copy).
    let t = input(&[4, 6], 1.0)?.transpose(0, 1)?;
    let dense = Tensor::from_vec(copy(&t)?, &[6, 4], Device::Cpu)?;
    assert_eq!(copy(&t.reshape_to(&[6, 1, 4])?)?, copy(&dense)?);
    assert_eq!(copy(&t.reshape_to(&[3, 2, 4])?)?, copy(&dense)?);
    assert_eq!(copy(&t.reshape_to(&[24])?)?, copy(&dense)?);
    Ok(())
}
