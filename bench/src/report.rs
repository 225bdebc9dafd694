//! What each workload's figure means against the machine's ceilings, and the table.

use serde_json::{Value, json};

use crate::roofline::Roofline;

/// GPT-2 small: layers, width, MLP width, vocabulary, parameters.
const GPT2: (f64, f64, f64, f64, f64) = (12.0, 768.0, 3072.0, 50257.0, 124_439_808.0);
/// SmolLM2-135M as a GPT for FLOP counting: layers, width, MLP width (gated: 1.5 × 1536 as
/// three matrices), vocabulary (GQA's smaller k/v counted as full: an upper bound).
const SMOLLM2: (f64, f64, f64, f64) = (30.0, 576.0, 2304.0, 49152.0);
/// nanoGPT's benchmark model: layers, width, MLP width, vocabulary.
const NANOGPT: (f64, f64, f64, f64) = (4.0, 128.0, 512.0, 65.0);

/// Forward FLOPs per token of a GPT at context `t`: the weight products (`2·params` of the
/// blocks and the head) and attention's two products over the full context (as PaLM's
/// model-FLOPs count).
fn gpt_forward_flops((l, c, inner, v): (f64, f64, f64, f64), t: f64) -> f64 {
    l * (2.0 * 4.0 * c * c + 4.0 * c * inner) + 2.0 * c * v + l * 4.0 * t * c
}

/// What limits a workload, and how much of it one unit of its figure uses.
pub enum Bound {
    /// Compute: FLOPs per unit of the figure (1e9 per GFLOP/s).
    Flops(f64),
    /// Memory: bytes of weights read per unit of the figure (per token), for f32 and bf16.
    Bytes { f32: f64, bf16: f64 },
}

/// The workloads, in run order, with their roofline model.
pub fn workloads() -> Vec<(&'static str, Bound)> {
    let (l, c, inner, v, params) = GPT2;
    let gpt2 = (l, c, inner, v);
    vec![
        ("gemm512", Bound::Flops(1e9)),
        ("gemm1024", Bound::Flops(1e9)),
        ("gemm2048", Bound::Flops(1e9)),
        ("gemm2048-bf16", Bound::Flops(1e9)),
        (
            "nanogpt",
            Bound::Flops(3.0 * gpt_forward_flops(NANOGPT, 128.0)),
        ),
        (
            "nanogpt-bf16",
            Bound::Flops(3.0 * gpt_forward_flops(NANOGPT, 128.0)),
        ),
        (
            "nanogpt-1024",
            Bound::Flops(3.0 * gpt_forward_flops(NANOGPT, 1024.0)),
        ),
        ("gpt2-prefill", Bound::Flops(gpt_forward_flops(gpt2, 128.0))),
        (
            "gpt2-prefill-bf16",
            Bound::Flops(gpt_forward_flops(gpt2, 128.0)),
        ),
        (
            "gpt2-decode",
            Bound::Bytes {
                f32: 4.0 * params,
                bf16: 2.0 * params,
            },
        ),
        (
            "gpt2-decode-bf16",
            Bound::Bytes {
                f32: 4.0 * params,
                bf16: 2.0 * params,
            },
        ),
        (
            "gpt2-train",
            Bound::Flops(3.0 * gpt_forward_flops(gpt2, 128.0)),
        ),
        (
            "gpt2-train-bf16",
            Bound::Flops(3.0 * gpt_forward_flops(gpt2, 128.0)),
        ),
        (
            "gpt2-train-1024",
            Bound::Flops(3.0 * gpt_forward_flops(gpt2, 1024.0)),
        ),
        // Fine-tuning: SmolLM2 (LoRA's backward skips the weight gradients), GPT-2 at 512.
        (
            "ft-smollm2-full",
            Bound::Flops(3.0 * gpt_forward_flops(SMOLLM2, 256.0)),
        ),
        (
            "ft-smollm2-lora",
            Bound::Flops(2.0 * gpt_forward_flops(SMOLLM2, 256.0)),
        ),
        (
            "ft-gpt2-512",
            Bound::Flops(3.0 * gpt_forward_flops(gpt2, 512.0)),
        ),
        (
            "ft-gpt2-512-ckpt",
            Bound::Flops(3.0 * gpt_forward_flops(gpt2, 512.0)),
        ),
        // Quantized inference (their own table, against llama.cpp).
        ("smollm2-q4_1-prefill", Bound::Flops(0.0)),
        ("smollm2-q4_1-decode", Bound::Flops(0.0)),
        ("smollm2-q8_0-prefill", Bound::Flops(0.0)),
        ("smollm2-q8_0-decode", Bound::Flops(0.0)),
        ("gpt2-decode-q8_0", Bound::Flops(0.0)),
    ]
}

/// The fraction of the machine's ceiling a figure reaches, as a percentage string.
fn fraction(bound: &Bound, value: f64, bf16: bool, roof: &Roofline) -> String {
    let frac = match bound {
        Bound::Flops(per_unit) => {
            // A bf16 product's ceiling: AMX tiles where usable, else the faster of
            // `vdpbf16ps` and f32 FMAs (Ember widens to f32 where `vdpbf16ps` is slower).
            let peak = if bf16 {
                roof.amx_bf16_gflops
                    .unwrap_or(roof.bf16_gflops.unwrap_or(0.0).max(roof.f32_gflops))
            } else {
                roof.f32_gflops
            };
            value * per_unit / 1e9 / peak
        }
        Bound::Bytes { f32, bf16: b16 } => {
            let bytes = if bf16 { b16 } else { f32 };
            value * bytes / 1e9 / roof.read_gbs
        }
    };
    format!("{:.0}%", 100.0 * frac)
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(|v| v["value"].as_f64())
}

fn fmt(x: Option<f64>) -> String {
    match x {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

/// One workload's results: Ember, PyTorch f32, PyTorch bf16 (each JSON or why not).
pub struct Row {
    /// The workload.
    pub name: String,
    /// Ember's figures.
    pub ember: Result<Value, String>,
    /// PyTorch in f32.
    pub torch: Result<Value, String>,
    /// PyTorch in bf16 (autocast for training, bf16 weights for inference).
    pub torch_bf16: Result<Value, String>,
    /// llama.cpp (quantized rows only).
    pub llama: Result<Value, String>,
}

/// The quantized rows against llama.cpp: tokens/s, the ratio, and the bytes of weights read
/// per token over the measured bandwidth.
fn print_quantized(rows: &[Row], roof: &Roofline, out: &mut [Value]) {
    let quant: Vec<(usize, &Row)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.name.contains("-q"))
        .collect();
    if quant.is_empty() {
        return;
    }
    println!(
        "\n| quantized workload | Ember tokens/s | llama.cpp tokens/s | Ember / llama.cpp \
         | weight MB per token | Ember: bandwidth used |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, row) in quant {
        let (e, l) = (row.ember.as_ref().ok(), row.llama.as_ref().ok());
        let mb = e.and_then(|v| v["phases"]["weight MB per token"].as_f64());
        let bw = match (num(e), mb) {
            (Some(t), Some(mb)) if row.name.contains("decode") => {
                format!("{:.0}%", 100.0 * t * mb / 1e3 / roof.read_gbs)
            }
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {bw} |",
            row.name,
            fmt(num(e)),
            fmt(num(l)),
            ratio(num(e), num(l)),
            fmt(mb),
        );
        out[i]["llama_cpp"] = row.llama.clone().unwrap_or_else(|e| json!({"error": e}));
    }
}

/// Prints the table (Markdown) and returns the rows as JSON.
pub fn print(rows: &[Row], roof: &Roofline) -> Vec<Value> {
    let dense = rows.iter().any(|r| !r.name.contains("-q"));
    if dense {
        print_dense_header();
    }
    print_rows(rows, roof)
}

fn print_dense_header() {
    println!(
        "\n| workload | unit | Ember | PyTorch f32 | PyTorch bf16 | Ember / PT f32 | Ember / PT bf16 \
         | roofline: Ember · PT f32 · PT bf16 | peak RSS MiB: Ember · PT f32 · PT bf16 | Ember phases (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

fn print_rows(rows: &[Row], roof: &Roofline) -> Vec<Value> {
    let bounds = workloads();
    let mut out = Vec::new();
    for row in rows {
        if row.name.contains("-q") {
            // In the llama.cpp table below.
            let json_of =
                |r: &Result<Value, String>| r.clone().unwrap_or_else(|e| json!({"error": e}));
            out.push(json!({"workload": row.name, "ember": json_of(&row.ember)}));
            continue;
        }
        let (e, t, tb) = (
            row.ember.as_ref().ok(),
            row.torch.as_ref().ok(),
            row.torch_bf16.as_ref().ok(),
        );
        let bound = bounds.iter().find(|(n, _)| *n == row.name).map(|(_, b)| b);
        let roofs = match bound {
            Some(b) => [(e, row.name.ends_with("-bf16")), (t, false), (tb, true)]
                .iter()
                .map(|(v, bf)| num(*v).map_or("-".into(), |x| fraction(b, x, *bf, roof)))
                .collect::<Vec<_>>()
                .join(" · "),
            None => "-".into(),
        };
        let rss = [e, t, tb]
            .iter()
            .map(|v| {
                v.and_then(|v| v["peak_rss_mib"].as_f64())
                    .map_or("-".into(), |x| format!("{x:.0}"))
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let phases = e
            .and_then(|v| v["phases"].as_object())
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {:.1}", v.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let unit = e.or(t).and_then(|v| v["unit"].as_str()).unwrap_or("");
        println!(
            "| {} | {unit} | {} | {} | {} | {} | {} | {roofs} | {rss} | {phases} |",
            row.name,
            if e.is_some() {
                fmt(num(e))
            } else {
                "failed".into()
            },
            fmt(num(t)),
            fmt(num(tb)),
            ratio(num(e), num(t)),
            ratio(num(e), num(tb)),
        );
        let json_of = |r: &Result<Value, String>| r.clone().unwrap_or_else(|e| json!({"error": e}));
        out.push(json!({
            "workload": row.name,
            "ember": json_of(&row.ember),
            "pytorch": json_of(&row.torch),
            "pytorch_bf16": json_of(&row.torch_bf16),
        }));
    }
    print_quantized(rows, roof, &mut out);
    for row in rows {
        for (who, r) in [
            ("Ember", &row.ember),
            ("PyTorch f32", &row.torch),
            ("PyTorch bf16", &row.torch_bf16),
            ("llama.cpp", &row.llama),
        ] {
            if matches!(r, Err(e) if e == "n/a" || e == "see llama.cpp") {
                continue;
            }
            if let Err(e) = r {
                println!("{}: {who}: {e}", row.name);
            }
        }
    }
    out
}
