//! Smoke tests of the examples with tiny settings, so they never rot. `cargo test` builds
//! the examples next to this test; each test runs one binary and checks what it printed and
//! wrote. The pretrained-model examples need `scripts/fetch_assets.sh`; without the asset
//! cache they say loudly that they skipped, and with `EMBER_REQUIRE_ASSETS=1` (CI) they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/examples/<name>`, built by `cargo test` alongside this test binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test` (which builds the examples), not \
         with a single `--test` filter",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .expect("example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout + &stderr
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when the asset cache has `rel`; otherwise skips loudly (or fails under
/// `EMBER_REQUIRE_ASSETS=1`).
fn have_asset(rel: &str) -> bool {
    let root = ember::assets::dir();
    if root.join(rel).exists() {
        return true;
    }
    let msg = format!(
        "asset {} is missing: run `bash scripts/fetch_assets.sh`",
        root.join(rel).display()
    );
    if std::env::var("EMBER_REQUIRE_ASSETS").as_deref() == Ok("1") {
        panic!("{msg} (EMBER_REQUIRE_ASSETS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

#[test]
fn quickstart_fits_its_tiny_model() {
    let out = run("quickstart", &[]);
    assert!(out.contains("error, not panic: matmul"), "{out}");
    let last_mse: f64 = out
        .lines()
        .rfind(|l| l.starts_with("step"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .expect("an mse line");
    assert!(last_mse < 0.05, "final mse {last_mse}\n{out}");
}

#[test]
fn train_gpt_trains_checkpoints_resumes_and_samples() {
    let dir = scratch("train_gpt");
    let text = dir.join("text.txt");
    let line = "To be, or not to be, that is the question.\n";
    std::fs::write(&text, line.repeat(200)).unwrap();
    let run_dir = dir.join("run");
    let tiny = [
        "--batch-size",
        "4",
        "--block",
        "16",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--eval-every",
        "2",
        "--eval-batches",
        "1",
        "--warmup",
        "1",
        "--sample-chars",
        "40",
    ];
    let (text, run_dir_s) = (text.to_str().unwrap(), run_dir.to_str().unwrap());
    let mut args = vec!["--text", text, "--out", run_dir_s, "--steps", "4"];
    args.extend(tiny);
    let out = run("train_gpt", &args);
    assert!(out.contains("done: 4 steps"), "{out}");
    assert!(out.contains("--- sample (40 characters"), "{out}");
    for f in ["metrics.jsonl", "loss.png", "vocab.json", "config.json"] {
        assert!(run_dir.join(f).exists(), "{f} missing");
    }
    let ckpt = run_dir.join("checkpoints/step-00000004/model.safetensors");
    assert!(ckpt.exists(), "{} missing", ckpt.display());
    let mut args = vec!["--text", text, "--resume", run_dir_s, "--steps", "6"];
    args.extend(tiny);
    let out = run("train_gpt", &args);
    assert!(out.contains("resumed at step 4"), "{out}");
    assert!(out.contains("done: 6 steps"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_streams_from_the_smollm2_gguf() {
    if !have_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        return;
    }
    let out = run(
        "generate",
        &[
            "--prompt",
            "What is the capital of France?",
            "--max-new-tokens",
            "8",
        ],
    );
    assert!(out.contains("Paris"), "{out}");
    assert!(out.contains("tokens/s decode"), "{out}");
}

#[test]
fn embed_prints_the_minilm_similarity_matrix() {
    if !have_asset("minilm/model.safetensors") {
        return;
    }
    let out = run("embed", &[]);
    assert!(out.contains("384-dimensional"), "{out}");
    assert!(out.contains("most similar: [0] and [1]"), "{out}");
}

#[test]
fn finetune_trains_saves_in_hf_layout_and_generates() {
    if !have_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        return;
    }
    let dir = scratch("finetune");
    let text = dir.join("text.txt");
    std::fs::write(
        &text,
        "Shall I compare thee to a summer's day?\n".repeat(60),
    )
    .unwrap();
    let out_dir = dir.join("tuned");
    let out = run(
        "finetune",
        &[
            "--text",
            text.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--steps",
            "1",
            "--batch-size",
            "1",
            "--block",
            "16",
            "--eval-batches",
            "1",
            "--max-new-tokens",
            "4",
        ],
    );
    assert!(out.contains("validation loss before"), "{out}");
    assert!(out.contains("validation loss after 1 steps"), "{out}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
