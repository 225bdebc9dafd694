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
fn mixed_precision_runs_learn_and_resume_bit_exact() {
    for precision in ["bf16-mixed", "f16-mixed"] {
        let flags = ["--precision", precision];
        let out = out_dir(&format!("learn-{precision}"));
        let r = run(&out, 60, &flags);
        let acc: f64 = r["accuracy"].parse().unwrap();
        eprintln!(
            "{precision}: accuracy {acc} after 60 steps, val loss {}",
            r["val_loss"]
        );
        assert!(acc >= 0.99, "{precision}: accuracy {acc} after 60 steps");
        let trainer = std::fs::read_to_string(
            checkpoint::latest(&out.join("checkpoints"))
                .unwrap()
                .join("trainer.json"),
        )
        .unwrap();
        let state: serde_json::Value = serde_json::from_str(&trainer).unwrap();
        assert_eq!(state["precision"], precision);
        assert_eq!(
            state["grad_scaler"].is_object(),
            precision == "f16-mixed",
            "{state}"
        );

        let straight = run(&out_dir(&format!("straight-{precision}")), 20, &flags);
        let split = out_dir(&format!("split-{precision}"));
        run(&split, 10, &flags);
        let resumed = run(&split, 20, &[&flags[..], &["--resume"]].concat());
        assert_eq!(
            resumed["weights"], straight["weights"],
            "{precision}: resume"
        );
        assert_ne!(
            straight["weights"],
            run(&out_dir("f32-20"), 20, &[])["weights"]
        );
    }
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

/// `metrics.jsonl` without the timing fields (the only ones two runs cannot share).
fn metrics(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("tokens_per_s");
            o.remove("rows_per_s");
            o.remove("val_rows_per_s");
            o.remove("elapsed_s");
            v
        })
        .collect()
}

/// Every file of a checkpoint directory, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// A child of the self-test, killed after `delay_ms` (or its status and stderr when it
/// finished first).
fn run_and_kill(
    out: &Path,
    args: &[&str],
    delay_ms: u64,
) -> Option<(std::process::ExitStatus, String)> {
    let mut child = Command::new(BIN)
        .args(["--out", out.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_millis(delay_ms);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let o = child.wait_with_output().unwrap();
            return Some((o.status, String::from_utf8_lossy(&o.stderr).into()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    None
}

#[test]
fn killed_at_many_points_and_resumed_the_run_ends_byte_identical() {
    // Long enough that the kills land before the run ends (ember-core is optimized in tests).
    const STEPS: u64 = 600;
    let steps = STEPS.to_string();
    let common = [
        "--steps",
        &steps,
        "--checkpoint-every",
        "3",
        "--log-every",
        "1",
    ];
    let straight = out_dir("kill-straight");
    run(&straight, STEPS, &common[2..]);

    let out = out_dir("kill-resumed");
    // 24 kills at pseudo-random points from 3 to 130 ms after each start: during start-up,
    // steps, checkpoint writes and the resumes' own writes (each resumed process is killed
    // too, some of them a few ms after it starts).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (mut kills, mut resumed_kills) = (0, 0);
    for _ in 0..24 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = 3 + state % 128;
        let ckpts = checkpoint::list(&out.join("checkpoints"));
        if ckpts.last().is_some_and(|(s, _)| *s == STEPS) {
            break; // finished, killed after its last checkpoint
        }
        let resume = !ckpts.is_empty();
        let mut args = common.to_vec();
        if resume {
            args.push("--resume");
        }
        match run_and_kill(&out, &args, delay) {
            None => {
                kills += 1;
                resumed_kills += usize::from(resume);
            }
            Some((status, err)) => {
                assert!(
                    status.success(),
                    "a run that was not killed failed: {status}: {err}"
                );
                break;
            }
        }
    }
    let ckpts = checkpoint::list(&out.join("checkpoints"));
    if ckpts.last().is_none_or(|(s, _)| *s != STEPS) {
        let extra: &[&str] = if ckpts.is_empty() { &[] } else { &["--resume"] };
        run(&out, STEPS, &[&common[2..], extra].concat());
    }
    eprintln!("{kills} kills ({resumed_kills} of resumed processes) before step {STEPS}");
    assert!(
        kills >= 10 && resumed_kills >= 5,
        "only {kills} kills landed"
    );

    let last = |root: &Path| checkpoint::latest(&root.join("checkpoints")).unwrap();
    let (a, b) = (last(&straight), last(&out));
    assert_eq!(a.file_name(), b.file_name());
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(
            x == y,
            "{name} differs between the straight and the killed run"
        );
    }
    assert_eq!(metrics(&straight), metrics(&out), "metrics.jsonl differs");
    // Nothing of the killed writers is left.
    for dir in [out.clone(), out.join("checkpoints")] {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                !name.contains(".tmp-"),
                "leftover {name} in {}",
                dir.display()
            );
        }
    }
    // No process holds the directory any more (a killed one's lock file is stale).
    ember_train::RunDir::open(&out).expect("the lock of a finished or killed run is free");
}

#[test]
fn a_second_writer_on_one_run_directory_fails_and_the_first_is_untouched() {
    let reference = out_dir("writer-ref");
    let r = run(&reference, 60, &["--checkpoint-every", "5"]);

    let out = out_dir("writers");
    let mut first = Command::new(BIN)
        .args([
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "60",
            "--checkpoint-every",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while !out.join(".lock").exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the first writer never locked"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = Command::new(BIN)
        .args(["--out", out.to_str().unwrap(), "--steps", "60"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second writer must fail");
    assert!(err.contains("is in use by"), "{err}");
    assert!(err.starts_with("error: "), "one line for humans: {err}");
    let resumer = Command::new(BIN)
        .args(["--out", out.to_str().unwrap(), "--steps", "60", "--resume"])
        .output()
        .unwrap();
    assert!(
        !resumer.status.success(),
        "a resume of a running run must fail too"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first writer finished before the others tried: nothing was tested"
    );

    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains(&format!("weights={}", r["weights"])),
        "{line}"
    );
    assert_eq!(metrics(&reference), metrics(&out));
    let last = |root: &Path| checkpoint::latest(&root.join("checkpoints")).unwrap();
    assert_eq!(files(&last(&reference)), files(&last(&out)));
}

#[test]
fn stale_locks_and_leftovers_are_cleared_and_earlier_runs_are_not_overwritten() {
    let out = out_dir("stale");
    std::fs::create_dir_all(out.join("checkpoints/.step-00000005.tmp-999999")).unwrap();
    std::fs::write(out.join(".lock"), "999999\n").unwrap(); // a killed process's lock
    std::fs::write(out.join(".metrics.jsonl.tmp-999999"), "torn").unwrap();
    run(&out, 10, &["--checkpoint-every", "5"]);
    assert!(!out.join("checkpoints/.step-00000005.tmp-999999").exists());
    assert!(!out.join(".metrics.jsonl.tmp-999999").exists());

    // A fresh run into a directory with checkpoints refuses instead of mixing two runs.
    let o = Command::new(BIN)
        .args(["--out", out.to_str().unwrap(), "--steps", "10"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("holds checkpoints of an earlier run"), "{err}");
    // A finished run has nothing left to do.
    let o = Command::new(BIN)
        .args(["--out", out.to_str().unwrap(), "--steps", "10", "--resume"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to do"));
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_step_or_is_skipped() {
    let out = out_dir("nan-stop");
    let o = Command::new(BIN)
        .args([
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "20",
            "--nan-at",
            "7",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("step 7: the loss is NaN"), "{err}");

    let out = out_dir("nan-skip");
    let r = run(&out, 20, &["--nan-at", "7", "--skip-nonfinite"]);
    assert_eq!(r["steps"], "20");
    assert!(r["loss"].parse::<f64>().unwrap().is_finite());
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let skipped: Vec<&str> = log.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{log}");
    assert!(skipped[0].contains("\"step\":7"), "{}", skipped[0]);
}
