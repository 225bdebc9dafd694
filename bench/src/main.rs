//! `ember-bench`: Ember against PyTorch on the same machine, in one run.
//!
//! ```sh
//! cargo run --release -p ember-bench                      # every workload, CPU, 2 threads
//! cargo run --release -p ember-bench -- --only gemm,nanogpt --repeats 7
//! ```
//!
//! Each workload runs in its own child process (so its peak resident memory is its own):
//! first Ember, then PyTorch (`bench/torch_bench.py`) right after it, with the same thread
//! count. The table gives the medians and the ratio Ember / PyTorch.

mod workloads;

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use ember::prelude::*;
use serde_json::{Value, json};

const ALL: &[&str] = &[
    "gemm512",
    "gemm1024",
    "gemm2048",
    "nanogpt",
    "gpt2-prefill",
    "gpt2-decode",
    "gpt2-train",
];

/// Benchmarks Ember against PyTorch, back to back.
#[derive(Parser, Debug)]
struct Args {
    /// Comma-separated workloads (default: all): gemm512, gemm1024, gemm2048, nanogpt,
    /// gpt2-prefill, gpt2-decode, gpt2-train.
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
    let m = match name {
        "gemm512" => workloads::gemm(512, repeats, device)?,
        "gemm1024" => workloads::gemm(1024, repeats, device)?,
        "gemm2048" => workloads::gemm(2048, repeats, device)?,
        "nanogpt" => workloads::nanogpt(repeats, device)?,
        "gpt2-prefill" => workloads::gpt2_prefill(repeats, device)?,
        "gpt2-decode" => workloads::gpt2_decode(repeats, device)?,
        "gpt2-train" => workloads::gpt2_train(repeats, device)?,
        other => {
            return Err(Error::data(
                "ember-bench",
                format!("unknown workload {other}"),
            ));
        }
    };
    let phases: serde_json::Map<String, Value> = m
        .phases
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Ok(
        json!({"value": m.value, "unit": m.unit, "runs": m.runs, "phases": phases, "peak_rss_mib": peak_rss_mib()}),
    )
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

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn fmt_value(v: &Value) -> String {
    match v["value"].as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "-".into(),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(name) = &args.worker {
        let v = run_worker(name, args.repeats, args.device)?;
        println!("{v}");
        return Ok(());
    }
    let names: Vec<String> = match &args.only {
        Some(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
        None => ALL.iter().map(|s| s.to_string()).collect(),
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
    let load_before = load_average();
    println!(
        "ember-bench: {} threads on {}; device {}; {} timed runs per workload (medians)",
        args.threads,
        cpu_name(),
        args.device,
        args.repeats
    );
    println!("load average before: {load_before}");
    let mut rows = Vec::new();
    for name in &names {
        eprintln!("running {name} ...");
        let ember = child_json(
            Command::new(&exe)
                .args([
                    "--worker",
                    name,
                    "--repeats",
                    &args.repeats.to_string(),
                    "--device",
                    &args.device.to_string(),
                ])
                .env("RAYON_NUM_THREADS", &threads),
        );
        let torch = if args.no_torch {
            Err("not run (--no-torch)".to_string())
        } else {
            child_json(
                Command::new(&python)
                    .arg(&script)
                    .args([
                        name.as_str(),
                        "--repeats",
                        &args.repeats.to_string(),
                        "--threads",
                        &threads,
                        "--device",
                        torch_device,
                    ])
                    .env("OMP_NUM_THREADS", &threads)
                    .env("MKL_NUM_THREADS", &threads),
            )
        };
        rows.push((name.clone(), ember, torch));
    }
    let load_after = load_average();

    println!(
        "\n| workload | unit | Ember | PyTorch | Ember / PyTorch | Ember peak RSS (MiB) | PyTorch peak RSS (MiB) | Ember phases (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut out = Vec::new();
    for (name, ember, torch) in &rows {
        let e = ember.as_ref().ok();
        let t = torch.as_ref().ok();
        let ratio = match (
            e.and_then(|v| v["value"].as_f64()),
            t.and_then(|v| v["value"].as_f64()),
        ) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let rss = |v: Option<&Value>| {
            v.and_then(|v| v["peak_rss_mib"].as_f64())
                .map_or("-".into(), |x| format!("{x:.0}"))
        };
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
            "| {name} | {unit} | {} | {} | {ratio} | {} | {} | {phases} |",
            e.map_or_else(|| "failed".into(), fmt_value),
            t.map_or_else(|| "not run".into(), fmt_value),
            rss(e),
            rss(t)
        );
        out.push(json!({"workload": name, "ember": ember.clone().unwrap_or_else(|e| json!({"error": e})), "pytorch": torch.clone().unwrap_or_else(|e| json!({"error": e}))}));
    }
    for (name, ember, torch) in &rows {
        if let Err(e) = ember {
            println!("{name}: Ember failed: {e}");
        }
        if let Err(e) = torch {
            println!("{name}: PyTorch {e}");
        }
    }
    println!("\nload average after: {load_after}");
    if let Some(path) = &args.json {
        let doc = json!({"cpu": cpu_name(), "threads": args.threads, "device": args.device.to_string(), "load_before": load_before, "load_after": load_after, "results": out});
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}
