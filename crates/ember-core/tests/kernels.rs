//! Every f32 CPU kernel against the same op computed by the composed path in f64, forward and
//! backward: each op runs once on f32 inputs (the kernel, asserted with `trace_kernels`) and
//! once on the same values in f64 (no f64 kernel exists, so the composed definition runs), and
//! the outputs and every input gradient must agree. Sizes exercise vector tails, several
//! parallel chunks and strided views; inputs reach the saturating range.
//! (PyTorch agreement of the same paths is checked by the fixture suites, which run f32.)
//! Products and attention: `tests/kernels_products.rs`.

use ember_core::fused::{AdamStep, adamw_step};
use ember_core::{CrossEntropyOpts, DType, Device, Impl, Reduction, Result, Tensor, trace_kernels};

use ember_testing::kernels::{check, input, kernel_vs_composed};
use ember_testing::rng;

/// Shapes: a vector tail (7), one row, and more than one 16K-element chunk.
const SHAPES: &[&[usize]] = &[&[7], &[3, 37], &[5, 129, 64]];

#[test]
fn gelu_forward_and_backward_match_f64() -> Result<()> {
    rng::seed(1);
    for dims in SHAPES {
        for spread in [1.0, 4.0, 30.0] {
            let x = input(dims, spread)?;
            let tols = ((1e-5, 1e-6), (1e-5, 1e-6));
            let entries = ["gelu", "gelu_backward"];
            kernel_vs_composed(
                "gelu",
                std::slice::from_ref(&x),
                |x| x[0].gelu(),
                &entries,
                tols,
            )?;
            let entries = ["gelu_tanh", "gelu_tanh_backward"];
            kernel_vs_composed(
                "gelu_tanh",
                std::slice::from_ref(&x),
                |x| x[0].gelu_tanh(),
                &entries,
                tols,
            )?;
            kernel_vs_composed("silu", &[x], |x| x[0].silu(), &["silu"], tols)?;
        }
    }
    Ok(())
}

#[test]
fn rotary_matches_f64_on_head_views() -> Result<()> {
    rng::seed(4);
    for (b, t, h, d) in [(1, 1, 3, 8), (2, 5, 4, 16), (1, 70, 9, 64)] {
        // Heads of a projection: (B, T, H·D) split into (B, H, T, D) views.
        let x = input(&[b, t, h * d], 2.0)?;
        let cos = input(&[t, d], 1.0)?;
        let sin = input(&[t, d], 1.0)?;
        kernel_vs_composed(
            "rotary",
            &[x],
            |x| {
                let heads = x[0].reshape(&[b as isize, t as isize, h as isize, d as isize])?;
                let (c, s) = (cos.to_dtype(x[0].dtype())?, sin.to_dtype(x[0].dtype())?);
                heads.transpose(1, 2)?.rotary(&c, &s)
            },
            &["rotary"],
            ((1e-6, 1e-6), (1e-6, 1e-6)),
        )?;
    }
    Ok(())
}

#[test]
fn norms_forward_and_backward_match_f64() -> Result<()> {
    rng::seed(2);
    for dims in SHAPES {
        let d = *dims.last().unwrap();
        let x = input(dims, 3.0)?.add_scalar(5.0)?; // an offset mean, as real activations
        let (w, b) = (input(&[d], 1.0)?, input(&[d], 1.0)?);
        let tols = ((1e-4, 1e-5), (1e-3, 1e-3));
        let entries = ["layer_norm", "layer_norm_backward"];
        kernel_vs_composed(
            "layer_norm",
            &[x.clone(), w.clone(), b],
            |x| x[0].layer_norm(Some(&x[1]), Some(&x[2]), 1e-5),
            &entries,
            tols,
        )?;
        kernel_vs_composed(
            "layer_norm (no affine)",
            std::slice::from_ref(&x),
            |x| x[0].layer_norm(None, None, 1e-5),
            &entries,
            tols,
        )?;
        let entries = ["rms_norm", "rms_norm_backward"];
        kernel_vs_composed(
            "rms_norm",
            &[x.clone(), w],
            |x| x[0].rms_norm(Some(&x[1]), 1e-6),
            &entries,
            tols,
        )?;
        kernel_vs_composed(
            "rms_norm (no weight)",
            &[x],
            |x| x[0].rms_norm(None, 1e-6),
            &entries,
            tols,
        )?;
    }
    Ok(())
}

#[test]
fn softmax_and_log_softmax_match_f64() -> Result<()> {
    rng::seed(3);
    for dims in SHAPES {
        let x = input(dims, 2.0)?;
        let tols = ((1e-5, 1e-6), (1e-4, 1e-6));
        kernel_vs_composed(
            "softmax",
            std::slice::from_ref(&x),
            |x| x[0].softmax(-1),
            &["softmax_backward"],
            tols,
        )?;
        kernel_vs_composed(
            "log_softmax",
            &[x],
            |x| x[0].log_softmax(-1),
            &["log_softmax", "log_softmax_backward"],
            tols,
        )?;
    }
    Ok(())
}

#[test]
fn cross_entropy_forward_and_backward_match_f64() -> Result<()> {
    rng::seed(8);
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
            kernel_vs_composed(
                &format!("cross_entropy {reduction:?} {label_smoothing}"),
                std::slice::from_ref(&logits),
                |x| x[0].cross_entropy(&targets, opts),
                &["cross_entropy", "cross_entropy_backward"],
                ((1e-5, 1e-5), (1e-4, 1e-7)),
            )?;
        }
    }
    Ok(())
}

#[test]
fn embedding_backward_adds_repeated_rows() -> Result<()> {
    rng::seed(9);
    let table = input(&[10, 7], 1.0)?;
    let ids = Tensor::from_vec(vec![2i64, 0, 2, 9, 2], &[5], Device::Cpu)?;
    kernel_vs_composed(
        "embedding",
        &[table],
        |x| x[0].embedding(&ids),
        &["index_select_backward"],
        ((1e-6, 1e-6), (1e-6, 1e-6)),
    )
}

#[test]
fn gradient_accumulation_matches_f64() -> Result<()> {
    rng::seed(10);
    // A tensor used three times: its gradient is accumulated, in place on the CPU.
    let x = input(&[40, 500], 1.0)?;
    kernel_vs_composed(
        "accumulation",
        &[x],
        |x| x[0].exp()?.add(&x[0].sin()?)?.add(&x[0].square()?),
        &["accumulate"],
        ((1e-5, 1e-6), (1e-5, 1e-6)),
    )
}

#[test]
fn adamw_matches_f64_and_never_writes_through_a_shared_moment() -> Result<()> {
    rng::seed(4);
    for decoupled in [true, false] {
        let dims = [33, 1000];
        let (mut w, mut m, mut v) = (input(&dims, 1.0)?, input(&dims, 0.1)?, input(&dims, 0.1)?);
        // As in a real run, m² ≤ v (both average the same gradients). Independent draws make
        // |m|/√v reach thousands where v ≈ 0: w then moves by hundreds and, where it comes back
        // near zero, f32 loses digits no kernel could keep (seen once in CI at 4.4x tolerance).
        v = m.square()?.add(&v.square()?)?;
        let f64s = |t: &Tensor| t.to_dtype(DType::F64);
        let (mut wr, mut mr, mut vr) = (f64s(&w)?, f64s(&m)?, f64s(&v)?);
        for t in 1..=3 {
            let g = input(&dims, 1.0)?;
            let (b1, b2) = (0.9, 0.95);
            let step = AdamStep {
                lr: 1e-2,
                betas: (b1, b2),
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                bias_correction1: 1.0 - f64::powi(b1, t),
                bias_correction2: 1.0 - f64::powi(b2, t),
            };
            let keep_m = m.clone(); // a second handle: the kernel must copy, not write through it
            let before = keep_m.to_vec::<f32>()?;
            let (out, used) = trace_kernels(|| adamw_step(&w, &g, m, v, &step));
            (w, m, v) = out?;
            assert_eq!(used[0].implementation, Impl::CpuF32);
            assert_eq!(
                keep_m.to_vec::<f32>()?,
                before,
                "a shared moment was overwritten"
            );
            let gr = f64s(&g)?;
            let (out, used) = trace_kernels(|| adamw_step(&wr, &gr, mr, vr, &step));
            (wr, mr, vr) = out?;
            assert_eq!(used[0].implementation, Impl::Composed);
        }
        check("adamw w", &w, &wr, 1e-5, 1e-6)?;
        // m lerps towards g ~ N(0, 1): its rounding is an ulp of g, not of m.
        check("adamw m", &m, &mr, 1e-5, 1e-6)?;
        check("adamw v", &v, &vr, 1e-5, 1e-7)?;
    }
    Ok(())
}

#[test]
fn reshapes_of_strided_views_keep_their_values() -> Result<()> {
    rng::seed(11);
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

#[test]
fn kernels_decline_other_dtypes_and_take_strided_views_right() -> Result<()> {
    rng::seed(5);
    // A transposed (strided) view: the composed definition runs, with the same values.
    let y = input(&[8, 4], 2.0)?.transpose(0, 1)?;
    let (gy, used) = trace_kernels(|| y.gelu());
    assert_eq!(used[0].implementation, Impl::Composed);
    check(
        "gelu of a view",
        &gy?,
        &y.to_dtype(DType::F64)?.gelu()?,
        1e-5,
        1e-6,
    )?;
    let (_, used) = trace_kernels(|| y.to_dtype(DType::F16)?.gelu());
    assert_eq!(used[0].implementation, Impl::Composed, "no f16 kernel");
    Ok(())
}

/// This machine picks the AVX-512 kernels; the AVX2 and baseline builds of every kernel must
/// pass the same tests: the test binary runs itself again with `EMBER_SIMD` capped.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_avx2_and_baseline_kernels_pass_too() {
    ember_testing::rerun_with_narrower_simd("the_avx2_and_baseline_kernels_pass_too");
}
