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
    // The default prompt, through SmolLM2's own chat template (its default system prompt).
    let out = run("generate", &["--max-new-tokens", "12"]);
    assert!(out.contains("Paris"), "{out}");
    assert!(out.contains("tokens/s decode"), "{out}");
}

#[test]
fn chat_keeps_its_cache_between_turns() {
    if !have_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        return;
    }
    let turns = [
        "--message",
        "What is the capital of France? Answer in one sentence.",
        "--message",
        "And of Italy?",
        "--max-new-tokens",
        "12",
    ];
    let out = run("chat", &turns);
    assert!(out.contains("Paris"), "{out}");
    assert!(out.contains("turn 2: "), "{out}");
    let prefilled = |out: &str, turn: &str| -> usize {
        let line = out.lines().find(|l| l.starts_with(turn)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let mut again = turns.to_vec();
    again.push("--no-cache");
    let full = run("chat", &again);
    assert!(
        prefilled(&out, "turn 2:") < prefilled(&full, "turn 2:"),
        "{out}\n{full}"
    );
    // A base model's GGUF without a template is said to have none.
    if have_asset("gemma3/gemma-3-270m-q4_k_m.gguf") {
        let gemma = ember::assets::dir().join("gemma3/gemma-3-270m-q4_k_m.gguf");
        let args = [
            "--model",
            gemma.to_str().unwrap(),
            "--message",
            "Hi",
            "--max-new-tokens",
            "2",
        ];
        let out = run("chat", &args);
        assert!(out.contains("carries no chat template"), "{out}");
    }
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
    // Full fine-tune, then LoRA with checkpointing, the adapter merged.
    for extra in [&[][..], &["--lora", "4", "--checkpointing", "--merge"][..]] {
        let out_dir = dir.join("tuned");
        let mut args = vec![
            "--text",
            text.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--overwrite",
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
        ];
        args.extend(extra);
        let out = run("finetune", &args);
        assert!(out.contains("validation loss before"), "{out}");
        assert!(out.contains("validation loss after 1 steps"), "{out}");
        assert!(out.contains("peak memory"), "{out}");
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            assert!(out_dir.join(f).exists(), "{f} missing");
        }
        if !extra.is_empty() {
            assert!(out.contains("LoRA r = 4 on 120 modules"), "{out}");
            for f in ["adapter_config.json", "adapter_model.safetensors"] {
                assert!(out_dir.join("adapter").join(f).exists(), "{f} missing");
            }
        }
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs an example that must refuse its input: `Err(stderr)` when it exited with an error
/// status and a one-line `error:` message (clap's usage errors included); `Ok` when it
/// succeeded; a panic (counted by the tally) when it panicked, printed a Rust `Debug` error, or
/// was killed by a signal (an abort).
fn refuses(name: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(example(name))
        .args(args)
        .output()
        .expect("example starts");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.code().is_some(),
        "{name} {args:?} was killed by a signal (an abort?): {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{name} {args:?} panicked: {stderr}"
    );
    assert!(
        !stderr.contains("Error: "),
        "{name} {args:?} printed a Debug error: {stderr}"
    );
    if out.status.success() {
        return Ok(());
    }
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| panic!("{name} {args:?}: no error line in {stderr}"));
    Err(line.to_string())
}

#[test]
fn examples_refuse_bad_flags_with_one_line_errors() {
    use ember_testing::hostile::Hostile;
    let dir = scratch("flags");
    let text = dir.join("text.txt");
    std::fs::write(&text, "All the world's a stage.\n".repeat(100)).unwrap();
    let short = dir.join("short.txt");
    std::fs::write(&short, "tiny").unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let text_s = text.to_str().unwrap();
    let mut h = Hostile::new("example flags", std::time::Duration::from_secs(60), 4096.0);
    let tiny = |out: &str| -> Vec<String> {
        [
            "--text",
            text_s,
            "--out",
            out,
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--block",
            "8",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "8",
            "--eval-every",
            "2",
            "--eval-batches",
            "1",
            "--warmup",
            "1",
            "--sample-chars",
            "8",
        ]
        .map(String::from)
        .to_vec()
    };
    let mut case = 0;
    let mut train = |h: &mut Hostile, what: &str, set: &[&str], ok: bool| {
        case += 1;
        let out = dir.join(format!("run-{case}"));
        let mut args = tiny(out.to_str().unwrap());
        for pair in set.chunks(2) {
            if let Some((flag, _)) = pair[0].split_once('=')
                && let Some(i) = args.iter().position(|a| a == flag)
            {
                args.drain(i..i + 2); // `--flag=value` replaces `--flag value`
            }
            match args.iter().position(|a| a == pair[0]) {
                Some(i) if pair.len() == 2 => args[i + 1] = pair[1].to_string(),
                _ => args.extend(pair.iter().map(|s| s.to_string())),
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = format!("train_gpt {what}");
        match ok {
            true => h.ok(&name, || refuses("train_gpt", &refs)),
            false => h.err(&name, || refuses("train_gpt", &refs)),
        }
    };
    let bad: &[(&str, &[&str])] = &[
        ("--n-head 0", &["--n-head", "0"]),
        ("--n-head 3 (does not divide 8)", &["--n-head", "3"]),
        ("--steps 0", &["--steps", "0"]),
        ("--steps=-1", &["--steps=-1"]),
        ("--steps abc", &["--steps", "abc"]),
        ("--batch-size 0", &["--batch-size", "0"]),
        ("--batch-size 10^8", &["--batch-size", "100000000"]),
        (
            "--n-embd 10^9",
            &["--n-embd", "1000000000", "--n-head", "1"],
        ),
        ("--n-layer 10^7", &["--n-layer", "10000000"]),
        ("--block 0", &["--block", "0"]),
        ("--block 10^8", &["--block", "100000000"]),
        ("--block longer than the text", &["--block", "5000"]),
        ("--n-layer 0", &["--n-layer", "0"]),
        ("--lr NaN", &["--lr", "NaN"]),
        ("--lr=-1", &["--lr=-1"]),
        ("--lr inf", &["--lr", "inf"]),
        ("--lr 0", &["--lr", "0"]),
        ("--temperature NaN", &["--temperature", "NaN"]),
        ("--temperature=-1", &["--temperature=-1"]),
        ("--eval-batches 0", &["--eval-batches", "0"]),
        ("--sample-chars 10^7", &["--sample-chars", "10000000"]),
        ("--device nonsense", &["--device", "tpu"]),
        ("--text missing", &["--text", "/nonexistent/text.txt"]),
        ("--text a directory", &["--text", "/tmp"]),
        ("--text empty", &["--text", empty.to_str().unwrap()]),
        (
            "--text shorter than the block",
            &["--text", short.to_str().unwrap()],
        ),
        ("--resume of nothing", &["--resume", "/nonexistent/run"]),
    ];
    for (what, set) in bad {
        train(&mut h, what, set, false);
    }
    train(
        &mut h,
        "--temperature 0 (greedy)",
        &["--temperature", "0"],
        true,
    );

    // A real run, then resumes against a tampered run directory.
    let run_dir = dir.join("tampered");
    let rd = run_dir.to_str().unwrap().to_string();
    let args = tiny(&rd);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    h.ok("train_gpt a tiny run", || refuses("train_gpt", &refs));
    h.err("train_gpt a fresh run over it", || {
        refuses("train_gpt", &refs)
    });
    let resume = |steps: &str| -> Vec<String> {
        ["--text", text_s, "--resume", &rd, "--steps", steps]
            .map(String::from)
            .to_vec()
    };
    let vocab = std::fs::read_to_string(run_dir.join("vocab.json")).unwrap();
    let config = std::fs::read_to_string(run_dir.join("config.json")).unwrap();
    let tamper: Vec<(&str, &str, String)> = vec![
        (
            "vocab.json shorter than the model's vocabulary",
            "vocab.json",
            "[\"a\"]".into(),
        ),
        ("vocab.json not JSON", "vocab.json", "[\"a\", ".into()),
        (
            "config.json with n_embd 10^9",
            "config.json",
            config.replace("\"n_embd\": 8", "\"n_embd\": 1000000000"),
        ),
        (
            "config.json with n_head 0",
            "config.json",
            config.replace("\"n_head\": 2", "\"n_head\": 0"),
        ),
        ("config.json empty", "config.json", String::new()),
    ];
    for (what, file, contents) in tamper {
        std::fs::write(run_dir.join(file), contents).unwrap();
        let a = resume("4");
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        h.err(&format!("train_gpt --resume with {what}"), || {
            refuses("train_gpt", &refs)
        });
        std::fs::write(run_dir.join("vocab.json"), &vocab).unwrap();
        std::fs::write(run_dir.join("config.json"), &config).unwrap();
    }
    let a = resume("2");
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    h.err("train_gpt --resume with nothing left to do", || {
        refuses("train_gpt", &refs)
    });
    let a = resume("4");
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    h.ok("train_gpt --resume untampered", || {
        refuses("train_gpt", &refs)
    });

    // generate: options are refused before the model is read.
    for (what, args) in [
        ("--temperature NaN", vec!["--temperature", "NaN"]),
        ("--temperature=-0.5", vec!["--temperature=-0.5"]),
        ("--top-p 0", vec!["--top-p", "0"]),
        ("--top-p 1.5", vec!["--top-p", "1.5"]),
        ("--top-p NaN", vec!["--top-p", "NaN"]),
        ("--repetition-penalty 0", vec!["--repetition-penalty", "0"]),
        ("--repetition-penalty=-1", vec!["--repetition-penalty=-1"]),
        (
            "--model missing",
            vec!["--model", "/nonexistent/model.gguf"],
        ),
        (
            "--model a directory without config",
            vec!["--model", "/tmp"],
        ),
        ("--max-new-tokens=-1", vec!["--max-new-tokens=-1"]),
    ] {
        h.err(&format!("generate {what}"), || refuses("generate", &args));
    }
    // finetune and embed: flags refused before anything is loaded.
    for (what, args) in [
        ("--steps 0", vec!["--steps", "0"]),
        ("--lr NaN", vec!["--lr", "NaN"]),
        ("--lr=-1e-4", vec!["--lr=-1e-4"]),
        ("--batch-size 0", vec!["--batch-size", "0"]),
        ("--batch-size 10^6", vec!["--batch-size", "1000000"]),
        ("--block 1", vec!["--block", "1"]),
        ("--eval-batches 0", vec!["--eval-batches", "0"]),
        ("--model missing", vec!["--model", "/nonexistent/m.gguf"]),
    ] {
        let out = dir.join("ft-flags");
        let mut args = args;
        args.extend(["--out", out.to_str().unwrap()]);
        h.err(&format!("finetune {what}"), || refuses("finetune", &args));
        assert!(
            !out.exists(),
            "finetune {what} created its output before failing"
        );
    }
    h.err("embed --model missing", || {
        refuses("embed", &["--model", "/nonexistent"])
    });
    if have_asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") {
        let out = dir.join("ft");
        let o = out.to_str().unwrap();
        h.err("finetune --block past the context", || {
            refuses(
                "finetune",
                &[
                    "--text", text_s, "--out", o, "--block", "100000", "--steps", "1",
                ],
            )
        });
        let long = "word ".repeat(10_000);
        h.err("generate a prompt past the context", || {
            refuses(
                "generate",
                &["--raw", "--prompt", &long, "--max-new-tokens", "1"],
            )
        });
    }
    h.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_week_trains_embeds_and_streams() {
    let pretrained = have_asset("minilm") && have_asset(ember::assets::SMOLLM2_GGUF);
    let only: &[&str] = if pretrained {
        &[]
    } else {
        &["--only", "classifier"]
    };
    let mut args = vec!["--steps", "150", "--max-new-tokens", "16"];
    args.extend(only);
    let out = run("first_week", &args);
    let accuracy: f64 = out
        .lines()
        .find_map(|l| l.split("val accuracy ").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy line:\n{out}"));
    // The majority class is 59% of the rows; the counting rule takes attention to learn.
    assert!(accuracy > 0.75, "val accuracy {accuracy}\n{out}");
    assert!(out.contains("rows/s"), "{out}");
    if pretrained {
        assert!(out.contains("similarity: cat/kitten"), "{out}");
        assert!(
            out.contains("streamed text equals the full decode: true"),
            "{out}"
        );
    }
}
