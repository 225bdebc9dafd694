//! Quantized tensors: quantize → dequantize within each format's rounding, and the quantized
//! product (`linear_q`) against the f32 product of the dequantized weight, within the bound
//! that quantizing the activations to 8-bit blocks implies. The binary re-runs itself with
//! narrower SIMD so that the portable kernel passes the same tests as the VNNI one.

use ember_core::quant::{QFormat, QTensor};
use ember_core::{Backward, DType, Device, Generator, Impl, Tensor, trace_kernels};

fn randn(g: &mut Generator, shape: &[usize]) -> Tensor {
    Tensor::randn_with(g, shape, DType::F32, Device::Cpu).unwrap()
}

/// Worst error of a round trip, in units of each block's code step (`range / levels`).
#[test]
fn quantize_dequantize_within_one_code_step() {
    let mut g = Generator::new(1);
    for format in QFormat::ALL.into_iter().filter(|f| f.can_encode()) {
        let (rows, cols) = (5, 2 * format.block_len());
        let w = randn(&mut g, &[rows, cols]).mul_scalar(0.3).unwrap();
        let q = QTensor::quantize(&w, format).unwrap();
        assert_eq!(q.nbytes(), format.bytes_for(rows * cols).unwrap());
        let back = q
            .dequantize(DType::F32, Device::Cpu)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let x = w.to_vec::<f32>().unwrap();
        let levels = ((1u32 << format.code_bits()) - 1) as f32;
        // K formats quantize their scales too (6 or 8 bits): allow that on top of the codes.
        let slack = match format {
            QFormat::Q4K | QFormat::Q5K => 2.0,
            QFormat::Q6K => 1.5,
            // llama.cpp maps the largest magnitude to code 0: the other side's extreme is
            // clamped by up to one scale step (amax / 8 or / 16, just under range / levels).
            QFormat::Q4_0 | QFormat::Q5_0 => 1.0,
            _ => 0.51,
        };
        let mut worst = 0f32;
        for (xs, ys) in x.chunks(32).zip(back.chunks(32)) {
            let (lo, hi) = xs
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            let range = match format {
                // Symmetric codes span ±amax.
                QFormat::Q8_0 | QFormat::Q4_0 | QFormat::Q5_0 | QFormat::Q6K => 2.0 * hi.max(-lo),
                QFormat::Q4K | QFormat::Q5K => hi - lo.min(0.0),
                QFormat::Q4_1 | QFormat::Q5_1 => hi - lo,
                QFormat::Q2K | QFormat::Q3K => unreachable!("read only"),
            };
            let step = range / levels;
            for (a, b) in xs.iter().zip(ys) {
                worst = worst.max((a - b).abs() / step);
            }
        }
        assert!(worst <= slack, "{format}: error {worst} code steps");
    }
}

#[test]
fn formats_parse_and_describe_themselves() {
    for format in QFormat::ALL {
        assert_eq!(format.name().parse::<QFormat>().unwrap(), format);
        assert_eq!(QFormat::from_ggml_type(format.ggml_type()), Some(format));
    }
    assert_eq!("q4k".parse::<QFormat>().unwrap(), QFormat::Q4K);
    let err = "q1_k".parse::<QFormat>().unwrap_err().to_string();
    assert!(err.contains("unknown quantization \"q1_k\""), "{err}");
    let w = Tensor::ones(&[1, 256], DType::F32, Device::Cpu).unwrap();
    let err = QTensor::quantize(&w, QFormat::Q3K).unwrap_err().to_string();
    assert!(err.contains("Q3_K is read from files only"), "{err}");
    assert!((QFormat::Q4_1.bits_per_value() - 5.0).abs() < 1e-12);
}

#[test]
fn hostile_shapes_and_byte_counts_are_errors() {
    let e = QTensor::from_bytes(QFormat::Q8_0, &[2, 33], vec![0; 68]).unwrap_err();
    assert!(e.to_string().contains("multiples of 32"), "{e}");
    let e = QTensor::from_bytes(QFormat::Q8_0, &[2, 32], vec![0; 67]).unwrap_err();
    assert!(e.to_string().contains("takes 68 bytes, got 67"), "{e}");
    let e = QTensor::from_bytes(QFormat::Q8_0, &[usize::MAX, 32], vec![]).unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    let e = QTensor::from_bytes(QFormat::Q4_0, &[32], vec![0; 18]).unwrap_err();
    assert!(e.to_string().contains("matrix"), "{e}");
    let q = QTensor::from_bytes(QFormat::Q4_0, &[2, 32], vec![0; 36]).unwrap();
    let x = Tensor::ones(&[3, 64], DType::F32, Device::Cpu).unwrap();
    let e = x.linear_q(&q, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not end in the weight's 32 columns"),
        "{e}"
    );
    let ids = Tensor::from_vec(vec![0i64, 2], &[2], Device::Cpu).unwrap();
    let e = q.embedding(&ids, DType::F32, Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("id 2 is outside the 2 rows"), "{e}");
}

/// `|y - y_ref|` per output against the bound that 8-bit activation blocks imply: each
/// activation moves by at most half its block's step (`amax / 127 / 2`), plus the f16
/// rounding of the repacked scales and f32 sums.
/// A `(rows, cols)` weight in `format`: a random matrix quantized, or for the formats Ember
/// only reads, random blocks with small f16 scales.
fn weight(format: QFormat, rows: usize, cols: usize, g: &mut Generator) -> QTensor {
    if format.can_encode() {
        return QTensor::quantize(&randn(g, &[rows, cols]).mul_scalar(0.2).unwrap(), format)
            .unwrap();
    }
    let n = format.bytes_for(rows * cols).unwrap();
    let mut bytes: Vec<u8> = (0..n).map(|_| g.next_u64() as u8).collect();
    let scales: &[usize] = if format == QFormat::Q2K {
        &[80, 82]
    } else {
        &[108]
    };
    for block in bytes.chunks_exact_mut(format.block_bytes()) {
        for &at in scales {
            block[at..at + 2].copy_from_slice(&ember_core::f16::from_f32(0.004).to_le_bytes());
        }
    }
    QTensor::from_bytes(format, &[rows, cols], bytes).unwrap()
}

fn check_product(
    format: QFormat,
    rows: usize,
    cols: usize,
    m: usize,
    bias: bool,
    g: &mut Generator,
) {
    let w = weight(format, rows, cols, g);
    let wd = w.dequantize(DType::F32, Device::Cpu).unwrap();
    let x = randn(g, &[m, cols]);
    let b = bias.then(|| randn(g, &[rows]));
    let (y, used) = trace_kernels(|| x.linear_q(&w, b.as_ref()).unwrap());
    // What this run must pick on this CPU (the re-runs cap it with EMBER_SIMD).
    #[cfg(target_arch = "x86_64")]
    let want = match std::env::var("EMBER_SIMD").as_deref() {
        Ok("amx-emulated") if m > 4 => Some(Impl::CpuInt8Amx),
        Ok("baseline") => Some(Impl::CpuInt8),
        Ok("avx2") if std::arch::is_x86_feature_detected!("avx2") => Some(Impl::CpuInt8Avx2),
        Err(_) if std::arch::is_x86_feature_detected!("avx512vnni") => Some(Impl::CpuInt8Vnni),
        _ => None,
    };
    // WebAssembly (scripts/test_wasm.sh): SIMD128 unless capped to the baseline.
    #[cfg(target_arch = "wasm32")]
    let want = match std::env::var("EMBER_SIMD").as_deref() {
        Ok("baseline") => Some(Impl::CpuInt8),
        _ => Some(Impl::CpuInt8Simd128),
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
    let want: Option<Impl> = None;
    if let Some(want) = want {
        assert_eq!(used[0].implementation, want, "{format}");
    }
    let y = y.to_vec::<f32>().unwrap();
    let mut reference = x.matmul(&wd.transpose(0, 1).unwrap()).unwrap();
    if let Some(b) = &b {
        reference = reference.add(b).unwrap();
    }
    let reference = reference.to_vec::<f32>().unwrap();
    let (xv, wv) = (x.to_vec::<f32>().unwrap(), wd.to_vec::<f32>().unwrap());
    for i in 0..m {
        for r in 0..rows {
            let (xr, wr) = (&xv[i * cols..][..cols], &wv[r * cols..][..cols]);
            let mut bound = 0f32;
            let mut mass = 0f32;
            // The same product with the activations rounded as the kernel rounds them.
            let mut rounded = 0f64;
            for (xb, wb) in xr.chunks(32).zip(wr.chunks(32)) {
                let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
                bound += wb.iter().map(|v| v.abs()).sum::<f32>() * amax / 254.0;
                mass += xb.iter().zip(wb).map(|(a, b)| (a * b).abs()).sum::<f32>();
                let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                for (a, w) in xb.iter().zip(wb) {
                    rounded += ((a * inv).round_ties_even() * (amax / 127.0)) as f64 * *w as f64;
                }
            }
            // The K formats' sub-block scales (f16 × 6 bits) are rounded to f16 when repacked.
            let rel = if format.block_len() == 256 {
                6e-4
            } else {
                2e-5
            };
            let bound = bound * 1.01 + mass * rel + 1e-5;
            let (got, exp) = (y[i * rows + r], reference[i * rows + r]);
            let rounded =
                rounded as f32 + b.as_ref().map_or(0.0, |b| b.to_vec::<f32>().unwrap()[r]);
            assert!(
                (got - rounded).abs() <= mass * rel + 1e-5,
                "{format} ({rows}, {cols}) m={m}: y[{i}, {r}] = {got}, with rounded inputs {rounded}"
            );
            assert!(
                (got - exp).abs() <= bound,
                "{format} ({rows}, {cols}) m={m}: y[{i}, {r}] = {got}, reference {exp}, bound {bound}"
            );
        }
    }
}

#[test]
fn quantized_products_match_the_dequantized_f32_product() {
    let mut g = Generator::new(7);
    for format in QFormat::ALL {
        let n = format.block_len();
        // Row counts around the 16-row groups, one and several blocks, 1..9 activation rows.
        for (rows, cols, m) in [
            (1, n, 1),
            (15, n, 3),
            (17, 2 * n, 5),
            (33, 3 * n, 9),
            (16, n, 4),
            (40, 1536, 2),
        ] {
            check_product(format, rows, cols, m, rows % 2 == 1, &mut g);
        }
    }
}

#[test]
fn quantized_products_take_any_leading_shape_and_give_input_gradients() {
    let mut g = Generator::new(3);
    let w = QTensor::quantize(&randn(&mut g, &[24, 64]), QFormat::Q4_1).unwrap();
    let wd = w.dequantize(DType::F32, Device::Cpu).unwrap();
    let x = randn(&mut g, &[2, 3, 64]).requires_grad(true).unwrap();
    let b = randn(&mut g, &[24]).requires_grad(true).unwrap();
    let y = x.linear_q(&w, Some(&b)).unwrap();
    assert_eq!(y.dims(), &[2, 3, 24]);
    let grads = y
        .square()
        .unwrap()
        .sum(&[], false)
        .unwrap()
        .backward()
        .unwrap();
    // d/dx Σ y² = 2 y W (through the dequantized weight); d/db = Σ 2 y.
    let two_y = y.detach().mul_scalar(2.0).unwrap();
    let gx = two_y.matmul(&wd).unwrap();
    let gb = two_y.sum(&[0, 1], false).unwrap();
    let close = |a: &Tensor, b: &Tensor| ember_testing::worst_error(a, b, 1e-5, 1e-5).unwrap();
    assert!(close(grads.get(&x).unwrap(), &gx) <= 1.0);
    assert!(close(grads.get(&b).unwrap(), &gb) <= 1.0);
}

#[test]
fn embedding_rows_are_the_dequantized_rows() {
    let mut g = Generator::new(5);
    for format in [QFormat::Q8_0, QFormat::Q4K, QFormat::Q6K] {
        let w = QTensor::quantize(&randn(&mut g, &[10, 256]), format).unwrap();
        let wd = w.dequantize(DType::F32, Device::Cpu).unwrap();
        let ids = Tensor::from_vec(vec![3i64, 0, 9, 3], &[2, 2], Device::Cpu).unwrap();
        let rows = w.embedding(&ids, DType::F32, Device::Cpu).unwrap();
        assert_eq!(rows.dims(), &[2, 2, 256]);
        let want = wd.embedding(&ids).unwrap();
        assert_eq!(
            rows.to_vec::<f32>().unwrap(),
            want.to_vec::<f32>().unwrap(),
            "{format}"
        );
        let perm = w
            .select_rows(&[9, 3])
            .unwrap()
            .dequantize(DType::F32, Device::Cpu)
            .unwrap();
        let want = wd.index_select(
            0,
            &Tensor::from_vec(vec![9i64, 3], &[2], Device::Cpu).unwrap(),
        );
        assert_eq!(
            perm.to_vec::<f32>().unwrap(),
            want.unwrap().to_vec::<f32>().unwrap()
        );
    }
}

/// The AMX int8 path (its tiles, unpacking and epilogue) passes the same tests on the tile
/// emulator, on any CPU: the binary runs itself again with `EMBER_SIMD=amx-emulated`.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_amx_kernel_passes_on_the_tile_emulator() {
    ember_testing::rerun_with_simd(
        "the_amx_kernel_passes_on_the_tile_emulator",
        &["amx-emulated"],
    );
}

/// The integer kernels a wider CPU never picks (AVX2, portable) pass the same tests: the
/// binary runs itself again with `EMBER_SIMD` capped.
#[cfg(not(target_family = "wasm"))] // no processes there: scripts/test_wasm.sh reruns it
#[test]
fn the_portable_kernel_passes_too() {
    ember_testing::rerun_with_narrower_simd("the_portable_kernel_passes_too");
}
