//! The bf16 CPU paths against f64 references: products (the AVX512_BF16 GEMM, or the f32
//! GEMM on widened operands where the CPU lacks it; the few-row decode products), their
//! gradients, the fused ops that widen bf16 to the f32 kernels, and bf16 ⇄ f32 casts of
//! strided views. The binary runs itself again with `EMBER_SIMD=avx2`, where the fallbacks
//! must give the same answers, and with `EMBER_SIMD=amx-emulated`, where the products run the
//! AMX GEMM on the tile emulator.

use ember_core::{AttentionOpts, Backward, DType, Device, Impl, Result, Tensor};

use ember_testing::kernels::used;
use ember_testing::rng;
use ember_testing::worst_error as worst;

/// A bf16 tensor of normals (so the f64 reference sees exactly the bf16 values).
fn bf16(dims: &[usize]) -> Result<Tensor> {
    rng::randn(dims, DType::F32)?.to_dtype(DType::BF16)
}

/// Products of every layout the kernels take, forward and backward, against f64: the
/// forward within bf16's rounding of the result, the gradients likewise.
#[test]
fn bf16_products_and_their_gradients_match_f64() -> Result<()> {
    rng::seed(11);
    let cases: &[(&[usize], &[usize], bool)] = &[
        (&[13, 37], &[37, 45], false),    // edges of every panel, odd k
        (&[130, 300], &[300, 70], false), // several row tasks
        (&[97, 64], &[200, 64], true),    // b = wᵀ of a row-major w (a Linear layer)
        (&[2, 3, 20, 16], &[2, 3, 16, 24], false), // batched
        (&[3, 77], &[77, 50], false),     // few rows: decoding, b by rows
        (&[1, 64], &[200, 64], true),     // few rows, b by columns
    ];
    for &(ad, bd, transposed) in cases {
        let a = bf16(ad)?.requires_grad(true)?;
        let w = bf16(bd)?.requires_grad(true)?;
        let b = if transposed {
            w.transpose(0, 1)?
        } else {
            w.clone()
        };
        let (y, impls) = used("matmul", || a.matmul(&b))?;
        assert_eq!(y.dtype(), DType::BF16);
        if amx_emulated() && ad[ad.len() - 2] > 4 {
            assert_eq!(
                impls,
                [Impl::CpuBf16Amx],
                "{ad:?} @ {bd:?} on the tile emulator"
            );
        }
        assert!(
            !impls.is_empty() && impls.iter().all(|i| *i != Impl::Composed),
            "{ad:?} @ {bd:?}: bf16 products must run Ember's kernels, ran {impls:?}"
        );
        let (a64, b64) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
        let k = ad[ad.len() - 1] as f64;
        let reference = a64.matmul(&b64)?;
        let w0 = worst(&y, &reference, 8e-3, 1e-3 * k.sqrt())?;
        assert!(
            w0 <= 1.0,
            "{ad:?} @ {bd:?}: forward error {w0:.2} x tolerance"
        );

        let up = bf16(y.dims())?;
        let grads = y.backward_with(&up)?;
        let (ga, gw) = (grads.get(&a).unwrap(), grads.get(&w).unwrap());
        assert_eq!((ga.dtype(), gw.dtype()), (DType::BF16, DType::BF16));
        // The f64 gradients of the same product, from the bf16 upstream gradient.
        let (a64, w64) = (
            a.detach().to_dtype(DType::F64)?.requires_grad(true)?,
            w.detach().to_dtype(DType::F64)?.requires_grad(true)?,
        );
        let b64 = if transposed {
            w64.transpose(0, 1)?
        } else {
            w64.clone()
        };
        let g64 = a64.matmul(&b64)?.backward_with(&up.to_dtype(DType::F64)?)?;
        for (name, ours, reference, inner) in [
            ("a", ga, g64.get(&a64).unwrap(), y.dims()[y.rank() - 1]),
            ("w", gw, g64.get(&w64).unwrap(), a.numel() / k as usize),
        ] {
            let e = worst(ours, reference, 8e-3, 1e-3 * (inner as f64).sqrt())?;
            assert!(
                e <= 1.0,
                "{ad:?} @ {bd:?}: gradient of {name} {e:.2} x tolerance"
            );
        }
    }
    Ok(())
}

/// GELU, norms and attention on bf16 inputs run the f32 kernels on widened inputs and give
/// bf16 results within bf16's rounding of the f64 values.
#[test]
fn fused_ops_on_bf16_widen_to_the_f32_kernels() -> Result<()> {
    rng::seed(12);
    let x = bf16(&[4, 96, 64])?;
    let x64 = x.to_dtype(DType::F64)?;
    let w = rng::randn(&[64], DType::F32)?;
    let checks: Vec<(&str, Tensor, Tensor)> = vec![
        ("gelu", x.gelu()?, x64.gelu()?),
        ("gelu_tanh", x.gelu_tanh()?, x64.gelu_tanh()?),
        (
            "layer_norm",
            x.layer_norm(Some(&w), Some(&w), 1e-5)?,
            x64.layer_norm(
                Some(&w.to_dtype(DType::F64)?),
                Some(&w.to_dtype(DType::F64)?),
                1e-5,
            )?,
        ),
        ("log_softmax", x.log_softmax(-1)?, x64.log_softmax(-1)?),
        ("softmax", x.softmax(-1)?, x64.softmax(-1)?),
        (
            "rms_norm",
            x.rms_norm(Some(&w), 1e-6)?,
            x64.rms_norm(Some(&w.to_dtype(DType::F64)?), 1e-6)?,
        ),
    ];
    for (name, ours, reference) in checks {
        assert_eq!(ours.dtype(), DType::BF16, "{name} keeps x's dtype");
        let e = worst(&ours, &reference, 8e-3, 8e-3)?;
        assert!(e <= 1.0, "{name}: {e:.2} x tolerance");
    }
    // A length that is not a multiple of the kernels' blocks.
    let odd = bf16(&[7, 333])?;
    let odd64 = odd.to_dtype(DType::F64)?;
    for (name, ours, reference) in [
        ("gelu (odd length)", odd.gelu()?, odd64.gelu()?),
        (
            "gelu_tanh (odd length)",
            odd.gelu_tanh()?,
            odd64.gelu_tanh()?,
        ),
    ] {
        let e = worst(&ours, &reference, 8e-3, 8e-3)?;
        assert!(e <= 1.0, "{name}: {e:.2} x tolerance");
    }
    // Their gradients, from a bf16 upstream gradient, against f64.
    type Op = fn(&Tensor) -> Result<Tensor>;
    let ops: [(&str, Op); 6] = [
        ("gelu", |t| t.gelu()),
        ("gelu_tanh", |t| t.gelu_tanh()),
        ("log_softmax", |t| t.log_softmax(-1)),
        ("softmax", |t| t.softmax(-1)),
        ("layer_norm", |t| t.layer_norm(None, None, 1e-5)),
        ("rms_norm", |t| t.rms_norm(None, 1e-6)),
    ];
    let up = bf16(x.dims())?;
    for (name, f) in ops {
        let (xb, x64) = (x.requires_grad(true)?, x64.requires_grad(true)?);
        let (g, impls) = used(&format!("{name}_backward"), || f(&xb)?.backward_with(&up))?;
        let g = g.get(&xb).unwrap().clone();
        let want = f(&x64)?.backward_with(&up.to_dtype(DType::F64)?)?;
        assert_eq!(g.dtype(), DType::BF16, "{name}");
        assert!(
            !impls.contains(&Impl::Composed),
            "{name}_backward ran {impls:?}"
        );
        let e = worst(&g, want.get(&x64).unwrap(), 2e-2, 2e-2)?;
        assert!(e <= 1.0, "{name} gradient: {e:.2} x tolerance");
    }
    // Attention over head views of one fused projection, as the models run it.
    let qkv = bf16(&[2, 96, 3 * 64])?; // (B, T, 3C)
    let heads = |t: &Tensor, i: usize| -> Result<Tensor> {
        t.narrow(-1, i * 64, 64)?
            .reshape(&[2, 96, 4, 16])?
            .transpose(1, 2)
    };
    let opts = AttentionOpts {
        causal: true,
        ..Default::default()
    };
    let (y, impls) = used("attention", || {
        heads(&qkv, 0)?.scaled_dot_product_attention(&heads(&qkv, 1)?, &heads(&qkv, 2)?, &opts)
    })?;
    assert!(
        impls.contains(&Impl::CpuBf16ViaF32),
        "attention ran {impls:?}"
    );
    let q64 = qkv.to_dtype(DType::F64)?;
    let reference =
        heads(&q64, 0)?.scaled_dot_product_attention(&heads(&q64, 1)?, &heads(&q64, 2)?, &opts)?;
    assert_eq!(y.dtype(), DType::BF16);
    let e = worst(&y, &reference, 8e-3, 4e-3)?;
    assert!(e <= 1.0, "attention: {e:.2} x tolerance");
    Ok(())
}

/// Cross-entropy reads bf16 logits directly: under autocast the loss is f32 (no f32 copy of
/// the logits), outside it bf16, as PyTorch; values and gradients against f64.
#[test]
fn cross_entropy_reads_bf16_logits() -> Result<()> {
    rng::seed(14);
    let logits = bf16(&[37, 1000])?.mul_scalar(3.0)?.requires_grad(true)?;
    let ids: Vec<i64> = (0..37).map(|i| (i * 97 % 1000) as i64).collect();
    let targets = Tensor::from_vec(ids, &[37], Device::Cpu)?;
    let opts = ember_core::CrossEntropyOpts::default();
    let l64 = logits.detach().to_dtype(DType::F64)?.requires_grad(true)?;
    let want = l64.cross_entropy(&targets, opts)?;
    let want_grad = want.backward()?.get(&l64).unwrap().clone();
    let want = want.to_scalar::<f64>()?;
    let plain = logits.cross_entropy(&targets, opts)?;
    assert_eq!(
        plain.dtype(),
        DType::BF16,
        "outside autocast the loss keeps the logits' dtype"
    );
    let (loss, impls) = used("cross_entropy", || {
        let _amp = ember_core::autocast(DType::BF16)?;
        logits.cross_entropy(&targets, opts)
    })?;
    assert_eq!(
        loss.dtype(),
        DType::F32,
        "under autocast the loss runs in f32"
    );
    assert_eq!(
        impls,
        vec![Impl::CpuF32],
        "the kernel reads the bf16 logits"
    );
    let got = loss.to_scalar::<f32>()? as f64;
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    let (grads, impls) = used("cross_entropy_backward", || loss.backward())?;
    assert_eq!(impls, vec![Impl::CpuF32]);
    let g = grads.get(&logits).unwrap();
    assert_eq!(g.dtype(), DType::BF16);
    let e = worst(g, &want_grad, 8e-3, 1e-6)?;
    assert!(e <= 1.0, "gradient {e:.2} x tolerance");
    Ok(())
}

/// Gradients of a bf16 tensor used several times are summed by the bf16 kernel (in f32,
/// rounded once), in place when nothing else holds the running sum.
#[test]
fn bf16_gradients_accumulate_in_the_kernel() -> Result<()> {
    let x = bf16(&[33, 517])?.requires_grad(true)?;
    let (grads, impls) = used("accumulate", || {
        let y = x.mul_scalar(2.0)?.add(&x.mul_scalar(3.0)?)?.add(&x)?; // 6x
        y.backward_with(&Tensor::ones(y.dims(), DType::BF16, Device::Cpu)?)
    })?;
    assert!(
        !impls.is_empty() && impls.iter().all(|i| *i == Impl::CpuBf16),
        "{impls:?}"
    );
    let g = grads.get(&x).unwrap();
    assert_eq!(g.dtype(), DType::BF16);
    assert!(g.to_vec::<f32>()?.iter().all(|&v| v == 6.0));
    Ok(())
}

/// bf16 sums and means accumulate in f32 and round once (as PyTorch's): 4,096 ones sum to
/// 4,096, where a bf16 running sum would stop at 256.
#[test]
fn bf16_sums_accumulate_in_f32() -> Result<()> {
    let ones = Tensor::ones(&[2, 4096], DType::BF16, Device::Cpu)?;
    let (sum, impls) = used("reduce", || ones.sum(&[], false))?;
    assert_eq!(impls, vec![Impl::CpuBf16ViaF32]);
    assert_eq!(
        (sum.dtype(), sum.to_scalar::<f32>()?),
        (DType::BF16, 8192.0)
    );
    let rows = ones.mul_scalar(0.1)?.sum(&[-1], false)?;
    let want = ember_core::bf16::from_f32(4096.0 * ember_core::bf16::from_f32(0.1).to_f32());
    assert_eq!(rows.to_vec::<f32>()?, vec![want.to_f32(); 2]);
    assert_eq!(ones.mean(&[0, 1], false)?.to_scalar::<f32>()?, 1.0);
    Ok(())
}

/// Casts between bf16 and f32 of contiguous tensors, permuted views and row-strided views
/// keep every value (widening is exact; narrowing rounds to nearest even, as torch).
#[test]
fn casts_of_strided_views_keep_their_values() -> Result<()> {
    rng::seed(13);
    let base = rng::randn(&[3, 5, 7, 9], DType::F32)?;
    let views: Vec<(&str, Tensor)> = vec![
        ("contiguous", base.clone()),
        ("permuted", base.permute(&[0, 2, 1, 3])?),
        ("transposed", base.transpose(-1, -2)?),
        ("narrowed", base.narrow(-1, 2, 5)?),
        (
            "narrowed and permuted",
            base.narrow(-1, 2, 5)?.transpose(1, 2)?,
        ),
    ];
    for (name, v) in views {
        let expect: Vec<f32> = v
            .to_vec::<f32>()?
            .iter()
            .map(|&x| ember_core::bf16::from_f32(x).to_f32())
            .collect();
        let narrowed = v.to_dtype(DType::BF16)?;
        assert_eq!(narrowed.dims(), v.dims(), "{name}");
        assert_eq!(
            narrowed.to_dtype(DType::F32)?.to_vec::<f32>()?,
            expect,
            "{name}"
        );
        // Widening a strided bf16 view.
        let wide = narrowed.transpose(0, 1)?.to_dtype(DType::F32)?;
        let want = Tensor::from_vec(expect.clone(), v.dims(), Device::Cpu)?.transpose(0, 1)?;
        assert_eq!(
            wide.to_vec::<f32>()?,
            want.to_vec::<f32>()?,
            "{name}, widened"
        );
    }
    Ok(())
}

/// True in the re-run where the AMX products run on the tile emulator.
fn amx_emulated() -> bool {
    std::env::var("EMBER_SIMD").as_deref() == Ok("amx-emulated")
}

/// The AMX bf16 GEMM (its packing, tiling and edges) passes the same tests on the tile
/// emulator, on any CPU: the binary runs itself again with `EMBER_SIMD=amx-emulated`.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_amx_products_pass_on_the_tile_emulator() {
    ember_testing::rerun_with_simd(
        "the_amx_products_pass_on_the_tile_emulator",
        &["amx-emulated"],
    );
}

/// This machine may pick AVX512_BF16; the fallbacks (f32 GEMM on widened operands, AVX2
/// conversions) must pass the same tests: the binary runs itself again with `EMBER_SIMD`.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_fallbacks_without_avx512_pass_too() {
    ember_testing::rerun_with_narrower_simd("the_fallbacks_without_avx512_pass_too");
}
