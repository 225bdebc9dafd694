//! The f32 CPU products against the same op computed by the composed path in f64, forward and
//! backward (as `tests/kernels.rs` does for the other kernels): matrix products (the few-row
//! streaming product and the GEMM: the `gemm` crate natively, Ember's SIMD128 GEMM on
//! WebAssembly) and attention (the tiled kernel, and the in-place softmax of one GEMM's
//! scores, with or without a mask).

use ember_core::{AttentionOpts, DType, Device, Impl, Result, Tensor, trace_kernels};
use ember_testing::kernels::{input, kernel_vs_composed, used};
use ember_testing::rng;

#[test]
fn attention_matches_f64_in_both_cpu_kernels() -> Result<()> {
    rng::seed(7);
    // (B, H, Hkv, Tq, Tk, D): fewer than 64 queries take the in-place softmax; from 64, the
    // tiled kernel (tails of both tile sizes, GQA, Tq != Tk).
    let cases = [
        (2, 3, 3, 1, 1, 16),
        (2, 3, 3, 5, 5, 16),
        (1, 2, 2, 3, 9, 8),
        (2, 4, 2, 1, 130, 16),
        (2, 4, 2, 63, 130, 16),
        (2, 4, 2, 130, 130, 16),
        (1, 4, 2, 300, 300, 32),
        (2, 2, 1, 257, 270, 24),
    ];
    for (b, h, hkv, tq, tk, d) in cases {
        let q = input(&[b, h, tq, d], 2.0)?;
        let k = input(&[b, hkv, tk, d], 2.0)?;
        let v = input(&[b, hkv, tk, d], 1.0)?;
        let tiled = tq >= 64;
        for causal in [false, true] {
            let opts = AttentionOpts {
                causal,
                scale: Some(0.25),
                ..Default::default()
            };
            let name = format!("attention {b}x{h}/{hkv}x{tq}x{tk}x{d} causal={causal}");
            kernel_vs_composed(
                &name,
                &[q.clone(), k.clone(), v.clone()],
                |x| x[0].scaled_dot_product_attention(&x[1], &x[2], &opts),
                &["attention", "attention_backward"],
                ((1e-4, 1e-5), (1e-3, 1e-4)),
            )?;
            let (_, ran) = used("attention", || {
                q.scaled_dot_product_attention(&k, &v, &opts)
            })?;
            let want = if tiled {
                Impl::CpuF32Tiled
            } else {
                Impl::CpuF32
            };
            assert_eq!(ran, [want], "{name}");
        }
    }
    Ok(())
}

#[test]
fn masked_attention_matches_f64_with_the_mask_read_in_place() -> Result<()> {
    rng::seed(13);
    let (b, h, tq, tk, d) = (2, 3, 70, 70, 16); // past 64 queries: a mask keeps the GEMM path
    let q = input(&[b, h, tq, d], 2.0)?;
    let k = input(&[b, h, tk, d], 2.0)?;
    let v = input(&[b, h, tk, d], 1.0)?;
    // BERT's padding mask (B, 1, 1, Tk): f32::MIN past each sequence's length, as transformers.
    let lens = [tk, 41];
    let pad: Vec<f32> = (0..b * tk)
        .map(|i| if i % tk < lens[i / tk] { 0.0 } else { f32::MIN })
        .collect();
    let pad = Tensor::from_vec(pad, &[b, 1, 1, tk], Device::Cpu)?;
    let full = input(&[tq, tk], 1.0)?; // one additive mask for every batch and head
    let per_query = input(&[b, 1, tq, 1], 1.0)?; // broadcast along keys: not read in place
    for (mname, mask, want) in [
        ("padding", &pad, Impl::CpuF32),
        ("full", &full, Impl::CpuF32),
        ("per-query", &per_query, Impl::Composed),
    ] {
        for causal in [false, true] {
            let opts = |dtype: DType| -> Result<AttentionOpts> {
                Ok(AttentionOpts {
                    causal,
                    scale: Some(0.25),
                    mask: Some(mask.to_dtype(dtype)?),
                    ..Default::default()
                })
            };
            let name = format!("attention with a {mname} mask, causal={causal}");
            let (_, ran) = used("attention", || {
                q.scaled_dot_product_attention(&k, &v, &opts(DType::F32)?)
            })?;
            assert_eq!(ran, [want], "{name}");
            let entries: &[&str] = if want == Impl::Composed {
                &[]
            } else {
                &["attention"]
            };
            kernel_vs_composed(
                &name,
                &[q.clone(), k.clone(), v.clone()],
                |x| x[0].scaled_dot_product_attention(&x[1], &x[2], &opts(x[0].dtype())?),
                entries,
                ((1e-4, 1e-5), (1e-3, 1e-4)),
            )?;
        }
    }
    Ok(())
}

#[test]
fn tiled_attention_reads_head_views_of_a_fused_projection() -> Result<()> {
    rng::seed(12);
    // nanoGPT's layout: q, k, v are column slices of one (B, T, 3C) projection split into
    // heads, (B, H, T, D) views with strides (T·3C, D, 3C, 1).
    let (b, t, h, d) = (2, 150, 4, 16);
    let qkv = input(&[b, t, 3 * h * d], 1.0)?;
    let heads = |x: &[Tensor]| -> Result<Vec<Tensor>> {
        x[0].split(h * d, -1)?
            .iter()
            .map(|z| z.reshape_to(&[b, t, h, d])?.transpose(1, 2))
            .collect()
    };
    let opts = AttentionOpts {
        causal: true,
        ..Default::default()
    };
    kernel_vs_composed(
        "attention of head views",
        &[qkv],
        |x| {
            let [q, k, v] = <[Tensor; 3]>::try_from(heads(x)?).expect("three parts");
            let y = q.scaled_dot_product_attention(&k, &v, &opts)?; // (B, H, T, D)
            y.transpose(1, 2)?.reshape_to(&[b, t, h * d]) // merged heads
        },
        &["attention", "attention_backward"],
        ((1e-4, 1e-5), (1e-3, 1e-4)),
    )
}

#[test]
fn few_row_matmul_matches_f64_for_row_major_and_transposed_weights() -> Result<()> {
    rng::seed(6);
    for m in 1..=5 {
        for (k, n) in [(1, 1), (7, 33), (100, 3), (768, 300), (50, 2000)] {
            let a = input(&[m, k], 1.0)?;
            let b = input(&[k, n], 1.0)?;
            let bt = input(&[n, k], 1.0)?.transpose(0, 1)?; // (k, n) view of a row-major (n, k)
            for (name, w) in [("row-major", &b), ("transposed", &bt)] {
                kernel_vs_composed(
                    &format!("matmul {m}x{k} @ {name} {k}x{n}"),
                    &[a.clone(), w.clone()],
                    |x| x[0].matmul(&x[1]),
                    &["matmul"],
                    ((1e-4, 1e-4), (1e-4, 1e-4)),
                )?;
            }
            // The same rows inside a batch of one: (1, m, k) @ (k, n).
            kernel_vs_composed(
                "batched rows",
                &[a.unsqueeze(0)?, b.clone()],
                |x| x[0].matmul(&x[1]),
                &["matmul"],
                ((1e-4, 1e-4), (1e-4, 1e-4)),
            )?;
        }
    }
    Ok(())
}

#[test]
fn batched_few_row_products_match_f64_for_kv_cache_layouts() -> Result<()> {
    rng::seed(10);
    // Decode attention: q (1, H, 1, D) against a cache k (1, H, T, D) and v (1, H, T, D).
    let (h, t, d) = (3, 37, 16);
    let q = input(&[1, h, 2, d], 1.0)?.narrow(2, 1, 1)?; // a strided view of one query row
    let k = input(&[1, h, t, d], 1.0)?;
    let v = input(&[1, h, t, d], 1.0)?;
    kernel_vs_composed(
        "decode attention products",
        &[q, k, v],
        |x| {
            let scores = x[0].matmul(&x[1].transpose(-1, -2)?)?; // kᵀ: columns of k's rows
            scores.softmax(-1)?.matmul(&x[2]) // row-major v
        },
        &["matmul"],
        ((1e-4, 1e-5), (1e-4, 1e-5)),
    )
}

/// The implementation f32 GEMMs must report: Ember's SIMD128 GEMM in the WebAssembly build
/// (unless `EMBER_SIMD=baseline`, the `gemm` crate's kernels), else the `gemm` crate (CpuF32).
fn expected_gemm() -> Impl {
    let baseline = std::env::var("EMBER_SIMD").as_deref() == Ok("baseline");
    if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && !baseline {
        Impl::CpuF32Simd128
    } else {
        Impl::CpuF32
    }
}

#[test]
fn gemm_matches_f64_across_blocks_edges_and_layouts() -> Result<()> {
    rng::seed(12);
    // Edges of every tile and block: k past one and two depth blocks (256), m past a row
    // block (128), n past a column block (1024); transposed operands; a batch.
    for (m, k, n) in [
        (5, 1, 1),
        (7, 3, 9),
        (13, 300, 33),
        (130, 257, 20),
        (9, 40, 1030),
    ] {
        let a = input(&[m, k], 1.0)?;
        let at = input(&[k, m], 1.0)?.transpose(0, 1)?; // (m, k) view, column-major
        let b = input(&[k, n], 1.0)?;
        let bt = input(&[n, k], 1.0)?.transpose(0, 1)?; // (k, n) view, column-major (Linear)
        for (name, x, w) in [
            ("a @ b", &a, &b),
            ("aᵀ @ bᵀ", &at, &bt),
            ("a @ bᵀ", &a, &bt),
        ] {
            let what = format!("{name}: {m}x{k} @ {k}x{n}");
            let (_, uses) = trace_kernels(|| x.matmul(w));
            let ran: Vec<Impl> = uses.iter().map(|u| u.implementation).collect();
            assert_eq!(ran, [expected_gemm()], "{what}");
            let tol = (2e-4, 2e-5);
            kernel_vs_composed(
                &what,
                &[x.clone(), w.clone()],
                |x| x[0].matmul(&x[1]),
                &["matmul"],
                (tol, tol),
            )?;
        }
    }
    let (a, b) = (input(&[2, 6, 35], 1.0)?, input(&[2, 35, 17], 1.0)?);
    let tol = (2e-4, 2e-5);
    kernel_vs_composed(
        "batched",
        &[a, b],
        |x| x[0].matmul(&x[1]),
        &["matmul"],
        (tol, tol),
    )
}

/// This machine picks the AVX-512 kernels; the AVX2 and baseline builds of every kernel must
/// pass the same tests: the test binary runs itself again with `EMBER_SIMD` capped.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_avx2_and_baseline_products_pass_too() {
    ember_testing::rerun_with_narrower_simd("the_avx2_and_baseline_products_pass_too");
}
