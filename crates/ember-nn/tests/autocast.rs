//! Autocast against `torch.autocast("cpu")` (fixtures of `scripts/make_amp_fixtures.py`): the
//! dtype every op runs in, and a transformer block's logits and f32 parameter gradients.

use std::collections::HashMap;

use ember_core::{
    AttentionOpts, Backward, CrossEntropyOpts, DType, Device, Impl, Result, Tensor, autocast,
    trace_kernels,
};
use ember_nn::loss;
use ember_testing::{load, read_fixture};
use safetensors::SafeTensors;
use serde_json::Value;

fn fixtures() -> (Value, Vec<u8>) {
    let json: Value = serde_json::from_slice(&read_fixture("amp.json")).expect("amp.json");
    (json, read_fixture("amp.safetensors"))
}

fn dtype(name: &str) -> DType {
    match name {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        other => panic!("unexpected dtype {other}"),
    }
}

/// The ops of the fixture's table, on `a (4, 8)`; other operands are f32 as in the script
/// (their values do not matter here, only dtypes).
fn run_op(name: &str, a: &Tensor) -> Result<Tensor> {
    let dev = Device::Cpu;
    let w = Tensor::randn(&[8, 8], DType::F32, dev)?;
    let b8 = Tensor::randn(&[8], DType::F32, dev)?;
    let x32 = Tensor::randn(&[4, 8], DType::F32, dev)?;
    let t = Tensor::from_vec(vec![1i64, 0, 7, 3], &[4], dev)?;
    let heads = || a.unsqueeze(0)?.unsqueeze(0); // (1, 1, 4, 8)
    match name {
        "matmul" => a.matmul(&w),
        "linear" => a.linear(&w, Some(&b8)),
        "addmm" => a.addmm(&w, &b8),
        "bmm" => a.unsqueeze(0)?.matmul(&w.unsqueeze(0)?),
        "scaled_dot_product_attention" => {
            let opts = AttentionOpts {
                causal: true,
                ..Default::default()
            };
            heads()?.scaled_dot_product_attention(&heads()?, &heads()?, &opts)
        }
        "softmax" => a.softmax(-1),
        "log_softmax" => a.log_softmax(-1),
        "layer_norm" => a.layer_norm(Some(&b8), Some(&b8), 1e-5),
        "rms_norm" => a.rms_norm(Some(&b8), 1e-6),
        "cross_entropy" => a.cross_entropy(&t, CrossEntropyOpts::default()),
        "mse_loss" => loss::mse(a, &x32),
        "binary_cross_entropy_with_logits" => {
            loss::binary_cross_entropy_with_logits(a, &x32.sigmoid()?)
        }
        "sum" => a.sum(&[], false),
        "mean" => a.mean(&[], false),
        "exp" => a.exp(),
        "tanh" => a.tanh(),
        "gelu" => a.gelu(),
        "gelu_tanh" => a.gelu_tanh(),
        "relu" => a.relu(),
        "add_f32" => a.add(&x32),
        "mul_scalar" => a.mul_scalar(2.0),
        "cat_f32" => Tensor::cat(&[a, &x32], 0),
        "stack_f32" => Tensor::stack(&[a, &x32], 0),
        "transpose" => a.transpose(0, 1),
        other => panic!("the dtype table names an op this test does not run: {other}"),
    }
}

#[test]
fn every_op_runs_in_the_dtype_torch_autocast_gives_it() -> Result<()> {
    let (json, _) = fixtures();
    let table = json["dtype_table"].as_array().expect("dtype_table");
    assert!(
        table.len() >= 90,
        "the table covers every op in two autocast dtypes"
    );
    let mut wrong = Vec::new();
    for row in table {
        let s = |k: &str| row[k].as_str().expect("string field");
        let a = Tensor::randn(&[4, 8], DType::F32, Device::Cpu)?.to_dtype(dtype(s("input")))?;
        let _scope = autocast(dtype(s("autocast")))?;
        let got = run_op(s("op"), &a)?.dtype();
        if got != dtype(s("output")) {
            wrong.push(format!(
                "{} under {} autocast on {} gave {got}, torch gives {}",
                s("op"),
                s("autocast"),
                s("input"),
                s("output")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

/// The fixture's pre-norm block; returns the logits `(B, T, V)` and the loss.
fn block(
    p: &HashMap<String, Tensor>,
    x: &Tensor,
    targets: &Tensor,
    (b, t, c, h, v): (usize, usize, usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let ln = |x: &Tensor, n: &str| {
        x.layer_norm(
            Some(&p[&format!("{n}.weight")]),
            Some(&p[&format!("{n}.bias")]),
            1e-5,
        )
    };
    let lin =
        |x: &Tensor, n: &str| x.linear(&p[&format!("{n}.weight")], p.get(&format!("{n}.bias")));
    let qkv = lin(&ln(x, "ln1")?, "attn")?; // (B, T, 3C)
    let heads = |i: usize| -> Result<Tensor> {
        qkv.narrow(-1, i * c, c)?
            .reshape(&[b as isize, t as isize, h as isize, (c / h) as isize])?
            .transpose(1, 2) // (B, H, T, D)
    };
    let opts = AttentionOpts {
        causal: true,
        ..Default::default()
    };
    let y = heads(0)?.scaled_dot_product_attention(&heads(1)?, &heads(2)?, &opts)?;
    let y = y
        .transpose(1, 2)?
        .reshape(&[b as isize, t as isize, c as isize])?;
    let x = x.add(&lin(&y, "proj")?)?;
    let m = lin(&lin(&ln(&x, "ln2")?, "fc1")?.gelu()?, "fc2")?;
    let x = x.add(&m)?;
    let logits = lin(&ln(&x, "lnf")?, "head")?; // (B, T, V)
    let loss = logits
        .reshape(&[-1, v as isize])?
        .cross_entropy(&targets.reshape(&[-1])?, CrossEntropyOpts::default())?;
    Ok((logits, loss))
}

#[test]
fn a_transformer_block_under_autocast_matches_torch() -> Result<()> {
    let (json, bytes) = fixtures();
    let st = SafeTensors::deserialize(&bytes).expect("amp.safetensors");
    let cfg = &json["block"];
    let dim = |k: &str| cfg[k].as_u64().expect("block dims") as usize;
    let dims = (dim("B"), dim("T"), dim("C"), dim("H"), dim("V"));
    let dev = Device::Cpu;
    let (x, targets) = (load(&st, "x", dev)?, load(&st, "targets", dev)?);
    for (tag, cast, tol) in [
        ("f32", None, 1e-4),
        ("bf16", Some(DType::BF16), 3e-2),
        ("f16", Some(DType::F16), 5e-3),
    ] {
        let mut params = HashMap::new();
        for name in st.names() {
            if let Some(n) = name.strip_prefix("param/") {
                params.insert(n.to_string(), load(&st, name, dev)?.requires_grad(true)?);
            }
        }
        let (out, uses) = trace_kernels(|| {
            let _scope = cast.map(autocast).transpose()?;
            block(&params, &x, &targets, dims)
        });
        let (logits, loss) = out?;
        if cast == Some(DType::BF16) && std::env::var("EMBER_SIMD").as_deref() == Ok("amx-emulated")
        {
            assert!(
                uses.iter().any(|u| u.implementation == Impl::CpuBf16Amx),
                "bf16 products must run on the AMX tile emulator: {uses:?}"
            );
        }
        let want = &cfg[tag];
        assert_eq!(
            logits.dtype(),
            dtype(want["logits_dtype"].as_str().unwrap()),
            "{tag}"
        );
        assert_eq!(loss.dtype(), DType::F32, "{tag}: losses run in f32");
        let torch_loss = want["loss"].as_f64().unwrap();
        let ours = loss.to_scalar::<f32>()? as f64;
        assert!(
            (ours - torch_loss).abs() < tol * 2.0,
            "{tag}: loss {ours} vs torch {torch_loss}"
        );
        let close = |name: &str, a: &Tensor, b: &Tensor| -> Result<()> {
            let (a, b) = (a.to_vec::<f32>()?, b.to_vec::<f32>()?);
            let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max) as f64;
            assert!(
                worst <= tol * scale.max(1e-3),
                "{tag} {name}: max error {worst:e} against a largest value {scale:e}"
            );
            Ok(())
        };
        close(
            "logits",
            &logits.to_dtype(DType::F32)?,
            &load(&st, &format!("{tag}/logits"), dev)?,
        )?;
        let grads = loss.backward()?;
        for (name, p) in &params {
            let g = grads
                .get(p)
                .unwrap_or_else(|| panic!("{tag}: {name} got no gradient"));
            assert_eq!(
                g.dtype(),
                DType::F32,
                "{tag}: master weight {name} gets an f32 gradient"
            );
            close(
                &format!("grad {name}"),
                g,
                &load(&st, &format!("{tag}/grad/{name}"), dev)?,
            )?;
        }
    }
    Ok(())
}

/// The block's bf16 products on the AMX path (its tile emulator, on any CPU) also match
/// torch: the binary runs itself again with `EMBER_SIMD=amx-emulated`.
#[test]
fn the_block_matches_torch_on_the_amx_tile_emulator() {
    ember_testing::rerun_with_simd(
        "the_block_matches_torch_on_the_amx_tile_emulator",
        &["amx-emulated"],
    );
}

#[test]
fn autocast_refuses_full_precision_dtypes_and_nests() -> Result<()> {
    assert!(autocast(DType::F32).is_err());
    assert!(autocast(DType::I64).is_err());
    let x = Tensor::randn(&[3, 3], DType::F32, Device::Cpu)?;
    {
        let _outer = autocast(DType::BF16)?;
        {
            let _inner = autocast(DType::F16)?;
            assert_eq!(x.matmul(&x)?.dtype(), DType::F16);
            let _off = ember_core::autocast_off();
            assert_eq!(x.matmul(&x)?.dtype(), DType::F32);
        }
        assert_eq!(x.matmul(&x)?.dtype(), DType::BF16);
    }
    assert_eq!(x.matmul(&x)?.dtype(), DType::F32);
    assert_eq!(ember_core::autocast::autocast_dtype(), None);
    Ok(())
}
