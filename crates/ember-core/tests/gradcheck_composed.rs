//! The ops composed of other ops (so their backward is their parts' rules) pass a
//! finite-difference gradient check too (F64, CPU): every differentiable op of the first-week
//! fixture table has a case here, or `every_first_week_op_is_covered` fails.

use ember_core::{
    ConvOpts, DType, Device, Generator, Ix, NEW_AXIS, PadMode, PoolOpts, Result, Tensor, gradcheck,
};
use ember_testing::first_week_ops;

type Case = (
    &'static str,
    Vec<Vec<usize>>,
    fn(&[Tensor]) -> Result<Tensor>,
);

/// Ops of the table without a derivative (integer or Bool results, in-place updates).
const NOT_DIFFERENTIABLE: &[&str] = &[
    "argsort",
    "one_hot",
    "any",
    "all",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "nonzero",
    "add_",
    "sub_",
    "mul_",
    "div_",
    "copy_",
    "fill_",
];

fn cases() -> Vec<Case> {
    vec![
        ("prod", vec![vec![3, 4]], |x| x[0].prod(&[1], false)),
        ("sort", vec![vec![3, 5]], |x| Ok(x[0].sort(1, true)?.0)),
        ("topk", vec![vec![4, 5]], |x| Ok(x[0].topk(2, 0, false)?.0)),
        ("einsum", vec![vec![2, 3, 4], vec![4, 3]], |x| {
            Tensor::einsum("bij,jk->bik", &[&x[0], &x[1]])
        }),
        ("pad", vec![vec![2, 3, 4]], |x| {
            x[0].pad(&[1, 2, 2, 0], PadMode::Reflect)?
                .pad(&[1, 1], PadMode::Constant(0.5))?
                .pad(&[0, 2], PadMode::Circular)?
                .pad(&[1, 0], PadMode::Replicate)
        }),
        ("repeat", vec![vec![2, 3]], |x| x[0].repeat(&[2, 1, 2])),
        ("tile", vec![vec![2, 3]], |x| x[0].tile(&[3])),
        ("roll", vec![vec![3, 4]], |x| x[0].roll(&[1, -1], &[0, 1])),
        ("diagonal", vec![vec![3, 4, 4]], |x| x[0].diagonal(-1, 1, 2)),
        ("norm", vec![vec![3, 4]], |x| {
            x[0].norm(2.0, &[1], false)?
                .add(&x[0].norm(3.0, &[0], false)?.sum(&[], false)?)
        }),
        (
            "baddbmm",
            vec![vec![3, 2], vec![2, 3, 4], vec![2, 4, 2]],
            |x| x[0].baddbmm(&x[1], &x[2], 0.5, 2.0),
        ),
        ("masked_select", vec![vec![3, 4]], |x| {
            let mask = x[0].detach().gt_scalar(0.0)?.logical_or(&Tensor::from_vec(
                vec![true, false, false, false],
                &[4],
                Device::Cpu,
            )?)?;
            x[0].masked_select(&mask)
        }),
        ("where_scalar", vec![vec![3, 4]], |x| {
            Tensor::where_(&x[0].detach().gt_scalar(0.0)?, &x[0], 0.25)
        }),
        ("conv1d", vec![vec![2, 4, 9], vec![6, 2, 3], vec![6]], |x| {
            let o = ConvOpts {
                stride: [2],
                padding: [1],
                dilation: [2],
                groups: 2,
            };
            x[0].conv1d(&x[1], Some(&x[2]), o)
        }),
        (
            "conv2d",
            vec![vec![2, 2, 5, 6], vec![3, 2, 3, 2], vec![3]],
            |x| {
                let o = ConvOpts {
                    stride: [1, 2],
                    padding: [1, 0],
                    ..ConvOpts::default()
                };
                x[0].conv2d(&x[1], Some(&x[2]), o)
            },
        ),
        ("max_pool1d", vec![vec![2, 3, 9]], |x| {
            x[0].max_pool1d(PoolOpts::new([3]).stride([2]).padding([1]))
        }),
        ("max_pool2d", vec![vec![1, 2, 6, 5]], |x| {
            x[0].max_pool2d(PoolOpts::new([2, 2]))
        }),
        ("avg_pool1d", vec![vec![2, 3, 9]], |x| {
            x[0].avg_pool1d(PoolOpts::new([3]).stride([2]).padding([1]), false)
        }),
        ("avg_pool2d", vec![vec![1, 2, 6, 5]], |x| {
            x[0].avg_pool2d(PoolOpts::new([3, 2]).stride([2, 1]).padding([1, 1]), true)
        }),
        ("adaptive_avg_pool1d", vec![vec![2, 3, 7]], |x| {
            x[0].adaptive_avg_pool1d([3])
        }),
        ("adaptive_avg_pool2d", vec![vec![1, 2, 5, 7]], |x| {
            x[0].adaptive_avg_pool2d([2, 3])
        }),
        ("adaptive_max_pool1d", vec![vec![2, 3, 7]], |x| {
            x[0].adaptive_max_pool1d([3])
        }),
        ("adaptive_max_pool2d", vec![vec![1, 2, 5, 7]], |x| {
            x[0].adaptive_max_pool2d([2, 3])
        }),
        ("index", vec![vec![3, 4, 5]], |x| {
            x[0].i((1.., NEW_AXIS, -1, Ix::step(None, None, 2)))
        }),
        ("cumprod", vec![vec![3, 4]], |x| x[0].cumprod(0)),
    ]
}

fn inputs(shapes: &[Vec<usize>], seed: u64) -> Vec<Tensor> {
    let mut g = Generator::new(seed + 1000);
    shapes
        .iter()
        .map(|s| Tensor::randn_with(&mut g, s, DType::F64, Device::Cpu).unwrap())
        .collect()
}

#[test]
fn composed_ops_pass_gradcheck() {
    let mut failures = Vec::new();
    for (k, (name, shapes, f)) in cases().into_iter().enumerate() {
        if let Err(e) = gradcheck(f, &inputs(&shapes, k as u64), 1e-6, 1e-6, 1e-5) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "gradcheck failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_first_week_op_is_covered() {
    let names: Vec<&str> = cases().iter().map(|c| c.0).collect();
    let missing: Vec<&str> = first_week_ops()
        .into_iter()
        .filter(|op| !names.contains(op) && !NOT_DIFFERENTIABLE.contains(op))
        .collect();
    assert!(
        missing.is_empty(),
        "first-week ops without a gradcheck case: {missing:?}"
    );
}
