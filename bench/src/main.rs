//! `ember-bench`: Ember against PyTorch on the same machine, in one run.
//!
//! ```sh
//! cargo run --release -p ember-bench                      # every workload, CPU, 2 threads
//! cargo run --release -p ember-bench -- --only gemm,nanogpt --repeats 7
//! ```
//!
//! It first prints the CPU and measures this machine's ceilings (f32 FMA peak, bf16
//! dot-product peak, memory bandwidth). Each workload then runs in its own child process (so
//! its peak resident memory is its own): Ember, then PyTorch (`bench/torch_bench.py`) in f32
//! and in bf16 (autocast for training, bf16 weights for inference) right after it, with the
//! same thread count. The table gives the medians, the ratios to PyTorch and each figure as a
//! fraction of its roofline (FLOP/s over the peak; for decoding, bytes of weights per second
//! over the bandwidth).

mod finetune;
mod loads;
mod quant;
mod report;
mod roofline;
mod soak;
mod workloads;

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use ember::prelude::*;
use serde_json::{Value, json};

/// Benchmarks Ember against PyTorch, back to back.
#[derive(Parser, Debug)]
struct Args {
    /// Comma-separated workloads (default: all): quantized inference against llama.cpp
    /// (smollm2-q4_1-prefill, smollm2-q4_1-decode, smollm2-q8_0-prefill, smollm2-q8_0-decode;
    /// gpt2-decode-q8_0 against Ember's f32 gpt2-decode); gemm512, gemm1024, gemm2048, nanogpt,
    /// nanogpt-1024, gpt2-prefill, gpt2-decode, gpt2-train, gpt2-train-1024; Ember in bf16
    /// (bf16 matrices, bf16 autocast for training, bf16 weights for inference) against
    /// PyTorch in bf16: gemm2048-bf16, nanogpt-bf16, gpt2-prefill-bf16, gpt2-decode-bf16,
    /// gpt2-train-bf16; the load times load-gpt2, load-minilm, load-smollm2 (Ember only);
    /// gpt2-generate (Ember only, not in the default set: GPT-2 124M through `generate`, as
    /// bench/python_bench.py measures it from Python); and
    /// fine-tuning against PyTorch + peft: ft-smollm2-full, ft-smollm2-lora (4 × 256, LoRA r = 8
    /// on q/k/v/o), ft-gpt2-512, ft-gpt2-512-ckpt (4 × 512, gradient checkpointing).
    #[arg(long)]
    only: Option<String>,
    /// Timed runs per workload (after warmup); medians are reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// CPU threads for both frameworks.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// cpu, wgpu or wgpu:N (PyTorch uses CUDA when the device is not the CPU).
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// Python with torch and transformers (default: $EMBER_PYTHON, the project venv, python3).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip PyTorch.
    #[arg(long)]
    no_torch: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run the soak instead (10,000 training steps and 10,000 generated tokens, resident
    /// memory sampled as they go), in this process: threads as RAYON_NUM_THREADS says.
    #[arg(long)]
    soak: bool,
    /// Internal: run one workload in this process and print its JSON line.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

/// Peak resident set size of this process, MiB (Linux; 0 elsewhere).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn run_worker(name: &str, repeats: usize, device: Device) -> Result<Value> {
    let bf16 = Some(DType::BF16);
    let m = match name {
        "gemm512" => workloads::gemm(512, DType::F32, repeats, device)?,
        "gemm1024" => workloads::gemm(1024, DType::F32, repeats, device)?,
        "gemm2048" => workloads::gemm(2048, DType::F32, repeats, device)?,
        "gemm2048-bf16" => workloads::gemm(2048, DType::BF16, repeats, device)?,
        "nanogpt" => workloads::nanogpt(128, 32, None, repeats, device)?,
        "nanogpt-bf16" => workloads::nanogpt(128, 32, bf16, repeats, device)?,
        "nanogpt-1024" => workloads::nanogpt(1024, 4, None, repeats, device)?,
        "gpt2-prefill" => workloads::gpt2_prefill(DType::F32, repeats, device)?,
        "gpt2-prefill-bf16" => workloads::gpt2_prefill(DType::BF16, repeats, device)?,
        "gpt2-decode" => workloads::gpt2_decode(DType::F32, repeats, device)?,
        "gpt2-decode-bf16" => workloads::gpt2_decode(DType::BF16, repeats, device)?,
        "gpt2-generate" => loads::gpt2_generate(repeats)?,
        "gpt2-train" => workloads::gpt2_train(128, 4, None, repeats, device)?,
        "gpt2-train-bf16" => workloads::gpt2_train(128, 4, bf16, repeats, device)?,
        "gpt2-train-1024" => workloads::gpt2_train(1024, 1, None, repeats, device)?,
        "gpt2-decode-q8_0" => quant::gpt2_decode(Some(ember::quant::QFormat::Q8_0), repeats)?,
        q if q.starts_with("smollm2-") => {
            let parts: Vec<&str> = q.split('-').collect();
            let phase = parts.get(2).copied().unwrap_or("");
            quant::smollm2(parts[1], phase == "decode", repeats)?
        }
        load if load.starts_with("load-") => loads::load(load, repeats, device)?,
        ft if finetune_names().contains(&ft) => {
            let (m, peak) = match ft {
                "ft-smollm2-full" => finetune::smollm2(false, repeats)?,
                "ft-smollm2-lora" => finetune::smollm2(true, repeats)?,
                "ft-gpt2-512" => finetune::gpt2_train_512(false, repeats)?,
                _ => finetune::gpt2_train_512(true, repeats)?,
            };
            let mut v = figures(&m);
            v["ember_peak_mib"] = json!(peak.total() as f64 / 1048576.0);
            v["ember_peak"] = json!({"parameters": peak.parameters, "gradients": peak.gradients,
                "optimizer": peak.optimizer, "activations": peak.activations});
            return Ok(v);
        }
        other => {
            return Err(Error::data(
                "ember-bench",
                format!("unknown workload {other}"),
            ));
        }
    };
    Ok(figures(&m))
}

/// The fine-tuning workloads (`finetune.rs`).
fn finetune_names() -> [&'static str; 4] {
    [
        "ft-smollm2-full",
        "ft-smollm2-lora",
        "ft-gpt2-512",
        "ft-gpt2-512-ckpt",
    ]
}

/// A measurement as the worker's JSON line.
fn figures(m: &workloads::Measured) -> Value {
    let phases: serde_json::Map<String, Value> = m
        .phases
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"value": m.value, "unit": m.unit, "runs": m.runs, "phases": phases,
        "peak_rss_mib": peak_rss_mib()})
}

fn find_python(arg: &Option<PathBuf>) -> PathBuf {
    if let Some(p) = arg {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("EMBER_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/ember/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Runs a child command and parses the last line of its stdout as JSON.
fn child_json(cmd: &mut Command) -> std::result::Result<Value, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!(
            "exit {}: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    serde_json::from_str(last).map_err(|e| format!("bad output {last:?}: {e}"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    ember::clock::UtcTime::now().date()
}

fn main() {
    ember::cli::exit_on_error(run(Args::parse()));
}

fn run(args: Args) -> Result<()> {
    if args.soak {
        // In this process: rayon's threads as RAYON_NUM_THREADS says (all cores by default).
        println!(
            "ember-bench --soak {} on {}",
            today(),
            roofline::Cpu::read()
        );
        return soak::run();
    }
    if let Some(name) = &args.worker {
        let v = run_worker(name, args.repeats, args.device)?;
        println!("{v}");
        return Ok(());
    }
    let names: Vec<String> = match &args.only {
        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
        None => report::workloads()
            .into_iter()
            .map(|(n, _)| n.to_string())
            .collect(),
    };
    let exe = std::env::current_exe().map_err(|e| Error::data("ember-bench", e.to_string()))?;
    let python = find_python(&args.python);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("torch_bench.py");
    let threads = args.threads.to_string();
    let torch_device = if args.device == Device::Cpu {
        "cpu"
    } else {
        "cuda"
    };
    let cpu = roofline::Cpu::read();
    let load_before = load_average();
    println!(
        "ember-bench {}: {} threads on {cpu}; device {}; {} timed runs per workload (medians)",
        today(),
        args.threads,
        args.device,
        args.repeats
    );
    println!("Ember's CPU kernels use: {}", ember::cpu_kernels());
    println!("load average before: {load_before}");
    let roof = roofline::Roofline::measure(args.threads);
    println!(
        "ceilings measured on {} threads: f32 FMA {:.0} GFLOP/s, bf16 dot product {}, memory read {:.1} GB/s",
        args.threads,
        roof.f32_gflops,
        roof.bf16_gflops
            .map_or("n/a (no AVX512_BF16)".into(), |g| format!("{g:.0} GFLOP/s")),
        roof.read_gbs
    );
    if let (Some(b), Some(i)) = (roof.amx_bf16_gflops, roof.amx_int8_gops) {
        println!(
            "AMX tiles on {} threads: bf16 {b:.0} GFLOP/s, int8 {i:.0} GOP/s",
            args.threads
        );
    } else {
        println!("AMX tiles: n/a (none usable on this CPU)");
    }
    let repeats = args.repeats.to_string();
    let torch_run = |name: &str, dtype: &str| {
        if args.no_torch {
            return Err("not run (--no-torch)".to_string());
        }
        if name.starts_with("load-") || name.ends_with("-q8_0") {
            return Err("Ember only".to_string());
        }
        if name.starts_with("smollm2-") {
            return Err("see llama.cpp".to_string());
        }
        if finetune_names().contains(&name) && dtype == "bf16" {
            return Err("f32 only".to_string());
        }
        if name.ends_with("-bf16") && dtype == "f32" {
            return Err("see the f32 row".to_string());
        }
        child_json(
            Command::new(&python)
                .arg(&script)
                .args([name, "--repeats", &repeats, "--threads", &threads])
                .args(["--device", torch_device, "--dtype", dtype])
                .env("OMP_NUM_THREADS", &threads)
                .env("MKL_NUM_THREADS", &threads),
        )
    };
    let llama_python = std::env::var_os("EMBER_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/ember/llama-venv/bin/python")
        });
    let llama_script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llama_bench.py");
    let llama_run = |name: &str| {
        let parts: Vec<&str> = name.split('-').collect();
        if parts[0] != "smollm2" || parts.len() != 3 {
            return Err("n/a".to_string());
        }
        let file = quant::smollm2_file(parts[1]).map_err(|e| e.to_string())?;
        child_json(
            Command::new(&llama_python)
                .arg(&llama_script)
                .arg(file)
                .args([
                    "--phase",
                    parts[2],
                    "--repeats",
                    &repeats,
                    "--threads",
                    &threads,
                ]),
        )
    };
    let mut rows = Vec::new();
    for name in &names {
        eprintln!("running {name} ...");
        let ember = child_json(
            Command::new(&exe)
                .args(["--worker", name, "--repeats", &repeats])
                .args(["--device", &args.device.to_string()])
                .env("RAYON_NUM_THREADS", &threads),
        );
        rows.push(report::Row {
            name: name.clone(),
            ember,
            torch: torch_run(name, "f32"),
            torch_bf16: torch_run(name, "bf16"),
            llama: llama_run(name),
        });
    }
    let load_after = load_average();
    let out = report::print(&rows, &roof);
    println!("\nload average after: {load_after}");
    if let Some(path) = &args.json {
        let doc = json!({
            "date": today(), "cpu": cpu.to_string(), "threads": args.threads,
            "device": args.device.to_string(), "load_before": load_before,
            "load_after": load_after, "f32_peak_gflops": roof.f32_gflops,
            "bf16_peak_gflops": roof.bf16_gflops, "amx_bf16_peak_gflops": roof.amx_bf16_gflops,
            "amx_int8_peak_gops": roof.amx_int8_gops, "read_gbs": roof.read_gbs, "results": out,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}
