//! End-to-end runs of `ember-train-selftest` (a one-block transformer on a periodic token
//! sequence) in child processes: learning, bit-exact resume in a new process, and crash
//! safety when a child is killed with SIGKILL while it writes checkpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ember_train::checkpoint;
use ember_weights::Checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_ember-train-selftest");

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs the self-test and parses its `key=value` summary line.
fn run(out: &Path, steps: u64, extra: &[&str]) -> std::collections::HashMap<String, String> {
    let o = Command::new(BIN)
        .args([
            "--out",
            out.to_str().unwrap(),
            "--steps",
            &steps.to_string(),
        ])
        .args(extra)
        .output()
        .expect("run ember-train-selftest");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "selftest failed: {}\n{stdout}",
        String::from_utf8_lossy(&o.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    last.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_small_model_learns_the_synthetic_task() {
    let out = out_dir("learn");
    let r = run(&out, 60, &[]);
    let acc: f64 = r["accuracy"].parse().unwrap();
    let val: f64 = r["val_loss"].parse().unwrap();
    eprintln!("after 60 steps: accuracy {acc}, validation loss {val}");
    assert!(acc >= 0.99, "accuracy {acc} after 60 steps");
    assert!(val < 0.05, "validation loss {val}");
    assert!(out.join("metrics.jsonl").exists() && out.join("loss.png").exists());
    let png = std::fs::read(out.join("loss.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn resuming_in_a_new_process_is_bit_exact() {
    let straight = run(&out_dir("straight"), 20, &[]);
    let split = out_dir("split");
    let half = run(&split, 10, &[]);
    assert_ne!(half["weights"], straight["weights"]);
    let resumed = run(&split, 20, &["--resume"]);
    assert_eq!(
        resumed["weights"], straight["weights"],
        "20 steps straight and 10 + resume + 10 must give bitwise-identical weights"
    );
    assert_eq!(resumed["loss"], straight["loss"]);
}

#[test]
fn two_runs_with_one_seed_are_bitwise_identical() {
    let a = run(&out_dir("det-a"), 15, &[]);
    let b = run(&out_dir("det-b"), 15, &[]);
    assert_eq!(a["weights"], b["weights"]);
}

#[test]
fn a_kill_during_checkpointing_never_costs_the_last_good_checkpoint() {
    let mut survived = 0;
    for (i, delay_ms) in [60u64, 120, 180, 250, 330, 420].into_iter().enumerate() {
        let out = out_dir(&format!("kill{i}"));
        let mut child = Command::new(BIN)
            .args([
                "--out",
                out.to_str().unwrap(),
                "--steps",
                "100000",
                "--checkpoint-every",
                "1",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let root = out.join("checkpoints");
        let Some(latest) = checkpoint::latest(&root) else {
            continue; // killed before the first checkpoint: nothing to lose
        };
        // The newest complete checkpoint is readable in full...
        let model = Checkpoint::open(latest.join("model.safetensors")).expect("model weights");
        assert!(!model.names().is_empty());
        Checkpoint::open(latest.join("optimizer.safetensors")).expect("optimizer state");
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(latest.join("trainer.json")).unwrap())
                .unwrap();
        let step = state["step"].as_u64().unwrap();
        // ... and a new process resumes from it.
        let r = run(&out, step + 2, &["--resume"]);
        assert_eq!(r["steps"], (step + 2).to_string());
        survived += 1;
    }
    eprintln!("{survived} of 6 killed runs had checkpoints; every one loaded and resumed");
    assert!(
        survived >= 3,
        "too few kills landed after the first checkpoint ({survived})"
    );
}
