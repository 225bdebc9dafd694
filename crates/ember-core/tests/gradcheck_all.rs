//! Every differentiable op passes a finite-difference gradient check (F64, CPU). The list of
//! kinds comes from `OpKind::all()`: a new op without a case here fails `every_kind_is_covered`.

use std::collections::HashSet;

use ember_core::{
    AttentionOpts, CrossEntropyOpts, DType, Device, Generator, OpKind, Reduction, Result, Tensor,
    gradcheck,
};

type Case = (
    &'static str,
    Vec<Vec<usize>>,
    fn(&[Tensor]) -> Result<Tensor>,
);

fn idx(v: &[i64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, Device::Cpu).unwrap()
}

/// (name, input shapes, function). Inputs are random normals; `pos` cases shift them positive.
fn cases() -> Vec<Case> {
    vec![
        // A checkpointed function of the input and a leaf (recomputed in the backward).
        ("checkpoint", vec![vec![2, 3], vec![3, 3]], |x| {
            let w = x[1].clone();
            ember_core::checkpoint(move |a| a.matmul(&w)?.tanh(), &x[0])
        }),
        ("neg", vec![vec![3, 4]], |x| x[0].neg()),
        ("abs", vec![vec![3, 4]], |x| x[0].abs()),
        ("exp", vec![vec![3, 4]], |x| x[0].exp()),
        ("log", vec![vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.log()
        }),
        ("sqrt", vec![vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.sqrt()
        }),
        ("rsqrt", vec![vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.rsqrt()
        }),
        ("sin", vec![vec![3, 4]], |x| x[0].sin()),
        ("cos", vec![vec![3, 4]], |x| x[0].cos()),
        ("tanh", vec![vec![3, 4]], |x| x[0].tanh()),
        ("sigmoid", vec![vec![3, 4]], |x| x[0].sigmoid()),
        ("erf", vec![vec![3, 4]], |x| x[0].erf()),
        // Piecewise constant: a zero gradient (random inputs sit away from the steps).
        ("floor", vec![vec![3, 4]], |x| x[0].floor()),
        ("ceil", vec![vec![3, 4]], |x| x[0].ceil()),
        ("round", vec![vec![3, 4]], |x| x[0].round()),
        ("trunc", vec![vec![3, 4]], |x| x[0].trunc()),
        ("sign", vec![vec![3, 4]], |x| x[0].sign()),
        ("relu", vec![vec![3, 4]], |x| x[0].relu()),
        ("gelu", vec![vec![3, 4]], |x| x[0].gelu()),
        ("gelu_tanh", vec![vec![3, 4]], |x| x[0].gelu_tanh()),
        ("silu", vec![vec![3, 4]], |x| x[0].silu()),
        ("recip", vec![vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.recip()
        }),
        ("square", vec![vec![3, 4]], |x| x[0].square()),
        ("add broadcast", vec![vec![2, 3, 4], vec![4]], |x| {
            x[0].add(&x[1])
        }),
        ("sub transposed", vec![vec![4, 3], vec![3, 1]], |x| {
            x[0].transpose(0, 1)?.sub(&x[1])
        }),
        ("mul broadcast", vec![vec![2, 1, 4], vec![3, 1]], |x| {
            x[0].mul(&x[1])
        }),
        ("div", vec![vec![3, 4], vec![4]], |x| {
            x[0].div(&x[1].abs()?.add_scalar(0.5)?)
        }),
        ("pow", vec![vec![3, 4], vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.pow(&x[1])
        }),
        ("scalars", vec![vec![3, 4]], |x| {
            x[0].add_scalar(1.5)?
                .sub_scalar(0.25)?
                .mul_scalar(-2.0)?
                .div_scalar(3.0)
        }),
        ("powf", vec![vec![3, 4]], |x| {
            x[0].abs()?.add_scalar(0.5)?.powf(2.5)
        }),
        ("clamp", vec![vec![3, 4]], |x| {
            x[0].clamp(Some(-0.5), Some(0.5))
        }),
        ("maximum", vec![vec![3, 4], vec![4]], |x| {
            x[0].maximum(&x[1])
        }),
        ("minimum", vec![vec![3, 4], vec![3, 1]], |x| {
            x[0].minimum(&x[1])
        }),
        ("where", vec![vec![3, 4], vec![4]], |x| {
            Tensor::where_(&x[0].gt_scalar(0.0)?, &x[0], &x[1])
        }),
        ("masked_fill", vec![vec![3, 4]], |x| {
            x[0].masked_fill(&x[0].lt_scalar(0.0)?, 2.0)
        }),
        ("sum", vec![vec![2, 3, 4]], |x| x[0].sum(&[0, 2], false)),
        ("mean", vec![vec![2, 3, 4]], |x| x[0].mean(&[-1], true)),
        ("max", vec![vec![2, 3, 4]], |x| x[0].max(&[1], false)),
        ("min", vec![vec![2, 3, 4]], |x| x[0].min(&[0, 2], true)),
        ("var", vec![vec![3, 5]], |x| x[0].var(&[-1], 1, false)),
        ("logsumexp", vec![vec![2, 3, 4]], |x| {
            x[0].logsumexp(&[1, 2], false)
        }),
        ("softmax", vec![vec![3, 5]], |x| x[0].softmax(-1)),
        ("log_softmax", vec![vec![3, 5]], |x| x[0].log_softmax(0)),
        // Tables of distinct halves, so a rule that swapped or shared them would fail.
        ("rotary", vec![vec![2, 3, 4, 6]], |x| {
            let cos = Tensor::arange(0.0, 24.0, 1.0, DType::F64, Device::Cpu)?
                .mul_scalar(0.3)?
                .cos()?
                .reshape(&[4, 6])?;
            let sin = cos.mul_scalar(0.7)?.add_scalar(0.1)?;
            x[0].rotary(&cos, &sin)
        }),
        // A fixed Q4_K weight (5, 256); gradients for the input and the bias.
        ("linear_q", vec![vec![2, 3, 256], vec![5]], |x| {
            let w = Tensor::arange(0.0, 1280.0, 1.0, DType::F64, Device::Cpu)?
                .mul_scalar(0.37)?
                .sin()?
                .reshape(&[5, 256])?;
            let q = ember_core::quant::QTensor::quantize(&w, ember_core::quant::QFormat::Q4K)?;
            x[0].linear_q(&q, Some(&x[1]))
        }),
        ("flip", vec![vec![2, 3, 4]], |x| x[0].flip(&[0, -1])),
        ("cumsum", vec![vec![3, 4]], |x| x[0].cumsum(1)),
        ("matmul 2d", vec![vec![3, 4], vec![4, 2]], |x| {
            x[0].matmul(&x[1])
        }),
        (
            "matmul batch broadcast",
            vec![vec![2, 1, 3, 4], vec![3, 4, 2]],
            |x| x[0].matmul(&x[1]),
        ),
        ("matmul vec", vec![vec![4], vec![2, 4, 3]], |x| {
            x[0].matmul(&x[1])
        }),
        ("matmul mat-vec", vec![vec![3, 4], vec![4]], |x| {
            x[0].matmul(&x[1])
        }),
        ("reshape", vec![vec![3, 4]], |x| {
            x[0].reshape(&[2, -1])?
                .unsqueeze(0)?
                .squeeze(0)?
                .flatten(0, 1)
        }),
        ("expand", vec![vec![3, 1]], |x| x[0].expand(&[2, 3, 4])),
        ("permute", vec![vec![2, 3, 4]], |x| x[0].permute(&[2, 0, 1])),
        ("slice", vec![vec![3, 7]], |x| {
            x[0].slice(1, Some(1), Some(-1), 2)
        }),
        ("narrow", vec![vec![3, 7]], |x| x[0].narrow(0, 1, 2)),
        ("cat", vec![vec![3, 2], vec![3, 4]], |x| {
            Tensor::cat(&[&x[0], &x[1]], 1)
        }),
        ("stack and split", vec![vec![3, 2], vec![3, 2]], |x| {
            let s = Tensor::stack(&[&x[0], &x[1]], 0)?;
            let parts = s.split(1, 2)?;
            parts[1].mul(&parts[0])
        }),
        ("index_select", vec![vec![4, 3]], |x| {
            x[0].index_select(0, &idx(&[3, 0, 3], &[3]))
        }),
        ("embedding", vec![vec![4, 3]], |x| {
            x[0].embedding(&idx(&[1, 1, 2, 0], &[2, 2]))
        }),
        ("gather", vec![vec![3, 4]], |x| {
            x[0].gather(1, &idx(&[0, 3, 3, 1, 2, 0], &[3, 2]))
        }),
        ("scatter_add", vec![vec![3, 4], vec![3, 2]], |x| {
            x[0].scatter_add(1, &idx(&[0, 3, 3, 3, 2, 0], &[3, 2]), &x[1])
        }),
        ("tril", vec![vec![4, 4]], |x| x[0].tril(0)?.triu(-1)),
        ("layer_norm", vec![vec![2, 3, 5], vec![5], vec![5]], |x| {
            x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1e-5)
        }),
        ("layer_norm bare", vec![vec![3, 5]], |x| {
            x[0].layer_norm(None, None, 1e-5)
        }),
        ("rms_norm", vec![vec![2, 3, 5], vec![5]], |x| {
            x[0].rms_norm(Some(&x[1]), 1e-6)
        }),
        ("cross_entropy", vec![vec![4, 5]], |x| {
            let t = idx(&[1, -100, 4, 0], &[4]);
            x[0].cross_entropy(&t, CrossEntropyOpts::default())
        }),
        ("cross_entropy smoothed sum", vec![vec![4, 5]], |x| {
            let t = idx(&[1, 2, 4, 0], &[4]);
            let opts = CrossEntropyOpts {
                reduction: Reduction::Sum,
                label_smoothing: 0.1,
                ..Default::default()
            };
            x[0].cross_entropy(&t, opts)
        }),
        ("cross_entropy none", vec![vec![3, 4]], |x| {
            let opts = CrossEntropyOpts {
                reduction: Reduction::None,
                ..Default::default()
            };
            x[0].cross_entropy(&idx(&[3, 0, -100], &[3]), opts)
        }),
        ("silu_mul", vec![vec![3, 4], vec![3, 4]], |x| {
            x[0].silu_mul(&x[1])
        }),
        ("linear_cross_entropy", vec![vec![4, 3], vec![5, 3]], |x| {
            let t = idx(&[1, -100, 4, 0], &[4]);
            x[0].linear_cross_entropy(&x[1], &t, CrossEntropyOpts::default())
        }),
        (
            "linear_cross_entropy smoothed sum",
            vec![vec![3, 2], vec![4, 2]],
            |x| {
                let opts = CrossEntropyOpts {
                    reduction: Reduction::Sum,
                    label_smoothing: 0.2,
                    ..Default::default()
                };
                x[0].linear_cross_entropy(&x[1], &idx(&[3, 0, 2], &[3]), opts)
            },
        ),
        (
            "attention causal gqa",
            vec![vec![1, 4, 3, 2], vec![1, 2, 3, 2], vec![1, 2, 3, 2]],
            |x| {
                let opts = AttentionOpts {
                    causal: true,
                    ..Default::default()
                };
                x[0].scaled_dot_product_attention(&x[1], &x[2], &opts)
            },
        ),
        (
            "attention masked",
            vec![vec![2, 2, 3, 4], vec![2, 2, 5, 4], vec![2, 2, 5, 3]],
            |x| {
                let keep = Tensor::from_vec(
                    vec![true, true, true, false, false, true, true, true, true, true],
                    &[2, 1, 1, 5],
                    Device::Cpu,
                )?;
                let opts = AttentionOpts {
                    mask: Some(keep),
                    scale: Some(0.3),
                    ..Default::default()
                };
                x[0].scaled_dot_product_attention(&x[1], &x[2], &opts)
            },
        ),
        ("cumprod", vec![vec![3, 5]], |x| x[0].cumprod(1)),
        ("cumprod with zeros", vec![vec![3, 5]], |x| {
            let keep = [
                1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0,
            ];
            let mask = Tensor::from_vec(keep.to_vec(), &[3, 5], Device::Cpu)?;
            x[0].mul(&mask)?.cumprod(1)
        }),
        ("to_dtype", vec![vec![3, 4]], |x| {
            x[0].to_dtype(DType::F32)?.to_dtype(DType::F64)
        }),
    ]
}

fn inputs(shapes: &[Vec<usize>], seed: u64) -> Vec<Tensor> {
    let mut g = Generator::new(seed);
    shapes
        .iter()
        .map(|s| Tensor::randn_with(&mut g, s, DType::F64, Device::Cpu).unwrap())
        .collect()
}

fn kinds_in(root: &Tensor, out: &mut HashSet<OpKind>) {
    let mut stack = vec![root.clone()];
    while let Some(t) = stack.pop() {
        if let Some(kind) = t.grad_fn() {
            out.insert(kind);
            stack.extend(t.grad_fn_inputs());
        }
    }
}

#[test]
fn every_op_passes_gradcheck() {
    let mut failures = Vec::new();
    let mut worst = 0.0f64;
    for (k, (name, shapes, f)) in cases().into_iter().enumerate() {
        // f32 round trips lose precision: that case gets a wider step and tolerance.
        let (eps, atol) = if name == "to_dtype" {
            (1e-3, 1e-4)
        } else {
            (1e-6, 1e-6)
        };
        match gradcheck(f, &inputs(&shapes, k as u64), eps, atol, 1e-5) {
            Ok(r) => worst = worst.max(r.max_abs_error),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "gradcheck: {} cases, worst |analytic - numeric| {worst:e}",
        cases().len()
    );
    assert!(
        failures.is_empty(),
        "gradcheck failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_kind_is_covered() {
    let mut seen = HashSet::new();
    for (k, (_, shapes, f)) in cases().into_iter().enumerate() {
        let xs: Vec<Tensor> = inputs(&shapes, k as u64)
            .into_iter()
            .map(|t| t.requires_grad(true).unwrap())
            .collect();
        kinds_in(&f(&xs).unwrap(), &mut seen);
    }
    // ToDevice needs two devices (`behaviour.rs::gradients_cross_devices`, wgpu builds);
    // NotDifferentiable has no gradient by definition (`behaviour.rs` checks that a gradient
    // reaching one is an error).
    let exempt = [OpKind::ToDevice, OpKind::NotDifferentiable];
    let missing: Vec<&str> = OpKind::all()
        .iter()
        .filter(|k| !seen.contains(k) && !exempt.contains(k))
        .map(|k| k.name())
        .collect();
    assert!(
        missing.is_empty(),
        "op kinds without a gradcheck case: {missing:?}"
    );
}
